"""Activation probes, noisy batch norm and the covariate-shift measures."""

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bn_utils import ActivationProbe, NoisyBatchNorm, drift_ratio, load_digits, make_mlp  # noqa: E402
from bn_utils.experiments.covariate_shift import (  # noqa: E402
    covariate_shift_run,
    gradient_shift,
    ioffe_mlp,
    plot_percentiles,
    summarize_runs,
)
from bn_utils.probes import ActivationRecord, jitter_ratio  # noqa: E402
from bn_utils.statistics import MedianRange  # noqa: E402


def test_probe_records_training_passes_only_and_detaches():
    layer = nn.Linear(3, 4)
    probe = ActivationProbe(layer, every=2, percentiles=(10, 50, 90))
    with probe:
        for _ in range(5):
            layer(torch.randn(200, 3))
        layer.eval()(torch.randn(10, 3))  # ignored: evaluation pass
    layer.train()(torch.randn(10, 3))  # ignored: probe removed
    rec = probe.record()
    assert rec.steps.tolist() == [1, 3, 5]
    assert rec.percentiles[50].shape == rec.mean.shape == rec.std.shape == (3, 4)
    assert (rec.percentiles[10] < rec.percentiles[50]).all() and (rec.percentiles[50] < rec.percentiles[90]).all()
    assert len(layer._forward_hooks) == 0


def test_probe_statistics_are_right_for_known_data_and_feature_maps():
    ident = nn.Identity()
    x = torch.arange(100.0).reshape(100, 1).repeat(1, 2)
    x[:, 1] *= 2
    with ActivationProbe(ident) as probe:
        ident(x)
    rec = probe.record()
    assert rec.percentiles[50][0].tolist() == pytest.approx([49.5, 99.0])
    assert rec.mean[0].tolist() == pytest.approx([49.5, 99.0])
    maps = torch.randn(8, 3, 5, 5)
    with ActivationProbe(ident) as probe:
        ident(maps)
    assert probe.record().mean.shape == (1, 3)
    with pytest.raises(RuntimeError, match="recorded nothing"):
        ActivationProbe(ident).record()
    with pytest.raises(ValueError):
        ActivationProbe(ident, every=0)


def test_drift_and_jitter_ratios():
    steps = np.arange(4)
    still = ActivationRecord(
        steps, {15: np.full((4, 1), -1.0), 50: np.zeros((4, 1)), 85: np.ones((4, 1))}, np.zeros((4, 1)), np.ones((4, 1))
    )
    assert drift_ratio(still).tolist() == [0.0] and jitter_ratio(still).tolist() == [0.0]
    median = np.array([[0.0], [2.0], [0.0], [2.0]])
    moving = ActivationRecord(steps, {15: median - 1, 50: median, 85: median + 1}, median, np.ones((4, 1)))
    assert drift_ratio(moving).tolist() == [1.0]  # range 2 over spread 2
    assert jitter_ratio(moving).tolist() == [1.0]  # every step moves 2


def test_noisy_batch_norm_shifts_and_scales_every_step_in_training_only():
    torch.manual_seed(0)
    layer = NoisyBatchNorm(5, max_shift=1.0, max_scale=2.0)
    x = torch.randn(256, 5) * 3 + 7
    a, b = layer(x), layer(x)
    assert not torch.allclose(a, b), "the noise must change from one step to the next"
    assert (a.mean(0).abs() <= 1.0 + 1e-5).all() and (a.mean(0).abs() > 1e-3).any()
    std = a.std(0, unbiased=False)
    assert ((std >= 0.5 - 1e-3) & (std <= 2.0 + 1e-3)).all()
    layer.eval()
    assert torch.allclose(layer(x), layer.bn(x))
    assert NoisyBatchNorm(4, spatial=True)(torch.randn(6, 4, 3, 3)).shape == (6, 4, 3, 3)
    with pytest.raises(ValueError, match="max_scale must be >= 1 and finite, got 0.5"):
        NoisyBatchNorm(3, max_scale=0.5)
    model = make_mlp(4, 2, depth=1, width=8, norm="batch_noisy", norm_kwargs={"max_shift": 0.25})
    assert model.blocks[0].norm.max_shift == 0.25
    with pytest.raises(ValueError, match=r"cannot build norm 'none' with the options \['max_shift'\]"):
        make_mlp(4, 2, norm="none", norm_kwargs={"max_shift": 1.0})


