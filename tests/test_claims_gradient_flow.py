"""Headline claims of the chapter "Deep-network gradient flow", over 5 seeds, with margins.

Setting: MLPs of 100 ReLU units per hidden layer, He initialisation, BN or not before each ReLU.
Gradients at initialisation on 256 training digits (3 seeds); training with SGD at learning rate
0.1, batch 64, 200 steps (3 seeds for the depth sweep, 5 for the first steps layer by layer).
"""

import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.experiments.initialization import RELU_BN_GRADIENT_GROWTH, diagnose_at_init, diagnose_depths
from bn_utils.experiments.layer_dynamics import layer_dynamics
from bn_utils.experiments.sweeps import depth_sweep


@pytest.fixture(scope="module")
def sweep(digits):
    return depth_sweep(digits, seeds=SEEDS)


def test_bn_gradients_explode_at_the_mean_field_rate(digits):
    bn = np.median([diagnose_at_init(digits, "batch", depth=40, seed=s).gradient_growth for s in SEEDS])
    plain = np.median([diagnose_at_init(digits, "none", depth=40, seed=s).gradient_growth for s in SEEDS])
    assert bn == pytest.approx(RELU_BN_GRADIENT_GROWTH, rel=0.05), (
        f"BN gradient growth per layer {bn:.3f}, predicted {RELU_BN_GRADIENT_GROWTH:.3f}"
    )
    assert 0.9 <= plain <= 1.1, f"plain gradient growth per layer {plain:.3f}"


def test_bn_keeps_the_activation_size_at_any_depth(digits):
    for seed in SEEDS:
        std = diagnose_at_init(digits, "batch", depth=40, seed=seed).activation_std
        assert std.max() / std.min() < 1.2, f"seed {seed}: BN activation std by layer: {std.min():.3f}..{std.max():.3f}"


def test_the_explosion_compounds_with_depth(digits):
    for seed in SEEDS:
        ratios = [d.gradient_ratio for d in diagnose_depths(digits, "batch", (10, 20, 40), seed=seed).values()]
        assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 100, f"seed {seed}: first/last ratios {ratios}"


def test_bn_trains_deeper_but_not_at_depth_40(sweep):
    """BN extends the trainable depth (10 -> 20 in our runs); neither network trains at 40."""
    deepest = {norm: max(sweep.stable_values(norm), default=0) for norm in sweep.norms}
    assert deepest["batch"] > deepest["none"], f"deepest trainable: {deepest}"
    at_40 = {norm: np.median(sweep.final(norm)[sweep.values.index(40)]) for norm in sweep.norms}
    assert max(at_40.values()) < 0.5, f"median final test accuracy at depth 40: {at_40}"


# ---------------------------------------------------------------------------------------------
# After the first step (bn_utils.experiments.layer_dynamics): 5 seeds, the depth sweep's runs at depth 40
# (and 20, 10 as controls), measured at steps 0, 1, 2, 3, 5, 10, 20, 30, 50. Margins hold on the
# default and vectorised arithmetic paths and with 1 or 2 threads: from step 1 on, a 40-layer BN
# network amplifies rounding differences, so per-step values differ between paths.


@pytest.fixture(scope="module")
def bn40(digits):
    return layer_dynamics(digits, "batch", depth=40, seeds=SEEDS)


@pytest.fixture(scope="module")
def plain40(digits):
    return layer_dynamics(digits, "none", depth=40, seeds=SEEDS)


@pytest.fixture(scope="module")
def bn20(digits):
    return layer_dynamics(digits, "batch", depth=20, seeds=SEEDS)


def fmt(values):
    return "[" + ", ".join(f"{v:.3g}" for v in np.ravel(values)) + "]"


def test_the_thousandfold_ratio_lasts_one_step(bn40):
    ratio = bn40.gradient_ratio
    at = bn40.at
    assert (ratio[:, at(0)] > 500).all(), f"first/last gradient ratio at step 0, per seed: {fmt(ratio[:, at(0)])}"
    drop = ratio[:, at(0)] / ratio[:, at(1)]
    assert (drop > 10).all(), f"ratio at step 0 / ratio at step 1, per seed: {fmt(drop)}"
    later = ratio[:, [at(30), at(50)]]
    assert (later < 10).all(), f"ratio at steps 30 and 50, per seed: {fmt(later)}"


