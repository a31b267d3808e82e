"""Auto-checked exercises: the learner writes batch norm, a checker names the likely mistake.

In the spirit of Karpathy's ``cmp()`` lines and Kaggle Learn's ``check()``, ``hint()`` and
``solution()``: each checker runs the learner's function against the course's reference
(:func:`bn_utils.functional.batch_norm`, which matches PyTorch) on several shapes, 2-D and 4-D,
in float32 and float64. When every case matches it prints one line; otherwise it raises
:class:`ExerciseFailed` with a diagnosis: it compares the learner's numbers with the known-wrong
variants learners write (biased variance in ``running_var``, the reversed momentum convention, a
backward pass missing a projection term, statistics computed under ``torch.no_grad()``, the wrong
axes for a 4-D input, ...) and names the one that matches, else reports the largest error and where.

The four exercises and the signatures the learner implements:

- ``"forward"``: ``forward(x, gamma, beta, eps) -> y``, training mode, x of shape (N, C) or (N, C, H, W);
- ``"backward"``: ``backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``, the closed form;
- ``"running_update"``: ``update(running_mean, running_var, x, momentum) -> (new_mean, new_var)``;
- ``"training_step"``: ``step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y, new_mean, new_var)``.

:func:`compare_prediction` is the "predict, then measure" helper: it prints a written-down
prediction beside the measurement and the explanation of the difference.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .functional import batch_norm

__all__ = [
    "EXERCISES",
    "Comparison",
    "ExerciseFailed",
    "check_backward",
    "check_forward",
    "check_running_update",
    "check_training_step",
    "compare_prediction",
    "hint",
    "solution",
]

Tensor = torch.Tensor


class ExerciseFailed(AssertionError):
    """The learner's function does not match the reference; the message names the likely mistake."""


# --------------------------------------------------------------------------------------------
# the test cases: 2-D and 4-D, float64 and float32


