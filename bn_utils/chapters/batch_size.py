"""Chapter 8, "Batch size": what notebook 08 and tests/test_claims_batch_size.py share.

Setting (``bn_utils.experiments.batch_size.SETUP``): a conv net of two 3x3 conv blocks on the 8x8
digits (first 512 training images, 10 epochs, SGD with momentum at learning rate 0.1 x B / 32), and a
2 x 64 MLP on the flat digits with the same schedule; BN, batch renorm, group and layer norm, no norm.

The notebook trains a subset of the claim tests' stacks (three norms at batches 2 and 32, to keep
within its time budget); a norm's numbers depend in their last bits on the stack it trained in, so the
two keep their own setup functions (``shown_*`` for the notebook, ``claim_*`` for the tests) and share
every claim quantity below, which takes whichever stack it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import Dataset
from ..experiments import batch_size as bs
from ..statistics import AccuracyComparison, compare_accuracies

__all__ = [
    "SHOWN_NORMS",
    "SORTED_BATCH",
    "CHANNEL_VALUES",
    "shown_sweep",
    "claim_sweep",
    "shown_sorted_sweep",
    "claim_sorted_sweep",
    "shown_ghost",
    "claim_ghost",
    "shown_fully_connected",
    "shown_fully_connected_ghost",
    "claim_fully_connected",
    "batch_2_minus_32",
    "bn_batch_2_minus_32",
    "recomputed_minus_as_trained",
    "renorm_minus_bn",
    "BatchStatisticGaps",
    "batch_statistic_gaps",
    "ghost_minus_bn",
    "fc_bn_collapse",
    "fc_ghost_drop",
    "fc_layer_norm_change",
    "sorting_cost",
    "recomputed_share_of_sorting_cost",
    "sorted_renorm_minus_bn",
]

SHOWN_NORMS = ("batch", "batch_renorm", "group")  # the notebook's conv stacks
SORTED_BATCH = 8  # the class-sorted batches' size
CHANNEL_VALUES = 8 * 8  # values per channel and example after the first conv (8x8 maps)
Device = torch.device | str | None


# --- setup: the stacks the notebook trains, and those the claim tests train ---


def shown_sweep(images: Dataset, seeds: Sequence[int], device: Device = None) -> bs.SweepResult:
    """The notebook's conv sweep (section 2): :data:`SHOWN_NORMS` at batches 2 and 32."""
    return bs.batch_size_sweep(images, seeds=seeds, norms=SHOWN_NORMS, batch_sizes=(2, 32), device=device)


def claim_sweep(images: Dataset, seeds: Sequence[int]) -> bs.SweepResult:
    """The claim tests' conv sweep: every norm of ``bs.NORMS`` at every batch size of ``bs.BATCH_SIZES``."""
    return bs.batch_size_sweep(images, seeds=seeds)


def shown_sorted_sweep(images: Dataset, seeds: Sequence[int], device: Device = None) -> bs.SweepResult:
    """The notebook's class-sorted batches of :data:`SORTED_BATCH` (section 5), :data:`SHOWN_NORMS`."""
    return bs.batch_size_sweep(
        images, seeds=seeds, norms=SHOWN_NORMS, batch_sizes=(SORTED_BATCH,), order="sorted", device=device
    )


def claim_sorted_sweep(images: Dataset, seeds: Sequence[int]) -> bs.SweepResult:
    """The claim tests' class-sorted batches of :data:`SORTED_BATCH`, every norm."""
    return bs.batch_size_sweep(images, seeds=seeds, batch_sizes=(SORTED_BATCH,), order="sorted")


def shown_ghost(images: Dataset, seeds: Sequence[int], device: Device = None) -> bs.SweepResult:
    """The notebook's ghost BN (normalization batches of 2 within SGD batches of 32), alone in its stack."""
    return bs.batch_size_sweep(
        images, seeds=seeds, norms=("batch_ghost",), batch_sizes=(32,), ghost_batch_size=2, device=device
    )


def claim_ghost(images: Dataset, seeds: Sequence[int]) -> bs.SweepResult:
    """The claim tests' BN and ghost BN (normalization batches of 2) at SGD batch 32, in one stack."""
    return bs.batch_size_sweep(
        images, seeds=seeds, norms=("batch", "batch_ghost"), batch_sizes=(32,), ghost_batch_size=2
    )


def shown_fully_connected(digits: Dataset, seeds: Sequence[int]) -> bs.SweepResult:
    """The notebook's MLP (section 4): BN and layer norm at batches 2 and 32."""
    return bs.fully_connected_sweep(digits, seeds=seeds, norms=("batch", "layer"), batch_sizes=(2, 32))


def shown_fully_connected_ghost(digits: Dataset, seeds: Sequence[int]) -> bs.SweepResult:
    """The notebook's MLP with ghost BN (batches of 2 within SGD batches of 32), alone in its stack."""
    return bs.fully_connected_sweep(digits, seeds=seeds, norms=("batch_ghost",), batch_sizes=(32,), ghost_batch_size=2)


def claim_fully_connected(digits: Dataset, seeds: Sequence[int]) -> bs.SweepResult:
    """The claim tests' MLP: BN, ghost BN (2), layer norm and no norm at batches 2, 4 and 32, in one stack."""
    return bs.fully_connected_sweep(
        digits, seeds=seeds, norms=("batch", "batch_ghost", "layer", "none"), batch_sizes=(2, 4, 32), ghost_batch_size=2
    )


# --- claim quantities ---


def batch_2_minus_32(sweep: bs.SweepResult, norm: str) -> np.ndarray:
    """Per seed, ``norm``'s eval-mode test accuracy at batch 2 minus at batch 32 (same seed, same init)."""
    return sweep.values(norm, 2) - sweep.values(norm, 32)


