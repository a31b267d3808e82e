"""Does it transfer? The course's headline experiments on a second benchmark and a longer budget.

Every chapter measures its claims on one problem, scikit-learn's 8x8 digits, for 200 SGD steps. This
module re-runs each chapter's headline experiment on MNIST-1D (:func:`bn_utils.data.load_mnist1d`)
with the chapters' own code (the same builders, the same stacked training, the same result classes
and their verdict logic), and at 4x the steps, so that each verdict can say where it holds.

- :data:`BENCHMARKS`: what "trains" and "reaches the target" mean on each benchmark;
- :func:`mlp_grid` -> :class:`MLPGrid`: the 10 x 100 ReLU MLPs of chapters 3-6 (learning rates,
  initial scales, depths, residual BN) trained once per benchmark for the long budget, read at any
  shorter one: :meth:`MLPGrid.sweep` gives the chapters' :class:`~bn_utils.history.Sweep`, as if
  trained for that many steps, and :meth:`MLPGrid.final_test` the residual chapter's comparison;
- :func:`baselines` -> :class:`BaselineResult`: an outside check of the training code, the published
  MNIST-1D logistic regression, MLP and CNN trained with the published settings;
- :func:`speed_runs` (chapter 2), :func:`regularization_at` (chapter 7): the chapters' runs,
  trained once for the long budget and read at the short one.

Experiment modules do not import each other: the chapters' networks come in as arguments
(``speed_runs(data, network=covariate_shift.ioffe_mlp)``), their result classes from the core.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Protocol, TypeVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .. import _validate as valid
from .. import norms as norm_registry
from ..cache import remembered
from ..data import Dataset, check_dataset, load_digits, load_mnist1d
from ..explorers import FrameExplorer, frame_explorer, live_explorer
from ..grid import Axis, LabelledGrid
from ..history import Sweep
from ..models import make_convnet1d, make_mlp, make_residual_mlp, mlp_for
from ..stacked import StackedMLP, evaluate_stacked, train_stacked
from ..style import FAINT, GUIDE, OUTLINE, color_for, figsize, label_for, series_color
from ..training import History, get_device, run_seeds, seed_everything, stack_metric

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = [
    "Benchmark",
    "BENCHMARKS",
    "load",
    "MLPConfig",
    "MLPGrid",
    "mlp_grid",
    "truncate_history",
    "PUBLISHED",
    "BaselineResult",
    "baseline_models",
    "baselines",
    "speed_runs",
    "regularization_at",
    "plot_sequences",
    "plot_baselines",
    "plot_budget",
    "budget_figure",
    "explorer",
    "NOTEBOOK_CONFIGS",
    "grid_to_dict",
    "grid_from_dict",
    "notebook_grid",
    "stored_grid",
]


@dataclass(frozen=True)
class Benchmark:
    """How the verdicts read on one benchmark. A run *trains* when it ends at ``trains_at``
    accuracy or more: halfway from chance (10%) to ``reference``, the accuracy of a published MLP
    on the benchmark (50% on the digits, as in the chapters; 40% on MNIST-1D, halfway to 68%).
    Speed is the number of steps to ``target`` (validation) accuracy: the chapters' 95% on the
    digits; on MNIST-1D, where no MLP of the chapters comes near its ceiling within their budgets,
    the "trains" line itself, 40%."""

    key: str
    name: str
    reference: float
    trains_at: float
    target: float


BENCHMARKS: dict[str, Benchmark] = {
    "digits": Benchmark("digits", "digits", reference=0.98, trains_at=0.5, target=0.95),
    "mnist1d": Benchmark("mnist1d", "MNIST-1D", reference=0.68, trains_at=0.4, target=0.4),
}


def load(benchmark: str | Benchmark, *, shaped: bool = False) -> Dataset:
    """The benchmark's data set: flat vectors, or (``shaped``) images (N, 1, 8, 8) for the digits'
    conv net and sequences (N, 1, 40) for MNIST-1D's."""
    key = benchmark.key if isinstance(benchmark, Benchmark) else benchmark
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {key!r}; valid names are: {', '.join(BENCHMARKS)}")
    return load_digits(images=shaped) if key == "digits" else load_mnist1d(sequences=shaped)


