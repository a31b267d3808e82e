"""Auto-checked exercises: the learner writes batch norm, a checker names the likely mistake.

In the spirit of Karpathy's ``cmp()`` lines and Kaggle Learn's ``check()``, ``hint()`` and
``solution()``: each checker runs the learner's function against the course's reference
(:func:`bn_utils.functional.batch_norm`, which matches PyTorch) on several shapes, 2-D and 4-D,
in float32 and float64. When every case matches it prints one line; otherwise it raises
:class:`ExerciseFailed` with a diagnosis in words. It never lets a raw traceback through: an error
raised by the learner's code (or by autograd on the learner's graph) is reported with the line it
came from and what it usually means.

The diagnosis is measured, not guessed from a list of known wrong functions:

- the learner's results are compared with the reference under every single mistake of a catalogue,
  and every pair of mistakes of different kinds (the statistics' axes, the count, the variance, eps,
  gamma and beta, the terms of the backward pass, the momentum, the order of the results, ...), on
  every case; the mistake (or pair) that reproduces the learner's numbers on the most cases is named;
- when none does, probes built to separate hypotheses say what the function does: it is called again
  with eps alone changed, the momentum alone changed, one channel rescaled, one example changed, the
  examples reordered;
- every input is compared before and after every call: a function that changes x or gamma in place
  fails, even when its numbers are right (the running statistics may be updated in place, as torch does);
- shapes are reported with what they suggest (a transposed result, a kept dimension, a reduction over
  the wrong axes), and a result returned with extra values (``(out, cache)``) is recognised.

The four exercises and the signatures the learner implements:

- ``"forward"``: ``forward(x, gamma, beta, eps) -> y``, training mode, x of shape (N, C) or (N, C, H, W);
- ``"backward"``: ``backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``, the closed form (the checker
  calls it under ``torch.no_grad()`` on purpose: the exercise is to derive the gradients by hand);
- ``"running_update"``: ``update(running_mean, running_var, x, momentum) -> (new_mean, new_var)``;
- ``"training_step"``: ``step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y, new_mean, new_var)``.

:func:`compare_prediction` is the "predict, then measure" helper: it prints a written-down
prediction beside the measurement and the explanation of the difference.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .functional import batch_norm

__all__ = [
    "EXERCISES",
    "UNEXPLAINED",
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

# what a message says when no mistake of the catalogue and no probe explains the learner's numbers
UNEXPLAINED = "None of the mistakes the checker knows explains it"


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


def _double(t: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.double() for k, v in t.items()}


# --------------------------------------------------------------------------------------------
# the catalogue of mistakes: each one a switch of a reference model, so that two combine


@dataclass(frozen=True)
class _Mistake:
    """One mistake: its key (a switch of the model), its kind (two of the same kind exclude each
    other) and the words that name it (a function of the input x where they quote its sizes)."""

    key: str
    kind: str
    words: str | Callable[[Tensor], str]

    def text(self, x: Tensor) -> str:
        return self.words(x) if callable(self.words) else self.words


def _nhw(x: Tensor) -> str:
    return "N, H and W (dims 0, 2, 3)" if x.dim() == 4 else "the batch (dim 0)"


_RESHAPE_WORDS = (
    "for a 4-D input you reshaped x to (-1, C) without moving the channels last first: x.reshape(-1, C) (or "
    ".view) mixes channels and positions, because C is dimension 1, not the last one; use "
    "x.permute(0, 2, 3, 1).reshape(-1, C) (and permute back), or take the statistics over dims (0, 2, 3)"
)


def _batch_count_words(what: str) -> Callable[[Tensor], str]:
    def words(x: Tensor) -> str:
        return (
            f"{what} by the batch size N = {x.shape[0]}, but each channel of a 4-D input averages "
            f"n = N * H * W = {_count(x)} values: divide the sums by n (or use .mean over dims (0, 2, 3))"
        )

    return words


_EPS_IGNORED = (
    "eps is ignored: your function behaves as if eps were 1e-05 whatever eps it is given (hard-coded?); "
    "use the eps argument"
)

_FORWARD_MISTAKES = (
    _Mistake(
        "unbiased",
        "variance",
        "you normalized with the unbiased variance (divide by n - 1); training mode divides by n, the "
        "biased variance (torch.var(..., unbiased=False)); only running_var stores the unbiased one",
    ),
    _Mistake(
        "var_uncentred",
        "variance",
        "the variance is not centred: you averaged x**2, which is E[x^2], not the variance E[(x - mean)^2]",
    ),
    _Mistake(
        "var_all_dims",
        "variance",
        "the variance is taken over every dimension at once, channels included, while the mean is per channel: "
        "take both per channel, over the same dims",
    ),
    _Mistake("count_batch", "count", _batch_count_words("you divided the sums of the mean and the variance")),
    _Mistake("count_batch_var", "count", _batch_count_words("you divided the variance's sum of squares")),
    _Mistake("eps_outside", "eps", "eps is outside the square root: divide by sqrt(var + eps), not sqrt(var) + eps"),
    _Mistake("eps_missing", "eps", "eps is missing: divide by sqrt(var + eps), not sqrt(var)"),
    _Mistake(
        "eps_squared",
        "eps",
        "eps enters as eps ** 2: your function behaves as if eps were eps squared; divide by sqrt(var + eps)",
    ),
    _Mistake("eps_default", "eps", _EPS_IGNORED),
    _Mistake("divide_var", "eps", "you divided by the variance instead of the standard deviation: use sqrt(var + eps)"),
    _Mistake(
        "var_std",
        "variance",
        "you put the standard deviation where the variance goes: sqrt(std + eps) is wrong, divide by "
        "sqrt(var + eps) with the variance var = mean((x - mean) ** 2)",
    ),
    _Mistake(
        "multiply_std",
        "scale",
        "you multiplied by the standard deviation instead of dividing by it: x_hat = (x - mean) / sqrt(var + eps) "
        "(or (x - mean) * torch.rsqrt(var + eps))",
    ),
    _Mistake(
        "no_centre",
        "centre",
        "x is not centred: you divided x by the standard deviation without subtracting the batch mean; "
        "x_hat = (x - mean) / sqrt(var + eps)",
    ),
    _Mistake("swapped", "affine", "gamma and beta are swapped: y = gamma * x_hat + beta"),
    _Mistake("no_affine", "affine", "gamma and beta are not applied: y = gamma * x_hat + beta, not x_hat"),
    _Mistake("no_beta", "affine", "beta is missing: y = gamma * x_hat + beta"),
    _Mistake("no_gamma", "affine", "gamma is missing: y = gamma * x_hat + beta"),
    _Mistake(
        "beta_inside", "affine", "beta is inside the product: y = gamma * x_hat + beta, not gamma * (x_hat + beta)"
    ),
    _Mistake(
        "axes_layer",
        "axes",
        lambda x: (
            "the statistics are taken per example, over the features (that is layer norm): average over "
            "the batch, dimension 0" + (", and the spatial dimensions 2 and 3" if x.dim() > 2 else "")
        ),
    ),
    _Mistake(
        "axes_all",
        "axes",
        lambda x: (
            "wrong axes: you normalized over all of x at once; batch norm keeps the channels apart and "
            f"averages each one over {_nhw(x)}"
        ),
    ),
    _Mistake(
        "axes_n_only",
        "axes",
        "wrong axes for a 4-D input: you normalized over N only (dim 0), so every pixel has its own "
        "statistics; BatchNorm2d averages over N, H and W (dims 0, 2, 3)",
    ),
    _Mistake(
        "axes_instance",
        "axes",
        "wrong axes for a 4-D input: you normalized over H and W of each example (that is instance "
        "norm); BatchNorm2d averages over N, H and W (dims 0, 2, 3)",
    ),
    _Mistake(
        "axes_n_c",
        "axes",
        "wrong axes for a 4-D input: you normalized over N and C (dims 0, 1); BatchNorm2d keeps the "
        "channels apart and averages over N, H and W (dims 0, 2, 3)",
    ),
    _Mistake("axes_reshape", "axes", _RESHAPE_WORDS),
)

# the training step's forward pass may also normalize with the running statistics
_STEP_MISTAKES = (
    _Mistake(
        "running_used",
        "source",
        "running statistics used in training mode: you normalized with running_mean and running_var; in "
        "training mode BN normalizes with the batch's own mean and biased variance (running statistics "
        "are for model.eval())",
    ),
    _Mistake(
        "updated_used",
        "source",
        "running statistics used in training mode: you normalized with the *updated* running statistics; "
        "in training mode BN normalizes with the batch's own mean and biased variance",
    ),
    *_FORWARD_MISTAKES,
)

_BACKWARD_MISTAKES = (
    _Mistake(
        "unbiased",
        "variance",
        "you used the unbiased variance (divide by n - 1); the forward pass normalizes with the biased one "
        "(divide by n), so x_hat and 1 / sqrt(var + eps) of the backward pass must use it too",
    ),
    _Mistake(
        "eps_outside", "eps", "eps is outside the square root: use 1 / sqrt(var + eps), not 1 / (sqrt(var) + eps)"
    ),
    _Mistake("eps_missing", "eps", "eps is missing: use 1 / sqrt(var + eps), not 1 / sqrt(var)"),
    _Mistake("eps_default", "eps", _EPS_IGNORED),
    _Mistake("count_batch", "count", _batch_count_words("you divided the sums of the backward pass's means")),
    _Mistake("sums", "count", "dx uses sums where the formula has means: divide the two sums over the batch by n"),
    _Mistake(
        "no_mean_term",
        "mean term",
        "dx misses the mean term: subtract mean(g), the per-channel mean of g = gamma * dy, "
        "(it comes from the batch mean's dependence on x)",
    ),
    _Mistake(
        "mean_term_no_gamma",
        "mean term",
        "the mean term uses dy where it needs g = gamma * dy (gamma is missing in one term): subtract mean(g), "
        "not mean(dy)",
    ),
    _Mistake(
        "no_var_term",
        "variance term",
        "dx misses the variance term: subtract x_hat * mean(g * x_hat), g = gamma * dy "
        "(it comes from the batch variance's dependence on x)",
    ),
    _Mistake(
        "var_term_sign",
        "variance term",
        "the variance term has the wrong sign: subtract x_hat * mean(g * x_hat), do not add it",
    ),
    _Mistake(
        "var_term_half",
        "variance term",
        "the variance term is half what it should be: the derivative of (x - mean) ** 2 brings a factor 2 "
        "(in the staged form, dvar * 2 * (x - mean) / n); the term is x_hat * mean(g * x_hat)",
    ),
    _Mistake(
        "var_term_no_xhat",
        "variance term",
        "the variance term misses its factor x_hat: subtract x_hat * mean(g * x_hat), not mean(g * x_hat) alone",
    ),
    _Mistake(
        "var_term_no_gamma",
        "variance term",
        "the variance term uses dy where it needs g = gamma * dy (gamma is missing in one term): subtract "
        "x_hat * mean(g * x_hat)",
    ),
    _Mistake(
        "no_gamma", "gamma", "dx is off by the factor gamma: g = gamma * dy is the gradient with respect to x_hat"
    ),
    _Mistake(
        "dgamma_x",
        "dgamma",
        "dgamma multiplies dy by x; it is the per-channel sum of dy * x_hat (the normalized input)",
    ),
    _Mistake("dgamma_gamma", "dgamma", "dgamma is the per-channel sum of dy * x_hat, not gamma * dy * x_hat"),
    _Mistake("dbeta_mean", "dbeta", "dbeta is the per-channel sum of dy (not its mean)"),
    _Mistake("dgamma_mean", "dgamma", "dgamma is the per-channel sum of dy * x_hat, not its mean"),
    _Mistake("dgamma_no_xhat", "dgamma", "dgamma is the per-channel sum of dy * x_hat: the factor x_hat is missing"),
    _Mistake(
        "mean_term_sign",
        "mean term",
        "the mean term has the wrong sign: subtract mean(g), g = gamma * dy, do not add it",
    ),
    _Mistake(
        "mean_term_sum",
        "mean term",
        "the mean term uses a sum where the formula has a mean: subtract mean(g), the sum of g divided by n",
    ),
    _Mistake(
        "var_term_sum",
        "variance term",
        "the variance term uses a sum where the formula has a mean: subtract x_hat * mean(g * x_hat), the sum "
        "divided by n",
    ),
    _Mistake(
        "axes_n_only",
        "axes",
        "wrong axes for a 4-D input: your statistics run over N only (dim 0); take them and the means of "
        "the backward pass per channel over N, H and W (dims 0, 2, 3)",
    ),
    _Mistake("axes_reshape", "axes", _RESHAPE_WORDS),
)
_BOTH_TERMS = (
    "dx misses both projection terms: you treated the mean and the variance as constants (that is "
    "the inference-mode gradient gamma * dy / sqrt(var + eps)); subtract mean(g) and x_hat * mean(g * x_hat)"
)


def _words(mistakes: Sequence[_Mistake], x: Tensor) -> str:
    keys = {m.key for m in mistakes}
    if {"no_mean_term", "no_var_term"} <= keys:  # the two together have a name of their own
        mistakes = [m for m in mistakes if m.key not in ("no_mean_term", "no_var_term")]
        return "; and ".join([_BOTH_TERMS, *(m.text(x) for m in mistakes)])
    return "; and ".join(m.text(x) for m in mistakes)


def _eps_used(eps: float, keys: frozenset[str]) -> float:
    if "eps_default" in keys:
        return 1e-5
    if "eps_squared" in keys:
        return eps**2
    return 0.0 if "eps_missing" in keys else eps


def _working_view(x: Tensor, keys: frozenset[str]) -> Tensor:
    """x itself, or x.reshape(-1, C) for the reshape-without-permute mistake on a 4-D input."""
    return x.reshape(-1, x.shape[1]) if "axes_reshape" in keys and x.dim() > 2 else x


_FORWARD_AXES = {
    "axes_layer": lambda x: list(range(1, x.dim())),
    "axes_all": lambda x: list(range(x.dim())),
    "axes_n_only": lambda x: [0],
    "axes_instance": lambda x: [2, 3] if x.dim() == 4 else _dims(x),
    "axes_n_c": lambda x: [0, 1] if x.dim() == 4 else _dims(x),
}


def _finish(
    work: Tensor, mean: Tensor, var: Tensor, gamma: Tensor, beta: Tensor, eps: float, keys: frozenset[str]
) -> Tensor:
    """x_hat from the statistics, then gamma and beta, with the eps, centring and affine mistakes of ``keys``."""
    e = _eps_used(eps, keys)
    if "eps_outside" in keys:
        denominator = var.sqrt() + e
    elif "divide_var" in keys:
        denominator = var + e
    else:
        denominator = (var + e).sqrt()
    if "multiply_std" in keys:
        denominator = 1 / denominator
    x_hat = (work if "no_centre" in keys else work - mean) / denominator
    g, b = _pc(gamma, work), _pc(beta, work)
    if "swapped" in keys:
        return b * x_hat + g
    if "no_affine" in keys:
        return x_hat
    if "no_beta" in keys:
        return g * x_hat
    if "no_gamma" in keys:
        return x_hat + b
    if "beta_inside" in keys:
        return g * (x_hat + b)
    return g * x_hat + b


def _forward_model(t: dict[str, Tensor], eps: float, keys: frozenset[str], momentum: float = 0.1) -> Tensor:
    """The training-mode forward pass (float64) with the mistakes ``keys`` switched on."""
    x, gamma, beta = t["x"], t["gamma"], t["beta"]
    if "running_used" in keys or "updated_used" in keys:
        mean, var = (t["running_mean"], t["running_var"])
        if "updated_used" in keys:
            mean, var = _reference_update(mean, var, x, momentum)
        return _finish(x, _pc(mean, x), _pc(var, x), gamma, beta, eps, keys)
    work = _working_view(x, keys)
    dims = next((axes(work) for key, axes in _FORWARD_AXES.items() if key in keys), _dims(work))
    n = math.prod(work.shape[d] for d in dims)
    batch = x.shape[0]
    mean = work.sum(dims, keepdim=True) / batch if "count_batch" in keys else work.mean(dims, keepdim=True)
    squares = work**2 if "var_uncentred" in keys else (work - mean) ** 2
    if "var_all_dims" in keys:
        var = squares.mean()
    elif "count_batch" in keys or "count_batch_var" in keys:
        var = squares.sum(dims, keepdim=True) / batch
    elif "unbiased" in keys:
        var = squares.sum(dims, keepdim=True) / max(n - 1, 1)
    else:
        var = squares.mean(dims, keepdim=True)
    if "var_std" in keys:
        var = var.sqrt()
    return _finish(work, mean, var, gamma, beta, eps, keys).reshape(x.shape)


def _backward_model(t: dict[str, Tensor], eps: float, keys: frozenset[str]) -> tuple[Tensor, Tensor, Tensor]:
    """(dx, dgamma, dbeta) of the closed form (float64) with the mistakes ``keys`` switched on."""
    x, dy, gamma = t["x"], t["dy"], t["gamma"]
    work, dy_w = _working_view(x, keys), _working_view(dy, keys)
    full = _dims(work)
    dims = [0] if "axes_n_only" in keys else full
    n = math.prod(work.shape[d] for d in dims)
    mean = work.mean(dims, keepdim=True)
    var = ((work - mean) ** 2).sum(dims, keepdim=True) / (max(n - 1, 1) if "unbiased" in keys else n)
    e = _eps_used(eps, keys)
    inv_std = 1 / (var.sqrt() + e if "eps_outside" in keys else (var + e).sqrt())
    x_hat = (work - mean) * inv_std
    g_affine = _pc(gamma, work)
    g = dy_w if "no_gamma" in keys else dy_w * g_affine

    def reduce(v: Tensor, summed: bool = False) -> Tensor:
        if "sums" in keys or summed:
            return v.sum(dims, keepdim=True)
        if "count_batch" in keys:
            return v.sum(dims, keepdim=True) / x.shape[0]
        return v.mean(dims, keepdim=True)

    mean_term = reduce(dy_w if "mean_term_no_gamma" in keys else g, "mean_term_sum" in keys)
    mean_term = mean_term * (0 if "no_mean_term" in keys else -1 if "mean_term_sign" in keys else 1)
    inner = reduce((dy_w if "var_term_no_gamma" in keys else g) * x_hat, "var_term_sum" in keys)
    var_term = inner if "var_term_no_xhat" in keys else x_hat * inner
    var_term = var_term * (-1 if "var_term_sign" in keys else 1) * (0.5 if "var_term_half" in keys else 1)
    dx = inv_std * (g - mean_term - (0 if "no_var_term" in keys else var_term))
    factor = work if "dgamma_x" in keys else 1 if "dgamma_no_xhat" in keys else x_hat
    products = dy_w * factor * (g_affine if "dgamma_gamma" in keys else 1)
    dgamma = products.mean(full) if "dgamma_mean" in keys else products.sum(full)
    dbeta = dy_w.mean(full) if "dbeta_mean" in keys else dy_w.sum(full)
    return dx.reshape(x.shape), dgamma, dbeta


def _reference_backward(dy: Tensor, x: Tensor, gamma: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    return _backward_model({"x": x, "dy": dy, "gamma": gamma}, eps, frozenset())


def _reference_update(running_mean: Tensor, running_var: Tensor, x: Tensor, momentum: float) -> tuple[Tensor, Tensor]:
    rm, rv = running_mean.clone(), running_var.clone()
    batch_norm(x, rm, rv, training=True, momentum=momentum)
    return rm, rv


def _dx_variants(dy: Tensor, x: Tensor, gamma: Tensor, eps: float) -> dict[str, Tensor]:
    """Input gradients of a forward pass whose statistics autograd could not see (detached)."""
    inv_std = torch.rsqrt(x.var(dim=_dims(x), unbiased=False, keepdim=True) + eps)
    x_hat = (x - x.mean(dim=_dims(x), keepdim=True)) * inv_std
    g = dy * _pc(gamma, x)
    mean_term = g.mean(dim=_dims(x), keepdim=True)
    var_term = x_hat * (g * x_hat).mean(dim=_dims(x), keepdim=True)
    return {
        "the batch statistics carry no gradient (computed under torch.no_grad() or .detach()ed): "
        "dL/dgamma and dL/dbeta are right but dL/dx is not, because the mean and variance depend on x too; "
        "compute them with ordinary torch operations so autograd sees them": inv_std * g,
        "the batch mean carries no gradient (computed under torch.no_grad() or .detach()ed): "
        "dL/dx misses its -mean(g) term; compute the mean with ordinary torch operations": inv_std * (g - var_term),
        "the batch variance carries no gradient (computed under torch.no_grad() or .detach()ed): "
        "dL/dx misses its -x_hat * mean(g * x_hat) term; compute the variance with ordinary torch "
        "operations": inv_std * (g - mean_term),
    }


# the running-statistics update: the weight each statistic gives the batch, and the batch estimate it uses
_WEIGHTS: dict[str, Callable[[float], float]] = {
    "right": lambda m: m,
    "reversed": lambda m: 1 - m,
    "replaced": lambda m: 1.0,
    "not_updated": lambda m: 0.0,
    "hard_coded": lambda m: 0.1,
}


def _mean_estimates(x: Tensor) -> dict[str, Tensor]:
    estimates = {"right": x.mean(_dims(x))}
    if x.dim() > 2:
        estimates["reshape"] = x.reshape(-1, x.shape[1]).mean(0)
    return estimates


def _var_estimates(x: Tensor, running_mean: Tensor) -> dict[str, Tensor]:
    d, n = _dims(x), _count(x)
    biased = x.var(dim=d, unbiased=False)
    unbiased = biased * n / (n - 1)
    estimates = {
        "right": unbiased,
        "biased": biased,
        "std": unbiased.sqrt(),
        "around_running_mean": ((x - _pc(running_mean, x)) ** 2).sum(d) / (n - 1),
        "plus_eps": unbiased + 1e-5,
    }
    if x.dim() > 2:
        batch = x.shape[0]
        estimates["bessel_batch"] = biased * batch / (batch - 1)
        estimates["per_position"] = x.var(0).mean(tuple(range(1, x.dim() - 1)))
        estimates["per_position_biased"] = x.var(0, unbiased=False).mean(tuple(range(1, x.dim() - 1)))
        estimates["reshape"] = x.reshape(-1, x.shape[1]).var(0)
    return estimates


def _weight_words(weight: str, m: float, which: str) -> str:
    on = "" if which == "both" else f" (on {which} only)"
    return {
        "reversed": f"reversed momentum convention{on}: you kept {1 - m:g} of the batch statistic and {m:g} of the "
        "old estimate; PyTorch's rule is running = (1 - momentum) * running + momentum * batch, so "
        f"momentum={m:g} puts weight momentum on the *new* batch",
        "replaced": f"momentum is ignored{on}: you replaced the running statistics by the batch's own; blend them, "
        "running = (1 - momentum) * running + momentum * batch",
        "not_updated": "the running statistics were not updated: you returned running_mean and running_var unchanged"
        if which == "both"
        else f"{which} was not updated: you returned it unchanged; running = (1 - momentum) * running + "
        "momentum * batch",
        "hard_coded": f"momentum is ignored{on}: your update uses momentum 0.1 whatever momentum it is given "
        f"(hard-coded?); with momentum={m:g}, running = (1 - {m:g}) * running + {m:g} * batch",
    }[weight]


def _estimate_words(estimate: str, x: Tensor) -> str:
    n, batch = _count(x), x.shape[0]
    return {
        "biased": f"running_var is low: the batch variance you averaged in is low by a factor (n−1)/n = {n - 1}/{n}. "
        "You stored the biased batch variance; running_var stores the unbiased one, var * n / (n - 1), "
        f"with n = {n} values per channel",
        "std": "running_var holds a standard deviation: average the (unbiased) variance, not its square root",
        "around_running_mean": "the batch variance is taken around running_mean (the old estimate), not around "
        "the batch's own mean: var = sum((x - batch_mean) ** 2) / (n - 1)",
        "plus_eps": "running_var is too high by eps: you added eps to the variance you store; eps belongs only "
        "inside the square root when normalizing",
        "bessel_batch": f"Bessel's correction with the wrong n: you used the batch size N = {batch}, but each "
        f"channel of a 4-D input averages n = N * H * W = {n} values, so the factor is n / (n - 1) = {n}/{n - 1}",
        "per_position": "running_var misses the spread between positions: you took the variance over N at each "
        "position (H, W) and averaged those; take the variance over N, H and W together (dims 0, 2, 3)",
        "per_position_biased": "running_var misses the spread between positions: you took the (biased) variance "
        "over N at each position (H, W) and averaged those; take the unbiased variance over N, H and W together",
        "reshape": _RESHAPE_WORDS,
    }[estimate]


# --------------------------------------------------------------------------------------------
# comparing, and searching the catalogue


def _error(actual: Tensor, expected: Tensor) -> float:
    return (actual.detach().double() - expected.detach().double()).abs().max().item() if actual.numel() else 0.0


def _errors(actual: Sequence[Tensor], expected: Sequence[Tensor]) -> float:
    return max(_error(a, e) for a, e in zip(actual, expected, strict=True))


def _where(actual: Tensor, expected: Tensor) -> str:
    diff = (actual.detach().double() - expected.detach().double()).abs()
    flat = int(torch.argmax(diff))  # row-major index; torch.unravel_index imports sympy on first use (seconds)
    index = tuple((flat // math.prod(diff.shape[k + 1 :])) % diff.shape[k] for k in range(diff.dim()))
    return (
        f"largest error {diff.max().item():.3g} at index {index} "
        f"(yours {actual.detach().double()[index].item():.6g}, reference {expected.double()[index].item():.6g})"
    )


@dataclass
class _Failing:
    """One case on which the learner's results differ from the reference."""

    case: _Case
    t: dict[str, Tensor]  # the case's tensors in float64
    actual: tuple[Tensor, ...]
    expected: tuple[Tensor, ...]
    estimates: dict[int, dict[str, Tensor]] = field(default_factory=dict)  # the batch estimates, computed once

    def batch_estimates(self, index: int) -> dict[str, Tensor]:
        """The candidate batch means (index 0) or variances (1) of the running-statistics update."""
        if index not in self.estimates:
            x = self.t["x"]
            self.estimates[index] = _mean_estimates(x) if index == 0 else _var_estimates(x, self.t["running_mean"])
        return self.estimates[index]


