"""Many conv nets trained as one: the seeds (or the norms) of one configuration stacked into a
single network of grouped convolutions, one group per network, and trained exactly as separate
runs (the conv-net counterpart of :mod:`bn_utils.stacked`'s MLPs).

- :class:`StackedConvNet`: networks built by :func:`bn_utils.models.make_convnet` (or
  :func:`~bn_utils.models.make_convnet1d` with stride 1 and the average readout) as one module;
  every norm stacked as the norm registry (:mod:`bn_utils.norms`) says;
- :func:`train_stacked_convnets`: SGD on all slots at once, through the one step loop of every
  stacked run (:func:`bn_utils.stacked.run_steps`: each slot's mini-batches from
  :func:`~bn_utils.stacked.epoch_batches`, shuffled as :func:`bn_utils.training.train` draws them
  or class-sorted, and the divergence rule); what is the conv nets' own is the per-slot loss
  (over a (batch, slots) logit layout) and ``torch.optim.SGD``'s arithmetic for the update;
- recomputing a stack's batch-norm running statistics from one batch is not here but in
  :func:`bn_utils.stacked.recompute_running_statistics`, the one function for any module (this
  stack too) and for MLP stacks;
- :func:`slot_inputs` and :func:`repeat_inputs`: the stack's input layout (each slot its own
  mini-batch; every slot the same examples), and :func:`stacked_running_statistics`: a stacked
  norm's running statistics over every slot's channels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, cast

import numpy as np
import torch
from torch import nn

from . import _validate as valid
from . import norms as norm_registry
from .data import Dataset, check_dataset
from .layers import GhostBatchNorm
from .models import hidden_blocks
from .stacked import ORDERS, TorchOptimizerStep, epoch_batches, run_steps

__all__ = [
    "ORDERS",
    "StackedConvNet",
    "epoch_batches",
    "train_stacked_convnets",
    "slot_inputs",
    "repeat_inputs",
    "stacked_running_statistics",
]

# the per-channel norms (``num_features`` channels, each with its own statistics): torch's batch
# and instance norms, and the course's batch norms and batch renorms
_PER_CHANNEL_NORMS = (nn.modules.batchnorm._NormBase,)


def _stack_norm(norms: Sequence[nn.Module], slots: int, spatial: int = 2) -> nn.Module:
    """One norm over the channels of every slot, holding each slot's parameters and buffers:
    per-channel norms stack by concatenating their channels, group norms also multiply their
    number of groups (groups never straddle two slots). ``spatial``: 2 for images, 1 for sequences."""
    first = norms[0]
    spec = norm_registry.spec_of(first, spatial=spatial)  # the registry says how it stacks
    rule = None if spec is None else spec.conv_stacking
    if rule == "identity":
        return nn.Identity()
    if rule == "ghost" and isinstance(first, GhostBatchNorm):  # the same ghost batches, over the stacked inner BN
        ghost = copy.deepcopy(first)
        ghost.bn = cast(nn.BatchNorm2d, _stack_norm([cast(GhostBatchNorm, n).bn for n in norms], slots, spatial))
        return ghost
    stacked = copy.deepcopy(first)  # first's class and sizes
    if rule == "groups" and isinstance(stacked, nn.GroupNorm):
        stacked.num_groups, stacked.num_channels = slots * stacked.num_groups, slots * stacked.num_channels
    elif rule == "channels" and isinstance(stacked, _PER_CHANNEL_NORMS):
        stacked.num_features = slots * stacked.num_features
    else:
        why = "no registered norm builds it" if spec is None else spec.why_not_stacked
        raise ValueError(f"cannot stack the norm {type(first).__name__}: {why}")
    with torch.no_grad():
        for name, _ in first.named_parameters(recurse=False):
            setattr(stacked, name, nn.Parameter(torch.cat([getattr(n, name).detach() for n in norms])))
        for name, buffer in first.named_buffers(recurse=False):
            if buffer is not None and buffer.dim():
                stacked._buffers[name] = torch.cat([getattr(n, name) for n in norms]).clone()
    return stacked


class _ConvOptions(TypedDict):
    """The options a stacked convolution copies from the networks' own."""

    kernel_size: tuple[int, int]
    padding: str | tuple[int, int]
    groups: int


def _pair(size: tuple[int, ...]) -> tuple[int, int]:
    """A ``Conv2d``'s (height, width) attribute (torch types them ``tuple[int, ...]``) as a pair."""
    height, width = size
    return height, width


