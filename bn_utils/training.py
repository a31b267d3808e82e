"""Training loop, device choice and multi-seed runs (``History``, ``stack_metric`` and
``seed_everything`` live in :mod:`bn_utils.history` and :mod:`bn_utils.seeding`, and are
re-exported here).

``train`` returns a :class:`History` instead of printing: notebooks plot it, tests assert
on it. A run whose loss becomes NaN or infinite is stopped and recorded as diverged, not
raised, because "this learning rate diverges" is a result the course reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from . import _validate as valid
from .cache import remembered
from .data import Dataset, check_dataset, iterate_batches
from .devices import get_device
from .history import History, stack_metric
from .seeding import seed_everything

__all__ = [
    "seed_everything",
    "get_device",
    "History",
    "train",
    "evaluate",
    "loss_and_gradients",
    "run_seeds",
    "stack_metric",
]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` in eval mode; restores its previous mode."""
    valid.check_module("model", model)
    valid.check_inputs_and_labels(x, y)
    valid.check_int("batch_size", batch_size)
    was_training = model.training
    model.eval()
    correct, total_loss = 0, 0.0
    try:
        with valid.explain_input_mismatch(model, x):
            for start in range(0, len(x), batch_size):
                logits = model(x[start : start + batch_size])
                target = y[start : start + batch_size]
                total_loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
                correct += (logits.argmax(dim=1) == target).sum().item()
    finally:
        model.train(was_training)
    return correct / len(x), total_loss / len(x)


def loss_and_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: Sequence[torch.Tensor], noise_seed: int = 0
) -> tuple[float, list[torch.Tensor]]:
    """Mini-batch cross-entropy of ``model`` (in its current mode) and its gradients with
    respect to ``params``, without touching ``.grad``. The forward pass draws its random
    numbers (noisy BN) from ``noise_seed`` in a forked generator, so two calls see the same
    noise and the global random stream is left as it was."""
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(noise_seed)
        with valid.explain_input_mismatch(model, x):
            loss = nn.functional.cross_entropy(model(x), y)
    return loss.item(), list(torch.autograd.grad(loss, list(params)))


def _make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid names are: adam, sgd")


def train(
    model: nn.Module,
    data: Dataset,
    *,
    lr: float,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    eval_every: int | None = None,
    on_step: Callable[[nn.Module, int], None] | None = None,
    progress: bool = False,
) -> History:
    """Train ``model`` on ``data`` with mini-batch cross-entropy; return its :class:`History`.

    Give either ``epochs`` or ``steps``. Batches come from :func:`bn_utils.data.iterate_batches`
    with ``seed``, so the same seed sees the same batches. ``eval_every`` (default: once per
    epoch) sets how often train/test accuracy is measured. ``on_step(model, step)`` runs
    after every optimisation step (probes use it). The model must already be on the data's
    device.
    """
    valid.check_module("model", model)
    check_dataset("data", data)
    valid.check_number("lr", lr, 0, low_open=True)
    total = valid.check_schedule(epochs, steps, batch_size, len(data.x_train), eval_every)
    valid.check_optimizer(optimizer, momentum, weight_decay)
    valid.check_seed("seed", seed)
    valid.check_callable("on_step", on_step)
    valid.check_model_fits(model, data.x_train)
    steps_per_epoch = len(data.x_train) // batch_size
    eval_every = eval_every or steps_per_epoch
    opt = _make_optimizer(optimizer, model.parameters(), lr, momentum, weight_decay)
    history = History(
        steps_per_epoch=steps_per_epoch,
        config=dict(
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,
            momentum=momentum,
            weight_decay=weight_decay,
            seed=seed,
            steps=total,
        ),
    )

    def record(step: int) -> None:
        train_acc, _ = evaluate(model, data.x_train, data.y_train)
        test_acc, test_loss = evaluate(model, data.x_test, data.y_test)
        history.eval_steps.append(step)
        history.train_acc.append(train_acc)
        history.test_acc.append(test_acc)
        history.test_loss.append(test_loss)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"lr={lr:g}", leave=False)
    start_time = time.perf_counter()
    model.train()
    record(0)
    step, epoch = 0, 0
    while step < total and not history.diverged:
        for inputs, labels in iterate_batches(data.x_train, data.y_train, batch_size, seed=seed, epoch=epoch):
            loss = nn.functional.cross_entropy(model(inputs), labels)
            value = loss.item()
            if not math.isfinite(value):
                history.diverged_at = step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            history.loss.append(value)
            if on_step is not None:
                on_step(model, step)
            if bar is not None:
                bar.update()
            if step % eval_every == 0 or step == total:
                record(step)
            if step == total:
                break
        epoch += 1
    history.wall_time = time.perf_counter() - start_time
    if bar is not None:
        bar.close()
    return history


@remembered("training")
def run_seeds(
    build_model: Callable[[], nn.Module],
    data: Dataset,
    seeds: Sequence[int],
    *,
    device: torch.device | str | None = None,
    progress: bool = False,
    on_trained: Callable[[nn.Module, History], None] | None = None,
    **train_kwargs: Any,
) -> list[History]:
    """Train a fresh model per seed and return the histories, one per seed.

    Before each run the seed is set with :func:`seed_everything`, so ``build_model()``
    draws its initial weights from that seed and ``train`` its batch order.
    ``on_trained(model, history)`` is called after each run, to measure the trained model.
    ``progress`` shows a bar over seeds and one over each run's steps.
    """
    valid.check_callable("build_model", build_model, optional=False)
    if isinstance(build_model, nn.Module):
        raise TypeError(
            "build_model must be a function that builds a fresh model for each seed, e.g. "
            f"lambda: make_mlp(64, 10), got the module {type(build_model).__name__} itself"
        )
    check_dataset("data", data)
    seeds = valid.check_seeds("seeds", seeds)
    valid.check_callable("on_trained", on_trained)
    if "seed" in train_kwargs:
        raise TypeError("run_seeds sets each run's seed from seeds; do not pass seed= as well")
    device = torch.device(device) if device is not None else get_device()
    data = data.to(device)
    histories = []
    iterator = seeds
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(seeds, desc="seeds", leave=False)
    for seed in iterator:
        seed_everything(seed)
        model = build_model()
        valid.check_type("build_model()", model, nn.Module, "a torch.nn.Module")
        model = model.to(device)
        history = train(model, data, seed=seed, progress=progress, **train_kwargs)
        if on_trained is not None:
            on_trained(model, history)
        histories.append(history)
    return histories
