"""Check cells: print a measured fact with the range it should be in, CS231n-style.

What they print is what nbval compares, so it is rounded or qualitative: the same on
any CPU. Each returns a :class:`Check` that is truthy when the check passed (tests assert
on it) and displays nothing more in a notebook (the line was already printed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _validate as valid

__all__ = ["Check", "max_abs_error", "check_below", "check_close", "check_range"]


@dataclass(frozen=True)
class Check:
    """The outcome of a check: the printed line and whether it passed."""

    message: str
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing as a cell's last value: the message is printed when the check runs."""


def _report(message: str, passed: bool) -> Check:
    print(message)
    return Check(message, passed)


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
    """Print whether a (tiny) non-negative quantity is below ``tol``; the value itself is shown
    only on failure, since its last digits differ between machines."""
    valid.check_number("tol", tol, 0)
    if value <= tol:
        return _report(f"{name}: below {tol:.0e} as expected: OK", True)
    return _report(f"{name}: {value:.2e}, expected below {tol:.0e}: FAILED", False)


def check_close(name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float) -> Check:
    """Print whether max |actual - expected| is below ``tol``."""
    return check_below(f"{name}: max |error|", max_abs_error(actual, expected), tol)


def check_range(name: str, value: float, low: float, high: float, *, digits: int = 2, unit: str = "") -> Check:
    """Print ``value`` rounded to ``digits`` and whether it lies in [low, high]."""
    for bound, limit in (("low", low), ("high", high)):
        if not valid.is_real(limit) or math.isnan(limit):
            raise (ValueError if valid.is_real(limit) else TypeError)(f"{bound} must be a number, got {limit!r}")
    if low > high:
        raise ValueError(f"low must not exceed high, got low={low!r} and high={high!r}")
    valid.check_int("digits", digits, 0)
    ok = low <= value <= high
    verdict = "OK" if ok else "OUT OF RANGE"
    return _report(f"{name} = {value:.{digits}f}{unit} (expected {low:g} to {high:g}{unit}): {verdict}", ok)
