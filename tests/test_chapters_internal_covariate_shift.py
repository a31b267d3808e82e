"""bn_utils.chapters.internal_covariate_shift on hand-built runs: each claim quantity reads the step,
the layer, the metric and the side of the ratio it names (a wrong step, a swapped numerator or a
mean in place of a median would change a number asserted here)."""

import numpy as np
import pytest

import bn_utils as bu
from bn_utils.chapters import internal_covariate_shift as chapter
from bn_utils.experiments.covariate_shift import ShiftRun
from bn_utils.probes import ActivationRecord

pytestmark = pytest.mark.unit


def shift_run(acc, loss, spread_last=(1.0, 0.5, 0.25), cosine=()):
    """A made-up run evaluated every 20 steps (0, 20, 40, 60), test accuracies ``acc`` and losses
    ``loss``; two hidden layers probed at steps 1, 6, 11 (the last with median spread ``spread_last``,
    the first with 10x it); ``cosine``: cos(G, G') per checkpoint, one value per layer."""

    def record(spread):
        std = np.outer(spread, [0.5, 1.0, 2.0])  # three units: the median is the middle one
        zeros = np.zeros_like(std)
        return ActivationRecord(steps=np.array([1, 6, 11]), percentiles={50: zeros}, mean=zeros, std=std)

    history = bu.History(
        loss=[1.0] * 60, eval_steps=[0, 20, 40, 60], test_acc=list(acc), test_loss=list(loss), steps_per_epoch=20
    )
    return ShiftRun(
        history=history,
        records=[record(10 * np.array(spread_last)), record(np.array(spread_last))],
        ics_cosine=[np.array(c) for c in cosine],
    )


LOSS = (2.0, 1.0, 0.5, 0.2)


def test_steps_to_accuracy_and_loss_read_the_first_evaluation_reaching_the_target():
    runs = [shift_run((0.1, 0.5, 0.95, 0.97), LOSS), shift_run((0.1, 0.91, 0.95, 0.97), (2.0, 0.3, 0.2, 0.1))]
    never = shift_run((0.1, 0.2, 0.3, 0.4), (2.0, 2.0, 2.0, 2.0))
    np.testing.assert_array_equal(chapter.steps_to_accuracy(runs), [40, 20])
    np.testing.assert_array_equal(chapter.steps_to_accuracy(runs, 0.96), [60, 60])
    np.testing.assert_array_equal(chapter.steps_to_accuracy([never]), [np.inf])
    np.testing.assert_array_equal(chapter.steps_to_loss(runs), [60, 20])  # loss falls to 0.3: at or below
    np.testing.assert_array_equal(chapter.steps_to_loss([never]), [np.inf])


def test_accuracy_at_reads_the_evaluation_at_that_step():
    runs = [shift_run((0.1, 0.5, 0.95, 0.97), LOSS), shift_run((0.2, 0.6, 0.9, 0.99), LOSS)]
    np.testing.assert_allclose(chapter.accuracy_at(runs, 40), [0.95, 0.9])
    with pytest.raises(ValueError):
        chapter.accuracy_at(runs, 50)  # not evaluated


def test_spread_at_reads_the_probe_of_that_step_in_that_layer():
    runs = [shift_run((0.1,) * 4, LOSS, spread_last=(1.0, 0.5, 0.25)), shift_run((0.1,) * 4, LOSS, (2.0, 0.4, 0.3))]
    np.testing.assert_allclose(chapter.spread_at(runs, 1), [1.0, 2.0])  # step 1: the first probe
    np.testing.assert_allclose(chapter.spread_at(runs, 11), [0.25, 0.3])
    np.testing.assert_allclose(chapter.spread_at(runs, 6, layer=0), [5.0, 4.0])


def test_gradient_shift_is_one_minus_the_mean_cosine_over_checkpoints_per_layer():
    runs = [
        shift_run((0.1,) * 4, LOSS, cosine=[(0.9, 0.8, 0.6), (0.7, 0.6, 0.2)]),
        shift_run((0.1,) * 4, LOSS, cosine=[(1.0, 1.0, 1.0), (0.5, 0.9, 0.8)]),
    ]
    np.testing.assert_allclose(chapter.gradient_shift(runs), [[0.2, 0.3, 0.6], [0.25, 0.05, 0.1]])


def test_initial_network_is_seeded_just_before_it_is_built():
    first, again = chapter.initial_network("none", 3), chapter.initial_network("none", 3)
    other = chapter.initial_network("none", 4)
    weights = [next(m.parameters()).detach() for m in (first, again, other)]
    assert bool((weights[0] == weights[1]).all()) and not bool((weights[0] == weights[2]).all())
    wide = chapter.initial_network("none", 3, **chapter.INITS["sigmoid4"])
    assert float(next(wide.parameters()).detach().std()) > 2 * float(weights[0].std())


def test_the_setups_train_what_the_chapter_says(monkeypatch):
    calls = []
    monkeypatch.setattr(chapter, "covariate_shift_run", lambda norm, data, **kw: calls.append((norm, kw)))
    digits = bu.load_digits()
    chapter.shown_runs((0,), digits)
    assert calls == [(norm, dict(seed=0, ics_every=150, ics_relative_step=0.003)) for norm in chapter.NORMS]
    calls.clear()
    chapter.claim_runs((1,), digits)
    assert calls == [(norm, dict(seed=1, ics_every=None)) for norm in chapter.NORMS]
    calls.clear()
    chapter.claim_control((2,), digits)
    assert [norm for norm, _ in calls] == ["none", "batch", "none", "batch"]
    assert calls[2][1] == dict(
        seed=2, eval_every=5, ics_every=150, ics_relative_step=0.003, weight_std=None, init_scale=4.0
    )
    calls.clear()
    chapter.loud_runs((0,), digits)
    assert calls == [("batch_noisy", dict(seed=0, ics_every=None, norm_kwargs={"max_shift": 4, "max_scale": 5}))]
