"""How long the course takes: each notebook, the unit loop and the README's test command, with the
same figures for another commit beside them when asked.

    python scripts/benchmark.py                                 # this working tree: everything
    python scripts/benchmark.py --only notebooks,unit           # leave out the full test command
    python scripts/benchmark.py --notebooks notebooks/07_regularization_noise.ipynb --only notebooks
    python scripts/benchmark.py --against main                  # before/after table against a commit

A benchmark, not a test: it prints wall-clock and CPU seconds (user + system, of every process a
command started) and asserts nothing. Each notebook runs top to bottom in a fresh kernel from a copy,
so no notebook is written; ``--against REF`` clones this repository at REF into a temporary folder (a
shared clone: no worktree is registered, no object is copied) and runs the same commands there, with
``PYTHONPATH`` pointing at each tree so that each imports its own ``bn_utils``. Times depend on the
machine and on what else runs: compare only rows measured in one sitting on a quiet machine, and
say how many threads (``OMP_NUM_THREADS``) and cores they had.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("notebooks", "unit", "tests")
# what each part runs, from the root of the tree measured
COMMANDS = {
    "unit": ["-m", "pytest", "-q", "-m", "unit", "-p", "no:cacheprovider"],
    "tests": ["-m", "pytest", "-q", "-p", "no:cacheprovider"],  # the README's test command
}
LABELS = {"unit": "pytest -m unit (the unit loop)", "tests": "pytest (the README's test command)"}


@dataclass(frozen=True)
class Timing:
    """One command's wall-clock seconds, CPU seconds (user + system, with its children) and exit status."""

    wall: float
    cpu: float
    returncode: int = 0


def parse_parts(text: str) -> tuple[str, ...]:
    """``"notebooks,unit"`` -> ("notebooks", "unit"), in the order of :data:`PARTS`."""
    parts = {part.strip() for part in text.split(",") if part.strip()}
    unknown = parts - set(PARTS)
    if unknown or not parts:
        raise ValueError(f"--only takes a comma-separated list of {', '.join(PARTS)}; got {text!r}")
    return tuple(part for part in PARTS if part in parts)


def measure(command: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Timing:
    """Run ``command`` and time it (its output is discarded; a failure is reported, not raised)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(list(command), cwd=cwd, env=dict(env), capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        output = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        tail = [line for line in output if line.startswith(("FAILED", "ERROR"))][:5] or output[-3:]
        print(f"    exit status {done.returncode}: {' / '.join(tail)}", file=sys.stderr)
    return Timing(wall, cpu, done.returncode)


def run_notebook(path: Path, timeout: int = 900) -> None:
    """Execute a notebook top to bottom in a fresh kernel, in memory (``--run-notebook``)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()


def checkout_tree(ref: str, destination: Path, *, repository: Path = ROOT) -> str:
    """A temporary clone of ``repository`` at commit ``ref`` in ``destination`` (which must not exist):
    a repository of its own, as the tests expect (some read its git history), that shares the objects
    of ``repository`` and registers nothing in it (no worktree). Returns the commit's full hash."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=repository, capture_output=True, text=True
    )
    if commit.returncode:
        raise ValueError(f"{ref!r} is not a commit of {repository}: {commit.stderr.strip()}")
    full = commit.stdout.strip()
    for command in (
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(repository), str(destination)],
        ["git", "-C", str(destination), "checkout", "--quiet", "--detach", full],
    ):
        subprocess.run(command, check=True, capture_output=True)
    return full


def benchmark_tree(tree: Path, parts: Sequence[str], notebooks: Sequence[str]) -> dict[str, Timing]:
    """Every measurement of ``parts`` in ``tree``: row label -> timing. Notebooks run from a copy."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    results: dict[str, Timing] = {}
    if "notebooks" in parts:
        with tempfile.TemporaryDirectory(prefix="course-benchmark-") as tmp:
            copy = Path(tmp) / "notebooks"
            shutil.copytree(tree / "notebooks", copy)
            for notebook in notebooks:
                command = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--run-notebook",
                    str(copy / Path(notebook).name),
                ]
                results[notebook] = timing = measure(command, cwd=tree, env=env)
                print(f"  {timing.wall:7.1f} s  {notebook}", flush=True)
        rows = [results[notebook] for notebook in notebooks]
        results["all notebooks"] = Timing(
            sum(t.wall for t in rows), sum(t.cpu for t in rows), max(t.returncode for t in rows)
        )
    for part in ("unit", "tests"):
        if part in parts:
            results[LABELS[part]] = timing = measure([sys.executable, *COMMANDS[part]], cwd=tree, env=env)
            print(f"  {timing.wall:7.1f} s  {LABELS[part]}", flush=True)
    return results