@dataclass(frozen=True)
class _Case:
    shape: tuple[int, ...]
    dtype: torch.dtype
    eps: float = 1e-5
    momentum: float = 0.1
    seed: int = 0

    def describe(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        return f"x of shape {self.shape}, {dtype}, eps={self.eps:g}"

    @property
    def tol(self) -> float:
        return 1e-4 if self.dtype == torch.float32 else 1e-9

    def tensors(self) -> dict[str, Tensor]:
        """x, gamma, beta, dy, running_mean, running_var for this case (a fixed generator: the same every call)."""
        g = torch.Generator().manual_seed(1000 + self.seed)
        channels = self.shape[1]
        kw: dict[str, Any] = {"generator": g, "dtype": torch.float64}
        x = (
            3
            + 2 * torch.randn(self.shape, **kw)
            + torch.arange(channels, dtype=torch.float64).reshape(1, -1, *([1] * (len(self.shape) - 2)))
        )
        values = {
            "x": x,
            "gamma": 1.5 + 0.5 * torch.rand(channels, **kw),
            "beta": 0.5 + torch.rand(channels, **kw),
            "dy": torch.randn(self.shape, **kw),
            "running_mean": 1 + torch.rand(channels, **kw),
            "running_var": 2 + torch.rand(channels, **kw),
        }
        return {k: v.to(self.dtype) for k, v in values.items()}


# W differs from C in the 4-D cases, so gamma of shape (C,) cannot silently broadcast along W.
_CASES = (
    _Case((8, 4), torch.float64),
    _Case((16, 3), torch.float32, seed=1),
    _Case((6, 5), torch.float64, eps=0.1, momentum=0.3, seed=2),
    _Case((4, 3, 5, 6), torch.float64, seed=3),
    _Case((4, 3, 5, 6), torch.float32, seed=4),
    _Case((2, 5, 3, 7), torch.float64, eps=0.1, momentum=0.3, seed=5),
)


def _dims(x: Tensor) -> list[int]:
    return [0, *range(2, x.dim())]


def _pc(t: Tensor, x: Tensor) -> Tensor:
    return t.reshape(1, -1, *([1] * (x.dim() - 2)))


def _count(x: Tensor) -> int:
    return x.numel() // x.shape[1]


# --------------------------------------------------------------------------------------------
# references (float64) and the known-wrong variants


def _normalize(
    x: Tensor, gamma: Tensor, beta: Tensor, eps: float, dims: Sequence[int], unbiased: bool = False
) -> Tensor:
    mean = x.mean(dim=list(dims), keepdim=True)
    var = x.var(dim=list(dims), unbiased=unbiased, keepdim=True)
    return _pc(gamma, x) * (x - mean) / torch.sqrt(var + eps) + _pc(beta, x)


def _forward_variants(x: Tensor, gamma: Tensor, beta: Tensor, eps: float) -> dict[str, Tensor]:
    """Known-wrong forward passes, keyed by the message that names the mistake."""
    d = _dims(x)
    mean, var = x.mean(dim=d, keepdim=True), x.var(dim=d, unbiased=False, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + eps)
    g, b = _pc(gamma, x), _pc(beta, x)
    variants = {
        "you normalized with the unbiased variance (divide by n - 1); training mode divides by n, the "
        "biased variance (torch.var(..., unbiased=False)); only running_var stores the unbiased one": _normalize(
            x, gamma, beta, eps, d, unbiased=True
        ),
        "eps is outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps": g
        * (x - mean)
        / (torch.sqrt(var) + eps)
        + b,
        "eps is missing: divide by sqrt(var + eps), not sqrt(var)": g * (x - mean) / torch.sqrt(var) + b,
        "you divided by the variance instead of the standard deviation: use sqrt(var + eps)": g
        * (x - mean)
        / (var + eps)
        + b,
        "gamma and beta are swapped: y = gamma * x_hat + beta": b * x_hat + g,
        "gamma and beta are not applied: y = gamma * x_hat + beta, not x_hat": x_hat,
        "beta is missing: y = gamma * x_hat + beta": g * x_hat,
        "gamma is missing: y = gamma * x_hat + beta": x_hat + b,
        "the statistics are taken per example, over the features (that is layer norm): average over "
        "the batch, dimension 0" + (", and the spatial dimensions 2 and 3" if x.dim() > 2 else ""): _normalize(
            x, gamma, beta, eps, list(range(1, x.dim()))
        ),
        "wrong axes: you normalized over all of x at once; batch norm keeps the channels apart and averages "
        "each one over " + ("N, H and W (dims 0, 2, 3)" if x.dim() == 4 else "the batch (dim 0)"): _normalize(
            x, gamma, beta, eps, list(range(x.dim()))
        ),
    }
    if x.dim() == 4:
        variants.update(
            {
                "wrong axes for a 4-D input: you normalized over N only (dim 0), so every pixel has its own "
                "statistics; BatchNorm2d averages over N, H and W (dims 0, 2, 3)": _normalize(x, gamma, beta, eps, [0]),
                "wrong axes for a 4-D input: you normalized over H and W of each example (that is instance "
                "norm); BatchNorm2d averages over N, H and W (dims 0, 2, 3)": _normalize(x, gamma, beta, eps, [2, 3]),
                "wrong axes for a 4-D input: you normalized over N and C (dims 0, 1); BatchNorm2d keeps the "
                "channels apart and averages over N, H and W (dims 0, 2, 3)": _normalize(x, gamma, beta, eps, [0, 1]),
            }
        )
    return variants


def _backward_parts(
    dy: Tensor, x: Tensor, gamma: Tensor, eps: float, dims: Sequence[int] | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    d = list(_dims(x) if dims is None else dims)
    mean, var = x.mean(dim=d, keepdim=True), x.var(dim=d, unbiased=False, keepdim=True)
    inv_std = torch.rsqrt(var + eps)
    x_hat = (x - mean) * inv_std
    g = dy * _pc(gamma, x)
    mean_term = g.mean(dim=d, keepdim=True)
    var_term = x_hat * (g * x_hat).mean(dim=d, keepdim=True)
    return inv_std, x_hat, g, mean_term, var_term


def _reference_backward(dy: Tensor, x: Tensor, gamma: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    inv_std, x_hat, g, mean_term, var_term = _backward_parts(dy, x, gamma, eps)
    d = _dims(x)
    return inv_std * (g - mean_term - var_term), (dy * x_hat).sum(dim=d), dy.sum(dim=d)


def _dx_variants(dy: Tensor, x: Tensor, gamma: Tensor, eps: float, *, autograd: bool) -> dict[str, Tensor]:
    """Known-wrong input gradients. ``autograd``: phrase the mistakes as a forward pass that autograd
    differentiated (statistics without gradient); else as a hand-written backward pass."""
    inv_std, x_hat, g, mean_term, var_term = _backward_parts(dy, x, gamma, eps)
    if autograd:
        names = {
            "both": "the batch statistics carry no gradient (computed under torch.no_grad() or .detach()ed): "
            "dL/dgamma and dL/dbeta are right but dL/dx is not, because the mean and variance depend on x too; "
            "compute them with ordinary torch operations so autograd sees them",
            "mean": "the batch mean carries no gradient (computed under torch.no_grad() or .detach()ed): "
            "dL/dx misses its -mean(g) term; compute the mean with ordinary torch operations",
            "var": "the batch variance carries no gradient (computed under torch.no_grad() or .detach()ed): "
            "dL/dx misses its -x_hat * mean(g * x_hat) term; compute the variance with ordinary torch operations",
        }
    else:
        names = {
            "both": "dx misses both projection terms: you treated the mean and the variance as constants (that is "
            "the inference-mode gradient gamma * dy / sqrt(var + eps)); subtract mean(g) and x_hat * mean(g * x_hat)",
            "mean": "dx misses the mean term: subtract mean(g), the per-channel mean of g = gamma * dy, "
            "(it comes from the batch mean's dependence on x)",
            "var": "dx misses the variance term: subtract x_hat * mean(g * x_hat), g = gamma * dy "
            "(it comes from the batch variance's dependence on x)",
        }
    variants = {
        names["both"]: inv_std * g,
        names["mean"]: inv_std * (g - var_term),
        names["var"]: inv_std * (g - mean_term),
    }
    if not autograd:
        d = _dims(x)
        n = _count(x)
        variants["dx is off by the factor gamma: g = gamma * dy is the gradient with respect to x_hat"] = inv_std * (
            dy - dy.mean(dim=d, keepdim=True) - x_hat * (dy * x_hat).mean(dim=d, keepdim=True)
        )
        variants["dx uses sums where the formula has means: divide the two sums over the batch by n"] = inv_std * (
            g - n * mean_term - n * var_term
        )
        if x.dim() == 4:
            i, h, gg, m, v = _backward_parts(dy, x, gamma, eps, dims=[0])
            variants[
                "wrong axes for a 4-D input: your statistics run over N only (dim 0); take them and the means of "
                "the backward pass per channel over N, H and W (dims 0, 2, 3)"
            ] = i * (gg - m - v)
    return variants


def _update_variants(
    running_mean: Tensor, running_var: Tensor, x: Tensor, momentum: float
) -> dict[str, tuple[Tensor, Tensor]]:
    """Known-wrong running-statistics updates: message -> (mean, var)."""
    d, n = _dims(x), _count(x)
    mean, biased = x.mean(dim=d), x.var(dim=d, unbiased=False)
    unbiased = biased * n / (n - 1)
    m = momentum

    def ema(old: Tensor, new: Tensor, weight_on_new: float) -> Tensor:
        return (1 - weight_on_new) * old + weight_on_new * new

    biased_msg = (
        f"running_var is low: the batch variance you averaged in is low by a factor (n−1)/n = {n - 1}/{n}. "
        "You stored the biased batch variance; running_var stores the unbiased one, var * n / (n - 1), "
        f"with n = {n} values per channel"
    )
    reversed_msg = (
        f"reversed momentum convention: you kept {1 - m:g} of the batch statistic and {m:g} of the old "
        f"estimate; PyTorch's rule is running = (1 - momentum) * running + momentum * batch, so momentum={m:g} "
        "puts weight momentum on the *new* batch"
    )
    variants = {
        biased_msg: (ema(running_mean, mean, m), ema(running_var, biased, m)),
        reversed_msg: (ema(running_mean, mean, 1 - m), ema(running_var, unbiased, 1 - m)),
        reversed_msg + "; and " + biased_msg: (ema(running_mean, mean, 1 - m), ema(running_var, biased, 1 - m)),
        "the running statistics were not updated: you returned running_mean and running_var unchanged": (
            running_mean,
            running_var,
        ),
        "momentum is ignored: you replaced the running statistics by the batch's own; blend them, "
        "running = (1 - momentum) * running + momentum * batch": (mean, unbiased),
        "running_var holds a standard deviation: average the (unbiased) variance, not its square root": (
            ema(running_mean, mean, m),
            ema(running_var, unbiased.sqrt(), m),
        ),
    }
    if x.dim() == 4:
        batch = x.shape[0]
        variants[
            f"Bessel's correction with the wrong n: you used the batch size N = {batch}, but each channel of a "
            f"4-D input averages n = N * H * W = {n} values, so the factor is n / (n - 1) = {n}/{n - 1}"
        ] = (ema(running_mean, mean, m), ema(running_var, biased * batch / (batch - 1), m))
    return variants


def _reference_update(running_mean: Tensor, running_var: Tensor, x: Tensor, momentum: float) -> tuple[Tensor, Tensor]:
    rm, rv = running_mean.clone(), running_var.clone()
    batch_norm(x, rm, rv, training=True, momentum=momentum)
    return rm, rv


# --------------------------------------------------------------------------------------------
# comparing and diagnosing


def _error(actual: Tensor, expected: Tensor) -> float:
    return (actual.detach().double() - expected.detach().double()).abs().max().item()


def _where(actual: Tensor, expected: Tensor) -> str:
    diff = (actual.detach().double() - expected.detach().double()).abs()
    index = tuple(int(i) for i in torch.unravel_index(torch.argmax(diff), diff.shape))
    return (
        f"largest error {diff.max().item():.3g} at index {index} "
        f"(yours {actual.detach().double()[index].item():.6g}, reference {expected.double()[index].item():.6g})"
    )


def _call(exercise: str, fn: Callable[..., Any], case: _Case, *args: Any) -> Any:
    """Call the learner's function; a stub's NotImplementedError goes through unchanged."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # the learner's code: any exception is a finding to report
        hint_4d = (
            " For a 4-D input, per-channel statistics are taken over N, H and W (dims 0, 2, 3), giving shape (C,),"
            " and a per-channel tensor broadcasts against x only when reshaped to (1, C, 1, 1)."
            if len(case.shape) == 4
            else ""
        )
        raise ExerciseFailed(
            f"{exercise}: your function raised {type(error).__name__}: {error} (on {case.describe()}).{hint_4d}"
        ) from error


def _as_tensor(exercise: str, what: str, value: Any, expected: Tensor, case: _Case) -> Tensor:
    """The learner's result as a tensor of the expected shape and dtype, or ExerciseFailed saying what differs."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailed(
            f"{exercise}: {what} should be a torch.Tensor of shape {tuple(expected.shape)}, "
            f"got {type(value).__name__} (on {case.describe()})"
        )
    if value.shape != expected.shape:
        extra = ""
        if len(case.shape) == 4 and value.shape == torch.Size(case.shape[1:]):
            extra = "; you reduced over N only (dim 0): reduce over N, H and W (dims 0, 2, 3)"
        elif value.shape == torch.Size([case.shape[0]]):
            extra = "; you reduced over the features of each example: reduce over the batch (dim 0)"
        elif value.dim() == len(case.shape) and value.numel() == expected.numel():
            extra = "; drop the kept dimensions (keepdim=False) or reshape to (C,)"
        raise ExerciseFailed(
            f"{exercise}: {what} has shape {tuple(value.shape)}, expected {tuple(expected.shape)} "
            f"(on {case.describe()}){extra}"
        )
    if value.dtype != case.dtype:
        raise ExerciseFailed(
            f"{exercise}: {what} has dtype {value.dtype}, expected {case.dtype}, the input's dtype "
            f"(on {case.describe()}): do not convert, compute in the input's dtype"
        )
    if not torch.isfinite(value).all():
        raise ExerciseFailed(
            f"{exercise}: {what} contains NaN or inf (on {case.describe()}): is eps inside the square root, "
            "and is the variance non-negative (a mean of squares, not a difference of them)?"
        )
    return value


def _diagnose(
    exercise: str, what: str, actual: Tensor, expected: Tensor, variants: dict[str, Tensor], case: _Case, hint_id: str
) -> ExerciseFailed:
    """Name the known-wrong variant that the learner's result matches, else say where it differs most."""
    for message, wrong in variants.items():
        if _error(wrong, expected) > 10 * case.tol and _error(actual, wrong) <= case.tol:
            return ExerciseFailed(f"{exercise}: {what} is wrong. Likely mistake: {message} (on {case.describe()}).")
    return ExerciseFailed(
        f"{exercise}: {what} does not match the reference (on {case.describe()}): {_where(actual, expected)}. "
        f"None of the common mistakes explains it; call hint({hint_id!r}) for a hint."
    )


def _check_callable(name: str, fn: Any, signature: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} expected your function {signature}, got {fn!r} of type {type(fn).__name__}")


def _passed(what: str) -> None:
    print(f"✓ {what}: matches the reference on {len(_CASES)} cases")


# --------------------------------------------------------------------------------------------
# the checkers


def check_forward(forward: Callable[..., Any]) -> None:
    """Check ``forward(x, gamma, beta, eps) -> y`` (training mode) on 2-D and 4-D inputs, values and gradients."""
    _check_callable("check_forward", forward, "forward(x, gamma, beta, eps) -> y")
    name = "forward pass"
    for case in _CASES:
        t = case.tensors()
        x, gamma, beta = (t[k].clone().requires_grad_() for k in ("x", "gamma", "beta"))
        expected = batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=case.eps)
        y = _as_tensor(name, "y", _call(name, forward, case, x, gamma, beta, case.eps), expected, case)
        if _error(y, expected) > case.tol:
            xd, gd, bd = (t[k].double() for k in ("x", "gamma", "beta"))
            raise _diagnose(name, "y", y, expected, _forward_variants(xd, gd, bd, case.eps), case, "forward")
        if not y.requires_grad:
            raise ExerciseFailed(
                f"{name}: y carries no gradient (on {case.describe()}): the computation ran under "
                "torch.no_grad(), or detached x, or left torch (NumPy?); write it with torch operations"
            )
        grads = torch.autograd.grad((y * t["dy"]).sum(), (x, gamma, beta), allow_unused=True)
        expected_grads = _reference_backward(t["dy"].double(), t["x"].double(), t["gamma"].double(), case.eps)
        for label, grad, want in zip(
            ("dL/dgamma", "dL/dbeta", "dL/dx"),
            grads[1:] + grads[:1],
            expected_grads[1:] + expected_grads[:1],
            strict=True,
        ):
            if grad is None:
                raise ExerciseFailed(f"{name}: {label} is missing: y does not depend on it through autograd")
            if _error(grad, want) > 10 * case.tol:
                variants = (
                    _dx_variants(t["dy"].double(), t["x"].double(), t["gamma"].double(), case.eps, autograd=True)
                    if label == "dL/dx"
                    else {}
                )
                raise _diagnose(name, f"the autograd gradient {label}", grad, want, variants, case, "forward")
    _passed(name)


def check_backward(backward: Callable[..., Any]) -> None:
    """Check the closed-form ``backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)`` on 2-D and 4-D inputs."""
    _check_callable("check_backward", backward, "backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)")
    name = "backward pass"
    for case in _CASES:
        t = case.tensors()
        expected = _reference_backward(t["dy"].double(), t["x"].double(), t["gamma"].double(), case.eps)
        with torch.no_grad():
            result = _call(name, backward, case, t["dy"].clone(), t["x"].clone(), t["gamma"].clone(), case.eps)
        if not isinstance(result, tuple | list) or len(result) != 3:
            raise ExerciseFailed(
                f"{name}: return the three gradients (dx, dgamma, dbeta) as a tuple, got "
                f"{type(result).__name__}{f' of length {len(result)}' if isinstance(result, tuple | list) else ''}"
            )
        dx, dgamma, dbeta = (
            _as_tensor(name, label, value, want, case)
            for label, value, want in zip(("dx", "dgamma", "dbeta"), result, expected, strict=True)
        )
        d = _dims(t["x"])
        if _error(dbeta, expected[2]) > case.tol:
            raise _diagnose(
                name,
                "dbeta",
                dbeta,
                expected[2],
                {"dbeta is the per-channel sum of dy (not its mean)": t["dy"].double().mean(dim=d)},
                case,
                "backward",
            )
        if _error(dgamma, expected[1]) > case.tol:
            xd, dyd = t["x"].double(), t["dy"].double()
            wrong = {
                "dgamma multiplies dy by x; it is the per-channel sum of dy * x_hat (the normalized input)": (
                    dyd * xd
                ).sum(dim=d),
                "dgamma is the per-channel sum of dy * x_hat, not gamma * dy * x_hat": (
                    dyd * _pc(t["gamma"].double(), xd) * _backward_parts(dyd, xd, t["gamma"].double(), case.eps)[1]
                ).sum(dim=d),
            }
            if xd.dim() == 4:
                wrong[
                    "wrong axes for a 4-D input: your statistics run over N only (dim 0); take them per channel "
                    "over N, H and W (dims 0, 2, 3)"
                ] = (dyd * _backward_parts(dyd, xd, t["gamma"].double(), case.eps, dims=[0])[1]).sum(dim=d)
            raise _diagnose(name, "dgamma", dgamma, expected[1], wrong, case, "backward")
        if _error(dx, expected[0]) > case.tol:
            variants = _dx_variants(t["dy"].double(), t["x"].double(), t["gamma"].double(), case.eps, autograd=False)
            raise _diagnose(name, "dx", dx, expected[0], variants, case, "backward")
    _passed(name)


def _check_update_result(name: str, result: Any, t: dict[str, Tensor], case: _Case, x: Tensor) -> None:
    expected = _reference_update(t["running_mean"], t["running_var"], x, case.momentum)
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise ExerciseFailed(
            f"{name}: return the new running statistics as a tuple (new_mean, new_var), got {type(result).__name__}"
        )
    new_mean, new_var = (
        _as_tensor(name, label, value, want, case)
        for label, value, want in zip(("the new running_mean", "the new running_var"), result, expected, strict=True)
    )
    if _error(new_mean, expected[0]) <= case.tol and _error(new_var, expected[1]) <= case.tol:
        return
    variants = _update_variants(t["running_mean"].double(), t["running_var"].double(), x.double(), case.momentum)
    for message, (wrong_mean, wrong_var) in variants.items():
        differs = max(_error(wrong_mean, expected[0]), _error(wrong_var, expected[1])) > 10 * case.tol
        if differs and max(_error(new_mean, wrong_mean), _error(new_var, wrong_var)) <= case.tol:
            raise ExerciseFailed(
                f"{name}: the running statistics are wrong. Likely mistake: {message} "
                f"(on {case.describe()}, momentum={case.momentum:g})."
            )
    label, got, want = (
        ("the new running_mean", new_mean, expected[0])
        if _error(new_mean, expected[0]) > case.tol
        else ("the new running_var", new_var, expected[1])
    )
    raise ExerciseFailed(
        f"{name}: {label} does not match the reference (on {case.describe()}, momentum={case.momentum:g}): "
        f"{_where(got, want)}. None of the common mistakes explains it; call hint({'running_update'!r})."
    )


def check_running_update(update: Callable[..., Any]) -> None:
    """Check ``update(running_mean, running_var, x, momentum) -> (new_mean, new_var)`` (PyTorch's convention)."""
    _check_callable("check_running_update", update, "update(running_mean, running_var, x, momentum) -> (mean, var)")
    name = "running-statistics update"
    for case in _CASES:
        t = case.tensors()
        with torch.no_grad():
            args = (t["running_mean"].clone(), t["running_var"].clone(), t["x"].clone(), case.momentum)
            result = _call(name, update, case, *args)
        if result is None:
            raise ExerciseFailed(
                f"{name}: your function returned None; return the new statistics as (new_mean, new_var)"
            )
        _check_update_result(name, result, t, case, t["x"])
    _passed(name)


def check_training_step(step: Callable[..., Any]) -> None:
    """Check ``step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y, new_mean, new_var)``,
    one training-mode forward pass of a BN layer: normalize with the batch's statistics, update the running ones."""
    signature = "step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y, new_mean, new_var)"
    _check_callable("check_training_step", step, signature)
    name = "training step"
    for case in _CASES:
        t = case.tensors()
        with torch.no_grad():
            args = [t[k].clone() for k in ("x", "gamma", "beta", "running_mean", "running_var")]
            result = _call(name, step, case, *args, case.momentum, case.eps)
        if not isinstance(result, tuple | list) or len(result) != 3:
            raise ExerciseFailed(f"{name}: return (y, new_mean, new_var), got {type(result).__name__}")
        expected_y = batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=case.eps)
        y = _as_tensor(name, "y", result[0], expected_y, case)
        if _error(y, expected_y) > case.tol:
            xd, gd, bd = (t[k].double() for k in ("x", "gamma", "beta"))
            new_mean, new_var = _reference_update(t["running_mean"], t["running_var"], t["x"], case.momentum)
            variants = {
                "running statistics used in training mode: you normalized with running_mean and running_var; in "
                "training mode BN normalizes with the batch's own mean and biased variance (running statistics "
                "are for model.eval())": batch_norm(
                    xd, t["running_mean"].double(), t["running_var"].double(), gd, bd, eps=case.eps
                ),
                "running statistics used in training mode: you normalized with the *updated* running statistics; "
                "in training mode BN normalizes with the batch's own mean and biased variance": batch_norm(
                    xd, new_mean.double(), new_var.double(), gd, bd, eps=case.eps
                ),
                **_forward_variants(xd, gd, bd, case.eps),
            }
            raise _diagnose(name, "y", y, expected_y, variants, case, "training_step")
        _check_update_result(name, tuple(result[1:]), t, case, t["x"])
    _passed(name)


