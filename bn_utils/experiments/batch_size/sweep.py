"""The batch-size sweep: the chapter's setting, the stacked conv nets it trains, what it measures
and its typed result (chapter 8, "Batch size").

- :data:`SETUP`, :func:`scaled_lr` and :func:`build_stack`: the conv net, the schedule and the
  seeds (and norms) of one configuration stacked as one network (:mod:`bn_utils.stacked_conv`);
- :func:`batch_size_sweep` -> :class:`SweepResult`: accuracy in eval and train mode, and the gap
  between batch and running statistics, against batch size, over seeds.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict, cast, get_args

import numpy as np
import torch
from torch import nn

from ... import _validate as valid
from ... import norms as norm_registry
from ...cache import remembered
from ...data import Dataset, check_dataset
from ...grid import Axis, LabelledGrid
from ...models import NORM_LAYERS, make_convnet, make_convnet1d
from ...stacked import recomputable_norms, recompute_running_statistics
from ...stacked_conv import (
    ORDERS,
    StackedConvNet,
    epoch_batches,
    repeat_inputs,
    slot_inputs,
    stacked_running_statistics,
    train_stacked_convnets,
)
from ...statistics import Estimate
from ...style import label_for
from ...training import get_device, seed_everything

__all__ = [
    "NORMS",
    "BATCH_SIZES",
    "SETUP",
    "scaled_lr",
    "build_stack",
    "Metric",
    "METRICS",
    "CorrectMetric",
    "SweepResult",
    "batch_size_sweep",
    "overlapping_chunks",
    "ghost_options",
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
        pred = stack(repeat_inputs(x, stack.slots)).argmax(dim=2)  # (N, slots)
    finally:
        stack.train(was)
    return (pred == y[:, None]).T.cpu().numpy()


def _accuracy_eval_mode(stack: StackedConvNet, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return _correct_eval_mode(stack, x, y).mean(1)


def overlapping_chunks(count: int, size: int) -> list[tuple[int, int, int]]:
    """(start, end, first counted) of consecutive chunks of ``size`` examples covering ``count``: every
    chunk has ``size`` examples (when ``count`` allows); the last one overlaps the one before it, and
    only the examples it adds are counted. So the train-mode accuracy at batch B (this sweep's and
    :func:`~bn_utils.experiments.batch_size.fully_connected_sweep`'s) is measured with batch
    statistics of B examples only, never of a smaller remainder.

    Chapter 1's :func:`bn_utils.experiments.inference.accuracy_in_mode` chunks differently on
    purpose: disjoint chunks with a smaller last one (a lone last example joining the chunk before),
    as a loader feeds a model whose ``eval()`` was forgotten. The two agree only where ``size``
    divides ``count`` (or is at least ``count``): on the 449 test digits, for no batch size from 2
    to 128 (the last chunk differs), so they are kept apart, each chapter's numbers as measured."""
    chunks = []
    for start in range(0, count, size):
        end = min(start + size, count)
        chunks.append((max(0, end - size), end, start))
    return chunks


@torch.no_grad()
def _accuracy_train_mode(stack: StackedConvNet, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> np.ndarray:
    """Predict in chunks of ``batch_size`` in training mode (batch statistics), on a copy; every chunk
    has ``batch_size`` examples, the last one overlapping the chunk before it (see :func:`overlapping_chunks`)."""
    probe = copy.deepcopy(stack).train()
    correct = torch.zeros(stack.slots, dtype=torch.float64)
    for start, end, first in overlapping_chunks(len(x), batch_size):
        pred = probe(repeat_inputs(x[start:end], stack.slots)).argmax(dim=2)[first - start :]
        correct += (pred == y[first:end, None]).double().sum(0).cpu()
    return (correct / len(x)).numpy()


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
    running_mean, running_var, eps = stacked_running_statistics(stack.norm(0), channels)
    sigma = torch.sqrt(running_var + eps)
    per_seed = [epoch_batches(data.y_train, batch_size, seed=s, epoch=0)[:batches] for s in seeds]
    idx_all = torch.stack([torch.stack(b) for b in per_seed], dim=1).to(data.x_train.device)
    per_slot = channels // stack.slots
    d_sq = torch.zeros(stack.slots, dtype=torch.float64)
    log_r_sq = torch.zeros(stack.slots, dtype=torch.float64)
    for idx in idx_all:
        pre = conv(slot_inputs(data.x_train, idx))
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


@remembered("experiments.batch_size.sweep")
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
    ghost = ghost_options(norms, batch_sizes, ghost_batch_size)
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
        # the norms that keep running statistics (the registry says which), where the stack holds
        # one whose statistics recompute_running_statistics replaces (a batch norm: not batch
        # renorm, which recomputable_norms never lists)
        keeps_running = any(norm_registry.get(norm).running_statistics for norm in norms)
        if keeps_running and recomputable_norms(stack):
            refreshed = recompute_running_statistics(copy.deepcopy(stack), repeat_inputs(subset.x_train, stack.slots))
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


def ghost_options(norms: Sequence[str], batch_sizes: Sequence[int], ghost_batch_size: int | None) -> dict[str, dict]:
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
