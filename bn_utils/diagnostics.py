"""Per-layer health of a network on one batch (Karpathy-style checks before it has taken a step):
how large each hidden block's activations are, how large the gradient of its weights is, and how much
one SGD step would change those weights relative to their size. Used by the chapters on
initialisation, gradient flow and residual networks (:mod:`bn_utils.experiments.initialization`
re-exports it); and how much of the inputs' structure a representation keeps (mean cosine
similarity, class contrast: chapters on gradient flow and residual networks)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _validate as valid
from .models import hidden_blocks
from .training import loss_and_gradients

__all__ = ["LayerDiagnostics", "layer_diagnostics", "mean_cosine_similarity", "class_contrast"]


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


def _unit_rows(h: torch.Tensor, centre: bool) -> torch.Tensor:
    """Each example's representation scaled to length 1 (in float64); all-zero rows stay zero."""
    h = h.double()
    if centre:
        h = h - h.mean(-2, keepdim=True)
    return h / h.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(h.dtype).tiny)


def mean_cosine_similarity(h: torch.Tensor, *, centre: bool = False) -> torch.Tensor:
    """The mean cosine similarity of the representations of *different* examples: ``h`` has
    shape (..., examples, units) and the result the leading shape. ``centre`` first subtracts each
    unit's mean over the examples. An all-zero representation (every ReLU off) counts as
    orthogonal to every other.

    Uncentred, 1 means every example has the same representation up to its length (the network's
    output can hardly depend on its input); independent Gaussian pre-activations through a ReLU give
    1/pi. Computed from the sum of the unit vectors, in O(examples x units)."""
    if h.dim() < 2 or h.shape[-2] < 2:
        raise ValueError(f"need at least 2 examples, as (..., examples, units); got shape {tuple(h.shape)}")
    unit = _unit_rows(h, centre)
    count = h.shape[-2]
    self_terms = unit.pow(2).sum((-2, -1))  # 1 per example, 0 for all-zero rows
    return (unit.sum(-2).pow(2).sum(-1) - self_terms) / (count * (count - 1))


def class_contrast(h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How much more alike two examples of the same class are than two of different classes, in
    the representation ``h`` (..., examples, units): the mean centred cosine similarity over
    same-class pairs minus that over different-class pairs. About 0.35 for the standardized digits
    themselves; 0 when the representation no longer reflects which examples are alike (whatever
    its size or spread)."""
    if h.dim() < 2:
        raise ValueError(f"h must have shape (..., examples, units), got {tuple(h.shape)}")
    labels = torch.as_tensor(labels).to(h.device)
    if labels.dim() != 1 or len(labels) != h.shape[-2]:
        raise ValueError(f"need one label per example: {h.shape[-2]} examples, labels of shape {tuple(labels.shape)}")
    classes, members = torch.unique(labels, return_inverse=True)
    counts = torch.bincount(members, minlength=len(classes)).double()
    if len(classes) < 2 or not (counts > 1).any():
        raise ValueError("class_contrast needs at least two classes and two examples of one class")
    unit = _unit_rows(h, centre=True)
    self_total = unit.pow(2).sum((-2, -1))
    total = unit.sum(-2).pow(2).sum(-1) - self_total  # sum of cosines over ordered pairs i != j
    one_hot = F.one_hot(members, len(classes)).to(unit.dtype)  # (examples, classes)
    class_sums = one_hot.T @ unit  # (..., classes, units)
    same = class_sums.pow(2).sum((-2, -1)) - self_total  # ordered same-class pairs i != j
    n_same = float((counts * (counts - 1)).sum())
    n_diff = float(len(labels) ** 2 - counts.pow(2).sum())
    return same / n_same - (total - same) / n_diff
