"""Check cells: print a measured fact with what it should be, CS231n-style, and raise if it is not.

A check that holds prints one line and returns a :class:`Check`; a check that fails raises
:class:`CheckFailed` with the measured value and the expected range, so a broken claim stops the
notebook (and fails nbval) instead of printing a quiet "FAILED" that nobody reads.

What nbval compares as text must be the same on any CPU. :func:`check_close` and
:func:`check_below` print only the tolerance, never the tiny error itself, so their lines are
comparable anywhere. :func:`check_range` prints a rounded measurement: when that measurement
comes out of training (chaotic: its last digits differ between CPUs), its cell carries the
``nbval-ignore-output`` tag and the check's raise is what keeps the claim honest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _validate as valid

__all__ = ["Check", "CheckFailed", "max_abs_error", "check_below", "check_close", "check_range", "check_that"]


class CheckFailed(AssertionError):
    """A check cell's expectation did not hold; the message says what was measured and expected."""


@dataclass(frozen=True)
class Check:
    """A check that held, with the line it printed."""

    message: str

    def __bool__(self) -> bool:
        return True

    def _ipython_display_(self) -> None:
        """Show nothing as a cell's last value: the message was printed when the check ran."""


def _passed(message: str) -> Check:
    print(message)
    return Check(message)


def _finite_number(name: str, value: float) -> float:
    value = float(value)
    if math.isnan(value):
        raise CheckFailed(f"{name}: the measured value is NaN (did a run diverge?)")
    return value


def max_abs_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest elementwise |actual - expected|; shapes must match."""
    valid.check_type("actual", actual, torch.Tensor, "a torch.Tensor")
    valid.check_type("expected", expected, torch.Tensor, "a torch.Tensor")
    if actual.numel() == 0:
        raise ValueError(f"need at least one value to compare, got tensors of shape {tuple(actual.shape)}")
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    return (actual.detach().double() - expected.detach().double()).abs().max().item()


def check_below(name: str, value: float, tol: float) -> Check:
    """Check that a (tiny) non-negative quantity is at most ``tol``; the value itself is printed
    only on failure, since its last digits differ between machines."""
    valid.check_number("tol", tol, 0)
    value = _finite_number(name, value)
    if value <= tol:
        return _passed(f"{name}: below {tol:.0e} as expected: OK")
    raise CheckFailed(f"{name}: measured {value:.2e}, expected below {tol:.0e}")


def check_close(name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float) -> Check:
    """Check that max |actual - expected| is at most ``tol``."""
    return check_below(f"{name}: max |error|", max_abs_error(actual, expected), tol)


def check_range(name: str, value: float, low: float, high: float, *, digits: int = 2, unit: str = "") -> Check:
    """Check that ``value`` lies in [low, high]; print it rounded to ``digits``."""
    for bound, limit in (("low", low), ("high", high)):
        if not valid.is_real(limit) or math.isnan(limit):
            raise (ValueError if valid.is_real(limit) else TypeError)(f"{bound} must be a number, got {limit!r}")
    if low > high:
        raise ValueError(f"low must not exceed high, got low={low!r} and high={high!r}")
    valid.check_int("digits", digits, 0)
    value = _finite_number(name, value)
    shown = f"{value:.{digits}f}{unit}"
    if low <= value <= high:
        return _passed(f"{name} = {shown} (expected {low:g} to {high:g}{unit}): OK")
    raise CheckFailed(f"{name}: measured {shown} ({value:.6g}), expected {low:g} to {high:g}{unit}")


def check_that(statement: str, holds: bool, *, measured: str = "") -> Check:
    """Check a yes/no statement; ``measured`` (the numbers behind it) is shown only on failure."""
    if holds:
        return _passed(f"{statement}: OK")
    raise CheckFailed(f"{statement}: does not hold" + (f" (measured: {measured})" if measured else ""))
