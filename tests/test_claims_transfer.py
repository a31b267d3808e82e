"""Does it transfer? The chapters' headline claims on MNIST-1D and at 4x the steps, over 5 seeds.

Setting (``bn_utils.experiments.transfer``): each chapter's own experiment and code, with the data set
swapped for MNIST-1D (4,000 training and 1,000 test sequences of length 40, generated offline), and
each verdict of the form "trains", "ends ahead" or "reaches the target first" also read after 4x the
chapter's steps, on both benchmarks. The MLP chapters (3-6) train one grid of 10 x 100 ReLU MLPs per
benchmark for 800 steps (SGD, batches of 64, 80% of the training set, the other 20% for validation:
every selection uses validation accuracy, test accuracy is read only for the selected networks) and
read it at 200 and 800 steps. A run *trains* when it ends at 50% (digits) or 40% (MNIST-1D) or more:
halfway from chance to a published MLP's accuracy on the benchmark. Speed is the number of steps to
95% (digits) or 40% (MNIST-1D) validation accuracy. Chapter 2: the BN paper's Figure 1 network, 600
and 2,400 steps. Chapter 7: the chapter's 3 x 100 MLP, 40 epochs (all training examples) and, on 256
training examples, 40 and 160 epochs. Chapter 8: the chapter's schedule (first 512 training examples,
SGD with momentum at 0.1 x B / 32) for 10 and 40 epochs; the conv net is the 1-D twin of the digits'.

Each test carries a ``scorecard`` marker: the row of the scorecard (``book/scorecard.md``, generated
by ``scripts/make_scorecard.py``), its column, and the outcome. The outcome is not a comment: the test
asserts the claim in the direction its marker names (:func:`verdict`), so the scorecard cannot say
"holds" where the test found otherwise.
"""

from __future__ import annotations

import claim_checks as cc
import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.chapters import faster_convergence
from bn_utils.chapters import gradient_flow as gf
from bn_utils.chapters import internal_covariate_shift as ics
from bn_utils.chapters import transfer as chapter
from bn_utils.chapters.regularization_noise import FULL, GHOST, PLAIN, REGULARIZERS
from bn_utils.chapters.transfer import DEPTHS, LRS, SCALES
from bn_utils.experiments import batch_size as bs
from bn_utils.experiments import transfer as tr
from bn_utils.experiments.covariate_shift import covariate_shift_run, ioffe_mlp
from bn_utils.experiments.initialization import RELU_BN_GRADIENT_GROWTH
from bn_utils.experiments.regularization import (
    REGULARIZER_LABELS,
    SMALL_DATA,
    WEIGHT_DECAY,
    config_name,
    explicit_regularizers,
    regularization_study,
)
from bn_utils.statistics import Estimate

POINT = 0.01  # one percentage point of accuracy
OPPOSITE = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
SMALL = {  # the regularization chapter's small-data configurations that its verdicts on BN compare
    name: setting
    for name, setting in explicit_regularizers().items()
    if name in (config_name("plain"), config_name("bn"), *(config_name("bn", reg) for reg in REGULARIZERS))
}
SMALL_STEPS = 40 * 256 // 32  # the chapter's 40 epochs on 256 examples
BENCHMARKS = ("mnist1d", "digits")


# ---------------------------------------------------------------------------------------------
# How a test asserts its scorecard verdict


def outcome_of(request) -> str:
    marker = request.node.get_closest_marker("scorecard")
    assert marker is not None, "a claim test of this module names its scorecard row, column and outcome"
    return marker.kwargs["outcome"]


def verdict(request, statistic, op, threshold, what, *, values=None):
    """Assert the claim ``statistic op threshold`` in the direction the test's scorecard marker names:
    "holds" asserts it, "does not hold" asserts its opposite (``values``, per seed, for the margin)."""
    outcome = outcome_of(request)
    if outcome == "holds":
        cc.compare(statistic, op, threshold, what, values=values)
    elif outcome == "does not hold":
        cc.compare(statistic, OPPOSITE[op], threshold, f"{what} [the claim is {op} {threshold:.4g}]", values=values)
    else:
        raise AssertionError(f"verdict() asserts 'holds' or 'does not hold', not {outcome!r}; see not_settled()")


def not_settled(request, estimate: Estimate, threshold: float, what: str):
    """The outcome "not settled": the 95% interval of the mean over seeds contains ``threshold``."""
    assert outcome_of(request) == "not settled"
    low, high = estimate.interval
    cc.compare(low, "<", threshold, f"{what}: lower end of the 95% interval [not settled]", values=estimate.values)
    cc.compare(high, ">", threshold, f"{what}: upper end of the 95% interval [not settled]", values=estimate.values)


# ---------------------------------------------------------------------------------------------
# The runs, once per module


@pytest.fixture(scope="module")
def grids():
    """benchmark key -> the MLP grid (chapters 3-6) trained for 800 steps, read at 200 and 800."""
    return {key: chapter.claim_grid(key, SEEDS) for key in ("mnist1d", "digits")}


@pytest.fixture(scope="module")
def speed():
    """Chapter 2's network: MNIST-1D for 2,400 steps; the digits for the chapter's 600 (see the test)."""
    return {
        "mnist1d": tr.speed_runs(tr.load("mnist1d"), network=ioffe_mlp, seeds=SEEDS, steps=2400, eval_every=20),
        "digits": tr.speed_runs(tr.load("digits"), network=ioffe_mlp, seeds=SEEDS, steps=600, eval_every=20),
    }


@pytest.fixture(scope="module")
def small():
    """Chapter 7's small-data study on 256 training examples, 160 epochs, read at 40 and 160."""
    options = dict(SMALL_DATA, epochs=4 * 40, eval_every=SMALL_STEPS)
    return {key: regularization_study(tr.load(key), seeds=SEEDS, configs=SMALL, **options) for key in BENCHMARKS}


