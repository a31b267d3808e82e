"""Model builders: structure, norm placement, initialisation, and errors."""

import math

import pytest
import torch
from torch import nn

from bn_utils import BatchNorm1d, BatchNorm2d, make_convnet, make_mlp, make_norm, norms
from bn_utils.models import NORM_LAYERS, make_residual_mlp


@pytest.mark.parametrize(
    "norm, norm_type", [("none", nn.Identity), ("batch", nn.BatchNorm1d), ("batch_scratch", BatchNorm1d)]
)
def test_mlp_blocks_are_linear_norm_activation(norm, norm_type):
    model = make_mlp(64, 10, depth=3, width=20, norm=norm, activation="sigmoid")
    assert len(model.blocks) == 3
    for block in model.blocks:
        assert list(dict(block.named_children())) == ["linear", "norm", "act"]
        assert isinstance(block.norm, norm_type) and isinstance(block.act, nn.Sigmoid)
        # a bias before a batch norm is wasted: the norm subtracts it again
        assert (block.linear.bias is None) == (norm != "none")
    assert model(torch.randn(5, 64)).shape == (5, 10)


def test_dropout_follows_each_activation_and_leaves_the_weights_alone():
    torch.manual_seed(0)
    plain = make_mlp(64, 10, depth=2, width=20, norm="batch")
    torch.manual_seed(0)
    dropped = make_mlp(64, 10, depth=2, width=20, norm="batch", dropout=0.25)
    for block in dropped.blocks:
        assert list(dict(block.named_children())) == ["linear", "norm", "act", "drop"]
        assert isinstance(block.drop, nn.Dropout) and block.drop.p == 0.25
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), dropped.parameters(), strict=True))
    x = torch.randn(6, 64)
    torch.testing.assert_close(plain.eval()(x), dropped.eval()(x))  # dropout is off in eval mode
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1"):
        make_mlp(64, 10, dropout=1)


def test_convnet_shapes_and_norms():
    model = make_convnet(1, 10, channels=(8, 16), norm="batch_scratch")
    assert all(isinstance(b.norm, BatchNorm2d) and b.linear.bias is None for b in model.blocks)
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert isinstance(make_convnet(norm="batch").blocks[0].norm, nn.BatchNorm2d)


@pytest.mark.parametrize("norm", ["none", "batch", "batch_scratch", "layer"])
def test_norm_position_orders_the_block_and_keeps_a_bias_only_where_no_norm_follows(norm):
    before = make_mlp(64, 10, depth=2, width=20, norm=norm)
    after = make_mlp(64, 10, depth=2, width=20, norm=norm, norm_position="after")
    for b, a in zip(before.blocks, after.blocks, strict=True):
        assert list(dict(b.named_children())) == ["linear", "norm", "act"]
        assert list(dict(a.named_children())) == ["linear", "act", "norm"]
        assert type(a.norm) is type(b.norm) and type(a.act) is type(b.act)
        # the linear layer loses its bias only when a norm follows it directly
        assert (b.linear.bias is None) == (norm != "none")
        assert a.linear.bias is not None
    assert after(torch.randn(5, 64)).shape == (5, 10)
    conv_before, conv_after = make_convnet(norm=norm), make_convnet(norm=norm, norm_position="after")
    for b, a in zip(conv_before.blocks, conv_after.blocks, strict=True):
        assert list(dict(b.named_children())) == ["linear", "norm", "act", "pool"]
        assert list(dict(a.named_children())) == ["linear", "act", "norm", "pool"]
        assert (b.linear.bias is None) == (norm != "none") and a.linear.bias is not None
    assert conv_after(torch.randn(4, 1, 8, 8)).shape == (4, 10)


def test_norm_after_the_activation_normalizes_the_activation():
    torch.manual_seed(0)
    model = make_mlp(64, 10, depth=1, width=20, norm="batch", norm_position="after").train()
    block, x = model.blocks[0], torch.randn(256, 64)
    out = block(x)
    expected = torch.nn.functional.batch_norm(torch.relu(block.linear(x)), None, None, training=True)
    torch.testing.assert_close(out, expected)  # BN(ReLU(Wx + b)), with gamma = 1 and beta = 0 at init
    assert out.mean(0).abs().max() < 1e-5 and (out < 0).any()  # zero-mean per unit, so no longer >= 0


