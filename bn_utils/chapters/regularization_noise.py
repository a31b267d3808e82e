"""Chapter 7, "Regularization noise": what notebook 07 and tests/test_claims_regularization.py share.

Setting: batch noise measured on a first BN layer's inputs (the digits through a random 100-unit
linear layer); a 3 x 100 ReLU MLP on the digits, SGD at learning rate 0.1, batches of 128, 40 epochs
(BN over the whole batch or ghost batches, layer norm, no norm), and the small-data regime
(``SMALL_DATA``: 256 training images, batches of 32) with dropout or L2 beside each network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from ..data import Dataset
from ..experiments.regularization import (
    EXPLICIT_REGULARIZERS,
    REGULARIZER_LABELS,
    SMALL_DATA,
    RegularizationResult,
    Regularizer,
    RegularizerGains,
    Setting,
    config_name,
    explicit_regularizers,
    regularization_study,
    regularizer_gains,
)
from ..statistics import Estimate

__all__ = [
    "GHOST",
    "FULL",
    "PLAIN",
    "GHOST_OF_TWO",
    "REGULARIZERS",
    "EXPLICIT",
    "BN_GAIN_FLOOR",
    "study",
    "small_data",
    "ghost_batches_of_two",
    "noise_ratio",
    "GhostVersusWholeBatch",
    "ghost_versus_whole_batch",
    "NormEffect",
    "effects_of_normalization",
    "largest_effect",
    "BnAlone",
    "bn_alone",
    "RegularizerGains",
    "regularizer_gains",
]

# the configurations' names in the study (experiments.regularization.REGULARIZERS), and exercise 1's
GHOST, FULL, PLAIN = "bn_ghost_8", "bn_batch_128", "no_norm"
GHOST_OF_TWO = "bn_ghost_2"
# the explicit regularizers of the small-data regime (names -> how figures and verdicts show them),
# from experiments.regularization, where config_name makes their configurations' names ("bn_dropout")
EXPLICIT: dict[Regularizer, str] = REGULARIZER_LABELS
REGULARIZERS: tuple[Regularizer, ...] = EXPLICIT_REGULARIZERS
# The lowest the low end of BN's gain from each regularizer may be (points of test accuracy), for the
# seeds' interval and the test digits': dropout's gain is not well clear of zero on every seed set.
# Notebook 07's check and tests/test_claims_regularization.py both read it.
BN_GAIN_FLOOR: dict[Regularizer, float] = {"dropout": -0.25, "l2": 0.0}


# --- setup: the runs the chapter stands on ---


def study(digits: Dataset, seeds: Sequence[int]) -> RegularizationResult:
    """The main comparison (section 2): BN over the whole batch of 128 and over ghost batches of 8,
    layer norm and no norm, 40 epochs on all training digits."""
    return regularization_study(digits, seeds=seeds)


def small_data(digits: Dataset, seeds: Sequence[int]) -> RegularizationResult:
    """The regime where regularization matters (section 3): plain and BN networks on 256 images,
    each alone, with dropout and with L2 (strengths chosen on a validation split)."""
    small: dict[str, Any] = cast(dict[str, Any], SMALL_DATA)  # its values are ints and floats, as the keywords take
    return regularization_study(digits, seeds=seeds, configs=explicit_regularizers(), **small)


def ghost_batches_of_two(digits: Dataset, seeds: Sequence[int]) -> RegularizationResult:
    """BN over ghost batches of 2 (exercise 1), named :data:`GHOST_OF_TWO`: noise past the point
    where it regularizes."""
    two = Setting("batch_ghost", {"ghost_batch_size": 2}, label="BN, ghost batches of 2")
    return regularization_study(digits, seeds=seeds, configs={GHOST_OF_TWO: two})


# --- claim quantities ---


def noise_ratio(noise: Mapping[int, float], small: int = 8, large: int = 128) -> float:
    """BN's output noise at batch ``small`` over that at batch ``large`` (``noise`` as
    :func:`~bn_utils.experiments.regularization.batch_noise` returns it). For Gaussian inputs the
    batch statistics' error shrinks like 1/sqrt(B): sqrt(128 / 8) = 4 for the default sizes."""
    for size in (small, large):
        if size not in noise:
            raise ValueError(f"noise was measured at batch sizes {sorted(noise)}; it has no batch {size}")
    return noise[small] / noise[large]


@dataclass(frozen=True)
class GhostVersusWholeBatch:
    """Ghost batches of 8 against the whole batch of 128, seed by seed.

    ``gap_drop``: the generalization gap with the whole batch minus with ghost batches; it splits into
    ``train_drop`` (training accuracy given up by the ghost batches) plus ``edge`` (test accuracy, ghost
    minus whole batch). ``edge_test_set``: the 449 test digits' share of ``edge``'s uncertainty (a paired
    bootstrap), beside the seeds'."""

    gap_drop: Estimate
    train_drop: Estimate
    edge: Estimate
    edge_test_set: tuple[float, float]


def ghost_versus_whole_batch(study: RegularizationResult) -> GhostVersusWholeBatch:
    """Does the noise of ghost batches of 8 regularize? (:func:`study`'s runs.)"""
    return GhostVersusWholeBatch(
        gap_drop=study.difference(FULL, GHOST, "gap"),
        train_drop=study.difference(FULL, GHOST, "train_acc"),
        edge=study.difference(GHOST, FULL),
        edge_test_set=study.test_set_interval({GHOST: 1, FULL: -1}),
    )


@dataclass(frozen=True)
class NormEffect:
    """One configuration's test accuracy minus no norm's, seed by seed: ``name`` in the study, ``label``
    as figures show it."""

    name: str
    label: str
    difference: Estimate


def effects_of_normalization(study: RegularizationResult) -> tuple[NormEffect, ...]:
    """Every configuration of :func:`study` but no norm, against no norm (test accuracy): how large a
    regularizer BN's noise is here, in the order of the study's configurations."""
    return tuple(
        NormEffect(name, study.label(name), study.difference(name, PLAIN)) for name in study.histories if name != PLAIN
    )


def largest_effect(effects: Sequence[NormEffect]) -> float:
    """The largest |mean difference of test accuracy from no norm| among ``effects``."""
    if not effects:
        raise ValueError("largest_effect needs at least one configuration's effect")
    return max(abs(effect.difference.mean) for effect in effects)


@dataclass(frozen=True)
class BnAlone:
    """BN without an explicit regularizer on the 256 images: ``plain_gap`` and ``bn_gap``, the mean
    generalization gaps (train minus test accuracy) of the plain and BN networks; ``difference``, BN
    minus plain test accuracy seed by seed, with ``test_set`` the test digits' share of its uncertainty."""

    plain_gap: float
    bn_gap: float
    difference: Estimate
    test_set: tuple[float, float]

    @property
    def gap_ratio(self) -> float:
        """BN's mean gap over the plain network's: 1 if BN's noise reduced no overfitting at all."""
        return self.bn_gap / self.plain_gap


def bn_alone(small: RegularizationResult) -> BnAlone:
    """Does BN alone measurably reduce the overfitting of :func:`small_data`'s plain network?"""
    return BnAlone(
        plain_gap=small.spread(config_name("plain"), "gap").mean,
        bn_gap=small.spread(config_name("bn"), "gap").mean,
        difference=small.difference(config_name("bn"), config_name("plain")),
        test_set=small.test_set_interval({config_name("bn"): 1, config_name("plain"): -1}),
    )