@dataclass(frozen=True)
class MLPConfig:
    """One network of the grid: a ``depth`` x 100 ReLU MLP (or the residual chapter's residual BN
    network when ``residual``), ``norm`` before each ReLU, hidden weights at ``init_scale`` times
    the He scale (the head at its own), SGD at ``lr``."""

    norm: str
    lr: float = 0.1
    init_scale: float = 1.0
    depth: int = 10
    residual: bool = False

    def build(self, data: Dataset, seed: int) -> torch.nn.Module:
        """The network for ``seed``, as the chapters build it (same seed, same initial weights)."""
        if self.residual:
            if self.norm != "batch" or self.init_scale != 1.0:
                raise ValueError("the residual networks of the grid are the residual chapter's residual BN")
            seed_everything(seed)  # the residual chapter's "residual_bn" (tests/test_transfer.py checks it is)
            return make_residual_mlp(data.input_shape[0], data.num_classes, depth=self.depth, width=100, norm="batch")
        return mlp_for(
            data, seed=seed, depth=self.depth, norm=self.norm, init_scale=self.init_scale, head_init_scale=1.0
        )

    @property
    def stack_key(self) -> tuple[int, bool, str]:
        """Networks of one shape (depth, residual or not, norm) train as one stack."""
        return (self.depth, self.residual, self.norm)


def truncate_history(history: History, steps: int) -> History:
    """``history`` as a run of ``steps`` steps would have recorded it: the same optimisation up to
    that step (a constant learning rate: nothing later changes what came before), evaluations up
    to and including it. A run that diverged later had not diverged yet."""
    valid.check_int("steps", steps)
    if steps > history.steps and not history.diverged:
        raise ValueError(f"the run took {history.steps} steps; it cannot be read at step {steps}")
    kept = [i for i, s in enumerate(history.eval_steps) if s <= steps]
    short = copy.copy(history)
    short.loss = history.loss[:steps]
    short.eval_steps = [history.eval_steps[i] for i in kept]
    short.test_acc = [history.test_acc[i] for i in kept]
    short.test_loss = [history.test_loss[i] for i in kept]
    short.train_acc = [history.train_acc[i] for i in kept] if history.train_acc else []
    short.diverged_at = history.diverged_at if history.diverged_at is not None and history.diverged_at < steps else None
    short.config = dict(history.config, steps=steps)
    return short


@dataclass
class MLPGrid(LabelledGrid):
    """Every :class:`MLPConfig` trained with every seed on one benchmark's validation split for
    ``max(budgets)`` steps: ``histories[config][j]`` records the validation accuracy every
    ``eval_every`` steps (its ``test_acc``, as a sweep selected on validation does), and
    ``test_at[budget][config]`` the test accuracy per seed at each budget (NaN: diverged)."""

    benchmark: Benchmark
    configs: tuple[MLPConfig, ...]
    seeds: tuple[int, ...]
    budgets: tuple[int, ...]
    histories: dict[MLPConfig, list[History]]
    test_at: dict[int, dict[MLPConfig, np.ndarray]]
    config: dict = field(default_factory=dict)

    def axes(self) -> dict[str, Axis]:
        """The grid's axes: the configurations trained and the budgets (steps) it was read at."""
        return {
            "config": Axis("configuration", tuple(self.histories), "was not trained", "the grid"),
            "steps": Axis("budget of steps", self.budgets, "was not read", "the grid"),
        }

    def _budget(self, steps: int) -> int:
        return self.axis("steps").check(steps)

    def _config(self, config: MLPConfig) -> MLPConfig:
        return self.axis("config").check(config)

    def runs(self, config: MLPConfig, steps: int) -> list[History]:
        """One history per seed, as ``steps`` steps of training recorded it."""
        return [truncate_history(h, self._budget(steps)) for h in self.histories[self._config(config)]]

    def sweep(
        self,
        parameter: str,
        values: Sequence[float],
        steps: int,
        *,
        norms: Sequence[str] = ("none", "batch"),
        **fixed: float,
    ) -> Sweep:
        """The chapters' :class:`Sweep` over ``parameter`` (``lr``, ``init_scale`` or ``depth``) at
        ``values``, the other settings ``fixed`` (default lr 0.1, scale 1, depth 10), read at
        ``steps``: selection on validation accuracy, test accuracy at the end."""
        histories: dict[str, list[list[History]]] = {}
        final_test: dict[str, np.ndarray] = {}
        for norm in norms:
            rows, tests = [], []
            for value in values:
                setting = dict(dict(lr=0.1, init_scale=1.0, depth=10), **fixed)
                setting[parameter] = value
                config = MLPConfig(
                    norm, lr=setting["lr"], init_scale=setting["init_scale"], depth=int(setting["depth"])
                )
                rows.append(self.runs(config, steps))
                tests.append(self.test_at[self._budget(steps)][config])
            histories[norm], final_test[norm] = rows, np.array(tests)
        return Sweep(
            parameter,
            tuple(float(v) for v in values),
            self.seeds,
            histories,
            target=self.benchmark.target,
            min_accuracy=self.benchmark.trains_at,
            selected_on="validation",
            final_test=final_test,
        )

    def final_validation(self, config: MLPConfig, steps: int) -> np.ndarray:
        """Per seed, ``config``'s validation accuracy after ``steps`` steps; NaN where the run diverged."""
        return np.array([np.nan if h.diverged else h.test_acc[-1] for h in self.runs(config, steps)])

    def final_test(self, config: MLPConfig, steps: int) -> np.ndarray:
        """Test accuracy per seed of ``config`` after ``steps`` steps (NaN: diverged by then); e.g.
        the residual chapter's plain BN stack (``MLPConfig("batch", depth=40)``) against its
        residual BN network (``residual=True``)."""
        return self.test_at[self._budget(steps)][self._config(config)]


