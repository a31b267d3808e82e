"""bn_utils.chapters.transfer: the claim quantities of chapter 9, on hand-built results whose every
number is known (a wrong budget, a diverged run read as a number, a swapped sign or the wrong chance
level changes an assertion), and the claim grid's networks."""

import numpy as np
import pytest

from bn_utils.chapters import transfer as chapter
from bn_utils.experiments import transfer as tr
from bn_utils.experiments.batch_size import SweepResult

pytestmark = pytest.mark.unit


def test_baseline_gap_is_the_median_minus_the_published_accuracy():
    result = tr.BaselineResult(seeds=(0, 1, 2), steps=10, test_acc={"MLP": np.array([0.60, 0.70, 0.64])})
    gap = chapter.baseline_gap(result, "MLP")
    assert gap.published == tr.PUBLISHED["MLP"] == 0.68
    assert gap.median == pytest.approx(0.64) and gap.difference == pytest.approx(-0.04)  # the median, not the mean
    np.testing.assert_allclose(gap.per_seed, [-0.08, 0.02, -0.04])


def test_share_above_chance_lost_measures_from_chance_at_batch_32():
    values = np.array([[[0.30, 0.55], [0.90, 0.55]], [[0.80, 0.80], [0.85, 0.82]]])  # (norm, batch size, seed)
    sweep = SweepResult(
        norms=("batch", "layer"),
        batch_sizes=(2, 32),
        seeds=(0, 1),
        order="shuffled",
        eval_acc=values,
        train_mode_acc=values,
        train_acc=values,
        diverged_at=np.full(values.shape, -1),
        stat_gap_mean=values,
        stat_gap_log_std=values,
        lrs=(0.1, 0.1),
        epochs=1,
        train_examples=4,
    )
    np.testing.assert_allclose(chapter.share_above_chance_lost(sweep), [0.75, 0.0])  # (0.9 - 0.3) / (0.9 - 0.1)


def test_the_claim_grid_holds_every_network_its_sweeps_read():
    configs = set(chapter.CLAIM_CONFIGS)
    assert len(configs) == len(chapter.CLAIM_CONFIGS) == 17
    for norm in ("none", "batch"):
        assert {tr.MLPConfig(norm, lr=lr) for lr in chapter.LRS} <= configs
        assert {tr.MLPConfig(norm, init_scale=scale) for scale in chapter.SCALES} <= configs
        assert {tr.MLPConfig(norm, depth=depth) for depth in chapter.DEPTHS} <= configs
    assert tr.MLPConfig("batch", depth=40, residual=True) in configs
    assert set(tr.NOTEBOOK_CONFIGS) <= configs  # the notebook's grid is part of the claim tests'
