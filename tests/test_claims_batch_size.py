"""Headline claims of the chapter "Batch size", over 5 seeds, with margins.

Setting (``bn_utils.experiments.batch_size.SETUP``): a conv net of two 3x3 conv blocks (16 and 32
channels) on the 8x8 digits, the first 512 training images, 10 epochs at every batch size, SGD with
momentum 0.9 at learning rate 0.1 x batch size / 32; BN, batch renorm, group norm (4 groups), layer
norm or no norm; eval-mode accuracy on the 449 test images (for BN also with its running statistics
recomputed over the training images after training). The fully connected contrast: a 2 x 64
MLP on the flat digits with the same schedule. Class-sorted batches: consecutive examples of the
class-sorted training set. Differences are taken seed by seed (same seed: same initial weights
where the architectures allow, same batch order).
"""

import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils import load_digits
from bn_utils.experiments import batch_size as bs

POINT = 0.01  # one percentage point of accuracy


@pytest.fixture(scope="module")
def images():
    return load_digits(images=True)


@pytest.fixture(scope="module")
def sweep(images):
    return bs.batch_size_sweep(images, seeds=SEEDS)


@pytest.fixture(scope="module")
def sorted_sweep(images):
    return bs.batch_size_sweep(images, seeds=SEEDS, batch_sizes=(8,), order="sorted")


@pytest.fixture(scope="module")
def fully_connected(digits):
    return bs.fully_connected_sweep(digits, seeds=SEEDS, norms=("batch", "layer", "none"), batch_sizes=(2, 4, 32))


def points(values) -> str:
    return np.array2string(100 * np.asarray(values), precision=1)


def test_conv_bn_at_batch_2_is_not_3_points_below_batch_32(sweep):
    """With the running statistics of training (mean over seeds) and with running statistics
    recomputed over the training images (the 95% interval of the mean), BN's eval-mode accuracy at
    batch 2 is not 3 points below that at batch 32."""
    change = sweep.values("batch", 2) - sweep.values("batch", 32)
    assert change.mean() > -3 * POINT, (
        f"BN conv net, eval-mode accuracy at batch 2 minus at batch 32, per seed (points): {points(change)}"
    )
    recomputed = sweep.change("batch", 32, 2, "recomputed_acc")
    assert recomputed.interval[0] > -3 * POINT, (
        f"BN conv net with running statistics recomputed over the training images, batch 2 minus batch 32, "
        f"per seed (points): {points(recomputed.values)}, 95% interval {points(recomputed.interval)}"
    )


def test_recomputing_running_statistics_raises_bn_at_batch_32(sweep):
    gain = sweep.values("batch", 32, "recomputed_acc") - sweep.values("batch", 32)
    assert gain.mean() > 1 * POINT, (
        f"BN at batch 32, recomputed minus as-trained running statistics, per seed (points): {points(gain)}"
    )


def test_no_normalization_changes_by_5_points_from_batch_2_to_32(sweep):
    for norm in ("batch", "batch_renorm", "group", "layer"):
        change = sweep.values(norm, 2) - sweep.values(norm, 32)
        assert abs(change.mean()) < 5 * POINT, (
            f"{norm}: accuracy at batch 2 minus at batch 32, per seed (points): {points(change)}"
        )


def test_five_seeds_cannot_exclude_a_5_point_change_for_group_norm(sweep):
    interval = sweep.change("group", 32, 2).interval
    assert interval[1] > 5 * POINT, f"group norm, batch 2 minus batch 32, 95% interval (points): {points(interval)}"


def test_without_normalization_the_conv_net_gains_5_points_at_batch_2(sweep):
    change = sweep.values("none", 2) - sweep.values("none", 32)
    assert change.mean() > 5 * POINT, f"no normalization, batch 2 minus batch 32, per seed (points): {points(change)}"


def test_conv_batch_mean_gap_is_that_of_2_x_64_values(sweep):
    """The first norm's RMS of d = (mu_B - mu) / sigma is close to 1 / sqrt(B * H * W): the
    statistics of a channel average B * 64 values."""
    for size in (2, 32):
        measured = sweep.values("batch", size, "stat_gap_mean").mean()
        ratio = measured / (1 / np.sqrt(size * 64))
        assert 0.7 < ratio < 1.5, f"batch {size}: RMS of d {measured:.4f}, {ratio:.2f} x 1/sqrt({size} x 64)"
    shrink = sweep.values("batch", 2, "stat_gap_mean").mean() / sweep.values("batch", 32, "stat_gap_mean").mean()
    assert 2.5 < shrink < 5, f"RMS of d at batch 2 / at batch 32: {shrink:.2f} (1/sqrt(B) gives 4)"


def test_conv_batch_std_gap_is_over_twice_that_of_independent_values(sweep):
    """The first norm's RMS of log r = log(sigma_B / sigma) at batch 2 is more than twice
    1 / sqrt(2 m), what m = 2 x 64 independent Gaussian values would give."""
    measured = sweep.values("batch", 2, "stat_gap_log_std").mean()
    ratio = measured * np.sqrt(2 * 2 * 64)
    assert ratio > 2, f"batch 2: RMS of log r {measured:.4f}, {ratio:.2f} x 1/sqrt(2 x 128)"


def test_conv_bn_predicts_worse_in_train_mode_at_batch_2(sweep):
    gap = sweep.values("batch", 2, "mode_gap")
    assert gap.mean() < -0.5 * POINT, f"train-mode minus eval-mode test accuracy at batch 2 (points): {points(gap)}"


