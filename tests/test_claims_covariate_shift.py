"""Headline claims of the chapter "Internal covariate shift", over 5 seeds, with margins.

Setting (the BN paper's Figure 1, small): 3 x 100 sigmoid MLP, weights N(0, 0.1^2), SGD with
learning rate 0.5, batch 60, 600 steps on the digits; test metrics every 20 steps.

The control of the initialisation: the same networks from weights of std 4 / sqrt(fan_in), the
fan-in scaling that keeps a sigmoid layer's spread (4 = 1 / slope of the sigmoid at 0), with test
metrics every 5 steps, since the runs reach 90% within about 100 steps.
"""

import numpy as np
import pytest
from claim_seeds import SEEDS

from bn_utils import load_digits, seed_everything
from bn_utils.experiments.covariate_shift import (
    covariate_shift_run,
    ioffe_mlp,
    lower_step_size,
    saturated_fraction,
    signal_spread,
    summarize_runs,
)

INITS = {"paper": {"weight_std": 0.1}, "sigmoid4": {"weight_std": None, "init_scale": 4.0}}
RELATIVE_STEP = 0.003  # the gradient measure at equal update size: layers below move by 0.3% of their weights


@pytest.fixture(scope="module")
def summaries():
    data = load_digits()
    return {
        norm: summarize_runs([covariate_shift_run(norm, data, seed=s, ics_every=None) for s in SEEDS])
        for norm in ("none", "batch", "batch_noisy")
    }


@pytest.fixture(scope="module")
def control():
    """(init, norm) -> one run per seed, metrics every 5 steps, the gradient measure every 150
    steps at equal relative update size."""
    data = load_digits()
    return {
        (init, norm): [
            covariate_shift_run(
                norm, data, seed=s, eval_every=5, ics_every=150, ics_relative_step=RELATIVE_STEP, **options
            )
            for s in SEEDS
        ]
        for init, options in INITS.items()
        for norm in ("none", "batch")
    }


def initial(norm, seed, **options):
    seed_everything(seed)
    return ioffe_mlp(norm, **options)


def steps_to_90(runs):
    return np.array([np.inf if r.history.steps_to(0.9) is None else r.history.steps_to(0.9) for r in runs])


def test_bn_reaches_90_percent_in_at_most_a_quarter_of_the_steps(summaries):
    plain, bn = summaries["none"]["steps_to_acc"], summaries["batch"]["steps_to_acc"]
    assert bn <= plain / 4, f"median steps to 90% test accuracy: BN {bn}, plain {plain}"


def test_bn_layer_inputs_drift_less(summaries):
    plain, bn = summaries["none"]["drift"], summaries["batch"]["drift"]
    assert bn < 0.75 * plain, f"median drift of the last hidden layer's inputs: BN {bn:.3f}, plain {plain:.3f}"


def test_noisy_bn_trains_about_as_fast_as_bn(summaries):
    noisy, bn, plain = (summaries[k]["steps_to_loss"] for k in ("batch_noisy", "batch", "none"))
    assert noisy <= 2 * bn, f"median steps to test loss 0.3: noisy BN {noisy}, BN {bn}"
    assert noisy <= plain / 4, f"median steps to test loss 0.3: noisy BN {noisy}, plain {plain}"


def test_noisy_bn_inputs_are_the_least_stable_step_to_step(summaries):
    """The noise makes the next layer's input jump at every step: at least 1.5x the plain
    network's step-to-step movement and 3x BN's, yet training is as fast as with BN."""
    noisy, plain, bn = (summaries[k]["jitter"] for k in ("batch_noisy", "none", "batch"))
    assert noisy > 1.5 * plain and noisy > 3 * bn, f"jitter: noisy {noisy:.3f}, plain {plain:.3f}, BN {bn:.3f}"


def test_noisy_bn_total_drift_is_not_larger_than_the_plain_networks(summaries):
    """The measured negative result: over the whole run, the plain network's inputs travel
    further (median drift 0.93 in our runs) than noisy BN's (0.81). The issue's claim that
    noisy BN drifts more does not hold by this measure; the chapter says so."""
    noisy, plain = summaries["batch_noisy"]["drift"], summaries["none"]["drift"]
    assert noisy < plain, f"drift: noisy {noisy:.3f}, plain {plain:.3f}"
    assert np.isfinite(noisy) and noisy > 2 * summaries["batch"]["drift"]


