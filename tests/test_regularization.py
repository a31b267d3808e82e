"""Ghost batch norm, layer and group norm in the model registry, batch noise, the regularization
study, its plots and the batch-noise explorer."""

import matplotlib
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments.regularization import (  # noqa: E402
    EXPLICIT_REGULARIZERS,
    METRICS,
    NETWORKS,
    REGULARIZERS,
    Network,
    RegularizationResult,
    RegularizerGains,
    Setting,
    batch_noise,
    config_name,
    explicit_regularizers,
    normalized_in_random_batches,
    plot_batch_noise,
    plot_estimates,
    plot_generalization,
    plot_regularization,
    plot_small_data,
    regularization_study,
    strength_grid,
    validation_split,
)
from bn_utils.layers import GhostBatchNorm  # noqa: E402
from bn_utils.statistics import Estimate  # noqa: E402
from bn_utils.style import plot_histories


def test_ghost_batch_norm_normalizes_each_chunk_and_updates_running_stats_per_chunk():
    torch.manual_seed(0)
    x = 3 + 2 * torch.randn(12, 5)
    ghost = GhostBatchNorm(5, ghost_batch_size=4)
    reference = nn.BatchNorm1d(5)
    out = ghost(x)
    for chunk, got in zip(x.split(4), out.split(4), strict=True):
        torch.testing.assert_close(got, reference(chunk))  # reference also sees the chunks in order
    torch.testing.assert_close(ghost.bn.running_mean, reference.running_mean)
    assert ghost.bn.num_batches_tracked.item() == 3
    ghost.eval()
    torch.testing.assert_close(ghost(x), reference.eval()(x))
    with pytest.raises(ValueError, match="does not split into ghost batches of 4"):
        ghost.train()(x[:10])
    with pytest.raises(ValueError, match="ghost_batch_size must be at least 2"):
        GhostBatchNorm(5, ghost_batch_size=1)


def test_registry_has_layer_group_and_ghost_norms():
    assert isinstance(bu.make_norm("layer", 100), nn.LayerNorm)
    assert isinstance(bu.make_norm("layer", 16, spatial=True), nn.GroupNorm)
    assert bu.make_norm("group", 100).num_groups == 4 and bu.make_norm("group", 64).num_groups == 32
    assert bu.make_norm("group", 100, num_groups=10).num_groups == 10
    assert bu.make_norm("batch_ghost", 8, ghost_batch_size=4).ghost_batch_size == 4
    model = bu.make_mlp(64, 10, depth=2, width=20, norm="layer")
    assert model(torch.randn(3, 64)).shape == (3, 10) and model.blocks[0].linear.bias is None


def test_normalized_in_random_batches_is_batch_norm_of_the_drawn_batch():
    torch.manual_seed(0)
    fixed, pool = torch.randn(2, 3, dtype=torch.float64), torch.randn(50, 3, dtype=torch.float64)
    out = normalized_in_random_batches(fixed, pool, 6, draws=1, generator=torch.Generator().manual_seed(1))
    others = pool[torch.randperm(50, generator=torch.Generator().manual_seed(1))[:5]]
    for i in range(2):
        batch = torch.cat([fixed[i : i + 1], others])
        expected = nn.functional.batch_norm(batch, None, None, training=True, eps=1e-5)[0]
        torch.testing.assert_close(out[0, i], expected)
    with pytest.raises(ValueError, match="batch_size must be between 2 and 51"):
        normalized_in_random_batches(fixed, pool, 1, draws=1, generator=torch.Generator())


def test_batch_noise_shrinks_like_one_over_root_batch(digits):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    noise = batch_noise(digits, (4, 16, 64, 256), draws=50, examples=8)
    assert torch.equal(torch.rand(1), expected_next)  # the global random stream is untouched
    values = [noise[s] for s in (4, 16, 64, 256)]
    assert values == sorted(values, reverse=True)
    assert 1.5 < noise[16] / noise[64] < 2.5  # 2 for exact 1/sqrt(batch)


