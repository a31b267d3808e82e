"""Where the course computes: the GPU when there is one, else the CPU (one place decides)."""

from __future__ import annotations

import os

import torch

__all__ = ["get_device"]


def get_device() -> torch.device:
    """CUDA when present, else CPU; ``BN_COURSE_DEVICE=cpu`` (or ``cuda``) forces a choice."""
    wanted = os.environ.get("BN_COURSE_DEVICE")
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"BN_COURSE_DEVICE={wanted} but torch sees no CUDA device")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
