"""Fixtures shared by the test files."""

import sys

import pytest

# jsonschema (which nbformat imports) checks the "iri" format with rfc3987_syntax where that is
# installed, and importing it builds a Lark grammar: ~1.1 s of CPU in every test process, for a
# format that no test and no notebook schema checks. Without it, jsonschema leaves that one check out.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def digits():
    """The handwritten digits (float32, the default split), loaded once per test run."""
    # imported here, not at the top: pytest-xdist's controlling process loads this file too, and runs no
    # test; bn_utils would bring torch into it (about 1 s of CPU)
    from bn_utils import load_digits

    return load_digits()


@pytest.fixture
def shown_figures(monkeypatch):
    """The figures an explorer shows, in order. ipywidgets swallows an exception raised inside a
    redraw, so a test of an explorer asserts on what the redraw drew, never on how long it took."""
    import IPython.display
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    monkeypatch.setattr(IPython.display, "display", shown.append)
    return shown


@pytest.fixture(autouse=True)
def close_figures():
    """Close the figures a test drew, so plot tests do not pile up open figures."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def unencoded_frames(monkeypatch):
    """Kernel-free explorers built without their PNG step, for the tests of which frames an explorer
    has (its grid of settings, labels, start) rather than of the images: every frame is still drawn
    by the chapter's figure function, fitted to the column (bn_utils.explorers.fit_to_column) and
    drawn again artist by artist (``draw_without_rendering``), so a setting that cannot be drawn still
    fails the test; only rasterizing it and encoding the PNG, half of a frame's CPU, is left out
    (tests/test_explorers.py tests that step). Each frame is the text ``frame <n>``, n counting from 0."""
    import itertools

    import matplotlib.pyplot as plt

    import bn_utils.explorers

    numbers = itertools.count()

    def drawn_not_encoded(fig, dpi):
        fig.draw_without_rendering()
        plt.close(fig)
        return f"frame {next(numbers)}"

    monkeypatch.setattr(bn_utils.explorers, "_png", drawn_not_encoded)


@pytest.fixture
def computed_afresh(monkeypatch):
    """Switch bn_utils.cache off for one test: a test that spies on what a remembered computation
    calls (``train_stacked``, say) must see it run, also when ``BN_CACHE_DIR`` already holds the
    result from an earlier run, and must not leave a result computed under its spy behind."""
    monkeypatch.setenv("BN_CACHE", "off")