# --------------------------------------------------------------------------------------------
# hints and solutions, Kaggle-Learn style


@dataclass(frozen=True)
class _Exercise:
    title: str
    signature: str
    check: str
    hints: tuple[str, ...]
    solution: str


EXERCISES: dict[str, _Exercise] = {
    "forward": _Exercise(
        title="Batch norm's forward pass (training mode)",
        signature="def bn_forward(x, gamma, beta, eps=1e-5):",
        check="check_forward",
        hints=(
            "Statistics are per channel (dimension 1): average over every other dimension, [0] for (N, C) "
            "and [0, 2, 3] for (N, C, H, W). keepdim=True makes them broadcast against x.",
            "Training mode divides by the *biased* variance, x.var(dim=dims, unbiased=False, keepdim=True), "
            "inside the square root with eps: (x - mean) / torch.sqrt(var + eps). gamma and beta have shape "
            "(C,): reshape them to (1, C) or (1, C, 1, 1) before multiplying.",
        ),
        solution='''def bn_forward(x, gamma, beta, eps=1e-5):
    """Batch norm's training-mode forward pass for x of shape (N, C) or (N, C, H, W)."""
    dims = [0, *range(2, x.dim())]  # every dimension but the channels
    shape = (1, -1, *([1] * (x.dim() - 2)))  # (C,) -> (1, C) or (1, C, 1, 1)
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + eps)
    return gamma.reshape(shape) * x_hat + beta.reshape(shape)
''',
    ),
    "backward": _Exercise(
        title="The closed-form backward pass",
        signature="def bn_backward(dy, x, gamma, eps=1e-5):",
        check="check_backward",
        hints=(
            "Recompute mean, var and x_hat as in the forward pass; dbeta = dy summed per channel, "
            "dgamma = (dy * x_hat) summed per channel.",
            "With g = gamma * dy (the gradient with respect to x_hat): dx = (g - mean(g) - x_hat * mean(g * x_hat)) "
            "/ sqrt(var + eps), the means per channel over the same dimensions as the statistics. The two "
            "subtracted terms are the two projections: one from the mean, one from the variance.",
        ),
        solution='''def bn_backward(dy, x, gamma, eps=1e-5):
    """(dx, dgamma, dbeta) of batch norm in training mode, in closed form."""
    dims = [0, *range(2, x.dim())]
    shape = (1, -1, *([1] * (x.dim() - 2)))
    mean = x.mean(dim=dims, keepdim=True)
    inv_std = torch.rsqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)
    x_hat = (x - mean) * inv_std
    g = dy * gamma.reshape(shape)  # dL/dx_hat
    dx = inv_std * (g - g.mean(dim=dims, keepdim=True) - x_hat * (g * x_hat).mean(dim=dims, keepdim=True))
    return dx, (dy * x_hat).sum(dim=dims), dy.sum(dim=dims)
''',
    ),
    "running_update": _Exercise(
        title="The running-statistics update",
        signature="def bn_running_update(running_mean, running_var, x, momentum=0.1):",
        check="check_running_update",
        hints=(
            "PyTorch's convention puts the weight momentum on the *new* batch: "
            "running = (1 - momentum) * running + momentum * batch_statistic.",
            "running_var averages the *unbiased* batch variance: x.var(dim=dims, unbiased=True), which divides by "
            "n - 1 where n is the number of values per channel (N, or N * H * W for a 4-D input).",
        ),
        solution='''def bn_running_update(running_mean, running_var, x, momentum=0.1):
    """The running mean and variance after one training batch x (PyTorch's convention)."""
    dims = [0, *range(2, x.dim())]
    batch_mean = x.mean(dim=dims)
    batch_var = x.var(dim=dims, unbiased=True)  # running_var stores the unbiased variance
    new_mean = (1 - momentum) * running_mean + momentum * batch_mean
    new_var = (1 - momentum) * running_var + momentum * batch_var
    return new_mean, new_var
''',
    ),
    "training_step": _Exercise(
        title="One training-mode step of a BN layer",
        signature="def bn_training_step(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):",
        check="check_training_step",
        hints=(
            "In training mode the output uses the batch's own statistics; the running ones are only updated.",
            "Call your forward pass for y and your running update for the new statistics.",
        ),
        solution='''def bn_training_step(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    """(y, new_running_mean, new_running_var) for one training batch x."""
    y = bn_forward(x, gamma, beta, eps)  # the batch's own statistics, never the running ones
    new_mean, new_var = bn_running_update(running_mean, running_var, x, momentum)
    return y, new_mean, new_var
''',
    ),
}


