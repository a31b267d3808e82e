"""The course's house style, shared by every experiment's plots: colours, names, bands, and publishing
figures and numbers to the book (myst-nb glue, with a plain fallback where myst-nb is missing).

Each normalization has one colour and one display name in every chapter (``NORM_STYLES``, read
from the norm registry :data:`bn_utils.norms.NORMS`).
Experiment modules (``bn_utils.experiments``) draw their own figures with these pieces.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.legend import Legend
from matplotlib.path import Path as MplPath
from matplotlib.transforms import Bbox

from .history import History, stack_metric
from .norms import NORMS
from .palette import EXTRA, PALETTE

__all__ = [
    "PALETTE",
    "CYCLE",
    "SERIES",
    "GUIDE",
    "OUTLINE",
    "FAINT",
    "ON_COLOR",
    "ON_LIGHT",
    "STATISTICS_COLORS",
    "MODE_COLORS",
    "PLACEMENT_COLORS",
    "FREEZE_COLORS",
    "SEQUENTIAL_CMAP",
    "FIGSIZE",
    "FIGSIZE_PER_ITEM",
    "figsize",
    "grid_figsize",
    "series_color",
    "color_difference",
    "NormStyle",
    "NORM_STYLES",
    "NORM_COLORS",
    "NORM_LABELS",
    "METRIC_LABELS",
    "use_house_style",
    "color_for",
    "label_for",
    "plot_band",
    "plot_histories",
    "publish",
    "describe_figure",
    "glue",
    "glue_values",
    "save_figure",
    "keep_legends_off_data",
    "relayout",
]


class NormStyle(NamedTuple):
    """How one normalization appears in every figure: its display name and its colour."""

    label: str
    color: str


# One entry per registered norm, read from the norm registry (bn_utils.norms.NORMS), which owns them.
NORM_STYLES: dict[str, NormStyle] = {name: NormStyle(spec.label, spec.color) for name, spec in NORMS.items()}
NORM_COLORS = {name: style.color for name, style in NORM_STYLES.items()}
NORM_LABELS = {name: style.label for name, style in NORM_STYLES.items()}

# Colour roles. One colour means one thing across the course: a norm's colour (above) marks that norm
# and nothing else; the roles below take colours that no norm has (tests/test_style.py checks it).
GUIDE = EXTRA["grey"]  # reference lines: thresholds, predictions, true values, zero lines, markers
OUTLINE = EXTRA["dark_grey"]  # edges of bars and cells
FAINT = EXTRA["light_grey"]  # context only (the cells a statistic does not average over)
ON_COLOR = "#FFFFFF"  # text written on a coloured bar or a dark cell
ON_LIGHT = EXTRA["dark_grey"]  # text written on a light cell (ink, not a mark: the outlines' dark grey)
# Batch and running statistics, and the modes that normalize with them: training mode uses the
# batch's statistics, eval mode the running ones ("sorted": batches of a class-sorted set).
STATISTICS_COLORS = {"batch": EXTRA["rose"], "running": EXTRA["dark_green"], "batch_sorted": EXTRA["brown"]}
MODE_COLORS = {
    "train": STATISTICS_COLORS["batch"],
    "eval": STATISTICS_COLORS["running"],
    "train_sorted": STATISTICS_COLORS["batch_sorted"],
}
# Where BN sits in a block: before the activation (the BN paper's place, and BN's colour: the BN of
# every other chapter) or after it.
PLACEMENT_COLORS = {"before": NORM_COLORS["batch"], "after": EXTRA["olive"]}
# BN's statistics frozen at a step (chapter 6): greys, darker for an earlier freeze.
FREEZE_COLORS = {0: "#3C3C3C", 1: "#6F6F6F", 10: "#A8A8A8"}
# Series that are not norms (depths, scales, steps, architectures), in order: colours that no norm and
# no role above has (tests/test_style.py checks it). A figure shows at most 5 at once (chapter 6's
# residual architectures); more repeat (series_color cycles), e.g. chapter 9's 10 MNIST-1D classes.
SERIES = [EXTRA[name] for name in ("tol_purple", "navy", "magenta", "dark_khaki", "salmon", "sand", "pear")]
CYCLE = SERIES  # the former name: matplotlib's colour cycle in the house style
# The colour map of every figure that maps a value to a colour (heat maps, a numeric series coloured
# by its value): viridis, perceptually uniform (equal steps in value look like equal steps in colour)
# and readable by colour-blind readers and in greyscale (the map every figure has used). Named here
# only: a module asks for SEQUENTIAL_CMAP, never a map by name (tests/test_style.py checks it).
SEQUENTIAL_CMAP = "viridis"

# Figure sizes (inches) by kind of figure: every figure of bn_utils takes its size from here. A
# notebook's stored output shows its figure's size as text ("<Figure size 1100x380 with 2 Axes>",
# compared by nbval), so a size changes only together with re-executed notebooks.
FIGSIZE: dict[str, tuple[float, float]] = {
    "panel": (6.4, 3.8),  # one panel (matplotlib's default in the house style)
    "panel_mid": (6.4, 3.6),  # one panel, a little lower
    "panel_low": (6.4, 3.4),  # one panel, lower still
    "panel_small": (5.0, 3.6),  # one small panel
    "panel_narrow": (6.0, 3.8),  # one panel, a little narrower
    "frame": (7.0, 3.6),  # one frame of a kernel-free explorer (drawn at the width it is shown)
    "pair": (11.0, 3.8),  # two panels side by side
    "pair_mid": (11.0, 3.6),
    "pair_high": (11.0, 3.9),
    "pair_wide": (12.0, 4.0),  # two panels with long tick labels or legends
    "pair_wide_low": (12.0, 3.8),
    "pair_wider": (13.0, 4.0),
    "triple": (15.0, 3.8),  # three panels side by side
    "triple_narrow": (14.0, 3.8),
    "triple_high": (15.0, 4.2),
}
# Figures that grow with what they show: (width per item, extra width, height).
FIGSIZE_PER_ITEM: dict[str, tuple[float, float, float]] = {
    "profile_columns": (6.0, 0.0, 7.0),  # a column of two panels per norm
    "cubes": (3.0, 0.0, 3.4),  # one 3-D cube per normalization
    "bars": (1.3, 2.0, 4.0),  # one bar per architecture
}

METRIC_LABELS = {
    "loss": "training loss (per step)",
    "train_acc": "train accuracy",
    "test_acc": "test accuracy",
    "test_loss": "test loss",
}


def use_house_style() -> None:
    """Apply the course's matplotlib style (call once, in a notebook's setup cell)."""
    mpl.rcParams.update(
        {
            "figure.figsize": FIGSIZE["panel"],
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "legend.fontsize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": cycler(color=SERIES),
            "lines.linewidth": 2.0,
        }
    )


def color_for(label: str, index: int = 0) -> str:
    """The colour of a normalization name, or the index-th series colour (:data:`SERIES`) for other labels."""
    style = NORM_STYLES.get(label)
    return style.color if style else series_color(index)


def color_difference(first: str, second: str) -> float:
    """How different two colours look: the distance of their CIE L*a*b* coordinates (Delta E 1976,
    D65 white). About 2 is just noticeable; the course keeps colours of different meanings >= 20 apart."""
    labs = []
    for color in (first, second):
        rgb = np.array(mpl.colors.to_rgb(color))
        linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
        xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
        f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
        labs.append(np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])]))
    return float(np.linalg.norm(labs[0] - labs[1]))


def series_color(index: int) -> str:
    """The index-th colour for series that are not norms (:data:`SERIES`, repeating)."""
    return SERIES[index % len(SERIES)]


def grid_figsize(columns: int, rows: int) -> tuple[float, float]:
    """The size of a grid of labelled cells (e.g. learning rates across, architectures down):
    1.1 inches per column and 0.42 per row, with room for the row labels and the colour bar."""
    return 1.1 * columns + 3.2, 0.42 * rows + 1.6


def figsize(kind: str, items: int | None = None) -> tuple[float, float]:
    """The size of a figure of ``kind`` (:data:`FIGSIZE`), or of one that shows ``items`` things
    (:data:`FIGSIZE_PER_ITEM`)."""
    if items is None:
        if kind not in FIGSIZE:
            raise ValueError(f"unknown figure kind {kind!r}; valid kinds are: {', '.join(FIGSIZE)}")
        return FIGSIZE[kind]
    if kind not in FIGSIZE_PER_ITEM:
        raise ValueError(f"unknown figure kind {kind!r} per item; valid kinds are: {', '.join(FIGSIZE_PER_ITEM)}")
    width, extra, height = FIGSIZE_PER_ITEM[kind]
    return width * items + extra, height


def label_for(name: str) -> str:
    """The display name of a normalization ("batch" -> "BN"); other labels unchanged."""
    style = NORM_STYLES.get(name)
    return style.label if style else name


def plot_band(
    ax: Axes, x: np.ndarray, values: np.ndarray, *, label: str, color: str | None = None, band: str = "std"
) -> None:
    """Mean over seeds (rows of ``values``) as a line with a shaded band.

    ``band="std"`` shades mean +/- one standard deviation, ``"minmax"`` the range over
    seeds. NaNs (runs that stopped) are left out of each point's statistics.
    """
    if band not in ("std", "minmax"):
        raise ValueError(f"band must be 'std' or 'minmax', got {band!r}")
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] != len(x):
        raise ValueError(f"values has {values.shape[1]} columns but x has {len(x)} points")
    keep = ~np.all(np.isnan(values), axis=0)
    x, values = np.asarray(x)[keep], values[:, keep]
    mean = np.nanmean(values, axis=0)
    if band == "std":
        low, high = mean - np.nanstd(values, axis=0), mean + np.nanstd(values, axis=0)
    else:
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    (line,) = ax.plot(x, mean, label=f"{label} (n={len(values)})", color=color)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def plot_histories(
    runs: Mapping[str, Sequence[History]],
    metric: str = "test_acc",
    *,
    ax: Axes | None = None,
    band: str = "std",
    title: str | None = None,
    norms: Mapping[str, str] | None = None,
) -> Axes:
    """One band per entry of ``runs`` (label -> histories over seeds); a norm name as label gets
    the norm's colour and display name ("batch" -> "BN"), and so does a label that ``norms``
    maps to a norm name. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots()
    for i, (label, histories) in enumerate(runs.items()):
        steps, values = stack_metric(histories, metric)
        color = color_for((norms or {}).get(label, label), i)
        plot_band(ax, steps, values, label=NORM_LABELS.get(label, label), color=color, band=band)
    ax.set_xlabel("training step")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


