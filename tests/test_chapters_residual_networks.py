"""bn_utils.chapters.residual_networks: each claim quantity on hand-built results whose answer is known."""

import numpy as np
import pytest

from bn_utils.chapters import residual_networks as rn
from bn_utils.experiments.residual import ArchitectureAtInit, AtInit, Grid

pytestmark = pytest.mark.unit

SEEDS = (0, 1, 2)


def at_init(depth=4):
    """Residual BN: stem variance 1, every branch 0.5 (seed 1: the stream off by 10% at the last block);
    no norm: the stream doubles per block; BN's scaling without BN: branches twice BN's on BN's stream."""
    branch = np.full((3, depth), 0.5)
    stream = 1 + np.concatenate([np.zeros((3, 1)), np.cumsum(branch, 1)], 1)
    stream[1, -1] *= 1.1
    none = np.tile(2.0 ** np.arange(depth + 1), (3, 1))
    nan = np.full((3, depth), np.nan)
    unmeasured, no_heads = np.full((3, depth + 1), np.nan), np.full(3, np.nan)

    def arrays(stream_var, branch_var):
        return ArchitectureAtInit(stream_var, branch_var, nan, unmeasured, no_heads)

    return AtInit(
        depth=depth,
        seeds=SEEDS,
        measured={
            "residual_none": arrays(none, nan),
            "residual_bn": arrays(stream, branch),
            "residual_bn_like": arrays(stream, 2 * branch),
        },
    )


def test_stream_growth_on_a_linearly_growing_stream():
    growth = rn.stream_growth(at_init())
    np.testing.assert_allclose(growth.none_rate, 2.0)
    np.testing.assert_allclose(growth.bn_growth, [3.0, 3.3, 3.0])  # block 4 / the stem
    np.testing.assert_allclose(growth.bn_doubling, [1.5, 1.65, 1.5])  # block 4 / block 2
    np.testing.assert_allclose(growth.sum_error, [0.0, 0.1 / 1.1, 0.0])
    np.testing.assert_allclose(growth.first_branch_share, 0.5)
    np.testing.assert_allclose(growth.last_branch_ratio, 0.5 / 2.5)  # the last branch joins the stream after block 3
    np.testing.assert_allclose(growth.last_branch_share, 1.0)  # 5 x 0.2
    np.testing.assert_allclose(growth.like_share, 2.0)


def grid(architectures, depths, lrs, eval_steps, test_acc, diverged_at=None, correct=None):
    return Grid(
        architectures=tuple(architectures),
        depths=tuple(depths),
        lrs=tuple(lrs),
        seeds=SEEDS,
        steps=eval_steps[-1],
        eval_steps=tuple(eval_steps),
        test_acc=test_acc,
        diverged_at=diverged_at or {name: np.full(test_acc[name].shape[:3], -1) for name in architectures},
        at_freeze={},
        correct=correct or {},
    )


LRS = (0.03, 0.1, 0.3, 1.0)
NAMES = (*rn.FROZEN, "residual_bn")


def freeze_grid():
    """Live BN gets every one of 400 test digits right everywhere; frozen at 0 misses 36, 40 or 44 of them
    (by seed) at depth 80 and learning rate 0.3 only, and fails to train at depth 40 and lr 0.1 in seed 2."""
    shape = (2, len(LRS), len(SEEDS))
    correct = {name: np.ones((*shape, 400), dtype=bool) for name in NAMES}
    for seed, missed in enumerate((36, 40, 44)):
        correct["residual_bn_frozen0"][1, 2, seed, :missed] = False
    test_acc = {name: np.full((*shape, 1), 0.9) for name in NAMES}
    test_acc["residual_bn_frozen0"][0, 1, 2, 0] = 0.3
    diverged_at = {name: np.full(shape, -1) for name in NAMES}
    diverged_at["residual_bn_frozen0"][:, 3] = [[4, 5, -1], [6, 7, 8]]  # at lr 1.0
    diverged_at["residual_bn_frozen1"][:, 2] = 3  # at lr 0.3: not counted
    diverged_at["residual_bn_frozen10"][1, 3] = [20, -1, 30]
    return grid(NAMES, (40, 80), LRS, (200,), test_acc, diverged_at, correct)


def test_frozen_versus_live_compares_frozen_minus_live_in_the_six_cells():
    result = rn.frozen_versus_live(freeze_grid())
    assert [(cell.depth, cell.lr) for cell in result.cells] == [(d, lr) for d in (40, 80) for lr in (0.03, 0.1, 0.3)]
    np.testing.assert_allclose(result.means, [0, 0, 0, 0, 0, -0.1], atol=1e-12)  # frozen - live, not live - frozen
    assert result.below_both == 1
    assert [bool(cell.frozen_trained.all()) for cell in result.cells] == [True, False, True, True, True, True]


def test_frozen_divergence_at_lr_1_counts_the_three_freeze_steps_at_lr_1_only():
    steps = rn.frozen_divergence_at_lr1(freeze_grid())
    assert steps.shape == (2 * 3 * 3,)
    np.testing.assert_array_equal(steps[:3], [4, 5, np.inf])  # depth 40, frozen at step 0
    assert int(np.isfinite(steps).sum()) == 7


def test_budget_gain_at_depth_40_and_lr_0_1():
    plain = np.array([[0.3, 0.5, 0.6, 0.6], [np.nan, np.nan, np.nan, 0.5], [0.4, 0.5, 0.6, 0.7]])
    residual = np.array([[0.9] * 4, [0.95] * 4, [0.8] * 4])
    budget = grid(
        ("plain_bn", "residual_bn"),
        (40,),
        (0.1,),
        (200, 400, 600, 800),
        {"plain_bn": plain[None, None], "residual_bn": residual[None, None]},
    )
    gain = rn.budget_gain(budget)
    np.testing.assert_allclose(gain.plain200, [0.3, 0.0, 0.4])  # a diverged seed counts as 0
    assert gain.median_gain == pytest.approx(0.6 - 0.3)
    assert gain.residual_margin == pytest.approx(0.8 - 0.7)


def test_divergence_steps_name_a_label_off_the_grid():
    freeze = freeze_grid()
    np.testing.assert_array_equal(rn.divergence_steps(freeze, "residual_bn_frozen0", 40, 1.0), [4, 5, np.inf])
    for args, message in (
        (("residual_bn_frozen0", 60, 1.0), "depth 60 was not trained; the grid has: 40, 80"),
        (("residual_bn_frozen0", 40, 0.5), "learning rate 0.5 was not trained; the grid has: "),
        (("residual_lsuv", 40, 1.0), "architecture 'residual_lsuv' is not in this grid"),
    ):
        with pytest.raises(ValueError, match=message):
            rn.divergence_steps(freeze, *args)
