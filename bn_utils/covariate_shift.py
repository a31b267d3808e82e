"""Internal covariate shift, measured: the experiments of the chapter "Internal covariate shift".

Two measures of how much a layer's input changes under it while the network trains:

- *distributional* (Ioffe & Szegedy, 2015, Figure 1): percentiles of a sigmoid unit's input
  over training, summarised by :func:`bn_utils.probes.drift_ratio` (total range travelled)
  and :func:`bn_utils.probes.jitter_ratio` (step-to-step restlessness);
- *gradient-based* (Santurkar et al., 2018, Definition 2.1): for layer k, the gradient G_k of
  the loss, and G'_k, the same gradient after every layer before k has taken its SGD step;
  :func:`gradient_shift` returns ||G_k - G'_k|| and cos(G_k, G'_k).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from . import _validate as valid
from .data import Dataset
from .models import make_mlp
from .probes import ActivationProbe, ActivationRecord, drift_ratio, jitter_ratio
from .training import History, get_device, loss_and_gradients, seed_everything, train

__all__ = ["ShiftRun", "ioffe_mlp", "gradient_shift", "covariate_shift_run", "summarize_runs"]


def ioffe_mlp(
    norm: str = "none",
    *,
    in_features: int = 64,
    num_classes: int = 10,
    weight_std: float = 0.1,
    activation: str = "sigmoid",
    norm_kwargs: dict | None = None,
) -> nn.Sequential:
    """The network of the BN paper's Figure 1: 3 hidden layers of 100 sigmoid units, small
    Gaussian initial weights (std ``weight_std``), BN (if any) before each sigmoid."""
    return make_mlp(
        in_features,
        num_classes,
        depth=3,
        width=100,
        norm=norm,
        activation=activation,
        weight_std=weight_std,
        norm_kwargs=norm_kwargs,
    )


def gradient_shift(
    model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, lr: float, noise_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Santurkar et al.'s internal covariate shift of each layer after the first, on one batch.

    For each hidden block k >= 1 and the head: G = d loss / d W_k at the current weights;
    G' = the same gradient after all blocks before k took the SGD step ``-lr * grad``.
    Returns (||G - G'||, cos(G, G')), one entry per such layer. The model is not changed, not
    even its running statistics (copies do the work, in training mode, as during training).
    """
    valid.check_module("model", model)
    if not isinstance(getattr(model, "blocks", None), nn.Sequential) or not len(model.blocks):
        raise ValueError("gradient_shift needs an MLP built by make_mlp with at least one hidden block (model.blocks)")
    valid.check_inputs_and_labels(x, y)
    valid.check_number("lr", lr, 0)  # 0 is a valid probe: no step, no shift
    valid.check_seed("noise_seed", noise_seed)

    def layer_weights(net):  # the layers that have layers below them
        return [block.linear.weight for block in net.blocks[1:]] + [net.head.weight]

    model = copy.deepcopy(model)  # even a forward pass would update BN's running statistics
    all_params = [p for p in model.parameters() if p.requires_grad]
    grads = dict(zip(map(id, all_params), loss_and_gradients(model, x, y, all_params, noise_seed)[1], strict=True))
    l2, cosine = [], []
    for k, target in enumerate(layer_weights(model), start=1):
        shifted = copy.deepcopy(model)
        with torch.no_grad():
            for original, moved in zip(model.blocks[:k].parameters(), shifted.blocks[:k].parameters(), strict=True):
                moved -= lr * grads[id(original)]
        moved_target = layer_weights(shifted)[k - 1]
        g = grads[id(target)].flatten()
        g_after = loss_and_gradients(shifted, x, y, [moved_target], noise_seed)[1][0].flatten()
        l2.append((g - g_after).norm().item())
        cosine.append(nn.functional.cosine_similarity(g, g_after, dim=0).item())
    return np.array(l2), np.array(cosine)


