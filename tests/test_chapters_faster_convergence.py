"""bn_utils.chapters.faster_convergence on hand-built sweeps and landscape runs: each claim quantity
reads the learning rate, the target, the network and the checkpoints it names (a swapped pair, the
wrong learning rate's row or step 0 kept would change a number asserted here)."""

import math

import numpy as np
import pytest
from landscape_probes import probe

import bn_utils as bu
from bn_utils.chapters import faster_convergence as chapter
from bn_utils.experiments.landscape import LandscapeRun
from bn_utils.history import Sweep

pytestmark = pytest.mark.unit

NEVER = None


def run(at_90, at_95, *, final=None, loss=1.0, diverged_at=None):
    """A made-up run evaluated every 10 steps to step 200: 60% validation accuracy, 90% from step
    ``at_90``, 95% from step ``at_95`` (None: never); ``final`` replaces the last evaluation."""
    steps = range(0, 201, 10)
    acc = [
        0.95 if at_95 is not None and s >= at_95 else 0.9 if at_90 is not None and s >= at_90 else 0.6 for s in steps
    ]
    if final is not None:
        acc[-1] = final
    return bu.History(
        loss=[loss] * (200 if diverged_at is None else diverged_at),
        eval_steps=list(steps),
        test_acc=acc,
        test_loss=[1.0] * len(acc),
        steps_per_epoch=10,
        diverged_at=diverged_at,
    )


LRS = (0.01, 0.1, 0.3)


@pytest.fixture
def sweep():
    """Plain: best at 0.1 (95% after 150-170 steps), diverges at 0.3. BN: best at 0.3 (95% after 60-70),
    at 0.1 one seed never reaches 95%. Each (lr, norm) has its own training loss and test accuracy, so
    that reading the wrong row shows."""
    histories = {
        "none": [
            [run(150, NEVER, loss=0.5), run(160, NEVER, loss=0.5), run(170, NEVER, loss=0.5)],
            [run(90, 150, loss=0.01), run(90, 160, loss=0.01), run(100, 170, loss=0.02)],
            [run(NEVER, NEVER, diverged_at=5), run(20, 40), run(20, 40)],
        ],
        "batch": [
            [run(NEVER, NEVER, loss=0.8), run(NEVER, NEVER, loss=0.8), run(NEVER, NEVER, loss=0.8)],
            [run(60, 150, loss=0.07), run(50, NEVER, loss=0.07), run(80, 80, loss=0.07)],
            [run(30, 60, loss=0.1), run(30, 60, loss=0.1), run(40, 70, loss=0.2)],
        ],
    }
    examples = 200
    correct = {norm: np.zeros((len(LRS), 3, examples), dtype=bool) for norm in histories}
    correct["none"][1, :, :160] = True  # plain at its best lr: 80% of the test set, per seed
    correct["batch"][2, :, :180] = True  # BN at its best lr: the same examples and 20 more (90%)
    correct["batch"][1, :, :100] = True  # BN at 0.1 (not its best): 50%
    final_test = {norm: correct[norm].mean(axis=2) for norm in histories}
    final_test["none"][1] = [0.80, 0.82, 0.78]
    final_test["batch"][2] = [0.90, 0.93, 0.86]
    return Sweep(
        "lr",
        LRS,
        (0, 1, 2),
        histories,
        selected_on="validation",
        final_test=final_test,
        final_correct=correct,
    )


def test_the_fixture_selects_what_it_says(sweep):
    assert (sweep.best("none"), sweep.best("batch")) == (0.1, 0.3)


def test_steps_at_the_equal_learning_rate_compare_seed_by_seed(sweep):
    to_90 = chapter.steps_at_equal_lr(sweep, 0.9)
    assert to_90.plain.tolist() == [90, 90, 100] and to_90.bn.tolist() == [60, 50, 80]
    assert (to_90.bn_below, to_90.bn_above) == (3, 0)
    to_95 = chapter.steps_at_equal_lr(sweep, 0.95)
    assert to_95.plain.tolist() == [150, 160, 170] and to_95.bn.tolist() == [150, np.inf, 80]
    assert (to_95.bn_below, to_95.bn_above) == (1, 1)  # a tie counts as neither
    assert chapter.steps_at_equal_lr(sweep, 0.9, lr=0.01).plain.tolist() == [150, 160, 170]


def test_the_speedup_split_goes_plain_then_bn_at_the_equal_lr_then_bn_at_its_best(sweep):
    split = chapter.speedup_split(sweep, 0.95)
    assert split.medians == (160, 150, 60)
    assert split.bn_best_per_seed.tolist() == [60, 60, 70]
    assert split.equal_lr_share == pytest.approx((160 - 150) / (160 - 60))
    assert split.best_over_plain == pytest.approx(60 / 160)
    at_90 = chapter.speedup_split(sweep, 0.9)
    assert at_90.medians == (90, 60, 30)
    assert at_90.plain_equal_per_seed.tolist() == [90, 90, 100] and at_90.bn_equal_per_seed.tolist() == [60, 50, 80]
    assert at_90.equal_lr_speedup == pytest.approx(1.5)


