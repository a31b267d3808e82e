"""Headline claims of the chapter "Initialization robustness", over 5 seeds, with margins.

Setting: 10 x 100 ReLU MLP, hidden weights drawn at 0.1 to 10 times the He scale (the output
layer at its standard scale), with or without BN before each ReLU; SGD at learning rate 0.1,
batch 64, 200 steps on the digits.
"""

import numpy as np
import pytest

from bn_utils.initialization import diagnose_init_scales
from bn_utils.sweeps import INIT_SCALE_GRID, init_scale_sweep

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def sweep(digits):
    return init_scale_sweep(digits, seeds=SEEDS)


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


def test_bn_pays_for_large_scales_with_a_smaller_effective_learning_rate(digits, sweep):
    """One SGD step changes a BN layer's weights by lr * ||g|| / ||W||, which falls as 1/scale^2;
    at scale 10 the hidden layers learn 100x slower, and it shows in the final accuracy."""
    bn = diagnose_init_scales(digits, "batch", (1.0, 10.0))
    ratio = np.median(bn[1.0].update_ratio / bn[10.0].update_ratio)
    assert ratio == pytest.approx(100, rel=0.02), f"update ratio at scale 1 / at scale 10: {ratio:.1f}"
    at_1, at_10 = (np.median(sweep.final("batch")[sweep.values.index(s)]) for s in (1.0, 10.0))
    assert at_10 < at_1 - 0.15, f"BN median final test accuracy: scale 1 {at_1:.3f}, scale 10 {at_10:.3f}"
