"""Residual networks: what makes deep batch-normalized networks trainable (the chapter "Residual
networks").

Two experiments on the same architectures (:data:`ARCHITECTURES`):

- at initialisation (:func:`measure_at_init` -> :class:`AtInit`): the variance of the residual
  stream block by block, each branch's size relative to the stream it is added to, each block's
  weight-gradient norm (from :func:`bn_utils.diagnostics.layer_diagnostics`), and how much of
  the inputs' class structure the stream still carries (chapter 5's class contrast);
- training (:func:`grid` -> :class:`Grid`): test accuracy per architecture, depth, learning rate
  and seed after a number of SGD steps, as in the chapter "Deep-network gradient flow";
  :func:`depth_sweep` -> :class:`DepthSweep` is its one-learning-rate view. Networks of one
  structure and depth train as one stack (:func:`bn_utils.stacked.train_stacked`), every learning
  rate and seed together, so the architectures that differ only in their initialisation share a
  stack.

Controls. ``residual_bn_frozen<k>`` is the residual BN network whose batch norms stop using batch
statistics after ``k`` steps: at that step each batch norm's running statistics are set from one
batch of ``freeze_batch`` training examples, and from then on each normalizes with those fixed
statistics (its gamma and beta still train), while training goes on; at ``k = 0`` the statistics
are those of the initial network, and BN is a data-dependent initialisation followed by a fixed
affine layer. ``residual_lsuv`` has no normalization at all but a data-dependent initialisation in
the spirit of LSUV (Mishkin & Matas, 2016; :func:`lsuv_init`): each branch rescaled on one batch so
that the stream's variances at initialisation are those BN gives.

:data:`STORED_GRIDS` names the grids of the chapter's figures, computed by :func:`chapter_grids`
and stored with the package (:func:`stored_grids` loads them); the claim tests recompute them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .. import _validate as valid
from ..cache import cache_key, cached, remembered
from ..data import Dataset, check_dataset, load_digits
from ..diagnostics import class_contrast, layer_diagnostics
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..grid import Axis, LabelledGrid
from ..models import ResidualBlock, ResidualMLP, hidden_blocks, make_mlp, make_residual_mlp
from ..stacked import StackedMLP, set_running_statistics, train_stacked
from ..style import (
    FIGSIZE,
    FREEZE_COLORS,
    GUIDE,
    ON_COLOR,
    ON_LIGHT,
    SEQUENTIAL_CMAP,
    color_for,
    figsize,
    grid_figsize,
    series_color,
)
from ..training import get_device, seed_everything

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "ARCHITECTURES",
    "SWEEP_ARCHITECTURES",
    "RANGE_ARCHITECTURES",
    "FREEZE_ARCHITECTURES",
    "LEARNING_RATES",
    "Architecture",
    "build",
    "lsuv_init",
    "ArchitectureAtInit",
    "AtInit",
    "measure_at_init",
    "Grid",
    "grid",
    "DepthSweep",
    "depth_sweep",
    "ChapterGrids",
    "chapter_grids",
    "stored_grids",
    "plot_grid",
    "plot_budget",
    "plot_class_contrast",
    "plot_stream_variance",
    "plot_branch_ratio",
    "plot_gradient_norms",
    "plot_at_init",
    "plot_depth_sweep",
    "plot_at_depth",
    "explorer",
    "explorer_figure",
]


@dataclass(frozen=True)
class Architecture:
    """How to build one of the compared networks: ``residual`` or the plain MLP of chapter 5,
    with its norm, residual order and branch initialisation; ``freeze_at`` (training only) stops
    its batch norms' use of batch statistics after that many steps (0: before the first);
    ``data_init`` names a data-dependent initialisation applied after building (``"lsuv"``:
    :func:`lsuv_init`)."""

    label: str
    color: str
    residual: bool
    norm: str
    branch_init: str = "default"
    order: str = "pre"
    freeze_at: int | None = None
    data_init: str | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "plain_bn": Architecture("plain BN stack", color_for("batch"), False, "batch"),
    "residual_none": Architecture("residual, no norm", color_for("none"), True, "none"),
    "residual_bn": Architecture("residual BN", series_color(0), True, "batch"),
    "residual_bn_zero": Architecture("residual BN, zero branches", series_color(1), True, "batch", "zero"),
    "residual_scaled": Architecture("residual, no norm, 1/√depth", series_color(2), True, "none", "scaled"),
    "residual_bn_like": Architecture("residual, no norm, BN's scaling", series_color(3), True, "none", "bn_like"),
    "residual_lsuv": Architecture(
        "residual, no norm, LSUV (data-dependent)", series_color(4), True, "none", data_init="lsuv"
    ),
    "residual_bn_frozen0": Architecture(
        "residual BN, statistics frozen at step 0", FREEZE_COLORS[0], True, "batch", freeze_at=0
    ),
    "residual_bn_frozen1": Architecture(
        "residual BN, statistics frozen at step 1", FREEZE_COLORS[1], True, "batch", freeze_at=1
    ),
    "residual_bn_frozen10": Architecture(
        "residual BN, statistics frozen at step 10", FREEZE_COLORS[10], True, "batch", freeze_at=10
    ),
}
# the five architectures of the depth sweep (the others are controls)
SWEEP_ARCHITECTURES = ("plain_bn", "residual_none", "residual_bn", "residual_bn_zero", "residual_scaled")
# every network whose trainable range the chapter states, and the freeze controls with BN itself
RANGE_ARCHITECTURES = (
    "plain_bn",
    "residual_none",
    "residual_bn",
    "residual_bn_zero",
    "residual_scaled",
    "residual_bn_like",
    "residual_lsuv",
)
FREEZE_ARCHITECTURES = ("residual_bn_frozen0", "residual_bn_frozen1", "residual_bn_frozen10", "residual_bn")
# the learning rates of the trainable-range grid
LEARNING_RATES = (0.01, 0.03, 0.1, 0.3, 1.0)
# the variance of a BN branch at initialisation: a ReLU of a unit Gaussian (1/2 - 1/(2 pi)) times He's 2
BN_BRANCH_VARIANCE = 1 - 1 / math.pi


def _check_architectures(names: Sequence[str], *, training: bool) -> tuple[str, ...]:
    names = tuple(names)
    if not names or len(set(names)) < len(names):
        raise ValueError(f"need a non-empty list of different architecture names, got {names}")
    for name in names:
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {name!r}; valid names are: {', '.join(ARCHITECTURES)}")
        if not training and ARCHITECTURES[name].freeze_at is not None:
            raise ValueError(f"{name!r} differs from residual_bn only in training; measure residual_bn at init")
    return names


@torch.no_grad()
def lsuv_init(model: ResidualMLP, x: torch.Tensor, *, branch_variance: float = BN_BRANCH_VARIANCE) -> ResidualMLP:
    """A data-dependent initialisation without normalization, in the spirit of LSUV (Mishkin & Matas,
    2016): on the batch ``x``, block by block from the input side, rescale each branch's weights so
    that its output's variance (over the batch, averaged over units) is ``branch_variance`` (default:
    BN's branch variance 1 - 1/pi), then divide the head's weights by the final stream's standard
    deviation, as a final norm would. The stream then has, on ``x``, the variances that BN's branches
    give it, with no normalization layer. ``model`` is changed in place and returned."""
    valid.check_type("model", model, ResidualMLP, "a ResidualMLP from make_residual_mlp")
    valid.check_type("x", x, torch.Tensor, "a batch of inputs")
    valid.check_number("branch_variance", branch_variance, 0, low_open=True)
    if model.config.get("norm") != "none" or model.config.get("order") != "pre":
        raise ValueError("lsuv_init replaces normalization: use a pre-activation residual MLP with norm='none'")
    if len(x) < 2:
        raise ValueError(f"lsuv_init needs a batch of at least 2 examples, got {len(x)}")
    h = model.stem(x)
    for block in cast("Iterable[ResidualBlock]", model.blocks):
        variance = block.branch(h).double().var(0).mean().item()
        if not variance > 0 or not math.isfinite(variance):
            raise ValueError(f"a branch has variance {variance} on this batch: cannot rescale it")
        block.linear.weight.mul_(math.sqrt(branch_variance / variance))
        h = h + block.branch(h)
    spread = math.sqrt(h.double().var(0).mean().item())
    model.head.weight.div_(spread)
    return model


def build(
    name: str,
    in_features: int,
    num_classes: int,
    *,
    depth: int,
    width: int = 100,
    init_batch: torch.Tensor | None = None,
) -> nn.Module:
    """A fresh network of the architecture ``name`` (see :data:`ARCHITECTURES`) with ``depth``
    hidden blocks (linear layers besides the stem and head) of ``width`` units. An architecture
    with a data-dependent initialisation needs ``init_batch``, the inputs it is fitted on."""
    _check_architectures([name], training=True)
    arch = ARCHITECTURES[name]
    if not arch.residual:
        return make_mlp(in_features, num_classes, depth=depth, width=width, norm=arch.norm)
    model = make_residual_mlp(
        in_features,
        num_classes,
        depth=depth,
        width=width,
        norm=arch.norm,
        order=arch.order,
        branch_init=arch.branch_init,
    )
    if arch.data_init == "lsuv":
        if init_batch is None:
            raise ValueError(f"{name!r} has a data-dependent initialisation: give init_batch, a batch of inputs")
        lsuv_init(model, init_batch.to(model.stem.weight.dtype))
    return model


def _median_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.nanmedian(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)


# ---------------------------------------------------------------------------------------------
# At initialisation


@dataclass(frozen=True)
class ArchitectureAtInit:
    """One architecture's measurements at initialisation (:class:`AtInit`), rows = seeds:
    ``stream_var`` (seeds, depth + 1), the variance over the batch of each unit of the stream,
    averaged over units, after the stem and after each block (for the plain stack: its input-side
    first block's output, and so on: ``stream_var[:, 0]`` is NaN); ``branch_var`` (seeds, depth),
    the same for each branch's output (NaN for the plain stack); ``gradient_norm`` (seeds, depth),
    each block's weight-gradient norm; ``contrast`` (seeds, depth + 1), chapter 5's class contrast
    of the stream after the stem and after each block (plain stack: of each block's output,
    ``[:, 0]`` NaN); ``head_contrast`` (seeds,), that of the representation the head reads (after
    the final norm and activation)."""

    stream_var: np.ndarray
    branch_var: np.ndarray
    gradient_norm: np.ndarray
    contrast: np.ndarray
    head_contrast: np.ndarray


@dataclass(frozen=True)
class AtInit(LabelledGrid):
    """Networks of ``depth`` blocks at initialisation, one per seed, on one batch of training
    examples in training mode: one :class:`ArchitectureAtInit` per architecture measured, read with
    :meth:`of` (``at_init.of("residual_bn").stream_var``), which names the architectures measured
    when asked for another."""

    depth: int
    seeds: tuple[int, ...]
    measured: dict[str, ArchitectureAtInit]

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures measured, in order."""
        return tuple(self.measured)

    def axes(self) -> dict[str, Axis]:
        """The result's one axis: the architectures measured (the seeds are the arrays' own axis)."""
        return {"name": Axis("architecture", self.architectures, "was not measured", "the measurement")}

    def of(self, name: str) -> ArchitectureAtInit:
        """The arrays of architecture ``name``; a ``ValueError`` naming the architectures measured
        if it was not."""
        return self.measured[self.axis("name").check(name)]

    def variance_growth(self, name: str) -> np.ndarray:
        """(seeds,): the stream's variance after the last block over its variance after the stem."""
        var = self.of(name).stream_var
        return var[:, -1] / var[:, 0]

    def growth_per_block(self, name: str) -> np.ndarray:
        """(seeds,): the geometric mean of the factor by which the stream's variance grows per block."""
        return self.variance_growth(name) ** (1 / self.depth)

    def branch_ratio(self, name: str) -> np.ndarray:
        """(seeds, depth): each branch's variance over the variance of the stream it is added to."""
        arrays = self.of(name)
        return arrays.branch_var / arrays.stream_var[:, :-1]

    def gradient_ratio(self, name: str) -> np.ndarray:
        """(seeds,): the first block's weight-gradient norm over the last block's (chapter 5's ratio)."""
        norm = self.of(name).gradient_norm
        return norm[:, 0] / norm[:, -1]


def _unit_variance(h: torch.Tensor) -> float:
    return h.detach().double().var(0).mean().item()


@remembered("experiments.residual")
def measure_at_init(
    data: Dataset,
    *,
    depth: int = 80,
    architectures: Sequence[str] = (
        "plain_bn",
        "residual_none",
        "residual_bn",
        "residual_bn_zero",
        "residual_scaled",
        "residual_bn_like",
    ),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    width: int = 100,
    batch_size: int = 256,
    gradients: bool = True,
    init_examples: int = 512,
) -> AtInit:
    """:class:`AtInit` of each architecture at ``depth`` blocks, on the first ``batch_size``
    training examples; seed s draws the weights of every architecture from ``seed_everything(s)``,
    and a data-dependent initialisation is fitted on the first ``init_examples`` training examples.
    ``gradients=False`` skips the backward pass (``gradient_norm`` is then NaN)."""
    check_dataset("data", data)
    valid.check_int("depth", depth, 2)
    valid.check_int("width", width)
    valid.check_int("batch_size", batch_size, 2, len(data.x_train))
    names = _check_architectures(architectures, training=False)
    seeds = tuple(valid.check_seeds("seeds", seeds))
    device = get_device()
    valid.check_int("init_examples", init_examples, 2, len(data.x_train))
    x, y = data.x_train[:batch_size].to(device), data.y_train[:batch_size].to(device)
    init_batch = data.x_train[:init_examples].to(device)
    measured: dict[str, ArchitectureAtInit] = {}
    for name in names:
        streams = np.full((len(seeds), depth + 1), np.nan)
        branches = np.full((len(seeds), depth), np.nan)
        grads = np.full((len(seeds), depth), np.nan)
        contrasts = np.full((len(seeds), depth + 1), np.nan)
        heads = np.full(len(seeds), np.nan)
        for row, seed in enumerate(seeds):
            seed_everything(seed)
            model = build(
                name, data.input_shape[0], data.num_classes, depth=depth, width=width, init_batch=init_batch
            ).to(device)
            model = model.to(x.dtype).train()
            if gradients:  # on a copy, before the forward pass below updates the running statistics
                with np.errstate(divide="ignore", invalid="ignore"):  # zero branches: update ratio 0/0
                    grads[row] = layer_diagnostics(model, x, y, lr=0.1).gradient_norm
            with torch.no_grad():
                if isinstance(model, ResidualMLP):  # build gives one exactly for the residual architectures
                    hs, bs = model.streams(x)
                    streams[row] = [_unit_variance(h) for h in hs]
                    branches[row] = [_unit_variance(b) for b in bs]
                    contrasts[row] = class_contrast(torch.stack(hs), y).cpu().numpy()
                    heads[row] = class_contrast(model.final(hs[-1]), y).item()
                else:
                    h, outputs = x, []
                    for index, block in enumerate(hidden_blocks(model)):
                        h = block(h)
                        streams[row, index + 1] = _unit_variance(h)
                        outputs.append(h)
                    contrasts[row, 1:] = class_contrast(torch.stack(outputs), y).cpu().numpy()
                    heads[row] = contrasts[row, -1]
        measured[name] = ArchitectureAtInit(streams, branches, grads, contrasts, heads)
    return AtInit(depth, seeds, measured)


def _style(ax: Axes, name: str, index: int) -> dict:
    arch = ARCHITECTURES.get(name)
    return {"label": arch.label if arch else name, "color": arch.color if arch else series_color(index)}


def _band(ax: Axes, x: np.ndarray, values: np.ndarray, **style: Any) -> None:
    middle, low, high = _median_band(values)
    (line,) = ax.plot(x, middle, **style)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_stream_variance(result: AtInit, *, ax: Axes | None = None, names: Sequence[str] | None = None) -> Axes:
    """The stream's variance after each block at initialisation (median and range over seeds, log
    scale), with the linear growth v0 + (1 - 1/pi) l (dashed) for reference: v0 the median variance
    after the stem, 1 - 1/pi the variance of a BN branch (ReLU of a unit Gaussian, He weights)."""
    valid.check_type("result", result, AtInit, "an AtInit from measure_at_init")
    if ax is None:
        _, ax = plt.subplots()
    blocks = np.arange(result.depth + 1)
    starts = []
    for i, name in enumerate(names or result.architectures):
        values = result.of(name).stream_var
        keep = ~np.all(np.isnan(values), 0)
        _band(ax, blocks[keep], values[:, keep], **_style(ax, name, i))
        starts.extend(values[:, 0][np.isfinite(values[:, 0])])
    v0 = float(np.median(starts)) if starts else 1.0
    slope = 1 - 1 / np.pi
    ax.plot(blocks, v0 + slope * blocks, ls="--", color=GUIDE, lw=1, label=f"{v0:.2f} + {slope:.2f} × block (linear)")
    ax.set_yscale("log")
    ax.set_xlabel("block (0 = after the stem)")
    ax.set_ylabel("variance of the stream")
    ax.legend(fontsize="small")
    return ax


def plot_branch_ratio(result: AtInit, *, ax: Axes | None = None, names: Sequence[str] | None = None) -> Axes:
    """Each branch's variance over the stream's it is added to, by block (median and range over
    seeds), with 1/block (dashed): the ratio that unit-variance branches give a stream whose variance starts at 1
    and grows by 1 per block."""
    valid.check_type("result", result, AtInit, "an AtInit from measure_at_init")
    if ax is None:
        _, ax = plt.subplots()
    blocks = np.arange(1, result.depth + 1)
    for i, name in enumerate(names or result.architectures):
        ratio = result.branch_ratio(name)
        if np.all(np.isnan(ratio)) or not np.all(ratio > 0):
            continue  # the plain stack has no branches; zero branches have ratio 0 (no log)
        _band(ax, blocks, ratio, **_style(ax, name, i))
    ax.plot(blocks, 1 / blocks, ls="--", color=GUIDE, lw=1, label="1 / block")
    ax.set_yscale("log")
    ax.set_xlabel("block")
    ax.set_ylabel("branch variance / stream variance")
    ax.legend(fontsize="small")
    return ax


def plot_gradient_norms(result: AtInit, *, ax: Axes | None = None, names: Sequence[str] | None = None) -> Axes:
    """Each block's weight-gradient norm at initialisation (median and range over seeds, log scale);
    architectures whose gradients are all zero at initialisation (a zero head) are left out."""
    valid.check_type("result", result, AtInit, "an AtInit from measure_at_init")
    if ax is None:
        _, ax = plt.subplots()
    blocks = np.arange(1, result.depth + 1)
    for i, name in enumerate(names or result.architectures):
        norm = result.of(name).gradient_norm
        if np.any(np.isnan(norm)) or not np.all(norm > 0) or not np.all(np.isfinite(norm)):
            continue
        _band(ax, blocks, norm, **_style(ax, name, i))
    ax.set_yscale("log")
    ax.set_xlabel("block")
    ax.set_ylabel("‖∂L/∂W‖ at initialisation")
    ax.legend(fontsize="small")
    return ax


def plot_at_init(result: AtInit, *, names: Sequence[str] | None = None) -> Figure:
    """The three views of :class:`AtInit` side by side: stream variance, branch/stream ratio,
    gradient norms."""
    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE["triple_high"])
    plot_stream_variance(result, ax=axes[0], names=names)
    plot_branch_ratio(result, ax=axes[1], names=names)
    plot_gradient_norms(result, ax=axes[2], names=names)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Training: a grid of architectures, depths and learning rates


