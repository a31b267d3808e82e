"""The house style: every registered normalization has one colour and one display name."""

import ast
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from bn_utils import style
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


def test_publish_draws_a_figure_without_legend_once_with_the_same_pixels(monkeypatch):
    """Without a legend there is nothing to move, so no draw before the one that shows the figure:
    the image is the same as with that draw (constrained layout, which lays out at each draw)."""
    from IPython.core.formatters import format_display_data
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(InteractiveShell.instance(), {"png"})
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda bundle, raw, metadata: shown.append(bundle))

    def figure():
        fig, axes = plt.subplots(1, 2, figsize=style.FIGSIZE["pair"], layout="constrained")
        for i, ax in enumerate(axes):
            ax.plot([1, 10, 100], [3e-3, 1e-1, 10 ** (i + 1)], marker="o")
            ax.set(yscale="log", title=f"panel {i}", xlabel="step", ylabel="gradient norm")
        return fig

    drawn = figure()
    drawn.draw_without_rendering()  # what publish did before showing every figure
    expected = format_display_data(drawn)[0]["image/png"]
    plt.close(drawn)
    draws = []
    fig = figure()
    monkeypatch.setattr(fig, "draw_without_rendering", lambda: draws.append(1))
    publish(fig, "fig_plain")
    assert not draws, "no legend: no extra draw"
    assert shown[0]["image/png"] == expected


# ---------------------------------------------------------------------------------------------
# One colour, one meaning; every colour and size from the house style

# The roles that are not series (each a meaning of its own), and every colour that must not look like a norm's.
NON_SERIES_ROLES = {
    "guide": style.GUIDE,
    "outline": style.OUTLINE,
    "faint": style.FAINT,
    "text on a bar": style.ON_COLOR,
    "text on a light cell": style.ON_LIGHT,
    **{f"{name} statistics": color for name, color in style.STATISTICS_COLORS.items()},
    **{f"{mode} mode": color for mode, color in style.MODE_COLORS.items()},
    **{f"BN {place} the activation": color for place, color in style.PLACEMENT_COLORS.items()},
    **{f"statistics frozen at step {step}": color for step, color in style.FREEZE_COLORS.items()},
}
ROLE_COLORS = {  # BN before the activation has BN's colour, on purpose
    **{role: color for role, color in NON_SERIES_ROLES.items() if role != "BN before the activation"},
    **{f"series {i}": color for i, color in enumerate(style.SERIES)},
}


def _looks_like(first: str, second: str) -> str | None:
    """Why two colours of different meanings cannot be told apart (None if they can)."""
    distance = style.color_difference(first, second)
    return f"Delta E {distance:.0f} < 20" if distance < 20 else None


@pytest.mark.parametrize("role", ROLE_COLORS)
def test_no_role_takes_a_colour_that_looks_like_a_norms(role):
    for norm, color in style.NORM_COLORS.items():
        reason = _looks_like(ROLE_COLORS[role], color)
        assert reason is None, f"the {role} colour {ROLE_COLORS[role]} looks like {norm}'s {color} ({reason})"


def _series_clashes(series: list[str], roles: dict[str, str]) -> list[str]:
    """Each series colour that looks like a role's colour, as a message naming both."""
    return [
        f"series {index}'s colour {color} looks like the {role} colour {role_color} ({reason})"
        for index, color in enumerate(series)
        for role, role_color in roles.items()
        if (reason := _looks_like(color, role_color))
    ]


def test_no_series_takes_a_colour_that_looks_like_a_roles():
    assert _series_clashes(style.SERIES, NON_SERIES_ROLES) == []


def test_a_series_colour_reused_by_a_role_is_found_and_named():
    earlier = ["#CC6677", "#117733", "#AA4499"]  # the series as they were: batch and running statistics' colours
    assert _series_clashes(earlier, NON_SERIES_ROLES) == [
        "series 0's colour #CC6677 looks like the batch statistics colour #CC6677 (Delta E 0 < 20)",
        "series 0's colour #CC6677 looks like the train mode colour #CC6677 (Delta E 0 < 20)",
        "series 1's colour #117733 looks like the running statistics colour #117733 (Delta E 0 < 20)",
        "series 1's colour #117733 looks like the eval mode colour #117733 (Delta E 0 < 20)",
    ]


def test_the_series_colours_cover_the_largest_figure():
    """Chapter 6 draws 5 residual architectures in series colours at once (residual.ARCHITECTURES)."""
    from bn_utils.experiments.residual import ARCHITECTURES

    drawn = [arch.color for arch in ARCHITECTURES.values() if arch.color in style.SERIES]
    assert len(drawn) == len(set(drawn)) == 5 <= len(style.SERIES)


def test_the_colours_of_one_figure_kind_are_told_apart():
    groups = (style.SERIES, style.STATISTICS_COLORS, style.PLACEMENT_COLORS, style.FREEZE_COLORS)
    for group in (list(colors.values()) if isinstance(colors, dict) else colors for colors in groups):
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                assert style.color_difference(first, second) >= 20, (first, second)


def test_modes_take_the_colour_of_the_statistics_they_normalize_with_and_bn_keeps_its_own():
    assert style.MODE_COLORS == {
        "train": style.STATISTICS_COLORS["batch"],
        "eval": style.STATISTICS_COLORS["running"],
        "train_sorted": style.STATISTICS_COLORS["batch_sorted"],
    }
    assert style.PLACEMENT_COLORS["before"] == style.NORM_COLORS["batch"], "BN before the activation is BN"
    assert all(color_for(f"depth {i}", i) not in style.NORM_COLORS.values() for i in range(20))