def test_regularization_study_reports_per_seed_and_means(digits):
    study = regularization_study(
        digits,
        seeds=(0, 1),
        epochs=2,
        depth=1,
        width=16,
        train_examples=256,
        configs={"no norm": ("none", {}), "ghost": ("batch_ghost", {"ghost_batch_size": 8})},
    )
    assert list(study.histories) == ["no norm", "ghost"] and all(len(r) == 2 for r in study.histories.values())
    h = study.histories["ghost"][0]
    assert h.steps == 4 and len(h.train_acc) == 3  # 2 steps per epoch; evaluated at 0, 2, 4
    gap = study.final("ghost", "gap")
    np.testing.assert_allclose(gap, study.final("ghost", "train_acc") - study.final("ghost", "test_acc"))
    table = study.table()
    assert [row.config for row in table.rows] == ["no norm", "ghost"]
    ghost = table.row("ghost")
    assert ghost.gap == pytest.approx(np.mean(gap)) and ghost.test_loss == pytest.approx(
        study.final("ghost", "test_loss").mean()
    )
    assert (ghost.train_acc, ghost.test_acc) == (study.spread("ghost", "train_acc").mean, study.spread("ghost").mean)
    with pytest.raises(ValueError, match="^configuration 'bn' was not trained; the study has: no norm, ghost$"):
        table.row("bn")
    assert study.seeds("ghost") == [0, 1]
    assert study.norms == {"no norm": "none", "ghost": "batch_ghost"}
    ax = plot_generalization(study)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["no norm", "ghost"] and len(ax.texts) == 2
    assert [matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches] == ["#d55e00", "#cc79a7"]
    ax = plot_histories(study.histories, "test_acc", norms=study.norms)
    assert matplotlib.colors.to_hex(ax.lines[1].get_color()) == "#cc79a7"
    with pytest.raises(ValueError, match="train_examples must be between batch_size"):
        regularization_study(digits, train_examples=10)


def test_plot_batch_noise_and_explorer(digits, shown_figures, unencoded_frames):

    from bn_utils.experiments.regularization import batch_noise_explorer

    ax = plot_batch_noise({8: 0.4, 32: 0.2})
    assert (
        ax.get_xscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()][1] == "sqrt(1.5 / batch size)"
    )
    explorer = batch_noise_explorer(digits)
    explorer.children[0].value = 128
    explorer.update()
    assert shown_figures[-1].axes[0].get_title().startswith("batch size 128: std 0.")
    explorer.children[2].value = 5
    assert shown_figures[-1].axes[0].get_xlabel() == "BN output of example 0, unit 5"
    frames = batch_noise_explorer(digits, live=False)
    assert len(frames.frames) == 8 * 3 and frames.controls[0].labels[frames.controls[0].start] == "16"


def _result(values: dict[str, list[tuple[float, float]]], seeds=(0, 1, 2)):
    """A RegularizationResult whose runs end at the given (train_acc, test_acc), one per seed."""
    histories = {
        label: [
            bu.History(train_acc=[tr], test_acc=[te], config={"seed": s})
            for (tr, te), s in zip(runs, seeds, strict=True)
        ]
        for label, runs in values.items()
    }
    return RegularizationResult(histories)