def test_fully_connected_bn_collapses_at_batch_2(fully_connected):
    drop = fully_connected.values("batch", 32) - fully_connected.values("batch", 2)
    assert drop.mean() > 20 * POINT and drop.min() > 10 * POINT, (
        f"MLP with BN, accuracy at batch 32 minus at batch 2, per seed (points): {points(drop)}"
    )


def test_fully_connected_bn_does_not_fit_its_training_set_at_batch_2(fully_connected):
    train = fully_connected.values("batch", 2, "train_acc")
    assert train.mean() < 0.75, f"MLP with BN at batch 2, eval-mode accuracy on its training images: {points(train)}"


def test_fully_connected_bn_at_batch_2_is_below_no_normalization(fully_connected):
    lead = fully_connected.values("none", 2) - fully_connected.values("batch", 2)
    assert lead.mean() > 5 * POINT, f"MLP at batch 2, no norm minus BN, per seed (points): {points(lead)}"


def test_fully_connected_layer_norm_holds_at_batch_2(fully_connected):
    change = fully_connected.values("layer", 2) - fully_connected.values("layer", 32)
    assert abs(change.mean()) < 2 * POINT, f"MLP with layer norm, batch 2 minus batch 32 (points): {points(change)}"
    lead = fully_connected.values("layer", 2) - fully_connected.values("batch", 2)
    assert lead.min() > 10 * POINT, f"layer norm minus BN at batch 2, per seed (points): {points(lead)}"


def test_fully_connected_bn_is_back_at_batch_4(fully_connected):
    drop = fully_connected.values("batch", 32) - fully_connected.values("batch", 4)
    assert drop.mean() < 5 * POINT, f"MLP with BN, batch 32 minus batch 4 (points): {points(drop)}"


def test_class_sorted_batches_cost_bn_more_than_group_norm(sweep, sorted_sweep):
    bn_drop = sweep.values("batch", 8) - sorted_sweep.values("batch", 8)
    gn_drop = sweep.values("group", 8) - sorted_sweep.values("group", 8)
    assert bn_drop.mean() > 20 * POINT, f"BN, shuffled minus class-sorted batches of 8 (points): {points(bn_drop)}"
    assert bn_drop.mean() > gn_drop.mean() + 5 * POINT, (
        f"shuffled minus class-sorted batches of 8 (points), BN {points(bn_drop)}, group norm {points(gn_drop)}"
    )
    lead = sorted_sweep.values("group", 8) - sorted_sweep.values("batch", 8)
    assert lead.mean() > 8 * POINT and lead.min() > 0, (
        f"class-sorted batches of 8, group norm minus BN per seed (points): {points(lead)}; "
        f"drops from shuffled: BN {points(bn_drop)}, group norm {points(gn_drop)}"
    )


def test_group_norm_loses_least_on_sorted_batches(sweep, sorted_sweep):
    drops = {n: (sweep.values(n, 8) - sorted_sweep.values(n, 8)).mean() for n in sorted_sweep.norms}
    others = {n: d for n, d in drops.items() if n != "group"}
    assert drops["group"] < min(others.values()) - 2 * POINT, (
        "shuffled minus class-sorted batches of 8, mean per norm (points): "
        + ", ".join(f"{n} {100 * d:.1f}" for n, d in drops.items())
    )


def test_recomputed_running_statistics_leave_sorted_bn_far_below(sweep, sorted_sweep):
    """After class-sorted training, recomputing BN's running statistics over all training images
    wins back less than 10 of the points lost, and leaves BN at least 8 points below group norm."""
    sorted_bn = sorted_sweep.values("batch", 8)
    recomputed = sorted_sweep.values("batch", 8, "recomputed_acc")
    gain = recomputed - sorted_bn
    lead = sorted_sweep.values("group", 8) - recomputed
    message = (
        f"class-sorted batches of 8, BN as trained {points(sorted_bn)}, recomputed {points(recomputed)}, "
        f"group norm {points(sorted_sweep.values('group', 8))}"
    )
    assert gain.mean() < 10 * POINT, message
    assert lead.mean() > 8 * POINT, message


def test_batch_renorm_is_8_points_above_bn_on_sorted_batches(sorted_sweep):
    gain = sorted_sweep.values("batch_renorm", 8) - sorted_sweep.values("batch", 8)
    assert gain.mean() > 8 * POINT and gain.min() > 0, (
        f"class-sorted batches of 8, batch renorm minus BN per seed (points): {points(gain)}"
    )


def test_every_norm_is_3_points_worse_at_batch_128_than_at_32(sweep):
    for norm in sweep.norms:
        loss = sweep.values(norm, 32) - sweep.values(norm, 128)
        assert loss.mean() > 3 * POINT, (
            f"{norm}: batch 32 minus batch 128 (40 steps), per seed (points): {points(loss)}"
        )


def test_learning_rate_was_chosen_on_a_validation_split(images):
    """The setting's learning rate (0.1 at batch 32) is within a point of the best of 0.05, 0.1 and
    0.2 for BN at batch 32, on a validation split held out of the training data (not the test set)."""
    view = images.with_validation(0.2).validation_view()
    accuracy = {
        lr: bs.batch_size_sweep(view, seeds=SEEDS, norms=("batch",), batch_sizes=(32,), base_lr=lr)
        .values("batch", 32)
        .mean()
        for lr in (0.05, 0.1, 0.2)
    }
    best = max(accuracy.values())
    assert accuracy[bs.SETUP["base_lr"]] >= best - POINT, f"BN validation accuracy per base learning rate: {accuracy}"