@remembered("experiments.transfer")
def mlp_grid(
    data: Dataset,
    benchmark: Benchmark,
    configs: Sequence[MLPConfig],
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    budgets: Sequence[int] = (200, 800),
    batch_size: int = 64,
    eval_every: int = 10,
    evaluate_often: Sequence[int] = (10,),
) -> MLPGrid:
    """Train every config with every seed on ``data`` (which must hold a validation set: the
    histories record validation accuracy) for ``max(budgets)`` SGD steps, networks of one shape as
    one stack, and measure the test accuracy at each budget. Stacks of the depths in
    ``evaluate_often`` record the validation accuracy every ``eval_every`` steps (steps to a
    target), the others only at the budgets (whether they train)."""
    check_dataset("data", data)
    if not data.has_validation:
        raise ValueError("mlp_grid selects on validation accuracy: use data.with_validation()")
    valid.check_type("benchmark", benchmark, Benchmark, "a Benchmark (see BENCHMARKS)")
    configs = tuple(configs)
    if not configs or len(set(configs)) < len(configs):
        raise ValueError(f"need a non-empty list of different MLPConfig, got {configs}")
    for config in configs:
        valid.check_type("each of configs", config, MLPConfig, "an MLPConfig")
    seeds = tuple(valid.check_seeds("seeds", seeds))
    budgets = tuple(sorted(valid.check_values("budgets", budgets, lambda n, v: valid.check_int(n, v), distinct=True)))
    if not budgets:
        raise ValueError("need at least one budget (steps)")
    valid.check_int("eval_every", eval_every)
    if any(b % eval_every for b in budgets):
        raise ValueError(f"every budget {budgets} must be a multiple of eval_every ({eval_every})")
    device = get_device()
    data = data.to(device)
    seen = data.validation_view()
    steps = budgets[-1]
    groups: dict[tuple, list[MLPConfig]] = {}
    for config in configs:
        groups.setdefault(config.stack_key, []).append(config)
    histories: dict[MLPConfig, list[History]] = {}
    test_at: dict[int, dict[MLPConfig, np.ndarray]] = {b: {} for b in budgets}
    for (depth, _, _), members in groups.items():
        models, lrs, run_seeds = [], [], []
        for config in members:
            for seed in seeds:
                models.append(config.build(data, seed).to(device).to(data.x_train.dtype))
                lrs.append(config.lr)
                run_seeds.append(seed)
        tests = {b: np.full(len(models), np.nan) for b in budgets}

        def test_at_budgets(stack: StackedMLP, step: int, tests: dict[int, np.ndarray] = tests) -> None:
            if step in tests:
                accuracy, _ = evaluate_stacked(stack, data.x_test, data.y_test)
                tests[step][stack.ids] = accuracy.cpu().numpy()

        flat = train_stacked(
            models,
            seen,
            lrs=lrs,
            seeds=run_seeds,
            steps=steps,
            batch_size=batch_size,
            eval_every=eval_every if depth in evaluate_often else budgets[0] if len(budgets) == 1 else _gcd(budgets),
            eval_train=False,
            on_step=test_at_budgets,
        )
        for k, config in enumerate(members):
            histories[config] = flat[k * len(seeds) : (k + 1) * len(seeds)]
            for b in budgets:
                test_at[b][config] = tests[b][k * len(seeds) : (k + 1) * len(seeds)]
    return MLPGrid(
        benchmark,
        configs,
        seeds,
        budgets,
        histories,
        test_at,
        config=dict(batch_size=batch_size, eval_every=eval_every, width=100, optimizer="sgd", data=data.name),
    )