@pytest.fixture(scope="module")
def fully_connected():
    """Chapter 8's fully connected contrast: MNIST-1D at 10 and 40 epochs, the digits at 40."""
    return {
        (key, epochs): chapter.fully_connected(key, SEEDS, epochs)
        for key, epochs in (("mnist1d", 10), ("mnist1d", 40), ("digits", 40))
    }


@pytest.fixture(scope="module")
def conv():
    """Chapter 8's conv net (the 1-D twin on MNIST-1D), BN at batches 2 and 32."""
    return {
        (key, epochs): bs.batch_size_sweep(
            tr.load(key, shaped=True), seeds=SEEDS, norms=("batch",), batch_sizes=(2, 32), epochs=epochs
        )
        for key, epochs in (("mnist1d", 10), ("mnist1d", 40), ("digits", 40))
    }


def pts(values) -> str:
    return np.array2string(100 * np.asarray(values, dtype=float), precision=1)


# ---------------------------------------------------------------------------------------------
# The outside check


@pytest.fixture(scope="module")
def baseline():
    """Logistic regression, the MLP and the CNN of Greydanus & Kobak, trained with the published
    optimizer, learning rate and batch size (Adam, 0.01, batches of 100) for 2,000 of the published
    6,000 steps. (In the repository's own notebooks the CNN gains 2-4 points between steps 2,000 and
    6,000, to 92.3-94.2%: the likely source of our gap to the published 94%.)"""
    return chapter.claim_baselines(SEEDS)


def within_5_points(request, baseline, name):
    gap = chapter.baseline_gap(baseline, name)
    verdict(
        request,
        abs(gap.difference),
        "<",
        5 * POINT,
        f"{name}: |median test accuracy - published {gap.published:.2f}|, per seed {pts(baseline.test_acc[name])}",
        values=gap.per_seed,
    )


@pytest.mark.scorecard(
    row="outside", column="mnist1d", outcome="holds", shows="logistic regression {mean100:+.1f} points from 32%"
)
def test_logistic_regression_reproduces_the_published_accuracy_within_5_points(request, baseline):
    within_5_points(request, baseline, "logistic regression")


@pytest.mark.scorecard(row="outside", column="mnist1d", outcome="holds", shows="MLP {mean100:+.1f} from 68%")
def test_the_mlp_reproduces_the_published_accuracy_within_5_points(request, baseline):
    within_5_points(request, baseline, "MLP")


@pytest.mark.scorecard(row="outside", column="mnist1d", outcome="holds", shows="CNN {mean100:+.1f} from 94%")
def test_the_cnn_reproduces_the_published_accuracy_within_5_points(request, baseline):
    within_5_points(request, baseline, "CNN")


# ---------------------------------------------------------------------------------------------
# Chapter 3: learning rates, speed, final accuracy, landscape


def lr_sweep(grids, key, steps):
    return grids[key].sweep("lr", LRS, steps)


def best_lr(sweep, norm):
    """The chapter's best learning rate (fewest steps to the target among those where every seed
    trains); where none trains, the one with the highest median final validation accuracy."""
    best = sweep.best(norm)
    if best is not None:
        return best
    medians = np.nan_to_num(np.nanmedian(np.where(np.isnan(sweep.final(norm)), -1, sweep.final(norm)), 1), nan=-1)
    return sweep.values[int(np.argmax(medians))]


def largest_trained_lr(request, grids, key, steps):
    sweep = lr_sweep(grids, key, steps)
    plain, bn = sweep.largest_stable("none") or 0.0, sweep.largest_stable("batch") or 0.0
    verdict(
        request,
        bn,
        ">",
        plain,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: largest learning rate at which every seed trains, "
        f"BN against plain (0: none)",
    )


@pytest.mark.scorecard(
    row="lr",
    column="mnist1d",
    outcome="holds",
    shows="largest learning rate at which every seed trains: BN {value:g}, plain {threshold:g} (0: none)",
)
def test_mnist1d_bn_trains_every_seed_at_a_larger_learning_rate_than_the_plain_network(request, grids):
    largest_trained_lr(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="lr",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="largest learning rate at which every seed trains: BN {value:g}, plain {threshold:g} (0: none)",
)
def test_digits_at_800_steps_bn_still_trains_at_a_larger_learning_rate(request, grids):
    largest_trained_lr(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="lr",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="largest learning rate at which every seed trains: BN {value:g}, plain {threshold:g} (0: none)",
)
def test_mnist1d_at_800_steps_bn_still_trains_at_a_larger_learning_rate(request, grids):
    largest_trained_lr(request, grids, "mnist1d", 800)


def sooner_at_best(request, grids, key, steps):
    sweep = lr_sweep(grids, key, steps)
    plain = sweep.median_steps_to_target("none", best_lr(sweep, "none"))
    bn = sweep.median_steps_to_target("batch", best_lr(sweep, "batch"))
    verdict(
        request,
        bn,
        "<=",
        0.6 * plain,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: median steps to {sweep.target:.0%} validation accuracy at the "
        f"best learning rates, BN (lr {best_lr(sweep, 'batch'):g}) against 0.6 x plain's "
        f"(lr {best_lr(sweep, 'none'):g}; inf: never)",
    )


@pytest.mark.scorecard(
    row="speed",
    column="mnist1d",
    outcome="holds",
    shows="BN {value:.0f} steps to the target, 0.6 × the plain network's: {threshold:.0f}",
)
def test_mnist1d_at_their_best_learning_rates_bn_reaches_the_target_sooner(request, grids):
    sooner_at_best(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="speed",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="BN {value:.0f} steps to the target, 0.6 × the plain network's: {threshold:.0f}",
)
def test_digits_at_800_steps_bn_reaches_the_target_sooner(request, grids):
    sooner_at_best(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="speed",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="BN {value:.0f} steps to the target, 0.6 × the plain network's: {threshold:.0f}",
)
def test_mnist1d_at_800_steps_bn_reaches_the_target_sooner(request, grids):
    sooner_at_best(request, grids, "mnist1d", 800)


