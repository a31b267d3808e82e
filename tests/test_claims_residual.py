"""Headline claims of the chapter "Residual networks", over 5 seeds, with margins recorded by claim_checks.

Setting (bn_utils.experiments.residual): MLPs of 100 ReLU units per hidden block on the 8x8 digits;
residual blocks in the pre-activation order (norm -> ReLU -> linear branches). At initialisation: one
batch of 256 training digits, training mode. Training: SGD on batches of 64 for 200 steps (800 for the
budget grid), the learning rates of the grids (0.01 to 1.0), as in the chapter "Deep-network gradient
flow"; a seed trains when it ends at 50% test accuracy or more. The grids are those of
``residual.chapter_grids``: every network of the chapter at depths 10, 40 and 80 and learning rates
0.01, 0.03, 0.1, 0.3 and 1.0; BN's statistics frozen at step 0, 1 or 10 at depths 40 and 80 and
learning rates 0.03 to 1.0; the plain and residual BN networks at depth 40 for 800 steps.
"""

import claim_checks as cc
import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.chapters import residual_networks as rn
from bn_utils.chapters.residual_networks import divergence_steps
from bn_utils.experiments.residual import LEARNING_RATES, measure_at_init

NORMALIZATION_FREE = ("residual_scaled", "residual_bn_like", "residual_lsuv")


@pytest.fixture(scope="module")
def at_init80(digits):
    return rn.at_init(digits, SEEDS)


@pytest.fixture(scope="module")
def at_init40(digits):
    return measure_at_init(digits, depth=40, architectures=("plain_bn", "residual_bn"), seeds=SEEDS)


@pytest.fixture(scope="module")
def grids(digits):
    return rn.grids(digits, SEEDS)


@pytest.fixture(scope="module")
def ranges(grids):
    return grids.ranges


@pytest.fixture(scope="module")
def freeze(grids):
    return grids.freeze_grid()


def test_residual_bn_trains_where_the_plain_bn_stack_fails(ranges):
    for depth in (40, 80):
        cc.median(ranges.scored("plain_bn", depth, 0.1), "<", 0.5, f"plain BN stack, depth {depth}, lr 0.1, 200 steps")
        for name in ("residual_bn", "residual_bn_zero"):
            cc.every(ranges.scored(name, depth, 0.1), ">=", 0.9, f"{name}, depth {depth}, lr 0.1, 200 steps")


def test_in_200_steps_the_plain_bn_stack_fails_at_depth_40_and_80_at_every_learning_rate(ranges):
    for depth in (40, 80):
        for lr in LEARNING_RATES:
            cc.median(
                ranges.scored("plain_bn", depth, lr), "<", 0.5, f"plain BN stack, depth {depth}, lr {lr}, 200 steps"
            )


def test_the_plain_bn_stack_at_depth_40_is_slow_not_stuck(grids):
    """At depth 40 and learning rate 0.1, the plain BN stack's median test accuracy is higher after 800
    steps than after 200, yet every seed after 800 steps stays below every seed of the residual BN
    network after 200. Whether its median passes 50% by step 800, 5 seeds do not settle: it rose by 22
    points to 63% on seeds 0-4 (native kernels) but by 7 points to 48.6% on seeds 5-9 with the portable
    kernels, so the rise is asserted, not its size or the line."""
    gain = rn.budget_gain(grids.budget)
    cc.compare(gain.median_gain, ">", 0, "plain BN stack, depth 40: median at 800 - at 200 steps")
    cc.compare(gain.residual_margin, ">", 0, "residual BN's worst seed after 200 - plain BN's best after 800")


def test_unscaled_residual_without_normalization_diverges_unless_shallow_and_slow(ranges):
    """At depths 40 and 80 every run diverges within 10 steps at every learning rate; at depth 10 every
    seed trains at 0.01, at least 4 of 5 at 0.03, and every run diverges within 10 steps from 0.1 on."""
    for depth in (40, 80):
        for lr in LEARNING_RATES:
            cc.every(
                divergence_steps(ranges, "residual_none", depth, lr),
                "<",
                10,
                f"residual, no norm, depth {depth}, lr {lr}: step of divergence",
            )
    cc.every(ranges.scored("residual_none", 10, 0.01), ">=", 0.5, "residual, no norm, depth 10, lr 0.01")
    cc.at_least(ranges.scored("residual_none", 10, 0.03), ">=", 0.5, 4, "residual, no norm, depth 10, lr 0.03")
    for lr in (0.1, 0.3, 1.0):
        cc.every(
            divergence_steps(ranges, "residual_none", 10, lr),
            "<",
            10,
            f"residual, no norm, depth 10, lr {lr}: step of divergence",
        )


