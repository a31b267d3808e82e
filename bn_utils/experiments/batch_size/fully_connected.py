"""The fully connected contrast of chapter 8: the sweep's schedule on an MLP over flat digits,
where batch norm has one value per unit and example (at batch 2 every normalized value is -1 or +1),
trained as stacked MLPs (:func:`bn_utils.stacked.train_stacked`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ... import _validate as valid
from ... import norms as norm_registry
from ...cache import remembered
from ...data import Dataset, check_dataset
from ...models import make_mlp
from ...stacked import StackedMLP, recomputable_norms, recompute_running_statistics, train_stacked
from ...training import seed_everything
from .sweep import SETUP, SweepResult, ghost_options, overlapping_chunks, scaled_lr

__all__ = ["FC_NORMS", "fully_connected_sweep"]

FC_NORMS = ("batch", "layer", "none")
# The norms this sweep can train: those an MLP stack holds (the registry's ``mlp_stacking``), in
# registration order, those stacked in ghost batches last (the sweep gives them their ghost batch size,
# ghost_options, instead of the registry's example_options).
_STACKABLE = tuple(
    sorted(
        norm_registry.names(lambda spec: spec.mlp_stacking is not None),
        key=lambda name: norm_registry.NORMS[name].mlp_stacking == "ghost",
    )
)


@torch.no_grad()
def _stacked_mlp_results(
    stack: StackedMLP, data: Dataset, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per model of ``stack`` (a trained :class:`bn_utils.stacked.StackedMLP`): whether each test
    example is classified correctly in eval mode, the same after recomputing the batch norms' running
    statistics over the training inputs, the eval-mode accuracy on the training inputs, and the
    train-mode test accuracy (test batches of ``batch_size``, batch statistics; chunks as
    :func:`overlapping_chunks`). The stack's buffers and mode are left as they were."""
    was_training, saved = stack.training, {key: value.clone() for key, value in stack.buffers.items()}

    def correct(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return (stack(x).argmax(dim=2) == y).cpu().numpy()

    try:
        stack.eval()
        eval_correct, train_acc = correct(data.x_test, data.y_test), correct(data.x_train, data.y_train).mean(1)
        stack.train()
        hits = np.zeros(len(stack))
        for start, end, first in overlapping_chunks(len(data.x_test), batch_size):
            hits += correct(data.x_test[start:end], data.y_test[start:end])[:, first - start :].sum(1)
        stack.buffers.update({key: value.clone() for key, value in saved.items()})
        if recomputable_norms(stack):  # layer norm and no norm keep no statistics: eval mode as it was
            recompute_running_statistics(stack, data.x_train)
        stack.eval()
        recomputed = correct(data.x_test, data.y_test)
    finally:
        stack.buffers.update(saved)
        stack.train(was_training)
    return eval_correct, recomputed, train_acc, hits / len(data.x_test)


@remembered("experiments.batch_size.fully_connected")
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
    check_dataset("data", data)
    if data.x_train.dim() != 2:
        raise ValueError(f"fully_connected_sweep needs flat inputs (N, features), e.g. load_digits(), got {data!r}")
    seeds = valid.check_seeds("seeds", seeds)
    norms = valid.check_values("norms", norms, lambda n, v: valid.check_type(n, v, str, "a norm name"), distinct=True)
    for norm in norms:
        if norm not in _STACKABLE:
            raise ValueError(
                f"fully_connected_sweep trains the norms an MLP stack holds ({', '.join(_STACKABLE)}), got {norm!r}"
            )
    epochs = SETUP["epochs"] if epochs is None else valid.check_int("epochs", epochs)
    n_train = SETUP["train_examples"] if train_examples is None else train_examples
    n_train = valid.check_int("train_examples", n_train, 2, len(data.x_train))
    batch_sizes = valid.check_values("batch_sizes", batch_sizes, lambda n, v: valid.check_int(n, v, 2, n_train))
    ghost = ghost_options(norms, batch_sizes, ghost_batch_size)
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
