"""The norm registry: every normalization the course knows, one :class:`NormSpec` each.

A spec says everything the rest of ``bn_utils`` needs to know about a norm: its display name and
colour (the same in every figure), how to build it for a fully connected layer (inputs (N, C)) and
for feature maps (N, C, H, W), which values one of its statistics averages over, whether it keeps
running statistics, how the stacking engines hold many copies of it as one layer, and its
from-scratch reference function (:mod:`bn_utils.functional`). Every other list and lookup is derived
from :data:`NORMS`: :data:`bn_utils.models.NORM_LAYERS` and :func:`bn_utils.models.make_norm`,
:data:`bn_utils.style.NORM_STYLES`, the checks of :class:`bn_utils.stacked.StackedMLP` and of the
conv-net stack, the error messages that list the valid names.

Adding a norm is one :func:`register` call below (plus its from-scratch function in
:mod:`bn_utils.functional`); ``tests/test_norms.py`` then checks that it builds, stacks or says why
not, matches its reference, averages over what it claims and has a style of its own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .functional import batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from .layers import BatchNorm1d, BatchNorm2d, BatchRenorm1d, BatchRenorm2d, GhostBatchNorm, NoisyBatchNorm
from .palette import EXTRA, PALETTE

__all__ = [
    "AXES",
    "MLP_STACKING",
    "CONV_STACKING",
    "PerExample",
    "NormSpec",
    "NORMS",
    "register",
    "get",
    "names",
    "spec_of",
    "default_groups",
]

# The axes of an (N, C, H·W) input that one statistic can average over: the examples of the batch
# (for ghost BN, of its ghost batch), all channels (a fully connected layer's units), a group of
# channels, the positions of a feature map.
AXES = ("N", "C", "C/G", "H·W")
# How a stack of M fully connected networks (bn_utils.stacked.StackedMLP) holds M copies of a norm:
# nothing to do; one batch norm over the M * C columns; ghost batches of every model in one call; the
# norm of each example on its own, with each model's own scale and shift (``NormSpec.per_example``).
MLP_STACKING = ("identity", "batch", "ghost", "per_example")
# How a stack of conv nets (bn_utils.stacked_conv.StackedConvNet) holds them: nothing to
# do; one per-channel norm over every network's channels; one group norm with every network's groups;
# the same ghost batches over one stacked per-channel batch norm.
CONV_STACKING = ("identity", "channels", "groups", "ghost")

# A "per_example" norm's stacking function: rows h (..., C) normalized one by one, without the affine.
PerExample = Callable[[torch.Tensor, nn.Module], torch.Tensor]


@dataclass(frozen=True)
class NormSpec:
    """One normalization: what it is, how it is built, how it is stacked, what it is checked against.

    ``dense(num_features, **options)`` builds it for inputs (N, C), ``conv(num_channels,
    **options)`` for feature maps (N, C, H, W), ``sequence(num_channels, **options)`` for 1-D feature
    maps (N, C, L), where it averages over the positions as ``conv`` does over the pixels; ``None``
    where it does not exist, with the reason in ``why_not_dense`` / ``why_not_conv`` /
    ``why_not_sequence`` (it is the error message). ``options`` are the layer's own
    keyword arguments; ``example_options`` gives a value to each one without a default (the tests
    build every norm with them).

    ``reference(x, **options)`` is the from-scratch function that computes the layer's output in
    training mode with its scale 1 and shift 0 (a freshly built layer), for either kind of input it
    is built for; ``None`` with the reason in ``why_no_reference``.
    """

    name: str
    label: str  # the display name in every figure ("BN")
    color: str  # its colour in every figure (hex)
    citation: str  # who introduced it
    dense: Callable[..., nn.Module] | None
    conv: Callable[..., nn.Module] | None
    averages_over: tuple[str, ...]  # the axes of AXES one statistic averages over
    running_statistics: bool  # keeps running averages of batch statistics for inference
    reference: Callable[..., torch.Tensor] | None
    mlp_stacking: str | None  # one of MLP_STACKING, None where StackedMLP cannot hold it
    conv_stacking: str | None  # one of CONV_STACKING, None where the conv-net stack cannot hold it
    centres: bool = True  # subtracts a mean (RMS norm does not)
    per_example: PerExample | None = None  # the function of "per_example" stacking
    example_options: Mapping[str, Any] = field(default_factory=dict)
    sequence: Callable[..., nn.Module] | None = None
    why_not_dense: str = ""
    why_not_conv: str = ""
    why_not_sequence: str = "it is not built for 1-D feature maps (N, C, L)"
    why_not_stacked: str = ""
    why_no_reference: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not self.label:
            problems.append("a name and a label")
        if self.dense is None and self.conv is None:
            problems.append("a dense or a conv factory")
        if self.dense is None and not self.why_not_dense:
            problems.append("why_not_dense, since it has no dense factory")
        if self.conv is None and not self.why_not_conv:
            problems.append("why_not_conv, since it has no conv factory")
        if self.reference is None and not self.why_no_reference:
            problems.append("why_no_reference, since it has no reference function")
        if not set(self.averages_over) <= set(AXES):
            problems.append(f"averages_over within {AXES}")
        if self.mlp_stacking not in (*MLP_STACKING, None) or self.conv_stacking not in (*CONV_STACKING, None):
            problems.append(f"mlp_stacking in {MLP_STACKING} and conv_stacking in {CONV_STACKING} (or None)")
        if (self.mlp_stacking == "per_example") != (self.per_example is not None):
            problems.append("a per_example function exactly when mlp_stacking is 'per_example'")
        stacked = (self.mlp_stacking, self.dense), (self.conv_stacking, self.conv)
        if any(rule is None and factory is not None for rule, factory in stacked) and not self.why_not_stacked:
            problems.append("why_not_stacked, since a stacking engine cannot hold it")
        if self.running_statistics and "N" not in self.averages_over:
            problems.append("batch statistics (N in averages_over) to keep running statistics of")
        if problems:
            raise ValueError(f"norm {self.name!r} needs " + "; ".join(problems))

    def factory(self, spatial: int | bool) -> Callable[..., nn.Module] | None:
        """The factory for inputs of this kind (``spatial`` as in :meth:`build`), None where there is none."""
        return (self.dense, self.sequence, self.conv)[_dims(spatial)]

    @property
    def batch_statistics(self) -> bool:
        """Its statistics mix the examples of a batch (what makes a norm a *batch* norm)."""
        return "N" in self.averages_over

    def build(self, num_features: int, spatial: int | bool = False, **options: Any) -> nn.Module:
        """The layer for ``num_features`` channels: of a fully connected layer (``spatial`` False or
        0), of 1-D feature maps (N, C, L) (1) or of 2-D ones (True or 2); ``ValueError`` saying why
        when that kind does not exist."""
        dims = _dims(spatial)
        factory, why = self.factory(dims), (self.why_not_dense, self.why_not_sequence, self.why_not_conv)[dims]
        if factory is None:
            raise ValueError(f"{self.name}: {why}" if dims == 1 else why)
        return factory(num_features, **options)


def _dims(spatial: int | bool) -> int:
    """0 (fully connected), 1 (sequences (N, C, L)) or 2 (images (N, C, H, W)) from ``spatial``."""
    if spatial not in (False, True, 0, 1, 2):
        raise ValueError(f"spatial must be False/0 (units), 1 (sequences) or True/2 (images), got {spatial!r}")
    return 2 if spatial is True else int(spatial)


NORMS: dict[str, NormSpec] = {}


def register(spec: NormSpec) -> NormSpec:
    """Add ``spec`` to :data:`NORMS` (a name is registered once)."""
    if not isinstance(spec, NormSpec):
        raise TypeError(f"register needs a NormSpec, got {type(spec).__name__}")
    if spec.name in NORMS:
        raise ValueError(f"norm {spec.name!r} is already registered")
    colours = {other.color.lower(): other.name for other in NORMS.values()}
    if spec.color.lower() in colours:
        taken = colours[spec.color.lower()]
        raise ValueError(f"norm {spec.name!r} takes the colour of {taken!r}: one colour, one norm")
    NORMS[spec.name] = spec
    _module_type.cache_clear()
    return spec


def get(name: str) -> NormSpec:
    """The spec of the norm called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; valid names are: {', '.join(sorted(NORMS))}")
    return NORMS[name]


