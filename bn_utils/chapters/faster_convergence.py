"""Chapter 3, "Faster convergence": what notebook 03 and tests/test_claims_convergence.py both compute.

Setting: a 10 x 100 ReLU MLP, He init, BN (if any) before each ReLU, plain SGD, batch 64, 200 steps on
the 8x8 digits with 20% of the training digits held out for validation (split seed 0); learning rates
0.001 to 10, and at 0.1 the loss landscape probed every 20 steps along the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from ..data import Dataset, load_digits
from ..experiments.landscape import LANDSCAPE_MEASURES as LANDSCAPE_MEASURES  # notebook 03 loops over them
from ..experiments.landscape import (
    SCALED_MEASURES,
    LandscapeAtStep,
    LandscapeMeasure,
    LandscapeRun,
    StepMeasure,
    beta_per_seed,
    gradient_scaled_landscape,
    landscape_at_step,
    landscape_run,
    summarize_landscape,
)
from ..experiments.sweeps import lr_sweep
from ..history import FinalMetric, Sweep
from ..statistics import Estimate, accuracy_difference_interval

NORMS = ("none", "batch")  # the plain network, then BN
EQUAL_LR = 0.1  # the learning rate both networks share: stable for both, the plain network's best
SMALL_LR = 0.01  # a small shared learning rate, where BN's lead is gone
NEVER = 210.0  # a median that never reached the target within 200 steps counts as the next evaluation
PHASES = ((0, 100), (100, 200))  # early and late training: checkpoints in (0, 100] and (100, 200]


# --------------------------------------------------------------------------------------------------
# Setup: the training runs the chapter stands on


def split(data: Dataset | None = None) -> Dataset:
    """``data`` (default: the digits) with 20% of its training examples held out for validation, split
    seed 0: every selection of the chapter (which runs train, the best learning rate, steps to a
    target) is made on it. A data split, fixed: not a claim seed."""
    return (load_digits() if data is None else data).with_validation(fraction=0.2, seed=0)


def sweep(seeds: Sequence[int], data: Dataset | None = None) -> Sweep:
    """Both networks at the nine learning rates 0.001 to 10, 200 steps each, selected on validation
    (``data``: the benchmark before :func:`split`, default the digits)."""
    return lr_sweep(split(data), seeds=seeds, select_on="validation")


def landscapes(seeds: Sequence[int], data: Dataset | None = None) -> dict[str, LandscapeRun]:
    """Both networks trained at learning rate 0.1 and probed every 20 steps along the gradient (on a
    fixed batch of 256 training examples, step sizes 0.025 to 0.4), keyed by norm ("none", "batch")
    like the sweep's norms (``data``: the benchmark before :func:`split`, default the digits)."""
    validation_split = split(data)
    return {norm: landscape_run(norm, validation_split, seeds=seeds, lr=EQUAL_LR) for norm in NORMS}


# --------------------------------------------------------------------------------------------------
# Claim quantities: the sweep


@dataclass(frozen=True)
class PerSeedPair:
    """One quantity per seed for the plain network and for BN (seed k against seed k)."""

    plain: np.ndarray
    bn: np.ndarray

    @property
    def plain_median(self) -> float:
        """The plain network's median over seeds."""
        return float(np.median(self.plain))

    @property
    def bn_median(self) -> float:
        """BN's median over seeds."""
        return float(np.median(self.bn))

    @property
    def difference(self) -> np.ndarray:
        """BN - plain, per seed."""
        return self.bn - self.plain

    @property
    def median_difference(self) -> float:
        """BN's median - the plain network's median (not the median of the per-seed differences)."""
        return float(np.median(self.bn) - np.median(self.plain))

    @property
    def plain_over_bn(self) -> float:
        """The plain network's median / BN's (for a training loss: below 1, the plain network fits better)."""
        return self.plain_median / self.bn_median

    @property
    def bn_below(self) -> int:
        """On how many seeds BN's value is below the plain network's (for steps: BN sooner)."""
        return int(np.sum(self.bn < self.plain))

    @property
    def bn_above(self) -> int:
        """On how many seeds BN's value is above the plain network's (for steps: BN later)."""
        return int(np.sum(self.bn > self.plain))