def test_stream_variance_grows_linearly_with_bn_and_geometrically_without(at_init80):
    growth = rn.stream_growth(at_init80)
    rate = growth.none_rate
    cc.every(rate, ">", 1.7, "no norm: stream variance growth per block")
    cc.every(rate, "<", 2.1, "no norm: stream variance growth per block")
    doubling, total = growth.bn_doubling, growth.bn_growth
    cc.every(doubling, ">", 1.75, "BN: stream variance block 80 / block 40")
    cc.every(doubling, "<", 2.25, "BN: stream variance block 80 / block 40")
    cc.every(total, ">=", 40, "BN: stream variance after 80 blocks / after the stem")
    cc.every(total, "<=", 90, "BN: stream variance after 80 blocks / after the stem")
    # the mechanism of linear growth: the branches' variances add up (stream = stem + every branch so far)
    cc.every(growth.sum_error, "<", 0.15, "BN: largest |stream variance - (stem + branches so far)| / stream variance")


def test_deep_bn_branches_are_small_next_to_the_stream(at_init80):
    growth = rn.stream_growth(at_init80)
    branch = growth.branch_var
    cc.every(branch.min(1), ">", 0.55, "BN: smallest branch variance over blocks (1 - 1/pi = 0.68)")
    cc.every(branch.max(1), "<", 0.9, "BN: largest branch variance over blocks (1 - 1/pi = 0.68)")
    first, last = growth.first_branch_share, growth.last_branch_share
    cc.every(first, ">", 0.5, "BN: first branch / stream variance")
    cc.every(first, "<", 1.5, "BN: first branch / stream variance")
    cc.every(last, ">", 0.7, "BN: 81 x last branch / stream variance")
    cc.every(last, "<", 1.4, "BN: 81 x last branch / stream variance")


def test_residual_bn_gradient_ratio_stays_small(at_init40, at_init80):
    for result, plain_low, residual_high in ((at_init40, 500, 10), (at_init80, 1e5, 20)):
        depth = result.depth
        cc.every(
            np.log10(result.gradient_ratio("plain_bn")),
            ">",
            np.log10(plain_low),
            f"depth {depth}: log10 first/last gradient ratio, plain BN stack",
        )
        cc.every(
            result.gradient_ratio("residual_bn"),
            "<",
            residual_high,
            f"depth {depth}: first/last gradient ratio, residual BN",
        )


def test_skip_connections_keep_the_class_contrast_that_the_plain_bn_stack_loses(at_init80):
    """Chapter 5's class contrast at initialisation, at block 80: at least 0.1 in the residual BN
    network's stream in every seed, within 0.02 of zero for the plain BN stack's layer 80."""
    residual, plain = at_init80.of("residual_bn").contrast[:, 80], at_init80.of("plain_bn").contrast[:, 80]
    cc.every(residual, ">", 0.1, "residual BN: class contrast of the stream after block 80")
    cc.every(np.abs(plain), "<", 0.02, "plain BN stack: |class contrast| of layer 80's output")
    cc.every(at_init80.of("residual_bn").head_contrast, ">", 0.05, "residual BN: class contrast of what the head reads")


def test_bn_forward_sizes_without_bn_do_not_give_bn_gradients(at_init80):
    factor = rn.stream_growth(at_init80).like_share
    cc.every(
        factor.min(1), ">", 0.5, "branch/stream variance, BN's scaling without BN over residual BN, smallest block"
    )
    cc.every(factor.max(1), "<", 2, "branch/stream variance, BN's scaling without BN over residual BN, largest block")
    cc.every(at_init80.gradient_ratio("residual_bn_like"), "<", 2, "first/last gradient ratio, BN's scaling without BN")
    cc.every(at_init80.gradient_ratio("residual_bn"), ">", 5, "first/last gradient ratio, residual BN")


