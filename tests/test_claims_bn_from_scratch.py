"""Headline claims of the chapter "Batch normalization from scratch", over the claim seeds.

Each test is named by one sentence of the chapter's verdict. Setting: the 8x8 digits (1,348
training and 449 test images, the fixed split of ``load_digits``: data, not a claim seed); the
chapter's MLP (3 x 100 ReLU, BN before each ReLU) and small conv net, SGD at learning rate 0.1
(the placement study also at 1.0), 10 epochs. Every seed here is a claim seed (``SEEDS``). The
trained models are shared: the forgotten-eval studies (conv net and MLP, test set shuffled and
sorted by class) and the placement study run once per module.
"""

import claim_checks as cc
import numpy as np
import pytest
import torch
from claim_seeds import SEEDS

from bn_utils import forgotten_eval_study, load_digits, make_mlp, run_seeds
from bn_utils.chapters import bn_from_scratch as chapter

N_TEST = 449  # the digits' test set


@pytest.fixture(scope="module")
def conv_acc():
    """The conv net of the notebook, predicted in training mode in shuffled and class-sorted batches."""
    study = chapter.conv_study(SEEDS)
    assert study.batch_sizes[-1] == N_TEST  # the whole test set
    return study


@pytest.fixture(scope="module")
def mlp_acc():
    """The 3x100 MLP of the notebook, predicted in training mode in shuffled and class-sorted batches."""
    return chapter.mlp_study(SEEDS)


@pytest.fixture(scope="module")
def placement():
    """The notebook's placement study: BN before and after the ReLU at learning rates 0.1 and 1."""
    return chapter.placement(SEEDS)


def test_training_with_scratch_bn_follows_torch_bn():
    """Claim: our BatchNorm1d is a drop-in for torch's: in float64 the MLP's loss curves agree to
    1e-9 on every seed; in float32, where rounding differences can grow during training, the test
    accuracies agree within two test examples at every evaluation."""
    for dtype, loss_tol in [(torch.float64, 1e-9), (torch.float32, None)]:
        data = load_digits(dtype=dtype)
        curves = {
            norm: run_seeds(
                lambda norm=norm, dtype=dtype: make_mlp(64, 10, depth=3, width=100, norm=norm).to(dtype),
                data,
                SEEDS,
                lr=0.1,
                epochs=5,
                device="cpu",
            )
            for norm in ("batch", "batch_scratch")
        }
        name = str(dtype).removeprefix("torch.")
        if loss_tol is not None:
            gaps = chapter.loss_gaps(curves["batch_scratch"], curves["batch"])
            cc.every(gaps, "<", loss_tol, f"{name}: largest gap between the loss curves, ours against torch's")
        examples = chapter.accuracy_gaps(curves["batch_scratch"], curves["batch"], len(data.x_test))
        cc.every(examples, "<=", 2, f"{name}: largest gap in test accuracy, in test examples")


def test_forgetting_eval_ruins_single_image_predictions_in_a_conv_net(conv_acc):
    """Claim: predicting one image at a time in training mode costs the conv net more than 25 points of
    accuracy in median over seeds, and at least 10 on every seed (21 to 41 points over seeds 0-9)."""
    cc.every(conv_acc.eval, ">", 0.9, "conv net, eval-mode test accuracy")
    drop = chapter.points_lost(conv_acc, 1)
    cc.median(drop, ">", 0.25, "conv net, points lost predicting one image at a time")
    cc.every(drop, ">", 0.10, "conv net, points lost predicting one image at a time")


def test_train_mode_batches_of_two_cost_an_mlp_at_least_25_points(mlp_acc):
    """Claim: in training mode, an MLP predicting in batches of 2 loses at least 25 points."""
    cc.every(chapter.points_lost(mlp_acc, 2), ">", 0.25, "MLP, points lost predicting in batches of 2")


def test_a_batch_of_one_in_training_mode_is_refused_not_silently_wrong():
    """Claim: an MLP asked to predict a single example in training mode raises a clear error."""
    data = load_digits()
    with pytest.raises(ValueError, match="model.eval()"):
        forgotten_eval_study(
            lambda: make_mlp(64, 10, depth=1, width=16, norm="batch_scratch"),
            data,
            seeds=SEEDS[:1],
            batch_sizes=[1],
            lr=0.1,
            steps=5,
        )


