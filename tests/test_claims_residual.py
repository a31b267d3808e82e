"""Headline claims of the chapter "Residual networks", over 5 seeds, with margins.

Setting (bn_utils.experiments.residual): MLPs of 100 ReLU units per hidden block on the digits;
residual blocks in the pre-activation order (norm -> ReLU -> linear branches). At initialisation: one
batch of 256 training digits, training mode. Training: SGD at learning rate 0.1 (0.03 where said),
batches of 64, 200 steps, as in the chapter "Deep-network gradient flow"; a seed trains when it ends
at 50% test accuracy or more. Margins hold on the default and vectorised arithmetic paths.
"""

import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.experiments.residual import depth_sweep, measure_at_init


def fmt(values):
    return "[" + ", ".join(f"{v:.3g}" for v in np.ravel(values)) + "]"


@pytest.fixture(scope="module")
def at_init80(digits):
    return measure_at_init(digits, depth=80, seeds=SEEDS)


@pytest.fixture(scope="module")
def at_init40(digits):
    return measure_at_init(digits, depth=40, architectures=("plain_bn", "residual_bn"), seeds=SEEDS)


@pytest.fixture(scope="module")
def with_bn(digits):
    """The plain BN stack, the residual BN network (default and zero branches) and the frozen control."""
    return depth_sweep(
        digits,
        depths=(40, 80),
        architectures=("plain_bn", "residual_bn", "residual_bn_zero", "residual_bn_frozen"),
        seeds=SEEDS,
    )


@pytest.fixture(scope="module")
def at_lr_0_03(digits):
    """The plain BN stack, the residual BN network and the residual networks without any
    normalization, at learning rate 0.03."""
    return depth_sweep(
        digits,
        depths=(40,),
        architectures=("plain_bn", "residual_none", "residual_bn", "residual_scaled", "residual_bn_like"),
        lr=0.03,
        seeds=SEEDS,
    )


@pytest.fixture(scope="module")
def at_lr_0_03_depth_10(digits):
    """The residual networks without normalization (He branches) and with BN at depth 10, learning rate 0.03."""
    return depth_sweep(digits, depths=(10,), architectures=("residual_none", "residual_bn"), lr=0.03, seeds=SEEDS)


@pytest.fixture(scope="module")
def at_lr_0_01(digits):
    """The plain BN stack and the residual network without normalization at depth 40, learning rate 0.01."""
    return depth_sweep(digits, depths=(40,), architectures=("plain_bn", "residual_none"), lr=0.01, seeds=SEEDS)


@pytest.fixture(scope="module")
def without_norm(digits):
    """The residual networks without any normalization, at learning rate 0.1."""
    return depth_sweep(
        digits,
        depths=(10, 40, 80),
        architectures=("residual_none", "residual_scaled", "residual_bn_like"),
        seeds=SEEDS,
    )


def test_residual_bn_trains_where_the_plain_bn_stack_fails(with_bn):
    for depth in (40, 80):
        plain = with_bn.at("plain_bn", depth)
        assert np.median(plain) < 0.5, f"plain BN stack, depth {depth}: test accuracy per seed {fmt(plain)}"
        for name in ("residual_bn", "residual_bn_zero"):
            acc = with_bn.at(name, depth)
            assert acc.min() >= 0.9, f"{name}, depth {depth}: test accuracy per seed {fmt(acc)}"


def test_the_plain_bn_stack_fails_at_depth_40_at_every_learning_rate_tried(digits, with_bn, at_lr_0_03, at_lr_0_01):
    fast = depth_sweep(digits, depths=(40,), architectures=("plain_bn",), lr=0.3, seeds=SEEDS)
    for sweep in (at_lr_0_01, at_lr_0_03, with_bn, fast):
        acc = np.nan_to_num(sweep.at("plain_bn", 40), nan=0.0)
        assert np.median(acc) < 0.5, f"plain BN stack, depth 40, lr {sweep.lr}: test accuracy per seed {fmt(acc)}"


def test_unscaled_residual_without_normalization_diverges_unless_shallow_and_slow(
    without_norm, at_lr_0_03, at_lr_0_01, at_lr_0_03_depth_10
):
    for sweep, depths in ((without_norm, (10, 40, 80)), (at_lr_0_03, (40,)), (at_lr_0_01, (40,))):
        for depth in depths:
            diverged = sweep.diverged["residual_none"][sweep.depths.index(depth)]
            assert diverged.all(), f"residual, no norm, lr {sweep.lr}, depth {depth}: diverged per seed {diverged}"
    shallow = at_lr_0_03_depth_10.at("residual_none", 10)
    assert shallow.min() >= 0.8, f"residual, no norm, lr 0.03, depth 10: test accuracy per seed {fmt(shallow)}"