def test_figure_sizes_come_by_kind():
    assert style.figsize("pair") == (11.0, 3.8) and style.figsize("cubes", 4) == (12.0, 3.4)
    assert style.figsize("bars", 5) == (8.5, 4.0)
    with pytest.raises(ValueError, match="unknown figure kind 'wide'; valid kinds are: panel"):
        style.figsize("wide")
    with pytest.raises(ValueError, match="per item"):
        style.figsize("pair", 3)


HEX = re.compile(r"#[0-9A-Fa-f]{6}")
COLOR_KEYWORDS = {"color", "colors", "facecolor", "facecolors", "edgecolor", "edgecolors", "c"}


def _style_leaks(source: str) -> list[str]:
    """What a module picks for itself instead of asking the house style: palette entries, colour
    literals (hex or named), figure sizes written as numbers."""
    leaks = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in ("PALETTE", "CYCLE", "EXTRA"):
            leaks.append(f"line {node.lineno}: {node.id}")
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"#[0-9A-Fa-f]{6}", node.value)
        ):
            leaks.append(f"line {node.lineno}: hex colour {node.value!r}")
        elif isinstance(node, ast.keyword) and node.arg in COLOR_KEYWORDS and isinstance(node.value, ast.Constant):
            leaks.append(f"line {node.lineno}: {node.arg}={node.value.value!r}")
        elif isinstance(node, ast.keyword) and node.arg == "figsize" and isinstance(node.value, ast.Tuple):
            leaks.append(f"line {node.lineno}: figsize=(...)")
        elif isinstance(node, ast.arguments):
            named = [*node.posonlyargs, *node.args][-len(node.defaults) :] if node.defaults else []
            pairs = [*zip(named, node.defaults, strict=True), *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
            leaks += [
                f"line {arg.lineno}: {arg.arg}=(...) by default"
                for arg, default in pairs
                if arg.arg == "figsize" and isinstance(default, ast.Tuple)
            ]
    return sorted(leaks, key=lambda leak: int(leak.split(":")[0].removeprefix("line ")))


EXPERIMENTS_DIR = Path(style.__file__).parent / "experiments"
EXPERIMENTS = sorted(EXPERIMENTS_DIR.rglob("*.py"))  # an experiment's package too


@pytest.mark.parametrize(
    "path", EXPERIMENTS, ids=[path.relative_to(EXPERIMENTS_DIR).with_suffix("").as_posix() for path in EXPERIMENTS]
)
def test_experiment_modules_take_every_colour_and_size_from_the_house_style(path):
    assert _style_leaks(path.read_text()) == []


def test_the_leak_finder_finds_each_kind_of_leak():
    source = (
        "def f(ax, figsize=(5, 3)):\n"
        "    ax.plot(color=PALETTE['blue'])\n"
        "    ax.bar(edgecolor='#333333')\n"
        "    ax.axhline(0, color='grey')\n"
        "    plt.subplots(figsize=(6, 4))\n"
        "    ax.plot(color=GUIDE)\n"
    )
    assert _style_leaks(source) == [
        "line 1: figsize=(...) by default",
        "line 2: PALETTE",
        "line 3: edgecolor='#333333'",
        "line 3: hex colour '#333333'",
        "line 4: color='grey'",
        "line 5: figsize=(...)",
    ]


def _colormaps_named(source: str) -> list[str]:
    """Where a module names a colour map itself instead of taking the house style's
    (``style.SEQUENTIAL_CMAP``): ``cmap="..."``, ``get_cmap("...")``, ``colormaps["..."]``."""
    named = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "cmap" and isinstance(node.value, ast.Constant):
            named.append(f"line {node.lineno}: cmap={node.value.value!r}")
        elif isinstance(node, ast.Call):
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if function == "get_cmap" and any(isinstance(arg, ast.Constant) for arg in node.args):
                named.append(f"line {node.lineno}: get_cmap({', '.join(ast.unparse(a) for a in node.args)})")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            owner = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
            if owner == "colormaps":
                named.append(f"line {node.lineno}: colormaps[{node.slice.value!r}]")
    return sorted(named, key=lambda leak: int(leak.split(":")[0].removeprefix("line ")))


PACKAGE_DIR = Path(style.__file__).parent
MODULES = sorted(path for path in PACKAGE_DIR.rglob("*.py") if path != PACKAGE_DIR / "style.py")


@pytest.mark.parametrize("path", MODULES, ids=[path.relative_to(PACKAGE_DIR).as_posix() for path in MODULES])
def test_no_module_but_the_style_names_a_colour_map(path):
    assert _colormaps_named(path.read_text()) == []


def test_the_colour_map_finder_finds_each_way_of_naming_one():
    source = (
        "cmap = mpl.colormaps['viridis']\n"
        "cmap = plt.get_cmap('magma')\n"
        "ax.imshow(values, cmap='Blues')\n"
        "cmap = get_cmap('plasma', 8)\n"
        "cmap = mpl.colormaps[SEQUENTIAL_CMAP]\n"
        "cmap = plt.get_cmap(SEQUENTIAL_CMAP)\n"
        "ax.imshow(values, cmap=SEQUENTIAL_CMAP)\n"
    )
    assert _colormaps_named(source) == [
        "line 1: colormaps['viridis']",
        "line 2: get_cmap('magma')",
        "line 3: cmap='Blues'",
        "line 4: get_cmap('plasma', 8)",
    ]


def test_the_house_colour_map_is_a_matplotlib_map():
    assert style.SEQUENTIAL_CMAP in plt.colormaps()
