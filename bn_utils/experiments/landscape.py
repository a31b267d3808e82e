"""How smooth is the loss along the way training goes? The probes of Santurkar et al. (2018), Figure 4.

At weights w with mini-batch gradient g = grad L(w), walk along the descent direction and, for
each step size eta, look at the loss and the gradient at w - eta g:

- **loss range**: max over eta of L(w - eta g) minus the min. A small range means a step's
  outcome hardly depends on its size: the landscape is flat and predictable along the step;
- **gradient predictiveness**: ||g - grad L(w - eta g)||. Small means the gradient here still
  says what the gradient there will be, so a larger step is safe;
- **effective beta-smoothness**: max over eta of ||g - grad L(w - eta g)|| / ||eta g||, the
  largest local Lipschitz constant of the gradient seen along the step.

:func:`probe_gradient_step` measures one point; :func:`landscape_run` trains networks (a
:class:`~bn_utils.stacked.StackedMLP`) and probes each one every few steps.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from torch import nn

from .. import _validate as valid
from ..cache import remembered
from ..data import Dataset, check_dataset
from ..models import mlp_for
from ..stacked import StackedMLP, train_stacked
from ..style import FIGSIZE, color_for, plot_band
from ..training import History, get_device, loss_and_gradients

__all__ = [
    "StepProbe",
    "probe_gradient_step",
    "LandscapeRun",
    "landscape_run",
    "summarize_landscape",
    "LandscapeSummary",
    "GradientScaledSummary",
    "LandscapeAtStep",
    "LandscapeMeasure",
    "LANDSCAPE_MEASURES",
    "ScaledMeasure",
    "SCALED_MEASURES",
    "StepMeasure",
    "beta_by_step_size",
    "BetaBySize",
    "plot_beta_by_step_size",
    "gradient_scaled_landscape",
    "landscape_at_step",
    "beta_per_seed",
    "plot_landscape",
    "plot_landscape_overview",
    "LANDSCAPE_LABELS",
]


@dataclass(frozen=True)
class StepProbe:
    """Loss and gradient change along the negative gradient from one point, one entry per step size."""

    step_sizes: np.ndarray
    loss: float  # L(w)
    gradient_norm: float  # ||g||
    losses: np.ndarray  # L(w - eta g)
    gradient_changes: np.ndarray  # ||g - grad L(w - eta g)||

    @property
    def loss_range(self) -> float:
        """max - min of the loss over the step sizes."""
        return float(self.losses.max() - self.losses.min())

    @property
    def betas(self) -> np.ndarray:
        """||g - g'|| / ||eta g|| at each step size: the local Lipschitz constant of the gradient
        between w and w - eta g."""
        return self.gradient_changes / (self.step_sizes * self.gradient_norm)

    @property
    def beta_smoothness(self) -> float:
        """Effective beta-smoothness: max over step sizes of ||g - g'|| / ||eta g||."""
        return float(np.max(self.betas))


def probe_gradient_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step_sizes: Sequence[float] | np.ndarray, noise_seed: int = 0
) -> StepProbe:
    """Walk from ``model``'s weights along minus the gradient of the loss on (x, y), and record
    the loss and the gradient change at each step size. The model is evaluated in training mode
    (batch statistics, as the optimizer sees it) on a copy, so it is not changed at all."""
    valid.check_module("model", model)
    valid.check_inputs_and_labels(x, y)
    sizes = np.asarray(step_sizes, dtype=float)
    if sizes.ndim != 1 or len(sizes) == 0 or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise ValueError(f"step_sizes must be a non-empty list of finite positive numbers, got {sizes.tolist()}")
    valid.check_seed("noise_seed", noise_seed)
    model = copy.deepcopy(model).train()  # a forward pass in training mode updates running statistics
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    loss, grads = loss_and_gradients(model, x, y, params, noise_seed)
    flat = torch.cat([g.flatten() for g in grads])
    losses, changes = [], []
    for eta in sizes:
        with torch.no_grad():
            for p, p0, g in zip(params, start, grads, strict=True):
                p.copy_(p0 - eta * g)
        loss_there, grads_there = loss_and_gradients(model, x, y, params, noise_seed)
        losses.append(loss_there)
        changes.append((flat - torch.cat([g.flatten() for g in grads_there])).norm().item())
    return StepProbe(sizes, loss, flat.norm().item(), np.array(losses), np.array(changes))