def names(where: Callable[[NormSpec], bool] | None = None) -> tuple[str, ...]:
    """The registered names, in registration order; only those whose spec satisfies ``where``
    when given, e.g. ``names(lambda spec: spec.conv is not None)``."""
    return tuple(name for name, spec in NORMS.items() if where is None or where(spec))


@functools.cache
def _module_type(name: str, dims: int) -> type[nn.Module] | None:
    """The class of the layer ``name`` builds for this kind of input (None if it builds none)."""
    spec = NORMS[name]
    if spec.factory(dims) is None:
        return None
    return type(spec.build(4, dims, **spec.example_options))


def _matching(module: nn.Module, spatial: int | bool) -> Iterator[NormSpec]:
    dims = _dims(spatial)
    return (spec for name, spec in NORMS.items() if _module_type(name, dims) is type(module))


def spec_of(module: nn.Module, *, spatial: int | bool) -> NormSpec | None:
    """The spec of the norm that builds layers of ``module``'s class for this kind of input
    (``spatial`` as in :meth:`NormSpec.build`: False/0 fully connected layers, 1 sequences, True/2
    images); None for a layer no registered norm builds. Layer, group and instance norm all build
    ``nn.GroupNorm`` for feature maps: the first of them is returned (they stack alike, which
    tests/test_norms.py checks)."""
    return next(_matching(module, spatial), None)


