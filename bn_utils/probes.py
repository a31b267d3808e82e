"""Probes: look inside a network while it trains, and take nothing away when removed.

``ActivationProbe`` is a context manager around a forward hook that records, every ``every``-th
training-mode forward pass of one module, per-unit percentiles, mean and std of its output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import _validate as valid

__all__ = ["ActivationProbe", "ActivationRecord", "drift_ratio", "jitter_ratio"]


@dataclass
class ActivationRecord:
    """What a probe saw: arrays of shape (records, units), one row per recorded pass."""

    steps: np.ndarray  # 1-based index of the training pass each row was recorded at
    percentiles: dict[int, np.ndarray]  # e.g. {15: ..., 50: ..., 85: ...}
    mean: np.ndarray
    std: np.ndarray


class ActivationProbe:
    """Record the distribution of ``module``'s output per unit during training.

    Use as ``with ActivationProbe(model.blocks[2].norm, every=5) as probe: train(...)``;
    then ``probe.record()`` gives an :class:`ActivationRecord`. Only training-mode passes
    count (evaluation passes are ignored, and so is anything run inside ``probe.paused()``).
    Units are dimension 1; for feature maps (N, C, H, W) the batch and spatial positions are pooled per channel.
    """

    def __init__(self, module: nn.Module, *, every: int = 1, percentiles: tuple[int, ...] = (15, 50, 85)):
        valid.check_module("module", module)
        valid.check_int("every", every)
        percentiles = tuple(percentiles)
        if not percentiles:
            raise ValueError("percentiles must name at least one percentile, e.g. (15, 50, 85)")
        if not all(valid.is_real(p) and 0 <= p <= 100 for p in percentiles):
            raise ValueError(f"percentiles must lie in [0, 100], got {percentiles}")
        self.module, self.every, self.percentiles = module, every, tuple(percentiles)
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._paused = False
        self._passes = 0
        self._steps: list[int] = []
        self._rows: list[torch.Tensor] = []

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if self._paused or not module.training:
            return
        self._passes += 1
        if (self._passes - 1) % self.every:
            return
        with torch.no_grad():
            values = output.detach().transpose(0, 1).reshape(output.shape[1], -1).float()
            q = torch.tensor([p / 100 for p in self.percentiles], device=values.device)
            stats = torch.cat(
                [torch.quantile(values, q, dim=1), values.mean(1, keepdim=True).T, values.std(1, keepdim=True).T]
            )
        self._steps.append(self._passes)
        self._rows.append(stats.cpu())

    def __enter__(self) -> ActivationProbe:
        if self._handle is not None:
            raise RuntimeError("this probe is already attached")
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    @contextlib.contextmanager
    def paused(self) -> Iterator[ActivationProbe]:
        """Within this block, passes are neither recorded nor counted (e.g. extra forward
        passes of a measurement, which are not training steps)."""
        self._paused = True
        try:
            yield self
        finally:
            self._paused = False

    def remove(self) -> None:
        """Detach the hook (recorded data stays)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def record(self) -> ActivationRecord:
        """Everything recorded so far."""
        if not self._rows:
            raise RuntimeError("the probe recorded nothing: was the module run in training mode?")
        stacked = torch.stack(self._rows).numpy()  # (records, len(percentiles) + 2, units)
        k = len(self.percentiles)
        return ActivationRecord(
            steps=np.array(self._steps),
            percentiles={p: stacked[:, i] for i, p in enumerate(self.percentiles)},
            mean=stacked[:, k],
            std=stacked[:, k + 1],
        )


def _check_recorded(record: ActivationRecord, *percentiles: int) -> None:
    valid.check_type("record", record, ActivationRecord, "an ActivationRecord (from ActivationProbe.record())")
    missing = [p for p in percentiles if p not in record.percentiles]
    if missing:
        raise ValueError(
            f"percentiles {missing} were not recorded; the probe recorded {sorted(record.percentiles)} "
            "(give them to ActivationProbe(..., percentiles=...))"
        )


def drift_ratio(record: ActivationRecord, low: int = 15, mid: int = 50, high: int = 85) -> np.ndarray:
    """Per unit: how far the median wandered over training, relative to the distribution's width.

    (max - min of the ``mid`` percentile over the records) / (mean over the records of the
    ``high`` - ``low`` spread). 0 means a perfectly still median; values near or above 1 mean
    the median moved by about a whole 15-85 band or more.
    """
    _check_recorded(record, low, mid, high)
    median = record.percentiles[mid]
    spread = (record.percentiles[high] - record.percentiles[low]).mean(axis=0)
    return (median.max(axis=0) - median.min(axis=0)) / np.maximum(spread, 1e-12)


def jitter_ratio(record: ActivationRecord, low: int = 15, mid: int = 50, high: int = 85) -> np.ndarray:
    """Per unit: how far the median moves from one record to the next, relative to the width.

    mean over consecutive records of |change of the ``mid`` percentile| / (mean ``high`` -
    ``low`` spread). Unlike :func:`drift_ratio`, which sees the total range travelled, this sees
    how restless the distribution is from step to step.
    """
    _check_recorded(record, low, mid, high)
    if len(record.steps) < 2:
        raise ValueError("jitter_ratio needs at least two records")
    median = record.percentiles[mid]
    spread = (record.percentiles[high] - record.percentiles[low]).mean(axis=0)
    return np.abs(np.diff(median, axis=0)).mean(axis=0) / np.maximum(spread, 1e-12)