ScaledMeasure = Literal["gradient_norm", "loss_range_per_squared_gradient", "gradient_change_per_gradient"]
"""A landscape measure with the gradient's size divided out: a field of :class:`GradientScaledSummary`."""
SCALED_MEASURES: tuple[ScaledMeasure, ...] = get_args(ScaledMeasure)
"""The landscape measures with the gradient's size divided out (:func:`gradient_scaled_landscape`)."""
LandscapeMeasure = Literal["loss_range", "gradient_change", "beta_smoothness", ScaledMeasure]
"""A measure :meth:`LandscapeRun.per_seed` reads: a field of :class:`LandscapeSummary` or of
:class:`GradientScaledSummary`. mypy checks a literal name; a wrong one at run time is a ``ValueError``."""
LANDSCAPE_MEASURES: tuple[LandscapeMeasure, ...] = get_args(LandscapeMeasure)  # a nested Literal is flattened
"""Every measure :meth:`LandscapeRun.per_seed` reads."""
StepMeasure = Literal["loss_range", "gradient_change", "beta_smoothness", "loss", "gradient_norm"]
"""A measure :func:`landscape_at_step` reads at one checkpoint: a field of :class:`LandscapeAtStep`."""


@dataclass
class LandscapeRun:
    """Training runs of one configuration (one per seed), probed along their trajectories."""

    norm: str
    histories: list[History]
    probe_steps: list[int] = field(default_factory=list)
    probes: list[list[StepProbe]] = field(default_factory=list)  # probes[seed index][checkpoint]

    def measure(self, name: str) -> np.ndarray:
        """(seeds, checkpoints) array of ``loss_range``, ``beta_smoothness`` or
        ``gradient_change`` (the largest ||g - g'|| over step sizes); NaN after a divergence."""
        getters = {
            "loss_range": lambda p: p.loss_range,
            "beta_smoothness": lambda p: p.beta_smoothness,
            "gradient_change": lambda p: float(p.gradient_changes.max()),
        }
        if name not in getters:
            raise ValueError(f"unknown measure {name!r}; valid names are: {', '.join(sorted(getters))}")
        values = np.full((len(self.probes), len(self.probe_steps)), np.nan)
        for row, probes in zip(values, self.probes, strict=True):
            row[: len(probes)] = [getters[name](p) for p in probes]
        return values

    def beta_by_step_size(self) -> np.ndarray:
        """(seeds, checkpoints, step sizes) array of ||g - g'|| / ||eta g|| at each step size
        (the effective beta-smoothness before the max over step sizes); NaN after a divergence."""
        sizes = next((len(p.step_sizes) for probes in self.probes for p in probes), 0)
        values = np.full((len(self.probes), len(self.probe_steps), sizes), np.nan)
        for i, probes in enumerate(self.probes):
            for j, p in enumerate(probes):
                values[i, j] = p.betas
        return values

    def gradient_change_band(self) -> tuple[np.ndarray, np.ndarray]:
        """Per checkpoint, the (min, max) over step sizes of ||g - g'||, averaged over seeds:
        the shaded band of Santurkar et al.'s Figure 4(b)."""
        low = np.full((len(self.probes), len(self.probe_steps)), np.nan)
        high = low.copy()
        for i, probes in enumerate(self.probes):
            low[i, : len(probes)] = [p.gradient_changes.min() for p in probes]
            high[i, : len(probes)] = [p.gradient_changes.max() for p in probes]
        return np.nanmean(low, axis=0), np.nanmean(high, axis=0)

    def per_seed(self, name: str) -> np.ndarray:
        """Per seed, the median over the checkpoints after step 0 of a landscape measure (one of
        :data:`LANDSCAPE_MEASURES`; the gradient-scaled ones divide the gradient's size out first)."""
        if name not in LANDSCAPE_MEASURES:
            raise ValueError(f"unknown landscape measure {name!r}; valid names are: {', '.join(LANDSCAPE_MEASURES)}")
        after = np.asarray(self.probe_steps) > 0
        if name == "gradient_norm":
            values = self.probe_values("gradient_norm")
        elif name == "loss_range_per_squared_gradient":
            values = self.measure("loss_range") / self.probe_values("gradient_norm") ** 2
        elif name == "gradient_change_per_gradient":
            values = self.measure("gradient_change") / self.probe_values("gradient_norm")
        else:
            values = self.measure(name)
        return np.nanmedian(values[:, after], axis=1)

    def probe_values(self, name: str) -> np.ndarray:
        """(seeds, checkpoints) array of the probe's ``loss`` L(w) or ``gradient_norm`` ||g||;
        NaN after a divergence."""
        if name not in ("loss", "gradient_norm"):
            raise ValueError(f"unknown probe value {name!r}; valid names are: gradient_norm, loss")
        values = np.full((len(self.probes), len(self.probe_steps)), np.nan)
        for row, probes in zip(values, self.probes, strict=True):
            row[: len(probes)] = [getattr(p, name) for p in probes]
        return values


