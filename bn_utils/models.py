"""Model builders with a ``norm`` switch, so one experiment compares normalizations.

Each hidden block is ``linear (or conv) -> norm -> activation`` by default: batch norm sits
before the nonlinearity as in Ioffe & Szegedy (2015), and the layer before a norm that subtracts a
mean has no bias (the norm's shift beta replaces it). ``norm_position="after"`` builds ``linear -> activation ->
norm`` instead, and then the linear layer keeps its bias (the activation, not a norm, follows
it). Blocks are named ``blocks[i].linear / .norm / .act`` in either order, so probes can hook
any of them.

The normalizations are those of the norm registry (:data:`bn_utils.norms.NORMS`): a norm registered
there is known to every builder and to the error messages.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from . import _validate as valid
from . import norms
from .data import Dataset
from .seeding import seed_everything

__all__ = [
    "NORM_LAYERS",
    "ACTIVATIONS",
    "NORM_POSITIONS",
    "RESIDUAL_ORDERS",
    "BRANCH_INITS",
    "make_norm",
    "make_activation",
    "make_mlp",
    "mlp_for",
    "make_convnet",
    "make_convnet1d",
    "READOUTS",
    "hidden_blocks",
    "ResidualBlock",
    "ResidualMLP",
    "make_residual_mlp",
]

# where a block's norm sits relative to its activation
NORM_POSITIONS = ("before", "after")


class _NormLayers(Mapping[str, Callable[..., nn.Module]]):
    """A read-only view of the norm registry: always in step with it, never a copy to keep in sync."""

    def __getitem__(self, name: str) -> Callable[..., nn.Module]:
        return norms.NORMS[name].build

    def __iter__(self) -> Iterator[str]:
        return iter(norms.NORMS)

    def __len__(self) -> int:
        return len(norms.NORMS)


# name -> factory(num_features, spatial, **options) building the layer for fully connected (spatial
# false) or 2-D (spatial true) inputs; options are the layer's own keyword arguments (``norm_kwargs``
# of the builders). Derived from the norm registry, :data:`bn_utils.norms.NORMS`.
NORM_LAYERS: Mapping[str, Callable[..., nn.Module]] = _NormLayers()


# name -> (module factory, gain): the gain keeps activations' scale through depth at
# init_scale=1 (He et al. 2015 for ReLU; 1 for the saturating ones, as in LeCun init).
ACTIVATIONS: dict[str, tuple[Callable[[], nn.Module], float]] = {
    "relu": (nn.ReLU, math.sqrt(2.0)),
    "tanh": (nn.Tanh, 1.0),
    "sigmoid": (nn.Sigmoid, 1.0),
    "identity": (nn.Identity, 1.0),
}


def _lookup(table: dict, name: str, what: str) -> Any:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; valid names are: {', '.join(sorted(table))}")
    return table[name]


def make_norm(name: str, num_features: int, *, spatial: bool | int = False, **options: Any) -> nn.Module:
    """The normalization layer called ``name`` for ``num_features`` channels: of a fully connected
    layer (``spatial=False`` or 0), of 1-D feature maps (N, C, L) (``spatial=1``) or of 2-D ones
    (``spatial=True`` or 2); ``options`` go to the layer (e.g. ``max_shift`` for ``batch_noisy``)."""
    spec = norms.get(name)
    valid.check_batch_norm_options(num_features, options)
    try:
        return spec.build(num_features, spatial, **options)
    except TypeError as exc:
        raise ValueError(f"cannot build norm {name!r} with the options {sorted(options)}: {exc}") from None


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (see ``ACTIVATIONS``)."""
    return _lookup(ACTIVATIONS, name, "activation")[0]()


def _block(layers: dict[str, nn.Module], norm_position: str) -> nn.Sequential:
    """One hidden block, ``linear -> norm -> act`` (before) or ``linear -> act -> norm`` (after),
    then any further layers (pooling) in the order given."""
    order = ["linear", "norm", "act"] if norm_position == "before" else ["linear", "act", "norm"]
    order += [name for name in layers if name not in order]
    return nn.Sequential(OrderedDict((name, layers[name]) for name in order))


def _keeps_bias(norm: str, norm_position: str) -> bool:
    """The linear (or conv) layer before a norm has no bias when the norm subtracts a mean (its shift
    beta replaces the bias); after the activation, or before a norm that does not centre, it keeps one."""
    return norm_position == "after" or not norms.get(norm).centres


