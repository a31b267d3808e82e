"""Batch-norm modules built on :mod:`bn_utils.functional`: the state and bookkeeping
(parameters, running buffers, train/eval switch), like ``torch.nn``.

``BatchNorm1d`` and ``BatchNorm2d`` are drop-ins for their torch namesakes: same
constructor arguments, same parameters and buffers (so ``state_dict``s move both ways),
same train/eval behaviour.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from . import _validate as valid
from .functional import batch_norm_unchecked, check_batch_norm_input, check_eps

__all__ = [
    "BatchNormBase",
    "BatchNorm1d",
    "BatchNorm2d",
    "NoisyBatchNorm",
    "GhostBatchNorm",
    "BatchRenorm1d",
    "BatchRenorm2d",
]


def _check_layer_input(module: nn.modules.batchnorm._NormBase, x: object) -> torch.Tensor:
    """The input's type, number of dimensions and channels, for the error a layer of that name should give."""
    name = type(module).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expected a torch.Tensor input, got {type(x).__name__}")
    if x.dim() not in module._input_dims:  # type: ignore[operator]
        raise ValueError(f"{name} expected {module._shapes} input, got {x.dim()}D input of shape {tuple(x.shape)}")
    if x.shape[1] != module.num_features:
        raise ValueError(
            f"{name}({module.num_features}) expected input of shape "
            f"{module._shapes} with C={module.num_features}, got shape {tuple(x.shape)}"
        )
    return x