def _hypotheses(mistakes: Sequence[_Mistake], size: int) -> Iterator[tuple[_Mistake, ...]]:
    for combination in itertools.combinations(mistakes, size):
        if len({m.kind for m in combination}) == size:
            yield combination


def _search(
    failing: Sequence[_Failing],
    mistakes: Sequence[_Mistake],
    model: Callable[[_Failing, frozenset[str]], tuple[Tensor, ...]],
) -> tuple[tuple[_Mistake, ...], _Failing] | None:
    """The mistake, or pair of mistakes of different kinds, whose model reproduces the learner's results
    on the most failing cases (ties: the fewer mistakes, then the catalogue's order), and the case to show
    (the first where each of its mistakes shows); None if no mistake or pair reproduces any case."""

    def reproduces(f: _Failing, keys: frozenset[str]) -> bool:
        try:
            wrong = model(f, keys)
        except (RuntimeError, ValueError, IndexError):  # a model that does not apply to this shape
            return False
        return _errors(wrong, f.expected) > 10 * f.case.tol and _errors(f.actual, wrong) <= f.case.tol

    # pairs are tried on one float64 case first, and on the others only where they reproduce that one
    anchor = next((f for f in failing if f.case.dtype == torch.float64), failing[0])
    best: tuple[tuple[_Mistake, ...], list[_Failing]] | None = None
    for size in (1, 2):
        for hypothesis in _hypotheses(mistakes, size):
            keys = frozenset(m.key for m in hypothesis)
            if size == 2 and not reproduces(anchor, keys):
                continue
            matched = [f for f in failing if reproduces(f, keys)]
            if matched and (best is None or len(matched) > len(best[1])):
                best = hypothesis, matched
        if best is not None and len(best[1]) == len(failing):
            break
    if best is None:
        return None
    hypothesis, matched = best
    keys = frozenset(m.key for m in hypothesis)
    for f in matched:  # where dropping any one of the mistakes no longer reproduces the learner's numbers
        if len(keys) == 1 or not any(_errors(f.actual, model(f, keys - {k})) <= f.case.tol for k in keys):
            return hypothesis, f
    return hypothesis, matched[0]


