"""The placement study: BN before or after the activation, trained side by side."""

import numpy as np
import pytest

import bn_utils as bu
from bn_utils.experiments.placement import PlacementStudy, placement_study
from bn_utils.training import History


def test_placement_study_trains_every_placement_learning_rate_and_seed(digits):
    study = placement_study(digits, lrs=(0.1, 0.5), seeds=(0, 1), depth=1, width=16, epochs=1, eval_every=5, target=0.3)
    assert list(study.histories) == ["before", "after"]
    for position in ("before", "after"):
        assert study.steps_to_target(position).shape == (2, 2) and study.final_accuracy(position).shape == (2, 2)
        for lr, row in zip(study.lrs, study.histories[position], strict=True):
            assert [h.config["lr"] for h in row] == [lr, lr] and [h.config["seed"] for h in row] == [0, 1]
            assert row[0].eval_steps[:3] == [0, 5, 10]
    # each run is the one train() gives a model built with that placement on its own
    bu.seed_everything(1)
    alone = bu.train(
        bu.make_mlp(64, 10, depth=1, width=16, norm="batch", norm_position="after"),
        digits,
        lr=0.5,
        epochs=1,
        seed=1,
        eval_every=5,
    )
    np.testing.assert_allclose(study.runs("after", 0.5)[1].test_acc, alone.test_acc, atol=2 / len(digits.x_test))
    assert np.isfinite(study.steps_to_target("before")).all() and np.isfinite(study.steps_to_target("after")).all()
    assert study.speed_ratio(0.1) == study.median_steps("after", 0.1) / study.median_steps("before", 0.1)
    # which test examples each trained network gets right: its final test accuracy, example by example
    for position in ("before", "after"):
        assert study.correct[position].shape == (2, 2, len(digits.x_test))
        np.testing.assert_allclose(study.correct[position].mean(axis=2), study.final_accuracy(position))
    difference = study.final_difference(0.5)
    np.testing.assert_allclose(difference.values, study.final_accuracy("after")[1] - study.final_accuracy("before")[1])
    low, high = study.test_set_interval(0.5)
    assert low <= difference.mean <= high and high - low < 0.2


def test_the_test_set_interval_needs_the_per_example_correctness():
    runs = {
        "before": [[History(eval_steps=[0], test_acc=[0.9])] * 2],
        "after": [[History(eval_steps=[0], test_acc=[0.9])] * 2],
    }
    study = PlacementStudy(lrs=(0.1,), seeds=(0, 1), histories=runs, target=0.9)
    assert study.final_difference(0.1).values == (0.0, 0.0)
    with pytest.raises(ValueError, match="kept no per-example correctness"):
        study.test_set_interval(0.1)


def test_placement_study_summaries_mark_runs_that_never_got_there():
    def history(accs, diverged=False):
        return History(eval_steps=[0, 5, 10], test_acc=accs, diverged_at=7 if diverged else None)

    runs = {
        "before": [[history([0.1, 0.5, 0.92]), history([0.1, 0.4, 0.6], diverged=True)]],
        "after": [[history([0.1, 0.95, 0.97]), history([0.1, 0.2, 0.91])]],
    }
    study = PlacementStudy(lrs=(0.1,), seeds=(0, 1), histories=runs, target=0.9)
    assert study.steps_to_target("before").tolist() == [[10.0, np.inf]]
    assert study.steps_to_target("after").tolist() == [[5.0, 10.0]]
    final = study.final_accuracy("before")
    assert final[0, 0] == 0.92 and np.isnan(final[0, 1])
    assert study.median_final("after", 0.1) == pytest.approx(0.94)
    assert study.median_steps("before", 0.1) == np.inf and study.speed_ratio(0.1) == 0  # after: 7.5 / inf
    with pytest.raises(ValueError, match="position 'middle' was not trained; the study has: before, after"):
        study.steps_to_target("middle")
    with pytest.raises(ValueError, match="learning rate 0.3 was not trained; the study has: 0.1"):
        study.runs("before", 0.3)


def test_placement_study_checks_its_arguments(digits):
    with pytest.raises(ValueError, match="at least one positive learning rate and one seed"):
        placement_study(digits, lrs=())
    with pytest.raises(ValueError, match="at least one positive learning rate and one seed"):
        placement_study(digits, lrs=(0.1, -1.0))
    with pytest.raises(ValueError, match="at least one positive learning rate and one seed"):
        placement_study(digits, seeds=())
    with pytest.raises(ValueError, match="target must be a test accuracy between 0 and 1, got 90"):
        placement_study(digits, target=90)


def test_keep_correct_at_end_records_each_trained_network_in_eval_mode_at_the_last_step_only(digits):
    """The one hook that placement and regularization studies use: rows by the stack's model ids,
    eval-mode predictions of the trained networks, nothing before the last step."""
    import torch

    from bn_utils.stacked import StackedMLP, keep_correct_at_end, train_stacked

    data = digits
    models = [bu.mlp_for(data, seed=seed, depth=1, width=8, norm="batch") for seed in (0, 1)]
    right = np.zeros((2, len(data.x_test)), dtype=bool)
    total = 2 * (len(data.x_train) // 256)
    hook = keep_correct_at_end(total, data, right)
    seen: dict[str, object] = {}

    def watch(stack: StackedMLP, step: int) -> None:
        before = np.zeros_like(right)
        keep_correct_at_end(total, data, before)(stack, step - 1)
        assert not before.any()  # not the last step: nothing recorded
        hook(stack, step)
        if step == total:
            assert stack.training  # left in training mode
            stack.eval()
            with torch.no_grad():
                seen["expected"] = (stack(data.x_test).argmax(dim=2) == data.y_test).numpy()[np.argsort(stack.ids)]
            stack.train()

    train_stacked(models, data, lrs=[0.1, 0.1], seeds=(0, 1), epochs=2, batch_size=256, on_step=watch)
    assert right.any() and not right.all()
    np.testing.assert_array_equal(right, seen["expected"])
    with pytest.raises(TypeError, match="right must be a numpy array, got list"):
        keep_correct_at_end(total, data, [[False]])
