"""Plot helpers, check-cell printers, and the train/inference helpers."""

import matplotlib
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from bn_utils import (
    CheckFailed,
    accuracy_in_mode,
    check_below,
    check_close,
    check_range,
    check_that,
    forgotten_eval_study,
    make_convnet,
    make_mlp,
    max_abs_error,
    running_stats_trace,
)  # noqa: E402
from bn_utils.experiments.inference import (
    ModeAccuracy,
    class_sorted,
    plot_mode_accuracy,
    plot_mode_accuracy_panels,
    plot_running_stats,
    plot_running_stats_panels,
)
from bn_utils.experiments.placement import plot_placement
from bn_utils.style import NORM_COLORS, color_for, plot_band, plot_histories, save_figure, use_house_style
from bn_utils.training import History  # noqa: E402


def mode_accuracy(eval_acc, batch_sizes, **train):
    """A ModeAccuracy from its eval accuracies and one list of per-batch-size accuracies per order."""
    return ModeAccuracy(
        eval=np.array(eval_acc),
        seeds=tuple(range(len(eval_acc))),
        batch_sizes=tuple(batch_sizes),
        orders=tuple(train),
        train=np.array(list(train.values())),
    )


def test_plot_band_draws_mean_and_band_ignoring_nan():
    fig, ax = plt.subplots()
    values = np.array([[0.0, 1.0, np.nan], [2.0, 3.0, np.nan]])
    plot_band(ax, np.array([1, 2, 3]), values, label="runs")
    line = ax.lines[0]
    assert line.get_xdata().tolist() == [1, 2] and line.get_ydata().tolist() == [1.0, 2.0]
    assert line.get_label() == "runs (n=2)"
    assert len(ax.collections) == 1
    with pytest.raises(ValueError, match="band"):
        plot_band(ax, np.arange(3), values, label="x", band="iqr")
    with pytest.raises(ValueError, match="columns"):
        plot_band(ax, np.arange(2), values, label="x")
    plt.close(fig)


def test_plot_histories_labels_axes_and_uses_norm_colours(tmp_path):
    use_house_style()
    h = History(eval_steps=[0, 5], test_acc=[0.1, 0.9])
    ax = plot_histories({"batch": [h, h], "none": [h]}, "test_acc", title="t")
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "test accuracy"
    assert matplotlib.colors.to_hex(ax.lines[0].get_color()) == NORM_COLORS["batch"].lower()
    assert color_for("something else", 1) != color_for("something else", 0)
    path = save_figure(ax.figure, tmp_path / "figs" / "curve")
    assert path.suffix == ".png" and path.stat().st_size > 1000
    plt.close(ax.figure)


def test_checks_that_hold_print_one_comparable_line(capsys):
    a = torch.tensor([1.0, 2.0])
    assert check_close("same", a, a + 1e-12, 1e-9)
    assert check_range("acc", 0.934, 0.9, 1.0)
    assert check_that("BN trains deeper", True, measured="20 vs 10")
    assert capsys.readouterr().out.splitlines() == [
        "same: max |error|: below 1e-09 as expected: OK",
        "acc = 0.93 (expected 0.9 to 1): OK",
        "BN trains deeper: OK",
    ]
    result = check_below("tiny", 3e-17, 1e-12)
    assert result.message == "tiny: below 1e-12 as expected: OK" and result._ipython_display_() is None


def test_checks_that_fail_raise_with_the_measured_value_and_the_expected_range(capsys):
    a = torch.tensor([1.0, 2.0])
    with pytest.raises(CheckFailed, match=r"far: max \|error\|: measured 1.00e-03, expected below 1e-09"):
        check_close("far", a, a + 1e-3, 1e-9)
    with pytest.raises(CheckFailed, match=r"acc: measured 50.0% \(50\), expected 90 to 100%"):
        check_range("acc", 50.0, 90, 100, digits=1, unit="%")
    with pytest.raises(CheckFailed, match=r"x: measured 0.80 \(0.8004\), expected 0 to 0.8"):
        check_range("x", 0.8004, 0, 0.8)  # rounds to the bound, still out of range: the raw value says why
    with pytest.raises(CheckFailed, match="NaN"):
        check_range("diverged run", float("nan"), 0, 1)
    with pytest.raises(CheckFailed, match=r"BN trains deeper: does not hold \(measured: 10 vs 20\)"):
        check_that("BN trains deeper", False, measured="10 vs 20")
    assert capsys.readouterr().out == ""  # a failed check prints nothing: its message is in the error
    assert isinstance(CheckFailed("x"), AssertionError)  # pytest and nbval report it as a failed assertion


