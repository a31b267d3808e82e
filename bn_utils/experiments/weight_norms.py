"""Weight-norm dynamics of scale-invariant weights: the experiments of the chapter
"Initialization robustness" on how a BN network tunes its own effective learning rate.

A hidden weight matrix that feeds a BN layer is scale-invariant: the loss does not change when it
is multiplied by a positive number, so its gradient ``g`` is orthogonal to it. One plain SGD step
``w - lr * g`` can then only grow its norm, by exactly ``lr**2 * ||g||**2``, and a weight whose
effective learning rate ``lr / ||w||**2`` is too large grows fast and so lowers it. With weight
decay ``wd`` the step is ``(1 - lr * wd) * w - lr * g``: decay shrinks the norm and growth
raises it, and the two balance where ``2 * wd * ||w||**2 = lr * ||g||**2`` (van Laarhoven 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from ..cache import remembered
from ..data import Dataset
from ..models import mlp_for
from ..style import FIGSIZE, color_for
from ..training import get_device, train

__all__ = ["WeightNormTrace", "track_weight_norms", "plot_effective_lr_trace", "plot_norm_growth"]


@dataclass(frozen=True)
class WeightNormTrace:
    """Per-step squared norms of the hidden weights of one configuration, one row per seed."""

    init_scale: float
    lr: float
    weight_decay: float
    sq_norm: np.ndarray  # (seeds, steps + 1, layers): ||w_t||^2 of each hidden layer, t = 0 .. steps
    sq_grad: np.ndarray  # (seeds, steps, layers): ||g_t||^2, the loss gradient the step t -> t+1 used
    final_test_acc: np.ndarray  # (seeds,)

    @property
    def growth(self) -> np.ndarray:
        """Measured ||w_{t+1}||^2 - ||w_t||^2, (seeds, steps, layers)."""
        return np.diff(self.sq_norm, axis=1)

    @property
    def predicted_growth(self) -> np.ndarray:
        """((1 - lr wd)^2 - 1) ||w_t||^2 + lr^2 ||g_t||^2: the change if g_t is orthogonal to w_t."""
        shrink = (1.0 - self.lr * self.weight_decay) ** 2 - 1.0
        return shrink * self.sq_norm[:, :-1] + self.lr**2 * self.sq_grad

    @property
    def effective_lr(self) -> np.ndarray:
        """lr / ||w_t||^2 in units of the He-scale initial norm: lr / c^2 at step 0, (seeds, steps + 1, layers)."""
        he_sq_norm = self.sq_norm[:, :1] / self.init_scale**2
        return self.lr * he_sq_norm / self.sq_norm

    def growth_gaps(self) -> np.ndarray:
        """Per seed, the largest |measured growth of ||W||^2 - lr^2 ||g||^2| over steps and layers, over
        the largest measured growth of all seeds: how far from exact the scale invariance is (BN's eps)."""
        return np.abs(self.growth - self.predicted_growth).max((1, 2)) / np.abs(self.growth).max()

    def equilibrium_sq_norm(self, last: int = 50) -> np.ndarray:
        """Predicted equilibrium ||w||^2 = sqrt(lr E||g~||^2 / (2 wd)) per seed and layer, (seeds, layers),
        with g~ = ||w|| g the gradient at unit norm, averaged over the ``last`` steps."""
        if self.weight_decay <= 0:
            raise ValueError("an equilibrium norm needs weight_decay > 0")
        if not 0 < last <= self.sq_grad.shape[1]:
            raise ValueError(f"last must be in 1..{self.sq_grad.shape[1]}, got {last}")
        unit_sq_grad = (self.sq_grad * self.sq_norm[:, :-1])[:, -last:].mean(1)
        return np.sqrt(self.lr * unit_sq_grad / (2 * self.weight_decay))

    def late_sq_norm(self, last: int = 50) -> np.ndarray:
        """Measured ||w||^2 averaged over the ``last`` steps, (seeds, layers)."""
        if not 0 < last <= self.sq_grad.shape[1]:
            raise ValueError(f"last must be in 1..{self.sq_grad.shape[1]}, got {last}")
        return self.sq_norm[:, -last:].mean(1)


def _hidden_weights(model: Any) -> list[torch.Tensor]:
    return [block.linear.weight for block in model.blocks]


@remembered("experiments.weight_norms")
def track_weight_norms(
    data: Dataset,
    *,
    init_scale: float = 1.0,
    lr: float = 0.1,
    weight_decay: float = 0.0,
    steps: int = 200,
    seeds: Sequence[int] = (0,),
    depth: int = 10,
    width: int = 100,
    batch_size: int = 64,
) -> WeightNormTrace:
    """Train a ``depth`` x ``width`` BN MLP (hidden weights at ``init_scale`` times the He scale,
    output layer at its standard scale) with plain SGD and weight decay ``weight_decay`` on all
    parameters, recording each hidden layer's ||w_t||^2 and ||g_t||^2 at every step."""
    if init_scale <= 0 or lr <= 0 or weight_decay < 0 or steps < 1 or depth < 1:
        raise ValueError(
            "need init_scale > 0, lr > 0, weight_decay >= 0, steps >= 1 and depth >= 1, got "
            f"init_scale={init_scale}, lr={lr}, weight_decay={weight_decay}, steps={steps}, depth={depth}"
        )
    if not seeds:
        raise ValueError("need at least one seed")
    device = get_device()
    data = data.to(device)
    sq_norms, sq_grads, accs = [], [], []
    for seed in seeds:
        model = mlp_for(
            data,
            seed=seed,
            depth=depth,
            width=width,
            norm="batch",
            init_scale=init_scale,
            head_init_scale=1.0,
        ).to(device)
        weights = _hidden_weights(model)
        norm_rows = [torch.stack([w.detach().pow(2).sum() for w in weights])]
        grad_rows: list[torch.Tensor] = []

        def record(
            model: nn.Module,
            step: int,
            weights: list[Any] = weights,
            norm_rows: list[torch.Tensor] = norm_rows,
            grad_rows: list[torch.Tensor] = grad_rows,
        ) -> None:
            grad_rows.append(torch.stack([w.grad.pow(2).sum() for w in weights]))  # SGD adds wd out of place
            norm_rows.append(torch.stack([w.detach().pow(2).sum() for w in weights]))

        history = train(
            model, data, lr=lr, steps=steps, batch_size=batch_size, weight_decay=weight_decay,
            seed=seed, eval_every=steps, on_step=record,
        )  # fmt: skip
        if history.diverged:
            raise RuntimeError(f"training diverged at step {history.diverged_at} (seed {seed}, scale {init_scale})")
        sq_norms.append(torch.stack(norm_rows).double().cpu().numpy())
        sq_grads.append(torch.stack(grad_rows).double().cpu().numpy())
        accs.append(history.test_acc[-1])
    return WeightNormTrace(
        init_scale=init_scale,
        lr=lr,
        weight_decay=weight_decay,
        sq_norm=np.array(sq_norms),
        sq_grad=np.array(sq_grads),
        final_test_acc=np.array(accs),
    )


def plot_effective_lr_trace(
    traces: Sequence[WeightNormTrace], ax: Axes | None = None, title: str | None = None
) -> Axes:
    """Median (over seeds and layers) effective learning rate lr / ||w_t||^2 against the step, one line per trace."""
    if not traces:
        raise ValueError("need at least one trace")
    if ax is None:
        _, ax = plt.subplots(figsize=FIGSIZE["panel"])
    for index, trace in enumerate(traces):
        median = np.median(trace.effective_lr, axis=(0, 2))
        label = f"scale {trace.init_scale:g}, lr {trace.lr:g}"
        if trace.weight_decay:
            label += f", wd {trace.weight_decay:g}"
        ax.plot(np.arange(len(median)), median, color=color_for(label, index), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("effective learning rate, lr/‖w‖² (He units)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_norm_growth(traces: Sequence[WeightNormTrace]) -> Figure:
    """Measured against predicted growth of the squared weight norms (left) and the effective learning rate (right)."""
    if not traces or not all(isinstance(trace, WeightNormTrace) for trace in traces):
        raise ValueError("plot_norm_growth needs a non-empty list of WeightNormTrace (from track_weight_norms)")
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_wide"])
    for index, trace in enumerate(traces):
        axes[0].scatter(
            trace.predicted_growth.ravel(),
            trace.growth.ravel(),
            s=4,
            color=color_for("", index),
            label=f"scale {trace.init_scale:g}",
        )
    axes[0].set(xscale="log", yscale="log", xlabel="η²‖g_t‖²", ylabel="‖w_{t+1}‖² − ‖w_t‖²")
    axes[0].set_title("growth of each hidden layer's squared norm, every step")
    axes[0].legend()
    plot_effective_lr_trace(list(traces), ax=axes[1], title="effective learning rate, median")
    return fig
