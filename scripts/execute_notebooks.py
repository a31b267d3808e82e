"""Re-execute every course notebook in a fresh kernel, in place, and report how long each took.

    python scripts/execute_notebooks.py              # all notebooks under notebooks/
    python scripts/execute_notebooks.py notebooks/01_bn_from_scratch.ipynb

This is the one command that produces the outputs committed with the notebooks (execution
counts 1..n); nbval then re-runs them and compares. Each notebook runs with the notebooks/
folder as its working directory. The time and date are stored in the notebook's metadata
(``bn_course.execution_seconds``, ``bn_course.executed_on``), printed, and shown on the book's
status page, to keep an eye on the budget (30 s per notebook, 150 s for all of them, on 2 cores).

The kernels compute everything afresh: they run with the cache switched off (``BN_CACHE=off``,
bn_utils.cache), reading neither the results stored with the package nor a ``BN_CACHE_DIR``, so the
times are those a learner's fresh run takes (the outputs are the same bits either way).
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 30
TOTAL_BUDGET_SECONDS = 150


def execute(path: Path) -> float:
    """Execute one notebook top to bottom in a new kernel and save it; return the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    # Widget state is not kept: the explorers need a live kernel, and a stored state would make
    # the book load a widget manager from a CDN to show sliders that cannot redraw anything.
    nb.metadata.pop("widgets", None)
    # For the same reason a live explorer's stored output is only its text stand-in,
    # "interactive(children=(SelectionSlider(...": drop it; the cell draws it again when run.
    for cell in nb.cells:
        if any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in cell.get("outputs", [])):
            cell.outputs = []
        # A figure shown by bn_utils.style.publish carries its description as alt text; myst-nb
        # reads alt text from the cell's metadata, so it goes there (else the file name is used).
        alts = [
            out["metadata"]["image/png"]["alt"]
            for out in cell.get("outputs", [])
            if "alt" in out.get("metadata", {}).get("image/png", {})
        ]
        if alts:
            cell.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = " ".join(alts)
    # JupyterLab's own name for this kernel: a notebook opened there is not marked modified at once.
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    seconds = time.perf_counter() - start
    nb.metadata["bn_course"] = {
        "execution_seconds": round(seconds, 1),
        "executed_on": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
    }
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve() for p in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    total, over = 0.0, []
    os.environ["BN_CACHE"] = "off"  # the kernels inherit this process's environment
    for path in paths:
        seconds = execute(path)
        total += seconds
        flag = "" if seconds < BUDGET_SECONDS else f"  (over the {BUDGET_SECONDS} s budget)"
        print(f"{seconds:6.1f} s  {path.relative_to(ROOT)}{flag}", flush=True)
        if seconds >= BUDGET_SECONDS:
            over.append(path.name)
    print(f"{total:6.1f} s  total for {len(paths)} notebook(s) (budget {TOTAL_BUDGET_SECONDS} s for all)")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
