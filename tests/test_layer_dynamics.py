"""Layer dynamics over the first steps: the measurements, the identities they must obey, and the plots."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.experiments.layer_dynamics import (  # noqa: E402
    DYNAMICS_QUANTITIES,
    class_contrast,
    layer_dynamics,
    mean_cosine_similarity,
    plot_dynamics_profile,
    plot_first_steps,
    plot_forward_content,
    plot_layer_dynamics,
)
from bn_utils.stacked import train_stacked  # noqa: E402

SMALL = dict(depth=3, width=16, seeds=(0, 1), record_at=(0, 1, 2, 5), probe_size=64)


@pytest.fixture(scope="module")
def digits64():
    return bu.load_digits(dtype=torch.float64)


@pytest.fixture(scope="module")
def small_bn(digits64):
    return layer_dynamics(digits64, "batch", **SMALL)


def brute_force_cosines(h, centre=False):
    if centre:
        h = h - h.mean(-2, keepdim=True)
    n = h / h.norm(dim=-1, keepdim=True)
    return n @ n.transpose(-1, -2)


def test_mean_cosine_similarity_is_the_mean_over_pairs_of_different_examples():
    torch.manual_seed(0)
    h = torch.randn(3, 2, 7, 5, dtype=torch.float64)
    for centre in (False, True):
        gram = brute_force_cosines(h, centre)
        off = ~torch.eye(7, dtype=torch.bool)
        torch.testing.assert_close(mean_cosine_similarity(h, centre=centre), gram[..., off].mean(-1))
    same = torch.ones(4, 3)
    assert mean_cosine_similarity(same).item() == pytest.approx(1.0)
    assert mean_cosine_similarity(torch.eye(4)).item() == pytest.approx(0.0, abs=1e-15)
    # an all-zero representation counts as orthogonal: 1 similar pair out of 3
    assert mean_cosine_similarity(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])).item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 2 examples"):
        mean_cosine_similarity(torch.ones(1, 5))


def test_class_contrast_is_same_class_minus_different_class_similarity():
    torch.manual_seed(1)
    h = torch.randn(2, 12, 6, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 2, 1])
    gram = brute_force_cosines(h, centre=True)
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(12, dtype=torch.bool)
    different = labels[:, None] != labels[None, :]
    expected = gram[:, same].mean(-1) - gram[:, different].mean(-1)
    torch.testing.assert_close(class_contrast(h, labels), expected)
    # two classes at opposite points: alike within (cosine 1), opposite across (-1)
    v = torch.tensor([1.0, 2.0, -1.0])
    assert class_contrast(torch.stack([v, v, -v, -v]), torch.tensor([3, 3, 5, 5])).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="one label per example"):
        class_contrast(h, labels[:-1])
    with pytest.raises(ValueError, match="at least two classes"):
        class_contrast(h, torch.zeros(12, dtype=torch.long))
    with pytest.raises(ValueError, match="at least two classes and two examples of one class"):
        class_contrast(h[:, :3], torch.tensor([0, 1, 2]))


def test_records_have_one_entry_per_seed_step_and_layer(small_bn):
    r = small_bn
    assert r.steps == (0, 1, 2, 5) and r.seeds == (0, 1) and r.depth == 3
    for name in DYNAMICS_QUANTITIES:
        assert r.quantity(name).shape == (2, 4, 3), name
    assert r.gradient_ratio.shape == (2, 4) and r.loss.shape == (2, 5) and r.test_acc.shape == (2,)
    np.testing.assert_allclose(r.weight_growth[:, 0], 1.0)
    np.testing.assert_allclose(r.effective_lr, r.lr / r.weight_growth**2)
    np.testing.assert_allclose(r.relative_update, r.lr * r.gradient_norm / r.weight_norm)
    np.testing.assert_allclose(r.gradient_ratio, r.gradient_norm[..., 0] / r.gradient_norm[..., -1])
    assert r.at(5) == 3
    with pytest.raises(ValueError, match="step 4 was not recorded"):
        r.at(4)
    with pytest.raises(ValueError, match="unknown quantity"):
        r.quantity("update_ratio")


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_runs_are_the_depth_sweeps_runs(digits64, norm):
    """Same weights, batches and SGD as the stacked trainer: the same losses and test accuracy."""
    r = layer_dynamics(digits64, norm, depth=3, width=16, seeds=(0, 1), record_at=(0, 3), steps=25)
    models = []
    for seed in (0, 1):
        bu.seed_everything(seed)
        models.append(bu.make_mlp(64, 10, depth=3, width=16, norm=norm).double())
    histories = train_stacked(models, digits64, lrs=[0.1, 0.1], seeds=[0, 1], steps=25, eval_train=False)
    for row, test_acc, history in zip(r.loss, r.test_acc, histories, strict=True):
        np.testing.assert_allclose(row, history.loss, rtol=0, atol=1e-10)
        assert test_acc == pytest.approx(history.test_acc[-1], abs=1e-12)


def test_sgd_grows_scale_invariant_weights_by_the_squared_step(small_bn):
    """With BN after it, a hidden layer's loss is invariant to the scale of its weights (of each
    unit's), so the gradient is orthogonal to them and plain SGD gives
    ||W_{t+1}||^2 = ||W_t||^2 + lr^2 ||g_t||^2 exactly (up to BN's epsilon)."""
    r = small_bn
    for t in (0, 1):
        predicted = r.weight_norm[:, t] ** 2 + (r.lr * r.gradient_norm[:, t]) ** 2
        np.testing.assert_allclose(r.weight_norm[:, t + 1] ** 2, predicted, rtol=1e-6)
    assert (np.diff(r.weight_norm, axis=1) > 0).all()  # every step grows every layer


def test_holding_the_weight_norms_changes_the_scale_not_the_function(digits64, small_bn):
    held = layer_dynamics(digits64, "batch", hold_weight_norm=True, **SMALL)
    np.testing.assert_allclose(held.weight_norm, np.broadcast_to(held.weight_norm[:, :1], held.weight_norm.shape))
    np.testing.assert_allclose(held.effective_lr, held.lr)
    # after one step the two networks differ only in the scale of their hidden weights: with BN,
    # the same function, so the same loss on the second batch and the same representations
    np.testing.assert_allclose(held.loss[:, :2], small_bn.loss[:, :2], rtol=1e-6)
    np.testing.assert_allclose(held.similarity[:, 1], small_bn.similarity[:, 1], rtol=1e-6)


def test_relative_step_moves_every_layer_by_the_same_fraction(digits64):
    r = layer_dynamics(digits64, "batch", relative_step=0.02, **SMALL)
    np.testing.assert_allclose(r.relative_update, 0.02)
    growth = np.sqrt(1 + 0.02**2)  # orthogonal steps of 2% of the norm
    np.testing.assert_allclose(r.weight_norm[:, 1] / r.weight_norm[:, 0], growth, rtol=1e-6)


def test_layer_dynamics_rejects_bad_arguments(digits64):
    bad = [
        (dict(norm="layer"), "layer_dynamics trains norm"),
        # the registry says which: no norm, and the norms StackedMLP holds as one batch norm (not ghost BN)
        (dict(norm="batch_ghost"), "trains norm 'none', 'batch', 'batch_scratch'; got 'batch_ghost'"),
        (dict(depth=1), "at least 2 hidden layers"),
        (dict(lr=0.0), "must be positive"),
        (dict(relative_step=-1.0), "must be positive"),
        (dict(norm="none", hold_weight_norm=True), "hold_weight_norm needs a BN network"),
        (dict(seeds=()), "at least one seed"),
        (dict(record_at=()), "record_at must be distinct steps"),
        (dict(record_at=(0, 5, 2)), "record_at must be distinct steps"),
        (dict(record_at=(-1, 2)), "record_at must be distinct steps"),
        (dict(record_at=(0, 10), steps=5), "fewer than the last recorded step"),
        (dict(probe_size=1), "probe_size must be between 2"),
        (dict(batch_size=1), "batch_size must be between 2"),
        (dict(batch_size=100_000), "batch_size must be between 2"),
    ]
    for kwargs, message in bad:
        args = {"norm": "batch", "depth": 3, "width": 8, "seeds": (0,), "record_at": (0, 1), **kwargs}
        norm = args.pop("norm")
        with pytest.raises(ValueError, match=message):
            layer_dynamics(digits64, norm, **args)


def test_a_diverged_seed_is_marked_and_leaves_the_others_training():
    data = bu.load_digits()
    wild = layer_dynamics(data, "none", depth=4, width=64, seeds=(0, 1), record_at=(0, 10), lr=30.0)
    assert wild.diverged.all() and np.isnan(wild.test_acc).all() and np.isnan(wild.gradient_norm[:, -1]).all()
    assert np.isfinite(wild.gradient_norm[:, 0]).all()  # recorded before the first update
    # The plain 40-layer network at lr 0.1: seed 8's loss grows about a thousandfold in 5 steps, then is NaN.
    five = layer_dynamics(data, "none", depth=40, seeds=(5, 6, 7, 8, 9), record_at=(0, 10))
    assert five.diverged.tolist() == [False, False, False, True, False], five.loss[:, :10]
    assert np.isnan(five.test_acc[3]) and np.isfinite(np.delete(five.test_acc, 3)).all()
    four = layer_dynamics(data, "none", depth=40, seeds=(5, 6, 7, 9), record_at=(0, 10))
    np.testing.assert_allclose(four.loss, np.delete(five.loss, 3, axis=0), rtol=1e-5)  # each seed has its own weights


def test_plot_layer_dynamics_draws_median_lines_per_layer(small_bn, digits64):
    plain = layer_dynamics(digits64, "none", **SMALL)
    runs = {"BN": small_bn, "plain": plain}
    ax = plot_layer_dynamics(runs, "effective_lr", layers=(0, -1))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["BN, layer 1 (n=2)", "BN, layer 3 (n=2)", "plain, layer 1 (n=2)", "plain, layer 3 (n=2)"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.median(small_bn.effective_lr[..., -1], axis=0))
    assert ax.lines[0].get_color() != ax.lines[2].get_color() and ax.get_yscale() == "log"
    ax = plot_layer_dynamics(runs, "gradient_ratio")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(small_bn.gradient_ratio, axis=0))
    assert ax.get_ylabel() == "gradient norm, first / last hidden layer"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "5"]  # 1-2-5 steps up to the last
    for linear in ("class_contrast", "similarity", "weight_growth"):
        assert plot_layer_dynamics(runs, linear).get_yscale() == "linear", linear
    with pytest.raises(ValueError, match="unknown quantity"):
        plot_layer_dynamics(runs, "update_ratio")
    with pytest.raises(ValueError, match="layer 3 out of range"):
        plot_layer_dynamics(runs, "gradient_norm", layers=(3,))


