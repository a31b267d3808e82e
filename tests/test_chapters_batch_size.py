"""bn_utils.chapters.batch_size: the claim quantities of chapter 8, on hand-built sweep results whose
every number is known (a swapped batch size, norm, metric or sign changes an assertion)."""

import numpy as np
import pytest

from bn_utils.chapters import batch_size as chapter
from bn_utils.experiments.batch_size import SweepResult

pytestmark = pytest.mark.unit

NORMS = ("batch", "batch_renorm", "group", "batch_ghost", "layer")
SIZES = (2, 8, 32)
SEEDS = (0, 1, 2)
EXAMPLES = 10


def _sweep(order: str = "shuffled", offset: float = 0.0) -> SweepResult:
    """eval_acc = 0.5 + offset + 0.1 x norm index + 0.01 x batch-size index + 0.001 x seed; training-mode
    accuracy 0.05 below it; recomputed 0.02 above it; per-example correctness all right for BN and batch
    renorm at batch 2 (eval) and for BN at 32 (recomputed), all wrong elsewhere."""
    n, b, s = np.meshgrid(np.arange(len(NORMS)), np.arange(len(SIZES)), np.arange(len(SEEDS)), indexing="ij")
    eval_acc = 0.5 + offset + 0.1 * n + 0.01 * b + 0.001 * s
    stat_gap_mean = np.broadcast_to(np.array([0.04, 0.02, 0.01])[None, :, None], eval_acc.shape).copy()
    stat_gap_mean[0, 0] = [0.05, 0.06, 0.07]  # BN at batch 2: RMS of d per seed
    stat_gap_log_std = np.full(eval_acc.shape, 0.1)
    stat_gap_log_std[0, 0] = [0.2, 0.3, 0.4]
    eval_correct = np.zeros((*eval_acc.shape, EXAMPLES), dtype=bool)
    eval_correct[0, 0] = eval_correct[1, 0] = True
    recomputed_correct = np.zeros_like(eval_correct)
    recomputed_correct[0, 2] = True
    return SweepResult(
        norms=NORMS,
        batch_sizes=SIZES,
        seeds=SEEDS,
        order=order,
        eval_acc=eval_acc,
        train_mode_acc=eval_acc - 0.05,
        train_acc=eval_acc + 0.1,
        diverged_at=np.full(eval_acc.shape, -1),
        stat_gap_mean=stat_gap_mean,
        stat_gap_log_std=stat_gap_log_std,
        lrs=(0.1,) * len(SIZES),
        epochs=1,
        train_examples=8,
        recomputed_acc=eval_acc + 0.02,
        eval_correct=eval_correct,
        recomputed_correct=recomputed_correct,
    )


def test_batch_2_minus_32_is_the_small_batch_minus_the_large_one():
    np.testing.assert_allclose(chapter.batch_2_minus_32(_sweep(), "group"), [-0.02] * 3)


def test_the_accuracy_comparisons_pick_their_norms_batch_sizes_and_metrics():
    sweep = _sweep()
    bn = chapter.bn_batch_2_minus_32(sweep)  # eval: right at batch 2, wrong at 32
    np.testing.assert_allclose(bn.seeds.values, [1.0] * 3)  # compare_accuracies: from the per-example results
    assert bn.test_interval == pytest.approx((1.0, 1.0))
    recomputed = chapter.bn_batch_2_minus_32(sweep, "recomputed_acc")  # recomputed: wrong at 2, right at 32
    assert recomputed.test_interval == pytest.approx((-1.0, -1.0))
    gain = chapter.recomputed_minus_as_trained(sweep, 32)
    assert gain.test_interval == pytest.approx((1.0, 1.0))
    renorm = chapter.renorm_minus_bn(sweep, 2)
    np.testing.assert_allclose(renorm.seeds.values, [0.0] * 3)
    assert renorm.test_interval == pytest.approx((0.0, 0.0))


def test_batch_statistic_gaps_scale_by_root_b_times_64_and_root_2_times_128():
    gaps = chapter.batch_statistic_gaps(_sweep())
    assert gaps.d_rms[2] == pytest.approx(0.06) and gaps.d_rms[32] == pytest.approx(0.01)
    assert gaps.shrink == pytest.approx(6.0)
    np.testing.assert_allclose(gaps.mean_ratio[2], np.array([0.05, 0.06, 0.07]) * np.sqrt(128))
    np.testing.assert_allclose(gaps.mean_ratio[32], np.full(3, 0.01 * np.sqrt(2048)))
    assert gaps.log_r_rms_2 == pytest.approx(0.3)
    np.testing.assert_allclose(gaps.log_r_ratio, np.array([0.2, 0.3, 0.4]) * np.sqrt(256))


def test_ghost_minus_bn_takes_ghost_bn_at_32_against_bn_at_the_batch_size_asked():
    ghost, sweep = _sweep(), _sweep()
    ghost.eval_correct[NORMS.index("batch_ghost"), SIZES.index(32)] = True  # ghost BN right, BN at 32 wrong
    np.testing.assert_allclose(chapter.ghost_minus_bn(ghost, sweep, 2).seeds.values, [0.0] * 3)
    np.testing.assert_allclose(chapter.ghost_minus_bn(ghost, sweep, 32).seeds.values, [1.0] * 3)
    np.testing.assert_allclose(chapter.ghost_minus_bn(ghost, ghost, 32).seeds.values, [1.0] * 3)
    np.testing.assert_allclose(chapter.ghost_minus_bn(sweep, ghost, 2).seeds.values, [-1.0] * 3)


def test_fully_connected_quantities():
    fc, fc_ghost = _sweep(), _sweep(offset=-0.4)
    np.testing.assert_allclose(chapter.fc_bn_collapse(fc), [0.02] * 3)  # batch 32 minus batch 2
    np.testing.assert_allclose(chapter.fc_ghost_drop(fc, fc_ghost), [0.52 - 0.42] * 3)  # BN at 32 minus ghost
    fc.eval_correct[NORMS.index("layer"), SIZES.index(32)] = True
    np.testing.assert_allclose(chapter.fc_layer_norm_change(fc).seeds.values, [-1.0] * 3)  # batch 2 minus 32


def test_sorting_cost_and_what_recomputing_wins_back():
    shuffled, sorted_ = _sweep(), _sweep(order="sorted", offset=-0.2)
    np.testing.assert_allclose(chapter.sorting_cost(shuffled, sorted_, "group", 32), [0.2 + 0.01] * 3)
    np.testing.assert_allclose(chapter.sorting_cost(shuffled, sorted_, "group", 8), [0.2] * 3)
    assert chapter.recomputed_share_of_sorting_cost(shuffled, sorted_, 8) == pytest.approx(0.02 / 0.2)
    np.testing.assert_allclose(chapter.sorted_renorm_minus_bn(sorted_), [0.1] * 3)