def test_gradient_shift_is_zero_for_zero_step_and_leaves_model_alone():
    torch.manual_seed(0)
    model = ioffe_mlp("batch")
    x, y = torch.randn(60, 64), torch.randint(0, 10, (60,))
    before = [t.clone() for t in model.state_dict().values()]
    l2, cosine = gradient_shift(model, x, y, lr=0.0)
    assert l2.shape == cosine.shape == (3,)  # hidden layers 2 and 3, and the head
    assert np.allclose(l2, 0, atol=1e-7) and np.allclose(cosine, 1, atol=1e-6)
    l2, cosine = gradient_shift(model, x, y, lr=1.0)
    assert (l2 > 0).all() and (cosine < 1).all()
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True)), (
        "parameters and running statistics must be untouched"
    )


def test_gradient_shift_uses_the_same_noise_for_both_gradients():
    torch.manual_seed(0)
    model = ioffe_mlp("batch_noisy")
    x, y = torch.randn(60, 64), torch.randint(0, 10, (60,))
    l2, _ = gradient_shift(model, x, y, lr=0.0, noise_seed=3)
    assert np.allclose(l2, 0, atol=1e-7), "noise must not count as covariate shift"


def test_covariate_shift_run_records_every_layer_and_summarizes():
    data = load_digits()
    runs = [covariate_shift_run("batch", data, seed=s, steps=40, probe_every=5, ics_every=20) for s in (0, 1)]
    run = runs[0]
    assert len(run.records) == 3 and run.records[0].steps.tolist() == [1, 6, 11, 16, 21, 26, 31, 36]
    assert run.ics_steps == [20, 40] and run.ics_l2[0].shape == (3,)
    assert run.history.steps == 40 and run.history.eval_steps[-1] == 40
    summary = summarize_runs(runs, accuracy=0.5, loss=10.0)
    assert summary.steps_to_loss.median == 0 and summary.drift.min <= summary.drift.median <= summary.drift.max
    assert (summary.accuracy, summary.loss) == (0.5, 10.0)
    assert summarize_runs(runs, accuracy=1.01).steps_to_acc == MedianRange(np.inf, np.inf, np.inf)
    ax = plot_percentiles(run.records[2], unit=3, title="t")
    assert ax.get_ylabel() == "input to sigmoid unit 3" and len(ax.lines) == 1
    plt.close(ax.figure)


def test_covariate_shift_explorer_redraws_what_the_controls_say(shown_figures, unencoded_frames):
    from bn_utils.experiments.covariate_shift import ShiftSetting, covariate_shift_explorer, precompute_shift_runs

    runs = precompute_shift_runs(load_digits(), steps=40, noise_levels=(1.0,))
    noisy = ShiftSetting("batch_noisy", 1.0)
    assert list(runs) == [ShiftSetting("none"), ShiftSetting("batch"), noisy]  # keyed by the norm trained
    assert runs[noisy].history.loss != runs[ShiftSetting("batch")].history.loss  # the noise was trained
    explorer = covariate_shift_explorer(runs)
    layer, network, unit = explorer.children[:3]
    assert [value for _, value in network.options] == ["plain", "BN", "noisy BN (level 1)"]
    layer.value = 1
    network.value = "plain"
    percentiles, accuracy = shown_figures[-1].axes
    assert percentiles.get_title() == "plain, hidden layer 1, unit 0"
    assert accuracy.get_title().startswith("drift ") and len(accuracy.lines) == 2
    unit.value = 7
    assert shown_figures[-1].axes[0].get_title() == "plain, hidden layer 1, unit 7"
    frames = covariate_shift_explorer(runs, live=False)
    assert [len(control.labels) for control in frames.controls] == [3, 3] and len(frames.frames) == 9
    with pytest.raises(ValueError, match="plain network's run"):
        covariate_shift_explorer({ShiftSetting("batch"): runs[ShiftSetting("batch")]})
    with pytest.raises(ValueError, match="keyed by ShiftSetting"):
        covariate_shift_explorer({("none", 0.0): runs[ShiftSetting("none")]})
    plt.close("all")