@dataclass(frozen=True)
class StabilityLimits:
    """Each network's learning-rate limit as far as the grid can tell: the largest learning rate at
    which every seed trains (``*_stable``) and the grid's next one, at which some seed fails
    (``*_onset``, inf if every learning rate up to the end of the grid trains). The true limit lies
    between the two."""

    plain_stable: float
    plain_onset: float
    bn_stable: float
    bn_onset: float

    @property
    def ratio_low(self) -> float:
        """The smallest BN / plain ratio of the limits the grid allows: BN's stable over the plain onset."""
        return self.bn_stable / self.plain_onset

    @property
    def ratio_high(self) -> float:
        """The largest BN / plain ratio of the limits the grid allows: BN's onset over the plain stable."""
        return self.bn_onset / self.plain_stable


def stability_limits(sweep: Sweep) -> StabilityLimits:
    """:class:`StabilityLimits` of the learning-rate sweep: does BN train every seed where the plain
    network already fails, and by how much further, as far as the grid can tell?"""
    plain_stable, bn_stable = (sweep.largest_stable(norm) for norm in NORMS)
    plain_onset, bn_onset = (sweep.instability_onset(norm) for norm in NORMS)
    if plain_stable is None or bn_stable is None or plain_onset is None:
        raise ValueError(
            f"the sweep does not bound both limits: plain stable to {plain_stable}, fails from {plain_onset}; "
            f"BN stable to {bn_stable}"
        )
    return StabilityLimits(plain_stable, plain_onset, bn_stable, math.inf if bn_onset is None else bn_onset)


def steps_at_equal_lr(sweep: Sweep, target: float, lr: float = EQUAL_LR) -> PerSeedPair:
    """Steps to ``target`` validation accuracy per seed (inf: never) at the shared learning rate ``lr``:
    does BN get there sooner at the same learning rate, seed by seed?"""
    index = sweep.axis("lr").index(lr)
    plain, bn = (sweep.steps_to_target(norm, target)[index] for norm in NORMS)
    return PerSeedPair(plain, bn)


@dataclass(frozen=True)
class SpeedupSplit:
    """BN's speed-up split in two: median steps to ``target`` for the plain network at lr 0.1, BN at
    0.1 (the equal learning rate's saving) and BN at its best learning rate (the larger learning
    rate's), with the per-seed steps behind each median."""

    target: float
    plain_equal: float
    bn_equal: float
    bn_best: float
    plain_equal_per_seed: np.ndarray
    bn_equal_per_seed: np.ndarray
    bn_best_per_seed: np.ndarray

    @property
    def medians(self) -> tuple[float, float, float]:
        """(plain at 0.1, BN at 0.1, BN at its best learning rate)."""
        return self.plain_equal, self.bn_equal, self.bn_best

    @property
    def equal_lr_speedup(self) -> float:
        """How many times fewer median steps BN needs at the equal learning rate: plain at 0.1 / BN at 0.1."""
        return self.plain_equal / self.bn_equal

    @property
    def equal_lr_share(self) -> float:
        """The equal learning rate's saving / the best learning rate's, both from the plain network at
        0.1, a median that never reached the target counting as step 210 (:data:`NEVER`)."""
        plain, bn, best = (min(steps, NEVER) for steps in self.medians)
        return (plain - bn) / (plain - best)

    @property
    def best_over_plain(self) -> float:
        """BN's median steps at its best learning rate / the plain network's at 0.1 (never: step 210)."""
        plain, _, best = (min(steps, NEVER) for steps in self.medians)
        return best / plain


