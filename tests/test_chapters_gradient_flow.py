"""bn_utils.chapters.gradient_flow: each claim quantity on hand-built runs whose answer is known, and the
first step's weight growth on a tiny real run."""

import numpy as np
import pytest

from bn_utils.chapters import gradient_flow as gf
from bn_utils.diagnostics import LayerDiagnostics
from bn_utils.experiments.layer_dynamics import LayerDynamics, layer_dynamics
from bn_utils.grid import Axis, LabelledGrid

pytestmark = pytest.mark.unit

STEPS = (0, 1, 2, 3, 5, 10, 20, 30, 50)


def diagnostics(gradient_norm, activation_std=None):
    gradient_norm = np.asarray(gradient_norm, dtype=float)
    std = np.ones_like(gradient_norm) if activation_std is None else np.asarray(activation_std, dtype=float)
    return LayerDiagnostics(std, gradient_norm, 0.1 * gradient_norm, 2.3)


def dynamics(seeds=2, layers=4, updates=60, lr=0.1):
    """A LayerDynamics whose every entry differs: value = 1 + seed + record / 10 + layer / 100 (weights
    grow with the record, gradients fall with it)."""
    s, r, layer = np.meshgrid(np.arange(seeds), np.arange(len(STEPS)), np.arange(layers), indexing="ij")
    base = 1 + s + r / 10 + layer / 100
    return LayerDynamics(
        norm="batch",
        depth=layers,
        lr=lr,
        seeds=tuple(range(seeds)),
        steps=STEPS,
        gradient_norm=1 / base,
        weight_norm=base,
        step_size=np.full(base.shape, lr),
        similarity=base / 10,
        class_contrast=base / 100,
        loss=np.tile(np.arange(updates, dtype=float), (seeds, 1)) + np.arange(seeds)[:, None],
        test_acc=np.linspace(0.2, 0.9, seeds),
    )


def test_gradient_growth_is_the_per_layer_factor_towards_the_input_per_seed():
    runs = [diagnostics(1.2 ** np.arange(10)[::-1]), diagnostics(np.ones(10)), diagnostics(0.5 ** np.arange(10)[::-1])]
    np.testing.assert_allclose(gf.gradient_growth(runs), [1.2, 1.0, 0.5])


def test_activation_span_is_largest_over_smallest_std():
    runs = [diagnostics(np.ones(3), [2.0, 1.0, 4.0]), diagnostics(np.ones(3), [1.0, 1.0, 1.0])]
    np.testing.assert_allclose(gf.activation_span(runs), [4.0, 1.0])


def test_gradient_ratios_are_first_over_last_per_seed_and_depth():
    profiles = [
        {10: diagnostics([6.0, 1.0, 2.0]), 20: diagnostics([9.0, 3.0]), 40: diagnostics([8.0, 5.0, 1.0])},
        {10: diagnostics([4.0, 2.0]), 20: diagnostics([1.0, 4.0]), 40: diagnostics([30.0, 3.0])},
        {10: diagnostics([5.0, 1.0]), 20: diagnostics([2.0, 1.0]), 40: diagnostics([100.0, 1.0])},
    ]
    ratios = gf.gradient_ratios(profiles, (10, 20, 40))
    np.testing.assert_allclose(ratios.at(10), [3.0, 2.0, 5.0])
    np.testing.assert_allclose(ratios.at(20), [3.0, 0.25, 2.0])
    np.testing.assert_allclose(ratios.at(40), [8.0, 10.0, 100.0])
    assert ratios.median(40) == 10.0
    with pytest.raises(ValueError, match="depth 80"):
        ratios.at(80)
    with pytest.raises(ValueError, match="80"):
        gf.gradient_ratios(profiles, (10, 80))


class FakeSweep(LabelledGrid):
    """A depth sweep's final accuracies (depths 5, 10, 20; two seeds), looked up on its depth axis."""

    def axes(self):
        return {"depth": Axis("depth (hidden layers)", (5, 10, 20), owner="the sweep")}

    def final(self, norm):
        offset = {"none": 0.0, "batch": 0.5}[norm]
        return np.array([[0.1, 0.2], [0.3, np.nan], [0.4, 0.45]]) + offset


