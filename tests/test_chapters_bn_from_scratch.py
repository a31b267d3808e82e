"""bn_utils.chapters.bn_from_scratch on hand-built results: each claim quantity reads the batch size,
the order, the placement and the learning rate it names (a swapped pair, a wrong row or a sign
flipped would change a number asserted here), and the setups train what the chapter says."""

import numpy as np
import pytest

import bn_utils as bu
from bn_utils.chapters import bn_from_scratch as chapter
from bn_utils.experiments.inference import ModeAccuracy
from bn_utils.experiments.placement import PlacementStudy

pytestmark = pytest.mark.unit


def history(acc, loss=(1.0, 0.5), steps=(0, 7, 14)):
    """A made-up run evaluated at ``steps`` with test accuracies ``acc``."""
    return bu.History(
        loss=list(loss),
        eval_steps=list(steps),
        test_acc=list(acc),
        test_loss=[1.0] * len(acc),
        steps_per_epoch=7,
    )


def test_accuracy_gaps_are_the_largest_gap_per_seed_in_test_examples():
    ours = [history([0.5, 0.8, 0.9]), history([0.5, 0.7, 0.9])]
    torch_runs = [history([0.5, 0.9, 0.9]), history([0.6, 0.7, 0.95])]
    np.testing.assert_allclose(chapter.accuracy_gaps(ours, torch_runs, 100), [10.0, 10.0])
    # the gap is absolute: ours above or below torch's counts the same
    np.testing.assert_allclose(chapter.accuracy_gaps(torch_runs, ours, 200), [20.0, 20.0])


def test_loss_gaps_compare_the_loss_curves_seed_by_seed():
    ours = [history([0.5] * 3, loss=(1.0, 0.5)), history([0.5] * 3, loss=(2.0, 0.5))]
    torch_runs = [history([0.5] * 3, loss=(1.0, 0.25)), history([0.5] * 3, loss=(1.0, 0.5))]
    np.testing.assert_allclose(chapter.loss_gaps(ours, torch_runs), [0.25, 1.0])


def test_gaps_refuse_unpaired_runs():
    with pytest.raises(ValueError, match="one run per seed"):
        chapter.loss_gaps([history([0.5] * 3)], [])


@pytest.fixture
def study():
    """Eval mode 90% on both seeds; in training mode the shuffled order costs little, the sorted
    order a lot, and the batch of 1 most (each cell is different, so a wrong one shows)."""
    train = np.array(
        [
            [[0.50, 0.40], [0.88, 0.86], [0.89, 0.91]],  # shuffled: batches of 1, 32, 449
            [[0.50, 0.40], [0.20, 0.30], [0.85, 0.87]],  # sorted
        ]
    )
    return ModeAccuracy(
        eval=np.array([0.9, 0.9]), seeds=(0, 1), batch_sizes=(1, 32, 449), orders=chapter.ORDERS, train=train
    )


def test_points_lost_is_eval_minus_training_mode_per_seed(study):
    np.testing.assert_allclose(chapter.points_lost(study, 1), [0.40, 0.50])
    np.testing.assert_allclose(chapter.points_lost(study, 32), [0.02, 0.04])
    np.testing.assert_allclose(chapter.points_lost(study, 32, "sorted"), [0.70, 0.60])
    np.testing.assert_allclose(chapter.points_lost(study, 449), [0.01, -0.01])  # training mode may do better


def test_points_lost_names_what_was_not_measured(study):
    with pytest.raises(ValueError, match="batch size 2"):
        chapter.points_lost(study, 2)


@pytest.fixture
def placement():
    """Two seeds; at lr 0.1 BN after the ReLU reaches 90% at steps 7 and 14, before it at 14 and 28;
    at lr 1 after at 7 and never, before at 14 and 14. Final accuracies differ per cell."""
    reach = {7: [0.5, 0.9, 0.92], 14: [0.5, 0.6, 0.91], 28: [0.5, 0.6, 0.7], None: [0.5, 0.6, 0.8]}
    histories = {
        "before": [[history(reach[14]), history(reach[28])], [history(reach[14]), history(reach[14])]],
        "after": [[history(reach[7]), history(reach[14])], [history(reach[7]), history(reach[None])]],
    }
    return PlacementStudy(lrs=(0.1, 1.0), seeds=(0, 1), histories=histories, target=0.9)


def test_placement_speed_reads_each_placement_at_its_learning_rate(placement):
    slow = placement.histories["before"][0][1]
    assert slow.steps_to(0.9) is None  # reach[28] never gets there with evaluations to step 14
    speed = chapter.placement_speed(placement, 0.1)
    np.testing.assert_array_equal(speed.after, [7, 14])
    np.testing.assert_array_equal(speed.before, [14, np.inf])
    assert (speed.median_after, speed.median_before) == (10.5, np.inf)
    at_1 = chapter.placement_speed(placement, 1.0)
    np.testing.assert_array_equal(at_1.per_seed_difference, [-7, np.inf])
    np.testing.assert_array_equal(at_1.per_seed_ratio, [0.5, np.inf])
    assert at_1.median_gap == np.inf
    assert at_1.ratio == np.inf


def test_placement_speed_ratio_is_after_over_before():
    runs = {7: history([0.5, 0.9, 0.9]), 14: history([0.5, 0.6, 0.9])}
    study = PlacementStudy(
        lrs=(0.1,),
        seeds=(0, 1),
        histories={"before": [[runs[14], runs[14]]], "after": [[runs[7], runs[14]]]},
        target=0.9,
    )
    speed = chapter.placement_speed(study, 0.1)
    assert speed.ratio == pytest.approx(10.5 / 14)
    assert speed.median_gap == pytest.approx(3.5)
    np.testing.assert_allclose(speed.per_seed_ratio, [0.5, 1.0])


def test_final_accuracy_gap_is_the_absolute_gap_of_the_medians(placement):
    # lr 0.1: after 0.92 and 0.91 (median 0.915), before 0.91 and 0.7 (0.805); lr 1: 0.86 against 0.91
    assert chapter.final_accuracy_gap(placement, 0.1) == pytest.approx(0.11)
    assert chapter.final_accuracy_gap(placement, 1.0) == pytest.approx(0.05)


def test_the_setups_train_what_the_chapter_says(monkeypatch):
    """The setups' arguments: lr 0.1, 10 epochs, both orders, the whole test set last; the placement
    at lr 0.1 and 1, evaluated every 7 steps, target 90%."""
    calls = []
    monkeypatch.setattr(chapter, "forgotten_eval_study", lambda build, data, **kw: calls.append((build(), data, kw)))
    monkeypatch.setattr(chapter, "placement_study", lambda data, **kw: calls.append((None, data, kw)))
    digits = bu.load_digits()
    chapter.mlp_study((0, 1), digits)
    chapter.placement((3,), digits)
    (mlp, data, kw), (_, placement_data, placement_kw) = calls
    assert data is digits and placement_data is digits
    assert kw == dict(seeds=(0, 1), batch_sizes=[2, 8, 32, 128, 449], orders=["shuffled", "sorted"], lr=0.1, epochs=10)
    assert len(mlp.blocks) == 3
    assert placement_kw == dict(lrs=(0.1, 1.0), seeds=(3,), epochs=10, eval_every=7, target=0.9)


def test_placement_speed_off_the_grid_raises_the_grids_error(placement):
    with pytest.raises(ValueError, match="learning rate 0.3 was not trained; the study has: 0.1, 1"):
        chapter.placement_speed(placement, 0.3)
