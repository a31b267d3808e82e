"""Batch size: when batch normalization breaks, and normalizing without the batch (the chapter
"Batch size").

BN normalizes with the statistics of the mini-batch in training and with running averages of
them at inference. Small batches make the two differ; batches that are not a random sample make
them differ systematically. This experiment measures both on a small convolutional network on the
8x8 digits, for BN, batch renorm (Ioffe, 2017), group norm and layer norm (Wu & He, 2018; Ba et
al., 2016) and no normalization. One job per module, every public name importable from here:

- :mod:`bn_utils.norm_axes` (a core module beside the norm registry): :func:`statistic_support`,
  which values one statistic of each normalization averages, read off its reference;
- :mod:`.sweep`: the setting (:data:`SETUP`), the stacked conv nets (:func:`build_stack`; the engine
  is :mod:`bn_utils.stacked_conv`, whose :class:`StackedConvNet` and :func:`train_stacked_convnets`
  are re-exported here) and :func:`batch_size_sweep` -> :class:`SweepResult`: accuracy in eval and
  train mode, and the gap between batch and running statistics, against batch size, over seeds;
- :mod:`.fully_connected`: :func:`fully_connected_sweep`, the same schedule on a fully connected net;
- :mod:`.plots`: plots typed against the result, :func:`plot_normalization_axes`, and
  :func:`explorer` over precomputed results.
"""

from __future__ import annotations

from ...norm_axes import AXES_NORMS, reference_normalization, statistic_support
from ...stacked import recompute_running_statistics
from ...stacked_conv import (
    ORDERS,
    StackedConvNet,
    epoch_batches,
    train_stacked_convnets,
)
from .fully_connected import FC_NORMS, fully_connected_sweep
from .plots import (
    WU_HE_2018,
    batch_size_figure,
    explorer,
    plot_error_vs_batch_size,
    plot_mode_gap,
    plot_normalization_axes,
    plot_orders,
    plot_statistics_gap,
    plot_sweep,
    plot_why,
    plot_wu_he,
)
from .sweep import (
    BATCH_SIZES,
    METRICS,
    NORMS,
    SETUP,
    CorrectMetric,
    Metric,
    SweepResult,
    batch_size_sweep,
    build_stack,
    ghost_options,
    overlapping_chunks,
    scaled_lr,
)

__all__ = [
    "AXES_NORMS",
    "NORMS",
    "BATCH_SIZES",
    "ORDERS",
    "SETUP",
    "WU_HE_2018",
    "reference_normalization",
    "statistic_support",
    "plot_normalization_axes",
    "StackedConvNet",
    "epoch_batches",
    "train_stacked_convnets",
    "scaled_lr",
    "Metric",
    "METRICS",
    "CorrectMetric",
    "SweepResult",
    "batch_size_sweep",
    "recompute_running_statistics",
    "build_stack",
    "overlapping_chunks",
    "ghost_options",
    "plot_error_vs_batch_size",
    "plot_wu_he",
    "plot_sweep",
    "plot_mode_gap",
    "plot_statistics_gap",
    "plot_orders",
    "plot_why",
    "explorer",
    "batch_size_figure",
    "FC_NORMS",
    "fully_connected_sweep",
]
