"""Chapter 5, "Deep-network gradient flow": what its notebook and its claim tests both compute.

Setting: MLPs of 100 ReLU units per hidden layer, He initialisation, BN or not before each activation,
on the 8x8 digits. Gradients at initialisation on 256 training digits; training with SGD at learning
rate 0.1, batch 64, 200 steps (bn_utils.experiments.initialization, .sweeps and .layer_dynamics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import Dataset
from ..diagnostics import LayerDiagnostics
from ..experiments.initialization import diagnose_at_init, diagnose_depths
from ..experiments.layer_dynamics import LayerDynamics, layer_dynamics
from ..experiments.sweeps import depth_sweep
from ..history import Sweep

__all__ = [
    "TRAINS",
    "FirstSteps",
    "ForwardContent",
    "GradientRatios",
    "activation_span",
    "at_init",
    "contrast_after_50",
    "depth_profiles",
    "dynamics",
    "equal_relative_steps",
    "final_accuracy",
    "first_steps",
    "forward_content",
    "gradient_growth",
    "gradient_ratios",
    "held_norms",
    "sweep",
]

TRAINS = 0.5  # the course's mark of a network that trains: test accuracy 50% or more (Sweep.min_accuracy)


# --- setup: the runs the chapter stands on -----------------------------------------------------


def at_init(data: Dataset, norm: str, seeds: Sequence[int], **kwargs: Any) -> list[LayerDiagnostics]:
    """One 40-layer network per seed at initialisation (:func:`diagnose_at_init`, ``depth=40``; other
    arguments, e.g. ``activation`` or ``batch_size``, passed on), the seeds in order."""
    return [diagnose_at_init(data, norm, depth=40, **kwargs, seed=seed) for seed in seeds]


def depth_profiles(
    data: Dataset, norm: str, depths: Sequence[int], seeds: Sequence[int]
) -> list[dict[int, LayerDiagnostics]]:
    """Per seed, the network at initialisation at each of ``depths`` (:func:`diagnose_depths`)."""
    return [diagnose_depths(data, norm, depths, seed=seed) for seed in seeds]


def sweep(data: Dataset, seeds: Sequence[int]) -> Sweep:
    """The plain and BN networks trained for 200 steps at each depth of the grid (:func:`depth_sweep`)."""
    return depth_sweep(data, seeds=seeds)


def dynamics(data: Dataset, norm: str, depth: int, seeds: Sequence[int]) -> LayerDynamics:
    """The depth sweep's runs of ``norm`` at ``depth``, measured per layer in their first 50 steps."""
    return layer_dynamics(data, norm, depth=depth, seeds=seeds)


def held_norms(data: Dataset, seeds: Sequence[int]) -> LayerDynamics:
    """The 40-layer BN network trained 200 steps with every hidden unit's weight norm held at its initial
    value (the effective learning rate stays 0.1)."""
    return layer_dynamics(data, "batch", depth=40, seeds=seeds, record_at=(0, 200), hold_weight_norm=True)


def equal_relative_steps(data: Dataset, depth: int, seeds: Sequence[int]) -> LayerDynamics:
    """The BN network of ``depth`` layers trained 200 steps with every layer moving by 1% of its weights
    per step."""
    return layer_dynamics(data, "batch", depth=depth, seeds=seeds, record_at=(0, 200), relative_step=0.01)


# --- claim quantities --------------------------------------------------------------------------


def gradient_growth(runs: Sequence[LayerDiagnostics]) -> np.ndarray:
    """(seeds,) the factor by which the weight-gradient norm grows per layer towards the input: about
    1.21 with BN (the mean-field rate), about 1 without."""
    return np.array([run.gradient_growth for run in runs])


def activation_span(runs: Sequence[LayerDiagnostics]) -> np.ndarray:
    """(seeds,) the largest layer's activation std over the smallest one's: near 1 where BN keeps the
    forward pass's size at any depth."""
    return np.array([run.activation_std.max() / run.activation_std.min() for run in runs])


@dataclass(frozen=True)
class GradientRatios:
    """The first hidden layer's gradient norm over the last one's at initialisation, per seed and depth."""

    depths: tuple[int, ...]
    ratio: np.ndarray  # (seeds, depths)

    def at(self, depth: int) -> np.ndarray:
        """(seeds,) the ratio at ``depth``."""
        if depth not in self.depths:
            raise ValueError(f"depth {depth} was not measured; measured depths: {list(self.depths)}")
        return self.ratio[:, self.depths.index(depth)]

    def median(self, depth: int) -> float:
        """The median over seeds of the ratio at ``depth``."""
        return float(np.median(self.at(depth)))