def test_the_first_step_grows_the_first_layer_and_cuts_its_effective_lr(bn40, bn20):
    growth = bn40.weight_growth[:, bn40.at(1)]
    assert ((growth[:, 0] > 5) & (growth[:, 0] < 12)).all(), f"first layer's weight growth c: {fmt(growth[:, 0])}"
    cut = bn40.lr / bn40.effective_lr[:, bn40.at(1), 0]
    assert (cut > 25).all(), f"lr / effective lr of the first layer after one step: {fmt(cut)}"
    assert (growth[:, :5] > 2).all() and (growth[:, -1] < 1.01).all(), (
        f"c after one step, layers 1-5 per seed: {fmt(growth[:, :5])}; last layer: {fmt(growth[:, -1])}"
    )
    control = bn20.weight_growth[:, bn20.at(1), 0]
    assert (control < 1.05).all(), f"depth 20, first layer's c after one step: {fmt(control)}"


def test_the_early_layers_then_move_least(bn40):
    for step in (30, 50):
        first, last = bn40.relative_update[:, bn40.at(step), 0], bn40.relative_update[:, bn40.at(step), -1]
        assert (first < last).all(), f"step {step}: relative update, first layer {fmt(first)}, last {fmt(last)}"


def test_holding_the_weight_norms_does_not_make_depth_40_train(digits):
    held = layer_dynamics(digits, "batch", depth=40, seeds=SEEDS, record_at=(0, 200), hold_weight_norm=True)
    assert np.median(held.test_acc) < 0.5, f"test accuracy after 200 steps, norms held: {fmt(held.test_acc)}"


def test_equal_relative_steps_train_depth_20_but_not_40(digits):
    runs = {
        depth: layer_dynamics(digits, "batch", depth=depth, seeds=SEEDS, record_at=(0, 200), relative_step=0.01)
        for depth in (20, 40)
    }
    acc = {depth: run.test_acc for depth, run in runs.items()}
    assert (acc[20] >= 0.8).all() and np.median(acc[40]) < 0.5, (
        f"test accuracy after 200 steps of 1% relative steps: depth 20 {fmt(acc[20])}, depth 40 {fmt(acc[40])}"
    )


def test_plain_deep_representations_collapse_and_bn_ones_do_not(bn40, plain40):
    plain, bn = plain40.similarity[:, 0, -1], bn40.similarity[:, 0, -1]
    assert (plain > 0.9).all(), f"plain, layer 40 at init, mean cosine of different examples: {fmt(plain)}"
    assert ((bn > 0.28) & (bn < 0.4)).all(), f"BN, layer 40 at init, mean cosine of different examples: {fmt(bn)}"
    loss = plain40.loss[:, 30:50].mean(1)
    assert (np.abs(loss - np.log(10)) < 0.15).all(), f"plain, mean training loss over steps 30-49: {fmt(loss)}"


def test_bn_forgets_which_inputs_are_alike_with_depth(bn40, plain40):
    bn, plain = bn40.class_contrast[:, 0], plain40.class_contrast[:, 0]
    assert (bn[:, 0] > 0.25).all() and (bn[:, 9] < 0.06).all() and (np.abs(bn[:, 39]) < 0.01).all(), (
        f"BN class contrast at init, layers 1, 10, 40: {fmt(bn[:, 0])}, {fmt(bn[:, 9])}, {fmt(bn[:, 39])}"
    )
    assert (plain[:, 39] > 0.05).all(), f"plain class contrast at init, layer 40: {fmt(plain[:, 39])}"


def test_depth_40_rebuilds_class_structure_slower(bn40, bn20, digits):
    bn10 = layer_dynamics(digits, "batch", depth=10, seeds=SEEDS)
    start = bn20.class_contrast[:, 0, -1]
    assert (start < 0.02).all(), f"depth 20, last layer's class contrast at init: {fmt(start)}"
    after = {d: np.median(r.class_contrast[:, r.at(50), -1]) for d, r in ((10, bn10), (20, bn20), (40, bn40))}
    assert after[10] > after[20] > after[40] and after[40] < 0.7 * after[20], (
        f"median class contrast of the last hidden layer after 50 steps, by depth: {after}"
    )


def test_tanh_forgets_less_and_trains_at_depth_40(digits, bn40):
    tanh = layer_dynamics(digits, "batch", depth=40, activation="tanh", seeds=SEEDS, record_at=(0, 200))
    ratio, relu_ratio = tanh.gradient_ratio[:, 0], bn40.gradient_ratio[:, 0]
    assert ratio.max() < relu_ratio.min() / 10, (
        f"first/last gradient ratio at init, depth 40: tanh {fmt(ratio)}, ReLU {fmt(relu_ratio)}"
    )
    kept, relu = tanh.class_contrast[:, 0, -1], bn40.class_contrast[:, 0, -1]
    assert kept.min() > relu.max(), f"class contrast of layer 40 at init: tanh {fmt(kept)}, ReLU {fmt(relu)}"
    assert (tanh.test_acc >= 0.5).all(), f"tanh, test accuracy after 200 steps: {fmt(tanh.test_acc)}"