# ---------------------------------------------------------------------------------------------
# The notebook's grid, computed once and stored with the package

STORED_GRID = "stored/transfer_grid.json"
# the notebook's section 3: chapter 3's networks at learning rates 0.1 and 1.0, with and without BN
NOTEBOOK_CONFIGS = tuple(MLPConfig(norm, lr=lr) for norm in ("none", "batch") for lr in (0.1, 1.0))


def _history_to_dict(history: History) -> dict:
    data = asdict(history)
    data["loss"] = [float(f"{v:.7g}") for v in history.loss]  # 7 digits: a float32 loss, not its last bit
    return data


def grid_to_dict(grid: MLPGrid) -> dict:
    """A JSON-ready dict of ``grid``; :func:`grid_from_dict` reads it back."""
    valid.check_type("grid", grid, MLPGrid, "an MLPGrid (from mlp_grid)")
    return {
        "benchmark": asdict(grid.benchmark),
        "configs": [asdict(c) for c in grid.configs],
        "seeds": list(grid.seeds),
        "budgets": list(grid.budgets),
        "histories": [[_history_to_dict(h) for h in grid.histories[c]] for c in grid.configs],
        "test_at": {str(b): [grid.test_at[b][c].tolist() for c in grid.configs] for b in grid.budgets},
        "config": grid.config,
    }


def grid_from_dict(data: Mapping) -> MLPGrid:
    """The grid that :func:`grid_to_dict` wrote."""
    configs = tuple(MLPConfig(**c) for c in data["configs"])
    histories = {c: [History(**h) for h in runs] for c, runs in zip(configs, data["histories"], strict=True)}
    test_at = {
        int(b): {c: np.array(v, dtype=float) for c, v in zip(configs, rows, strict=True)}
        for b, rows in data["test_at"].items()
    }
    benchmark = Benchmark(**data["benchmark"])
    if BENCHMARKS.get(benchmark.key) == benchmark:
        benchmark = BENCHMARKS[benchmark.key]  # the registered one itself
    return MLPGrid(
        benchmark,
        configs,
        tuple(data["seeds"]),
        tuple(data["budgets"]),
        histories,
        test_at,
        config=dict(data["config"]),
    )


def notebook_grid(*, seeds: Sequence[int] = (0, 1, 2, 3, 4), steps: int = 800) -> MLPGrid:
    """The notebook's grid: :data:`NOTEBOOK_CONFIGS` on MNIST-1D's validation split (20% of the
    training set, split with seed 0), ``steps`` steps, read at 200 and at ``steps``, the validation
    accuracy every 20 steps (about 25 CPU-s at 1 thread for 800 steps). The claim tests train the same
    networks in their larger grid."""
    data = load("mnist1d").with_validation(fraction=0.2, seed=0)
    budgets = (200, steps) if steps > 200 else (steps,)
    return mlp_grid(data, BENCHMARKS["mnist1d"], NOTEBOOK_CONFIGS, seeds=seeds, budgets=budgets, eval_every=20)


def stored_grid() -> MLPGrid:
    """The notebook's grid on seeds 0-4 as stored with the package (written by ``python -m
    bn_utils.experiments.transfer``, which calls :func:`notebook_grid`; tests/test_transfer.py
    checks that its first steps are what the code computes)."""
    text = resources.files("bn_utils.experiments").joinpath(STORED_GRID).read_text(encoding="utf-8")
    return grid_from_dict(json.loads(text))


def _gcd(values: Sequence[int]) -> int:
    out = 0
    for v in values:
        out = math.gcd(out, v)
    return out


# ---------------------------------------------------------------------------------------------
# The outside check: the published MNIST-1D baselines

# Greydanus & Kobak (2024): test accuracy on MNIST-1D of the published models (the paper's Table 1
# and the repository's README), trained with Adam at learning rate 0.01 on batches of 100.
PUBLISHED: dict[str, float] = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94}


