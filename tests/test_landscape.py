"""Landscape probes: what they measure, and that measuring changes nothing."""

from dataclasses import fields

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from landscape_probes import probe  # noqa: E402
from torch import nn  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments.landscape import (  # noqa: E402
    LandscapeRun,
    LandscapeSummary,
    beta_by_step_size,
    beta_per_seed,
    gradient_scaled_landscape,
    landscape_at_step,
    landscape_run,
    plot_beta_by_step_size,
    plot_landscape,
    plot_landscape_overview,
    probe_gradient_step,
    summarize_landscape,
)


@pytest.fixture(scope="module")
def batch():
    data = bu.load_digits(dtype=torch.float64)
    return data.x_train[:128], data.y_train[:128]


def model(norm="batch"):
    bu.seed_everything(0)
    return bu.make_mlp(64, 10, depth=3, width=32, norm=norm).double()


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_small_steps_follow_the_taylor_expansion(batch, norm):
    """For a tiny step eta: L(w - eta g) ~ L(w) - eta ||g||^2, and ||g - g'|| / (eta ||g||) ~
    ||H g|| / ||g|| (H the Hessian), computed independently with a Hessian-vector product."""
    x, y = batch
    net = model(norm).train()
    params = list(net.parameters())
    eta = 1e-6
    probe = probe_gradient_step(net, x, y, [eta])
    loss = nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.cat([v.flatten() for v in grads])
    hessian_g = torch.cat([v.flatten() for v in torch.autograd.grad(g @ g.detach(), params)])
    assert probe.loss == pytest.approx(loss.item(), abs=1e-12)
    assert probe.gradient_norm == pytest.approx(g.norm().item(), rel=1e-10)
    assert probe.losses[0] == pytest.approx(loss.item() - eta * g.norm().item() ** 2, abs=1e-9)
    assert probe.beta_smoothness == pytest.approx(hessian_g.norm().item() / g.norm().item(), rel=1e-4)
    assert probe.loss_range == 0.0  # a single step size has no range


def test_probe_leaves_the_model_alone(batch):
    x, y = batch
    net = model().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    probe = probe_gradient_step(net, x, y, [0.01, 0.1, 1.0])
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed"
    assert len(probe.losses) == len(probe.gradient_changes) == 3
    assert probe.loss_range == pytest.approx(probe.losses.max() - probe.losses.min())
    # a small step along minus the gradient lowers the loss
    assert probe.losses[0] < probe.loss


def test_probe_rejects_bad_step_sizes(batch):
    with pytest.raises(ValueError, match="positive numbers"):
        probe_gradient_step(model(), *batch, [0.1, -0.1])
    with pytest.raises(ValueError, match="positive numbers"):
        probe_gradient_step(model(), *batch, [])


def test_landscape_run_probes_without_changing_training():
    data = bu.load_digits()
    run = landscape_run("batch", data, seeds=[0, 1], steps=20, probe_every=10, depth=3, width=32, probe_batch=64)
    assert run.probe_steps == [0, 10, 20]
    assert [len(p) for p in run.probes] == [3, 3]
    for name in ("loss_range", "beta_smoothness", "gradient_change"):
        values = run.measure(name)
        assert values.shape == (2, 3) and np.all(np.isfinite(values)) and np.all(values >= 0)
    low, high = run.gradient_change_band()
    assert np.all(low <= high)
    summary = summarize_landscape(run)
    assert isinstance(summary, LandscapeSummary)
    assert summary.loss_range == pytest.approx(np.median(run.measure("loss_range")[:, 1:]))
    assert [f.name for f in fields(summary)] == ["loss_range", "beta_smoothness", "gradient_change"]
    with pytest.raises(TypeError, match="not subscriptable"):  # typed: read by attribute, never by a string key
        summary["loss_range"]  # type: ignore[index]
    # the probes ran on copies: training is what it is without them
    bu.seed_everything(0)
    alone = bu.train(
        bu.make_mlp(64, 10, depth=3, width=32, norm="batch"), data, lr=0.1, steps=20, seed=0, eval_every=10
    )
    np.testing.assert_allclose(run.histories[0].loss, alone.loss, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown measure 'sharpness'"):
        run.measure("sharpness")
    ax = plot_landscape({"BN": run}, "gradient_change")
    assert ax.get_yscale() == "log" and ax.get_legend().get_texts()[0].get_text() == "BN (n=2)"
    with pytest.raises(ValueError, match="unknown measure"):
        plot_landscape({"BN": run}, "sharpness")


def test_beta_by_step_size_is_the_ratio_before_the_max():
    data = bu.load_digits()
    run = landscape_run("none", data, seeds=[0, 1], steps=20, probe_every=10, depth=3, width=32, probe_batch=64)
    values = run.beta_by_step_size()
    assert values.shape == (2, 3, 5) and np.all(values > 0)
    # the effective beta-smoothness is the max of these over step sizes
    np.testing.assert_allclose(values.max(axis=2), run.measure("beta_smoothness"))
    summary = beta_by_step_size(run)
    np.testing.assert_allclose(summary.step_sizes, 0.1 * np.array([0.25, 0.5, 1.0, 2.0, 4.0]))
    np.testing.assert_allclose(summary.median, np.median(values[:, 1:].reshape(-1, 5), axis=0))
    assert np.all(summary.low <= summary.median) and np.all(summary.median <= summary.high)
    with pytest.raises(TypeError, match="not subscriptable"):
        summary["median"]  # type: ignore[index]
    ax = plot_beta_by_step_size({"plain": run})
    assert ax.get_xscale() == "log" and ax.get_legend().get_texts()[0].get_text() == "plain"
    assert tuple(ax.figure.get_size_inches()) == (5, 3.6)
    ax = plot_beta_by_step_size({"plain": run}, title="t", figsize=(6, 3.8))
    assert tuple(ax.figure.get_size_inches()) == (6, 3.8) and ax.get_title() == "t"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), summary.median)
    with pytest.raises(ValueError, match="no checkpoint after step 20"):
        beta_by_step_size(run, after=20)
    with pytest.raises(ValueError, match="at least one run"):
        plot_beta_by_step_size({})