# --------------------------------------------------------------------------------------------
# calling the learner's function: errors and in-place changes explained in words

_OUR_FILES = (str(Path(__file__).parent), str(Path(torch.__file__).parent))


def _learner_line(fn: Callable[..., Any], error: BaseException) -> str:
    """ ", at line 7 of your function: `xmu /= std`" for the innermost frame of the learner's code."""
    frames = traceback.extract_tb(error.__traceback__)
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    mine = [f for f in frames if f.filename == filename] or [
        f for f in frames if not f.filename.startswith(_OUR_FILES) and "site-packages" not in f.filename
    ]
    if not mine:
        return ""
    frame = mine[-1]
    name = "your function" if frame.name == getattr(fn, "__name__", None) else f"{frame.name}"
    code = f": `{frame.line.strip()}`" if frame.line else ""
    return f", at line {frame.lineno} of {name}{code}"


def _short(error: BaseException, limit: int = 300) -> str:
    """The error's type and message: its first line, without torch's advice on anomaly detection."""
    text = f"{type(error).__name__}: {error}".strip()
    first = text.split("\n", 1)[0].split(" Hint: enable anomaly detection", 1)[0].rstrip(". ")
    return first if len(first) <= limit else first[: limit - 3] + "..."


_IN_PLACE_SAVED = (
    " An in-place operation changed a tensor that autograd had saved for the backward pass (for example "
    "`xmu /= std` after `xmu ** 2` saved xmu, or `x_hat.mul_(gamma)`): autograd can no longer compute the "
    "gradient. Write it out of place, `xmu = xmu / std`."
)


