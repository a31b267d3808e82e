"""Spreads over seeds (Estimate) and the test set's share of the uncertainty (binomial, bootstrap)."""

import numpy as np
import pytest
import torch

from bn_utils.statistics import (
    Estimate,
    MedianRange,
    accuracy_difference_interval,
    accuracy_interval,
    binomial_interval,
    compare_accuracies,
    median_ratio,
)


def test_estimate_summarizes_seeds_with_a_t_interval():
    estimate = Estimate((0.01, 0.02, 0.03, 0.04, 0.05))
    assert estimate.n == 5 and estimate.mean == pytest.approx(0.03) and (estimate.min, estimate.max) == (0.01, 0.05)
    assert estimate.std == pytest.approx(np.std(estimate.values, ddof=1))
    half = 2.7764451 * estimate.std / np.sqrt(5)  # Student t, 4 degrees of freedom, 97.5% quantile
    np.testing.assert_allclose(estimate.interval, (0.03 - half, 0.03 + half), rtol=1e-7)
    assert estimate.format() == "3.0 ± 1.6"
    assert estimate.format_interval(digits=2) == "3.00 (95% interval 1.04 to 4.96)"
    assert estimate.format_interval(unit=" points") == "3.0 points (95% interval 1.0 to 5.0)"
    assert Estimate((1.0, 2.0), confidence=0.5).interval == pytest.approx((1.0, 2.0))  # t(0.75, 1) = 1
    with pytest.raises(ValueError, match="at least 2 seeds"):
        Estimate((1.0,))
    with pytest.raises(ValueError, match="finite values"):
        Estimate((1.0, float("nan")))
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        Estimate((1.0, 2.0), confidence=95)


def test_binomial_interval_is_wilsons():
    low, high = binomial_interval(0.95, 449)
    # Wilson score interval, z = 1.959964: centre (p + z^2/2n) / (1 + z^2/n)
    assert (low, high) == pytest.approx((0.92575, 0.96662), abs=1e-5)
    assert binomial_interval(1.0, 449)[1] == 1.0 and binomial_interval(0.0, 449)[0] == 0.0
    assert binomial_interval(0.5, 4000)[1] - binomial_interval(0.5, 4000)[0] < binomial_interval(0.5, 449)[1] - 0.5
    with pytest.raises(ValueError, match=r"accuracy must be a fraction in \[0, 1\]"):
        binomial_interval(95.0, 449)
    with pytest.raises(ValueError, match="number of test examples"):
        binomial_interval(0.5, 0)


def test_bootstrap_interval_matches_the_binomial_one_for_a_single_network():
    correct = np.zeros(449, dtype=bool)
    correct[:427] = True  # 95.1%
    low, high = accuracy_interval(correct, resamples=20000)
    wilson = binomial_interval(427 / 449, 449)
    assert low == pytest.approx(wilson[0], abs=0.006) and high == pytest.approx(wilson[1], abs=0.006)
    assert low < 427 / 449 < high


def test_the_paired_interval_sees_shared_errors_and_seeds_stay_paired():
    rng = np.random.default_rng(0)
    a = rng.random((5, 449)) < 0.95
    same = accuracy_difference_interval(a, a.copy())
    assert same == (0.0, 0.0)  # identical predictions: no uncertainty from the test set
    b = a.copy()
    b[:, :9] = ~b[:, :9]  # b differs from a on 9 examples
    low, high = accuracy_difference_interval(a, torch.from_numpy(b))
    assert high - low < 0.05 and low <= a.mean() - b.mean() <= high
    unpaired = accuracy_interval(a)[1] - accuracy_interval(a)[0] + accuracy_interval(b)[1] - accuracy_interval(b)[0]
    assert high - low < 0.75 * unpaired, f"paired width {high - low:.4f}, unpaired {unpaired:.4f}"
    assert accuracy_difference_interval(a, b, seed=1) == accuracy_difference_interval(a, b, seed=1)


def test_the_bootstrap_leaves_the_global_random_state_alone():
    np.random.seed(3)
    expected = np.random.random()
    np.random.seed(3)
    accuracy_interval(np.ones(10, dtype=bool))
    assert np.random.random() == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((2, 3, 4)),), "shaped"),
        ((np.array([0.5, 1.0, 0.0]),), "booleans"),
        ((np.ones(1),), "at least 2 examples"),
    ],
)
def test_bad_correctness_arrays_say_what_was_expected(args, message):
    with pytest.raises(ValueError, match=message):
        accuracy_interval(*args)


def test_the_paired_interval_needs_the_same_examples():
    with pytest.raises(ValueError, match="same test examples"):
        accuracy_difference_interval(np.ones(10, dtype=bool), np.ones(11, dtype=bool))
    with pytest.raises(ValueError, match="resamples must be at least 100"):
        accuracy_interval(np.ones(10, dtype=bool), resamples=10)


def test_compare_accuracies_gives_the_seed_and_the_test_set_interval():
    rng = np.random.default_rng(0)
    a = rng.random((5, 400)) < 0.95
    b = a & (rng.random((5, 400)) < 0.9)  # b gets a tenth of a's right answers wrong: about 9.5 points
    result = compare_accuracies(a, b)
    np.testing.assert_allclose(result.seeds.values, a.mean(1) - b.mean(1))
    assert result.test_interval == accuracy_difference_interval(a, b)
    assert result.seed_interval == result.seeds.interval and result.exceeds_both
    assert result.format().startswith(f"{100 * result.mean:+.1f} points (95% intervals, seeds: ")
    same = compare_accuracies(a, a)
    assert same.mean == 0 and not same.exceeds_both
    with pytest.raises(ValueError, match="same \\(seeds, examples\\) shape"):
        compare_accuracies(a, b[:4])


def test_median_range_takes_one_seed_and_infinite_values():
    assert MedianRange.of(np.array([3.0, np.inf, 1.0])) == MedianRange(3.0, 1.0, np.inf)
    assert MedianRange.of(np.array([0.5])) == MedianRange(0.5, 0.5, 0.5)
    for bad in (np.array([]), np.ones((2, 2))):
        with pytest.raises(ValueError, match="a MedianRange needs a non-empty 1-D array, one value per seed"):
            MedianRange.of(bad)


def test_median_ratio_is_the_ratio_of_the_medians_with_per_seed_ratios():
    result = median_ratio(np.array([1.0, 2.0, 30.0]), np.array([10.0, 1.0, 4.0]))
    assert result.ratio == pytest.approx(2 / 4)  # the median of the per-seed ratios would be 2
    np.testing.assert_allclose(result.per_seed, [0.1, 2.0, 7.5])
    with pytest.raises(ValueError, match="one value per seed"):
        median_ratio(np.array([1.0, 2.0]), np.array([1.0]))


def test_median_ratio_with_a_run_that_never_reaches_the_target():
    result = median_ratio(np.array([20.0, np.inf, 40.0]), np.array([100.0, 200.0, np.inf]))
    assert result.ratio == pytest.approx(40 / 200)
    np.testing.assert_array_equal(result.per_seed, [0.2, np.inf, 0.0])
