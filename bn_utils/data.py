"""Offline data sets as tensors, and seeded mini-batching.

Nothing is downloaded: scikit-learn's bundled handwritten digits (1,797 real 8x8 images),
MNIST-1D generated procedurally by the ``mnist1d`` package (5,000 sequences of length 40), and
synthetic sets generated from a seed.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import _validate as valid

__all__ = [
    "Dataset",
    "check_dataset",
    "load_digits",
    "load_mnist1d",
    "make_spirals",
    "batch_indices",
    "iterate_batches",
]


@dataclass(frozen=True)
class Dataset:
    """A train/test split held as tensors; inputs are standardized with training statistics.

    ``x_val``/``y_val`` (None unless :meth:`with_validation` made them) is a validation set held
    out of the training data, on which hyperparameters are chosen instead of the test set.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self) -> None:
        valid.check_int("num_classes", self.num_classes)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            valid.check_type(f"x_{split}", x, torch.Tensor, "a torch.Tensor")
            valid.check_type(f"y_{split}", y, torch.Tensor, "a torch.Tensor")
            if not x.is_floating_point() or x.dim() < 2:
                raise TypeError(
                    f"x_{split} must be a floating-point tensor of shape (N, ...), "
                    f"got {x.dtype} of shape {tuple(x.shape)}"
                )
            if y.dtype not in (torch.long, torch.uint8) or y.dim() != 1:
                raise TypeError(
                    f"y_{split} must be a 1-D tensor of class indices (torch.long), "
                    f"got {y.dtype} of shape {tuple(y.shape)}"
                )
            if len(x) != len(y) or len(x) == 0:
                raise ValueError(
                    f"x_{split} and y_{split} must hold the same number (at least 1) of examples, "
                    f"got {len(x)} and {len(y)}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"train and test examples must have the same shape, got {tuple(self.x_train.shape[1:])} "
                f"and {tuple(self.x_test.shape[1:])}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (64,) for flat digits or (1, 8, 8) for images."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on another device."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            x_val=None if self.x_val is None else self.x_val.to(device),
            y_val=None if self.y_val is None else self.y_val.to(device),
        )

    @property
    def has_validation(self) -> bool:
        """True when a validation set was held out (see :meth:`with_validation`)."""
        return self.x_val is not None

    def with_validation(self, fraction: float = 0.2, seed: int = 0) -> Dataset:
        """The same data with a seeded ``fraction`` of the training examples moved into a
        validation set (``x_val``, ``y_val``); the test set is unchanged. Inputs keep the
        standardization of the full training set (no test or label information enters it)."""
        if self.has_validation:
            raise ValueError("this dataset already holds a validation set")
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        n_val = int(round(fraction * len(self.x_train)))
        if not 0 < n_val < len(self.x_train):
            raise ValueError(f"fraction {fraction} of {len(self.x_train)} training examples leaves an empty split")
        order = torch.as_tensor(np.random.default_rng(seed).permutation(len(self.x_train)))
        val, train = order[:n_val].to(self.x_train.device), order[n_val:].to(self.x_train.device)
        return replace(
            self,
            x_train=self.x_train[train],
            y_train=self.y_train[train],
            x_val=self.x_train[val],
            y_val=self.y_train[val],
        )

    def validation_view(self) -> Dataset:
        """The training set with the validation set in the place of the test set: what a trainer
        that evaluates on ``x_test`` should see while hyperparameters are being chosen."""
        if self.x_val is None or self.y_val is None:
            raise ValueError("no validation set: call with_validation() first")
        return replace(
            self, name=f"{self.name} (validation)", x_test=self.x_val, y_test=self.y_val, x_val=None, y_val=None
        )

    def __repr__(self) -> str:
        val = "" if self.x_val is None else f" / {len(self.x_val)} validation"
        return (
            f"Dataset({self.name!r}: {len(self.x_train)} train{val} / {len(self.x_test)} test, "
            f"input shape {self.input_shape}, {self.num_classes} classes)"
        )


def check_dataset(name: str, value: object) -> None:
    """A :class:`Dataset`; a ``TypeError`` naming ``name`` otherwise (the check every experiment's
    entry point makes; it lives beside the class so that the argument checks import nothing)."""
    valid.check_type(name, value, Dataset, "a bn_utils Dataset (e.g. from load_digits or make_spirals)")