def test_check_range_refuses_an_empty_range():
    with pytest.raises(ValueError, match="low must not exceed high"):
        check_range("x", 1.0, 2, 1)


def test_max_abs_error_needs_equal_shapes():
    a = torch.tensor([1.0, 2.0])
    assert max_abs_error(a, a * 2) == 2.0
    with pytest.raises(ValueError, match="shapes differ"):
        max_abs_error(a, a[:1])


def test_running_estimates_converge_and_momentum_trades_noise_for_lag():
    fast = running_stats_trace(batch_size=32, momentum=0.5, steps=300, seed=1)
    slow = running_stats_trace(batch_size=32, momentum=0.02, steps=300, seed=1)
    cumulative = running_stats_trace(batch_size=32, momentum=None, steps=300, seed=1)
    # the cumulative average over 300 * 32 samples is close to the truth
    assert cumulative.final_relative_error()[0] < 0.05 and cumulative.final_relative_error()[1] < 0.05
    # a small momentum lags at first (running mean starts at 0, the truth is 2) but is smooth later
    assert slow.running_mean[9] < 1.0 < fast.running_mean[9]
    assert np.std(slow.running_mean[200:]) < 0.5 * np.std(fast.running_mean[200:])
    assert len(fast.batch_mean) == 300
    with pytest.raises(ValueError, match="steps"):
        running_stats_trace(steps=0)


def test_accuracy_in_mode_leaves_model_untouched():
    torch.manual_seed(0)
    model = make_mlp(4, 3, depth=1, width=8, norm="batch_scratch").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(9, 4), torch.randint(0, 3, (9,))
    train_acc = accuracy_in_mode(model, x, y, batch_size=2, train_mode=True)  # last chunk of 1 folds in
    eval_acc = accuracy_in_mode(model, x, y, batch_size=2, train_mode=False)
    assert 0 <= train_acc <= 1
    assert eval_acc == pytest.approx((model(x).argmax(1) == y).float().mean().item())
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="more than one value per channel"):
        accuracy_in_mode(model, x, y, batch_size=1, train_mode=True)
    with pytest.raises(ValueError, match="as many labels"):
        accuracy_in_mode(model, x, y[:3], batch_size=2, train_mode=False)


def test_class_sorted_orders_by_label_and_keeps_the_order_within_a_class():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    index = class_sorted(y)
    assert y[index].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert index.tolist() == [1, 3, 6, 2, 5, 0, 4]  # stable: first 0 first, and so on
    with pytest.raises(ValueError, match=r"1-D tensor of class labels, got shape \(7, 1\)"):
        class_sorted(y[:, None])


def test_forgotten_eval_study_measures_both_orders_on_the_same_models(digits):
    n_test = len(digits.x_test)

    def build():
        return make_mlp(64, 10, depth=1, width=16, norm="batch_scratch")

    default = forgotten_eval_study(build, digits, seeds=[0], batch_sizes=[2, n_test], lr=0.1, steps=20)
    assert isinstance(default, ModeAccuracy)
    assert default.orders == ("shuffled",) and default.batch_sizes == (2, n_test) and default.seeds == (0,)
    assert default.train.shape == (1, 2, 1) and default.eval.shape == (1,)
    with pytest.raises(ValueError, match="order 'sorted' was not measured; the study has: shuffled$"):
        default.train_mode(2, order="sorted")  # the default: shuffled only
    both = forgotten_eval_study(
        build, digits, seeds=[0], batch_sizes=[2, n_test], orders=["shuffled", "sorted"], lr=0.1, steps=20
    )
    assert both.orders == ("shuffled", "sorted") and both.batch_sizes == (2, n_test)
    # the same trained model: the shuffled results do not change
    assert np.array_equal(default.eval, both.eval)
    for size in (2, n_test):
        assert np.array_equal(default.train_mode(size), both.train_mode(size, order="shuffled")), size
    # one batch of the whole test set has the same statistics in any order (up to rounding)
    assert abs(both.train_mode(n_test, order="sorted") - both.train_mode(n_test)).max() <= 2 / n_test
    # pairs of one class lose more than random pairs
    assert both.train_mode(2, order="sorted")[0] < both.train_mode(2)[0]


