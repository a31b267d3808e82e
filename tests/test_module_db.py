"""The from-scratch BatchNorm1d/BatchNorm2d against PyTorch's own module test data.

PyTorch's test suite describes every module in ``torch.testing._internal.common_modules.module_db``:
for ``nn.BatchNorm1d`` and ``nn.BatchNorm2d`` a ``ModuleInfo`` lists constructor arguments and inputs
(momentum None, affine off, bias off, running statistics off, a 3-D input, an empty batch) and the
error inputs torch rejects (eps = 0 and eps < 0). Every sample runs here in float32 and float64, in
training and in evaluation mode, through torch's module and ours with the same state loaded in
(random affine parameters, random running statistics, 3 batches already tracked), twice in a row:
the outputs, the gradients of the input and of the parameters, and every buffer afterwards must agree.
Every error input must raise what torch raises (and nothing where torch raises nothing).

76 checks: 15 samples and 4 error inputs, each in 2 dtypes and 2 modes. Before issue 24, 60 passed: an
empty batch in training raised (4 samples), eps < 0 was refused when the layer was built instead of at
the forward pass (8 error inputs), and eps = 0 was accepted in training (4). All 76 pass now.

The samples are torch's own code, read from the installed ``common_modules.py`` and executed as they
are (the ``module_inputs_*`` functions and the small classes they build), without importing the
module: importing it needs ``expecttest`` (a test dependency of PyTorch's, not ours) and costs about
4 CPU seconds (it loads every operator's test data), a fifth of the unit tests' budget.
"""

from __future__ import annotations

import ast
import copy
import enum
import functools
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bn_utils import BatchNorm1d, BatchNorm2d

SOURCE = Path(torch.__file__).parent / "testing" / "_internal" / "common_modules.py"
OURS = {"BatchNorm1d": BatchNorm1d, "BatchNorm2d": BatchNorm2d}
DTYPES = (torch.float32, torch.float64)
# float32: our forward is a few elementary ops, torch's one fused kernel; they round differently
TOLERANCE = {torch.float32: {"atol": 5e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}
_HELPER_CLASSES = ("FunctionInput", "ModuleInput", "ModuleErrorEnum", "ErrorModuleInput")


@dataclass(frozen=True)
class _Info:
    """What module_db says about one module class: its sample and error-input functions."""

    name: str
    torch_cls: type[nn.Module]
    inputs: Any
    error_inputs: Any
    train_and_eval_differ: bool


def _call_name(node: ast.expr) -> str:
    return ast.unparse(node)


@functools.cache
def _module_db() -> dict[str, _Info]:
    """The ModuleInfo entries of nn.BatchNorm1d and nn.BatchNorm2d, with torch's functions that build their inputs."""
    tree = ast.parse(SOURCE.read_text())
    infos: dict[str, dict[str, Any]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node.func) == "ModuleInfo" and node.args:
            cls = _call_name(node.args[0])
            if cls in (f"torch.nn.{name}" for name in OURS):
                keywords = {k.arg: k.value for k in node.keywords}
                infos[cls.rsplit(".", 1)[1]] = {
                    "inputs": _call_name(keywords["module_inputs_func"]),
                    "error_inputs": _call_name(keywords["module_error_inputs_func"]),
                    "differ": ast.literal_eval(keywords["train_and_eval_differ"])
                    if "train_and_eval_differ" in keywords
                    else False,
                }
    wanted = set(_HELPER_CLASSES) | {v for info in infos.values() for v in (info["inputs"], info["error_inputs"])}
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef) and n.name in wanted]
    namespace: dict[str, Any] = {
        "torch": torch,
        "partial": functools.partial,
        "wraps": functools.wraps,
        "deepcopy": copy.deepcopy,
        "Enum": enum.Enum,
        "make_tensor": torch.testing.make_tensor,
    }
    exec(compile(ast.Module(body=body, type_ignores=[]), str(SOURCE), "exec"), namespace)
    return {
        name: _Info(name, getattr(nn, name), namespace[i["inputs"]], namespace[i["error_inputs"]], i["differ"])
        for name, i in infos.items()
    }


class _FakeInfo:
    """What the input functions read from their ModuleInfo argument."""

    def __init__(self, torch_cls: type[nn.Module]) -> None:
        self.module_cls = torch_cls


def samples(name: str, dtype: torch.dtype, training: bool) -> list[Any]:
    info = _module_db()[name]
    torch.manual_seed(0)  # make_tensor draws from the global generator
    return info.inputs(_FakeInfo(info.torch_cls), device="cpu", dtype=dtype, requires_grad=True, training=training)


def error_inputs(name: str, dtype: torch.dtype, training: bool) -> list[Any]:
    info = _module_db()[name]
    torch.manual_seed(0)
    return info.error_inputs(
        _FakeInfo(info.torch_cls), device="cpu", dtype=dtype, requires_grad=False, training=training
    )


# the parameter grid, fixed at collection time (the number of samples per class is checked below)
SAMPLE_COUNTS = {"BatchNorm1d": 8, "BatchNorm2d": 7}
ERROR_COUNTS = {"BatchNorm1d": 2, "BatchNorm2d": 2}
MODES = {"train": True, "eval": False}


def _grid(counts: dict[str, int]) -> list[Any]:
    return [
        pytest.param(name, dtype, training, index, id=f"{name}-{str(dtype)[6:]}-{mode}-{index}")
        for name, count in counts.items()
        for dtype in DTYPES
        for mode, training in MODES.items()
        for index in range(count)
    ]