LEGEND_LOCATIONS = (
    "upper right",
    "upper left",
    "lower right",
    "lower left",
    "center right",
    "center left",
    "upper center",
    "lower center",
)


def _data_obstacles(ax: Axes) -> list[tuple[MplPath, bool]]:
    """What a legend must not cover, in display coordinates: every line (its segments), band and bar
    (filled), scatter point and text drawn in the axes; each as (path, filled)."""
    obstacles: list[tuple[MplPath, bool]] = []
    for line in ax.get_lines():
        if line.get_visible() and len(np.asarray(line.get_xydata())):
            path = line.get_transform().transform_path(line.get_path())
            if line.get_linestyle() in ("None", "none", "", " "):
                obstacles.extend((MplPath(np.array([vertex, vertex])), False) for vertex in np.asarray(path.vertices))
            else:
                obstacles.append((path, False))
    for collection in ax.collections:
        if not collection.get_visible():
            continue
        offsets = np.asarray(collection.get_offsets())
        if isinstance(collection, PathCollection) and len(offsets):  # scatter points
            points = collection.get_offset_transform().transform(offsets)
            obstacles.extend((MplPath(np.array([point, point])), False) for point in points)
            continue
        filled = isinstance(collection, PolyCollection)
        transform = collection.get_transform()
        obstacles.extend((transform.transform_path(path), filled) for path in collection.get_paths())
    for patch in ax.patches:
        if patch.get_visible():
            obstacles.append((patch.get_transform().transform_path(patch.get_path()), True))
    return obstacles