def baseline_models(name: str) -> torch.nn.Module:
    """A fresh published baseline, built with the course's builders: logistic regression (a
    linear layer), the MLP (two hidden layers of 100 ReLU units; the published one also adds its
    second layer's output to its input, a skip connection this one leaves out) and the CNN
    (:func:`make_convnet1d` in the published shape: 25 channels, kernels 5, 3, 3, stride 2, the
    last map flattened into the head)."""
    if name == "logistic regression":
        return make_mlp(40, 10, depth=0)
    if name == "MLP":
        return make_mlp(40, 10, depth=2, width=100)
    if name == "CNN":
        return make_convnet1d(
            1, 10, channels=(25, 25, 25), kernel_size=(5, 3, 3), stride=2, pool=None, readout="flatten", length=40
        )
    raise ValueError(f"unknown baseline {name!r}; valid names are: {', '.join(PUBLISHED)}")


@dataclass(frozen=True)
class BaselineResult:
    """Final test accuracy per seed of each published baseline, trained as published."""

    seeds: tuple[int, ...]
    steps: int
    test_acc: dict[str, np.ndarray]
    config: dict = field(default_factory=dict)

    def median(self, name: str) -> float:
        """The median over seeds of a baseline's final test accuracy."""
        if name not in self.test_acc:
            raise ValueError(f"unknown baseline {name!r}; trained: {', '.join(self.test_acc)}")
        return float(np.median(self.test_acc[name]))

    def difference(self, name: str) -> float:
        """Median over seeds minus the published accuracy."""
        return self.median(name) - PUBLISHED[name]

    def table(self) -> str:
        """A Markdown table: published accuracy, the median and range over seeds, the difference."""
        rows = ["| model | published | this course (median, range over seeds) | difference |", "|---|---|---|---|"]
        for name, values in self.test_acc.items():
            rows.append(
                f"| {name} | {100 * PUBLISHED[name]:.0f}% | {100 * self.median(name):.1f}% "
                f"({100 * values.min():.1f}-{100 * values.max():.1f}%) | {100 * self.difference(name):+.1f} points |"
            )
        return "\n".join(rows)


@remembered("experiments.transfer")
def baselines(
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    steps: int = 2000,
    names: Sequence[str] = tuple(PUBLISHED),
    lr: float = 0.01,
    batch_size: int = 100,
) -> BaselineResult:
    """Train the published MNIST-1D baselines (:func:`baseline_models`) with the published settings,
    Adam at learning rate 0.01 on batches of 100, on the 4,000 training sequences, ``steps`` steps
    (the published runs take 6,000; the published notebooks' CNN still gains 2 to 4 points after
    step 2,000, so ours sits a little below its published 94%), and measure the test
    accuracy. No hyperparameter is chosen here: all are the published ones. The linear and MLP
    baselines train their seeds as one stack (:func:`bn_utils.stacked.train_stacked`), the CNN
    one seed at a time (:func:`bn_utils.training.train`): both engines are checked."""
    seeds = tuple(valid.check_seeds("seeds", seeds))
    valid.check_int("steps", steps)
    names = tuple(names)
    for name in names:
        if name not in PUBLISHED:
            raise ValueError(f"unknown baseline {name!r}; valid names are: {', '.join(PUBLISHED)}")
    device = get_device()
    test_acc: dict[str, np.ndarray] = {}
    for name in names:
        if name == "CNN":
            data = load_mnist1d(sequences=True)
            histories = run_seeds(
                lambda: baseline_models("CNN"),
                data,
                seeds,
                device=device,
                lr=lr,
                steps=steps,
                batch_size=batch_size,
                optimizer="adam",
                eval_every=steps,
            )
        else:
            data = load_mnist1d().to(device)
            models = []
            for seed in seeds:
                seed_everything(seed)
                models.append(baseline_models(name).to(device))
            histories = train_stacked(
                models,
                data,
                lrs=[lr] * len(seeds),
                seeds=seeds,
                steps=steps,
                batch_size=batch_size,
                optimizer="adam",
                eval_every=steps,
                eval_train=False,
            )
        test_acc[name] = np.array([h.test_acc[-1] for h in histories])
    return BaselineResult(seeds, steps, test_acc, dict(lr=lr, batch_size=batch_size, optimizer="adam"))


# ---------------------------------------------------------------------------------------------
# Chapter 2 and chapter 7: runs trained once for the long budget, read at the short one


