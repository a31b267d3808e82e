"""Layer-by-layer diagnostics at initialisation: the experiments of the chapter
"Initialization robustness".

Karpathy-style health checks of a deep network before it has taken a step, one number per hidden
block: how large its activations are, how large the gradient of its weights is, and how much one
SGD step would change those weights relative to their size (the *update ratio*
``lr * ||dL/dW|| / ||W||``; about 1e-3 per step is the usual rule of thumb for healthy training).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _validate as valid
from ..data import Dataset, check_dataset
from ..diagnostics import LayerDiagnostics, layer_diagnostics
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..models import mlp_for
from ..style import FIGSIZE, GUIDE, NORM_LABELS, SEQUENTIAL_CMAP, color_for, figsize, label_for, series_color
from ..training import get_device

if TYPE_CHECKING:
    from ipywidgets import interactive


class _Sweep(Protocol):
    """What :func:`plot_effective_lr_comparison` reads of a sweep (``bn_utils.experiments.sweeps.Sweep``,
    which this module does not import: experiment modules share only through the core)."""

    parameter: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]

    def final(self, norm: str, metric: str = ...) -> np.ndarray: ...


__all__ = [
    "RELU_BN_GRADIENT_GROWTH",
    "LayerDiagnostics",
    "layer_diagnostics",
    "diagnose_at_init",
    "diagnose_init_scales",
    "diagnose_depths",
    "plot_layer_profile",
    "plot_gradient_growth",
    "plot_init_profiles",
    "plot_deep_profile",
    "plot_effective_lr_comparison",
    "init_explorer",
    "PROFILE_LABELS",
    "init_profile_figure",
    "INIT_EXPLORER_SCALES",
    "INIT_EXPLORER_DEPTHS",
]

# Yang et al. (2019): in a deep ReLU network with BN before each ReLU, at initialisation and for
# large batches, the squared gradient norm grows by pi / (pi - 1) per layer going back to the input.
RELU_BN_GRADIENT_GROWTH = math.sqrt(math.pi / (math.pi - 1))


def diagnose_at_init(
    data: Dataset,
    norm: str,
    *,
    seed: int = 0,
    lr: float = 0.1,
    depth: int = 10,
    width: int = 100,
    activation: str = "relu",
    init_scale: float = 1.0,
    scale_head: bool = False,
    batch_size: int = 256,
) -> LayerDiagnostics:
    """:func:`layer_diagnostics` of a freshly initialised ``depth`` x ``width`` MLP whose hidden
    weights are ``init_scale`` times the He/LeCun scale (the head too if ``scale_head``), on the
    first ``batch_size`` training examples. The same seed draws the same weights at every scale."""
    check_dataset("data", data)
    valid.check_int("depth", depth)
    valid.check_int("batch_size", batch_size, 1, len(data.x_train))
    device = get_device()
    x, y = data.x_train[:batch_size].to(device), data.y_train[:batch_size].to(device)
    model = mlp_for(
        data,
        seed=seed,
        depth=depth,
        width=width,
        norm=norm,
        activation=activation,
        init_scale=init_scale,
        head_init_scale=None if scale_head else 1.0,
    )
    return layer_diagnostics(model.to(device), x, y, lr)


def diagnose_init_scales(
    data: Dataset, norm: str, scales: Sequence[float], **kwargs: Any
) -> dict[float, LayerDiagnostics]:
    """:func:`diagnose_at_init` at each hidden weight scale (other arguments as there)."""
    scales = valid.check_values("scales", scales, valid.check_number)
    return {scale: diagnose_at_init(data, norm, init_scale=scale, **kwargs) for scale in scales}


def diagnose_depths(data: Dataset, norm: str, depths: Sequence[int], **kwargs: Any) -> dict[int, LayerDiagnostics]:
    """:func:`diagnose_at_init` at each depth (other arguments as there)."""
    depths = valid.check_values("depths", depths, valid.check_int)
    return {depth: diagnose_at_init(data, norm, depth=depth, **kwargs) for depth in depths}


PROFILE_LABELS = {
    "activation_std": "activation std",
    "gradient_norm": "‖∂L/∂W‖",
    "update_ratio": "update ratio lr·‖∂L/∂W‖ / ‖W‖",
}


def plot_layer_profile(
    diagnostics: Mapping[str, LayerDiagnostics] | Mapping[float, LayerDiagnostics] | Mapping[int, LayerDiagnostics],
    quantity: str = "activation_std",
    *,
    ax: Axes | None = None,
    title: str | None = None,
    key_label: str = "scale",
) -> Axes:
    """One line per entry of ``diagnostics`` (e.g. from
    :func:`bn_utils.experiments.initialization.diagnose_init_scales`): ``quantity`` of each hidden block.
    Numeric keys (scales, depths) are labelled ``"{key_label} {key}"`` and coloured dark to
    light as they grow; norm names (``"none"``, ``"batch"``) get the norm's name and colour.
    Log scale; for the update ratio, a dashed, labelled line marks the 1e-3 rule of thumb.
    Returns the axes."""
    if quantity not in PROFILE_LABELS:
        raise ValueError(f"unknown quantity {quantity!r}; valid names are: {', '.join(PROFILE_LABELS)}")
    if ax is None:
        _, ax = plt.subplots()
    cmap = mpl.colormaps[SEQUENTIAL_CMAP]
    for i, (key, diagnosed) in enumerate(diagnostics.items()):
        values = getattr(diagnosed, quantity)
        color: str | tuple[float, float, float, float]
        if isinstance(key, str):
            color, label = color_for(key, i), NORM_LABELS.get(key, key)
        else:
            color, label = cmap(i / max(len(diagnostics) - 1, 1) * 0.9), f"{key_label} {key:g}"
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, color=color, label=label)
    if quantity == "update_ratio":
        ax.axhline(1e-3, color=GUIDE, linestyle="--", linewidth=1)
        ax.annotate(
            "1e-3 rule of thumb",
            (0, 1e-3),
            xycoords=("axes fraction", "data"),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(PROFILE_LABELS[quantity])
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title)
    return ax


def plot_gradient_growth(
    diagnostics: Mapping[str, Mapping[int, LayerDiagnostics] | Sequence[Mapping[int, LayerDiagnostics]]],
    *,
    ax: Axes | None = None,
    growth: float | None = None,
    title: str | None = None,
) -> Axes:
    """The ratio of the first to the last hidden layer's weight-gradient norm at initialisation
    against depth, one line per norm (``diagnostics[norm][depth]``, e.g. from
    :func:`bn_utils.experiments.initialization.diagnose_depths`; a list of those, one per seed, gives the
    mean and the range over seeds). ``growth``, if given, draws the prediction ``growth ** (depth - 1)``.
    Log scale; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    for i, (norm, by_depth) in enumerate(diagnostics.items()):
        runs = by_depth if isinstance(by_depth, (list, tuple)) else [by_depth]
        depths = np.array(sorted(runs[0]))
        ratios = np.array([[run[d].gradient_ratio for d in depths] for run in runs])
        color = color_for(norm, i)
        ax.plot(
            depths,
            np.exp(np.log(ratios).mean(0)),
            marker="o",
            color=color,
            label=f"{NORM_LABELS.get(norm, norm)} (n={len(runs)})",
        )
        if len(runs) > 1:
            ax.fill_between(depths, ratios.min(0), ratios.max(0), color=color, alpha=0.2, linewidth=0)
    if growth is not None:
        grid = np.linspace(depths.min(), depths.max(), 100)
        ax.plot(
            grid,
            growth ** (grid - 1),
            color=GUIDE,
            linestyle="--",
            linewidth=1,
            label=f"{growth:.2f}^(depth - 1)",
        )
    ax.set_yscale("log")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("gradient norm, first / last layer")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_init_profiles(diagnostics: Mapping[str, Mapping[float, LayerDiagnostics]]) -> Figure:
    """Activation std (top) and update ratio (bottom) per hidden layer: a column per norm, a line per scale."""
    if not isinstance(diagnostics, Mapping) or not diagnostics:
        raise ValueError("plot_init_profiles needs a dict norm -> diagnose_init_scales(...) result")
    norms = list(diagnostics)
    fig, axes = plt.subplots(
        2, len(norms), figsize=figsize("profile_columns", len(norms)), sharex=True, sharey="row", squeeze=False
    )
    for column, norm in enumerate(norms):  # same scales side by side
        name = label_for(norm)
        plot_layer_profile(diagnostics[norm], "activation_std", ax=axes[0, column], title=f"{name}: activation std")
        plot_layer_profile(diagnostics[norm], "update_ratio", ax=axes[1, column], title=f"{name}: update ratio")
    for ax in axes.flat:
        ax.label_outer()
    for ax in axes.flat[1:]:
        ax.get_legend().remove()  # one legend of the scales (top left) serves all panels
    return fig