def _covered(legend_box: Bbox, obstacles: list[tuple[MplPath, bool]], texts: list[Bbox]) -> int:
    hits = sum(bool(path.intersects_bbox(legend_box, filled=filled)) for path, filled in obstacles)
    return hits + sum(legend_box.overlaps(box) for box in texts)


def keep_legends_off_data(fig: Figure) -> int:
    """Move every legend that covers data (a line, a band, a bar, a point or a label in its axes) to
    a corner of its axes where it covers none, or, where no such place exists, below the axes (under
    the x label, in as many columns as fit). Call it once the figure is laid out; lay it out again if
    it returns more than 0, the number of legends it moved outside their axes."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:  # the data limits as they will be drawn (no whole draw: it costs more than all this)
        ax.apply_aspect()
        ax.get_xlim(), ax.get_ylim()
    outside = 0
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        obstacles = _data_obstacles(ax)
        texts = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible() and t.get_text()]
        original = legend._loc  # type: ignore[attr-defined]
        if _covered(legend.get_window_extent(renderer), obstacles, texts) == 0:
            continue
        for location in LEGEND_LOCATIONS:
            legend.set_loc(cast(Any, location))
            if _covered(legend.get_window_extent(renderer), obstacles, texts) == 0:
                break
        else:
            legend.set_loc(original)
            _legend_below(fig, ax, legend, renderer)
            outside += 1
    return outside


def _legend_below(fig: Figure, ax: Axes, legend: Legend, renderer: RendererBase) -> None:
    """Replace ``legend`` by one under ``ax``'s x label, in as many columns as fit its width."""
    pairs = [(h, t.get_text()) for h, t in zip(legend.legend_handles, legend.get_texts(), strict=True) if h]
    handles, labels = [h for h, _ in pairs], [label for _, label in pairs]
    size = legend.get_texts()[0].get_fontsize() if labels else mpl.rcParams["legend.fontsize"]
    tight = ax.get_tightbbox(renderer)
    below = ax.get_position().y0 * fig.bbox.height - (tight.y0 if tight else 0.0)  # ticks and x label, in pixels
    pad = max(below, 0.0) * 72 / fig.dpi / float(size) + 0.3  # in font sizes, as matplotlib wants it
    legend.remove()
    width = ax.get_window_extent(renderer).width
    for columns in range(len(labels), 0, -1):
        new = ax.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            borderaxespad=pad,
            ncol=columns,
            frameon=False,
            fontsize=size,
        )
        if new.get_window_extent(renderer).width <= width or columns == 1:
            break