class BatchNormBase(nn.modules.batchnorm._BatchNorm):
    """The drop-ins' base: torch's batch-norm state, our maths.

    The state and its bookkeeping are torch's own (``torch.nn.modules.batchnorm._BatchNorm``):
    the same parameters and buffers, ``state_dict`` version 2 (a checkpoint saved before
    ``num_batches_tracked`` existed loads with 0 batches seen), ``reset_parameters``,
    ``reset_running_stats`` and ``extra_repr``. The forward pass is the course's: the batch
    statistics and the hand-derived backward of :mod:`bn_utils.functional`. It decides as torch
    does: batch statistics in training mode, and in eval mode when the layer has no running
    buffers; the running buffers are updated only in training mode with ``track_running_stats``
    on (so switching ``track_running_stats`` off on a built layer freezes the buffers, and eval
    mode still normalizes with them); an empty batch gives an empty output and leaves the
    running statistics alone; ``eps`` must be positive whenever batch statistics are used.

    Being a ``torch.nn.modules.batchnorm._BatchNorm``, the layer is found wherever torch code
    looks for batch norms: ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` (which replaces it
    by torch's synchronised layer: our layer cannot share statistics across processes),
    ``torch.optim.swa_utils.update_bn``, ``torch.nn.utils.fusion.fuse_conv_bn_eval``,
    ``torch.func.replace_all_batch_norm_modules_``, and the weight-decay and freezing recipes
    that select batch norms by this class. ``isinstance(m, torch.nn.BatchNorm1d)`` stays False:
    it is a different class with the same behaviour.

    **Differentiable once.** The backward pass is the closed form derived by hand, not autograd
    through the forward's operations; it is not itself differentiated. Double backward (a
    gradient penalty, a Hessian-vector product, ``torch.autograd.gradgradcheck``) and forward-mode
    derivatives (``torch.func.jvp``, ``jacfwd``, ``hessian``) raise a RuntimeError that says so; use
    ``torch.nn.BatchNorm1d``/``BatchNorm2d`` there. First derivatives work with autograd and
    ``torch.func`` (``grad``, ``vjp``, ``jacrev``, ``vmap``), as far as torch's own layer allows (in
    training mode with running statistics, torch.func refuses both: the buffers are updated in place).
    """

    _input_dims: tuple[int, ...] = ()  # accepted numbers of input dimensions
    _shapes: str = ""  # the same, for error messages

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        valid.check_int("num_features", num_features)
        if not valid.is_real(eps):  # its value is checked where torch checks it, in forward
            raise TypeError(f"eps must be a number, got {type(eps).__name__}")
        valid.check_momentum("momentum", momentum, allow_none=True)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        _check_layer_input(self, input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_layer_input(self, x)
        # Batch statistics in training, and in eval mode too when there are no running buffers.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        check_eps(type(self).__name__, self.eps, use_batch_stats)
        # momentum=None means a cumulative moving average: factor 1/k at the k-th batch.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        # The buffers are passed where they are updated (training, tracked) or used (eval).
        pass_buffers = not self.training or self.track_running_stats
        running_mean = self.running_mean if pass_buffers else None
        running_var = self.running_var if pass_buffers else None
        check_batch_norm_input(x, running_mean, self.weight, use_batch_stats)
        return batch_norm_unchecked(
            x, running_mean, running_var, self.weight, self.bias, use_batch_stats, factor, self.eps
        )


class BatchNorm1d(BatchNormBase):
    """From-scratch drop-in for ``torch.nn.BatchNorm1d``: input (N, C) or (N, C, L).

    Same constructor, parameters, buffers and ``state_dict`` as torch's, same numbers (PyTorch's
    own module test data, ``tests/test_module_db.py``); a ``torch.nn.modules.batchnorm._BatchNorm``.
    Its backward pass is differentiable once (see :class:`BatchNormBase`): double backward and
    forward-mode derivatives raise a RuntimeError that says so.
    """

    _input_dims = (2, 3)
    _shapes = "2D (N, C) or 3D (N, C, L)"


class BatchNorm2d(BatchNormBase):
    """From-scratch drop-in for ``torch.nn.BatchNorm2d``: input (N, C, H, W).

    Same constructor, parameters, buffers and ``state_dict`` as torch's, same numbers (PyTorch's
    own module test data, ``tests/test_module_db.py``); a ``torch.nn.modules.batchnorm._BatchNorm``.
    Its backward pass is differentiable once (see :class:`BatchNormBase`): double backward and
    forward-mode derivatives raise a RuntimeError that says so.
    """

    _input_dims = (4,)
    _shapes = "4D (N, C, H, W)"


class NoisyBatchNorm(nn.Module):
    """Batch norm followed by deliberate, ever-changing covariate shift (Santurkar et al., 2018).

    In training mode, at every forward pass each unit j gets a fresh random shift
    m_j ~ U(-max_shift, max_shift) and scale s_j = exp(u), u ~ U(-ln max_scale, ln max_scale),
    so its output is ``s_j * BN(x)_j + m_j``: the next layer's input has a non-zero mean and a
    non-unit variance, and both change every step. In eval mode it is the plain batch norm.
    ``spatial=True`` wraps a ``BatchNorm2d`` (noise per channel). The wrapped layer is torch's
    (identical maths to ours, as the first chapter shows, and faster).
    """

    def __init__(
        self,
        num_features: int,
        *,
        max_shift: float = 1.0,
        max_scale: float = 2.0,
        spatial: bool = False,
        **batch_norm_kwargs: Any,
    ) -> None:
        super().__init__()
        valid.check_number("max_shift", max_shift, 0)
        valid.check_number("max_scale", max_scale, 1)
        valid.check_batch_norm_options(num_features, batch_norm_kwargs)
        self.bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(num_features, **batch_norm_kwargs)
        self.max_shift, self.max_scale = max_shift, max_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        if not self.training:
            return y
        shape = (1, y.shape[1]) + (1,) * (y.dim() - 2)
        shift = (2 * torch.rand(shape, device=y.device, dtype=y.dtype) - 1) * self.max_shift
        log_scale = (2 * torch.rand(shape, device=y.device, dtype=y.dtype) - 1) * math.log(self.max_scale)
        return y * log_scale.exp() + shift

    def extra_repr(self) -> str:
        return f"max_shift={self.max_shift}, max_scale={self.max_scale}"


class GhostBatchNorm(nn.Module):
    """Batch norm whose training-mode statistics come from "ghost batches" of ``ghost_batch_size``
    examples (Hoffer et al., 2017): the mini-batch is split into consecutive chunks, each chunk is
    normalized with its own mean and variance, and the running statistics are updated once per
    chunk. The optimizer's batch stays the same; only the noise of the statistics changes, so its
    effect can be studied on its own. In eval mode it is the plain batch norm. ``spatial=True``
    wraps a ``BatchNorm2d``. The mini-batch size must be a multiple of ``ghost_batch_size``.
    """

    def __init__(
        self, num_features: int, *, ghost_batch_size: int, spatial: bool = False, **batch_norm_kwargs: Any
    ) -> None:
        super().__init__()
        valid.check_int("ghost_batch_size", ghost_batch_size, None)
        valid.check_batch_norm_options(num_features, batch_norm_kwargs)
        if ghost_batch_size < 2:
            raise ValueError(
                f"ghost_batch_size must be at least 2 (batch norm needs 2 examples), got {ghost_batch_size}"
            )
        self.bn = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(num_features, **batch_norm_kwargs)
        self.ghost_batch_size = ghost_batch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.bn(x)
        if len(x) % self.ghost_batch_size:
            raise ValueError(
                f"a batch of {len(x)} examples does not split into ghost batches of "
                f"{self.ghost_batch_size}; use a batch size that is a multiple of it"
            )
        return torch.cat([self.bn(chunk) for chunk in x.split(self.ghost_batch_size)])

    def extra_repr(self) -> str:
        return f"ghost_batch_size={self.ghost_batch_size}"


class _BatchRenorm(nn.modules.batchnorm._NormBase):
    """Batch renormalization (Ioffe, 2017): batch norm whose training-mode output is corrected
    towards what the running statistics would give.

    With the batch's mean mu_B and std sigma_B = sqrt(var_B + eps), and the running ones mu and
    sigma = sqrt(running_var + eps), training computes

        r = clip(sigma_B / sigma, 1 / r_max, r_max),   d = clip((mu_B - mu) / sigma, -d_max, d_max),
        y = weight * ((x - mu_B) / sigma_B * r + d) + bias,

    with r and d treated as constants by the backward pass (no gradient through them), then
    updates the running statistics as batch norm does (momentum, unbiased variance; the paper
    averages sigma itself). Without
    clipping, (x - mu_B) / sigma_B * r + d = (x - mu) / sigma: the training output equals the
    inference output. With r = 1, d = 0 (r_max = 1, d_max = 0) it is batch norm. Inference
    (eval mode) is batch norm's: the running statistics.

    The paper's warm-up: r_max = 1 and d_max = 0 (plain batch norm) for the first
    ``warmup_steps`` training batches, then relaxed linearly to ``r_max`` and ``d_max`` over the
    next ``relax_steps`` (the paper used 5,000 and about 35,000 steps on ImageNet). The step is
    ``num_batches_tracked``, so the schedule travels with the ``state_dict``, which has the same
    keys as batch norm's (a drop-in both ways).
    """

    # always running statistics and a momentum (never None: __init__ rejects momentum=None)
    _input_dims: tuple[int, ...] = ()
    _shapes: str = ""
    momentum: float
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 5000,
        relax_steps: int = 35000,
    ) -> None:
        valid.check_int("num_features", num_features)
        valid.check_number("eps", eps, 0, low_open=True)
        valid.check_momentum("momentum", momentum)  # batch renorm needs running statistics: no None
        super().__init__(num_features, eps, momentum, affine, True, device, dtype)
        self.r_max_final = valid.check_number("r_max", r_max, 1)
        self.d_max_final = valid.check_number("d_max", d_max, 0)
        self.warmup_steps = valid.check_int("warmup_steps", warmup_steps, 0)
        self.relax_steps = valid.check_int("relax_steps", relax_steps, 0)

    def limits(self, step: int | None = None) -> tuple[float, float]:
        """(r_max, d_max) at training batch ``step`` (default: the next batch) of the warm-up schedule."""
        if step is None:
            step = int(self.num_batches_tracked) + 1
        valid.check_int("step", step, 0)
        past = step - self.warmup_steps
        if past <= 0:
            fraction = 0.0
        elif self.relax_steps == 0:
            fraction = 1.0
        else:
            fraction = min(1.0, past / self.relax_steps)
        return 1.0 + fraction * (self.r_max_final - 1.0), fraction * self.d_max_final

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_layer_input(self, x)
        check_eps(type(self).__name__, self.eps, self.training)
        if not self.training:  # batch norm's inference: the running statistics
            check_batch_norm_input(x, self.running_mean, self.weight, False)
            return batch_norm_unchecked(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        check_batch_norm_input(x, None, None, True)
        self.num_batches_tracked.add_(1)
        if x.numel() == 0:  # an empty batch: an empty output, the running statistics left alone (as batch norm)
            return batch_norm_unchecked(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        r_max, d_max = self.limits(int(self.num_batches_tracked))
        dims = [0, *range(2, x.dim())]
        shape = (1, -1, *([1] * (x.dim() - 2)))
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        std = torch.sqrt(var + self.eps)
        with torch.no_grad():
            running_std = torch.sqrt(self.running_var + self.eps)
            r = (std / running_std).clamp(1.0 / r_max, r_max)
            d = ((mean - self.running_mean) / running_std).clamp(-d_max, d_max)
            n = x.numel() // x.shape[1]
            self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(var * (n / (n - 1)), alpha=self.momentum)
        y = (x - mean.reshape(shape)) / std.reshape(shape) * r.reshape(shape) + d.reshape(shape)
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"r_max={self.r_max_final}, d_max={self.d_max_final}, warmup_steps={self.warmup_steps}, "
            f"relax_steps={self.relax_steps}"
        )


class BatchRenorm1d(_BatchRenorm):
    """Batch renormalization (Ioffe, 2017) for input (N, C) or (N, C, L); see :class:`_BatchRenorm`."""

    _input_dims = (2, 3)
    _shapes = "2D (N, C) or 3D (N, C, L)"


class BatchRenorm2d(_BatchRenorm):
    """Batch renormalization (Ioffe, 2017) for input (N, C, H, W); see :class:`_BatchRenorm`."""

    _input_dims = (4,)
    _shapes = "4D (N, C, H, W)"