def test_final_accuracy_picks_the_depth_and_counts_a_diverged_seed_as_zero():
    np.testing.assert_allclose(gf.final_accuracy(FakeSweep(), "none", 10), [0.3, 0.0])
    np.testing.assert_allclose(gf.final_accuracy(FakeSweep(), "batch", 20), [0.9, 0.95])
    with pytest.raises(ValueError, match="depth \\(hidden layers\\) 40 is not on the grid; the sweep has: 5, 10, 20"):
        gf.final_accuracy(FakeSweep(), "batch", 40)


def test_first_steps_on_a_hand_built_run():
    run = dynamics()
    early = gf.first_steps(run)
    ratio = lambda record: (1 + np.arange(2) + record / 10 + 0.03) / (1 + np.arange(2) + record / 10)  # noqa: E731
    np.testing.assert_allclose(early.ratio_at_init, ratio(0))
    np.testing.assert_allclose(early.ratio_drop, ratio(0) / ratio(1))
    # steps 30 and 50 are records 7 and 8; the ratio falls with the record, so the larger is step 30's
    np.testing.assert_allclose(early.ratio_later, ratio(7))
    # growth after one step, relative to step 0, per layer
    expected = (1 + np.arange(2)[:, None] + 0.1 + np.arange(4) / 100) / (1 + np.arange(2)[:, None] + np.arange(4) / 100)
    np.testing.assert_allclose(early.growth, expected)
    np.testing.assert_allclose(early.first_layer_growth, expected[:, 0])
    np.testing.assert_allclose(early.lr_cut, expected[:, 0] ** 2)
    # relative update lr * g / w = lr / base^2; last layer over first, at steps 30 and 50
    base = 1 + np.arange(2)[:, None] + np.array([7, 8]) / 10
    np.testing.assert_allclose(early.update_ratio, (base / (base + 0.03)) ** 2)
    np.testing.assert_allclose(early.predicted_growth, np.sqrt(1 + (0.1 / (1 + np.arange(2)) ** 2) ** 2))


def test_forward_content_on_a_hand_built_run():
    run = dynamics()
    content = gf.forward_content(run)
    np.testing.assert_allclose(content.similarity, (1 + np.arange(2) + 0.03) / 10)
    np.testing.assert_allclose(content.contrast_at_init[:, 1], (1 + np.arange(2) + 0.01) / 100)
    np.testing.assert_allclose(content.contrast_last_at_init, (1 + np.arange(2) + 0.03) / 100)
    np.testing.assert_allclose(content.contrast_after_50, (1 + np.arange(2) + 0.8 + 0.03) / 100)
    np.testing.assert_allclose(content.late_loss, 39.5 + np.arange(2))  # mean of updates 30 to 49
    medians = gf.contrast_after_50({10: run, 40: dynamics(seeds=3)})
    assert medians == pytest.approx({10: 1.5 / 100 + 0.0083, 40: 2 / 100 + 0.0083})


def test_the_ratio_drop_is_read_on_its_logarithm():
    """log10 of the fall in the first step: 1 for tenfold, whatever the other fields hold."""
    seeds = np.ones(3)
    first = gf.FirstSteps(seeds, np.array([10.0, 100.0, 5.0]), seeds, np.ones((3, 2)), seeds, seeds, np.ones((3, 2)))
    np.testing.assert_allclose(first.log_ratio_drop, [1.0, 2.0, 0.69897], rtol=1e-5)


def test_the_late_loss_is_measured_from_the_loss_of_a_uniform_guess():
    """|loss - ln 10| on both sides of ln 10 = 2.302585..., NaN (a diverged seed) kept."""
    late = np.array([2.302585093, 2.402585093, 2.102585093, np.nan])
    content = gf.ForwardContent(np.ones(4), np.ones((4, 2)), np.ones(4), late)
    np.testing.assert_allclose(content.late_loss_from_chance, [0.0, 0.1, 0.2, np.nan], atol=1e-9)


def test_the_first_step_grows_a_bn_layer_as_its_gradient_predicts(digits):
    """With BN after every layer the gradient is orthogonal to the weights, so one SGD step gives
    ||W1||^2 = ||W0||^2 + lr^2 ||g0||^2: the chapter's c after one step (not after step 0 or 2)."""
    run = layer_dynamics(digits, "batch", depth=4, width=16, seeds=(0, 1), record_at=(0, 1, 30, 50))
    early = gf.first_steps(run)
    np.testing.assert_allclose(early.first_layer_growth, early.predicted_growth, rtol=1e-3)
    assert (early.first_layer_growth > 1).all()