def test_mode_accuracy_names_what_was_measured_when_asked_for_something_else():
    results = ModeAccuracy(
        eval=np.array([0.95, 0.97]),
        seeds=(0, 1),
        batch_sizes=(2, 64),
        orders=("shuffled",),
        train=np.array([[[0.8, 0.9], [0.9, 0.94]]]),
    )
    assert results.train_mode(64).tolist() == [0.9, 0.94]
    with pytest.raises(ValueError, match="batch size 8 was not measured; the study has: 2, 64$"):
        results.train_mode(8)
    with pytest.raises(ValueError, match="order 'sorted' was not measured; the study has: shuffled$"):
        results.train_mode(2, order="sorted")
    both = ModeAccuracy(
        eval=np.array([0.9]),
        seeds=(0,),
        batch_sizes=(2, 8, 64),
        orders=("shuffled", "sorted"),
        train=np.arange(6.0).reshape(2, 3, 1),  # train[order, batch size, seed]
    )
    assert list(both.axes()) == ["order", "batch_size"] and tuple(both.axis("batch_size")) == (2, 8, 64)
    assert both.train_mode(8, "sorted").tolist() == [4.0] and both.train_mode(64).tolist() == [2.0]
    assert both.train_mode(2, "sorted").tolist() == [3.0]  # order first, batch size second
    with pytest.raises(ValueError, match=r"orders must be some of \['shuffled', 'sorted'\], got \['by_class'\]"):
        ModeAccuracy(eval=results.eval, seeds=(0, 1), batch_sizes=(2, 64), orders=("by_class",), train=results.train)
    with pytest.raises(ValueError, match=r"expected eval of shape \(2,\) and train of shape \(1, 3, 2\)"):
        ModeAccuracy(eval=results.eval, seeds=(0, 1), batch_sizes=(2, 8, 64), orders=("shuffled",), train=results.train)


def test_forgotten_eval_study_checks_its_arguments(digits):
    def build():
        return make_mlp(64, 10, depth=1, width=16, norm="batch_scratch")

    for orders in ([], ["sorted", "sorted"], ["by_class"]):
        with pytest.raises(ValueError, match="orders must name each of 'shuffled', 'sorted' at most once"):
            forgotten_eval_study(build, digits, seeds=[0], batch_sizes=[2], orders=orders, lr=0.1, steps=1)
    for sizes in ([], [0], [2.5]):  # the exact messages are tested in test_validation.py
        with pytest.raises((ValueError, TypeError), match="batch_sizes"):
            forgotten_eval_study(build, digits, seeds=[0], batch_sizes=sizes, lr=0.1, steps=1)


def test_a_batch_of_one_gives_the_same_accuracy_in_any_order():
    # forgotten_eval_study measures a batch of one once and reports it for both orders
    torch.manual_seed(0)
    model = make_convnet(1, 10, channels=(4,), norm="batch_scratch")
    x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,))
    index = class_sorted(y)
    shuffled = accuracy_in_mode(model, x, y, batch_size=1, train_mode=True)
    assert accuracy_in_mode(model, x[index], y[index], batch_size=1, train_mode=True) == shuffled


def test_plot_mode_accuracy_groups_the_orders():
    from matplotlib.container import BarContainer

    results = mode_accuracy([0.95, 0.97], [2, 64], shuffled=[[0.8, 0.9], [0.9, 0.94]], sorted=[[0.1, 0.2], [0.3, 0.5]])
    ax = plot_mode_accuracy(results)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [[bar.get_height() for bar in group.patches] for group in bars] == [
        pytest.approx([85.0, 92.0]),
        pytest.approx([15.0, 40.0]),
    ]
    assert [bar.get_x() < 0 for bar in bars[0].patches] == [True, False]  # shuffled left of the tick
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "64"]
    assert "sorted by class" in ax.get_legend_handles_labels()[1][-1]
    one = plot_mode_accuracy(results, orders=["sorted"])
    heights = [bar.get_height() for c in one.containers if isinstance(c, BarContainer) for bar in c.patches]
    assert heights == pytest.approx([15.0, 40.0])
    with pytest.raises(ValueError, match=r"orders must be some of \['shuffled'\]"):
        plot_mode_accuracy(mode_accuracy([0.95, 0.97], [2, 64], shuffled=[[0.8, 0.9], [0.9, 0.94]]), orders=["sorted"])
    with pytest.raises(TypeError, match="results must be a ModeAccuracy"):
        plot_mode_accuracy({"eval": np.array([0.95, 0.97])})


