"""Batch size: when batch normalization breaks, and normalizing without the batch (the chapter
"Batch size").

BN normalizes with the statistics of the mini-batch in training and with running averages of
them at inference. Small batches make the two differ; batches that are not a random sample make
them differ systematically. This module measures both on a small convolutional network on the
8x8 digits, for BN, batch renormalization (Ioffe, 2017), group norm and layer norm (Wu & He,
2018; Ba et al., 2016) and no normalization:

- :func:`statistic_support` and :func:`plot_normalization_axes`: which values one statistic of
  each normalization averages, read off the code itself (the gradient of one output);
- :class:`StackedConvNet` and :func:`train_stacked_convnets` (from :mod:`bn_utils.stacked_conv`,
  re-exported here): the seeds of one configuration trained as one network (grouped
  convolutions, one group per seed), exactly as separate runs;
- :func:`batch_size_sweep` -> :class:`SweepResult`: accuracy in eval and train mode, and the gap
  between batch and running statistics, against batch size, over seeds;
- plots typed against the result, and :func:`explorer` over precomputed results.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypedDict, cast, get_args

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .. import _validate as valid
from .. import norms as norm_registry
from ..cache import remembered
from ..data import Dataset, check_dataset
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..functional import batch_norm, group_norm, instance_norm, layer_norm
from ..grid import Axis, LabelledGrid
from ..layers import GhostBatchNorm
from ..models import NORM_LAYERS, make_convnet, make_convnet1d
from ..stacked import StackedMLP
from ..stacked_conv import (
    _PER_CHANNEL_NORMS,
    ORDERS,
    StackedConvNet,
    _ChannelSplitNorm,
    _repeat_inputs,
    _slot_inputs,
    epoch_batches,
    recompute_running_statistics,
    train_stacked_convnets,
)
from ..statistics import Estimate
from ..style import FAINT, FIGSIZE, GUIDE, OUTLINE, color_for, figsize, label_for, series_color
from ..training import get_device, seed_everything

if TYPE_CHECKING:
    from ipywidgets import interactive

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

# the normalizations the sweep compares, and the batch sizes of the issue
NORMS = ("batch", "batch_renorm", "group", "layer", "none")
BATCH_SIZES = (2, 4, 8, 16, 32, 128)


class _RenormSchedule(TypedDict):
    """Batch renorm's limits and its warm-up schedule, in epochs (see :class:`bn_utils.layers.BatchRenorm2d`)."""

    r_max: float
    d_max: float
    warmup_epochs: int
    relax_epochs: int


class _Setup(TypedDict):
    """The fields of :data:`SETUP`, with their types."""

    channels: tuple[int, ...]
    num_groups: int
    epochs: int
    base_lr: float
    base_batch: int
    momentum: float
    train_examples: int
    renorm: _RenormSchedule


# The chapter's setting (see the page): conv widths, groups of group norm, the epochs for every
# batch size, SGD with momentum, the learning rate at batch 32 (scaled linearly with the batch
# size, see :func:`scaled_lr`) and the batch-renorm schedule in epochs.
SETUP: _Setup = dict(
    channels=(16, 32),
    num_groups=4,
    epochs=10,
    base_lr=0.1,
    base_batch=32,
    momentum=0.9,
    train_examples=512,
    renorm=dict(r_max=3.0, d_max=5.0, warmup_epochs=1, relax_epochs=1),
)

# Wu & He (2018), Figure 1 / Table 3: ResNet-50 on ImageNet, validation error (%) against images
# per GPU (each GPU normalizes its own batch).
WU_HE_2018: dict[str, dict[int, float]] = {
    "batch": {32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7},
    "group": {32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1},
}

# the normalizations whose statistics the axes figure shows
AXES_NORMS = ("batch", "layer", "instance", "group")


# ---------------------------------------------------------------------------------------------
# Which values one statistic averages


