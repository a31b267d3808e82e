"""Residual networks: what makes deep batch-normalized networks trainable (the chapter "Residual
networks").

Two experiments on the same architectures (:data:`ARCHITECTURES`):

- at initialisation (:func:`measure_at_init` -> :class:`AtInit`): the variance of the residual
  stream block by block, each branch's size relative to the stream it is added to, and each block's
  weight-gradient norm (from :func:`bn_utils.diagnostics.layer_diagnostics`);
- training with depth (:func:`depth_sweep` -> :class:`DepthSweep`): final test accuracy per
  architecture, depth and seed, with SGD as in the chapter "Deep-network gradient flow". Networks of
  one structure and depth train as one stack (:func:`bn_utils.stacked.train_stacked`), so the
  architectures that differ only in their initialisation share a stack.

The control ``residual_bn_frozen`` is the residual BN network whose batch norms stop using batch
statistics after ``freeze_at`` steps: at that step each batch norm's running statistics are set from
one batch of ``freeze_batch`` training examples, and from then on each normalizes with those fixed
statistics (its gamma and beta still train), while training goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .. import _validate as valid
from ..data import Dataset, check_dataset
from ..diagnostics import layer_diagnostics
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..layers import _BatchNorm
from ..models import ResidualMLP, hidden_blocks, make_mlp, make_residual_mlp
from ..stacked import StackedMLP, evaluate_stacked, train_stacked
from ..style import FIGSIZE, GUIDE, color_for, figsize, series_color
from ..training import get_device, seed_everything

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "ARCHITECTURES",
    "SWEEP_ARCHITECTURES",
    "Architecture",
    "build",
    "AtInit",
    "measure_at_init",
    "DepthSweep",
    "depth_sweep",
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
    its batch norms' use of batch statistics after that many steps."""

    label: str
    color: str
    residual: bool
    norm: str
    branch_init: str = "default"
    order: str = "pre"
    freeze_at: int | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "plain_bn": Architecture("plain BN stack", color_for("batch"), False, "batch"),
    "residual_none": Architecture("residual, no norm", color_for("none"), True, "none"),
    "residual_bn": Architecture("residual BN", series_color(0), True, "batch"),
    "residual_bn_zero": Architecture("residual BN, zero branches", series_color(1), True, "batch", "zero"),
    "residual_scaled": Architecture("residual, no norm, 1/√depth", series_color(2), True, "none", "scaled"),
    "residual_bn_like": Architecture("residual, no norm, BN's scaling", series_color(3), True, "none", "bn_like"),
    "residual_bn_frozen": Architecture(
        "residual BN, statistics frozen at step 10", series_color(4), True, "batch", freeze_at=10
    ),
}
# the five architectures of the depth sweep (the others are controls)
SWEEP_ARCHITECTURES = ("plain_bn", "residual_none", "residual_bn", "residual_bn_zero", "residual_scaled")


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


def build(name: str, in_features: int, num_classes: int, *, depth: int, width: int = 100) -> nn.Module:
    """A fresh network of the architecture ``name`` (see :data:`ARCHITECTURES`) with ``depth``
    hidden blocks (linear layers besides the stem and head) of ``width`` units."""
    _check_architectures([name], training=True)
    arch = ARCHITECTURES[name]
    if not arch.residual:
        return make_mlp(in_features, num_classes, depth=depth, width=width, norm=arch.norm)
    return make_residual_mlp(
        in_features,
        num_classes,
        depth=depth,
        width=width,
        norm=arch.norm,
        order=arch.order,
        branch_init=arch.branch_init,
    )


def _median_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.nanmedian(values, 0), np.nanmin(values, 0), np.nanmax(values, 0)


# ---------------------------------------------------------------------------------------------
# At initialisation