def ahead_at_best(request, grids, key, steps):
    sweep = lr_sweep(grids, key, steps)
    plain = sweep.test_accuracy("none", best_lr(sweep, "none"))
    bn = sweep.test_accuracy("batch", best_lr(sweep, "batch"))
    verdict(
        request,
        np.median(bn) - np.median(plain),
        ">=",
        1 * POINT,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: median test accuracy at the best learning rates, BN minus plain "
        f"(BN {pts(bn)}, plain {pts(plain)})",
        values=bn - plain,
    )


@pytest.mark.scorecard(
    row="ahead", column="mnist1d", outcome="holds", shows="BN {value100:+.1f} points (median test accuracy)"
)
def test_mnist1d_at_their_best_learning_rates_bn_ends_with_higher_test_accuracy(request, grids):
    ahead_at_best(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="ahead",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="BN {value100:+.1f} points (median test accuracy)",
)
def test_digits_at_800_steps_bn_still_ends_with_higher_test_accuracy(request, grids):
    ahead_at_best(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="ahead",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="BN {value100:+.1f} points (median test accuracy)",
)
def test_mnist1d_at_800_steps_bn_still_ends_with_higher_test_accuracy(request, grids):
    ahead_at_best(request, grids, "mnist1d", 800)


def behind_at_small_lr(request, grids, key, steps):
    """The chapter's "at learning rate 0.01 BN ends behind" (12 points on the digits at 200 steps), as a
    size: the mean over seeds of BN's final validation accuracy minus the plain network's, against -5
    points. Five seeds cannot settle the sign of a difference of a point or two; they can its size."""
    sweep = lr_sweep(grids, key, steps)
    i = sweep.axis("lr").index(0.01)
    difference = sweep.final("batch")[i] - sweep.final("none")[i]
    verdict(
        request,
        float(np.mean(difference)),
        "<=",
        -5 * POINT,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: final validation accuracy at lr 0.01, BN minus plain, mean over "
        f"seeds (per seed {pts(difference)})",
        values=difference,
    )


@pytest.mark.scorecard(
    row="small-lr", column="mnist1d", outcome="does not hold", shows="BN − plain {mean100:+.1f} points"
)
def test_mnist1d_at_learning_rate_0_01_bn_ends_less_than_5_points_behind(request, grids):
    behind_at_small_lr(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="small-lr",
    column="budget",
    benchmark="digits",
    outcome="does not hold",
    shows="BN − plain {mean100:+.1f} points",
)
def test_digits_at_800_steps_bn_ends_less_than_5_points_behind_at_learning_rate_0_01(request, grids):
    behind_at_small_lr(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="small-lr",
    column="budget",
    benchmark="mnist1d",
    outcome="does not hold",
    shows="BN − plain {mean100:+.1f} points",
)
def test_mnist1d_at_800_steps_bn_ends_level_or_ahead_at_learning_rate_0_01(request, grids):
    behind_at_small_lr(request, grids, "mnist1d", 800)


@pytest.mark.scorecard(
    row="smooth", column="mnist1d", outcome="holds", shows="gradient change, BN / plain: {value:.2f}"
)
def test_mnist1d_bn_shrinks_the_gradient_change_along_the_step(request):
    runs = faster_convergence.landscapes(SEEDS, tr.load("mnist1d"))  # on its validation split, split seed 0
    ratio = faster_convergence.landscape_ratio(runs, "gradient_change").per_seed
    verdict(
        request,
        float(np.median(ratio)),
        "<=",
        0.5,
        "MNIST-1D, lr 0.1, 200 steps: median over seeds of BN's / the plain network's gradient change along the step",
        values=ratio,
    )
    loss = faster_convergence.landscape_ratio(runs, "loss_range").per_seed
    cc.compare(float(np.median(loss)), "<", 1.0, "the same for the loss range (BN's smaller too)", values=loss)


# ---------------------------------------------------------------------------------------------
# Chapter 4: the initial weight scale


def scale_sweep(grids, key, steps):
    return grids[key].sweep("init_scale", SCALES, steps)


@pytest.mark.scorecard(
    row="init",
    column="mnist1d",
    outcome="does not hold",
    shows="BN at 10× He: median {value100:.0f}% (trains: {threshold100:.0f}%)",
)
def test_mnist1d_bn_does_not_train_at_scale_10_within_200_steps(request, grids):
    sweep = scale_sweep(grids, "mnist1d", 200)
    at_10 = sweep.final("batch")[SCALES.index(10.0)]
    verdict(
        request,
        float(np.median(at_10)),
        ">=",
        sweep.min_accuracy,
        "MNIST-1D, 200 steps: BN at 10x the He scale, median final validation accuracy (BN trains at every scale)",
        values=at_10,
    )
    cc.compare(len(sweep.stable_values("none")), "<=", 1, f"plain network trains at {sweep.stable_values('none')}")


@pytest.mark.scorecard(
    row="init",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="BN's worst seed over scales 0.1–10: {value100:.0f}%",
)
def test_digits_at_800_steps_bn_trains_at_every_scale_and_the_plain_network_only_at_he(request, grids):
    sweep = scale_sweep(grids, "digits", 800)
    worst = np.nanmin(np.nan_to_num(sweep.final("batch"), nan=0.0))
    verdict(request, float(worst), ">=", sweep.min_accuracy, "digits, 800 steps: BN, worst seed over scales 0.1-10")
    cc.compare(len(sweep.stable_values("none")), "<=", 1, f"plain network trains at {sweep.stable_values('none')}")


