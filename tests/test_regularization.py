"""Ghost batch norm, layer and group norm in the model registry, batch noise, the regularization
study, its plots and the batch-noise explorer."""

import matplotlib
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import bn_utils as bu  # noqa: E402
from bn_utils.layers import GhostBatchNorm  # noqa: E402
from bn_utils.plotting import plot_batch_noise, plot_generalization, plot_histories  # noqa: E402
from bn_utils.regularization import batch_noise, normalized_in_random_batches, regularization_study  # noqa: E402


def test_ghost_batch_norm_normalizes_each_chunk_and_updates_running_stats_per_chunk():
    torch.manual_seed(0)
    x = 3 + 2 * torch.randn(12, 5)
    ghost = GhostBatchNorm(5, ghost_batch_size=4)
    reference = nn.BatchNorm1d(5)
    out = ghost(x)
    for chunk, got in zip(x.split(4), out.split(4), strict=True):
        torch.testing.assert_close(got, reference(chunk))  # reference also sees the chunks in order
    torch.testing.assert_close(ghost.bn.running_mean, reference.running_mean)
    assert ghost.bn.num_batches_tracked.item() == 3
    ghost.eval()
    torch.testing.assert_close(ghost(x), reference.eval()(x))
    with pytest.raises(ValueError, match="does not split into ghost batches of 4"):
        ghost.train()(x[:10])
    with pytest.raises(ValueError, match="ghost_batch_size must be at least 2"):
        GhostBatchNorm(5, ghost_batch_size=1)


def test_registry_has_layer_group_and_ghost_norms():
    assert isinstance(bu.make_norm("layer", 100), nn.LayerNorm)
    assert isinstance(bu.make_norm("layer", 16, spatial=True), nn.GroupNorm)
    assert bu.make_norm("group", 100).num_groups == 4 and bu.make_norm("group", 64).num_groups == 32
    assert bu.make_norm("group", 100, num_groups=10).num_groups == 10
    assert bu.make_norm("batch_ghost", 8, ghost_batch_size=4).ghost_batch_size == 4
    model = bu.make_mlp(64, 10, depth=2, width=20, norm="layer")
    assert model(torch.randn(3, 64)).shape == (3, 10) and model.blocks[0].linear.bias is None


def test_normalized_in_random_batches_is_batch_norm_of_the_drawn_batch():
    torch.manual_seed(0)
    fixed, pool = torch.randn(2, 3, dtype=torch.float64), torch.randn(50, 3, dtype=torch.float64)
    out = normalized_in_random_batches(fixed, pool, 6, draws=1, generator=torch.Generator().manual_seed(1))
    others = pool[torch.randperm(50, generator=torch.Generator().manual_seed(1))[:5]]
    for i in range(2):
        batch = torch.cat([fixed[i : i + 1], others])
        expected = nn.functional.batch_norm(batch, None, None, training=True, eps=1e-5)[0]
        torch.testing.assert_close(out[0, i], expected)
    with pytest.raises(ValueError, match="batch_size must be between 2 and 51"):
        normalized_in_random_batches(fixed, pool, 1, draws=1, generator=torch.Generator())


def test_batch_noise_shrinks_like_one_over_root_batch(digits):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    noise = batch_noise(digits, (4, 16, 64, 256), draws=50, examples=8)
    assert torch.equal(torch.rand(1), expected_next)  # the global random stream is untouched
    values = [noise[s] for s in (4, 16, 64, 256)]
    assert values == sorted(values, reverse=True)
    assert 1.5 < noise[16] / noise[64] < 2.5  # 2 for exact 1/sqrt(batch)


def test_regularization_study_reports_per_seed_and_medians(digits):
    study = regularization_study(
        digits,
        seeds=(0, 1),
        epochs=2,
        depth=1,
        width=16,
        train_examples=256,
        configs={"no norm": ("none", {}), "ghost": ("batch_ghost", {"ghost_batch_size": 8})},
    )
    assert list(study.histories) == ["no norm", "ghost"] and all(len(r) == 2 for r in study.histories.values())
    h = study.histories["ghost"][0]
    assert h.steps == 4 and len(h.train_acc) == 3  # 2 steps per epoch; evaluated at 0, 2, 4
    gap = study.final("ghost", "gap")
    np.testing.assert_allclose(gap, study.final("ghost", "train_acc") - study.final("ghost", "test_acc"))
    assert study.table()["ghost"]["gap"] == pytest.approx(np.median(gap))
    assert study.norms == {"no norm": "none", "ghost": "batch_ghost"}
    ax = plot_generalization(study)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["no norm", "ghost"] and len(ax.texts) == 2
    assert [matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches] == ["#d55e00", "#cc79a7"]
    ax = plot_histories(study.histories, "test_acc", norms=study.norms)
    assert matplotlib.colors.to_hex(ax.lines[1].get_color()) == "#cc79a7"
    with pytest.raises(ValueError, match="train_examples must be between batch_size"):
        regularization_study(digits, train_examples=10)


def test_plot_batch_noise_and_explorer(digits, shown_figures):

    from bn_utils.widgets import batch_noise_explorer

    ax = plot_batch_noise({8: 0.4, 32: 0.2})
    assert (
        ax.get_xscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()][1] == "sqrt(1.5 / batch size)"
    )
    explorer = batch_noise_explorer(digits)
    explorer.children[0].value = 128
    explorer.update()
    assert shown_figures[-1].axes[0].get_title().startswith("batch size 128: std 0.")