def test_shift_setting_names_and_colours_each_network_once():
    from bn_utils.experiments.covariate_shift import PLAIN_SETTING, ShiftSetting
    from bn_utils.style import color_for

    noisy = ShiftSetting("batch_noisy", 0.5)
    assert [s.label for s in (PLAIN_SETTING, ShiftSetting("batch"), noisy)] == ["plain", "BN", "noisy BN (level 0.5)"]
    assert [s.color for s in (PLAIN_SETTING, ShiftSetting("batch"), noisy)] == [
        color_for("none"),
        color_for("batch"),
        color_for("batch_noisy"),
    ]
    assert noisy.norm_kwargs == {"max_shift": 0.5, "max_scale": 1.5} and ShiftSetting("batch").norm_kwargs is None
    for bad, match in [
        (lambda: ShiftSetting("layer"), "norm must be one of"),
        (lambda: ShiftSetting("batch_noisy"), "noise level > 0"),
        (lambda: ShiftSetting("batch", 1.0), "only noisy BN"),
    ]:
        with pytest.raises(ValueError, match=match):
            bad()


def test_paused_probe_neither_records_nor_counts():
    layer = nn.Linear(2, 2)
    with ActivationProbe(layer, every=2) as probe:
        layer(torch.randn(4, 2))
        with probe.paused():
            layer(torch.randn(4, 2))
        layer(torch.randn(4, 2))
        layer(torch.randn(4, 2))
    assert probe.record().steps.tolist() == [1, 3]


def test_snapshot_and_layer_bar_plots():
    from bn_utils.experiments.covariate_shift import plot_distribution_snapshots, plot_layer_bars

    steps = np.array([1, 6, 11])
    record = ActivationRecord(steps, {}, np.array([[0.0], [1.0], [2.0]]), np.array([[1.0], [1.0], [0.5]]))
    ax = plot_distribution_snapshots(record, at=(0, 2))
    assert [line.get_label() for line in ax.lines] == ["after 1 steps", "after 11 steps"]
    peak = ax.lines[1].get_xdata()[np.argmax(ax.lines[1].get_ydata())]
    assert abs(peak - 2.0) < 0.05
    plt.close(ax.figure)
    ax = plot_layer_bars({"none": np.array([[1.0, 2.0], [3.0, 4.0]]), "batch": np.array([[0.5, 0.5]])})
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([2.0, 3.0, 0.5, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer 1", "layer 2"]
    plt.close(ax.figure)


def test_signal_spread_and_saturated_fraction_on_a_known_network():
    from bn_utils.experiments.covariate_shift import activation_inputs, saturated_fraction, signal_spread

    model = make_mlp(2, 2, depth=1, width=3, activation="sigmoid")
    with torch.no_grad():
        model.blocks[0].linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 8.0]]))
        model.blocks[0].linear.bias.zero_()
    x = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    (z,) = activation_inputs(model, x)
    assert torch.equal(z, x @ model.blocks[0].linear.weight.T)
    std = x.std(dim=0)[0].item()  # both columns have this std
    assert signal_spread(model, x) == pytest.approx([2 * std])  # median of the units' (std, 2 std, 8 std)
    # |z| > 3 only for unit 3 at the first two examples: 2 of 12 inputs
    assert saturated_fraction(model, x) == pytest.approx([2 / 12])
    assert saturated_fraction(model, x, threshold=10.0) == pytest.approx([0.0])


def test_signal_spread_after_bn_is_one_and_leaves_the_model_alone():
    from bn_utils.experiments.covariate_shift import saturated_fraction, signal_spread

    torch.manual_seed(0)
    model = ioffe_mlp("batch")
    x = torch.randn(200, 64)
    before = [t.clone() for t in model.state_dict().values()]
    spread = signal_spread(model, x)
    assert spread.shape == (3,) and np.allclose(spread, 1.0, atol=0.01)
    assert (saturated_fraction(model, x) < 0.01).all()
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True))
    assert model.training, "the model's mode must be left as it was"


def test_signal_measures_check_their_arguments():
    from bn_utils.experiments.covariate_shift import activation_inputs, saturated_fraction

    model = ioffe_mlp("none")
    with pytest.raises(ValueError, match="at least 2 flat examples"):
        activation_inputs(model, torch.randn(1, 64))
    with pytest.raises(ValueError, match="make_mlp"):
        activation_inputs(nn.Sequential(nn.Linear(64, 3)), torch.randn(5, 64))
    with pytest.raises(ValueError, match="threshold must be positive"):
        saturated_fraction(model, torch.randn(5, 64), threshold=0.0)