@pytest.mark.scorecard(
    row="init",
    column="budget",
    benchmark="mnist1d",
    outcome="does not hold",
    shows="BN at 10× He: median {value100:.0f}% (trains: {threshold100:.0f}%)",
)
def test_mnist1d_at_800_steps_bn_still_does_not_train_at_scale_10(request, grids):
    sweep = scale_sweep(grids, "mnist1d", 800)
    at_10 = sweep.final("batch")[SCALES.index(10.0)]
    verdict(
        request,
        float(np.median(at_10)),
        ">=",
        sweep.min_accuracy,
        "MNIST-1D, 800 steps: BN at 10x the He scale, median final validation accuracy (BN trains at every scale)",
        values=at_10,
    )


def slower_at_10(request, grids, key, steps):
    sweep = scale_sweep(grids, key, steps)
    at_1, at_10 = (sweep.final("batch")[SCALES.index(s)] for s in (1.0, 10.0))
    verdict(
        request,
        float(np.median(at_1) - np.median(at_10)),
        ">",
        15 * POINT,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: BN's median final validation accuracy, scale 1 minus scale 10",
        values=at_1 - at_10,
    )


@pytest.mark.scorecard(
    row="init-cost", column="mnist1d", outcome="holds", shows="scale 1 minus scale 10: {value100:.0f} points"
)
def test_mnist1d_bn_learns_slower_at_large_scales(request, grids):
    slower_at_10(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="init-cost",
    column="budget",
    benchmark="digits",
    outcome="does not hold",
    shows="scale 1 minus scale 10: {value100:.0f} points",
)
def test_digits_at_800_steps_the_cost_of_scale_10_falls_below_15_points(request, grids):
    slower_at_10(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="init-cost",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="scale 1 minus scale 10: {value100:.0f} points",
)
def test_mnist1d_at_800_steps_bn_still_learns_slower_at_large_scales(request, grids):
    slower_at_10(request, grids, "mnist1d", 800)


# ---------------------------------------------------------------------------------------------
# Chapters 5 and 6: depth


def depth_sweep(grids, key, steps):
    return grids[key].sweep("depth", DEPTHS, steps)


def deeper(request, grids, key, steps):
    sweep = depth_sweep(grids, key, steps)
    deepest = {norm: max(sweep.stable_values(norm), default=0) for norm in ("none", "batch")}
    verdict(
        request,
        deepest["batch"],
        ">",
        deepest["none"],
        f"{tr.BENCHMARKS[key].name}, {steps} steps: deepest of {DEPTHS} at which every seed trains, BN against plain",
    )


@pytest.mark.scorecard(
    row="depth",
    column="mnist1d",
    outcome="holds",
    shows="deepest at which every seed trains: BN {value:.0f}, plain {threshold:.0f} (0: none)",
)
def test_mnist1d_bn_trains_deeper_than_the_plain_network(request, grids):
    deeper(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="depth",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="deepest at which every seed trains: BN {value:.0f}, plain {threshold:.0f} (0: none)",
)
def test_digits_at_800_steps_bn_still_trains_deeper(request, grids):
    deeper(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="depth",
    column="budget",
    benchmark="mnist1d",
    outcome="not settled",
    shows="the plain network at depth 20 ends {mean100:+.1f} points from the 40% line; BN trains every seed",
)
def test_mnist1d_at_800_steps_the_plain_network_at_depth_20_sits_on_the_line(request, grids):
    """BN trains every seed at depth 20 by step 800; whether the plain network does too, and so whether
    BN still trains deeper, is decided by the seeds: its mean at depth 20 is within 5 points of the line,
    with seeds on both sides of it in the runs we made."""
    assert outcome_of(request) == "not settled"
    sweep = depth_sweep(grids, "mnist1d", 800)
    plain = np.nan_to_num(sweep.final("none")[DEPTHS.index(20)], nan=0.0)
    cc.compare(
        abs(float(np.mean(plain)) - sweep.min_accuracy),
        "<",
        5 * POINT,
        "MNIST-1D, 800 steps: the plain network at depth 20, |mean final validation accuracy - the 40% line| "
        "[not settled]",
        values=plain - sweep.min_accuracy,
    )
    cc.every(sweep.final("batch")[DEPTHS.index(20)], ">=", sweep.min_accuracy, "MNIST-1D, 800 steps: BN at depth 20")


def at_depth_40(request, grids, key, steps):
    sweep = depth_sweep(grids, key, steps)
    medians = {norm: float(np.nanmedian(np.nan_to_num(sweep.final(norm)[-1], nan=0.0))) for norm in sweep.norms}
    verdict(
        request,
        max(medians.values()),
        "<",
        sweep.min_accuracy,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: the higher median final validation accuracy at depth 40 "
        f"(plain {medians['none']:.3f}, BN {medians['batch']:.3f})",
        values=np.nan_to_num(sweep.final("batch")[-1], nan=0.0),
    )


@pytest.mark.scorecard(
    row="depth-40",
    column="mnist1d",
    outcome="holds",
    shows="higher median at depth 40: {value100:.0f}% (trains: {threshold100:.0f}%)",
)
def test_mnist1d_neither_network_trains_at_depth_40(request, grids):
    at_depth_40(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="depth-40",
    column="budget",
    benchmark="digits",
    outcome="does not hold",
    shows="higher median at depth 40: {value100:.0f}% (trains: {threshold100:.0f}%)",
)
def test_digits_at_800_steps_bn_trains_at_depth_40(request, grids):
    at_depth_40(request, grids, "digits", 800)


@pytest.mark.scorecard(
    row="depth-40",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="higher median at depth 40: {value100:.0f}% (trains: {threshold100:.0f}%)",
)
def test_mnist1d_at_800_steps_neither_network_trains_at_depth_40(request, grids):
    at_depth_40(request, grids, "mnist1d", 800)