@dataclass(frozen=True)
class AtInit:
    """Networks of ``depth`` blocks at initialisation, one per seed, on one batch of training
    examples in training mode. Arrays per architecture, rows = seeds: ``stream_var`` (seeds, depth
    + 1), the variance over the batch of each unit of the stream, averaged over units, after the stem
    and after each block (for the plain stack: its input-side first block's output, and so on:
    ``stream_var[:, 0]`` is NaN); ``branch_var`` (seeds, depth), the same for each branch's output
    (NaN for the plain stack); ``gradient_norm`` (seeds, depth), each block's weight-gradient norm."""

    depth: int
    seeds: tuple[int, ...]
    stream_var: dict[str, np.ndarray]
    branch_var: dict[str, np.ndarray]
    gradient_norm: dict[str, np.ndarray]

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures measured, in order."""
        return tuple(self.stream_var)

    def _get(self, table: dict[str, np.ndarray], name: str) -> np.ndarray:
        if name not in table:
            raise ValueError(f"{name!r} was not measured; measured: {', '.join(table)}")
        return table[name]

    def variance_growth(self, name: str) -> np.ndarray:
        """(seeds,): the stream's variance after the last block over its variance after the stem."""
        var = self._get(self.stream_var, name)
        return var[:, -1] / var[:, 0]

    def growth_per_block(self, name: str) -> np.ndarray:
        """(seeds,): the geometric mean of the factor by which the stream's variance grows per block."""
        return self.variance_growth(name) ** (1 / self.depth)

    def branch_ratio(self, name: str) -> np.ndarray:
        """(seeds, depth): each branch's variance over the variance of the stream it is added to."""
        return self._get(self.branch_var, name) / self._get(self.stream_var, name)[:, :-1]

    def gradient_ratio(self, name: str) -> np.ndarray:
        """(seeds,): the first block's weight-gradient norm over the last block's (chapter 5's ratio)."""
        norm = self._get(self.gradient_norm, name)
        return norm[:, 0] / norm[:, -1]


def _unit_variance(h: torch.Tensor) -> float:
    return h.detach().double().var(0).mean().item()


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
) -> AtInit:
    """:class:`AtInit` of each architecture at ``depth`` blocks, on the first ``batch_size``
    training examples; seed s draws the weights of every architecture from ``seed_everything(s)``.
    ``gradients=False`` skips the backward pass (``gradient_norm`` is then NaN)."""
    check_dataset("data", data)
    valid.check_int("depth", depth, 2)
    valid.check_int("width", width)
    valid.check_int("batch_size", batch_size, 2, len(data.x_train))
    names = _check_architectures(architectures, training=False)
    seeds = tuple(valid.check_seeds("seeds", seeds))
    device = get_device()
    x, y = data.x_train[:batch_size].to(device), data.y_train[:batch_size].to(device)
    stream_var, branch_var, gradient_norm = {}, {}, {}
    for name in names:
        streams = np.full((len(seeds), depth + 1), np.nan)
        branches = np.full((len(seeds), depth), np.nan)
        grads = np.full((len(seeds), depth), np.nan)
        for row, seed in enumerate(seeds):
            seed_everything(seed)
            model = build(name, data.input_shape[0], data.num_classes, depth=depth, width=width).to(device)
            model = model.to(x.dtype).train()
            if gradients:  # on a copy, before the forward pass below updates the running statistics
                with np.errstate(divide="ignore", invalid="ignore"):  # zero branches: update ratio 0/0
                    grads[row] = layer_diagnostics(model, x, y, lr=0.1).gradient_norm
            with torch.no_grad():
                if isinstance(model, ResidualMLP):  # build gives one exactly for the residual architectures
                    hs, bs = model.streams(x)
                    streams[row] = [_unit_variance(h) for h in hs]
                    branches[row] = [_unit_variance(b) for b in bs]
                else:
                    h = x
                    for index, block in enumerate(hidden_blocks(model)):
                        h = block(h)
                        streams[row, index + 1] = _unit_variance(h)
        stream_var[name], branch_var[name], gradient_norm[name] = streams, branches, grads
    return AtInit(depth, seeds, stream_var, branch_var, gradient_norm)


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
        values = result._get(result.stream_var, name)
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
        norm = result._get(result.gradient_norm, name)
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
# Training with depth


@dataclass(frozen=True)
class DepthSweep:
    """Final test accuracy after ``steps`` SGD steps, per architecture: ``test_acc[name]`` has shape
    (depths, seeds), NaN where the run diverged (``diverged[name]`` True, ``diverged_at[name]`` the
    step, 0 where it did not). A seed *trains* when it ends at ``min_accuracy`` or more.
    ``at_freeze[name]`` (architectures with ``freeze_at`` only): the test accuracy at the freeze step,
    in evaluation mode with the statistics just set (NaN: diverged before)."""

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

    @property
    def architectures(self) -> tuple[str, ...]:
        """The architectures trained, in order."""
        return tuple(self.test_acc)

    def _get(self, name: str) -> np.ndarray:
        if name not in self.test_acc:
            raise ValueError(f"{name!r} was not trained; trained: {', '.join(self.test_acc)}")
        return self.test_acc[name]

    def at(self, name: str, depth: int) -> np.ndarray:
        """(seeds,) final test accuracies of ``name`` at ``depth`` (NaN: diverged)."""
        if depth not in self.depths:
            raise ValueError(f"depth {depth} was not trained; depths: {list(self.depths)}")
        return self._get(name)[self.depths.index(depth)]

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
        if depth not in self.depths:
            raise ValueError(f"depth {depth} was not trained; depths: {list(self.depths)}")
        return self.at_freeze[name][self.depths.index(depth)]

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