def _init_weight(
    layer: nn.Linear | nn.Conv1d | nn.Conv2d, activation: str, init_scale: float, weight_std: float | None
) -> None:
    """Gaussian weights: a fixed ``weight_std``, or init_scale * gain / sqrt(fan_in)."""
    fan_in = layer.weight[0].numel()
    std = weight_std if weight_std is not None else init_scale * ACTIVATIONS[activation][1] / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.normal_(0.0, std)
        if layer.bias is not None:
            layer.bias.zero_()


def _check_common(
    inputs: tuple[str, int],
    num_classes: object,
    norm: str,
    activation: str,
    init_scale: object,
    weight_std: object,
    norm_kwargs: object,
    norm_position: object,
) -> None:
    valid.check_int(*inputs)
    valid.check_int("num_classes", num_classes)
    norms.get(norm)
    if norm_position not in NORM_POSITIONS:
        raise ValueError(f"norm_position must be 'before' or 'after' the activation, got {norm_position!r}")
    _lookup(ACTIVATIONS, activation, "activation")
    valid.check_number("init_scale", init_scale, 0, low_open=True)
    if weight_std is not None:
        valid.check_number("weight_std", weight_std, 0, low_open=True)
    if norm_kwargs is not None and not isinstance(norm_kwargs, Mapping):
        raise TypeError(f"norm_kwargs must be a dict of the norm layer's options or None, got {norm_kwargs!r}")


def _check_channels(channels: object) -> None:
    """The conv nets' ``channels``: a non-empty tuple (or list) of conv widths, one per block."""
    valid.check_type("channels", channels, (tuple, list), "a tuple of conv widths, e.g. (16, 32)")
    if not channels:
        raise ValueError("channels must name at least one conv block, e.g. (16, 32)")
    for width in cast("Sequence[object]", channels):
        valid.check_int("each of channels", width)


def make_mlp(
    in_features: int,
    num_classes: int,
    *,
    depth: int = 3,
    width: int = 100,
    norm: str = "none",
    activation: str = "relu",
    init_scale: float = 1.0,
    head_init_scale: float | None = None,
    weight_std: float | None = None,
    norm_kwargs: dict | None = None,
    dropout: float = 0.0,
    norm_position: str = "before",
) -> nn.Sequential:
    """A fully connected net: ``depth`` hidden blocks of ``width`` units, then a linear head.

    Weights are Gaussian with std ``init_scale * gain / sqrt(fan_in)`` (gain sqrt(2) for
    ReLU, 1 otherwise), or exactly ``weight_std`` when given (e.g. the "small Gaussian"
    initialisation of the BN paper). ``head_init_scale`` (default: ``init_scale``) sets the
    head's scale on its own: no norm follows the head, so BN cannot undo its scale.
    ``norm_kwargs`` go to every norm layer. ``norm_position`` puts the norm ``"before"`` the
    activation (the BN paper's choice; the linear layer then has no bias) or ``"after"`` it.
    ``dropout`` > 0 adds ``nn.Dropout(dropout)`` at the end of each block (``blocks[i].drop``);
    at 0 (the default) there is no dropout layer. ``model.blocks[i]`` is the i-th hidden block.
    """
    _check_common(
        ("in_features", in_features), num_classes, norm, activation, init_scale, weight_std, norm_kwargs, norm_position
    )
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
    head_init_scale = init_scale if head_init_scale is None else head_init_scale
    valid.check_number("head_init_scale", head_init_scale, 0, low_open=True)
    valid.check_int("depth", depth, None)
    valid.check_int("width", width, None)
    if depth < 0 or width < 1:
        raise ValueError(f"need depth >= 0 and width >= 1, got depth={depth}, width={width}")
    blocks, features = [], in_features
    for _ in range(depth):
        linear = nn.Linear(features, width, bias=_keeps_bias(norm, norm_position))
        _init_weight(linear, activation, init_scale, weight_std)
        layers = dict(
            linear=linear, norm=make_norm(norm, width, **(norm_kwargs or {})), act=make_activation(activation)
        )
        if dropout > 0:
            layers["drop"] = nn.Dropout(dropout)
        blocks.append(_block(layers, norm_position))
        features = width
    head = nn.Linear(features, num_classes)
    _init_weight(head, "identity", head_init_scale, weight_std)
    return nn.Sequential(OrderedDict(blocks=nn.Sequential(*blocks), head=head))


def mlp_for(data: Dataset, *, seed: int, **options: Any) -> nn.Sequential:
    """A fresh :func:`make_mlp` sized for ``data`` (its input width and classes), its weights drawn
    from ``seed``: one seed, one network, the same in every experiment that uses that seed."""
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a bn_utils Dataset, got {type(data).__name__}")
    seed_everything(seed)
    return make_mlp(data.input_shape[0], data.num_classes, **options)


