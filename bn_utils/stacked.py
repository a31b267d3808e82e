"""The one stacking engine: many networks trained at once as one batched network.

A sweep trains dozens of networks of the same shape (one per learning rate and seed). Trained one
at a time, each step is a handful of tiny matrix products and Python overhead dominates. Stacked
along a leading *model* dimension, the same arithmetic runs as batched matrix products
(``torch.bmm``), and batch norm normalizes each model's own batch (one ``F.batch_norm`` call
over models x channels). On the course's 2-core CPU, 54 ten-layer MLPs train for 100 steps
in 4 s stacked against 19 s one at a time.

- :func:`run_steps`: THE step loop of every stacked run, MLPs and conv nets alike: each model's
  batch order (:func:`epoch_batches`, shuffled or class-sorted), the per-model losses, the
  divergence rule (drop the model, keep it, or keep it masked out of the loss), the update and a
  per-step hook;
- :class:`StackedMLP` (and :class:`StackedResidualMLP`) with :func:`train_stacked`: MLPs, with
  per-model learning rates, SGD or Adam computed on the stack (or an experiment's own
  :class:`StackedUpdate`), and :class:`~bn_utils.training.History` objects;
- :func:`recompute_running_statistics`: a network's or a stack's running statistics replaced by
  those of one batch (the batch-size sweeps' recomputed accuracy, chapter 6's fixed statistics);
- the conv nets (:class:`bn_utils.stacked_conv.StackedConvNet`, grouped convolutions) go through
  the same :func:`run_steps` from :func:`bn_utils.stacked_conv.train_stacked_convnets`, with
  ``torch.optim.SGD``'s own arithmetic (:class:`TorchOptimizerStep`).

Each model in the stack is still exactly the model :func:`bn_utils.training.train` would train
on its own, with its own learning rate and batch order: the tests check that both give the same
losses, accuracies and weights (in float64). So a sweep's results are ordinary
:class:`~bn_utils.training.History` objects.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, cast, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _validate as valid
from . import norms
from .data import Dataset, batch_indices, check_dataset
from .history import History
from .layers import BatchNorm1d, GhostBatchNorm
from .models import ResidualMLP

__all__ = [
    "ORDERS",
    "DIVERGENCE",
    "epoch_batches",
    "run_steps",
    "Stack",
    "TorchOptimizerStep",
    "StackedMLP",
    "StackedResidualMLP",
    "StackedUpdate",
    "train_stacked",
    "evaluate_stacked",
    "set_running_statistics",
    "recompute_running_statistics",
    "recomputable_norms",
    "keep_correct_at_end",
]


def _is_batch_norm(module: nn.Module) -> bool:
    """A 1-D batch norm with running statistics, torch's or the course's own drop-in."""
    return isinstance(module, (nn.BatchNorm1d, BatchNorm1d)) and module.track_running_stats


def _stacking(norm: nn.Module) -> tuple[str | None, str]:
    """How a stack holds this norm layer (one of :data:`bn_utils.norms.MLP_STACKING`, from the norm
    registry), or None and why not."""
    spec = norms.spec_of(norm, spatial=False)
    if spec is None:
        return None, "no registered norm builds it"
    if spec.mlp_stacking is None:
        return None, spec.why_not_stacked
    batch_norm = norm.bn if isinstance(norm, GhostBatchNorm) else norm
    if spec.mlp_stacking in ("batch", "ghost") and not _is_batch_norm(batch_norm):
        return None, "a stacked batch norm needs running statistics (track_running_stats=True)"
    return spec.mlp_stacking, ""


def _stackable_norm(norm: nn.Module) -> bool:
    """A norm whose registry entry says how StackedMLP holds it (batch norms with running statistics)."""
    return _stacking(norm)[0] is not None


def _unstackable(where: str, norm: nn.Module, engine: str) -> ValueError:
    """The error for a norm a stack cannot hold: which one, why, and which norms it can."""
    supported = ", ".join(repr(name) for name in norms.names(lambda spec: spec.mlp_stacking is not None))
    return ValueError(
        f"{where} has norm {norm.__class__.__name__} ({_stacking(norm)[1]}); {engine} supports norm={supported} "
        "(batch norms with running statistics)"
    )


# the batch norms a stack can hold: torch's, and the course's from-scratch ones (which derive from it)
BatchNormLayer = nn.modules.batchnorm._BatchNorm


def _momentum(layer: BatchNormLayer) -> float:
    """A batch-norm layer's momentum (StackedMLP rejects momentum=None when it is built)."""
    if layer.momentum is None:
        raise ValueError("StackedMLP needs a batch-norm momentum (momentum=None is not supported)")
    return layer.momentum


