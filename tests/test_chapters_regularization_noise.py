"""bn_utils.chapters.regularization_noise: the claim quantities of chapter 7, on hand-built results
whose every number is known (a swapped pair, a wrong metric or a wrong sign changes an assertion)."""

import numpy as np
import pytest

from bn_utils.chapters import regularization_noise as chapter
from bn_utils.chapters.regularization_noise import FULL, GHOST, PLAIN
from bn_utils.experiments.regularization import RegularizationResult
from bn_utils.history import History

pytestmark = pytest.mark.unit

SEEDS = (0, 1, 2)
N_TEST = 20  # test examples per run in the hand-built per-example correctness


def _result(final: dict[str, tuple[list[float], list[float]]], correct_rate: dict[str, float]) -> RegularizationResult:
    """label -> (per-seed final train accuracy, per-seed final test accuracy); per-example correctness:
    every test example right (rate 1) or wrong (rate 0) in every seed, so that every bootstrap resample
    of a contrast gives the same number."""
    histories = {
        label: [
            History(train_acc=[0.0, train], test_acc=[0.0, test], config={"seed": seed})
            for seed, train, test in zip(SEEDS, trains, tests, strict=True)
        ]
        for label, (trains, tests) in final.items()
    }
    correct = {label: np.full((len(SEEDS), N_TEST), bool(rate)) for label, rate in correct_rate.items()}
    return RegularizationResult(histories=histories, correct=correct)


@pytest.fixture
def study():
    return _result(
        {
            FULL: ([1.00, 1.00, 1.00], [0.96, 0.95, 0.97]),
            GHOST: ([0.99, 0.995, 0.99], [0.97, 0.95, 0.96]),
            "layer_norm": ([1.00, 1.00, 1.00], [0.94, 0.95, 0.96]),
            PLAIN: ([1.00, 1.00, 1.00], [0.95, 0.96, 0.95]),
        },
        {FULL: 0.0, GHOST: 1.0, "layer_norm": 0.0, PLAIN: 0.0},
    )


def test_noise_ratio_is_small_batch_over_large_batch_and_names_a_missing_size():
    noise = {8: 0.8, 32: 0.4, 128: 0.2}
    assert chapter.noise_ratio(noise) == pytest.approx(4.0)
    assert chapter.noise_ratio(noise, 8, 32) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no batch 64"):
        chapter.noise_ratio(noise, 8, 64)


def test_ghost_versus_whole_batch_splits_the_gap_into_training_given_up_and_test_gained(study):
    versus = chapter.ghost_versus_whole_batch(study)
    np.testing.assert_allclose(versus.train_drop.values, [0.01, 0.005, 0.01])  # whole minus ghost, training
    np.testing.assert_allclose(versus.edge.values, [0.01, 0.0, -0.01])  # ghost minus whole, test
    np.testing.assert_allclose(versus.gap_drop.values, np.add(versus.train_drop.values, versus.edge.values))
    assert versus.edge_test_set == pytest.approx((1.0, 1.0))  # ghost right where the whole batch is wrong


def test_effects_of_normalization_leave_out_no_norm_and_take_the_largest_absolute_mean(study):
    effects = chapter.effects_of_normalization(study)
    assert [effect.name for effect in effects] == [FULL, GHOST, "layer_norm"]
    assert [effect.label for effect in effects] == [FULL, GHOST, "layer_norm"]  # no labels given: the names
    means = {effect.name: effect.difference.mean for effect in effects}
    assert means[FULL] == pytest.approx(0.02 / 3) and means["layer_norm"] == pytest.approx(-0.01 / 3)
    below = _result(
        {"a": ([1, 1, 1], [0.90, 0.90, 0.90]), "b": ([1, 1, 1], [0.96, 0.96, 0.96]), PLAIN: ([1, 1, 1], [0.95] * 3)},
        {},
    )
    assert chapter.largest_effect(chapter.effects_of_normalization(below)) == pytest.approx(0.05)  # |-5| over +1
    with pytest.raises(ValueError, match="at least one"):
        chapter.largest_effect(())


@pytest.fixture
def small():
    final = {
        "plain": ([1, 1, 1], [0.80, 0.82, 0.81]),
        "bn": ([1, 1, 1], [0.81, 0.82, 0.83]),
        "plain_dropout": ([1, 1, 1], [0.84, 0.85, 0.83]),
        "bn_dropout": ([1, 1, 1], [0.82, 0.84, 0.84]),
        "plain_l2": ([1, 1, 1], [0.85, 0.86, 0.86]),
        "bn_l2": ([1, 1, 1], [0.84, 0.85, 0.86]),
    }
    rates = {"plain": 0, "bn": 1, "plain_dropout": 1, "bn_dropout": 0, "plain_l2": 0, "bn_l2": 0}
    return _result(final, rates)


def test_bn_alone_compares_gaps_as_bn_over_plain_and_accuracy_as_bn_minus_plain(small):
    alone = chapter.bn_alone(small)
    assert alone.plain_gap == pytest.approx(1 - 0.81) and alone.bn_gap == pytest.approx(1 - 0.82)
    assert alone.gap_ratio == pytest.approx(0.18 / 0.19)
    np.testing.assert_allclose(alone.difference.values, [0.01, 0.0, 0.02])
    assert alone.test_set == pytest.approx((1.0, 1.0))


def test_regularizer_gains_are_per_network_and_their_difference_is_plain_minus_bn(small):
    dropout = chapter.regularizer_gains(small, "dropout")
    np.testing.assert_allclose(dropout.plain.values, [0.04, 0.03, 0.02])
    np.testing.assert_allclose(dropout.bn.values, [0.01, 0.02, 0.01])
    np.testing.assert_allclose(dropout.plain_minus_bn.values, [0.03, 0.01, 0.01])
    assert dropout.bn_test_set == pytest.approx((-1.0, -1.0))  # BN + dropout all wrong, BN all right
    assert dropout.plain_minus_bn_test_set == pytest.approx((2.0, 2.0))  # (1 - 0) - (0 - 1)
    assert dropout.label == "dropout"
    l2 = chapter.regularizer_gains(small, "l2")
    assert l2.plain_minus_bn_test_set == pytest.approx((1.0, 1.0))  # (0 - 0) - (0 - 1)
    assert l2.label == "L2"
    with pytest.raises(ValueError, match="dropout, l2"):
        chapter.regularizer_gains(small, "weight decay")