def test_gradient_scaled_measures_and_per_step_views():
    data = bu.load_digits()
    run = landscape_run("none", data, seeds=[0, 1], steps=20, probe_every=10, depth=3, width=32, probe_batch=64)
    norm = run.probe_values("gradient_norm")
    assert norm.shape == (2, 3) and np.all(norm > 0)
    scaled = gradient_scaled_landscape(run)
    np.testing.assert_allclose(scaled.gradient_norm, np.median(norm[:, 1:]))
    np.testing.assert_allclose(
        scaled.loss_range_per_squared_gradient, np.median((run.measure("loss_range") / norm**2)[:, 1:])
    )
    assert [f.name for f in fields(scaled)] == [
        "gradient_norm",
        "loss_range_per_squared_gradient",
        "gradient_change_per_gradient",
    ]
    at_20 = landscape_at_step(run, 20)
    np.testing.assert_allclose(at_20.loss, np.median(run.probe_values("loss")[:, 2]))
    assert [f.name for f in fields(at_20)] == [
        "loss_range",
        "gradient_change",
        "beta_smoothness",
        "loss",
        "gradient_norm",
    ]
    per_seed = beta_per_seed(run, 0.1, start=0, stop=10)
    np.testing.assert_allclose(per_seed, run.beta_by_step_size()[:, 1, 2])
    with pytest.raises(ValueError, match="probed step"):
        landscape_at_step(run, 15)
    with pytest.raises(ValueError, match="probed step sizes"):
        beta_per_seed(run, 0.3)
    with pytest.raises(ValueError, match="unknown probe value"):
        run.probe_values("beta")


def test_landscape_overview_draws_the_three_measures_in_order():
    data = bu.load_digits()
    kwargs = dict(seeds=[0, 1], steps=20, probe_every=10, depth=3, width=32, probe_batch=64)
    runs = {"no BN": landscape_run("none", data, **kwargs), "BN": landscape_run("batch", data, **kwargs)}
    fig = plot_landscape_overview(runs)
    assert [ax.get_title() for ax in fig.axes] == [
        "(a) loss range along the gradient",
        "(b) gradient change over the step sizes",
        "(c) effective β-smoothness",
    ]
    assert tuple(fig.get_size_inches()) == (15, 3.8) and all(ax.get_yscale() == "log" for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["no BN (n=2)", "BN (n=2)"]
    mean = np.nanmean(runs["BN"].measure("loss_range"), axis=0)
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), mean)
    with pytest.raises(ValueError, match="LandscapeRun"):
        plot_landscape_overview({})


def test_per_seed_measures_leave_step_0_out_and_divide_the_gradient_out():
    """Two seeds probed at steps 0, 100 and 200; step 0 is far off so that keeping it shows."""
    seeds = [
        [probe(100, 1, 100), probe(4, 2, 8), probe(2, 1, 2)],
        [probe(100, 1, 100), probe(8, 2, 4), probe(4, 1, 4)],
    ]
    plain = LandscapeRun("none", [], probe_steps=[0, 100, 200], probes=seeds)
    assert plain.per_seed("loss_range") == pytest.approx([3, 6])
    assert plain.per_seed("gradient_change") == pytest.approx([5, 4])
    assert plain.per_seed("gradient_norm") == pytest.approx([1.5, 1.5])
    assert plain.per_seed("loss_range_per_squared_gradient") == pytest.approx([1.5, 3])
    assert plain.per_seed("gradient_change_per_gradient") == pytest.approx([3, 3])
    with pytest.raises(ValueError, match="unknown landscape measure 'smoothness'; valid names are: loss_range"):
        plain.per_seed("smoothness")
