"""Assertions for claim tests that also record how far the measured values sit from the threshold.

A claim that holds on our machine but has one seed a hair above its threshold will fail on another
CPU: a few hundred chaotic training steps turn last-bit differences of the arithmetic into a
different seed. So every claim test asserts through these functions, which fail with the measured
numbers and record a :class:`Margin` for each assertion. ``pytest -m claims --margins PATH`` writes
the records as JSON (see ``conftest.py``), and ``scripts/claim_margins.py`` turns them into a table
of the tightest claims.

The forms, and the value that decides each (the one to keep well clear of the threshold):

- :func:`every`: every seed's value passes (an "every seed" or, with ``<``, a "no seed" claim); the
  worst seed decides.
- :func:`at_least`: at least ``count`` seeds pass; the ``count``-th best seed decides.
- :func:`median`: the median over seeds passes; the median decides.
- :func:`compare`: one statistic against another number or a measured statistic (a ratio of
  medians, a difference of means); the statistic decides.

The margin is the signed distance of the deciding value from the threshold (positive: the claim
holds). Where the per-seed values are known, it is also given in units of their spread (the
standard deviation over seeds), the scale on which another machine moves a seed.

With ``--margins`` a claim test does not stop at its first failing assertion: ``DEFER`` is set,
each failure is kept in ``PENDING`` and the test fails at its end with all of them (conftest.py),
so that the margin report sees every assertion of every run.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Margin:
    """One assertion of a claim test: what was measured, the rule, and how far it sat from failing."""

    test: str  # the pytest node id of the claim test
    what: str  # what the values are, in words
    form: str  # "every", "at least K of N", "median", "compare"
    op: str  # ">", ">=", "<", "<="
    threshold: float
    values: tuple[float, ...]  # per seed (or the single statistic for "compare" without values)
    deciding: float  # the value that decides the assertion
    margin: float  # signed distance of `deciding` from `threshold`; > 0 where the claim holds
    spread: float | None  # standard deviation of the per-seed values, where known and > 0
    passed: bool

    @property
    def relative(self) -> float | None:
        """The margin in units of the seeds' spread (None where the spread is unknown or zero)."""
        return None if not self.spread else self.margin / self.spread

    def as_dict(self) -> dict:
        return asdict(self) | {"relative": self.relative}


RECORDED: list[Margin] = []
CURRENT_TEST = ""  # set by conftest.py before each test runs
DEFER = False  # set by conftest.py under --margins: keep failures in PENDING, fail at the test's end
PENDING: list[str] = []


def _floats(values: Iterable[float] | np.ndarray | float, what: str) -> tuple[float, ...]:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{what}: no values to check")
    return tuple(float(v) for v in array)


def _spread(values: tuple[float, ...]) -> float | None:
    if len(values) < 2:
        return None
    std = float(np.std(values, ddof=1))
    return std if np.isfinite(std) and std > 0 else None


def _signed(deciding: float, op: str, threshold: float) -> float:
    return deciding - threshold if op in (">", ">=") else threshold - deciding


def _fmt(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def _record(
    what: str,
    form: str,
    op: str,
    threshold: float,
    values: tuple[float, ...],
    deciding: float,
    spread: float | None,
    detail: str,
) -> None:
    if op not in OPERATORS:
        raise ValueError(f"op must be one of {sorted(OPERATORS)}, got {op!r}")
    passed = bool(OPERATORS[op](deciding, threshold) and np.isfinite(deciding))
    margin = Margin(
        CURRENT_TEST,
        what,
        form,
        op,
        float(threshold),
        values,
        float(deciding),
        _signed(deciding, op, threshold),
        spread,
        passed,
    )
    RECORDED.append(margin)
    message = f"{what}: {detail}; expected {form} {op} {threshold:.4g}"
    if not passed and DEFER:
        PENDING.append(message)
        return
    assert passed, message


def every(values: Iterable[float] | np.ndarray, op: str, threshold: float, what: str) -> None:
    """Every value (one per seed) satisfies ``value op threshold``; the worst one decides."""
    vals = _floats(values, what)
    worst = min(vals) if op in (">", ">=") else max(vals)
    if not np.all(np.isfinite(vals)):
        worst = float("nan")
    _record(what, "every", op, threshold, vals, worst, _spread(vals), f"per seed {_fmt(vals)}")


def at_least(values: Iterable[float] | np.ndarray, op: str, threshold: float, count: int, what: str) -> None:
    """At least ``count`` of the values satisfy ``value op threshold``; the ``count``-th best decides."""
    vals = _floats(values, what)
    if not 1 <= count <= len(vals):
        raise ValueError(f"{what}: count must be between 1 and {len(vals)}, got {count}")
    ordered = sorted((v if np.isfinite(v) else -np.inf if op in (">", ">=") else np.inf) for v in vals)
    deciding = ordered[-count] if op in (">", ">=") else ordered[count - 1]
    passing = sum(bool(OPERATORS[op](v, threshold)) for v in vals)
    _record(
        what,
        f"at least {count} of {len(vals)}",
        op,
        threshold,
        vals,
        deciding,
        _spread(vals),
        f"per seed {_fmt(vals)} ({passing} pass)",
    )


def median(values: Iterable[float] | np.ndarray, op: str, threshold: float, what: str) -> None:
    """The median of the values (one per seed) satisfies ``median op threshold``."""
    vals = _floats(values, what)
    _record(
        what,
        "median",
        op,
        threshold,
        vals,
        float(np.median(vals)),
        _spread(vals),
        f"median {np.median(vals):.4g} of per seed {_fmt(vals)}",
    )


def compare(
    statistic: float, op: str, threshold: float, what: str, *, values: Iterable[float] | np.ndarray | None = None
) -> None:
    """One statistic (a ratio of medians, a difference of means, ...) against a number, which may be
    measured too. Give ``values``, the per-seed values behind the statistic (e.g. the per-seed
    differences), so that the margin can be read in units of their spread."""
    vals = _floats(values, what) if values is not None else (float(statistic),)
    spread = _spread(vals) if values is not None else None
    _record(
        what,
        "compare",
        op,
        threshold,
        vals,
        float(statistic),
        spread,
        f"measured {statistic:.4g}" + (f" from per seed {_fmt(vals)}" if values is not None else ""),
    )
