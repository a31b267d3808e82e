"""Headline claims of the chapter "Faster convergence", over the claim seeds, with margins.

Setting: 10 x 100 ReLU MLP, He init, BN (if any) before each ReLU, SGD, batch 64, 200 steps on the
8x8 digits, of which 20% of the training examples are held out as a validation set (split seed 0:
data, the same for every claim seed; ``SEEDS`` are the claim seeds: initial weights and batch
order); learning rates
0.001, 0.003, ..., 10. Every selection (which runs train, the best learning rate, steps to 90% or
95% accuracy, checked every 10 steps) uses validation accuracy; test accuracy is read only for the
selected configurations, at the end. Landscape: the same network trained at learning rate 0.1,
probed every 20 steps on a fixed batch of 256 training examples, at step sizes 0.025 to 0.4.
"""

import claim_checks as cc
import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils.chapters import faster_convergence as chapter

TRAINS = 0.5  # a run trains: it does not diverge and ends at 50% validation accuracy or more (Sweep.min_accuracy)


@pytest.fixture(scope="module")
def sweep(digits):
    return chapter.sweep(SEEDS, digits)  # on the digits' validation split (split seed 0: not a claim seed)


@pytest.fixture(scope="module")
def landscape(digits):
    return chapter.landscapes(SEEDS, digits)


def test_bn_trains_every_seed_where_the_plain_network_already_fails(sweep):
    limits = chapter.stability_limits(sweep)  # raises where the grid does not bound the limits
    bn, onset = limits.bn_stable, limits.plain_onset
    cc.compare(bn, ">", onset, "largest lr at which every BN seed trains, against the plain network's onset")
    at_onset = sweep.axis("lr").index(onset)
    # (some plain seed fails there by the onset's definition; BN's margin at that learning rate:)
    what = "BN, validation accuracy at the plain network's onset lr"
    cc.every(np.nan_to_num(sweep.final("batch")[at_onset]), ">=", TRAINS, what)


def test_bns_best_learning_rate_is_larger_than_the_plain_networks(sweep):
    """The learning rate with the fewest median steps to 95% validation accuracy (among those at which
    every seed trains): BN's is a grid step or more above the plain network's (0.3 or 1 against 0.1
    in our runs)."""
    cc.compare(np.log10(chapter.best_lr_ratio(sweep)), ">", 0, "log10 best lr, BN / plain")


def test_at_their_best_learning_rates_bn_reaches_95_percent_sooner(sweep):
    steps = chapter.steps_at_best(sweep)
    what = f"median steps to {sweep.target:.0%} validation accuracy, BN / plain, each at its best lr"
    cc.compare(steps.ratio, "<=", 0.6, what, values=steps.per_seed_ratio)


def test_at_their_best_learning_rates_bn_ends_with_higher_test_accuracy(sweep):
    """At the best learning rates, BN's median final test accuracy is above the plain network's; the
    difference exceeds the test set's uncertainty (the paired bootstrap interval over the 449 test
    digits excludes zero), while the seeds' 95% interval reaches below one point (over
    seeds 0-4 and 5-9 and three arithmetic paths its lower end lay between -0.6 and -0.1 points:
    whether it exceeds the seeds' uncertainty, 5 seeds do not settle)."""
    gap = chapter.final_test_gap(sweep)
    difference = gap.accuracy.difference
    what = "final test accuracy, BN - plain, each at its best lr"
    cc.compare(gap.accuracy.median_difference, ">", 0, f"{what}, difference of medians", values=difference)
    low, _ = gap.test_set_interval
    cc.compare(low, ">", 0, f"{what}, test-set interval's lower end", values=difference)
    what_seeds = f"{what}, seed interval's lower end (below one point)"
    cc.compare(gap.seeds.interval[0], "<", 0.01, what_seeds, values=difference)


def test_at_equal_learning_rate_bn_reaches_90_percent_sooner(sweep):
    steps = chapter.steps_at_equal_lr(sweep, 0.9)
    most = len(SEEDS) - len(SEEDS) // 5  # 4 of 5
    cc.at_least(
        steps.plain - steps.bn, ">", 0, most, "steps to 90% validation accuracy at lr 0.1, plain - BN (BN sooner)"
    )


def test_to_95_percent_the_equal_learning_rate_gives_bn_no_reliable_lead(sweep):
    """In median steps to 95% validation accuracy, the equal learning rate 0.1 gives BN less than half
    of the saving its own best learning rate gives (on seeds 0-4 BN at 0.1 was 20-30 steps ahead, on
    seeds 5-9 it mostly did not reach 95% within 200 steps), and at its best learning rate BN needs at
    most half the plain network's steps at 0.1."""
    # a median that never reached 95% within the 200 steps counts as the next evaluation, step 210
    split = chapter.speedup_split(sweep, 0.95)
    cc.compare(
        split.equal_lr_share,
        "<",
        0.5,
        "median steps to 95%: the equal lr's saving / the best lr's (both from plain at lr 0.1)",
    )
    cc.compare(split.best_over_plain, "<=", 0.5, "median steps to 95%, BN at its best lr / plain at lr 0.1")


def test_both_the_equal_and_the_larger_learning_rate_save_bn_steps(sweep):
    """To 90% validation accuracy: BN at lr 0.1 needs fewer median steps than the plain network at 0.1,
    and BN at its own best learning rate fewer still."""
    split = chapter.speedup_split(sweep, 0.9)
    plain_01, bn_01, bn_best = split.medians
    per_plain, per_bn, per_best = split.plain_equal_per_seed, split.bn_equal_per_seed, split.bn_best_per_seed
    what = "median steps to 90%"
    cc.compare(plain_01 - bn_01, ">", 0, f"{what}, plain at lr 0.1 - BN at 0.1", values=per_plain - per_bn)
    cc.compare(bn_01 - bn_best, ">", 0, f"{what}, BN at 0.1 - BN at its best lr", values=per_bn - per_best)


