"""Residual MLPs (bn_utils.models.make_residual_mlp), their stacked training, and the experiment
module of the chapter "Residual networks" (bn_utils.experiments.residual)."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import bn_utils as bu
from bn_utils.experiments import residual as r
from bn_utils.models import ResidualBlock, ResidualMLP, make_residual_mlp
from bn_utils.stacked import StackedResidualMLP, set_running_statistics, train_stacked


def build(seed, dtype=torch.float64, **kw):
    bu.seed_everything(seed)
    return make_residual_mlp(64, 10, **{"depth": 3, "width": 16, **kw}).to(dtype)


@pytest.mark.parametrize("order,children", [("pre", ["norm", "act", "linear"]), ("post", ["linear", "norm", "act"])])
def test_blocks_are_named_like_make_mlp_and_compute_their_order(order, children):
    model = build(0, norm="batch", order=order)
    assert isinstance(model, ResidualMLP) and len(model.blocks) == 3
    block = model.blocks[1]
    assert list(dict(block.named_children())) == children
    assert isinstance(block.norm, nn.BatchNorm1d) and block.linear.bias is None
    h = torch.randn(32, 16, dtype=torch.float64)
    expected = (
        h + block.linear(block.act(block.norm(h))) if order == "pre" else block.act(h + block.norm(block.linear(h)))
    )
    torch.testing.assert_close(block(h), expected)
    assert (len(model.final) == 2) == (order == "pre")


def test_streams_follow_the_forward_pass():
    model = build(1, norm="batch").train()
    x = torch.randn(20, 64, dtype=torch.float64)
    streams, branches = model.streams(x)
    assert len(streams) == 4 and len(branches) == 3
    torch.testing.assert_close(streams[0], model.stem(x))
    for before, branch, after in zip(streams, branches, streams[1:], strict=False):
        torch.testing.assert_close(after, before + branch)
    torch.testing.assert_close(model.head(model.final(streams[-1])), model(x))


def test_branch_initialisations():
    depth = 9
    default = build(0, depth=depth)
    for name, kw in {"zero_pre": {"norm": "batch"}, "zero_none": {}}.items():
        model = build(0, depth=depth, branch_init="zero", **kw)
        assert all((b.linear.weight == 0).all() for b in model.blocks), name
        x = torch.randn(8, 64, dtype=torch.float64)
        streams, _ = model.streams(x)
        assert all(torch.equal(s, streams[0]) for s in streams), "zero branches leave the stream as it was"
    post = build(0, depth=depth, norm="batch", order="post", branch_init="zero")
    assert all((b.norm.weight == 0).all() and (b.linear.weight != 0).all() for b in post.blocks), "zero-gamma"
    scaled = build(0, depth=depth, branch_init="scaled")
    for a, b in zip(scaled.blocks, default.blocks, strict=True):
        torch.testing.assert_close(a.linear.weight, b.linear.weight / 3)
    assert (scaled.head.weight == 0).all()
    like = build(0, depth=depth, branch_init="bn_like")
    for index, (a, b) in enumerate(zip(like.blocks, default.blocks, strict=True)):
        torch.testing.assert_close(a.linear.weight, b.linear.weight / math.sqrt(index + 1))
    torch.testing.assert_close(like.head.weight, default.head.weight / math.sqrt(depth + 1))


def test_he_init_of_the_branches_and_the_stem():
    model = make_residual_mlp(64, 10, depth=2, width=400)
    assert model.blocks[0].linear.weight.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)
    assert model.stem.weight.std().item() == pytest.approx(1 / 8, rel=0.05)


def test_the_same_seed_builds_the_same_model():
    a, b = build(3, norm="batch"), build(3, norm="batch")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_make_residual_mlp_rejects_bad_arguments_and_says_what_was_expected():
    with pytest.raises(ValueError, match="order must be 'pre'"):
        make_residual_mlp(64, 10, order="middle")
    with pytest.raises(ValueError, match="valid names are: default, zero, scaled, bn_like"):
        make_residual_mlp(64, 10, branch_init="fixup")
    with pytest.raises(ValueError, match="use it with norm='none'"):
        make_residual_mlp(64, 10, norm="batch", branch_init="scaled")
    with pytest.raises(ValueError, match="use order='pre'"):
        make_residual_mlp(64, 10, branch_init="bn_like", order="post")
    with pytest.raises(ValueError, match="valid names are"):
        make_residual_mlp(64, 10, norm="batchy")
    with pytest.raises(ValueError, match="depth must be a non-negative integer"):
        make_residual_mlp(64, 10, depth=-1)
    with pytest.raises(ValueError, match="order must be"):
        ResidualBlock(8, norm="none", activation="relu", order="sideways")


@pytest.mark.parametrize("order", ["pre", "post"])
@pytest.mark.parametrize(
    "norm,branch_init", [("none", "default"), ("batch", "default"), ("batch", "zero"), ("layer", "default")]
)
def test_stacked_residual_models_train_exactly_as_alone(digits64, order, norm, branch_init):
    seeds, lrs = [0, 1], [0.05, 0.1]
    kw = {"norm": norm, "order": order, "branch_init": branch_init}
    stacked = train_stacked([build(s, **kw) for s in seeds], digits64, lrs=lrs, seeds=seeds, steps=30, eval_every=15)
    for seed, lr, h in zip(seeds, lrs, stacked, strict=True):
        alone = bu.train(build(seed, **kw), digits64, lr=lr, steps=30, seed=seed, eval_every=15)
        np.testing.assert_allclose(h.loss, alone.loss, rtol=0, atol=1e-10)
        np.testing.assert_allclose(h.test_acc, alone.test_acc, rtol=0, atol=1e-12)


def test_stacked_residual_forward_matches_each_model_and_round_trips(digits64):
    models = [build(s, norm="batch") for s in (0, 1, 2)]
    stack = StackedResidualMLP(models).eval()
    x = digits64.x_test[:50]
    logits, hidden = stack.forward_with_hidden(x)
    for slot, model in enumerate(models):
        model.eval()
        torch.testing.assert_close(logits[slot], model(x))
        torch.testing.assert_close(hidden[-1][slot], model.streams(x)[0][-1])
        copy = stack.model(slot)
        torch.testing.assert_close(copy(x), model(x))
    with pytest.raises(ValueError, match="make_residual_mlp"):
        StackedResidualMLP([bu.make_mlp(64, 10)])
    with pytest.raises(ValueError, match="expected inputs of shape"):
        stack(torch.zeros(4, 7, dtype=torch.float64))


@pytest.fixture(scope="module")
def digits64():
    return bu.load_digits(dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# The experiment module


def test_build_gives_each_architecture(digits):
    for name, arch in r.ARCHITECTURES.items():
        model = r.build(name, 64, 10, depth=4, width=8, init_batch=digits.x_train[:64])
        assert isinstance(model, ResidualMLP) == arch.residual
        assert model(digits.x_train[:5]).shape == (5, 10)
    with pytest.raises(ValueError, match="valid names are: plain_bn"):
        r.build("resnet", 64, 10, depth=4)
    with pytest.raises(ValueError, match="give init_batch"):
        r.build("residual_lsuv", 64, 10, depth=4)


def test_lsuv_gives_each_branch_bn_s_variance_on_its_batch(digits64):
    x = digits64.x_train[:128]
    model = r.lsuv_init(build(0, depth=5, width=32), x)
    streams, branches = model.streams(x)
    variances = np.array([b.var(0).mean().item() for b in branches])
    np.testing.assert_allclose(variances, 1 - 1 / math.pi, rtol=1e-10)
    # the stream's variance grows by about one branch variance per block, as BN's does
    assert streams[-1].var(0).mean().item() == pytest.approx(
        streams[0].var(0).mean().item() + 5 * (1 - 1 / math.pi), rel=0.3
    )
    # the head reads the stream divided by its final spread
    plain = build(0, depth=5, width=32)
    spread = streams[-1].var(0).mean().sqrt().item()
    torch.testing.assert_close(model.head.weight, plain.head.weight / spread)
    with pytest.raises(ValueError, match="norm='none'"):
        r.lsuv_init(build(0, norm="batch"), x)
    with pytest.raises(ValueError, match="at least 2 examples"):
        r.lsuv_init(build(0), x[:1])
    with pytest.raises(TypeError, match="ResidualMLP"):
        r.lsuv_init(bu.make_mlp(64, 10), x)


def test_measure_at_init_shapes_and_identities(digits):
    result = r.measure_at_init(digits, depth=6, width=32, seeds=(0, 1), batch_size=64)
    assert result.architectures == (
        "plain_bn",
        "residual_none",
        "residual_bn",
        "residual_bn_zero",
        "residual_scaled",
        "residual_bn_like",
    )
    assert result.of("residual_bn").contrast.shape == (2, 7) and np.isnan(result.of("plain_bn").contrast[:, 0]).all()
    assert result.of("plain_bn").head_contrast.shape == (2,)
    np.testing.assert_allclose(result.of("plain_bn").head_contrast, result.of("plain_bn").contrast[:, -1])
    # zero branches leave the stream as the stem made it: the same class contrast after every block
    zero = result.of("residual_bn_zero").contrast
    np.testing.assert_allclose(zero, np.repeat(zero[:, :1], zero.shape[1], axis=1))
    assert result.of("residual_bn").stream_var.shape == (2, 7) and result.of("plain_bn").gradient_norm.shape == (2, 6)
    assert np.isnan(result.of("plain_bn").stream_var[:, 0]).all() and np.isnan(result.of("plain_bn").branch_var).all()
    np.testing.assert_allclose(result.variance_growth("residual_bn_zero"), 1.0)
    np.testing.assert_allclose(result.gradient_ratio("residual_bn_zero"), 1.0, rtol=1e-5)
    assert (result.branch_ratio("residual_bn_zero") == 0).all()
    np.testing.assert_allclose(
        result.growth_per_block("residual_bn") ** 6, result.variance_growth("residual_bn"), rtol=1e-12
    )
    # the first branch of a BN block has unit-variance BN outputs through a ReLU and He weights: about 1
    first = result.of("residual_bn").branch_var[:, 0]
    assert ((first > 0.6) & (first < 1.5)).all(), first
    fig = r.plot_at_init(result)
    assert len(fig.axes) == 3
    assert len(r.plot_class_contrast(result, names=["plain_bn", "residual_bn"]).get_lines()) == 3  # and the zero line
    names = "plain_bn, residual_none, residual_bn, residual_bn_zero, residual_scaled, residual_bn_like"
    with pytest.raises(
        ValueError, match=f"^architecture 'residual_bn_frozen10' was not measured; the measurement has: {names}$"
    ):
        result.variance_growth("residual_bn_frozen10")
    with pytest.raises(ValueError, match="architecture 'plain' was not measured"):
        result.of("plain")


def test_measure_at_init_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="depth must be an integer >= 2"):
        r.measure_at_init(digits, depth=1)
    with pytest.raises(ValueError, match="differs from residual_bn only in training"):
        r.measure_at_init(digits, architectures=["residual_bn_frozen0"])
    with pytest.raises(ValueError, match="different architecture names"):
        r.measure_at_init(digits, architectures=["plain_bn", "plain_bn"])
    with pytest.raises(ValueError, match="batch_size must be"):
        r.measure_at_init(digits, batch_size=1)
    with pytest.raises(TypeError, match="AtInit"):
        r.plot_stream_variance("nope")


@pytest.mark.usefixtures("computed_afresh")
def test_depth_sweep_summaries_and_freezing(digits, monkeypatch):
    calls = []
    original = train_stacked

    def spy(models, data, **kw):
        calls.append((len(models), kw["on_step"]))
        return original(models, data, **kw)

    monkeypatch.setattr(r, "train_stacked", spy)
    sweep = r.depth_sweep(
        digits,
        depths=(2, 3),
        architectures=("residual_bn", "residual_bn_zero", "residual_bn_frozen10", "residual_none"),
        seeds=(0, 1),
        steps=60,
        width=16,
    )
    # residual_bn and residual_bn_zero share a stack; the frozen control and the no-norm net get their own
    assert [n for n, _ in calls] == [4, 2, 2] * 2
    assert all(callable(on_step) for _, on_step in calls)  # the freeze, and the per-example results at the end
    assert sweep.test_acc["residual_bn"].shape == (2, 2)
    assert sweep.trained("residual_bn").dtype == bool
    assert sweep.deepest("residual_bn") in (0, 2, 3)
    assert sweep.diverged_at["residual_bn"].shape == (2, 2) and set(sweep.at_freeze) == {"residual_bn_frozen10"}
    before = sweep.accuracy_at_freeze("residual_bn_frozen10", 3)
    assert before.shape == (2,) and ((before >= 0) & (before <= 1)).all(), before
    with pytest.raises(ValueError, match="has no freeze step"):
        sweep.accuracy_at_freeze("residual_bn", 3)
    with pytest.raises(ValueError, match="depth 7 was not trained"):
        sweep.accuracy_at_freeze("residual_bn_frozen10", 7)
    text = sweep.table()
    assert "residual BN" in text and "depth 3" in text and "deepest" in text
    assert r.plot_depth_sweep(sweep).get_xlabel() == "depth (hidden blocks)"
    assert len(r.plot_at_depth(sweep, 3).get_xticks()) == 4
    with pytest.raises(ValueError, match="depth 7 was not trained"):
        sweep.at("residual_bn", 7)


@pytest.mark.usefixtures("computed_afresh")
def test_freezing_stops_the_running_statistics(digits, monkeypatch):
    """After freeze_at steps BN normalizes with its running statistics (set once, at the freeze, from
    a large batch), which stop changing."""
    stacks = []
    original = train_stacked

    def spy(models, data, **kw):
        on_step = kw["on_step"]

        def keep(stack, step):
            stacks.append(stack)
            on_step(stack, step)

        return original(models, data, **{**kw, "on_step": keep})

    monkeypatch.setattr(r, "train_stacked", spy)
    monkeypatch.setitem(r.ARCHITECTURES, "frozen_test", r.Architecture("t", "k", True, "batch", freeze_at=3))
    r.depth_sweep(digits, depths=(2,), architectures=("frozen_test",), seeds=(0, 1), steps=10, width=8)
    tracked = stacks[-1].buffers["blocks.0.norm.num_batches_tracked"]
    assert (tracked == 4).all() and not stacks[-1].training, tracked  # 3 training steps and the freeze's pass


@pytest.mark.usefixtures("computed_afresh")
def test_freezing_at_step_0_normalizes_with_the_initial_network_s_statistics(digits, monkeypatch):
    stacks = []
    original = train_stacked

    def spy(models, data, **kw):
        on_step = kw["on_step"]

        def keep(stack, step):
            if step == 0:  # the initial network: its statistics on the freeze batch, before any step
                reference = StackedResidualMLP([m for m in models])
                set_running_statistics(reference, data.x_train[:64])
                stacks.append(reference)
            on_step(stack, step)
            stacks.append(stack)

        return original(models, data, **{**kw, "on_step": keep})

    monkeypatch.setattr(r, "train_stacked", spy)
    r.grid(
        digits,
        architectures=("residual_bn_frozen0",),
        depths=(2,),
        lrs=(0.1,),
        seeds=(0, 1),
        steps=5,
        width=8,
        freeze_batch=64,
    )
    reference, final = stacks[0], stacks[-1]
    assert not final.training and (final.buffers["blocks.0.norm.num_batches_tracked"] == 1).all()
    for key in ("blocks.0.norm.running_mean", "blocks.1.norm.running_var", "final.norm.running_mean"):
        torch.testing.assert_close(final.buffers[key], reference.buffers[key])


def test_set_running_statistics_sets_them_from_the_batch(digits):
    models = [build(seed, dtype=torch.float32, norm="batch", depth=2) for seed in (0, 1)]
    stack = StackedResidualMLP(models)
    x = digits.x_train[:128]
    set_running_statistics(stack, x)
    assert stack.training
    assert all(m.momentum == 0.1 for m in stack._template.modules() if isinstance(m, nn.BatchNorm1d))
    for slot, seed in enumerate((0, 1)):
        expected = stack.model(slot)
        reference = build(seed, dtype=torch.float32, norm="batch", depth=2)
        for m in reference.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.momentum = 1.0
        with torch.no_grad():
            reference.train()(x)
        for key in ("blocks.0.norm.running_mean", "blocks.1.norm.running_var", "final.norm.running_var"):
            torch.testing.assert_close(expected.state_dict()[key], reference.state_dict()[key])


def test_depth_sweep_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="train for more steps"):
        r.depth_sweep(digits, architectures=("residual_bn_frozen10",), steps=10)
    with pytest.raises(ValueError, match="freeze_batch must be"):
        r.depth_sweep(digits, freeze_batch=1)
    with pytest.raises(ValueError, match="depths must all be different"):
        r.depth_sweep(digits, depths=(3, 3))
    with pytest.raises(ValueError, match="each of depths must be a positive integer"):
        r.depth_sweep(digits, depths=(0,))
    with pytest.raises(ValueError, match="lr must be"):
        r.depth_sweep(digits, lr=0)
    with pytest.raises(TypeError, match="DepthSweep"):
        r.plot_depth_sweep(None)


def test_explorer_draws_the_stream_and_the_sweep(digits, shown_figures, unencoded_frames):
    sweep = r.DepthSweep(
        (5, 10),
        (0, 1),
        0.1,
        200,
        {"residual_bn": np.array([[0.9, 0.95], [0.9, np.nan]])},
        {"residual_bn": np.array([[False, False], [False, True]])},
    )
    assert sweep.deepest("residual_bn") == 5 and sweep.median("residual_bn")[1] == pytest.approx(0.45)
    widget = r.explorer(digits, sweep, seeds=(0,))
    widget.children[1].value = 10
    widget.update()
    assert len(shown_figures) >= 1 and len(shown_figures[-1].axes) == 2
    assert shown_figures[-1].axes[0].get_title().endswith(", 10 blocks, at initialisation")
    frames = r.explorer(digits, sweep, seeds=(0,), live=False)
    assert frames.controls[0].name == "network" and len(frames.frames) == len(frames.controls[0].labels)


def test_plots_and_explorer_reject_what_they_cannot_draw(digits):
    with pytest.raises(TypeError, match="AtInit"):
        r.plot_branch_ratio([1, 2])
    with pytest.raises(TypeError, match="AtInit"):
        r.plot_gradient_norms(None)
    with pytest.raises(TypeError, match="DepthSweep"):
        r.plot_at_depth({}, 40)
    with pytest.raises(TypeError, match="DepthSweep"):
        r.explorer(digits, "sweep")
    with pytest.raises(ValueError, match="valid names are"):
        r.depth_sweep(digits, architectures=("resnet50",))


@pytest.mark.usefixtures("computed_afresh")
def test_grid_stacks_by_structure_and_records_every_run(digits, monkeypatch):
    calls = []
    original = train_stacked

    def spy(models, data, **kw):
        calls.append((len(models), sorted(set(kw["lrs"]))))
        return original(models, data, **kw)

    monkeypatch.setattr(r, "train_stacked", spy)
    names = ("residual_bn", "residual_bn_zero", "residual_bn_frozen1", "residual_lsuv")
    result = r.grid(
        digits, architectures=names, depths=(2,), lrs=(0.05, 0.3), seeds=(0, 1), steps=20, eval_every=10, width=16
    )
    # BN and zero branches share a stack; the frozen control and the normalization-free network get their own;
    # every learning rate and seed of a structure trains in its stack
    assert calls == [(8, [0.05, 0.3]), (4, [0.05, 0.3]), (4, [0.05, 0.3])]
    assert result.eval_steps == (0, 10, 20) and result.test_acc["residual_bn"].shape == (1, 2, 2, 3)
    for name in names:
        final = result.final(name)
        done = ~result.diverged(name)
        np.testing.assert_allclose(result.correct[name].mean(-1)[done], final[done])
        assert np.isnan(final[~done]).all()
    np.testing.assert_array_equal(result.at("residual_bn", 2, 0.3, step=10), result.test_acc["residual_bn"][0, 1, :, 1])
    assert result.correct_at("residual_lsuv", 2, 0.05).shape == (2, len(digits.x_test))
    assert result.accuracy_at_freeze("residual_bn_frozen1", 2, 0.05).shape == (2,)
    assert result.count("residual_bn").shape == (1, 2) and result.trained("residual_bn", step=10).shape == (1, 2, 2)
    assert result.trainable_range("residual_bn", 2) in ("none", "0.05 only", "0.3 only", "0.05 to 0.3")
    assert "residual BN" in result.table() and "lr 0.3" in result.table(step=10)
    part = result.subset(["residual_bn"], lrs=(0.3,))
    np.testing.assert_array_equal(part.final("residual_bn")[:, 0], result.final("residual_bn")[:, 1])
    joined = part.join(result.subset(["residual_lsuv"], lrs=(0.3,)))
    assert joined.architectures == ("residual_bn", "residual_lsuv")
    back = r.Grid.from_dict(json.loads(json.dumps(result.to_dict())))
    for name in names:
        np.testing.assert_array_equal(back.test_acc[name], result.test_acc[name])
        np.testing.assert_array_equal(back.correct[name], result.correct[name])
        np.testing.assert_array_equal(back.diverged_at[name], result.diverged_at[name])
    assert back.lrs == result.lrs and back.eval_steps == result.eval_steps
    fig = r.plot_grid(result, names=["residual_bn", "residual_lsuv"])
    assert len(fig.axes) == 1 and [t.get_text() for t in fig.axes[0].get_yticklabels()][0] == "residual BN"
    assert r.plot_budget(result, depth=2, lr=0.05, names=["residual_bn"]).get_xlabel() == "steps of SGD"
    with pytest.raises(ValueError, match="learning rate 0.1 was not trained"):
        result.at("residual_bn", 2, 0.1)
    with pytest.raises(ValueError, match="step 15 was not evaluated"):
        result.final("residual_bn", step=15)
    with pytest.raises(ValueError, match="same depths"):
        result.join(part)
    with pytest.raises(ValueError, match="has no freeze step"):
        result.accuracy_at_freeze("residual_bn", 2, 0.05)
    with pytest.raises(ValueError, match="one label per architecture"):
        r.plot_grid(result, names=["residual_bn"], labels=["a", "b"])
    with pytest.raises(TypeError, match="Grid"):
        r.plot_grid("grid")


def test_grid_rejects_bad_arguments(digits):
    with pytest.raises(ValueError, match="lrs must all be different"):
        r.grid(digits, lrs=(0.1, 0.1))
    with pytest.raises(ValueError, match="each of lrs must be"):
        r.grid(digits, lrs=(0.0,))
    with pytest.raises(ValueError, match="eval_every must be"):
        r.grid(digits, steps=10, eval_every=20)
    with pytest.raises(ValueError, match="train for more steps"):
        r.grid(digits, architectures=("residual_bn_frozen10",), steps=10)


def test_the_stored_grids_are_the_chapter_s():
    grids = r.stored_grids()
    assert grids.ranges.architectures == r.RANGE_ARCHITECTURES and grids.ranges.lrs == r.LEARNING_RATES
    assert grids.ranges.depths == (10, 40, 80) and grids.ranges.seeds == (0, 1, 2, 3, 4)
    assert grids.freezes.lrs == r.FREEZE_LRS and grids.freezes.depths == (40, 80)
    assert grids.budget.eval_steps == (0, 200, 400, 600, 800)
    freeze = grids.freeze_grid()
    assert freeze.architectures == r.FREEZE_ARCHITECTURES
    np.testing.assert_array_equal(
        freeze.final("residual_bn"),
        grids.ranges.subset(["residual_bn"], depths=(40, 80), lrs=r.FREEZE_LRS).final("residual_bn"),
    )
