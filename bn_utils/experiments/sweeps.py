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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _validate as valid
from ..data import Dataset, check_dataset
from ..explorers import FrameExplorer, frame_explorer, live_explorer
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
PARAMETER_LABELS = {"lr": "learning rate", "init_scale": "initial weight scale", "depth": "depth (hidden layers)"}


@dataclass
class Sweep:
    """Histories of a sweep over ``parameter`` (``"lr"`` or ``"init_scale"``):
    ``histories[norm][i][j]`` is value ``values[i]``, seed ``seeds[j]``.

    A run *trains* when it does not diverge and ends with test accuracy of at least
    ``min_accuracy``; ``target`` is the test accuracy whose steps-to-reach measure speed.

    When ``selected_on`` is ``"validation"``, the histories' ``test_acc`` and ``test_loss`` were
    measured on a validation set held out of the training data, so every selection (which values
    train, the best value, steps to target) uses validation accuracy; ``final_test[norm]``
    (values, seeds) holds the test accuracy at the end of training, read through
    :meth:`test_accuracy` for the selected configurations only, and ``final_correct[norm]``
    (values, seeds, test examples) which test examples each run got right then
    (:meth:`test_correct`: the test set's share of the uncertainty of a difference).
    """

    parameter: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    histories: dict[str, list[list[History]]]
    target: float = 0.95
    min_accuracy: float = 0.5
    selected_on: str = "test"
    final_test: dict[str, np.ndarray] | None = None
    final_correct: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.parameter not in PARAMETER_LABELS:
            raise ValueError(f"unknown parameter {self.parameter!r}; valid names are: {', '.join(PARAMETER_LABELS)}")
        if self.selected_on not in ("test", "validation"):
            raise ValueError(f"selected_on must be 'test' or 'validation', got {self.selected_on!r}")
        if self.selected_on == "validation" and self.final_test is None:
            raise ValueError("a sweep selected on validation needs final_test, the test accuracies at the end")
        _check_accuracies(self.target, self.min_accuracy)

    @property
    def label(self) -> str:
        """What was swept, in words ("learning rate")."""
        return PARAMETER_LABELS[self.parameter]

    @property
    def norms(self) -> list[str]:
        """The normalizations swept, in order."""
        return list(self.histories)

    def _grid(self, norm: str) -> list[list[History]]:
        if norm not in self.histories:
            raise ValueError(f"norm {norm!r} was not swept; the sweep has: {', '.join(self.histories)}")
        return self.histories[norm]

    def _index(self, value: float) -> int:
        if value not in self.values:
            raise ValueError(f"{self.label} {value:g} is not on the grid {[f'{v:g}' for v in self.values]}")
        return self.values.index(value)

    def runs(self, norm: str, value: float) -> list[History]:
        """The histories (one per seed) at one value of the grid."""
        return self._grid(norm)[self._index(value)]

    def diverged(self, norm: str) -> np.ndarray:
        """(values, seeds) booleans: the loss became NaN or infinite."""
        return np.array([[h.diverged for h in row] for row in self._grid(norm)])

    def final(self, norm: str, metric: str = "test_acc") -> np.ndarray:
        """(values, seeds) final values, NaN for diverged runs. ``metric`` is an evaluated metric
        (``test_acc``, ``test_loss``, ...) or ``loss``: the mean training loss of the last epoch."""
        if metric not in ("loss", "train_acc", "test_acc", "test_loss"):
            raise ValueError(f"unknown metric {metric!r}; valid names are: loss, train_acc, test_acc, test_loss")

        def value(h: History) -> float:
            if h.diverged:
                return np.nan
            if metric == "loss":
                return float(np.mean(h.loss[-h.steps_per_epoch :]))
            return getattr(h, metric)[-1]

        return np.array([[value(h) for h in row] for row in self._grid(norm)], dtype=float)

    def trained(self, norm: str) -> np.ndarray:
        """(values, seeds) booleans: no divergence and final test accuracy >= ``min_accuracy``."""
        return ~self.diverged(norm) & (np.nan_to_num(self.final(norm), nan=0.0) >= self.min_accuracy)

    def stable_values(self, norm: str) -> list[float]:
        """The values at which every seed trains."""
        return [v for v, row in zip(self.values, self.trained(norm), strict=True) if row.all()]

    def largest_stable(self, norm: str) -> float | None:
        """The largest value at which every seed trains (None if there is none)."""
        stable = self.stable_values(norm)
        return max(stable) if stable else None

    def steps_to_target(self, norm: str, target: float | None = None) -> np.ndarray:
        """(values, seeds) steps to reach ``target`` (default: the sweep's) test accuracy; inf
        where never reached."""
        target = self.target if target is None else target
        return np.array(
            [[np.inf if (s := h.steps_to(target)) is None else s for h in row] for row in self._grid(norm)], dtype=float
        )

    def best(self, norm: str) -> float | None:
        """The value, among those at which every seed trains, with the fewest median steps to
        ``target``; ties go to the higher median final test accuracy."""
        steps = np.median(self.steps_to_target(norm), axis=1)
        accuracy = self.final(norm)  # no NaN in rows where every seed trained
        candidates = [i for i, row in enumerate(self.trained(norm)) if row.all()]
        if not candidates:
            return None
        return self.values[min(candidates, key=lambda i: (steps[i], -np.median(accuracy[i])))]

    def instability_onset(self, norm: str) -> float | None:
        """The grid value just above the largest stable one (at which some seed fails to train),
        or None if every value up to the end of the grid is stable. The true limit lies between
        :meth:`largest_stable` and this value."""
        stable = self.largest_stable(norm)
        above = [v for v in self.values if stable is None or v > stable]
        return min(above) if above else None

    def test_accuracy(self, norm: str, value: float | None = None) -> np.ndarray:
        """Final test accuracy per seed (NaN if diverged) at ``value`` (default: the best value).
        On a sweep selected on validation, this is the only place test accuracy shows."""
        value = self.best(norm) if value is None else value
        if value is None:
            raise ValueError(f"norm {norm!r} has no value at which every seed trains")
        if self.final_test is None:
            return self.final(norm)[self._index(value)]
        self._grid(norm)
        return self.final_test[norm][self._index(value)]

    def test_correct(self, norm: str, value: float | None = None) -> np.ndarray:
        """(seeds, test examples) booleans: which test examples each seed's network classified
        correctly at the end of training, at ``value`` (default: the best value); False throughout
        for a diverged run. Only on a sweep selected on validation, and, like
        :meth:`test_accuracy`, for the selected configurations only."""
        value = self.best(norm) if value is None else value
        if value is None:
            raise ValueError(f"norm {norm!r} has no value at which every seed trains")
        if self.final_correct is None:
            raise ValueError("per-example test correctness is kept only by a sweep selected on validation")
        self._grid(norm)
        return self.final_correct[norm][self._index(value)]

    def median_steps_to_target(self, norm: str, value: float | None = None, target: float | None = None) -> float:
        """Median over seeds of the steps to ``target`` (default: the sweep's) at ``value``
        (default: the best value)."""
        value = self.best(norm) if value is None else value
        if value is None:
            return np.inf
        return float(np.median(self.steps_to_target(norm, target)[self._index(value)]))


def _check_accuracies(target: object, min_accuracy: object) -> None:
    valid.check_number("target", target, 0, 1)
    valid.check_number("min_accuracy", min_accuracy, 0, 1)


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
    _check_accuracies(target, min_accuracy)
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
    metric: str = "test_acc",
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
