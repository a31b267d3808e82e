"""tests/nbval_on_demand.py: nbval is loaded wherever a run can collect a notebook, and only there."""

from pathlib import Path

import nbval_on_demand as plugin
import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "paths, expected",
    [
        ([], True),  # the testpaths
        (["5-9"], True),  # `pytest --claim-seeds 5-9`: the option's value, parsed before the option is known
        (["notebooks"], True),
        (["notebooks/01_bn_from_scratch.ipynb"], True),
        (["tests/test_cache.py"], False),
        (["tests/test_cache.py::test_the_key_names_the_arithmetic", "5-9"], False),
        (["bn_utils"], False),
    ],
)
def test_paths_that_can_hold_a_notebook(paths, expected):
    assert plugin._paths_can_hold_a_notebook(paths, ROOT) is expected


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("", True),
        ("notebooks or claims", True),
        ("claims or notebooks", True),
        ("unit", False),
        ("claims", False),
        ("not notebooks", False),
    ],
)
def test_marker_expressions_that_admit_notebooks(expression, expected):
    assert plugin._marker_expression_admits_notebooks(expression) is expected