def _explain(exercise: str, error: BaseException, case: _Case, signature: str) -> str:
    """What an error raised in the learner's code usually means."""
    text = str(error)
    if "does not require grad and does not have a grad_fn" in text and exercise == "backward pass":
        return (
            " The checker calls your backward pass under torch.no_grad(), on purpose: the exercise is the closed "
            "form derived by hand, so autograd (loss.backward(), torch.autograd.grad) has no graph here. Compute "
            "dx, dgamma and dbeta from the formulas (hint('backward'))."
        )
    if "numpy()" in text and "requires grad" in text:
        return (
            " You converted a tensor to NumPy: autograd cannot follow NumPy, and the checker differentiates your "
            "y. Write it with torch operations (x.mean, x.var, torch.sqrt) instead."
        )
    if "leaf Variable that requires grad is being used in an in-place operation" in text:
        return (
            " You changed an input (x, gamma or beta) in place (x -= ..., x.sub_(...)): never modify the caller's "
            "tensors; write x = x - mean, or work on a copy (x.clone())."
        )
    if "modified by an inplace operation" in text:
        return _IN_PLACE_SAVED
    if re.search(r"positional argument|unexpected keyword argument|takes \d+ .*given", text):
        return f" The checker calls your function as {signature}: give it exactly these parameters, in this order."
    if len(case.shape) == 4:
        return (
            " For a 4-D input, per-channel statistics are taken over N, H and W (dims 0, 2, 3), giving shape (C,),"
            " and a per-channel tensor broadcasts against x only when reshaped to (1, C, 1, 1)."
        )
    return ""


