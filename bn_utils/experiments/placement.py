"""Batch norm before or after the activation: the same MLP trained both ways.

The BN paper normalizes the pre-activation, ``linear -> BN -> ReLU``; many networks put BN after
the nonlinearity instead, ``linear -> ReLU -> BN``. :func:`placement_study` trains the chapter's
MLP both ways (:func:`bn_utils.models.make_mlp` with ``norm_position``) at a few learning rates
and seeds, and :class:`PlacementStudy` says how fast each reaches a target test accuracy and
where it ends. The seeds of one placement train together as one stack
(:func:`bn_utils.stacked.train_stacked`); a seed gives both placements the same batch order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from ..cache import remembered
from ..data import Dataset
from ..history import Sweep
from ..models import NORM_POSITIONS, mlp_for
from ..stacked import keep_correct_at_end, train_stacked
from ..statistics import Estimate, accuracy_difference_interval
from ..style import FIGSIZE, GUIDE, PLACEMENT_COLORS, plot_band
from ..training import History, get_device, stack_metric

__all__ = ["PLACEMENT_LABELS", "PlacementStudy", "placement_study", "plot_placement"]

PLACEMENT_LABELS = {"before": "BN before ReLU (the paper)", "after": "BN after ReLU"}


@dataclass(init=False)
class PlacementStudy(Sweep):
    """Histories of one MLP with its norm before and after the activation: a :class:`Sweep` over
    the learning rate whose first axis holds the two positions instead of norms.
    ``histories[position][i][j]`` was trained at ``lrs[i]`` with seed ``seeds[j]``.
    ``target`` is the test accuracy whose steps-to-reach measure speed. ``correct[position]``
    (lrs, seeds, test examples), where measured, says which test examples each trained network
    classifies correctly (False throughout for a diverged run): the test set's share of the
    uncertainty of a difference in final accuracy."""

    correct: dict[str, np.ndarray] | None = None

    _key_name = "position"
    _key_missing = "was not trained"
    _owner = "the study"
    _value_missing = "was not trained"

    def __init__(
        self,
        lrs: Sequence[float],
        seeds: Sequence[int],
        histories: dict[str, list[list[History]]],
        target: float,
        correct: dict[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__("lr", tuple(lrs), tuple(seeds), histories, target=target)
        self.correct = correct

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rates trained (the sweep's ``values``)."""
        return self.values

    def final_accuracy(self, position: str) -> np.ndarray:
        """(lrs, seeds) test accuracy at the end of training; NaN where the run diverged."""
        return self.final(position)

    def median_steps(self, position: str, lr: float) -> float:
        """Median over seeds of the steps to ``target`` at one learning rate."""
        return self.median_steps_to_target(position, lr)

    def median_final(self, position: str, lr: float) -> float:
        """Median over seeds of the final test accuracy at one learning rate."""
        return float(np.median(self.final_accuracy(position)[self._index(lr)]))

    def speed_ratio(self, lr: float) -> float:
        """Median steps to ``target`` after the activation over those before it (below 1: after is faster)."""
        return self.median_steps("after", lr) / self.median_steps("before", lr)

    def final_difference(self, lr: float) -> Estimate:
        """Final test accuracy after the activation minus before it, seed by seed (same seed: same
        batch order), at one learning rate; its interval is over seeds only."""
        index = self._index(lr)
        after, before = self.final_accuracy("after")[index], self.final_accuracy("before")[index]
        return Estimate(tuple(float(v) for v in after - before))

    def test_set_interval(self, lr: float, *, confidence: float = 0.95) -> tuple[float, float]:
        """The paired bootstrap interval over the test examples of the seed-mean final accuracy
        after the activation minus before it: the test set's share of the uncertainty, beside the
        seeds' (:meth:`final_difference`)."""
        if self.correct is None:
            raise ValueError("this study kept no per-example correctness: run placement_study to get it")
        index = self._index(lr)
        return accuracy_difference_interval(
            self.correct["after"][index], self.correct["before"][index], confidence=confidence
        )


