"""Statistics shared by the experiments: spreads over seeds and uncertainty from a finite test set.

Two sources of uncertainty sit behind every accuracy the course reports. Seeds: another
initialisation and batch order give another network (:class:`Estimate`, a Student-t interval over
seeds). The test set: 449 test digits make one image 0.22 points, so two networks that differ by a
point may differ by a handful of images (:func:`binomial_interval` for one accuracy,
:func:`accuracy_interval` and :func:`accuracy_difference_interval` resampling the test examples). A
verdict that compares accuracies within a couple of points says whether the difference exceeds both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Estimate",
    "MedianRange",
    "binomial_interval",
    "accuracy_interval",
    "accuracy_difference_interval",
    "AccuracyComparison",
    "compare_accuracies",
    "MedianRatio",
    "median_ratio",
]


@dataclass(frozen=True)
class Estimate:
    """A quantity measured once per seed (e.g. a final test accuracy, or a paired difference
    between two configurations): the per-seed ``values`` and their summaries. ``interval`` is
    the ``confidence`` (default 95%) Student-t interval of the mean over seeds."""

    values: tuple[float, ...]
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if len(self.values) < 2:
            raise ValueError(f"an Estimate needs at least 2 seeds, got {len(self.values)}")
        if not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"an Estimate needs finite values, got {self.values}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @property
    def n(self) -> int:
        """The number of seeds."""
        return len(self.values)

    @property
    def mean(self) -> float:
        """The mean over seeds."""
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """The sample standard deviation over seeds (n - 1 in the denominator)."""
        return float(np.std(self.values, ddof=1))

    @property
    def min(self) -> float:
        """The smallest seed's value."""
        return float(np.min(self.values))

    @property
    def max(self) -> float:
        """The largest seed's value."""
        return float(np.max(self.values))

    @property
    def interval(self) -> tuple[float, float]:
        """(low, high): the Student-t confidence interval of the mean, mean +- t * std / sqrt(n)."""
        from scipy import stats

        half = stats.t.ppf(0.5 + self.confidence / 2, self.n - 1) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half

    def format(self, *, scale: float = 100, digits: int = 1) -> str:
        """'mean ± std', times ``scale`` (default: accuracies as percentages or points)."""
        return f"{scale * self.mean:.{digits}f} ± {scale * self.std:.{digits}f}"

    def format_interval(self, *, scale: float = 100, digits: int = 1, unit: str = "") -> str:
        """'mean{unit} (95% interval low to high)', scaled as :meth:`format`, e.g. with
        ``unit=" points"``: '1.0 points (95% interval 0.1 to 1.9)'."""
        low, high = self.interval
        return (
            f"{scale * self.mean:.{digits}f}{unit} ({100 * self.confidence:g}% interval "
            f"{scale * low:.{digits}f} to {scale * high:.{digits}f})"
        )


@dataclass(frozen=True)
class MedianRange:
    """The median, smallest and largest of a quantity measured once per seed. Unlike
    :class:`Estimate` it takes one seed, and infinite values (a run that never reaches a target
    takes infinitely many steps: it still has a median when fewer than half the seeds miss)."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: np.ndarray) -> MedianRange:
        """The median, min and max of ``values``, a non-empty 1-D array with one value per seed."""
        values = np.asarray(values)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"a MedianRange needs a non-empty 1-D array, one value per seed, got {values!r}")
        return cls(float(np.median(values)), float(values.min()), float(values.max()))


def binomial_interval(accuracy: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): the Wilson score interval of an accuracy measured on ``n`` test examples, the
    uncertainty that a finite test set alone puts on it (one seed, no resampling)."""
    from scipy import stats

    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy}")
    if n < 1:
        raise ValueError(f"n must be the number of test examples (at least 1), got {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _correct_matrix(correct: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = correct.detach().cpu().numpy() if isinstance(correct, torch.Tensor) else np.asarray(correct)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(
            f"{name} must hold whether each test example was classified correctly, shaped (examples,) or "
            f"(seeds, examples) with at least 2 examples, got shape {tuple(array.shape)}"
        )
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be booleans (or 0/1): one entry per seed and test example")
    return array.astype(np.float64)