def _changed_in_place(
    exercise: str, name: str, shape: tuple[int, ...], before: Tensor, after: Tensor, case: _Case
) -> str:
    if tuple(after.shape) != shape:
        how = f"its shape went from {shape} to {tuple(after.shape)}"
    elif before.numel():
        how = f"its values changed (by up to {_error(after, before):.3g})"
    else:
        how = "it changed"
    return (
        f"{exercise}: your function changed its input {name} in place (on {case.describe()}): {how}. "
        f"The checker gives your function copies, but in a network the caller's {name} would be corrupted (the "
        f"next layer, or the optimizer, sees the changed values). Compute new tensors instead: `{name} = {name} * "
        f"...` rather than `{name} *= ...` or `{name}.mul_(...)`, or work on `{name}.clone()`."
    )


def _call(
    exercise: str,
    fn: Callable[..., Any],
    case: _Case,
    signature: str,
    args: Sequence[Any],
    inputs: dict[str, Tensor],
    may_change: tuple[str, ...] = (),
) -> Any:
    """Call the learner's function; its errors and its in-place changes of ``inputs`` become ExerciseFailed.
    A stub's NotImplementedError goes through unchanged."""
    before = {k: (tuple(v.shape), v.detach().clone()) for k, v in inputs.items()}
    try:
        result = fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # the learner's code: any exception is a finding to report, in words
        raise ExerciseFailed(
            f"{exercise}: your function raised {_short(error)} (on {case.describe()}){_learner_line(fn, error)}."
            f"{_explain(exercise, error, case, signature)}"
        ) from None
    for name, (shape, values) in before.items():
        now = inputs[name]
        changed = tuple(now.shape) != shape or not torch.equal(now.detach(), values)
        if changed and name not in may_change:
            raise ExerciseFailed(_changed_in_place(exercise, name, shape, values, now.detach(), case))
    return result


def _autograd_failed(name: str, error: BaseException, case: _Case, fn: Callable[..., Any]) -> ExerciseFailed:
    """An error autograd raised while differentiating the learner's y, in words."""
    text = str(error)
    count = re.search(r"incorrect number of gradients \(expected (\d+), got (\d+)\)", text)
    if count:
        why = (
            f" Your torch.autograd.Function's backward returned {count[2]} gradients, but its forward takes "
            f"{count[1]} inputs: return one gradient per input of forward, None for those that need none (eps)."
        )
    elif "invalid gradient" in text:
        why = " Your torch.autograd.Function's backward returned a gradient whose shape is not its input's."
    elif "modified by an inplace operation" in text:
        why = _IN_PLACE_SAVED
    else:
        why = ""
    return ExerciseFailed(
        f"{name}: computing the gradients of your y with autograd failed (on {case.describe()}): "
        f"{_short(error)}{_learner_line(fn, error)}.{why}"
    )


def _transposed(value: Tensor, expected: Tensor) -> bool:
    return value.dim() == expected.dim() > 1 and sorted(value.shape) == sorted(expected.shape)


def _as_tensor(exercise: str, what: str, value: Any, expected: Tensor, case: _Case) -> Tensor:
    """The learner's result as a tensor of the expected shape and dtype, or ExerciseFailed saying what differs."""
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        if value[0].shape == expected.shape:
            raise ExerciseFailed(
                f"{exercise}: your function returned a {type(value).__name__} of {len(value)} values where the "
                f"checker expects {what} alone (on {case.describe()}): {what} and a cache, as in CS231n? Return "
                f"only {what}"
            )
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailed(
            f"{exercise}: {what} should be a torch.Tensor of shape {tuple(expected.shape)}, "
            f"got {type(value).__name__} (on {case.describe()})"
        )
    if value.layout != torch.strided or value.device != expected.device:
        raise ExerciseFailed(
            f"{exercise}: {what} is a {value.layout} tensor on {value.device}, expected an ordinary (strided) tensor "
            f"on {expected.device}, where the inputs are (on {case.describe()})"
        )
    if value.shape != expected.shape:
        extra = ""
        if len(case.shape) == 4 and value.shape == torch.Size(case.shape[1:]):
            extra = "; you reduced over N only (dim 0): reduce over N, H and W (dims 0, 2, 3)"
        elif value.shape == torch.Size([case.shape[0]]):
            extra = "; you reduced over the features of each example: reduce over the batch (dim 0)"
        elif _transposed(value, expected):
            extra = (
                "; transposed? It has the right dimensions in another order: return it in the input's layout "
                "(undo the .t(), .transpose() or .permute())"
            )
        elif expected.dim() == 1 and value.numel() == expected.numel():
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


def _unexplained(
    exercise: str, what: str, f: _Failing, index: int, facts: Sequence[str], hint_id: str, extra: str = ""
) -> ExerciseFailed:
    measured = f" What the checker measured: {'; '.join(facts)}" if facts else f" {UNEXPLAINED}"
    return ExerciseFailed(
        f"{exercise}: {what} does not match the reference (on {f.case.describe()}{extra}): "
        f"{_where(f.actual[index], f.expected[index])}.{measured}; call hint({hint_id!r}) for a hint."
    )


def _check_callable(name: str, fn: Any, signature: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} expected your function {signature}, got {fn!r} of type {type(fn).__name__}")


def _passed(what: str) -> None:
    print(f"✓ {what}: matches the reference on {len(_CASES)} cases")


class _NeverCrash:
    """Turns anything unexpected that escapes a check into an ExerciseFailed that says so in words."""

    def __init__(self, exercise: str, hint_id: str) -> None:
        self.exercise, self.hint_id = exercise, hint_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if error is None or isinstance(error, ExerciseFailed | NotImplementedError) or not isinstance(error, Exception):
            return
        raise ExerciseFailed(
            f"{self.exercise}: the checker could not compare what your function returned ({_short(error)}). "
            f"Check that it returns what the exercise asks for, torch tensors shaped like the reference's; "
            f"call hint({self.hint_id!r}) for a hint."
        ) from None