def test_plot_dynamics_profile_draws_one_line_per_run(small_bn):
    ax = plot_dynamics_profile({"BN": small_bn}, "similarity", step=1)
    assert ax.lines[0].get_xdata().tolist() == [1, 2, 3]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(small_bn.similarity[:, 1], axis=0))
    with pytest.raises(ValueError, match="one number per step"):
        plot_dynamics_profile({"BN": small_bn}, "gradient_ratio")
    with pytest.raises(ValueError, match="step 3 was not recorded"):
        plot_dynamics_profile({"BN": small_bn}, step=3)


def test_plot_first_steps_draws_the_ratio_of_every_run_and_the_focus_run_per_layer(digits64):
    deeper = {**SMALL, "depth": 6}
    runs = {"BN": layer_dynamics(digits64, "batch", **deeper), "plain": layer_dynamics(digits64, "none", **deeper)}
    fig = plot_first_steps(runs, focus="BN")
    ratio, growth, update = fig.axes
    assert tuple(fig.get_size_inches()) == pytest.approx((15, 3.8))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["first / last layer's gradient norm", "weight growth", "relative update per step"]
    np.testing.assert_allclose(ratio.lines[1].get_ydata(), np.median(runs["plain"].gradient_ratio, axis=0))
    labels = [t.get_text() for t in growth.get_legend().get_texts()]
    assert labels == ["BN, layer 1 (n=2)", "BN, layer 5 (n=2)", "BN, layer 6 (n=2)"]
    np.testing.assert_allclose(update.lines[0].get_ydata(), np.median(runs["BN"].relative_update[..., 0], axis=0))
    with pytest.raises(ValueError, match="focus must be one of the runs"):
        plot_first_steps(runs, focus="ghost")


def test_plot_forward_content_draws_profiles_at_init_and_the_last_layer_in_training(small_bn, digits64):
    plain = layer_dynamics(digits64, "none", **SMALL)
    fig = plot_forward_content({"BN": small_bn, "plain": plain}, {"BN, depth 3": small_bn})
    similarity, contrast, during = fig.axes
    assert tuple(fig.get_size_inches()) == pytest.approx((15, 3.8))
    assert similarity.get_title() == "at initialisation: how alike all examples look"
    assert contrast.get_title() == "at initialisation: class structure left"
    assert during.get_title() == "last hidden layer, during training"
    np.testing.assert_allclose(contrast.lines[1].get_ydata(), np.median(plain.class_contrast[:, 0], axis=0))
    np.testing.assert_allclose(during.lines[0].get_ydata(), np.median(small_bn.class_contrast[..., -1], axis=0))
    with pytest.raises(ValueError, match="during must be a non-empty dict"):
        plot_forward_content({"BN": small_bn}, {})
