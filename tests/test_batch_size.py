"""Unit tests of the chapter "Batch size": the from-scratch layer norm, group norm, instance norm
and batch renormalization, the new norms' registration, the stacked conv nets (exact against
separate training in float64, and to the bit against their training loop written out by hand in
float32), the sweep's result, plots and explorer, and bad inputs."""

import copy
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments import batch_size as bs  # noqa: E402
from bn_utils.functional import group_norm, instance_norm, layer_norm  # noqa: E402
from bn_utils.layers import BatchNorm2d, BatchRenorm1d, BatchRenorm2d  # noqa: E402
from bn_utils.models import make_convnet, make_mlp, make_norm  # noqa: E402


def _x(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# --- layer norm, group norm, instance norm as pure functions ---------------------------------


@pytest.mark.parametrize("shape", [(4, 6), (3, 6, 5), (2, 6, 3, 4)])
def test_layer_norm_matches_torch_forward_and_backward(shape):
    x = _x(*shape).requires_grad_()
    normalized = shape[1:]
    weight, bias = _x(*normalized, seed=1).requires_grad_(), _x(*normalized, seed=2).requires_grad_()
    ours = layer_norm(x, normalized, weight, bias)
    theirs = F.layer_norm(x, normalized, weight, bias)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    upstream = _x(*shape, seed=3)
    g_ours = torch.autograd.grad(ours, (x, weight, bias), upstream)
    g_theirs = torch.autograd.grad(theirs, (x, weight, bias), upstream)
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_matches_torch_forward_and_backward(groups):
    x = _x(4, 6, 3, 3).requires_grad_()
    weight, bias = _x(6, seed=1).requires_grad_(), _x(6, seed=2).requires_grad_()
    ours = group_norm(x, groups, weight, bias)
    theirs = F.group_norm(x, groups, weight, bias)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    upstream = _x(4, 6, 3, 3, seed=3)
    g_ours = torch.autograd.grad(ours, (x, weight, bias), upstream)
    g_theirs = torch.autograd.grad(theirs, (x, weight, bias), upstream)
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_instance_norm_is_group_norm_with_a_group_per_channel_and_matches_torch():
    x = _x(3, 4, 5, 5)
    torch.testing.assert_close(instance_norm(x), F.instance_norm(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(instance_norm(x), group_norm(x, 4), rtol=0, atol=0)


def test_one_group_is_layer_norm_over_channels_and_positions():
    x = _x(3, 4, 2, 2)
    torch.testing.assert_close(group_norm(x, 1), layer_norm(x, (4, 2, 2)), rtol=0, atol=1e-12)


def test_norm_functions_reject_bad_inputs():
    x = _x(2, 6, 3, 3)
    with pytest.raises(ValueError, match="divide the 6 channels"):
        group_norm(x, 4)
    with pytest.raises(ValueError, match="last dimensions are"):
        layer_norm(x, (5, 3, 3))
    with pytest.raises(ValueError, match="normalized_shape must be"):
        layer_norm(x, ())
    with pytest.raises(ValueError, match="weight of shape"):
        group_norm(x, 3, weight=torch.ones(5, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        layer_norm([1.0, 2.0], 2)
    with pytest.raises(ValueError, match="with positions"):
        instance_norm(_x(2, 6))
    with pytest.raises(ValueError, match="eps"):
        group_norm(x, 3, eps=-1.0)


# --- batch renormalization -------------------------------------------------------------------


def test_batch_renorm_with_r1_d0_is_batch_norm_in_training_and_eval():
    x = _x(8, 3, 4, 4).requires_grad_()
    renorm = BatchRenorm2d(3, r_max=1.0, d_max=0.0).double()
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        for layer in (renorm, bn):
            layer.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
            layer.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    upstream = _x(8, 3, 4, 4, seed=4)
    for _ in range(3):  # running statistics move, the output stays batch norm's
        y_renorm, y_bn = renorm(x), bn(x)
        torch.testing.assert_close(y_renorm, y_bn, rtol=0, atol=1e-12)
    g_renorm = torch.autograd.grad(y_renorm, (x, renorm.weight, renorm.bias), upstream)
    g_bn = torch.autograd.grad(y_bn, (x, bn.weight, bn.bias), upstream)
    for a, b in zip(g_renorm, g_bn, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)
    torch.testing.assert_close(renorm.running_mean, bn.running_mean, rtol=0, atol=1e-14)
    torch.testing.assert_close(renorm.running_var, bn.running_var, rtol=0, atol=1e-14)
    renorm.eval(), bn.eval()
    torch.testing.assert_close(renorm(x), bn(x), rtol=0, atol=1e-12)


def test_batch_renorm_follows_the_papers_equations():
    """Ioffe (2017), Algorithm 1: r and d from the running statistics before the update, clipped,
    no gradient through them; then the moving averages are updated."""
    layer = BatchRenorm1d(4, r_max=1.5, d_max=0.5, warmup_steps=0, relax_steps=0).double()
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.0, 1.0, -3.0, 0.2]))
        layer.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 9.0]))
    mu, var = layer.running_mean.clone(), layer.running_var.clone()
    x = (_x(16, 4) * torch.tensor([1.0, 0.5, 3.0, 1.0]) + 0.3).requires_grad_()
    y = layer(x)
    mean, batch_var = x.mean(0), x.var(0, unbiased=False)
    sigma_b, sigma = torch.sqrt(batch_var + 1e-5), torch.sqrt(var + 1e-5)
    r = (sigma_b / sigma).clamp(1 / 1.5, 1.5).detach()
    d = ((mean - mu) / sigma).clamp(-0.5, 0.5).detach()
    expected = (x - mean) / sigma_b * r + d
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    assert (r == 1.5).any() or (r == 1 / 1.5).any(), "the test should exercise the clipping of r"
    assert (d.abs() == 0.5).any(), "the test should exercise the clipping of d"
    upstream = _x(16, 4, seed=5)
    torch.testing.assert_close(
        torch.autograd.grad(y, x, upstream)[0], torch.autograd.grad(expected, x, upstream)[0], rtol=0, atol=1e-11
    )
    torch.testing.assert_close(layer.running_mean, 0.9 * mu + 0.1 * mean.detach(), rtol=0, atol=1e-14)
    torch.testing.assert_close(layer.running_var, 0.9 * var + 0.1 * x.var(0).detach(), rtol=0, atol=1e-14)


