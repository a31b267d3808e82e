"""bn_utils: the shared code of the course "Batch Normalization, Measured".

Logic lives here, unit-tested; the notebooks import it, run it, plot and explain.

``import bn_utils`` loads the core (data, layers, models, training, checks) and no plotting library:
the names of the first chapter's experiment (``forgotten_eval_study``, ...) load their module, and
matplotlib with it, on first use.
"""

import importlib
from typing import Any

from .checks import Check, CheckFailed, check_below, check_close, check_range, check_that, max_abs_error
from .data import Dataset, batch_indices, iterate_batches, load_digits, load_mnist1d, make_spirals
from .functional import batch_norm, batch_norm_gradients, batch_statistics
from .layers import BatchNorm1d, BatchNorm2d, GhostBatchNorm, NoisyBatchNorm
from .models import (
    ACTIVATIONS,
    NORM_LAYERS,
    make_activation,
    make_convnet,
    make_convnet1d,
    make_mlp,
    make_norm,
    mlp_for,
)
from .probes import ActivationProbe, drift_ratio
from .training import History, evaluate, get_device, run_seeds, seed_everything, stack_metric, train

# name -> the module that defines it, imported on first use (it draws figures: matplotlib)
_LAZY = {
    "accuracy_in_mode": "bn_utils.experiments.inference",
    "forgotten_eval_study": "bn_utils.experiments.inference",
    "running_stats_trace": "bn_utils.experiments.inference",
}


def __getattr__(name: str) -> Any:
    """The lazily imported names of :data:`_LAZY` (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'bn_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next lookup is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"
__all__ = [
    "Check",
    "CheckFailed",
    "check_below",
    "check_close",
    "check_range",
    "check_that",
    "max_abs_error",
    "Dataset",
    "batch_indices",
    "iterate_batches",
    "load_digits",
    "load_mnist1d",
    "make_spirals",
    "batch_norm",
    "batch_statistics",
    "batch_norm_gradients",
    "accuracy_in_mode",
    "forgotten_eval_study",
    "running_stats_trace",
    "BatchNorm1d",
    "BatchNorm2d",
    "GhostBatchNorm",
    "NoisyBatchNorm",
    "ACTIVATIONS",
    "NORM_LAYERS",
    "make_activation",
    "make_convnet",
    "make_convnet1d",
    "make_mlp",
    "make_norm",
    "mlp_for",
    "ActivationProbe",
    "drift_ratio",
    "History",
    "evaluate",
    "get_device",
    "run_seeds",
    "seed_everything",
    "stack_metric",
    "train",
]