def test_loud_noise_slows_noisy_bn_but_it_stays_well_ahead_of_the_plain_network(summaries):
    """Shifts up to +-4 and scales between 1/5 and 5 (the notebook's exercise 3): median steps
    to 90% 140, against 40 for BN and 420 for the plain network."""
    data = load_digits()
    loud = [
        covariate_shift_run("batch_noisy", data, seed=s, ics_every=None, norm_kwargs={"max_shift": 4, "max_scale": 5})
        for s in SEEDS
    ]
    steps = np.median(steps_to_90(loud))
    bn, plain = summaries["batch"]["steps_to_acc"], summaries["none"]["steps_to_acc"]
    detail = f"median steps to 90%: loud noisy BN {steps} {steps_to_90(loud)}, BN {bn}, plain {plain}"
    assert steps >= 2 * bn and steps <= plain / 2, detail


def test_small_init_starts_the_plain_network_with_a_vanishing_signal():
    """N(0, 0.1^2) with 100 inputs per unit: each sigmoid layer passes on about 0.1 * 10 * 1/4
    of its input's spread. Measured: 0.75-0.77, 0.15-0.16, 0.036-0.039 for the three hidden
    layers (training set, 5 seeds), against 1.00 in every layer of the BN network."""
    x = load_digits().x_train
    for seed in SEEDS:
        plain = signal_spread(initial("none", seed), x)
        bn = signal_spread(initial("batch", seed), x)
        assert plain[2] < 0.06, f"seed {seed}: plain spreads per layer {np.round(plain, 3)}"
        assert plain[1] < 0.3 * plain[0] and plain[2] < 0.3 * plain[1], f"seed {seed}: plain {np.round(plain, 3)}"
        assert np.all(np.abs(bn - 1) < 0.05), f"seed {seed}: BN spreads per layer {np.round(bn, 3)}"


def test_lecun_scaling_leaves_the_sigmoid_signal_vanishing_and_4x_keeps_it():
    """LeCun's std 1/sqrt(fan_in) is the paper's 0.1 in the layers of width 100 (1/8 in the
    first): the top layer's spread is 0.042-0.046. Scaled for the sigmoid's slope of 1/4,
    4/sqrt(fan_in) keeps it: 0.84-0.89."""
    x = load_digits().x_train
    for seed in SEEDS:
        lecun = signal_spread(initial("none", seed, weight_std=None), x)
        wide = signal_spread(initial("none", seed, **INITS["sigmoid4"]), x)
        assert lecun[2] < 0.06, f"seed {seed}: LeCun-scaled plain spreads {np.round(lecun, 3)}"
        assert wide[2] > 0.6, f"seed {seed}: 4/sqrt(fan_in) plain spreads {np.round(wide, 3)}"


def test_plain_network_sits_on_a_plateau_for_its_first_100_steps(control):
    """After 100 steps the plain network is still near chance (test accuracy 0.11-0.27) and its
    top layer's spread on the training batch is 0.07-0.10; BN is at 0.94-0.95 accuracy."""
    for plain, bn in zip(control["paper", "none"], control["paper", "batch"], strict=True):
        at = plain.history.eval_steps.index(100)
        acc_plain, acc_bn = plain.history.test_acc[at], bn.history.test_acc[at]
        assert acc_plain < 0.4 and acc_bn > 0.85, f"test accuracy after 100 steps: plain {acc_plain}, BN {acc_bn}"
        steps, spread = plain.spread(layer=-1)
        at_101 = spread[list(steps).index(101)]
        assert at_101 < 0.15, f"plain top-layer spread at step 101: {at_101:.3f}"


