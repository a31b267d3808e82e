"""Headline claims of the chapter "Internal covariate shift", over 5 seeds, with margins.

Setting (the BN paper's Figure 1, small): 3 x 100 sigmoid MLP, weights N(0, 0.1^2), SGD with
learning rate 0.5, batch 60, 600 steps on the digits; test metrics every 20 steps.
"""

import numpy as np
import pytest

from bn_utils import load_digits
from bn_utils.covariate_shift import covariate_shift_run, summarize_runs

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def summaries():
    data = load_digits()
    return {
        norm: summarize_runs([covariate_shift_run(norm, data, seed=s, ics_every=None) for s in SEEDS])
        for norm in ("none", "batch", "batch_noisy")
    }


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
