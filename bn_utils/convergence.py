"""Faster convergence and higher learning rates: the learning-rate sweep of the chapter
"Faster convergence".

:func:`lr_sweep` trains a deep ReLU MLP at every learning rate of a log grid, with and without
batch norm, for several seeds (all runs of one norm stacked into one batched network, see
:mod:`bn_utils.stacked`). :class:`LRSweep` answers the chapter's questions from the histories:
which learning rates train, the largest at which every seed trains, and how fast each
configuration reaches a target accuracy at its best learning rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .data import Dataset
from .models import make_mlp
from .stacked import train_stacked
from .training import History, get_device, seed_everything

__all__ = ["LR_GRID", "LRSweep", "lr_sweep"]

# 1-3-10 steps from 1e-3 to 10: nine learning rates, about half a decade apart.
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass
class LRSweep:
    """Histories of a learning-rate sweep: ``histories[norm][i][j]`` is learning rate ``lrs[i]``,
    seed ``seeds[j]``.

    A run *trains* when it does not diverge and ends with test accuracy of at least
    ``min_accuracy``; ``target`` is the test accuracy whose steps-to-reach measure speed.
    """

    lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    histories: dict[str, list[list[History]]]
    target: float = 0.95
    min_accuracy: float = 0.5

    @property
    def norms(self) -> list[str]:
        """The normalizations swept, in order."""
        return list(self.histories)

    def _grid(self, norm: str) -> list[list[History]]:
        if norm not in self.histories:
            raise ValueError(f"norm {norm!r} was not swept; the sweep has: {', '.join(self.histories)}")
        return self.histories[norm]

    def runs(self, norm: str, lr: float) -> list[History]:
        """The histories (one per seed) at one learning rate of the grid."""
        if lr not in self.lrs:
            raise ValueError(f"learning rate {lr:g} is not on the grid {[f'{v:g}' for v in self.lrs]}")
        return self._grid(norm)[self.lrs.index(lr)]

    def diverged(self, norm: str) -> np.ndarray:
        """(lrs, seeds) booleans: the loss became NaN or infinite."""
        return np.array([[h.diverged for h in row] for row in self._grid(norm)])

    def final(self, norm: str, metric: str = "test_acc") -> np.ndarray:
        """(lrs, seeds) final values, NaN for diverged runs. ``metric`` is an evaluated metric
        (``test_acc``, ``test_loss``, ...) or ``loss``: the mean training loss of the last epoch."""
        def value(h: History) -> float:
            if h.diverged:
                return np.nan
            if metric == "loss":
                return float(np.mean(h.loss[-h.steps_per_epoch:]))
            return getattr(h, metric)[-1]
        return np.array([[value(h) for h in row] for row in self._grid(norm)], dtype=float)

    def trained(self, norm: str) -> np.ndarray:
        """(lrs, seeds) booleans: no divergence and final test accuracy >= ``min_accuracy``."""
        with np.errstate(invalid="ignore"):
            return ~self.diverged(norm) & (np.nan_to_num(self.final(norm), nan=0.0) >= self.min_accuracy)

    def largest_stable_lr(self, norm: str) -> float | None:
        """The largest learning rate at which every seed trains (None if there is none)."""
        good = [lr for lr, row in zip(self.lrs, self.trained(norm)) if row.all()]
        return max(good) if good else None

    def steps_to_target(self, norm: str, target: float | None = None) -> np.ndarray:
        """(lrs, seeds) steps to reach ``target`` (default: the sweep's) test accuracy; inf
        where never reached."""
        target = self.target if target is None else target
        return np.array([[np.inf if (s := h.steps_to(target)) is None else s for h in row]
                         for row in self._grid(norm)], dtype=float)

    def best_lr(self, norm: str) -> float | None:
        """The learning rate, among those at which every seed trains, with the fewest median
        steps to ``target``; ties go to the higher median final test accuracy."""
        steps = np.median(self.steps_to_target(norm), axis=1)
        accuracy = self.final(norm)  # no NaN in rows where every seed trained
        candidates = [i for i, row in enumerate(self.trained(norm)) if row.all()]
        if not candidates:
            return None
        return self.lrs[min(candidates, key=lambda i: (steps[i], -np.median(accuracy[i])))]

    def median_steps_to_target(self, norm: str, lr: float | None = None, target: float | None = None) -> float:
        """Median over seeds of the steps to ``target`` (default: the sweep's) at ``lr``
        (default: the best learning rate)."""
        lr = self.best_lr(norm) if lr is None else lr
        if lr is None:
            return np.inf
        if lr not in self.lrs:
            raise ValueError(f"learning rate {lr:g} is not on the grid {[f'{v:g}' for v in self.lrs]}")
        return float(np.median(self.steps_to_target(norm, target)[self.lrs.index(lr)]))


def lr_sweep(data: Dataset, *, norms: Sequence[str] = ("none", "batch"), lrs: Sequence[float] = LR_GRID,
             seeds: Sequence[int] = (0, 1, 2), steps: int = 200, batch_size: int = 64, optimizer: str = "sgd",
             momentum: float = 0.0, eval_every: int = 10, depth: int = 10, width: int = 100,
             activation: str = "relu", target: float = 0.95, min_accuracy: float = 0.5) -> LRSweep:
    """Train a ``depth`` x ``width`` MLP (He init, BN before each activation when ``norm`` is
    ``batch``) for ``steps`` steps at every learning rate and seed, per norm. For a given norm,
    a seed gives the same initial weights and batch order at every learning rate, so learning
    rates are compared on paired runs. Test accuracy is measured every ``eval_every`` steps
    (training accuracy is not, to save time)."""
    lrs, seeds = tuple(float(lr) for lr in lrs), tuple(seeds)
    if not lrs or not seeds or any(lr <= 0 for lr in lrs):
        raise ValueError(f"need at least one positive learning rate and one seed, got {lrs} and {seeds}")
    device = get_device()
    data = data.to(device)
    histories = {}
    for norm in norms:
        models, run_lrs, run_seeds = [], [], []
        for lr in lrs:
            for seed in seeds:
                seed_everything(seed)
                models.append(make_mlp(data.input_shape[0], data.num_classes, depth=depth, width=width,
                                       norm=norm, activation=activation).to(device))
                run_lrs.append(lr)
                run_seeds.append(seed)
        flat = train_stacked(models, data, lrs=run_lrs, seeds=run_seeds, steps=steps, batch_size=batch_size,
                             optimizer=optimizer, momentum=momentum, eval_every=eval_every, eval_train=False)
        histories[norm] = [flat[i * len(seeds): (i + 1) * len(seeds)] for i in range(len(lrs))]
    return LRSweep(lrs, seeds, histories, target=target, min_accuracy=min_accuracy)