def test_up_to_lr_0_3_bn_frozen_at_step_0_trains_about_as_well_as_live_bn(freeze):
    """With its statistics frozen at step 0 (the initial network's, from one batch of 512 training
    digits), the residual BN network trains every seed at depths 40 and 80 at learning rates 0.03,
    0.1 and 0.3, and its mean test accuracy is less than 2.5 points below live BN's in each of these six
    cells."""
    for cell in rn.frozen_versus_live(freeze).cells:
        depth, lr = cell.depth, cell.lr
        cc.every(
            freeze.scored("residual_bn_frozen0", depth, lr), ">=", 0.5, f"frozen at step 0, depth {depth}, lr {lr}"
        )
        cc.compare(
            cell.versus.mean,
            ">",
            -0.025,
            f"frozen at 0 - live BN, depth {depth}, lr {lr}: mean over seeds",
            values=cell.versus.seeds.values,
        )


def test_live_bn_still_adds_about_a_point_over_its_frozen_initial_statistics(freeze):
    """In at least 1 of the 6 cells (depths 40 and 80, learning rates 0.03 to 0.3), frozen at step 0
    minus live BN is below zero beyond both the seed interval and the test-set interval."""
    below = rn.frozen_versus_live(freeze).below_both
    cc.compare(below, ">=", 1, "cells where frozen at 0 is below live BN beyond both intervals (of 6)")


def test_at_lr_1_only_live_bn_trains(freeze):
    """At learning rate 1.0 live BN trains every seed at depths 40 and 80; with the statistics frozen at
    step 0, 1 or 10, at least 20 of the 30 runs (3 freeze steps x 2 depths x 5 seeds) diverge."""
    for depth in (40, 80):
        cc.every(freeze.scored("residual_bn", depth, 1.0), ">=", 0.9, f"live BN, depth {depth}, lr 1.0")
    frozen = rn.frozen_divergence_at_lr1(freeze)
    cc.at_least(
        frozen, "<", 200, 20, "frozen at step 0, 1 or 10, lr 1.0, depths 40 and 80: step of divergence, 30 runs"
    )


def test_lsuv_does_not_do_what_frozen_bn_does(ranges, freeze):
    """A data-dependent initialisation without normalization (LSUV: each branch rescaled on one batch
    so that the stream has BN's variances) trains every seed at depths 40 and 80 at 0.01 and 0.03 and
    loses at least one seed in five at 0.1, where BN frozen at step 0 trains every seed."""
    for depth in (40, 80):
        for lr in (0.01, 0.03):
            cc.every(ranges.scored("residual_lsuv", depth, lr), ">=", 0.5, f"LSUV, depth {depth}, lr {lr}")
        cc.at_least(ranges.scored("residual_lsuv", depth, 0.1), "<", 0.5, 1, f"LSUV, depth {depth}, lr 0.1")
        cc.every(
            freeze.scored("residual_bn_frozen0", depth, 0.1), ">=", 0.5, f"frozen at step 0, depth {depth}, lr 0.1"
        )


def test_residual_bn_trains_every_seed_at_every_learning_rate_and_depth(ranges):
    for name in ("residual_bn", "residual_bn_zero"):
        for depth in ranges.depths:
            worst = [ranges.scored(name, depth, lr).min() for lr in LEARNING_RATES]
            cc.every(worst, ">=", 0.5, f"{name}, depth {depth}: worst seed at each lr 0.01 to 1.0")


def test_normalization_free_networks_train_only_at_small_learning_rates_at_depth_40_and_80(ranges):
    """The 1/sqrt(depth) scaling, BN's scaling without BN and LSUV, at depths 40 and 80: every seed trains
    at 0.01, at least 4 of 5 at 0.03, and at most one in five at 0.3 and at 1.0."""
    for name in NORMALIZATION_FREE:
        for depth in (40, 80):
            cc.every(ranges.scored(name, depth, 0.01), ">=", 0.5, f"{name}, depth {depth}, lr 0.01")
            cc.at_least(ranges.scored(name, depth, 0.03), ">=", 0.5, 4, f"{name}, depth {depth}, lr 0.03")
            for lr in (0.3, 1.0):
                cc.at_least(ranges.scored(name, depth, lr), "<", 0.5, 4, f"{name}, depth {depth}, lr {lr}")