class StackedMLP:
    """M MLPs built by :func:`bn_utils.models.make_mlp` with the same arguments (only their
    weights differ), evaluated together on inputs of shape (M, batch, features). Their norm may
    be any whose entry in the norm registry says how a stack holds it (``mlp_stacking``: no norm,
    batch norms with running statistics, ghost batches, layer and group norm, ...), before or
    after the activation (``norm_position``), with or without dropout.

    In training mode, model i draws its dropout masks from its own generator seeded with
    ``dropout_seeds[i]``, exactly as it would alone from torch's global generator seeded with
    that value; without ``dropout_seeds`` the masks come from the global generator.

    Parameters and buffers are held by ``state_dict`` key, each with a leading model dimension:
    ``params["blocks.0.linear.weight"]`` has shape (M, width, in_features). ``ids[j]`` is the
    position, in the list given to the constructor, of the model now in slot j (``keep`` drops
    models, e.g. diverged ones). ``model(j)`` gives slot j back as an ordinary ``nn.Module``.
    """

    def __init__(self, models: Sequence[nn.Module], *, dropout_seeds: Sequence[int] | None = None):
        models = list(models)
        if not models:
            raise ValueError("StackedMLP needs at least one model")
        if dropout_seeds is not None and len(dropout_seeds) != len(models):
            raise ValueError(f"need one dropout seed per model: got {len(models)} models, {len(dropout_seeds)} seeds")
        template = models[0]
        self._check_structure(template)
        keys = list(template.state_dict())
        for i, model in enumerate(models[1:], start=1):
            if str(model) != str(template) or list(model.state_dict()) != keys:
                raise ValueError(
                    f"model {i} differs in structure from model 0; stack models built by "
                    "make_mlp with the same arguments"
                )
        self._template = copy.deepcopy(template)
        parameter_names = {name for name, _ in template.named_parameters()}
        states = [model.state_dict() for model in models]
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        for key in keys:
            stacked = torch.stack([state[key].detach() for state in states]).clone()
            if key in parameter_names:
                self.params[key] = stacked.requires_grad_(True)
            else:
                self.buffers[key] = stacked
        self.ids = list(range(len(models)))
        self.training = True
        self._blocks = list(
            cast(nn.ModuleList, self._template.blocks)
        )  # the copy's: the stack keeps no caller's module
        self._dropout_seeds = None if dropout_seeds is None else list(dropout_seeds)
        self._generators: list[torch.Generator] | None = None  # made on first use, on the inputs' device
        self._orders = [list(dict(block.named_children())) for block in self._blocks]
        # each norm layer's stacking rule and per-example function (from the norm registry), by prefix
        self._norm_rules: dict[str, tuple[str | None, norms.PerExample | None]] = {}

    @staticmethod
    def _check_structure(model: nn.Module) -> None:
        blocks = getattr(model, "blocks", None)
        if blocks is None or not isinstance(getattr(model, "head", None), nn.Linear):
            raise ValueError("StackedMLP stacks MLPs built by bn_utils.make_mlp (with .blocks and .head)")
        for i, block in enumerate(blocks):
            if not isinstance(getattr(block, "linear", None), nn.Linear):
                raise ValueError(f"block {i} has no nn.Linear; StackedMLP stacks MLPs, not conv nets")
            order = list(dict(block.named_children()))
            if order[:3] not in (["linear", "norm", "act"], ["linear", "act", "norm"]) or order[3:] not in (
                [],
                ["drop"],
            ):
                raise ValueError(
                    f"block {i} is {' -> '.join(order)}; StackedMLP stacks blocks built by make_mlp: "
                    "linear -> norm -> act or linear -> act -> norm, then dropout if any"
                )
            if not _stackable_norm(block.norm):
                raise _unstackable(f"block {i}", block.norm, "StackedMLP")
            drop = getattr(block, "drop", None)
            if drop is not None and not isinstance(drop, nn.Dropout):
                raise ValueError(f"block {i} has {drop.__class__.__name__} as .drop; StackedMLP supports nn.Dropout")
            batch_norm = block.norm.bn if isinstance(block.norm, GhostBatchNorm) else block.norm
            if _is_batch_norm(batch_norm) and batch_norm.momentum is None:
                raise ValueError("StackedMLP needs a batch-norm momentum (momentum=None is not supported)")

    def __len__(self) -> int:
        return len(self.ids)

    def _in_features(self) -> int:
        return self.params["blocks.0.linear.weight" if self._blocks else "head.weight"].shape[-1]

    def train(self, mode: bool = True) -> StackedMLP:
        """Training mode (batch statistics, running averages updated) or not, as ``nn.Module.train``."""
        self.training = mode
        return self

    def eval(self) -> StackedMLP:
        """Evaluation mode: batch norm uses the running statistics."""
        return self.train(False)

    def _batch_norm(self, h: torch.Tensor, prefix: str, layer: BatchNormLayer) -> torch.Tensor:
        """BN of each model's batch: (M, B, C) viewed as (B, M*C), so each of the M*C
        columns is normalized over its own model's batch."""
        models, batch, channels = h.shape
        if self.training and batch < 2:
            raise ValueError(f"batch norm in training mode needs at least 2 examples per batch, got {batch}")
        flat = h.transpose(0, 1).reshape(batch, models * channels)
        weight, bias = self.params.get(prefix + "weight"), self.params.get(prefix + "bias")
        out = F.batch_norm(
            flat,
            self.buffers[prefix + "running_mean"].view(-1),
            self.buffers[prefix + "running_var"].view(-1),
            None if weight is None else weight.reshape(-1),
            None if bias is None else bias.reshape(-1),
            training=self.training,
            momentum=_momentum(layer),
            eps=layer.eps,
        )
        if self.training:
            self.buffers[prefix + "num_batches_tracked"] += 1
        return out.reshape(batch, models, channels).transpose(0, 1)

    def _ghost_batch_norm(self, h: torch.Tensor, prefix: str, layer: GhostBatchNorm) -> torch.Tensor:
        """Ghost BN of each model's batch: in training mode each consecutive chunk of
        ``ghost_batch_size`` examples is normalized on its own and updates the running
        statistics once, as :class:`~bn_utils.layers.GhostBatchNorm` does. All chunks of all
        models go through one ``F.batch_norm`` call (one column per chunk, model and channel);
        the running statistics take the chunks' updates in order, in closed form."""
        if not self.training:
            return self._batch_norm(h, prefix + "bn.", layer.bn)
        models, batch, channels = h.shape
        size, bn = layer.ghost_batch_size, layer.bn
        if batch % size:
            raise ValueError(
                f"a batch of {batch} examples does not split into ghost batches of "
                f"{size}; use a batch size that is a multiple of it"
            )
        chunks = batch // size
        # (M, K*g, C) -> (g, K, M, C) -> (g, K*M*C): column (k, m, c) holds chunk k of model m, channel c
        columns = h.view(models, chunks, size, channels).permute(2, 1, 0, 3).reshape(size, -1)
        weight, bias = self.params.get(prefix + "bn.weight"), self.params.get(prefix + "bn.bias")
        out = F.batch_norm(
            columns,
            None,
            None,
            None if weight is None else weight.reshape(-1).repeat(chunks),
            None if bias is None else bias.reshape(-1).repeat(chunks),
            training=True,
            eps=bn.eps,
        )
        with torch.no_grad():  # K momentum updates in a row: r <- (1-m)^K r + sum_k m (1-m)^(K-1-k) stat_k
            values = columns.detach().view(size, chunks, models, channels)
            mean = values.sum(0) / size  # (sums over the leading dimension: var_mean over it is slow on CPUs)
            var = (values - mean).pow_(2).sum(0) / (size - 1)
            momentum = _momentum(bn)
            decay = torch.tensor(
                [momentum * (1 - momentum) ** (chunks - 1 - k) for k in range(chunks)], dtype=h.dtype, device=h.device
            ).view(chunks, 1, 1)
            for name, stat in (("running_mean", mean), ("running_var", var)):
                running = self.buffers[prefix + "bn." + name]
                running.mul_((1 - momentum) ** chunks).add_((decay * stat).sum(0))
            self.buffers[prefix + "bn.num_batches_tracked"] += chunks
        return out.view(size, chunks, models, channels).permute(2, 1, 0, 3).reshape(models, batch, channels)

    def _example_norm(
        self, h: torch.Tensor, prefix: str, layer: nn.Module, per_example: norms.PerExample
    ) -> torch.Tensor:
        """A norm of each example on its own (layer or group norm, ...), by its registry entry's
        ``per_example`` function, with each model's own scale and shift."""
        out = per_example(h, layer)
        weight, bias = self.params.get(prefix + "weight"), self.params.get(prefix + "bias")
        if weight is not None:
            out = out * weight.unsqueeze(1)
        if bias is not None:
            out = out + bias.unsqueeze(1)
        return out

    def _norm(self, h: torch.Tensor, prefix: str, norm: nn.Module) -> torch.Tensor:
        """The norm layer ``norm`` (parameters and buffers under ``prefix``) of every model, as the
        norm registry says a stack holds it."""
        if prefix not in self._norm_rules:  # looked up once per layer, not at every step
            spec = norms.spec_of(norm, spatial=False)
            self._norm_rules[prefix] = (_stacking(norm)[0], None if spec is None else spec.per_example)
        stacking, per_example = self._norm_rules[prefix]
        if stacking == "ghost":
            return self._ghost_batch_norm(h, prefix, cast(GhostBatchNorm, norm))
        if stacking == "per_example" and per_example is not None:
            return self._example_norm(h, prefix, norm, per_example)
        if stacking == "batch":
            return self._batch_norm(h, prefix, cast(BatchNormLayer, norm))
        return h  # "identity"

    def _dropout(self, h: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout with each model's own masks, computed as ``F.dropout`` does on the CPU
        (a Bernoulli(1 - p) mask divided by 1 - p, times the input)."""
        if self._dropout_seeds is None:
            noise = torch.empty_like(h).bernoulli_(1 - p)
        else:
            if self._generators is None:
                self._generators = [torch.Generator(h.device).manual_seed(s) for s in self._dropout_seeds]
            noise = torch.stack(
                [
                    torch.empty(h.shape[1:], dtype=h.dtype, device=h.device).bernoulli_(1 - p, generator=g)
                    for g in self._generators
                ]
            )
        return h * noise.div_(1 - p)

    @staticmethod
    def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is None:
            return torch.bmm(h, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (M, B, classes) for inputs (M, B, features), or (B, features) shared by all."""
        return self.forward_with_hidden(x)[0]

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits, as a call gives them, and each hidden block's output (after its
        activation), each of shape (M, B, width), input side first."""
        in_features = self.params["blocks.0.linear.weight" if self._blocks else "head.weight"].shape[-1]
        if x.dim() == 2:
            x = x.expand(len(self), *x.shape)
        if x.dim() != 3 or x.shape[0] != len(self) or x.shape[2] != in_features:
            raise ValueError(
                f"expected inputs of shape ({len(self)}, batch, {in_features}) or "
                f"(batch, {in_features}), got {tuple(x.shape)}"
            )
        h, hidden = x, []
        for i, block in enumerate(self._blocks):
            prefix = f"blocks.{i}."
            for name in self._orders[i]:  # linear, norm, act (or linear, act, norm), then dropout if any
                module = block.get_submodule(name)
                if name == "linear":
                    h = self._linear(h, self.params[prefix + "linear.weight"], self.params.get(prefix + "linear.bias"))
                elif name == "act":
                    h = module(h)
                elif name == "drop":
                    p = cast(nn.Dropout, module).p
                    if self.training and p > 0:
                        h = self._dropout(h, p)
                else:
                    h = self._norm(h, prefix + "norm.", module)
            hidden.append(h)
        return self._linear(h, self.params["head.weight"], self.params["head.bias"]), hidden

    def keep(self, slots: Sequence[int]) -> None:
        """Keep only the models in these slots (in this order), e.g. to drop diverged ones."""
        index = torch.as_tensor(list(slots), dtype=torch.long)
        for key, value in self.params.items():
            self.params[key] = value.detach()[index.to(value.device)].requires_grad_(True)
        for key, value in self.buffers.items():
            self.buffers[key] = value[index.to(value.device)]
        self.ids = [self.ids[s] for s in slots]
        if self._dropout_seeds is not None:
            self._dropout_seeds = [self._dropout_seeds[s] for s in slots]
        if self._generators is not None:
            self._generators = [self._generators[s] for s in slots]

    def model(self, slot: int) -> nn.Module:
        """The model in ``slot`` as an ordinary module (a copy: changing it leaves the stack alone)."""
        if not 0 <= slot < len(self):
            raise IndexError(f"slot {slot} out of range for a stack of {len(self)} models")
        model = copy.deepcopy(self._template)
        state = {key: value[slot].detach() for key, value in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        model.train(self.training)
        return model


class StackedResidualMLP(StackedMLP):
    """M residual MLPs built by :func:`bn_utils.models.make_residual_mlp` with the same arguments,
    evaluated together as :class:`StackedMLP` evaluates MLPs (the same norms; no dropout). ``forward_with_hidden``
    gives the residual stream after each block."""

    @staticmethod
    def _check_structure(model: nn.Module) -> None:
        if not isinstance(model, ResidualMLP):
            raise ValueError("StackedResidualMLP stacks residual MLPs built by bn_utils.make_residual_mlp")
        norms = [block.norm for block in model.blocks] + list(getattr(model.final, "norm", nn.Identity()).modules())[:1]
        for i, norm in enumerate(norms):
            if not _stackable_norm(norm):
                raise _unstackable(f"norm {i}", norm, "StackedResidualMLP")

    def _in_features(self) -> int:
        return self.params["stem.weight"].shape[-1]

    def forward_with_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The logits and the residual stream after each block, each (M, B, width), input side first."""
        in_features = self._in_features()
        if x.dim() == 2:
            x = x.expand(len(self), *x.shape)
        if x.dim() != 3 or x.shape[0] != len(self) or x.shape[2] != in_features:
            raise ValueError(
                f"expected inputs of shape ({len(self)}, batch, {in_features}) or "
                f"(batch, {in_features}), got {tuple(x.shape)}"
            )
        h = self._linear(x, self.params["stem.weight"], self.params["stem.bias"])
        hidden = []
        for i, block in enumerate(self._blocks):
            prefix = f"blocks.{i}."
            if block.order == "pre":
                branch = block.get_submodule("act")(self._norm(h, prefix + "norm.", block.get_submodule("norm")))
                h = h + self._linear(branch, self.params[prefix + "linear.weight"], None)
            else:
                branch = self._linear(h, self.params[prefix + "linear.weight"], None)
                h = block.get_submodule("act")(h + self._norm(branch, prefix + "norm.", block.get_submodule("norm")))
            hidden.append(h)
        final = cast(nn.Sequential, self._template.final)
        if len(final):
            h = final.get_submodule("act")(self._norm(h, "final.norm.", final.get_submodule("norm")))
        return self._linear(h, self.params["head.weight"], self.params["head.bias"]), hidden


