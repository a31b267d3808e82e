"""<Chapter title>: what the chapter's notebook and its claim tests share.

Copy this file to ``bn_utils/chapters/<page>.py`` (named after the chapter's page in book/) and import
it as ``from bn_utils.chapters import <page> as chapter`` (the template notebook, run from this
folder, imports it as ``chapter_module``). Setting of the example: a 4 x 100 ReLU MLP on the 8x8
digits, with and without BN before each ReLU, SGD for 100 steps at learning rates 0.1 and 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from bn_utils.data import Dataset, load_digits
from bn_utils.experiments.sweeps import lr_sweep
from bn_utils.history import Sweep

LRS = (0.1, 1.0)
Network = Literal["none", "batch"]
"""A network's name: mypy checks a literal one; a wrong one at run time is a ``ValueError`` naming these."""
NETWORKS: tuple[Network, ...] = get_args(Network)  # the names, written once (in the Literal)


def sweep(seeds: Sequence[int], data: Dataset | None = None) -> Sweep:
    """The chapter's runs (setup): one call with one set of arguments, made by the notebook and by
    the claim tests alike, so that ``bn_utils.cache`` computes it once per run."""
    return lr_sweep(load_digits() if data is None else data, lrs=LRS, seeds=tuple(seeds), depth=4, steps=100)


@dataclass(frozen=True)
class FinalAccuracy:
    """Final test accuracy at one learning rate, one value per seed, for each network (a claim
    quantity: the notebook's check cell prints it, the claim test asserts on it)."""

    lr: float
    plain: np.ndarray
    bn: np.ndarray

    def mean(self, norm: Network) -> float:
        """The mean over seeds of network ``norm`` (one of :data:`NETWORKS`)."""
        if norm not in NETWORKS:
            raise ValueError(f"unknown network {norm!r}; valid names are: {', '.join(NETWORKS)}")
        return float((self.plain if norm == "none" else self.bn).mean())


def final_accuracy(result: Sweep, lr: float = 0.1) -> FinalAccuracy:
    """Each network's final test accuracy at learning rate ``lr``, per seed (a learning rate not on
    the grid raises naming the ones that are: look labels up through the result's axes)."""
    index = result.axis("lr").index(lr)
    return FinalAccuracy(lr, result.final("none")[index], result.final("batch")[index])