def reference_normalization(name: str, x: torch.Tensor, *, num_groups: int = 2) -> torch.Tensor:
    """``x`` (N, C, *) normalized without affine by the from-scratch function of ``name``: batch
    norm in training mode (:func:`bn_utils.functional.batch_norm`), layer norm over (C, *),
    instance norm, or group norm with ``num_groups`` groups."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    if x.dim() < 3:
        raise ValueError(f"expected feature maps of shape (N, C, *), got shape {tuple(x.shape)}")
    if name == "batch":
        return batch_norm(x, None, None, training=True)
    if name == "layer":
        return layer_norm(x, tuple(x.shape[1:]))
    if name == "instance":
        return instance_norm(x)
    if name == "group":
        return group_norm(x, num_groups)
    raise ValueError(f"unknown normalization {name!r}; valid names are: {', '.join(AXES_NORMS)}")


def statistic_support(
    name: str, shape: tuple[int, int, int] = (4, 6, 5), index: tuple[int, int, int] = (1, 2, 0), *, num_groups: int = 2
) -> np.ndarray:
    """Boolean (N, C, positions) mask of the inputs that share the statistics of the output at
    ``index``: read off the code by differentiating the (centred) output at ``index`` with
    respect to every input, in float64. Only the inputs its mean and variance average over, and
    the input itself, get a non-zero gradient."""
    valid.check_type("shape", shape, tuple, "a tuple (N, C, positions)")
    if len(shape) != 3:
        raise ValueError(f"shape must be (N, C, positions), got {shape!r}")
    for size in shape:
        valid.check_int("each of shape", size)
    if len(index) != 3 or not all(valid.is_int(i) and 0 <= i < s for i, s in zip(index, shape, strict=False)):
        raise ValueError(f"index must be a position (n, c, p) inside shape {shape}, got {index!r}")
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = reference_normalization(name, x, num_groups=num_groups)
    (grad,) = torch.autograd.grad(y[index], x)
    return (grad.abs() > 1e-12).numpy()


def plot_normalization_axes(
    names: Sequence[str] = AXES_NORMS, *, shape: tuple[int, int, int] = (4, 6, 5), num_groups: int = 2
) -> Figure:
    """The N x C x (H*W) cube once per normalization, shaded where one statistic of the output
    at (example 1, channel 2) averages (from :func:`statistic_support`)."""
    import matplotlib.pyplot as plt

    names = valid.check_values("names", names, lambda n, v: valid.check_type(n, v, str, "a norm name"))
    fig = plt.figure(figsize=figsize("cubes", len(names)))
    for i, name in enumerate(names):
        mask = statistic_support(name, shape, num_groups=num_groups)
        ax = fig.add_subplot(1, len(names), i + 1, projection="3d")
        # axes: x = positions (H*W), y = examples (N), z = channels (C), as in Wu & He's figure
        filled = np.ones((shape[2], shape[0], shape[1]), dtype=bool)
        # shaded: the norm's colour; the rest nearly transparent, so shading inside the cube shows
        shaded = mask.transpose(2, 0, 1)
        ax.voxels(filled & ~shaded, facecolors=FAINT + "14", edgecolor=GUIDE + "55", linewidth=0.3)
        ax.voxels(shaded, facecolors=color_for(name) + "D9", edgecolor=OUTLINE, linewidth=0.3)
        ax.set_xlabel("H·W", labelpad=-10)
        ax.set_ylabel("N", labelpad=-10)
        ax.set_zlabel("C", labelpad=-10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        title = label_for(name) if name != "group" else f"group norm ({num_groups} groups)"
        ax.set_title(title)
        ax.view_init(elev=22, azim=-55)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# The seeds of one configuration as one network (the engine: bn_utils.stacked_conv)


def _renorm_options(norm: str, steps_per_epoch: int, renorm: _RenormSchedule) -> dict:
    if norm != "batch_renorm":
        return {}
    return dict(
        r_max=renorm["r_max"],
        d_max=renorm["d_max"],
        warmup_steps=int(renorm["warmup_epochs"] * steps_per_epoch),
        relax_steps=int(renorm["relax_epochs"] * steps_per_epoch),
    )


def build_stack(
    norms: Sequence[str],
    seeds: Sequence[int],
    *,
    channels: tuple[int, ...],
    norm_kwargs: Mapping[str, dict] | None = None,
    dtype: torch.dtype = torch.float32,
    sequences: bool = False,
) -> StackedConvNet:
    """One :class:`StackedConvNet` whose slot s is ``make_convnet(1, 10, channels=..., norm=norms[s],
    norm_kwargs=norm_kwargs.get(norms[s]))`` initialised after ``seed_everything(seeds[s])`` (as
    :func:`bn_utils.training.run_seeds` builds it); ``make_convnet1d`` instead with ``sequences``."""
    norms = valid.check_values("norms", norms, lambda n, v: valid.check_type(n, v, str, "a norm name"))
    seeds = valid.check_seeds("seeds", seeds, distinct=False)
    if len(norms) != len(seeds):
        raise ValueError(f"need one norm per seed (one per slot), got {len(norms)} norms and {len(seeds)} seeds")
    norm_kwargs = dict(norm_kwargs or {})
    models = []
    for norm, seed in zip(norms, seeds, strict=True):
        seed_everything(seed)
        make = make_convnet1d if sequences else make_convnet
        model = make(1, 10, channels=tuple(channels), norm=norm, norm_kwargs=norm_kwargs.get(norm))
        models.append(model.to(dtype))
    return StackedConvNet(models)


def scaled_lr(batch_size: int, *, base_lr: float | None = None, base_batch: int | None = None) -> float:
    """The learning rate at ``batch_size``: ``base_lr * batch_size / base_batch`` (the linear
    scaling rule of Goyal et al., 2017; defaults from :data:`SETUP`)."""
    valid.check_int("batch_size", batch_size)
    base_lr = SETUP["base_lr"] if base_lr is None else valid.check_number("base_lr", base_lr, 0, low_open=True)
    base_batch = SETUP["base_batch"] if base_batch is None else valid.check_int("base_batch", base_batch)
    return base_lr * batch_size / base_batch


# ---------------------------------------------------------------------------------------------
# The sweep


@torch.no_grad()
def _correct_eval_mode(stack: StackedConvNet, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(slots, examples) booleans: each example classified correctly in eval mode (running statistics)."""
    was = stack.training
    stack.eval()
    try:
        pred = stack(_repeat_inputs(x, stack.slots)).argmax(dim=2)  # (N, slots)
    finally:
        stack.train(was)
    return (pred == y[:, None]).T.cpu().numpy()