class _MaskedBias:
    """Mixed in before a convolution class (``nn.Conv1d`` or ``nn.Conv2d``): a grouped convolution
    whose bias is used (and learns) only where ``bias_mask`` is 1: the slots whose own network has
    a bias."""

    bias_mask: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bias_mask: torch.Tensor,
        kernel_size: Any,
        padding: Any,
        groups: int,
    ) -> None:
        conv: Any = super()  # the convolution class after this one in the bases
        conv.__init__(in_channels, out_channels, kernel_size=kernel_size, padding=padding, groups=groups, bias=True)
        module = cast(nn.Module, self)
        module.register_buffer("bias_mask", bias_mask.to(module.get_parameter("weight")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv: Any = self  # always a bias (never None)
        return conv._conv_forward(x, conv.weight, conv.bias * self.bias_mask)


class _MaskedBiasConv1d(_MaskedBias, nn.Conv1d):
    """:class:`_MaskedBias` for sequences (the 1-D conv nets of :func:`make_convnet1d`)."""


class _MaskedBiasConv2d(_MaskedBias, nn.Conv2d):
    """:class:`_MaskedBias` for images (the conv nets of :func:`make_convnet`)."""


class _ChannelSplitNorm(nn.Module):
    """Different stacked norms side by side: part k normalizes the next ``sizes[k]`` channels."""

    def __init__(self, parts: Sequence[nn.Module], sizes: Sequence[int]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.sizes = list(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(chunk) for part, chunk in zip(self.parts, x.split(self.sizes, dim=1), strict=True)], 1)


def _stack_norms(norms: Sequence[nn.Module], channels: int, spatial: int = 2) -> nn.Module:
    """The norms of all slots as one module: runs of slots with the same kind of norm stacked by
    :func:`_stack_norm`, side by side when the kinds differ (``spatial``: 2 images, 1 sequences)."""
    runs: list[list[nn.Module]] = []
    for norm in norms:
        if runs and type(runs[-1][0]) is type(norm) and repr(runs[-1][0]) == repr(norm):
            runs[-1].append(norm)
        else:
            runs.append([norm])
    if len(runs) == 1:
        return _stack_norm(norms, len(norms), spatial)
    stacked = [_stack_norm(run, len(run), spatial) for run in runs]
    return _ChannelSplitNorm(stacked, [len(run) * channels for run in runs])


class StackedConvNet(nn.Module):
    """Several :func:`bn_utils.models.make_convnet` networks of one architecture as one network
    (or several :func:`bn_utils.models.make_convnet1d` ones with stride 1 and the average readout):
    every convolution grouped with one group per network, every norm stacked over the networks'
    channels (a per-channel norm over all of them, group norm with the groups of all of them;
    networks with different norms get theirs side by side), the head a grouped 1x1 convolution.
    Input (B, slots * in_channels, H, W), slot s in channels [s * in_channels, (s + 1) *
    in_channels); output (B, slots, classes). Slots share no
    parameter and no statistic, so training all slots with the sum of their losses trains each
    exactly as alone."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("StackedConvNet needs at least one network")
        for model in models:
            valid.check_module("each of models", model)
            if not (hasattr(model, "blocks") and hasattr(model, "head")):
                raise ValueError("StackedConvNet stacks networks built by bn_utils.models.make_convnet")
        sequences = isinstance(hidden_blocks(models[0])[0].get_submodule("linear"), nn.Conv1d)
        conv_class: Any = nn.Conv1d if sequences else nn.Conv2d
        masked_class: Any = _MaskedBiasConv1d if sequences else _MaskedBiasConv2d
        last = cast(nn.Conv2d, hidden_blocks(models[0])[-1].get_submodule("linear"))
        if cast(nn.Linear, models[0].get_submodule("head")).in_features != last.out_channels or last.stride[0] != 1:
            raise ValueError("StackedConvNet stacks conv nets with stride 1 and the average readout (make_convnet's)")
        self.slots = len(models)
        self.templates = nn.ModuleList([copy.deepcopy(m) for m in models])  # each slot's architecture
        for template in self.templates:
            template.requires_grad_(False)
        blocks: list[nn.Sequential] = []
        self._block_names: list[list[str]] = []  # each block's layers, in order ("linear", "norm", ...)
        for i, block in enumerate(hidden_blocks(models[0])):
            conv = cast(nn.Conv2d, block.get_submodule("linear"))
            convs = [cast(nn.Conv2d, hidden_blocks(m)[i].get_submodule("linear")) for m in models]
            if any(c.weight.shape != conv.weight.shape for c in convs):
                raise ValueError("StackedConvNet needs networks of one architecture (the same channels)")
            with torch.no_grad():
                weight = torch.cat([c.weight for c in convs])
                has_bias = [c.bias is not None for c in convs]
                bias = torch.cat([c.bias if c.bias is not None else c.weight.new_zeros(c.out_channels) for c in convs])
                mask = torch.cat([torch.full_like(bias[: conv.out_channels], float(b)) for b in has_bias])
            if sequences:
                options: Any = dict(kernel_size=conv.kernel_size, padding=conv.padding, groups=self.slots)
            else:
                padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
                options = _ConvOptions(kernel_size=_pair(conv.kernel_size), padding=padding, groups=self.slots)
            channels_in, channels_out = self.slots * conv.in_channels, self.slots * conv.out_channels
            stacked_conv: nn.Conv1d | nn.Conv2d
            if any(has_bias):
                stacked_conv = masked_class(channels_in, channels_out, bias_mask=mask, **options).to(weight)
            else:
                stacked_conv = conv_class(channels_in, channels_out, bias=False, **options).to(weight)
            with torch.no_grad():
                stacked_conv.weight.copy_(weight)
                if stacked_conv.bias is not None:  # the masked one: some slot has a bias
                    stacked_conv.bias.copy_(bias)
            layers = {name: copy.deepcopy(layer) for name, layer in block.named_children()}
            layers["linear"] = stacked_conv
            norms = [hidden_blocks(m)[i].get_submodule("norm") for m in models]
            layers["norm"] = _stack_norms(norms, conv.out_channels, 1 if sequences else 2)
            blocks.append(nn.Sequential(*layers.values()))
            self._block_names.append(list(layers))
        self.blocks = nn.ModuleList(blocks)
        head = cast(nn.Linear, models[0].get_submodule("head"))
        self.classes = head.out_features
        self.head = conv_class(self.slots * head.in_features, self.slots * self.classes, 1, groups=self.slots).to(
            head.weight
        )
        with torch.no_grad():
            weights = torch.cat([m.get_parameter("head.weight") for m in models])
            self.head.weight.copy_(weights[..., None] if sequences else weights[..., None, None])
            self.head.get_parameter("bias").copy_(torch.cat([m.get_parameter("head.bias") for m in models]))

    def __len__(self) -> int:
        return self.slots

    @property
    def ids(self) -> list[int]:
        """The network in each slot (a conv-net stack keeps every slot: :func:`run_steps`'s ids)."""
        return list(range(self.slots))

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The trainable parameters by name (the slots' templates are not trained)."""
        return {name: param for name, param in self.named_parameters() if param.requires_grad}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        return self.head(x).reshape(len(x), self.slots, self.classes)

    def norm(self, block: int) -> nn.Module:
        """The stacked norm layer of conv block ``block``."""
        return cast(nn.Sequential, self.blocks[block])[self._block_names[block].index("norm")]

    def model(self, slot: int) -> nn.Module:
        """A stand-alone copy of slot ``slot``'s network (a ``make_convnet`` network)."""
        valid.check_int("slot", slot, 0, self.slots - 1)
        template = self.templates[slot]
        model = copy.deepcopy(template).requires_grad_(True)
        state = {}
        for key, value in template.state_dict().items():
            stacked, offset = self._stacked_tensor(key, slot)
            if value.dim() == 0:
                state[key] = stacked.clone()
            else:
                size = value.shape[0]
                state[key] = stacked[offset * size : (offset + 1) * size].reshape(value.shape).clone()
        model.load_state_dict(state)
        return model

    def _stacked_tensor(self, key: str, slot: int) -> tuple[torch.Tensor, int]:
        """The stacked tensor holding ``key`` of slot ``slot``, and the slot's index in it."""
        parts = key.split(".")
        if parts[0] == "head":
            return getattr(self.head, parts[1]), slot
        block = cast(nn.Sequential, self.blocks[int(parts[1])])
        layer = block[self._block_names[int(parts[1])].index(parts[2])]
        inner = ".".join(parts[3:])  # e.g. "weight", or "bn.weight" in a ghost batch norm
        if isinstance(layer, _ChannelSplitNorm):
            channels = cast(nn.Conv2d, self.templates[slot].get_submodule(f"blocks.{parts[1]}.linear")).out_channels
            start = 0
            for part, size in zip(layer.parts, layer.sizes, strict=True):
                if slot < start + size // channels:
                    return _attribute(part, inner), slot - start
                start += size // channels
        return _attribute(layer, inner), slot


def _attribute(module: nn.Module, path: str) -> torch.Tensor:
    """The parameter or buffer at the dotted ``path`` inside ``module``."""
    owner, _, name = path.rpartition(".")
    return cast(torch.Tensor, getattr(module.get_submodule(owner) if owner else module, name))


def slot_inputs(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, slots * C, H, W) from x (N, C, H, W) and idx (slots, B): slot s sees x[idx[s]]."""
    batch = x[idx]  # (slots, B, C, H, W)
    return batch.transpose(0, 1).reshape(idx.shape[1], -1, *x.shape[2:])


def repeat_inputs(x: torch.Tensor, slots: int) -> torch.Tensor:
    """(N, slots * C, H, W) (or (N, slots * C, L)): every slot sees the same inputs (evaluation)."""
    return x.repeat(1, slots, *([1] * (x.dim() - 2)))


def train_stacked_convnets(
    stack: StackedConvNet,
    data: Dataset,
    *,
    seeds: Sequence[int],
    lr: float,
    epochs: int,
    batch_size: int,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    order: str = "shuffled",
    on_step: Callable[[StackedConvNet, int], None] | None = None,
) -> np.ndarray:
    """Train every slot of ``stack`` with SGD on the mean cross-entropy of its own mini-batches
    (slot s: the batches of ``seeds[s]``, from :func:`epoch_batches`), for ``epochs`` epochs;
    with ``order="shuffled"`` each slot takes exactly the steps ``bn_utils.training.train`` takes
    with that seed. Returns, per slot, the step at which its loss stopped being finite (-1: never);
    such a slot stops learning (its loss is left out), the others go on. ``on_step(stack, step)``
    runs once with step 0 before the first step, then after every step, as in
    :func:`bn_utils.stacked.train_stacked` (the step loop is theirs: :func:`~bn_utils.stacked.run_steps`)."""
    valid.check_type("stack", stack, StackedConvNet, "a StackedConvNet")
    check_dataset("data", data)
    seeds = valid.check_seeds("seeds", seeds, distinct=False)
    if len(seeds) != stack.slots:
        raise ValueError(f"need one seed per slot of the stack ({stack.slots}), got {len(seeds)}")
    valid.check_number("lr", lr, 0, low_open=True)
    valid.check_int("epochs", epochs)
    valid.check_int("batch_size", batch_size, 2, len(data.x_train))
    valid.check_optimizer("sgd", momentum, weight_decay)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    valid.check_callable("on_step", on_step)
    params = stack.params
    optimizer = torch.optim.SGD(stack.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    def loss(stack: StackedConvNet, index: torch.Tensor) -> torch.Tensor:  # index (slots, B)
        logits = stack(slot_inputs(data.x_train, index))  # (B, slots, classes)
        labels = data.y_train[index]  # (slots, B)
        return nn.functional.cross_entropy(logits.permute(0, 2, 1), labels.T, reduction="none").mean(0)

    stack.train()
    if on_step is not None:
        on_step(stack, 0)
    diverged = run_steps(
        stack,
        data,
        seeds=seeds,
        batch_size=batch_size,
        steps=epochs * (len(data.x_train) // batch_size),
        loss=loss,
        update=TorchOptimizerStep(optimizer, params),
        order=order,
        divergence="mask",
        after_step=None if on_step is None else lambda step, losses: on_step(stack, step),
    )
    steps = np.full(stack.slots, -1)
    for slot, step in diverged.items():
        steps[slot] = step
    return steps


def stacked_running_statistics(norm: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(running mean, running var, eps) over every channel of a stacked norm (a layer of a
    :class:`StackedConvNet`, ``channels`` channels in all); NaN in the channels of slots whose norm
    keeps no running statistics."""
    parts, sizes = (norm.parts, norm.sizes) if isinstance(norm, _ChannelSplitNorm) else ([norm], [channels])
    means: list[torch.Tensor] = []
    variances: list[torch.Tensor] = []
    eps = 1e-5
    for part, size in zip(parts, sizes, strict=True):
        part = part.bn if isinstance(part, GhostBatchNorm) else part
        if isinstance(part, _PER_CHANNEL_NORMS) and part.running_mean is not None and part.running_var is not None:
            means.append(part.running_mean)
            variances.append(part.running_var)
            eps = part.eps
        else:
            means.append(torch.full((size,), float("nan")))
            variances.append(torch.full((size,), float("nan")))
    device = next((m.device for m in means if m.device.type != "cpu"), torch.device("cpu"))
    return torch.cat([m.to(device) for m in means]), torch.cat([v.to(device) for v in variances]), eps
