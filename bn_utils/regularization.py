"""Batch statistics as noise, and whether that noise regularizes: the experiments of the chapter
"Regularization noise".

In training mode BN normalizes each example with the mean and variance of its mini-batch, so the
same example comes out differently depending on which others share its batch.
:func:`batch_noise` measures how much, as a function of the batch size. :func:`regularization_study`
trains the same network with batch statistics of different noise levels (ghost batches, Hoffer et
al. 2017) and with normalizations that use no batch statistics at all (layer norm, group norm), and
compares how well each generalizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import _validate as valid
from .data import Dataset
from .models import NORM_LAYERS, make_mlp
from .stacked import train_stacked
from .training import History, get_device, seed_everything

__all__ = [
    "first_layer_inputs",
    "normalized_in_random_batches",
    "batch_noise",
    "REGULARIZERS",
    "RegularizationResult",
    "regularization_study",
]


@torch.no_grad()
def first_layer_inputs(data: Dataset, *, width: int = 100, seed: int = 0) -> torch.Tensor:
    """(N, width) float64: the training set through a He-initialised linear layer of ``width``
    units, i.e. what a first BN layer normalizes. The weights come from their own generator
    seeded with ``seed``; the global random state is left alone."""
    valid.check_dataset("data", data)
    valid.check_int("width", width)
    valid.check_seed("seed", seed)
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(width, data.input_shape[0], dtype=torch.float64, generator=generator)
    weight *= math.sqrt(2 / data.input_shape[0])
    return data.x_train.double().flatten(1).cpu() @ weight.T


@torch.no_grad()
def normalized_in_random_batches(
    fixed: torch.Tensor,
    pool: torch.Tensor,
    batch_size: int,
    *,
    draws: int,
    generator: torch.Generator,
    eps: float = 1e-5,
) -> torch.Tensor:
    """(draws, examples, units): each row of ``fixed`` batch-normalized (training mode, no affine)
    together with ``batch_size - 1`` rows of ``pool`` drawn at random; the same others for every
    fixed example within a draw."""
    valid.check_type("fixed", fixed, torch.Tensor, "a torch.Tensor")
    valid.check_type("pool", pool, torch.Tensor, "a torch.Tensor")
    if fixed.dim() != 2 or pool.dim() != 2 or fixed.shape[1] != pool.shape[1]:
        raise ValueError(
            f"fixed and pool must be (examples, units) tensors with the same units, got shapes "
            f"{tuple(fixed.shape)} and {tuple(pool.shape)}"
        )
    valid.check_int("batch_size", batch_size, None)
    valid.check_int("draws", draws)
    valid.check_type("generator", generator, torch.Generator, "a torch.Generator")
    valid.check_number("eps", eps, 0)
    if not 2 <= batch_size <= len(pool) + 1:
        raise ValueError(f"batch_size must be between 2 and {len(pool) + 1}, got {batch_size}")
    out = torch.empty(draws, *fixed.shape, dtype=fixed.dtype)
    for d in range(draws):
        others = pool[torch.randperm(len(pool), generator=generator)[: batch_size - 1]]
        mean = (others.sum(0) + fixed) / batch_size
        var = ((others**2).sum(0) + fixed**2) / batch_size - mean**2
        out[d] = (fixed - mean) / torch.sqrt(var + eps)
    return out


def batch_noise(
    data: Dataset, batch_sizes: Sequence[int], *, draws: int = 200, examples: int = 32, width: int = 100, seed: int = 0
) -> dict[int, float]:
    """How much BN's output for a fixed example depends on the company it keeps.

    The inputs of a first BN layer (:func:`first_layer_inputs`) are normalized in batches made of
    one of ``examples`` fixed examples and ``batch_size - 1`` others drawn at random, ``draws``
    times. Returns, per batch size, the standard deviation over draws of the fixed example's
    normalized value, averaged over examples and units: 0 would mean no noise; for Gaussian
    inputs it is close to sqrt(1.5 / batch_size).
    """
    valid.check_dataset("data", data)
    batch_sizes = valid.check_values("batch_sizes", batch_sizes, valid.check_int)
    valid.check_int("draws", draws)
    valid.check_int("examples", examples, 1, len(data.x_train) - 1)
    z = first_layer_inputs(data, width=width, seed=seed)
    fixed, pool = z[:examples], z[examples:]
    generator = torch.Generator().manual_seed(seed)
    return {
        size: normalized_in_random_batches(fixed, pool, size, draws=draws, generator=generator).std(dim=0).mean().item()
        for size in batch_sizes
    }


# label -> (norm, norm_kwargs): the normalizations the chapter compares, from the noisiest batch
# statistics to none at all.
REGULARIZERS: dict[str, tuple[str, dict]] = {
    "no norm": ("none", {}),
    "BN, ghost batches of 8": ("batch_ghost", {"ghost_batch_size": 8}),
    "BN, batch of 128": ("batch", {}),
    "layer norm": ("layer", {}),
}


@dataclass
class RegularizationResult:
    """Histories per configuration (label -> one History per seed) and their final numbers;
    ``norms`` gives each configuration's norm name (for colours)."""

    histories: dict[str, list[History]]
    norms: dict[str, str] = field(default_factory=dict)

    def final(self, label: str, metric: str) -> np.ndarray:
        """Per seed, the final ``train_acc``, ``test_acc`` or ``test_loss``; or ``gap``:
        final train accuracy minus final test accuracy."""
        if label not in self.histories:
            raise ValueError(f"unknown configuration {label!r}; the study has: {', '.join(self.histories)}")
        if metric not in ("train_acc", "test_acc", "test_loss", "gap"):
            raise ValueError(f"unknown metric {metric!r}; valid names are: train_acc, test_acc, test_loss, gap")
        runs = self.histories[label]
        if metric == "gap":
            return np.array([h.train_acc[-1] - h.test_acc[-1] for h in runs])
        return np.array([getattr(h, metric)[-1] for h in runs])

    def table(self) -> dict[str, dict[str, float]]:
        """Median over seeds of train accuracy, test accuracy, gap and test loss, per configuration."""
        return {
            label: {m: float(np.median(self.final(label, m))) for m in ("train_acc", "test_acc", "gap", "test_loss")}
            for label in self.histories
        }