# what recompute_running_statistics takes and gives back: any module (a network, a conv-net stack)
# or a stack of MLPs, returned as the type it went in
RecomputedT = TypeVar("RecomputedT", bound=nn.Module | StackedMLP)


def recomputable_norms(model: nn.Module | StackedMLP) -> list[nn.modules.batchnorm._BatchNorm]:
    """The layers whose running statistics :func:`recompute_running_statistics` replaces: every
    batch norm of ``model`` that keeps them, i.e. every ``torch.nn.modules.batchnorm._BatchNorm``
    with a running mean (torch's batch norms, the course's from-scratch ones, which derive from it,
    and the batch norm inside a ghost or noisy batch norm); for a :class:`StackedMLP`, those of its
    template (the stack holds every model's statistics under the same names).

    Batch renorm is never listed, and needs no test by name to keep it out: it derives from
    ``_NormBase``, not ``_BatchNorm`` (:class:`bn_utils.layers.BatchRenorm1d`, ``BatchRenorm2d``), and its running
    statistics are part of what it trains with (its corrections r and d are computed from them)."""
    valid.check_type("model", model, (nn.Module, StackedMLP), "a torch.nn.Module or a bn_utils.stacked.StackedMLP")
    modules = model._template.modules() if isinstance(model, StackedMLP) else model.modules()
    return [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]