def _exercise(exercise_id: str) -> _Exercise:
    if exercise_id not in EXERCISES:
        raise ValueError(f"exercise_id must be one of {sorted(EXERCISES)}, got {exercise_id!r}")
    return EXERCISES[exercise_id]


def hint(exercise_id: str, level: int = 1) -> None:
    """Print the exercise's hint number ``level`` (1 = gentle, then more specific)."""
    exercise = _exercise(exercise_id)
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= len(exercise.hints):
        raise ValueError(f"level must be an integer from 1 to {len(exercise.hints)}, got {level!r}")
    more = f" (hint({exercise_id!r}, {level + 1}) says more)" if level < len(exercise.hints) else ""
    print(f"Hint {level} for {exercise.title.lower()}{more}:\n{exercise.hints[level - 1]}")


def solution(exercise_id: str) -> None:
    """Print the reference solution's code for the exercise."""
    exercise = _exercise(exercise_id)
    print(f"Solution: {exercise.title.lower()}\n\n{exercise.solution}")


# --------------------------------------------------------------------------------------------
# predict, then measure


@dataclass(frozen=True)
class Comparison:
    """A prediction beside its measurement; ``close`` says whether it fell within the tolerance."""

    name: str
    prediction: Any
    measured: Any
    close: bool

    def _ipython_display_(self) -> None:
        """Show nothing as a cell's last value: the comparison was printed."""


