"""Bad input at the public surface: every public function checks its arguments, before any
training, and its error names the argument, the value received and what was expected."""

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

import bn_utils as bu
from bn_utils import stacked
from bn_utils.data import Dataset
from bn_utils.experiments import covariate_shift, initialization, landscape, regularization, sweeps
from bn_utils.probes import ActivationRecord

NAN, INF = math.nan, math.inf


def mlp(in_features=64, **kwargs):
    return bu.make_mlp(in_features, 10, depth=1, width=8, **kwargs)


def xy(data, n=20):
    return data.x_test[:n], data.y_test[:n]


def dataset(data, **changes):
    fields = dict(
        name="d", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test, num_classes=10
    )
    return Dataset(**(fields | changes))


def spirals():
    return bu.make_spirals(points_per_class=20)


def images():
    return bu.load_digits(images=True)


def record(percentiles):
    rows = np.zeros((2, 3))
    return ActivationRecord(np.arange(2), {p: rows for p in percentiles}, rows, rows)


# (id, call(digits), error type, text the message must contain)
CASES = [
    # training.train
    ("train-lr-zero", lambda d: bu.train(mlp(), d, lr=0, steps=1), ValueError, "lr must be positive and finite, got 0"),
    (
        "train-lr-negative",
        lambda d: bu.train(mlp(), d, lr=-0.1, steps=1),
        ValueError,
        "lr must be positive and finite, got -0.1",
    ),
    (
        "train-lr-nan",
        lambda d: bu.train(mlp(), d, lr=NAN, steps=1),
        ValueError,
        "lr must be positive and finite, got nan",
    ),
    (
        "train-lr-inf",
        lambda d: bu.train(mlp(), d, lr=INF, steps=1),
        ValueError,
        "lr must be positive and finite, got inf",
    ),
    (
        "train-lr-string",
        lambda d: bu.train(mlp(), d, lr="0.1", steps=1),
        TypeError,
        "lr must be positive and finite, got '0.1'",
    ),
    (
        "train-batch_size-zero",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "train-batch_size-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, batch_size=-5),
        ValueError,
        "batch_size must be a positive integer, got -5",
    ),
    (
        "train-batch_size-float",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, batch_size=2.5),
        TypeError,
        "batch_size must be a positive integer, got 2.5",
    ),
    (
        "train-steps-zero",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=0),
        ValueError,
        "steps must be a positive integer, got 0",
    ),
    (
        "train-steps-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=-3),
        ValueError,
        "steps must be a positive integer, got -3",
    ),
    (
        "train-steps-float",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=2.5),
        TypeError,
        "steps must be a positive integer, got 2.5",
    ),
    (
        "train-epochs-zero",
        lambda d: bu.train(mlp(), d, lr=0.1, epochs=0),
        ValueError,
        "epochs must be a positive integer, got 0",
    ),
    (
        "train-epochs-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, epochs=-1),
        ValueError,
        "epochs must be a positive integer, got -1",
    ),
    (
        "train-momentum-2",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, momentum=2),
        ValueError,
        "momentum must be a number in [0, 1], got 2",
    ),
    (
        "train-momentum-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, momentum=-0.5),
        ValueError,
        "momentum must be a number in [0, 1], got -0.5",
    ),
    (
        "train-momentum-nan",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, momentum=NAN),
        ValueError,
        "momentum must be a number in [0, 1], got nan",
    ),
    (
        "train-momentum-with-adam",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, optimizer="adam", momentum=0.9),
        ValueError,
        "momentum is for optimizer='sgd' only",
    ),
    (
        "train-weight_decay-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, weight_decay=-1),
        ValueError,
        "weight_decay must be non-negative and finite, got -1",
    ),
    (
        "train-weight_decay-nan",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, weight_decay=NAN),
        ValueError,
        "weight_decay must be non-negative and finite, got nan",
    ),
    (
        "train-seed-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, seed=-1),
        ValueError,
        "seed must be an integer between 0 and 2**32 - 1, got -1",
    ),
    (
        "train-seed-float",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, seed=1.5),
        TypeError,
        "seed must be an integer between 0 and 2**32 - 1, got 1.5",
    ),
    (
        "train-eval_every-zero",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, eval_every=0),
        ValueError,
        "eval_every must be a positive integer, got 0",
    ),
    (
        "train-eval_every-negative",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, eval_every=-5),
        ValueError,
        "eval_every must be a positive integer, got -5",
    ),
    (
        "train-on_step-not-callable",
        lambda d: bu.train(mlp(), d, lr=0.1, steps=1, on_step=3),
        TypeError,
        "on_step must be a callable or None, got 3",
    ),
    (
        "train-model-not-a-module",
        lambda d: bu.train("mlp", d, lr=0.1, steps=1),
        TypeError,
        "model must be a torch.nn.Module, got str",
    ),
    (
        "train-data-not-a-dataset",
        lambda d: bu.train(mlp(), (d.x_train, d.y_train), lr=0.1, steps=1),
        TypeError,
        "data must be a bn_utils Dataset",
    ),
    (
        "train-model-width-2-on-64",
        lambda d: bu.train(mlp(2), d, lr=0.1, steps=1),
        ValueError,
        "the model does not fit the data: its first layer, Linear(in_features=2, out_features=8, bias=True), "
        "expects examples of shape (2,), but the inputs have shape (1348, 64), i.e. examples of shape (64,)",
    ),
    (
        "train-mlp-on-images",
        lambda d: bu.train(mlp(), images(), lr=0.1, steps=1),
        ValueError,
        "expects examples of shape (64,), but the inputs have shape (1348, 1, 8, 8)",
    ),
    (
        "train-convnet-on-flat-inputs",
        lambda d: bu.train(bu.make_convnet(), d, lr=0.1, steps=1),
        ValueError,
        "expects examples of shape (1, H, W), but the inputs have shape (1348, 64)",
    ),
    (
        "train-convnet-wrong-channels",
        lambda d: bu.train(bu.make_convnet(3), images(), lr=0.1, steps=1),
        ValueError,
        "expects examples of shape (3, H, W), but the inputs have shape (1348, 1, 8, 8)",
    ),
    (
        "train-float64-data-float32-model",
        lambda d: bu.train(mlp(), bu.load_digits(dtype=torch.float64), lr=0.1, steps=1),
        TypeError,
        "the model's weights are torch.float32 but the inputs are torch.float64",
    ),
    # training.evaluate
    (
        "evaluate-batch_size-zero",
        lambda d: bu.evaluate(mlp(), *xy(d), batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "evaluate-batch_size-negative",
        lambda d: bu.evaluate(mlp(), *xy(d), batch_size=-1),
        ValueError,
        "batch_size must be a positive integer, got -1",
    ),
    (
        "evaluate-no-examples",
        lambda d: bu.evaluate(mlp(), d.x_test[:0], d.y_test[:0]),
        ValueError,
        "need as many labels as inputs (and at least one), got 0 and 0",
    ),
    (
        "evaluate-lengths-differ",
        lambda d: bu.evaluate(mlp(), d.x_test[:20], d.y_test[:10]),
        ValueError,
        "need as many labels as inputs (and at least one), got 20 and 10",
    ),
    (
        "evaluate-model-width",
        lambda d: bu.evaluate(mlp(2), *xy(d)),
        ValueError,
        "expects examples of shape (2,), but the inputs have shape (20, 64)",
    ),
    (
        "evaluate-float-labels",
        lambda d: bu.evaluate(mlp(), d.x_test[:20], d.y_test[:20].float()),
        TypeError,
        "y must be a 1-D tensor of class indices (dtype torch.long), got torch.float32",
    ),
    (
        "evaluate-numpy-inputs",
        lambda d: bu.evaluate(mlp(), d.x_test[:20].numpy(), d.y_test[:20]),
        TypeError,
        "x must be a torch.Tensor, got ndarray",
    ),
    # training.run_seeds, seed_everything, stack_metric, History
    (
        "run_seeds-no-seeds",
        lambda d: bu.run_seeds(mlp, d, [], lr=0.1, steps=1),
        ValueError,
        "seeds must be a non-empty list of integer seeds, got []",
    ),
    (
        "run_seeds-repeated-seed",
        lambda d: bu.run_seeds(mlp, d, [0, 0], lr=0.1, steps=1),
        ValueError,
        "seeds must all be different (a repeated seed repeats the same run), got [0, 0]",
    ),
    (
        "run_seeds-float-seed",
        lambda d: bu.run_seeds(mlp, d, [0.5], lr=0.1, steps=1),
        TypeError,
        "each of seeds must be an integer between 0 and 2**32 - 1, got 0.5",
    ),
    (
        "run_seeds-seeds-not-a-list",
        lambda d: bu.run_seeds(mlp, d, 3, lr=0.1, steps=1),
        TypeError,
        "seeds must be a non-empty list of integer seeds, got 3",
    ),
    (
        "run_seeds-model-width",
        lambda d: bu.run_seeds(lambda: mlp(2), d, [0], lr=0.1, steps=1),
        ValueError,
        "expects examples of shape (2,), but the inputs have shape (1348, 64)",
    ),
    (
        "run_seeds-module-instead-of-builder",
        lambda d: bu.run_seeds(mlp(), d, [0], lr=0.1, steps=1),
        TypeError,
        "build_model must be a function that builds a fresh model for each seed",
    ),
    (
        "run_seeds-builder-returns-none",
        lambda d: bu.run_seeds(lambda: None, d, [0], lr=0.1, steps=1),
        TypeError,
        "build_model() must be a torch.nn.Module, got NoneType",
    ),
    (
        "run_seeds-lr-nan",
        lambda d: bu.run_seeds(mlp, d, [0], lr=NAN, steps=1),
        ValueError,
        "lr must be positive and finite, got nan",
    ),
    (
        "run_seeds-seed-given-too",
        lambda d: bu.run_seeds(mlp, d, [0], lr=0.1, steps=1, seed=3),
        TypeError,
        "run_seeds sets each run's seed from seeds; do not pass seed=",
    ),
    (
        "run_seeds-on_trained-not-callable",
        lambda d: bu.run_seeds(mlp, d, [0], lr=0.1, steps=1, on_trained=1),
        TypeError,
        "on_trained must be a callable or None, got 1",
    ),
    (
        "seed_everything-negative",
        lambda d: bu.seed_everything(-1),
        ValueError,
        "seed must be an integer between 0 and 2**32 - 1, got -1",
    ),
    (
        "seed_everything-float",
        lambda d: bu.seed_everything(1.5),
        TypeError,
        "seed must be an integer between 0 and 2**32 - 1, got 1.5",
    ),
    (
        "seed_everything-too-large",
        lambda d: bu.seed_everything(2**40),
        ValueError,
        "seed must be an integer between 0 and 2**32 - 1, got 1099511627776",
    ),
    (
        "stack_metric-unknown-metric",
        lambda d: bu.stack_metric([bu.History()], "acc"),
        ValueError,
        "unknown metric 'acc'; valid names are: loss, train_acc, test_acc, test_loss",
    ),
    (
        "History.steps_to-unknown-metric",
        lambda d: bu.History().steps_to(0.5, metric="acc"),
        ValueError,
        "unknown metric 'acc'; valid names are: train_acc, test_acc, test_loss",
    ),
    (
        "History.steps_to-nan-threshold",
        lambda d: bu.History().steps_to(NAN),
        ValueError,
        "threshold must be a finite number, got nan",
    ),
    # layers
    (
        "BatchNorm1d-eps-negative",  # at the forward pass, as torch (its module_db error inputs)
        lambda d: bu.BatchNorm1d(4, eps=-1e-5).eval()(torch.zeros(2, 4)),
        ValueError,
        "eps must be non-negative and finite, got eps=-1e-05",
    ),
    (
        "BatchNorm1d-eps-nan",
        lambda d: bu.BatchNorm1d(4, eps=NAN)(torch.zeros(2, 4)),
        ValueError,
        "eps must be positive during training, got eps=nan",
    ),
    (
        "BatchNorm1d-momentum-2",
        lambda d: bu.BatchNorm1d(4, momentum=2),
        ValueError,
        "momentum must be None or a number in [0, 1], got 2",
    ),
    (
        "BatchNorm1d-momentum-negative",
        lambda d: bu.BatchNorm1d(4, momentum=-0.1),
        ValueError,
        "momentum must be None or a number in [0, 1], got -0.1",
    ),
    (
        "BatchNorm1d-momentum-nan",
        lambda d: bu.BatchNorm1d(4, momentum=NAN),
        ValueError,
        "momentum must be None or a number in [0, 1], got nan",
    ),
    (
        "BatchNorm2d-num_features-zero",
        lambda d: bu.BatchNorm2d(0),
        ValueError,
        "num_features must be a positive integer, got 0",
    ),
    (
        "BatchNorm1d-num_features-bool",
        lambda d: bu.BatchNorm1d(True),
        TypeError,
        "num_features must be a positive integer, got True",
    ),
    (
        "BatchNorm1d-num_features-float",
        lambda d: bu.BatchNorm1d(4.0),
        TypeError,
        "num_features must be a positive integer, got 4.0",
    ),
    (
        "NoisyBatchNorm-num_features-zero",
        lambda d: bu.NoisyBatchNorm(0),
        ValueError,
        "num_features must be a positive integer, got 0",
    ),
    (
        "NoisyBatchNorm-momentum-2",
        lambda d: bu.NoisyBatchNorm(4, momentum=2),
        ValueError,
        "momentum must be None or a number in [0, 1], got 2",
    ),
    (
        "NoisyBatchNorm-eps-negative",
        lambda d: bu.NoisyBatchNorm(4, eps=-1),
        ValueError,
        "eps must be non-negative and finite, got -1",
    ),
    (
        "NoisyBatchNorm-max_shift-nan",
        lambda d: bu.NoisyBatchNorm(4, max_shift=NAN),
        ValueError,
        "max_shift must be non-negative and finite, got nan",
    ),
    (
        "NoisyBatchNorm-max_scale-inf",
        lambda d: bu.NoisyBatchNorm(4, max_scale=INF),
        ValueError,
        "max_scale must be >= 1 and finite, got inf",
    ),
    (
        "GhostBatchNorm-ghost_batch_size-float",
        lambda d: bu.GhostBatchNorm(4, ghost_batch_size=2.5),
        TypeError,
        "ghost_batch_size must be an integer, got 2.5",
    ),
    (
        "GhostBatchNorm-momentum-2",
        lambda d: bu.GhostBatchNorm(4, ghost_batch_size=2, momentum=2),
        ValueError,
        "momentum must be None or a number in [0, 1], got 2",
    ),
    (
        "GhostBatchNorm-num_features-negative",
        lambda d: bu.GhostBatchNorm(-1, ghost_batch_size=2),
        ValueError,
        "num_features must be a positive integer, got -1",
    ),
    # functional
    (
        "batch_norm-eps-negative",
        lambda d: bu.batch_norm(torch.randn(8, 3), None, None, training=True, eps=-1),
        ValueError,
        "eps must be positive during training, got eps=-1",
    ),
    (
        "batch_norm-momentum-2",
        lambda d: bu.batch_norm(torch.randn(8, 3), torch.zeros(3), torch.ones(3), training=True, momentum=2),
        ValueError,
        "momentum must be a number in [0, 1], got 2",
    ),
    (
        "batch_norm-running_var-size",
        lambda d: bu.batch_norm(torch.randn(8, 3), torch.zeros(3), torch.ones(5), training=True),
        ValueError,
        "batch_norm expected running_var of shape (3,), one value per channel of the input of shape (8, 3), "
        "got shape (5,)",
    ),
    (
        "batch_norm-bias-size",
        lambda d: bu.batch_norm(torch.randn(8, 3), None, None, torch.ones(3), torch.zeros(5), training=True),
        ValueError,
        "batch_norm expected bias of shape (3,)",
    ),
    (
        "batch_statistics-list",
        lambda d: bu.batch_statistics([[1.0, 2.0]]),
        TypeError,
        "x must be a torch.Tensor, got list",
    ),
    (
        "batch_statistics-1d",
        lambda d: bu.batch_statistics(torch.randn(5)),
        ValueError,
        "batch_statistics expected input of shape (N, C) or (N, C, *), got shape (5,)",
    ),
    # models
    (
        "make_mlp-in_features-zero",
        lambda d: bu.make_mlp(0, 10),
        ValueError,
        "in_features must be a positive integer, got 0",
    ),
    (
        "make_mlp-in_features-negative",
        lambda d: bu.make_mlp(-1, 10),
        ValueError,
        "in_features must be a positive integer, got -1",
    ),
    (
        "make_mlp-num_classes-zero",
        lambda d: bu.make_mlp(64, 0),
        ValueError,
        "num_classes must be a positive integer, got 0",
    ),
    ("make_mlp-depth-float", lambda d: bu.make_mlp(64, 10, depth=2.5), TypeError, "depth must be an integer, got 2.5"),
    (
        "make_mlp-init_scale-nan",
        lambda d: bu.make_mlp(64, 10, init_scale=NAN),
        ValueError,
        "init_scale must be positive and finite, got nan",
    ),
    (
        "make_mlp-init_scale-inf",
        lambda d: bu.make_mlp(64, 10, init_scale=INF),
        ValueError,
        "init_scale must be positive and finite, got inf",
    ),
    (
        "make_mlp-weight_std-nan",
        lambda d: bu.make_mlp(64, 10, weight_std=NAN),
        ValueError,
        "weight_std must be positive and finite, got nan",
    ),
    (
        "make_mlp-head_init_scale-nan",
        lambda d: bu.make_mlp(64, 10, head_init_scale=NAN),
        ValueError,
        "head_init_scale must be positive and finite, got nan",
    ),
    (
        "make_mlp-norm-momentum-2",
        lambda d: bu.make_mlp(64, 10, norm="batch", norm_kwargs={"momentum": 2}),
        ValueError,
        "momentum must be None or a number in [0, 1], got 2",
    ),
    (
        "make_mlp-norm_kwargs-list",
        lambda d: bu.make_mlp(64, 10, norm="batch", norm_kwargs=[1]),
        TypeError,
        "norm_kwargs must be a dict of the norm layer's options or None, got [1]",
    ),
    (
        "make_convnet-in_channels-zero",
        lambda d: bu.make_convnet(0),
        ValueError,
        "in_channels must be a positive integer, got 0",
    ),
    (
        "make_convnet-channel-zero",
        lambda d: bu.make_convnet(channels=(16, 0)),
        ValueError,
        "each of channels must be a positive integer, got 0",
    ),
    (
        "make_convnet-channels-int",
        lambda d: bu.make_convnet(channels=16),
        TypeError,
        "channels must be a tuple of conv widths, e.g. (16, 32), got int",
    ),
    (
        "make_convnet-num_classes-negative",
        lambda d: bu.make_convnet(num_classes=-1),
        ValueError,
        "num_classes must be a positive integer, got -1",
    ),
    (
        "make_norm-none-num_features-zero",
        lambda d: bu.make_norm("none", 0),
        ValueError,
        "num_features must be a positive integer, got 0",
    ),
    (
        "make_norm-batch-num_features-negative",
        lambda d: bu.make_norm("batch", -2),
        ValueError,
        "num_features must be a positive integer, got -2",
    ),
    (
        "make_norm-batch-eps-negative",
        lambda d: bu.make_norm("batch", 4, eps=-1),
        ValueError,
        "eps must be non-negative and finite, got -1",
    ),
    # data
    (
        "load_digits-dtype-int",
        lambda d: bu.load_digits(dtype=torch.int64),
        TypeError,
        "dtype must be a floating-point torch.dtype (e.g. torch.float32), got torch.int64",
    ),
    (
        "load_digits-dtype-string",
        lambda d: bu.load_digits(dtype="float32"),
        TypeError,
        "dtype must be a floating-point torch.dtype (e.g. torch.float32), got 'float32'",
    ),
    (
        "load_digits-seed-negative",
        lambda d: bu.load_digits(seed=-1),
        ValueError,
        "seed must be an integer between 0 and 2**32 - 1, got -1",
    ),
    (
        "make_spirals-noise-negative",
        lambda d: bu.make_spirals(noise=-0.1),
        ValueError,
        "noise must be non-negative and finite, got -0.1",
    ),
    (
        "make_spirals-noise-nan",
        lambda d: bu.make_spirals(noise=NAN),
        ValueError,
        "noise must be non-negative and finite, got nan",
    ),
    (
        "make_spirals-points_per_class-float",
        lambda d: bu.make_spirals(points_per_class=2.5),
        TypeError,
        "points_per_class must be an integer, got 2.5",
    ),
    (
        "make_spirals-num_classes-float",
        lambda d: bu.make_spirals(num_classes=3.0),
        TypeError,
        "num_classes must be an integer, got 3.0",
    ),
    (
        "batch_indices-batch_size-float",
        lambda d: bu.batch_indices(10, 2.5, seed=0),
        TypeError,
        "batch_size must be an integer, got 2.5",
    ),
    (
        "batch_indices-seed-negative",
        lambda d: bu.batch_indices(10, 2, seed=-1),
        ValueError,
        "seed must be an integer between 0 and 2**32 - 1, got -1",
    ),
    (
        "batch_indices-seed-float",
        lambda d: bu.batch_indices(10, 2, seed=0.5),
        TypeError,
        "seed must be an integer between 0 and 2**32 - 1, got 0.5",
    ),
    (
        "batch_indices-epoch-negative",
        lambda d: bu.batch_indices(10, 2, seed=0, epoch=-1),
        ValueError,
        "epoch must be a non-negative integer, got -1",
    ),
    (
        "iterate_batches-numpy",
        lambda d: next(bu.iterate_batches(d.x_test.numpy(), d.y_test, 4, seed=0)),
        TypeError,
        "x must be a torch.Tensor, got ndarray",
    ),
    (
        "Dataset-lengths-differ",
        lambda d: dataset(d, y_train=d.y_train[:3]),
        ValueError,
        "x_train and y_train must hold the same number (at least 1) of examples, got 1348 and 3",
    ),
    (
        "Dataset-float-labels",
        lambda d: dataset(d, y_train=d.y_train.float()),
        TypeError,
        "y_train must be a 1-D tensor of class indices (torch.long), got torch.float32",
    ),
    (
        "Dataset-integer-inputs",
        lambda d: dataset(d, x_test=d.x_test.long()),
        TypeError,
        "x_test must be a floating-point tensor of shape (N, ...), got torch.int64",
    ),
    (
        "Dataset-num_classes-zero",
        lambda d: dataset(d, num_classes=0),
        ValueError,
        "num_classes must be a positive integer, got 0",
    ),
    (
        "Dataset-numpy-arrays",
        lambda d: dataset(d, x_train=d.x_train.numpy()),
        TypeError,
        "x_train must be a torch.Tensor, got ndarray",
    ),
    (
        "Dataset-train-test-shapes-differ",
        lambda d: dataset(d, x_test=d.x_test[:, :10]),
        ValueError,
        "train and test examples must have the same shape, got (64,) and (10,)",
    ),
    (
        "Dataset-empty-test-set",
        lambda d: dataset(d, x_test=d.x_test[:0], y_test=d.y_test[:0]),
        ValueError,
        "x_test and y_test must hold the same number (at least 1) of examples, got 0 and 0",
    ),
    # inference
    (
        "running_stats_trace-momentum-2",
        lambda d: bu.running_stats_trace(momentum=2, steps=5),
        ValueError,
        "momentum must be None or a number in [0, 1], got 2",
    ),
    (
        "running_stats_trace-batch_size-zero",
        lambda d: bu.running_stats_trace(batch_size=0, steps=5),
        ValueError,
        "batch_size must be an integer >= 2, got 0",
    ),
    (
        "running_stats_trace-true_std-negative",
        lambda d: bu.running_stats_trace(true_std=-1.0, steps=5),
        ValueError,
        "true_std must be positive and finite, got -1.0",
    ),
    (
        "running_stats_trace-true_std-zero",
        lambda d: bu.running_stats_trace(true_std=0.0, steps=5),
        ValueError,
        "true_std must be positive and finite, got 0.0",
    ),
    (
        "running_stats_trace-steps-float",
        lambda d: bu.running_stats_trace(steps=2.5),
        TypeError,
        "steps must be a positive integer, got 2.5",
    ),
    (
        "accuracy_in_mode-batch_size-zero",
        lambda d: bu.accuracy_in_mode(mlp(), *xy(d), batch_size=0, train_mode=False),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "accuracy_in_mode-batch_size-negative",
        lambda d: bu.accuracy_in_mode(mlp(), *xy(d), batch_size=-1, train_mode=False),
        ValueError,
        "batch_size must be a positive integer, got -1",
    ),
    (
        "accuracy_in_mode-model-width",
        lambda d: bu.accuracy_in_mode(mlp(2), *xy(d), batch_size=10, train_mode=False),
        ValueError,
        "expects examples of shape (2,), but the inputs have shape (20, 64)",
    ),
    (
        "forgotten_eval_study-batch_size-zero",
        lambda d: bu.forgotten_eval_study(mlp, d, seeds=[0], batch_sizes=[0], lr=0.1, steps=1),
        ValueError,
        "each of batch_sizes must be a positive integer, got 0",
    ),
    (
        "forgotten_eval_study-repeated-batch_size",
        lambda d: bu.forgotten_eval_study(mlp, d, seeds=[0], batch_sizes=[8, 8], lr=0.1, steps=1),
        ValueError,
        "batch_sizes must all be different, got [8, 8]",
    ),
    (
        "forgotten_eval_study-no-seeds",
        lambda d: bu.forgotten_eval_study(mlp, d, seeds=[], batch_sizes=[8], lr=0.1, steps=1),
        ValueError,
        "seeds must be a non-empty list of integer seeds, got []",
    ),
    # checks
    (
        "check_range-low-above-high",
        lambda d: bu.check_range("x", 0.5, 1, 0),
        ValueError,
        "low must not exceed high, got low=1 and high=0",
    ),
    ("check_range-low-nan", lambda d: bu.check_range("x", 0.5, NAN, 1), ValueError, "low must be a number, got nan"),
    (
        "check_range-digits-negative",
        lambda d: bu.check_range("x", 0.5, 0, 1, digits=-1),
        ValueError,
        "digits must be a non-negative integer, got -1",
    ),
    (
        "check_below-tol-negative",
        lambda d: bu.check_below("x", 0.0, -1),
        ValueError,
        "tol must be non-negative and finite, got -1",
    ),
    (
        "max_abs_error-lists",
        lambda d: bu.max_abs_error([1.0], [1.0]),
        TypeError,
        "actual must be a torch.Tensor, got list",
    ),
    (
        "max_abs_error-empty",
        lambda d: bu.max_abs_error(torch.zeros(0), torch.zeros(0)),
        ValueError,
        "need at least one value to compare, got tensors of shape (0,)",
    ),
    # probes
    (
        "ActivationProbe-every-zero",
        lambda d: bu.ActivationProbe(nn.Linear(2, 2), every=0),
        ValueError,
        "every must be a positive integer, got 0",
    ),
    (
        "ActivationProbe-every-float",
        lambda d: bu.ActivationProbe(nn.Linear(2, 2), every=1.5),
        TypeError,
        "every must be a positive integer, got 1.5",
    ),
    (
        "ActivationProbe-module-string",
        lambda d: bu.ActivationProbe("layer"),
        TypeError,
        "module must be a torch.nn.Module, got str",
    ),
    (
        "ActivationProbe-no-percentiles",
        lambda d: bu.ActivationProbe(nn.Linear(2, 2), percentiles=()),
        ValueError,
        "percentiles must name at least one percentile, e.g. (15, 50, 85)",
    ),
    (
        "drift_ratio-percentiles-not-recorded",
        lambda d: bu.drift_ratio(record([50])),
        ValueError,
        "percentiles [15, 85] were not recorded; the probe recorded [50]",
    ),
    # stacked
    (
        "train_stacked-batch_size-zero",
        lambda d: stacked.train_stacked([mlp()], d, lrs=[0.1], seeds=[0], steps=1, batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "train_stacked-lr-negative",
        lambda d: stacked.train_stacked([mlp()], d, lrs=[-0.1], seeds=[0], steps=1),
        ValueError,
        "each of lrs must be positive and finite, got -0.1",
    ),
    (
        "train_stacked-lr-nan",
        lambda d: stacked.train_stacked([mlp()], d, lrs=[NAN], seeds=[0], steps=1),
        ValueError,
        "each of lrs must be positive and finite, got nan",
    ),
    (
        "train_stacked-momentum-2",
        lambda d: stacked.train_stacked([mlp()], d, lrs=[0.1], seeds=[0], steps=1, momentum=2),
        ValueError,
        "momentum must be a number in [0, 1], got 2",
    ),
    (
        "train_stacked-steps-zero",
        lambda d: stacked.train_stacked([mlp()], d, lrs=[0.1], seeds=[0], steps=0),
        ValueError,
        "steps must be a positive integer, got 0",
    ),
    (
        "train_stacked-eval_every-negative",
        lambda d: stacked.train_stacked([mlp()], d, lrs=[0.1], seeds=[0], steps=1, eval_every=-1),
        ValueError,
        "eval_every must be a positive integer, got -1",
    ),
    (
        "train_stacked-model-width",
        lambda d: stacked.train_stacked([mlp(2)], d, lrs=[0.1], seeds=[0], steps=1),
        ValueError,
        "they take inputs of width 2, i.e. examples of shape (2,), but the data's examples have shape (64,)",
    ),
    (
        "evaluate_stacked-batch_size-zero",
        lambda d: stacked.evaluate_stacked(stacked.StackedMLP([mlp()]), *xy(d), batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    # sweeps
    (
        "lr_sweep-nan-lr",
        lambda d: sweeps.lr_sweep(d, lrs=[NAN], seeds=(0,), steps=1),
        ValueError,
        "each of the values (lr) must be a finite number, got nan",
    ),
    (
        "lr_sweep-repeated-seed",
        lambda d: sweeps.lr_sweep(d, lrs=[0.1], seeds=(0, 0), steps=1),
        ValueError,
        "seeds must all be different (a repeated seed repeats the same run), got [0, 0]",
    ),
    (
        "lr_sweep-no-norms",
        lambda d: sweeps.lr_sweep(d, lrs=[0.1], seeds=(0,), norms=(), steps=1),
        ValueError,
        "norms must be a non-empty list of different norm names",
    ),
    (
        "lr_sweep-repeated-norm",
        lambda d: sweeps.lr_sweep(d, lrs=[0.1], seeds=(0,), norms=("batch", "batch"), steps=1),
        ValueError,
        f"norms must be a non-empty list of different norm names ({', '.join(sorted(bu.NORM_LAYERS))}), "
        "got ('batch', 'batch')",
    ),
    (
        "lr_sweep-repeated-lr",
        lambda d: sweeps.lr_sweep(d, lrs=[0.1, 0.1], seeds=(0,), steps=1),
        ValueError,
        "the learning rates must all be different, got (0.1, 0.1)",
    ),
    (
        "lr_sweep-steps-zero",
        lambda d: sweeps.lr_sweep(d, lrs=[0.1], seeds=(0,), steps=0, depth=1, width=8),
        ValueError,
        "steps must be a positive integer, got 0",
    ),
    (
        "lr_sweep-target-percent",
        lambda d: sweeps.lr_sweep(d, lrs=[0.1], seeds=(0,), steps=1, target=95),
        ValueError,
        "target must be in [0, 1], got 95",
    ),
    (
        "init_scale_sweep-lr-nan",
        lambda d: sweeps.init_scale_sweep(d, scales=[1.0], seeds=(0,), steps=1, lr=NAN),
        ValueError,
        "lr must be positive and finite, got nan",
    ),
    (
        "Sweep-target-nan",
        lambda d: sweeps.Sweep("lr", (0.1,), (0,), {}, target=NAN),
        ValueError,
        "target must be in [0, 1], got nan",
    ),
    (
        "Sweep.final-unknown-metric",
        lambda d: sweeps.Sweep("lr", (0.1,), (0,), {"none": [[bu.History()]]}).final("none", "acc"),
        ValueError,
        "unknown metric 'acc'; valid names are: loss, train_acc, test_acc, test_loss",
    ),
    # covariate shift
    (
        "covariate_shift_run-ics_every-negative",
        lambda d: covariate_shift.covariate_shift_run("none", d, seed=0, steps=2, ics_every=-10),
        ValueError,
        "ics_every must be a positive integer, got -10",
    ),
    (
        "covariate_shift_run-probe_every-zero",
        lambda d: covariate_shift.covariate_shift_run("none", d, seed=0, steps=2, probe_every=0),
        ValueError,
        "probe_every must be a positive integer, got 0",
    ),
    (
        "covariate_shift_run-on-images",
        lambda d: covariate_shift.covariate_shift_run("none", images(), seed=0, steps=2),
        ValueError,
        "it needs flat examples (N, features) and at most 10 classes, like load_digits() or load_mnist1d(), "
        "got examples of shape (1, 8, 8) and 10 classes",
    ),
    (
        "covariate_shift_run-lr-nan",
        lambda d: covariate_shift.covariate_shift_run("none", d, seed=0, steps=2, lr=NAN),
        ValueError,
        "lr must be positive and finite, got nan",
    ),
    (
        "covariate_shift_run-batch_size-zero",
        lambda d: covariate_shift.covariate_shift_run("none", d, seed=0, steps=2, batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "gradient_shift-lr-nan",
        lambda d: covariate_shift.gradient_shift(covariate_shift.ioffe_mlp(), *xy(d), NAN),
        ValueError,
        "lr must be non-negative and finite, got nan",
    ),
    (
        "gradient_shift-lr-negative",
        lambda d: covariate_shift.gradient_shift(covariate_shift.ioffe_mlp(), *xy(d), -1.0),
        ValueError,
        "lr must be non-negative and finite, got -1.0",
    ),
    (
        "summarize_runs-no-runs",
        lambda d: covariate_shift.summarize_runs([]),
        ValueError,
        "runs must be a non-empty list of ShiftRun (from covariate_shift_run), got []",
    ),
    # initialization
    (
        "layer_diagnostics-lr-nan",
        lambda d: initialization.layer_diagnostics(mlp(), *xy(d), NAN),
        ValueError,
        "lr must be positive and finite, got nan",
    ),
    (
        "diagnose_at_init-batch_size-zero",
        lambda d: initialization.diagnose_at_init(d, "none", batch_size=0),
        ValueError,
        "batch_size must be an integer between 1 and 1348, got 0",
    ),
    (
        "diagnose_at_init-batch_size-above-data",
        lambda d: initialization.diagnose_at_init(spirals(), "none", batch_size=10_000),
        ValueError,
        "batch_size must be an integer between 1 and 45, got 10000",
    ),
    (
        "diagnose_at_init-depth-zero",
        lambda d: initialization.diagnose_at_init(d, "none", depth=0),
        ValueError,
        "depth must be a positive integer, got 0",
    ),
    (
        "diagnose_init_scales-no-scales",
        lambda d: initialization.diagnose_init_scales(d, "none", []),
        ValueError,
        "scales must be a non-empty list, got []",
    ),
    (
        "diagnose_depths-no-depths",
        lambda d: initialization.diagnose_depths(d, "none", []),
        ValueError,
        "depths must be a non-empty list, got []",
    ),
    # landscape
    (
        "probe_gradient_step-step-nan",
        lambda d: landscape.probe_gradient_step(mlp(), *xy(d), [NAN]),
        ValueError,
        "step_sizes must be a non-empty list of finite positive numbers, got [nan]",
    ),
    (
        "probe_gradient_step-step-inf",
        lambda d: landscape.probe_gradient_step(mlp(), *xy(d), [INF]),
        ValueError,
        "step_sizes must be a non-empty list of finite positive numbers, got [inf]",
    ),
    (
        "landscape_run-probe_every-zero",
        lambda d: landscape.landscape_run("none", d, seeds=[0], steps=1, probe_every=0),
        ValueError,
        "probe_every must be a positive integer, got 0",
    ),
    (
        "landscape_run-no-seeds",
        lambda d: landscape.landscape_run("none", d, seeds=[], steps=1),
        ValueError,
        "seeds must be a non-empty list of integer seeds, got []",
    ),
    (
        "landscape_run-repeated-seed",
        lambda d: landscape.landscape_run("none", d, seeds=[0, 0], steps=1),
        ValueError,
        "seeds must all be different (a repeated seed repeats the same run), got [0, 0]",
    ),
    (
        "landscape_run-probe_batch-zero",
        lambda d: landscape.landscape_run("none", d, seeds=[0], steps=1, probe_batch=0),
        ValueError,
        "probe_batch must be an integer between 1 and 1348, got 0",
    ),
    (
        "landscape_run-lr-negative",
        lambda d: landscape.landscape_run("none", d, seeds=[0], steps=1, lr=-1),
        ValueError,
        "lr must be positive and finite, got -1",
    ),
    (
        "landscape_run-step_multiple-zero",
        lambda d: landscape.landscape_run("none", d, seeds=[0], steps=1, step_multiples=(0.0, 1.0)),
        ValueError,
        "each of step_multiples must be positive and finite, got 0.0",
    ),
    # regularization
    (
        "first_layer_inputs-width-zero",
        lambda d: regularization.first_layer_inputs(d, width=0),
        ValueError,
        "width must be a positive integer, got 0",
    ),
    (
        "first_layer_inputs-width-negative",
        lambda d: regularization.first_layer_inputs(d, width=-1),
        ValueError,
        "width must be a positive integer, got -1",
    ),
    (
        "batch_noise-draws-zero",
        lambda d: regularization.batch_noise(d, [8], draws=0),
        ValueError,
        "draws must be a positive integer, got 0",
    ),
    (
        "batch_noise-examples-zero",
        lambda d: regularization.batch_noise(d, [8], examples=0),
        ValueError,
        "examples must be an integer between 1 and 1347, got 0",
    ),
    (
        "batch_noise-no-batch_sizes",
        lambda d: regularization.batch_noise(d, []),
        ValueError,
        "batch_sizes must be a non-empty list, got []",
    ),
    (
        "normalized_in_random_batches-eps-negative",
        lambda d: regularization.normalized_in_random_batches(
            torch.randn(2, 3), torch.randn(10, 3), 4, draws=2, generator=torch.Generator(), eps=-1
        ),
        ValueError,
        "eps must be non-negative and finite, got -1",
    ),
    (
        "normalized_in_random_batches-draws-zero",
        lambda d: regularization.normalized_in_random_batches(
            torch.randn(2, 3), torch.randn(10, 3), 4, draws=0, generator=torch.Generator()
        ),
        ValueError,
        "draws must be a positive integer, got 0",
    ),
    (
        "normalized_in_random_batches-units-differ",
        lambda d: regularization.normalized_in_random_batches(
            torch.randn(2, 3), torch.randn(10, 4), 4, draws=1, generator=torch.Generator()
        ),
        ValueError,
        "fixed and pool must be (examples, units) tensors with the same units, got shapes (2, 3) and (10, 4)",
    ),
    (
        "regularization_study-no-seeds",
        lambda d: regularization.regularization_study(d, seeds=[], epochs=1),
        ValueError,
        "seeds must be a non-empty list of integer seeds, got []",
    ),
    (
        "regularization_study-no-configs",
        lambda d: regularization.regularization_study(d, configs={}, seeds=[0], epochs=1),
        ValueError,
        "configs must be a non-empty dict of name -> Setting or (norm, norm_kwargs), got {}",
    ),
    (
        "regularization_study-unknown-norm",
        lambda d: regularization.regularization_study(
            d, configs={"a": ("none", {}), "b": ("batchnorm", {})}, seeds=[0], epochs=1
        ),
        ValueError,
        "configs['b'] has norm 'batchnorm'; valid norms are batch, batch_ghost",
    ),
    (
        "regularization_study-epochs-zero",
        lambda d: regularization.regularization_study(d, seeds=[0], epochs=0),
        ValueError,
        "epochs must be a positive integer, got 0",
    ),
    (
        "RegularizationResult.final-unknown-metric",
        lambda d: regularization.RegularizationResult({"a": [bu.History()]}).final("a", "acc"),
        ValueError,
        "unknown metric 'acc'; valid names are: train_acc, test_acc, test_loss, gap",
    ),
]


@pytest.mark.parametrize(
    "call,error,expected", [pytest.param(call, error, expected, id=name) for name, call, error, expected in CASES]
)
def test_bad_input_raises_an_error_naming_what_was_expected(digits, call, error, expected):
    with pytest.raises(error, match=re.escape(expected)):
        call(digits)


def test_case_ids_are_unique():
    names = [name for name, *_ in CASES]
    assert len(names) == len(set(names))


def test_width_mismatch_keeps_torchs_error_as_its_cause(digits):
    model = mlp(2).train()
    with pytest.raises(ValueError, match=re.escape("expects examples of shape (2,)")) as info:
        bu.evaluate(model, *xy(digits))
    assert isinstance(info.value.__cause__, RuntimeError) and "mat1 and mat2" in str(info.value.__cause__)
    assert model.training, "evaluate restores the model's mode even when it fails"


def test_other_runtime_errors_pass_through_unchanged(digits):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("something else went wrong")

    with pytest.raises(RuntimeError, match="something else went wrong"):
        bu.evaluate(Broken(), *xy(digits))
    with pytest.raises(RuntimeError, match="something else went wrong"):
        bu.evaluate(nn.Sequential(nn.Linear(64, 10), Broken()), *xy(digits))


def test_edge_values_that_are_valid_are_still_accepted(digits):
    for momentum in (None, 0, 0.0, 1, 1.0):
        bu.BatchNorm1d(3, momentum=momentum)
    bu.BatchNorm1d(3, eps=0)
    bu.seed_everything(2**32 - 1)
    assert len(bu.batch_indices(np.int64(10), np.int64(5), seed=np.int64(0))) == 2
    bu.seed_everything(0)
    h = bu.train(mlp(), digits, lr=1, steps=np.int64(1), batch_size=len(digits.x_train), momentum=1)
    assert h.steps == 1
    h = bu.train(mlp(), digits, lr=1e-3, steps=1, optimizer="adam", momentum=0.0)
    assert h.steps == 1
    assert bu.check_range("x", 7, 7, 7, digits=0) and bu.check_below("x", 0.0, 0)
    with pytest.raises(bu.CheckFailed, match="NaN"):  # a NaN measurement fails its check
        bu.check_below("x", math.nan, 1e-6)


def test_a_forward_pre_hook_that_reshapes_inputs_is_respected():
    """The model/data check reads the first layer only when nothing can reshape the input before it."""
    data = images()
    model = nn.Sequential(nn.Linear(64, 10))
    model.register_forward_pre_hook(lambda module, args: (args[0].flatten(1),))
    bu.seed_everything(0)
    assert bu.train(model, data, lr=0.1, steps=2).steps == 2
