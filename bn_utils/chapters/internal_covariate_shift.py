"""Chapter 2, "Internal covariate shift": what notebook 02 and tests/test_claims_covariate_shift.py both compute.

Setting (the BN paper's Figure 1, small): a 3 x 100 sigmoid MLP, weights N(0, 0.1^2) (the control: 4 /
sqrt(fan_in)), plain, with BN or with noisy BN before each sigmoid; SGD at learning rate 0.5, batch 60,
600 steps on the 8x8 digits. The notebook's runs (``shown_*``) and the claim tests' (``claim_*``)
evaluate at different intervals; the quantities take either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ..data import Dataset, load_digits
from ..experiments.covariate_shift import ShiftRun, ShiftSetting, covariate_shift_run, ioffe_mlp
from ..seeding import seed_everything
from ..statistics import MedianRatio as MedianRatio  # chapter 2 compares its networks by these
from ..statistics import median_ratio as median_ratio

NORMS = ("none", "batch", "batch_noisy")  # plain, BN, noisy BN
INITS: dict[str, dict[str, Any]] = {
    "paper": {"weight_std": 0.1},
    "sigmoid4": {"weight_std": None, "init_scale": 4.0},
}  # the control
WIDE: dict[str, Any] = {"weight_std": None, "init_scale": 4.0}  # 4 / sqrt(fan_in): the sigmoid's slope 1/4 undone
RELATIVE_STEP = 0.003  # the gradient measure at equal update size: layers below move by 0.3% of their weights
# noisy BN's loud setting (exercise 3): noise level 4, i.e. shift up to +/-4, scale between 1/5 and 5
LOUD_NOISE = ShiftSetting("batch_noisy", 4).norm_kwargs


# --------------------------------------------------------------------------------------------------
# Setup: the training runs the chapter stands on


def shown_runs(seeds: Sequence[int], data: Dataset | None = None) -> dict[str, list[ShiftRun]]:
    """The notebook's Figure 1 runs, norm -> one run per seed: test metrics every 20 steps, the
    gradient measure every 150 steps at equal relative update size (``data``: default the digits)."""
    digits = load_digits() if data is None else data
    return {
        norm: [covariate_shift_run(norm, digits, seed=s, ics_every=150, ics_relative_step=RELATIVE_STEP) for s in seeds]
        for norm in NORMS
    }


def shown_wide_runs(seeds: Sequence[int], data: Dataset | None = None) -> dict[str, list[ShiftRun]]:
    """The notebook's control, plain and BN from 4 / sqrt(fan_in), norm -> one run per seed: test
    metrics every 10 steps, layer inputs recorded only at the start and the end."""
    digits = load_digits() if data is None else data
    return {
        norm: [
            covariate_shift_run(
                norm,
                digits,
                seed=s,
                eval_every=10,
                probe_every=600,
                ics_every=150,
                ics_relative_step=RELATIVE_STEP,
                **WIDE,
            )
            for s in seeds
        ]
        for norm in ("none", "batch")
    }


def claim_runs(seeds: Sequence[int], data: Dataset | None = None) -> dict[str, list[ShiftRun]]:
    """The claim tests' Figure 1 runs, norm -> one run per seed: test metrics every 20 steps, no
    gradient measure."""
    digits = load_digits() if data is None else data
    return {norm: [covariate_shift_run(norm, digits, seed=s, ics_every=None) for s in seeds] for norm in NORMS}


def claim_control(seeds: Sequence[int], data: Dataset | None = None) -> dict[tuple[str, str], list[ShiftRun]]:
    """The claim tests' control of the initialisation, (init, norm) -> one run per seed (init: a key
    of :data:`INITS`), test metrics every 5 steps, the gradient measure every 150 steps at equal
    relative update size."""
    digits = load_digits() if data is None else data
    return {
        (init, norm): [
            covariate_shift_run(
                norm, digits, seed=s, eval_every=5, ics_every=150, ics_relative_step=RELATIVE_STEP, **options
            )
            for s in seeds
        ]
        for init, options in INITS.items()
        for norm in ("none", "batch")
    }


def loud_runs(seeds: Sequence[int], data: Dataset | None = None) -> list[ShiftRun]:
    """Noisy BN with loud noise (shifts up to +-4, scales between 1/5 and 5), one run per seed."""
    digits = load_digits() if data is None else data
    return [covariate_shift_run("batch_noisy", digits, seed=s, ics_every=None, norm_kwargs=LOUD_NOISE) for s in seeds]


def initial_network(norm: str, seed: int, **options: Any) -> nn.Sequential:
    """The chapter's MLP at initialisation, seeded with ``seed`` just before it is built (``options``:
    the initialisation, as :func:`~bn_utils.experiments.covariate_shift.ioffe_mlp` takes it)."""
    seed_everything(seed)
    return ioffe_mlp(norm, **options)


# --------------------------------------------------------------------------------------------------
# Claim quantities


def steps_to_accuracy(runs: Sequence[ShiftRun], accuracy: float = 0.9) -> np.ndarray:
    """Per seed, the first evaluated step at which test accuracy reached ``accuracy`` (inf: never)."""
    return np.array([np.inf if (s := r.history.steps_to(accuracy)) is None else s for r in runs], dtype=float)


def steps_to_loss(runs: Sequence[ShiftRun], loss: float = 0.3) -> np.ndarray:
    """Per seed, the first evaluated step at which test loss fell to ``loss`` (inf: never)."""
    return np.array(
        [np.inf if (s := r.history.steps_to(loss, metric="test_loss")) is None else s for r in runs], dtype=float
    )


def drifts(runs: Sequence[ShiftRun], layer: int = -1) -> np.ndarray:
    """Per seed, how far a hidden layer's sigmoid inputs travel over the run (:meth:`ShiftRun.drift`)."""
    return np.array([r.drift(layer) for r in runs])


def jitters(runs: Sequence[ShiftRun], layer: int = -1) -> np.ndarray:
    """Per seed, how much a hidden layer's sigmoid inputs move step to step (:meth:`ShiftRun.jitter`)."""
    return np.array([r.jitter(layer) for r in runs])


def accuracy_at(runs: Sequence[ShiftRun], step: int) -> np.ndarray:
    """Per seed, the test accuracy evaluated at ``step`` (the plateau: still near chance at 100?)."""
    return np.array([r.history.test_acc[r.history.eval_steps.index(step)] for r in runs])


def spread_at(runs: Sequence[ShiftRun], step: int, layer: int = -1) -> np.ndarray:
    """Per seed, a hidden layer's spread (:meth:`ShiftRun.spread`) on the training batch at the probe
    of ``step`` (1-based: step 1 saw the initial weights): a vanishing signal is a small spread."""
    values = []
    for run in runs:
        steps, spread = run.spread(layer)
        values.append(spread[list(steps).index(step)])
    return np.array(values)


def gradient_shift(runs: Sequence[ShiftRun]) -> np.ndarray:
    """(seeds, layers: hidden 2, hidden 3, output): 1 - cos(G, G'), the gradient-based measure of
    internal covariate shift, averaged over a run's checkpoints."""
    return np.array([1 - np.mean(r.ics_cosine, axis=0) for r in runs])