def speedup_split(sweep: Sweep, target: float) -> SpeedupSplit:
    """:class:`SpeedupSplit` to ``target`` validation accuracy: "BN trains faster" against "BN lets you
    use a larger learning rate"."""
    equal, best = sweep.locate(lr=EQUAL_LR) + sweep.locate(lr=sweep.best("batch"))
    return SpeedupSplit(
        target=target,
        plain_equal=sweep.median_steps_to_target("none", EQUAL_LR, target=target),
        bn_equal=sweep.median_steps_to_target("batch", EQUAL_LR, target=target),
        bn_best=sweep.median_steps_to_target("batch", target=target),
        plain_equal_per_seed=sweep.steps_to_target("none", target)[equal],
        bn_equal_per_seed=sweep.steps_to_target("batch", target)[equal],
        bn_best_per_seed=sweep.steps_to_target("batch", target)[best],
    )


@dataclass(frozen=True)
class StepsAtBest:
    """Steps to the sweep's target (95%) validation accuracy, each network at its own best learning
    rate: the medians over seeds and BN / plain seed by seed."""

    plain: float
    bn: float
    per_seed_ratio: np.ndarray

    @property
    def ratio(self) -> float:
        """BN's median steps / the plain network's."""
        return self.bn / self.plain

    @property
    def speedup(self) -> float:
        """How many times fewer steps BN needs: the plain network's median / BN's."""
        return self.plain / self.bn


def steps_at_best(sweep: Sweep) -> StepsAtBest:
    """:class:`StepsAtBest`: the headline speed-up, each network at the learning rate that suits it."""
    plain_steps, bn_steps = (sweep.steps_to_target(norm)[sweep.axis("lr").index(sweep.best(norm))] for norm in NORMS)
    return StepsAtBest(
        plain=sweep.median_steps_to_target("none"),
        bn=sweep.median_steps_to_target("batch"),
        per_seed_ratio=bn_steps / plain_steps,
    )


def best_lr_ratio(sweep: Sweep) -> float:
    """BN's best learning rate (fewest median steps to 95%, among those where every seed trains) / the
    plain network's: a power of about 3 on the half-decade grid."""
    plain, bn = sweep.best("none"), sweep.best("batch")
    if plain is None or bn is None:
        raise ValueError(f"a network trains at no learning rate of the sweep (best: plain {plain}, BN {bn})")
    return bn / plain


def final_values(sweep: Sweep, metric: FinalMetric = "test_acc", lr: float | None = None) -> PerSeedPair:
    """Per seed, the final ``metric`` (``test_acc``: validation accuracy on this sweep; ``loss``: the
    training loss over the last epoch) of both networks at learning rate ``lr``, or each at its own best
    learning rate when ``lr`` is None. NaN for a diverged run."""
    at = {norm: sweep.axis("lr").index(sweep.best(norm) if lr is None else lr) for norm in NORMS}
    plain, bn = (sweep.final(norm, metric)[at[norm]] for norm in NORMS)
    return PerSeedPair(plain, bn)


@dataclass(frozen=True)
class FinalTestGap:
    """Final test accuracy of the two configurations chosen on validation (each network at its best
    learning rate), per seed, with the two uncertainties of BN - plain: between seeds (``seeds``, a
    Student-t interval of the mean) and from the 449 test digits (``test_set_interval``, a paired
    bootstrap over the test examples)."""

    accuracy: PerSeedPair
    seeds: Estimate
    test_set_interval: tuple[float, float]


def final_test_gap(sweep: Sweep) -> FinalTestGap:
    """:class:`FinalTestGap`: the test set, read once every choice is made."""
    plain, bn = (sweep.test_accuracy(norm) for norm in NORMS)
    low, high = accuracy_difference_interval(sweep.test_correct("batch"), sweep.test_correct("none"))
    return FinalTestGap(PerSeedPair(plain, bn), Estimate(tuple(bn - plain)), (low, high))


# --------------------------------------------------------------------------------------------------
# Claim quantities: the landscape


@dataclass(frozen=True)
class MeasureRatio:
    """BN against the plain network on one landscape measure: ``ratio``, BN's median / the plain
    network's (over seeds, or over seeds and checkpoints), and the per-seed values behind it."""

    ratio: float
    plain_per_seed: np.ndarray
    bn_per_seed: np.ndarray

    @property
    def per_seed(self) -> np.ndarray:
        """BN / plain, seed by seed."""
        return self.bn_per_seed / self.plain_per_seed


