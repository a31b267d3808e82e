"""What a training run measured (:class:`History`), and the measurements of several runs stacked
for plotting over seeds (:func:`stack_metric`); a grid of runs over one setting and what the
chapters read from it (:class:`Sweep`: made by :mod:`bn_utils.experiments.sweeps`, and read off
chapter 9's long runs by :mod:`bn_utils.experiments.transfer`). No training here: the engines
(:mod:`bn_utils.training`, :mod:`bn_utils.stacked`) fill histories, the plots read them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from . import _validate as valid
from .grid import Axis, LabelledGrid

__all__ = ["History", "stack_metric", "PARAMETER_LABELS", "FinalMetric", "FINAL_METRICS", "Sweep", "check_accuracies"]


@dataclass
class History:
    """What one training run measured.

    ``loss`` has one entry per optimisation step. Evaluations happen every ``eval_every``
    steps (and at step 0): ``eval_steps[i]`` is the number of steps taken when
    ``train_acc[i]``, ``test_acc[i]`` and ``test_loss[i]`` were measured.
    """

    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    steps_per_epoch: int = 0
    diverged_at: int | None = None  # step at which the loss became NaN/inf, if it did
    wall_time: float = 0.0
    config: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """True when training stopped because the loss became NaN or infinite."""
        return self.diverged_at is not None

    @property
    def steps(self) -> int:
        """Number of optimisation steps taken."""
        return len(self.loss)

    def steps_to(self, threshold: float, metric: str = "test_acc") -> int | None:
        """First evaluated step at which ``metric`` reached ``threshold`` (None if never).

        For accuracies "reached" means >= threshold; for ``test_loss`` it means <= threshold.
        """
        _check_metric(metric, ("train_acc", "test_acc", "test_loss"))
        valid.check_number("threshold", threshold)
        values = getattr(self, metric)
        if len(values) != len(self.eval_steps):
            raise ValueError(
                f"{metric} was not recorded at every evaluation of this run "
                f"({len(values)} values, {len(self.eval_steps)} evaluations)"
            )
        hit = (lambda v: v <= threshold) if metric.endswith("loss") else (lambda v: v >= threshold)
        return next((s for s, v in zip(self.eval_steps, values, strict=True) if hit(v)), None)


def _check_metric(metric: str, valid: tuple[str, ...]) -> None:
    if metric not in valid:
        raise ValueError(f"unknown metric {metric!r}; valid names are: {', '.join(valid)}")


def stack_metric(histories: Sequence[History], metric: str = "test_acc") -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) for plotting over seeds: ``values`` is (seeds, points), NaN-padded
    where a run stopped early (diverged). ``metric`` is ``loss`` (per step) or an
    evaluated metric (``train_acc``, ``test_acc``, ``test_loss``)."""
    if not histories:
        raise ValueError("stack_metric needs at least one History")
    _check_metric(metric, ("loss", "train_acc", "test_acc", "test_loss"))
    if metric == "loss":
        series = [h.loss for h in histories]
        steps = np.arange(1, max(len(s) for s in series) + 1)
    else:
        series = [getattr(h, metric) for h in histories]
        if any(len(s) != len(h.eval_steps) for s, h in zip(series, histories, strict=True)):
            raise ValueError(f"{metric} was not recorded at every evaluation of these runs")
        steps = np.asarray(max((h.eval_steps for h in histories), key=len))
    values = np.full((len(series), len(steps)), np.nan)
    for row, s in zip(values, series, strict=True):
        row[: len(s)] = s
    return steps, values


# ---------------------------------------------------------------------------------------------
# A sweep: the runs of a grid of one setting (chapters 3-5, and chapter 9 reading its grid)

FinalMetric = Literal["loss", "train_acc", "test_acc", "test_loss"]
"""What :meth:`Sweep.final` reads at the end of each run (mypy checks a literal name; a wrong one at
run time is a ``ValueError`` naming these)."""
FINAL_METRICS: tuple[FinalMetric, ...] = get_args(FinalMetric)

