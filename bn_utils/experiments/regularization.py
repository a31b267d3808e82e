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
from functools import partial
from typing import TYPE_CHECKING, Literal, get_args

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import _validate as valid
from ..cache import remembered
from ..data import Dataset, check_dataset
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..grid import Axis, LabelledGrid
from ..models import NORM_LAYERS, mlp_for
from ..stacked import keep_correct_at_end, train_stacked
from ..statistics import Estimate, accuracy_difference_interval
from ..style import FIGSIZE, GUIDE, ON_COLOR, color_for, plot_histories, series_color
from ..training import History, get_device

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "first_layer_inputs",
    "normalized_in_random_batches",
    "batch_noise",
    "Setting",
    "REGULARIZERS",
    "Network",
    "NETWORKS",
    "Metric",
    "METRICS",
    "ConfigMeans",
    "MeansTable",
    "RegularizationResult",
    "regularization_study",
    "validation_split",
    "SMALL_DATA",
    "DROPOUT",
    "WEIGHT_DECAY",
    "Regularizer",
    "EXPLICIT_REGULARIZERS",
    "REGULARIZER_LABELS",
    "config_name",
    "explicit_regularizers",
    "RegularizerGains",
    "regularizer_gains",
    "strength_grid",
    "plot_batch_noise",
    "plot_generalization",
    "plot_estimates",
    "plot_regularization",
    "plot_small_data",
    "batch_noise_explorer",
    "batch_noise_figure",
    "NOISE_EXPLORER_BATCH_SIZES",
]


@torch.no_grad()
def first_layer_inputs(data: Dataset, *, width: int = 100, seed: int = 0) -> torch.Tensor:
    """(N, width) float64: the training set through a He-initialised linear layer of ``width``
    units, i.e. what a first BN layer normalizes. The weights come from their own generator
    seeded with ``seed``; the global random state is left alone."""
    check_dataset("data", data)
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
    check_dataset("data", data)
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


@dataclass(frozen=True)
class Setting:
    """One configuration of :func:`regularization_study`: a normalization (``norm`` and its
    ``norm_kwargs``, as :func:`bn_utils.models.make_mlp` takes them) and the explicit
    regularizers: ``dropout`` after every hidden activation, ``weight_decay`` (L2, as
    ``torch.optim.SGD`` applies it). ``label`` is how figures and tables show it ("BN + dropout");
    the study keys it by a stable name ("bn_dropout"), and an empty label shows that name."""

    norm: str = "none"
    norm_kwargs: Mapping[str, object] = field(default_factory=dict)
    dropout: float = 0.0
    weight_decay: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")


# name -> Setting: the normalizations the chapter compares, from the noisiest batch statistics to none
# at all; each Setting carries the label that figures and tables show.
REGULARIZERS: dict[str, Setting] = {
    "no_norm": Setting("none", label="no norm"),
    "bn_ghost_8": Setting("batch_ghost", {"ghost_batch_size": 8}, label="BN, ghost batches of 8"),
    "bn_batch_128": Setting("batch", label="BN, batch of 128"),
    "layer_norm": Setting("layer", label="layer norm"),
}


def _as_setting(name: str, config: Setting | tuple[str, Mapping]) -> Setting:
    if isinstance(config, Setting):
        return config
    if isinstance(config, tuple) and len(config) == 2:
        return Setting(norm=config[0], norm_kwargs=dict(config[1]))
    raise ValueError(f"configuration {name!r} must be a Setting or a (norm, norm_kwargs) tuple, got {config!r}")


Metric = Literal["train_acc", "test_acc", "test_loss", "gap"]
"""What :meth:`RegularizationResult.final` reads at the end of each run: a final accuracy or loss,
or ``gap`` (final train minus final test accuracy). mypy checks a literal name; a wrong one at run
time is a ``ValueError`` naming these."""
METRICS: tuple[Metric, ...] = get_args(Metric)


def _final(h: History, metric: Metric) -> float:
    """One run's final ``metric``."""
    if metric == "gap":
        return h.train_acc[-1] - h.test_acc[-1]
    if metric == "train_acc":
        return h.train_acc[-1]
    if metric == "test_acc":
        return h.test_acc[-1]
    return h.test_loss[-1]