def _nan_to_none(values: np.ndarray) -> list:
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values.ravel().tolist()]


@dataclass(frozen=True)
class Grid(LabelledGrid):
    """Test accuracy after SGD training, per architecture, depth, learning rate and seed.

    ``test_acc[name]`` has shape (depths, lrs, seeds, evaluations): the test accuracy after
    ``eval_steps[k]`` steps (the last is ``steps``), NaN once the run has diverged;
    ``diverged_at[name]`` (depths, lrs, seeds) the step at which the loss stopped being finite (-1:
    never); ``at_freeze[name]`` (architectures with ``freeze_at`` only) the test accuracy at the
    freeze, in evaluation mode with the statistics just set; ``correct[name]`` (depths, lrs, seeds,
    test examples) whether each test example is classified correctly after ``steps`` steps (False
    where the run diverged), for test-set intervals (:mod:`bn_utils.statistics`). A seed *trains*
    when it ends at ``min_accuracy`` or more."""

    architectures: tuple[str, ...]
    depths: tuple[int, ...]
    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int
    eval_steps: tuple[int, ...]
    test_acc: dict[str, np.ndarray]
    diverged_at: dict[str, np.ndarray]
    at_freeze: dict[str, np.ndarray]
    correct: dict[str, np.ndarray]
    min_accuracy: float = 0.5
    config: dict = field(default_factory=dict)

    def axes(self) -> dict[str, Axis]:
        """The grid's axes: architectures, depths, learning rates (matched by :func:`math.isclose`)
        and evaluated steps (the seeds are the arrays' own axis)."""
        return {
            "name": Axis("architecture", self.architectures, "is not in this grid", "the grid"),
            "depth": Axis("depth", self.depths, "was not trained", "the grid"),
            "lr": Axis("learning rate", self.lrs, "was not trained", "the grid", close=True),
            "step": Axis("step", self.eval_steps, "was not evaluated", "the grid"),
        }

    def _get(self, table: dict[str, np.ndarray], name: str) -> np.ndarray:
        return table[Axis("architecture", tuple(table), "is not in this grid", "the grid").check(name)]

    def _index(self, depth: int, lr: float, step: int | None = None) -> tuple[int, int, int]:
        d, j, k = self.locate(depth=depth, lr=lr, step=self.steps if step is None else step)
        return d, j, k

    def final(self, name: str, step: int | None = None) -> np.ndarray:
        """(depths, lrs, seeds): test accuracy after ``step`` steps (default: all), NaN where diverged."""
        (k,) = self.locate(step=self.steps if step is None else step)
        return self._get(self.test_acc, name)[..., k]

    def at(self, name: str, depth: int, lr: float, step: int | None = None) -> np.ndarray:
        """(seeds,) test accuracies of ``name`` at ``depth`` and ``lr`` after ``step`` steps (NaN: diverged)."""
        d, j, k = self._index(depth, lr, step)
        return self._get(self.test_acc, name)[d, j, :, k]

    def scored(self, name: str, depth: int, lr: float, step: int | None = None) -> np.ndarray:
        """(seeds,) as :meth:`at`, a diverged run counting as accuracy 0."""
        return np.nan_to_num(self.at(name, depth, lr, step), nan=0.0)

    def diverged(self, name: str) -> np.ndarray:
        """(depths, lrs, seeds) booleans: the run's loss stopped being finite."""
        return self._get(self.diverged_at, name) >= 0

    def diverged_runs(self, name: str, depth: int, lr: float) -> np.ndarray:
        """(seeds,) booleans: which seeds diverged at ``depth`` and ``lr``."""
        d, j, _ = self._index(depth, lr)
        return self.diverged(name)[d, j]

    def trained(self, name: str, step: int | None = None) -> np.ndarray:
        """(depths, lrs, seeds) booleans: the run ended at ``min_accuracy`` or more (a diverged run did not)."""
        return np.nan_to_num(self.final(name, step), nan=-1.0) >= self.min_accuracy

    def count(self, name: str, step: int | None = None) -> np.ndarray:
        """(depths, lrs): how many seeds trained."""
        return self.trained(name, step).sum(-1)

    def accuracy_at_freeze(self, name: str, depth: int, lr: float) -> np.ndarray:
        """(seeds,) test accuracies of ``name`` (an architecture with ``freeze_at``) at its freeze step."""
        if name not in self.at_freeze:
            raise ValueError(f"{name!r} has no freeze step here; with one: {', '.join(self.at_freeze) or 'none'}")
        d, j, _ = self._index(depth, lr)
        return self.at_freeze[name][d, j]

    def correct_at(self, name: str, depth: int, lr: float) -> np.ndarray:
        """(seeds, test examples) booleans: each test example classified correctly after the last step."""
        d, j, _ = self._index(depth, lr)
        return self._get(self.correct, name)[d, j]

    def trainable_lrs(self, name: str, depth: int) -> tuple[float, ...]:
        """The learning rates at which every seed of ``name`` trains at ``depth``."""
        d, _, _ = self._index(depth, self.lrs[0])
        every = self.trained(name)[d].all(-1)
        return tuple(lr for lr, ok in zip(self.lrs, every, strict=True) if ok)

    def trainable_range(self, name: str, depth: int) -> str:
        """The learning rates at which every seed trains, in words: '0.01 to 0.3', '0.1 only',
        'none', or a list where they are not contiguous in the grid."""
        ok = self.trainable_lrs(name, depth)
        if not ok:
            return "none"
        indices = [self.lrs.index(lr) for lr in ok]
        if len(ok) == 1:
            return f"{ok[0]:g} only"
        if indices == list(range(indices[0], indices[-1] + 1)):
            return f"{ok[0]:g} to {ok[-1]:g}"
        return ", ".join(f"{lr:g}" for lr in ok)

    def subset(
        self, names: Sequence[str], *, depths: Sequence[int] | None = None, lrs: Sequence[float] | None = None
    ) -> Grid:
        """The same runs for some architectures, depths and learning rates only."""
        names = tuple(names)
        for name in names:
            self._get(self.test_acc, name)
        depths = tuple(self.depths if depths is None else depths)
        lrs = tuple(self.lrs if lrs is None else lrs)
        d = [self._index(depth, self.lrs[0])[0] for depth in depths]
        j = [self._index(self.depths[0], lr)[1] for lr in lrs]

        def cut(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {n: table[n][np.ix_(d, j)] for n in names if n in table}

        return Grid(
            names,
            depths,
            lrs,
            self.seeds,
            self.steps,
            self.eval_steps,
            cut(self.test_acc),
            cut(self.diverged_at),
            cut(self.at_freeze),
            cut(self.correct),
            self.min_accuracy,
            dict(self.config),
        )

    def join(self, other: Grid) -> Grid:
        """Both grids' architectures in one grid (same depths, learning rates, seeds and steps)."""
        valid.check_type("other", other, Grid, "a Grid")
        if (self.depths, self.lrs, self.seeds, self.steps, self.eval_steps) != (
            other.depths,
            other.lrs,
            other.seeds,
            other.steps,
            other.eval_steps,
        ):
            raise ValueError("can only join grids of the same depths, learning rates, seeds and steps (use subset)")
        if set(self.architectures) & set(other.architectures):
            raise ValueError(f"both grids have {sorted(set(self.architectures) & set(other.architectures))}")
        return Grid(
            self.architectures + other.architectures,
            self.depths,
            self.lrs,
            self.seeds,
            self.steps,
            self.eval_steps,
            {**self.test_acc, **other.test_acc},
            {**self.diverged_at, **other.diverged_at},
            {**self.at_freeze, **other.at_freeze},
            {**self.correct, **other.correct},
            self.min_accuracy,
            dict(self.config),
        )

    def table(self, step: int | None = None) -> str:
        """A text table: per architecture, depth and learning rate, the seeds that trained out of all
        (a cross per diverged run) and the median test accuracy (%), a diverged run counting as 0."""
        step = self.steps if step is None else step
        head = f"{'architecture':44s} {'depth':>5s}" + "".join(f" {'lr ' + format(lr, 'g'):>12s}" for lr in self.lrs)
        rows = [head]
        for name in self.architectures:
            for d, depth in enumerate(self.depths):
                cells = []
                for j, lr in enumerate(self.lrs):
                    ok = int(self.count(name, step)[d, j])
                    crosses = int(self.diverged(name)[d, j].sum())
                    median = 100 * np.median(self.scored(name, depth, lr, step))
                    cells.append(f" {f'{ok}/{len(self.seeds)} {median:3.0f}%' + ('✗' * min(crosses, 1)):>12s}")
                rows.append(f"{ARCHITECTURES[name].label:44s} {depth:5d}" + "".join(cells))
        return "\n".join(rows)

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN as null); :meth:`from_dict` reads it back."""

        def pack(table: dict[str, np.ndarray]) -> dict:
            return {
                name: {"shape": list(v.shape), "values": _nan_to_none(v.astype(float))} for name, v in table.items()
            }

        return {
            "architectures": list(self.architectures),
            "depths": list(self.depths),
            "lrs": list(self.lrs),
            "seeds": list(self.seeds),
            "steps": self.steps,
            "eval_steps": list(self.eval_steps),
            "min_accuracy": self.min_accuracy,
            "config": self.config,
            "test_acc": pack(self.test_acc),
            "diverged_at": pack(self.diverged_at),
            "at_freeze": pack(self.at_freeze),
            "correct": {
                name: {"shape": list(v.shape), "bits": np.packbits(v.ravel()).tolist()}
                for name, v in self.correct.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> Grid:
        """The grid that :meth:`to_dict` wrote."""

        def unpack(table: dict, dtype: type = float) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for name, entry in table.items():
                values = np.array([np.nan if v is None else v for v in entry["values"]], dtype=float)
                out[name] = values.reshape(entry["shape"]).astype(dtype)
            return out

        correct = {}
        for name, entry in data["correct"].items():
            size = int(np.prod(entry["shape"]))
            bits = np.unpackbits(np.array(entry["bits"], dtype=np.uint8))[:size]
            correct[name] = bits.astype(bool).reshape(entry["shape"])
        return cls(
            tuple(data["architectures"]),
            tuple(data["depths"]),
            tuple(float(v) for v in data["lrs"]),
            tuple(data["seeds"]),
            int(data["steps"]),
            tuple(data["eval_steps"]),
            unpack(data["test_acc"]),
            unpack(data["diverged_at"], int),
            unpack(data["at_freeze"]),
            correct,
            float(data["min_accuracy"]),
            dict(data["config"]),
        )


def _stack_key(name: str) -> tuple:
    arch = ARCHITECTURES[name]
    return (arch.residual, arch.norm, arch.order, arch.freeze_at)


@torch.no_grad()
def _correct(stack: StackedMLP, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(models in the stack, examples) booleans: each example classified correctly, in evaluation mode."""
    was_training = stack.training
    stack.eval()
    try:
        return (stack(x).argmax(dim=2) == y).cpu().numpy()
    finally:
        stack.train(was_training)


