"""bn_utils.chapters.initialization_robustness on hand-built diagnostics, sweeps and weight-norm traces:
each claim quantity reads the layer, the scale, the learning rate, the steps and the reduction it names
(swapped networks, a per-seed denominator, the wrong window or a diverged run read as NaN would change a
number asserted here)."""

from types import SimpleNamespace

import numpy as np
import pytest

import bn_utils as bu
from bn_utils.chapters import initialization_robustness as chapter
from bn_utils.experiments.weight_norms import WeightNormTrace
from bn_utils.history import Sweep

pytestmark = pytest.mark.unit


def diagnostics(stds, losses):
    """Made-up diagnostics at scales 0.1, 1 and 10: per-layer activation stds and the loss."""
    return {
        scale: SimpleNamespace(activation_std=np.array(std), loss=loss)
        for scale, std, loss in zip((0.1, 1.0, 10.0), stds, losses, strict=True)
    }


def test_forward_blindness_reads_bns_spread_and_the_plain_networks_last_layer():
    bn = diagnostics([[1.0, 1.0, 1.0], [1.0, 1.005, 1.0], [1.0, 1.0, 0.999]], [2.30, 2.31, 2.29])
    plain = diagnostics([[1.0, 1e-5, 1e-10], [1.0, 1.0, 1.0], [1.0, 1e5, 1e10]], [9.0, 2.3, 50.0])
    blind = chapter.forward_blindness(bn, plain)
    assert blind.bn_std_spread == pytest.approx(0.005, rel=1e-9)  # (max - min) / min of layer 2, not / max
    assert blind.bn_loss_spread == pytest.approx(0.02)
    assert blind.bn_losses == (2.30, 2.31, 2.29)
    assert blind.plain_decades == pytest.approx(20)  # last layer, scale 10 over scale 0.1


def run(final, *, diverged=False):
    """A made-up run that ends at ``final`` accuracy (or diverges at step 5)."""
    acc = [0.1, 0.5, final]
    return bu.History(
        loss=[1.0] * (5 if diverged else 20),
        eval_steps=[0, 10, 20],
        test_acc=acc,
        test_loss=[1.0] * 3,
        steps_per_epoch=10,
        diverged_at=5 if diverged else None,
    )


@pytest.fixture
def scale_sweep():
    scales = (0.1, 1.0, 10.0)
    finals = {"batch": [[0.90, 0.95, 0.97], [0.96, 0.96, 0.95], [0.60, 0.65, 0.70]]}
    histories = {norm: [[run(a) for a in row] for row in rows] for norm, rows in finals.items()}
    histories["none"] = [[run(0.1)] * 3, [run(0.9)] * 3, [run(0.1, diverged=True), run(0.2), run(0.3)]]
    return Sweep("init_scale", scales, (0, 1, 2), histories)


@pytest.fixture
def same_lr():
    """BN at scale 1 and lr 0.1 / c^2 for c = 0.1, 1, 10 (lr about 10, 0.1 and 0.001), finals by c."""
    finals = {0.1: [0.1, 0.09, 0.11], 1.0: [0.96, 0.96, 0.95], 10.0: [0.2, 0.3, 0.1]}
    scale_of = {0.1 / c**2: c for c in finals}
    lrs = tuple(sorted(scale_of))
    return Sweep("lr", lrs, (0, 1, 2), {"batch": [[run(a) for a in finals[scale_of[lr]]] for lr in lrs]})


def test_final_accuracy_counts_a_diverged_run_as_zero(scale_sweep):
    assert chapter.final_accuracy(scale_sweep, 10.0, "none").tolist() == [0.0, 0.2, 0.3]
    assert chapter.final_accuracy(scale_sweep, 10.0).tolist() == [0.60, 0.65, 0.70]
    assert chapter.median_final(scale_sweep, 1.0) == pytest.approx(0.96)
    assert np.isnan(chapter.median_final(scale_sweep, 10.0, "none"))  # the median of a diverged run is unknown