@remembered("experiments.landscape")
def landscape_run(
    norm: str,
    data: Dataset,
    *,
    seeds: Sequence[int],
    lr: float = 0.1,
    steps: int = 200,
    batch_size: int = 64,
    probe_every: int = 20,
    probe_batch: int = 256,
    step_multiples: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    depth: int = 10,
    width: int = 100,
) -> LandscapeRun:
    """Train a ``depth`` x ``width`` ReLU MLP (He init) with SGD at ``lr``, one per seed, and every
    ``probe_every`` steps (and at step 0) probe each one with :func:`probe_gradient_step` on a fixed
    batch of ``probe_batch`` training examples, at step sizes ``lr * step_multiples``."""

    check_dataset("data", data)
    seeds = valid.check_seeds("seeds", seeds)
    valid.check_number("lr", lr, 0, low_open=True)
    valid.check_schedule(None, steps, batch_size, len(data.x_train), None)
    valid.check_int("probe_every", probe_every)
    valid.check_int("probe_batch", probe_batch, 1, len(data.x_train))
    valid.check_values("step_multiples", step_multiples, lambda name, m: valid.check_number(name, m, 0, low_open=True))
    device = get_device()
    data = data.to(device)
    models = []
    for seed in seeds:
        models.append(mlp_for(data, seed=seed, depth=depth, width=width, norm=norm).to(device))
    x_probe, y_probe = data.x_train[:probe_batch], data.y_train[:probe_batch]
    step_sizes = lr * np.asarray(step_multiples, dtype=float)
    run = LandscapeRun(norm=norm, histories=[], probes=[[] for _ in seeds])

    def probe(stack: StackedMLP, step: int) -> None:
        if step % probe_every:
            return
        run.probe_steps.append(step)
        for slot, i in enumerate(stack.ids):
            run.probes[i].append(probe_gradient_step(stack.model(slot), x_probe, y_probe, step_sizes))

    run.histories = train_stacked(
        models,
        data,
        lrs=[lr] * len(models),
        seeds=list(seeds),
        steps=steps,
        batch_size=batch_size,
        eval_every=probe_every,
        on_step=probe,
    )
    return run


@dataclass(frozen=True)
class LandscapeSummary:
    """:func:`summarize_landscape`: medians over seeds and checkpoints (after step 0) of the three
    landscape measures."""

    loss_range: float
    beta_smoothness: float
    gradient_change: float


@dataclass(frozen=True)
class GradientScaledSummary:
    """:func:`gradient_scaled_landscape`: medians over seeds and checkpoints (after step 0) of ||g||,
    loss range / ||g||^2 and gradient change / ||g||."""

    gradient_norm: float
    loss_range_per_squared_gradient: float
    gradient_change_per_gradient: float


@dataclass(frozen=True)
class LandscapeAtStep:
    """:func:`landscape_at_step`: medians over seeds, at one checkpoint, of the three landscape
    measures and of the probe's loss L(w) and gradient norm ||g||."""

    loss_range: float
    gradient_change: float
    beta_smoothness: float
    loss: float
    gradient_norm: float