def grid(
    data: Dataset,
    *,
    architectures: Sequence[str] = RANGE_ARCHITECTURES,
    depths: Sequence[int] = (10, 40, 80),
    lrs: Sequence[float] = LEARNING_RATES,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    steps: int = 200,
    eval_every: int | None = None,
    batch_size: int = 64,
    width: int = 100,
    min_accuracy: float = 0.5,
    freeze_batch: int = 512,
) -> Grid:
    """Train every architecture at every depth and learning rate with every seed (SGD, batches of
    ``batch_size``, ``steps`` steps, the test accuracy measured every ``eval_every`` steps and at the
    end; seed s draws the weights and the batch order, whatever the learning rate). Per depth, the
    architectures of one structure (the same norm, order and freeze step, differing only in their
    initialisation) train as one stack with every learning rate and seed. An architecture with
    ``freeze_at`` gets its batch norms' statistics set at that step from the first ``freeze_batch``
    training examples, then kept fixed (:func:`bn_utils.stacked.set_running_statistics`); a
    data-dependent initialisation is fitted on the same examples."""
    check_dataset("data", data)
    depths = tuple(valid.check_values("depths", depths, lambda n, v: valid.check_int(n, v, 1), distinct=True))
    lrs = tuple(
        float(v)
        for v in valid.check_values("lrs", lrs, lambda n, v: valid.check_number(n, v, 0, low_open=True), distinct=True)
    )
    names = _check_architectures(architectures, training=True)
    seeds = tuple(valid.check_seeds("seeds", seeds))
    valid.check_int("steps", steps)
    eval_every = steps if eval_every is None else valid.check_int("eval_every", eval_every, 1, steps)
    valid.check_int("width", width)
    valid.check_number("min_accuracy", min_accuracy, 0, 1)
    valid.check_int("freeze_batch", freeze_batch, 2, len(data.x_train))
    for name in names:
        freeze_at = ARCHITECTURES[name].freeze_at
        if freeze_at is not None and freeze_at >= steps:
            raise ValueError(f"{name!r} freezes its statistics at step {freeze_at}: train for more steps than that")
    eval_steps = tuple(sorted({0, *range(eval_every, steps + 1, eval_every), steps}))
    device = get_device()
    data = data.to(device)
    init_batch = data.x_train[:freeze_batch]
    shape = (len(depths), len(lrs), len(seeds))
    test_acc = {name: np.full((*shape, len(eval_steps)), np.nan) for name in names}
    diverged_at = {name: np.full(shape, -1, dtype=int) for name in names}
    at_freeze = {name: np.full(shape, np.nan) for name in names if ARCHITECTURES[name].freeze_at is not None}
    correct = {name: np.zeros((*shape, len(data.x_test)), dtype=bool) for name in names}
    groups: dict[tuple, list[str]] = {}
    for name in names:
        groups.setdefault(_stack_key(name), []).append(name)
    runs = [(j, s) for j in range(len(lrs)) for s in range(len(seeds))]
    for d, depth in enumerate(depths):
        for members in groups.values():
            models, run_seeds, run_lrs = [], [], []
            for name in members:
                for j, s in runs:
                    seed_everything(seeds[s])
                    model = build(
                        name, data.input_shape[0], data.num_classes, depth=depth, width=width, init_batch=init_batch
                    )
                    models.append(model.to(device).to(data.x_train.dtype))
                    run_seeds.append(seeds[s])
                    run_lrs.append(lrs[j])
            freeze_at = ARCHITECTURES[members[0]].freeze_at
            frozen_acc: dict[int, float] = {}
            final_correct: dict[int, np.ndarray] = {}

            def on_step(
                stack: StackedMLP,
                step: int,
                freeze_at: int | None = freeze_at,
                frozen_acc: dict[int, float] = frozen_acc,
                final_correct: dict[int, np.ndarray] = final_correct,
            ) -> None:
                if step == freeze_at:
                    set_running_statistics(stack, init_batch)
                    stack.eval()
                    rows = _correct(stack, data.x_test, data.y_test).mean(1)
                    frozen_acc.update(zip(stack.ids, rows.tolist(), strict=True))
                if step == steps:
                    final_correct.update(zip(stack.ids, _correct(stack, data.x_test, data.y_test), strict=True))

            histories = train_stacked(
                models,
                data,
                lrs=run_lrs,
                seeds=run_seeds,
                steps=steps,
                batch_size=batch_size,
                eval_every=eval_every,
                eval_train=False,
                on_step=on_step,
            )
            for i, history in enumerate(histories):
                name, (j, s) = members[i // len(runs)], runs[i % len(runs)]
                diverged_at[name][d, j, s] = -1 if history.diverged_at is None else history.diverged_at
                for step, accuracy in zip(history.eval_steps, history.test_acc, strict=True):
                    test_acc[name][d, j, s, eval_steps.index(step)] = accuracy
                if history.diverged:  # a run that diverged is not evaluated after it
                    test_acc[name][d, j, s, [k for k, e in enumerate(eval_steps) if e > history.diverged_at]] = np.nan
                if name in at_freeze and i in frozen_acc:
                    at_freeze[name][d, j, s] = frozen_acc[i]
                if i in final_correct:
                    correct[name][d, j, s] = final_correct[i]
    config = dict(batch_size=batch_size, width=width, optimizer="sgd", freeze_batch=freeze_batch)
    return Grid(
        names, depths, lrs, seeds, steps, eval_steps, test_acc, diverged_at, at_freeze, correct, min_accuracy, config
    )


@dataclass(frozen=True)
class DepthSweep(LabelledGrid):
    """Final test accuracy after ``steps`` SGD steps at one learning rate, per architecture:
    ``test_acc[name]`` has shape (depths, seeds), NaN where the run diverged (``diverged[name]``
    True, ``diverged_at[name]`` the step, 0 where it did not). A seed *trains* when it ends at
    ``min_accuracy`` or more. ``at_freeze[name]`` (architectures with ``freeze_at`` only): the test
    accuracy at the freeze step, in evaluation mode with the statistics just set (NaN: diverged
    before). :func:`depth_sweep` makes one from a one-learning-rate :class:`Grid`."""

    depths: tuple[int, ...]
    seeds: tuple[int, ...]
    lr: float
    steps: int
    test_acc: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]
    min_accuracy: float = 0.5
    config: dict = field(default_factory=dict)
    diverged_at: dict[str, np.ndarray] = field(default_factory=dict)
    at_freeze: dict[str, np.ndarray] = field(default_factory=dict)
    correct: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures trained, in order."""
        return tuple(self.test_acc)

    def axes(self) -> dict[str, Axis]:
        """The sweep's axes: the architectures trained and the depths (the seeds are the arrays' own axis)."""
        return {
            "name": Axis("architecture", self.architectures, "was not trained", "the sweep"),
            "depth": Axis("depth", self.depths, "was not trained", "the sweep"),
        }

    def _get(self, name: str) -> np.ndarray:
        return self.test_acc[self.axis("name").check(name)]

    def at(self, name: str, depth: int) -> np.ndarray:
        """(seeds,) final test accuracies of ``name`` at ``depth`` (NaN: diverged)."""
        (d,) = self.locate(depth=depth)
        return self._get(name)[d]

    def correct_at(self, name: str, depth: int) -> np.ndarray:
        """(seeds, test examples) booleans: each test example classified correctly at the end."""
        if name not in self.correct:
            raise ValueError(f"{name!r} has no per-example results here")
        (d,) = self.locate(depth=depth)
        return self.correct[name][d]

    def trained(self, name: str) -> np.ndarray:
        """(depths, seeds) booleans: the run ended at ``min_accuracy`` or more (a diverged run did not)."""
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(self._get(name), nan=-1.0) >= self.min_accuracy

    def deepest(self, name: str) -> int:
        """The deepest depth at which every seed trains (0 if none does)."""
        ok = np.all(self.trained(name), axis=1)
        return max((d for d, good in zip(self.depths, ok, strict=True) if good), default=0)

    def median(self, name: str) -> np.ndarray:
        """(depths,) median final test accuracy, a diverged run counting as 0."""
        return np.median(np.nan_to_num(self._get(name), nan=0.0), 1)

    def accuracy_at_freeze(self, name: str, depth: int) -> np.ndarray:
        """(seeds,) test accuracies of ``name`` (an architecture with ``freeze_at``) at its freeze step."""
        if name not in self.at_freeze:
            raise ValueError(f"{name!r} has no freeze step here; with one: {', '.join(self.at_freeze) or 'none'}")
        (d,) = self.locate(depth=depth)
        return self.at_freeze[name][d]

    def table(self) -> str:
        """A text table: per architecture and depth, the median test accuracy (%) and the number of
        seeds that trained / diverged (with the steps at which they diverged), then the deepest of the
        depths run at which every seed trains (0: none)."""
        head = (
            f"{'architecture':42s}"
            + "".join(f" {'depth ' + str(d):>25s}" for d in self.depths)
            + "  deepest of these depths"
        )
        rows = [head]
        for name in self.architectures:
            cells = []
            for i in range(len(self.depths)):
                n_ok, n_div = int(self.trained(name)[i].sum()), int(self.diverged[name][i].sum())
                cell = f"{100 * self.median(name)[i]:.0f}% {n_ok}/{len(self.seeds)}" + (f" ({n_div}✗)" if n_div else "")
                if n_div and name in self.diverged_at:
                    steps = sorted(int(s) for s in self.diverged_at[name][i][self.diverged[name][i]])
                    cell += " at " + ",".join(map(str, steps))
                cells.append(f" {cell:>25s}")
            rows.append(f"{ARCHITECTURES[name].label:42s}" + "".join(cells) + f"  {self.deepest(name):>22d}")
        return "\n".join(rows)


@remembered("experiments.residual")
def depth_sweep(
    data: Dataset,
    *,
    depths: Sequence[int] = (10, 40),
    architectures: Sequence[str] = SWEEP_ARCHITECTURES,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    lr: float = 0.1,
    steps: int = 200,
    batch_size: int = 64,
    width: int = 100,
    min_accuracy: float = 0.5,
    freeze_batch: int = 512,
) -> DepthSweep:
    """:func:`grid` at one learning rate ``lr``: every architecture at every depth with every seed;
    returns the final test accuracies as a :class:`DepthSweep`."""
    valid.check_number("lr", lr, 0, low_open=True)
    result = grid(
        data,
        architectures=architectures,
        depths=depths,
        lrs=(lr,),
        seeds=seeds,
        steps=steps,
        batch_size=batch_size,
        width=width,
        min_accuracy=min_accuracy,
        freeze_batch=freeze_batch,
    )
    names = result.architectures
    diverged = {name: result.diverged(name)[:, 0] for name in names}
    return DepthSweep(
        result.depths,
        result.seeds,
        lr,
        steps,
        {name: result.final(name)[:, 0] for name in names},
        diverged,
        min_accuracy,
        dict(result.config),
        {name: np.where(diverged[name], result.diverged_at[name][:, 0], 0) for name in names},
        {name: values[:, 0] for name, values in result.at_freeze.items()},
        {name: values[:, 0] for name, values in result.correct.items()},
    )


# ---------------------------------------------------------------------------------------------
# The chapter's grids, computed once and stored with the package


STORED_GRIDS = "stored/residual_grids.json"
FREEZE_LRS = (0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class ChapterGrids:
    """The chapter's three grids, on the same seeds: ``ranges`` (every network of
    :data:`RANGE_ARCHITECTURES` at depths 10, 40 and 80 and every learning rate of
    :data:`LEARNING_RATES`, 200 steps), ``freezes`` (the frozen-statistics controls at depths 40 and 80
    and learning rates :data:`FREEZE_LRS`, 200 steps) and ``budget`` (the plain and residual BN
    networks at depth 40 and learning rate 0.1 for 800 steps, evaluated every 200)."""

    ranges: Grid
    freezes: Grid
    budget: Grid
    provenance: dict = field(default_factory=dict)

    def freeze_grid(self) -> Grid:
        """The frozen controls with the residual BN network itself ("never frozen", from ``ranges``)."""
        bn = self.ranges.subset(["residual_bn"], depths=self.freezes.depths, lrs=self.freezes.lrs)
        return self.freezes.join(bn)

    def to_dict(self) -> dict:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return {
            "ranges": self.ranges.to_dict(),
            "freezes": self.freezes.to_dict(),
            "budget": self.budget.to_dict(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ChapterGrids:
        """The grids that :meth:`to_dict` wrote."""
        return cls(
            Grid.from_dict(data["ranges"]),
            Grid.from_dict(data["freezes"]),
            Grid.from_dict(data["budget"]),
            dict(data.get("provenance", {})),
        )


def chapter_grids(data: Dataset, *, seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> ChapterGrids:
    """Train the chapter's three grids (:class:`ChapterGrids`) on ``seeds``: about 10 CPU-minutes on
    one core of the course's machine. The claim tests call the same function. The result is kept
    (:func:`bn_utils.cache.cached`): where this code, data, arithmetic path, thread count and
    processor have computed it before, it is read back instead of trained again (bit for bit what
    training would give; ``scripts/cache_results.py`` stores CI's with the package)."""
    check_dataset("data", data)
    seeds = tuple(valid.check_seeds("seeds", seeds))
    key = cache_key(f"{__name__}.chapter_grids", "experiments.residual", data, {"seeds": seeds})
    return cached(key, lambda: _train_chapter_grids(data, seeds))


def _train_chapter_grids(data: Dataset, seeds: tuple[int, ...]) -> ChapterGrids:
    ranges = grid(data, architectures=RANGE_ARCHITECTURES, depths=(10, 40, 80), lrs=LEARNING_RATES, seeds=seeds)
    freezes = grid(data, architectures=FREEZE_ARCHITECTURES[:-1], depths=(40, 80), lrs=FREEZE_LRS, seeds=seeds)
    budget = grid(
        data,
        architectures=("plain_bn", "residual_bn"),
        depths=(40,),
        lrs=(0.1,),
        seeds=seeds,
        steps=800,
        eval_every=200,
    )
    provenance = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "seeds": list(seeds),
    }
    return ChapterGrids(ranges, freezes, budget, provenance)