def test_unclipped_batch_renorm_trains_with_the_inference_output():
    layer = BatchRenorm1d(3, r_max=1e6, d_max=1e6, warmup_steps=0, relax_steps=0).double()
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.running_var.copy_(torch.tensor([2.0, 0.5, 1.0]))
    frozen = BatchNorm2d(3).double()
    frozen.load_state_dict(layer.state_dict())
    x = _x(6, 3)
    expected = frozen.eval()(x[..., None, None])[..., 0, 0]
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_batch_renorm_warm_up_schedule():
    layer = BatchRenorm2d(2, r_max=3.0, d_max=5.0, warmup_steps=10, relax_steps=20)
    assert layer.limits(1) == (1.0, 0.0) and layer.limits(10) == (1.0, 0.0)
    assert layer.limits(20) == pytest.approx((2.0, 2.5))
    assert layer.limits(30) == (3.0, 5.0) and layer.limits(1000) == (3.0, 5.0)
    x = torch.randn(4, 2, 3, 3)
    for _ in range(12):
        layer(x)
    assert int(layer.num_batches_tracked) == 12 and layer.limits() == pytest.approx(
        (1.3, 0.75)
    )  # the 13th batch: 3 of 20 relax steps
    layer.eval()
    layer(x)
    assert int(layer.num_batches_tracked) == 12, "eval mode neither counts batches nor updates statistics"
    default = BatchRenorm2d(2)
    assert (default.warmup_steps, default.relax_steps, default.r_max_final, default.d_max_final) == (5000, 35000, 3, 5)


def test_batch_renorm_is_a_drop_in_for_batch_norm_state():
    renorm = BatchRenorm2d(5)
    torch_bn = nn.BatchNorm2d(5)
    assert set(renorm.state_dict()) == set(torch_bn.state_dict())
    torch_bn.load_state_dict(renorm.state_dict())
    renorm.load_state_dict(torch_bn.state_dict())
    assert "r_max=3.0" in repr(renorm)


