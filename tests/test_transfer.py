"""bn_utils.experiments.transfer: one training run read at several budgets, the chapters' result classes
built from it, the published baselines, the 1-D conv nets stacked, and the plots and explorer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import bn_utils as bu
from bn_utils.experiments import batch_size as bs
from bn_utils.experiments import residual
from bn_utils.experiments import transfer as tr
from bn_utils.experiments.covariate_shift import ioffe_mlp
from bn_utils.experiments.regularization import RegularizationResult, Setting, regularization_study
from bn_utils.experiments.sweeps import Sweep, run_sweep
from bn_utils.models import ResidualMLP

BENCH = tr.Benchmark("spirals", "spirals", reference=0.9, trains_at=0.4, target=0.6)


@pytest.fixture(scope="module")
def spirals():
    return bu.make_spirals(points_per_class=60, seed=0).with_validation(fraction=0.25, seed=0)


@pytest.fixture(scope="module")
def grid(spirals):
    configs = [tr.MLPConfig(norm, lr=lr, depth=2) for norm in ("none", "batch") for lr in (0.1, 1.0)]
    configs += [tr.MLPConfig("batch", depth=3), tr.MLPConfig("batch", depth=3, residual=True)]
    return tr.mlp_grid(
        spirals, BENCH, configs, seeds=(0, 1), budgets=(10, 20), batch_size=16, eval_every=5, evaluate_often=(2,)
    )


def test_a_run_read_at_a_shorter_budget_is_the_shorter_run(spirals):
    long, short = (
        bu.train(bu.mlp_for(spirals, seed=0, depth=2, width=8, norm="batch"), spirals, lr=0.3, steps=s, eval_every=5)
        for s in (20, 10)
    )
    cut = tr.truncate_history(long, 10)
    assert cut.loss == short.loss and cut.eval_steps == short.eval_steps
    assert cut.test_acc == short.test_acc and cut.train_acc == short.train_acc
    assert cut.config["steps"] == 10 and long.config["steps"] == 20  # the original is left alone
    with pytest.raises(ValueError, match="cannot be read at step 30"):
        tr.truncate_history(long, 30)


def test_a_divergence_after_the_budget_is_not_seen_at_the_budget():
    history = bu.History(loss=[1.0] * 7, eval_steps=[0, 5], test_acc=[0.1, 0.5], test_loss=[2.0, 1.0], diverged_at=7)
    assert tr.truncate_history(history, 5).diverged_at is None
    assert tr.truncate_history(history, 10).diverged  # diverged before step 10: stays diverged


def test_the_grid_read_at_a_budget_is_the_chapters_sweep_trained_for_that_many_steps(spirals, grid):
    """The same networks, batches and stacking as run_sweep: the learning-rate sweep read at step 10
    of the grid is run_sweep's 10-step sweep, run by run."""
    mine = grid.sweep("lr", (0.1, 1.0), 10, depth=2)
    theirs = run_sweep(
        spirals,
        "lr",
        (0.1, 1.0),
        seeds=(0, 1),
        depth=2,
        steps=10,
        batch_size=16,
        eval_every=5,
        select_on="validation",
        target=BENCH.target,
        min_accuracy=BENCH.trains_at,
    )
    assert isinstance(mine, Sweep) and mine.selected_on == "validation"
    for norm in ("none", "batch"):
        for row_mine, row_theirs in zip(mine.histories[norm], theirs.histories[norm], strict=True):
            for a, b in zip(row_mine, row_theirs, strict=True):
                assert a.loss == pytest.approx(b.loss, rel=1e-5) and a.test_acc == pytest.approx(b.test_acc)
        np.testing.assert_allclose(mine.final_test[norm], theirs.final_test[norm])
    assert mine.min_accuracy == BENCH.trains_at and mine.target == BENCH.target


