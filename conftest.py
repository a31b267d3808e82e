"""Test-suite wiring for `pytest` run from the repository root.

Every collected test gets one marker by where it lives, so the suite can be run in parts:
``pytest -m unit`` (the fast loop, well under a minute), ``pytest -m claims`` (the chapters'
headline claims, over 5 seeds) and ``pytest -m notebooks`` (every notebook cell under nbval).
Plain ``pytest`` still runs everything. ``pytest -m claims --claim-seeds 5-9`` runs the claims on a
second, disjoint seed set (tests/claim_seeds.py).
"""

import os

import matplotlib

matplotlib.use("Agg")  # figures drawn by the tests never need a display


def pytest_addoption(parser):
    parser.addoption(
        "--claim-seeds",
        default=None,
        help="seeds of the claim tests, e.g. 5-9 or 0,2,4,6,8 (default 0-4; also the environment variable "
        "BN_CLAIM_SEEDS). Every claim must hold on 0-4 and on 5-9.",
    )


def pytest_configure(config):
    seeds = config.getoption("--claim-seeds")
    if seeds:
        os.environ["BN_CLAIM_SEEDS"] = seeds  # read by tests/claim_seeds.py when the claim modules are imported


def pytest_collection_modifyitems(items):
    for item in items:
        if any(item.get_closest_marker(name) for name in ("unit", "claims", "notebooks")):
            continue  # a test that names its kind keeps it
        path = item.path
        if path.suffix == ".ipynb":
            marker = "notebooks"
        elif path.name.startswith("test_claims_"):
            marker = "claims"
        else:
            marker = "unit"
        item.add_marker(marker)