@remembered("experiments.transfer")
def speed_runs(
    data: Dataset,
    *,
    network: Callable[..., nn.Module],
    norms: Sequence[str] = ("none", "batch", "batch_noisy"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    steps: int = 2400,
    eval_every: int = 20,
) -> dict[str, list[History]]:
    """The covariate-shift chapter's training runs: ``network(norm, in_features=...)``, the chapter's
    :func:`~bn_utils.experiments.covariate_shift.ioffe_mlp` (the BN paper's Figure 1 network: 3 x
    100 sigmoid units, weights N(0, 0.1^2)), with each norm,
    SGD at 0.5 on batches of 60 for ``steps`` steps, the test accuracy every ``eval_every`` steps:
    the runs of :func:`~bn_utils.experiments.covariate_shift.covariate_shift_run` without its probes.
    A norm that :class:`~bn_utils.stacked.StackedMLP` holds (its registry entry's ``mlp_stacking``:
    no norm, BN) trains its seeds as one stack; the others (noisy BN) one seed at a time."""
    check_dataset("data", data)
    if not callable(network):
        raise TypeError(f"network must build the chapter's network, e.g. covariate_shift.ioffe_mlp; got {network!r}")
    seeds = tuple(valid.check_seeds("seeds", seeds))
    valid.check_int("steps", steps)
    valid.check_int("eval_every", eval_every)
    if len(data.input_shape) != 1:
        raise ValueError(f"speed_runs trains an MLP: it needs flat examples (N, features), got {data!r}")
    device = get_device()
    data = data.to(device)
    runs: dict[str, list[History]] = {}
    for norm in norms:
        if norm_registry.get(norm).mlp_stacking is not None:
            models = []
            for seed in seeds:
                seed_everything(seed)
                models.append(network(norm, in_features=data.input_shape[0]).to(device))
            runs[norm] = train_stacked(
                models,
                data,
                lrs=[0.5] * len(seeds),
                seeds=seeds,
                steps=steps,
                batch_size=60,
                eval_every=eval_every,
                eval_train=False,
            )
        else:
            runs[norm] = run_seeds(
                functools.partial(network, norm, in_features=data.input_shape[0]),
                data,
                seeds,
                device=device,
                lr=0.5,
                steps=steps,
                batch_size=60,
                eval_every=eval_every,
            )
    return runs


class _Study(Protocol):
    """What :func:`regularization_at` reads and writes of a regularization study
    (:class:`~bn_utils.experiments.regularization.RegularizationResult`)."""

    histories: dict[str, list[History]]
    correct: dict[str, np.ndarray] | None


StudyT = TypeVar("StudyT", bound=_Study)


def regularization_at(result: StudyT, steps: int) -> StudyT:
    """A regularization study (:func:`~bn_utils.experiments.regularization.regularization_study`,
    evaluated every epoch or at least at ``steps``) as ``steps`` steps of training left it: the same
    class, every history cut at ``steps``, no per-example results (they are the last step's)."""
    valid.check_int("steps", steps)
    for label, runs in result.histories.items():
        if any(steps not in h.eval_steps for h in runs):
            raise ValueError(f"{label!r} was not evaluated at step {steps}; evaluate every epoch (eval_every=None)")
    short = copy.copy(result)
    short.histories = {label: [truncate_history(h, steps) for h in runs] for label, runs in result.histories.items()}
    short.correct = None
    return short


# ---------------------------------------------------------------------------------------------
# Plots and the explorer


def plot_sequences(data: Dataset, *, per_class: int = 3, ax: Axes | None = None) -> Axes:
    """A few training sequences of each class of a sequence data set (MNIST-1D), stacked one
    above the other, so that the reader sees what a 1-D "digit" looks like."""
    check_dataset("data", data)
    valid.check_int("per_class", per_class)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize("pair"))
    x = data.x_train.reshape(len(data.x_train), -1).cpu().numpy()
    y = data.y_train.cpu().numpy()
    positions = np.arange(x.shape[1])
    for label in range(data.num_classes):
        rows = np.flatnonzero(y == label)[:per_class]
        for k, row in enumerate(rows):
            ax.plot(
                positions + label * (len(positions) + 8),
                x[row] + 3.0 * k,
                color=series_color(label),
                linewidth=1.2,
            )
        ax.text(label * (len(positions) + 8) + len(positions) / 2, -3.2, str(label), ha="center", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.set_title(f"{data.name}: {per_class} training sequences of each class (length {x.shape[1]}), by label")
    return ax


def plot_baselines(result: BaselineResult, *, ax: Axes | None = None) -> Axes:
    """Published test accuracy (black bar edge) against this course's, per baseline: the median
    over seeds (bar) and every seed (dots)."""
    valid.check_type("result", result, BaselineResult, "a BaselineResult (from baselines)")
    if ax is None:
        _, ax = plt.subplots(figsize=figsize("panel_mid"))
    names = list(result.test_acc)
    for i, name in enumerate(names):
        ax.bar(i - 0.2, 100 * PUBLISHED[name], width=0.4, color=FAINT, edgecolor=OUTLINE, label=None)
        ax.bar(i + 0.2, 100 * result.median(name), width=0.4, color=series_color(0), alpha=0.8)
        ax.plot(np.full(len(result.seeds), i + 0.2), 100 * result.test_acc[name], "o", color=OUTLINE, ms=3)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 100)
    ax.set_ylabel("MNIST-1D test accuracy (%)")
    ax.bar([], [], color=FAINT, edgecolor=OUTLINE, label="published")
    ax.bar([], [], color=series_color(0), alpha=0.8, label=f"this course (median, dots: {len(result.seeds)} seeds)")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(f"The published baselines, retrained: Adam, {result.steps} steps")
    return ax


