"""Headline claims of the chapter "Initialization robustness", over the claim seeds, with margins.

Setting: 10 x 100 ReLU MLP, hidden weights drawn at 0.1 to 10 times the He scale (the output
layer at its standard scale), with or without BN before each ReLU; SGD at learning rate 0.1,
batch 64, 200 steps on the 8x8 digits (their fixed split; every seed here is a claim seed).
Weight decay: a 3 x 32 BN MLP, SGD at 0.5 with weight decay 0.04, 200 steps, from initial scales
0.5 to 5, and at weight decay 0.01, 800 steps, from scale 1.
"""

import claim_checks as cc
import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.chapters import initialization_robustness as chapter
from bn_utils.experiments.sweeps import init_scale_sweep

TRAINS = 0.5  # a run trains: no divergence and a final test accuracy of 50% or more (Sweep.min_accuracy)
MIDDLE = (0.5, 1.0, 2.0)  # the scales at which the chapter says scale and learning rate are interchangeable


@pytest.fixture(scope="module")
def sweep(digits):
    return chapter.sweep(SEEDS, digits)


@pytest.fixture(scope="module")
def same_lr(digits):
    """The scale-1 BN network at learning rate 0.1 / c^2, for every scale c of the sweep (0.1 to 10)."""
    return chapter.same_effective_lr(SEEDS, digits)


@pytest.mark.parametrize("seed", SEEDS)
def test_bn_forward_pass_does_not_see_the_weight_scale(digits, seed):
    blind = chapter.forward_blindness(
        chapter.diagnostics("batch", seed, digits), chapter.diagnostics("none", seed, digits)
    )
    cc.compare(blind.bn_std_spread, "<", 0.01, "BN activation std, largest relative spread across scales")
    cc.compare(blind.bn_loss_spread, "<", 1e-2, "BN initial loss, largest - smallest across scales")
    cc.compare(blind.plain_decades, ">", 15, "plain last-layer std, log10(at scale 10 / at scale 0.1)")


def test_bn_trains_at_every_scale_the_plain_network_near_he_only(sweep):
    plain = sweep.stable_values("none")
    cc.every(np.nan_to_num(sweep.final("batch")).min(0), ">=", TRAINS, "BN, final test accuracy, lowest over scales")
    outside = [v for v in sweep.values if v not in (0.5, 1.0, 2.0)]
    for value in outside:
        cc.at_least(
            chapter.final_accuracy(sweep, value, "none"),
            "<",
            TRAINS,
            1,
            f"plain, final test accuracy at scale {value:g}",
        )
    cc.compare(len(plain), "<=", 2, "plain, number of scales at which every seed trains")


def test_bn_learns_slower_at_large_scales(sweep):
    """At scale 10 the hidden layers' effective learning rate is 100x smaller (the identity is
    a unit test in test_initialization.py), and it shows in the final accuracy."""
    at_1, at_10 = chapter.final_accuracy(sweep, 1.0), chapter.final_accuracy(sweep, 10.0)
    cc.compare(
        np.median(at_1) - np.median(at_10),
        ">",
        0.15,
        "BN median final test accuracy, scale 1 - scale 10",
        values=at_1 - at_10,
    )


def test_weight_scale_and_learning_rate_are_interchangeable_in_the_middle(sweep, same_lr):
    """BN at scale c and learning rate 0.1 ends where BN at scale 1 and learning rate 0.1/c^2 ends,
    for c from 0.5 to 2: median final test accuracies within 5 points."""
    for c in MIDDLE:
        if c == 1.0:
            continue  # scale 1 at lr 0.1 is the same run on both sides: nothing to compare
        gap = chapter.effective_lr_gap(sweep, same_lr, c)
        cc.compare(
            abs(gap.gap),
            "<",
            0.05,
            f"c={c:g}: |median accuracy, scale c at lr 0.1 - scale 1 at lr 0.1/c^2|",
            values=gap.per_seed,
        )


def test_at_the_ends_the_scaled_network_beats_its_effective_learning_rate(sweep, same_lr):
    """At scales 0.1 and 10 the two families part, in the scaled network's favour, by 20 points or more."""
    for c in (0.1, 10.0):
        gap = chapter.effective_lr_gap(sweep, same_lr, c)
        cc.compare(
            gap.gap,
            ">",
            0.2,
            f"c={c:g}: median accuracy, scale c at lr 0.1 - scale 1 at lr 0.1/c^2",
            values=gap.per_seed,
        )


def test_a_too_large_effective_learning_rate_lowers_itself(digits):
    """Under plain SGD each step grows a BN layer's squared weight norm by lr^2 ||g||^2 (largest gap over
    steps, layers and seeds below 1% of the largest step's growth; per step a few small steps are off
    by a few percent): at scale
    0.1 (effective lr 10) the first step alone halves the effective lr; at scale 1 it hardly moves."""
    growth = chapter.norm_growth(SEEDS, digits)
    small, he = growth[0.1], growth[1.0]
    for trace in (small, he):
        gaps = chapter.growth_gaps(trace)
        cc.every(gaps, "<", 0.01, f"scale {trace.init_scale:g}: largest |growth - lr^2 ||g||^2| / largest growth")
    drop_small = chapter.effective_lr_drop(small)[:, 1]
    drop_he = chapter.effective_lr_drop(he)[:, 30]
    cc.every(drop_small, "<", 0.6, "scale 0.1: effective lr after 1 step / at start")
    cc.every(drop_he, ">", 0.99, "scale 1: effective lr after 30 steps / at start")


