"""Weight-norm dynamics of scale-invariant weights: the identity, the tracker and its plot."""

import numpy as np
import pytest
import torch

import bn_utils as bu
from bn_utils.experiments.weight_norms import (
    WeightNormTrace,
    plot_effective_lr_trace,
    plot_norm_growth,
    track_weight_norms,
)


def test_sgd_step_grows_a_scale_invariant_weight_by_exactly_lr2_g2(digits):
    """Weights that feed a BN layer (eps negligible): the gradient is orthogonal to them, so one SGD step
    grows the squared norm by exactly lr^2 ||g||^2 (float64), and with weight decay wd by
    ((1 - lr wd)^2 - 1) ||w||^2 + lr^2 ||g||^2."""
    bu.seed_everything(0)
    model = bu.make_mlp(64, 10, depth=2, width=8, norm="batch").double().train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.eps = 1e-200  # torch wants eps > 0; in float64 this one is lost against the variance
    x, y = digits.x_train[:32].double(), digits.y_train[:32]
    weights = [block.linear.weight for block in model.blocks]
    lr, wd = 0.7, 0.01
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights)
    for w, g in zip(weights, grads, strict=True):
        w, g = w.detach(), g.detach()
        assert (w * g).sum().abs() < 1e-12 * w.norm() * g.norm()
        plain = (w - lr * g).pow(2).sum() - w.pow(2).sum()
        assert plain.item() == pytest.approx(lr**2 * g.pow(2).sum().item(), rel=1e-10)
        decayed = ((1 - lr * wd) * w - lr * g).pow(2).sum() - w.pow(2).sum()
        expected = ((1 - lr * wd) ** 2 - 1) * w.pow(2).sum() + lr**2 * g.pow(2).sum()
        assert decayed.item() == pytest.approx(expected.item(), rel=1e-10)


def test_tracker_records_norms_and_gradients_of_each_step(digits):
    trace = track_weight_norms(digits, init_scale=0.5, lr=0.3, steps=6, seeds=(0, 1), depth=3, width=16)
    assert trace.sq_norm.shape == (2, 7, 3) and trace.sq_grad.shape == (2, 6, 3)
    assert trace.final_test_acc.shape == (2,)
    np.testing.assert_allclose(trace.growth, trace.predicted_growth, rtol=1e-3, atol=1e-6 * trace.sq_norm.max())
    assert (trace.growth > 0).all()  # without weight decay the norm can only grow
    np.testing.assert_allclose(trace.effective_lr[:, 0], 0.3 / 0.5**2, rtol=1e-6)
    decayed = track_weight_norms(digits, init_scale=2.0, lr=0.3, weight_decay=0.05, steps=6, depth=3, width=16)
    np.testing.assert_allclose(decayed.growth, decayed.predicted_growth, rtol=1e-3, atol=1e-5 * decayed.sq_norm.max())
    with pytest.raises(ValueError, match="needs weight_decay > 0"):
        trace.equilibrium_sq_norm()
    with pytest.raises(ValueError, match="last must be in 1..6"):
        decayed.late_sq_norm(last=7)


def test_equilibrium_is_the_norm_where_growth_balances_decay():
    """2 wd ||w||^2 = lr ||g||^2 with ||g|| = ||g~|| / ||w||: ||w||^4 = lr ||g~||^2 / (2 wd)."""
    lr, wd, unit_sq_grad = 0.5, 0.02, 3.0
    sq_norm = np.sqrt(lr * unit_sq_grad / (2 * wd))
    trace = WeightNormTrace(
        init_scale=1.0,
        lr=lr,
        weight_decay=wd,
        sq_norm=np.full((1, 5, 2), sq_norm),
        sq_grad=np.full((1, 4, 2), unit_sq_grad / sq_norm),
        final_test_acc=np.zeros(1),
    )
    np.testing.assert_allclose(trace.equilibrium_sq_norm(last=4), sq_norm)
    np.testing.assert_allclose(trace.late_sq_norm(last=4), sq_norm)


def test_tracker_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="need init_scale > 0"):
        track_weight_norms(digits, init_scale=0.0)
    with pytest.raises(ValueError, match="weight_decay >= 0"):
        track_weight_norms(digits, weight_decay=-1.0)
    with pytest.raises(ValueError, match="at least one seed"):
        track_weight_norms(digits, seeds=())


def test_plot_effective_lr_trace(digits):
    traces = [track_weight_norms(digits, init_scale=c, steps=3, depth=2, width=8) for c in (0.5, 1.0)]
    ax = plot_effective_lr_trace(traces, title="t")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["scale 0.5, lr 0.1", "scale 1, lr 0.1"]
    assert ax.get_yscale() == "log" and len(ax.lines[0].get_xdata()) == 4
    with pytest.raises(ValueError, match="at least one trace"):
        plot_effective_lr_trace([])


def test_plot_norm_growth_scatters_measured_against_predicted_growth(digits):
    traces = [track_weight_norms(digits, init_scale=c, steps=3, depth=2, width=8) for c in (0.5, 1.0)]
    fig = plot_norm_growth(traces)
    left, right = fig.axes
    assert tuple(fig.get_size_inches()) == (12, 4)
    assert left.get_xscale() == left.get_yscale() == "log" and left.get_xlabel() == "η²‖g_t‖²"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["scale 0.5", "scale 1"]
    offsets = left.collections[1].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], traces[1].predicted_growth.ravel(), rtol=1e-6)
    np.testing.assert_allclose(offsets[:, 1], traces[1].growth.ravel(), rtol=1e-6)
    assert right.get_title() == "effective learning rate, median" and len(right.lines) == 2
    with pytest.raises(ValueError, match="non-empty list of WeightNormTrace"):
        plot_norm_growth([])


def test_growth_gaps_are_per_seed_over_the_largest_growth_of_all_seeds():
    # one layer, lr 0.1: predicted growth 0.01 ||g||^2 = 2 and 1; seed 1's second step grew 1.5 instead of 1
    growth = WeightNormTrace(
        init_scale=0.1,
        lr=0.1,
        weight_decay=0.0,
        sq_norm=np.array([[1, 3, 5], [1, 2, 3.5]], dtype=float)[:, :, None],
        sq_grad=np.array([[200, 200], [100, 100]], dtype=float)[:, :, None],
        final_test_acc=np.zeros(2),
    )
    assert growth.growth_gaps() == pytest.approx([0.0, 0.5 / 2])
