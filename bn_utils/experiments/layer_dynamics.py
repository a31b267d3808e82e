"""Layer by layer over the first steps of training: the experiments that connect the chapters
"Initialization robustness" and "Deep-network gradient flow".

At initialisation a deep BN network's weight gradients explode towards the input (chapter 5). The
hidden weights that feed a BN layer are scale-invariant (chapter 4), so for them plain SGD obeys

    ||w_{t+1}||^2 = ||w_t||^2 + eta^2 ||g_t||^2

(the gradient of a scale-invariant function is orthogonal to the weights): every step *grows* the
weights, by an amount set by the gradient's size, and a layer whose weights have grown by a factor
c since initialisation learns at the effective learning rate eta / c^2. :func:`layer_dynamics`
trains the course's MLPs (several seeds at once, as one stack) and records, at chosen steps and for
every hidden layer: the weight-gradient norm, the weight norm and its growth c, the effective
learning rate, the relative update, and two measures of what the layer's representation of a fixed
batch of examples still carries (:func:`mean_cosine_similarity`, :func:`class_contrast`).

Two variants of the update test what the measurements suggest: ``hold_weight_norm`` puts each
hidden unit's weights back to their initial norm after every step (with BN this leaves the
function unchanged and keeps the effective learning rate at ``lr``), and ``relative_step`` gives
each hidden weight matrix its own learning rate, so that every layer moves by the same fraction of
its norm at every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import norms as norm_registry
from ..cache import remembered
from ..data import Dataset
from ..diagnostics import class_contrast, mean_cosine_similarity
from ..models import mlp_for
from ..stacked import StackedMLP, evaluate_stacked, train_stacked
from ..style import FIGSIZE, color_for
from ..training import get_device

__all__ = [
    "RECORD_STEPS",
    "DYNAMICS_QUANTITIES",
    "LayerDynamics",
    "layer_dynamics",
    "mean_cosine_similarity",
    "class_contrast",
    "plot_layer_dynamics",
    "plot_dynamics_profile",
    "plot_first_steps",
    "plot_forward_content",
]

# Dense where things change fast (the first steps), sparse after.
RECORD_STEPS = (0, 1, 2, 3, 5, 10, 20, 30, 50)

# Per-layer quantities of a LayerDynamics, with a label for plots.
DYNAMICS_QUANTITIES = {
    "gradient_norm": "‖∂L/∂W‖",
    "weight_norm": "‖W‖",
    "weight_growth": "weight growth c = ‖W‖ / ‖W at step 0‖",
    "effective_lr": "effective learning rate η / c²",
    "relative_update": "relative update η‖∂L/∂W‖ / ‖W‖",
    "similarity": "mean cosine similarity of examples",
    "class_contrast": "class contrast (same − different class)",
}

# The norms it trains: none, or a batch norm that StackedMLP holds as one batch norm over every
# model's units (its registry entry's ``mlp_stacking``), i.e. the networks whose hidden weights are
# (or, without a norm, are not) scale-invariant unit by unit, the subject of this module.
_STACKINGS = ("identity", "batch")


def _trained_norms() -> tuple[str, ...]:
    """The registered norms :func:`layer_dynamics` trains (no norm, BN, BN from scratch)."""
    return norm_registry.names(lambda spec: spec.mlp_stacking in _STACKINGS)


@dataclass(frozen=True)
class LayerDynamics:
    """Several seeds of one configuration, recorded at ``steps`` (the number of updates taken
    when measured; step 0 is initialisation). Per-layer arrays have shape (seeds, records,
    hidden layers), input side first; ``loss`` has one entry per update taken, as
    :attr:`bn_utils.training.History.loss`.

    The gradient is the one the update of that step uses (the step's training batch). The
    representation measures are on a fixed probe batch (the first ``probe_size`` training
    examples), through BN with that batch's statistics, at each hidden layer's output.
    """

    norm: str
    depth: int
    lr: float
    seeds: tuple[int, ...]
    steps: tuple[int, ...]
    gradient_norm: np.ndarray  # ||dL/dW_l|| on the step's batch
    weight_norm: np.ndarray  # ||W_l|| (Frobenius) before the step's update
    step_size: np.ndarray  # the learning rate the update applies to W_l (lr, unless relative_step)
    similarity: np.ndarray  # mean_cosine_similarity of each hidden layer's output (uncentred)
    class_contrast: np.ndarray  # class_contrast of each hidden layer's output
    loss: np.ndarray  # (seeds, updates) training loss of each update's batch; NaN or inf once a seed diverged
    test_acc: np.ndarray  # (seeds,) test accuracy after the last update (evaluation mode); NaN if diverged
    hold_weight_norm: bool = False
    relative_step: float | None = None

    @property
    def diverged(self) -> np.ndarray:
        """(seeds,) booleans: the seed's training loss became NaN or infinite (its later records are
        NaN; the other seeds of the stack train on, each with its own parameters)."""
        return ~np.isfinite(self.loss).all(axis=1)

    def at(self, step: int) -> int:
        """The record index of ``step``."""
        if step not in self.steps:
            raise ValueError(f"step {step} was not recorded; recorded steps: {list(self.steps)}")
        return self.steps.index(step)

    @property
    def weight_growth(self) -> np.ndarray:
        """c_l = ||W_l|| / ||W_l at step 0||: chapter 4's scale c, reached by training instead of
        set at initialisation (the initial weights are at the He scale)."""
        return self.weight_norm / self.weight_norm[:, :1, :]

    @property
    def effective_lr(self) -> np.ndarray:
        """step_size / c_l^2: the learning rate that the same network with its hidden weights put
        back to their initial norm would need to take the same steps, relative to the weights
        (chapter 4's eta / c^2, per layer: c_l^2 is the mean of its units' c^2, weighted by their
        initial squared norms). Meaningful where BN follows the layer."""
        return self.step_size / self.weight_growth**2

    @property
    def relative_update(self) -> np.ndarray:
        """step_size * ||dL/dW_l|| / ||W_l||: the update of the step, relative to the weights."""
        return self.step_size * self.gradient_norm / self.weight_norm

    @property
    def gradient_ratio(self) -> np.ndarray:
        """(seeds, records): the first hidden layer's gradient norm over the last one's."""
        return self.gradient_norm[..., 0] / self.gradient_norm[..., -1]

    def quantity(self, name: str) -> np.ndarray:
        """A per-layer quantity by name (see ``DYNAMICS_QUANTITIES``)."""
        if name not in DYNAMICS_QUANTITIES:
            raise ValueError(f"unknown quantity {name!r}; valid names are: {', '.join(DYNAMICS_QUANTITIES)}")
        return getattr(self, name)


@contextlib.contextmanager
def _statistics_kept(stack: StackedMLP) -> Iterator[None]:
    """A training-mode pass inside this block leaves the running statistics as they were."""
    saved = {key: value.clone() for key, value in stack.buffers.items()}
    try:
        yield
    finally:
        stack.buffers.update(saved)


class _LayerwiseSGD:
    """Plain SGD for :func:`layer_dynamics`, as a :class:`bn_utils.stacked.StackedUpdate`: one step size
    per hidden weight matrix (``lr``, or ``relative_step * ||W|| / ||dL/dW||``), optionally every
    hidden unit's incoming weights held at their initial norm, and the per-layer measurements taken
    before the update of each step in ``record``. After ``updates`` updates it only measures: a
    step run after the last update (on the next batch of the engine's batch order) updates nothing."""

    def __init__(
        self,
        *,
        lr: float,
        depth: int,
        record: tuple[int, ...],
        updates: int,
        models: int,
        relative_step: float | None,
        hold_weight_norm: bool,
        probe: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        self.lr, self.record, self.relative_step, self.hold_weight_norm = lr, record, relative_step, hold_weight_norm
        self.probe, self.updates = probe, updates
        self.weight_keys = [f"blocks.{i}.linear.weight" for i in range(depth)]
        self.stack: StackedMLP | None = None
        self.initial_unit_norms: dict[str, torch.Tensor] = {}
        self.steps = 0
        shape = (models, len(record), depth)
        self.gradient_norm, self.weight_norm, self.step_size = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.similarity, self.class_contrast = np.zeros(shape), np.zeros(shape)

    @torch.no_grad()
    def measure(self, stack: StackedMLP, grads: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """The step size of every (model, hidden layer) at ``step``; records the measurements there
        when ``step`` is in ``record``."""
        if self.stack is None:  # the first call: the initial networks
            self.stack = stack
            self.initial_unit_norms = {
                key: stack.params[key].detach().norm(dim=2, keepdim=True).clone() for key in self.weight_keys
            }
        device = stack.params[self.weight_keys[0]].device
        sizes = torch.full((len(stack), len(self.weight_keys)), self.lr, dtype=torch.float64, device=device)
        if step in self.record or self.relative_step is not None:
            g_norms = torch.stack([grads[k].norm(dim=(1, 2)) for k in self.weight_keys], 1).double()
            w_norms = torch.stack([stack.params[k].norm(dim=(1, 2)) for k in self.weight_keys], 1).double()
        if self.relative_step is not None:
            sizes = self.relative_step * w_norms / g_norms.clamp_min(torch.finfo(torch.float64).tiny)
        if step in self.record:
            r = self.record.index(step)
            self.gradient_norm[:, r], self.weight_norm[:, r] = g_norms.cpu().numpy(), w_norms.cpu().numpy()
            self.step_size[:, r] = sizes.cpu().numpy()
            probe_x, probe_y = self.probe
            with _statistics_kept(stack):
                hidden = torch.stack(stack.forward_with_hidden(probe_x)[1], 1)  # (seeds, layers, B, width)
            self.similarity[:, r] = mean_cosine_similarity(hidden).cpu().numpy()
            self.class_contrast[:, r] = class_contrast(hidden, probe_y).cpu().numpy()
        return sizes

    @torch.no_grad()
    def step(self, stack: StackedMLP, grads: dict[str, torch.Tensor]) -> None:
        sizes = self.measure(stack, grads, self.steps)
        self.steps += 1
        if self.steps > self.updates:  # the measurement after the last update
            return
        for key, grad in grads.items():
            param = stack.params[key]
            if key in self.weight_keys:
                layer = self.weight_keys.index(key)
                param.sub_(sizes[:, layer].to(param.dtype).view(-1, 1, 1) * grad)
                if self.hold_weight_norm:
                    param.mul_(self.initial_unit_norms[key] / param.norm(dim=2, keepdim=True))
            else:
                param.sub_(self.lr * grad)

    def keep(self, slots: Sequence[int]) -> None:  # train_stacked(drop_diverged=False) never drops a model
        raise AssertionError("layer_dynamics keeps every seed in the stack")


def _check_steps(record_at: Sequence[int], steps: int | None) -> tuple[tuple[int, ...], int]:
    record = tuple(int(s) for s in record_at)
    if not record or any(s < 0 for s in record) or list(record) != sorted(set(record)):
        raise ValueError(f"record_at must be distinct steps >= 0 in increasing order, got {tuple(record_at)}")
    total = record[-1] if steps is None else int(steps)
    if total < record[-1]:
        raise ValueError(f"steps={total} is fewer than the last recorded step {record[-1]}")
    return record, total


@remembered("experiments.layer_dynamics")
def layer_dynamics(
    data: Dataset,
    norm: str,
    *,
    depth: int = 40,
    width: int = 100,
    activation: str = "relu",
    lr: float = 0.1,
    batch_size: int = 64,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    record_at: Sequence[int] = RECORD_STEPS,
    steps: int | None = None,
    hold_weight_norm: bool = False,
    relative_step: float | None = None,
    probe_size: int = 256,
) -> LayerDynamics:
    """Train a ``depth`` x ``width`` MLP (He initialisation; BN before each activation when
    ``norm`` is ``"batch"``) with SGD at learning rate ``lr`` on batches of ``batch_size``, one
    run per seed (the weights and batch order of :func:`bn_utils.experiments.sweeps.depth_sweep`'s run with that
    seed), for ``steps`` updates (default: the last of ``record_at``); record the per-layer
    measurements of :class:`LayerDynamics` before the update of each step in ``record_at``.

    ``hold_weight_norm`` rescales every hidden unit's incoming weights to their initial norm after
    each update (BN norms only: with BN the function is unchanged, the effective learning rate
    stays ``lr``). ``relative_step`` gives each hidden weight matrix the learning rate
    ``relative_step * ||W|| / ||dL/dW||`` at every step, so that every layer moves by the same
    fraction of its norm; the other parameters (BN's gamma and beta, the output layer) keep ``lr``.

    A seed whose loss becomes NaN or infinite has diverged (:attr:`LayerDynamics.diverged`): its
    later records and its test accuracy are NaN, and the other seeds train on, unaffected.
    """
    trained = _trained_norms()
    if norm not in trained:
        raise ValueError(f"layer_dynamics trains norm {', '.join(map(repr, trained))}; got {norm!r}")
    if depth < 2:
        raise ValueError(f"need at least 2 hidden layers to compare the first with the last, got depth={depth}")
    if lr <= 0 or (relative_step is not None and relative_step <= 0):
        raise ValueError(f"lr and relative_step must be positive, got lr={lr} and relative_step={relative_step}")
    if hold_weight_norm and not norm_registry.get(norm).batch_statistics:
        raise ValueError("hold_weight_norm needs a BN network: without BN, rescaling the weights changes the function")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("need at least one seed")
    record, total = _check_steps(record_at, steps)
    if not 2 <= probe_size <= len(data.x_train):
        raise ValueError(
            f"probe_size must be between 2 and the training set's size ({len(data.x_train)}), got {probe_size}"
        )
    steps_per_epoch = len(data.x_train) // batch_size
    if batch_size < 2 or steps_per_epoch == 0:
        raise ValueError(f"batch_size must be between 2 and the training set's size, got {batch_size}")

    device = get_device()
    data = data.to(device)
    models = [
        mlp_for(data, seed=seed, depth=depth, width=width, norm=norm, activation=activation)
        .to(device)
        .to(data.x_train.dtype)
        for seed in seeds
    ]
    rule = _LayerwiseSGD(
        lr=lr,
        depth=depth,
        record=record,
        updates=total,
        models=len(seeds),
        relative_step=relative_step,
        hold_weight_norm=hold_weight_norm,
        probe=(data.x_train[:probe_size], data.y_train[:probe_size]),
    )
    # the loop, batch order and divergence rule of every stacked run; the rule records. A last
    # recorded step after the last update is one more step of the loop that only measures, on the
    # batch the next update would take
    measured_after = 1 if total in record else 0
    histories = train_stacked(
        models,
        data,
        lrs=[lr] * len(seeds),
        seeds=seeds,
        steps=total + measured_after,
        batch_size=batch_size,
        optimizer=rule,
        eval_every=total + measured_after,
        eval_train=False,
        drop_diverged=False,  # a diverged seed's later records are NaN; the others train on
    )
    losses = np.array([history.loss[:total] for history in histories]).reshape(len(seeds), total)
    stack = rule.stack
    assert stack is not None
    gradient_norm, weight_norm, step_size = rule.gradient_norm, rule.weight_norm, rule.step_size
    similarity, contrast = rule.similarity, rule.class_contrast
    test_acc, _ = evaluate_stacked(stack, data.x_test, data.y_test)
    diverged = ~np.isfinite(losses).all(axis=1)
    return LayerDynamics(
        norm=norm,
        depth=depth,
        lr=lr,
        seeds=seeds,
        steps=record,
        gradient_norm=gradient_norm,
        weight_norm=weight_norm,
        step_size=step_size,
        similarity=similarity,
        class_contrast=contrast,
        loss=losses,
        test_acc=np.where(diverged, np.nan, test_acc.cpu().numpy()),
        hold_weight_norm=hold_weight_norm,
        relative_step=relative_step,
    )


_DYNAMICS_EXTRA = {"gradient_ratio": "gradient norm, first / last hidden layer"}


def _run_colors(runs: Mapping[str, LayerDynamics]) -> list[str]:
    """A norm's colour for a run whose norm no other run has; house colours otherwise."""
    norms = [run.norm for run in runs.values()]
    return [color_for(norm if norms.count(norm) == 1 else "", i) for i, norm in enumerate(norms)]


def _dynamics_label(quantity: str) -> str:

    labels = {**DYNAMICS_QUANTITIES, **_DYNAMICS_EXTRA}
    if quantity not in labels:
        raise ValueError(f"unknown quantity {quantity!r}; valid names are: {', '.join(labels)}")
    return labels[quantity]


def plot_layer_dynamics(
    runs: Mapping[str, LayerDynamics],
    quantity: str = "gradient_ratio",
    *,
    layers: Sequence[int] = (0, -1),
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """A quantity over the recorded training steps, one line per entry of ``runs`` (label ->
    :class:`bn_utils.experiments.layer_dynamics.LayerDynamics`) and, for a per-layer quantity, per hidden layer
    in ``layers`` (0-based, negative from the end; first solid, the others dashed and dotted):
    median over seeds, shaded range. ``gradient_ratio`` is the first over the last hidden layer's
    gradient norm. Steps on a symmetric-log axis, so that step 0 shows; log vertical axis except
    for the weight growth and the representation measures. Returns the axes."""
    ylabel = _dynamics_label(quantity)
    if ax is None:
        _, ax = plt.subplots()
    styles = ["-", "--", ":", "-."]
    for color, (label, run) in zip(_run_colors(runs), runs.items(), strict=True):
        steps = np.asarray(run.steps)
        if quantity == "gradient_ratio":
            series = [(label, run.gradient_ratio)]
        else:
            values = run.quantity(quantity)
            series = []
            for layer in layers:
                if not -run.depth <= layer < run.depth:
                    raise ValueError(f"layer {layer} out of range for {run.depth} hidden layers")
                series.append((f"{label}, layer {layer % run.depth + 1}", values[..., layer]))
        for j, (name, v) in enumerate(series):
            ax.plot(
                steps,
                np.median(v, axis=0),
                color=color,
                linestyle=styles[j % len(styles)],
                marker="o",
                markersize=3,
                label=f"{name} (n={len(v)})",
            )
            ax.fill_between(steps, v.min(0), v.max(0), color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("symlog", linthresh=1)
    last = max(max(run.steps) for run in runs.values())
    ticks = [0] + [m * 10**e for e in range(6) for m in (1, 2, 5) if m * 10**e <= last]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    if quantity not in ("similarity", "class_contrast", "weight_growth"):
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def plot_dynamics_profile(
    runs: Mapping[str, LayerDynamics],
    quantity: str = "class_contrast",
    *,
    step: int = 0,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """A per-layer quantity against the hidden layer at one recorded ``step``, one line per
    entry of ``runs`` (label -> :class:`bn_utils.experiments.layer_dynamics.LayerDynamics`): median over
    seeds, shaded range. Log vertical axis except for the representation measures. Returns the axes."""
    ylabel = _dynamics_label(quantity)
    if quantity == "gradient_ratio":
        raise ValueError("gradient_ratio is one number per step; plot it with plot_layer_dynamics")
    if ax is None:
        _, ax = plt.subplots()
    for color, (label, run) in zip(_run_colors(runs), runs.items(), strict=True):
        values = run.quantity(quantity)[:, run.at(step)]
        layers = np.arange(1, run.depth + 1)
        ax.plot(layers, np.median(values, 0), color=color, marker="o", markersize=3, label=f"{label} (n={len(values)})")
        ax.fill_between(layers, values.min(0), values.max(0), color=color, alpha=0.15, linewidth=0)
    if quantity not in ("similarity", "class_contrast"):
        ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def _check_runs(name: str, runs: object) -> None:
    if not isinstance(runs, Mapping) or not runs or not all(isinstance(r, LayerDynamics) for r in runs.values()):
        raise ValueError(f"{name} must be a non-empty dict label -> LayerDynamics (from layer_dynamics)")


def plot_first_steps(runs: Mapping[str, LayerDynamics], focus: str) -> Figure:
    """First steps: every run's gradient ratio, then the weight growth and relative update of run ``focus``."""
    _check_runs("runs", runs)
    if focus not in runs:
        raise ValueError(f"focus must be one of the runs ({', '.join(runs)}), got {focus!r}")
    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE["triple"])
    plot_layer_dynamics(runs, "gradient_ratio", ax=axes[0], title="first / last layer's gradient norm")
    plot_layer_dynamics({focus: runs[focus]}, "weight_growth", layers=(0, 4, -1), ax=axes[1], title="weight growth")
    plot_layer_dynamics({focus: runs[focus]}, "relative_update", ax=axes[2], title="relative update per step")
    return fig


def plot_forward_content(at_init: Mapping[str, LayerDynamics], during: Mapping[str, LayerDynamics]) -> Figure:
    """Similarity and class contrast per layer at init (``at_init``), last layer's contrast in training (``during``)."""
    _check_runs("at_init", at_init)
    _check_runs("during", during)
    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE["triple"])
    plot_dynamics_profile(at_init, "similarity", ax=axes[0], title="at initialisation: how alike all examples look")
    plot_dynamics_profile(at_init, "class_contrast", ax=axes[1], title="at initialisation: class structure left")
    plot_layer_dynamics(during, "class_contrast", layers=(-1,), ax=axes[2], title="last hidden layer, during training")
    return fig
