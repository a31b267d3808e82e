"""Chapter 8's figures, typed against :class:`~bn_utils.experiments.batch_size.sweep.SweepResult`,
and its explorer over a precomputed sweep; the axes figure draws
:func:`bn_utils.norm_axes.statistic_support` (which values one statistic averages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ... import _validate as valid
from ... import norms as norm_registry
from ...explorers import FrameExplorer, frame_explorer, live_explorer
from ...norm_axes import AXES_NORMS, statistic_support
from ...style import FAINT, FIGSIZE, GUIDE, OUTLINE, color_for, figsize, label_for, plot_band, series_color
from .sweep import Metric, SweepResult

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "WU_HE_2018",
    "plot_normalization_axes",
    "plot_error_vs_batch_size",
    "plot_wu_he",
    "plot_sweep",
    "plot_mode_gap",
    "plot_statistics_gap",
    "plot_orders",
    "plot_why",
    "EXPLORER_MODES",
    "batch_size_figure",
    "explorer",
]

# Wu & He (2018), Figure 1 / Table 3: ResNet-50 on ImageNet, validation error (%) against images
# per GPU (each GPU normalizes its own batch).
WU_HE_2018: dict[str, dict[int, float]] = {
    "batch": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "group": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
}


def plot_normalization_axes(
    names: Sequence[str] = AXES_NORMS, *, shape: tuple[int, int, int] = (4, 6, 5), num_groups: int = 2
) -> Figure:
    """The N x C x (H*W) cube once per normalization, shaded where one statistic of the output
    at (example 1, channel 2) averages (from :func:`statistic_support`)."""
    names = valid.check_values("names", names, lambda n, v: valid.check_type(n, v, str, "a norm name"))
    fig = plt.figure(figsize=figsize("cubes", len(names)))
    for i, name in enumerate(names):
        mask = statistic_support(name, shape, num_groups=num_groups)
        ax = fig.add_subplot(1, len(names), i + 1, projection="3d")
        # axes: x = positions (H*W), y = examples (N), z = channels (C), as in Wu & He's figure
        filled = np.ones((shape[2], shape[0], shape[1]), dtype=bool)
        # shaded: the norm's colour; the rest nearly transparent, so shading inside the cube shows
        shaded = mask.transpose(2, 0, 1)
        ax.voxels(filled & ~shaded, facecolors=FAINT + "14", edgecolor=GUIDE + "55", linewidth=0.3)
        ax.voxels(shaded, facecolors=color_for(name) + "D9", edgecolor=OUTLINE, linewidth=0.3)
        ax.set_xlabel("H·W", labelpad=-10)
        ax.set_ylabel("N", labelpad=-10)
        ax.set_zlabel("C", labelpad=-10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        grouped = "C/G" in norm_registry.get(name).averages_over  # its number of groups is part of its name
        title = f"{label_for(name)} ({num_groups} groups)" if grouped else label_for(name)
        ax.set_title(title)
        ax.view_init(elev=22, azim=-55)
    fig.tight_layout()
    return fig


def _new_ax(ax: Axes | None, size: tuple[float, float] = FIGSIZE["panel"]) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def _log2_axis(ax: Axes, sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes))
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("batch size (examples per normalization batch)")


def plot_error_vs_batch_size(
    result: SweepResult, *, ax: Axes | None = None, norms: Sequence[str] | None = None, metric: Metric = "eval_acc"
) -> Axes:
    """Test error (%, 100 - accuracy) against batch size, mean over seeds with a +/- 1 std band,
    one line per norm (``metric``: ``eval_acc`` or ``train_mode_acc``)."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    if metric not in ("eval_acc", "train_mode_acc"):
        raise ValueError(f"metric must be 'eval_acc' or 'train_mode_acc', got {metric!r}")
    ax = _new_ax(ax)
    for norm in norms or result.norms:
        values = np.stack([100 * (1 - result.values(norm, size, metric)) for size in result.batch_sizes], axis=1)
        plot_band(ax, np.asarray(result.batch_sizes), values, label=label_for(norm), color=color_for(norm))
    _log2_axis(ax, result.batch_sizes)
    mode = "eval mode" if metric == "eval_acc" else "train mode"
    ax.set_ylabel(f"test error (%), {mode}")
    ax.set_title(f"Digits, {result.epochs} epochs at every batch size ({result.order} batches)", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_wu_he(*, ax: Axes | None = None) -> Axes:
    """Wu & He (2018)'s ResNet-50 ImageNet validation error against images per GPU (:data:`WU_HE_2018`)."""
    ax = _new_ax(ax)
    for norm, errors in WU_HE_2018.items():
        sizes = sorted(errors)
        ax.plot(sizes, [errors[s] for s in sizes], marker="o", label=label_for(norm), color=color_for(norm))
    _log2_axis(ax, sorted(WU_HE_2018["batch"]))
    ax.set_xlabel("images per GPU")
    ax.set_ylabel("validation error (%)")
    ax.set_title("ResNet-50 on ImageNet (Wu & He, 2018)", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_sweep(result: SweepResult, *, norms: Sequence[str] | None = None) -> Figure:
    """Our error against batch size beside Wu & He (2018)'s ImageNet numbers (two panels)."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize("pair_high"))
    plot_error_vs_batch_size(result, ax=left, norms=norms)
    plot_wu_he(ax=right)
    fig.tight_layout()
    return fig


def plot_mode_gap(result: SweepResult, *, ax: Axes | None = None, norms: Sequence[str] | None = None) -> Axes:
    """Train-mode minus eval-mode test accuracy (points) against batch size, per norm: how far the
    statistics a network trained with are from the ones it is tested with."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    ax = _new_ax(ax)
    for norm in norms or result.norms:
        values = np.stack([100 * result.values(norm, size, "mode_gap") for size in result.batch_sizes], axis=1)
        plot_band(ax, np.asarray(result.batch_sizes), values, label=label_for(norm), color=color_for(norm))
    ax.axhline(0, color=GUIDE, linewidth=1)
    _log2_axis(ax, result.batch_sizes)
    ax.set_ylabel("train mode - eval mode (points)")
    ax.legend(fontsize=8)
    return ax


def plot_statistics_gap(result: SweepResult, *, ax: Axes | None = None, norm: str = "batch") -> Axes:
    """RMS of d = (mu_B - mu) / sigma and of log r = log(sigma_B / sigma) at the first norm
    against batch size (log-log, mean over seeds), with a 1 / sqrt(batch size) line through the
    value at the largest batch for comparison."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    ax = _new_ax(ax)
    sizes = np.asarray(result.batch_sizes, dtype=float)
    gaps: tuple[tuple[Metric, str, str], ...] = (
        ("stat_gap_mean", "mean: RMS of d", color_for(norm)),
        ("stat_gap_log_std", "std: RMS of log r", series_color(0)),
    )
    for metric, label, color in gaps:
        values = np.array([result.values(norm, int(s), metric).mean() for s in sizes])
        ax.plot(sizes, values, marker="o", label=label, color=color)
        ax.plot(sizes, values[-1] * np.sqrt(sizes[-1] / sizes), linestyle=":", color=color, linewidth=1.2)
    ax.plot([], [], linestyle=":", color=GUIDE, label="1 / sqrt(batch size)")
    ax.set_yscale("log")
    _log2_axis(ax, result.batch_sizes)
    ax.set_ylabel("batch vs running statistics")
    ax.set_title(f"{label_for(norm)}, first layer, after training", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_orders(
    shuffled: SweepResult,
    sorted_: SweepResult,
    batch_size: int,
    *,
    shuffled_batch_size: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Eval-mode test accuracy with shuffled batches of ``shuffled_batch_size`` (default: the same
    ``batch_size``) and with class-sorted batches of ``batch_size``, per norm (bars: mean over seeds;
    whiskers: min to max)."""
    valid.check_type("shuffled", shuffled, SweepResult, "a SweepResult")
    valid.check_type("sorted_", sorted_, SweepResult, "a SweepResult")
    other = batch_size if shuffled_batch_size is None else shuffled_batch_size
    norms = [n for n in shuffled.norms if n in sorted_.norms]
    ax = _new_ax(ax)
    x = np.arange(len(norms))
    for offset, (result, size, label, hatch) in zip(
        (-0.2, 0.2),
        (
            (shuffled, other, f"shuffled batches of {other}", ""),
            (sorted_, batch_size, f"class-sorted batches of {batch_size}", "//"),
        ),
        strict=True,
    ):
        values = [100 * result.values(n, size) for n in norms]
        means = np.array([v.mean() for v in values])
        errors = np.array([[m - v.min(), v.max() - m] for m, v in zip(means, values, strict=True)]).T
        ax.bar(
            x + offset,
            means,
            width=0.38,
            yerr=errors,
            capsize=3,
            label=label,
            hatch=hatch,
            color=[color_for(n) for n in norms],
            alpha=0.85 if not hatch else 0.45,
            edgecolor=OUTLINE,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([label_for(n) for n in norms])
    ax.set_ylabel("test accuracy (%), eval mode")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"Batches of {batch_size}: random vs class-sorted"
        if other == batch_size
        else f"Random batches of {other} vs class-sorted batches of {batch_size}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower left")
    return ax


EXPLORER_MODES: dict[str, Metric] = {"eval mode": "eval_acc", "train mode": "train_mode_acc"}


def batch_size_figure(result: SweepResult, batch_size: int, mode: str) -> Figure:
    """Test accuracy against batch size for every norm of a precomputed :class:`SweepResult`
    (``mode``: "eval mode", running statistics; "train mode", batch statistics), with one batch
    size marked and each norm's accuracy there (mean ± std over seeds) in the title."""
    if mode not in EXPLORER_MODES:
        raise ValueError(f"mode must be one of {list(EXPLORER_MODES)}, got {mode!r}")
    metric = EXPLORER_MODES[mode]
    fig, ax = plt.subplots(figsize=figsize("frame"))
    plot_error_vs_batch_size(result, ax=ax, norms=list(result.norms), metric=metric)
    ax.axvline(batch_size, color=GUIDE, linestyle="--", linewidth=1)
    accuracies = "; ".join(f"{label_for(n)} {result.estimate(n, batch_size, metric).format()}%" for n in result.norms)
    ax.set_title(f"batch {batch_size} ({mode}): {accuracies}", fontsize=8, wrap=True)
    return fig


def explorer(result: SweepResult, *, live: bool = True) -> interactive | FrameExplorer:
    """Batch size and mode (eval: running statistics; train: batch statistics) over a precomputed
    :class:`SweepResult`: every norm's accuracy against batch size, one batch size marked and read
    out; no training, so each redraw takes well under a second. ``live=False``: the kernel-free
    version for the book."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    controls: dict[str, Sequence[object]] = {"batch size": list(result.batch_sizes), "mode": list(EXPLORER_MODES)}

    def draw(batch_size: int, mode: str) -> Figure:
        return batch_size_figure(result, batch_size, mode)

    if live:
        return live_explorer(draw, controls)
    return frame_explorer(draw, controls, title="test accuracy against batch size: batch size and mode")


def plot_why(result: SweepResult) -> Figure:
    """Two panels: train-mode minus eval-mode accuracy (:func:`plot_mode_gap`) and the gap between
    batch and running statistics (:func:`plot_statistics_gap`), against batch size."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize("pair_high"))
    plot_mode_gap(result, ax=left, norms=[n for n in result.norms if n in ("batch", "batch_renorm", "group")])
    plot_statistics_gap(result, ax=right)
    fig.tight_layout()
    return fig