def summarize_landscape(run: LandscapeRun) -> LandscapeSummary:
    """Medians over seeds and checkpoints (after step 0) of the three landscape measures."""
    valid.check_type("run", run, LandscapeRun, "a LandscapeRun (from landscape_run)")
    after_start = np.asarray(run.probe_steps) > 0
    return LandscapeSummary(
        **{
            name: float(np.nanmedian(run.measure(name)[:, after_start]))
            for name in ("loss_range", "beta_smoothness", "gradient_change")
        }
    )


def gradient_scaled_landscape(run: LandscapeRun) -> GradientScaledSummary:
    """Medians over seeds and checkpoints (after step 0) of ||g||, loss range / ||g||^2 and
    gradient change / ||g||: the landscape measures with the gradient's size divided out."""
    valid.check_type("run", run, LandscapeRun, "a LandscapeRun (from landscape_run)")
    after_start = np.asarray(run.probe_steps) > 0
    norm = run.probe_values("gradient_norm")
    scaled = {
        "gradient_norm": norm,
        "loss_range_per_squared_gradient": run.measure("loss_range") / norm**2,
        "gradient_change_per_gradient": run.measure("gradient_change") / norm,
    }
    return GradientScaledSummary(
        **{name: float(np.nanmedian(values[:, after_start])) for name, values in scaled.items()}
    )


def landscape_at_step(run: LandscapeRun, step: int) -> LandscapeAtStep:
    """Medians over seeds, at the checkpoint ``step``, of the three landscape measures and of
    the probe's loss L(w) and gradient norm ||g||."""
    valid.check_type("run", run, LandscapeRun, "a LandscapeRun (from landscape_run)")
    if step not in run.probe_steps:
        raise ValueError(f"step must be a probed step, one of {run.probe_steps}; got {step!r}")
    j = run.probe_steps.index(step)
    values = {name: run.measure(name)[:, j] for name in ("loss_range", "gradient_change", "beta_smoothness")}
    values.update({name: run.probe_values(name)[:, j] for name in ("loss", "gradient_norm")})
    return LandscapeAtStep(**{name: float(np.nanmedian(v)) for name, v in values.items()})