# --------------------------------------------------------------------------------------------
# probes: what the learner's function does when one thing changes


def _quiet_call(fn: Callable[..., Any], *args: Any) -> Any:
    """The learner's result on a probe, or None when it raises or returns something unusable."""
    try:
        with torch.no_grad():
            result = fn(*args)
    except Exception:
        return None
    return result


def _first_tensor(result: Any) -> Tensor | None:
    if isinstance(result, tuple | list) and result:
        result = result[0]
    return result.detach().double() if isinstance(result, torch.Tensor) else None


def _forward_facts(forward: Callable[..., Any], case: _Case, *, step: bool = False) -> list[str]:
    """Probes of a forward pass (or a training step's y): eps alone, one channel, one example, the order."""
    t = case.tensors()

    def run(x: Tensor, eps: float) -> Tensor | None:
        args: tuple[Any, ...] = (x.clone(), t["gamma"].clone(), t["beta"].clone())
        if step:
            args = (*args, t["running_mean"].clone(), t["running_var"].clone(), case.momentum)
        y = _first_tensor(_quiet_call(forward, *args, eps))
        return y if y is not None and y.shape == x.shape else None

    x, tol = t["x"], 100 * case.tol
    facts: list[str] = []
    base, other_eps = run(x, 0.1), run(x, 0.4)
    if base is None:
        return facts
    if other_eps is not None and _error(base, other_eps) <= tol:
        facts.append(
            "your y is the same for eps=0.1 and eps=0.4, so eps is ignored (hard-coded?); use the eps argument"
        )
    scaled = x.clone()
    scaled[:, 0] = 3 * scaled[:, 0] + 5
    y = run(scaled, 0.1)
    if y is not None and x.shape[1] > 1 and _error(y[:, 1:], base[:, 1:]) > tol:
        facts.append(
            "rescaling channel 0 of x changed the outputs of the other channels, so your statistics mix "
            "channels; batch norm normalizes each channel with its own mean and variance"
        )
    moved = x.clone()
    moved[0] = moved[0] + 10
    y = run(moved, 0.1)
    if y is not None and x.shape[0] > 2 and _error(y[1:], base[1:]) <= tol:
        facts.append(
            "changing example 0 left the other examples' outputs unchanged, so each example is normalized on "
            "its own; batch norm's statistics come from the whole batch (dimension 0)"
        )
    order = torch.arange(x.shape[0] - 1, -1, -1)
    y = run(x[order], 0.1)
    if y is not None and _error(y, base[order]) > tol:
        facts.append("reordering the examples changed their outputs, not just their order (transposed? reshaped?)")
    return facts


def _update_facts(update: Callable[..., Any], case: _Case) -> list[str]:
    t = case.tensors()

    def run(momentum: float) -> tuple[Tensor, ...] | None:
        result = _quiet_call(update, t["running_mean"].clone(), t["running_var"].clone(), t["x"].clone(), momentum)
        if isinstance(result, tuple | list) and len(result) == 2 and all(isinstance(r, Tensor) for r in result):
            return tuple(r.detach().double() for r in result)
        return None

    low, high = run(0.25), run(0.75)
    if low is not None and high is not None and _errors(low, high) <= 100 * case.tol:
        return ["your new statistics are the same for momentum=0.25 and 0.75, so the momentum is ignored (hard-coded?)"]
    return []


# --------------------------------------------------------------------------------------------
# the checkers

_FORWARD_SIGNATURE = "forward(x, gamma, beta, eps) -> y"
_BACKWARD_SIGNATURE = "backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)"
_UPDATE_SIGNATURE = "update(running_mean, running_var, x, momentum) -> (mean, var)"
_STEP_SIGNATURE = "step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y, new_mean, new_var)"


def _likely(mistakes: Sequence[_Mistake], x: Tensor) -> str:
    return f"Likely mistake{'s' if len(mistakes) > 1 else ''}: {_words(mistakes, x)}"


def _forward_failure(
    name: str, forward: Callable[..., Any], failing: list[_Failing], *, step: bool = False
) -> ExerciseFailed:
    mistakes = _STEP_MISTAKES if step else _FORWARD_MISTAKES
    found = _search(failing, mistakes, lambda f, keys: (_forward_model(f.t, f.case.eps, keys, f.case.momentum),))
    first = failing[0]
    if found is not None:
        mistakes_found, shown = found
        return ExerciseFailed(
            f"{name}: y is wrong. {_likely(mistakes_found, shown.t['x'])} (on {shown.case.describe()})."
        )
    facts = _forward_facts(forward, first.case, step=step)
    return _unexplained(name, "y", first, 0, facts, "training_step" if step else "forward")


def check_forward(forward: Callable[..., Any]) -> None:
    """Check ``forward(x, gamma, beta, eps) -> y`` (training mode) on 2-D and 4-D inputs, values and gradients."""
    _check_callable("check_forward", forward, _FORWARD_SIGNATURE)
    name = "forward pass"
    with _NeverCrash(name, "forward"):
        results = []
        for case in _CASES:
            t = case.tensors()
            x, gamma, beta = (t[k].clone().requires_grad_() for k in ("x", "gamma", "beta"))
            expected = batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=case.eps)
            raw = _call(
                name,
                forward,
                case,
                _FORWARD_SIGNATURE,
                (x, gamma, beta, case.eps),
                {"x": x, "gamma": gamma, "beta": beta},
            )
            y = _as_tensor(name, "y", raw, expected, case)
            results.append((case, t, (x, gamma, beta), y, expected))
        failing = [
            _Failing(case, _double(t), (y,), (expected.double(),))
            for case, t, _, y, expected in results
            if _error(y, expected) > case.tol
        ]
        if failing:
            raise _forward_failure(name, forward, failing)
        for case, t, (x, gamma, beta), y, _ in results:
            if not y.requires_grad:
                raise ExerciseFailed(
                    f"{name}: y carries no gradient (on {case.describe()}): the computation ran under "
                    "torch.no_grad(), or detached x, or left torch (NumPy?); write it with torch operations"
                )
            try:
                grads = torch.autograd.grad((y * t["dy"]).sum(), (x, gamma, beta), allow_unused=True)
            except Exception as error:
                raise _autograd_failed(name, error, case, forward) from None
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
                        _dx_variants(t["dy"].double(), t["x"].double(), t["gamma"].double(), case.eps)
                        if label == "dL/dx"
                        else {}
                    )
                    for message, wrong in variants.items():
                        if _error(wrong, want) > 10 * case.tol and _error(grad, wrong) <= 10 * case.tol:
                            raise ExerciseFailed(
                                f"{name}: the autograd gradient {label} is wrong. Likely mistake: {message} "
                                f"(on {case.describe()})."
                            )
                    f = _Failing(case, _double(t), (grad,), (want,))
                    raise _unexplained(name, f"the autograd gradient {label}", f, 0, [], "forward")
    _passed(name)


def _gradient_order(result: Sequence[Tensor], expected: Sequence[Tensor], tol: float) -> str | None:
    """Words for results returned in another order than (dx, dgamma, dbeta), if that is what they are."""
    if _error(result[1], expected[2]) <= tol and _error(result[2], expected[1]) <= tol:
        if _error(expected[1], expected[2]) > 10 * tol:
            return "dgamma and dbeta are swapped: return (dx, dgamma, dbeta), in that order"
    return None