def _grid_curve(grid: MLPGrid, config: MLPConfig) -> tuple[np.ndarray, np.ndarray]:
    return stack_metric(grid.histories[grid._config(config)], "test_acc")


def plot_budget(
    grids: Mapping[str, MLPGrid],
    configs: Sequence[MLPConfig],
    *,
    budget: int | None = None,
) -> Figure:
    """Validation accuracy against steps (mean and range over seeds) of ``configs`` on each
    benchmark's grid (one panel each), the "trains" line of the benchmark, and a vertical line at
    each budget the grid was read at (or only at ``budget``)."""
    if not grids:
        raise ValueError("plot_budget needs at least one grid (benchmark name -> MLPGrid)")
    if len(grids) > 3:
        raise ValueError(f"plot_budget draws up to 3 benchmarks side by side, got {len(grids)}")
    kind = ("panel", "pair_high", "triple_high")[len(grids) - 1]
    fig, axes = plt.subplots(1, len(grids), figsize=figsize(kind), squeeze=False)
    for ax, (name, grid) in zip(axes[0], grids.items(), strict=True):
        valid.check_type(f"grids[{name!r}]", grid, MLPGrid, "an MLPGrid (from mlp_grid)")
        for i, config in enumerate(configs):
            steps, values = _grid_curve(grid, config)
            color = color_for(config.norm) if len({c.norm for c in configs}) == len(configs) else series_color(i)
            style = "-" if config.norm == "batch" else "--"
            label = f"{label_for(config.norm)}, lr {config.lr:g}"
            with np.errstate(all="ignore"):
                keep = ~np.all(np.isnan(values), axis=0)
                if keep.any():
                    ax.plot(steps[keep], np.nanmean(values[:, keep], 0), style, color=color, label=label)
                    ax.fill_between(
                        steps[keep],
                        np.nanmin(values[:, keep], 0),
                        np.nanmax(values[:, keep], 0),
                        color=color,
                        alpha=0.15,
                    )
                else:
                    ax.plot([], [], style, color=color, label=f"{label} (every seed diverged)")
            diverged = [h.diverged_at for h in grid.histories[config] if h.diverged_at is not None]
            for step in diverged:
                ax.axvline(step, color=color, linestyle=":", linewidth=1)
        ax.axhline(grid.benchmark.trains_at, color=GUIDE, linewidth=1, linestyle="--")
        ax.text(5, grid.benchmark.trains_at + 0.01, f"trains: {100 * grid.benchmark.trains_at:.0f}%", fontsize=9)
        for b in grid.budgets if budget is None else (budget,):
            ax.axvline(b, color=GUIDE, linewidth=1.5)
            ax.text(b, 0.02, f" {b} steps", fontsize=9, color=GUIDE)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(grid.budgets))
        ax.set_xlabel("training step")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{grid.benchmark.name}, {len(grid.seeds)} seeds (line: mean, band: range)")
        ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    return fig