def _bootstrap(statistic_rows: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of a per-example statistic, resampling examples."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, got {resamples}")
    per_example = statistic_rows.mean(axis=0)  # the seed mean, example by example: seeds stay paired
    n = per_example.shape[0]
    rng = np.random.default_rng(seed)  # its own generator: the global random state is left alone
    draws = per_example[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.quantile(draws, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return float(low), float(high)


def accuracy_interval(
    correct: np.ndarray | torch.Tensor, *, confidence: float = 0.95, resamples: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """(low, high): a bootstrap interval, over the test examples, of the accuracy averaged over seeds.

    ``correct`` says whether each test example was classified correctly, shaped (examples,) for one
    network or (seeds, examples) for several; every resample draws the same examples for every seed.
    This is the test set's share of the uncertainty; the spread over seeds is :class:`Estimate`'s.
    """
    return _bootstrap(_correct_matrix(correct, "correct"), confidence, resamples, seed)


def accuracy_difference_interval(
    correct_a: np.ndarray | torch.Tensor,
    correct_b: np.ndarray | torch.Tensor,
    *,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> tuple[float, float]:
    """(low, high): a paired bootstrap interval of accuracy(a) - accuracy(b) on the same test examples.

    Both arguments are shaped (examples,) or (seeds, examples) over the same test examples in the same
    order; each resample draws one set of examples for both, so what the two networks get right
    together does not count as uncertainty. A difference whose interval excludes 0 exceeds what the
    finite test set alone could produce.
    """
    a, b = _correct_matrix(correct_a, "correct_a"), _correct_matrix(correct_b, "correct_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"correct_a and correct_b must cover the same test examples, got {a.shape[1]} and {b.shape[1]} examples"
        )
    return _bootstrap(a.mean(axis=0, keepdims=True) - b.mean(axis=0, keepdims=True), confidence, resamples, seed)


@dataclass(frozen=True)
class AccuracyComparison:
    """Accuracy of ``a`` minus accuracy of ``b``, paired seed by seed on the same test examples, with
    both sources of uncertainty: ``seeds`` (the per-seed differences, with their Student-t interval)
    and ``test_interval`` (the paired bootstrap over test examples of the seed-mean difference).
    :func:`compare_accuracies` makes one."""

    seeds: Estimate
    test_interval: tuple[float, float]

    @property
    def mean(self) -> float:
        """The mean over seeds of the paired difference."""
        return self.seeds.mean

    @property
    def seed_interval(self) -> tuple[float, float]:
        """The Student-t interval of the mean difference over seeds."""
        return self.seeds.interval

    @property
    def exceeds_both(self) -> bool:
        """Whether 0 lies outside both intervals: a difference neither the seeds nor the test set explain."""
        return all(not (low <= 0 <= high) for low, high in (self.seed_interval, self.test_interval))

    def format(self, *, scale: float = 100, digits: int = 1) -> str:
        """'mean points (seeds: low to high; test set: low to high)', in points by default."""
        (s_low, s_high), (t_low, t_high) = self.seed_interval, self.test_interval
        return (
            f"{scale * self.mean:+.{digits}f} points ({100 * self.seeds.confidence:g}% intervals, seeds: "
            f"{scale * s_low:+.{digits}f} to {scale * s_high:+.{digits}f}; test set: "
            f"{scale * t_low:+.{digits}f} to {scale * t_high:+.{digits}f})"
        )


def compare_accuracies(
    correct_a: np.ndarray | torch.Tensor,
    correct_b: np.ndarray | torch.Tensor,
    *,
    confidence: float = 0.95,
    resamples: int = 4000,
    seed: int = 0,
) -> AccuracyComparison:
    """Accuracy of ``a`` minus that of ``b`` with a seed interval and a test-set interval: both
    arguments (seeds, test examples), seed i of ``a`` paired with seed i of ``b`` (the same
    initialisation and batch order where the two allow), on the same test examples in the same order."""
    a, b = _correct_matrix(correct_a, "correct_a"), _correct_matrix(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b must have the same (seeds, examples) shape, got {a.shape} and {b.shape}"
        )
    differences = tuple(float(v) for v in a.mean(1) - b.mean(1))
    test = accuracy_difference_interval(a, b, confidence=confidence, resamples=resamples, seed=seed)
    return AccuracyComparison(Estimate(differences, confidence), test)


@dataclass(frozen=True)
class MedianRatio:
    """One setting's median over seeds / another's (``ratio``), and the same ratio seed by seed
    (seed k against seed k)."""

    ratio: float
    per_seed: np.ndarray


def median_ratio(numerator: np.ndarray, denominator: np.ndarray) -> MedianRatio:
    """:class:`MedianRatio` of two per-seed arrays: the ratio of the medians (not the median of the
    per-seed ratios), as chapter 2's verdicts compare networks."""
    numerator, denominator = np.asarray(numerator), np.asarray(denominator)
    if numerator.shape != denominator.shape:
        raise ValueError(f"expected one value per seed on each side, got shapes {numerator.shape}, {denominator.shape}")
    return MedianRatio(float(np.median(numerator)) / float(np.median(denominator)), numerator / denominator)
