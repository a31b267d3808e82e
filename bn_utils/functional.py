"""Batch normalization as pure functions: the maths, no state (like ``torch.nn.functional``).

The forward pass normalizes each channel with the batch's mean and *biased* variance
(training) or with given running statistics (inference). The backward pass is the
closed form derived by hand in the chapter "Batch normalization from scratch", not
autograd through the forward ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from . import _validate as valid

__all__ = [
    "batch_norm",
    "batch_statistics",
    "batch_norm_gradients",
    "layer_norm",
    "group_norm",
    "instance_norm",
    "rms_norm",
]


def _reduce_dims(x: torch.Tensor) -> list[int]:
    """Every dimension except the channel dimension 1: N, and L or H, W when present."""
    return [0, *range(2, x.dim())]


def _per_channel(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a (C,) tensor so that it broadcasts against x of shape (N, C, *)."""
    return t.reshape(1, -1, *([1] * (x.dim() - 2)))


def batch_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of x (N, C, *) over N and the spatial dims."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    if x.dim() < 2:
        raise ValueError(f"batch_statistics expected input of shape (N, C) or (N, C, *), got shape {tuple(x.shape)}")
    dims = _reduce_dims(x)
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    return mean, var


class _BatchNormFunction(torch.autograd.Function):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, with the hand-derived backward.

    With ``use_batch_stats`` the mean and variance are the batch's own, so gradients flow
    through them; otherwise they are constants (the running estimates).
    Returns (y, batch mean, biased batch var) so the caller can update running statistics
    without computing them twice; the last two are empty when running statistics are used.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        mean: torch.Tensor,
        var: torch.Tensor,
        eps: float,
        use_batch_stats: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if use_batch_stats:
            mean, var = batch_statistics(x)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
        y = x_hat
        if weight is not None:
            y = y * _per_channel(weight, x)
        if bias is not None:
            y = y + _per_channel(bias, x)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.use_batch_stats = use_batch_stats
        if not use_batch_stats:  # never hand the caller's running buffers back as outputs
            mean, var = x.new_empty(0), x.new_empty(0)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_y: torch.Tensor, _grad_mean: torch.Tensor, _grad_var: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x_hat, inv_std, weight = ctx.saved_tensors
        dims = _reduce_dims(grad_y)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad_y * x_hat).sum(dim=dims)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum(dim=dims)
        if ctx.needs_input_grad[0]:
            grad_x_hat = grad_y if weight is None else grad_y * _per_channel(weight, grad_y)
            scale = _per_channel(inv_std, grad_y)
            if ctx.use_batch_stats:
                # dL/dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), g = dL/dx_hat,
                # means taken per channel over the n = N * L (or N * H * W) values.
                mean_g = grad_x_hat.mean(dim=dims, keepdim=True)
                mean_g_xhat = (grad_x_hat * x_hat).mean(dim=dims, keepdim=True)
                grad_x = scale * (grad_x_hat - mean_g - x_hat * mean_g_xhat)
            else:
                grad_x = scale * grad_x_hat
        return grad_x, grad_weight, grad_bias, None, None, None, None


def _check_input(x: object, running_mean: torch.Tensor | None, weight: torch.Tensor | None, training: bool) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"batch_norm expected a torch.Tensor input, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"batch_norm expected input of shape (N, C) or (N, C, *), got shape {tuple(x.shape)}")
    channels = next((t.numel() for t in (running_mean, weight) if t is not None), None)
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"batch_norm expected {channels} channels in dimension 1, i.e. shape "
            f"(N, {channels}, ...), got shape {tuple(x.shape)}"
        )
    values_per_channel = x.numel() // max(x.shape[1], 1)
    if training and values_per_channel < 2:
        raise ValueError(
            "batch_norm needs more than one value per channel when training (the batch "
            f"variance of a single value is 0), got input of shape {tuple(x.shape)}; "
            "use a batch of at least 2, or call model.eval() to use running statistics"
        )


def batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch-normalize x (N, C, *) per channel; same signature and semantics as
    ``torch.nn.functional.batch_norm``.

    Training: normalize with the batch mean and biased variance, and update the running
    estimates in place as ``running = (1 - momentum) * running + momentum * batch``, storing
    the *unbiased* batch variance in ``running_var``. Inference: normalize with the
    running estimates.
    """
    valid.check_momentum("momentum", momentum)
    valid.check_number("eps", eps, 0)
    _check_input(x, running_mean, weight, training)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != x.shape[1]:
            raise ValueError(
                f"batch_norm expected {name} of shape ({x.shape[1]},), one value per channel of the "
                f"input of shape {tuple(x.shape)}, got shape {tuple(t.shape)}"
            )
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """:func:`batch_norm` after its argument checks; the layers call it with arguments they checked once."""
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm in inference mode needs running_mean and running_var")
    if training:
        placeholder = x.new_empty(0)
        y, mean, var = _BatchNormFunction.apply(x, weight, bias, placeholder, placeholder, eps, True)
        if running_mean is not None and running_var is not None:
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (n / (n - 1)), alpha=momentum)
        return y
    y, _, _ = _BatchNormFunction.apply(x, weight, bias, running_mean, running_var, eps, False)
    return y


def batch_norm_gradients(
    batch_norm_fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    upstream: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dx, dL/dγ, dL/dβ) of L = sum(upstream * batch_norm_fn(x)) in training mode, for any
    function with ``torch.nn.functional.batch_norm``'s signature: how two implementations'
    backward passes are compared on the same numbers."""
    if not all(isinstance(t, torch.Tensor) and t.requires_grad for t in (x, weight, bias)):
        raise ValueError("x, weight and bias must be tensors with requires_grad=True (their gradients are returned)")
    if not isinstance(upstream, torch.Tensor) or upstream.shape != x.shape:
        shape = tuple(upstream.shape) if isinstance(upstream, torch.Tensor) else type(upstream).__name__
        raise ValueError(f"upstream must be a tensor shaped like x {tuple(x.shape)}, got {shape}")
    y = batch_norm_fn(x, None, None, weight, bias, training=True)
    dx, dweight, dbias = torch.autograd.grad((y * upstream).sum(), (x, weight, bias))
    return dx, dweight, dbias


