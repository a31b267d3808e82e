"""Results laid out on labelled axes: one way to look a value up and to say what exists.

Every grid result of the course (a learning-rate sweep's norms and values, the placement study's
positions and learning rates, the batch-size sweep's norms and batch sizes, the residual
chapter's architectures, depths, learning rates and steps, the transfer chapter's configurations
and budgets) reads its arrays by position along named axes. :class:`Axis` turns a label into that
position and, for a label that is not there, raises a ``ValueError`` that names the axis, the label
asked for and the labels that exist; :class:`LabelledGrid` is the base that such a result derives
from, listing its axes (:meth:`LabelledGrid.axes`) so that a reader can ask any result what it
holds. No arithmetic here: the results keep their own arrays and methods.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Axis", "LabelledGrid"]

T = TypeVar("T", bound=Hashable)


def _shown(value: object) -> str:
    """A label as an error message shows it: numbers in short form (0.1, 1e+03), the rest as str."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Axis(Generic[T]):
    """One labelled axis of a grid: ``values[i]`` labels position ``i``.

    ``name`` says what the labels are ("learning rate", "norm"); a label that is not on the axis
    raises ``ValueError("<name> <label> <missing>; <owner> has: <labels>")``, e.g. "learning rate
    0.3 is not on the grid; the sweep has: 0.1, 1". With ``close``, numbers match when
    :func:`math.isclose` says so (for learning rates written in different ways); otherwise a label
    matches when it is equal to one on the axis."""

    name: str
    values: tuple[T, ...]
    missing: str = "is not on the grid"
    owner: str = "the grid"
    close: bool = False

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[T]:
        return iter(self.values)

    def __contains__(self, value: object) -> bool:
        return self._find(value) is not None

    def _find(self, value: object) -> int | None:
        if self.close:
            for i, label in enumerate(self.values):
                try:
                    if math.isclose(label, value):  # type: ignore[arg-type]
                        return i
                except TypeError:  # not a number: on no numeric axis
                    return None
            return None
        try:
            return self.values.index(value)
        except ValueError:
            return None

    def error(self, value: object) -> ValueError:
        """The error for a label that is not on the axis, naming the labels that are."""
        asked = repr(value) if isinstance(value, str) else _shown(value)
        labels = ", ".join(_shown(v) for v in self.values) or "none"
        return ValueError(f"{self.name} {asked} {self.missing}; {self.owner} has: {labels}")

    def index(self, value: object) -> int:
        """The position of ``value`` on the axis; a ``ValueError`` naming what exists if it is not there."""
        position = self._find(value)
        if position is None:
            raise self.error(value)
        return position

    def check(self, value: T) -> T:
        """``value`` itself, after checking that it is on the axis (for results keyed by label)."""
        self.index(value)
        return value


class LabelledGrid:
    """Base of a result laid out on labelled axes: a subclass says what its axes are
    (:meth:`axes`, by the name of its argument in the result's methods), and looks each argument up
    with :meth:`axis`'s :meth:`Axis.index`, so that every grid of the course answers a wrong label
    with the same kind of error."""

    def axes(self) -> Mapping[str, Axis]:
        """The grid's axes, by the name its methods give the argument ("norm", "lr", ...)."""
        raise NotImplementedError(f"{type(self).__name__} does not say what its axes are")

    def axis(self, name: str) -> Axis:
        """One of the grid's axes, by name."""
        axes = self.axes()
        if name not in axes:
            raise ValueError(f"{type(self).__name__} has no axis {name!r}; its axes are: {', '.join(axes)}")
        return axes[name]

    def locate(self, **labels: object) -> tuple[int, ...]:
        """The positions of the given labels, one per named axis, in the order given:
        ``grid.locate(norm="batch", lr=0.1)``."""
        return tuple(self.axis(name).index(value) for name, value in labels.items())