def check_backward(backward: Callable[..., Any]) -> None:
    """Check the closed-form ``backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)`` on 2-D and 4-D inputs."""
    _check_callable("check_backward", backward, _BACKWARD_SIGNATURE)
    name = "backward pass"
    with _NeverCrash(name, "backward"):
        failing = []
        for case in _CASES:
            t = case.tensors()
            expected = _reference_backward(t["dy"].double(), t["x"].double(), t["gamma"].double(), case.eps)
            args = {k: t[k].clone() for k in ("dy", "x", "gamma")}
            with torch.no_grad():
                result = _call(name, backward, case, _BACKWARD_SIGNATURE, (*args.values(), case.eps), args)
            if not isinstance(result, tuple | list) or len(result) != 3:
                raise ExerciseFailed(
                    f"{name}: return the three gradients (dx, dgamma, dbeta) as a tuple, got "
                    f"{type(result).__name__}{f' of length {len(result)}' if isinstance(result, tuple | list) else ''}"
                )
            grads = tuple(
                _as_tensor(name, label, value, want, case)
                for label, value, want in zip(("dx", "dgamma", "dbeta"), result, expected, strict=True)
            )
            if _errors(grads, expected) > case.tol:
                order = _gradient_order(grads, expected, case.tol)
                if order:
                    raise ExerciseFailed(f"{name}: dgamma and dbeta are wrong. Likely mistake: {order}.")
                failing.append(_Failing(case, _double(t), grads, expected))
        if failing:
            found = _search(failing, _BACKWARD_MISTAKES, lambda f, keys: _backward_model(f.t, f.case.eps, keys))
            first = failing[0]
            index = next(i for i in (2, 1, 0) if _error(first.actual[i], first.expected[i]) > first.case.tol)
            what = ("dx", "dgamma", "dbeta")[index]
            if found is not None:
                mistakes, shown = found
                labels = ("dx", "dgamma", "dbeta")
                wrong = [labels[i] for i in range(3) if _error(shown.actual[i], shown.expected[i]) > shown.case.tol]
                verb = "is" if len(wrong) == 1 else "are"
                raise ExerciseFailed(
                    f"{name}: {', '.join(wrong[:-1])}{' and ' if len(wrong) > 1 else ''}{wrong[-1]} {verb} wrong. "
                    f"{_likely(mistakes, shown.t['x'])} (on {shown.case.describe()})."
                )
            facts = _backward_facts(backward, first.case)
            raise _unexplained(name, what, first, index, facts, "backward")
    _passed(name)


def _backward_facts(backward: Callable[..., Any], case: _Case) -> list[str]:
    t = case.tensors()

    def run(dy: Tensor, eps: float) -> tuple[Tensor, ...] | None:
        result = _quiet_call(backward, dy.clone(), t["x"].clone(), t["gamma"].clone(), eps)
        if isinstance(result, tuple | list) and len(result) == 3 and all(isinstance(r, Tensor) for r in result):
            return tuple(r.detach().double() for r in result)
        return None

    facts = []
    low, high = run(t["dy"], 0.1), run(t["dy"], 0.4)
    if low is not None and high is not None and _errors(low, high) <= 100 * case.tol:
        facts.append("your gradients are the same for eps=0.1 and eps=0.4, so eps is ignored (hard-coded?)")
    one_channel = torch.zeros_like(t["dy"])
    one_channel[:, 0] = t["dy"][:, 0]
    grads = run(one_channel, case.eps)
    if grads is not None and grads[0].shape == t["x"].shape and grads[0][:, 1:].abs().max() > 100 * case.tol:
        facts.append(
            "with dy zero outside channel 0, your dx is not zero in the other channels, so your formula mixes "
            "channels; each channel's gradient depends on that channel only"
        )
    return facts


def _update_prediction(f: _Failing, index: int, weight: str, estimate: str) -> Tensor | None:
    """The new running mean (index 0) or variance (1) that a weight rule and a batch estimate give."""
    estimates = f.batch_estimates(index)
    if estimate not in estimates:
        return None
    m = _WEIGHTS[weight](f.case.momentum)
    return (1 - m) * f.t[("running_mean", "running_var")[index]] + m * estimates[estimate]


def _update_failure(failing: Sequence[_Failing]) -> tuple[str, _Failing] | None:
    """Words for the weight rule and batch estimate of each statistic that reproduce the learner's new
    (mean, var) on the most failing cases, and the case to show (where each mistake shows)."""

    def reproduces(f: _Failing, index: int, rule: tuple[str, str]) -> bool:
        value = _update_prediction(f, index, *rule)
        return value is not None and _error(f.actual[index], value) <= f.case.tol

    def best(index: int) -> tuple[str, str] | None:
        names: list[str] = []  # every batch estimate of the failing cases' shapes, in the catalogue's order
        for f in failing:
            names += [e for e in f.batch_estimates(index) if e not in names]
        rules = [(weight, estimate) for weight in _WEIGHTS for estimate in names]
        scores = {rule: sum(reproduces(f, index, rule) for f in failing) for rule in rules}
        top = max(scores.values(), default=0)
        if top == 0:
            return None
        order = list(_WEIGHTS)
        candidates = [r for r in rules if scores[r] == top]
        return min(
            candidates, key=lambda r: ((r[0] != "right") + (r[1] != "right"), order.index(r[0]), r[1] != "right")
        )

    rules, measured = {0: best(0), 1: best(1)}, {}
    for index in (0, 1):
        if rules[index] is None:  # no rule of the catalogue: measure the weights the update gives
            fit = _fit_update(failing, index)
            if fit is None:
                return None
            measured[index], estimate = fit
            rules[index] = ("measured", estimate)
    mean, var = rules[0], rules[1]
    if mean is None or var is None:
        return None

    def shows(f: _Failing) -> bool:  # each wrong part, put right, changes the prediction
        for index, (weight, estimate) in ((0, mean), (1, var)):
            if weight == "measured":
                continue
            if not reproduces(f, index, (weight, estimate)):
                return False
            fixes = ([("right", estimate)] if weight != "right" else []) + (
                [(weight, "right")] if estimate != "right" else []
            )
            for fixed in fixes:
                value = _update_prediction(f, index, *fixed)
                if value is not None and _error(f.actual[index], value) <= f.case.tol:
                    return False
        return True

    shown = next((f for f in failing if shows(f)), failing[0])
    x, m = shown.t["x"], shown.case.momentum
    words = []
    if mean[0] == var[0] and mean[0] not in ("right", "measured"):
        words.append(_weight_words(mean[0], m, "both"))
    else:
        for index, ((weight, _), which) in enumerate(((mean, "running_mean"), (var, "running_var"))):
            if weight == "measured":
                words.append(measured[index])
            elif weight != "right":
                words.append(_weight_words(weight, m, which))
    if mean[1] != "right":
        words.append(_RESHAPE_WORDS)
    if var[1] != "right" and not (mean[1] == var[1] == "reshape") and var[0] != "not_updated":
        words.append(_estimate_words(var[1], x))
    return ("; and ".join(words), shown) if words else None


