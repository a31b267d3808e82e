"""Fixtures shared by the test files."""

import pytest

from bn_utils import load_digits


@pytest.fixture(scope="session")
def digits():
    """The handwritten digits (float32, the default split), loaded once per test run."""
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