def relayout(fig: Figure) -> None:
    """Lay ``fig`` out again after a change of size or legends: constrained layout does so by itself
    at each draw; any other figure (no layout engine, or laid out once by tight_layout) gets
    tight_layout."""
    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not compatible with tight_layout": kept as it is
            fig.tight_layout()


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` (PNG by default, by the path's suffix), creating folders; returns the path."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def describe_figure(fig: Figure) -> str:
    """A text description of a figure from its panels' titles and axis labels: the alt text a
    screen reader reads on the notebook pages of the book."""
    panels = []
    for ax in fig.axes:
        title, x, y = ax.get_title(), ax.get_xlabel(), ax.get_ylabel()
        if not (title or x or y):
            continue  # a colour bar or an inset without labels
        axes = f"{y or 'value'} against {x}" if x else (y or "")
        panels.append(f"{title}: {axes}" if title and axes else title or axes)
    if not panels:
        return "Figure"
    return ("Figure: " if len(panels) == 1 else f"Figure with {len(panels)} panels: ") + "; ".join(panels) + "."


def _has_visible_legend(fig: Figure) -> bool:
    """Whether some axes of ``fig`` has a visible legend (what :func:`keep_legends_off_data` moves)."""
    return any((legend := ax.get_legend()) is not None and legend.get_visible() for ax in fig.axes)


def publish(fig: Figure, name: str) -> None:
    """Show ``fig`` in the notebook, with its description (:func:`describe_figure`) as alt text,
    glued under ``name`` so the book's prose can paste it; closes it so it is not shown twice. A
    legend that covers data is moved first (:func:`keep_legends_off_data`).

    This is myst-nb's ``glue(name, fig, display=True)`` (the output carries the glue record in its
    metadata, which the book reads) plus the alt text, so it needs no myst-nb in the kernel. The
    figure is stored as ``image/png``, which nbval does not compare: its pixels differ between
    arithmetic paths."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display

    if _has_visible_legend(fig):  # without one there is nothing to move: no draw before the one that shows it
        fig.draw_without_rendering()  # lay it out as it will be drawn
        if keep_legends_off_data(fig):
            relayout(fig)
    bundle, metadata = format_display_data(fig)
    metadata["scrapbook"] = {"name": name, "mime_prefix": ""}
    metadata.setdefault("image/png", {})["alt"] = describe_figure(fig)
    display(bundle, raw=True, metadata=metadata)
    plt.close(fig)


def glue(name: str, value: object, *, display: bool = False) -> None:
    """Store ``value`` under ``name`` for the book's prose (myst-nb glue); without myst-nb (e.g.
    on Colab) there is no book to paste into, so the value is only shown if ``display``."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
    else:
        myst_glue(name, value, display=display)


def glue_values(values: Mapping[str, object]) -> None:
    """Glue every entry of ``values`` (key -> number already rounded as the prose shows it, or text)
    for ``{glue:text}`` in the chapter page, without showing them."""
    if not isinstance(values, Mapping) or not all(isinstance(key, str) and key for key in values):
        raise TypeError("glue_values needs a mapping from non-empty names (str) to values")
    for name, value in values.items():
        glue(name, value, display=False)
