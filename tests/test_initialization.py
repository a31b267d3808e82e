"""Layer diagnostics at initialisation, their plot and the live explorer."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments.initialization import (  # noqa: E402
    diagnose_init_scales,
    layer_diagnostics,
    plot_effective_lr_comparison,
    plot_init_profiles,
    plot_layer_profile,
)
from bn_utils.experiments.sweeps import Sweep  # noqa: E402


def test_layer_diagnostics_measure_each_block_by_hand(digits):
    bu.seed_everything(0)
    model = bu.make_mlp(64, 10, depth=3, width=16, norm="batch").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = digits.x_train[:32], digits.y_train[:32]
    diag = layer_diagnostics(model, x, y, lr=0.5)
    assert diag.depth == 3
    # by hand, on the same model
    h = x
    for k, block in enumerate(model.blocks):
        h = block(h)
        assert diag.activation_std[k] == pytest.approx(h.std().item(), rel=1e-5)
    loss = torch.nn.functional.cross_entropy(model.head(h), y)
    model.zero_grad()
    loss.backward()
    for k, block in enumerate(model.blocks):
        w = block.linear.weight
        assert diag.gradient_norm[k] == pytest.approx(w.grad.norm().item(), rel=1e-5)
        assert diag.update_ratio[k] == pytest.approx(0.5 * w.grad.norm().item() / w.norm().item(), rel=1e-5)
    assert diag.loss == pytest.approx(loss.item(), rel=1e-6)
    # the diagnostics ran on a copy; the by-hand pass above moved the running stats once, not twice
    bu.seed_everything(0)
    fresh = bu.make_mlp(64, 10, depth=3, width=16, norm="batch").train()
    fresh(x)
    for key, value in fresh.state_dict().items():
        assert torch.allclose(value.float(), model.state_dict()[key].float()), key
    assert not torch.equal(before["blocks.0.norm.running_mean"], model.state_dict()["blocks.0.norm.running_mean"])


def test_scales_follow_the_theory(digits):
    """BN: activations identical at every scale, update ratio exactly 1/scale^2. Plain ReLU
    net: activations of block k scale as scale^k."""
    scales = [0.5, 1.0, 2.0]
    bn = diagnose_init_scales(digits, "batch", scales, depth=4, width=32)
    plain = diagnose_init_scales(digits, "none", scales, depth=4, width=32)
    np.testing.assert_allclose(bn[0.5].activation_std, bn[2.0].activation_std, rtol=1e-3)
    np.testing.assert_allclose(bn[0.5].update_ratio / bn[1.0].update_ratio, 4.0, rtol=1e-3)
    np.testing.assert_allclose(bn[2.0].update_ratio / bn[1.0].update_ratio, 0.25, rtol=1e-3)
    np.testing.assert_allclose(plain[2.0].activation_std / plain[1.0].activation_std, 2.0 ** np.arange(1, 5), rtol=1e-4)


def test_bn_update_ratio_falls_as_one_over_scale_squared_in_the_full_network(digits):
    """The identity behind the effective learning rate eta / c^2, in the chapter's 10 x 100 network:
    one SGD step changes a BN layer's weights by lr * ||g|| / ||W||, 100 times less at scale 10."""
    bn = diagnose_init_scales(digits, "batch", (1.0, 10.0))
    ratio = np.median(bn[1.0].update_ratio / bn[10.0].update_ratio)
    assert ratio == pytest.approx(100, rel=0.02), f"update ratio at scale 1 / at scale 10: {ratio:.1f}"


def test_diagnostics_reject_what_they_cannot_read(digits):
    with pytest.raises(ValueError, match="needs a model built by make_mlp"):
        layer_diagnostics(torch.nn.Linear(64, 10), digits.x_train[:8], digits.y_train[:8], lr=0.1)
    with pytest.raises(ValueError, match="lr must be positive"):
        layer_diagnostics(bu.make_mlp(64, 10, depth=1), digits.x_train[:8], digits.y_train[:8], lr=0)


