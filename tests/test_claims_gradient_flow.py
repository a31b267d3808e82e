"""Headline claims of the chapter "Deep-network gradient flow", over the claim seeds, with margins.

Setting: MLPs of 100 ReLU units per hidden layer (tanh in the last test), He initialisation, BN or
not before each activation, on the 8x8 digits. Gradients at initialisation on 256 training digits;
training with SGD at learning rate 0.1, batch 64, 200 steps. Every seed here is a claim seed
(``SEEDS``: initial weights and batch order); the data split is the digits' fixed one.
"""

import claim_checks as cc
import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.chapters import gradient_flow as gf
from bn_utils.chapters.gradient_flow import TRAINS
from bn_utils.experiments.initialization import RELU_BN_GRADIENT_GROWTH
from bn_utils.experiments.layer_dynamics import layer_dynamics

# Ratios that span a decade or more between seeds (gradient ratios, weight growth, effective-lr cuts) are
# asserted on a log10 scale: there the seeds' spread, and so the margin in standard deviations, means
# something (CONTRIBUTING.md, "The margin rule").


@pytest.fixture(scope="module")
def sweep(digits):
    return gf.sweep(digits, SEEDS)


def test_bn_gradients_explode_at_the_mean_field_rate(digits):
    bn = gf.gradient_growth(gf.at_init(digits, "batch", SEEDS))
    plain = gf.gradient_growth(gf.at_init(digits, "none", SEEDS))
    what = f"BN gradient growth per layer at depth 40 (predicted {RELU_BN_GRADIENT_GROWTH:.3f})"
    cc.median(bn, ">=", 0.95 * RELU_BN_GRADIENT_GROWTH, what + ", at least 5% below")
    cc.median(bn, "<=", 1.05 * RELU_BN_GRADIENT_GROWTH, what + ", at most 5% above")
    cc.median(plain, ">=", 0.9, "plain gradient growth per layer at depth 40, from below")
    cc.median(plain, "<=", 1.1, "plain gradient growth per layer at depth 40, from above")


def test_bn_keeps_the_activation_size_at_any_depth(digits):
    spans = gf.activation_span(gf.at_init(digits, "batch", SEEDS))
    cc.every(spans, "<", 1.2, "BN activation std at depth 40, largest layer / smallest")


def test_the_explosion_compounds_with_depth(digits):
    depths = (10, 20, 40)
    ratios = gf.gradient_ratios(gf.depth_profiles(digits, "batch", depths, SEEDS), depths)
    cc.every(ratios.at(20) / ratios.at(10), ">", 1, "first/last gradient ratio, depth 20 / depth 10")
    cc.every(ratios.at(40) / ratios.at(20), ">", 1, "first/last gradient ratio, depth 40 / depth 20")
    cc.every(ratios.at(40), ">", 100, "first/last gradient ratio at depth 40")


def test_bn_trains_deeper_but_not_at_depth_40(sweep):
    """In 200 steps, at depth 20 every BN seed trains and ends above every plain seed (the plain
    network's seeds scatter there, from diverging to below 80%); neither network's median test
    accuracy reaches 50% at depth 40."""
    bn20, plain20 = gf.final_accuracy(sweep, "batch", 20), gf.final_accuracy(sweep, "none", 20)
    cc.every(bn20, ">=", TRAINS, "BN, test accuracy at depth 20 (every seed trains)")
    cc.compare(
        bn20.min() - plain20.max(),
        ">",
        0,
        "depth 20: BN's lowest seed - the plain network's highest",
        values=bn20 - plain20,
    )
    for norm in sweep.norms:
        cc.median(gf.final_accuracy(sweep, norm, 40), "<", TRAINS, f"{norm}, test accuracy at depth 40")


# ---------------------------------------------------------------------------------------------
# After the first step (bn_utils.experiments.layer_dynamics): 5 seeds, the depth sweep's runs at depth 40
# (and 20, 10 as controls), measured at steps 0, 1, 2, 3, 5, 10, 20, 30, 50. Margins hold on the
# default and vectorised arithmetic paths and with 1 or 2 threads: from step 1 on, a 40-layer BN
# network amplifies rounding differences, so per-step values differ between paths.


@pytest.fixture(scope="module")
def bn40(digits):
    return gf.dynamics(digits, "batch", 40, SEEDS)


@pytest.fixture(scope="module")
def plain40(digits):
    return gf.dynamics(digits, "none", 40, SEEDS)


@pytest.fixture(scope="module")
def bn20(digits):
    return gf.dynamics(digits, "batch", 20, SEEDS)


def test_the_thousandfold_ratio_lasts_one_step(bn40):
    first = gf.first_steps(bn40)
    cc.every(np.log10(first.ratio_at_init), ">", np.log10(500), "log10 first/last gradient ratio at step 0 (> 500)")
    drop = first.log_ratio_drop  # the drop is 16 to 76 over seeds 0-9: wide, so a median and a floor
    what = "log10 (first/last gradient ratio, step 0 / step 1)"
    cc.median(drop, ">", 1, f"{what} (more than tenfold)")
    cc.every(drop, ">", np.log10(5), f"{what} (at least fivefold)")
    cc.median(
        np.log10(first.ratio_later), "<", 1, "log10 first/last gradient ratio at steps 30 and 50, larger (below 10)"
    )