def bn_batch_2_minus_32(sweep: bs.SweepResult, metric: bs.CorrectMetric = "eval_acc") -> AccuracyComparison:
    """BN at batch 2 minus at batch 32 (``eval_acc``: running statistics of training; ``recomputed_acc``:
    recomputed over the training images), over the seeds and over the test images: the loss Wu & He
    measured on ResNet-50 (11 points) is what this is compared with."""
    return compare_accuracies(sweep.correct("batch", 2, metric), sweep.correct("batch", 32, metric))


def recomputed_minus_as_trained(sweep: bs.SweepResult, batch_size: int = 32) -> AccuracyComparison:
    """BN with its running statistics recomputed over the training images after training, minus as trained."""
    return compare_accuracies(sweep.correct("batch", batch_size, "recomputed_acc"), sweep.correct("batch", batch_size))


def renorm_minus_bn(sweep: bs.SweepResult, batch_size: int = 2) -> AccuracyComparison:
    """Batch renorm minus BN at ``batch_size`` (paired seed by seed and over the test images)."""
    return compare_accuracies(sweep.correct("batch_renorm", batch_size), sweep.correct("batch", batch_size))


@dataclass(frozen=True)
class BatchStatisticGaps:
    """How far the first norm's batch statistics are from the running ones, against what B x 64
    independent values would give. ``d_rms`` and ``log_r_rms``: per batch size (2, 32), the mean over
    seeds of the RMS of d = (mu_B - mu) / sigma and of log r = log(sigma_B / sigma); ``mean_ratio``: per
    batch size, per seed, RMS of d x sqrt(B x 64) (1 if a channel's statistics averaged B x 64
    independent values); ``log_r_ratio``: per seed, RMS of log r at batch 2 x sqrt(2 x 2 x 64) (1 for
    independent Gaussian values)."""

    d_rms: dict[int, float]
    mean_ratio: dict[int, np.ndarray]
    log_r_rms_2: float
    log_r_ratio: np.ndarray

    @property
    def shrink(self) -> float:
        """Mean RMS of d at batch 2 over that at batch 32 (1/sqrt(B) gives 4)."""
        return self.d_rms[2] / self.d_rms[32]


def batch_statistic_gaps(sweep: bs.SweepResult) -> BatchStatisticGaps:
    """:class:`BatchStatisticGaps` of BN at batches 2 and 32."""
    return BatchStatisticGaps(
        d_rms={size: float(sweep.values("batch", size, "stat_gap_mean").mean()) for size in (2, 32)},
        mean_ratio={
            size: sweep.values("batch", size, "stat_gap_mean") * np.sqrt(size * CHANNEL_VALUES) for size in (2, 32)
        },
        log_r_rms_2=float(sweep.values("batch", 2, "stat_gap_log_std").mean()),
        log_r_ratio=sweep.values("batch", 2, "stat_gap_log_std") * np.sqrt(2 * 2 * CHANNEL_VALUES),
    )


def ghost_minus_bn(ghost: bs.SweepResult, bn: bs.SweepResult, batch_size: int) -> AccuracyComparison:
    """Ghost BN (chunks of 2 normalized on their own, SGD on batches of 32) minus BN at ``batch_size``
    taken from ``bn`` (the ghost stack itself when it trained BN beside it)."""
    return compare_accuracies(ghost.correct("batch_ghost", 32), bn.correct("batch", batch_size))


def fc_bn_collapse(fc: bs.SweepResult) -> np.ndarray:
    """Per seed, the MLP with BN: accuracy at batch 32 minus at batch 2."""
    return fc.values("batch", 32) - fc.values("batch", 2)


def fc_ghost_drop(fc: bs.SweepResult, fc_ghost: bs.SweepResult) -> np.ndarray:
    """Per seed, the MLP: BN at batch 32 (from ``fc``) minus ghost BN of 2 within 32 (from ``fc_ghost``)."""
    return fc.values("batch", 32) - fc_ghost.values("batch_ghost", 32)


def fc_layer_norm_change(fc: bs.SweepResult) -> AccuracyComparison:
    """The MLP with layer norm, batch 2 minus batch 32: layer norm uses no batch statistics."""
    return compare_accuracies(fc.correct("layer", 2), fc.correct("layer", 32))


def sorting_cost(
    sweep: bs.SweepResult, sorted_sweep: bs.SweepResult, norm: str, shuffled_batch_size: int
) -> np.ndarray:
    """Per seed, ``norm``'s accuracy with shuffled batches of ``shuffled_batch_size`` minus with
    class-sorted batches of :data:`SORTED_BATCH`."""
    return sweep.values(norm, shuffled_batch_size) - sorted_sweep.values(norm, SORTED_BATCH)


def recomputed_share_of_sorting_cost(
    sweep: bs.SweepResult, sorted_sweep: bs.SweepResult, shuffled_batch_size: int
) -> float:
    """What recomputing BN's running statistics after class-sorted training wins back, over what the
    sorting cost BN (both means over seeds): below 1/2, the running statistics are not the main loss."""
    gain = sorted_sweep.values("batch", SORTED_BATCH, "recomputed_acc") - sorted_sweep.values("batch", SORTED_BATCH)
    return float(gain.mean() / sorting_cost(sweep, sorted_sweep, "batch", shuffled_batch_size).mean())


def sorted_renorm_minus_bn(sorted_sweep: bs.SweepResult) -> np.ndarray:
    """Per seed, class-sorted batches: batch renorm minus BN."""
    return sorted_sweep.values("batch_renorm", SORTED_BATCH) - sorted_sweep.values("batch", SORTED_BATCH)
