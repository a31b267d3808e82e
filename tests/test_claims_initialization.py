"""Headline claims of the chapter "Initialization robustness", over 5 seeds, with margins.

Setting: 10 x 100 ReLU MLP, hidden weights drawn at 0.1 to 10 times the He scale (the output
layer at its standard scale), with or without BN before each ReLU; SGD at learning rate 0.1,
batch 64, 200 steps on the digits. Weight decay: a 3 x 32 BN MLP, SGD at 0.5 with weight decay
0.04, 200 steps, from initial scales 0.5 to 5, and at weight decay 0.01, 800 steps, from scale 1.
"""

import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.experiments.initialization import diagnose_init_scales
from bn_utils.experiments.sweeps import INIT_SCALE_GRID, init_scale_sweep, lr_sweep
from bn_utils.experiments.weight_norms import track_weight_norms

MIDDLE = (0.5, 1.0, 2.0)  # the scales at which the chapter says scale and learning rate are interchangeable


@pytest.fixture(scope="module")
def sweep(digits):
    return init_scale_sweep(digits, seeds=SEEDS)


@pytest.fixture(scope="module")
def same_lr(digits):
    """The scale-1 BN network at learning rate 0.1 / c^2, for c in 0.1, 0.5, 1, 2, 10."""
    return lr_sweep(digits, norms=("batch",), lrs=tuple(0.1 / c**2 for c in (10.0, 2.0, 1.0, 0.5, 0.1)), seeds=SEEDS)


def _median(sweep, value):
    return float(np.median(sweep.final("batch")[sweep.values.index(value)]))


@pytest.mark.parametrize("seed", SEEDS)
def test_bn_forward_pass_does_not_see_the_weight_scale(digits, seed):
    bn = diagnose_init_scales(digits, "batch", INIT_SCALE_GRID, seed=seed)
    plain = diagnose_init_scales(digits, "none", INIT_SCALE_GRID, seed=seed)
    stds = np.array([d.activation_std for d in bn.values()])  # (scales, layers)
    spread = (stds.max(0) - stds.min(0)) / stds.min(0)
    assert spread.max() < 0.01, f"BN activation std varies by up to {spread.max():.2%} across scales"
    losses = [d.loss for d in bn.values()]
    assert max(losses) - min(losses) < 1e-2, f"BN initial losses across scales: {losses}"
    last = [d.activation_std[-1] for d in plain.values()]
    assert last[-1] / last[0] > 1e15, f"plain last-layer std at scale 10 / at scale 0.1: {last[-1] / last[0]:.3g}"


def test_bn_trains_at_every_scale_the_plain_network_near_he_only(sweep):
    bn, plain = sweep.stable_values("batch"), sweep.stable_values("none")
    assert bn == list(INIT_SCALE_GRID), f"BN trains (every seed) at scales {bn}"
    assert len(plain) <= 2 and set(plain) <= {0.5, 1.0, 2.0}, f"plain network trains (every seed) at scales {plain}"


def test_bn_learns_slower_at_large_scales(sweep):
    """At scale 10 the hidden layers' effective learning rate is 100x smaller (the identity is
    a unit test in test_initialization.py), and it shows in the final accuracy."""
    at_1, at_10 = _median(sweep, 1.0), _median(sweep, 10.0)
    assert at_10 < at_1 - 0.15, f"BN median final test accuracy: scale 1 {at_1:.3f}, scale 10 {at_10:.3f}"


def test_weight_scale_and_learning_rate_are_interchangeable_in_the_middle(sweep, same_lr):
    """BN at scale c and learning rate 0.1 ends where BN at scale 1 and learning rate 0.1/c^2 ends,
    for c from 0.5 to 2: median final test accuracies within 5 points."""
    gaps = {c: _median(sweep, c) - _median(same_lr, 0.1 / c**2) for c in MIDDLE}
    worst = max(abs(g) for g in gaps.values())
    assert worst < 0.05, "scale c at lr 0.1 minus scale 1 at lr 0.1/c^2 (median accuracy): " + ", ".join(
        f"c={c:g}: {100 * g:+.1f} points" for c, g in gaps.items()
    )


def test_at_the_ends_the_scaled_network_beats_its_effective_learning_rate(sweep, same_lr):
    """At scales 0.1 and 10 the two families part, in the scaled network's favour, by 20 points or more."""
    gaps = {c: _median(sweep, c) - _median(same_lr, 0.1 / c**2) for c in (0.1, 10.0)}
    assert min(gaps.values()) > 0.2, "scale c at lr 0.1 minus scale 1 at lr 0.1/c^2 (median accuracy): " + ", ".join(
        f"c={c:g}: {100 * g:+.1f} points" for c, g in gaps.items()
    )


