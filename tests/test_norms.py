"""The norm registry: every registered norm builds (or says why not), stacks in both stacking engines
(or says why not), matches its from-scratch reference, averages over the axes it claims, and has a
colour and a name of its own. A norm added to bn_utils.norms is checked here without a new line."""

import math
import re

import matplotlib.colors
import pytest
import torch
from torch.nn import functional as F

from bn_utils import norms
from bn_utils.functional import rms_norm
from bn_utils.models import NORM_LAYERS, make_convnet, make_mlp, make_norm
from bn_utils.stacked import StackedMLP
from bn_utils.stacked_conv import StackedConvNet
from bn_utils.style import NORM_STYLES, color_difference

pytestmark = pytest.mark.unit

NAMES = list(norms.NORMS)
KINDS = {"dense": (8, 6), "conv": (8, 6, 2, 2)}  # (N, C) and (N, C, H, W) inputs


def _spec(name: str) -> norms.NormSpec:
    return norms.NORMS[name]


def _layer(name: str, kind: str) -> torch.nn.Module:
    spec = _spec(name)
    return make_norm(name, 6, spatial=kind == "conv", **spec.example_options).double().train()


def _inputs(kind: str) -> torch.Tensor:
    return torch.randn(KINDS[kind], dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_norm_builds_for_each_kind_or_says_why_not(name, kind):
    spec = _spec(name)
    factory, why_not = (spec.conv, spec.why_not_conv) if kind == "conv" else (spec.dense, spec.why_not_dense)
    if factory is None:
        with pytest.raises(ValueError, match=f"^{re.escape(why_not)}$"):
            _layer(name, kind)
        return
    layer = _layer(name, kind)
    x = _inputs(kind)
    assert layer(x).shape == x.shape
    found = norms.spec_of(layer, spatial=kind == "conv")
    assert found is not None, f"the registry does not recognise the {type(layer).__name__} that {name!r} builds"
    if kind == "conv":  # layer, group and instance norm all build nn.GroupNorm: they must stack alike
        assert found.conv_stacking == spec.conv_stacking, f"{name!r} and {found.name!r} stack differently"
    else:
        assert found is spec, f"{name!r} builds a {type(layer).__name__}, which the registry reads as {found.name!r}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_norm_matches_its_from_scratch_reference(name, kind):
    spec = _spec(name)
    if (spec.conv if kind == "conv" else spec.dense) is None:
        pytest.skip(f"{name} has no {kind} layer")
    if spec.reference is None:
        assert spec.why_no_reference
        return
    x = _inputs(kind)
    layer = _layer(name, kind)
    torch.testing.assert_close(layer(x), spec.reference(x, **spec.example_options), rtol=0, atol=1e-10)


def _axes_spanned(layer: torch.nn.Module, x: torch.Tensor) -> set[str]:
    """The axes over which the inputs that one output depends on vary: read off the layer itself,
    by differentiating one output with respect to every input."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(layer(x)[(1, 2) + (0,) * (x.dim() - 2)], x)
    support = (grad.abs() > 1e-12).reshape(x.shape[0], x.shape[1], -1).nonzero()
    spanned = {axis: len(set(support[:, i].tolist())) for i, axis in enumerate(("N", "C", "H·W"))}
    axes = {axis for axis in ("N", "H·W") if spanned[axis] > 1}
    if spanned["C"] == x.shape[1]:
        axes.add("C")
    elif spanned["C"] > 1:
        axes.add("C/G")
    return axes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_norm_averages_over_the_axes_it_claims(name, kind):
    spec = _spec(name)
    if (spec.conv if kind == "conv" else spec.dense) is None:
        pytest.skip(f"{name} has no {kind} layer")
    claimed = set(spec.averages_over) - ({"H·W"} if kind == "dense" else set())
    assert _axes_spanned(_layer(name, kind), _inputs(kind)) == claimed
    has_running = any(key.endswith("running_mean") for key, _ in _layer(name, kind).named_buffers())
    assert has_running == spec.running_statistics


@pytest.mark.parametrize("name", NAMES)
def test_the_layer_before_a_norm_keeps_its_bias_unless_the_norm_subtracts_a_mean(name):
    spec = _spec(name)
    options = dict(norm_kwargs=dict(spec.example_options), depth=1, width=4)
    if spec.dense is not None:
        assert (make_mlp(6, 3, norm=name, **options).blocks[0].linear.bias is None) == spec.centres
        assert make_mlp(6, 3, norm=name, norm_position="after", **options).blocks[0].linear.bias is not None
    if spec.conv is not None:
        options = dict(norm_kwargs=dict(spec.example_options), channels=(4,))
        assert (make_convnet(1, 3, norm=name, **options).blocks[0].linear.bias is None) == spec.centres


@pytest.mark.parametrize("name", NAMES)
def test_every_norm_stacks_in_an_mlp_or_says_why_not(name):
    spec = _spec(name)
    if spec.dense is None:
        pytest.skip(f"{name} has no dense layer")
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(make_mlp(6, 3, depth=2, width=8, norm=name, norm_kwargs=dict(spec.example_options)).double())
    if spec.mlp_stacking is None:
        with pytest.raises(ValueError, match="StackedMLP supports") as error:
            StackedMLP(models)
        assert spec.why_not_stacked in str(error.value)
        return
    stack = StackedMLP(models)
    x = _inputs("dense")
    for mode in ("train", "eval"):  # training mode updates the running statistics the eval mode uses
        getattr(stack, mode)()
        expected = torch.stack([getattr(model, mode)()(x) for model in models])
        torch.testing.assert_close(stack(x), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_every_norm_stacks_in_a_conv_net_or_says_why_not(name):
    spec = _spec(name)
    if spec.conv is None:
        pytest.skip(f"{name} has no conv layer")
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(make_convnet(1, 3, channels=(4,), norm=name, norm_kwargs=dict(spec.example_options)).double())
    if spec.conv_stacking is None:
        with pytest.raises(ValueError, match="cannot stack the norm") as error:
            StackedConvNet(models)
        assert spec.why_not_stacked in str(error.value)
        return
    stack = StackedConvNet(models).double()
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for mode in ("train", "eval"):
        getattr(stack, mode)()
        expected = torch.stack([getattr(model, mode)()(x) for model in models], dim=1)
        torch.testing.assert_close(stack(x.repeat(1, 2, 1, 1)), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_every_norm_has_a_colour_and_a_name_of_its_own(name):
    spec = _spec(name)
    assert NORM_STYLES[name] == (spec.label, spec.color)
    assert matplotlib.colors.is_color_like(spec.color) and spec.color.startswith("#")
    for other in norms.NORMS.values():
        if other.name != name:
            assert other.label != spec.label
            distance = color_difference(spec.color, other.color)
            assert distance >= 20, f"{name}'s colour is hard to tell from {other.name}'s (Delta E {distance:.0f} < 20)"


def test_the_models_table_and_the_styles_are_views_of_the_registry():
    assert list(NORM_LAYERS) == list(norms.NORMS) == list(NORM_STYLES)
    assert norms.names(lambda spec: spec.conv is None) == tuple(
        name for name, spec in norms.NORMS.items() if spec.conv is None
    )


def test_unknown_names_are_listed():
    listed = ", ".join(sorted(norms.NORMS))
    with pytest.raises(ValueError, match=f"unknown norm 'batchnorm'; valid names are: {listed}$"):
        norms.get("batchnorm")


def test_a_spec_must_say_why_it_lacks_something_and_take_a_colour_of_its_own():
    complete = dict(
        name="toy",
        label="toy norm",
        color="#123456",
        citation="",
        dense=torch.nn.LayerNorm,
        conv=None,
        averages_over=("C",),
        running_statistics=False,
        reference=None,
        mlp_stacking=None,
        conv_stacking=None,
    )
    with pytest.raises(ValueError, match="why_not_conv.*why_no_reference.*why_not_stacked"):
        norms.NormSpec(**complete)
    with pytest.raises(ValueError, match="batch statistics"):
        norms.NormSpec(**{**complete, "running_statistics": True, "why_not_conv": "x", "why_no_reference": "x"})
    with pytest.raises(ValueError, match="per_example function"):
        norms.NormSpec(**{**complete, "mlp_stacking": "per_example", "why_not_conv": "x", "why_no_reference": "x"})
    toy = norms.NormSpec(**{**complete, "why_not_conv": "x", "why_no_reference": "x", "why_not_stacked": "x"})
    with pytest.raises(ValueError, match="already registered"):
        norms.register(norms.NormSpec(**{**toy.__dict__, "name": "batch"}))
    with pytest.raises(ValueError, match="takes the colour of 'batch'"):
        norms.register(toy.__class__(**{**toy.__dict__, "color": norms.NORMS["batch"].color}))
    with pytest.raises(TypeError, match="NormSpec"):
        norms.register("toy")
    assert "toy" not in norms.NORMS


def test_group_norm_defaults_to_wu_and_hes_32_groups_where_they_divide():
    assert norms.default_groups(64) == 32 and norms.default_groups(6) == 2
    assert make_norm("group", 64).num_groups == 32 == math.gcd(64, 32)


@pytest.mark.parametrize("shape, normalized", [((5, 7), (7,)), ((3, 4, 6), (4, 6)), ((2, 3, 4, 5), (5,))])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm_matches_torch_forward_and_backward(shape, normalized, eps):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, generator=generator).requires_grad_(True)
    weight = torch.randn(normalized, dtype=torch.float64, generator=generator).requires_grad_(True)
    ours = rms_norm(x, normalized, weight, eps=eps)
    theirs = F.rms_norm(x, normalized, weight, eps=eps)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    upstream = torch.randn(shape, dtype=torch.float64, generator=generator)
    for a, b in zip(
        torch.autograd.grad((ours * upstream).sum(), (x, weight)),
        torch.autograd.grad((theirs * upstream).sum(), (x, weight)),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_rms_norm_rejects_bad_input():
    with pytest.raises(ValueError, match="last dimensions are \\(4,\\)"):
        rms_norm(torch.randn(3, 5), 4)
    with pytest.raises(ValueError, match="expected weight of shape \\(5,\\)"):
        rms_norm(torch.randn(3, 5), 5, torch.ones(4))
    with pytest.raises(ValueError, match="normalized_shape"):
        rms_norm(torch.randn(3, 5), 0)


def test_the_fully_connected_sweep_takes_the_norms_an_mlp_stack_holds_from_the_registry(digits):
    from bn_utils.experiments.batch_size import fully_connected_sweep

    held = (*norms.names(lambda spec: spec.mlp_stacking is not None and not spec.example_options), "batch_ghost")
    assert {"none", "batch", "layer", "group"} <= set(held) and "instance" not in held
    with pytest.raises(ValueError, match=f"holds \\({', '.join(held)}\\), got 'instance'"):
        fully_connected_sweep(digits, seeds=(0,), norms=("instance",))