def test_the_grid_gives_the_test_accuracy_of_each_config_at_each_budget(grid):
    residual_bn = tr.MLPConfig("batch", depth=3, residual=True)
    assert grid.final_test(residual_bn, 20).shape == (2,)
    assert grid.final_test(residual_bn, 10) is grid.test_at[10][residual_bn]
    with pytest.raises(ValueError, match="budget of steps 15 was not read; the grid has: 10, 20"):
        grid.final_test(residual_bn, 15)
    with pytest.raises(ValueError, match="was not trained"):
        grid.runs(tr.MLPConfig("none", depth=7), 10)


def test_configs_build_the_chapters_networks(spirals):
    bu.seed_everything(3)
    by_hand = bu.make_mlp(2, 3, depth=2, norm="batch", init_scale=2.0, head_init_scale=1.0)
    built = tr.MLPConfig("batch", init_scale=2.0, depth=2).build(spirals, 3)
    assert all(
        torch.equal(a, b) for a, b in zip(by_hand.state_dict().values(), built.state_dict().values(), strict=True)
    )
    built = tr.MLPConfig("batch", depth=2, residual=True).build(spirals, 0)
    bu.seed_everything(0)
    chapter = residual.build("residual_bn", 2, 3, depth=2)  # the residual chapter's residual BN network
    assert isinstance(built, ResidualMLP) and repr(built) == repr(chapter)
    assert all(
        torch.equal(a, b) for a, b in zip(built.state_dict().values(), chapter.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="residual BN"):
        tr.MLPConfig("none", residual=True).build(spirals, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(budgets=(10, 22)), "multiple of eval_every"),
        (dict(configs=[tr.MLPConfig("none", depth=2)] * 2), "different MLPConfig"),
        (dict(benchmark="digits"), "a Benchmark"),
    ],
)
def test_grid_arguments_are_checked(spirals, kwargs, message):
    options = dict(benchmark=BENCH, configs=[tr.MLPConfig("none", depth=2)], seeds=(0,), budgets=(10,), eval_every=5)
    options.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        tr.mlp_grid(spirals, options.pop("benchmark"), options.pop("configs"), **options)


def test_the_grid_needs_a_validation_set():
    with pytest.raises(ValueError, match="with_validation"):
        tr.mlp_grid(bu.make_spirals(points_per_class=20), BENCH, [tr.MLPConfig("none", depth=1)])


def test_benchmarks_load_their_data_and_state_their_thresholds():
    assert tr.load("mnist1d").input_shape == (40,) and tr.load("mnist1d", shaped=True).input_shape == (1, 40)
    assert tr.load(tr.BENCHMARKS["digits"], shaped=True).input_shape == (1, 8, 8)
    for benchmark in tr.BENCHMARKS.values():  # "trains": halfway from chance to the reference accuracy
        assert benchmark.trains_at == pytest.approx((0.1 + benchmark.reference) / 2, abs=0.05)
    with pytest.raises(ValueError, match="unknown benchmark 'cifar'"):
        tr.load("cifar")