def stored_grids() -> ChapterGrids:
    """The chapter's grids on seeds 0-4 as stored with the package (written by
    ``python -m bn_utils.experiments.residual``, which calls :func:`chapter_grids`)."""
    text = resources.files("bn_utils.experiments").joinpath(STORED_GRIDS).read_text(encoding="utf-8")
    return ChapterGrids.from_dict(json.loads(text))


def plot_depth_sweep(result: DepthSweep, *, ax: Axes | None = None, names: Sequence[str] | None = None) -> Axes:
    """Final test accuracy against depth per architecture: every seed as a dot (a diverged run at
    0), the median as a line; the dotted line is ``min_accuracy``."""
    valid.check_type("result", result, DepthSweep, "a DepthSweep from depth_sweep")
    if ax is None:
        _, ax = plt.subplots()
    depths = np.array(result.depths)
    names = names or result.architectures
    for i, name in enumerate(names):
        style = _style(ax, name, i)
        values = np.nan_to_num(result._get(name), nan=0.0)
        offset = (i - (len(names) - 1) / 2) * 0.03
        x = depths * np.exp(offset)
        for s in range(values.shape[1]):
            ax.plot(x, values[:, s], "o", color=style["color"], alpha=0.5, ms=4)
        ax.plot(x, np.median(values, 1), "-", **style)
    ax.axhline(result.min_accuracy, ls=":", color=GUIDE, lw=1)
    ax.set_xscale("log")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("depth (hidden blocks)")
    ax.set_ylabel(f"test accuracy after {result.steps} steps")
    ax.legend(fontsize="small")
    return ax


