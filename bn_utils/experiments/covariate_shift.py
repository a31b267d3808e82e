"""Internal covariate shift, measured: the experiments of the chapter "Internal covariate shift".

Two measures of how much a layer's input changes under it while the network trains:

- *distributional* (Ioffe & Szegedy, 2015, Figure 1): percentiles of a sigmoid unit's input
  over training, summarised by :func:`bn_utils.probes.drift_ratio` (total range travelled)
  and :func:`bn_utils.probes.jitter_ratio` (step-to-step restlessness);
- *gradient-based* (Santurkar et al., 2018, Definition 2.1): for layer k, the gradient G_k of
  the loss, and G'_k, the same gradient after every layer before k has taken its SGD step;
  :func:`gradient_shift` returns ||G_k - G'_k|| and cos(G_k, G'_k), after the layers' SGD
  step or, with ``relative_step``, after a step of a fixed size relative to their weights
  (:func:`lower_step_size` says how large the SGD step is, which differs between networks).

And one measure of whether the signal gets through at all: :func:`signal_spread`, each hidden
layer's spread across examples of its units' inputs to the nonlinearity (a small initialisation
shrinks it layer by layer), with :func:`saturated_fraction` for how many of those inputs sit in
the flat tails of the nonlinearity.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
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
from ..models import hidden_blocks, make_mlp
from ..probes import ActivationProbe, ActivationRecord, drift_ratio, jitter_ratio
from ..statistics import MedianRange
from ..style import FIGSIZE, NORM_LABELS, color_for, plot_histories, series_color
from ..training import History, get_device, loss_and_gradients, seed_everything, train

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "ShiftRun",
    "ioffe_mlp",
    "activation_inputs",
    "signal_spread",
    "saturated_fraction",
    "gradient_shift",
    "lower_step_size",
    "covariate_shift_run",
    "ShiftSummary",
    "summarize_runs",
    "plot_percentiles",
    "plot_distribution_snapshots",
    "plot_layer_bars",
    "plot_shift_snapshots",
    "plot_ioffe_figure1",
    "plot_vanishing_signal",
    "plot_init_control",
    "plot_noisy_bn",
    "plot_gradient_shift",
    "plot_gradient_shift_by_init",
    "ShiftSetting",
    "PLAIN_SETTING",
    "precompute_shift_runs",
    "covariate_shift_explorer",
    "shift_setting_figure",
]


def ioffe_mlp(
    norm: str = "none",
    *,
    in_features: int = 64,
    num_classes: int = 10,
    weight_std: float | None = 0.1,
    init_scale: float = 1.0,
    head_init_scale: float | None = None,
    activation: str = "sigmoid",
    norm_kwargs: dict | None = None,
) -> nn.Sequential:
    """The network of the BN paper's Figure 1: 3 hidden layers of 100 sigmoid units, small
    Gaussian initial weights (std ``weight_std``), BN (if any) before each sigmoid.

    ``weight_std=None`` scales the weights by fan-in instead, as :func:`make_mlp` does: std
    ``init_scale * gain / sqrt(fan_in)`` for the hidden layers (gain 1 for sigmoids: LeCun's
    scaling at ``init_scale=1``) and ``head_init_scale / sqrt(fan_in)`` for the head (default:
    ``init_scale``)."""
    if weight_std is not None and (init_scale != 1.0 or head_init_scale is not None):
        raise ValueError(
            "init_scale and head_init_scale only apply with weight_std=None (fan-in scaling); "
            f"got weight_std={weight_std}, init_scale={init_scale}, head_init_scale={head_init_scale}"
        )
    return make_mlp(
        in_features,
        num_classes,
        depth=3,
        width=100,
        norm=norm,
        activation=activation,
        init_scale=init_scale,
        head_init_scale=head_init_scale,
        weight_std=weight_std,
        norm_kwargs=norm_kwargs,
    )


def activation_inputs(model: nn.Sequential, x: torch.Tensor, noise_seed: int = 0) -> list[torch.Tensor]:
    """The input of every hidden block's nonlinearity for the batch ``x``: one (examples, units)
    tensor per block, from a training-mode pass (BN uses the batch's statistics, as during
    training) on a copy, so the model and its running statistics are untouched. Noise (noisy
    BN) is drawn from ``noise_seed`` without touching the global random state."""
    if not isinstance(getattr(model, "blocks", None), nn.Sequential) or not all(
        hasattr(block, "act") for block in hidden_blocks(model)
    ):
        raise ValueError("activation_inputs needs a model from make_mlp (blocks[i].act)")
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a batch of at least 2 flat examples, got shape {tuple(x.shape)}")
    model = copy.deepcopy(model).train()
    inputs: list[torch.Tensor] = []
    handles = [
        block.get_submodule("act").register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
        for block in hidden_blocks(model)
    ]
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(noise_seed)
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def signal_spread(model: nn.Sequential, x: torch.Tensor, noise_seed: int = 0) -> np.ndarray:
    """Per hidden layer: the median over units of the standard deviation, across the examples
    of ``x``, of the unit's input to its nonlinearity. About 1 after BN (with gamma = 1); near 0
    means every example looks alike to that layer: the signal has vanished on the way up."""
    return np.array([np.median(z.std(dim=0).cpu().numpy()) for z in activation_inputs(model, x, noise_seed)])


def saturated_fraction(
    model: nn.Sequential, x: torch.Tensor, threshold: float = 3.0, noise_seed: int = 0
) -> np.ndarray:
    """Per hidden layer: the fraction of (example, unit) inputs to the nonlinearity with
    ``|z| > threshold``. At the default 3, a sigmoid's slope there is below 0.046, less than a
    fifth of its slope at 0: the unit is in a flat tail and passes little gradient."""
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    return np.array(
        [(z.abs() > threshold).float().mean().item() for z in activation_inputs(model, x, noise_seed)], dtype=float
    )


def _layers_with_layers_below(net: nn.Sequential) -> list[nn.Parameter]:
    """The weights of every layer that has a hidden block below it: blocks 2.. and the head."""
    weights = [block.get_parameter("linear.weight") for block in list(hidden_blocks(net))[1:]]
    return [*weights, net.get_parameter("head.weight")]


def _all_gradients(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, noise_seed: int) -> dict[int, torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    return dict(zip(map(id, params), loss_and_gradients(model, x, y, params, noise_seed)[1], strict=True))


def _flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in tensors])


def gradient_shift(
    model: nn.Sequential,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    noise_seed: int = 0,
    *,
    relative_step: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Santurkar et al.'s internal covariate shift of each layer after the first, on one batch.

    For each hidden block k >= 1 and the head: G = d loss / d W_k at the current weights;
    G' = the same gradient after all blocks before k took the SGD step ``-lr * grad``.
    Returns (||G - G'||, cos(G, G')), one entry per such layer. The model is not changed, not
    even its running statistics (copies do the work, in training mode, as during training).

    The SGD step of the blocks below differs in size between networks (see
    :func:`lower_step_size`), and a smaller step shifts less. ``relative_step`` removes that
    difference: the blocks below then move along ``-grad`` by ``relative_step`` times the norm
    of their parameters (``lr`` is then unused), the same relative size in every network.
    """
    if relative_step is not None and relative_step < 0:
        raise ValueError(f"relative_step must be >= 0 (or None for the SGD step), got {relative_step}")
    valid.check_module("model", model)
    if not isinstance(getattr(model, "blocks", None), nn.Sequential) or not len(hidden_blocks(model)):
        raise ValueError("gradient_shift needs an MLP built by make_mlp with at least one hidden block (model.blocks)")
    valid.check_inputs_and_labels(x, y)
    valid.check_number("lr", lr, 0)  # 0 is a valid probe: no step, no shift
    valid.check_seed("noise_seed", noise_seed)
    model = copy.deepcopy(model)  # even a forward pass would update BN's running statistics
    grads = _all_gradients(model, x, y, noise_seed)
    l2, cosine = [], []
    for k, target in enumerate(_layers_with_layers_below(model), start=1):
        below = list(hidden_blocks(model)[:k].parameters())
        if relative_step is None:
            step = lr
        else:
            grad_norm = _flat(grads[id(p)] for p in below).norm().item()
            step = relative_step * _flat(below).norm().item() / max(grad_norm, 1e-30)
        shifted = copy.deepcopy(model)
        with torch.no_grad():
            for original, moved in zip(below, hidden_blocks(shifted)[:k].parameters(), strict=True):
                moved.sub_(step * grads[id(original)])
        moved_target = _layers_with_layers_below(shifted)[k - 1]
        g = grads[id(target)].flatten()
        g_after = loss_and_gradients(shifted, x, y, [moved_target], noise_seed)[1][0].flatten()
        l2.append((g - g_after).norm().item())
        cosine.append(nn.functional.cosine_similarity(g, g_after, dim=0).item())
    return np.array(l2), np.array(cosine)