def _split_and_standardize(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    test_fraction: float,
    seed: int,
    dtype: torch.dtype,
) -> Dataset:
    """Seeded shuffle into train/test; standardize each feature with the training mean/std."""
    valid.check_number("test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
    valid.check_seed("seed", seed)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. torch.float32), got {dtype!r}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    mean = x[train].mean(axis=0)
    std = x[train].std(axis=0)
    std[std == 0] = 1.0  # constant features (e.g. always-blank corner pixels) stay at 0
    x = (x - mean) / std
    return Dataset(
        name,
        x_train=torch.tensor(x[train], dtype=dtype),
        y_train=torch.tensor(y[train], dtype=torch.long),
        x_test=torch.tensor(x[test], dtype=dtype),
        y_test=torch.tensor(y[test], dtype=torch.long),
        num_classes=num_classes,
    )


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``load_digits()`` reads them (``data`` as float64, ``target`` as int),
    read from the file scikit-learn bundles without importing scikit-learn: the import alone takes
    about a second, more than a notebook spends on anything but training and plotting. Where the
    file is not found (another layout of the package), from scikit-learn itself."""
    import gzip
    from importlib.util import find_spec

    spec = find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():  # what sklearn.datasets.load_gzip_compressed_csv_data does
            with gzip.open(path, mode="rt", encoding="utf-8") as file:
                table = np.loadtxt(file, delimiter=",")
            return table[:, :-1], table[:, -1].astype(int, copy=False)
    from sklearn.datasets import load_digits as _sklearn_digits

    bunch = _sklearn_digits()
    return bunch.data.astype(np.float64), bunch.target


def load_digits(
    *, test_fraction: float = 0.25, seed: int = 0, images: bool = False, dtype: torch.dtype = torch.float32
) -> Dataset:
    """scikit-learn's handwritten digits (bundled, no download), split and standardized.

    ``images=False`` gives flat vectors (N, 64) for MLPs; ``images=True`` gives (N, 1, 8, 8)
    for conv nets. The split depends only on ``seed``.
    """
    pixels, target = _digits_arrays()
    data = _split_and_standardize("digits", pixels, target, 10, test_fraction, seed, dtype)
    if images:
        data = replace(
            data,
            x_train=data.x_train.reshape(-1, 1, 8, 8),
            x_test=data.x_test.reshape(-1, 1, 8, 8),
        )
    return data


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of MNIST-1D as the ``mnist1d`` package generates it with
    its default arguments (the published data set), read-only and cached: generating it takes
    about 1.5 s. ``make_dataset`` seeds NumPy's and Python's global generators (seed 42); their
    states are restored afterwards, so loading the data does not change any later random draw."""
    from mnist1d.data import get_dataset_args, make_dataset  # never get_dataset: it downloads

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    arrays = (raw["x"], raw["y"], raw["x_test"], raw["y_test"])
    for array in arrays:
        array.setflags(write=False)
    return arrays


def load_mnist1d(*, sequences: bool = False, dtype: torch.dtype = torch.float32) -> Dataset:
    """MNIST-1D (Greydanus & Kobak, 2024): 4,000 training and 1,000 test sequences of length 40,
    one of ten digit-like templates each, padded, shifted, sheared, scaled and noised. Generated
    offline by the ``mnist1d`` package's ``make_dataset`` with its default arguments, which
    reproduces the published data set exactly; the split is the package's (the first 4,000).

    The package centres and scales all sequences with one mean and one standard deviation; here
    they are recomputed on the training sequences alone (a change of about 0.3%). One scale for
    all 40 positions, not one per position as for the digits' pixels: a conv net slides the same
    filter along the sequence. ``sequences=False`` gives flat vectors (N, 40) for MLPs;
    ``sequences=True`` gives (N, 1, 40) for 1-D conv nets (:func:`bn_utils.models.make_convnet1d`).
    A validation set is held out as for the digits, with :meth:`Dataset.with_validation`."""
    valid.check_type("sequences", sequences, bool, "True or False")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. torch.float32), got {dtype!r}")
    x_train, y_train, x_test, y_test = _mnist1d_arrays()
    mean, std = float(x_train.mean()), float(x_train.std())
    shape = (-1, 1, x_train.shape[1]) if sequences else (-1, x_train.shape[1])
    return Dataset(
        "MNIST-1D",
        x_train=torch.tensor((x_train - mean) / std, dtype=dtype).reshape(shape),
        y_train=torch.tensor(y_train, dtype=torch.long),
        x_test=torch.tensor((x_test - mean) / std, dtype=dtype).reshape(shape),
        y_test=torch.tensor(y_test, dtype=torch.long),
        num_classes=10,
    )


def make_spirals(
    *,
    num_classes: int = 3,
    points_per_class: int = 300,
    noise: float = 0.2,
    test_fraction: float = 0.25,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Interleaved 2-D spirals, one arm per class: a small nonlinear problem with a known answer."""
    valid.check_int("num_classes", num_classes, None)
    valid.check_int("points_per_class", points_per_class, None)
    valid.check_number("noise", noise, 0)
    if num_classes < 2 or points_per_class < 2:
        raise ValueError(f"need num_classes >= 2 and points_per_class >= 2, got {num_classes} and {points_per_class}")
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, points_per_class), num_classes)
    label = np.repeat(np.arange(num_classes), points_per_class)
    angle = 4.0 * radius + label * 2 * np.pi / num_classes + rng.normal(0, noise, len(label))
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return _split_and_standardize("spirals", x, label, num_classes, test_fraction, seed, dtype)


def batch_indices(
    num_examples: int, batch_size: int, *, seed: int, epoch: int = 0, drop_last: bool = True
) -> list[torch.Tensor]:
    """A seeded random partition of range(num_examples) into mini-batches of indices.

    The same (seed, epoch) gives the same batches on any machine (a CPU generator).
    ``drop_last`` drops a short final batch, which could hold a single example: batch norm
    cannot train on a batch of one.
    """
    num_examples = valid.check_int("num_examples", num_examples, 0)
    batch_size = valid.check_int("batch_size", batch_size, None)
    seed, epoch = valid.check_seed("seed", seed), valid.check_int("epoch", epoch, 0)
    if batch_size < 1 or batch_size > num_examples:
        raise ValueError(f"batch_size must be between 1 and the number of examples ({num_examples}), got {batch_size}")
    generator = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    order = torch.randperm(num_examples, generator=generator)
    batches = list(order.split(batch_size))
    if drop_last and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def iterate_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int, epoch: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, labels) mini-batches in the order given by :func:`batch_indices`."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    valid.check_type("y", y, torch.Tensor, "a torch.Tensor")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    for idx in batch_indices(len(x), batch_size, seed=seed, epoch=epoch):
        idx = idx.to(x.device)
        yield x[idx], y[idx]