def plot_at_depth(
    result: DepthSweep, depth: int, *, ax: Axes | None = None, names: Sequence[str] | None = None
) -> Axes:
    """Final test accuracy of every seed at one ``depth``, one column per architecture: a dot per
    seed that trained or not, a cross at 0 for a seed that diverged, a bar at the median."""
    valid.check_type("result", result, DepthSweep, "a DepthSweep from depth_sweep")
    names = list(names or result.architectures)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize("bars", len(names)))
    for i, name in enumerate(names):
        style = _style(ax, name, i)
        values, crashed = result.at(name, depth), result.diverged[name][result.depths.index(depth)]
        jitter = np.linspace(-0.15, 0.15, len(values))
        ax.plot(i + jitter[~crashed], values[~crashed], "o", color=style["color"], alpha=0.7)
        ax.plot(i + jitter[crashed], np.zeros(crashed.sum()), "x", color=style["color"], ms=8)
        ax.plot([i - 0.3, i + 0.3], [np.median(np.nan_to_num(values, nan=0.0))] * 2, color=style["color"], lw=2)
    ax.axhline(result.min_accuracy, ls=":", color=GUIDE, lw=1)
    ax.set_xticks(range(len(names)), [ARCHITECTURES[n].label.replace(", ", ",\n") for n in names], fontsize="small")
    ax.set_ylim(-0.05, 1.03)
    ax.set_ylabel(f"test accuracy after {result.steps} steps")
    ax.set_title(f"depth {depth}: dots are seeds, crosses diverged runs, bars medians")
    return ax


