"""Headline claims of the chapter "Batch normalization from scratch", over several seeds.

Each test is named by one sentence of the chapter's verdict. The trained models are shared: the
forgotten-eval studies (conv net and MLP, test set shuffled and sorted by class) and the placement
study run once per test session.
"""

import numpy as np
import pytest
import torch
from claim_seeds import SEEDS

from bn_utils import forgotten_eval_study, load_digits, make_convnet, make_mlp, run_seeds
from bn_utils.experiments.placement import placement_study

N_TEST = 449  # the digits' test set


def points(values):
    """Accuracies as rounded percentage points, for failure messages."""
    return np.round(100 * np.asarray(values), 1)


@pytest.fixture(scope="module")
def conv_acc():
    """The conv net of the notebook, predicted in training mode in shuffled and class-sorted batches."""
    data = load_digits(images=True)
    assert len(data.x_test) == N_TEST
    return forgotten_eval_study(
        lambda: make_convnet(norm="batch_scratch"),
        data,
        seeds=SEEDS,
        batch_sizes=[1, 32, 128, N_TEST],
        orders=["shuffled", "sorted"],
        lr=0.1,
        epochs=10,
    )


@pytest.fixture(scope="module")
def mlp_acc():
    """The 3x100 MLP of the notebook, predicted in training mode in shuffled and class-sorted batches."""
    return forgotten_eval_study(
        lambda: make_mlp(64, 10, depth=3, width=100, norm="batch_scratch"),
        load_digits(),
        seeds=SEEDS,
        batch_sizes=[2, 32, 128, N_TEST],
        orders=["shuffled", "sorted"],
        lr=0.1,
        epochs=10,
    )


@pytest.fixture(scope="module")
def placement():
    """The notebook's placement study: BN before and after the ReLU at learning rates 0.1 and 1."""
    return placement_study(load_digits(), lrs=(0.1, 1.0), seeds=SEEDS, epochs=10, eval_every=7, target=0.9)


def test_training_with_scratch_bn_follows_torch_bn():
    """Claim: our BatchNorm1d is a drop-in for torch's: in float64 the MLP's loss curves agree to
    1e-9 on every seed; in float32, where rounding differences can grow during training, the test
    accuracies agree within two test examples at every evaluation."""
    for dtype, loss_tol in [(torch.float64, 1e-9), (torch.float32, None)]:
        data = load_digits(dtype=dtype)
        curves = {
            norm: run_seeds(
                lambda norm=norm, dtype=dtype: make_mlp(64, 10, depth=3, width=100, norm=norm).to(dtype),
                data,
                SEEDS,
                lr=0.1,
                epochs=5,
                device="cpu",
            )
            for norm in ("batch", "batch_scratch")
        }
        for ours, ref in zip(curves["batch_scratch"], curves["batch"], strict=True):
            seed = ours.config["seed"]
            loss_gap = np.max(np.abs(np.array(ours.loss) - np.array(ref.loss)))
            acc_gap = np.max(np.abs(np.array(ours.test_acc) - np.array(ref.test_acc))) * len(data.x_test)
            if loss_tol is not None:
                assert loss_gap < loss_tol, f"{dtype}, seed {seed}: loss curves differ by {loss_gap:.2e}"
            assert acc_gap <= 2, f"{dtype}, seed {seed}: test accuracies differ by {acc_gap:.0f} examples"


def test_forgetting_eval_ruins_single_image_predictions_in_a_conv_net(conv_acc):
    """Claim: predicting one image at a time in training mode costs at least 20 points of accuracy."""
    drop = conv_acc["eval"] - conv_acc["train@1"]
    assert (conv_acc["eval"] > 0.9).all(), f"eval-mode accuracy {points(conv_acc['eval'])}%"
    assert (drop > 0.20).all(), (
        f"points lost per seed {points(drop)} (eval {points(conv_acc['eval'])}, train@1 {points(conv_acc['train@1'])})"
    )


def test_train_mode_batches_of_two_cost_an_mlp_at_least_25_points(mlp_acc):
    """Claim: in training mode, an MLP predicting in batches of 2 loses at least 25 points."""
    drop = mlp_acc["eval"] - mlp_acc["train@2"]
    assert (drop > 0.25).all(), f"points lost with batches of 2, per seed: {points(drop)}"


