"""bn_utils: the shared code of the course "Batch Normalization, Measured".

Logic lives here, unit-tested; the notebooks import it, run it, plot and explain.
"""

from .checks import Check, CheckFailed, check_below, check_close, check_range, check_that, max_abs_error
from .data import Dataset, batch_indices, iterate_batches, load_digits, load_mnist1d, make_spirals
from .experiments.inference import accuracy_in_mode, forgotten_eval_study, running_stats_trace
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
