"""Headline claims of the chapter "Regularization noise", over 5 seeds, with margins.

Setting: batch noise measured on a first BN layer's inputs (the digits through a random 100-unit
linear layer). Regularization: 3 x 100 ReLU MLP, SGD at learning rate 0.1, batches of 128, 40
epochs, with BN (whole batch or ghost batches of 8), layer norm or no norm. The regime where
regularization matters (``SMALL_DATA``): the same network on 256 training images, batches of 32,
40 epochs, plain or with BN, each without an explicit regularizer, with dropout 0.2 or with L2
(weight decay 0.03), the strengths chosen on a validation split (the last test here).

Differences between configurations are taken seed by seed (same seed: same batch order, and the
same initial weights where the architectures allow), with a 95% Student-t interval over the 5 seeds.
"""

import pytest
from claim_seeds import SEEDS

from bn_utils.experiments.regularization import (
    DROPOUT,
    SMALL_DATA,
    WEIGHT_DECAY,
    batch_noise,
    explicit_regularizers,
    regularization_study,
    strength_grid,
    validation_split,
)

GHOST, FULL, PLAIN = "BN, ghost batches of 8", "BN, batch of 128", "no norm"
POINT = 0.01  # one percentage point of accuracy


@pytest.fixture(scope="module")
def study(digits):
    return regularization_study(digits, seeds=SEEDS)


@pytest.fixture(scope="module")
def small(digits):
    return regularization_study(digits, seeds=SEEDS, configs=explicit_regularizers(), **SMALL_DATA)


def gain_minus_gain(small, regularizer: str):
    """Per seed, how much more the regularizer raises the plain network's test accuracy than BN's."""
    return small.contrast({f"plain + {regularizer}": 1, "plain": -1, f"BN + {regularizer}": -1, "BN": 1})


def test_batch_noise_falls_like_one_over_root_batch_size(digits):
    noise = batch_noise(digits, (8, 32, 128))
    assert noise[8] > noise[32] > noise[128] > 0
    ratio = noise[8] / noise[128]
    assert 3 <= ratio < 4, f"noise at 8 / at 128: {ratio:.2f} (close to and a little below the Gaussian 4)"


def test_ghost_batches_stop_short_of_fitting_the_training_set(study):
    ghost, full = study.final(GHOST, "train_acc"), study.final(FULL, "train_acc")
    assert 0.99 <= ghost.min() and ghost.max() < 0.998, f"training accuracy with ghost batches of 8, per seed: {ghost}"
    assert ghost.mean() <= full.mean() - 0.2 * POINT, f"training accuracy, ghost batches {ghost}, whole batch {full}"


def test_ghost_batches_leave_a_smaller_gap_than_the_whole_batch(study):
    difference = study.difference(FULL, GHOST, "gap")
    assert difference.mean >= 0.4 * POINT and difference.interval[0] > 0, (
        f"gap with the whole batch minus gap with ghost batches of 8, per seed: {difference.values} "
        f"(mean {difference.format_interval()} points)"
    )


def test_five_seeds_do_not_settle_a_test_accuracy_benefit_of_ghost_batches(study):
    """Part of the smaller gap is training accuracy given up; the test-accuracy part includes zero."""
    train_drop = study.difference(FULL, GHOST, "train_acc")
    edge = study.difference(GHOST, FULL)
    assert train_drop.mean >= 0.2 * POINT, f"training accuracy, whole batch minus ghost: {train_drop.format_interval()}"
    assert edge.interval[0] < 0 < edge.interval[1], (
        f"test accuracy, ghost batches minus whole batch, per seed {edge.values}: {edge.format_interval()} points"
    )


def test_the_test_accuracy_differences_are_about_a_point_or_less(study):
    """The measured other side: BN's noise is a mild regularizer here, not a large one."""
    edge = study.difference(GHOST, FULL)
    assert edge.mean <= 1 * POINT and edge.interval[1] <= 2 * POINT, (
        f"test accuracy, ghost batches minus whole batch: {edge.format_interval()} points"
    )
    plain = study.spread(PLAIN).mean
    differences = {label: study.spread(label).mean - plain for label in study.histories}
    assert max(abs(d) for d in differences.values()) <= 1.25 * POINT, (
        f"mean test accuracy minus no norm's: {differences}"
    )


def test_with_256_images_bn_alone_does_not_measurably_reduce_the_overfitting(small):
    fits = {label: small.fits_training_set(label) for label in ("plain", "BN")}
    assert all(fits.values()), f"every seed at 100% training accuracy: {fits}"
    plain, bn = small.spread("plain", "gap").mean, small.spread("BN", "gap").mean
    assert plain >= 5 * POINT, f"the plain network's gap {plain:.4f}: it should overfit clearly"
    assert bn >= 0.75 * plain, f"BN's gap {bn:.4f} against the plain network's {plain:.4f}"
    bn_alone = small.difference("BN", "plain")
    assert bn_alone.interval[0] < 0, f"BN minus plain, test accuracy: {bn_alone.format_interval()} points"


def test_dropout_and_l2_still_raise_bn_test_accuracy(small):
    for regularizer in ("dropout", "L2"):
        gain = small.difference(f"BN + {regularizer}", "BN")
        assert gain.mean >= 0.4 * POINT and gain.interval[0] > 0, (
            f"BN + {regularizer} minus BN, test accuracy per seed: {gain.values} ({gain.format_interval()} points)"
        )


def test_five_seeds_cannot_tell_whether_regularizers_help_bn_less(small):
    for regularizer in ("dropout", "L2"):
        difference = gain_minus_gain(small, regularizer)
        low, high = difference.interval
        assert low < 0 < high, (
            f"{regularizer}: plain network's gain minus BN's, per seed {difference.values} "
            f"({difference.format_interval()} points): the interval excludes zero"
        )


def test_a_reduction_of_two_points_is_not_supported_over_these_seeds(small):
    """Seed variation only: every seed trains on the same 256 images and tests on the same 449."""
    for regularizer in ("dropout", "L2"):
        difference = gain_minus_gain(small, regularizer)
        assert difference.interval[1] < 2 * POINT, (
            f"{regularizer}: plain network's gain minus BN's: {difference.format_interval()} points"
        )


def test_ghost_batches_of_two_fit_neither_set(digits):
    tiny = regularization_study(digits, seeds=SEEDS, configs={"two": ("batch_ghost", {"ghost_batch_size": 2})})
    train, test = tiny.final("two", "train_acc"), tiny.final("two", "test_acc")
    assert train.max() < 0.8 and test.max() < 0.8, f"ghost batches of 2, per seed: train {train}, test {test}"


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
    for network in ("plain", "BN"):
        for name, values, chosen in (("dropout", dropouts, DROPOUT), ("L2", weight_decays, WEIGHT_DECAY)):
            accuracy = {v: grid.spread(f"{network}, {name} {v:g}").mean for v in values}
            best = max(accuracy.values())
            assert accuracy[chosen] >= best - 0.5 * POINT, (
                f"{network}, {name}: mean validation accuracy per strength {accuracy}; chosen {chosen}"
            )
