"""Check cells: print a measured fact with the range it should be in, CS231n-style.

What they print is what nbval compares, so it is rounded or qualitative: the same on
any CPU. Each returns whether the check passed, so a test can assert on it too.
"""
from __future__ import annotations

import torch

__all__ = ["max_abs_error", "check_close", "check_range"]


def max_abs_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest elementwise |actual - expected|; shapes must match."""
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {tuple(actual.shape)} vs {tuple(expected.shape)}")
    return (actual.detach().double() - expected.detach().double()).abs().max().item()


def check_close(name: str, actual: torch.Tensor, expected: torch.Tensor, tol: float) -> bool:
    """Print whether max |actual - expected| is within ``tol`` (the error itself only on failure,
    since its last digits differ between machines)."""
    err = max_abs_error(actual, expected)
    ok = err <= tol
    verdict = f"below {tol:.0e} as expected: OK" if ok else f"= {err:.2e}, expected below {tol:.0e}: FAILED"
    print(f"{name}: max |error| {verdict}")
    return ok


def check_range(name: str, value: float, low: float, high: float, *, digits: int = 2, unit: str = "") -> bool:
    """Print ``value`` rounded to ``digits`` and whether it lies in [low, high]."""
    ok = low <= value <= high
    print(f"{name} = {value:.{digits}f}{unit} (expected {low:g} to {high:g}{unit}): {'OK' if ok else 'OUT OF RANGE'}")
    return ok