def gradient_ratios(profiles: Sequence[Mapping[int, LayerDiagnostics]], depths: Sequence[int]) -> GradientRatios:
    """:class:`GradientRatios` of :func:`depth_profiles`' runs at ``depths`` (each measured in every seed)."""
    depths = tuple(depths)
    missing = [d for d in depths if any(d not in run for run in profiles)]
    if missing:
        raise ValueError(f"depths {missing} are not in every seed's profile")
    return GradientRatios(depths, np.array([[run[d].gradient_ratio for d in depths] for run in profiles]))


def final_accuracy(result: Sweep, norm: str, depth: int) -> np.ndarray:
    """(seeds,) the test accuracy after 200 steps of ``norm`` at ``depth`` in the depth sweep, a diverged
    seed counted as 0."""
    return np.nan_to_num(result.final(norm)[result.axis("depth").index(depth)])


@dataclass(frozen=True)
class FirstSteps:
    """What the first updates do to a deep BN network (per seed): the gradient ratio's collapse, the
    first layer's weight growth and the effective learning rate it cuts."""

    ratio_at_init: np.ndarray  # (seeds,) first/last gradient ratio at step 0
    ratio_drop: np.ndarray  # (seeds,) that ratio at step 0 over the ratio at step 1
    ratio_later: np.ndarray  # (seeds,) the larger ratio of steps 30 and 50
    growth: np.ndarray  # (seeds, layers) weight growth c_l after one step
    predicted_growth: np.ndarray  # (seeds,) sqrt(1 + relative update of the first layer at step 0 ^ 2)
    lr_cut: np.ndarray  # (seeds,) lr / the first layer's effective lr after one step
    update_ratio: np.ndarray  # (seeds, 2) last layer's relative update over the first's, steps 30 and 50

    @property
    def first_layer_growth(self) -> np.ndarray:
        """(seeds,) the first layer's weight growth c after one step."""
        return self.growth[:, 0]

    @property
    def log_ratio_drop(self) -> np.ndarray:
        """(seeds,) log10 of :attr:`ratio_drop`: 1 is a tenfold fall in the first step (the seeds span
        a decade, so a claim on the drop is read on its logarithm)."""
        return np.log10(self.ratio_drop)


def first_steps(run: LayerDynamics) -> FirstSteps:
    """:class:`FirstSteps` of a :func:`dynamics` run (recorded at steps 0, 1, 30 and 50 among others)."""
    at = run.at
    ratio = run.gradient_ratio
    later = [at(30), at(50)]
    return FirstSteps(
        ratio_at_init=ratio[:, at(0)],
        ratio_drop=ratio[:, at(0)] / ratio[:, at(1)],
        ratio_later=ratio[:, later].max(1),
        growth=run.weight_growth[:, at(1)],
        predicted_growth=np.sqrt(1 + run.relative_update[:, at(0), 0] ** 2),  # ||W1||^2 = ||W0||^2 + lr^2 ||g0||^2
        lr_cut=run.lr / run.effective_lr[:, at(1), 0],
        update_ratio=run.relative_update[:, later, -1] / run.relative_update[:, later, 0],
    )


@dataclass(frozen=True)
class ForwardContent:
    """What a network's forward pass keeps of its inputs (per seed), on the probe batch."""

    similarity: np.ndarray  # (seeds,) mean cosine of different examples at the last layer, at init
    contrast_at_init: np.ndarray  # (seeds, layers) class contrast of each layer at init
    contrast_after_50: np.ndarray  # (seeds,) class contrast of the last layer after 50 steps
    late_loss: np.ndarray  # (seeds,) mean training loss over steps 30-49 (NaN for a seed that diverged)

    @property
    def contrast_last_at_init(self) -> np.ndarray:
        """(seeds,) the last layer's class contrast at init."""
        return self.contrast_at_init[:, -1]

    @property
    def late_loss_from_chance(self) -> np.ndarray:
        """(seeds,) |:attr:`late_loss` - ln 10|: how far the mean training loss over steps 30-49 is from
        the loss of a uniform guess over the 10 classes (NaN for a seed that diverged)."""
        return np.abs(self.late_loss - np.log(10))


def forward_content(run: LayerDynamics) -> ForwardContent:
    """:class:`ForwardContent` of a :func:`dynamics` run (trained 50 steps or more)."""
    return ForwardContent(
        similarity=run.similarity[:, run.at(0), -1],
        contrast_at_init=run.class_contrast[:, run.at(0)],
        contrast_after_50=run.class_contrast[:, run.at(50), -1],
        late_loss=run.loss[:, 30:50].mean(1),
    )


def contrast_after_50(runs: Mapping[int, LayerDynamics]) -> dict[int, float]:
    """Depth -> the median over seeds of the last layer's class contrast after 50 steps: how far
    training has rebuilt class structure at each depth."""
    return {depth: float(np.median(forward_content(run).contrast_after_50)) for depth, run in runs.items()}
