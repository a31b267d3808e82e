"""Explorers: live ipywidgets controls, and kernel-free frames swapped by sliders in the page."""

import matplotlib.pyplot as plt
import pytest

from bn_utils.explorers import FrameExplorer, frame_explorer, live_explorer


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
