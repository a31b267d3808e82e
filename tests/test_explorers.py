"""Explorers: live ipywidgets controls, and kernel-free frames swapped by sliders in the page."""

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from bn_utils.explorers import (
    COLUMN_PX,
    MIN_TEXT_PT,
    FrameExplorer,
    fit_to_column,
    frame_explorer,
    live_explorer,
    smallest_text_pt,
)
from bn_utils.style import keep_legends_off_data


def draw(scale, norm):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [0, scale if norm == "batch" else -scale])
    return fig


def test_one_frame_per_setting_in_row_major_order():
    explorer = frame_explorer(draw, {"scale": [0.5, 2.0], "norm": ["none", "batch"]}, title="t")
    assert len(explorer.frames) == 4 and len(set(explorer.frames)) == 4
    assert [c.labels for c in explorer.controls] == [("0.5", "2"), ("none", "batch")]
    assert explorer.index([1, 0]) == 2  # scale 2.0, norm none
    with pytest.raises(ValueError, match="outside"):
        explorer.index([2, 0])
    assert not plt.get_fignums(), "every drawn figure is closed"


def test_start_setting_is_the_first_image_and_the_sliders_positions():
    explorer = frame_explorer(
        draw, {"scale": [0.5, 2.0], "norm": ["none", "batch"]}, title="t", start={"norm": "batch"}
    )
    page = explorer._repr_html_()
    assert f'src="data:image/png;base64,{explorer.frames[explorer.index([0, 1])]}"' in page
    assert page.count('type="range"') == 2 and 'value="1"' in page
    assert "<script>" in page and "http" not in page.replace("data:image", ""), "no request leaves the page"


def test_bad_controls_get_clear_errors():
    with pytest.raises(ValueError, match="at least one control"):
        frame_explorer(draw, {}, title="t")
    with pytest.raises(ValueError, match="no values"):
        frame_explorer(draw, {"scale": []}, title="t")
    with pytest.raises(ValueError, match="at most"):
        frame_explorer(draw, {"scale": list(range(100)), "norm": ["none"]}, title="t")
    with pytest.raises(ValueError, match="not one of its values"):
        frame_explorer(draw, {"scale": [1.0], "norm": ["none"]}, title="t", start={"scale": 3.0})
    with pytest.raises(TypeError, match="Figure"):
        frame_explorer(lambda scale: None, {"scale": [1.0]}, title="t")
    with pytest.raises(ValueError, match="frames for a grid"):
        FrameExplorer(title="t", controls=(), frames=("a", "b"))


def test_live_explorer_offers_exactly_the_values_and_redraws_with_them(monkeypatch):
    import IPython.display

    drawn, shown = [], []
    monkeypatch.setattr(IPython.display, "display", shown.append)

    def recording_draw(scale, norm):
        drawn.append((scale, norm))
        return draw(scale, norm)

    explorer = live_explorer(
        recording_draw, {"weight scale": [0.5, 1.2, 2.0], "norm": ["none", "batch"]}, start={"weight scale": 1.2}
    )
    scale, norm = explorer.children[:2]
    assert scale.description == "weight scale" and scale.style.description_width == "initial"
    assert list(scale.options) == [("0.5", 0.5), ("1.2", 1.2), ("2", 2.0)] and scale.value == 1.2
    assert type(norm).__name__ == "ToggleButtons"
    drawn.clear(), shown.clear()
    scale.value = 2.0
    assert drawn == [(2.0, "none")], "moving a control redraws with the value it shows"
    assert len(shown) == 1 and not plt.get_fignums()
    with pytest.raises(ValueError, match="unknown control"):
        live_explorer(draw, {"scale": [1.0]}, start={"depth": 3})