def default_groups(num_channels: int) -> int:
    """Group norm's default number of groups: gcd(C, 32), i.e. 32 when 32 divides C (Wu & He's choice)."""
    return math.gcd(num_channels, 32)


# ---------------------------------------------------------------------------------------------
# From-scratch references (training mode, scale 1, shift 0) and per-example stacking functions


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _batch_reference(x: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    return batch_norm(x, None, None, training=True, eps=eps)


def _ghost_reference(x: torch.Tensor, *, ghost_batch_size: int, eps: float = 1e-5) -> torch.Tensor:
    return torch.cat([_batch_reference(chunk, eps=eps) for chunk in x.split(ghost_batch_size)])


def _layer_reference(x: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    return layer_norm(x, tuple(x.shape[1:]), eps=eps)  # a unit vector (C) or a whole feature map (C, H, W)


def _group_reference(x: torch.Tensor, *, num_groups: int | None = None, eps: float = 1e-5) -> torch.Tensor:
    return group_norm(x, num_groups or default_groups(x.shape[1]), eps=eps)


def _instance_reference(x: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    return instance_norm(x, eps=eps)


def _rms_reference(x: torch.Tensor, *, eps: float | None = None) -> torch.Tensor:
    return rms_norm(x, tuple(x.shape[1:]), eps=eps)


def _layer_rows(h: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Layer norm of every row of h (..., C), as ``nn.LayerNorm`` computes it, without its affine."""
    assert isinstance(layer, nn.LayerNorm)
    return F.layer_norm(h, layer.normalized_shape, eps=layer.eps)


def _group_rows(h: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Group norm of every row of h (..., C), as ``nn.GroupNorm`` computes it, without its affine."""
    assert isinstance(layer, nn.GroupNorm)
    return F.group_norm(h.reshape(-1, h.shape[-1]), layer.num_groups, eps=layer.eps).view_as(h)


def _rms_rows(h: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """RMS norm of every row of h (..., C), as ``nn.RMSNorm`` computes it, without its scale."""
    assert isinstance(layer, nn.RMSNorm)
    return F.rms_norm(h, layer.normalized_shape, eps=layer.eps)


def _instance_norm(features: int, **options: Any) -> nn.Module:
    return nn.GroupNorm(features, features, **options)  # one group per channel, with a per-channel affine


def _group_norm(features: int, num_groups: int | None = None, **options: Any) -> nn.Module:
    return nn.GroupNorm(num_groups or default_groups(features), features, **options)


_BATCH_AXES = ("N", "H·W")
_NO_NOISE_STACK = "its noise is drawn at every step inside the layer, which the stacking engines do not reproduce"

register(
    NormSpec(
        name="none",
        label="no BN",
        color=PALETTE["vermillion"],
        citation="",
        dense=lambda features: nn.Identity(),
        conv=lambda features: nn.Identity(),
        sequence=lambda features: nn.Identity(),
        averages_over=(),
        running_statistics=False,
        reference=_identity,
        mlp_stacking="identity",
        conv_stacking="identity",
        centres=False,
    )
)
register(
    NormSpec(
        name="batch",
        label="BN",
        color=PALETTE["blue"],
        citation="Ioffe & Szegedy (2015)",
        dense=nn.BatchNorm1d,
        conv=nn.BatchNorm2d,
        sequence=nn.BatchNorm1d,
        averages_over=_BATCH_AXES,
        running_statistics=True,
        reference=_batch_reference,
        mlp_stacking="batch",
        conv_stacking="channels",
    )
)
register(
    NormSpec(
        name="batch_scratch",
        label="BN (from scratch)",
        color=PALETTE["sky"],
        citation="the course's drop-in for torch's BatchNorm1d/2d (chapter 1)",
        dense=BatchNorm1d,
        conv=BatchNorm2d,
        sequence=BatchNorm1d,
        averages_over=_BATCH_AXES,
        running_statistics=True,
        reference=_batch_reference,
        mlp_stacking="batch",
        conv_stacking="channels",
    )
)
register(
    NormSpec(
        name="batch_noisy",
        label="noisy BN",
        color=PALETTE["green"],
        citation="Santurkar et al. (2018)",
        dense=lambda features, **kw: NoisyBatchNorm(features, spatial=False, **kw),
        conv=lambda features, **kw: NoisyBatchNorm(features, spatial=True, **kw),
        sequence=lambda features, **kw: NoisyBatchNorm(features, spatial=False, **kw),
        averages_over=_BATCH_AXES,
        running_statistics=True,
        reference=None,
        mlp_stacking=None,
        conv_stacking=None,
        why_no_reference="its training output is BN's with fresh random noise: no deterministic reference",
        why_not_stacked=_NO_NOISE_STACK,
    )
)
register(
    NormSpec(
        name="batch_ghost",
        label="ghost BN",
        color=PALETTE["purple"],
        citation="Hoffer et al. (2017)",
        dense=lambda features, **kw: GhostBatchNorm(features, spatial=False, **kw),
        conv=lambda features, **kw: GhostBatchNorm(features, spatial=True, **kw),
        sequence=lambda features, **kw: GhostBatchNorm(features, spatial=False, **kw),
        averages_over=_BATCH_AXES,
        running_statistics=True,
        reference=_ghost_reference,
        mlp_stacking="ghost",
        conv_stacking="ghost",
        example_options={"ghost_batch_size": 2},
    )
)
register(
    NormSpec(
        name="layer",
        label="layer norm",
        color=PALETTE["orange"],
        citation="Ba et al. (2016)",
        # over a fully connected layer's units, or a feature map's channels and positions (one group)
        dense=nn.LayerNorm,
        conv=lambda features, **kw: nn.GroupNorm(1, features, **kw),
        sequence=lambda features, **kw: nn.GroupNorm(1, features, **kw),
        averages_over=("C", "H·W"),
        running_statistics=False,
        reference=_layer_reference,
        mlp_stacking="per_example",
        conv_stacking="groups",
        per_example=_layer_rows,
    )
)
register(
    NormSpec(
        name="group",
        label="group norm",
        color=PALETTE["black"],
        citation="Wu & He (2018)",
        # units in groups; by default gcd(features, 32) groups (32 if it divides)
        dense=_group_norm,
        conv=_group_norm,
        sequence=_group_norm,
        averages_over=("C/G", "H·W"),
        running_statistics=False,
        reference=_group_reference,
        mlp_stacking="per_example",
        conv_stacking="groups",
        per_example=_group_rows,
    )
)
register(
    NormSpec(
        name="batch_renorm",
        label="batch renorm",
        color=EXTRA["wine"],  # Okabe & Ito's palette has no colour left
        citation="Ioffe (2017)",
        dense=BatchRenorm1d,
        conv=BatchRenorm2d,
        sequence=BatchRenorm1d,
        averages_over=_BATCH_AXES,
        running_statistics=True,
        # a fresh layer is in its warm-up (r = 1, d = 0): batch norm exactly
        reference=_batch_reference,
        mlp_stacking=None,
        conv_stacking="channels",
        why_not_stacked="StackedMLP does not apply batch renorm's corrections r and d; the conv-net stack does",
    )
)
register(
    NormSpec(
        name="instance",
        label="instance norm",
        color=EXTRA["dark_yellow"],  # a darker yellow, visible on white
        citation="Ulyanov et al. (2016)",
        # each channel of each example over its own positions (one group per channel)
        dense=None,
        conv=_instance_norm,
        sequence=_instance_norm,
        averages_over=("H·W",),
        running_statistics=False,
        reference=_instance_reference,
        mlp_stacking=None,
        conv_stacking="groups",
        why_not_dense="instance norm needs feature maps (a conv net): a fully connected unit has one value",
    )
)
register(
    NormSpec(
        name="rms",
        label="RMS norm",
        color=EXTRA["indigo"],
        citation="Zhang & Sennrich (2019)",
        # each example divided by the root mean square of its units: no mean subtracted, a scale, no shift
        dense=nn.RMSNorm,
        conv=None,
        averages_over=("C",),
        running_statistics=False,
        reference=_rms_reference,
        mlp_stacking="per_example",
        conv_stacking=None,
        centres=False,
        per_example=_rms_rows,
        why_not_conv=(
            "RMS norm is built for fully connected layers only: torch's RMSNorm normalizes trailing "
            "dimensions whose size (C, H, W) a conv layer does not know when it is built"
        ),
        why_not_sequence=(
            "RMS norm is built for fully connected layers only: torch's RMSNorm normalizes trailing "
            "dimensions whose size (C, L) a 1-D conv layer does not know when it is built"
        ),
    )
)
