"""Seeding: one call makes a run repeat exactly (Python, NumPy and torch's generators)."""

from __future__ import annotations

import random

import numpy as np
import torch

from . import _validate as valid

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run repeats exactly."""
    seed = valid.check_seed("seed", seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
