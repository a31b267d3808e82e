"""Layer-by-layer diagnostics at initialisation: the experiments of the chapter
"Initialization robustness".

Karpathy-style health checks of a deep network before it has taken a step, one number per hidden
block: how large its activations are, how large the gradient of its weights is, and how much one
SGD step would change those weights relative to their size (the *update ratio*
``lr * ||dL/dW|| / ||W||``; about 1e-3 per step is the usual rule of thumb for healthy training).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import _validate as valid
from .data import Dataset
from .models import make_mlp
from .training import get_device, loss_and_gradients, seed_everything

__all__ = [
    "RELU_BN_GRADIENT_GROWTH",
    "LayerDiagnostics",
    "layer_diagnostics",
    "diagnose_at_init",
    "diagnose_init_scales",
    "diagnose_depths",
]

# Yang et al. (2019): in a deep ReLU network with BN before each ReLU, at initialisation and for
# large batches, the squared gradient norm grows by pi / (pi - 1) per layer going back to the input.
RELU_BN_GRADIENT_GROWTH = math.sqrt(math.pi / (math.pi - 1))


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
        block.register_forward_hook(lambda module, args, out: outputs.append(out.detach())) for block in model.blocks
    ]
    weights = [block.linear.weight for block in model.blocks]
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


def diagnose_at_init(
    data: Dataset,
    norm: str,
    *,
    seed: int = 0,
    lr: float = 0.1,
    depth: int = 10,
    width: int = 100,
    activation: str = "relu",
    init_scale: float = 1.0,
    scale_head: bool = False,
    batch_size: int = 256,
) -> LayerDiagnostics:
    """:func:`layer_diagnostics` of a freshly initialised ``depth`` x ``width`` MLP whose hidden
    weights are ``init_scale`` times the He/LeCun scale (the head too if ``scale_head``), on the
    first ``batch_size`` training examples. The same seed draws the same weights at every scale."""
    valid.check_dataset("data", data)
    valid.check_int("depth", depth)
    valid.check_int("batch_size", batch_size, 1, len(data.x_train))
    device = get_device()
    x, y = data.x_train[:batch_size].to(device), data.y_train[:batch_size].to(device)
    seed_everything(seed)
    model = make_mlp(
        data.input_shape[0],
        data.num_classes,
        depth=depth,
        width=width,
        norm=norm,
        activation=activation,
        init_scale=init_scale,
        head_init_scale=None if scale_head else 1.0,
    )
    return layer_diagnostics(model.to(device), x, y, lr)


def diagnose_init_scales(data: Dataset, norm: str, scales: Sequence[float], **kwargs) -> dict[float, LayerDiagnostics]:
    """:func:`diagnose_at_init` at each hidden weight scale (other arguments as there)."""
    scales = valid.check_values("scales", scales, valid.check_number)
    return {scale: diagnose_at_init(data, norm, init_scale=scale, **kwargs) for scale in scales}


def diagnose_depths(data: Dataset, norm: str, depths: Sequence[int], **kwargs) -> dict[int, LayerDiagnostics]:
    """:func:`diagnose_at_init` at each depth (other arguments as there)."""
    depths = valid.check_values("depths", depths, valid.check_int)
    return {depth: diagnose_at_init(data, norm, depth=depth, **kwargs) for depth in depths}