def test_plain_networks_units_are_not_saturated_and_saturation_is_not_what_slows_it(control):
    """From N(0, 0.1^2) fewer than 1% of the plain network's sigmoid inputs lie beyond |z| = 3
    (measured at most 0.42%), so there is nothing to rescue from saturation. From 4/sqrt(fan_in),
    20-40% do, and that network still reaches 90% about 5 times sooner (median 70 against 385 steps)."""
    x = load_digits().x_train
    for seed in SEEDS:
        small = saturated_fraction(initial("none", seed), x)
        wide = saturated_fraction(initial("none", seed, **INITS["sigmoid4"]), x)
        assert small.max() < 0.01, f"seed {seed}: saturated fraction per layer {np.round(small, 4)}"
        assert wide.min() > 0.1, f"seed {seed}: saturated fraction per layer, 4/sqrt(fan_in): {np.round(wide, 4)}"
    small_steps = np.median(steps_to_90(control["paper", "none"]))
    wide_steps = np.median(steps_to_90(control["sigmoid4", "none"]))
    assert wide_steps <= small_steps / 3, f"median steps to 90%: 4/sqrt(fan_in) {wide_steps}, N(0, 0.1^2) {small_steps}"


def test_most_of_bns_lead_is_the_escape_from_the_plateau(control):
    """Median steps to 90%: from N(0, 0.1^2) plain 385 against BN 35 (11x); from 4/sqrt(fan_in)
    plain 70 against BN 45 (1.6x), BN ahead or level in every seed."""
    paper_plain, paper_bn = steps_to_90(control["paper", "none"]), steps_to_90(control["paper", "batch"])
    wide_plain, wide_bn = steps_to_90(control["sigmoid4", "none"]), steps_to_90(control["sigmoid4", "batch"])
    paper_ratio = np.median(paper_plain) / np.median(paper_bn)
    wide_ratio = np.median(wide_plain) / np.median(wide_bn)
    detail = (
        f"steps to 90%, N(0, 0.1^2): plain {paper_plain}, BN {paper_bn} (ratio {paper_ratio:.2f}); "
        f"4/sqrt(fan_in): plain {wide_plain}, BN {wide_bn} (ratio {wide_ratio:.2f})"
    )
    assert paper_ratio >= 6, detail
    assert 1.1 <= wide_ratio <= 2.5, detail
    assert np.all(wide_bn <= wide_plain), detail


def test_at_the_start_bns_lower_layers_take_much_larger_sgd_steps():
    """Relative to its weights, the first hidden layer's SGD step is 14-17 times larger with BN
    (0.018-0.022) than without (0.0013): the raw gradient measure compares unequal updates."""
    data = load_digits()
    x, y = data.x_train[:60], data.y_train[:60]
    for seed in SEEDS:
        plain = lower_step_size(initial("none", seed), x, y, lr=0.5)
        bn = lower_step_size(initial("batch", seed), x, y, lr=0.5)
        detail = f"seed {seed}: relative SGD step of hidden layer 1: BN {bn[0]:.5f}, plain {plain[0]:.5f}"
        assert bn[0] > 8 * plain[0], detail


def test_gradient_measure_at_equal_update_size_follows_the_initialisation_not_bn(control):
    """1 - cos(G, G'), with the layers below moved by 0.3% of their weights in both networks,
    mean over the checkpoints at 150, 300, 450 and 600 steps, median over seeds, for hidden
    layer 3 and the output layer. From N(0, 0.1^2) BN's is 10-14 times the plain network's
    (BN 'shifts more'); from 4/sqrt(fan_in) the plain network's is 3-14 times BN's (BN 'shifts less')."""

    def one_minus_cos(runs):  # (seeds, layers): hidden 2, hidden 3, output
        return np.median([1 - np.mean(r.ics_cosine, axis=0) for r in runs], axis=0)

    paper_plain, paper_bn = one_minus_cos(control["paper", "none"]), one_minus_cos(control["paper", "batch"])
    wide_plain, wide_bn = one_minus_cos(control["sigmoid4", "none"]), one_minus_cos(control["sigmoid4", "batch"])
    detail = (
        f"1 - cos for hidden 2, hidden 3, output; N(0, 0.1^2): plain {np.round(paper_plain, 4)}, "
        f"BN {np.round(paper_bn, 4)}; 4/sqrt(fan_in): plain {np.round(wide_plain, 4)}, BN {np.round(wide_bn, 4)}"
    )
    assert np.all(paper_bn[1:] > 3 * paper_plain[1:]), detail
    assert np.all(wide_plain[1:] > 1.5 * wide_bn[1:]), detail