def test_paired_differences_and_contrasts_go_seed_by_seed():
    result = _result(
        {
            "a": [(1.0, 0.90), (1.0, 0.92), (1.0, 0.91)],
            "a + reg": [(1.0, 0.93), (0.99, 0.93), (1.0, 0.95)],
            "b": [(0.99, 0.80), (1.0, 0.84), (1.0, 0.82)],
            "b + reg": [(1.0, 0.81), (1.0, 0.86), (1.0, 0.82)],
        }
    )
    np.testing.assert_allclose(result.difference("a + reg", "a").values, [0.03, 0.01, 0.04])
    np.testing.assert_allclose(result.difference("a", "b", "gap").values, [-0.09, -0.08, -0.09])
    how_much_more = result.contrast({"a + reg": 1, "a": -1, "b + reg": -1, "b": 1})
    np.testing.assert_allclose(how_much_more.values, [0.02, -0.01, 0.04])
    assert result.spread("a").mean == pytest.approx(0.91)
    assert result.fits_training_set("a") and not result.fits_training_set("a + reg")
    assert not result.fits_training_set("b")
    with pytest.raises(
        ValueError, match="configuration 'c' was not trained; the study has: a, a \\+ reg, b, b \\+ reg$"
    ):
        result.difference("a", "c")
    with pytest.raises(ValueError, match="unknown metric 'loss'"):
        result.final("a", "loss")
    with pytest.raises(ValueError, match="at least one configuration"):
        result.contrast({})
    other = _result({"a": [(1, 0.9)] * 3, "z": [(1, 0.9)] * 3}, seeds=(0, 1, 2))
    other.histories["z"] = _result({"z": [(1, 0.9)] * 3}, seeds=(2, 1, 0)).histories["z"]
    with pytest.raises(ValueError, match="ran different seeds"):
        other.difference("a", "z")


def test_settings_validation_split_and_the_configurations():
    assert Setting("batch", weight_decay=0.01).dropout == 0.0
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\)"):
        Setting(dropout=1.0)
    with pytest.raises(ValueError, match="weight_decay must be non-negative"):
        Setting(weight_decay=-0.1)
    configs = explicit_regularizers(dropout=0.3, weight_decay=0.01)
    assert list(configs) == ["plain", "plain_dropout", "plain_l2", "bn", "bn_dropout", "bn_l2"]
    assert [c.label for c in configs.values()] == [
        "plain",
        "plain + dropout",
        "plain + L2",
        "BN",
        "BN + dropout",
        "BN + L2",
    ]
    assert configs["bn_dropout"] == Setting("batch", dropout=0.3, label="BN + dropout")
    assert configs["plain_l2"] == Setting("none", weight_decay=0.01, label="plain + L2")
    grid = strength_grid((0.1, 0.5), (0.003,), norms={"ln": Network("layer", "LN")})
    assert grid == {
        "ln_dropout_0.1": Setting("layer", dropout=0.1, label="LN, dropout 0.1"),
        "ln_dropout_0.5": Setting("layer", dropout=0.5, label="LN, dropout 0.5"),
        "ln_l2_0.003": Setting("layer", weight_decay=0.003, label="LN, L2 0.003"),
    }
    assert list(strength_grid((0.1,), (), norms={"LN": "layer"}).values()) == [
        Setting("layer", dropout=0.1, label="LN, dropout 0.1")
    ]
    assert [s.label for s in REGULARIZERS.values()] == [
        "no norm",
        "BN, ghost batches of 8",
        "BN, batch of 128",
        "layer norm",
    ]
    assert list(REGULARIZERS) == ["no_norm", "bn_ghost_8", "bn_batch_128", "layer_norm"]


def test_validation_split_holds_out_the_rest_of_the_training_set(digits):
    split = validation_split(digits, 300)
    assert torch.equal(split.x_train, digits.x_train[:300]) and torch.equal(split.y_test, digits.y_train[300:])
    assert len(split.x_test) == len(digits.x_train) - 300 and "validation" in split.name
    with pytest.raises(ValueError, match="train_examples must be between 1 and"):
        validation_split(digits, len(digits.x_train))