def test_large_shuffled_batches_and_the_whole_test_set_in_any_order_are_harmless(conv_acc, mlp_acc):
    """Claim: shuffled batches of 128, and the whole test set as one batch shuffled or sorted by
    class, stay within 3 points of eval mode, for the conv net and the MLP, on every seed."""
    for name, acc in [("conv net", conv_acc), ("MLP", mlp_acc)]:
        for size, order in [(128, "shuffled"), (N_TEST, "shuffled"), (N_TEST, "sorted")]:
            key = f"{order} batches of {size}"
            cc.every(np.abs(chapter.points_lost(acc, size, order)), "<", 0.03, f"{name}, {key}: |gap to eval mode|")


def test_class_sorted_batches_of_32_ruin_train_mode_predictions(conv_acc, mlp_acc):
    """Claim: batches of 32 sorted by class cost the MLP at least 50 points and the conv net at
    least 25 on every seed, where the same batch size shuffled costs each at most 5."""
    for name, acc, floor in [("conv net", conv_acc, 0.25), ("MLP", mlp_acc, 0.50)]:
        cc.every(chapter.points_lost(acc, 32, "sorted"), ">", floor, f"{name}: points lost, sorted batches of 32")
        cc.every(np.abs(chapter.points_lost(acc, 32)), "<", 0.05, f"{name}: |gap|, shuffled batches of 32")


def test_class_sorted_batches_of_128_still_cost_points(conv_acc, mlp_acc):
    """Claim: batches of 128 sorted by class (about three classes each) still cost the MLP at least
    20 points on every seed, and the conv net more than 5 in median and at least 2 on every seed."""
    cc.every(chapter.points_lost(mlp_acc, 128, "sorted"), ">", 0.20, "MLP: points lost, sorted batches of 128")
    drop = chapter.points_lost(conv_acc, 128, "sorted")
    cc.median(drop, ">", 0.05, "conv net: points lost, sorted batches of 128")
    cc.every(drop, ">", 0.02, "conv net: points lost, sorted batches of 128")


def test_bn_after_relu_reaches_90_percent_sooner_at_lr_0_1(placement):
    """Claim: at the chapter's learning rate 0.1, the MLP with BN after the ReLU reaches 90% test
    accuracy in at most 0.8 times the median steps of BN before it."""
    speed = chapter.placement_speed(placement, 0.1)
    cc.compare(speed.ratio, "<=", 0.8, "lr 0.1: median steps to 90%, after / before", values=speed.per_seed_ratio)


def test_placement_speed_gap_is_gone_at_lr_1(placement):
    """Claim: at learning rate 1, the two placements' median steps to 90% are within one
    evaluation (7 steps) of each other."""
    speed = chapter.placement_speed(placement, 1.0)
    gap, per_seed = speed.median_gap, speed.per_seed_difference
    cc.compare(gap, "<=", 7, "lr 1: |median steps to 90%, after - before|", values=per_seed)


def test_placement_makes_no_measurable_difference_to_final_accuracy(placement):
    """Claim: at both learning rates tried (0.1 and 1, 10 epochs), the median final test accuracies of
    the two placements are within 1.5 points of each other, and the difference does not exceed the
    seeds' uncertainty: its 95% seed interval includes zero. The test set alone would resolve about
    a point (its interval's half-width is under 1 point); on seeds 5-9 at lr 1 it excluded zero (BN
    after the ReLU 0.6 points lower), on seeds 0-4 it did not, so no claim either way on it."""
    for lr in placement.lrs:
        difference = placement.final_difference(lr)
        gap = chapter.final_accuracy_gap(placement, lr)
        what = f"lr {lr:g}: final test accuracy, after - before"
        cc.compare(gap, "<=", 0.015, f"{what}, |difference of medians|", values=difference.values)
        low, high = difference.interval
        cc.compare(low, "<", 0, f"{what}, seed interval's lower end", values=difference.values)
        cc.compare(high, ">", 0, f"{what}, seed interval's upper end", values=difference.values)
        low, high = placement.test_set_interval(lr)
        cc.compare((high - low) / 2, "<", 0.01, f"{what}, test-set interval's half-width")