def beta_per_seed(run: LandscapeRun, step_size: float, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Per seed, the median over checkpoints in (``start``, ``stop``] of ||g - g'|| / ||eta g||
    at the probed step size ``step_size``."""
    valid.check_type("run", run, LandscapeRun, "a LandscapeRun (from landscape_run)")
    if not run.probes or not run.probes[0]:
        raise ValueError("the run has no probes")
    sizes = run.probes[0][0].step_sizes
    match = np.flatnonzero(np.isclose(sizes, step_size))
    if not match.size:
        raise ValueError(f"step_size must be one of the probed step sizes {sizes.tolist()}; got {step_size!r}")
    steps = np.asarray(run.probe_steps)
    keep = (steps > start) & (steps <= (steps.max() if stop is None else stop))
    if not keep.any():
        raise ValueError(f"no checkpoint in ({start}, {stop}]; probed at {run.probe_steps}")
    return np.nanmedian(run.beta_by_step_size()[:, keep, match[0]], axis=1)


@dataclass(frozen=True)
class BetaBySize:
    """:func:`beta_by_step_size`: per probed step size (``step_sizes``), the ``median``, 10th
    (``low``) and 90th (``high``) percentile of ||g - g'|| / ||eta g||."""

    step_sizes: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray


def beta_by_step_size(run: LandscapeRun, after: int = 0) -> BetaBySize:
    """Per step size (``step_sizes``), the median, 10th and 90th percentile over seeds and
    checkpoints after step ``after`` of ||g - g'|| / ||eta g||: the effective beta-smoothness
    before the max over step sizes is taken."""
    if not run.probes or not run.probes[0]:
        raise ValueError("the run has no probes")
    keep = np.asarray(run.probe_steps) > after
    if not keep.any():
        raise ValueError(f"no checkpoint after step {after}; probed at {run.probe_steps}")
    values = run.beta_by_step_size()[:, keep].reshape(-1, len(run.probes[0][0].step_sizes))
    return BetaBySize(
        step_sizes=run.probes[0][0].step_sizes.copy(),
        median=np.nanmedian(values, axis=0),
        low=np.nanpercentile(values, 10, axis=0),
        high=np.nanpercentile(values, 90, axis=0),
    )


def plot_beta_by_step_size(
    runs: dict[str, LandscapeRun],
    ax: Axes | None = None,
    title: str | None = None,
    after: int = 0,
    *,
    figsize: tuple[float, float] = FIGSIZE["panel_small"],
) -> Axes:
    """Effective beta-smoothness against step size, one line (median) and band (10th to 90th
    percentile over seeds and checkpoints after step ``after``) per run, in its norm's colour; log-log
    axes, in a new figure of ``figsize`` unless ``ax`` is given. Returns the axes."""
    if not runs:
        raise ValueError("need at least one run to plot")
    ax = ax if ax is not None else plt.subplots(figsize=figsize)[1]

    for i, (label, run) in enumerate(runs.items()):
        summary = beta_by_step_size(run, after=after)
        color = color_for(run.norm, i)
        (line,) = ax.plot(summary.step_sizes, summary.median, marker="o", label=label, color=color)
        ax.fill_between(summary.step_sizes, summary.low, summary.high, color=line.get_color(), alpha=0.2)

    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = summary.step_sizes
    ax.set_xticks(sizes, [f"{s:g}" for s in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("step size η")
    ax.set_ylabel("‖g − g′‖ / ‖η g‖")
    ax.set_title(title or "effective β-smoothness by step size")
    ax.legend()
    return ax


LANDSCAPE_LABELS = {
    "loss_range": "loss range along the gradient",
    "gradient_change": "‖∇L(w) − ∇L(w − η∇L)‖",
    "beta_smoothness": "effective β-smoothness",
}


def plot_landscape(
    runs: Mapping[str, LandscapeRun], measure: str = "loss_range", *, ax: Axes | None = None, title: str | None = None
) -> Axes:
    """A landscape measure over training, one band per entry of ``runs`` (label ->
    :class:`bn_utils.experiments.landscape.LandscapeRun`). ``loss_range`` and ``beta_smoothness``: mean
    and range over seeds; ``gradient_change``: the range over step sizes (as in Santurkar et al.'s
    Figure 4b), averaged over seeds. Log scale; returns the axes."""
    if measure not in LANDSCAPE_LABELS:
        raise ValueError(f"unknown measure {measure!r}; valid names are: {', '.join(sorted(LANDSCAPE_LABELS))}")
    if ax is None:
        _, ax = plt.subplots()
    for i, (label, run) in enumerate(runs.items()):
        color = color_for(run.norm, i)
        steps = np.asarray(run.probe_steps)
        if measure == "gradient_change":
            low, high = run.gradient_change_band()
            ax.fill_between(steps, low, high, color=color, alpha=0.3, linewidth=0)
            ax.plot(steps, high, color=color, label=f"{label} (n={len(run.probes)})")
        else:
            plot_band(ax, steps, run.measure(measure), label=label, color=color, band="minmax")
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())  # label the decades only
    ax.set_xlabel("training step")
    ax.set_ylabel(LANDSCAPE_LABELS[measure])
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


LANDSCAPE_TITLES = {
    "loss_range": "(a) loss range along the gradient",
    "gradient_change": "(b) gradient change over the step sizes",
    "beta_smoothness": "(c) effective β-smoothness",
}


def plot_landscape_overview(
    runs: Mapping[str, LandscapeRun], *, figsize: tuple[float, float] = FIGSIZE["triple"]
) -> Figure:
    """:func:`plot_landscape` of the three measures side by side, (a) loss range, (b) gradient change,
    (c) effective β-smoothness, one band per entry of ``runs`` (label -> run); returns the figure."""
    if not runs or not all(isinstance(run, LandscapeRun) for run in runs.values()):
        raise ValueError("runs must be a non-empty mapping from labels to LandscapeRun (from landscape_run)")
    fig, axes = plt.subplots(1, len(LANDSCAPE_TITLES), figsize=figsize)
    for ax, (measure, title) in zip(axes, LANDSCAPE_TITLES.items(), strict=True):
        plot_landscape(runs, measure, ax=ax, title=title)
    return fig