def test_default_norm_position_builds_the_same_model_from_the_same_seed():
    torch.manual_seed(5)
    default = make_mlp(8, 3, depth=2, width=5, norm="batch")
    torch.manual_seed(5)
    explicit = make_mlp(8, 3, depth=2, width=5, norm="batch", norm_position="before")
    assert str(default) == str(explicit)
    assert all(torch.equal(p, q) for p, q in zip(default.parameters(), explicit.parameters(), strict=True))


def test_init_scale_sets_weight_std():
    torch.manual_seed(0)
    model = make_mlp(400, 10, depth=2, width=400, activation="relu", init_scale=0.5)
    std = model.blocks[1].linear.weight.std().item()
    assert std == pytest.approx(0.5 * math.sqrt(2 / 400), rel=0.05)
    assert model.head.weight.std().item() == pytest.approx(0.5 / math.sqrt(400), rel=0.05)
    own_head = make_mlp(400, 10, depth=2, width=400, init_scale=0.5, head_init_scale=3.0)
    assert own_head.head.weight.std().item() == pytest.approx(3.0 / math.sqrt(400), rel=0.05)
    assert own_head.blocks[1].linear.weight.std().item() == pytest.approx(0.5 * math.sqrt(2 / 400), rel=0.05)
    with pytest.raises(ValueError, match="head_init_scale must be positive and finite, got 0"):
        make_mlp(4, 2, head_init_scale=0)
    fixed = make_mlp(400, 10, depth=1, width=400, activation="sigmoid", weight_std=0.01)
    assert fixed.blocks[0].linear.weight.std().item() == pytest.approx(0.01, rel=0.05)


def test_he_init_keeps_relu_activations_from_vanishing_without_norm():
    torch.manual_seed(0)
    model = make_mlp(100, 10, depth=20, width=200, activation="relu")
    x = torch.randn(256, 100)
    out = model.blocks(x)
    # second moment is preserved through ReLU layers by He init: E[h^2] stays ~ E[x^2] = 1
    assert 0.3 < out.pow(2).mean().item() * 2 < 3


def test_same_seed_same_model():
    torch.manual_seed(3)
    a = make_mlp(8, 3, depth=2, width=5)
    torch.manual_seed(3)
    b = make_mlp(8, 3, depth=2, width=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=f"unknown norm 'batchnorm'; valid names are: {', '.join(sorted(NORM_LAYERS))}$",
    ):
        make_mlp(4, 2, norm="batchnorm")
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*relu"):
        make_convnet(activation="gelu")
    with pytest.raises(ValueError, match="depth >= 0"):
        make_mlp(4, 2, depth=-1)
    with pytest.raises(ValueError, match="positive"):
        make_mlp(4, 2, init_scale=0)
    with pytest.raises(ValueError, match="norm_position must be 'before' or 'after' the activation, got 'post'"):
        make_mlp(4, 2, norm_position="post")
    with pytest.raises(ValueError, match="norm_position must be"):
        make_convnet(norm_position="Before")


def test_make_norm_builds_from_the_registry_and_names_a_missing_option():
    # every registered norm, both kinds, is built and checked in tests/test_norms.py
    assert isinstance(make_norm("layer", 6), torch.nn.LayerNorm)
    assert isinstance(make_norm("layer", 6, spatial=True), torch.nn.GroupNorm)
    with pytest.raises(ValueError, match="cannot build norm 'batch_ghost' with the options \\[\\]: .*ghost_batch_size"):
        make_norm("batch_ghost", 6)