def _fit_update(failing: Sequence[_Failing], index: int) -> tuple[str, str] | None:
    """Words for the weights a * running + b * batch that the learner's update gives one statistic, measured
    by least squares across the channels of a failing case (for a batch estimate of the catalogue), and
    that estimate; None if no such linear rule reproduces it."""
    which = ("running_mean", "running_var")[index]
    what = ("mean", "variance")[index]
    for f in sorted(failing, key=lambda f: f.case.dtype != torch.float64):
        old = f.t[which]
        if old.numel() < 3:  # two weights need more than two channels to be measured
            continue
        for estimate, batch in f.batch_estimates(index).items():
            a_matrix = torch.stack([old, batch], 1)
            weights = torch.linalg.lstsq(a_matrix, f.actual[index].double().unsqueeze(1)).solution.squeeze(1)
            if _error(a_matrix @ weights, f.actual[index]) > f.case.tol:
                continue
            a, b = (0.0 if abs(w) < 1e-9 else w for w in weights.tolist())
            m = f.case.momentum
            total = "" if abs(a + b - 1) < 1e-6 else f"; your two weights add up to {a + b:.3g}, not 1"
            return (
                f"{which} comes out as {a:.3g} * {which} {'-' if b < 0 else '+'} {abs(b):.3g} * the batch's {what} "
                f"(measured across the channels, momentum={m:g}); PyTorch's rule is (1 - momentum) * running + "
                f"momentum * batch = {1 - m:.3g} * running + {m:.3g} * batch{total}",
                estimate,
            )
    return None


def _update_order(result: Sequence[Tensor], expected: Sequence[Tensor], tol: float) -> bool:
    return (
        _error(expected[0], expected[1]) > 10 * tol
        and _error(result[0], expected[1]) <= tol
        and _error(result[1], expected[0]) <= tol
    )


def _update_result(name: str, result: Any, t: dict[str, Tensor], case: _Case) -> tuple[Tensor, Tensor]:
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise ExerciseFailed(
            f"{name}: return the new running statistics as a tuple (new_mean, new_var), got {type(result).__name__}"
            f"{f' of length {len(result)}' if isinstance(result, tuple | list) else ''}"
        )
    expected = _reference_update(t["running_mean"], t["running_var"], t["x"], case.momentum)
    labels = ("the new running_mean", "the new running_var")
    first, second = (_as_tensor(name, label, v, e, case) for label, v, e in zip(labels, result, expected, strict=True))
    return first, second


def _update_failed(name: str, failing: Sequence[_Failing], update: Callable[..., Any] | None) -> ExerciseFailed:
    first = failing[0]
    context = f"on {first.case.describe()}, momentum={first.case.momentum:g}"
    if all(_update_order(f.actual, f.expected, f.case.tol) for f in failing):
        return ExerciseFailed(
            f"{name}: the running statistics are wrong. Likely mistake: new_mean and new_var are swapped: "
            f"return (new_mean, new_var), in that order ({context})."
        )
    found = _update_failure(failing)
    if found:
        words, shown = found
        context = f"on {shown.case.describe()}, momentum={shown.case.momentum:g}"
        return ExerciseFailed(f"{name}: the running statistics are wrong. Likely mistake: {words} ({context}).")
    index = 0 if _error(first.actual[0], first.expected[0]) > first.case.tol else 1
    facts = _update_facts(update, first.case) if update is not None else []
    label = ("the new running_mean", "the new running_var")[index]
    return _unexplained(name, label, first, index, facts, "running_update", f", momentum={first.case.momentum:g}")


def check_running_update(update: Callable[..., Any]) -> None:
    """Check ``update(running_mean, running_var, x, momentum) -> (new_mean, new_var)`` (PyTorch's convention)."""
    _check_callable("check_running_update", update, _UPDATE_SIGNATURE)
    name = "running-statistics update"
    with _NeverCrash(name, "running_update"):
        failing = []
        for case in _CASES:
            t = case.tensors()
            args = {k: t[k].clone() for k in ("running_mean", "running_var", "x")}
            with torch.no_grad():
                result = _call(
                    name,
                    update,
                    case,
                    _UPDATE_SIGNATURE,
                    (*args.values(), case.momentum),
                    args,
                    may_change=("running_mean", "running_var"),
                )
            if result is None:
                raise ExerciseFailed(
                    f"{name}: your function returned None; return the new statistics as (new_mean, new_var)"
                )
            new = _update_result(name, result, t, case)
            expected = _reference_update(t["running_mean"], t["running_var"], t["x"], case.momentum)
            if _errors(new, expected) > case.tol:
                failing.append(_Failing(case, _double(t), new, tuple(e.double() for e in expected)))
        if failing:
            raise _update_failed(name, failing, update)
    _passed(name)


def _step_order(result: Sequence[Any], expected: Sequence[Tensor]) -> str | None:
    """Words for (y, new_mean, new_var) returned in another order, told apart by shape and value."""
    comparable = (
        isinstance(r, torch.Tensor) and r.layout == torch.strided and r.device == e.device and r.is_floating_point()
        for r, e in zip(result, expected, strict=True)
    )
    if not all(comparable):
        return None
    names = ("y", "new_mean", "new_var")
    for order in itertools.permutations(range(3)):
        if order == (0, 1, 2):
            continue
        if all(
            result[i].shape == expected[j].shape and _error(result[i], expected[j]) <= 1e-4 for i, j in enumerate(order)
        ):
            got = ", ".join(names[j] for j in order)
            return f"you returned ({got}); return (y, new_mean, new_var), in that order"
    if result[0].shape != expected[0].shape and any(r.shape == expected[0].shape for r in result[1:]):
        return "y is not first: return (y, new_mean, new_var), in that order"
    return None


def check_training_step(step: Callable[..., Any]) -> None:
    """Check ``step(x, gamma, beta, running_mean, running_var, momentum, eps) -> (y, new_mean, new_var)``,
    one training-mode forward pass of a BN layer: normalize with the batch's statistics, update the running ones."""
    _check_callable("check_training_step", step, _STEP_SIGNATURE)
    name = "training step"
    with _NeverCrash(name, "training_step"):
        wrong_y, wrong_stats = [], []
        for case in _CASES:
            t = case.tensors()
            args = {k: t[k].clone() for k in ("x", "gamma", "beta", "running_mean", "running_var")}
            with torch.no_grad():
                result = _call(
                    name,
                    step,
                    case,
                    _STEP_SIGNATURE,
                    (*args.values(), case.momentum, case.eps),
                    args,
                    may_change=("running_mean", "running_var"),
                )
            if not isinstance(result, tuple | list) or len(result) != 3:
                length = f" of length {len(result)}" if isinstance(result, tuple | list) else ""
                raise ExerciseFailed(f"{name}: return (y, new_mean, new_var), got {type(result).__name__}{length}")
            expected_y = batch_norm(t["x"], None, None, t["gamma"], t["beta"], training=True, eps=case.eps)
            expected_stats = _reference_update(t["running_mean"], t["running_var"], t["x"], case.momentum)
            order = _step_order(result, (expected_y, *expected_stats))
            if order:
                raise ExerciseFailed(
                    f"{name}: the results are in the wrong order. Likely mistake: {order} (on {case.describe()})."
                )
            y = _as_tensor(name, "y", result[0], expected_y, case)
            stats = _update_result(name, tuple(result[1:]), t, case)
            if _error(y, expected_y) > case.tol:
                wrong_y.append(_Failing(case, _double(t), (y,), (expected_y.double(),)))
            if _errors(stats, expected_stats) > case.tol:
                wrong_stats.append(_Failing(case, _double(t), stats, tuple(e.double() for e in expected_stats)))
        stats_failure = _update_failed(name, wrong_stats, None) if wrong_stats else None
        if wrong_y:
            failure = _forward_failure(name, step, wrong_y, step=True)
            if stats_failure is not None:
                also = str(stats_failure).removeprefix(f"{name}: ")
                y_words = str(failure).split("Likely mistake", 1)[-1].split(" (on ", 1)[0]
                if y_words and y_words in also:  # one mistake behind both: say it once
                    also = "the running statistics are wrong, from the same mistake."
                failure = ExerciseFailed(f"{failure} Also, {also}")
            raise failure
        if stats_failure is not None:
            raise stats_failure
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