def test_neither_extreme_reading_fits(sweep):
    """Not "faster at any learning rate" (behind at 0.01), not "only because of the larger
    learning rate" (sooner to 90% at the equal learning rate 0.1, in medians)."""
    plain_01, bn_01, _ = chapter.speedup_split(sweep, 0.9).medians
    cc.compare(bn_01, "<", plain_01, "median steps to 90% at lr 0.1, BN against plain")
    small = chapter.final_values(sweep, lr=0.01)
    cc.compare(
        small.median_difference,
        "<",
        0,
        "median final validation accuracy at lr 0.01, BN - plain",
        values=small.difference,
    )


def test_at_a_small_equal_learning_rate_bn_ends_behind(sweep):
    """At learning rate 0.01 the BN network ends *behind* the plain one in median validation accuracy."""
    small = chapter.final_values(sweep, lr=0.01)
    cc.compare(
        small.median_difference,
        "<",
        0,
        "median final validation accuracy at lr 0.01, BN - plain",
        values=small.difference,
    )


def test_the_plain_network_ends_with_a_lower_training_loss_than_bns_best(sweep):
    loss = chapter.final_values(sweep, "loss")  # each at its best lr
    what = "median training loss over the last epoch, plain / BN, each at its best lr"
    cc.compare(loss.plain_over_bn, "<=", 0.7, what, values=loss.plain / loss.bn)


def test_bn_shrinks_the_loss_range_and_the_gradient_change_along_the_step(landscape):
    """BN's median gradient change along the step is at most half the plain network's; its median
    loss range is below two thirds of it (0.10 to 0.48 in our runs: not always half or less)."""
    for measure, threshold in (("loss_range", 2 / 3), ("gradient_change", 0.5)):
        ratio = chapter.landscape_ratio(landscape, measure)
        cc.compare(ratio.ratio, "<=", threshold, f"median {measure}, BN / plain", values=ratio.per_seed)


def test_bns_gradient_is_smaller(landscape):
    ratio = chapter.landscape_ratio(landscape, "gradient_norm")
    cc.compare(ratio.ratio, "<=", 0.8, "median gradient norm after step 0, BN / plain", values=ratio.per_seed)


def test_divided_by_the_gradient_only_the_gradient_change_stays_smaller(landscape):
    for name, op, threshold in (
        ("loss_range_per_squared_gradient", ">", 0.5),
        ("gradient_change_per_gradient", "<=", 0.5),
    ):
        ratio = chapter.landscape_ratio(landscape, name)
        cc.compare(ratio.ratio, op, threshold, f"median {name}, BN / plain", values=ratio.per_seed)


def test_at_the_training_step_size_bns_median_beta_is_below_the_plain_networks(landscape):
    """Not seed by seed: with 2 threads natively one BN seed's beta came out above one plain seed's,
    and on the portable path the two sets were 0.06 apart."""
    beta = chapter.beta_ratio(landscape, 0.1)
    cc.compare(beta.ratio, "<", 1, "median beta at step size 0.1, BN / plain", values=beta.per_seed)


def test_bns_beta_lead_is_large_early_and_shrinks_late_as_the_plain_networks_beta_falls(landscape):
    """At step size 0.1, over steps 20-100 BN's median beta over seeds is at most 80% of the plain
    network's; over steps 120-200 BN's median beta relative to the plain network's is larger than
    over steps 20-100 (the early lead shrinks, closes or reverses), and the plain network's own median
    beta is lower than over steps 20-100.

    The control (scripts/beta_phase_control.py): seeds 0-29 as six sets of 5, one thread, natively
    (avx2 agreed to 3 decimals, so two distinct paths) and on the portable path. Early ratio 0.51 to
    0.69 in all 12 sets (0.687 on seeds 10-14 natively: a bound of 70% would hold there by 0.013, so
    the sentence claims 80%); the medians' late/early rise positive in all 12 (log10 0.12 to 0.57);
    the plain network's median beta late/early 0.23 to 0.61, BN's 0.79 to 1.22. Not seed by seed:
    the per-seed ratio fell on 4 of 30 seeds natively and 2 of 30 on the portable path, and seeds
    25-29 natively had only 3 of 5 rising, so a count "at least 4 of 5" would fail on another
    machine. Where the medians end late, 5 seeds do not say: BN / plain 0.79 to 2.03 over the 12
    sets, 0.4 to 5 per seed."""
    phases = chapter.beta_phases(landscape, 0.1)  # steps 20-100 and 120-200
    what = "median beta at step size 0.1 over steps 20-100, BN / plain"
    cc.compare(phases.early.ratio, "<=", 0.8, what, values=phases.early.per_seed)
    what = "log10 (BN/plain median beta, steps 120-200 / steps 20-100)"
    cc.compare(np.log10(phases.relative_rise), ">", 0, what, values=np.log10(phases.rise))
    what = "log10 (plain network's median beta, steps 120-200 / steps 20-100)"
    plain_per_seed = phases.late.plain_per_seed / phases.early.plain_per_seed
    cc.compare(np.log10(phases.plain_change), "<", 0, what, values=np.log10(plain_per_seed))