def test_the_baselines_have_the_published_shapes():
    counts = {name: sum(p.numel() for p in tr.baseline_models(name).parameters()) for name in tr.PUBLISHED}
    assert counts == {"logistic regression": 410, "MLP": 15210, "CNN": 5210}  # as in Greydanus & Kobak's models.py
    assert tr.baseline_models("CNN")(torch.randn(2, 1, 40)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown baseline"):
        tr.baseline_models("GRU")
    result = tr.BaselineResult((0, 1), 10, {"MLP": np.array([0.64, 0.70])})
    assert result.median("MLP") == pytest.approx(0.67) and result.difference("MLP") == pytest.approx(-0.01)
    assert "| MLP | 68% | 67.0% (64.0-70.0%) | -1.0 points |" in result.table()
    tr.plot_baselines(result)


def test_speed_runs_train_the_figure1_network_with_each_norm(spirals):
    runs = tr.speed_runs(spirals, network=ioffe_mlp, seeds=(0, 1), steps=10, eval_every=5)
    assert set(runs) == {"none", "batch", "batch_noisy"}
    assert all(len(h) == 2 and h[0].steps == 10 and h[0].eval_steps == [0, 5, 10] for h in runs.values())
    assert runs["none"][0].config["lr"] == 0.5 and runs["batch_noisy"][1].config["batch_size"] == 60
    # the norms StackedMLP holds (the registry's mlp_stacking) train as one stack, noisy BN seed by seed
    assert [runs[norm][0].config.get("stacked_with") for norm in runs] == [2, 2, None]
    with pytest.raises(ValueError, match="flat examples"):
        tr.speed_runs(bu.load_mnist1d(sequences=True), network=ioffe_mlp, steps=1)
    with pytest.raises(TypeError, match="network must build"):
        tr.speed_runs(spirals, network="ioffe", steps=1)


def test_a_regularization_study_read_at_a_shorter_budget_is_the_shorter_study(spirals):
    configs = {"BN": Setting("batch"), "plain": Setting("none")}
    long = regularization_study(spirals, configs=configs, seeds=(0, 1), epochs=4, batch_size=16, depth=1, width=8)
    short = regularization_study(spirals, configs=configs, seeds=(0, 1), epochs=2, batch_size=16, depth=1, width=8)
    steps = short.histories["BN"][0].steps
    cut = tr.regularization_at(long, steps)
    assert isinstance(cut, RegularizationResult) and cut.norms == long.norms and cut.correct is None
    for label in configs:
        np.testing.assert_allclose(cut.final(label, "test_acc"), short.final(label, "test_acc"))
        np.testing.assert_allclose(cut.final(label, "gap"), short.final(label, "gap"))
    with pytest.raises(ValueError, match="not evaluated at step 3"):
        tr.regularization_at(long, 3)


def test_one_d_conv_nets_stack_exactly_as_they_train_alone():
    data = bu.load_mnist1d(sequences=True, dtype=torch.float64)
    data = bu.Dataset(data.name, data.x_train[:48], data.y_train[:48], data.x_test[:40], data.y_test[:40], 10)
    norms, seeds = ["batch", "none", "layer"], [0, 1, 2]
    stack = bs.build_stack(norms, seeds, channels=(4, 6), dtype=torch.float64, sequences=True)
    assert isinstance(stack.blocks[0][0], nn.Conv1d)
    bs.train_stacked_convnets(stack, data, seeds=seeds, lr=0.05, epochs=2, batch_size=8, momentum=0.9)
    for slot, (norm, seed) in enumerate(zip(norms, seeds, strict=True)):
        bu.seed_everything(seed)
        alone = bu.make_convnet1d(1, 10, channels=(4, 6), norm=norm).double()
        opt = torch.optim.SGD(alone.parameters(), lr=0.05, momentum=0.9)
        for epoch in range(2):
            for idx in bs.epoch_batches(data.y_train, 8, seed=seed, epoch=epoch):
                loss = nn.functional.cross_entropy(alone(data.x_train[idx]), data.y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        for (key, a), b in zip(alone.state_dict().items(), stack.model(slot).state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12, msg=f"slot {slot} ({norm}): {key}")
    with pytest.raises(ValueError, match="stride 1 and the average readout"):
        bs.StackedConvNet([tr.baseline_models("CNN")])


def test_plots_draw_what_they_say(grid):
    ax = tr.plot_sequences(bu.load_mnist1d(), per_class=2)
    assert len(ax.lines) == 20 and "MNIST-1D" in ax.get_title()
    fig = tr.plot_budget(
        {"spirals": grid}, [tr.MLPConfig("none", lr=0.1, depth=2), tr.MLPConfig("batch", lr=1.0, depth=2)]
    )
    ax = fig.axes[0]
    assert {"no BN, lr 0.1", "BN, lr 1"} <= {line.get_label() for line in ax.lines}
    assert ax.get_xlim() == (0.0, 20.0)
    figure = tr.budget_figure(grid, 1.0, 10, depth=2)
    assert "read at step 10" in figure.axes[0].get_title()


def test_the_explorer_offers_benchmark_learning_rate_and_budget(grid, shown_figures, unencoded_frames):
    frames = tr.explorer({"spirals": grid}, lrs=(0.1, 1.0), budgets=(10, 20), live=False)
    assert len(frames.frames) == 4 and [c.name for c in frames.controls] == [
        "benchmark",
        "learning rate",
        "read at step",
    ]
    widget = tr.explorer({"spirals": grid}, lrs=(0.1, 1.0), budgets=(10, 20))
    widget.children[1].value = 1.0
    assert shown_figures, "moving a control redraws"
    with pytest.raises(ValueError, match="not a step the grids were evaluated at"):
        tr.explorer({"spirals": grid}, budgets=(30,), live=False)


def test_a_grid_survives_its_json_round_trip(grid):
    back = tr.grid_from_dict(json.loads(json.dumps(tr.grid_to_dict(grid))))
    assert back.configs == grid.configs and back.seeds == grid.seeds and back.budgets == grid.budgets
    assert back.benchmark == BENCH and back.config == grid.config
    for config in grid.configs:
        for b in grid.budgets:
            np.testing.assert_array_equal(back.test_at[b][config], grid.test_at[b][config])
        for mine, theirs in zip(back.histories[config], grid.histories[config], strict=True):
            assert mine.eval_steps == theirs.eval_steps and mine.test_acc == theirs.test_acc
            np.testing.assert_allclose(mine.loss, theirs.loss, rtol=1e-6)
            assert mine.diverged_at == theirs.diverged_at


def test_the_stored_grid_is_the_notebooks_and_what_the_code_computes():
    """The stored grid (regenerate: python -m bn_utils.experiments.transfer) has the notebook's networks,
    seeds and budgets, and its first 20 steps are what the code computes now (a 20-step run is the
    first 20 steps of the 800-step run; to 1e-4, since another CPU changes the last bits)."""
    stored = tr.stored_grid()
    assert stored.configs == tr.NOTEBOOK_CONFIGS and stored.seeds == (0, 1, 2, 3, 4)
    assert stored.budgets == (200, 800) and stored.benchmark is tr.BENCHMARKS["mnist1d"]
    short = tr.notebook_grid(steps=20)
    for config in tr.NOTEBOOK_CONFIGS:
        for mine, theirs in zip(short.histories[config], stored.histories[config], strict=True):
            np.testing.assert_allclose(theirs.loss[: len(mine.loss)], mine.loss, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(theirs.test_acc[:2], mine.test_acc[:2], atol=1e-3)


def _history(accuracies: list[float], diverged_at: int | None = None) -> bu.History:
    steps = 20 * (len(accuracies) - 1)
    return bu.History(
        loss=[1.0] * steps,
        eval_steps=[20 * i for i in range(len(accuracies))],
        test_acc=accuracies,
        test_loss=[1.0] * len(accuracies),
        diverged_at=diverged_at,
    )


def test_final_validation_reads_the_budget_and_marks_diverged_runs_nan():
    config = tr.MLPConfig("batch", lr=1.0)
    runs = [_history([0.1, 0.3, 0.5, 0.6]), _history([0.1, 0.2, 0.4, 0.7], diverged_at=50)]
    grid = tr.MLPGrid(
        benchmark=tr.BENCHMARKS["mnist1d"],
        configs=(config,),
        seeds=(0, 1),
        budgets=(40, 60),
        histories={config: runs},
        test_at={40: {config: np.zeros(2)}, 60: {config: np.zeros(2)}},
    )
    np.testing.assert_allclose(grid.final_validation(config, 40), [0.5, 0.4])  # not diverged by step 40
    np.testing.assert_allclose(grid.final_validation(config, 60), [0.6, np.nan])
    with pytest.raises(ValueError, match="budget of steps 200 was not read; the grid has: 40, 60"):
        grid.final_validation(config, 200)
