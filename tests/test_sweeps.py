"""Sweep's answers (which values train, the largest stable one, the best one), the sweep
runners, the sweep plot and explorer."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments.sweeps import Sweep, init_scale_sweep, lr_sweep, plot_sweep, run_sweep  # noqa: E402


def history(test_acc, *, diverged_at=None, every=10, loss=1.0):
    """A made-up History: test accuracy at steps 0, every, 2*every, ..."""
    steps = len(test_acc) - 1
    h = bu.History(
        loss=[loss] * (steps * every if diverged_at is None else diverged_at),
        eval_steps=[every * i for i in range(len(test_acc))],
        test_acc=list(test_acc),
        test_loss=[1.0] * len(test_acc),
        steps_per_epoch=5,
        diverged_at=diverged_at,
    )
    return h


@pytest.fixture
def sweep():
    """lr 0.1: both seeds train, 95% at step 30 and 40; lr 1: both train, faster (20, 20);
    lr 10: one seed diverges. For 'batch' lr 10 trains too, but never reaches 95%."""
    grid = {
        "none": [
            [history([0.1, 0.5, 0.9, 0.95, 0.96]), history([0.1, 0.5, 0.9, 0.9, 0.97])],
            [history([0.1, 0.8, 0.95, 0.97, 0.97]), history([0.1, 0.8, 0.96, 0.96, 0.96])],
            [history([0.1, 0.3], diverged_at=12), history([0.1, 0.2, 0.3, 0.6, 0.7])],
        ],
        "batch": [
            [history([0.1, 0.2, 0.3, 0.4, 0.45]), history([0.1, 0.2, 0.3, 0.5, 0.6])],
            [history([0.1, 0.95, 0.96, 0.97, 0.98]), history([0.1, 0.9, 0.95, 0.97, 0.98])],
            [history([0.1, 0.6, 0.8, 0.9, 0.92]), history([0.1, 0.7, 0.8, 0.9, 0.91])],
        ],
    }
    return Sweep("lr", (0.1, 1.0, 10.0), (0, 1), grid, target=0.95, min_accuracy=0.5)


def test_which_runs_train_and_the_largest_stable_lr(sweep):
    assert sweep.diverged("none").tolist() == [[False, False], [False, False], [True, False]]
    assert np.isnan(sweep.final("none")[2, 0]) and sweep.final("none")[2, 1] == 0.7
    assert sweep.trained("none").tolist() == [[True, True], [True, True], [False, True]]
    assert sweep.trained("batch").tolist() == [[False, True], [True, True], [True, True]]
    assert sweep.largest_stable("none") == 1.0 and sweep.stable_values("none") == [0.1, 1.0]
    assert sweep.largest_stable("batch") == 10.0 and sweep.stable_values("batch") == [1.0, 10.0]
    assert sweep.final("none", "loss")[0, 0] == 1.0  # mean of the last epoch's training losses


def test_best_lr_is_the_fastest_to_target_among_stable_ones(sweep):
    steps = sweep.steps_to_target("none")
    assert steps[0].tolist() == [30, 40] and steps[1].tolist() == [20, 20] and steps[2].tolist() == [np.inf] * 2
    assert sweep.best("none") == 1.0 and sweep.median_steps_to_target("none") == 20
    # batch: lr 0.1 is not stable (one seed ends at 45%), lr 1 reaches 95% after 10 and 20 steps
    assert sweep.best("batch") == 1.0 and sweep.median_steps_to_target("batch") == 15
    assert sweep.median_steps_to_target("batch", 10.0) == np.inf
    assert sweep.median_steps_to_target("batch", 10.0, target=0.9) == 30  # an easier target
    assert sweep.steps_to_target("none", target=0.5)[0].tolist() == [10, 10]


def test_sweep_errors_name_what_is_valid(sweep):
    with pytest.raises(ValueError, match="norm 'layer' was not swept; the sweep has: none, batch"):
        sweep.trained("layer")
    with pytest.raises(ValueError, match="learning rate 0.3 is not on the grid"):
        sweep.runs("none", 0.3)
    with pytest.raises(ValueError, match="learning rate 0.3 is not on the grid"):
        sweep.median_steps_to_target("none", 0.3)
    with pytest.raises(ValueError, match="positive learning rate"):
        lr_sweep(bu.load_digits(), lrs=[0.1, -1.0])


def test_lr_sweep_runs_a_small_grid_on_paired_seeds():
    data = bu.load_digits()
    result = lr_sweep(data, lrs=(0.1, 1e3), seeds=(0, 1), steps=20, eval_every=10, depth=3, width=32)
    assert result.norms == ["none", "batch"] and result.values == (0.1, 1000.0)
    for norm in result.norms:
        runs = result.runs(norm, 0.1)
        assert [h.config["seed"] for h in runs] == [0, 1] and all(h.steps == 20 for h in runs)
        assert runs[0].eval_steps == [0, 10, 20] and runs[0].train_acc == []
    assert result.diverged("none")[1].all()  # lr 1000 without BN blows up
    assert result.largest_stable("none") == 0.1


def test_init_scale_sweep_pairs_runs_with_the_lr_sweep():
    """Scale 1 of an init-scale sweep at lr 0.1 is the very run that lr 0.1 of a learning-rate
    sweep trains; other scales start from the same draws, scaled."""
    data = bu.load_digits()
    small = dict(seeds=(0,), steps=20, eval_every=10, depth=3, width=32)
    by_scale = init_scale_sweep(data, scales=(0.5, 1.0), lr=0.1, **small)
    by_lr = lr_sweep(data, lrs=(0.1,), **small)
    assert by_scale.parameter == "init_scale" and by_scale.label == "initial weight scale"
    for norm in ("none", "batch"):
        assert by_scale.runs(norm, 1.0)[0].loss == by_lr.runs(norm, 0.1)[0].loss
        assert by_scale.runs(norm, 0.5)[0].config["lr"] == 0.1
        assert by_scale.runs(norm, 0.5)[0].loss != by_scale.runs(norm, 1.0)[0].loss
    # the BN network's hidden layers are scale-invariant: with the head at its standard scale,
    # its first loss is the same at every scale; scaling the head too changes it
    assert by_scale.runs("batch", 0.5)[0].loss[0] == pytest.approx(by_scale.runs("batch", 1.0)[0].loss[0], rel=1e-4)
    with_head = init_scale_sweep(data, scales=(0.5,), scale_head=True, norms=("batch",), **small)
    assert with_head.runs("batch", 0.5)[0].loss[0] < by_scale.runs("batch", 0.5)[0].loss[0] - 0.05
    with pytest.raises(ValueError, match="unknown parameter 'width'; valid names are: lr, init_scale, depth"):
        run_sweep(data, "width", (1, 2))
    with pytest.raises(ValueError, match="unknown parameter 'width'"):
        Sweep("width", (1.0,), (0,), {})


def test_plot_sweep_marks_divergence_and_stable_lr(sweep):
    ax = plot_sweep(sweep, "test_acc")
    crosses = [line for line in ax.lines if line.get_marker() == "x" and len(line.get_xdata())]
    assert len(crosses) == 1 and crosses[0].get_xdata()[0] == 10.0
    assert any(t.get_text() == "1/2" for t in ax.texts)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "largest stable learning rate, no BN: 1" in labels and "largest stable learning rate, BN: 10" in labels
    assert ax.get_xscale() == "log"
    assert plot_sweep(sweep, "loss").get_yscale() == "log"
    labels = [t.get_text() for t in plot_sweep(sweep, mark="range").get_legend().get_texts()]
    assert "every seed trains, no BN: 0.1 to 1" in labels and "every seed trains, BN: 1 to 10" in labels
    narrow = Sweep("lr", (0.1, 1.0), (0,), {"none": [[history([0.1, 0.9])], [history([0.1, 0.2])]]})
    labels = [t.get_text() for t in plot_sweep(narrow, mark="range").get_legend().get_texts()]
    assert "every seed trains, no BN: 0.1 only" in labels
    with pytest.raises(ValueError, match="mark must be 'largest' or 'range'"):
        plot_sweep(sweep, mark="all")


def test_sweep_explorer_redraws_what_the_controls_say(sweep, shown_figures):
    from bn_utils.experiments.sweeps import sweep_explorer

    explorer = sweep_explorer(sweep)
    lr, norm = explorer.children[0], explorer.children[1]
    assert [value for _, value in lr.options] == [0.1, 1.0, 10.0] and norm.value == "batch"
    lr.value, norm.value = 10.0, "none"  # one seed of the plain network diverged here
    explorer.update()
    loss_axes, accuracy_axes = shown_figures[-1].axes
    assert loss_axes.get_title() == "no BN, learning rate 10"
    assert accuracy_axes.get_title() == "1/2 seeds diverged; median seed never reached 95%"
    assert accuracy_axes.get_xlim()[1] == 40, "the axes span the whole planned run, not only the diverged part"
    lr.value, norm.value = 1.0, "batch"
    explorer.update()
    assert shown_figures[-1].axes[1].get_title() == "0/2 seeds diverged; 95% after 15 steps (median)"
    with pytest.raises(ValueError, match="lacks \\['batch'\\]"):
        sweep_explorer(Sweep("lr", (0.1,), (0,), {"none": [[history([0.1, 0.9])]]}))


def test_sweep_explorer_without_a_kernel_has_a_frame_for_every_setting(sweep, unencoded_frames):
    from bn_utils.experiments.sweeps import sweep_explorer

    frames = sweep_explorer(sweep, live=False)
    assert [control.labels for control in frames.controls] == [("0.1", "1", "10"), ("none", "batch")]
    assert len(frames.frames) == 6 and frames.index([1, 1]) == 3


def test_a_sweep_selected_on_validation_reports_test_accuracy_only_at_the_end():
    data = bu.load_digits().with_validation(0.2, seed=0)
    small = dict(lrs=(0.1, 1e3), seeds=(0, 1), steps=20, eval_every=10, depth=3, width=32, min_accuracy=0.1)
    result = lr_sweep(data, select_on="validation", **small)
    assert result.selected_on == "validation"
    # the histories were evaluated on the validation set: the same runs as a sweep whose test set is it
    on_val = lr_sweep(data.validation_view(), **small)
    for norm in result.norms:
        np.testing.assert_array_equal(result.final(norm), on_val.final(norm))
        assert result.runs(norm, 0.1)[0].loss == on_val.runs(norm, 0.1)[0].loss
    # the test accuracy at the end is the trained model's on the test set
    bu.seed_everything(0)
    alone = bu.train(bu.make_mlp(64, 10, depth=3, width=32), data, lr=0.1, steps=20, seed=0, eval_every=10)
    assert result.test_accuracy("none", 0.1)[0] == pytest.approx(alone.test_acc[-1], abs=1e-6)
    assert result.best("none") == 0.1 and np.isnan(result.test_accuracy("none", 1e3)).all()
    assert result.instability_onset("none") == 1e3
    # which test examples each run got right: its test accuracy, example by example (none for a diverged run)
    correct = result.test_correct("none")
    assert correct.shape == (2, len(data.x_test)) and correct.dtype == bool
    np.testing.assert_allclose(correct.mean(axis=1), result.test_accuracy("none"))
    assert not result.test_correct("none", 1e3).any()
    with pytest.raises(ValueError, match="only by a sweep selected on validation"):
        on_val.test_correct("none", 0.1)
    with pytest.raises(ValueError, match="needs a dataset with a validation set"):
        lr_sweep(bu.load_digits(), select_on="validation", **small)
    with pytest.raises(ValueError, match="select_on must be 'test' or 'validation', got 'train'"):
        lr_sweep(data, select_on="train", **small)


def test_instability_onset_brackets_the_limit(sweep):
    assert sweep.largest_stable("none") == 1.0 and sweep.instability_onset("none") == 10.0
    assert sweep.instability_onset("batch") is None  # stable to the end of the grid
    np.testing.assert_array_equal(sweep.test_accuracy("none", 1.0), sweep.final("none")[1])


def test_sweep_overview_draws_accuracy_and_loss_with_one_legend(sweep):
    from bn_utils.experiments.sweeps import plot_sweep_finals

    fig = plot_sweep_finals(sweep, mark="largest")
    accuracy, loss = fig.axes
    assert accuracy.get_title() == "final test accuracy" and loss.get_title() == "final training loss"
    assert accuracy.get_ylabel() == "final test accuracy" and loss.get_yscale() == "log"
    assert accuracy.get_legend() is not None and loss.get_legend() is None
    assert tuple(fig.get_size_inches()) == (12, 4)
    means = accuracy.containers[0].lines[0].get_ydata()  # the 'none' errorbar: lr 0.1, 1, 10
    assert means[0] == pytest.approx(np.nanmean(sweep.final("none")[0]))
    with pytest.raises(TypeError, match="needs a Sweep"):
        plot_sweep_finals({"none": []})


def test_equal_lr_figure_shows_every_norm_at_one_value(sweep):
    from bn_utils.experiments.sweeps import plot_equal_lr

    fig = plot_equal_lr(sweep, 1.0, levels=(0.9, 0.95))
    loss, accuracy = fig.axes
    assert loss.get_title() == "training loss, learning rate 1" and loss.get_yscale() == "log"
    assert accuracy.get_title() == "test accuracy, learning rate 1" and accuracy.get_ylim() == (0, 1)
    assert accuracy.get_ylabel() == "test accuracy" and tuple(fig.get_size_inches()) == (11, 3.6)
    dashed = [line.get_ydata()[0] for line in accuracy.lines if line.get_linestyle() == "--"]
    assert dashed == [0.9, 0.95]
    bands = [line for line in accuracy.lines if line.get_linestyle() != "--"]
    assert [line.get_label() for line in bands] == ["no BN (n=2)", "BN (n=2)"]
    assert bands[1].get_ydata()[1] == pytest.approx(0.925)  # BN at lr 1, step 10: mean of 0.95 and 0.9
    with pytest.raises(ValueError, match="not on the grid"):
        plot_equal_lr(sweep, 0.5)