@remembered("experiments.placement")
def placement_study(
    data: Dataset,
    *,
    lrs: Sequence[float] = (0.1, 1.0),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    depth: int = 3,
    width: int = 100,
    norm: str = "batch",
    activation: str = "relu",
    epochs: int = 10,
    batch_size: int = 64,
    eval_every: int = 3,
    target: float = 0.9,
) -> PlacementStudy:
    """Train a ``depth`` x ``width`` MLP with ``norm`` before and after its ``activation``, for
    ``epochs`` epochs of plain SGD at every learning rate and seed; measure test accuracy every
    ``eval_every`` steps. The defaults are the chapter's MLP at its learning rate 0.1 and a
    larger one, with a target of 90% fixed before measuring."""
    lrs, seeds = tuple(float(lr) for lr in lrs), tuple(seeds)
    if not lrs or not seeds or any(lr <= 0 for lr in lrs):
        raise ValueError(f"need at least one positive learning rate and one seed, got {lrs} and {seeds}")
    if not 0 < target < 1:
        raise ValueError(f"target must be a test accuracy between 0 and 1, got {target}")
    device = get_device()
    data = data.to(device)
    histories: dict[str, list[list[History]]] = {}
    correct: dict[str, np.ndarray] = {}
    total = epochs * (len(data.x_train) // batch_size)
    for position in NORM_POSITIONS:
        right = np.zeros((len(lrs) * len(seeds), len(data.x_test)), dtype=bool)
        models = []
        for _ in lrs:
            for seed in seeds:
                model = mlp_for(
                    data,
                    seed=seed,
                    depth=depth,
                    width=width,
                    norm=norm,
                    activation=activation,
                    norm_position=position,
                )
                models.append(model.to(device))
        flat = train_stacked(
            models,
            data,
            lrs=[lr for lr in lrs for _ in seeds],
            seeds=list(seeds) * len(lrs),
            epochs=epochs,
            batch_size=batch_size,
            eval_every=eval_every,
            eval_train=False,
            on_step=keep_correct_at_end(total, data, right),
        )
        histories[position] = [flat[i * len(seeds) : (i + 1) * len(seeds)] for i in range(len(lrs))]
        correct[position] = right.reshape(len(lrs), len(seeds), -1)
    return PlacementStudy(lrs, seeds, histories, target, correct)


def plot_placement(
    study: PlacementStudy, *, axes: Sequence[Axes] | None = None, lr: float | None = None
) -> Sequence[Axes]:
    """Three panels from a :class:`bn_utils.experiments.placement.PlacementStudy`: test accuracy over
    training at ``lr`` (default: the study's first learning rate), the steps to the target
    accuracy against the learning rate (median line, one dot per seed) and the final test
    accuracy against the learning rate (the same). Returns the axes."""

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=FIGSIZE["triple_narrow"], layout="constrained")
    if len(axes) != 3:
        raise ValueError(f"plot_placement draws three panels; got {len(axes)} axes")
    lr = study.lrs[0] if lr is None else lr
    colors = PLACEMENT_COLORS
    curves, speed, final = axes
    for position, label in PLACEMENT_LABELS.items():
        steps, values = stack_metric(study.runs(position, lr), "test_acc")
        plot_band(curves, steps, 100 * values, label=label, color=colors[position])
        nudge = 0.96 if position == "before" else 1.04  # side by side, not on top of each other
        for ax, values, scale in (
            (speed, study.steps_to_target(position), 1),
            (final, study.final_accuracy(position), 100),
        ):
            medians = np.median(values, axis=1)  # never reached (inf) or diverged (NaN): not drawn
            medians, values = (np.where(np.isfinite(v), v, np.nan) for v in (medians, values))
            ax.plot(study.lrs, scale * medians, color=colors[position], marker="o", label=label)
            for lr_value, row in zip(study.lrs, values, strict=True):
                ax.plot([lr_value * nudge] * len(row), scale * row, ".", color=colors[position], alpha=0.5)
    curves.axhline(100 * study.target, color=GUIDE, linestyle=":", linewidth=1.5)
    curves.set(xlabel="training step", ylabel="test accuracy (%)", title=f"learning rate {lr:g}")
    curves.set_ylim(max(0.0, curves.get_ylim()[0]), 100)
    curves.legend(loc="lower right")
    for ax in (speed, final):
        ax.set_xscale("log")
        ax.set_xticks(study.lrs, [f"{v:g}" for v in study.lrs])
        ax.minorticks_off()
        ax.set_xlabel("learning rate")
    speed.set(ylabel=f"steps to {100 * study.target:g}% test accuracy", title="speed (median and seeds)")
    speed.set_ylim(0, None)
    final.set(ylabel="final test accuracy (%)", title="end of training (median and seeds)")
    return axes