@pytest.fixture(scope="module")
def decayed(digits):
    """The 3 x 32 BN network at lr 0.5 and weight decay 0.04 for 200 steps, from scales 0.5 to 5."""
    return chapter.decayed(SEEDS, digits)


@pytest.fixture(scope="module")
def light_decay(digits):
    """The same network from scale 1 at weight decay 0.01, for 800 steps (8 x 1 / (2 lr wd))."""
    return chapter.light_decay(SEEDS, digits)


def test_weight_decay_sets_one_equilibrium_norm_whatever_the_initial_scale(decayed):
    """With weight decay, the hidden weights' squared norm reaches a steady state from initial
    scales 0.5 to 5: their effective learning rates, 100x apart at the start, end within 1.5x, and
    every layer's norm within 30% of sqrt(lr ||g~||^2 / (2 wd)) (which, once the norm is steady,
    orthogonality forces at any norm)."""
    equilibrium = chapter.decay_equilibrium(decayed)
    cc.compare(equilibrium.lr_spread, "<", 1.5, "final effective lr, largest / smallest over scales")
    ratios = equilibrium.norm_ratios  # (scales, seeds)
    cc.every(ratios.min(0), ">", 0.8, "||W||^2 / predicted, smallest over initial scales")
    cc.every(ratios.max(0), "<", 1.3, "||W||^2 / predicted, largest over initial scales")


def test_the_equilibrium_effective_learning_rate_scales_as_sqrt_lambda(decayed, light_decay):
    """eq-wd-equilibrium predicts lr_eff proportional to sqrt(wd): weight decay 0.04 against 0.01
    should give a factor 2; the median late effective lr's ratio is within 1.6 to 2.5."""
    decay = chapter.decay_comparison(decayed, light_decay)
    what = "equilibrium effective lr, wd 0.04 / wd 0.01 (predicted 2)"
    cc.compare(decay.lr_ratio, ">", 1.6, what + ", from below", values=decay.lr_ratio_per_seed)
    cc.compare(decay.lr_ratio, "<", 2.5, what + ", from above", values=decay.lr_ratio_per_seed)


def test_strong_weight_decay_costs_accuracy(decayed, light_decay):
    """Weight decay 0.04 (lr x wd = 0.02) ends below weight decay 0.01 in median final test
    accuracy, by more than 3 points."""
    decay = chapter.decay_comparison(decayed, light_decay)
    what = "median final test accuracy, wd 0.01 - wd 0.04"
    cc.compare(decay.accuracy_cost, ">", 0.03, what, values=decay.accuracy_cost_per_seed)


def test_at_depth_20_bn_no_longer_trains_at_scale_10(digits):
    """Doubling the depth narrows BN's range: at depth 20 every seed still trains at scale 0.5 and
    none at scale 10 within 200 steps."""
    deep = init_scale_sweep(digits, scales=(0.5, 10.0), norms=("batch",), depth=20, seeds=SEEDS)
    cc.every(chapter.final_accuracy(deep, 0.5), ">=", TRAINS, "depth 20, BN final test accuracy at scale 0.5")
    cc.every(chapter.final_accuracy(deep, 10.0), "<", TRAINS, "depth 20, BN final test accuracy at scale 10")


@pytest.mark.parametrize("seed", SEEDS)
def test_bn_does_not_protect_the_output_layer(digits, seed):
    """Scaling the output layer by 10 too: BN's loss at initialisation grows more than 3x
    (3.4x to 4.3x over the 5 seeds)."""
    bn = chapter.head_scaled(seed, digits)
    cc.compare(bn[10.0].loss / bn[1.0].loss, ">", 3, "BN loss at init, head scaled by 10 / by 1")


def test_with_tanh_the_plain_network_tolerates_large_scales_not_small_ones(digits):
    """With tanh, the plain network trains (every seed) at some scale above 1 and at none below 1."""
    tanh = init_scale_sweep(digits, scales=(0.2, 0.5, 2.0, 5.0), norms=("none",), activation="tanh", seeds=SEEDS)
    above = {v: chapter.final_accuracy(tanh, v, "none") for v in (2.0, 5.0)}
    best = max(above, key=lambda v: above[v].min())
    cc.every(above[best], ">=", TRAINS, "tanh, plain final test accuracy at the better scale above 1")
    for value in (0.2, 0.5):
        cc.at_least(
            chapter.final_accuracy(tanh, value, "none"),
            "<",
            TRAINS,
            1,
            f"tanh, plain final test accuracy at scale {value:g}",
        )