def test_a_median_that_never_reached_the_target_counts_as_step_210():
    never = np.array([np.inf])
    split = chapter.SpeedupSplit(0.95, np.inf, 150.0, 60.0, never, never, never)
    assert split.equal_lr_share == pytest.approx((210 - 150) / (210 - 60))
    assert split.best_over_plain == pytest.approx(60 / 210)


def test_steps_at_best_take_each_network_at_its_own_best_lr(sweep):
    at_best = chapter.steps_at_best(sweep)
    assert (at_best.plain, at_best.bn) == (160, 60)
    assert at_best.ratio == pytest.approx(60 / 160) and at_best.speedup == pytest.approx(160 / 60)
    assert at_best.per_seed_ratio == pytest.approx([60 / 150, 60 / 160, 70 / 170])
    assert chapter.best_lr_ratio(sweep) == pytest.approx(3)


def test_final_values_at_an_lr_and_at_each_best(sweep):
    loss = chapter.final_values(sweep, "loss")  # each at its best: plain 0.1, BN 0.3
    assert loss.plain == pytest.approx([0.01, 0.01, 0.02]) and loss.bn == pytest.approx([0.1, 0.1, 0.2])
    assert loss.plain_over_bn == pytest.approx(0.1)
    small = chapter.final_values(sweep, lr=0.01)
    assert small.plain.tolist() == [0.9, 0.9, 0.9] and small.bn.tolist() == [0.6, 0.6, 0.6]
    assert small.median_difference == pytest.approx(-0.3) and small.difference == pytest.approx([-0.3] * 3)


def test_the_final_test_gap_is_bn_minus_plain_at_the_best_lrs(sweep):
    gap = chapter.final_test_gap(sweep)
    assert gap.accuracy.plain.tolist() == [0.80, 0.82, 0.78] and gap.accuracy.bn.tolist() == [0.90, 0.93, 0.86]
    assert gap.seeds.values == pytest.approx((0.10, 0.11, 0.08))
    low, high = gap.test_set_interval
    assert 0 < low <= 0.1 <= high  # BN got 20 more of 200 right on every seed: 10 points


def landscape(scale):
    """Two seeds probed at steps 0, 100 and 200; step 0 is far off so that keeping it shows. ``scale``
    multiplies the loss range and the gradient change (the gradient norms stay)."""
    seeds = [
        [probe(100, 1, 100), probe(4 * scale, 2, 8 * scale), probe(2 * scale, 1, 2 * scale)],
        [probe(100, 1, 100), probe(8 * scale, 2, 4 * scale), probe(4 * scale, 1, 4 * scale)],
    ]
    return LandscapeRun("none", [], probe_steps=[0, 100, 200], probes=seeds)


def test_landscape_ratios_are_bn_over_plain():
    runs = {"none": landscape(1.0), "batch": landscape(0.5)}
    loss_range = chapter.landscape_ratio(runs, "loss_range")
    assert loss_range.ratio == pytest.approx(0.5) and loss_range.per_seed == pytest.approx([0.5, 0.5])
    assert chapter.landscape_ratio(runs, "gradient_norm").ratio == pytest.approx(1)
    assert chapter.landscape_ratio(runs, "gradient_change_per_gradient").ratio == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown landscape measure 'gradient'; valid names are: loss_range, "):
        chapter.landscape_ratio(runs, "gradient")  # type: ignore[arg-type]


def test_the_measure_names_are_the_summaries_fields():
    from dataclasses import fields
    from typing import get_args

    from bn_utils.experiments import landscape as ls

    assert ls.LANDSCAPE_MEASURES == (
        "loss_range",
        "gradient_change",
        "beta_smoothness",
        "gradient_norm",
        "loss_range_per_squared_gradient",
        "gradient_change_per_gradient",
    )
    summaries = [f.name for f in (*fields(ls.LandscapeSummary), *fields(ls.GradientScaledSummary))]
    assert sorted(ls.LANDSCAPE_MEASURES) == sorted(summaries)
    assert ls.SCALED_MEASURES == tuple(f.name for f in fields(ls.GradientScaledSummary))
    assert sorted(get_args(ls.StepMeasure)) == sorted(f.name for f in fields(ls.LandscapeAtStep))


