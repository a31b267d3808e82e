"""Per-layer health of a network on one batch (Karpathy-style checks before it has taken a step):
how large each hidden block's activations are, how large the gradient of its weights is, and how much
one SGD step would change those weights relative to their size. Used by the chapters on
initialisation, gradient flow and residual networks (:mod:`bn_utils.experiments.initialization`
re-exports it)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import _validate as valid
from .models import hidden_blocks
from .training import loss_and_gradients

__all__ = ["LayerDiagnostics", "layer_diagnostics"]


@dataclass(frozen=True)
class LayerDiagnostics:
    """One network on one batch: one entry per hidden block, input side first."""

    activation_std: np.ndarray  # standard deviation of the block's output (after its nonlinearity)
    gradient_norm: np.ndarray  # ||dL/dW|| of the block's linear weight
    update_ratio: np.ndarray  # lr * ||dL/dW|| / ||W||: the relative change one SGD step makes
    loss: float

    @property
    def depth(self) -> int:
        """Number of hidden blocks."""
        return len(self.activation_std)

    @property
    def gradient_ratio(self) -> float:
        """The first hidden layer's weight-gradient norm over the last one's: about 1 for a healthy
        backward pass, in the thousands for a deep ReLU network with BN at initialisation."""
        return float(self.gradient_norm[0] / self.gradient_norm[-1])

    @property
    def gradient_growth(self) -> float:
        """The factor by which the weight-gradient norm grows per layer, going from the last
        hidden layer back to the first (a least-squares fit of log norm against layer): 1 for a
        healthy backward pass, above 1 for gradients that explode towards the input."""
        if self.depth < 2:
            raise ValueError("gradient growth needs at least 2 hidden layers")
        slope = np.polyfit(np.arange(self.depth), np.log(self.gradient_norm), 1)[0]
        return float(np.exp(-slope))


def layer_diagnostics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float) -> LayerDiagnostics:
    """Activation size, weight-gradient size and update ratio of each hidden block of an MLP
    built by :func:`bn_utils.models.make_mlp`, on the batch (x, y), in training mode (batch
    statistics, as the first SGD step sees it). Runs on a copy: the model is not changed."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not all(isinstance(getattr(b, "linear", None), nn.Module) for b in blocks):
        raise ValueError("layer_diagnostics needs a model built by make_mlp or make_convnet (with .blocks[i].linear)")
    if not len(blocks):
        raise ValueError("layer_diagnostics needs at least one hidden block (a model built with depth >= 1)")
    valid.check_inputs_and_labels(x, y)
    valid.check_number("lr", lr, 0, low_open=True)
    model = copy.deepcopy(model).train()  # a forward pass in training mode updates running statistics
    outputs: list[torch.Tensor] = []
    hooks = [
        block.register_forward_hook(lambda module, args, out: outputs.append(out.detach()))
        for block in hidden_blocks(model)
    ]
    weights = [block.get_parameter("linear.weight") for block in hidden_blocks(model)]
    try:
        loss, grads = loss_and_gradients(model, x, y, weights)
    finally:
        for hook in hooks:
            hook.remove()
    gradient_norm = np.array([g.norm().item() for g in grads])
    weight_norm = np.array([w.detach().norm().item() for w in weights])
    return LayerDiagnostics(
        activation_std=np.array([out.float().std().item() for out in outputs]),
        gradient_norm=gradient_norm,
        update_ratio=lr * gradient_norm / weight_norm,
        loss=loss,
    )
