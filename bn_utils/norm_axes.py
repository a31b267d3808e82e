"""Which values one statistic of a normalization averages, read off its from-scratch reference.

Everything here comes from the norm registry (:mod:`bn_utils.norms`): the norms worth drawing are the
registered ones that normalize feature maps and have a reference function, one per distinct set of
axes (:attr:`~bn_utils.norms.NormSpec.averages_over`), and each is computed by its spec's
``reference``. A norm registered later appears here without an edit.

- :data:`AXES_NORMS`: those norms, in the order of Wu & He (2018)'s Figure 2, then any others in the
  registry's order;
- :func:`reference_normalization`: feature maps normalized by a norm's reference (training mode, no
  affine);
- :func:`statistic_support`: the inputs one output's statistics average over, found by
  differentiating that output (chapter 8 draws them with
  :func:`bn_utils.experiments.batch_size.plot_normalization_axes`).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from . import _validate as valid
from . import norms as norm_registry

__all__ = ["AXES_NORMS", "WU_HE_ORDER", "reference_normalization", "statistic_support"]

# Wu & He (2018), Figure 2: batch, layer, instance and group norm, in that order
WU_HE_ORDER = ("batch", "layer", "instance", "group")


def _drawn_norms() -> tuple[str, ...]:
    """The registered norms that normalize feature maps (N, C, H, W) with a reference function and
    average over something, the first registered of each distinct set of axes (batch norm, not its
    from-scratch copy or ghost BN; layer norm, not RMS norm); ordered as :data:`WU_HE_ORDER`, then
    the others in the registry's order."""
    seen: set[frozenset[str]] = set()
    found = []
    for name in norm_registry.names(lambda spec: spec.conv is not None and spec.reference is not None):
        axes = frozenset(norm_registry.get(name).averages_over)
        if axes and axes not in seen:
            seen.add(axes)
            found.append(name)
    rank = {name: i for i, name in enumerate(WU_HE_ORDER)}
    return tuple(sorted(found, key=lambda name: rank.get(name, len(rank))))  # stable: the rest keep their order


# the normalizations whose statistics chapter 8's axes figure shows
AXES_NORMS = _drawn_norms()


def reference_normalization(name: str, x: torch.Tensor, *, num_groups: int = 2) -> torch.Tensor:
    """``x`` (N, C, *) normalized without affine by the from-scratch reference of the registered
    norm ``name`` (its spec's ``reference``, in training mode; e.g. batch norm by
    :func:`bn_utils.functional.batch_norm`, layer norm over (C, *)); ``num_groups`` for a reference
    that takes a number of groups (group norm), a norm's example options for one that needs others
    (ghost BN's ghost batch size)."""
    valid.check_type("x", x, torch.Tensor, "a torch.Tensor")
    if x.dim() < 3:
        raise ValueError(f"expected feature maps of shape (N, C, *), got shape {tuple(x.shape)}")
    names = norm_registry.names(lambda spec: spec.conv is not None and spec.reference is not None)
    if name not in names:
        raise ValueError(
            f"unknown normalization {name!r} (no registered norm of feature maps with a reference); "
            f"valid names are: {', '.join(names)}"
        )
    spec = norm_registry.get(name)
    reference = spec.reference
    assert reference is not None  # names() kept only norms with one
    options = dict(spec.example_options)
    if "num_groups" in inspect.signature(reference).parameters:
        options["num_groups"] = num_groups
    return reference(x, **options)


def statistic_support(
    name: str, shape: tuple[int, int, int] = (4, 6, 5), index: tuple[int, int, int] = (1, 2, 0), *, num_groups: int = 2
) -> np.ndarray:
    """Boolean (N, C, positions) mask of the inputs that share the statistics of the output at
    ``index``: read off the code by differentiating the (centred) output at ``index`` with
    respect to every input, in float64. Only the inputs its mean and variance average over, and
    the input itself, get a non-zero gradient."""
    valid.check_type("shape", shape, tuple, "a tuple (N, C, positions)")
    if len(shape) != 3:
        raise ValueError(f"shape must be (N, C, positions), got {shape!r}")
    for size in shape:
        valid.check_int("each of shape", size)
    if len(index) != 3 or not all(valid.is_int(i) and 0 <= i < s for i, s in zip(index, shape, strict=False)):
        raise ValueError(f"index must be a position (n, c, p) inside shape {shape}, got {index!r}")
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = reference_normalization(name, x, num_groups=num_groups)
    (grad,) = torch.autograd.grad(y[index], x)
    return (grad.abs() > 1e-12).numpy()
