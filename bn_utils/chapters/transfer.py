"""Chapter 9, "Does it transfer?": what notebook 09 and tests/test_claims_transfer.py share.

Setting (``bn_utils.experiments.transfer``): MNIST-1D (4,000 training and 1,000 test sequences of
length 40) beside the digits; the published baselines (Adam, 0.01, batches of 100, 2,000 steps); a
grid of 10 x 100 ReLU MLPs per benchmark trained 800 steps on 80% of the training set and read at 200
and 800; chapter 8's fully connected contrast (2 x 64 MLP, BN or layer norm, batches 2 and 32).

The notebook trains the smaller setups (two baselines without the CNN, the grid's four networks at
learning rates 0.1 and 1.0, as stored with the package) to stay within its time budget; the claim tests
train the full ones. Each keeps its own setup function (``shown_*``, ``claim_*``); the claim
quantities below take either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..experiments import batch_size as bs
from ..experiments import transfer as tr

__all__ = [
    "LRS",
    "SCALES",
    "DEPTHS",
    "CLAIM_CONFIGS",
    "CHANCE",
    "shown_baselines",
    "claim_baselines",
    "shown_grid",
    "shown_digits_grid",
    "claim_grid",
    "fully_connected",
    "BaselineGap",
    "baseline_gap",
    "final_validation",
    "share_above_chance_lost",
]

LRS = (0.01, 0.1, 0.3, 1.0)  # both networks' best learning rates and the plain network's limit, on both benchmarks
SCALES = (0.1, 1.0, 10.0)
DEPTHS = (10, 20, 40)
CLAIM_CONFIGS = tuple(
    [tr.MLPConfig(norm, lr=lr) for norm in ("none", "batch") for lr in LRS]
    + [tr.MLPConfig(norm, init_scale=scale) for norm in ("none", "batch") for scale in (0.1, 10.0)]
    + [tr.MLPConfig(norm, depth=depth) for norm in ("none", "batch") for depth in (20, 40)]
    + [tr.MLPConfig("batch", depth=40, residual=True)]
)
CHANCE = 0.1  # ten classes on both benchmarks


# --- setup: what the notebook trains, and what the claim tests train ---


def shown_baselines(seeds: Sequence[int]) -> tr.BaselineResult:
    """The notebook's outside check: logistic regression and the MLP of Greydanus & Kobak."""
    return tr.baselines(seeds=seeds, names=("logistic regression", "MLP"))


def claim_baselines(seeds: Sequence[int]) -> tr.BaselineResult:
    """The claim tests' outside check: every published baseline, the CNN included."""
    return tr.baselines(seeds=seeds)


def shown_grid() -> tr.MLPGrid:
    """The notebook's MNIST-1D grid (``tr.NOTEBOOK_CONFIGS``, seeds 0-4, 800 steps), as stored with the
    package; ``tr.notebook_grid()`` trains the same runs."""
    return tr.stored_grid()


def shown_digits_grid(seeds: Sequence[int]) -> tr.MLPGrid:
    """The notebook's digits grid for the budget explorer: ``tr.NOTEBOOK_CONFIGS``, read at 200 and 800."""
    return tr.mlp_grid(
        tr.load("digits").with_validation(fraction=0.2, seed=0),
        tr.BENCHMARKS["digits"],
        tr.NOTEBOOK_CONFIGS,
        seeds=seeds,
        budgets=(200, 800),
        eval_every=20,
    )


def claim_grid(key: str, seeds: Sequence[int]) -> tr.MLPGrid:
    """The claim tests' grid of chapters 3-6 on benchmark ``key``: :data:`CLAIM_CONFIGS`, 800 steps,
    read at 200 and 800 (validation split: 20% of the training set, split with seed 0)."""
    return tr.mlp_grid(
        tr.load(key).with_validation(fraction=0.2, seed=0),
        tr.BENCHMARKS[key],
        CLAIM_CONFIGS,
        seeds=seeds,
        eval_every=20,
    )


def fully_connected(key: str, seeds: Sequence[int], epochs: int) -> bs.SweepResult:
    """Chapter 8's fully connected contrast on benchmark ``key``: BN and layer norm at batches 2 and 32,
    ``epochs`` epochs of the chapter's schedule (10 is the chapter's)."""
    return bs.fully_connected_sweep(
        tr.load(key), seeds=seeds, norms=("batch", "layer"), batch_sizes=(2, 32), epochs=epochs
    )


# --- claim quantities ---


@dataclass(frozen=True)
class BaselineGap:
    """A published baseline retrained here against its published accuracy: ``difference``, the median
    over seeds minus ``published``; ``per_seed``, each seed's test accuracy minus ``published``."""

    name: str
    published: float
    median: float
    per_seed: np.ndarray

    @property
    def difference(self) -> float:
        return self.median - self.published


def baseline_gap(baseline: tr.BaselineResult, name: str) -> BaselineGap:
    """How far our ``name`` baseline lands from its published accuracy (the outside check that our
    MNIST-1D is the published one)."""
    return BaselineGap(
        name=name,
        published=tr.PUBLISHED[name],
        median=baseline.median(name),
        per_seed=baseline.test_acc[name] - tr.PUBLISHED[name],
    )


def final_validation(grid: tr.MLPGrid, config: tr.MLPConfig, steps: int) -> np.ndarray:
    """Per seed, ``config``'s validation accuracy after ``steps`` steps; NaN where the run diverged
    (:meth:`MLPGrid.final_validation`)."""
    return grid.final_validation(config, steps)


def share_above_chance_lost(sweep: bs.SweepResult) -> np.ndarray:
    """Per seed, the share of fully connected BN's accuracy above chance at batch 32 that it loses at
    batch 2: chapter 8's collapse (20 points on the digits, where BN is 86 points above chance) in a form
    that carries over to a benchmark with a lower ceiling."""
    at_2, at_32 = sweep.values("batch", 2), sweep.values("batch", 32)
    return (at_32 - at_2) / (at_32 - CHANCE)