def plot_grid(
    result: Grid,
    *,
    names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    step: int | None = None,
    title: str = "",
) -> Figure:
    """One panel per depth: a cell per architecture (rows) and learning rate (columns), coloured by
    the median test accuracy after ``step`` steps (a diverged run counting as 0) and labelled with
    the number of seeds that trained (ended at ``min_accuracy`` or more) and the median; a cross
    marks a cell where some seed diverged."""
    valid.check_type("result", result, Grid, "a Grid from grid or chapter_grids")
    names = list(names or result.architectures)
    labels = list(labels or [ARCHITECTURES[n].label for n in names])
    if len(labels) != len(names):
        raise ValueError(f"need one label per architecture: {len(names)} architectures, {len(labels)} labels")
    step = result.steps if step is None else step
    fig, axes = plt.subplots(
        1,
        len(result.depths),
        figsize=grid_figsize(len(result.lrs) * len(result.depths), len(names)),
        squeeze=False,
        sharey=True,
    )
    cmap = plt.get_cmap(SEQUENTIAL_CMAP)
    for d, (ax, depth) in enumerate(zip(axes[0], result.depths, strict=True)):
        medians = np.array([[np.median(result.scored(n, depth, lr, step)) for lr in result.lrs] for n in names])
        ax.imshow(medians, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for i, name in enumerate(names):
            ok, crashed = result.count(name, step)[d], result.diverged(name)[d].sum(-1)
            for j in range(len(result.lrs)):
                text = f"{ok[j]}/{len(result.seeds)}\n{100 * medians[i, j]:.0f}%" + (" ✗" if crashed[j] else "")
                colour = ON_LIGHT if medians[i, j] > 0.6 else ON_COLOR
                ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=colour)
        ax.set_xticks(range(len(result.lrs)), [f"{lr:g}" for lr in result.lrs])
        ax.set_xlabel("learning rate")
        ax.set_title(f"depth {depth}", fontsize=10)
        ax.grid(False)
    axes[0][0].set_yticks(range(len(names)), labels, fontsize=8)
    fig.suptitle(
        title
        or f"seeds that train (≥ {100 * result.min_accuracy:.0f}%) and median test accuracy after {step} steps "
        "(✗: some seed diverged)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_budget(
    result: Grid, *, depth: int, lr: float, names: Sequence[str] | None = None, ax: Axes | None = None
) -> Axes:
    """Test accuracy against the number of steps taken, one thin line per seed and a thick median
    per architecture, at one ``depth`` and learning rate; the dotted line is ``min_accuracy``."""
    valid.check_type("result", result, Grid, "a Grid from grid or chapter_grids")
    if ax is None:
        _, ax = plt.subplots(figsize=FIGSIZE["panel"])
    steps = np.array(result.eval_steps)
    for i, name in enumerate(names or result.architectures):
        style = _style(ax, name, i)
        values = np.stack([result.scored(name, depth, lr, step) for step in result.eval_steps], 1)
        for row in values:
            ax.plot(steps, row, color=style["color"], alpha=0.35, lw=1)
        ax.plot(steps, np.median(values, 0), marker="o", lw=2, **style)
    ax.axhline(result.min_accuracy, ls=":", color=GUIDE, lw=1)
    ax.set_xticks(steps)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("steps of SGD")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"depth {depth}, learning rate {lr:g}: thin lines are seeds, thick lines medians", fontsize=10)
    ax.legend(fontsize="small")
    return ax


