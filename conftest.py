"""Test-suite wiring for `pytest` run from the repository root.

Every collected test gets one marker by where it lives, so the suite can be run in parts:
``pytest -m unit`` (the fast loop, well under a minute), ``pytest -m claims`` (the chapters'
headline claims, over 5 seeds) and ``pytest -m notebooks`` (every notebook cell under nbval).
Plain ``pytest`` still runs everything.
"""

import matplotlib

matplotlib.use("Agg")  # figures drawn by the tests never need a display


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
