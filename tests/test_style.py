"""The house style: every registered normalization has one colour and one display name."""

import matplotlib.pyplot as plt
import pytest

from bn_utils.models import NORM_LAYERS
from bn_utils.style import NORM_STYLES, color_for, describe_figure, glue_values, label_for, publish

pytestmark = pytest.mark.unit


def test_every_registered_norm_has_a_style():
    assert set(NORM_STYLES) == set(NORM_LAYERS), "add a NormStyle for each norm in NORM_LAYERS, and no other"


def test_norm_styles_are_distinct():
    colors = [style.color for style in NORM_STYLES.values()]
    labels = [style.label for style in NORM_STYLES.values()]
    assert len(set(labels)) == len(labels)
    assert len(set(colors)) == len(colors)


def test_color_and_label_fall_back_for_other_series():
    assert label_for("batch") == "BN" and label_for("depth 20") == "depth 20"
    assert color_for("depth 20", 0) != color_for("depth 20", 1)


def test_glue_values_glues_each_entry_without_display(monkeypatch):
    import myst_nb

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: glued.append((name, value, display)))
    glue_values({"bn_ratio": "37", "plain_ratio": "1.0"})
    assert glued == [("bn_ratio", "37", False), ("plain_ratio", "1.0", False)]
    with pytest.raises(TypeError, match="mapping"):
        glue_values([("bn_ratio", "37")])
    with pytest.raises(TypeError, match="non-empty"):
        glue_values({"": "37"})


def test_describe_figure_reads_titles_and_axis_labels():
    fig, (left, right) = plt.subplots(1, 2)
    left.set(title="final test accuracy", xlabel="learning rate", ylabel="accuracy")
    right.set(xlabel="training step")
    assert describe_figure(fig) == (
        "Figure with 2 panels: final test accuracy: accuracy against learning rate; value against training step."
    )
    assert describe_figure(plt.figure()) == "Figure"


def test_publish_shows_the_figure_as_a_glue_record_with_its_description(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(InteractiveShell.instance(), {"png"})  # what the notebook kernel does
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda bundle, raw, metadata: shown.append((bundle, metadata)))
    fig, ax = plt.subplots()
    ax.set(title="noise", xlabel="batch size")
    publish(fig, "fig_noise")
    [(bundle, metadata)] = shown
    assert set(bundle) == {"image/png", "text/plain"}, "stored as image/png, which nbval does not compare"
    assert metadata["scrapbook"] == {"name": "fig_noise", "mime_prefix": ""}, "myst-nb's glue record, displayed"
    assert metadata["image/png"]["alt"] == "Figure: noise: value against batch size."
    assert not plt.fignum_exists(fig.number), "publish closes the figure so it is not shown twice"