def landscape_ratio(landscapes: dict[str, LandscapeRun], name: LandscapeMeasure) -> MeasureRatio:
    """:class:`MeasureRatio` of a landscape measure after step 0: ``ratio`` from the medians over seeds
    and checkpoints together (:func:`summarize_landscape`, :func:`gradient_scaled_landscape`), the
    per-seed values from :meth:`LandscapeRun.per_seed`."""
    plain_run, bn_run = (landscapes[norm] for norm in NORMS)
    summary = gradient_scaled_landscape if name in SCALED_MEASURES else summarize_landscape
    per_seed = [run.per_seed(name) for run in (plain_run, bn_run)]  # checks the name too
    return MeasureRatio(getattr(summary(bn_run), name) / getattr(summary(plain_run), name), *per_seed)


def start_ratio(landscapes: dict[str, LandscapeRun], name: StepMeasure) -> float:
    """BN's median over seeds of a landscape measure (``loss_range``, ``gradient_change``,
    ``beta_smoothness``, ``loss``, ``gradient_norm``) at step 0, before any update, over the plain
    network's (:func:`landscape_at_step`): where the two networks start."""
    measures = [f.name for f in fields(LandscapeAtStep)]
    if name not in measures:
        raise ValueError(f"unknown measure {name!r} at a step; valid names are: {', '.join(measures)}")
    plain, bn = (getattr(landscape_at_step(landscapes[norm], 0), name) for norm in NORMS)
    return bn / plain


def beta_ratio(
    landscapes: dict[str, LandscapeRun], step_size: float = EQUAL_LR, start: int = 0, stop: int | None = None
) -> MeasureRatio:
    """Effective beta-smoothness at one probed step size (before the max over step sizes): each seed's
    median over the checkpoints in (``start``, ``stop``], and ``ratio``, BN's median over seeds / the
    plain network's."""
    plain, bn = (beta_per_seed(landscapes[norm], step_size, start, stop) for norm in NORMS)
    return MeasureRatio(float(np.median(bn) / np.median(plain)), plain, bn)


@dataclass(frozen=True)
class BetaPhases:
    """:func:`beta_ratio` at one step size over early (steps 20-100) and late (120-200) training: is
    BN's median beta well below the plain network's early, and does that lead shrink late, in the
    medians over seeds (:attr:`relative_rise`) and seed by seed (:attr:`rise`)? :attr:`plain_change`
    and :attr:`bn_change` say which network's beta moved."""

    early: MeasureRatio
    late: MeasureRatio

    @property
    def rise(self) -> np.ndarray:
        """Per seed, BN / plain late over BN / plain early (above 1: BN's beta gained on the plain
        network's; the gap is narrower only if the late ratio is also nearer 1 than the early one)."""
        return self.late.per_seed / self.early.per_seed

    @property
    def relative_rise(self) -> float:
        """BN's median beta over seeds relative to the plain network's, late over early:
        ``late.ratio / early.ratio`` (above 1: BN's median beta gained on the plain network's; the
        early lead shrank, closed or reversed)."""
        return self.late.ratio / self.early.ratio

    @property
    def plain_change(self) -> float:
        """The plain network's median beta over seeds, late over early (below 1: it fell)."""
        return float(np.median(self.late.plain_per_seed) / np.median(self.early.plain_per_seed))

    @property
    def bn_change(self) -> float:
        """BN's median beta over seeds, late over early (below 1: it fell)."""
        return float(np.median(self.late.bn_per_seed) / np.median(self.early.bn_per_seed))

    @property
    def seeds_rising(self) -> int:
        """On how many seeds BN's beta relative to the plain network's rose from early to late."""
        return int(np.sum(self.late.per_seed > self.early.per_seed))


def beta_phases(landscapes: dict[str, LandscapeRun], step_size: float = EQUAL_LR) -> BetaPhases:
    """:class:`BetaPhases` at ``step_size`` (default: the training learning rate 0.1)."""
    early, late = (beta_ratio(landscapes, step_size, first, last) for first, last in PHASES)
    return BetaPhases(early, late)