def test_stream_variance_grows_linearly_with_bn_and_geometrically_without(at_init80):
    rate = at_init80.growth_per_block("residual_none")
    assert ((rate > 1.7) & (rate < 2.0)).all(), f"no norm: stream variance growth per block {fmt(rate)}"
    var = at_init80.stream_var["residual_bn"]
    doubling, total = var[:, 80] / var[:, 40], var[:, 80] / var[:, 0]
    assert ((doubling > 1.8) & (doubling < 2.1)).all(), f"BN: stream variance block 80 / block 40: {fmt(doubling)}"
    assert ((total >= 40) & (total <= 90)).all(), f"BN: stream variance after 80 blocks / after the stem: {fmt(total)}"
    # the mechanism of linear growth: the branches' variances add up (stream = stem + every branch so far)
    branch = at_init80.branch_var["residual_bn"]
    summed = var[:, :1] + np.concatenate([np.zeros((len(var), 1)), np.cumsum(branch, 1)], 1)
    error = np.abs(var - summed) / var
    assert error.max() < 0.15, (
        f"BN: |stream variance - (stem + sum of branch variances)| / stream variance, largest per seed "
        f"{fmt(error.max(1))}"
    )


def test_deep_bn_branches_are_small_next_to_the_stream(at_init80):
    branch = at_init80.branch_var["residual_bn"]
    assert branch.min() > 0.55 and branch.max() < 0.9, (
        f"BN: branch variance over blocks and seeds {branch.min():.3f}..{branch.max():.3f} (1 - 1/pi = 0.68)"
    )
    ratio = at_init80.branch_ratio("residual_bn")
    first, last = ratio[:, 0], ratio[:, -1]
    assert ((first > 0.5) & (first < 1.5)).all(), f"BN: first branch / stream variance: {fmt(first)}"
    assert ((81 * last > 0.7) & (81 * last < 1.4)).all(), f"BN: 81 x last branch / stream variance: {fmt(81 * last)}"


def test_residual_bn_gradient_ratio_stays_small(at_init40, at_init80):
    for result, plain_low, residual_high in ((at_init40, 500, 10), (at_init80, 1e5, 20)):
        plain, res = result.gradient_ratio("plain_bn"), result.gradient_ratio("residual_bn")
        assert (plain > plain_low).all() and (res < residual_high).all(), (
            f"depth {result.depth}: first/last gradient ratio, plain BN stack {fmt(plain)}, residual BN {fmt(res)}"
        )


def test_bn_forward_sizes_without_bn_do_not_give_bn_gradients(at_init80):
    like, bn = at_init80.branch_ratio("residual_bn_like"), at_init80.branch_ratio("residual_bn")
    factor = like / bn
    assert factor.min() > 0.5 and factor.max() < 2, (
        f"branch/stream variance, BN's scaling without BN over residual BN, any block and seed: "
        f"{factor.min():.3f}..{factor.max():.3f}"
    )
    like_ratio, bn_ratio = at_init80.gradient_ratio("residual_bn_like"), at_init80.gradient_ratio("residual_bn")
    assert like_ratio.max() < 2 and bn_ratio.min() > 5, (
        f"first/last gradient ratio, BN's scaling without BN {fmt(like_ratio)}, residual BN {fmt(bn_ratio)}"
    )


def test_freezing_bn_statistics_at_step_10_keeps_the_benefit(with_bn):
    for depth in (40, 80):
        before, after = with_bn.accuracy_at_freeze("residual_bn_frozen", depth), with_bn.at("residual_bn_frozen", depth)
        assert before.max() < 0.8 and after.min() >= 0.9 and (after - before).min() > 0.15, (
            f"statistics frozen at step 10, depth {depth}: test accuracy per seed at the freeze {fmt(before)}, "
            f"after 200 steps {fmt(after)}"
        )


def test_bn_scaling_without_bn_fails_at_depth_80_at_lr_0_1(without_norm):
    like, scaled = without_norm.trained("residual_bn_like"), without_norm.trained("residual_scaled")
    at = without_norm.depths.index(80)
    assert not like[at].any() and not scaled[at].all(), (
        f"depth 80, lr 0.1, test accuracy per seed (nan: diverged): BN's scaling without BN "
        f"{fmt(without_norm.at('residual_bn_like', 80))}, 1/sqrt(depth) {fmt(without_norm.at('residual_scaled', 80))}"
    )


def test_normalization_free_scalings_train_at_depth_40_with_a_smaller_lr(at_lr_0_03):
    for name in ("residual_scaled", "residual_bn_like", "residual_bn"):
        acc = at_lr_0_03.at(name, 40)
        assert acc.min() >= 0.9, f"{name}, depth 40, lr 0.03: test accuracy per seed {fmt(acc)}"


def test_residual_bn_trains_at_both_learning_rates(with_bn, at_lr_0_03, at_lr_0_03_depth_10, without_norm):
    for sweep, depths in ((with_bn, (40, 80)), (at_lr_0_03, (40,)), (at_lr_0_03_depth_10, (10,))):
        for depth in depths:
            acc = sweep.at("residual_bn", depth)
            assert acc.min() >= 0.9, f"residual BN, depth {depth}, lr {sweep.lr}: test accuracy per seed {fmt(acc)}"
    for name in ("residual_scaled", "residual_bn_like"):
        assert not without_norm.trained(name).all(), (
            f"{name}, lr 0.1, depths {without_norm.depths}: test accuracy per seed {fmt(without_norm.test_acc[name])}"
        )