def _accuracy_eval_mode(stack: StackedConvNet, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return _correct_eval_mode(stack, x, y).mean(1)


def _chunks(count: int, size: int) -> list[tuple[int, int, int]]:
    """(start, end, first counted) of consecutive chunks of ``size`` examples covering ``count``: every
    chunk has ``size`` examples (when ``count`` allows); the last one overlaps the one before it, and
    only the examples it adds are counted."""
    chunks = []
    for start in range(0, count, size):
        end = min(start + size, count)
        chunks.append((max(0, end - size), end, start))
    return chunks


@torch.no_grad()
def _accuracy_train_mode(stack: StackedConvNet, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> np.ndarray:
    """Predict in chunks of ``batch_size`` in training mode (batch statistics), on a copy; every chunk
    has ``batch_size`` examples, the last one overlapping the chunk before it (see :func:`_chunks`)."""
    probe = copy.deepcopy(stack).train()
    correct = torch.zeros(stack.slots, dtype=torch.float64)
    for start, end, first in _chunks(len(x), batch_size):
        pred = probe(_repeat_inputs(x[start:end], stack.slots)).argmax(dim=2)[first - start :]
        correct += (pred == y[first:end, None]).double().sum(0).cpu()
    return (correct / len(x)).numpy()


def _running_statistics(norm: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(running mean, running var, eps) over every channel of a stacked norm; NaN in the channels
    of slots whose norm keeps no running statistics."""
    parts, sizes = (norm.parts, norm.sizes) if isinstance(norm, _ChannelSplitNorm) else ([norm], [channels])
    means: list[torch.Tensor] = []
    variances: list[torch.Tensor] = []
    eps = 1e-5
    for part, size in zip(parts, sizes, strict=True):
        part = part.bn if isinstance(part, GhostBatchNorm) else part
        if isinstance(part, _PER_CHANNEL_NORMS) and part.running_mean is not None and part.running_var is not None:
            means.append(part.running_mean)
            variances.append(part.running_var)
            eps = part.eps
        else:
            means.append(torch.full((size,), float("nan")))
            variances.append(torch.full((size,), float("nan")))
    device = next((m.device for m in means if m.device.type != "cpu"), torch.device("cpu"))
    return torch.cat([m.to(device) for m in means]), torch.cat([v.to(device) for v in variances]), eps


@torch.no_grad()
def _statistics_gap(
    stack: StackedConvNet, data: Dataset, seeds: Sequence[int], batch_size: int, batches: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per slot, the RMS over channels and training batches of the first norm's
    d = (mu_B - mu) / sigma and of log r = log(sigma_B / sigma): how far the batch statistics of
    a training batch are from the running ones it is evaluated with (batch renorm's corrections,
    unclipped). NaN for slots whose first norm has no running statistics."""
    conv = cast(nn.Conv2d, cast(nn.Sequential, stack.blocks[0])[0])  # the first stacked convolution
    channels = conv.out_channels
    running_mean, running_var, eps = _running_statistics(stack.norm(0), channels)
    sigma = torch.sqrt(running_var + eps)
    per_seed = [epoch_batches(data.y_train, batch_size, seed=s, epoch=0)[:batches] for s in seeds]
    idx_all = torch.stack([torch.stack(b) for b in per_seed], dim=1).to(data.x_train.device)
    per_slot = channels // stack.slots
    d_sq = torch.zeros(stack.slots, dtype=torch.float64)
    log_r_sq = torch.zeros(stack.slots, dtype=torch.float64)
    for idx in idx_all:
        pre = conv(_slot_inputs(data.x_train, idx))
        dims = (0, *range(2, pre.dim()))  # the examples and the positions
        mean = pre.mean(dim=dims)
        var = pre.var(dim=dims, unbiased=False)
        d = (mean - running_mean) / sigma
        log_r = torch.log(torch.sqrt(var + eps) / sigma)
        d_sq += (d.double() ** 2).reshape(stack.slots, per_slot).mean(1).cpu()
        log_r_sq += (log_r.double() ** 2).reshape(stack.slots, per_slot).mean(1).cpu()
    return (d_sq / len(idx_all)).sqrt().numpy(), (log_r_sq / len(idx_all)).sqrt().numpy()


Metric = Literal[
    "eval_acc", "train_mode_acc", "train_acc", "mode_gap", "stat_gap_mean", "stat_gap_log_std", "recomputed_acc"
]
"""What :meth:`SweepResult.values` reads, per seed (mypy checks a literal name; a wrong one at run
time is a ``ValueError`` naming these)."""
METRICS: tuple[Metric, ...] = get_args(Metric)
CorrectMetric = Literal["eval_acc", "recomputed_acc"]
"""The metrics whose per-example results :meth:`SweepResult.correct` reads."""


@dataclass(frozen=True)
class SweepResult(LabelledGrid):
    """What :func:`batch_size_sweep` measured, as arrays indexed (norm, batch size, seed):
    eval-mode test accuracy (running statistics), train-mode test accuracy (test set predicted in
    batches of the training batch size, with batch statistics), eval-mode accuracy on the
    training examples, the step at which a run's loss stopped being finite (-1: never), the
    first norm's gap between batch and running statistics (NaN without running statistics), and
    eval-mode test accuracy after :func:`recompute_running_statistics` over the training images
    (``recomputed_acc``; equal to ``eval_acc`` for norms without running statistics, None if not
    measured). ``eval_correct`` and ``recomputed_correct`` (norm, batch size, seed, test example)
    say whether each test example was classified correctly (for test-set intervals,
    :mod:`bn_utils.statistics`); None where not measured."""

    norms: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    order: str
    eval_acc: np.ndarray
    train_mode_acc: np.ndarray
    train_acc: np.ndarray
    diverged_at: np.ndarray
    stat_gap_mean: np.ndarray
    stat_gap_log_std: np.ndarray
    lrs: tuple[float, ...]
    epochs: int
    train_examples: int
    config: dict = field(default_factory=dict)
    recomputed_acc: np.ndarray | None = None
    eval_correct: np.ndarray | None = None
    recomputed_correct: np.ndarray | None = None

    def axes(self) -> dict[str, Axis]:
        """The sweep's axes: the norms and the batch sizes (the seeds are the arrays' last axis)."""
        return {
            "norm": Axis("norm", self.norms, "was not swept", "the sweep"),
            "batch_size": Axis("batch size", self.batch_sizes, "was not swept", "the sweep"),
        }

    def _at(self, norm: str, batch_size: int) -> tuple[int, int]:
        i, j = self.locate(norm=norm, batch_size=batch_size)
        return i, j

    def values(self, norm: str, batch_size: int, metric: Metric = "eval_acc") -> np.ndarray:
        """Per seed, ``eval_acc``, ``train_mode_acc``, ``train_acc``, ``mode_gap`` (train-mode
        minus eval-mode accuracy), ``stat_gap_mean``, ``stat_gap_log_std`` or ``recomputed_acc``
        (:data:`METRICS`)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid names are: {', '.join(METRICS)}")
        i, j = self._at(norm, batch_size)
        if metric == "mode_gap":
            return self.train_mode_acc[i, j] - self.eval_acc[i, j]
        if metric == "recomputed_acc" and self.recomputed_acc is None:
            raise ValueError("this result has no recomputed_acc (fully_connected_sweep does not measure it)")
        table = {
            "eval_acc": self.eval_acc,
            "train_mode_acc": self.train_mode_acc,
            "train_acc": self.train_acc,
            "stat_gap_mean": self.stat_gap_mean,
            "stat_gap_log_std": self.stat_gap_log_std,
            "recomputed_acc": self.recomputed_acc,
        }
        return cast(np.ndarray, table[metric])[i, j]

    def correct(self, norm: str, batch_size: int, metric: CorrectMetric = "eval_acc") -> np.ndarray:
        """(seeds, test examples) booleans behind ``eval_acc`` or ``recomputed_acc``: each test
        example classified correctly, for :func:`bn_utils.statistics.accuracy_difference_interval`."""
        table = {"eval_acc": self.eval_correct, "recomputed_acc": self.recomputed_correct}
        if metric not in table:
            raise ValueError(f"per-example results exist for eval_acc and recomputed_acc, not {metric!r}")
        i, j = self._at(norm, batch_size)
        if table[metric] is None:
            raise ValueError(f"this result has no per-example {metric}")
        return cast(np.ndarray, table[metric])[i, j]

    def estimate(self, norm: str, batch_size: int, metric: Metric = "eval_acc") -> Estimate:
        """The per-seed values of :meth:`values` with their mean, spread and interval."""
        return Estimate(tuple(float(v) for v in self.values(norm, batch_size, metric)))

    def change(self, norm: str, small: int, large: int, metric: Metric = "eval_acc") -> Estimate:
        """Per seed, ``metric`` at batch ``large`` minus at batch ``small`` (same seed, same init)."""
        return Estimate(tuple(float(v) for v in self.values(norm, large, metric) - self.values(norm, small, metric)))

    def recovered(self, batch_size: int, *, reference: int, norm: str = "batch_renorm") -> float:
        """The fraction of BN's loss of mean eval-mode accuracy from batch ``reference`` to
        ``batch_size`` that ``norm`` wins back: (norm - BN) / (BN at reference - BN) at batch_size."""
        bn_small = self.values("batch", batch_size).mean()
        lost = self.values("batch", reference).mean() - bn_small
        if lost <= 0:
            return float("nan")
        return float((self.values(norm, batch_size).mean() - bn_small) / lost)

    def table(self, metric: Metric = "eval_acc", *, scale: float = 100, digits: int = 1) -> dict[str, dict[int, str]]:
        """'mean ± std' of ``metric`` (x ``scale``) per norm and batch size."""
        return {
            norm: {
                size: self.estimate(norm, size, metric).format(scale=scale, digits=digits) for size in self.batch_sizes
            }
            for norm in self.norms
        }

    def markdown_table(self, metric: Metric = "eval_acc") -> str:
        """:meth:`table` as a Markdown table (norms as rows, batch sizes as columns)."""
        table = self.table(metric)
        head = "| | " + " | ".join(f"batch {s}" for s in self.batch_sizes) + " |"
        rule = "|---|" + "---|" * len(self.batch_sizes)
        rows = [f"| {label_for(n)} | " + " | ".join(table[n][s] for s in self.batch_sizes) + " |" for n in self.norms]
        return "\n".join([head, rule, *rows])


@remembered("experiments.batch_size")
def batch_size_sweep(
    data: Dataset,
    *,
    seeds: Sequence[int],
    norms: Sequence[str] = NORMS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    order: str = "shuffled",
    epochs: int | None = None,
    train_examples: int | None = None,
    base_lr: float | None = None,
    stat_batches: int = 32,
    ghost_batch_size: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> SweepResult:
    """Train ``make_convnet(channels=SETUP["channels"])`` with each norm at each batch size, one
    stacked network per (norm, batch size) holding the seeds; the same ``epochs`` and the same
    first ``train_examples`` training images for every batch size, SGD with momentum at
    :func:`scaled_lr`. Group norm uses ``SETUP["num_groups"]`` groups; batch renorm its schedule in
    epochs (``SETUP["renorm"]``); ``batch_ghost`` (ghost batch norm) normalizes training batches in
    chunks of ``ghost_batch_size`` examples while SGD steps on the whole batch. Defaults come from
    :data:`SETUP`. Returns a :class:`SweepResult`."""
    check_dataset("data", data)
    if data.x_train.dim() not in (3, 4):
        raise ValueError(
            "batch_size_sweep needs images (N, C, H, W), e.g. load_digits(images=True), or sequences (N, C, L), "
            f"e.g. load_mnist1d(sequences=True), got {data!r}"
        )
    seeds = valid.check_seeds("seeds", seeds)
    norms = valid.check_values("norms", norms, lambda n, v: valid.check_type(n, v, str, "a norm name"), distinct=True)
    for norm in norms:
        if norm not in NORM_LAYERS:
            raise ValueError(f"unknown norm {norm!r}; valid names are: {', '.join(sorted(NORM_LAYERS))}")
    epochs = SETUP["epochs"] if epochs is None else valid.check_int("epochs", epochs)
    n_train = SETUP["train_examples"] if train_examples is None else train_examples
    n_train = valid.check_int("train_examples", n_train, 2, len(data.x_train))
    batch_sizes = valid.check_values("batch_sizes", batch_sizes, lambda n, v: valid.check_int(n, v, 2, n_train))
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    valid.check_int("stat_batches", stat_batches)
    ghost = _check_ghost(norms, batch_sizes, ghost_batch_size)
    device = torch.device(device) if device is not None else get_device()
    subset = Dataset(
        data.name,
        data.x_train[:n_train],
        data.y_train[:n_train],
        data.x_test,
        data.y_test,
        data.num_classes,
    ).to(device)
    shape = (len(norms), len(batch_sizes), len(seeds))
    keys = ("eval", "train_mode", "train", "gap_mean", "gap_std", "diverged", "recomputed")
    out = {k: np.full(shape, np.nan) for k in keys}
    eval_correct = np.zeros((*shape, len(data.x_test)), dtype=bool)
    recomputed_correct = np.zeros((*shape, len(data.x_test)), dtype=bool)
    lrs = tuple(scaled_lr(size, base_lr=base_lr) for size in batch_sizes)
    slot_norms = [norm for norm in norms for _ in seeds]
    slot_seeds = [seed for _ in norms for seed in seeds]
    sizes = range(len(batch_sizes))
    if progress:
        from tqdm.auto import tqdm

        sizes = tqdm(sizes, desc="batch sizes", leave=False)
    for j in sizes:
        size = batch_sizes[j]
        kwargs = {"group": {"num_groups": SETUP["num_groups"]}}
        kwargs["batch_renorm"] = _renorm_options("batch_renorm", n_train // size, SETUP["renorm"])
        kwargs.update(ghost)
        stack = build_stack(
            slot_norms, slot_seeds, channels=SETUP["channels"], norm_kwargs=kwargs, sequences=data.x_train.dim() == 3
        ).to(device)
        results = {
            "diverged": train_stacked_convnets(
                stack,
                subset,
                seeds=slot_seeds,
                lr=lrs[j],
                epochs=epochs,
                batch_size=size,
                momentum=SETUP["momentum"],
                order=order,
            ),
            "train_mode": _accuracy_train_mode(stack, subset.x_test, subset.y_test, size),
            "train": _accuracy_eval_mode(stack, subset.x_train, subset.y_train),
        }
        results["gap_mean"], results["gap_std"] = _statistics_gap(stack, subset, slot_seeds, size, stat_batches)
        correct = _correct_eval_mode(stack, subset.x_test, subset.y_test)
        results["eval"] = correct.mean(1)
        if any(norm in ("batch", "batch_ghost") for norm in norms):
            refreshed = recompute_running_statistics(copy.deepcopy(stack), _repeat_inputs(subset.x_train, stack.slots))
            refreshed_correct = _correct_eval_mode(refreshed, subset.x_test, subset.y_test)
        else:
            refreshed_correct = correct
        results["recomputed"] = refreshed_correct.mean(1)
        eval_correct[:, j] = correct.reshape(len(norms), len(seeds), -1)
        recomputed_correct[:, j] = refreshed_correct.reshape(len(norms), len(seeds), -1)
        for key, value in results.items():
            out[key][:, j, :] = np.asarray(value, dtype=float).reshape(len(norms), len(seeds))
    return SweepResult(
        norms=tuple(norms),
        batch_sizes=tuple(batch_sizes),
        seeds=tuple(seeds),
        order=order,
        eval_acc=out["eval"],
        train_mode_acc=out["train_mode"],
        train_acc=out["train"],
        diverged_at=out["diverged"].astype(int),
        stat_gap_mean=out["gap_mean"],
        stat_gap_log_std=out["gap_std"],
        lrs=lrs,
        epochs=epochs,
        train_examples=n_train,
        config=dict(
            SETUP, base_lr=base_lr if base_lr is not None else SETUP["base_lr"], ghost_batch_size=ghost_batch_size
        ),
        recomputed_acc=out["recomputed"],
        eval_correct=eval_correct,
        recomputed_correct=recomputed_correct,
    )


def _check_ghost(norms: Sequence[str], batch_sizes: Sequence[int], ghost_batch_size: int | None) -> dict[str, dict]:
    """The norm options of ghost batch norm (``{"batch_ghost": {"ghost_batch_size": g}}``), after
    checking that each batch size splits into ghost batches of ``g``; empty without ``batch_ghost``."""
    if "batch_ghost" not in norms:
        if ghost_batch_size is not None:
            raise ValueError("ghost_batch_size is for the norm 'batch_ghost', which is not among the norms")
        return {}
    if ghost_batch_size is None:
        raise ValueError("the norm 'batch_ghost' needs ghost_batch_size, the examples each ghost batch normalizes")
    valid.check_int("ghost_batch_size", ghost_batch_size, 2)
    for size in batch_sizes:
        if size % ghost_batch_size:
            raise ValueError(f"batch size {size} does not split into ghost batches of {ghost_batch_size}")
    return {"batch_ghost": {"ghost_batch_size": ghost_batch_size}}


# ---------------------------------------------------------------------------------------------
# Plots and explorer


def _new_ax(ax: Axes | None, size: tuple[float, float] = FIGSIZE["panel"]) -> Axes:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def _log2_axis(ax: Axes, sizes: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes))
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("batch size (examples per normalization batch)")


def plot_error_vs_batch_size(
    result: SweepResult, *, ax: Axes | None = None, norms: Sequence[str] | None = None, metric: Metric = "eval_acc"
) -> Axes:
    """Test error (%, 100 - accuracy) against batch size, mean over seeds with a +/- 1 std band,
    one line per norm (``metric``: ``eval_acc`` or ``train_mode_acc``)."""
    from ..style import plot_band

    valid.check_type("result", result, SweepResult, "a SweepResult")
    if metric not in ("eval_acc", "train_mode_acc"):
        raise ValueError(f"metric must be 'eval_acc' or 'train_mode_acc', got {metric!r}")
    ax = _new_ax(ax)
    for norm in norms or result.norms:
        values = np.stack([100 * (1 - result.values(norm, size, metric)) for size in result.batch_sizes], axis=1)
        plot_band(ax, np.asarray(result.batch_sizes), values, label=label_for(norm), color=color_for(norm))
    _log2_axis(ax, result.batch_sizes)
    mode = "eval mode" if metric == "eval_acc" else "train mode"
    ax.set_ylabel(f"test error (%), {mode}")
    ax.set_title(f"Digits, {result.epochs} epochs at every batch size ({result.order} batches)", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_wu_he(*, ax: Axes | None = None) -> Axes:
    """Wu & He (2018)'s ResNet-50 ImageNet validation error against images per GPU (:data:`WU_HE_2018`)."""
    ax = _new_ax(ax)
    for norm, errors in WU_HE_2018.items():
        sizes = sorted(errors)
        ax.plot(sizes, [errors[s] for s in sizes], marker="o", label=label_for(norm), color=color_for(norm))
    _log2_axis(ax, sorted(WU_HE_2018["batch"]))
    ax.set_xlabel("images per GPU")
    ax.set_ylabel("validation error (%)")
    ax.set_title("ResNet-50 on ImageNet (Wu & He, 2018)", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_sweep(result: SweepResult, *, norms: Sequence[str] | None = None) -> Figure:
    """Our error against batch size beside Wu & He (2018)'s ImageNet numbers (two panels)."""
    import matplotlib.pyplot as plt

    valid.check_type("result", result, SweepResult, "a SweepResult")
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize("pair_high"))
    plot_error_vs_batch_size(result, ax=left, norms=norms)
    plot_wu_he(ax=right)
    fig.tight_layout()
    return fig


def plot_mode_gap(result: SweepResult, *, ax: Axes | None = None, norms: Sequence[str] | None = None) -> Axes:
    """Train-mode minus eval-mode test accuracy (points) against batch size, per norm: how far the
    statistics a network trained with are from the ones it is tested with."""
    from ..style import plot_band

    valid.check_type("result", result, SweepResult, "a SweepResult")
    ax = _new_ax(ax)
    for norm in norms or result.norms:
        values = np.stack([100 * result.values(norm, size, "mode_gap") for size in result.batch_sizes], axis=1)
        plot_band(ax, np.asarray(result.batch_sizes), values, label=label_for(norm), color=color_for(norm))
    ax.axhline(0, color=GUIDE, linewidth=1)
    _log2_axis(ax, result.batch_sizes)
    ax.set_ylabel("train mode - eval mode (points)")
    ax.legend(fontsize=8)
    return ax


def plot_statistics_gap(result: SweepResult, *, ax: Axes | None = None, norm: str = "batch") -> Axes:
    """RMS of d = (mu_B - mu) / sigma and of log r = log(sigma_B / sigma) at the first norm
    against batch size (log-log, mean over seeds), with a 1 / sqrt(batch size) line through the
    value at the largest batch for comparison."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    ax = _new_ax(ax)
    sizes = np.asarray(result.batch_sizes, dtype=float)
    gaps: tuple[tuple[Metric, str, str], ...] = (
        ("stat_gap_mean", "mean: RMS of d", color_for(norm)),
        ("stat_gap_log_std", "std: RMS of log r", series_color(0)),
    )
    for metric, label, color in gaps:
        values = np.array([result.values(norm, int(s), metric).mean() for s in sizes])
        ax.plot(sizes, values, marker="o", label=label, color=color)
        ax.plot(sizes, values[-1] * np.sqrt(sizes[-1] / sizes), linestyle=":", color=color, linewidth=1.2)
    ax.plot([], [], linestyle=":", color=GUIDE, label="1 / sqrt(batch size)")
    ax.set_yscale("log")
    _log2_axis(ax, result.batch_sizes)
    ax.set_ylabel("batch vs running statistics")
    ax.set_title(f"{label_for(norm)}, first layer, after training", fontsize=10)
    ax.legend(fontsize=8)
    return ax


def plot_orders(
    shuffled: SweepResult,
    sorted_: SweepResult,
    batch_size: int,
    *,
    shuffled_batch_size: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Eval-mode test accuracy with shuffled batches of ``shuffled_batch_size`` (default: the same
    ``batch_size``) and with class-sorted batches of ``batch_size``, per norm (bars: mean over seeds;
    whiskers: min to max)."""
    valid.check_type("shuffled", shuffled, SweepResult, "a SweepResult")
    valid.check_type("sorted_", sorted_, SweepResult, "a SweepResult")
    other = batch_size if shuffled_batch_size is None else shuffled_batch_size
    norms = [n for n in shuffled.norms if n in sorted_.norms]
    ax = _new_ax(ax)
    x = np.arange(len(norms))
    for offset, (result, size, label, hatch) in zip(
        (-0.2, 0.2),
        (
            (shuffled, other, f"shuffled batches of {other}", ""),
            (sorted_, batch_size, f"class-sorted batches of {batch_size}", "//"),
        ),
        strict=True,
    ):
        values = [100 * result.values(n, size) for n in norms]
        means = np.array([v.mean() for v in values])
        errors = np.array([[m - v.min(), v.max() - m] for m, v in zip(means, values, strict=True)]).T
        ax.bar(
            x + offset,
            means,
            width=0.38,
            yerr=errors,
            capsize=3,
            label=label,
            hatch=hatch,
            color=[color_for(n) for n in norms],
            alpha=0.85 if not hatch else 0.45,
            edgecolor=OUTLINE,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([label_for(n) for n in norms])
    ax.set_ylabel("test accuracy (%), eval mode")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"Batches of {batch_size}: random vs class-sorted"
        if other == batch_size
        else f"Random batches of {other} vs class-sorted batches of {batch_size}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower left")
    return ax


EXPLORER_MODES: dict[str, Metric] = {"eval mode": "eval_acc", "train mode": "train_mode_acc"}


def batch_size_figure(result: SweepResult, batch_size: int, mode: str) -> Figure:
    """Test accuracy against batch size for every norm of a precomputed :class:`SweepResult`
    (``mode``: "eval mode", running statistics; "train mode", batch statistics), with one batch
    size marked and each norm's accuracy there (mean ± std over seeds) in the title."""
    if mode not in EXPLORER_MODES:
        raise ValueError(f"mode must be one of {list(EXPLORER_MODES)}, got {mode!r}")
    metric = EXPLORER_MODES[mode]
    fig, ax = plt.subplots(figsize=figsize("frame"))
    plot_error_vs_batch_size(result, ax=ax, norms=list(result.norms), metric=metric)
    ax.axvline(batch_size, color=GUIDE, linestyle="--", linewidth=1)
    accuracies = "; ".join(f"{label_for(n)} {result.estimate(n, batch_size, metric).format()}%" for n in result.norms)
    ax.set_title(f"batch {batch_size} ({mode}): {accuracies}", fontsize=8, wrap=True)
    return fig


def explorer(result: SweepResult, *, live: bool = True) -> interactive | FrameExplorer:
    """Batch size and mode (eval: running statistics; train: batch statistics) over a precomputed
    :class:`SweepResult`: every norm's accuracy against batch size, one batch size marked and read
    out; no training, so each redraw takes well under a second. ``live=False``: the kernel-free
    version for the book."""
    valid.check_type("result", result, SweepResult, "a SweepResult")
    controls: dict[str, Sequence[object]] = {"batch size": list(result.batch_sizes), "mode": list(EXPLORER_MODES)}

    def draw(batch_size: int, mode: str) -> Figure:
        return batch_size_figure(result, batch_size, mode)

    if live:
        return live_explorer(draw, controls)
    return frame_explorer(draw, controls, title="test accuracy against batch size: batch size and mode")


# ---------------------------------------------------------------------------------------------
# The fully connected contrast: one value per unit and example


FC_NORMS = ("batch", "layer", "none")


@torch.no_grad()
def _stacked_mlp_results(
    stack: StackedMLP, data: Dataset, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per model of ``stack`` (a trained :class:`bn_utils.stacked.StackedMLP`): whether each test
    example is classified correctly in eval mode, the same after recomputing the batch norms' running
    statistics over the training inputs, the eval-mode accuracy on the training inputs, and the
    train-mode test accuracy (test batches of ``batch_size``, batch statistics; chunks as
    :func:`_chunks`). The stack's buffers and mode are left as they were."""
    from ..stacked import set_running_statistics

    was_training, saved = stack.training, {key: value.clone() for key, value in stack.buffers.items()}

    def correct(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return (stack(x).argmax(dim=2) == y).cpu().numpy()

    try:
        stack.eval()
        eval_correct, train_acc = correct(data.x_test, data.y_test), correct(data.x_train, data.y_train).mean(1)
        stack.train()
        hits = np.zeros(len(stack))
        for start, end, first in _chunks(len(data.x_test), batch_size):
            hits += correct(data.x_test[start:end], data.y_test[start:end])[:, first - start :].sum(1)
        stack.buffers.update({key: value.clone() for key, value in saved.items()})
        set_running_statistics(stack, data.x_train)
        stack.eval()
        recomputed = correct(data.x_test, data.y_test)
    finally:
        stack.buffers.update(saved)
        stack.train(was_training)
    return eval_correct, recomputed, train_acc, hits / len(data.x_test)


@remembered("experiments.batch_size")
def fully_connected_sweep(
    data: Dataset,
    *,
    seeds: Sequence[int],
    norms: Sequence[str] = FC_NORMS,
    batch_sizes: Sequence[int] = (2, 32),
    depth: int = 2,
    width: int = 64,
    epochs: int | None = None,
    train_examples: int | None = None,
    base_lr: float | None = None,
    ghost_batch_size: int | None = None,
) -> SweepResult:
    """The sweep's schedule (epochs, training images, SGD with momentum at :func:`scaled_lr`) on a
    fully connected ``make_mlp(64, 10, depth, width, norm)`` over flat digits, where BN has one
    value per unit and example (at batch 2 every normalized value is -1 or +1), trained with
    :func:`bn_utils.stacked.train_stacked`. Measured: eval-mode accuracy on the test and on the
    training images, train-mode test accuracy (test batches of the training batch size, batch
    statistics), and eval-mode test accuracy with the running statistics recomputed over the
    training images (``recomputed_acc``; equal to ``eval_acc`` without batch norm); the statistics
    gaps are NaN. ``batch_ghost`` normalizes in ghost batches of ``ghost_batch_size``."""
    from ..models import make_mlp
    from ..stacked import train_stacked

    check_dataset("data", data)
    if data.x_train.dim() != 2:
        raise ValueError(f"fully_connected_sweep needs flat inputs (N, features), e.g. load_digits(), got {data!r}")
    seeds = valid.check_seeds("seeds", seeds)
    norms = valid.check_values("norms", norms, lambda n, v: valid.check_type(n, v, str, "a norm name"), distinct=True)
    for norm in norms:
        # the norms an MLP stack holds, and ghost batch norm, which this sweep stacks itself
        stackable = (
            *norm_registry.names(lambda spec: spec.mlp_stacking is not None and not spec.example_options),
            "batch_ghost",
        )
        if norm not in stackable:
            raise ValueError(
                f"fully_connected_sweep trains the norms an MLP stack holds ({', '.join(stackable)}), got {norm!r}"
            )
    epochs = SETUP["epochs"] if epochs is None else valid.check_int("epochs", epochs)
    n_train = SETUP["train_examples"] if train_examples is None else train_examples
    n_train = valid.check_int("train_examples", n_train, 2, len(data.x_train))
    batch_sizes = valid.check_values("batch_sizes", batch_sizes, lambda n, v: valid.check_int(n, v, 2, n_train))
    ghost = _check_ghost(norms, batch_sizes, ghost_batch_size)
    subset = Dataset(
        data.name, data.x_train[:n_train], data.y_train[:n_train], data.x_test, data.y_test, data.num_classes
    )
    shape = (len(norms), len(batch_sizes), len(seeds))
    arrays = {key: np.full(shape, np.nan) for key in ("eval", "train", "train_mode", "recomputed")}
    diverged = np.full(shape, -1)
    eval_correct = np.zeros((*shape, len(data.x_test)), dtype=bool)
    recomputed_correct = np.zeros((*shape, len(data.x_test)), dtype=bool)
    lrs = tuple(scaled_lr(size, base_lr=base_lr) for size in batch_sizes)
    for j, size in enumerate(batch_sizes):
        total = epochs * (n_train // size)
        for i, norm in enumerate(norms):  # one stack per norm: train_stacked stacks one architecture
            models = []
            for seed in seeds:
                seed_everything(seed)
                models.append(
                    make_mlp(
                        subset.input_shape[0], 10, depth=depth, width=width, norm=norm, norm_kwargs=ghost.get(norm)
                    )
                )
            final: dict[int, tuple] = {}

            def on_step(
                stack: StackedMLP, step: int, final: dict[int, tuple] = final, size: int = size, total: int = total
            ) -> None:
                if step == total:
                    for slot, values in enumerate(zip(*_stacked_mlp_results(stack, subset, size), strict=True)):
                        final[stack.ids[slot]] = values

            histories = train_stacked(
                models,
                subset,
                lrs=[lrs[j]] * len(models),
                seeds=seeds,
                epochs=epochs,
                batch_size=size,
                momentum=SETUP["momentum"],
                eval_every=total,
                eval_train=False,
                on_step=on_step,
            )
            for s, history in enumerate(histories):
                diverged[i, j, s] = -1 if history.diverged_at is None else history.diverged_at
                if s in final:
                    eval_correct[i, j, s], recomputed_correct[i, j, s] = final[s][0], final[s][1]
                    arrays["eval"][i, j, s] = final[s][0].mean()
                    arrays["recomputed"][i, j, s] = final[s][1].mean()
                    arrays["train"][i, j, s], arrays["train_mode"][i, j, s] = final[s][2], final[s][3]
    nan = np.full(shape, np.nan)
    return SweepResult(
        norms=tuple(norms),
        batch_sizes=tuple(batch_sizes),
        seeds=tuple(seeds),
        order="shuffled",
        eval_acc=arrays["eval"],
        train_mode_acc=arrays["train_mode"],
        train_acc=arrays["train"],
        diverged_at=diverged,
        stat_gap_mean=nan,
        stat_gap_log_std=nan,
        lrs=lrs,
        epochs=epochs,
        train_examples=n_train,
        config=dict(SETUP, architecture=f"MLP {depth} x {width}", ghost_batch_size=ghost_batch_size),
        recomputed_acc=arrays["recomputed"],
        eval_correct=eval_correct,
        recomputed_correct=recomputed_correct,
    )


def plot_why(result: SweepResult) -> Figure:
    """Two panels: train-mode minus eval-mode accuracy (:func:`plot_mode_gap`) and the gap between
    batch and running statistics (:func:`plot_statistics_gap`), against batch size."""
    import matplotlib.pyplot as plt

    valid.check_type("result", result, SweepResult, "a SweepResult")
    fig, (left, right) = plt.subplots(1, 2, figsize=figsize("pair_high"))
    plot_mode_gap(result, ax=left, norms=[n for n in result.norms if n in ("batch", "batch_renorm", "group")])
    plot_statistics_gap(result, ax=right)
    fig.tight_layout()
    return fig