def test_a_batch_of_one_in_training_mode_is_refused_not_silently_wrong():
    """Claim: an MLP asked to predict a single example in training mode raises a clear error."""
    data = load_digits()
    with pytest.raises(ValueError, match="model.eval()"):
        forgotten_eval_study(
            lambda: make_mlp(64, 10, depth=1, width=16, norm="batch_scratch"),
            data,
            seeds=[0],
            batch_sizes=[1],
            lr=0.1,
            steps=5,
        )


def test_large_shuffled_batches_and_the_whole_test_set_in_any_order_are_harmless(conv_acc, mlp_acc):
    """Claim: shuffled batches of 128, and the whole test set as one batch shuffled or sorted by
    class, stay within 3 points of eval mode, for the conv net and the MLP, on every seed."""
    for name, acc in [("conv net", conv_acc), ("MLP", mlp_acc)]:
        for key in ["train@128", f"train@{N_TEST}", f"sorted@{N_TEST}"]:
            gap = np.abs(acc["eval"] - acc[key])
            assert (gap < 0.03).all(), f"{name}, {key}: gap to eval mode per seed {points(gap)} points"


def test_class_sorted_batches_of_32_ruin_train_mode_predictions(conv_acc, mlp_acc):
    """Claim: batches of 32 sorted by class cost the MLP at least 50 points and the conv net at
    least 25 on every seed, where the same batch size shuffled costs each at most 5."""
    for name, acc, floor in [("conv net", conv_acc, 0.25), ("MLP", mlp_acc, 0.50)]:
        sorted_drop = acc["eval"] - acc["sorted@32"]
        shuffled_gap = np.abs(acc["eval"] - acc["train@32"])
        assert (sorted_drop > floor).all(), f"{name}: points lost, sorted batches of 32, per seed {points(sorted_drop)}"
        assert (shuffled_gap < 0.05).all(), f"{name}: gap, shuffled batches of 32, per seed {points(shuffled_gap)}"


def test_class_sorted_batches_of_128_still_cost_points(conv_acc, mlp_acc):
    """Claim: batches of 128 sorted by class (about three classes each) still cost the MLP at least
    20 points and the conv net at least 5, on every seed."""
    for name, acc, floor in [("conv net", conv_acc, 0.05), ("MLP", mlp_acc, 0.20)]:
        drop = acc["eval"] - acc["sorted@128"]
        assert (drop > floor).all(), f"{name}: points lost, sorted batches of 128, per seed {points(drop)}"


def test_bn_after_relu_reaches_90_percent_sooner_at_lr_0_1(placement):
    """Claim: at the chapter's learning rate 0.1, the MLP with BN after the ReLU reaches 90% test
    accuracy in at most 0.8 times the median steps of BN before it."""
    ratio = placement.speed_ratio(0.1)
    assert ratio <= 0.8, (
        f"median steps to 90%: after {placement.median_steps('after', 0.1)}, before "
        f"{placement.median_steps('before', 0.1)} (ratio {ratio:.2f}); per seed after "
        f"{placement.steps_to_target('after')[0]}, before {placement.steps_to_target('before')[0]}"
    )


def test_placement_speed_gap_is_gone_at_lr_1(placement):
    """Claim: at learning rate 1, the two placements' median steps to 90% are within one
    evaluation (7 steps) of each other."""
    after, before = placement.median_steps("after", 1.0), placement.median_steps("before", 1.0)
    assert abs(after - before) <= 7, (
        f"median steps to 90% at lr 1: after {after}, before {before}; per seed after "
        f"{placement.steps_to_target('after')[-1]}, before {placement.steps_to_target('before')[-1]}"
    )


def test_placement_makes_no_measurable_difference_to_final_accuracy(placement):
    """Claim: at every learning rate tried, the median final test accuracies of the two placements
    are within 1.5 points of each other."""
    for i, lr in enumerate(placement.lrs):
        gap = abs(placement.median_final("after", lr) - placement.median_final("before", lr))
        assert gap <= 0.015, (
            f"lr {lr:g}: final test accuracy per seed, after {points(placement.final_accuracy('after')[i])}, "
            f"before {points(placement.final_accuracy('before')[i])} (gap in medians {100 * gap:.1f} points)"
        )
