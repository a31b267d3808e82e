"""Headline claims of the chapter "Regularization noise", over the claim seeds, with margins.

Setting: batch noise measured on a first BN layer's inputs (the digits through a random 100-unit
linear layer). Regularization: 3 x 100 ReLU MLP, SGD at learning rate 0.1, batches of 128, 40
epochs, with BN (whole batch or ghost batches of 8), layer norm or no norm. The regime where
regularization matters (``SMALL_DATA``): the same network on 256 training images, batches of 32,
40 epochs, plain or with BN, each without an explicit regularizer, with dropout 0.2 or with L2
(weight decay 0.03), the strengths chosen on a validation split (the last test here).

Differences between configurations are taken seed by seed (same seed: same batch order, and the
same initial weights where the architectures allow), with a 95% Student-t interval over the seeds;
beside it, the test set's share (a paired bootstrap over the 449 test digits, on which one image is
0.22 points). Every seed here is a claim seed (``SEEDS``: the random first layer and batch draws of
the noise measurement, initial weights, batch order, dropout masks); the digits' split is fixed.
"""

import claim_checks as cc
import pytest
from claim_seeds import SEEDS

from bn_utils.chapters import regularization_noise as chapter
from bn_utils.chapters.regularization_noise import FULL, GHOST, GHOST_OF_TWO
from bn_utils.experiments.regularization import (
    DROPOUT,
    NETWORKS,
    SMALL_DATA,
    WEIGHT_DECAY,
    batch_noise,
    config_name,
    regularization_study,
    strength_grid,
    validation_split,
)

POINT = 0.01  # one percentage point of accuracy


@pytest.fixture(scope="module")
def study(digits):
    return chapter.study(digits, SEEDS)


@pytest.fixture(scope="module")
def small(digits):
    return chapter.small_data(digits, SEEDS)


def test_batch_noise_falls_like_one_over_root_batch_size(digits):
    noise = [batch_noise(digits, (8, 32, 128), seed=seed) for seed in SEEDS]
    cc.every([chapter.noise_ratio(n, 8, 32) for n in noise], ">", 1, "noise at batch 8 / at 32")
    cc.every([chapter.noise_ratio(n, 32, 128) for n in noise], ">", 1, "noise at batch 32 / at 128")
    ratio = [chapter.noise_ratio(n) for n in noise]
    cc.every(ratio, ">=", 3, "noise at batch 8 / at 128 (the Gaussian prediction is 4), from below")
    cc.every(ratio, "<", 4, "noise at batch 8 / at 128 (the Gaussian prediction is 4), from above")


def test_ghost_batches_stop_short_of_fitting_the_training_set(study):
    ghost, full = study.final(GHOST, "train_acc"), study.final(FULL, "train_acc")
    cc.every(ghost, ">=", 0.99, "training accuracy with ghost batches of 8, from below")
    cc.every(ghost, "<", 1.0, "training accuracy with ghost batches of 8, from above (short of fitting)")
    drop = full - ghost
    cc.compare(drop.mean(), ">=", 0.2 * POINT, "training accuracy, whole batch - ghost batches (mean)", values=drop)


def test_ghost_batches_leave_a_smaller_gap_than_the_whole_batch(study):
    """Smaller in the mean over 5 seeds, by 0.4 points or more; too little for 5 seeds to settle
    reliably: the 95% seed interval's lower end is below half a point (on seeds 5-9 it is below zero)."""
    difference = chapter.ghost_versus_whole_batch(study).gap_drop
    what = "gap with the whole batch - gap with ghost batches of 8"
    cc.compare(difference.mean, ">=", 0.4 * POINT, f"{what}, mean", values=difference.values)
    cc.compare(difference.interval[0], "<", 0.5 * POINT, f"{what}, seed interval's lower end", values=difference.values)


def test_five_seeds_do_not_settle_a_test_accuracy_benefit_of_ghost_batches(study):
    """Part of the smaller gap is training accuracy given up; the test-accuracy part includes zero."""
    versus = chapter.ghost_versus_whole_batch(study)
    train_drop = versus.train_drop
    cc.compare(
        train_drop.mean, ">=", 0.2 * POINT, "training accuracy, whole batch - ghost (mean)", values=train_drop.values
    )
    edge = versus.edge
    what = "test accuracy, ghost batches - whole batch"
    # Neither the seeds nor the 449 test digits separate it from zero: both 95% intervals reach to
    # within a quarter of a point of zero, or below (their lower ends lay between -0.5 and -0.1 points).
    cc.compare(edge.interval[0], "<", 0.25 * POINT, f"{what}, seed interval's lower end", values=edge.values)
    low, _ = versus.edge_test_set
    cc.compare(low, "<", 0.25 * POINT, f"{what}, test-set interval's lower end", values=edge.values)


def test_the_test_accuracy_differences_are_about_a_point_or_less(study):
    """The measured other side: BN's noise is a mild regularizer here, not a large one."""
    edge = chapter.ghost_versus_whole_batch(study).edge
    what = "test accuracy, ghost batches - whole batch"
    cc.compare(edge.mean, "<=", 1 * POINT, f"{what}, mean", values=edge.values)
    cc.compare(edge.interval[1], "<=", 2 * POINT, f"{what}, seed interval's upper end", values=edge.values)
    for effect in chapter.effects_of_normalization(study):
        difference = effect.difference
        what = f"mean test accuracy, {effect.label} - no norm"
        cc.compare(abs(difference.mean), "<=", 1.25 * POINT, f"|{what}|", values=difference.values)