def lower_step_size(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, lr: float, noise_seed: int = 0
) -> np.ndarray:
    """For each layer that :func:`gradient_shift` measures: the size of the SGD step of the
    blocks below it, relative to their parameters, ``||lr * grad|| / ||params||``."""
    model = copy.deepcopy(model)  # the forward pass would update BN's running statistics
    grads = _all_gradients(model, x, y, noise_seed)
    sizes = []
    for k in range(1, len(hidden_blocks(model)) + 1):
        below = list(hidden_blocks(model)[:k].parameters())
        sizes.append(lr * _flat(grads[id(p)] for p in below).norm().item() / _flat(below).norm().item())
    return np.array(sizes)


@dataclass
class ShiftRun:
    """One training run of the covariate-shift experiment."""

    history: History
    records: list[ActivationRecord]  # per hidden layer: its units' inputs to the sigmoid
    ics_steps: list[int] = field(default_factory=list)
    ics_l2: list[np.ndarray] = field(default_factory=list)  # per checkpoint: one value per layer
    ics_cosine: list[np.ndarray] = field(default_factory=list)
    ics_step_size: list[np.ndarray] = field(default_factory=list)  # per checkpoint: lower_step_size

    def drift(self, layer: int = -1) -> float:
        """Median over units of :func:`drift_ratio` for a hidden layer's sigmoid inputs."""
        return float(np.median(drift_ratio(self.records[layer])))

    def jitter(self, layer: int = -1) -> float:
        """Median over units of :func:`jitter_ratio` for a hidden layer's sigmoid inputs."""
        return float(np.median(jitter_ratio(self.records[layer])))

    def spread(self, layer: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(steps, spread): at every probe record of a hidden layer, the median over units of the
        standard deviation over the batch of the unit's input to the sigmoid (the quantity of
        :func:`signal_spread`, on the training batch). ``steps`` are 1-based: the record at
        step 1 saw the initial weights."""
        record = self.records[layer]
        return record.steps, np.median(record.std, axis=1)


@remembered("experiments.covariate_shift")
def covariate_shift_run(
    norm: str,
    data: Dataset,
    *,
    seed: int,
    steps: int = 600,
    lr: float = 0.5,
    batch_size: int = 60,
    probe_every: int = 5,
    ics_every: int | None = 100,
    eval_every: int = 20,
    activation: str = "sigmoid",
    norm_kwargs: dict | None = None,
    weight_std: float | None = 0.1,
    init_scale: float = 1.0,
    head_init_scale: float | None = None,
    ics_relative_step: float | None = None,
) -> ShiftRun:
    """Train :func:`ioffe_mlp` with SGD, recording every hidden layer's inputs to its
    nonlinearity (the norm layer's output; the linear output when ``norm="none"``) every
    ``probe_every`` steps, and the gradient-based shift every ``ics_every`` steps (None: never).
    ``weight_std``, ``init_scale`` and ``head_init_scale`` choose the initialisation (see
    :func:`ioffe_mlp`; the default is the paper's N(0, 0.1^2)). ``ics_relative_step`` is passed
    to :func:`gradient_shift` as ``relative_step`` (None: the SGD step); the relative size of the
    SGD step of the layers below is recorded either way (``ShiftRun.ics_step_size``)."""
    if ics_relative_step is not None and ics_relative_step <= 0:
        raise ValueError(f"ics_relative_step must be positive (or None for the SGD step), got {ics_relative_step}")
    check_dataset("data", data)
    if len(data.input_shape) != 1 or data.num_classes > 10:
        raise ValueError(
            "covariate_shift_run trains ioffe_mlp (10 classes): it needs flat examples (N, features) "
            f"and at most 10 classes, like load_digits() or load_mnist1d(), got examples of shape "
            f"{data.input_shape} and {data.num_classes} classes"
        )
    valid.check_int("probe_every", probe_every)
    if ics_every is not None:
        valid.check_int("ics_every", ics_every)
    device = get_device()
    data = data.to(device)
    seed_everything(seed)
    model = ioffe_mlp(
        norm,
        in_features=data.input_shape[0],
        activation=activation,
        norm_kwargs=norm_kwargs,
        weight_std=weight_std,
        init_scale=init_scale,
        head_init_scale=head_init_scale,
    ).to(device)
    probes = [
        ActivationProbe(block.get_submodule("norm" if norm != "none" else "linear"), every=probe_every)
        for block in hidden_blocks(model)
    ]
    x_probe, y_probe = data.x_train[:batch_size], data.y_train[:batch_size]
    run = ShiftRun(history=History(), records=[])

    def measure(model: Any, step: int) -> None:
        if ics_every and step % ics_every == 0:
            with contextlib.ExitStack() as stack:  # its forward passes are not training steps
                for probe in probes:
                    stack.enter_context(probe.paused())
                l2, cosine = gradient_shift(
                    model, x_probe, y_probe, lr, noise_seed=step, relative_step=ics_relative_step
                )
                size = lower_step_size(model, x_probe, y_probe, lr, noise_seed=step)
            run.ics_steps.append(step)
            run.ics_l2.append(l2)
            run.ics_cosine.append(cosine)
            run.ics_step_size.append(size)

    with contextlib.ExitStack() as stack:
        for probe in probes:
            stack.enter_context(probe)
        run.history = train(
            model, data, lr=lr, steps=steps, batch_size=batch_size, seed=seed, eval_every=eval_every, on_step=measure
        )
    run.records = [probe.record() for probe in probes]
    return run


@dataclass(frozen=True)
class ShiftSummary:
    """What :func:`summarize_runs` says of one network's runs, each quantity as its median, min
    and max over seeds: steps to the ``accuracy`` target (test accuracy) and to the ``loss``
    target (test loss), infinite for a run that never gets there; and the last hidden layer's
    :meth:`ShiftRun.drift` and :meth:`ShiftRun.jitter`."""

    accuracy: float  # the test-accuracy target of steps_to_acc
    loss: float  # the test-loss target of steps_to_loss
    steps_to_acc: MedianRange
    steps_to_loss: MedianRange
    drift: MedianRange
    jitter: MedianRange


def summarize_runs(runs: Sequence[ShiftRun], *, accuracy: float = 0.9, loss: float = 0.3) -> ShiftSummary:
    """Median (and min/max) over seeds of: steps to ``accuracy`` test accuracy, steps to
    ``loss`` test loss, and the last hidden layer's drift and jitter. Runs that never reach a
    target count as infinitely slow."""
    runs = list(runs)
    if not runs or not all(isinstance(r, ShiftRun) for r in runs):
        raise ValueError(f"runs must be a non-empty list of ShiftRun (from covariate_shift_run), got {runs!r}")
    valid.check_number("accuracy", accuracy)  # a target above 1 is allowed: never reached
    valid.check_number("loss", loss)

    def steps(value: Callable[[ShiftRun], int | None]) -> np.ndarray:
        return np.array([np.inf if value(r) is None else value(r) for r in runs], dtype=float)

    to_acc = steps(lambda r: r.history.steps_to(accuracy))
    to_loss = steps(lambda r: r.history.steps_to(loss, metric="test_loss"))
    drift = np.array([r.drift() for r in runs])
    jitter = np.array([r.jitter() for r in runs])
    return ShiftSummary(
        accuracy=accuracy,
        loss=loss,
        steps_to_acc=MedianRange.of(to_acc),
        steps_to_loss=MedianRange.of(to_loss),
        drift=MedianRange.of(drift),
        jitter=MedianRange.of(jitter),
    )


def plot_percentiles(
    record: ActivationRecord,
    *,
    unit: int = 0,
    ax: Axes | None = None,
    color: str | None = None,
    title: str | None = None,
) -> Axes:
    """The 15th, 50th and 85th percentiles of one unit's input over training, as in Figure 1
    (b, c) of the BN paper, from a :class:`bn_utils.probes.ActivationRecord`; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    color = color or series_color(0)
    low, mid, high = (record.percentiles[p][:, unit] for p in (15, 50, 85))
    ax.fill_between(record.steps, low, high, color=color, alpha=0.25, linewidth=0, label="15th to 85th")
    ax.plot(record.steps, mid, color=color, label="median (50th)")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"input to sigmoid unit {unit}")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return ax


def plot_distribution_snapshots(
    record: ActivationRecord, *, unit: int = 0, at: Sequence[int] = (0, -1), ax: Axes | None = None
) -> Axes:
    """One unit's input distribution at a few recorded moments, drawn as Gaussians with the
    recorded mean and standard deviation (``at`` indexes the records); returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    means, stds = record.mean[list(at), unit], record.std[list(at), unit]
    grid = np.linspace((means - 3 * stds).min(), (means + 3 * stds).max(), 300)
    for i, (index, mu, sd) in enumerate(zip(at, means, stds, strict=True)):
        density = np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        ax.plot(grid, density, color=series_color(i), label=f"after {record.steps[index]} steps")
        ax.fill_between(grid, density, color=series_color(i), alpha=0.15, linewidth=0)
    ax.set_xlabel(f"input to unit {unit}")
    ax.set_ylabel("density (Gaussian fit)")
    ax.legend()
    return ax


def plot_layer_bars(
    values: Mapping[str, np.ndarray],
    *,
    ax: Axes | None = None,
    ylabel: str = "",
    layer_names: Sequence[str] | None = None,
) -> Axes:
    """Grouped bars: one group per layer, one bar per label; ``values[label]`` is an array
    (runs, layers) whose mean is the bar and std the error bar; returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    width = 0.8 / len(values)
    for i, (label, array) in enumerate(values.items()):
        array = np.atleast_2d(array)
        x = np.arange(array.shape[1]) + (i - (len(values) - 1) / 2) * width
        name = NETWORK_NAMES.get(label, NORM_LABELS.get(label, label))  # "plain", "BN", "noisy BN"
        ax.bar(x, array.mean(0), width, yerr=array.std(0), capsize=3, color=color_for(label, i), label=name)
    layers = array.shape[1]
    ax.set_xticks(range(layers), layer_names or [f"layer {k + 1}" for k in range(layers)])
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


# how the chapter's figures and explorer name the networks it trains (the one place for these names)
NETWORK_NAMES = {"none": "plain", "batch": "BN", "batch_noisy": "noisy BN"}


@dataclass(frozen=True)
class ShiftSetting:
    """One network of :func:`covariate_shift_explorer`: the norm it trains ("none", "batch" or
    "batch_noisy") and, for noisy BN only, its noise level (shift up to +/- level, scale between
    1/(1+level) and 1+level). Its display name and colour are derived here and nowhere else."""

    norm: str
    level: float = 0.0

    def __post_init__(self) -> None:
        if self.norm not in NETWORK_NAMES:
            raise ValueError(f"norm must be one of {list(NETWORK_NAMES)}, got {self.norm!r}")
        noisy = self.norm == "batch_noisy"
        if noisy and not self.level > 0:
            raise ValueError(f"noisy BN needs a noise level > 0, got {self.level!r}")
        if not noisy and self.level != 0:
            raise ValueError(f"only noisy BN has a noise level; {self.norm!r} got level {self.level!r}")

    @property
    def label(self) -> str:
        """The explorer's name: "plain", "BN" or "noisy BN (level x)"."""
        name = NETWORK_NAMES[self.norm]
        return f"{name} (level {self.level:g})" if self.norm == "batch_noisy" else name

    @property
    def color(self) -> str:
        return color_for(self.norm)

    @property
    def norm_kwargs(self) -> dict[str, float] | None:
        """What the noisy BN layer takes (``None`` for the other norms)."""
        return {"max_shift": self.level, "max_scale": 1 + self.level} if self.norm == "batch_noisy" else None


PLAIN_SETTING = ShiftSetting("none")


def _check_runs(runs: Mapping, keys: Sequence) -> None:
    missing = [key for key in keys if key not in runs or not runs[key]]
    if missing:
        raise ValueError(f"runs must hold a non-empty list of ShiftRun for {list(keys)}; missing {missing}")
    if not all(isinstance(run, ShiftRun) for key in keys for run in runs[key]):
        raise ValueError("runs must map to lists of ShiftRun (from covariate_shift_run)")


def plot_shift_snapshots(
    run: ShiftRun,
    *,
    layer: int = 2,
    unit: int = 0,
    at: Sequence[int] = (0, -1),
    title: str = "",
    figsize: tuple[float, float] = FIGSIZE["panel_low"],
) -> Figure:
    """:func:`plot_distribution_snapshots` of one unit of a hidden layer of ``run``, titled; returns the figure."""
    if not isinstance(run, ShiftRun):
        raise ValueError(f"run must be a ShiftRun (from covariate_shift_run), got {type(run).__name__}")
    fig, ax = plt.subplots(figsize=figsize)
    plot_distribution_snapshots(run.records[layer], unit=unit, at=at, ax=ax)
    ax.set_title(title)
    return fig


def plot_ioffe_figure1(
    runs: Mapping[str, Sequence[ShiftRun]], *, layer: int = 2, figsize: tuple[float, float] = FIGSIZE["triple"]
) -> Figure:
    """The BN paper's Figure 1 from ``runs`` (norm -> runs over seeds): (a) test accuracy with and without
    BN, (b, c) one unit's input percentiles (first seed) without and with BN, on the same y axis."""
    _check_runs(runs, ["none", "batch"])
    fig, axes = plt.subplots(1, 3, figsize=figsize)
    histories = {norm: [r.history for r in runs[norm]] for norm in ["none", "batch"]}
    plot_histories(histories, "test_acc", ax=axes[0], title="(a) test accuracy")
    plot_percentiles(runs["none"][0].records[layer], ax=axes[1], color=color_for("none"), title="(b) without BN")
    plot_percentiles(runs["batch"][0].records[layer], ax=axes[2], color=color_for("batch"), title="(c) with BN")
    axes[2].set_ylim(axes[1].get_ylim())
    return fig


def plot_vanishing_signal(
    runs: Mapping[str, Sequence[ShiftRun]], *, xlim: float = 300, figsize: tuple[float, float] = FIGSIZE["pair"]
) -> Figure:
    """(a) the median over seeds of each hidden layer's spread of sigmoid inputs over training, with and
    without BN (log scale), (b) test accuracy over the first ``xlim`` steps; returns the figure."""
    _check_runs(runs, ["none", "batch"])
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    layers = len(runs["none"][0].records)
    for layer, style in zip(range(layers), [":", "--", "-"], strict=False):
        for norm in ["none", "batch"]:
            spreads = np.array([r.spread(layer)[1] for r in runs[norm]])
            steps = runs[norm][0].spread(layer)[0]
            label = f"{NETWORK_NAMES[norm]}, hidden {layer + 1}"
            axes[0].plot(steps, np.median(spreads, axis=0), style, color=color_for(norm), label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("spread of sigmoid inputs")
    axes[0].set_title(f"(a) the signal, layer by layer (median over {len(runs['none'])} seeds)")
    axes[0].legend(ncol=2, fontsize="small")
    histories = {norm: [r.history for r in runs[norm]] for norm in ["none", "batch"]}
    plot_histories(histories, ax=axes[1], title="(b) test accuracy")
    axes[1].set_xlim(0, xlim)
    return fig


def plot_init_control(
    runs: Mapping[tuple[str, str], Sequence[ShiftRun]],
    *,
    target: float = 0.9,
    figsize: tuple[float, float] = FIGSIZE["panel_mid"],
) -> Figure:
    """Steps to ``target`` test accuracy per initialisation, with and without BN: bars at the median
    over seeds, error bars to the fewest and most; ``runs`` maps (initialisation, norm) to runs."""
    inits = list(dict.fromkeys(init for init, _ in runs))
    _check_runs(runs, [(init, norm) for init in inits for norm in ["none", "batch"]])
    fig, ax = plt.subplots(figsize=figsize)
    for i, norm in enumerate(["none", "batch"]):
        x = np.arange(len(inits)) + (i - 0.5) * 0.38
        values = np.array([[r.history.steps_to(target) or np.inf for r in runs[init, norm]] for init in inits], float)
        median = np.median(values, axis=1)
        ax.bar(
            x,
            median,
            0.38,
            color=color_for(norm),
            label=NETWORK_NAMES[norm],
            yerr=[median - values.min(1), values.max(1) - median],
            capsize=3,
        )
    ax.set_xticks(range(len(inits)), [f"initial weights {init}" for init in inits])
    ax.set_ylabel(f"steps to {target:.0%} test accuracy")
    ax.legend()
    return fig


def plot_noisy_bn(
    runs: Mapping[str, Sequence[ShiftRun]], *, layer: int = 2, figsize: tuple[float, float] = FIGSIZE["pair"]
) -> Figure:
    """Test accuracy of every norm in ``runs`` (norm -> runs over seeds), and the input percentiles of
    one unit of noisy BN (first seed); returns the figure."""
    _check_runs(runs, ["batch_noisy"])
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    histories = {norm: [r.history for r in norm_runs] for norm, norm_runs in runs.items()}
    plot_histories(histories, "test_acc", ax=axes[0], title="test accuracy")
    record = runs["batch_noisy"][0].records[layer]
    plot_percentiles(record, ax=axes[1], color=color_for("batch_noisy"), title="noisy BN: input of one unit")
    return fig


def plot_gradient_shift(
    runs: Mapping[str, Sequence[ShiftRun]],
    *,
    layer_names: Sequence[str] | None = None,
    figsize: tuple[float, float] = FIGSIZE["pair_mid"],
) -> Figure:
    """Santurkar et al.'s measure of covariate shift per layer, one bar per norm (mean and std over seeds
    and checkpoints): ‖G − G′‖ (left) and cos(G, G′) (right, one legend on the left); returns the figure."""
    _check_runs(runs, list(runs))
    l2 = {norm: np.concatenate([np.array(r.ics_l2) for r in norm_runs]) for norm, norm_runs in runs.items()}
    cosine = {norm: np.concatenate([np.array(r.ics_cosine) for r in norm_runs]) for norm, norm_runs in runs.items()}
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    plot_layer_bars(l2, ax=axes[0], ylabel="‖G − G′‖", layer_names=layer_names)
    plot_layer_bars(cosine, ax=axes[1], ylabel="cos(G, G′)", layer_names=layer_names)
    axes[1].set_ylim(0.8, 1.0)
    axes[1].get_legend().remove()  # one legend (left) is enough
    return fig


def plot_gradient_shift_by_init(
    runs: Mapping[tuple[str, str], Sequence[ShiftRun]],
    *,
    layer_names: Sequence[str] | None = None,
    figsize: tuple[float, float] = FIGSIZE["pair_mid"],
) -> Figure:
    """1 − cos(G, G′) per layer with and without BN (log scale), one panel per initialisation; ``runs``
    maps (initialisation, norm) to runs; returns the figure."""
    inits = list(dict.fromkeys(init for init, _ in runs))
    _check_runs(runs, [(init, norm) for init in inits for norm in ["none", "batch"]])
    fig, axes = plt.subplots(1, len(inits), figsize=figsize, sharey=True, squeeze=False)
    for ax, init in zip(axes[0], inits, strict=True):
        shift = {
            norm: np.array([1 - np.mean(r.ics_cosine, axis=0) for r in runs[init, norm]]) for norm in ["none", "batch"]
        }
        plot_layer_bars(shift, ax=ax, ylabel="1 − cos(G, G′)", layer_names=layer_names)
        ax.set_yscale("log")
        ax.set_title(f"initial weights {init}")
        for text, norm in zip(ax.get_legend().get_texts(), shift, strict=True):
            text.set_text(NETWORK_NAMES[norm])
    return fig


def precompute_shift_runs(
    data: Dataset, *, seed: int = 0, steps: int = 600, noise_levels: Sequence[float] = (0.5, 1.0, 2.0)
) -> dict[ShiftSetting, ShiftRun]:
    """One run per setting for :func:`covariate_shift_explorer`: plain, BN, and noisy BN at
    each noise level (shift up to +/- level, scale between 1/(1+level) and 1+level)."""
    settings = [PLAIN_SETTING, ShiftSetting("batch")] + [ShiftSetting("batch_noisy", level) for level in noise_levels]
    return {
        setting: covariate_shift_run(
            setting.norm, data, seed=seed, steps=steps, ics_every=None, norm_kwargs=setting.norm_kwargs
        )
        for setting in settings
    }


def _networks(runs: Mapping[ShiftSetting, ShiftRun]) -> dict[str, ShiftSetting]:
    """Display name -> setting of each precomputed run: plain, BN, noisy BN at each level."""
    if not all(isinstance(setting, ShiftSetting) for setting in runs):
        raise ValueError("runs must be keyed by ShiftSetting (from precompute_shift_runs)")
    order = list(NETWORK_NAMES)
    return {s.label: s for s in sorted(runs, key=lambda s: (order.index(s.norm), s.level))}


def shift_setting_figure(runs: Mapping[ShiftSetting, ShiftRun], layer: int, network: str, unit: int = 0) -> Figure:
    """One precomputed run (``network``: "plain", "BN" or "noisy BN (level x)"): the percentiles of
    one unit's input over training at a hidden ``layer``, and its test accuracy beside the plain
    network's, with the drift and jitter of that layer."""
    networks = _networks(runs)
    if network not in networks:
        raise ValueError(f"unknown network {network!r}; precomputed: {list(networks)}")
    setting = networks[network]
    run, plain = runs[setting], runs[PLAIN_SETTING]
    fig, (left, right) = plt.subplots(1, 2, figsize=FIGSIZE["pair_mid"])
    plot_percentiles(
        run.records[layer - 1],
        unit=unit,
        ax=left,
        color=setting.color,
        title=f"{setting.label}, hidden layer {layer}, unit {unit}",
    )
    for s, r in ((PLAIN_SETTING, plain), (setting, run)):
        right.plot(r.history.eval_steps, r.history.test_acc, color=s.color, label=s.label)
    right.set_xlabel("training step")
    right.set_ylabel("test accuracy")
    right.legend(loc="lower right")
    right.set_title(
        f"drift {run.drift(layer - 1):.2f}, jitter {run.jitter(layer - 1):.3f} (median over units)", fontsize=10
    )
    return fig


def covariate_shift_explorer(
    runs: Mapping[ShiftSetting, ShiftRun], *, live: bool = True
) -> interactive | FrameExplorer:
    """The hidden layer and the network (plain, BN, noisy BN at each noise level), and live also the
    unit: the percentile plot and the test accuracy redraw from ``runs`` (see
    :func:`precompute_shift_runs`), with no training. ``live=False``: the kernel-free version (unit 0)."""
    networks = list(_networks(runs))
    if PLAIN_SETTING not in runs:
        raise ValueError(f"the explorer needs the plain network's run, key {PLAIN_SETTING}")
    start = {"hidden layer": 3, "network": "BN" if "BN" in networks else networks[0]}
    if live:
        controls: dict[str, Sequence[object]] = {"hidden layer": [1, 2, 3], "network": networks, "unit": range(100)}
        return live_explorer(partial(shift_setting_figure, runs), controls, start=start)
    return frame_explorer(
        partial(shift_setting_figure, runs),
        {"hidden layer": [1, 2, 3], "network": networks},
        start=start,
        title="a unit's input over training: hidden layer and network",
    )
