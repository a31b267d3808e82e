"""Argument checks shared by the public functions.

Each check raises ``TypeError`` (wrong type) or ``ValueError`` (wrong value) with a message
that names the argument, the value received and what was expected. They only look at the
arguments: no random draws, no forward passes, no change to anything.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import TypeGuard

import torch
from torch import nn

MAX_SEED = 2**32 - 1  # NumPy's limit, hence seed_everything's


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: object, low: int | None = 1, high: int | None = None) -> int:
    """An integer in [low, high] (either bound None: unbounded); ``low=None, high=None`` checks the type only."""
    if low is None:
        expected = "an integer" if high is None else f"an integer <= {high}"
    elif high is None:
        expected = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    else:
        expected = f"an integer between {low} and {high}"
    message = f"{name} must be {expected}, got {value!r}"
    if not is_int(value):
        raise TypeError(message)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(message)
    return int(value)


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the interval from ``low`` to ``high`` (open ends if asked)."""
    if low is not None and high is not None:
        expected = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low == 0:
        expected = "positive and finite" if low_open else "non-negative and finite"
    elif low is not None:
        expected = f"{'>' if low_open else '>='} {low:g} and finite"
    elif high is not None:
        expected = f"{'<' if high_open else '<='} {high:g} and finite"
    else:
        expected = "a finite number"
    message = f"{name} must be {expected}, got {value!r}"
    if not is_real(value):
        raise TypeError(message)
    if not math.isfinite(value):
        raise ValueError(message)
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(message)
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(message)
    return value