@torch.no_grad()
def recompute_running_statistics(model: RecomputedT, inputs: torch.Tensor) -> RecomputedT:
    """Replace the running mean and (unbiased) variance of every batch norm in ``model`` (the layers
    :func:`recomputable_norms` lists) by those of ``inputs`` fed as one batch, layer after layer
    (each normalizing with its new statistics): one forward pass, no gradient, momentum 1.

    ``model`` is any module (a network, a :class:`~bn_utils.stacked_conv.StackedConvNet` fed
    :func:`~bn_utils.stacked_conv.repeat_inputs`) or a :class:`StackedMLP` (``inputs`` as its call
    takes them: (B, features) shared by every model, or (M, B, features) one batch per model). The
    one rule for both: during the pass the batch norms are in training mode and every other layer
    in eval mode, so dropout is off (as in the eval mode the recomputed statistics are used in;
    with dropout on they would carry its variance, Li et al. 2019's "variance shift"), and a ghost
    batch norm's statistics are the whole batch's, not its ghost batches' (a module's ghost batch
    norm stays in eval mode and its inner batch norm trains; a stack's ghost size is set to the
    batch). Momenta, ghost sizes, dropout rates and every mode are restored afterwards (each batch
    norm's ``num_batches_tracked`` counts the pass, as any training-mode batch would); ``model`` is
    changed in place and returned. ``ValueError`` when it has no batch norm to recompute."""
    valid.check_type("model", model, (nn.Module, StackedMLP), "a torch.nn.Module or a bn_utils.stacked.StackedMLP")
    valid.check_type("inputs", inputs, torch.Tensor, "a torch.Tensor batch the model takes")
    norms = recomputable_norms(model)
    if not norms:
        raise ValueError("model has no batch norm with running statistics to recompute")
    momenta = [m.momentum for m in norms]
    if isinstance(model, StackedMLP):  # one training flag for the whole stack: set what it reads instead
        if inputs.dim() not in (2, 3):
            raise ValueError(
                f"a stack takes inputs (batch, features) or (models, batch, features); got shape {tuple(inputs.shape)}"
            )
        if inputs.shape[-2] < 2:
            raise ValueError(f"a stack's batch norms need a batch of at least 2 examples; got {tuple(inputs.shape)}")
        ghosts = [(m, m.ghost_batch_size) for m in model._template.modules() if isinstance(m, GhostBatchNorm)]
        drops = [(m, m.p) for m in model._template.modules() if isinstance(m, nn.Dropout)]
        stack_was_training = model.training
        try:
            for m in norms:
                m.momentum = 1.0  # the running statistics become this batch's (variance: unbiased)
            for ghost, _ in ghosts:
                ghost.ghost_batch_size = inputs.shape[-2]  # one ghost batch: the whole batch
            for drop, _ in drops:
                drop.p = 0.0  # the stack's dropout is off at p = 0 (no mask drawn, no generator moved)
            model.train()(inputs)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            for ghost, size in ghosts:
                ghost.ghost_batch_size = size
            for drop, p in drops:
                drop.p = p
            model.train(stack_was_training)
        return model
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for m in norms:
            m.train()
            m.momentum = 1.0  # the running statistics become this batch's (variance: unbiased)
        model(inputs)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for module, training in was_training.items():
            module.training = training
    return model


