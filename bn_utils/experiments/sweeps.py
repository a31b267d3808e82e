"""Sweeps over one training setting (learning rate, initial weight scale), with and without BN.

:func:`run_sweep` trains a deep MLP at every value of the setting, for every norm and seed; all
runs of one norm are stacked into one batched network (see :mod:`bn_utils.stacked`).
:class:`Sweep` answers the chapters' questions from the histories: which values train, the range
in which every seed trains, the best value, and how fast each configuration reaches a target
accuracy. :func:`lr_sweep` (chapter "Faster convergence") and :func:`init_scale_sweep` (chapter
"Initialization robustness") are the two sweeps the course runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _validate as valid
from ..cache import remembered
from ..data import Dataset, check_dataset
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..history import PARAMETER_LABELS, FinalMetric, Sweep, check_accuracies
from ..models import NORM_LAYERS, mlp_for
from ..stacked import StackedMLP, evaluate_stacked, train_stacked
from ..style import FIGSIZE, GUIDE, NORM_LABELS, color_for, plot_histories
from ..training import History, get_device

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "LR_GRID",
    "INIT_SCALE_GRID",
    "DEPTH_GRID",
    "PARAMETER_LABELS",
    "Sweep",
    "run_sweep",
    "lr_sweep",
    "init_scale_sweep",
    "depth_sweep",
    "plot_sweep",
    "plot_sweep_finals",
    "plot_equal_lr",
    "sweep_explorer",
    "sweep_run_figure",
    "SWEEP_LABELS",
]

# 1-3-10 steps from 1e-3 to 10: nine learning rates, about half a decade apart.
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# 1-2-5 steps from 0.1 to 10 times the He (ReLU) or LeCun (tanh, sigmoid) initial weight scale.
INIT_SCALE_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
# Depths (hidden layers) in doublings from 5 to 40.
DEPTH_GRID = (5, 10, 20, 40)
# PARAMETER_LABELS and Sweep live in bn_utils.history (chapter 9 reads its grids as sweeps too)


@remembered("experiments.sweeps")
def run_sweep(
    data: Dataset,
    parameter: str,
    values: Sequence[float],
    *,
    norms: Sequence[str] = ("none", "batch"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    lr: float = 0.1,
    init_scale: float = 1.0,
    head_init_scale: float | None = None,
    depth: int = 10,
    steps: int = 200,
    batch_size: int = 64,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    eval_every: int = 10,
    width: int = 100,
    activation: str = "relu",
    target: float = 0.95,
    min_accuracy: float = 0.5,
    select_on: str = "test",
) -> Sweep:
    """Train a ``depth`` x ``width`` MLP (BN before each activation when ``norm`` is ``batch``)
    for ``steps`` steps at every value of ``parameter`` (``"lr"``, ``"init_scale"`` or
    ``"depth"``; the others are fixed at ``lr``, ``init_scale``, ``depth``; ``head_init_scale``
    as in :func:`bn_utils.models.make_mlp`), for every norm and seed. For a given norm, a seed
    gives the same batch order at every value, and the same initial weights up to their scale,
    so values are compared on paired runs. Networks of one shape train together as one stack.
    Test accuracy is measured every ``eval_every`` steps (training accuracy is not, to save time).
    ``select_on="validation"`` (``data`` from :meth:`~bn_utils.data.Dataset.with_validation`)
    measures the validation accuracy instead, for every selection, and the test accuracy once, at
    the end of training (:meth:`Sweep.test_accuracy`)."""
    check_dataset("data", data)
    for value in values:
        valid.check_number(f"each of the values ({parameter})", value)
    values, seeds = tuple(float(x) for x in values), tuple(seeds)
    if parameter not in PARAMETER_LABELS:
        raise ValueError(f"unknown parameter {parameter!r}; valid names are: {', '.join(PARAMETER_LABELS)}")
    if not values or not seeds or any(x <= 0 for x in values):
        raise ValueError(
            f"need at least one positive {PARAMETER_LABELS[parameter]} and one seed, got {values} and {seeds}"
        )
    if parameter == "depth" and any(x != int(x) for x in values):
        raise ValueError(f"depths must be whole numbers, got {values}")
    if select_on not in ("test", "validation"):
        raise ValueError(f"select_on must be 'test' or 'validation', got {select_on!r}")
    if select_on == "validation" and not data.has_validation:
        raise ValueError("select_on='validation' needs a dataset with a validation set: use data.with_validation()")
    if len(set(values)) < len(values):
        raise ValueError(f"the {PARAMETER_LABELS[parameter]}s must all be different, got {values}")
    valid.check_seeds("seeds", seeds)
    norms = tuple(norms)
    if not norms or len(set(norms)) < len(norms) or any(norm not in NORM_LAYERS for norm in norms):
        raise ValueError(
            f"norms must be a non-empty list of different norm names ({', '.join(sorted(NORM_LAYERS))}), got {norms}"
        )
    for name, value in (("lr", lr), ("init_scale", init_scale)):
        valid.check_number(name, value, 0, low_open=True)
    valid.check_int("depth", depth, 0)
    check_accuracies(target, min_accuracy)
    device = get_device()
    data = data.to(device)
    seen = data.validation_view() if select_on == "validation" else data
    final_test: dict[str, np.ndarray] = {}
    final_correct: dict[str, np.ndarray] = {}
    # a depth sweep changes the networks' shape: one stack per depth; otherwise one stack per norm
    groups = [[v] for v in values] if parameter == "depth" else [list(values)]
    histories: dict[str, list[list[History]]] = {}
    for norm in norms:
        histories[norm] = []
        tests, corrects = [], []
        for group in groups:
            models, run_lrs, run_seeds = [], [], []
            for value in group:
                setting = {"lr": lr, "init_scale": init_scale, "depth": depth, parameter: value}
                for seed in seeds:
                    models.append(
                        mlp_for(
                            data,
                            seed=seed,
                            depth=int(setting["depth"]),
                            width=width,
                            norm=norm,
                            activation=activation,
                            init_scale=setting["init_scale"],
                            head_init_scale=head_init_scale,
                        ).to(device)
                    )
                    run_lrs.append(setting["lr"])
                    run_seeds.append(seed)
            test_at_end = np.full(len(models), np.nan)
            correct_at_end = np.zeros((len(models), len(data.x_test)), dtype=bool)

            def test_once(
                stack: StackedMLP,
                step: int,
                test_at_end: np.ndarray = test_at_end,
                correct_at_end: np.ndarray = correct_at_end,
            ) -> None:
                if select_on == "validation" and step == steps:
                    accuracy, _ = evaluate_stacked(stack, data.x_test, data.y_test)
                    test_at_end[stack.ids] = accuracy.cpu().numpy()
                    stack.eval()
                    with torch.no_grad():
                        predicted = stack(data.x_test).argmax(dim=2)
                    stack.train()
                    correct_at_end[stack.ids] = (predicted == data.y_test).cpu().numpy()

            flat = train_stacked(
                models,
                seen,
                lrs=run_lrs,
                seeds=run_seeds,
                steps=steps,
                batch_size=batch_size,
                optimizer=optimizer,
                momentum=momentum,
                eval_every=eval_every,
                eval_train=False,
                on_step=test_once if select_on == "validation" else None,
            )
            histories[norm] += [flat[i * len(seeds) : (i + 1) * len(seeds)] for i in range(len(group))]
            tests += list(test_at_end.reshape(len(group), len(seeds)))
            corrects += list(correct_at_end.reshape(len(group), len(seeds), -1))
        final_test[norm] = np.array(tests)
        final_correct[norm] = np.array(corrects)
    return Sweep(
        parameter,
        values,
        seeds,
        histories,
        target=target,
        min_accuracy=min_accuracy,
        selected_on=select_on,
        final_test=final_test if select_on == "validation" else None,
        final_correct=final_correct if select_on == "validation" else None,
    )


def lr_sweep(data: Dataset, *, lrs: Sequence[float] = LR_GRID, **kwargs: Any) -> Sweep:
    """:func:`run_sweep` over learning rates (default: ``LR_GRID``) at He initialisation."""
    return run_sweep(data, "lr", lrs, **kwargs)


def init_scale_sweep(
    data: Dataset, *, scales: Sequence[float] = INIT_SCALE_GRID, scale_head: bool = False, **kwargs: Any
) -> Sweep:
    """:func:`run_sweep` over the initial weight scale of the hidden layers (default:
    ``INIT_SCALE_GRID``, times the He/LeCun scale) at a fixed learning rate (``lr``, default
    0.1). The output layer keeps the standard scale unless ``scale_head``: no BN follows it."""
    return run_sweep(data, "init_scale", scales, head_init_scale=None if scale_head else 1.0, **kwargs)


def depth_sweep(data: Dataset, *, depths: Sequence[int] = DEPTH_GRID, **kwargs: Any) -> Sweep:
    """:func:`run_sweep` over the number of hidden layers (default: ``DEPTH_GRID``) at He
    initialisation and a fixed learning rate (``lr``, default 0.1)."""
    return run_sweep(data, "depth", depths, **kwargs)


SWEEP_LABELS = {
    "loss": "final training loss (last epoch)",
    "test_acc": "final test accuracy",
    "test_loss": "final test loss",
}


def _reserve_top(ax: Axes, fraction: float) -> None:
    """Raise the top of the y axis so the current data span only the lower ``fraction``."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, 10 ** (np.log10(low) + (np.log10(high) - np.log10(low)) / fraction))
    else:
        ax.set_ylim(low, low + (high - low) / fraction)


