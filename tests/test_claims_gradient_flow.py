"""Headline claims of the chapter "Deep-network gradient flow", over 5 seeds, with margins.

Setting: MLPs of 100 ReLU units per hidden layer, He initialisation, BN or not before each ReLU.
Gradients at initialisation on 256 training digits; training with SGD at learning rate 0.1,
batch 64, 200 steps.
"""

import numpy as np
import pytest

from bn_utils.initialization import RELU_BN_GRADIENT_GROWTH, diagnose_at_init, diagnose_depths
from bn_utils.sweeps import depth_sweep

SEEDS = (0, 1, 2, 3, 4)


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


def test_the_explosion_compounds_with_depth(digits):
    for seed in SEEDS:
        ratios = [
            d.gradient_norm[0] / d.gradient_norm[-1]
            for d in diagnose_depths(digits, "batch", (10, 20, 40), seed=seed).values()
        ]
        assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 100, f"seed {seed}: first/last ratios {ratios}"


def test_bn_trains_deeper_but_not_at_depth_40(sweep):
    """BN extends the trainable depth (10 -> 20 in our runs); neither network trains at 40."""
    deepest = {norm: max(sweep.stable_values(norm), default=0) for norm in sweep.norms}
    assert deepest["batch"] > deepest["none"], f"deepest trainable: {deepest}"
    at_40 = {norm: np.median(sweep.final(norm)[sweep.values.index(40)]) for norm in sweep.norms}
    assert max(at_40.values()) < 0.5, f"median final test accuracy at depth 40: {at_40}"