def test_mlp_for_sizes_the_network_for_the_data_and_draws_weights_from_the_seed(digits):
    import bn_utils as bu

    bu.seed_everything(3)
    by_hand = make_mlp(digits.input_shape[0], digits.num_classes, depth=2, width=16, norm="batch")
    model = bu.mlp_for(digits, seed=3, depth=2, width=16, norm="batch")
    for (name, expected), (_, got) in zip(by_hand.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(expected, got), name
    assert model(digits.x_test[:4]).shape == (4, digits.num_classes)
    other_seed = bu.mlp_for(digits, seed=4, depth=2, width=16, norm="batch")
    first_weight = next(iter(model.state_dict()))
    assert not torch.equal(model.state_dict()[first_weight], other_seed.state_dict()[first_weight])
    with pytest.raises(TypeError, match="Dataset"):
        bu.mlp_for(digits.x_train, seed=0)


def test_norm_registry_builds_every_entry_for_sequences_over_channels_and_positions():
    """On 1-D feature maps (N, C, L) a norm's statistics are those of the 2-D case with the
    positions in the place of the pixels: batch norm over the examples and the positions."""
    from bn_utils import norms

    x = torch.randn(4, 6, 5)
    for name in NORM_LAYERS:
        spec = norms.get(name)
        if spec.conv is None:  # a norm not built for 2-D feature maps is not built for 1-D ones either, and says why
            with pytest.raises(ValueError, match="1-D conv layer does not know"):
                make_norm(name, 6, spatial=1, **spec.example_options)
            continue
        norm = make_norm(name, 6, spatial=1, **spec.example_options)
        assert norm(x).shape == x.shape, name
        assert norms.spec_of(norm, spatial=1) is not None, name  # the stacking engines find it again
    bn = make_norm("batch", 6, spatial=1, affine=False)
    expected = (x - x.mean((0, 2), keepdim=True)) / torch.sqrt(x.var((0, 2), unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(bn(x), expected)
    layer = make_norm("layer", 6, spatial=1)
    out = layer(x)
    torch.testing.assert_close(out.mean((1, 2)), torch.zeros(4), atol=1e-5, rtol=0)  # per example, over C and L
    with pytest.raises(ValueError, match="spatial must be False/0 \\(units\\), 1 \\(sequences\\) or True/2"):
        make_norm("batch", 6, spatial=3)


def test_convnet1d_mirrors_the_digits_convnet_and_takes_the_published_baseline_shape():
    from bn_utils.models import make_convnet1d

    model = make_convnet1d(1, 10, norm="batch")
    assert [type(layer) for layer in model.blocks[0].children()] == [nn.Conv1d, nn.BatchNorm1d, nn.ReLU, nn.MaxPool1d]
    assert [block.linear.out_channels for block in model.blocks] == [16, 32]
    assert all(block.linear.bias is None for block in model.blocks)  # the norm's shift replaces the bias
    # no norm, or the norm after the activation: nothing replaces the bias, so the conv layers keep theirs
    assert all(block.linear.bias is not None for block in make_convnet1d(norm="none").blocks)
    assert all(block.linear.bias is not None for block in make_convnet1d(norm="batch", norm_position="after").blocks)
    assert isinstance(model.pool, nn.AdaptiveAvgPool1d) and model(torch.randn(3, 1, 40)).shape == (3, 10)
    assert make_convnet1d(norm="batch")(torch.randn(3, 1, 17)).shape == (3, 10)  # any length, averaged
    # Greydanus & Kobak's ConvBase: 25 channels, kernels 5, 3, 3, stride 2, the last map (25 x 5) flattened
    published = make_convnet1d(
        channels=(25, 25, 25), kernel_size=(5, 3, 3), stride=2, pool=None, readout="flatten", length=40
    )
    assert published.head.in_features == 125 and published(torch.randn(2, 1, 40)).shape == (2, 10)
    assert sum(p.numel() for p in published.parameters()) == 5210  # as ConvBase: 150 + 1900 + 1900 + 1260
    after = make_convnet1d(norm="layer", norm_position="after")
    assert list(dict(after.blocks[0].named_children())) == ["linear", "act", "norm", "pool"]
    assert after.blocks[0].linear.bias is not None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(readout="flatten"), "give length="),
        (dict(readout="max"), "readout must be 'average' or 'flatten'"),
        (dict(kernel_size=(3,)), "one per block \\(2\\)"),
        (dict(channels=()), "at least one conv block"),
        (dict(channels=(8, 8, 8, 8, 8, 8), readout="flatten", length=40), "shrinks to nothing"),
        (dict(stride=0), "stride must be a positive integer"),
        (dict(norm="batchnorm"), "unknown norm 'batchnorm'"),
    ],
)
def test_convnet1d_rejects_bad_arguments(kwargs, message):
    from bn_utils.models import make_convnet1d

    with pytest.raises(ValueError, match=message):
        make_convnet1d(**kwargs)


@pytest.mark.parametrize("branch_init", ["scaled", "bn_like"])
@pytest.mark.parametrize("norm", norms.names())
def test_branch_inits_that_replace_normalization_refuse_every_norm_that_normalizes(norm, branch_init):
    # the registry says which norms normalize (average over some axes); the others are the identity
    spec = norms.get(norm)
    if spec.averages_over:
        with pytest.raises(ValueError, match="replaces normalization"):
            make_residual_mlp(64, 10, depth=2, width=8, norm=norm, branch_init=branch_init, norm_kwargs=None)
    else:
        model = make_residual_mlp(64, 10, depth=2, width=8, norm=norm, branch_init=branch_init)
        assert all(isinstance(block.norm, nn.Identity) for block in model.blocks)