def plot_class_contrast(result: AtInit, *, names: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
    """Chapter 5's class contrast of the stream after each block at initialisation (for the plain
    stack: of each block's output), median and range over seeds; 0 means the representation no
    longer reflects which inputs are of the same class."""
    valid.check_type("result", result, AtInit, "an AtInit from measure_at_init")
    if ax is None:
        _, ax = plt.subplots(figsize=FIGSIZE["panel"])
    blocks = np.arange(result.depth + 1)
    for i, name in enumerate(names or result.architectures):
        values = result.of(name).contrast
        keep = ~np.all(np.isnan(values), 0)
        _band(ax, blocks[keep], values[:, keep], **_style(ax, name, i))
    ax.axhline(0, color=GUIDE, lw=1)
    ax.set_xlabel("block (0 = after the stem)")
    ax.set_ylabel("class contrast (same − different class)")
    ax.legend(fontsize="small")
    return ax


def explorer_figure(data: Dataset, sweep: DepthSweep, architecture: str, depth: int, seeds: Sequence[int]) -> Figure:
    """One network of the chapter at one depth: its stream's variance at initialisation (a
    forward pass of ``seeds``) and the precomputed sweep's accuracies for that network."""
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_wide"])
    result = measure_at_init(data, depth=depth, architectures=[architecture], seeds=seeds, gradients=False)
    plot_stream_variance(result, ax=axes[0])
    axes[0].set_title(f"{ARCHITECTURES[architecture].label}, {depth} blocks, at initialisation")
    if architecture in sweep.architectures:
        plot_depth_sweep(sweep, ax=axes[1], names=[architecture])
        if depth in sweep.depths:
            axes[1].axvline(depth, color=GUIDE, lw=1)
    else:
        axes[1].text(0.5, 0.5, "not in the precomputed sweep", ha="center", va="center", transform=axes[1].transAxes)
        axes[1].set_axis_off()
    fig.tight_layout()
    return fig


def explorer(
    data: Dataset, sweep: DepthSweep, *, seeds: Sequence[int] = (0, 1, 2, 3, 4), live: bool = True
) -> interactive | FrameExplorer:
    """The network and, live, the depth: the stream's variance at initialisation (computed on
    demand, forward pass only) and the precomputed sweep's accuracies for that network.
    ``live=False``: the kernel-free version for the book (every network at depth 40)."""
    check_dataset("data", data)
    valid.check_type("sweep", sweep, DepthSweep, "a DepthSweep from depth_sweep")
    seeds = tuple(valid.check_seeds("seeds", seeds))
    by_label = {ARCHITECTURES[n].label: n for n in ARCHITECTURES if ARCHITECTURES[n].freeze_at is None}

    def draw(label: str, depth: int = 40) -> Figure:
        return explorer_figure(data, sweep, by_label[label], depth, seeds)

    start = {"network": ARCHITECTURES["residual_bn"].label}
    if live:
        controls: dict[str, Sequence[object]] = {"network": list(by_label), "depth": [5, 10, 20, 40, 80, 160]}
        return live_explorer(draw, controls, start={**start, "depth": 40})
    return frame_explorer(
        draw, {"network": list(by_label)}, start=start, title="the residual stream at depth 40: network"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bn_utils.experiments.residual``: compute the chapter's grids on seeds 0-4 with
    :func:`chapter_grids` and store them with the package (:data:`STORED_GRIDS`)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0-4)")
    parser.add_argument("--out", default=None, help="where to write the JSON (default: the stored file)")
    args = parser.parse_args(argv)
    seeds = [int(v) for v in args.seeds.split(",")]
    start = time.process_time()
    grids = chapter_grids(load_digits(), seeds=seeds)
    grids = ChapterGrids(
        grids.ranges,
        grids.freezes,
        grids.budget,
        {**grids.provenance, "cpu_seconds": round(time.process_time() - start)},
    )
    out = args.out or str(resources.files("bn_utils.experiments").joinpath(STORED_GRIDS))
    with open(out, "w", encoding="utf-8") as stream:
        json.dump(grids.to_dict(), stream, separators=(",", ":"))
        stream.write("\n")
    print(f"wrote {out} ({grids.provenance['cpu_seconds']} CPU-s)")


if __name__ == "__main__":
    main()