def plot_sweep(
    sweep: Sweep,
    metric: FinalMetric = "test_acc",
    *,
    ax: Axes | None = None,
    title: str | None = None,
    mark: str = "largest",
) -> Axes:
    """Final ``metric`` against the swept setting, one line per norm (mean +/- std over the
    seeds that did not diverge), from a :class:`bn_utils.experiments.sweeps.Sweep`. Each value at which
    some seed diverged gets a cross at the top, labelled with how many. Dotted lines mark, per
    norm, the largest value at which every seed trains (``mark="largest"``) or both ends of
    the range in which every seed trains (``mark="range"``). Returns the axes."""
    if mark not in ("largest", "range"):
        raise ValueError(f"mark must be 'largest' or 'range', got {mark!r}")
    if ax is None:
        _, ax = plt.subplots()
    values = np.asarray(sweep.values)
    ax.set_xscale("log")
    if metric.endswith("loss"):
        ax.set_yscale("log")
    for i, norm in enumerate(sweep.norms):
        final = sweep.final(norm, metric)
        alive = ~np.all(np.isnan(final), axis=1)
        with np.errstate(invalid="ignore"):
            mean, std = np.nanmean(final[alive], axis=1), np.nanstd(final[alive], axis=1)
        label = NORM_LABELS.get(norm, norm)
        ax.errorbar(
            values[alive],
            mean,
            yerr=std,
            color=color_for(norm, i),
            marker="o",
            capsize=3,
            label=f"{label} (n={len(sweep.seeds)})",
        )
    _reserve_top(ax, 0.8)  # the data keep the lower 80%; the crosses get the strip above
    crosses = mpl.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for i, norm in enumerate(sweep.norms):
        color, label = color_for(norm, i), NORM_LABELS.get(norm, norm)
        for value, count in zip(values, sweep.diverged(norm).sum(axis=1), strict=True):
            if count:
                y = 0.94 - 0.08 * i
                ax.plot(value, y, marker="x", markersize=9, mew=2.5, color=color, transform=crosses)
                ax.annotate(
                    f"{count}/{len(sweep.seeds)}",
                    (value, y),
                    xycoords=crosses,
                    xytext=(7, -4),
                    textcoords="offset points",
                    fontsize=8,
                    color=color,
                )
        stable = sweep.stable_values(norm)
        if not stable:
            continue
        if mark == "largest":
            ax.axvline(
                max(stable),
                color=color,
                linestyle=":",
                linewidth=1.5,
                label=f"largest stable {sweep.label}, {label}: {max(stable):g}",
            )
        else:
            low, high = min(stable), max(stable)
            for edge in {low, high}:
                ax.axvline(edge, color=color, linestyle=":", linewidth=1.5)
            span = f"{low:g} to {high:g}" if low != high else f"{low:g} only"
            ax.plot([], [], color=color, linestyle=":", linewidth=1.5, label=f"every seed trains, {label}: {span}")
    ax.plot([], [], "kx", mew=2.5, linestyle="none", label="diverged (seeds)")
    ax.set_xlabel(sweep.label)
    ax.set_ylabel(SWEEP_LABELS.get(metric, metric))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_equal_lr(
    sweep: Sweep,
    value: float,
    *,
    levels: Sequence[float] = (0.9, 0.95),
    figsize: tuple[float, float] = FIGSIZE["pair_mid"],
) -> Figure:
    """Every norm of ``sweep`` at one swept ``value``: training loss (left, range over seeds, log scale)
    and accuracy on the selection set (right, mean +/- std) with dashed lines at ``levels``; returns the figure."""
    if not isinstance(sweep, Sweep):
        raise ValueError(f"sweep must be a Sweep (from run_sweep / lr_sweep), got {type(sweep).__name__}")
    runs = {norm: sweep.runs(norm, value) for norm in sweep.norms}
    name = f"{sweep.label} {value:g}"
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    plot_histories(runs, "loss", ax=axes[0], title=f"training loss, {name}", band="minmax")
    axes[0].set_yscale("log")
    plot_histories(runs, "test_acc", ax=axes[1], title=f"{sweep.selected_on} accuracy, {name}")
    for level in levels:
        axes[1].axhline(level, color=GUIDE, linestyle="--", linewidth=1)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel(f"{sweep.selected_on} accuracy")
    return fig