def set_running_statistics(stack: StackedMLP, x: torch.Tensor) -> None:
    """:func:`recompute_running_statistics` for a :class:`StackedMLP` (chapter 6 fixes its residual
    networks' statistics with it): every batch norm's running mean and (unbiased) variance become
    those of the batch ``x`` (shared by all models, or one per model), layer after layer; the stack's
    mode is left as it was, the models' own modules are not touched (the stack holds copies).

    Since 2026-12-08 it follows that function's one rule: a stack's dropout is off during the pass
    (it used to be on, drawing masks and moving the random generators; no course run has dropout
    here), and a stack with no batch norm raises ``ValueError`` (it used to do nothing)."""
    valid.check_type("stack", stack, StackedMLP, "a StackedMLP")
    recompute_running_statistics(stack, x)


@torch.no_grad()
def evaluate_stacked(
    stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per model (accuracy, mean cross-entropy) in eval mode, as
    :func:`bn_utils.training.evaluate` gives for one model; restores the stack's mode."""
    valid.check_type("stack", stack, StackedMLP, "a StackedMLP")
    valid.check_inputs_and_labels(x, y)
    valid.check_int("batch_size", batch_size)
    was_training = stack.training
    stack.eval()
    correct = torch.zeros(len(stack), device=x.device, dtype=torch.long)
    total_loss = torch.zeros(len(stack), device=x.device, dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        logits = stack(x[start : start + batch_size])
        target = y[start : start + batch_size].expand(len(stack), -1)
        total_loss += F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1).double()
        correct += (logits.argmax(dim=2) == target).sum(1)
    stack.train(was_training)
    return correct.double() / len(x), total_loss / len(x)


@runtime_checkable
class StackedUpdate(Protocol):
    """An update rule that :func:`train_stacked` applies in place of SGD or Adam: after each step's
    gradients, ``step(stack, grads)`` updates ``stack.params`` (``grads``: parameter name -> the
    gradient of every model still in the stack, model first); ``keep(slots)`` is told which slots
    stay when diverged models leave the stack. An experiment that measures every step (the layer
    dynamics of chapter 5) brings its own, and trains with the same loop, batch order and
    divergence rule as every other stacked run."""

    def step(self, stack: StackedMLP, grads: dict[str, torch.Tensor]) -> None: ...

    def keep(self, slots: Sequence[int]) -> None: ...


class _StackedOptimizer:
    """SGD (with PyTorch's momentum convention) or Adam (PyTorch's defaults), with one learning
    rate per model, on a :class:`StackedMLP`'s parameters; the state follows ``keep``.
    ``weight_decay`` adds ``weight_decay * param`` to every gradient first (L2 regularization),
    as ``torch.optim.SGD`` and ``torch.optim.Adam`` do."""

    def __init__(self, name: str, lrs: torch.Tensor, momentum: float, weight_decay: float = 0.0):
        if name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {name!r}; valid names are: adam, sgd")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        self.name, self.lrs, self.momentum, self.weight_decay = name, lrs, momentum, weight_decay
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self.steps = 0

    def _lr(self, like: torch.Tensor) -> torch.Tensor:
        return self.lrs.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, stack: StackedMLP, grads: dict[str, torch.Tensor]) -> None:
        self.steps += 1
        for key, grad in grads.items():
            param, state = stack.params[key], self.state.setdefault(key, {})
            if self.weight_decay:
                grad = grad.add(param, alpha=self.weight_decay)
            if self.name == "sgd":
                if self.momentum:
                    buffer = state.get("momentum")
                    state["momentum"] = buffer = (
                        grad.clone() if buffer is None else buffer.mul_(self.momentum).add_(grad)
                    )
                    grad = buffer
                param.sub_(self._lr(param) * grad)
            else:  # Adam, computed as torch.optim.Adam does (betas 0.9, 0.999; eps 1e-8)
                beta1, beta2, eps = 0.9, 0.999, 1e-8
                m = state.setdefault("exp_avg", torch.zeros_like(param)).lerp_(grad, 1 - beta1)
                v = (
                    state.setdefault("exp_avg_sq", torch.zeros_like(param))
                    .mul_(beta2)
                    .addcmul_(grad, grad, value=1 - beta2)
                )
                correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
                denominator = (v.sqrt() / math.sqrt(correction2)).add_(eps)
                param.sub_(self._lr(param) / correction1 * m / denominator)

    def keep(self, slots: Sequence[int]) -> None:
        index = torch.as_tensor(list(slots), dtype=torch.long, device=self.lrs.device)
        self.lrs = self.lrs[index]
        for state in self.state.values():
            for name, value in state.items():
                state[name] = value[index]