def regularization_study(
    data: Dataset,
    *,
    configs: Mapping[str, tuple[str, dict]] = REGULARIZERS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    epochs: int = 40,
    batch_size: int = 128,
    lr: float = 0.1,
    depth: int = 3,
    width: int = 100,
    train_examples: int | None = None,
) -> RegularizationResult:
    """Train a ``depth`` x ``width`` ReLU MLP with each configuration of ``configs`` (label ->
    (norm, norm_kwargs)), SGD at ``lr``, ``batch_size`` examples per step for ``epochs`` epochs,
    one run per seed (the seeds of a configuration train together, as one stacked network); train
    and test accuracy are measured every epoch. ``train_examples``
    keeps only the first that many training examples, to make overfitting easier to see."""
    valid.check_dataset("data", data)
    if not isinstance(configs, Mapping) or not configs:
        raise ValueError(f"configs must be a non-empty dict of label -> (norm, norm_kwargs), got {configs!r}")
    for label, config in configs.items():
        if not (isinstance(config, (tuple, list)) and len(config) == 2 and config[0] in NORM_LAYERS):
            raise ValueError(
                f"configs[{label!r}] must be (norm, norm_kwargs) with norm one of "
                f"{', '.join(sorted(NORM_LAYERS))}, got {config!r}"
            )
    seeds = valid.check_seeds("seeds", seeds)
    valid.check_int("epochs", epochs)
    valid.check_int("batch_size", batch_size)
    valid.check_number("lr", lr, 0, low_open=True)
    if train_examples is not None:
        valid.check_int("train_examples", train_examples, None)
        if not batch_size <= train_examples <= len(data.x_train):
            raise ValueError(
                f"train_examples must be between batch_size ({batch_size}) and "
                f"{len(data.x_train)}, got {train_examples}"
            )
        data = replace(data, x_train=data.x_train[:train_examples], y_train=data.y_train[:train_examples])
    if not seeds:
        raise ValueError("regularization_study needs at least one seed")
    device = get_device()
    data = data.to(device)
    histories = {}
    for label, (norm, norm_kwargs) in configs.items():  # the seeds of one configuration train as one stack
        models = []
        for seed in seeds:
            seed_everything(seed)
            models.append(
                make_mlp(
                    data.input_shape[0], data.num_classes, depth=depth, width=width, norm=norm, norm_kwargs=norm_kwargs
                ).to(device)
            )
        histories[label] = train_stacked(
            models, data, lrs=[lr] * len(seeds), seeds=seeds, epochs=epochs, batch_size=batch_size
        )
    return RegularizationResult(histories, norms={label: norm for label, (norm, _) in configs.items()})
