"""Test-suite wiring for `pytest` run from the repository root.

Every collected test gets one marker by where it lives, so the suite can be run in parts:
``pytest -m unit`` (the fast loop, well under a minute), ``pytest -m claims`` (the chapters'
headline claims, over 5 seeds) and ``pytest -m notebooks`` (every notebook cell under nbval).
Plain ``pytest`` still runs everything. ``pytest -m claims --claim-seeds 5-9`` runs the claims on a
second, disjoint seed set (tests/claim_seeds.py). A test file or test can name its kind instead:
``nbgrader`` and ``hub`` (the class), ``install`` (pip installs bn_utils, a kernel runs the install
cell), ``notebooks`` (a test that executes a notebook in a kernel). nbval is loaded only in a run
that can collect a notebook (tests/nbval_on_demand.py).

``pytest -n auto`` (pytest-xdist; the README's test command) runs one process per core, each with
one thread: the course's small matrix products gain little from a second thread, and two processes
finish about twice as fast as one. ``--dist loadfile`` keeps each file on one process, so that a
notebook's cells run in order in one kernel and a claim module computes its fixtures once.
"""

import glob
import json
import os
import sys

import matplotlib
import pytest

matplotlib.use("Agg")  # figures drawn by the tests never need a display

pytest_plugins = ["pytester"]  # tests/test_claim_checks.py runs the --margins option in a pytest of its own


def pytest_addoption(parser):
    parser.addoption(
        "--claim-seeds",
        default=None,
        help="seeds of the claim tests, e.g. 5-9 or 0,2,4,6,8 (default 0-4; also the environment variable "
        "BN_CLAIM_SEEDS). Every claim must hold on 0-4 and on 5-9.",
    )
    parser.addoption(
        "--margins",
        default=None,
        metavar="PATH",
        help="write every claim assertion's measured values and its margin to its threshold to PATH (JSON; "
        "tests/claim_checks.py, scripts/claim_margins.py)",
    )


def pytest_configure(config):
    seeds = config.getoption("--claim-seeds")
    if seeds:
        os.environ["BN_CLAIM_SEEDS"] = seeds  # read by tests/claim_seeds.py when the claim modules are imported
    margins = config.getoption("--margins")
    if margins and not hasattr(config, "workerinput"):
        for stale in glob.glob(f"{glob.escape(margins)}.gw*"):  # parts left by an interrupted run
            os.remove(stale)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one thread per process (and per notebook kernel, which inherits the environment): the
        # processes share the cores, and two threads each would only slow each other down
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"  # read when torch is imported
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


def pytest_collection_modifyitems(items):
    for item in items:
        if any(item.get_closest_marker(name) for name in ("unit", "claims", "notebooks", "nbgrader", "hub", "install")):
            continue  # a test that names its kind keeps it
        path = item.path
        if path.suffix == ".ipynb":
            marker = "notebooks"
        elif path.name.startswith("test_claims_"):
            marker = "claims"
        else:
            marker = "unit"
        item.add_marker(marker)


@pytest.fixture(autouse=True)
def _name_the_claim_test(request):
    """Tell tests/claim_checks.py which test its next records belong to."""
    checks = sys.modules.get("claim_checks")
    if checks is not None:
        checks.CURRENT_TEST = request.node.nodeid
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Under --margins, a claim test's failing assertions are recorded and kept (claim_checks.DEFER),
    so that every assertion of the test reaches the margin report; the test then fails with all of
    them at its end."""
    checks = sys.modules.get("claim_checks")
    if checks is None:
        return (yield)
    checks.DEFER = bool(item.config.getoption("--margins")) and item.get_closest_marker("claims") is not None
    checks.PENDING.clear()
    result = yield
    if checks.PENDING:
        failures, checks.PENDING[:] = list(checks.PENDING), []
        raise AssertionError("claim assertions failed:\n" + "\n".join(failures))
    return result


def pytest_sessionfinish(session):
    """Under --margins, write the recorded margins: a pytest-xdist worker writes its own part
    (PATH.gw0, ...), and the controlling process, which finishes last, joins the parts into PATH."""
    path = session.config.getoption("--margins")
    if not path:
        return
    checks = sys.modules.get("claim_checks")
    records = [margin.as_dict() for margin in checks.RECORDED] if checks else []
    worker = getattr(session.config, "workerinput", {}).get("workerid")  # this session is an xdist worker's
    if worker:
        with open(f"{path}.{worker}", "w") as file:
            json.dump(records, file)
        return
    for part in sorted(glob.glob(f"{glob.escape(path)}.gw*")):
        with open(part) as file:
            records.extend(json.load(file))
        os.remove(part)
    import torch

    in_workers = bool(session.config.getoption("numprocesses", None))  # pytest -n: one thread per worker
    context = {
        "seeds": os.environ.get("BN_CLAIM_SEEDS") or "0-4",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": 1 if in_workers else torch.get_num_threads(),
    }
    with open(path, "w") as file:
        json.dump({"context": context, "margins": records}, file, indent=1)
