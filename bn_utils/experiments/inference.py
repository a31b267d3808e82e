"""Batch norm at inference: how running estimates track the data, and what goes wrong
when a model predicts in training mode (a forgotten ``model.eval()``)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .. import _validate as valid
from ..cache import remembered
from ..data import Dataset, check_dataset
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..grid import Axis, LabelledGrid
from ..layers import BatchNorm1d
from ..style import FIGSIZE, GUIDE, MODE_COLORS, STATISTICS_COLORS
from ..training import History, get_device, run_seeds

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "ORDERS",
    "ModeAccuracy",
    "RunningStatsTrace",
    "running_stats_trace",
    "accuracy_in_mode",
    "class_sorted",
    "forgotten_eval_study",
    "plot_running_stats",
    "plot_mode_accuracy",
    "plot_running_stats_panels",
    "plot_mode_accuracy_panels",
    "running_stats_explorer",
    "running_stats_figure",
    "RUNNING_STATS_BATCH_SIZES",
    "RUNNING_STATS_MOMENTA",
]

# how forgotten_eval_study orders the test set before cutting it into prediction batches: in the
# test set's own (seeded, random) order, or sorted by class
ORDERS = ("shuffled", "sorted")


@dataclass(frozen=True, eq=False)
class ModeAccuracy(LabelledGrid):
    """Test accuracy in eval mode and in training mode, one value per seed, as measured by
    :func:`forgotten_eval_study`: ``train_mode(batch_size, order)`` is the training-mode accuracy
    when the test set, in ``order`` (one of :data:`ORDERS`), is predicted in batches of
    ``batch_size``. Its axes: ``order`` and ``batch_size`` (the first two of ``train``'s)."""

    eval: np.ndarray  # eval-mode (running statistics) accuracy, one per seed
    seeds: tuple[int, ...]
    batch_sizes: tuple[int, ...]  # the prediction batch sizes measured, in the order asked for
    orders: tuple[str, ...]  # the orders of the test set measured, in the order asked for
    train: np.ndarray  # training-mode accuracy, shape (len(orders), len(batch_sizes), len(seeds))

    def __post_init__(self) -> None:
        if any(order not in ORDERS for order in self.orders):
            raise ValueError(f"orders must be some of {list(ORDERS)}, got {list(self.orders)}")
        expected = (len(self.orders), len(self.batch_sizes), len(self.seeds))
        if np.shape(self.eval) != expected[2:] or np.shape(self.train) != expected:
            raise ValueError(
                f"expected eval of shape {expected[2:]} and train of shape {expected} (orders, batch sizes, "
                f"seeds), got {np.shape(self.eval)} and {np.shape(self.train)}"
            )

    def axes(self) -> dict[str, Axis]:
        return {
            "order": Axis("order", self.orders, "was not measured", "the study"),
            "batch_size": Axis("batch size", self.batch_sizes, "was not measured", "the study"),
        }

    def train_mode(self, batch_size: int, order: str = "shuffled") -> np.ndarray:
        """Training-mode accuracy per seed, the test set in ``order`` predicted in batches of ``batch_size``."""
        return self.train[self.locate(order=order, batch_size=batch_size)]


@dataclass
class RunningStatsTrace:
    """Per-step batch and running estimates of one channel's mean and variance."""

    batch_mean: np.ndarray
    batch_var: np.ndarray  # unbiased, the quantity running_var averages
    running_mean: np.ndarray
    running_var: np.ndarray
    true_mean: float
    true_var: float

    def final_relative_error(self) -> tuple[float, float]:
        """|running - true| / true_std for the mean, and / true_var for the variance, at the end."""
        true_std = self.true_var**0.5
        return (
            abs(self.running_mean[-1] - self.true_mean) / true_std,
            abs(self.running_var[-1] - self.true_var) / self.true_var,
        )


def running_stats_trace(
    *,
    batch_size: int = 32,
    momentum: float | None = 0.1,
    steps: int = 200,
    true_mean: float = 2.0,
    true_std: float = 3.0,
    seed: int = 0,
) -> RunningStatsTrace:
    """Feed ``steps`` Gaussian batches through a 1-channel :class:`BatchNorm1d` in training
    mode and record its running estimates after each step (``momentum=None``: cumulative
    average)."""
    valid.check_int("batch_size", batch_size, 2)
    valid.check_momentum("momentum", momentum, allow_none=True)
    valid.check_int("steps", steps)
    valid.check_number("true_mean", true_mean)
    valid.check_number("true_std", true_std, 0, low_open=True)
    valid.check_seed("seed", seed)
    generator = torch.Generator().manual_seed(seed)
    bn = BatchNorm1d(1, momentum=momentum, affine=False).double()
    batches = true_mean + true_std * torch.randn(steps, batch_size, 1, generator=generator, dtype=torch.float64)
    assert bn.running_mean is not None and bn.running_var is not None  # it tracks running statistics
    rows = []
    for batch in batches:
        bn(batch)
        rows.append((batch.mean().item(), batch.var().item(), bn.running_mean.item(), bn.running_var.item()))
    batch_mean, batch_var, running_mean, running_var = np.array(rows).T
    return RunningStatsTrace(
        batch_mean, batch_var, running_mean, running_var, true_mean=true_mean, true_var=true_std**2
    )


@torch.no_grad()
def accuracy_in_mode(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, train_mode: bool) -> float:
    """Accuracy when predicting ``x`` in chunks of ``batch_size`` with the model in training
    mode (batch statistics: what a forgotten ``model.eval()`` does) or eval mode (running
    statistics). The model itself is left untouched: a copy predicts, so its running
    statistics are not polluted by the test data.

    How it chunks: consecutive, disjoint chunks of ``batch_size`` from the start, as a loader
    without ``drop_last`` would feed a model whose ``eval()`` was forgotten, so the last chunk holds
    what is left (fewer examples); with ``batch_size > 1`` a last chunk of a single example joins the
    chunk before it (training-mode batch norm refuses one example), so only ``batch_size=1``
    predicts alone. Chapter 8's train-mode accuracy chunks differently on purpose
    (:func:`bn_utils.experiments.batch_size.overlapping_chunks`: every chunk exactly the batch size,
    the last overlapping the one before), since it measures the statistics of batch B and nothing
    else. The two give the same chunks only where ``batch_size`` divides ``len(x)`` (or is at least
    ``len(x)``): on the 449 test digits, for the course's batch sizes (2 to 128) only at the whole
    test set; so they are kept apart, each chapter's numbers as measured."""
    valid.check_module("model", model)
    valid.check_inputs_and_labels(x, y)
    valid.check_int("batch_size", batch_size)
    probe = copy.deepcopy(model).train(train_mode)
    starts = list(range(0, len(x), batch_size))
    if batch_size > 1 and len(starts) > 1 and len(x) - starts[-1] == 1:
        starts.pop()
    correct = 0
    with valid.explain_input_mismatch(probe, x):
        for start, end in zip(starts, starts[1:] + [len(x)], strict=True):
            correct += (probe(x[start:end]).argmax(dim=1) == y[start:end]).sum().item()
    return correct / len(x)


def class_sorted(y: torch.Tensor) -> torch.Tensor:
    """Indices that put the examples in class order (stable: within a class, the order given),
    as a loader with ``shuffle=False`` reads a data set stored class by class."""
    if y.dim() != 1:
        raise ValueError(f"expected a 1-D tensor of class labels, got shape {tuple(y.shape)}")
    return torch.sort(y, stable=True).indices


@remembered("experiments.inference")
def forgotten_eval_study(
    build_model: Callable[[], nn.Module],
    data: Dataset,
    *,
    seeds: Sequence[int],
    batch_sizes: Sequence[int],
    orders: Sequence[str] = ("shuffled",),
    **train_kwargs: Any,
) -> ModeAccuracy:
    """Train one model per seed, then measure test accuracy in eval mode and in training
    mode at each prediction batch size. Returns a :class:`ModeAccuracy`, one accuracy per seed
    in each array.

    ``orders`` says how the test set is cut into batches: ``"shuffled"`` in the test set's own
    order, which the seeded split of :func:`~bn_utils.data.load_digits` drew at random, and
    ``"sorted"`` by class first, so that a batch holds one or a few classes. Both orders are
    measured on the same trained models. Unless ``eval_every`` is given, training evaluates only
    at its first and last step (evaluating does not change a model, and the study reads only the
    trained model)."""
    check_dataset("data", data)
    batch_sizes = valid.check_values("batch_sizes", batch_sizes, valid.check_int, distinct=True)
    orders = list(orders)
    if not orders or len(set(orders)) != len(orders) or any(order not in ORDERS for order in orders):
        raise ValueError(f"orders must name each of {', '.join(map(repr, ORDERS))} at most once, got {orders}")
    device = get_device()
    data = data.to(device)
    tests = {"shuffled": (data.x_test, data.y_test)}
    if "sorted" in orders:
        index = class_sorted(data.y_test)
        tests["sorted"] = (data.x_test[index], data.y_test[index])
    eval_acc: list[float] = []
    train_acc: dict[tuple[str, int], list[float]] = {(order, b): [] for order in orders for b in batch_sizes}

    def measure(model: nn.Module, _history: History) -> None:
        eval_acc.append(
            accuracy_in_mode(model, data.x_test, data.y_test, batch_size=len(data.x_test), train_mode=False)
        )
        alone = None  # a batch of one has no batch-mates: its accuracy is the same in any order
        for (order, b), values in train_acc.items():
            if b == 1 and alone is not None:
                values.append(alone)
                continue
            x, y = tests[order]
            values.append(accuracy_in_mode(model, x, y, batch_size=b, train_mode=True))
            if b == 1:
                alone = values[-1]

    train_kwargs.setdefault("eval_every", sys.maxsize)
    run_seeds(build_model, data, seeds, device=device, on_trained=measure, **train_kwargs)
    return ModeAccuracy(
        eval=np.array(eval_acc),
        seeds=tuple(seeds),
        batch_sizes=tuple(batch_sizes),
        orders=tuple(orders),
        train=np.array([[train_acc[order, b] for b in batch_sizes] for order in orders]),
    )


def plot_running_stats(trace: RunningStatsTrace, *, ax: Axes | None = None, label: str = "") -> Axes:
    """The batch means (dots), the running mean (line) and the true mean (dashed) over steps,
    from a :class:`bn_utils.experiments.inference.RunningStatsTrace`; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    steps = np.arange(1, len(trace.batch_mean) + 1)
    ax.plot(steps, trace.batch_mean, ".", color=STATISTICS_COLORS["batch"], alpha=0.5, markersize=4, label="batch mean")
    ax.plot(steps, trace.running_mean, color=STATISTICS_COLORS["running"], label=f"running mean{label}")
    ax.axhline(trace.true_mean, color=GUIDE, linestyle="--", linewidth=1, label="true mean")
    ax.set_xlabel("training step")
    ax.set_ylabel("estimate of the channel mean")
    ax.legend(loc="lower right")
    return ax


def plot_mode_accuracy(
    results: ModeAccuracy,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    orders: Sequence[str] | None = None,
) -> Axes:
    """Test accuracy in training mode against the prediction batch size, with the eval-mode
    accuracy as a reference band; ``results`` as returned by
    :func:`bn_utils.experiments.inference.forgotten_eval_study`. Bars are mean +/- std over seeds, one
    group per order of the test set in ``orders`` (default: every order in ``results``)."""
    if not isinstance(results, ModeAccuracy):
        raise TypeError(
            f"results must be a ModeAccuracy (what forgotten_eval_study returns), got {type(results).__name__}"
        )
    present = [order for order in ORDERS if order in results.orders]
    orders = present if orders is None else list(orders)
    if not orders or any(order not in present for order in orders):
        raise ValueError(f"orders must be some of {present} (the orders in these results), got {orders}")
    if ax is None:
        _, ax = plt.subplots()
    sizes = results.batch_sizes
    styles = {
        "shuffled": (MODE_COLORS["train"], "training mode (forgot model.eval())"),
        "sorted": (MODE_COLORS["train_sorted"], "training mode, test set sorted by class"),
    }
    if len(orders) > 1:
        styles["shuffled"] = (MODE_COLORS["train"], "training mode, test set shuffled")
    width = 0.8 / len(orders)
    for i, order in enumerate(orders):
        accs = [results.train_mode(size, order) for size in sizes]
        offset = (i - (len(orders) - 1) / 2) * width
        ax.bar(
            [j + offset for j in range(len(sizes))],
            [100 * np.mean(acc) for acc in accs],
            width=width if len(orders) > 1 else 0.8,
            yerr=[100 * np.std(acc) for acc in accs],
            capsize=4,
            color=styles[order][0],
            label=styles[order][1],
        )
    eval_mean, eval_std = 100 * np.mean(results.eval), 100 * np.std(results.eval)
    ax.axhspan(eval_mean - eval_std, eval_mean + eval_std, color=MODE_COLORS["eval"], alpha=0.25, linewidth=0)
    ax.axhline(eval_mean, color=MODE_COLORS["eval"], label="eval mode (running statistics)")
    ax.set_xticks(range(len(sizes)), [str(size) for size in sizes])
    ax.set_xlabel("examples predicted together (batch size)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_running_stats_panels(
    traces: Mapping[str, RunningStatsTrace], *, figsize: tuple[float, float] = FIGSIZE["pair_mid"]
) -> Figure:
    """One :func:`plot_running_stats` panel per entry of ``traces`` (title -> trace), side by side
    with a shared y axis; returns the figure."""
    if not traces or not all(isinstance(t, RunningStatsTrace) for t in traces.values()):
        raise ValueError("traces must be a non-empty mapping from titles to RunningStatsTrace")
    fig, axes = plt.subplots(1, len(traces), figsize=figsize, sharey=True, squeeze=False)
    for ax, (title, trace) in zip(axes[0], traces.items(), strict=True):
        plot_running_stats(trace, ax=ax).set_title(title)
    return fig


def plot_mode_accuracy_panels(
    studies: Mapping[str, ModeAccuracy],
    *,
    orders: Sequence[str] | None = None,
    figsize: tuple[float, float] = FIGSIZE["pair"],
) -> Figure:
    """One :func:`plot_mode_accuracy` panel per entry of ``studies`` (title -> results of
    :func:`forgotten_eval_study`), side by side with a shared y axis; returns the figure."""
    if not studies:
        raise ValueError("studies must be a non-empty mapping from titles to forgotten_eval_study results")
    fig, axes = plt.subplots(1, len(studies), figsize=figsize, sharey=True, squeeze=False)
    for ax, (title, results) in zip(axes[0], studies.items(), strict=True):
        plot_mode_accuracy(results, ax=ax, title=title, orders=orders)
    return fig


RUNNING_STATS_BATCH_SIZES = (2, 8, 32, 128)
RUNNING_STATS_MOMENTA: tuple[float | str, ...] = (0.001, 0.01, 0.1, 0.5, "cumulative")


def running_stats_figure(batch_size: int, momentum: float | str, steps: int = 200) -> Figure:
    """The running mean chasing the true mean of a channel whose values are N(2, 3^2), with one
    batch size and momentum (``"cumulative"``: PyTorch's momentum=None, a cumulative average)."""
    cumulative = momentum == "cumulative"
    trace = running_stats_trace(
        batch_size=batch_size, momentum=None if cumulative else float(momentum), steps=steps, seed=0
    )
    fig, ax = plt.subplots(figsize=FIGSIZE["frame"])
    plot_running_stats(trace, ax=ax)
    mean_err, var_err = trace.final_relative_error()
    rule = "cumulative average" if cumulative else f"momentum {momentum:g}"
    ax.set_title(
        f"batch size {batch_size}, {rule}: final error {mean_err:.2f} std (mean), {100 * var_err:.0f}% (variance)",
        fontsize=10,
    )
    return fig


def running_stats_explorer(*, live: bool = True) -> interactive | FrameExplorer:
    """Batch size and momentum (or a cumulative average): watch the running mean chase the true
    mean of a channel whose values are N(2, 3^2). ``live=False`` gives the kernel-free version."""
    controls: dict[str, Sequence[object]] = {"batch size": RUNNING_STATS_BATCH_SIZES, "momentum": RUNNING_STATS_MOMENTA}
    start = {"batch size": 32, "momentum": 0.1}
    if live:
        return live_explorer(running_stats_figure, controls, start=start)
    return frame_explorer(
        running_stats_figure, controls, start=start, title="running statistics: batch size and momentum"
    )