def test_study_trains_with_dropout_and_weight_decay(digits):
    study = regularization_study(
        digits,
        seeds=(0, 1),
        epochs=1,
        depth=1,
        width=16,
        batch_size=32,
        train_examples=64,
        eval_every=1000,
        configs={
            "L2": Setting("batch", weight_decay=0.01),
            "dropout": Setting("none", dropout=0.5),
            "tuple": ("layer", {}),
        },
    )
    h = study.histories["L2"][1]
    assert h.config["weight_decay"] == 0.01 and h.config["seed"] == 1 and h.eval_steps == [0, 2]
    assert study.histories["dropout"][0].config["weight_decay"] == 0.0
    assert study.norms == {"L2": "batch", "dropout": "none", "tuple": "layer"}
    with pytest.raises(ValueError, match="must be a Setting or a"):
        regularization_study(digits, configs={"bad": "batch"})


def test_plot_estimates_draws_seeds_means_and_intervals():
    estimates = {"x": Estimate((0.01, 0.02, 0.03)), "y": Estimate((-0.01, 0.0, 0.02))}
    ax = plot_estimates(estimates, colors={"x": "#0072b2"}, ylabel="points", zero_line=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y"]
    assert len(ax.collections) >= 2 and ax.get_ylabel() == "points"
    offsets = ax.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 1], [1, 2, 3])
    assert matplotlib.colors.to_hex(ax.collections[0].get_facecolor()[0]) == "#0072b2"
    with pytest.raises(ValueError, match="at least one estimate"):
        plot_estimates({})


def made_up_study():
    """Two configurations of two seeds, evaluated at steps 0, 10, 20 (10 steps per epoch)."""

    def run(seed, train, test):
        return bu.History(
            loss=[1.0] * 20, eval_steps=[0, 10, 20], train_acc=[0.1, 0.9, train], test_acc=[0.1, 0.9, test],
            test_loss=[1.0] * 3, steps_per_epoch=10, config={"seed": seed},
        )  # fmt: skip

    return RegularizationResult(
        {"plain": [run(0, 1.0, 0.90), run(1, 1.0, 0.92)], "BN": [run(0, 0.99, 0.95), run(1, 1.0, 0.96)]},
        norms={"plain": "none", "BN": "batch"},
    )


def test_plot_regularization_draws_curves_and_gaps():
    study = made_up_study()
    fig = plot_regularization(study)
    curves, gaps = fig.axes
    assert tuple(fig.get_size_inches()) == (13, 4)
    assert curves.get_title() == "test accuracy (2 seeds)" and curves.get_ylim() == (0.85, 1.0)
    assert curves.get_xlabel() == "training step (10 per epoch)"
    np.testing.assert_allclose(curves.lines[1].get_ydata(), [0.1, 0.9, 0.955])
    assert gaps.get_title() == "generalization gap at the end"
    assert [t.get_text() for t in gaps.get_xticklabels()] == ["plain", "BN"]
    assert [p.get_height() for p in gaps.patches] == pytest.approx([9.0, 4.0])
    with pytest.raises(ValueError, match="needs a RegularizationResult"):
        plot_regularization({})


def test_plot_small_data_draws_accuracies_and_gains_in_the_norms_colours():
    study = made_up_study()
    none = Estimate((0.0, 0.0))
    gains = RegularizerGains("dropout", Estimate((0.01, 0.02)), Estimate((0.0, -0.01)), none, (0, 0), (0, 0))
    fig = plot_small_data(study, [gains], train_examples=256)
    accuracy, gain = fig.axes
    assert tuple(fig.get_size_inches()) == (13, 4)
    assert accuracy.get_title() == "256 training images: test accuracy (2 seeds)"
    assert gain.get_title() == "what dropout and L2 add, per network"
    seeds = [c for c in accuracy.collections if isinstance(c, matplotlib.collections.PathCollection)]
    np.testing.assert_allclose(seeds[1].get_offsets()[:, 1], [95, 96])  # BN's test accuracy per seed
    dots = [c for c in gain.collections if isinstance(c, matplotlib.collections.PathCollection)]
    colors = [matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in dots]
    assert colors == ["#d55e00", "#0072b2"] and gain.get_ylabel() == "gain in test accuracy (points)"
    assert [t.get_text() for t in gain.get_xticklabels()] == ["dropout, plain", "dropout, BN"]
    np.testing.assert_allclose(dots[1].get_offsets()[:, 1], [0, -1])  # BN's gain per seed, in points
    with pytest.raises(ValueError, match="gains must be a non-empty sequence of RegularizerGains"):
        plot_small_data(study, [], train_examples=256)
    with pytest.raises(ValueError, match="gains must be a non-empty sequence of RegularizerGains"):
        plot_small_data(study, {"dropout, BN": gains.bn}, train_examples=256)  # type: ignore[arg-type]