def sweep_run_figure(sweep: Sweep, value: float, norm: str) -> Figure:
    """One setting of a sweep: the training-loss and test-accuracy curves of one norm at one
    swept ``value`` (bands over seeds), how many seeds diverged (and where: dotted lines), and how
    fast the target came. The axes span the whole run even when every seed diverged early."""
    runs = sweep.runs(norm, value)
    fig, (left, right) = plt.subplots(1, 2, figsize=FIGSIZE["pair_mid"])
    plot_histories({norm: runs}, "loss", ax=left, title=f"{NORM_LABELS[norm]}, {sweep.label} {value:g}", band="minmax")
    left.set_yscale("log")
    plot_histories({norm: runs}, "test_acc", ax=right)
    right.axhline(sweep.target, color=GUIDE, linestyle="--", linewidth=1)
    right.set_ylim(0, 1)
    planned = max(
        int(h.config.get("steps", h.steps)) for row in sweep.histories.values() for seeds in row for h in seeds
    )
    stopped = [h.diverged_at for h in runs if h.diverged_at is not None]
    for ax in (left, right):
        ax.set_xlim(0, planned)
        for step in stopped:
            ax.axvline(step, color=GUIDE, linestyle=":", linewidth=1)
    steps = sweep.median_steps_to_target(norm, value)
    target = f"{100 * sweep.target:.0f}%"
    reached = (
        f"{target} after {steps:.0f} steps (median)" if np.isfinite(steps) else f"median seed never reached {target}"
    )
    right.set_title(f"{len(stopped)}/{len(runs)} seeds diverged; {reached}", fontsize=10)
    return fig