def test_plot_layer_profile(digits):
    diagnostics = diagnose_init_scales(digits, "none", [0.5, 1.0], depth=3, width=16)
    ax = plot_layer_profile(diagnostics, "update_ratio")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["scale 0.5", "scale 1"] and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["1e-3 rule of thumb"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown quantity 'loss'"):
        plot_layer_profile(diagnostics, "loss")


def test_init_explorer_redraws_what_the_controls_say(digits, shown_figures, unencoded_frames):
    from bn_utils.experiments.initialization import init_explorer

    explorer = init_explorer(digits)
    scale, norm, depth = explorer.children[0], explorer.children[1], explorer.children[2]
    assert 1.2 in [value for _, value in scale.options], "the scale the chapter asks about is on the slider"
    scale.value, norm.value, depth.value = 10.0, "batch", 20
    explorer.update()
    left, right = shown_figures[-1].axes
    assert left.get_title() == "BN, 20 relu layers" and len(left.lines[0].get_xdata()) == 20
    assert right.get_title().startswith("loss at init: 2.")
    bn_range = left.get_ylim()
    norm.value = "none"
    assert shown_figures[-1].axes[0].get_ylim() == bn_range, "switching the norm keeps the axis range"
    low, high = bn_range
    assert high / low > 100, "BN's flat profile is drawn on the range that holds the plain network's too"
    frames = init_explorer(digits, live=False)
    assert [control.name for control in frames.controls] == ["weight scale", "norm"] and len(frames.frames) == 12
    with pytest.raises(ValueError, match="scale must be one of"):
        init_explorer(digits, scale=3.0)


def test_plot_init_profiles_draws_a_column_per_norm_and_one_legend(digits):
    diagnostics = {
        norm: diagnose_init_scales(digits, norm, [0.5, 1.0], depth=3, width=16) for norm in ("none", "batch")
    }
    fig = plot_init_profiles(diagnostics)
    assert tuple(fig.get_size_inches()) == (12, 7) and len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["no BN: activation std", "BN: activation std", "no BN: update ratio", "BN: update ratio"]
    assert [ax.get_legend() is not None for ax in fig.axes] == [True, False, False, False]
    assert fig.axes[0].get_ylabel() == "activation std" and fig.axes[1].get_ylabel() == ""  # label_outer
    np.testing.assert_allclose(fig.axes[3].lines[1].get_ydata(), diagnostics["batch"][1.0].update_ratio)
    with pytest.raises(ValueError, match="needs a dict norm"):
        plot_init_profiles({})


def made_up_sweep(parameter, values, accuracies):
    """A Sweep of BN over ``values``, two seeds each, ending at ``accuracies[i]`` (one pair per value)."""
    grid = [
        [bu.History(loss=[1.0] * 10, eval_steps=[0, 10], test_acc=[0.1, a], test_loss=[1.0, 1.0], steps_per_epoch=5)
         for a in pair]
        for pair in accuracies
    ]  # fmt: skip
    return Sweep(parameter, tuple(values), (0, 1), {"batch": grid})


def test_plot_effective_lr_comparison_puts_both_sweeps_on_the_effective_lr_axis():
    by_scale = made_up_sweep("init_scale", (0.5, 1.0, 2.0), [(0.8, 0.9), (0.9, 0.9), (0.6, 0.8)])
    by_lr = made_up_sweep("lr", (0.025, 0.1, 0.4), [(0.7, 0.7), (0.9, 0.95), (0.8, 0.8)])
    fig = plot_effective_lr_comparison(by_scale, by_lr, lr=0.1)
    (ax,) = fig.axes
    assert tuple(fig.get_size_inches()) == pytest.approx((6.4, 3.8)) and ax.get_xscale() == "log"
    scale_line, lr_line = (container[0] for container in ax.containers)
    np.testing.assert_allclose(np.asarray(scale_line.get_xdata(), float), [0.4, 0.1, 0.025])  # 0.1 / c^2
    np.testing.assert_allclose(np.asarray(scale_line.get_ydata(), float), [0.85, 0.9, 0.7])
    np.testing.assert_allclose(np.asarray(lr_line.get_xdata(), float), [0.025, 0.1, 0.4])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["scale c, learning rate 0.1", "scale 1, learning rate 0.1/c²"]
    assert ax.get_title() == "BN network, 2 seeds"
    assert ax.get_xlabel() == "effective learning rate of the hidden layers, 0.1/c²"
    with pytest.raises(ValueError, match="by_scale must be a Sweep over init_scale"):
        plot_effective_lr_comparison(by_lr, by_scale)
