"""Load nbval only in a pytest run that can collect a notebook (a pytest plugin, named in pyproject.toml).

Importing nbval costs each pytest process about 3 s of CPU (nbformat's JSON-schema validator builds
an IRI grammar at import, and nbval brings jupyter_client and coverage): a third of the start of a
``pytest -m unit`` process, paid again by each pytest-xdist worker. pyproject.toml blocks nbval's
automatic loading (``-p no:nbval``) and loads this plugin early instead (``-p nbval_on_demand``, from
``tests/`` on the ``pythonpath``). Before the arguments are parsed, it registers nbval, with the
options of the ``nbval_addopts`` setting (``--nbval --nbval-current-env --nbval-sanitize-with ...``),
unless the run cannot collect a notebook:

- the ``-m`` expression deselects every test that has only the ``notebooks`` marker (the marker
  conftest.py gives every notebook cell), as ``-m unit``, ``-m claims`` and ``-m "not notebooks"`` do; or
- every path named on the command line is a Python file (``pytest tests/test_x.py::test_y``), or a
  folder that holds no notebook.

Plain ``pytest`` (the README's test command), ``pytest -m notebooks`` and ``pytest notebooks/x.ipynb``
run the notebooks under nbval exactly as before. A command line that names an nbval option itself
(``--nbval-lax``, ``--nbval-cell-timeout 60``, ...) always gets nbval. Each pytest-xdist worker parses
the same command line and decides the same way.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

NOTEBOOK_MARKER = "notebooks"
# nbval's options, old names included: a command line that names one wants nbval
NBVAL_OPTION_PREFIXES = ("--nbval", "--nbdime", "--current-env", "--sanitize-with")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "nbval_addopts",
        "nbval's options, added to the command line where the run can collect a notebook (tests/nbval_on_demand.py)",
        type="args",
        default=[],
    )


def _marker_expression_admits_notebooks(expression: str) -> bool:
    """Whether ``-m expression`` selects a test whose only marker is ``notebooks``."""
    if not expression:
        return True
    from _pytest.mark.expression import Expression

    try:
        compiled = Expression.compile(expression)
    except SyntaxError:
        return True  # pytest reports the malformed expression itself
    return compiled.evaluate(lambda name, **kwargs: name == NOTEBOOK_MARKER and not kwargs)


def _paths_can_hold_a_notebook(paths: list[str], root: Path) -> bool:
    """Whether the paths named on the command line (none: the testpaths) can hold a notebook."""
    named = []
    for arg in paths:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else root / path
        if path.exists():  # not a path: the value of an option parsed later (--claim-seeds 5-9)
            named.append(path)
    if not named:
        return True  # no path named: pytest collects its testpaths, the notebooks among them
    for path in named:
        if path.suffix == ".py":
            continue
        if path.is_dir() and not any(path.rglob("*.ipynb")):
            continue
        return True  # a notebook, a folder with notebooks, or something pytest will explain
    return False


def _needs_nbval(config: pytest.Config) -> bool:
    named = [*config.invocation_params.args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    if any(str(arg).startswith(NBVAL_OPTION_PREFIXES) for arg in named):
        return True
    namespace = config.known_args_namespace
    if getattr(namespace, "pyargs", False):
        return True
    return _marker_expression_admits_notebooks(namespace.markexpr or "") and _paths_can_hold_a_notebook(
        list(getattr(namespace, "file_or_dir", None) or []), config.invocation_params.dir
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    if not _needs_nbval(early_config):
        return
    import nbval.plugin

    early_config.pluginmanager.register(nbval.plugin, "nbval.plugin")  # "nbval" itself is blocked: -p no:nbval
    args[:0] = early_config.getini("nbval_addopts")  # parsed with the rest once the conftests are loaded
