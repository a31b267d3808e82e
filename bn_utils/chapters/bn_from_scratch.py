"""Chapter 1, "BN from scratch": what notebook 01 and tests/test_claims_bn_from_scratch.py both compute.

Setting: the 8x8 digits (1,348 training and 449 test images, the fixed split of ``load_digits``); a 3 x
100 ReLU MLP and the small conv net with our BN (before each ReLU unless placed after), SGD at learning
rate 0.1 (the placement study also at 1.0), 10 epochs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from ..data import Dataset, load_digits
from ..experiments.inference import ModeAccuracy, forgotten_eval_study
from ..experiments.placement import PlacementStudy, placement_study
from ..history import History
from ..models import make_convnet, make_mlp

ORDERS = ("shuffled", "sorted")  # the test set in its own (random) order, then sorted by class


# --------------------------------------------------------------------------------------------------
# Setup: the training runs the chapter stands on


def _forgotten_eval(build: Callable[[], nn.Module], data: Dataset, seeds: Sequence[int], smallest: int) -> ModeAccuracy:
    """:func:`forgotten_eval_study` as both studies run it: 10 epochs at lr 0.1, predicted in batches of
    ``smallest``, 8, 32, 128 and the whole test set, shuffled and sorted by class."""
    return forgotten_eval_study(
        build,  # a functools.partial, not a lambda: bn_utils.cache can name it, so the study is remembered
        data,
        seeds=seeds,
        batch_sizes=[smallest, 8, 32, 128, len(data.x_test)],
        orders=list(ORDERS),
        lr=0.1,
        epochs=10,
    )


def conv_study(seeds: Sequence[int], data: Dataset | None = None) -> ModeAccuracy:
    """The conv net with our BatchNorm2d, trained 10 epochs at lr 0.1 per seed, then predicted in eval
    mode and in training mode in batches of 1, 8, 32, 128 and the whole test set, shuffled and sorted
    by class (``data``: images, default the digits as 8x8 images)."""
    images = load_digits(images=True) if data is None else data
    return _forgotten_eval(functools.partial(make_convnet, norm="batch_scratch"), images, seeds, smallest=1)


def mlp_study(seeds: Sequence[int], data: Dataset | None = None) -> ModeAccuracy:
    """The 3 x 100 MLP with our BatchNorm1d, as :func:`conv_study` but in batches of 2 (a batch of one
    is refused in training mode), 8, 32, 128 and the whole test set (``data``: default the digits)."""
    digits = load_digits() if data is None else data
    build = functools.partial(make_mlp, 64, 10, depth=3, width=100, norm="batch_scratch")
    return _forgotten_eval(build, digits, seeds, smallest=2)


def placement(seeds: Sequence[int], data: Dataset | None = None) -> PlacementStudy:
    """The MLP with BN before and after the ReLU at learning rates 0.1 and 1, 10 epochs, evaluated every
    7 steps; speed is the steps to 90% test accuracy (``data``: default the digits)."""
    digits = load_digits() if data is None else data
    return placement_study(digits, lrs=(0.1, 1.0), seeds=seeds, epochs=10, eval_every=7, target=0.9)


# --------------------------------------------------------------------------------------------------
# Claim quantities: our BN against torch's


def accuracy_gaps(ours: Sequence[History], reference: Sequence[History], n_test: int) -> np.ndarray:
    """Per seed, the largest gap in test accuracy between our BN's run and torch's (same seed) over
    every evaluation, in test examples (of ``n_test``): a drop-in trains the same network."""
    pairs = _paired(ours, reference)
    return np.array([np.max(np.abs(np.array(a.test_acc) - np.array(b.test_acc))) * n_test for a, b in pairs])


def loss_gaps(ours: Sequence[History], reference: Sequence[History]) -> np.ndarray:
    """Per seed, the largest gap between our BN's training-loss curve and torch's (same seed): in
    float64 a drop-in agrees to rounding."""
    return np.array([np.max(np.abs(np.array(a.loss) - np.array(b.loss))) for a, b in _paired(ours, reference)])


def _paired(ours: Sequence[History], reference: Sequence[History]) -> list[tuple[History, History]]:
    if len(ours) != len(reference):
        raise ValueError(f"expected one run per seed on each side, got {len(ours)} and {len(reference)}")
    return list(zip(ours, reference, strict=True))


# --------------------------------------------------------------------------------------------------
# Claim quantities: forgetting model.eval()


def points_lost(study: ModeAccuracy, batch_size: int, order: str = "shuffled") -> np.ndarray:
    """Per seed, eval-mode test accuracy minus training-mode accuracy with the test set in ``order``
    predicted in batches of ``batch_size`` (a fraction; negative: training mode did better): what
    forgetting ``model.eval()`` costs."""
    return study.eval - study.train_mode(batch_size, order)


# --------------------------------------------------------------------------------------------------
# Claim quantities: BN before or after the ReLU


@dataclass(frozen=True)
class PlacementSpeed:
    """Steps to the study's target (90%) test accuracy at one learning rate, per seed and in median,
    for BN before and after the ReLU (inf: never reached)."""

    lr: float
    before: np.ndarray
    after: np.ndarray
    median_before: float
    median_after: float

    @property
    def ratio(self) -> float:
        """Median steps after / before (below 1: BN after the ReLU gets there sooner)."""
        return self.median_after / self.median_before

    @property
    def per_seed_ratio(self) -> np.ndarray:
        """Steps after / before, seed by seed (same seed: same batch order)."""
        return self.after / self.before

    @property
    def per_seed_difference(self) -> np.ndarray:
        """Steps after - before, seed by seed."""
        return self.after - self.before

    @property
    def median_gap(self) -> float:
        """|median steps after - median steps before|."""
        return abs(self.median_after - self.median_before)


def placement_speed(study: PlacementStudy, lr: float) -> PlacementSpeed:
    """:class:`PlacementSpeed` at learning rate ``lr``: does the placement change how fast BN trains?"""
    index = study.axis("lr").index(lr)
    return PlacementSpeed(
        lr=lr,
        before=study.steps_to_target("before")[index],
        after=study.steps_to_target("after")[index],
        median_before=study.median_steps("before", lr),
        median_after=study.median_steps("after", lr),
    )


def final_accuracy_gap(study: PlacementStudy, lr: float) -> float:
    """|median final test accuracy after the ReLU - before it| at learning rate ``lr`` (a fraction):
    does the placement change where training ends?"""
    return abs(study.median_final("after", lr) - study.median_final("before", lr))
