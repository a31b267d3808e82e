"""Fixtures shared by the test files."""

import pytest

from bn_utils import load_digits


@pytest.fixture(scope="session")
def digits():
    """The handwritten digits (float32, the default split), loaded once per test run."""
    return load_digits()


@pytest.fixture(autouse=True)
def close_figures():
    """Close the figures a test drew, so plot tests do not pile up open figures."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