def _freeze_statistics(stack: StackedMLP, x: torch.Tensor) -> None:
    """Set every batch norm's running statistics of ``stack`` from the batch ``x`` (one pass in
    training mode with momentum 1, no gradient), then put the stack in evaluation mode, where its
    batch norms normalize with those statistics, fixed from then on (gamma and beta still train)."""
    layers = [
        m
        for m in stack._template.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm | _BatchNorm) and m.running_mean is not None
    ]
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 1.0
        with torch.no_grad():
            stack.train()(x)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    stack.eval()


def _stack_key(name: str) -> tuple:
    arch = ARCHITECTURES[name]
    return (arch.residual, arch.norm, arch.order, arch.freeze_at)


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
    """Train every architecture at every depth with every seed (SGD at ``lr``, batches of
    ``batch_size``, ``steps`` steps; seed s draws the weights and the batch order); return the final
    test accuracies. Architectures of one structure (the same norm and order, differing only in
    their initialisation) train together as one stack per depth. An architecture with ``freeze_at``
    gets its batch norms' statistics set at that step from the first ``freeze_batch`` training
    examples, then kept fixed (see :func:`_freeze_statistics`)."""
    check_dataset("data", data)
    depths = tuple(valid.check_values("depths", depths, lambda n, v: valid.check_int(n, v, 1), distinct=True))
    if not depths:
        raise ValueError("need at least one depth")
    names = _check_architectures(architectures, training=True)
    seeds = tuple(valid.check_seeds("seeds", seeds))
    valid.check_number("lr", lr, 0, low_open=True)
    valid.check_int("steps", steps)
    valid.check_int("width", width)
    valid.check_number("min_accuracy", min_accuracy, 0, 1)
    valid.check_int("freeze_batch", freeze_batch, 2, len(data.x_train))
    for name in names:
        freeze_at = ARCHITECTURES[name].freeze_at
        if freeze_at is not None and freeze_at >= steps:
            raise ValueError(f"{name!r} freezes its statistics at step {freeze_at}: train for more steps than that")
    device = get_device()
    data = data.to(device)
    test_acc = {name: np.full((len(depths), len(seeds)), np.nan) for name in names}
    diverged = {name: np.zeros((len(depths), len(seeds)), dtype=bool) for name in names}
    diverged_at = {name: np.zeros((len(depths), len(seeds)), dtype=int) for name in names}
    at_freeze = {
        name: np.full((len(depths), len(seeds)), np.nan) for name in names if ARCHITECTURES[name].freeze_at is not None
    }
    groups: dict[tuple, list[str]] = {}
    for name in names:
        groups.setdefault(_stack_key(name), []).append(name)
    for d, depth in enumerate(depths):
        for members in groups.values():
            models, run_seeds = [], []
            for name in members:
                for seed in seeds:
                    seed_everything(seed)
                    model = build(name, data.input_shape[0], data.num_classes, depth=depth, width=width)
                    models.append(model.to(device).to(data.x_train.dtype))
                    run_seeds.append(seed)
            freeze_at = ARCHITECTURES[members[0]].freeze_at
            frozen_acc: dict[int, float] = {}

            def freeze(
                stack: StackedMLP,
                step: int,
                freeze_at: int | None = freeze_at,
                frozen_acc: dict[int, float] = frozen_acc,
            ) -> None:
                if step == freeze_at:
                    _freeze_statistics(stack, data.x_train[:freeze_batch])
                    accuracy, _ = evaluate_stacked(stack, data.x_test, data.y_test)
                    frozen_acc.update(zip(stack.ids, accuracy.tolist(), strict=True))

            histories = train_stacked(
                models,
                data,
                lrs=[lr] * len(models),
                seeds=run_seeds,
                steps=steps,
                batch_size=batch_size,
                eval_every=steps,
                eval_train=False,
                on_step=freeze if freeze_at is not None else None,
            )
            for i, history in enumerate(histories):
                name, s = members[i // len(seeds)], i % len(seeds)
                diverged[name][d, s] = history.diverged
                diverged_at[name][d, s] = history.diverged_at or 0
                if name in at_freeze and i in frozen_acc:
                    at_freeze[name][d, s] = frozen_acc[i]
                if not history.diverged:
                    test_acc[name][d, s] = history.test_acc[-1]
    config = dict(batch_size=batch_size, width=width, optimizer="sgd")
    config["freeze_batch"] = freeze_batch
    return DepthSweep(depths, seeds, lr, steps, test_acc, diverged, min_accuracy, config, diverged_at, at_freeze)


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