@dataclass(frozen=True)
class ConfigMeans:
    """One configuration's final numbers, each the mean over its seeds (:meth:`RegularizationResult.table`):
    train accuracy, test accuracy, their gap (train minus test) and test loss."""

    config: str
    train_acc: float
    test_acc: float
    gap: float
    test_loss: float


@dataclass(frozen=True)
class MeansTable(LabelledGrid):
    """:class:`ConfigMeans` per configuration, in the study's order, on one axis ``config``:
    :meth:`row` looks one up by name and names the configurations trained when asked for another."""

    rows: tuple[ConfigMeans, ...]

    def axes(self) -> dict[str, Axis]:
        return {"config": Axis("configuration", tuple(row.config for row in self.rows), "was not trained", "the study")}

    def row(self, name: str) -> ConfigMeans:
        """The means of configuration ``name``."""
        return self.rows[self.axis("config").index(name)]


@dataclass
class RegularizationResult(LabelledGrid):
    """Histories per configuration (name -> one History per seed) and their final numbers, on two
    axes: ``config``, the configurations' stable names ("bn_dropout"), and ``metric``
    (:data:`METRICS`). ``norms`` gives each configuration's norm name (for colours), ``labels`` its
    display label ("BN + dropout"; :meth:`label`). The seeds of every configuration are the same,
    in the same order, so differences can be taken seed by seed."""

    histories: dict[str, list[History]]
    norms: dict[str, str] = field(default_factory=dict)
    correct: dict[str, np.ndarray] | None = None  # name -> (seeds, test examples): right at the end?
    labels: dict[str, str] = field(default_factory=dict)  # name -> display label (missing: the name)

    def axes(self) -> dict[str, Axis]:
        return {
            "config": Axis("configuration", tuple(self.histories), "was not trained", "the study"),
            "metric": Axis("metric", METRICS, "is not measured", "the study"),
        }

    def _runs(self, name: str) -> list[History]:
        return self.histories[self.axis("config").check(name)]

    def label(self, name: str) -> str:
        """How figures and tables show configuration ``name`` (its Setting's label, else the name)."""
        return self.labels.get(self.axis("config").check(name)) or name

    def final(self, name: str, metric: Metric) -> np.ndarray:
        """Per seed, the final ``train_acc``, ``test_acc`` or ``test_loss``; or ``gap``:
        final train accuracy minus final test accuracy."""
        if metric not in self.axis("metric"):
            raise ValueError(f"unknown metric {metric!r}; valid names are: {', '.join(METRICS)}")
        return np.array([_final(h, metric) for h in self._runs(name)])

    def seeds(self, name: str) -> list[int]:
        """The seeds of a configuration's runs, in order."""
        return [int(h.config["seed"]) for h in self._runs(name)]

    def spread(self, name: str, metric: Metric = "test_acc") -> Estimate:
        """The final ``metric`` of a configuration over its seeds (see :meth:`final`)."""
        return Estimate(tuple(float(v) for v in self.final(name, metric)))

    def contrast(self, weights: Mapping[str, float], metric: Metric = "test_acc") -> Estimate:
        """Per seed, sum of ``weight * final(name, metric)`` over ``weights`` (name -> weight),
        taken seed by seed: e.g. {"a": 1, "b": -1} is a paired difference, and
        {"plain_dropout": 1, "plain": -1, "bn_dropout": -1, "bn": 1} how much more dropout helps the
        plain network than BN."""
        if not weights:
            raise ValueError("contrast needs at least one configuration")
        names = list(weights)
        seeds = self.seeds(names[0])
        for name in names[1:]:
            if self.seeds(name) != seeds:
                raise ValueError(
                    f"configurations {names[0]!r} and {name!r} ran different seeds "
                    f"({seeds} and {self.seeds(name)}); a paired contrast needs the same seeds"
                )
        total = np.sum([weight * self.final(name, metric) for name, weight in weights.items()], axis=0)
        return Estimate(tuple(float(v) for v in total))

    def difference(self, a: str, b: str, metric: Metric = "test_acc") -> Estimate:
        """``a`` minus ``b``, seed by seed (runs with the same seed share their batch order and,
        when the architectures allow, their initial weights)."""
        return self.contrast({a: 1.0, b: -1.0}, metric)

    def test_set_interval(self, weights: Mapping[str, float], *, confidence: float = 0.95) -> tuple[float, float]:
        """The test set's share of the uncertainty of :meth:`contrast`'s mean: a paired bootstrap over
        the test examples (the same examples for every configuration and seed) of the seed-mean
        contrast of test accuracy. Weights must be +1 or -1 with as many of each, as in a
        difference ``{a: 1, b: -1}`` or a difference of differences."""
        if self.correct is None:
            raise ValueError("this result kept no per-example correctness: run regularization_study to get it")
        if not weights or any(w not in (1, -1) for w in weights.values()):
            raise ValueError(f"test_set_interval takes weights of +1 and -1, got {dict(weights)}")
        plus = [name for name, w in weights.items() if w == 1]
        minus = [name for name, w in weights.items() if w == -1]
        if len(plus) != len(minus):
            raise ValueError(f"test_set_interval needs as many +1 as -1 weights, got {dict(weights)}")
        for name in weights:
            self._runs(name)
        # stacking k configurations' seeds averages them: the interval of (sum plus - sum minus) / k
        low, high = accuracy_difference_interval(
            np.concatenate([self.correct[name] for name in plus]),
            np.concatenate([self.correct[name] for name in minus]),
            confidence=confidence,
        )
        return len(plus) * low, len(plus) * high

    def fits_training_set(self, name: str) -> bool:
        """True when every seed of the configuration ends at 100% training accuracy: its
        "generalization gap" is then just its test error."""
        return bool(np.all(self.final(name, "train_acc") == 1.0))

    def table(self) -> MeansTable:
        """Mean over seeds of train accuracy, test accuracy, gap and test loss, one row per configuration."""

        def mean(name: str, metric: Metric) -> float:
            return float(np.mean(self.final(name, metric)))

        return MeansTable(
            tuple(
                ConfigMeans(
                    config=name,
                    train_acc=mean(name, "train_acc"),
                    test_acc=mean(name, "test_acc"),
                    gap=mean(name, "gap"),
                    test_loss=mean(name, "test_loss"),
                )
                for name in self.histories
            )
        )