def test_the_first_step_grows_the_first_layer_and_cuts_its_effective_lr(bn40, bn20):
    first = gf.first_steps(bn40)
    growth = first.growth
    what = "log10 first layer's weight growth c after one step"
    cc.median(np.log10(growth[:, 0]), ">", np.log10(5), f"{what}, from below (c > 5)")
    cc.median(np.log10(growth[:, 0]), "<", np.log10(12), f"{what}, from above (c < 12)")
    cc.every(
        np.log10(first.lr_cut), ">", np.log10(25), "log10 lr / effective lr of the first layer after one step (> 25)"
    )
    cc.every(growth[:, :5].min(1), ">", 2, "weight growth c after one step, smallest of layers 1-5")
    cc.every(growth[:, -1], "<", 1.01, "weight growth c of the last layer after one step")
    cc.every(gf.first_steps(bn20).first_layer_growth, "<", 1.05, "depth 20, first layer's c after one step")


def test_the_early_layers_then_move_least(bn40):
    update_ratio = gf.first_steps(bn40).update_ratio  # (seeds, steps 30 and 50)
    for i, step in enumerate((30, 50)):
        cc.median(np.log10(update_ratio[:, i]), ">", 0, f"step {step}: log10 relative update, last layer / first layer")


def test_holding_the_weight_norms_does_not_make_depth_40_train(digits):
    held = gf.held_norms(digits, SEEDS)
    cc.median(held.test_acc, "<", TRAINS, "depth 40, norms held: test accuracy after 200 steps")


def test_equal_relative_steps_train_depth_20_but_not_40(digits):
    runs = {depth: gf.equal_relative_steps(digits, depth, SEEDS) for depth in (20, 40)}
    cc.every(runs[20].test_acc, ">=", 0.8, "depth 20, 1% relative steps: test accuracy after 200 steps")
    cc.median(runs[40].test_acc, "<", TRAINS, "depth 40, 1% relative steps: test accuracy after 200 steps")


def test_plain_deep_representations_collapse_and_bn_ones_do_not(bn40, plain40):
    plain_content, bn_content = gf.forward_content(plain40), gf.forward_content(bn40)
    plain, bn = plain_content.similarity, bn_content.similarity
    cc.every(plain, ">", 0.9, "plain, layer 40 at init, mean cosine of different examples")
    cc.every(bn, ">", 0.28, "BN, layer 40 at init, mean cosine of different examples, from below")
    cc.every(bn, "<", 0.4, "BN, layer 40 at init, mean cosine of different examples, from above")
    from_chance = plain_content.late_loss_from_chance  # NaN for a seed that diverged
    most = len(SEEDS) - len(SEEDS) // 5  # 4 of 5
    cc.at_least(from_chance, "<", 0.15, most, "plain, |mean training loss over steps 30-49 - ln 10|")


def test_bn_forgets_which_inputs_are_alike_with_depth(bn40, plain40):
    bn, plain = gf.forward_content(bn40).contrast_at_init, gf.forward_content(plain40).contrast_at_init
    cc.every(bn[:, 0], ">", 0.25, "BN class contrast at init, layer 1")
    cc.every(bn[:, 9], "<", 0.06, "BN class contrast at init, layer 10")
    cc.median(np.abs(bn[:, 39]), "<", 0.01, "BN |class contrast| at init, layer 40")
    cc.median(plain[:, 39], ">", 0.05, "plain class contrast at init, layer 40")


def test_depth_40_rebuilds_class_structure_slower(bn40, bn20, digits):
    bn10 = gf.dynamics(digits, "batch", 10, SEEDS)
    cc.median(
        gf.forward_content(bn20).contrast_last_at_init, "<", 0.02, "depth 20, last layer's class contrast at init"
    )
    median = gf.contrast_after_50({10: bn10, 20: bn20, 40: bn40})
    cc.compare(median[10] - median[20], ">", 0, "median class contrast after 50 steps, depth 10 - depth 20")
    cc.compare(median[20] - median[40], ">", 0, "median class contrast after 50 steps, depth 20 - depth 40")
    cc.compare(median[40] / median[20], "<", 0.7, "median class contrast after 50 steps, depth 40 / depth 20")


def test_tanh_forgets_less_and_trains_at_depth_40(digits, bn40):
    """At initialisation: tanh's first/last gradient ratio is a tenth of ReLU's smallest or less in
    every seed, and its median class contrast at layer 40 is higher than ReLU's (both close to zero:
    over seeds 0-39, medians 0.013 and 0.002, tanh ahead seed by seed in 37 of 40, so not in every
    seed). After 200 steps most seeds train: at least 4 of 5 end at 50% test accuracy or more and the
    median at 60% or more. Over seeds 0-39 (1 thread, in stacks of 5 as here) the test accuracy had a
    median of 84% and ranged over 53-94% natively and 63-93% on the portable path (the avx2 path gave
    the native numbers); on an AMD EPYC seed 0 ended at 41%, so "every seed" does not hold."""
    tanh = layer_dynamics(digits, "batch", depth=40, activation="tanh", seeds=SEEDS, record_at=(0, 200))
    ratio, relu_ratio = tanh.gradient_ratio[:, 0], gf.first_steps(bn40).ratio_at_init
    cc.every(
        np.log10(ratio),
        "<",
        np.log10(relu_ratio.min() / 10),
        "log10 tanh first/last gradient ratio at init, against ReLU's smallest / 10",
    )
    kept, relu = tanh.class_contrast[:, 0, -1], gf.forward_content(bn40).contrast_last_at_init
    cc.compare(
        np.median(kept) - np.median(relu),
        ">",
        0,
        "class contrast of layer 40 at init, median tanh - median ReLU",
        values=kept - relu,
    )
    most = len(SEEDS) - len(SEEDS) // 5  # 4 of 5
    cc.at_least(np.nan_to_num(tanh.test_acc), ">=", TRAINS, most, "tanh, test accuracy after 200 steps")
    cc.median(np.nan_to_num(tanh.test_acc), ">=", 0.6, "tanh, test accuracy after 200 steps")