def test_plot_placement_draws_curves_speed_and_final_accuracy():
    from bn_utils.experiments.placement import PlacementStudy

    def history(accs, diverged=False):
        return History(eval_steps=[0, 5, 10], test_acc=accs, diverged_at=7 if diverged else None)

    runs = {
        "before": [[history([0.1, 0.5, 0.92]), history([0.1, 0.6, 0.95])], [history([0.1, 0.91, 0.97])] * 2],
        "after": [[history([0.1, 0.9, 0.96])] * 2, [history([0.1, 0.2, 0.3]), history([0.1, 0.95, 0.97])]],
    }
    study = PlacementStudy(lrs=(0.1, 1.0), seeds=(0, 1), histories=runs, target=0.9)
    curves, speed, final = plot_placement(study)
    labels = [line.get_label() for line in curves.lines[:2]]
    assert labels == ["BN before ReLU (the paper) (n=2)", "BN after ReLU (n=2)"]
    assert curves.get_title() == "learning rate 0.1"
    medians = [line for line in speed.lines if line.get_marker() == "o"]
    before, after = (line.get_ydata() for line in medians)
    assert list(before) == [10.0, 5.0]
    assert after[0] == 5.0 and np.isnan(after[1])  # half the seeds never got there: no median drawn
    assert speed.get_xlabel() == "learning rate" and "90%" in speed.get_ylabel()
    with pytest.raises(ValueError, match="three panels"):
        plot_placement(study, axes=[speed])


def test_plot_running_stats_and_mode_accuracy():
    trace = running_stats_trace(steps=20)
    ax = plot_running_stats(trace)
    assert [line.get_label() for line in ax.lines][:2] == ["batch mean", "running mean"]
    assert len(ax.lines[1].get_ydata()) == 20
    plt.close(ax.figure)
    results = mode_accuracy([0.95, 0.97], [1, 64], shuffled=[[0.5, 0.6], [0.9, 0.94]])
    ax = plot_mode_accuracy(results)
    bars = next(c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer))
    heights = [bar.get_height() for bar in bars.patches]
    assert heights == pytest.approx([55.0, 92.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "64"]
    plt.close(ax.figure)


def test_running_stats_panels_draw_one_titled_panel_per_trace():
    fast, slow = running_stats_trace(steps=20, momentum=0.1), running_stats_trace(steps=20, momentum=0.01)
    fig = plot_running_stats_panels({"fast": fast, "slow": slow})
    assert [ax.get_title() for ax in fig.axes] == ["fast", "slow"]
    assert tuple(fig.get_size_inches()) == (11, 3.6)
    assert fig.axes[1].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), slow.running_mean)
    plt.close(fig)
    with pytest.raises(ValueError, match="RunningStatsTrace"):
        plot_running_stats_panels({})


def test_mode_accuracy_panels_draw_one_titled_panel_per_study_in_the_given_orders():
    results = mode_accuracy([0.95, 0.97], [1, 64], shuffled=[[0.5, 0.6], [0.9, 0.94]], sorted=[[0.1, 0.2], [0.3, 0.5]])
    fig = plot_mode_accuracy_panels({"conv": results, "MLP": results}, orders=["shuffled"])
    assert [ax.get_title() for ax in fig.axes] == ["conv", "MLP"]
    assert tuple(fig.get_size_inches()) == (11, 3.8)
    bars = [c for c in fig.axes[1].containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(bars) == 1 and [bar.get_height() for bar in bars[0].patches] == pytest.approx([55.0, 92.0])
    plt.close(fig)
    fig = plot_mode_accuracy_panels({"conv": results})  # every order: shuffled and sorted
    bars = [c for c in fig.axes[0].containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(fig.axes) == 1 and len(bars) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="non-empty"):
        plot_mode_accuracy_panels({})


def test_running_stats_explorer_redraws_what_the_sliders_say(shown_figures):
    from bn_utils.experiments.inference import running_stats_explorer

    explorer = running_stats_explorer()
    batch_size, momentum = explorer.children[:2]
    drawn = len(shown_figures)
    batch_size.value = 8  # moving a slider redraws
    momentum.value = "cumulative"
    assert len(shown_figures) == drawn + 2, "each control change redraws once"
    assert shown_figures[-1].axes[0].get_title().startswith("batch size 8, cumulative average: final error")
    momentum.value = 0.001
    assert "momentum 0.001:" in shown_figures[-1].axes[0].get_title(), "the title says the value the slider shows"


def test_running_stats_explorer_without_a_kernel(unencoded_frames):
    from bn_utils.experiments.inference import RUNNING_STATS_BATCH_SIZES, RUNNING_STATS_MOMENTA, running_stats_explorer

    frames = running_stats_explorer(live=False)
    assert len(frames.frames) == len(RUNNING_STATS_BATCH_SIZES) * len(RUNNING_STATS_MOMENTA)
    assert frames.controls[1].labels[frames.controls[1].start] == "0.1"