# ---------------------------------------------------------------------------------------------
# The step loop of every stacked run (MLPs and conv nets)

# how batches are drawn: "shuffled" (a random partition each epoch) or "sorted" (consecutive
# examples of the class-sorted training set, so each batch holds one or two classes; the order
# of the batches is shuffled each epoch)
ORDERS = ("shuffled", "sorted")

# what happens to a model whose loss stops being finite: "drop" it from the stack (the others go
# on), "keep" it (its loss still enters the summed loss, so its own gradients are not finite), or
# keep it "mask"ed (its loss is left out of the sum from then on, so it stops learning)
DIVERGENCE = ("drop", "keep", "mask")


def epoch_batches(
    labels: torch.Tensor, batch_size: int, *, seed: int, epoch: int, order: str = "shuffled"
) -> list[torch.Tensor]:
    """The mini-batches (index tensors) of one epoch: ``"shuffled"`` as
    :func:`bn_utils.data.batch_indices` (what :func:`bn_utils.training.train` uses), or
    ``"sorted"``: consecutive examples of the class-sorted set (a loader without shuffling over
    data stored class by class, one client's data, a stretch of a sequence), the batches taken in
    a seeded random order; both drop a short last batch."""
    valid.check_type("labels", labels, torch.Tensor, "a 1-D tensor of class labels")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "shuffled":
        return batch_indices(len(labels), batch_size, seed=seed, epoch=epoch)
    valid.check_int("batch_size", batch_size, 1, len(labels))
    sorted_idx = torch.sort(labels.cpu(), stable=True).indices
    batches = list(sorted_idx.split(batch_size))
    if len(batches[-1]) < batch_size:
        batches.pop()
    generator = torch.Generator().manual_seed(1_000_003 * seed + epoch)
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


class Stack(Protocol):
    """What :func:`run_steps` needs of a stack: ``len(stack)`` models in slots, ``ids[slot]`` the
    model in each slot (its position in the list the stack was built from), and ``params`` (name ->
    the trainable tensor holding that parameter of every model)."""

    @property
    def ids(self) -> list[int]: ...

    @property
    def params(self) -> dict[str, torch.Tensor]: ...

    def __len__(self) -> int: ...


StackT = TypeVar("StackT", bound=Stack)


