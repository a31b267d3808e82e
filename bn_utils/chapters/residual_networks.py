"""Chapter 6, "Residual networks": what its notebook and its claim tests both compute.

Setting (bn_utils.experiments.residual): MLPs of 100 ReLU units per hidden block on the 8x8 digits, residual
blocks in the pre-activation order. At initialisation: one batch of 256 training digits, 80 blocks. Training:
SGD on batches of 64 for 200 steps (800 for the budget grid) at the grids' learning rates 0.01 to 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data import Dataset
from ..experiments.residual import AtInit, ChapterGrids, Grid, chapter_grids, measure_at_init
from ..statistics import AccuracyComparison, compare_accuracies

__all__ = [
    "FROZEN",
    "FROZEN_LRS",
    "BudgetGain",
    "FreezeCell",
    "FrozenVersusLive",
    "StreamGrowth",
    "at_init",
    "budget_gain",
    "divergence_steps",
    "frozen_divergence_at_lr1",
    "frozen_versus_live",
    "grids",
    "stream_growth",
]

FROZEN = ("residual_bn_frozen0", "residual_bn_frozen1", "residual_bn_frozen10")  # BN frozen at step 0, 1, 10
FROZEN_LRS = (0.03, 0.1, 0.3)  # the learning rates at which BN frozen at step 0 is compared with live BN


# --- setup: the runs the chapter stands on -----------------------------------------------------


def at_init(data: Dataset, seeds: Sequence[int]) -> AtInit:
    """Every architecture of the chapter with 80 blocks at initialisation (:func:`measure_at_init`)."""
    return measure_at_init(data, depth=80, seeds=seeds)


def grids(data: Dataset, seeds: Sequence[int]) -> ChapterGrids:
    """The chapter's three grids (learning-rate ranges, freeze steps, training budget) trained on
    ``seeds`` (:func:`chapter_grids`; the notebook reads seeds 0-4's from ``residual.stored_grids()``)."""
    return chapter_grids(data, seeds=seeds)


# --- claim quantities --------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamGrowth:
    """How the stream's variance grows at initialisation, per seed: geometrically without a norm,
    linearly with BN (each block adds one branch's variance, about 1 - 1/pi)."""

    depth: int
    none_rate: np.ndarray  # (seeds,) no norm: the stream variance's growth factor per block
    bn_growth: np.ndarray  # (seeds,) BN: stream variance after the last block / after the stem
    bn_doubling: np.ndarray  # (seeds,) BN: stream variance after the last block / after the middle one
    branch_var: np.ndarray  # (seeds, blocks) BN: each branch's variance
    sum_error: np.ndarray  # (seeds,) BN: largest |stream variance - (stem + branches so far)| / stream variance
    first_branch_share: np.ndarray  # (seeds,) BN: first branch's variance / the stream's it joins
    last_branch_ratio: np.ndarray  # (seeds,) BN: last branch's variance / the stream's it joins
    like_share: np.ndarray  # (seeds, blocks) branch/stream variance of BN's scaling without BN over residual BN's

    @property
    def last_branch_share(self) -> np.ndarray:
        """(seeds,) (depth + 1) x :attr:`last_branch_ratio`: about 1 where each branch adds the same variance
        (the stream after the last block holds the stem and depth branches)."""
        return (self.depth + 1) * self.last_branch_ratio


def stream_growth(result: AtInit) -> StreamGrowth:
    """:class:`StreamGrowth` of :func:`at_init`'s networks (needs residual_none, residual_bn, residual_bn_like)."""
    bn = result.of("residual_bn")
    var, branch = bn.stream_var, bn.branch_var
    summed = var[:, :1] + np.concatenate([np.zeros((len(var), 1)), np.cumsum(branch, 1)], 1)
    share = result.branch_ratio("residual_bn")
    return StreamGrowth(
        depth=result.depth,
        none_rate=result.growth_per_block("residual_none"),
        bn_growth=result.variance_growth("residual_bn"),
        bn_doubling=var[:, result.depth] / var[:, result.depth // 2],
        branch_var=branch,
        sum_error=(np.abs(var - summed) / var).max(1),
        first_branch_share=share[:, 0],
        last_branch_ratio=share[:, -1],
        like_share=result.branch_ratio("residual_bn_like") / share,
    )


@dataclass(frozen=True)
class FreezeCell:
    """BN frozen at step 0 against live BN at one depth and learning rate."""

    depth: int
    lr: float
    versus: AccuracyComparison  # frozen at 0 - live BN, test accuracy, with seed and test-set intervals
    frozen_trained: np.ndarray  # (seeds,) booleans: the frozen network ended at 50% or more


@dataclass(frozen=True)
class FrozenVersusLive:
    """BN frozen at step 0 (the initial network's statistics) against live BN, at depths 40 and 80 and
    learning rates 0.03, 0.1 and 0.3: close, but live BN still a little ahead."""

    cells: tuple[FreezeCell, ...]

    @property
    def means(self) -> np.ndarray:
        """(cells,) the mean over seeds of frozen at 0 - live BN."""
        return np.array([cell.versus.mean for cell in self.cells])

    @property
    def below_both(self) -> int:
        """How many cells have frozen at 0 below live BN beyond both the seed and the test-set interval."""
        return sum(int(cell.versus.exceeds_both and cell.versus.mean < 0) for cell in self.cells)


def frozen_versus_live(freeze: Grid, depths: Sequence[int] = (40, 80)) -> FrozenVersusLive:
    """:class:`FrozenVersusLive` from the freeze grid (``ChapterGrids.freeze_grid()``), depth by depth."""
    cells = []
    for depth in depths:
        for lr in FROZEN_LRS:
            versus = compare_accuracies(
                freeze.correct_at("residual_bn_frozen0", depth, lr), freeze.correct_at("residual_bn", depth, lr)
            )
            trained = freeze.trained("residual_bn_frozen0")[freeze.locate(depth=depth, lr=lr)]
            cells.append(FreezeCell(depth, lr, versus, trained))
    return FrozenVersusLive(tuple(cells))


def divergence_steps(grid: Grid, name: str, depth: int, lr: float) -> np.ndarray:
    """(seeds,) the step at which each run's loss stopped being finite (inf: never)."""
    steps = grid.diverged_at[grid.axis("name").check(name)][grid.locate(depth=depth, lr=lr)].astype(float)
    return np.where(steps >= 0, steps, np.inf)


def frozen_divergence_at_lr1(freeze: Grid, depths: Sequence[int] = (40, 80)) -> np.ndarray:
    """(depths x freeze steps x seeds,) the step of divergence (inf: never) of every run with BN frozen at
    step 0, 1 or 10 at learning rate 1.0, where live BN trains every seed."""
    return np.concatenate([divergence_steps(freeze, name, depth, 1.0) for depth in depths for name in FROZEN])


@dataclass(frozen=True)
class BudgetGain:
    """The plain BN stack at depth 40 and learning rate 0.1 given 800 steps instead of 200: slow, not stuck,
    yet still behind the residual BN network after 200 (test accuracy per seed, a diverged run at 0)."""

    plain200: np.ndarray
    plain800: np.ndarray
    residual200: np.ndarray

    @property
    def median_gain(self) -> float:
        """Median after 800 steps - median after 200 steps, plain BN stack."""
        return float(np.median(self.plain800) - np.median(self.plain200))

    @property
    def residual_margin(self) -> float:
        """Residual BN's worst seed after 200 steps - the plain BN stack's best after 800."""
        return float(self.residual200.min() - self.plain800.max())


def budget_gain(budget: Grid) -> BudgetGain:
    """:class:`BudgetGain` from the budget grid (``ChapterGrids.budget``)."""
    return BudgetGain(
        plain200=budget.scored("plain_bn", 40, 0.1, 200),
        plain800=budget.scored("plain_bn", 40, 0.1, 800),
        residual200=budget.scored("residual_bn", 40, 0.1, 200),
    )