def test_ioffe_mlp_initialisations():
    torch.manual_seed(0)
    lecun = ioffe_mlp("none", weight_std=None)
    assert lecun.blocks[0].linear.weight.std().item() == pytest.approx(1 / 8, rel=0.05)
    assert lecun.blocks[1].linear.weight.std().item() == pytest.approx(1 / 10, rel=0.05)
    wide = ioffe_mlp("none", weight_std=None, init_scale=4.0)
    assert wide.blocks[2].linear.weight.std().item() == pytest.approx(4 / 10, rel=0.05)
    assert wide.head.weight.std().item() == pytest.approx(4 / 10, rel=0.15)
    narrow_head = ioffe_mlp("none", weight_std=None, init_scale=4.0, head_init_scale=1.0)
    assert narrow_head.head.weight.std().item() == pytest.approx(1 / 10, rel=0.15)
    assert ioffe_mlp("none").blocks[0].linear.weight.std().item() == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="only apply with weight_std=None"):
        ioffe_mlp("none", weight_std=0.1, init_scale=4.0)


def test_gradient_shift_at_a_relative_step_is_the_sgd_step_of_that_size():
    from bn_utils.experiments.covariate_shift import lower_step_size
    from bn_utils.training import loss_and_gradients

    torch.manual_seed(0)
    model = ioffe_mlp("batch")
    x, y = torch.randn(60, 64), torch.randint(0, 10, (60,))
    sizes = lower_step_size(model, x, y, lr=0.5)
    grad = loss_and_gradients(model, x, y, list(model.blocks[0].parameters()))[1]
    by_hand = (
        0.5
        * torch.cat([g.flatten() for g in grad]).norm()
        / torch.cat([p.detach().flatten() for p in model.blocks[0].parameters()]).norm()
    )
    assert sizes.shape == (3,) and sizes[0] == pytest.approx(by_hand.item(), rel=1e-5)
    rho = 0.01
    at_rho = gradient_shift(model, x, y, lr=123.0, relative_step=rho)
    for k in range(3):  # the SGD step with lr' = rho * lr / size is a step of relative size rho
        same = gradient_shift(model, x, y, lr=rho * 0.5 / sizes[k])
        assert at_rho[0][k] == pytest.approx(same[0][k], rel=1e-3)
        assert at_rho[1][k] == pytest.approx(same[1][k], abs=1e-5)
    l2, cosine = gradient_shift(model, x, y, lr=1.0, relative_step=0.0)
    assert np.allclose(l2, 0, atol=1e-7) and np.allclose(cosine, 1, atol=1e-6)
    with pytest.raises(ValueError, match="relative_step must be >= 0"):
        gradient_shift(model, x, y, lr=1.0, relative_step=-0.1)


def test_covariate_shift_run_records_spread_step_sizes_and_takes_an_init(digits):
    run = covariate_shift_run(
        "none", digits, seed=0, steps=20, ics_every=10, weight_std=None, init_scale=4.0, ics_relative_step=0.01
    )
    steps, spread = run.spread(layer=2)
    assert steps.tolist() == [1, 6, 11, 16] and spread.shape == (4,)
    assert spread == pytest.approx(np.median(run.records[2].std, axis=1))
    assert spread[0] > 0.3, "init_scale=4 must reach the model: the plain net's top layer keeps its signal"
    assert len(run.ics_step_size) == 2 and run.ics_step_size[0].shape == (3,) and (run.ics_step_size[0] > 0).all()
    small = covariate_shift_run("none", digits, seed=0, steps=5, ics_every=None)
    assert small.spread(layer=2)[1][0] < 0.1, "the paper's N(0, 0.1^2) starts with a vanishing top-layer signal"
    with pytest.raises(ValueError, match="ics_relative_step must be positive"):
        covariate_shift_run("none", digits, seed=0, steps=5, ics_relative_step=0.0)


@pytest.fixture(scope="module")
def shift_runs():
    """Two short runs (seeds 0, 1) per norm, with gradient-shift checkpoints at steps 20 and 40."""
    data = load_digits()
    return {
        norm: [covariate_shift_run(norm, data, seed=s, steps=40, probe_every=5, ics_every=20) for s in (0, 1)]
        for norm in ["none", "batch", "batch_noisy"]
    }