@pytest.mark.scorecard(
    row="explode",
    column="mnist1d",
    outcome="holds",
    shows="growth per layer within {value100:.1f}% of √(π/(π−1)) = 1.21",
)
def test_mnist1d_bn_gradients_explode_at_the_mean_field_rate(request):
    data = tr.load("mnist1d")
    bn = gf.gradient_growth(gf.at_init(data, "batch", SEEDS))  # chapter 5's quantity, on MNIST-1D
    plain = gf.gradient_growth(gf.at_init(data, "none", SEEDS))
    verdict(
        request,
        abs(float(np.median(bn)) / RELU_BN_GRADIENT_GROWTH - 1),
        "<",
        0.05,
        f"MNIST-1D, depth 40 at initialisation: |BN's median gradient growth per layer / "
        f"{RELU_BN_GRADIENT_GROWTH:.3f} - 1|",
        values=bn / RELU_BN_GRADIENT_GROWTH - 1,
    )
    cc.every(np.abs(plain - 1), "<", 0.1, "plain network's gradient growth per layer, |growth - 1| per seed")


PLAIN_BN_40, RESIDUAL_BN_40 = tr.MLPConfig("batch", depth=40), tr.MLPConfig("batch", depth=40, residual=True)


def residual_trains(request, grids, key, steps):
    grid = grids[key]
    plain = np.nan_to_num(grid.final_test(PLAIN_BN_40, steps), nan=0.0)
    residual_bn = grid.final_test(RESIDUAL_BN_40, steps)
    verdict(
        request,
        float(np.median(plain)),
        "<",
        grid.benchmark.trains_at,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: the plain BN stack at depth 40, median final test accuracy "
        f"(residual BN's {np.median(residual_bn):.3f})",
        values=plain,
    )
    cc.every(
        residual_bn,
        ">=",
        grid.benchmark.trains_at,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: residual BN at depth 40, final test accuracy per seed",
    )


@pytest.mark.scorecard(
    row="residual",
    column="mnist1d",
    outcome="holds",
    shows="plain BN stack, median {value100:.0f}%; residual BN trains every seed",
)
def test_mnist1d_residual_bn_trains_where_the_plain_bn_stack_fails(request, grids):
    residual_trains(request, grids, "mnist1d", 200)


@pytest.mark.scorecard(
    row="residual",
    column="budget",
    benchmark="digits",
    outcome="not settled",
    shows="plain BN stack {mean100:.0f}% ({low100:.0f}–{high100:.0f}%), on the 50% line; residual BN trains",
)
def test_digits_at_800_steps_five_seeds_cannot_tell_whether_the_plain_bn_stack_trains_at_depth_40(request, grids):
    """Residual BN still trains every seed; the plain BN stack, which failed at 200 steps, has climbed to
    the line: 5 seeds cannot tell on which side of it it ends."""
    grid = grids["digits"]
    plain = Estimate(tuple(float(v) for v in np.nan_to_num(grid.final_test(PLAIN_BN_40, 800), nan=0.0)))
    line = grid.benchmark.trains_at
    not_settled(request, plain, line, "digits, 800 steps: the plain BN stack at depth 40, test accuracy")
    cc.every(grid.final_test(RESIDUAL_BN_40, 800), ">=", line, "digits, 800 steps: residual BN at depth 40")


@pytest.mark.scorecard(
    row="residual",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="plain BN stack, median {value100:.0f}%; residual BN trains every seed",
)
def test_mnist1d_at_800_steps_residual_bn_still_trains_where_the_plain_bn_stack_fails(request, grids):
    residual_trains(request, grids, "mnist1d", 800)


# ---------------------------------------------------------------------------------------------
# Chapter 2: internal covariate shift, the BN paper's Figure 1 network


def steps_to(runs, target, steps):
    """Per seed, the steps to ``target`` test accuracy within the first ``steps`` (inf: never)."""
    return np.array(
        [np.inf if (s := tr.truncate_history(h, steps).steps_to(target)) is None else s for h in runs], dtype=float
    )


@pytest.mark.scorecard(row="ics", column="mnist1d", outcome="holds", shows="drift, BN / plain: {value:.2f}")
def test_mnist1d_bn_layer_inputs_drift_less(request):
    data = tr.load("mnist1d")
    runs = {
        norm: [covariate_shift_run(norm, data, seed=seed, steps=600, ics_every=None) for seed in SEEDS]
        for norm in ("none", "batch")
    }
    drift = ics.median_ratio(ics.drifts(runs["batch"]), ics.drifts(runs["none"]))  # chapter 2's quantity
    verdict(
        request,
        drift.ratio,
        "<",
        0.75,
        "MNIST-1D, 600 steps: median drift of the last hidden layer's inputs, BN / plain",
        values=drift.per_seed,
    )


def figure1(request, speed, key, steps, target):
    runs = speed[key]
    plain, bn = (float(np.median(steps_to(runs[norm], target, steps))) for norm in ("none", "batch"))
    verdict(
        request,
        bn,
        "<=",
        plain / 4,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: median steps to {target:.0%} test accuracy, BN against a quarter "
        f"of plain's ({plain:g}; inf: never)",
        values=steps_to(runs["batch"], target, steps),
    )


@pytest.mark.scorecard(
    row="figure1",
    column="mnist1d",
    outcome="holds",
    shows="BN {value:.0f} steps to the target, a quarter of the plain network's: {threshold:.0f}",
)
def test_mnist1d_bn_reaches_the_target_in_at_most_a_quarter_of_the_steps(request, speed):
    figure1(request, speed, "mnist1d", 600, tr.BENCHMARKS["mnist1d"].target)