def test_with_256_images_bn_alone_does_not_measurably_reduce_the_overfitting(small):
    for name in ("plain", "bn"):  # at the ceiling: no spread, margin 0 by nature (every seed, every path: 100%)
        what = f"{small.label(name)}, 256 images: training accuracy (fits all)"
        cc.every(small.final(name, "train_acc"), ">=", 1.0, what)
    plain, bn = small.final("plain", "gap"), small.final("bn", "gap")
    alone = chapter.bn_alone(small)
    cc.compare(
        alone.plain_gap, ">=", 5 * POINT, "the plain network's gap (mean): it should overfit clearly", values=plain
    )
    cc.compare(alone.gap_ratio, ">=", 0.75, "BN's gap / the plain network's (means)", values=bn / plain)
    bn_alone = alone.difference
    what = "test accuracy, BN - plain"
    # not measurably different: both 95% intervals reach to within a quarter of a point of zero, or below
    cc.compare(bn_alone.interval[0], "<", 0.25 * POINT, f"{what}, seed interval's lower end", values=bn_alone.values)
    low, _ = alone.test_set
    cc.compare(low, "<", 0.25 * POINT, f"{what}, test-set interval's lower end", values=bn_alone.values)


def test_dropout_and_l2_still_raise_bn_test_accuracy(small):
    """Both raise BN's mean test accuracy by 0.4 points or more. L2's gain exceeds the seeds' and the
    test set's uncertainty (both 95% intervals above zero); dropout's intervals reach to within a
    quarter of a point of zero (its seed interval's lower end was 0.1 to 0.4 points, not well clear)."""
    for regularizer in chapter.REGULARIZERS:
        floor = chapter.BN_GAIN_FLOOR[regularizer] * POINT
        gains = chapter.regularizer_gains(small, regularizer)
        gain = gains.bn
        what = f"test accuracy, BN + {gains.label} - BN"
        cc.compare(gain.mean, ">=", 0.4 * POINT, f"{what}, mean", values=gain.values)
        cc.compare(gain.interval[0], ">", floor, f"{what}, seed interval's lower end", values=gain.values)
        low, _ = gains.bn_test_set
        cc.compare(low, ">", floor, f"{what}, test-set interval's lower end", values=gain.values)


def test_five_seeds_cannot_tell_whether_regularizers_help_bn_less(small):
    for regularizer in chapter.REGULARIZERS:
        gains = chapter.regularizer_gains(small, regularizer)
        difference = gains.plain_minus_bn
        low, high = difference.interval
        what = f"{gains.label}: the plain network's gain - BN's"
        cc.compare(low, "<", 0, f"{what}, seed interval's lower end", values=difference.values)
        cc.compare(high, ">", 0, f"{what}, seed interval's upper end", values=difference.values)
        low, high = gains.plain_minus_bn_test_set
        cc.compare(low, "<", 0, f"{what}, test-set interval's lower end", values=difference.values)
        cc.compare(high, ">", 0, f"{what}, test-set interval's upper end", values=difference.values)


def test_a_reduction_of_two_points_is_not_supported_over_these_seeds(small):
    """Seed variation only: every seed trains on the same 256 images and tests on the same 449."""
    for regularizer in chapter.REGULARIZERS:
        gains = chapter.regularizer_gains(small, regularizer)
        difference = gains.plain_minus_bn
        cc.compare(
            difference.interval[1],
            "<",
            2 * POINT,
            f"{gains.label}: the plain network's gain - BN's, seed interval's upper end",
            values=difference.values,
        )


def test_ghost_batches_of_two_fit_neither_set(digits):
    tiny = chapter.ghost_batches_of_two(digits, SEEDS)
    cc.every(tiny.final(GHOST_OF_TWO, "train_acc"), "<", 0.8, "ghost batches of 2, training accuracy")
    cc.every(tiny.final(GHOST_OF_TWO, "test_acc"), "<", 0.8, "ghost batches of 2, test accuracy")


def test_strengths_were_chosen_on_a_validation_split(digits):
    """DROPOUT and WEIGHT_DECAY: within half a point of the best mean validation accuracy of the
    grid, for the plain network and for BN, trained on the 256 images of SMALL_DATA and evaluated
    on the rest of the training set (never the test set)."""
    dropouts, weight_decays = (0.1, 0.2, 0.3, 0.5), (0.003, 0.01, 0.03, 0.1)
    assert DROPOUT in dropouts and WEIGHT_DECAY in weight_decays
    grid = regularization_study(
        validation_split(digits, SMALL_DATA["train_examples"]),
        seeds=SEEDS,
        configs=strength_grid(dropouts, weight_decays),
        **SMALL_DATA,
    )
    for network in NETWORKS:
        for name, values, chosen in (("dropout", dropouts, DROPOUT), ("l2", weight_decays, WEIGHT_DECAY)):
            accuracy = {v: grid.spread(config_name(network, name, v)).mean for v in values}
            best = max(accuracy, key=accuracy.get)
            per_seed = grid.final(config_name(network, name, chosen), "test_acc") - grid.final(
                config_name(network, name, best), "test_acc"
            )
            cc.compare(
                accuracy[chosen] - accuracy[best],
                ">=",
                -0.5 * POINT,
                f"{NETWORKS[network].label}, {chapter.EXPLICIT[name]}: mean validation accuracy at the chosen "
                "strength - at the grid's best",
                values=per_seed,
            )