def test_every_frame_is_column_wide_with_no_text_under_8_points():
    def wide(scale, norm):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for ax in axes:
            ax.plot([0, 1], [0, scale])
            ax.set_title(f"{norm}, scale {scale}", fontsize=12)
            ax.legend(["a line"], fontsize=6)
        return fig

    explorer = frame_explorer(wide, {"scale": [0.5, 2.0], "norm": ["none"]}, title="t")
    sizes = {Image.open(io.BytesIO(base64.b64decode(frame))).size for frame in explorer.frames}
    assert len(sizes) == 1 and next(iter(sizes))[0] == COLUMN_PX, "every frame the column's width, same size"
    assert explorer.text_pt is not None and explorer.text_pt >= MIN_TEXT_PT
    assert f'data-text-pt="{explorer.text_pt:.1f}"' in explorer._repr_html_()
    fig = wide(1.0, "none")
    assert fit_to_column(fig) >= MIN_TEXT_PT and smallest_text_pt(fig) >= MIN_TEXT_PT
    assert fig.get_size_inches()[0] * fig.dpi == pytest.approx(COLUMN_PX)


def test_each_controls_name_slider_and_readout_share_a_row_of_their_own():
    explorer = frame_explorer(draw, {"weight scale": [0.5, 2.0], "norm": ["none", "batch"]}, title="t")
    page = explorer._repr_html_()
    assert "display:grid" in page and page.count('class="bn-frames-control"') == 2
    for name in ("weight scale", "norm"):
        assert f'<span class="bn-frames-name" style="grid-column:1">{name}</span>' in page
    assert page.count('style="grid-column:3') == 2, "one readout per control, in its own column"
    assert len(repr(explorer)) < 200 and "4 frames" in repr(explorer), "the text output does not repeat the frames"


def _legend_box(fig, ax):
    return ax.get_legend().get_window_extent(fig.canvas.get_renderer())


def test_a_legend_over_a_line_moves_to_a_free_corner():
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [1, 0.2], label="falling")  # crosses the upper left corner
    ax.legend(loc="upper left")
    fig.tight_layout()
    assert keep_legends_off_data(fig) == 0, "moved within its axes"
    box, line = _legend_box(fig, ax), ax.get_lines()[0]
    assert not line.get_transform().transform_path(line.get_path()).intersects_bbox(box, filled=False)


def test_a_legend_with_no_free_place_goes_below_its_axes_and_a_clear_one_stays():
    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.linspace(0, 1, 25)
    ax.scatter(*np.meshgrid(grid, grid), s=4, label="everywhere")
    ax.plot(grid, grid, label="diagonal")
    ax.set_xlabel("x")
    ax.legend(loc="center")
    fig.tight_layout()
    assert keep_legends_off_data(fig) == 1
    renderer = fig.canvas.get_renderer()
    assert _legend_box(fig, ax).y1 < ax.xaxis.label.get_window_extent(renderer).y0, "below the x label"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["everywhere", "diagonal"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([0, 1], [0, 0.3], label="low")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    fig.tight_layout()
    before = _legend_box(fig, ax)
    assert keep_legends_off_data(fig) == 0 and _legend_box(fig, ax).bounds == before.bounds


def _log_panels(scale, _norm="none"):
    """A frame with what costs the most to draw: log axes (mathtext tick labels), two panels, a legend."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i, ax in enumerate(axes):
        ax.plot(np.arange(1, 31), np.geomspace(1e-3, scale * 10 ** (i + 1), 30), marker="o", label=f"scale {scale}")
        ax.plot(np.arange(1, 31), np.geomspace(1, scale, 30), label="scale 1")
        ax.set_yscale("log")
        ax.set(xlabel="hidden layer", ylabel="activation std", title=f"panel {i}")
        ax.legend(fontsize=8, ncol=2)
    return fig


def test_a_frame_has_exactly_the_pixels_savefig_draws():
    from bn_utils.explorers import FRAME_DPI, _png

    def through_savefig(fig):  # what frames were made from before: a full-colour PNG, decoded again
        buffer = io.BytesIO()
        with plt.rc_context({"savefig.bbox": "standard"}):
            fig.savefig(buffer, format="png", dpi=FRAME_DPI)
        plt.close(fig)
        image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
        small = io.BytesIO()
        image.save(small, format="PNG", optimize=True)
        return base64.b64encode(small.getvalue()).decode("ascii")

    for scale in (0.5, 4.0):
        expected, fig = _log_panels(scale), _log_panels(scale)
        fit_to_column(expected)
        fit_to_column(fig)
        assert _png(fig, FRAME_DPI) == through_savefig(expected)
        assert not plt.fignum_exists(fig.number), "the frame's figure is closed once drawn"
