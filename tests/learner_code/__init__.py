"""A corpus of learner implementations of the four batch-norm exercises, right and wrong, written the
way students write them, to measure what :mod:`bn_utils.exercises` tells a learner.

Each function is registered with :func:`learner`: the exercise it answers, whether it is correct, a
short description, and for a wrong one the regular expressions that a message naming the mistake must
match (every one of them: a combined mistake names both parts). ``tests/test_exercise_corpus.py`` runs
the checker on every entry and counts:

- caught: a wrong implementation makes the checker raise ExerciseFailed;
- named: ... with a message that matches every expression of the entry;
- false alarm: a correct implementation does not pass;
- crash: anything other than ExerciseFailed (or a stub's NotImplementedError) escapes the checker.

The corpus was written before the checker was changed for issue 24, and measured on the checker as it
was (commit 9765135); the numbers before and after are in ``tests/test_exercise_corpus.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Learner:
    """One learner implementation and what a checker should say about it."""

    exercise: str  # "forward", "backward", "running_update" or "training_step"
    fn: Callable[..., Any]
    correct: bool
    description: str
    names: tuple[str, ...] = field(default=())  # regexes a message naming the mistake matches (wrong ones)

    @property
    def id(self) -> str:
        return f"{self.exercise}:{self.fn.__name__}"


CORPUS: list[Learner] = []


def learner(exercise: str, description: str, *names: str, correct: bool = False) -> Callable[..., Any]:
    """Register the decorated function in :data:`CORPUS`."""
    if not correct and not names:
        raise ValueError("a wrong implementation needs the words that name its mistake")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        CORPUS.append(Learner(exercise, fn, correct, description, tuple(names)))
        return fn

    return register


def load() -> list[Learner]:
    """Every implementation of the four modules, in the order written."""
    from . import backward, forward, running_update, training_step  # noqa: F401  (registers them)

    return CORPUS
