"""Layer diagnostics at initialisation, their plot and the live explorer."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments.initialization import diagnose_init_scales, layer_diagnostics, plot_layer_profile  # noqa: E402


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


def test_init_explorer_redraws_what_the_controls_say(digits, shown_figures):
    from bn_utils.experiments.initialization import init_explorer

    explorer = init_explorer(digits)
    scale, batch_norm, depth = explorer.children[0], explorer.children[1], explorer.children[2]
    scale.value, batch_norm.value, depth.value = 10.0, True, 20
    explorer.update()
    left, right = shown_figures[-1].axes
    assert left.get_title() == "BN, 20 relu layers" and len(left.lines[0].get_xdata()) == 20
    assert right.get_title().startswith("loss at init: 2.")