@dataclass
class ShiftRun:
    """One training run of the covariate-shift experiment."""

    history: History
    records: list[ActivationRecord]  # per hidden layer: its units' inputs to the sigmoid
    ics_steps: list[int] = field(default_factory=list)
    ics_l2: list[np.ndarray] = field(default_factory=list)  # per checkpoint: one value per layer
    ics_cosine: list[np.ndarray] = field(default_factory=list)

    def drift(self, layer: int = -1) -> float:
        """Median over units of :func:`drift_ratio` for a hidden layer's sigmoid inputs."""
        return float(np.median(drift_ratio(self.records[layer])))

    def jitter(self, layer: int = -1) -> float:
        """Median over units of :func:`jitter_ratio` for a hidden layer's sigmoid inputs."""
        return float(np.median(jitter_ratio(self.records[layer])))


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
) -> ShiftRun:
    """Train :func:`ioffe_mlp` with SGD, recording every hidden layer's inputs to its
    nonlinearity (the norm layer's output; the linear output when ``norm="none"``) every
    ``probe_every`` steps, and the gradient-based shift every ``ics_every`` steps (None: never)."""
    valid.check_dataset("data", data)
    if data.input_shape != (64,) or data.num_classes > 10:
        raise ValueError(
            "covariate_shift_run trains ioffe_mlp (64 inputs, 10 classes): it needs examples of shape (64,) "
            f"and at most 10 classes, like load_digits(), got examples of shape {data.input_shape} "
            f"and {data.num_classes} classes"
        )
    valid.check_int("probe_every", probe_every)
    if ics_every is not None:
        valid.check_int("ics_every", ics_every)
    device = get_device()
    data = data.to(device)
    seed_everything(seed)
    model = ioffe_mlp(norm, activation=activation, norm_kwargs=norm_kwargs).to(device)
    probes = [
        ActivationProbe(block.norm if norm != "none" else block.linear, every=probe_every) for block in model.blocks
    ]
    x_probe, y_probe = data.x_train[:batch_size], data.y_train[:batch_size]
    run = ShiftRun(history=History(), records=[])

    def measure(model, step):
        if ics_every and step % ics_every == 0:
            with contextlib.ExitStack() as stack:  # its forward passes are not training steps
                for probe in probes:
                    stack.enter_context(probe.paused())
                l2, cosine = gradient_shift(model, x_probe, y_probe, lr, noise_seed=step)
            run.ics_steps.append(step), run.ics_l2.append(l2), run.ics_cosine.append(cosine)

    with contextlib.ExitStack() as stack:
        for probe in probes:
            stack.enter_context(probe)
        run.history = train(
            model, data, lr=lr, steps=steps, batch_size=batch_size, seed=seed, eval_every=eval_every, on_step=measure
        )
    run.records = [probe.record() for probe in probes]
    return run


def summarize_runs(runs: Sequence[ShiftRun], *, accuracy: float = 0.9, loss: float = 0.3) -> dict[str, float]:
    """Median (and min/max) over seeds of: steps to ``accuracy`` test accuracy, steps to
    ``loss`` test loss, and the last hidden layer's drift and jitter. Runs that never reach a
    target count as infinitely slow."""
    runs = list(runs)
    if not runs or not all(isinstance(r, ShiftRun) for r in runs):
        raise ValueError(f"runs must be a non-empty list of ShiftRun (from covariate_shift_run), got {runs!r}")
    valid.check_number("accuracy", accuracy)  # a target above 1 is allowed: never reached
    valid.check_number("loss", loss)

    def steps(value):
        return np.array([np.inf if value(r) is None else value(r) for r in runs], dtype=float)

    to_acc = steps(lambda r: r.history.steps_to(accuracy))
    to_loss = steps(lambda r: r.history.steps_to(loss, metric="test_loss"))
    drift = np.array([r.drift() for r in runs])
    jitter = np.array([r.jitter() for r in runs])
    return {
        "steps_to_acc": float(np.median(to_acc)),
        "steps_to_acc_min": float(to_acc.min()),
        "steps_to_acc_max": float(to_acc.max()),
        "steps_to_loss": float(np.median(to_loss)),
        "steps_to_loss_min": float(to_loss.min()),
        "steps_to_loss_max": float(to_loss.max()),
        "drift": float(np.median(drift)),
        "drift_min": float(drift.min()),
        "drift_max": float(drift.max()),
        "jitter": float(np.median(jitter)),
        "jitter_min": float(jitter.min()),
        "jitter_max": float(jitter.max()),
    }