def test_config_names_are_made_in_one_place():
    assert [config_name("bn"), config_name("bn", "dropout"), config_name("plain", "l2", 0.03)] == [
        "bn",
        "bn_dropout",
        "plain_l2_0.03",
    ]
    assert set(explicit_regularizers()) == {
        config_name(network, regularizer) for network in NETWORKS for regularizer in (None, *EXPLICIT_REGULARIZERS)
    }
    assert explicit_regularizers()["bn_l2"].label == "BN + L2"
    assert "bn_dropout_0.2" in strength_grid([0.2], [0.03]) and "plain_l2_0.03" in strength_grid([0.2], [0.03])
    with pytest.raises(ValueError, match="regularizer must be one of dropout, l2, got 'L2'"):
        config_name("bn", "L2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a strength"):
        config_name("bn", None, 0.1)


def test_plot_batch_noise_sizes_its_own_figure():
    ax = plot_batch_noise({8: 0.4, 32: 0.2}, figsize=(6.4, 3.6))
    assert tuple(ax.figure.get_size_inches()) == pytest.approx((6.4, 3.6))


def test_the_result_is_a_grid_of_configurations_by_name_shown_by_label():
    result = _result({"bn": [(1.0, 0.9), (1.0, 0.8), (1.0, 0.7)], "bn_l2": [(0.9, 0.95), (0.8, 0.85), (1.0, 0.75)]})
    result.labels, result.norms = {"bn": "BN", "bn_l2": "BN + L2"}, {"bn": "batch", "bn_l2": "batch"}
    assert list(result.axes()) == ["config", "metric"]
    assert tuple(result.axis("config")) == ("bn", "bn_l2") and tuple(result.axis("metric")) == METRICS
    assert result.locate(config="bn_l2", metric="gap") == (1, 3)
    assert result.label("bn_l2") == "BN + L2" and result.label("bn") == "BN"
    # each metric reads its own number: a swapped pair (train for test, or the gap's sign) changes one
    np.testing.assert_allclose(result.final("bn_l2", "train_acc"), [0.9, 0.8, 1.0])
    np.testing.assert_allclose(result.final("bn_l2", "test_acc"), [0.95, 0.85, 0.75])
    np.testing.assert_allclose(result.final("bn_l2", "gap"), [-0.05, -0.05, 0.25])
    np.testing.assert_allclose(result.difference("bn_l2", "bn").values, [0.05, 0.05, 0.05])
    with pytest.raises(ValueError, match="configuration 'BN \\+ L2' was not trained; the study has: bn, bn_l2$"):
        result.difference("BN + L2", "bn")  # a label is not a name
    with pytest.raises(ValueError, match="configuration 'BN' was not trained; the study has: bn, bn_l2$"):
        result.label("BN")
    with pytest.raises(ValueError, match="unknown metric 'gaps'; valid names are: train_acc, test_acc, test_loss, gap"):
        result.final("bn", "gaps")  # type: ignore[arg-type]
    ax = plot_generalization(result)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["BN", "BN + L2"]
    l2 = result.difference("bn_l2", "bn")
    gains = RegularizerGains("l2", l2, l2, l2, (0, 0), (0, 0))
    ax = plot_small_data(result, [gains], train_examples=256).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["BN", "BN + L2"]
    assert NETWORKS["bn"] == Network("batch", "BN") and NETWORKS["plain"] == Network("none", "plain")
