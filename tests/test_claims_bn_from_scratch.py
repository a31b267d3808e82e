"""Headline claims of the chapter "Batch normalization from scratch", over several seeds."""

import numpy as np
import pytest
import torch

from bn_utils import forgotten_eval_study, load_digits, make_convnet, make_mlp, run_seeds

SEEDS = (0, 1, 2, 3, 4)


def test_training_with_scratch_bn_follows_torch_bn():
    """Claim: our BatchNorm1d is a drop-in: swapping it for torch's leaves training unchanged.

    In float64, so that what is compared is the two implementations and not float32 rounding,
    which training amplifies differently on every arithmetic path (in float32 the loss curves part
    by about 1e-3 within 5 epochs on some paths)."""
    data = load_digits(dtype=torch.float64)
    curves = {}
    for norm in ("batch", "batch_scratch"):
        curves[norm] = run_seeds(
            lambda norm=norm: make_mlp(64, 10, depth=3, width=100, norm=norm).double(),
            data,
            SEEDS,
            lr=0.1,
            epochs=5,
            device="cpu",
        )
    for ours, ref in zip(curves["batch_scratch"], curves["batch"], strict=True):
        loss_gap = np.max(np.abs(np.array(ours.loss) - np.array(ref.loss)))
        assert loss_gap < 1e-9, f"seed {ours.config['seed']}: loss curves differ by {loss_gap:.2e}"
        assert ours.test_acc == ref.test_acc, f"seed {ours.config['seed']}: {ours.test_acc} vs {ref.test_acc}"


def test_forgetting_eval_ruins_single_image_predictions_in_a_conv_net():
    """Claim: predicting one image at a time in training mode costs at least 20 points of accuracy."""
    data = load_digits(images=True)
    acc = forgotten_eval_study(
        lambda: make_convnet(norm="batch_scratch"), data, seeds=SEEDS, batch_sizes=[1], lr=0.1, epochs=10
    )
    drop = acc["eval"] - acc["train@1"]
    assert (acc["eval"] > 0.9).all(), f"eval-mode accuracy {acc['eval']}"
    assert (drop > 0.20).all(), f"accuracy drop per seed {drop} (eval {acc['eval']}, train@1 {acc['train@1']})"


def test_small_train_mode_batches_hurt_an_mlp_and_a_full_batch_does_not():
    """Claim: in training mode, an MLP's test accuracy depends on its batch-mates: batches of 2
    lose at least 25 points; one batch of the whole test set is within 3 points of eval mode."""
    data = load_digits()
    acc = forgotten_eval_study(
        lambda: make_mlp(64, 10, depth=3, width=100, norm="batch_scratch"),
        data,
        seeds=SEEDS,
        batch_sizes=[2, len(data.x_test)],
        lr=0.1,
        epochs=10,
    )
    small, full = acc["eval"] - acc["train@2"], np.abs(acc["eval"] - acc[f"train@{len(data.x_test)}"])
    assert (small > 0.25).all(), f"drop with batches of 2 per seed: {small}"
    assert (full < 0.03).all(), f"gap with one full batch per seed: {full}"


def test_a_batch_of_one_in_training_mode_is_refused_not_silently_wrong():
    """Claim: an MLP asked to predict a single example in training mode raises a clear error."""
    data = load_digits()
    with pytest.raises(ValueError, match="model.eval()"):
        forgotten_eval_study(
            lambda: make_mlp(64, 10, depth=1, width=16, norm="batch_scratch"),
            data,
            seeds=[0],
            batch_sizes=[1],
            lr=0.1,
            steps=5,
        )