@remembered("experiments.regularization")
def regularization_study(
    data: Dataset,
    *,
    configs: Mapping[str, Setting | tuple[str, dict]] = REGULARIZERS,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    epochs: int = 40,
    batch_size: int = 128,
    lr: float = 0.1,
    depth: int = 3,
    width: int = 100,
    train_examples: int | None = None,
    eval_every: int | None = None,
) -> RegularizationResult:
    """Train a ``depth`` x ``width`` ReLU MLP with each configuration of ``configs`` (name ->
    :class:`Setting`, or a (norm, norm_kwargs) tuple, shown by its name), SGD at ``lr``, ``batch_size`` examples per
    step for ``epochs`` epochs, one run per seed (the seeds of a configuration train together, as
    one stacked network; seed s draws its dropout masks from a generator seeded with s); train
    and test accuracy are measured every epoch (or every ``eval_every`` steps) and at the end.
    ``train_examples`` keeps only the first that many training examples, to make overfitting
    easier to see."""
    check_dataset("data", data)
    if not isinstance(configs, Mapping) or not configs:
        raise ValueError(f"configs must be a non-empty dict of name -> Setting or (norm, norm_kwargs), got {configs!r}")
    settings = {name: _as_setting(name, config) for name, config in configs.items()}
    for name, setting in settings.items():
        if setting.norm not in NORM_LAYERS:
            raise ValueError(
                f"configs[{name!r}] has norm {setting.norm!r}; valid norms are {', '.join(sorted(NORM_LAYERS))}"
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
    correct = {}
    total = epochs * (len(data.x_train) // batch_size)
    for name, setting in settings.items():  # the seeds of one configuration train as one stack
        right = np.zeros((len(seeds), len(data.x_test)), dtype=bool)
        models = []
        for seed in seeds:
            models.append(
                mlp_for(
                    data,
                    seed=seed,
                    depth=depth,
                    width=width,
                    norm=setting.norm,
                    norm_kwargs=dict(setting.norm_kwargs),
                    dropout=setting.dropout,
                ).to(device)
            )
        histories[name] = train_stacked(
            models,
            data,
            lrs=[lr] * len(seeds),
            seeds=seeds,
            epochs=epochs,
            batch_size=batch_size,
            weight_decay=setting.weight_decay,
            eval_every=eval_every,
            on_step=keep_correct_at_end(total, data, right),
        )
        correct[name] = right
    return RegularizationResult(
        histories,
        norms={name: setting.norm for name, setting in settings.items()},
        correct=correct,
        labels={name: setting.label or name for name, setting in settings.items()},
    )


def validation_split(data: Dataset, train_examples: int) -> Dataset:
    """The first ``train_examples`` training examples to train on, and the rest of the training
    set in place of the test set: a validation split, for choosing hyperparameters without
    looking at the test set."""
    if not 1 <= train_examples < len(data.x_train):
        raise ValueError(f"train_examples must be between 1 and {len(data.x_train) - 1}, got {train_examples}")
    return replace(
        data,
        name=f"{data.name} (validation)",
        x_train=data.x_train[:train_examples],
        y_train=data.y_train[:train_examples],
        x_test=data.x_train[train_examples:],
        y_test=data.y_train[train_examples:],
    )


# The regime where regularization matters: 256 training images (a plain network fits them all and
# tests about 8 points lower than on them), batches of 32, 40 epochs (320 steps), SGD at 0.1;
# evaluated at the start and at the end only.
SMALL_DATA: dict[str, int | float] = {
    "train_examples": 256,
    "batch_size": 32,
    "epochs": 40,
    "lr": 0.1,
    "eval_every": 40 * 256 // 32,
}
# The strengths of dropout and L2, chosen on validation_split(data, 256) from the grid of
# tests/test_claims_regularization.py::test_strengths_were_chosen_on_a_validation_split: each is
# within half a point of the best mean validation accuracy, for the plain and for the BN network.
DROPOUT = 0.2
WEIGHT_DECAY = 0.03


@dataclass(frozen=True)
class Network:
    """A network that the explicit regularizers are added to: its ``norm`` and how figures show it."""

    norm: str
    label: str


# name -> Network: the plain network and the BN network that the small-data regime compares
NETWORKS: dict[str, Network] = {"plain": Network("none", "plain"), "bn": Network("batch", "BN")}


def _networks(norms: Mapping[str, str | Network] | None) -> dict[str, Network]:
    """``norms`` as name -> Network (a bare norm name is shown by the network's name)."""
    if norms is None:
        return dict(NETWORKS)
    return {name: n if isinstance(n, Network) else Network(n, name) for name, n in norms.items()}


Regularizer = Literal["dropout", "l2"]
"""An explicit regularizer of the small-data regime: dropout after every hidden activation, or L2
(weight decay, as ``torch.optim.SGD`` applies it)."""
EXPLICIT_REGULARIZERS: tuple[Regularizer, ...] = get_args(Regularizer)
# regularizer -> how figures and verdicts show it
REGULARIZER_LABELS: dict[Regularizer, str] = {"dropout": "dropout", "l2": "L2"}


def config_name(network: str, regularizer: Regularizer | None = None, strength: float | None = None) -> str:
    """The study's name of the configuration ``network`` (a key of :data:`NETWORKS`, or of the
    ``norms`` given to :func:`explicit_regularizers`) with ``regularizer`` (None: alone), at
    ``strength`` (None: the chosen one; a number: :func:`strength_grid`'s): "bn", "bn_dropout",
    "bn_l2_0.03". Every configuration name of the small-data regime is made here."""
    if regularizer is None:
        if strength is not None:
            raise ValueError(f"a strength ({strength!r}) needs a regularizer ({', '.join(EXPLICIT_REGULARIZERS)})")
        return network
    if regularizer not in REGULARIZER_LABELS:
        raise ValueError(f"regularizer must be one of {', '.join(EXPLICIT_REGULARIZERS)}, got {regularizer!r}")
    name = f"{network}_{regularizer}"
    return name if strength is None else f"{name}_{strength:g}"


def explicit_regularizers(
    *, dropout: float = DROPOUT, weight_decay: float = WEIGHT_DECAY, norms: Mapping[str, str | Network] | None = None
) -> dict[str, Setting]:
    """Per network of ``norms`` (name -> :class:`Network` or a norm name; default :data:`NETWORKS`:
    "plain" without norm, "bn" with batch norm), three configurations (named by :func:`config_name`):
    no explicit regularizer (``"bn"``, shown "BN"), dropout (``"bn_dropout"``, "BN + dropout") and L2
    (``"bn_l2"``, "BN + L2")."""
    configs = {}
    for name, network in _networks(norms).items():
        norm, label = network.norm, network.label
        shown = {regularizer: f"{label} + {REGULARIZER_LABELS[regularizer]}" for regularizer in EXPLICIT_REGULARIZERS}
        configs[config_name(name)] = Setting(norm, label=label)
        configs[config_name(name, "dropout")] = Setting(norm, dropout=dropout, label=shown["dropout"])
        configs[config_name(name, "l2")] = Setting(norm, weight_decay=weight_decay, label=shown["l2"])
    return configs


def strength_grid(
    dropouts: Sequence[float], weight_decays: Sequence[float], *, norms: Mapping[str, str | Network] | None = None
) -> dict[str, Setting]:
    """Per network of ``norms`` (as in :func:`explicit_regularizers`), one configuration per
    dropout rate (``"bn_dropout_0.2"``, shown "BN, dropout 0.2") and per weight decay
    (``"bn_l2_0.03"``, shown "BN, L2 0.03"), named by :func:`config_name`."""
    configs = {}
    shown = REGULARIZER_LABELS
    for name, network in _networks(norms).items():
        norm, label = network.norm, network.label
        configs.update(
            {
                config_name(name, "dropout", p): Setting(norm, dropout=p, label=f"{label}, {shown['dropout']} {p:g}")
                for p in dropouts
            }
        )
        configs.update(
            {
                config_name(name, "l2", wd): Setting(norm, weight_decay=wd, label=f"{label}, {shown['l2']} {wd:g}")
                for wd in weight_decays
            }
        )
    return configs


@dataclass(frozen=True)
class RegularizerGains:
    """What one explicit regularizer (:attr:`regularizer`, shown :attr:`label`) adds on the small-data
    regime's :data:`NETWORKS`, seed by seed: ``plain`` and ``bn``, its gain in test accuracy for each
    network (:meth:`gain` by the network's name); ``plain_minus_bn``, how much more it raises the
    plain network than BN (if BN were already regularizing, this would be positive).
    ``bn_test_set`` and ``plain_minus_bn_test_set``: the test digits' share of their uncertainty."""

    regularizer: Regularizer
    plain: Estimate
    bn: Estimate
    plain_minus_bn: Estimate
    bn_test_set: tuple[float, float]
    plain_minus_bn_test_set: tuple[float, float]

    @property
    def label(self) -> str:
        """How figures and verdicts show the regularizer ("dropout", "L2")."""
        return REGULARIZER_LABELS[self.regularizer]

    def gain(self, network: str) -> Estimate:
        """The regularizer's gain for ``network`` ("plain" or "bn", the keys of :data:`NETWORKS`)."""
        gains = {"plain": self.plain, "bn": self.bn}
        if network not in gains:
            raise ValueError(f"network must be one of {', '.join(gains)}, got {network!r}")
        return gains[network]


def regularizer_gains(small: RegularizationResult, regularizer: Regularizer) -> RegularizerGains:
    """:class:`RegularizerGains` of ``regularizer`` (one of :data:`EXPLICIT_REGULARIZERS`) in a
    study of :func:`explicit_regularizers` (the chapter's ``small_data``)."""
    if regularizer not in EXPLICIT_REGULARIZERS:
        raise ValueError(f"regularizer must be one of {', '.join(EXPLICIT_REGULARIZERS)}, got {regularizer!r}")
    plain, bn = config_name("plain"), config_name("bn")
    plain_with, bn_with = config_name("plain", regularizer), config_name("bn", regularizer)
    more = {plain_with: 1, plain: -1, bn_with: -1, bn: 1}
    return RegularizerGains(
        regularizer=regularizer,
        plain=small.difference(plain_with, plain),
        bn=small.difference(bn_with, bn),
        plain_minus_bn=small.contrast(more),
        bn_test_set=small.test_set_interval({bn_with: 1, bn: -1}),
        plain_minus_bn_test_set=small.test_set_interval(more),
    )


def plot_batch_noise(
    noise: Mapping[int, float],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Axes:
    """BN's batch noise against the batch size (from :func:`bn_utils.experiments.regularization.batch_noise`),
    log-log, with the Gaussian prediction sqrt(1.5 / batch size) dashed; ``figsize`` sizes a new
    figure when no ``ax`` is given. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    sizes = np.array(sorted(noise))
    ax.plot(sizes, [noise[s] for s in sizes], marker="o", color=color_for("batch"), label="measured (digits)")
    ax.plot(sizes, np.sqrt(1.5 / sizes), color=GUIDE, linestyle="--", linewidth=1, label="sqrt(1.5 / batch size)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("std of an example's BN output")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_generalization(result: RegularizationResult, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Per configuration of a :class:`bn_utils.experiments.regularization.RegularizationResult`, the final
    generalization gap (train minus test accuracy, in points; bar: mean, error bar: standard
    deviation over seeds, in the colour of the configuration's norm), with the mean test accuracy
    written on each bar. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    names = list(result.histories)
    gaps = [result.spread(name, "gap") for name in names]
    bars = ax.bar(
        range(len(names)),
        [100 * g.mean for g in gaps],
        yerr=[100 * g.std for g in gaps],
        capsize=4,
        color=[color_for(result.norms.get(name, name), i) for i, name in enumerate(names)],
    )
    upright = len(names) > 5  # narrow bars: the label runs up the bar
    for bar, name in zip(bars, names, strict=True):
        ax.annotate(
            f"test {100 * result.spread(name, 'test_acc').mean:.1f}%",
            (bar.get_x() + bar.get_width() / 2, 0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=plt.rcParams["xtick.labelsize"] if not upright else 8,
            color=ON_COLOR,
            rotation=90 if upright else 0,
            va="bottom",
        )
    ax.set_xticks(range(len(names)), [result.label(name) for name in names], rotation=20, ha="right")
    ax.set_ylabel("train − test accuracy (points)")
    if title:
        ax.set_title(title)
    return ax


def plot_estimates(
    estimates: Mapping[str, Estimate],
    *,
    ax: Axes | None = None,
    colors: Mapping[str, str] | None = None,
    scale: float = 100,
    ylabel: str = "",
    zero_line: bool = False,
    title: str | None = None,
) -> Axes:
    """Per entry of ``estimates`` (label -> :class:`bn_utils.statistics.Estimate`), one dot per
    seed, the mean (a bar across) and its confidence interval (error bar), times ``scale``;
    ``colors`` maps labels to colours, ``zero_line`` draws y = 0. Returns the axes."""
    if not estimates:
        raise ValueError("plot_estimates needs at least one estimate")
    if ax is None:
        _, ax = plt.subplots()
    offsets = np.linspace(-0.15, 0.15, max(len(e.values) for e in estimates.values()))
    for i, (label, estimate) in enumerate(estimates.items()):
        color = (colors or {}).get(label, series_color(i))
        values = scale * np.asarray(estimate.values)
        ax.scatter(i + offsets[: len(values)], values, s=14, color=color, alpha=0.6, linewidths=0)
        low, high = estimate.interval
        mean = scale * estimate.mean
        ax.errorbar(
            i, mean, yerr=[[mean - scale * low], [scale * high - mean]], fmt="_", markersize=22, capsize=6, color=color
        )
    if zero_line:
        ax.axhline(0, color=GUIDE, linewidth=1, linestyle="--")
    ax.set_xticks(range(len(estimates)), list(estimates), rotation=20, ha="right")
    ax.set_xlim(-0.6, len(estimates) - 0.4)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def plot_regularization(result: RegularizationResult, *, ylim: tuple[float, float] = (0.85, 1.0)) -> Figure:
    """Test accuracy during training, bands over seeds (left), and the final generalization gap (right)."""
    if not isinstance(result, RegularizationResult):
        raise ValueError(f"plot_regularization needs a RegularizationResult, got {type(result).__name__}")
    first = next(iter(result.histories.values()))
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_wider"])
    plot_histories(
        {result.label(name): runs for name, runs in result.histories.items()},
        "test_acc",
        ax=axes[0],
        title=f"test accuracy ({len(first)} seeds)",
        norms={result.label(name): norm for name, norm in result.norms.items()},
    )
    axes[0].set_ylim(*ylim)
    axes[0].set_xlabel(f"training step ({first[0].steps_per_epoch} per epoch)")
    plot_generalization(result, ax=axes[1], title="generalization gap at the end")
    return fig


def plot_small_data(result: RegularizationResult, gains: Sequence[RegularizerGains], *, train_examples: int) -> Figure:
    """Test accuracy per configuration (left) and each regularizer's gain per network of
    :data:`NETWORKS` (right, "dropout, plain", in the colour of the network's norm), with intervals."""
    if not isinstance(result, RegularizationResult):
        raise ValueError(f"plot_small_data needs a RegularizationResult, got {type(result).__name__}")
    if isinstance(gains, str | Mapping) or not isinstance(gains, Sequence) or not gains:
        raise ValueError(f"gains must be a non-empty sequence of RegularizerGains, got {gains!r}")
    for g in gains:
        if not isinstance(g, RegularizerGains):
            raise ValueError(f"gains must be a non-empty sequence of RegularizerGains, got an item {g!r}")
    valid.check_int("train_examples", train_examples)
    seeds = len(next(iter(result.histories.values())))
    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE["pair_wider"])
    plot_estimates(
        {result.label(name): result.spread(name) for name in result.histories},
        ax=axes[0],
        colors={result.label(name): color_for(result.norms[name]) for name in result.histories},
        ylabel="test accuracy (%)",
        title=f"{train_examples} training images: test accuracy ({seeds} seeds)",
    )
    shown = {f"{g.label}, {NETWORKS[network].label}": (g.gain(network), network) for g in gains for network in NETWORKS}
    plot_estimates(
        {label: estimate for label, (estimate, _) in shown.items()},
        ax=axes[1],
        colors={label: color_for(NETWORKS[network].norm) for label, (_, network) in shown.items()},
        ylabel="gain in test accuracy (points)",
        zero_line=True,
        title="what dropout and L2 add, per network",
    )
    return fig


NOISE_EXPLORER_BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)


def batch_noise_figure(
    inputs: torch.Tensor, batch_size: int, example: int = 0, unit: int = 0, draws: int = 300
) -> Figure:
    """The histogram of one example's BN output (one unit) over ``draws`` random batches of
    ``batch_size``, against its value when normalized with the whole training set."""
    fixed, pool = inputs[example : example + 1], torch.cat([inputs[:example], inputs[example + 1 :]])
    values = normalized_in_random_batches(
        fixed, pool, batch_size, draws=draws, generator=torch.Generator().manual_seed(0)
    )[:, 0, unit].numpy()
    reference = normalized_in_random_batches(
        fixed, pool, len(pool) + 1, draws=1, generator=torch.Generator().manual_seed(0)
    )[0, 0, unit].item()
    fig, ax = plt.subplots(figsize=FIGSIZE["frame"])
    ax.hist(values, bins=30, color=color_for("batch"), alpha=0.8)
    ax.axvline(reference, color=GUIDE, linestyle="--", linewidth=1.5, label="normalized with the whole training set")
    ax.set_xlabel(f"BN output of example {example}, unit {unit}")
    ax.set_ylabel(f"count ({draws} random batches)")
    ax.set_title(f"batch size {batch_size}: std {values.std():.3f} around {values.mean():.2f}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def batch_noise_explorer(data: Dataset, *, live: bool = True) -> interactive | FrameExplorer:
    """The batch size, and live also the example and the unit: the histogram of one example's BN
    output over 300 random batches, against its value when normalized with the whole training
    set. ``live=False``: the kernel-free version (examples 0 to 2, unit 0)."""
    inputs = first_layer_inputs(data)
    start = {"batch size": 16}
    if live:
        controls: dict[str, Sequence[object]] = {
            "batch size": NOISE_EXPLORER_BATCH_SIZES,
            "example": range(len(inputs)),
            "unit": range(inputs.shape[1]),
        }
        return live_explorer(partial(batch_noise_figure, inputs), controls, start=start)
    return frame_explorer(
        partial(batch_noise_figure, inputs),
        {"batch size": NOISE_EXPLORER_BATCH_SIZES, "example": [0, 1, 2]},
        start=start,
        title="one example's BN output over random batches: batch size and example",
    )