def test_the_effective_lr_gap_pairs_scale_c_with_lr_0_1_over_c_squared(scale_sweep, same_lr):
    small = chapter.effective_lr_gap(scale_sweep, same_lr, 0.1)  # against lr 10
    assert (small.scaled, small.same_lr) == (pytest.approx(0.95), pytest.approx(0.1))
    assert small.gap == pytest.approx(0.85) and small.per_seed == pytest.approx([0.8, 0.86, 0.86])
    large = chapter.effective_lr_gap(scale_sweep, same_lr, 10.0)  # against lr 0.001
    assert large.gap == pytest.approx(0.65 - 0.2) and large.per_seed == pytest.approx([0.4, 0.35, 0.6])
    assert chapter.effective_lr_gap(scale_sweep, same_lr, 1.0).gap == pytest.approx(0)


def trace(init_scale, lr, weight_decay, sq_norm, sq_grad, final_test_acc=(0.9, 0.9)):
    """A one-layer trace: ``sq_norm`` (seeds, steps + 1), ``sq_grad`` (seeds, steps)."""
    return WeightNormTrace(
        init_scale,
        lr,
        weight_decay,
        np.asarray(sq_norm, dtype=float)[:, :, None],
        np.asarray(sq_grad, dtype=float)[:, :, None],
        np.asarray(final_test_acc, dtype=float),
    )


def test_the_effective_lr_drop_is_relative_to_step_0_per_seed():
    growth = trace(0.1, 0.1, 0.0, [[1, 3, 5], [1, 2, 3.5]], [[200, 200], [100, 100]])
    drop = chapter.effective_lr_drop(growth)
    assert drop.shape == (2, 3)
    assert drop == pytest.approx(np.array([[1, 1 / 3, 1 / 5], [1, 1 / 2, 1 / 3.5]]))


def heavy(scale, final_test_acc):
    """Weight decay 0.04 at lr 0.5 for 30 steps at a constant norm: effective lr 0.5 / scale^2; the
    squared gradients put seed 0 at its predicted equilibrium norm and seed 1 at 0.8 of it."""
    return trace(scale, 0.5, 0.04, np.ones((2, 31)), [[0.16] * 30, [0.25] * 30], final_test_acc)


@pytest.fixture
def decayed():
    return {0.5: heavy(0.5, (0.80, 0.90)), 1.0: heavy(1.0, (0.82, 0.88)), 2.0: heavy(2.0, (0.84, 0.86))}


def test_the_equilibrium_reads_the_last_30_steps_of_every_scale(decayed):
    equilibrium = chapter.decay_equilibrium(decayed)
    assert equilibrium.scales == (0.5, 1.0, 2.0)
    assert equilibrium.late_lr == pytest.approx([2.0, 0.5, 0.125])
    assert equilibrium.lr_spread == pytest.approx(16) and equilibrium.lr == pytest.approx(0.5)
    assert equilibrium.norm_ratios == pytest.approx(np.array([[1.0, 0.8]] * 3))  # (scales, seeds)


def test_the_decay_comparison_is_heavy_over_light_and_light_minus_heavy(decayed):
    # the light decay: 100 steps, the norm doubles (seed 0) or quadruples (seed 1) after step 0
    norms = np.array([[1.0] + [2.0] * 100, [1.0] + [4.0] * 100])
    light = trace(1.0, 0.5, 0.01, norms, np.ones((2, 100)), (0.95, 0.93))
    decay = chapter.decay_comparison(decayed, light)
    assert decay.heavy_lr == pytest.approx(0.5)
    assert decay.light_lr == pytest.approx((0.25 + 0.125) / 2)  # the last 100 steps, not step 0
    assert decay.lr_ratio == pytest.approx(0.5 / 0.1875) and decay.lr_ratio_per_seed == pytest.approx([2, 4])
    assert decay.heavy_accuracy == pytest.approx(0.85) and decay.light_accuracy == pytest.approx(0.94)
    assert decay.accuracy_cost == pytest.approx(0.09)
    assert decay.accuracy_cost_per_seed == pytest.approx([0.95 - 0.82, 0.93 - 0.88])


def test_a_scale_off_the_grid_raises_the_grids_error(scale_sweep):
    for call in (chapter.final_accuracy, chapter.median_final):
        with pytest.raises(ValueError, match="initial weight scale 3 is not on the grid; the sweep has: "):
            call(scale_sweep, 3.0)