@pytest.mark.scorecard(
    row="figure1",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="BN {value:.0f} steps to the target, a quarter of the plain network's: {threshold:.0f}",
)
def test_digits_at_2400_steps_bn_still_reaches_90_percent_in_a_quarter_of_the_steps(request, speed):
    """Steps to a target do not depend on anything after it is reached: every run reaches 90% within
    the chapter's 600 steps, so 2,400 steps give the same steps to 90%, and the same verdict."""
    figure1(request, speed, "digits", 600, 0.9)
    every_run = np.concatenate([steps_to(speed["digits"][n], 0.9, 600) for n in ("none", "batch", "batch_noisy")])
    cc.every(every_run, "<=", 600, "digits: steps to 90% test accuracy of every run (all three networks)")


@pytest.mark.scorecard(
    row="figure1",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="BN {value:.0f} steps to the target, a quarter of the plain network's: {threshold:.0f}",
)
def test_mnist1d_at_2400_steps_bn_still_reaches_the_target_in_a_quarter_of_the_steps(request, speed):
    figure1(request, speed, "mnist1d", 2400, tr.BENCHMARKS["mnist1d"].target)


def noisy_as_fast(request, speed, key, steps, target):
    runs = speed[key]
    bn, noisy = (float(np.median(steps_to(runs[norm], target, steps))) for norm in ("batch", "batch_noisy"))
    verdict(
        request,
        noisy,
        "<=",
        2 * bn,
        f"{tr.BENCHMARKS[key].name}, {steps} steps: median steps to {target:.0%} test accuracy, noisy BN against "
        f"twice BN's ({bn:g}; inf: never)",
        values=steps_to(runs["batch_noisy"], target, steps),
    )


@pytest.mark.scorecard(
    row="noisy",
    column="mnist1d",
    outcome="not settled",
    shows="noisy BN's median seed reaches the target at step {value:.0f}, after the {threshold:.0f}; twice BN's too",
)
def test_mnist1d_600_steps_cannot_decide_whether_noisy_bn_trains_about_as_fast_as_bn(request, speed):
    """Within the chapter's 600 steps the comparison cannot be made on MNIST-1D: noisy BN's median seed
    reaches 40% only after step 600, and twice BN's median steps lie beyond step 600 too, so 600 steps
    can see neither side of "at most twice BN's steps" (the 2,400-step test decides it). Both medians
    are read off the 2,400-step runs: steps to a target do not depend on anything after it is reached.
    (A count of seeds that have not reached 40% by step 600 was asserted before; on seeds 5-9 one seed
    reached it exactly at step 600, so the median is what the sentence says.)"""
    assert outcome_of(request) == "not settled"
    target = tr.BENCHMARKS["mnist1d"].target
    bn, noisy = (steps_to(speed["mnist1d"][norm], target, 2400) for norm in ("batch", "batch_noisy"))
    cc.median(
        noisy,
        ">",
        600,
        "MNIST-1D: noisy BN's median steps to 40% (2,400-step runs) against the chapter's 600 steps [not settled]",
    )
    cc.median(
        2 * bn,
        ">",
        600,
        "MNIST-1D: twice BN's median steps to 40% (2,400-step runs) against the chapter's 600 steps [not settled]",
    )


@pytest.mark.scorecard(
    row="noisy",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="noisy BN {value:.0f} steps to the target, twice BN's: {threshold:.0f}",
)
def test_digits_at_2400_steps_noisy_bn_still_trains_about_as_fast_as_bn(request, speed):
    """As for Figure 1: every run reaches 90% within 600 steps (checked there), so 2,400 change nothing."""
    noisy_as_fast(request, speed, "digits", 600, 0.9)
    every_run = np.concatenate([steps_to(speed["digits"][n], 0.9, 600) for n in ("batch", "batch_noisy")])
    cc.every(every_run, "<=", 600, "digits: steps to 90% test accuracy, BN and noisy BN")


@pytest.mark.scorecard(
    row="noisy",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="noisy BN {value:.0f} steps to the target, twice BN's: {threshold:.0f}",
)
def test_mnist1d_at_2400_steps_noisy_bn_trains_about_as_fast_as_bn(request, speed):
    noisy_as_fast(request, speed, "mnist1d", 2400, tr.BENCHMARKS["mnist1d"].target)


# ---------------------------------------------------------------------------------------------
# Chapter 7: regularization noise


