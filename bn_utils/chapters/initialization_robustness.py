"""Chapter 4, "Initialization robustness": what notebook 04 and tests/test_claims_initialization.py both compute.

Setting: a 10 x 100 ReLU MLP whose hidden weights start at 0.1 to 10 times the He scale (the output layer
at its standard scale), with or without BN before each ReLU, SGD at learning rate 0.1, batch 64, 200 steps
on the 8x8 digits; weight decay on a 3 x 32 BN MLP at learning rate 0.5, 200 steps (800 at the lighter decay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data import Dataset, load_digits
from ..experiments.initialization import LayerDiagnostics, diagnose_init_scales
from ..experiments.sweeps import INIT_SCALE_GRID, init_scale_sweep, lr_sweep
from ..experiments.weight_norms import WeightNormTrace, track_weight_norms
from ..history import Sweep

LR = 0.1  # the learning rate of the scale sweep
EFFECTIVE_LRS = tuple(sorted(LR / scale**2 for scale in INIT_SCALE_GRID))  # lr / c^2 for every scale c
GROWTH_SCALES = (0.1, 1.0)  # a too-large effective learning rate (10) and He's (0.1)
DECAY_SCALES = (0.5, 1.0, 2.0, 5.0)  # initial scales under weight decay 0.04
LATE_STEPS = 30  # the steps over which an equilibrium under the heavy decay is read
LIGHT_LATE_STEPS = 100  # ... and under the light decay


def _digits(data: Dataset | None) -> Dataset:
    return load_digits() if data is None else data


# --------------------------------------------------------------------------------------------------
# Setup: the runs and measurements the chapter stands on (``data``: default the digits, default split)


def diagnostics(norm: str, seed: int = 0, data: Dataset | None = None) -> dict[float, LayerDiagnostics]:
    """The 10 x 100 network (``norm``: "none" or "batch") at initialisation, at every scale of
    ``INIT_SCALE_GRID``: per-layer activation and gradient sizes, update ratios and the loss."""
    return diagnose_init_scales(_digits(data), norm, INIT_SCALE_GRID, seed=seed)


def head_scaled(seed: int = 0, data: Dataset | None = None) -> dict[float, LayerDiagnostics]:
    """The BN network at initialisation at scales 1 and 10 with the output layer scaled too: no BN
    follows the output layer, so nothing undoes its scale."""
    return diagnose_init_scales(_digits(data), "batch", (1.0, 10.0), scale_head=True, seed=seed)


def sweep(seeds: Sequence[int], data: Dataset | None = None) -> Sweep:
    """Both networks at every initial scale of ``INIT_SCALE_GRID``, learning rate 0.1, 200 steps."""
    return init_scale_sweep(_digits(data), seeds=seeds)


def same_effective_lr(seeds: Sequence[int], data: Dataset | None = None) -> Sweep:
    """The BN network at scale 1 and learning rate 0.1 / c^2 for every scale c of the sweep: the effective
    learning rate the hidden layers of the network at scale c start with."""
    return lr_sweep(_digits(data), norms=("batch",), lrs=EFFECTIVE_LRS, seeds=seeds)


def norm_growth(seeds: Sequence[int], data: Dataset | None = None) -> dict[float, WeightNormTrace]:
    """The BN network's hidden weight norms over 30 steps at learning rate 0.1, from scales 0.1 and 1."""
    return {
        scale: track_weight_norms(_digits(data), init_scale=scale, lr=LR, seeds=seeds, steps=30)
        for scale in GROWTH_SCALES
    }


def decayed(seeds: Sequence[int], data: Dataset | None = None) -> dict[float, WeightNormTrace]:
    """The 3 x 32 BN network at learning rate 0.5 and weight decay 0.04 for 200 steps, from scales 0.5 to 5."""
    return {
        scale: track_weight_norms(
            _digits(data), init_scale=scale, lr=0.5, weight_decay=0.04, steps=200, depth=3, width=32, seeds=seeds
        )
        for scale in DECAY_SCALES
    }


def light_decay(seeds: Sequence[int], data: Dataset | None = None) -> WeightNormTrace:
    """The same network from scale 1 at weight decay 0.01, for 800 steps (8 x 1 / (2 lr wd))."""
    return track_weight_norms(
        _digits(data), init_scale=1.0, lr=0.5, weight_decay=0.01, steps=800, depth=3, width=32, seeds=seeds
    )


# --------------------------------------------------------------------------------------------------
# Claim quantities


@dataclass(frozen=True)
class ForwardBlindness:
    """Does the forward pass at initialisation see the hidden weights' scale (0.1 to 10)?"""

    bn_std_spread: float  # BN: largest relative spread (max - min) / min of a layer's activation std over scales
    bn_losses: tuple[float, ...]  # BN: the loss at initialisation at each scale
    plain_decades: float  # plain: log10 of the last layer's activation std at scale 10 / at scale 0.1

    @property
    def bn_loss_spread(self) -> float:
        """BN: largest - smallest loss at initialisation over the scales."""
        return max(self.bn_losses) - min(self.bn_losses)


def forward_blindness(bn: dict[float, LayerDiagnostics], plain: dict[float, LayerDiagnostics]) -> ForwardBlindness:
    """:class:`ForwardBlindness` from :func:`diagnostics` of both networks over the scales (smallest
    to largest)."""
    stds = np.array([d.activation_std for d in bn.values()])  # (scales, layers)
    last = [d.activation_std[-1] for d in plain.values()]
    return ForwardBlindness(
        bn_std_spread=float(((stds.max(0) - stds.min(0)) / stds.min(0)).max()),
        bn_losses=tuple(d.loss for d in bn.values()),
        plain_decades=float(np.log10(last[-1] / last[0])),
    )


