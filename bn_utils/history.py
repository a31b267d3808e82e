"""What a training run measured (:class:`History`), and the measurements of several runs stacked
for plotting over seeds (:func:`stack_metric`). No training here: the engines
(:mod:`bn_utils.training`, :mod:`bn_utils.stacked`) fill histories, the plots read them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import _validate as valid

__all__ = ["History", "stack_metric"]


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