def test_module_db_has_the_samples_this_file_expects():
    """A new torch with more or fewer samples fails here, not silently."""
    db = _module_db()
    assert set(db) == set(OURS)
    for name in OURS:
        assert db[name].train_and_eval_differ
        assert len(samples(name, torch.float64, True)) == SAMPLE_COUNTS[name]
        assert len(error_inputs(name, torch.float64, True)) == ERROR_COUNTS[name]
        descriptions = {s.desc for s in samples(name, torch.float64, True)}
        assert {"not_affine", "not_tracking_stats", "zero_batch", "affine_not_bias"} <= descriptions


def _loaded_pair(
    name: str, dtype: torch.dtype, training: bool, args: tuple, kwargs: dict
) -> tuple[nn.Module, nn.Module]:
    """torch's module with a random state, and ours with that state loaded in, both in the same mode."""
    ref = getattr(nn, name)(*args, **kwargs).to(dtype)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(0.5 + torch.rand(p.shape, generator=g, dtype=dtype))
        if ref.running_mean is not None:
            ref.running_mean.copy_(torch.randn(ref.running_mean.shape, generator=g, dtype=dtype))
            ref.running_var.copy_(0.5 + torch.rand(ref.running_var.shape, generator=g, dtype=dtype))
            ref.num_batches_tracked.fill_(3)
    ours = OURS[name](*args, **kwargs).to(dtype)
    ours.load_state_dict(ref.state_dict())
    return ours.train(training), ref.train(training)


def _assert_close(what: str, ours: Any, theirs: Any, dtype: torch.dtype) -> None:
    if theirs is None:
        assert ours is None, f"{what}: torch's is None, ours is not"
        return
    assert ours is not None, f"{what}: ours is None, torch's is not"
    torch.testing.assert_close(ours, theirs, **TOLERANCE[dtype], msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("name, dtype, training, index", _grid(SAMPLE_COUNTS))
def test_module_db_sample_matches_torch(name, dtype, training, index):
    """Forward, backward and buffers of one module_db sample, twice in a row, against torch's module."""
    sample = samples(name, dtype, training)[index]
    c, f = sample.constructor_input, sample.forward_input
    ours, ref = _loaded_pair(name, dtype, training, c.args, c.kwargs)
    (x,) = f.args
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    for step in range(2):
        x_ours, x_ref = (x.detach().clone().requires_grad_() for _ in range(2))
        y_ours, y_ref = ours(x_ours), ref(x_ref)
        assert y_ours.shape == y_ref.shape and y_ours.dtype == y_ref.dtype
        _assert_close(f"step {step}: output", y_ours, y_ref, dtype)
        (y_ours * upstream).sum().backward()
        (y_ref * upstream).sum().backward()
        _assert_close(f"step {step}: input gradient", x_ours.grad, x_ref.grad, dtype)
        for (key, p_ours), p_ref in zip(ours.named_parameters(), ref.parameters(), strict=True):
            _assert_close(f"step {step}: gradient of {key}", p_ours.grad, p_ref.grad, dtype)
        state_ours, state_ref = ours.state_dict(), ref.state_dict()
        assert list(state_ours) == list(state_ref)
        for key, value in state_ref.items():
            assert state_ours[key].dtype == value.dtype, key
            _assert_close(f"step {step}: buffer {key}", state_ours[key], value, dtype)


def _outcome(module_cls: type[nn.Module], sample: Any, dtype: torch.dtype, training: bool) -> tuple[str, Any]:
    """('construction' | 'forward', the exception) or ('ok', the output)."""
    c, f = sample.constructor_input, sample.forward_input
    try:
        module = module_cls(*c.args, **c.kwargs).to(dtype)
    except Exception as error:
        return "construction", error
    try:
        return "ok", module.train(training)(*f.args, **f.kwargs)
    except Exception as error:
        return "forward", error


@pytest.mark.parametrize("name, dtype, training, index", _grid(ERROR_COUNTS))
def test_module_db_error_input_is_rejected_as_torch_rejects_it(name, dtype, training, index):
    """Training mode: the error module_db names, at the step it names (torch's test_errors). Evaluation mode:
    whatever torch does (eps = 0 is allowed with running statistics; eps < 0 never is)."""
    error_input = error_inputs(name, dtype, training)[index]
    sample = error_input.module_error_input
    when_ours, ours = _outcome(OURS[name], sample, dtype, training)
    when_ref, ref = _outcome(getattr(nn, name), sample, dtype, training)
    if training:
        step = "construction" if error_input.error_on.name == "CONSTRUCTION_ERROR" else "forward"
        assert when_ref == step and isinstance(ref, error_input.error_type)  # the data hold for torch itself
        assert when_ours == step, f"expected {error_input.error_type.__name__} at {step}, got {when_ours}: {ours!r}"
        assert isinstance(ours, error_input.error_type), repr(ours)
        assert re.search(error_input.error_regex, str(ours)), str(ours)
    else:
        assert when_ours == when_ref, f"torch: {when_ref} {ref!r}; ours: {when_ours} {ours!r}"
        if when_ref == "ok":
            torch.testing.assert_close(ours, ref, **TOLERANCE[dtype])
        else:
            assert type(ours) is type(ref) and "eps" in str(ours), repr(ours)


def test_pass_count_covers_every_sample_and_error_input():
    """The grid above: 15 samples and 4 error inputs, each in 2 dtypes and 2 modes, 76 checks."""
    assert len(_grid(SAMPLE_COUNTS)) + len(_grid(ERROR_COUNTS)) == 76
    assert list(itertools.chain(SAMPLE_COUNTS, ERROR_COUNTS)) == ["BatchNorm1d", "BatchNorm2d"] * 2