def test_chapter_figures_draw_their_panels_titles_and_values(shift_runs):
    from bn_utils.experiments.covariate_shift import (
        plot_gradient_shift,
        plot_init_control,
        plot_ioffe_figure1,
        plot_noisy_bn,
        plot_shift_snapshots,
        plot_vanishing_signal,
    )

    runs = shift_runs
    fig = plot_shift_snapshots(runs["none"][0], at=(0, 2, -1), title="one unit")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "one unit" and len(fig.axes[0].lines) == 3
    assert tuple(fig.get_size_inches()) == (6.4, 3.4)
    fig = plot_ioffe_figure1(runs)
    titles = ["(a) test accuracy", "(b) without BN", "(c) with BN"]
    assert [ax.get_title() for ax in fig.axes] == titles and tuple(fig.get_size_inches()) == (15, 3.8)
    assert fig.axes[2].get_ylim() == fig.axes[1].get_ylim()
    median = fig.axes[2].lines[0].get_ydata()
    np.testing.assert_allclose(median, runs["batch"][0].records[2].percentiles[50][:, 0])
    fig = plot_vanishing_signal(runs, xlim=30)
    signal, accuracy = fig.axes
    assert signal.get_title() == "(a) the signal, layer by layer (median over 2 seeds)"
    assert signal.get_yscale() == "log" and len(signal.lines) == 6 and accuracy.get_xlim() == (0, 30)
    assert signal.lines[0].get_label() == "plain, hidden 1" and signal.lines[5].get_label() == "BN, hidden 3"
    spreads = np.median([r.spread(0)[1] for r in runs["none"]], axis=0)
    np.testing.assert_allclose(signal.lines[0].get_ydata(), spreads)
    fig = plot_noisy_bn(runs)
    assert [ax.get_title() for ax in fig.axes] == ["test accuracy", "noisy BN: input of one unit"]
    assert len(fig.axes[0].get_legend().get_texts()) == 3
    fig = plot_gradient_shift(runs, layer_names=["h2", "h3", "out"])
    l2, cosine = fig.axes
    assert l2.get_ylabel() == "‖G − G′‖" and cosine.get_ylim() == (0.8, 1.0) and cosine.get_legend() is None
    assert [t.get_text() for t in l2.get_legend().get_texts()] == ["plain", "BN", "noisy BN"], "names, not keys"
    assert [t.get_text() for t in l2.get_xticklabels()] == ["h2", "h3", "out"]
    expected = np.concatenate([np.array(r.ics_l2) for r in runs["none"]]).mean(0)
    assert [p.get_height() for p in l2.patches[:3]] == pytest.approx(expected.tolist())
    with pytest.raises(ValueError, match="missing"):
        plot_ioffe_figure1({"none": runs["none"]})
    with pytest.raises(ValueError, match="missing"):
        plot_init_control({("a", "none"): runs["none"]})


def test_init_figures_draw_one_group_or_panel_per_initialisation(shift_runs):
    from bn_utils.experiments.covariate_shift import plot_gradient_shift_by_init, plot_init_control

    # the short BN runs all reach 30% (the plain ones do not yet): they stand in for both networks' bars
    control = {(init, norm): shift_runs["batch"] for init in ["small", "wide"] for norm in ["none", "batch"]}
    fig = plot_init_control(control, target=0.3)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["initial weights small", "initial weights wide"]
    assert ax.get_ylabel() == "steps to 30% test accuracy"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain", "BN"]
    steps = [r.history.steps_to(0.3) or np.inf for r in shift_runs["batch"]]
    assert ax.patches[2].get_height() == pytest.approx(np.median(steps))
    fig = plot_gradient_shift_by_init(control, layer_names=["h2", "h3", "out"])
    assert [ax.get_title() for ax in fig.axes] == ["initial weights small", "initial weights wide"]
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == ["plain", "BN"]
    shift = np.array([1 - np.mean(r.ics_cosine, axis=0) for r in shift_runs["batch"]]).mean(0)
    assert [p.get_height() for p in fig.axes[0].patches[:3]] == pytest.approx(shift.tolist())