def plot_deep_profile(diagnostics: Mapping[str, LayerDiagnostics]) -> Figure:
    """Activation std (forward, left) and weight-gradient norm (backward, right) per hidden layer, one line per norm."""
    if not isinstance(diagnostics, Mapping) or not diagnostics:
        raise ValueError("plot_deep_profile needs a dict norm -> LayerDiagnostics (from diagnose_at_init)")
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_wide_low"])
    plot_layer_profile(diagnostics, "activation_std", ax=axes[0], title="forward: activation size")
    plot_layer_profile(diagnostics, "gradient_norm", ax=axes[1], title="backward: weight-gradient size")
    return fig


def plot_effective_lr_comparison(by_scale: _Sweep, by_lr: _Sweep, *, lr: float = 0.1, norm: str = "batch") -> Figure:
    """Final test accuracy against the effective learning rate lr/c²: scale c at ``lr``, and scale 1 at lr/c²."""
    if getattr(by_scale, "parameter", None) != "init_scale" or not callable(getattr(by_scale, "final", None)):
        raise ValueError("by_scale must be a Sweep over init_scale (from init_scale_sweep)")
    if getattr(by_lr, "parameter", None) != "lr" or not callable(getattr(by_lr, "final", None)):
        raise ValueError("by_lr must be a Sweep over lr (from lr_sweep)")
    valid.check_number("lr", lr, 0, low_open=True)
    effective = [lr / scale**2 for scale in by_scale.values]
    fig, ax = plt.subplots(figsize=FIGSIZE["panel"])
    for result, x, label, color in [
        (by_scale, effective, f"scale c, learning rate {lr:g}", color_for(norm)),
        (by_lr, list(by_lr.values), f"scale 1, learning rate {lr:g}/c²", series_color(0)),
    ]:
        final = result.final(norm)
        ax.errorbar(x, final.mean(1), yerr=final.std(1), marker="o", capsize=3, color=color, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(f"effective learning rate of the hidden layers, {lr:g}/c²")
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"{label_for(norm)} network, {len(by_scale.seeds)} seeds")
    ax.legend(loc="lower center")
    return fig


