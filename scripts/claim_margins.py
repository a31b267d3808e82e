"""How far every claim assertion sits from its threshold, over several runs (seed sets x arithmetic paths).

    python scripts/claim_margins.py /tmp/claims-margins/*.json          # report on runs already made
    python scripts/claim_margins.py --run --out /tmp/claims-margins      # make the standard runs, then report
    python scripts/claim_margins.py --run --out DIR tests/test_claims_gradient_flow.py   # one module only

Each run is one ``pytest -m claims --margins PATH`` (``tests/claim_checks.py`` records every assertion:
its per-seed values, the value that decides it and its signed margin to the threshold; ``conftest.py``
writes them with the run's seed set, CPU capability and thread count). This script lines the runs
up assertion by assertion and prints, tightest first, the deciding value of each run and the
tightest margin over the runs, absolute and relative (in units of the seeds' standard deviation in
that run, the scale on which another machine moves a seed). A claim is robust when its tightest
relative margin is well clear of zero on every run (CONTRIBUTING.md, "The margin rule").

``--run`` makes the standard runs: seeds 0-4 and 5-9, each on the native kernels, PyTorch's
portable kernels (``ATEN_CPU_CAPABILITY=default``) and ``avx2`` (a different SIMD path on an
AVX-512 machine), all with one thread, one run after another (never two torch jobs at once).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED_SETS = ("0-4", "5-9")
PATHS = ("native", "default", "avx2")  # "native": ATEN_CPU_CAPABILITY unset


@dataclass(frozen=True)
class Run:
    """One --margins file: where it ran and what it recorded."""

    name: str  # e.g. "0-4 AVX512 1t"
    path: Path
    margins: tuple[dict, ...]


@dataclass
class Assertion:
    """One claim assertion (test, what it measures, which of the test's assertions with that text),
    with its record in each run that made it."""

    test: str
    what: str
    form: str
    op: str
    threshold: float
    records: dict[str, dict] = field(default_factory=dict)  # run name -> record

    @property
    def key(self) -> tuple[str, str]:
        return self.test, self.what

    @property
    def tightest(self) -> float:
        """The smallest signed margin over the runs (negative: some run failed)."""
        return min(record["margin"] for record in self.records.values())

    @property
    def tightest_relative(self) -> float | None:
        """The smallest margin in units of the seeds' spread over the runs that know their spread."""
        relatives = [r["relative"] for r in self.records.values() if r.get("relative") is not None]
        return min(relatives) if relatives else None

    @property
    def failed_runs(self) -> list[str]:
        return [name for name, record in self.records.items() if not record["passed"]]

    def sort_key(self) -> tuple[int, float, float]:
        """Tightest first: failures, then by relative margin, then those without a known spread by
        their margin as a fraction of the threshold (or the absolute margin at threshold 0)."""
        relative = self.tightest_relative
        scale = abs(self.threshold) or 1.0
        if self.failed_runs:
            return 0, self.tightest / scale, 0.0
        if relative is not None:
            return 1, relative, self.tightest
        return 2, self.tightest / scale, self.tightest


def run_name(context: dict, path: Path) -> str:
    """'0-4 AVX512 1t' from a margins file's context (its file name where the context is missing)."""
    if not context:
        return path.stem
    return f"{context.get('seeds', '?')} {context.get('cpu_capability', '?')} {context.get('threads', '?')}t"


def load_runs(paths: Iterable[Path]) -> list[Run]:
    """The runs recorded in ``paths``; a file that is not a --margins file is refused by name."""
    runs: list[Run] = []
    names: set[str] = set()
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SystemExit(f"{path}: not a readable --margins JSON file ({error})") from None
        if not isinstance(data, dict) or not isinstance(data.get("margins"), list):
            raise SystemExit(f"{path}: expected an object with 'context' and 'margins' (pytest --margins PATH)")
        name = run_name(data.get("context") or {}, Path(path))
        if name in names:  # the same seeds and path twice (e.g. two module subsets): keep them apart
            name = f"{name} ({Path(path).stem})"
        names.add(name)
        runs.append(Run(name, Path(path), tuple(data["margins"])))
    return runs


SEED_PARAMETER = re.compile(r"\[\d+\]$")


def test_id(node_id: str) -> str:
    """The node id without a seed parameter ('test_x[7]' -> 'test_x[seed]'): a test parametrized by
    the claim seeds has other ids on another seed set, but is the same claim."""
    return SEED_PARAMETER.sub("[seed]", node_id)


def collect(runs: Sequence[Run]) -> list[Assertion]:
    """One Assertion per (test, what), the n-th repetition of the same text in a test kept apart
    as 'what #n' (a test parametrized by seed repeats its assertions once per seed); in the order
    first seen."""
    assertions: dict[tuple[str, str], Assertion] = {}
    for run in runs:
        seen: dict[tuple[str, str], int] = {}
        for record in run.margins:
            test = test_id(record["test"])
            base = (test, record["what"])
            seen[base] = seen.get(base, 0) + 1
            what = record["what"] if seen[base] == 1 else f"{record['what']} #{seen[base]}"
            key = (test, what)
            if key not in assertions:
                assertions[key] = Assertion(test, what, record["form"], record["op"], record["threshold"])
            assertions[key].records[run.name] = record
    return list(assertions.values())


def tightest_first(assertions: Iterable[Assertion]) -> list[Assertion]:
    return sorted(assertions, key=Assertion.sort_key)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def short_test(node_id: str) -> str:
    """'test_claims_gradient_flow::test_x[3]' from 'tests/test_claims_gradient_flow.py::test_x[3]'."""
    file, _, test = node_id.partition("::")
    return f"{Path(file).stem}::{test}" if test else node_id


def format_table(assertions: Sequence[Assertion], runs: Sequence[Run], *, top: int | None = None) -> str:
    """A Markdown table, tightest first: the rule, each run's deciding value, the tightest margin
    (absolute and in seeds' standard deviations) and the runs that failed."""
    names = [run.name for run in runs]
    header = ["#", "claim test", "assertion", "rule", *names, "tightest margin", "in std", "failed"]
    rows = []
    for number, assertion in enumerate(tightest_first(assertions)[:top], start=1):
        records = assertion.records
        values = [_number(records[name]["deciding"], 4) if name in records else "" for name in names]
        rows.append(
            [
                str(number),
                short_test(assertion.test),
                assertion.what,
                f"{assertion.form} {assertion.op} {_number(assertion.threshold, 4)}",
                *values,
                _number(assertion.tightest),
                _number(assertion.tightest_relative, 2),
                ", ".join(assertion.failed_runs) or "",
            ]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def summary(assertions: Sequence[Assertion], runs: Sequence[Run]) -> str:
    """Counts: runs, assertions, tests, failures, assertions present in only some runs."""
    tests = {assertion.test.split("[")[0] for assertion in assertions}
    failed = [a for a in assertions if a.failed_runs]
    partial = [a for a in assertions if len(a.records) < len(runs)]
    text = f"{len(runs)} run(s), {len(assertions)} assertion(s) in {len(tests)} claim test(s); {len(failed)} failed"
    if failed:
        text += " somewhere"
    if partial:
        text += f"; {len(partial)} not recorded in every run (a test that failed early, or another module set)"
    return text


def standard_runs(out: Path, seed_sets: Sequence[str], paths: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """(margins file, environment changes) of each standard run: one thread, each seed set on each path."""
    runs = []
    for seeds in seed_sets:
        for path in paths:
            if path not in PATHS:
                raise SystemExit(f"unknown arithmetic path {path!r}; expected one of {', '.join(PATHS)}")
            env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            if path != "native":
                env["ATEN_CPU_CAPABILITY"] = path
            runs.append((str(out / f"margins-{seeds}-{path}.json"), env))
    return runs


def make_runs(out: Path, seed_sets: Sequence[str], paths: Sequence[str], tests: Sequence[str]) -> list[Path]:
    """Run pytest for each standard run, one after another; return the margins files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for (margins, changes), seeds in zip(
        standard_runs(out, seed_sets, paths), [s for s in seed_sets for _ in paths], strict=True
    ):
        command = [sys.executable, "-m", "pytest", "-m", "claims", "-q", "-p", "no:cacheprovider"]
        command += ["--claim-seeds", seeds, "--margins", margins, *tests]
        print("==", " ".join(f"{k}={v}" for k, v in changes.items()), " ".join(command[1:]), flush=True)
        environment = os.environ | changes
        environment.pop("BN_CLAIM_SEEDS", None)
        subprocess.run(command, cwd=ROOT, env=environment, check=False)  # a failing claim still writes its margins
        if Path(margins).exists():
            written.append(Path(margins))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="--margins JSON files (with --run: the claim-test files to run)")
    parser.add_argument("--run", action="store_true", help="make the standard runs first (seed sets x paths)")
    parser.add_argument("--out", type=Path, default=Path("_build/claim-margins"), help="where --run writes")
    parser.add_argument("--seeds", nargs="+", default=list(SEED_SETS), help="seed sets for --run")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), help="arithmetic paths for --run")
    parser.add_argument("--top", type=int, default=None, help="print only the N tightest assertions")
    args = parser.parse_args(argv)
    if args.run:
        files = make_runs(args.out, args.seeds, args.paths, args.files)
    else:
        files = [Path(f) for f in args.files]
    if not files:
        parser.error("give --margins JSON files, or --run")
    runs = load_runs(files)
    assertions = collect(runs)
    print(summary(assertions, runs))
    print(format_table(assertions, runs, top=args.top))
    return 1 if any(a.failed_runs for a in assertions) else 0


if __name__ == "__main__":
    sys.exit(main())