def test_a_too_large_effective_learning_rate_lowers_itself(digits):
    """Under plain SGD each step grows a BN layer's squared weight norm by lr^2 ||g||^2 (largest gap over
    steps, layers and seeds below 1% of the largest step's growth; per step a few small steps are off
    by a few percent): at scale
    0.1 (effective lr 10) the first step alone halves the effective lr; at scale 1 it hardly moves."""
    small = track_weight_norms(digits, init_scale=0.1, lr=0.1, seeds=SEEDS, steps=30)
    he = track_weight_norms(digits, init_scale=1.0, lr=0.1, seeds=SEEDS, steps=30)
    for trace in (small, he):
        gap = np.abs(trace.growth - trace.predicted_growth).max() / np.abs(trace.growth).max()
        assert gap < 0.01, (
            f"scale {trace.init_scale:g}: largest gap between measured growth and lr^2 ||g||^2 is {gap:.2%} "
            "of the largest step's growth"
        )
    drop_small = small.effective_lr.mean(2)[:, 1] / small.effective_lr.mean(2)[:, 0]
    drop_he = he.effective_lr.mean(2)[:, 30] / he.effective_lr.mean(2)[:, 0]
    assert drop_small.max() < 0.6, f"scale 0.1: effective lr after 1 step / at start, per seed: {drop_small.round(3)}"
    assert drop_he.min() > 0.99, f"scale 1: effective lr after 30 steps / at start, per seed: {drop_he.round(4)}"


@pytest.fixture(scope="module")
def decayed(digits):
    """The 3 x 32 BN network at lr 0.5 and weight decay 0.04 for 200 steps, from scales 0.5 to 5."""
    return {
        c: track_weight_norms(
            digits, init_scale=c, lr=0.5, weight_decay=0.04, steps=200, depth=3, width=32, seeds=SEEDS
        )
        for c in (0.5, 1.0, 2.0, 5.0)
    }


@pytest.fixture(scope="module")
def light_decay(digits):
    """The same network from scale 1 at weight decay 0.01, for 800 steps (8 x 1 / (2 lr wd))."""
    return track_weight_norms(
        digits, init_scale=1.0, lr=0.5, weight_decay=0.01, steps=800, depth=3, width=32, seeds=SEEDS
    )


def test_weight_decay_sets_one_equilibrium_norm_whatever_the_initial_scale(decayed):
    """With weight decay, the hidden weights' squared norm reaches a steady state from initial
    scales 0.5 to 5: their effective learning rates, 100x apart at the start, end within 1.5x, and
    every layer's norm within 30% of sqrt(lr ||g~||^2 / (2 wd)) (which, once the norm is steady,
    orthogonality forces at any norm)."""
    late = {c: float(np.median(t.effective_lr[:, -30:])) for c, t in decayed.items()}
    spread = max(late.values()) / min(late.values())
    assert spread < 1.5, f"final effective lr per initial scale: {late}, largest/smallest {spread:.2f}"
    ratios = np.array([np.median(t.late_sq_norm(30) / t.equilibrium_sq_norm(30), axis=1) for t in decayed.values()])
    assert 0.8 < ratios.min() and ratios.max() < 1.3, f"||W||^2 / predicted (scales x seeds): {ratios.round(3)}"


def test_the_equilibrium_effective_learning_rate_scales_as_sqrt_lambda(decayed, light_decay):
    """eq-wd-equilibrium predicts lr_eff proportional to sqrt(wd): weight decay 0.04 against 0.01
    should give a factor 2; the median late effective lr's ratio is within 1.6 to 2.5."""
    heavy = float(np.median([np.median(t.effective_lr[:, -30:]) for t in decayed.values()]))
    light = float(np.median(light_decay.effective_lr[:, -100:]))
    assert 1.6 < heavy / light < 2.5, (
        f"equilibrium effective lr: wd 0.04 {heavy:.2f}, wd 0.01 {light:.2f}, ratio {heavy / light:.2f} (predicted 2)"
    )


def test_strong_weight_decay_costs_accuracy(decayed, light_decay):
    """Weight decay 0.04 (lr x wd = 0.02) ends below weight decay 0.01 in median final test
    accuracy, by more than 3 points."""
    heavy = float(np.median([t.final_test_acc for t in decayed.values()]))
    light = float(np.median(light_decay.final_test_acc))
    assert heavy < light - 0.03, f"median final test accuracy: wd 0.04 {heavy:.3f}, wd 0.01 {light:.3f}"


def test_at_depth_20_bn_no_longer_trains_at_scale_10(digits):
    """Doubling the depth narrows BN's range: at depth 20 every seed still trains at scale 0.5 and
    none at scale 10 within 200 steps."""
    deep = init_scale_sweep(digits, scales=(0.5, 10.0), norms=("batch",), depth=20, seeds=SEEDS)
    final = deep.final("batch")  # (scales, seeds)
    assert deep.stable_values("batch") == [0.5] and (np.nan_to_num(final[1]) < 0.5).all(), (
        f"depth 20, BN final test accuracy per seed: scale 0.5 {final[0].round(3)}, scale 10 {final[1].round(3)}"
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_bn_does_not_protect_the_output_layer(digits, seed):
    """Scaling the output layer by 10 too: BN's loss at initialisation grows more than 3x
    (3.4x to 4.3x over the 5 seeds)."""
    bn = diagnose_init_scales(digits, "batch", (1.0, 10.0), scale_head=True, seed=seed)
    assert bn[10.0].loss > 3 * bn[1.0].loss, f"BN loss at init, head scaled: {bn[1.0].loss:.2f}, {bn[10.0].loss:.2f}"


def test_with_tanh_the_plain_network_tolerates_large_scales_not_small_ones(digits):
    """With tanh, the plain network trains (every seed) at some scale above 1 and at none below 1."""
    tanh = init_scale_sweep(digits, scales=(0.2, 0.5, 2.0, 5.0), norms=("none",), activation="tanh", seeds=SEEDS)
    stable = tanh.stable_values("none")
    assert any(v > 1 for v in stable) and all(v >= 1 for v in stable), f"plain tanh trains at scales {stable}"