def make_convnet(
    in_channels: int = 1,
    num_classes: int = 10,
    *,
    channels: tuple[int, ...] = (16, 32),
    norm: str = "none",
    activation: str = "relu",
    init_scale: float = 1.0,
    weight_std: float | None = None,
    norm_kwargs: dict | None = None,
    norm_position: str = "before",
) -> nn.Sequential:
    """A small conv net for 8x8 images: per entry of ``channels`` a 3x3 conv -> norm ->
    activation -> 2x2 max-pool block (conv -> activation -> norm -> pool with
    ``norm_position="after"``), then global average pooling and a linear head."""
    _check_common(
        ("in_channels", in_channels), num_classes, norm, activation, init_scale, weight_std, norm_kwargs, norm_position
    )
    _check_channels(channels)
    blocks, features = [], in_channels
    for width in channels:
        conv = nn.Conv2d(features, width, kernel_size=3, padding=1, bias=_keeps_bias(norm, norm_position))
        _init_weight(conv, activation, init_scale, weight_std)
        layers = dict(
            linear=conv,
            norm=make_norm(norm, width, spatial=True, **(norm_kwargs or {})),
            act=make_activation(activation),
            pool=nn.MaxPool2d(2),
        )
        blocks.append(_block(layers, norm_position))
        features = width
    head = nn.Linear(features, num_classes)
    _init_weight(head, "identity", init_scale, weight_std)
    return nn.Sequential(
        OrderedDict(blocks=nn.Sequential(*blocks), pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), head=head)
    )


# how a 1-D conv net turns its last feature map into the head's input
READOUTS = ("average", "flatten")