def check_momentum(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """A momentum in [0, 1] (or None where that means something, as in batch norm)."""
    if value is None and allow_none:
        return None
    if not is_real(value) or not 0 <= value <= 1:  # NaN fails the comparison
        expected = "None or a number in [0, 1]" if allow_none else "a number in [0, 1]"
        raise (TypeError if not is_real(value) else ValueError)(f"{name} must be {expected}, got {value!r}")
    return value


def check_seed(name: str, value: object) -> int:
    """A seed that :func:`bn_utils.training.seed_everything` accepts."""
    if not is_int(value) or not 0 <= value <= MAX_SEED:
        error = ValueError if is_int(value) else TypeError
        raise error(f"{name} must be an integer between 0 and 2**32 - 1, got {value!r}")
    return int(value)


def check_seeds(name: str, seeds: object, *, distinct: bool = True) -> list[int]:
    """A non-empty collection of seeds, by default all different (a repeated seed repeats a run)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"{name} must be a non-empty list of integer seeds, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError(f"{name} must be a non-empty list of integer seeds, got {seeds!r}")
    for seed in seeds:
        check_seed(f"each of {name}", seed)
    if distinct and len(set(seeds)) < len(seeds):
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        raise ValueError(
            f"{name} must all be different (a repeated seed repeats the same run), got {seeds!r}; repeated: {repeated}"
        )
    return seeds


def check_values(name: str, values: object, check: Callable[[str, object], object], *, distinct: bool = False) -> list:
    """A non-empty collection whose every item passes ``check(label, item)``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a non-empty list, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must be a non-empty list, got {values!r}")
    for value in values:
        check(f"each of {name}", value)
    if distinct and len(set(values)) < len(values):
        raise ValueError(f"{name} must all be different, got {values!r}")
    return values


def check_callable(name: str, value: object, *, optional: bool = True) -> None:
    """A callable (or None when optional)."""
    if value is None and optional:
        return
    if not callable(value):
        expected = "a callable or None" if optional else "a callable"
        raise TypeError(f"{name} must be {expected}, got {value!r}")


def check_type(name: str, value: object, cls: type | tuple[type, ...], expected: str) -> None:
    """An instance of ``cls``, described in the message as ``expected``."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}")


def check_module(name: str, value: object) -> None:
    check_type(name, value, nn.Module, "a torch.nn.Module")


def check_inputs_and_labels(x: torch.Tensor, y: torch.Tensor) -> None:
    """Inputs (N, ...) and integer class labels (N,) for a classifier, N >= 1."""
    check_type("x", x, torch.Tensor, "a torch.Tensor")
    check_type("y", y, torch.Tensor, "a torch.Tensor")
    if y.dtype not in (torch.long, torch.uint8) or y.dim() != 1:
        raise TypeError(
            f"y must be a 1-D tensor of class indices (dtype torch.long), got {y.dtype} of shape {tuple(y.shape)}"
        )
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as inputs (and at least one), got {len(x)} and {len(y)}")


def check_batch_norm_options(num_features: object, options: dict) -> None:
    """``num_features``, and ``eps`` and ``momentum`` when given, of a batch-norm layer."""
    check_int("num_features", num_features)
    if "eps" in options:
        check_number("eps", options["eps"], 0)
    if "momentum" in options:
        check_momentum("momentum", options["momentum"], allow_none=True)


def check_optimizer(optimizer: object, momentum: object, weight_decay: object = 0.0) -> None:
    """Optimizer name and its settings, as :func:`bn_utils.training.train` takes them."""
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; valid names are: adam, sgd")
    check_momentum("momentum", momentum)
    if optimizer == "adam" and momentum != 0:
        raise ValueError(
            f"momentum is for optimizer='sgd' only (Adam has its own), got momentum={momentum!r} with adam"
        )
    check_number("weight_decay", weight_decay, 0)


def check_schedule(
    epochs: int | None, steps: int | None, batch_size: int, num_examples: int, eval_every: int | None
) -> int:
    """Exactly one of ``epochs``/``steps``, a batch size that fits the training set, and ``eval_every``;
    returns the number of optimisation steps (``epochs`` full passes of whole batches, or ``steps``)."""
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs= or steps=")
    check_int("batch_size", batch_size)
    if batch_size > num_examples:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({num_examples})")
    if eval_every is not None:
        check_int("eval_every", eval_every)
    if steps is not None:
        return check_int("steps", steps)
    return check_int("epochs", epochs) * (num_examples // batch_size)


_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


class _Unknown(Exception):
    """The first layer cannot be told for sure (a pre-hook could change the input)."""


def _first_layer(module: nn.Module) -> nn.Module | None:
    """The module that sees a Sequential's input first (skipping identities); None if empty."""
    if module._forward_pre_hooks:
        raise _Unknown
    if isinstance(module, nn.Sequential):
        for child in module:
            found = _first_layer(child)
            if found is not None:
                return found
        return None
    return None if isinstance(module, nn.Identity) else module


def _input_problem(model: nn.Module, x: torch.Tensor, *, shapes_only: bool = False) -> Exception | None:
    """Why the model's first layer cannot take ``x``, when that can be read off the layer."""
    try:
        layer = _first_layer(model)
    except _Unknown:
        return None
    weight = getattr(layer, "weight", None)
    if layer is None or isinstance(weight, nn.parameter.UninitializedParameter):
        return None
    example = tuple(x.shape[1:])
    if isinstance(layer, nn.Linear):
        ok, expected = example[-1:] == (layer.in_features,), f"examples of shape ({layer.in_features},)"
    elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        dims = len(layer.kernel_size)
        ok = len(example) == dims + 1 and example[0] == layer.in_channels
        expected = f"examples of shape ({layer.in_channels}, {_SPATIAL[dims]})"
    elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
        ok, expected = example[:1] == (layer.num_features,), f"examples with {layer.num_features} channels first"
    else:
        ok, expected = True, ""
    if not ok:
        return ValueError(
            f"the model does not fit the data: its first layer, {layer}, expects {expected}, "
            f"but the inputs have shape {tuple(x.shape)}, i.e. examples of shape {example}"
        )
    if isinstance(weight, torch.Tensor) and not shapes_only:  # (autocast, for one, mixes dtypes)
        if weight.is_floating_point() and x.is_floating_point() and weight.dtype != x.dtype:
            return TypeError(
                f"the model's weights are {weight.dtype} but the inputs are {x.dtype}; "
                f"convert one to match, e.g. model.to({x.dtype})"
            )
        if weight.device != x.device:
            return ValueError(
                f"the model is on {weight.device} but the inputs are on {x.device}; move one, e.g. model.to(x.device)"
            )
    return None


def check_model_fits(model: nn.Module, x: torch.Tensor) -> None:
    """Before training: the shape of the examples in ``x`` must be what the model's first layer
    takes, when the model is an ``nn.Sequential`` (so that its first layer is known). Only
    reads the layer's attributes: no forward pass."""
    problem = _input_problem(model, x, shapes_only=True)
    if problem is not None:
        raise problem


@contextlib.contextmanager
def explain_input_mismatch(model: nn.Module, x: torch.Tensor) -> Iterator[None]:
    """Run a forward pass of ``model`` on ``x``; if torch fails deep inside it (e.g. "mat1 and
    mat2 shapes cannot be multiplied") and the model's first layer shows why (input width,
    channels, dtype, device), raise an error that says so, chained to torch's. Adds nothing to
    a pass that works."""
    try:
        yield
    except RuntimeError as exc:
        problem = _input_problem(model, x)
        if problem is None:
            raise
        raise problem from exc