# the initial weight scales the explorer offers (1.2 is the "just above 1" the chapter asks about)
INIT_EXPLORER_SCALES = (0.1, 0.25, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 4.0, 10.0)
INIT_EXPLORER_DEPTHS = (2, 5, 10, 20, 30, 40, 60)


def init_profile_figure(
    profiles: Mapping[str, Mapping[float, LayerDiagnostics]],
    scale: float,
    norm: str,
    title: str,
    quantities: tuple[str, str] = ("activation_std", "update_ratio"),
) -> Figure:
    """Two per-layer ``quantities`` at initialisation of the ``norm`` network at weight scale
    ``scale`` against the standard scale 1 (``profiles[norm][scale]``, e.g. from
    :func:`diagnose_init_scales`). Each panel's range covers every network in ``profiles``, so
    switching the norm never rescales the axis: a flat BN profile looks flat."""
    if norm not in profiles or scale not in profiles[norm] or 1.0 not in profiles[norm]:
        raise ValueError(f"profiles needs the {norm!r} network at scales 1 and {scale}")
    diagnostics = {1.0: profiles[norm][1.0], scale: profiles[norm][scale]}
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_mid"])
    for ax, quantity in zip(axes, quantities, strict=True):
        plot_layer_profile(diagnostics, quantity, ax=ax)
        values = np.concatenate([getattr(d, quantity) for by_scale in profiles.values() for d in by_scale.values()])
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            ax.set_ylim(values.min() / 2, values.max() * 2)
    axes[0].set_title(title)
    axes[1].set_title(
        f"loss at init: {diagnostics[scale].loss:.3g} (scale {scale:g}), {diagnostics[1.0].loss:.3g} (scale 1)"
    )
    return fig


def init_explorer(
    data: Dataset,
    *,
    quantities: tuple[str, str] = ("activation_std", "update_ratio"),
    depth: int = 10,
    scale: float = 2.0,
    norm: str = "none",
    live: bool = True,
) -> interactive | FrameExplorer:
    """The initial weight scale, the norm, and live also the depth and the activation: two
    per-layer ``quantities`` (see :func:`plot_layer_profile`) at initialisation, computed on
    demand (one forward and backward pass per network) against the standard scale 1.
    ``live=False``: the kernel-free version (scale and norm, at this depth, ReLU)."""
    if scale not in INIT_EXPLORER_SCALES or depth not in INIT_EXPLORER_DEPTHS:
        raise ValueError(
            f"scale must be one of {INIT_EXPLORER_SCALES} and depth one of {INIT_EXPLORER_DEPTHS}; "
            f"got scale {scale}, depth {depth}"
        )

    @functools.cache
    def profile(norm: str, scale: float, depth: int, activation: str) -> LayerDiagnostics:
        return diagnose_init_scales(data, norm, [scale], depth=depth, activation=activation)[scale]

    def draw(scale: float, norm: str, depth: int = depth, activation: str = "relu") -> Figure:
        profiles = {name: {s: profile(name, s, depth, activation) for s in (1.0, scale)} for name in ("none", "batch")}
        return init_profile_figure(
            profiles, scale, norm, f"{NORM_LABELS[norm]}, {depth} {activation} layers", quantities
        )

    start = {"weight scale": scale, "norm": norm, "depth": depth}
    if live:
        controls: dict[str, Sequence[object]] = {
            "weight scale": INIT_EXPLORER_SCALES,
            "norm": ["none", "batch"],
            "depth": INIT_EXPLORER_DEPTHS,
            "activation": ["relu", "tanh"],
        }
        return live_explorer(draw, controls, start=start)
    del start["depth"]
    return frame_explorer(
        draw,
        {"weight scale": (0.25, 0.5, 1.0, 1.2, 2.0, 4.0), "norm": ["none", "batch"]},
        start=start,
        title=f"per-layer profile at initialisation, {depth} ReLU layers: weight scale and norm",
    )