def _cell(timing: Timing | None) -> str:
    if timing is None:
        return "-"
    failed = f" FAILED ({timing.returncode})" if timing.returncode else ""
    return f"{timing.wall:.1f} s ({timing.cpu:.1f} s CPU){failed}"


def comparison_table(columns: Mapping[str, Mapping[str, Timing]]) -> str:
    """Rows (in first-seen order) against columns (tree name -> its timings); with two columns, the
    ratio of the first's wall time to the second's."""
    names = list(columns)
    rows: list[str] = []
    for timings in columns.values():
        rows += [row for row in timings if row not in rows]
    header = ["what", *names] + (["ratio"] if len(names) == 2 else [])
    body = []
    for row in rows:
        cells = [row, *(_cell(columns[name].get(row)) for name in names)]
        if len(names) == 2:
            first, second = (columns[name].get(row) for name in names)
            cells.append(f"{first.wall / second.wall:.2f}x" if first and second and second.wall > 0 else "-")
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in [header, *body]
    )


def _describe(tree: Path) -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=tree, capture_output=True, text=True)
    name = head.stdout.strip() or "this tree"
    return f"{name}{' + changes' if dirty.stdout.strip() else ''}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"what to time, of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--notebooks", nargs="+", help="these notebooks only (default: every notebook of _toc.yml)")
    parser.add_argument(
        "--against", metavar="REF", help="also time this commit (branch, tag or hash), for a before/after table"
    )
    parser.add_argument("--json", type=Path, help="also write every timing to this JSON file")
    parser.add_argument("--run-notebook", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.run_notebook:
        run_notebook(arguments.run_notebook)
        return 0
    try:
        parts = parse_parts(arguments.only)
    except ValueError as exc:
        parser.error(str(exc))
    if arguments.notebooks:
        notebooks = [
            str(Path(nb).resolve().relative_to(ROOT)) if Path(nb).resolve().is_relative_to(ROOT) else nb
            for nb in arguments.notebooks
        ]
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        import course_toc

        notebooks = course_toc.notebooks()
    threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
    print(f"cores: {os.cpu_count()}, OMP_NUM_THREADS={threads}", flush=True)
    columns: dict[str, dict[str, Timing]] = {}
    name = _describe(ROOT)
    print(f"{name}:", flush=True)
    columns[name] = benchmark_tree(ROOT, parts, notebooks)
    if arguments.against:
        with tempfile.TemporaryDirectory(prefix="course-benchmark-ref-") as tmp:
            commit = checkout_tree(arguments.against, Path(tmp) / "tree")
            label = commit[:7] if commit.startswith(arguments.against) else f"{arguments.against} ({commit[:7]})"
            print(f"{label}:", flush=True)
            tree = Path(tmp) / "tree"
            columns[label] = benchmark_tree(tree, parts, [nb for nb in notebooks if (tree / nb).exists()])
    print()
    print(comparison_table(columns))
    if arguments.json:
        arguments.json.write_text(
            json.dumps({c: {r: asdict(t) for r, t in rows.items()} for c, rows in columns.items()}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