PARAMETER_LABELS = {"lr": "learning rate", "init_scale": "initial weight scale", "depth": "depth (hidden layers)"}


@dataclass
class Sweep(LabelledGrid):
    """Histories of a sweep over ``parameter`` (``"lr"`` or ``"init_scale"``):
    ``histories[norm][i][j]`` is value ``values[i]``, seed ``seeds[j]``.

    A run *trains* when it does not diverge and ends with test accuracy of at least
    ``min_accuracy``; ``target`` is the test accuracy whose steps-to-reach measure speed.

    When ``selected_on`` is ``"validation"``, the histories' ``test_acc`` and ``test_loss`` were
    measured on a validation set held out of the training data, so every selection (which values
    train, the best value, steps to target) uses validation accuracy; ``final_test[norm]``
    (values, seeds) holds the test accuracy at the end of training, read through
    :meth:`test_accuracy` for the selected configurations only, and ``final_correct[norm]``
    (values, seeds, test examples) which test examples each run got right then
    (:meth:`test_correct`: the test set's share of the uncertainty of a difference).
    """

    parameter: str
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    histories: dict[str, list[list[History]]]
    target: float = 0.95
    min_accuracy: float = 0.5
    selected_on: str = "test"
    final_test: dict[str, np.ndarray] | None = None
    final_correct: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.parameter not in PARAMETER_LABELS:
            raise ValueError(f"unknown parameter {self.parameter!r}; valid names are: {', '.join(PARAMETER_LABELS)}")
        if self.selected_on not in ("test", "validation"):
            raise ValueError(f"selected_on must be 'test' or 'validation', got {self.selected_on!r}")
        if self.selected_on == "validation" and self.final_test is None:
            raise ValueError("a sweep selected on validation needs final_test, the test accuracies at the end")
        check_accuracies(self.target, self.min_accuracy)

    @property
    def label(self) -> str:
        """What was swept, in words ("learning rate")."""
        return PARAMETER_LABELS[self.parameter]

    @property
    def norms(self) -> list[str]:
        """The normalizations swept, in order."""
        return list(self.histories)

    # what the grid's first axis holds, and how its errors read (:class:`PlacementStudy` says "position")
    _key_name = "norm"
    _key_missing = "was not swept"
    _owner = "the sweep"
    _value_missing = "is not on the grid"

    def axes(self) -> dict[str, Axis]:
        """The grid's axes: the norms (``histories``' keys) and the swept values (by ``parameter``)."""
        return {
            self._key_name: Axis(self._key_name, tuple(self.histories), self._key_missing, self._owner),
            self.parameter: Axis(self.label, self.values, self._value_missing, self._owner),
        }

    def _grid(self, norm: str) -> list[list[History]]:
        return self.histories[self.axis(self._key_name).check(norm)]

    def _index(self, value: float) -> int:
        return self.axis(self.parameter).index(value)

    def runs(self, norm: str, value: float) -> list[History]:
        """The histories (one per seed) at one value of the grid."""
        return self._grid(norm)[self._index(value)]

    def diverged(self, norm: str) -> np.ndarray:
        """(values, seeds) booleans: the loss became NaN or infinite."""
        return np.array([[h.diverged for h in row] for row in self._grid(norm)])

    def final(self, norm: str, metric: FinalMetric = "test_acc") -> np.ndarray:
        """(values, seeds) final values, NaN for diverged runs. ``metric`` is an evaluated metric
        (``test_acc``, ``test_loss``, ...) or ``loss``: the mean training loss of the last epoch."""
        if metric not in FINAL_METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid names are: {', '.join(FINAL_METRICS)}")

        def value(h: History) -> float:
            if h.diverged:
                return np.nan
            if metric == "loss":
                return float(np.mean(h.loss[-h.steps_per_epoch :]))
            return getattr(h, metric)[-1]

        return np.array([[value(h) for h in row] for row in self._grid(norm)], dtype=float)

    def trained(self, norm: str) -> np.ndarray:
        """(values, seeds) booleans: no divergence and final test accuracy >= ``min_accuracy``."""
        return ~self.diverged(norm) & (np.nan_to_num(self.final(norm), nan=0.0) >= self.min_accuracy)

    def stable_values(self, norm: str) -> list[float]:
        """The values at which every seed trains."""
        return [v for v, row in zip(self.values, self.trained(norm), strict=True) if row.all()]

    def largest_stable(self, norm: str) -> float | None:
        """The largest value at which every seed trains (None if there is none)."""
        stable = self.stable_values(norm)
        return max(stable) if stable else None

    def steps_to_target(self, norm: str, target: float | None = None) -> np.ndarray:
        """(values, seeds) steps to reach ``target`` (default: the sweep's) test accuracy; inf
        where never reached."""
        target = self.target if target is None else target
        return np.array(
            [[np.inf if (s := h.steps_to(target)) is None else s for h in row] for row in self._grid(norm)], dtype=float
        )

    def best(self, norm: str) -> float | None:
        """The value, among those at which every seed trains, with the fewest median steps to
        ``target``; ties go to the higher median final test accuracy."""
        steps = np.median(self.steps_to_target(norm), axis=1)
        accuracy = self.final(norm)  # no NaN in rows where every seed trained
        candidates = [i for i, row in enumerate(self.trained(norm)) if row.all()]
        if not candidates:
            return None
        return self.values[min(candidates, key=lambda i: (steps[i], -np.median(accuracy[i])))]

    def instability_onset(self, norm: str) -> float | None:
        """The grid value just above the largest stable one (at which some seed fails to train),
        or None if every value up to the end of the grid is stable. The true limit lies between
        :meth:`largest_stable` and this value."""
        stable = self.largest_stable(norm)
        above = [v for v in self.values if stable is None or v > stable]
        return min(above) if above else None

    def test_accuracy(self, norm: str, value: float | None = None) -> np.ndarray:
        """Final test accuracy per seed (NaN if diverged) at ``value`` (default: the best value).
        On a sweep selected on validation, this is the only place test accuracy shows."""
        value = self.best(norm) if value is None else value
        if value is None:
            raise ValueError(f"norm {norm!r} has no value at which every seed trains")
        if self.final_test is None:
            return self.final(norm)[self._index(value)]
        self._grid(norm)
        return self.final_test[norm][self._index(value)]

    def test_correct(self, norm: str, value: float | None = None) -> np.ndarray:
        """(seeds, test examples) booleans: which test examples each seed's network classified
        correctly at the end of training, at ``value`` (default: the best value); False throughout
        for a diverged run. Only on a sweep selected on validation, and, like
        :meth:`test_accuracy`, for the selected configurations only."""
        value = self.best(norm) if value is None else value
        if value is None:
            raise ValueError(f"norm {norm!r} has no value at which every seed trains")
        if self.final_correct is None:
            raise ValueError("per-example test correctness is kept only by a sweep selected on validation")
        self._grid(norm)
        return self.final_correct[norm][self._index(value)]

    def median_steps_to_target(self, norm: str, value: float | None = None, target: float | None = None) -> float:
        """Median over seeds of the steps to ``target`` (default: the sweep's) at ``value``
        (default: the best value)."""
        value = self.best(norm) if value is None else value
        if value is None:
            return np.inf
        return float(np.median(self.steps_to_target(norm, target)[self._index(value)]))


def check_accuracies(target: object, min_accuracy: object) -> None:
    """Check a sweep's ``target`` and ``min_accuracy``: each a fraction in [0, 1], else an error naming it
    (:class:`Sweep` and the sweeps of :mod:`bn_utils.experiments.sweeps` check theirs with it)."""
    valid.check_number("target", target, 0, 1)
    valid.check_number("min_accuracy", min_accuracy, 0, 1)