def run_steps(
    stack: StackT,
    data: Dataset,
    *,
    seeds: Sequence[int],
    batch_size: int,
    steps: int,
    loss: Callable[[StackT, torch.Tensor], torch.Tensor],
    update: Callable[[dict[str, torch.Tensor]], None],
    order: str = "shuffled",
    divergence: str = "drop",
    keep: Callable[[list[int]], None] | None = None,
    after_step: Callable[[int, list[float]], None] | None = None,
) -> dict[int, int]:
    """Train ``stack`` for ``steps`` steps (the one loop of :func:`train_stacked` and
    :func:`bn_utils.stacked_conv.train_stacked_convnets`); return, per model that diverged, the
    step at which its loss first stopped being finite.

    Each step: every model takes the next batch of its own batch order (model ``i``: the
    :func:`epoch_batches` of ``seeds[i]`` in ``order``, a new epoch when they run out);
    ``loss(stack, index)`` gives each slot's loss on its batch (``index``: (slots, batch)
    training-example indices); the divergence rule (:data:`DIVERGENCE`) picks the losses that
    are summed; the gradients of the sum with respect to ``stack.params`` go to ``update(grads)``
    (each model's gradient depends only on its own loss). With ``divergence="drop"``, the
    diverged slots leave before the update: ``keep(slots)`` is told which stay (it updates the
    stack and the update rule's state), and the loop ends when none is left.
    ``after_step(step, losses)`` runs after each update with the step count and the losses of
    the slots still in the stack."""
    if divergence not in DIVERGENCE:
        raise ValueError(f"divergence must be one of {', '.join(DIVERGENCE)}, got {divergence!r}")
    if divergence == "drop" and keep is None:
        raise ValueError('divergence="drop" needs keep(slots), which drops the other slots')
    device = data.x_train.device
    steps_per_epoch = len(data.x_train) // batch_size
    diverged: dict[int, int] = {}
    step, epoch = 0, 0
    while step < steps and len(stack):
        orders = {
            seed: epoch_batches(data.y_train, batch_size, seed=seed, epoch=epoch, order=order) for seed in set(seeds)
        }
        for b in range(steps_per_epoch):
            index = torch.stack([orders[seeds[i]][b] for i in stack.ids]).to(device)
            losses = loss(stack, index)
            values = losses.tolist()
            finite = [slot for slot, value in enumerate(values) if math.isfinite(value)]
            if divergence == "drop":
                total_loss = losses[finite].sum()
            else:  # every model stays in the stack: record when it first diverged
                for slot in sorted(set(range(len(stack))) - set(finite)):
                    diverged.setdefault(stack.ids[slot], step)
                if divergence == "keep":  # a diverged model's own gradients are not finite
                    total_loss = losses.sum()
                else:  # "mask": a model that ever diverged adds nothing to the sum (it stops learning)
                    counted = [slot for slot in range(len(stack)) if stack.ids[slot] not in diverged]
                    total_loss = losses[torch.tensor(counted, dtype=torch.long, device=losses.device)].sum()
            params = stack.params
            keys = list(params)
            grads = dict(zip(keys, torch.autograd.grad(total_loss, [params[k] for k in keys]), strict=True))
            if divergence == "drop" and len(finite) < len(stack):  # record, and drop from the stack
                for slot in sorted(set(range(len(stack))) - set(finite)):
                    diverged[stack.ids[slot]] = step
                survivors = torch.tensor(finite, dtype=torch.long, device=device)
                grads = {key: grad[survivors] for key, grad in grads.items()}
                values = [values[slot] for slot in finite]
                cast(Callable[[list[int]], None], keep)(finite)
                if not len(stack):
                    break
            update(grads)
            step += 1
            if after_step is not None:
                after_step(step, values)
            if step == steps:
                break
        epoch += 1
    return diverged


class TorchOptimizerStep:
    """An update for :func:`run_steps` by a ``torch.optim`` optimizer over ``params`` (the
    stack's): each step's gradients become the parameters' ``.grad``, then ``optimizer.step()``,
    with torch's own arithmetic (``torch.optim.SGD`` computes ``param.add_(grad, alpha=-lr)``,
    rounding differently from :class:`_StackedOptimizer`'s ``param.sub_(lr * grad)``). For stacks
    that are ``nn.Module`` s (:class:`bn_utils.stacked_conv.StackedConvNet`), one learning rate."""

    def __init__(self, optimizer: torch.optim.Optimizer, params: dict[str, torch.Tensor]):
        self.optimizer, self.params = optimizer, params

    def __call__(self, grads: dict[str, torch.Tensor]) -> None:
        for key, grad in grads.items():
            self.params[key].grad = grad
        self.optimizer.step()