def test_beta_phases_split_training_at_step_100():
    runs = {"none": landscape(1.0), "batch": landscape(0.5)}
    runs["batch"].probes[0][2] = probe(1, 1, 4)  # seed 0, step 200: BN's beta at 0.1 is 40, twice plain's 20
    phases = chapter.beta_phases(runs, 0.1)
    # beta at 0.1 = gradient change / (0.1 ||g||): plain step 100 (40, 20), step 200 (20, 40)
    assert phases.early.plain_per_seed == pytest.approx([40, 20]) and phases.late.plain_per_seed == pytest.approx(
        [20, 40]
    )
    assert phases.early.per_seed == pytest.approx([0.5, 0.5]) and phases.late.per_seed == pytest.approx([2, 0.5])
    assert phases.late.ratio == pytest.approx(np.median([40, 20]) / np.median([20, 40]))
    assert phases.seeds_rising == 1 and phases.rise == pytest.approx([4, 1])
    assert phases.relative_rise == pytest.approx(2)  # medians over seeds: late 30 / 30 over early 15 / 30
    # which network moved: the plain network's median beta 30 both times, BN's 15 early and 30 late
    assert phases.plain_change == pytest.approx(1) and phases.bn_change == pytest.approx(2)
    whole = chapter.beta_ratio(runs, 0.1)  # every checkpoint after step 0
    assert whole.bn_per_seed == pytest.approx([30, 15])


def test_the_split_holds_out_a_fifth_of_the_training_digits_the_same_way_each_time():
    digits = bu.load_digits()
    split = chapter.split(digits)
    assert len(split.x_val) == round(0.2 * len(digits.x_train))
    assert len(split.x_train) + len(split.x_val) == len(digits.x_train)
    assert bool((chapter.split().x_val == split.x_val).all())


def test_the_phases_end_at_step_100_and_start_after_it():
    """Checkpoints 20 and 100 are early, 120 and 200 late: beta at 0.1 is 10 x the gradient change here."""
    changes = [100, 1, 2, 4, 8]  # at steps 0, 20, 100, 120, 200

    def one_seed(scale):
        probes = [[probe(1, 1, scale * change) for change in changes]]
        return LandscapeRun("none", [], probe_steps=[0, 20, 100, 120, 200], probes=probes)

    phases = chapter.beta_phases({"none": one_seed(1.0), "batch": one_seed(0.5)})
    assert phases.early.plain_per_seed == pytest.approx([15]) and phases.late.plain_per_seed == pytest.approx([60])
    assert phases.early.ratio == pytest.approx(0.5) and phases.late.ratio == pytest.approx(0.5)


def test_a_learning_rate_off_the_grid_raises_the_grids_error(sweep):
    """Each look-up goes through the sweep's learning-rate axis, which names the rates that exist."""
    for call in (
        lambda: chapter.steps_at_equal_lr(sweep, 0.9, lr=0.5),
        lambda: chapter.final_values(sweep, lr=0.5),
    ):
        with pytest.raises(ValueError, match="learning rate 0.5 is not on the grid; the sweep has: 0.01, 0.1, 0.3"):
            call()


def test_the_stability_limits_bracket_each_networks_limit(sweep):
    limits = chapter.stability_limits(sweep)  # plain: trains at 0.1, a seed diverges at 0.3; BN: trains to 0.3
    assert (limits.plain_stable, limits.plain_onset) == (0.1, 0.3)
    assert (limits.bn_stable, limits.bn_onset) == (0.3, math.inf)  # BN trains up to the end of the grid
    assert limits.ratio_low == pytest.approx(1) and limits.ratio_high == math.inf


def test_the_limits_ratio_runs_from_bn_stable_over_plain_onset_to_bn_onset_over_plain_stable():
    limits = chapter.StabilityLimits(plain_stable=0.1, plain_onset=0.3, bn_stable=1.0, bn_onset=3.0)
    assert limits.ratio_low == pytest.approx(1 / 0.3) and limits.ratio_high == pytest.approx(30)


def test_a_sweep_without_a_stable_plain_learning_rate_has_no_limits(sweep):
    at_03 = Sweep("lr", (0.3,), (0, 1, 2), {norm: rows[2:] for norm, rows in sweep.histories.items()})
    with pytest.raises(ValueError, match="plain stable to None, fails from 0.3; BN stable to 0.3"):
        chapter.stability_limits(at_03)


def test_the_start_ratio_is_bn_over_plain_at_step_0():
    runs = {"none": landscape(1.0), "batch": landscape(0.5)}
    assert chapter.start_ratio(runs, "loss_range") == pytest.approx(1)  # step 0 is the same probe in both
    for seed in runs["batch"].probes:
        seed[0] = probe(50, 4, 25)  # BN at step 0: half the loss range, a quarter of the change, 4x the gradient
    assert chapter.start_ratio(runs, "loss_range") == pytest.approx(0.5)
    assert chapter.start_ratio(runs, "gradient_change") == pytest.approx(0.25)
    assert chapter.start_ratio(runs, "gradient_norm") == pytest.approx(4)
    with pytest.raises(ValueError, match="unknown measure 'gradient_change_per_gradient' at a step; valid names"):
        chapter.start_ratio(runs, "gradient_change_per_gradient")  # type: ignore[arg-type]