def test_batch_renorm_rejects_bad_options_and_inputs():
    with pytest.raises(ValueError, match="r_max"):
        BatchRenorm2d(3, r_max=0.5)
    with pytest.raises(ValueError, match="d_max"):
        BatchRenorm2d(3, d_max=-1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        BatchRenorm2d(3, warmup_steps=-1)
    with pytest.raises((TypeError, ValueError), match="momentum"):
        BatchRenorm2d(3, momentum=None)
    with pytest.raises(ValueError, match="C=3"):
        BatchRenorm2d(3)(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchRenorm1d(3)(torch.randn(1, 3))


def test_new_norms_are_registered_and_build():
    assert isinstance(make_norm("batch_renorm", 4, spatial=True), BatchRenorm2d)
    assert isinstance(make_norm("batch_renorm", 4), BatchRenorm1d)
    instance = make_norm("instance", 4, spatial=True)
    assert isinstance(instance, nn.GroupNorm) and instance.num_groups == 4
    x = _x(2, 4, 3, 3).float()
    torch.testing.assert_close(instance(x), F.instance_norm(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="instance norm needs feature maps"):
        make_mlp(64, 10, norm="instance")
    assert make_convnet(norm="batch_renorm", channels=(4,))(torch.randn(3, 1, 8, 8)).shape == (3, 10)


# --- which values one statistic averages ------------------------------------------------------


def test_statistic_support_reads_each_norms_axes_off_the_code():
    n, c, p = 4, 6, 5
    support = {name: bs.statistic_support(name, (n, c, p), (1, 2, 0), num_groups=2) for name in bs.AXES_NORMS}
    expected_batch = np.zeros((n, c, p), bool)
    expected_batch[:, 2, :] = True
    expected_layer = np.zeros((n, c, p), bool)
    expected_layer[1] = True
    expected_instance = np.zeros((n, c, p), bool)
    expected_instance[1, 2] = True
    expected_group = np.zeros((n, c, p), bool)
    expected_group[1, 0:3] = True  # channels 0-2 form the group of channel 2
    np.testing.assert_array_equal(support["batch"], expected_batch)
    np.testing.assert_array_equal(support["layer"], expected_layer)
    np.testing.assert_array_equal(support["instance"], expected_instance)
    np.testing.assert_array_equal(support["group"], expected_group)
    with pytest.raises(ValueError, match="unknown normalization"):
        bs.statistic_support("dropout")
    with pytest.raises(ValueError, match="index must be"):
        bs.statistic_support("batch", (2, 2, 2), (5, 0, 0))


def test_plot_normalization_axes_draws_one_cube_per_norm():
    fig = bs.plot_normalization_axes()
    assert [ax.get_title() for ax in fig.axes] == ["BN", "layer norm", "instance norm", "group norm (2 groups)"]


# --- stacked conv nets -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_digits():
    data = bu.load_digits(images=True, dtype=torch.float64)
    from dataclasses import replace

    return replace(
        data, x_train=data.x_train[:64], y_train=data.y_train[:64], x_test=data.x_test[:40], y_test=data.y_test[:40]
    )


@pytest.mark.parametrize("order", bs.ORDERS)
def test_stacked_training_is_exactly_separate_training_in_float64(tiny_digits, order):
    """Slots with different norms and seeds, trained together, end with the weights each would
    have trained to alone (here with bn_utils.training.train for shuffled batches, and a plain
    loop over the same batches for sorted ones)."""
    norms = ["batch", "batch_renorm", "group", "layer", "none", "instance", "batch_ghost"]
    seeds = [0, 1, 2, 0, 1, 2, 0]
    kwargs = {
        "group": {"num_groups": 2},
        "batch_renorm": {"warmup_steps": 2, "relax_steps": 3},
        "batch_ghost": {"ghost_batch_size": 2},
    }
    stack = bs.build_stack(norms, seeds, channels=(4, 6), norm_kwargs=kwargs, dtype=torch.float64)
    bs.train_stacked_convnets(
        stack, tiny_digits, seeds=seeds, lr=0.05, epochs=2, batch_size=8, momentum=0.9, order=order
    )
    for slot, (norm, seed) in enumerate(zip(norms, seeds, strict=True)):
        bu.seed_everything(seed)
        alone = make_convnet(1, 10, channels=(4, 6), norm=norm, norm_kwargs=kwargs.get(norm)).double()
        if order == "shuffled":
            bu.train(alone, tiny_digits, lr=0.05, epochs=2, batch_size=8, momentum=0.9, seed=seed)
        else:
            opt = torch.optim.SGD(alone.parameters(), lr=0.05, momentum=0.9)
            for epoch in range(2):
                for idx in bs.epoch_batches(tiny_digits.y_train, 8, seed=seed, epoch=epoch, order="sorted"):
                    loss = F.cross_entropy(alone(tiny_digits.x_train[idx]), tiny_digits.y_train[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        got = stack.model(slot).state_dict()
        for key, value in alone.state_dict().items():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-9, msg=f"slot {slot} ({norm}) {key}")


def _train_by_hand(stack, data, seeds, *, lr, epochs, batch_size, momentum, weight_decay, order):
    """The conv nets' training loop written out: each slot's epoch_batches; the cross-entropy of
    the (batch, slots) logits averaged over the batch; backward of the sum over the slots that
    never diverged; torch.optim.SGD's step. Returns each slot's divergence step (-1: never)."""
    opt = torch.optim.SGD(stack.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    diverged, step = [-1] * stack.slots, 0
    stack.train()
    for epoch in range(epochs):
        per_slot = [bs.epoch_batches(data.y_train, batch_size, seed=s, epoch=epoch, order=order) for s in seeds]
        for batches in zip(*per_slot, strict=True):
            idx = torch.stack(batches)  # (slots, B)
            x = data.x_train[idx].transpose(0, 1).reshape(batch_size, -1, *data.x_train.shape[2:])
            losses = F.cross_entropy(stack(x).permute(0, 2, 1), data.y_train[idx].T, reduction="none").mean(0)
            for slot, value in enumerate(losses.tolist()):
                if not np.isfinite(value) and diverged[slot] < 0:
                    diverged[slot] = step
            opt.zero_grad(set_to_none=True)
            losses[torch.tensor([d < 0 for d in diverged])].sum().backward()
            opt.step()
            step += 1
    return diverged


@pytest.mark.parametrize("order", bs.ORDERS)
def test_stacked_conv_training_is_the_hand_written_loop_to_the_bit(tiny_digits, order):
    """The one step loop of every stacked run (bn_utils.stacked.run_steps) trains a conv stack
    with the conv nets' own arithmetic: in float32, the same weights, running statistics and
    divergence steps as the loop written out by hand (torch.equal, not a tolerance), with
    momentum, weight decay, and a slot that diverges at the first step and stops learning."""
    data = replace(tiny_digits, x_train=tiny_digits.x_train.float(), x_test=tiny_digits.x_test.float())
    norms, seeds = ["batch", "group", "none"], [0, 1, 2]
    stack = bs.build_stack(norms, seeds, channels=(4, 6), norm_kwargs={"group": {"num_groups": 2}})
    with torch.no_grad():  # slot 2's first convolution blows up: infinite logits, a NaN loss
        stack.blocks[0][0].weight[8:12] *= 1e38
    by_hand = copy.deepcopy(stack)
    options = dict(lr=0.1, epochs=2, batch_size=16, momentum=0.9, weight_decay=1e-3, order=order)
    steps = []
    diverged = bs.train_stacked_convnets(
        stack, data, seeds=seeds, on_step=lambda s, step: steps.append(step), **options
    )
    assert steps == list(range(9)), "the hook runs before the first step and after each of the 8"
    assert diverged.tolist() == _train_by_hand(by_hand, data, seeds, **options) == [-1, -1, 0]
    expected = by_hand.state_dict()
    for key, value in stack.state_dict().items():
        assert torch.equal(value.nan_to_num(7.0), expected[key].nan_to_num(7.0)), key


def test_sorted_batches_are_consecutive_runs_of_the_class_sorted_set(tiny_digits):
    labels = torch.tensor([3, 0, 1, 2] * 16)  # 16 examples of each of 4 classes, interleaved
    batches = bs.epoch_batches(labels, 8, seed=0, epoch=0, order="sorted")
    assert len(batches) == 8 and sorted(torch.cat(batches).tolist()) == list(range(64))
    assert all(len(set(labels[b].tolist())) == 1 for b in batches), "each batch holds one class"
    assert [labels[b[0]].item() for b in batches] != sorted(labels[b[0]].item() for b in batches), "batches shuffled"
    shuffled = bs.epoch_batches(tiny_digits.y_train, 8, seed=0, epoch=0)
    assert [b.tolist() for b in shuffled] == [b.tolist() for b in bu.batch_indices(64, 8, seed=0)]
    with pytest.raises(ValueError, match="order must be one of"):
        bs.epoch_batches(tiny_digits.y_train, 8, seed=0, epoch=0, order="random")


def test_stacking_and_training_reject_bad_inputs(tiny_digits):
    with pytest.raises(ValueError, match="one norm per seed"):
        bs.build_stack(["batch"], [0, 1], channels=(4,))
    with pytest.raises(ValueError, match="at least one network"):
        bs.StackedConvNet([])
    with pytest.raises(ValueError, match="make_convnet"):
        bs.StackedConvNet([nn.Linear(2, 2)])
    stack = bs.build_stack(["batch", "none"], [0, 1], channels=(4,), dtype=torch.float64)
    with pytest.raises(ValueError, match="one seed per slot"):
        bs.train_stacked_convnets(stack, tiny_digits, seeds=[0], lr=0.1, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        bs.train_stacked_convnets(stack, tiny_digits, seeds=[0, 1], lr=0.1, epochs=1, batch_size=1)
    with pytest.raises(ValueError, match="lr"):
        bs.train_stacked_convnets(stack, tiny_digits, seeds=[0, 1], lr=0.0, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="slot"):
        stack.model(2)


def test_scaled_lr_is_linear_in_the_batch_size():
    assert bs.scaled_lr(32) == bs.SETUP["base_lr"]
    assert bs.scaled_lr(2, base_lr=0.1, base_batch=32) == pytest.approx(0.00625)
    with pytest.raises(ValueError, match="base_lr"):
        bs.scaled_lr(2, base_lr=-1.0)


# --- the sweep, its result, plots and explorer -----------------------------------------------


@pytest.fixture(scope="module")
def tiny_sweep():
    data = bu.load_digits(images=True)
    return bs.batch_size_sweep(
        data, seeds=(0, 1), norms=("batch", "group", "none"), batch_sizes=(2, 8), epochs=1, train_examples=32
    )


def test_sweep_result_shapes_and_summaries(tiny_sweep):
    r = tiny_sweep
    assert r.eval_acc.shape == r.train_mode_acc.shape == r.stat_gap_mean.shape == (3, 2, 2)
    assert r.lrs == (bs.scaled_lr(2), bs.scaled_lr(8)) and r.train_examples == 32 and r.epochs == 1
    assert np.all((0 <= r.eval_acc) & (r.eval_acc <= 1))
    assert np.isnan(r.values("group", 2, "stat_gap_mean")).all() and (r.values("batch", 2, "stat_gap_mean") > 0).all()
    np.testing.assert_array_equal(r.values("none", 8, "mode_gap"), 0.0)
    np.testing.assert_array_equal(r.values("group", 2, "mode_gap"), 0.0)
    change = r.change("batch", 2, 8)
    np.testing.assert_allclose(change.values, r.values("batch", 8) - r.values("batch", 2))
    assert set(r.table()) == {"batch", "group", "none"} and r.markdown_table().startswith("| | batch 2 | batch 8 |")
    with pytest.raises(ValueError, match="norm 'layer' was not swept; the sweep has: batch, group, none"):
        r.values("layer", 2)
    with pytest.raises(ValueError, match="batch size 4 was not swept; the sweep has: 2, 8"):
        r.values("batch", 4)
    with pytest.raises(ValueError, match="unknown metric"):
        r.values("batch", 2, "loss")
    np.testing.assert_array_equal(r.values("group", 2, "recomputed_acc"), r.values("group", 2))
    assert np.all((0 <= r.recomputed_acc) & (r.recomputed_acc <= 1))
    for metric in ("eval_acc", "recomputed_acc"):
        correct = r.correct("batch", 8, metric)
        assert correct.shape == (2, 449) and correct.dtype == bool
        np.testing.assert_allclose(correct.mean(1), r.values("batch", 8, metric))
    with pytest.raises(ValueError, match="per-example results exist"):
        r.correct("batch", 8, "train_acc")


def test_chunks_cover_every_example_once_in_full_chunks():
    assert bs.overlapping_chunks(7, 2) == [(0, 2, 0), (2, 4, 2), (4, 6, 4), (5, 7, 6)]
    assert bs.overlapping_chunks(8, 4) == [(0, 4, 0), (4, 8, 4)]
    assert bs.overlapping_chunks(3, 8) == [(0, 3, 0)]
    for count, size in ((449, 2), (449, 32), (40, 8)):
        chunks = bs.overlapping_chunks(count, size)
        counted = [i for start, end, first in chunks for i in range(first, end)]
        assert counted == list(range(count)) and all(end - start == min(size, count) for start, end, _ in chunks)


def test_ghost_batches_of_the_whole_batch_are_batch_norm():
    data = bu.load_digits(images=True)
    kw = dict(seeds=(0, 1), batch_sizes=(4,), epochs=1, train_examples=32)
    ghost = bs.batch_size_sweep(data, norms=("batch", "batch_ghost"), ghost_batch_size=4, **kw)
    np.testing.assert_allclose(ghost.values("batch_ghost", 4), ghost.values("batch", 4), atol=1e-6)
    np.testing.assert_allclose(
        ghost.values("batch_ghost", 4, "recomputed_acc"), ghost.values("batch", 4, "recomputed_acc"), atol=1e-6
    )
    with pytest.raises(ValueError, match="needs ghost_batch_size"):
        bs.batch_size_sweep(data, norms=("batch_ghost",), **kw)
    with pytest.raises(ValueError, match="does not split into ghost batches of 3"):
        bs.batch_size_sweep(data, norms=("batch_ghost",), ghost_batch_size=3, **kw)
    with pytest.raises(ValueError, match="not among the norms"):
        bs.batch_size_sweep(data, norms=("batch",), ghost_batch_size=2, **kw)


def test_fully_connected_sweep_measures_both_modes_and_recomputed_statistics():
    kw = dict(seeds=(0, 1), batch_sizes=(2, 8), epochs=1, train_examples=32)
    r = bs.fully_connected_sweep(bu.load_digits(), norms=("batch", "batch_ghost", "layer"), ghost_batch_size=2, **kw)
    for metric in ("eval_acc", "train_acc", "train_mode_acc", "recomputed_acc"):
        values = getattr(r, metric)
        assert values.shape == (3, 2, 2) and np.all((0 <= values) & (values <= 1)), metric
    np.testing.assert_allclose(r.correct("batch", 8).mean(1), r.values("batch", 8))
    np.testing.assert_allclose(r.correct("batch", 8, "recomputed_acc").mean(1), r.values("batch", 8, "recomputed_acc"))
    # layer norm has no batch statistics: the same in both modes, nothing to recompute
    np.testing.assert_array_equal(r.values("layer", 2, "mode_gap"), 0.0)
    np.testing.assert_array_equal(r.values("layer", 8, "recomputed_acc"), r.values("layer", 8))
    # ghost batches of 2 in batches of 2 are batch norm at batch 2
    np.testing.assert_allclose(r.values("batch_ghost", 2), r.values("batch", 2), atol=1e-6)
    np.testing.assert_allclose(
        r.values("batch_ghost", 2, "train_mode_acc"), r.values("batch", 2, "train_mode_acc"), atol=1e-6
    )
    with pytest.raises(ValueError, match=r"trains the norms an MLP stack holds \(.*batch_ghost\), got .batch_renorm."):
        bs.fully_connected_sweep(bu.load_digits(), norms=("batch_renorm",), **kw)


def test_the_fully_connected_sweep_trains_the_norms_the_registry_says_a_stack_holds():
    from bn_utils.experiments.batch_size import fully_connected

    # derived from the registry's mlp_stacking: the same tuple, in the same order, as the list it replaced
    assert fully_connected._STACKABLE == ("none", "batch", "batch_scratch", "layer", "group", "rms", "batch_ghost")
    assert bs.FC_NORMS == ("batch", "layer", "none") and set(bs.FC_NORMS) <= set(fully_connected._STACKABLE)


def test_recovered_fraction():
    acc = np.zeros((2, 2, 2))
    acc[0, :, :] = [[0.6, 0.6], [0.9, 0.9]]  # BN: 60% at batch 2, 90% at batch 32
    acc[1, 0, :] = 0.84  # renorm at batch 2: 24 of the 30 points back
    nan = np.full_like(acc, np.nan)
    r = bs.SweepResult(
        ("batch", "batch_renorm"),
        (2, 32),
        (0, 1),
        "shuffled",
        acc,
        acc,
        acc,
        np.full(acc.shape, -1),
        nan,
        nan,
        (0.1, 0.1),
        1,
        10,
    )
    assert r.recovered(2, reference=32) == pytest.approx(0.8)


def test_sweep_rejects_bad_arguments():
    data = bu.load_digits(images=True)
    with pytest.raises(ValueError, match="needs images"):
        bs.batch_size_sweep(bu.load_digits(), seeds=(0, 1))
    with pytest.raises(ValueError, match="unknown norm"):
        bs.batch_size_sweep(data, seeds=(0, 1), norms=("batch", "dropout"))
    with pytest.raises(ValueError, match="order must be one of"):
        bs.batch_size_sweep(data, seeds=(0, 1), order="random")
    with pytest.raises(ValueError, match="batch_sizes"):
        bs.batch_size_sweep(data, seeds=(0, 1), batch_sizes=(1,))


def test_plots_and_explorer(tiny_sweep, shown_figures, unencoded_frames):
    ax = bs.plot_error_vs_batch_size(tiny_sweep)
    assert ax.get_xscale() == "log" and len(ax.get_lines()) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["BN (n=2)", "group norm (n=2)", "no BN (n=2)"]
    assert len(bs.plot_sweep(tiny_sweep).axes) == 2
    assert bs.plot_mode_gap(tiny_sweep).get_ylabel().startswith("train mode - eval mode")
    assert bs.plot_statistics_gap(tiny_sweep).get_yscale() == "log"
    assert bs.plot_orders(tiny_sweep, tiny_sweep, 8).get_title().startswith("Batches of 8")
    other = bs.plot_orders(tiny_sweep, tiny_sweep, 8, shuffled_batch_size=2)
    assert other.get_title() == "Random batches of 2 vs class-sorted batches of 8"
    assert [t.get_text() for t in other.get_legend().get_texts()] == [
        "shuffled batches of 2",
        "class-sorted batches of 8",
    ]
    with pytest.raises(TypeError, match="SweepResult"):
        bs.plot_mode_gap({"batch": 1})
    widget = bs.explorer(tiny_sweep)
    widget.children[0].value = 8
    widget.update()
    assert shown_figures[-1].axes[0].get_title().startswith("batch 8 (eval mode): BN ")
    widget.children[1].value = "train mode"
    assert shown_figures[-1].axes[0].get_title().startswith("batch 8 (train mode)")
    frames = bs.explorer(tiny_sweep, live=False)
    assert len(frames.frames) == len(tiny_sweep.batch_sizes) * 2
    with pytest.raises(ValueError, match="mode must be one of"):
        bs.batch_size_figure(tiny_sweep, 8, "test mode")


def test_recompute_running_statistics_gives_the_statistics_of_the_inputs():
    torch.manual_seed(0)
    model = make_convnet(1, 10, channels=(4, 6), norm="batch").double()
    model.train()(_x(3, 1, 8, 8, seed=1))  # running statistics of one small batch
    inputs = _x(50, 1, 8, 8, seed=2)
    model.train()
    returned = bs.recompute_running_statistics(model, inputs)
    assert returned is model and model.training  # modes restored
    first = model.blocks[0]
    pre = first.linear(inputs)
    torch.testing.assert_close(first.norm.running_mean, pre.mean(dim=(0, 2, 3)), rtol=0, atol=1e-12)
    torch.testing.assert_close(first.norm.running_var, pre.var(dim=(0, 2, 3)), rtol=0, atol=1e-12)
    assert first.norm.momentum == 0.1
    # the second layer sees the first normalized with its new statistics (training mode divides by
    # the biased variance, eval mode by the unbiased running one: a relative 1 / (50 * 64) apart)
    model.eval()
    second = model.blocks[1]
    pre2 = second.linear(model.blocks[0](inputs))
    torch.testing.assert_close(second.norm.running_mean, pre2.mean(dim=(0, 2, 3)), rtol=1e-3, atol=1e-6)


def test_recompute_running_statistics_leaves_batch_renorm_and_rejects_bad_inputs():
    renorm = make_convnet(1, 10, channels=(4,), norm="batch_renorm")
    with pytest.raises(ValueError, match="no batch norm"):
        bs.recompute_running_statistics(renorm, torch.randn(4, 1, 8, 8))
    with pytest.raises((TypeError, ValueError)):
        bs.recompute_running_statistics("model", torch.randn(4, 1, 8, 8))
    with pytest.raises((TypeError, ValueError), match="torch.Tensor"):
        bs.recompute_running_statistics(make_convnet(1, 10, channels=(4,), norm="batch"), [1.0])