def final_accuracy(sweep: Sweep, value: float, norm: str = "batch") -> np.ndarray:
    """Final accuracy per seed at one value of the sweep, a diverged run counting as 0 (it did not train)."""
    return np.nan_to_num(sweep.final(norm)[sweep.axis(sweep.parameter).index(value)])


def median_final(sweep: Sweep, value: float, norm: str = "batch") -> float:
    """Median over seeds of the final accuracy at one value of the sweep (NaN if a diverged run is the median)."""
    return float(np.median(sweep.final(norm)[sweep.axis(sweep.parameter).index(value)]))


@dataclass(frozen=True)
class EffectiveLrGap:
    """BN at scale c and learning rate 0.1 against BN at scale 1 and learning rate 0.1 / c^2 (the same
    effective learning rate for the hidden layers): median final accuracies and the per-seed difference."""

    scale: float
    scaled: float  # median, scale c at lr 0.1
    same_lr: float  # median, scale 1 at lr 0.1 / c^2
    per_seed: np.ndarray  # scale c - scale 1, diverged runs counting as 0

    @property
    def gap(self) -> float:
        """Median at scale c - median at the same effective learning rate (positive: the scaled one ahead)."""
        return self.scaled - self.same_lr


def effective_lr_gap(sweep: Sweep, same_lr: Sweep, scale: float) -> EffectiveLrGap:
    """:class:`EffectiveLrGap` at ``scale``, from :func:`sweep` and :func:`same_effective_lr`: is the
    effective learning rate the whole story?"""
    lr = LR / scale**2
    per_seed = final_accuracy(sweep, scale) - final_accuracy(same_lr, lr)
    return EffectiveLrGap(scale, median_final(sweep, scale), median_final(same_lr, lr), per_seed)


def growth_gaps(trace: WeightNormTrace) -> np.ndarray:
    """Per seed, how far from exact the scale invariance is (:meth:`WeightNormTrace.growth_gaps`)."""
    return trace.growth_gaps()


def effective_lr_drop(trace: WeightNormTrace) -> np.ndarray:
    """(seeds, steps + 1): the effective learning rate (mean over layers) relative to its start."""
    mean = trace.effective_lr.mean(2)
    return mean / mean[:, :1]


@dataclass(frozen=True)
class DecayEquilibrium:
    """Weight decay 0.04 from several initial scales: where the effective learning rate and the squared
    norms settle."""

    scales: tuple[float, ...]
    late_lr: np.ndarray  # (scales,): median effective lr over seeds, layers and the last 30 steps
    norm_ratios: np.ndarray  # (scales, seeds): ||W||^2 / predicted equilibrium, median over layers

    @property
    def lr_spread(self) -> float:
        """Largest / smallest late effective learning rate over the initial scales."""
        return float(self.late_lr.max() / self.late_lr.min())

    @property
    def lr(self) -> float:
        """The median of the scales' late effective learning rates."""
        return float(np.median(self.late_lr))


def decay_equilibrium(decayed: dict[float, WeightNormTrace]) -> DecayEquilibrium:
    """:class:`DecayEquilibrium` from :func:`decayed`."""
    late = [float(np.median(t.effective_lr[:, -LATE_STEPS:])) for t in decayed.values()]
    ratios = [
        np.median(t.late_sq_norm(LATE_STEPS) / t.equilibrium_sq_norm(LATE_STEPS), axis=1) for t in decayed.values()
    ]
    return DecayEquilibrium(tuple(decayed), np.array(late), np.array(ratios))


@dataclass(frozen=True)
class DecayComparison:
    """Weight decay 0.04 (from every initial scale) against 0.01 (from scale 1): the equilibrium effective
    learning rates (predicted ratio sqrt(4) = 2) and the final test accuracies."""

    heavy_lr: float
    light_lr: float
    lr_ratio_per_seed: np.ndarray  # heavy / light, per seed
    heavy_accuracy: float  # median over scales and seeds
    light_accuracy: float  # median over seeds
    accuracy_cost_per_seed: np.ndarray  # light - heavy (median over scales), per seed

    @property
    def lr_ratio(self) -> float:
        """Equilibrium effective learning rate, heavy / light decay."""
        return self.heavy_lr / self.light_lr

    @property
    def accuracy_cost(self) -> float:
        """Median final test accuracy, light decay - heavy decay."""
        return self.light_accuracy - self.heavy_accuracy


def decay_comparison(decayed: dict[float, WeightNormTrace], light: WeightNormTrace) -> DecayComparison:
    """:class:`DecayComparison` from :func:`decayed` and :func:`light_decay`."""
    seeds = light.effective_lr.shape[0]
    heavy_lr = float(np.median([np.median(t.effective_lr[:, -LATE_STEPS:]) for t in decayed.values()]))
    light_lr = float(np.median(light.effective_lr[:, -LIGHT_LATE_STEPS:]))
    per_seed = np.median([t.effective_lr[:, -LATE_STEPS:].reshape(seeds, -1) for t in decayed.values()], axis=(0, 2))
    per_seed = per_seed / np.median(light.effective_lr[:, -LIGHT_LATE_STEPS:].reshape(seeds, -1), axis=1)
    heavy_accuracy = float(np.median([t.final_test_acc for t in decayed.values()]))
    heavy_per_seed = np.median([t.final_test_acc for t in decayed.values()], axis=0)
    return DecayComparison(
        heavy_lr=heavy_lr,
        light_lr=light_lr,
        lr_ratio_per_seed=per_seed,
        heavy_accuracy=heavy_accuracy,
        light_accuracy=float(np.median(light.final_test_acc)),
        accuracy_cost_per_seed=-(heavy_per_seed - light.final_test_acc),
    )
