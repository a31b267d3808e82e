"""Depth sweeps and gradient-growth diagnostics (chapter "Deep-network gradient flow")."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bn_utils.experiments.initialization import (  # noqa: E402
    LayerDiagnostics,
    diagnose_at_init,
    diagnose_depths,
    plot_deep_profile,
    plot_gradient_growth,
    plot_layer_profile,
)
from bn_utils.experiments.sweeps import Sweep, depth_sweep, lr_sweep, plot_sweep_finals  # noqa: E402
from bn_utils.training import History  # noqa: E402


def made_up(gradient_norm):
    n = len(gradient_norm)
    return LayerDiagnostics(np.ones(n), np.asarray(gradient_norm, dtype=float), np.ones(n), loss=2.3)


def test_gradient_ratio_is_the_first_layers_gradient_norm_over_the_last():
    assert made_up([8.0, 4.0, 2.0, 1.0]).gradient_ratio == pytest.approx(8.0)
    assert made_up([1.0, 3.0, 9.0]).gradient_ratio == pytest.approx(1 / 9)


def test_gradient_growth_is_the_per_layer_factor_towards_the_input():
    assert made_up([8.0, 4.0, 2.0, 1.0]).gradient_growth == pytest.approx(2.0)
    assert made_up([1.0, 1.0, 1.0]).gradient_growth == pytest.approx(1.0)
    assert made_up([1.0, 3.0, 9.0]).gradient_growth == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 2 hidden layers"):
        _ = made_up([1.0]).gradient_growth


def test_depth_sweep_trains_one_stack_per_depth_on_paired_runs(digits):
    small = dict(seeds=(0, 1), steps=10, eval_every=5, width=16)
    sweep = depth_sweep(digits, depths=(2, 3), **small)
    assert sweep.parameter == "depth" and sweep.values == (2.0, 3.0) and sweep.label == "depth (hidden layers)"
    for norm in ("none", "batch"):
        assert [len(runs) for runs in sweep.histories[norm]] == [2, 2]
        assert [h.config["stacked_with"] for h in sweep.runs(norm, 3.0)] == [2, 2]
        # depth 3 of the depth sweep is the run that a learning-rate sweep at depth 3 trains
        same = lr_sweep(digits, lrs=(0.1,), depth=3, norms=(norm,), **small)
        assert sweep.runs(norm, 3.0)[1].loss == same.runs(norm, 0.1)[1].loss
    with pytest.raises(ValueError, match="depths must be whole numbers"):
        depth_sweep(digits, depths=(2.5,))


def test_plot_gradient_growth_and_norm_keyed_profiles(digits):
    runs = [
        {
            "none": diagnose_depths(digits, "none", (2, 4), seed=s, width=16),
            "batch": diagnose_depths(digits, "batch", (2, 4), seed=s, width=16),
        }
        for s in (0, 1)
    ]
    ax = plot_gradient_growth({norm: [r[norm] for r in runs] for norm in ("none", "batch")}, growth=1.21)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["no BN (n=2)", "BN (n=2)", "1.21^(depth - 1)"] and ax.get_yscale() == "log"
    expected = np.exp(np.mean([np.log(r["batch"][4].gradient_ratio) for r in runs]))
    assert ax.lines[1].get_ydata()[-1] == pytest.approx(expected)
    ax = plot_layer_profile({"none": runs[0]["none"][4], "batch": runs[0]["batch"][4]}, "gradient_norm")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no BN", "BN"]
    ax = plot_layer_profile(diagnose_depths(digits, "none", (2,), width=16), key_label="depth")
    assert ax.get_legend().get_texts()[0].get_text() == "depth 2"


def test_init_explorer_shows_the_quantities_asked_for(digits, monkeypatch):

    import IPython.display

    from bn_utils.experiments.initialization import init_explorer

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    explorer = init_explorer(digits, quantities=("activation_std", "gradient_norm"), depth=30, scale=1.0, norm="batch")
    explorer.update()
    left, right = shown[-1].axes
    assert left.get_ylabel() == "activation std" and right.get_ylabel() == "‖∂L/∂W‖"
    assert left.get_title() == "BN, 30 relu layers"


def test_plot_deep_profile_draws_forward_and_backward_per_norm(digits):
    deep = {norm: diagnose_at_init(digits, norm, depth=4, width=16) for norm in ("none", "batch")}
    fig = plot_deep_profile(deep)
    left, right = fig.axes
    assert tuple(fig.get_size_inches()) == pytest.approx((12, 3.8))
    assert left.get_title() == "forward: activation size" and right.get_title() == "backward: weight-gradient size"
    assert right.get_ylabel() == "‖∂L/∂W‖" and [t.get_text() for t in right.get_legend().get_texts()] == ["no BN", "BN"]
    np.testing.assert_allclose(right.lines[1].get_ydata(), deep["batch"].gradient_norm)
    with pytest.raises(ValueError, match="needs a dict norm -> LayerDiagnostics"):
        plot_deep_profile([])


def test_plot_sweep_finals_draws_accuracy_and_loss_with_one_legend():
    def run(acc, loss):
        return History(loss=[loss] * 10, eval_steps=[0, 10], test_acc=[0.1, acc], test_loss=[1, 1], steps_per_epoch=5)

    grid = {
        "none": [[run(0.9, 0.2), run(0.8, 0.3)], [run(0.1, 2.3), run(0.1, 2.3)]],
        "batch": [[run(0.95, 0.1), run(0.97, 0.1)], [run(0.9, 0.4), run(0.8, 0.5)]],
    }
    sweep = Sweep("depth", (5.0, 10.0), (0, 1), grid)
    fig = plot_sweep_finals(sweep, ticks=(5, 10))
    accuracy, loss = fig.axes
    assert tuple(fig.get_size_inches()) == (12, 4)
    assert accuracy.get_title() == "final test accuracy" and loss.get_title() == "final training loss"
    assert accuracy.get_legend() is not None and loss.get_legend() is None
    assert [t.get_text() for t in loss.get_xticklabels()] == ["5", "10"] and loss.get_yscale() == "log"
    np.testing.assert_allclose(accuracy.containers[1][0].get_ydata(), [0.96, 0.85])  # BN, mean over seeds
    np.testing.assert_allclose(loss.containers[0][0].get_ydata(), [0.25, 2.3])
    legend = [t.get_text() for t in accuracy.get_legend().get_texts()]
    assert "every seed trains, BN: 5 to 10" in legend and "every seed trains, no BN: 5 only" in legend
    with pytest.raises(TypeError, match="needs a Sweep"):
        plot_sweep_finals(grid)