def _fmt(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.3g}"
    return repr(value)


def compare_prediction(
    name: str,
    prediction: Any,
    measured: Any,
    *,
    explanation: str,
    relative: float | None = None,
    tolerance: float | None = None,
) -> Comparison:
    """Print the learner's prediction beside the measurement and the explanation; never raises for a wrong guess.

    Numbers are close within ``relative`` (a fraction of the measurement) or ``tolerance`` (absolute);
    anything else (a word, a yes/no) must equal the measurement. A prediction left as ``...`` raises
    NotImplementedError: write the prediction first, then run the experiment.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(explanation, str) or not explanation:
        raise TypeError(
            f"explanation must be a non-empty string (why the measurement is what it is), got {explanation!r}"
        )
    if prediction is ... or prediction is None:
        raise NotImplementedError(f"{name}: write your prediction into the variable before running the experiment")
    if relative is not None and tolerance is not None:
        raise ValueError("give relative or tolerance, not both")
    numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (prediction, measured))
    for label, bound in (("relative", relative), ("tolerance", tolerance)):
        if bound is not None:
            if not isinstance(bound, numbers.Real) or isinstance(bound, bool) or not bound >= 0 or math.isinf(bound):
                raise ValueError(f"{label} must be a non-negative finite number, got {bound!r}")
            if not numeric:
                raise TypeError(f"{label} compares numbers; got prediction {prediction!r} and measured {measured!r}")
    if numeric:
        if relative is None and tolerance is None:
            raise ValueError("numbers need relative= (a fraction of the measurement) or tolerance= (absolute)")
        gap = abs(float(prediction) - float(measured))
        allowed = tolerance if tolerance is not None else relative * abs(float(measured))  # type: ignore[operator]
        close = gap <= allowed
        within = f"within {tolerance:g}" if tolerance is not None else f"within {100 * relative:g}%"  # type: ignore[operator]
        verdict = f"close ({within})" if close else f"off by {gap:.3g} (not {within})"
    else:
        close = prediction == measured
        verdict = "right" if close else "not what happened"
    print(f"{name}: you predicted {_fmt(prediction)}, measured {_fmt(measured)}: {verdict}.\n{explanation}")
    return Comparison(name, prediction, measured, close)
