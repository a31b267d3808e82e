"""bn_utils.norm_axes: the norms chapter 8's axes figure draws come from the registry (a new
feature-map norm with axes of its own joins them without an edit), each is computed by its spec's
reference, exactly as the functions of bn_utils.functional compute it, and its statistic's support is
what the registry says it averages over."""

import numpy as np
import pytest
import torch
from torch import nn

from bn_utils import norm_axes, norms
from bn_utils.functional import batch_norm, group_norm, instance_norm, layer_norm

pytestmark = pytest.mark.unit


def _x() -> torch.Tensor:
    return torch.randn(4, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_the_drawn_norms_are_the_registrys_feature_map_norms_in_wu_and_hes_order():
    assert norm_axes.AXES_NORMS == ("batch", "layer", "instance", "group")
    for name in norm_axes.AXES_NORMS:
        spec = norms.get(name)
        assert spec.conv is not None and spec.reference is not None and spec.averages_over


def test_the_references_are_the_functions_of_the_chapter_bit_for_bit():
    x = _x()
    expected = {
        "batch": batch_norm(x, None, None, training=True),
        "layer": layer_norm(x, tuple(x.shape[1:])),
        "instance": instance_norm(x),
        "group": group_norm(x, 3),
    }
    for name, values in expected.items():
        assert torch.equal(norm_axes.reference_normalization(name, x, num_groups=3), values), name


@pytest.mark.parametrize("name", norm_axes.AXES_NORMS)
def test_each_statistic_spans_the_axes_the_registry_claims(name):
    n, c, p = 4, 6, 5
    support = norm_axes.statistic_support(name, (n, c, p), (1, 2, 0), num_groups=2)
    spanned = {axis: len(set(found)) for axis, found in zip(("N", "C", "H·W"), np.nonzero(support), strict=True)}
    claimed = set(norms.get(name).averages_over)
    assert (spanned["N"] == n) == ("N" in claimed)
    assert (spanned["H·W"] == p) == ("H·W" in claimed)
    channels = c if "C" in claimed else c // 2 if "C/G" in claimed else 1
    assert spanned["C"] == channels


def _toy(name: str, averages_over: tuple[str, ...]) -> norms.NormSpec:
    """A feature-map norm over ``averages_over`` (only "N": over the examples, each position apart)."""

    def reference(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)

    return norms.NormSpec(
        name=name,
        label=name,
        color="#123456",
        citation="",
        dense=None,
        conv=lambda features: nn.Identity(),
        averages_over=averages_over,
        running_statistics=False,
        reference=reference,
        mlp_stacking=None,
        conv_stacking=None,
        why_not_dense="a toy",
        why_not_stacked="a toy",
    )


def test_a_newly_registered_feature_map_norm_joins_the_figure_once_per_set_of_axes(monkeypatch):
    monkeypatch.setitem(norms.NORMS, "toy", _toy("toy", ("N",)))
    monkeypatch.setitem(norms.NORMS, "toy_layer", _toy("toy_layer", ("C", "H·W")))  # layer norm's axes
    assert norm_axes._drawn_norms() == ("batch", "layer", "instance", "group", "toy")
    support = norm_axes.statistic_support("toy", (4, 6, 5), (1, 2, 0))
    expected = np.zeros((4, 6, 5), bool)
    expected[:, 2, 0] = True  # every example, at this channel and position only
    np.testing.assert_array_equal(support, expected)


def test_a_norm_without_a_feature_map_reference_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown normalization 'rms'.*valid names are: .*batch"):
        norm_axes.reference_normalization("rms", _x())
    with pytest.raises(ValueError, match="shape"):
        norm_axes.reference_normalization("batch", torch.zeros(4, 6))