def make_convnet1d(
    in_channels: int = 1,
    num_classes: int = 10,
    *,
    channels: tuple[int, ...] = (16, 32),
    kernel_size: int | tuple[int, ...] = 3,
    stride: int = 1,
    pool: int | None = 2,
    readout: str = "average",
    length: int | None = None,
    norm: str = "none",
    activation: str = "relu",
    init_scale: float = 1.0,
    weight_std: float | None = None,
    norm_kwargs: dict | None = None,
    norm_position: str = "before",
) -> nn.Sequential:
    """A conv net for sequences (N, ``in_channels``, length), e.g. MNIST-1D: per entry of
    ``channels`` a 1-D conv (``kernel_size``, one for all blocks or one per block, padding
    kernel_size // 2, ``stride``) -> norm -> activation -> max-pool by ``pool`` (None: no pooling)
    block, the order of :func:`make_convnet`'s blocks; then the head. Batch norm here averages
    over the examples and the positions of each channel, as in the 2-D conv net.

    ``readout="average"`` averages each channel over the positions before the linear head (as
    :func:`make_convnet` does); ``readout="flatten"`` feeds the whole last feature map (channels x
    positions) to the head, as the published MNIST-1D baseline does, and then needs the input's
    ``length``. The defaults mirror the digits' :func:`make_convnet` (two blocks of 16 and 32
    channels, kernel 3, max-pool 2, average readout); the published baseline CNN is
    ``channels=(25, 25, 25), kernel_size=(5, 3, 3), stride=2, pool=None, readout="flatten",
    length=40``."""
    _check_common(
        ("in_channels", in_channels), num_classes, norm, activation, init_scale, weight_std, norm_kwargs, norm_position
    )
    _check_channels(channels)
    sizes = (kernel_size,) * len(channels) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(sizes) != len(channels):
        raise ValueError(f"kernel_size must be one size or one per block ({len(channels)}), got {kernel_size!r}")
    for size in sizes:
        valid.check_int("kernel_size", size)
    valid.check_int("stride", stride)
    if pool is not None:
        valid.check_int("pool", pool)
    if readout not in READOUTS:
        raise ValueError(f"readout must be 'average' or 'flatten', got {readout!r}")
    if readout == "flatten" and length is None:
        raise ValueError("readout='flatten' sizes the head from the sequence length: give length=, e.g. 40")
    positions = None if length is None else valid.check_int("length", length)
    blocks, features = [], in_channels
    for width, size in zip(channels, sizes, strict=True):
        conv = nn.Conv1d(
            features,
            width,
            kernel_size=size,
            stride=stride,
            padding=size // 2,
            bias=_keeps_bias(norm, norm_position),
        )
        _init_weight(conv, activation, init_scale, weight_std)
        layers = dict(
            linear=conv,
            norm=make_norm(norm, width, spatial=1, **(norm_kwargs or {})),
            act=make_activation(activation),
        )
        if pool is not None and pool > 1:
            layers["pool"] = nn.MaxPool1d(pool)
        blocks.append(_block(layers, norm_position))
        features = width
        if positions is not None:
            positions = (positions + 2 * (size // 2) - size) // stride + 1
            if pool is not None and pool > 1:
                positions //= pool
            if positions < 1:
                raise ValueError(f"a sequence of length {length} shrinks to nothing in these {len(channels)} blocks")
    readout_layers: list[tuple[str, nn.Module]] = []
    if readout == "average":
        readout_layers.append(("pool", nn.AdaptiveAvgPool1d(1)))
    else:
        features *= cast(int, positions)
    head = nn.Linear(features, num_classes)
    _init_weight(head, "identity", init_scale, weight_std)
    return nn.Sequential(
        OrderedDict([("blocks", nn.Sequential(*blocks)), *readout_layers, ("flatten", nn.Flatten()), ("head", head)])
    )


def hidden_blocks(model: nn.Module) -> nn.Sequential:
    """The hidden blocks of a network built by :func:`make_mlp`, :func:`make_convnet` or :func:`make_convnet1d`
    (``model.blocks``), input side first."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise ValueError(
            f"expected a network built by make_mlp or make_convnet (with .blocks), got {type(model).__name__}"
        )
    return blocks


# where a residual block's norm and activation sit: before the branch's linear layer, on a clean
# identity path (He et al. 2016, "Identity mappings"), or after it, with the activation after the sum
# (He et al. 2016, the original ResNet)
RESIDUAL_ORDERS = ("pre", "post")

# how each residual branch starts: "default" (He initialisation), "zero" (the branch's output is 0),
# "scaled" (no norm: branch weights / sqrt(depth), the "1/sqrt(depth) scaling"), "bn_like" (no norm: branch l's weights
# / sqrt(l + 1) and the head / sqrt(depth + 1), BN's relative branch size at initialisation)
BRANCH_INITS = ("default", "zero", "scaled", "bn_like")


class ResidualBlock(nn.Module):
    """One residual block of width ``width`` with a one-layer branch. ``order="pre"``:
    ``h + linear(act(norm(h)))``; ``order="post"``: ``act(h + norm(linear(h)))``. The children are
    ``norm``, ``act``, ``linear`` (pre) or ``linear``, ``norm``, ``act`` (post), named as in
    :func:`make_mlp`'s blocks so the same probes and diagnostics apply."""

    # the children, added by name in __init__ (in the order of ``order``)
    norm: nn.Module
    act: nn.Module
    linear: nn.Linear

    def __init__(self, width: int, *, norm: str, activation: str, order: str, norm_kwargs: dict | None = None):
        super().__init__()
        if order not in RESIDUAL_ORDERS:
            raise ValueError(f"order must be 'pre' or 'post', got {order!r}")
        self.order = order
        layers = {
            "norm": make_norm(norm, width, **(norm_kwargs or {})),
            "act": make_activation(activation),
            "linear": nn.Linear(width, width, bias=False),
        }
        for name in ("norm", "act", "linear") if order == "pre" else ("linear", "norm", "act"):
            self.add_module(name, layers[name])

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        """The residual branch's output, the term added to the stream."""
        if self.order == "pre":
            return self.linear(self.act(self.norm(h)))
        return self.norm(self.linear(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The stream after this block."""
        out = h + self.branch(h)
        return out if self.order == "pre" else self.act(out)


class ResidualMLP(nn.Module):
    """``stem`` (linear, input to width) -> ``blocks`` (:class:`ResidualBlock`) -> ``final`` (norm
    -> activation in the pre-activation order, nothing in the post-activation order, whose stream
    has already been through an activation) -> ``head``. Built by :func:`make_residual_mlp`."""

    def __init__(
        self, stem: nn.Linear, blocks: list[ResidualBlock], final: nn.Sequential, head: nn.Linear, **config: Any
    ):
        super().__init__()
        self.stem, self.blocks, self.final, self.head = stem, nn.Sequential(*blocks), final, head
        self.config = dict(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for inputs (batch, in_features)."""
        return self.head(self.final(self.blocks(self.stem(x))))

    def streams(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(streams, branches): the residual stream after the stem and after each block (depth + 1
        tensors), and each block's branch output (depth tensors), in the model's current mode."""
        h = self.stem(x)
        streams, branches = [h], []
        for block in cast("Iterable[ResidualBlock]", self.blocks):  # built from ResidualBlocks only
            branches.append(block.branch(h))
            h = h + branches[-1] if block.order == "pre" else block.act(h + branches[-1])
            streams.append(h)
        return streams, branches


def make_residual_mlp(
    in_features: int,
    num_classes: int,
    *,
    depth: int = 10,
    width: int = 100,
    norm: str = "none",
    activation: str = "relu",
    order: str = "pre",
    branch_init: str = "default",
    norm_kwargs: dict | None = None,
) -> ResidualMLP:
    """A residual MLP: a linear stem to ``width`` units, ``depth`` residual blocks with one linear
    layer per branch (:class:`ResidualBlock`, ``order`` "pre" or "post"), and a linear head.

    The stem and head have Gaussian weights of std 1/sqrt(fan_in) and zero biases; each branch's
    linear layer (no bias) has He's std gain/sqrt(width), then ``branch_init``:

    - ``"default"``: nothing more;
    - ``"zero"``: every branch starts at zero, so the network starts as stem -> head: with a norm in
      the post-activation order, the norm's scale gamma is 0 (Goyal et al. 2017's zero-gamma);
      otherwise the branch's linear weights are 0 (in the pre-activation order, gamma = 0 would feed
      0 to the ReLU, whose gradient at 0 is 0: the branch would never start);
    - ``"scaled"`` (``norm="none"`` only): branch weights divided by sqrt(depth), so the stream's
      variance grows at most by a factor of about e over all blocks, and the head at zero (the
      "1/sqrt(depth) scaling"). Fixup (Zhang et al. 2019) zeroes each branch's last layer and scales
      its other layers by depth^(-1/(2m-2)) for m-layer branches: for one-layer branches that is zero
      branches; 1/sqrt(depth) is Fixup's exponent for m = 2, applied to the only layer;
    - ``"bn_like"`` (``norm="none"``, ``order="pre"`` only): block l's weights (l = 0, 1, ...) divided by
      sqrt(l + 1) and the head's by sqrt(depth + 1): the relative branch size that batch norm gives
      block l at initialisation, and the scale its final norm gives the head, without any norm.
    """
    _check_common(("in_features", in_features), num_classes, norm, activation, 1.0, None, norm_kwargs, "before")
    valid.check_int("depth", depth, 0)
    valid.check_int("width", width)
    if order not in RESIDUAL_ORDERS:
        raise ValueError(
            f"order must be 'pre' (norm -> act -> linear) or 'post' (linear -> norm, act after the sum), got {order!r}"
        )
    if branch_init not in BRANCH_INITS:
        raise ValueError(f"unknown branch_init {branch_init!r}; valid names are: {', '.join(BRANCH_INITS)}")
    if branch_init in ("scaled", "bn_like") and norms.get(norm).averages_over:  # a norm that normalizes
        raise ValueError(
            f"branch_init={branch_init!r} replaces normalization: use it with norm='none', got norm={norm!r}"
        )
    if branch_init == "bn_like" and order != "pre":
        raise ValueError("branch_init='bn_like' matches the pre-activation order's stream: use order='pre'")
    stem = nn.Linear(in_features, width)
    _init_weight(stem, "identity", 1.0, None)
    blocks = []
    for index in range(depth):
        block = ResidualBlock(width, norm=norm, activation=activation, order=order, norm_kwargs=norm_kwargs)
        _init_weight(block.linear, activation, 1.0, None)
        with torch.no_grad():
            if branch_init == "zero":
                gamma = getattr(block.norm, "weight", None)
                (gamma if order == "post" and gamma is not None else block.linear.weight).zero_()
            elif branch_init == "scaled":
                block.linear.weight.div_(math.sqrt(depth))
            elif branch_init == "bn_like":
                block.linear.weight.div_(math.sqrt(index + 1))
        blocks.append(block)
    if order == "pre":
        final = nn.Sequential(
            OrderedDict(norm=make_norm(norm, width, **(norm_kwargs or {})), act=make_activation(activation))
        )
    else:
        final = nn.Sequential()
    head = nn.Linear(width, num_classes)
    _init_weight(head, "identity", 1.0, None)
    with torch.no_grad():
        if branch_init == "scaled":
            head.weight.zero_()
        elif branch_init == "bn_like":
            head.weight.div_(math.sqrt(depth + 1))
    return ResidualMLP(
        stem,
        blocks,
        final,
        head,
        depth=depth,
        width=width,
        norm=norm,
        activation=activation,
        order=order,
        branch_init=branch_init,
    )
