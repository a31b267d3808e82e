"""Explorers: a figure function and its controls, shown two ways.

- :func:`live_explorer`: ipywidgets sliders that call the figure function in the running kernel
  (any value of any control, in JupyterLab or Colab);
- :func:`frame_explorer`: every setting of a few controls drawn in advance and embedded as PNG
  data, with sliders that swap between them in the page: works in the built book, offline, where
  no kernel runs.

Each experiment module defines a figure function ``draw(*values) -> Figure`` (one argument per
control, in order) and calls one of these; both take the controls as a mapping from the name
shown beside the slider to the values it can take.
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
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from PIL import Image

if TYPE_CHECKING:
    from ipywidgets import interactive

__all__ = ["Control", "FrameExplorer", "frame_explorer", "live_explorer"]

MAX_FRAMES = 60  # each frame is a PNG embedded in the notebook and the page: keep the product small


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

    def __post_init__(self) -> None:
        expected = 1
        for control in self.controls:
            expected *= len(control.labels)
        if len(self.frames) != expected:
            raise ValueError(f"{len(self.frames)} frames for a grid of {expected} settings")

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
        sliders = "".join(
            f'<label class="bn-frames-control">{html.escape(control.name)} '
            f'<input type="range" min="0" max="{len(control.labels) - 1}" step="1" value="{control.start}" '
            f'aria-label="{html.escape(control.name)}"> '
            f"<output>{html.escape(control.labels[control.start])}</output></label>"
            for control in self.controls
        )
        labels = json.dumps([list(control.labels) for control in self.controls])
        frames = json.dumps([f"data:image/png;base64,{frame}" for frame in self.frames])
        return (
            f'<div class="bn-frames" id="{root}">'
            f'<p class="bn-frames-title">{html.escape(self.title)}</p>{sliders}'
            f'<img src="data:image/png;base64,{self.frames[start]}" alt="{html.escape(self.title)}" '
            'style="max-width:100%;height:auto">'
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
        from IPython.display import display

        display(fig)
        plt.close(fig)

    return widgets.interactive(show, **sliders)


def _png(fig: Figure, dpi: int) -> str:
    """The figure as a base64 PNG with a 64-colour palette: a third of the size of a full-colour
    one, which matters when dozens of frames are stored in the notebook and the page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    image = (
        Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
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
    dpi: int = 72,
) -> FrameExplorer:
    """Draw ``draw(*setting)`` for every setting of ``controls`` (name shown -> values, in the
    order of ``draw``'s arguments) and return the explorer that shows them; ``start`` picks the
    setting shown first (default: each control's first value)."""
    values = _checked_controls(controls, start)
    count = 1
    for options in values.values():
        count *= len(options)
    if count > MAX_FRAMES:
        raise ValueError(f"{count} settings would embed {count} images; at most {MAX_FRAMES}: use fewer values")
    start = dict(start or {})
    frames = []
    for setting in itertools.product(*values.values()):
        fig = draw(*setting)
        if not isinstance(fig, Figure):
            raise TypeError(f"draw must return a matplotlib Figure, got {type(fig).__name__}")
        frames.append(_png(fig, dpi))
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
    )
