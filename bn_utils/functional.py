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

from . import _validate as valid

__all__ = [
    "batch_norm",
    "batch_norm_unchecked",
    "check_batch_norm_input",
    "check_eps",
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
    if x.numel() == 0:  # an empty batch has no statistics (NaN; var() would warn)
        nan = x.new_full(x.shape[1:2], float("nan"))
        return nan, nan.clone()
    dims = _reduce_dims(x)
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    return mean, var


SINGLE_DIFFERENTIABLE = (
    "bn_utils' batch norm has a hand-derived backward pass that is differentiable once: {what} is not "
    "supported (that needs the gradient of the gradient, or forward-mode derivatives). Use torch.nn.BatchNorm1d/2d "
    "or torch.nn.functional.batch_norm where you need it (gradient penalties, Hessian-vector products, "
    "torch.autograd.gradgradcheck, torch.func.jvp/jacfwd/hessian)"
)


class _SecondOrder(torch.autograd.Function):
    """The hand-derived gradients, passed through unchanged; differentiating them raises a clear error.

    Its first inputs are the forward pass's x, weight and bias: the gradients come out attached
    to them (as ``torch.autograd.function.once_differentiable`` attaches its own), so a gradient
    penalty, ``gradgradcheck`` or ``torch.func.grad(torch.func.grad(f))`` reaches :meth:`backward`
    and its message, instead of a silent zero or "element 0 of tensors does not require grad".
    """

    @staticmethod
    def forward(
        x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, *grads: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        return tuple(g.clone() for g in grads)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, *_: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        raise RuntimeError(SINGLE_DIFFERENTIABLE.format(what="double backward (differentiating a gradient)"))

    @staticmethod
    def jvp(ctx: Any, *_: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        raise RuntimeError(SINGLE_DIFFERENTIABLE.format(what="a forward-mode derivative of the gradient"))

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], *inputs: torch.Tensor) -> tuple[Any, Any]:
        return tuple(g.clone() for g in inputs[3:]), in_dims[3:]


def _once_differentiable(
    grads: tuple[torch.Tensor | None, ...], inputs: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor | None, ...]:
    """The gradients as they are; or, when a graph of the backward pass is being recorded
    (create_graph=True, nested torch.func transforms), through :class:`_SecondOrder`."""
    if not torch.is_grad_enabled():
        return grads
    wrapped = iter(_SecondOrder.apply(*inputs, *(g for g in grads if g is not None)))
    return tuple(None if g is None else next(wrapped) for g in grads)


class _BatchNormFunction(torch.autograd.Function):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, with the hand-derived backward.

    With ``use_batch_stats`` the mean and variance are the batch's own, so gradients flow
    through them; otherwise they are constants (the running estimates).
    Returns (y, mean, biased batch var, 1 / sqrt(var + eps)): the mean used (the batch's, or a copy
    of the running one: never the caller's buffer itself) and the batch variance (empty when
    running statistics are used) let the caller update running statistics without computing them
    twice. Like torch's, the backward pass keeps x (not x_hat) and recomputes x_hat from it. It is
    differentiable once: differentiating the gradient (double backward) or asking for forward-mode
    derivatives raises a RuntimeError that says so.
    """

    generate_vmap_rule = True  # torch.func.vmap (and jacrev, which uses it) runs the same formulas batched

    @staticmethod
    def forward(
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        mean: torch.Tensor,
        var: torch.Tensor,
        eps: float,
        use_batch_stats: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if use_batch_stats:
            mean, var = batch_statistics(x)
            inv_std = torch.rsqrt(var + eps)
        else:  # the running statistics: copies out, never the caller's buffers themselves
            inv_std = torch.rsqrt(var + eps)
            mean, var = mean.clone(), x.new_empty(0)
        y = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
        if weight is not None:
            y = y * _per_channel(weight, x)
        if bias is not None:
            y = y + _per_channel(bias, x)
        return y, mean, var, inv_std

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        x, weight, bias, use_batch_stats = inputs[0], inputs[1], inputs[2], inputs[6]
        _, mean, var, inv_std = output
        ctx.save_for_backward(x, mean, inv_std, weight, bias)  # bias only to attach a second-order error
        ctx.use_batch_stats = use_batch_stats
        ctx.mark_non_differentiable(mean, var, inv_std)

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor, *_: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, mean, inv_std, weight, bias = ctx.saved_tensors
        with torch.no_grad():
            dims = _reduce_dims(grad_y)
            x_hat = (x - _per_channel(mean, x)) * _per_channel(inv_std, x)
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
        return (*_once_differentiable((grad_x, grad_weight, grad_bias), (x, weight, bias)), None, None, None, None)

    @staticmethod
    def jvp(ctx: Any, *_: Any) -> Any:
        raise RuntimeError(SINGLE_DIFFERENTIABLE.format(what="forward-mode differentiation (jvp, jacfwd)"))


def check_batch_norm_input(
    x: object, running_mean: torch.Tensor | None, weight: torch.Tensor | None, training: bool
) -> None:
    """Raise the error :func:`batch_norm` gives for a bad input: not a tensor, fewer than 2 dimensions,
    channels that do not match ``running_mean`` or ``weight``, or one value per channel in training
    (the layers of :mod:`bn_utils.layers` check their inputs with it too)."""
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
    if training and values_per_channel == 1:  # an empty batch passes, as in torch: empty output, no update
        raise ValueError(
            "batch_norm needs more than one value per channel when training (the batch "
            f"variance of a single value is 0), got input of shape {tuple(x.shape)}; "
            "use a batch of at least 2, or call model.eval() to use running statistics"
        )


def check_eps(name: str, eps: object, uses_batch_statistics: bool) -> None:
    """torch's rule for ``eps``: eps > 0 whenever the batch's statistics are used (a constant channel has
    variance 0), eps >= 0 with running statistics; the errors name ``name`` (the function or layer)."""
    if not valid.is_real(eps):
        raise TypeError(f"{name}: eps must be a number, got {type(eps).__name__}")
    if uses_batch_statistics and not eps > 0:
        raise ValueError(
            f"{name}: eps must be positive during training, got eps={eps!r}: the batch statistics are used, and a "
            "channel whose values are all equal has variance 0, so x_hat = 0 / sqrt(0 + eps) would be NaN "
            "(eps=0 is allowed only in eval mode, with running statistics)"
        )
    if not 0 <= eps < float("inf"):
        raise ValueError(f"{name}: eps must be non-negative and finite, got eps={eps!r}")


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
    check_eps("batch_norm", eps, training)
    check_batch_norm_input(x, running_mean, weight, training)
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != x.shape[1]:
            raise ValueError(
                f"batch_norm expected {name} of shape ({x.shape[1]},), one value per channel of the "
                f"input of shape {tuple(x.shape)}, got shape {tuple(t.shape)}"
            )
    return batch_norm_unchecked(x, running_mean, running_var, weight, bias, training, momentum, eps)


def batch_norm_unchecked(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """:func:`batch_norm` without its argument checks (all arguments required): the layers of
    :mod:`bn_utils.layers` call it with arguments they checked once, with :func:`check_eps` and
    :func:`check_batch_norm_input`."""
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm in inference mode needs running_mean and running_var")
    if training:
        placeholder = x.new_empty(0)
        y, mean, var, _ = _BatchNormFunction.apply(x, weight, bias, placeholder, placeholder, eps, True)
        n = x.numel() // max(x.shape[1], 1)
        if running_mean is not None and running_var is not None and n > 1:  # an empty batch leaves them alone
            try:
                with torch.no_grad():
                    running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                    running_var.mul_(1 - momentum).add_(var.detach() * (n / (n - 1)), alpha=momentum)
            except RuntimeError as error:  # e.g. torch.func.vmap: batched statistics, unbatched buffers
                raise RuntimeError(
                    f"batch_norm could not update the running statistics in place ({error}). Under torch.func "
                    "transforms (vmap, grad, ...) the buffers cannot be updated in place, as with torch's own layers: "
                    "call torch.func.replace_all_batch_norm_modules_(model), or use eval mode"
                ) from error
        return y
    y, _, _, _ = _BatchNormFunction.apply(x, weight, bias, running_mean, running_var, eps, False)
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
