"""Explorers: a figure function and its controls, shown two ways.

- :func:`live_explorer`: ipywidgets sliders that call the figure function in the running kernel
  (any value of any control, in JupyterLab or Colab);
- :func:`frame_explorer`: every setting of a few controls drawn in advance and embedded as PNG
  data, with sliders that swap between them in the page: works in the built book, offline, where
  no kernel runs.

Each experiment module defines a figure function ``draw(*values) -> Figure`` (one argument per
control, in order) and calls one of these; both take the controls as a mapping from the name
shown beside the slider to the values it can take.

Both show every figure in one house frame (:func:`fit_to_column`): as wide as the book's text
column, drawn at one image pixel per CSS pixel, so that a font of 8 points shows as 8 points at
100% zoom and none is smaller; and with every legend moved off the data
(:func:`bn_utils.style.keep_legends_off_data`). Each control's name, slider and readout sit
together on one row, apart from the next control's.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import matplotlib.pyplot as plt
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from .style import keep_legends_off_data, relayout

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = ["Control", "FrameExplorer", "fit_to_column", "frame_explorer", "live_explorer", "smallest_text_pt"]

MAX_FRAMES = 60  # each frame is a PNG embedded in the notebook and the page: keep the product small
# A notebook output in the book is 688 CSS pixels wide in a 1280-pixel window (sphinx-book-theme); the
# explorer's panel takes 1.6rem of padding and 2 px of border from that: a 656-pixel frame is never
# scaled down there (scripts/check_book_in_browser.py checks it).
COLUMN_PX = 656
FRAME_DPI = 96  # CSS pixels per inch: one image pixel per CSS pixel, so N-point type shows at N points
MIN_TEXT_PT = 8.0  # the smallest type in a frame, in points at 100% zoom
MIN_HEIGHT_IN = 3.2  # a wide two-panel figure is not squashed flatter than this (unless it was already)


def smallest_text_pt(fig: Figure, *, draw: bool = True) -> float:
    """The size in points of the smallest visible text in ``fig`` (tick labels, legend, titles, ...);
    ``draw=False`` where the figure has just been drawn (a draw makes the tick labels it shows)."""
    if draw:
        fig.draw_without_rendering()
    sizes = [
        float(text.get_fontsize())
        for text in fig.findobj(Text)
        if isinstance(text, Text) and text.get_visible() and text.get_text().strip() and text.get_figure() is fig
    ]
    return min(sizes, default=float("inf"))


def fit_to_column(
    fig: Figure, *, width_px: int = COLUMN_PX, dpi: int = FRAME_DPI, min_pt: float = MIN_TEXT_PT
) -> float:
    """Give ``fig`` the house frame: ``width_px`` pixels wide at ``dpi`` (a figure drawn wider keeps
    its proportions, down to a height of ``MIN_HEIGHT_IN``), its text scaled with it but never below
    ``min_pt`` points, laid out again, and every legend moved off the data. Returns the smallest
    text size in points (at least ``min_pt``)."""
    width, height = fig.get_size_inches()
    scale = width_px / dpi / width
    fig.set_dpi(dpi)
    fig.set_size_inches(width_px / dpi, max(height * scale, min(height, MIN_HEIGHT_IN)), forward=False)

    def resized(size: float) -> float:
        return max(size * min(scale, 1.0), min_pt)

    tick_labels: set[int] = set()
    for ax in fig.axes:
        axes: tuple[tuple[Literal["x", "y"], Axis], ...] = (("x", ax.xaxis), ("y", ax.yaxis))
        for name, axis in axes:
            for which, ticks in (("major", axis.get_major_ticks()), ("minor", axis.get_minor_ticks())):
                tick_labels.update(id(label) for tick in ticks for label in (tick.label1, tick.label2))
                if ticks:  # tick labels are made anew at each draw: set their size on the axis
                    size = resized(float(ticks[0].label1.get_fontsize()))
                    ax.tick_params(axis=name, which=cast(Literal["major", "minor"], which), labelsize=size)
    for text in fig.findobj(Text):
        if isinstance(text, Text) and id(text) not in tick_labels:
            text.set_fontsize(resized(float(text.get_fontsize())))
    relayout(fig)
    for _ in range(2):  # a legend moved below its axes needs room, and the new layout moves the data
        if not keep_legends_off_data(fig):
            break
        relayout(fig)
    return smallest_text_pt(fig, draw=False)


@dataclass(frozen=True)
class Control:
    """One slider: its name and the label shown for each of its positions."""

    name: str
    labels: tuple[str, ...]
    start: int = 0  # the position shown first


@dataclass(frozen=True)
class FrameExplorer:
    """Pre-drawn frames over the grid of ``controls`` (row-major, last control fastest)."""

    title: str
    controls: tuple[Control, ...]
    frames: tuple[str, ...]  # base64-encoded PNG images
    text_pt: float | None = None  # the smallest text in any frame, in points at 100% zoom (None: unknown)

    def __post_init__(self) -> None:
        expected = 1
        for control in self.controls:
            expected *= len(control.labels)
        if len(self.frames) != expected:
            raise ValueError(f"{len(self.frames)} frames for a grid of {expected} settings")

    def __repr__(self) -> str:  # the plain-text output beside the HTML: not every frame a second time
        controls = ", ".join(f"{c.name} ({len(c.labels)})" for c in self.controls)
        return f"FrameExplorer({self.title!r}: {controls}; {len(self.frames)} frames)"

    def index(self, positions: Sequence[int]) -> int:
        """The frame shown when each control is at the given position."""
        if len(positions) != len(self.controls):
            raise ValueError(f"need one position per control ({len(self.controls)}), got {len(positions)}")
        index = 0
        for control, position in zip(self.controls, positions, strict=True):
            if not 0 <= position < len(control.labels):
                raise ValueError(f"{control.name}: position {position} outside 0..{len(control.labels) - 1}")
            index = index * len(control.labels) + position
        return index

    def _repr_html_(self) -> str:
        digest = hashlib.sha1("".join(self.frames).encode()).hexdigest()[:10]
        root = f"bn-frames-{digest}"
        start = self.index([control.start for control in self.controls])
        width, height = Image.open(io.BytesIO(base64.b64decode(self.frames[start]))).size
        # Inline styles, so that it looks the same in JupyterLab as in the book (book/_static/course.css
        # adds colours that follow the theme): a grid of name | slider | readout, one row per control.
        rows = "".join(
            f'<label class="bn-frames-control" style="display:contents">'
            f'<span class="bn-frames-name" style="grid-column:1">{html.escape(control.name)}</span>'
            f'<input type="range" min="0" max="{len(control.labels) - 1}" step="1" value="{control.start}" '
            f'aria-label="{html.escape(control.name)}" style="grid-column:2;width:100%;margin:0">'
            f'<output class="bn-frames-readout" style="grid-column:3;min-width:min({max(map(len, control.labels))}ch,'
            f'10rem);font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere">'
            f"{html.escape(control.labels[control.start])}</output></label>"
            for control in self.controls
        )
        labels = json.dumps([list(control.labels) for control in self.controls])
        frames = json.dumps([f"data:image/png;base64,{frame}" for frame in self.frames])
        text_pt = "" if self.text_pt is None else f' data-text-pt="{self.text_pt:.1f}"'
        # rows further apart (0.9rem) than a row's name, slider and readout (0.6rem): each control
        # reads as one unit; the panel is as wide as the frame plus its padding and border
        return (
            f'<div class="bn-frames" id="{root}"{text_pt} style="box-sizing:border-box;'
            f"max-width:calc({width}px + 1.6rem + 2px);border:1px solid rgba(127,127,127,0.35);border-radius:6px;"
            'padding:0.6rem 0.8rem 0.4rem;margin:0.5rem 0">'
            f'<p class="bn-frames-title" style="margin:0 0 0.6rem;font-weight:600">{html.escape(self.title)}</p>'
            '<div class="bn-frames-controls" style="display:grid;grid-template-columns:max-content '
            "minmax(5rem,18rem) minmax(0,max-content);align-items:center;column-gap:0.6rem;row-gap:0.9rem;"
            f'margin-bottom:0.7rem">{rows}</div>'
            f'<img src="data:image/png;base64,{self.frames[start]}" alt="{html.escape(self.title)}" '
            f'width="{width}" height="{height}" style="display:block;max-width:100%;height:auto">'
            "<script>(function () {"
            f'const root = document.getElementById("{root}");'
            f"const labels = {labels}; const frames = {frames};"
            'const inputs = root.querySelectorAll("input"); const outputs = root.querySelectorAll("output");'
            'const image = root.querySelector("img");'
            "function show() { let index = 0;"
            " inputs.forEach((input, i) => { index = index * labels[i].length + Number(input.value);"
            " outputs[i].textContent = labels[i][Number(input.value)]; });"
            " image.src = frames[index]; }"
            'inputs.forEach(input => input.addEventListener("input", show));'
            "})();</script></div>"
        )


def _checked_controls(
    controls: Mapping[str, Sequence[object]], start: Mapping[str, object] | None
) -> dict[str, list[object]]:
    """The controls as lists, after checking each has values and ``start`` names known values."""
    if not controls:
        raise ValueError("an explorer needs at least one control")
    values = {name: list(options) for name, options in controls.items()}
    for name, options in values.items():
        if not options:
            raise ValueError(f"control {name!r} has no values")
    for name, value in (start or {}).items():
        if name not in values:
            raise ValueError(f"start names an unknown control {name!r}; controls are {list(values)}")
        if value not in values[name]:
            raise ValueError(f"start value {value!r} of {name!r} is not one of its values {values[name]}")
    return values


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def live_explorer(
    draw: Callable[..., Figure], controls: Mapping[str, Sequence[object]], *, start: Mapping[str, object] | None = None
) -> interactive:
    """ipywidgets controls over ``controls`` (name shown -> values, in the order of ``draw``'s
    arguments) that redraw ``draw(*setting)`` in the running kernel. Each control offers exactly
    its values, so its readout is the value the figure shows."""
    import ipywidgets as widgets

    values = _checked_controls(controls, start)
    start = dict(start or {})
    style = {"description_width": "initial"}  # the whole name, never "learning r..."
    sliders = {}
    for i, (name, options) in enumerate(values.items()):
        value = start.get(name, options[0])
        choices = [(_label(option), option) for option in options]
        if all(isinstance(option, str) for option in options) and len(options) <= 4:
            sliders[f"control_{i}"] = widgets.ToggleButtons(options=choices, value=value, description=name, style=style)
        else:
            sliders[f"control_{i}"] = widgets.SelectionSlider(
                options=choices, value=value, description=name, style=style, continuous_update=False
            )

    def show(**setting: object) -> None:
        fig = draw(*(setting[f"control_{i}"] for i in range(len(values))))
        fit_to_column(fig)
        from IPython.display import display

        display(fig)
        plt.close(fig)

    return widgets.interactive(show, **sliders)


def _png(fig: Figure, dpi: int) -> str:
    """The figure as a base64 PNG with a 64-colour palette: a third of the size of a full-colour
    one, which matters when dozens of frames are stored in the notebook and the page. Drawn at its
    exact size (no tight bounding box), so that every frame of an explorer has the same size.

    The pixels are those ``fig.savefig(format="png", dpi=dpi)`` writes (the same Agg draw), taken
    from the canvas directly instead of through a full-colour PNG that is encoded only to be
    decoded again."""
    if fig.dpi != dpi:
        fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgba = canvas.buffer_rgba()
    width, height = rgba.shape[1], rgba.shape[0]
    plt.close(fig)
    image = (
        Image.frombuffer("RGBA", (width, height), rgba, "raw", "RGBA", 0, 1)
        .convert("RGB")
        .quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    )
    small = io.BytesIO()
    image.save(small, format="PNG", optimize=True)
    return base64.b64encode(small.getvalue()).decode("ascii")


def frame_explorer(
    draw: Callable[..., Figure],
    controls: Mapping[str, Sequence[object]],
    *,
    title: str,
    start: Mapping[str, object] | None = None,
    width_px: int = COLUMN_PX,
) -> FrameExplorer:
    """Draw ``draw(*setting)`` for every setting of ``controls`` (name shown -> values, in the
    order of ``draw``'s arguments), each in the house frame (:func:`fit_to_column`, ``width_px``
    wide), and return the explorer that shows them; ``start`` picks the setting shown first
    (default: each control's first value)."""
    values = _checked_controls(controls, start)
    count = 1
    for options in values.values():
        count *= len(options)
    if count > MAX_FRAMES:
        raise ValueError(f"{count} settings would embed {count} images; at most {MAX_FRAMES}: use fewer values")
    start = dict(start or {})
    frames, text_pt = [], float("inf")
    for setting in itertools.product(*values.values()):
        fig = draw(*setting)
        if not isinstance(fig, Figure):
            raise TypeError(f"draw must return a matplotlib Figure, got {type(fig).__name__}")
        text_pt = min(text_pt, fit_to_column(fig, width_px=width_px))
        frames.append(_png(fig, FRAME_DPI))
    return FrameExplorer(
        title=title,
        controls=tuple(
            Control(
                name,
                tuple(_label(value) for value in options),
                options.index(start[name]) if name in start else 0,
            )
            for name, options in values.items()
        ),
        frames=tuple(frames),
        text_pt=text_pt,
    )