def budget_figure(grid: MLPGrid, lr: float, budget: int, *, depth: int = 10) -> Figure:
    """One setting of the explorer: the plain and the BN network (``depth`` hidden layers) at learning
    rate ``lr`` on one benchmark (validation accuracy against steps), read at ``budget`` steps: which
    of them has trained by then and which is ahead."""
    fig, ax = plt.subplots(figsize=figsize("frame"))
    accuracy = {}
    for norm in ("none", "batch"):
        config = MLPConfig(norm, lr=lr, depth=depth)
        steps, values = _grid_curve(grid, config)
        color = color_for(norm)
        with np.errstate(all="ignore"):
            keep = ~np.all(np.isnan(values), axis=0)
            if keep.any():
                ax.plot(steps[keep], np.nanmean(values[:, keep], 0), color=color, label=label_for(norm))
                ax.fill_between(
                    steps[keep], np.nanmin(values[:, keep], 0), np.nanmax(values[:, keep], 0), color=color, alpha=0.15
                )
        runs = grid.runs(config, budget)
        finals = np.array([np.nan if h.diverged else h.test_acc[-1] for h in runs])
        accuracy[norm] = (np.nanmedian(finals) if not np.all(np.isnan(finals)) else np.nan, int(np.isnan(finals).sum()))
    ax.axhline(grid.benchmark.trains_at, color=GUIDE, linewidth=1, linestyle="--")
    ax.axvspan(budget, max(grid.budgets), color=FAINT, alpha=0.5)
    ax.axvline(budget, color=GUIDE, linewidth=1.5)
    ax.set_xlim(0, max(grid.budgets))
    ax.set_ylim(0, 1)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation accuracy")
    ax.legend(loc="upper left")
    parts = []
    for norm, (median, lost) in accuracy.items():
        text = "diverged" if np.isnan(median) else f"{100 * median:.0f}%"
        parts.append(f"{label_for(norm)} {text}" + (f" ({lost} diverged)" if lost and not np.isnan(median) else ""))
    ax.set_title(f"{grid.benchmark.name}, lr {lr:g}, read at step {budget}: " + ", ".join(parts), fontsize=10)
    fig.tight_layout()
    return fig


def explorer(
    grids: Mapping[str, MLPGrid],
    *,
    lrs: Sequence[float] | None = None,
    budgets: Sequence[int] = (200, 400, 600, 800),
    live: bool = True,
) -> interactive | FrameExplorer:
    """What if the chapters had trained longer? Pick the benchmark, the learning rate and the step
    at which to read the result: the plain and the BN network's validation accuracy against steps
    (bands over seeds) and the median at that step. ``live=False`` draws every setting in advance
    (kernel-free, for the book)."""
    if not grids:
        raise ValueError("explorer needs at least one grid (benchmark name -> MLPGrid)")
    first = next(iter(grids.values()))
    swept = [c for c in first.configs if c.init_scale == 1.0 and not c.residual]
    depth = min(c.depth for c in swept)  # the learning-rate sweep's networks
    if lrs is None:
        lrs = sorted({c.lr for c in swept if c.depth == depth})
    for grid in grids.values():
        for b in budgets:
            if b > max(grid.budgets) or b % grid.config.get("eval_every", 10):
                raise ValueError(f"step {b} is not a step the grids were evaluated at (up to {max(grid.budgets)})")
    by_name = {grid.benchmark.name: grid for grid in grids.values()}
    controls: dict[str, Sequence[object]] = {
        "benchmark": list(by_name),
        "learning rate": list(lrs),
        "read at step": list(budgets),
    }
    start = {"benchmark": list(by_name)[-1], "learning rate": list(lrs)[0], "read at step": budgets[0]}

    def draw(benchmark: str, lr: float, budget: int) -> Figure:
        grid = by_name[benchmark]
        return budget_figure(replace(grid, budgets=tuple(sorted({*grid.budgets, budget}))), lr, budget, depth=depth)

    if live:
        return live_explorer(draw, controls, start=start)
    return frame_explorer(draw, controls, start=start, title="benchmark, learning rate and budget: plain vs BN")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bn_utils.experiments.transfer``: compute the notebook's grid on seeds 0-4 with
    :func:`notebook_grid` and store it with the package (:data:`STORED_GRID`)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default=None, help="where to write the JSON (default: the stored file)")
    args = parser.parse_args(argv)
    start = time.process_time()
    grid = notebook_grid()
    provenance = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "cpu_seconds": round(time.process_time() - start),
    }
    out = args.out or str(resources.files("bn_utils.experiments").joinpath(STORED_GRID))
    with open(out, "w", encoding="utf-8") as stream:
        json.dump({**grid_to_dict(grid), "provenance": provenance}, stream, separators=(",", ":"))
        stream.write("\n")
    print(f"wrote {out} ({provenance['cpu_seconds']} CPU-s)")


if __name__ == "__main__":
    main()