def train_stacked(
    models: Sequence[nn.Module],
    data: Dataset,
    *,
    lrs: Sequence[float],
    seeds: Sequence[int],
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 64,
    optimizer: str | StackedUpdate = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    dropout_seeds: Sequence[int] | None = None,
    eval_every: int | None = None,
    eval_train: bool = True,
    on_step: Callable[[StackedMLP, int], None] | None = None,
    drop_diverged: bool = True,
    order: str = "shuffled",
) -> list[History]:
    """Train each ``models[i]`` with learning rate ``lrs[i]`` and batch order ``seeds[i]``, all
    at once; return one :class:`History` per model, as :func:`bn_utils.training.train` would.
    ``weight_decay`` is L2 regularization as in ``torch.optim.SGD`` (or ``Adam``), for every
    model. Model i draws its dropout masks (if it has dropout) from a generator seeded with
    ``dropout_seeds[i]`` (default: ``seeds[i]``), as ``train`` does after
    ``torch.manual_seed(dropout_seeds[i])``.

    A model whose loss becomes NaN or infinite is recorded as diverged and dropped from the
    stack; the others go on. ``eval_train=False`` skips the training-set accuracy at each
    evaluation (``History.train_acc`` stays empty), which saves three quarters of the evaluation
    time on the digits. ``on_step(stack, step)`` runs once with step 0 before the first step (on
    the initial networks), then after every step (``stack.ids`` says which models are still in
    it). The models themselves are not changed.

    ``optimizer`` is ``"sgd"``, ``"adam"`` or a :class:`StackedUpdate` (its own update rule, without
    ``momentum`` or ``weight_decay``). ``drop_diverged=False`` keeps a diverged model in the stack:
    its loss (NaN or infinite, recorded in its history) still enters the summed loss, so its own
    gradients are not finite, while the other models' are untouched (each model's gradient depends
    only on its own loss). ``order`` is each model's batch order (:data:`ORDERS`: ``"shuffled"`` as
    ``train`` draws batches, or ``"sorted"``). The step loop is :func:`run_steps`, every stacked run's.
    """
    check_dataset("data", data)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    total = valid.check_schedule(epochs, steps, batch_size, len(data.x_train), eval_every)
    if isinstance(optimizer, str):
        valid.check_optimizer(optimizer, momentum)
    elif not isinstance(optimizer, StackedUpdate):
        raise TypeError(
            f"optimizer must be 'sgd', 'adam' or an update rule with step(stack, grads) and keep(slots), "
            f"got {type(optimizer).__name__}"
        )
    elif momentum or weight_decay:
        raise ValueError("momentum and weight_decay belong to 'sgd' or 'adam', not to an update rule of its own")
    valid.check_callable("on_step", on_step)
    models, lrs, seeds = list(models), list(lrs), list(seeds)
    for lr in lrs:
        valid.check_number("each of lrs", lr, 0, low_open=True)
    for seed in seeds:  # a seed may repeat: a sweep pairs each seed with several learning rates
        valid.check_seed("each of seeds", seed)
    if not (len(models) == len(lrs) == len(seeds)):
        raise ValueError(
            f"need one learning rate and one seed per model: got {len(models)} models, "
            f"{len(lrs)} learning rates and {len(seeds)} seeds"
        )
    steps_per_epoch = len(data.x_train) // batch_size
    eval_every = eval_every or steps_per_epoch
    stack_class = StackedResidualMLP if models and isinstance(models[0], ResidualMLP) else StackedMLP
    stack = stack_class(models, dropout_seeds=list(seeds) if dropout_seeds is None else dropout_seeds).train()
    in_features = stack._in_features()
    if data.input_shape != (in_features,):
        raise ValueError(
            f"the models do not fit the data: they take inputs of width {in_features}, i.e. examples of shape "
            f"({in_features},), but the data's examples have shape {data.input_shape}"
        )
    device = data.x_train.device
    opt: StackedUpdate = (
        _StackedOptimizer(
            optimizer, torch.tensor(list(lrs), dtype=data.x_train.dtype, device=device), momentum, weight_decay
        )
        if isinstance(optimizer, str)
        else optimizer
    )
    seeds = list(seeds)
    histories = [
        History(
            steps_per_epoch=steps_per_epoch,
            config=dict(
                lr=lr,
                batch_size=batch_size,
                optimizer=optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
                momentum=momentum,
                weight_decay=weight_decay,
                seed=seed,
                steps=total,
                stacked_with=len(models),
            ),
        )
        for lr, seed in zip(lrs, seeds, strict=True)
    ]

    def record(step: int) -> None:
        if eval_train:
            train_acc, _ = evaluate_stacked(stack, data.x_train, data.y_train)
        test_acc, test_loss = evaluate_stacked(stack, data.x_test, data.y_test)
        for slot, i in enumerate(stack.ids):
            histories[i].eval_steps.append(step)
            if eval_train:
                histories[i].train_acc.append(train_acc[slot].item())
            histories[i].test_acc.append(test_acc[slot].item())
            histories[i].test_loss.append(test_loss[slot].item())

    def loss(stack: StackedMLP, index: torch.Tensor) -> torch.Tensor:
        logits = stack(data.x_train[index])
        return F.cross_entropy(logits.transpose(1, 2), data.y_train[index], reduction="none").mean(1)

    def keep(slots: list[int]) -> None:
        stack.keep(slots)
        opt.keep(slots)

    def after_step(step: int, losses: list[float]) -> None:
        for slot, i in enumerate(stack.ids):
            histories[i].loss.append(losses[slot])
        if on_step is not None:
            on_step(stack, step)
        if step % eval_every == 0 or step == total:
            record(step)

    start_time = time.perf_counter()
    if on_step is not None:
        on_step(stack, 0)
    record(0)
    diverged = run_steps(
        stack,
        data,
        seeds=seeds,
        batch_size=batch_size,
        steps=total,
        loss=loss,
        update=lambda grads: opt.step(stack, grads),
        order=order,
        divergence="drop" if drop_diverged else "keep",
        keep=keep,
        after_step=after_step,
    )
    for i, step in diverged.items():
        histories[i].diverged_at = step
    wall_time = time.perf_counter() - start_time
    for history in histories:
        history.wall_time = wall_time / len(histories)  # the stack's time, shared out
    return histories


def keep_correct_at_end(total: int, data: Dataset, right: np.ndarray) -> Callable[[StackedMLP, int], None]:
    """An ``on_step`` hook for :func:`train_stacked`: at step ``total`` (the last), the trained
    networks of the stack predict ``data``'s test set in evaluation mode, and row ``stack.ids[i]``
    of ``right`` (models, test examples; bool) records which examples network ``i`` got right."""
    valid.check_int("total", total, 0)
    valid.check_type("right", right, np.ndarray, "a numpy array")

    def keep_correct(stack: StackedMLP, step: int) -> None:
        if step == total:  # the trained networks, in evaluation mode, example by example
            stack.eval()
            with torch.no_grad():
                predicted = stack(data.x_test).argmax(dim=2)
            stack.train()
            right[stack.ids] = (predicted == data.y_test).cpu().numpy()

    return keep_correct