@pytest.fixture(scope="module")
def study():
    data = tr.load("mnist1d")
    steps = 40 * (len(data.x_train) // 128)
    return regularization_study(data, seeds=SEEDS, eval_every=steps)


@pytest.mark.scorecard(
    row="regularize",
    column="mnist1d",
    outcome="holds",
    shows="gap {mean100:.0f} points smaller (95% interval from {value100:.0f})",
)
def test_mnist1d_ghost_batches_leave_a_smaller_gap_by_giving_up_training_accuracy(request, study):
    gap = study.difference(FULL, GHOST, "gap")
    verdict(
        request,
        gap.interval[0],
        ">",
        0.0,
        f"MNIST-1D: generalization gap with the whole batch minus with ghost batches of 8, lower end of the 95% "
        f"interval ({gap.format_interval()} points)",
        values=gap.values,
    )
    train = study.difference(FULL, GHOST, "train_acc")
    cc.compare(train.mean, ">=", 0.5 * gap.mean, "training accuracy given up: at least half of the smaller gap")


@pytest.mark.scorecard(
    row="small-effect",
    column="mnist1d",
    outcome="does not hold",
    shows="BN (batch 128) {mean100:+.1f} points above the plain network ({low100:+.1f} to {high100:+.1f})",
)
def test_mnist1d_bn_with_the_whole_batch_tests_more_than_a_point_above_the_plain_network(request, study):
    """The chapter's test: every network's mean test accuracy within 1.25 points of the plain network's."""
    differences = {label: study.difference(label, PLAIN) for label in study.histories if label != PLAIN}
    largest = max(differences, key=lambda label: abs(differences[label].mean))
    verdict(
        request,
        abs(differences[largest].mean),
        "<=",
        1.25 * POINT,
        f"MNIST-1D: the largest |mean test accuracy minus the plain network's|, {study.label(largest)} "
        f"({differences[largest].format_interval()} points)",
        values=differences[largest].values,
    )


def bn_alone(request, small, key, steps):
    """BN alone, on 256 examples: its test accuracy minus the plain network's, mean over seeds, against
    2 points (the chapter: not measurably different on the digits)."""
    difference = tr.regularization_at(small[key], steps).difference(config_name("bn"), config_name("plain"))
    verdict(
        request,
        difference.mean,
        "<",
        2 * POINT,
        f"{tr.BENCHMARKS[key].name}, 256 examples, {steps // 8} epochs: test accuracy, BN minus plain, mean over "
        f"seeds ({difference.format_interval()} points)",
        values=difference.values,
    )


@pytest.mark.scorecard(
    row="bn-alone",
    column="mnist1d",
    outcome="does not hold",
    shows="BN − plain {mean100:+.1f} points ({low100:+.1f} to {high100:+.1f})",
)
def test_mnist1d_with_256_examples_bn_alone_raises_test_accuracy(request, small):
    bn_alone(request, small, "mnist1d", SMALL_STEPS)


@pytest.mark.scorecard(
    row="bn-alone",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="BN − plain {mean100:+.1f} points ({low100:+.1f} to {high100:+.1f})",
)
def test_digits_at_160_epochs_bn_alone_still_raises_test_accuracy_by_less_than_2_points(request, small):
    bn_alone(request, small, "digits", 4 * SMALL_STEPS)


@pytest.mark.scorecard(
    row="bn-alone",
    column="budget",
    benchmark="mnist1d",
    outcome="does not hold",
    shows="BN − plain {mean100:+.1f} points ({low100:+.1f} to {high100:+.1f})",
)
def test_mnist1d_at_160_epochs_bn_alone_still_raises_test_accuracy(request, small):
    bn_alone(request, small, "mnist1d", 4 * SMALL_STEPS)


def explicit_gains(small, key, steps):
    result = tr.regularization_at(small[key], steps)
    bn = config_name("bn")
    return {REGULARIZER_LABELS[reg]: result.difference(config_name("bn", reg), bn) for reg in REGULARIZERS}


@pytest.mark.scorecard(
    row="explicit",
    column="mnist1d",
    outcome="does not hold",
    shows="L2 {mean100:+.1f} points (95% interval from {value100:+.1f})",
)
def test_mnist1d_with_the_digits_strength_l2_does_not_raise_bn_test_accuracy(request, small):
    gains = explicit_gains(small, "mnist1d", SMALL_STEPS)
    verdict(
        request,
        gains["L2"].interval[0],
        ">",
        0.0,
        f"MNIST-1D, 256 examples, 40 epochs: BN + L2 (weight decay {WEIGHT_DECAY}) minus BN, test accuracy, lower "
        f"end of the 95% interval ({gains['L2'].format_interval()} points; dropout: "
        f"{gains['dropout'].format_interval()})",
        values=gains["L2"].values,
    )


@pytest.mark.scorecard(
    row="explicit",
    column="budget",
    benchmark="digits",
    outcome="not settled",
    shows="L2 {mean100:+.1f} points ({low100:+.1f} to {high100:+.1f})",
)
def test_digits_at_160_epochs_five_seeds_cannot_tell_whether_l2_still_helps_bn(request, small):
    gains = explicit_gains(small, "digits", 4 * SMALL_STEPS)
    not_settled(request, gains["L2"], 0.0, "digits, 256 examples, 160 epochs: BN + L2 minus BN")


@pytest.mark.scorecard(
    row="explicit",
    column="budget",
    benchmark="mnist1d",
    outcome="not settled",
    shows="L2 {mean100:+.1f} points ({low100:+.1f} to {high100:+.1f})",
)
def test_mnist1d_at_160_epochs_five_seeds_cannot_tell_whether_l2_helps_bn(request, small):
    gains = explicit_gains(small, "mnist1d", 4 * SMALL_STEPS)
    not_settled(request, gains["L2"], 0.0, "MNIST-1D, 256 examples, 160 epochs: BN + L2 minus BN")


# ---------------------------------------------------------------------------------------------
# Chapter 8: batch size


def collapse(request, fully_connected, key, epochs):
    """BN at batch 2 loses more than a quarter of its accuracy above chance (10%) at batch 32: the
    chapter's 20 points on the digits, where BN is 86 points above chance, in a form that carries over
    to a benchmark with a lower ceiling."""
    sweep = fully_connected[key, epochs]
    at_2, at_32 = sweep.values("batch", 2), sweep.values("batch", 32)
    lost = chapter.share_above_chance_lost(sweep)
    verdict(
        request,
        float(np.mean(lost)),
        ">",
        0.25,
        f"{tr.BENCHMARKS[key].name}, {epochs} epochs: fully connected BN, share of its accuracy above chance at "
        f"batch 32 lost at batch 2 (batch 2 {pts(at_2)}, batch 32 {pts(at_32)})",
        values=lost,
    )


@pytest.mark.scorecard(
    row="fc-batch", column="mnist1d", outcome="holds", shows="BN loses {value100:.0f}% of its accuracy above chance"
)
def test_mnist1d_fully_connected_bn_collapses_at_batch_2(request, fully_connected):
    collapse(request, fully_connected, "mnist1d", 10)


@pytest.mark.scorecard(
    row="fc-batch",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="BN loses {value100:.0f}% of its accuracy above chance",
)
def test_digits_at_40_epochs_fully_connected_bn_still_collapses_at_batch_2(request, fully_connected):
    collapse(request, fully_connected, "digits", 40)


@pytest.mark.scorecard(
    row="fc-batch",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="BN loses {value100:.0f}% of its accuracy above chance",
)
def test_mnist1d_at_40_epochs_fully_connected_bn_still_collapses_at_batch_2(request, fully_connected):
    collapse(request, fully_connected, "mnist1d", 40)


def layer_norm_holds(request, fully_connected, key, epochs):
    sweep = fully_connected[key, epochs]
    change = sweep.change("layer", 32, 2)
    verdict(
        request,
        abs(change.mean),
        "<",
        2 * POINT,
        f"{tr.BENCHMARKS[key].name}, {epochs} epochs: fully connected layer norm, |mean change from batch 32 to 2| "
        f"({change.format_interval()} points)",
        values=change.values,
    )
    lead = sweep.values("layer", 2) - sweep.values("batch", 2)
    cc.compare(float(np.mean(lead)), ">", 10 * POINT, "layer norm minus BN at batch 2, mean over seeds", values=lead)


@pytest.mark.scorecard(
    row="ln",
    column="mnist1d",
    outcome="not settled",
    shows="layer norm changes by {mean100:+.1f} points ({low100:+.1f} to {high100:+.1f}); BN loses far more",
)
def test_mnist1d_five_seeds_cannot_tell_whether_layer_norm_loses_2_points_at_batch_2(request, fully_connected):
    """Layer norm at batch 2 ends a point or two below batch 32 at 10 epochs: within the chapter's 2
    points or not, 5 seeds cannot tell; it is far above BN at batch 2 either way."""
    sweep = fully_connected["mnist1d", 10]
    not_settled(
        request,
        sweep.change("layer", 32, 2),
        -2 * POINT,
        "MNIST-1D, 10 epochs: fully connected layer norm, batch 2 minus batch 32",
    )
    lead = sweep.values("layer", 2) - sweep.values("batch", 2)
    cc.compare(float(np.mean(lead)), ">", 5 * POINT, "layer norm minus BN at batch 2, mean over seeds", values=lead)


@pytest.mark.scorecard(
    row="ln", column="budget", benchmark="digits", outcome="holds", shows="layer norm changes by {mean100:+.1f} points"
)
def test_digits_at_40_epochs_layer_norm_still_holds_at_batch_2(request, fully_connected):
    layer_norm_holds(request, fully_connected, "digits", 40)


@pytest.mark.scorecard(
    row="ln", column="budget", benchmark="mnist1d", outcome="holds", shows="layer norm changes by {mean100:+.1f} points"
)
def test_mnist1d_at_40_epochs_layer_norm_still_holds_at_batch_2(request, fully_connected):
    layer_norm_holds(request, fully_connected, "mnist1d", 40)


def conv_change(conv, key, epochs, metric="eval_acc"):
    return conv[key, epochs].change("batch", 32, 2, metric)


WU_AND_HE = 11 * POINT  # ResNet-50 at 2 images per GPU against 32: 23.6% -> 34.7% top-1 error (chapter 8)


@pytest.mark.scorecard(
    row="conv-batch",
    column="mnist1d",
    outcome="holds",
    shows="median seed, batch 2 − 32: {value100:+.1f} points (Wu & He: −11)",
)
def test_mnist1d_the_median_conv_bn_seed_does_not_lose_wu_and_hes_11_points_at_batch_2(request, conv):
    """The chapter's claim, that batch 2 does not cost what it cost Wu & He's ResNet-50, for the 1-D conv
    net after the chapter's 10 epochs: the median seed's batch 2 minus batch 32 (running statistics
    recomputed) is above -11 points. The chapter's own form, the 95% seed interval, does not settle it
    here: one seed in five lost 11 points or about that on each of our seed sets, and the interval's
    lower end fell on either side of -11 (-11.8 on seeds 0-4, -9.5 on seeds 5-9); the median did not."""
    change = conv_change(conv, "mnist1d", 10, "recomputed_acc")
    verdict(
        request,
        float(np.median(change.values)),
        ">",
        -WU_AND_HE,
        f"MNIST-1D, 10 epochs: 1-D conv net, BN (running statistics recomputed), batch 2 minus batch 32, median "
        f"seed ({change.format_interval()} points)",
        values=change.values,
    )


def no_wu_and_he_loss(request, conv, key, epochs):
    change = conv_change(conv, key, epochs, "recomputed_acc")
    verdict(
        request,
        change.interval[0],
        ">",
        -WU_AND_HE,
        f"{tr.BENCHMARKS[key].name}, {epochs} epochs: conv net, BN (running statistics recomputed), batch 2 minus "
        f"batch 32, lower end of the 95% seed interval ({change.format_interval()} points)",
        values=change.values,
    )


@pytest.mark.scorecard(
    row="conv-batch",
    column="budget",
    benchmark="digits",
    outcome="holds",
    shows="batch 2 − 32: {mean100:+.1f} points (95% interval from {value100:+.1f})",
)
def test_digits_at_40_epochs_conv_bn_at_batch_2_still_does_not_lose_wu_and_hes_11_points(request, conv):
    no_wu_and_he_loss(request, conv, "digits", 40)


@pytest.mark.scorecard(
    row="conv-batch",
    column="budget",
    benchmark="mnist1d",
    outcome="holds",
    shows="batch 2 − 32: {mean100:+.1f} points (95% interval from {value100:+.1f})",
)
def test_mnist1d_at_40_epochs_conv_bn_at_batch_2_does_not_lose_wu_and_hes_11_points(request, conv):
    no_wu_and_he_loss(request, conv, "mnist1d", 40)