def sweep_explorer(sweep: Sweep, *, live: bool = True) -> interactive | FrameExplorer:
    """The swept setting (learning rate or initial weight scale) and the norm, over a precomputed
    :class:`Sweep`: the training-loss and test-accuracy curves (bands over seeds) of that setting,
    with how many seeds diverged and how fast the target came. ``live=False`` gives the kernel-free
    version for the book (every setting drawn in advance)."""
    missing = [norm for norm in ("none", "batch") if norm not in sweep.norms]
    if missing:
        raise ValueError(f"the explorer needs a sweep of 'none' and 'batch'; this one lacks {missing}")
    controls: dict[str, Sequence[object]] = {sweep.label: list(sweep.values), "norm": ["none", "batch"]}
    start = {sweep.label: sweep.values[len(sweep.values) // 2], "norm": "batch"}

    def draw(value: float, norm: str) -> Figure:
        return sweep_run_figure(sweep, value, norm)

    if live:
        return live_explorer(draw, controls, start=start)
    return frame_explorer(draw, controls, start=start, title=f"{sweep.label} and norm: training curves over seeds")


def plot_sweep_finals(
    sweep: Sweep,
    *,
    titles: tuple[str, str] | None = None,
    mark: str = "range",
    ticks: Sequence[float] | None = None,
) -> Figure:
    """:func:`plot_sweep` of the final accuracy (left, on the set the sweep selects on) and the final
    training loss (right), with one legend under the left panel; ``ticks`` labels the swept values
    themselves (e.g. depths) instead of powers of ten. Returns the figure."""
    if not isinstance(sweep, Sweep):
        raise TypeError(f"plot_sweep_finals needs a Sweep (from run_sweep / lr_sweep), got {type(sweep).__name__}")
    accuracy_title = f"final {sweep.selected_on} accuracy"
    titles = titles or (accuracy_title, "final training loss")
    if len(titles) != 2:
        raise ValueError(f"titles must be two titles (accuracy panel, loss panel), got {titles!r}")
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_wide"])
    plot_sweep(sweep, "test_acc", ax=axes[0], title=titles[0], mark=mark)
    plot_sweep(sweep, "loss", ax=axes[1], title=titles[1], mark=mark)
    axes[0].set_ylabel(accuracy_title)
    axes[1].get_legend().remove()  # one legend, under the left panel, is enough
    if ticks is not None:
        for ax in axes:
            ax.set_xticks(list(ticks), [f"{t:g}" for t in ticks])
            ax.minorticks_off()
    return fig