def _check_affine(name: str, t: torch.Tensor | None, shape: tuple[int, ...], x: torch.Tensor) -> None:
    if t is not None:
        valid.check_type(name, t, torch.Tensor, "a torch.Tensor or None")
        if tuple(t.shape) != tuple(shape):
            raise ValueError(
                f"expected {name} of shape {tuple(shape)} for the input of shape {tuple(x.shape)}, "
                f"got shape {tuple(t.shape)}"
            )


def _normalize(x: torch.Tensor, dims: list[int], eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(biased var + eps), the statistics taken over ``dims`` (autograd backward)."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


def layer_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...] | list[int] | int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Layer norm (Ba et al., 2016): each example normalized over its last ``len(normalized_shape)``
    dimensions, with its own mean and biased variance; same semantics as
    ``torch.nn.functional.layer_norm`` (``weight``/``bias`` have ``normalized_shape``). No batch
    statistics: training and inference compute the same thing."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    valid.check_number("eps", eps, 0)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or not all(valid.is_int(s) and s > 0 for s in shape):
        raise ValueError(f"normalized_shape must be a positive int or a tuple of them, got {normalized_shape!r}")
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        raise ValueError(f"layer_norm expected an input whose last dimensions are {shape}, got shape {tuple(x.shape)}")
    _check_affine("weight", weight, shape, x)
    _check_affine("bias", bias, shape, x)
    y = _normalize(x, list(range(x.dim() - len(shape), x.dim())), eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def group_norm(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Group norm (Wu & He, 2018): the C channels of each example split into ``num_groups``
    consecutive groups, each group normalized over its channels and positions; same semantics as
    ``torch.nn.functional.group_norm`` (``weight``/``bias`` one value per channel). One group is
    layer norm over (C, H, W); C groups is instance norm (Ulyanov et al., 2016)."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    valid.check_int("num_groups", num_groups)
    valid.check_number("eps", eps, 0)
    if x.dim() < 2:
        raise ValueError(f"group_norm expected input of shape (N, C) or (N, C, *), got shape {tuple(x.shape)}")
    n, c = x.shape[:2]
    if c % num_groups:
        raise ValueError(f"group_norm needs num_groups to divide the {c} channels, got num_groups={num_groups}")
    _check_affine("weight", weight, (c,), x)
    _check_affine("bias", bias, (c,), x)
    grouped = x.reshape(n, num_groups, -1)
    y = _normalize(grouped, [2], eps).reshape(x.shape)
    if weight is not None:
        y = y * _per_channel(weight, x)
    if bias is not None:
        y = y + _per_channel(bias, x)
    return y


def instance_norm(
    x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None, eps: float = 1e-5
) -> torch.Tensor:
    """Instance norm (Ulyanov et al., 2016): each channel of each example normalized over its own
    positions, i.e. :func:`group_norm` with one group per channel (as
    ``torch.nn.functional.instance_norm`` without running statistics)."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    if x.dim() < 3:
        raise ValueError(f"instance_norm expected input of shape (N, C, *) with positions, got shape {tuple(x.shape)}")
    return group_norm(x, x.shape[1], weight, bias, eps)


def rms_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...] | list[int] | int,
    weight: torch.Tensor | None = None,
    eps: float | None = None,
) -> torch.Tensor:
    """RMS norm (Zhang & Sennrich, 2019): each example divided by the root mean square of its last
    ``len(normalized_shape)`` dimensions, sqrt(mean(x²) + eps), with no mean subtracted and no shift;
    same semantics as ``torch.nn.functional.rms_norm`` (``eps=None``: the dtype's machine epsilon;
    ``weight`` has ``normalized_shape``). No batch statistics."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or not all(valid.is_int(s) and s > 0 for s in shape):
        raise ValueError(f"normalized_shape must be a positive int or a tuple of them, got {normalized_shape!r}")
    if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape) :]) != shape:
        raise ValueError(f"rms_norm expected an input whose last dimensions are {shape}, got shape {tuple(x.shape)}")
    eps = torch.finfo(x.dtype).eps if eps is None else valid.check_number("eps", eps, 0)
    _check_affine("weight", weight, shape, x)
    dims = list(range(x.dim() - len(shape), x.dim()))
    y = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps)
    return y if weight is None else y * weight
