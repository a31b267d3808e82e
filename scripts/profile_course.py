"""Where the course's time goes: each notebook and each claim-test module run under a stack sampler,
their time split by what the code was doing, printed as a table.

    python scripts/profile_course.py                                  # every notebook and claim module
    python scripts/profile_course.py notebooks/07_regularization_noise.ipynb tests/test_claims_residual.py
    python scripts/profile_course.py --markdown --json profile.json   # for CONTRIBUTING, and the raw numbers

A notebook runs in a fresh kernel (from the notebooks/ folder, as scripts/execute_notebooks.py runs
it, but nothing is written back); a claim module runs in a fresh interpreter under ``pytest -m
claims``. Inside, a thread samples the main thread's Python stack every ``--interval`` seconds and
gives the time since the last sample to the first category of :data:`CATEGORIES` that the stack
matches: an evaluation inside a training loop counts as evaluation, a plot drawn for an explorer
frame as explorer frames, anything under an import as import. "start" is the kernel's (or
interpreter's) start-up before the first cell; "messaging" the time between cells the kernel did not
spend running them. The sampler sees Python frames: time inside a C call is given to the Python line
that made it, and a C call that holds the GIL delays the next sample (its time still goes to that
line). Timings on a busy machine are inflated: compare them only with runs on the same quiet machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Frame:
    """One frame of a sampled stack: the file and the function."""

    filename: str
    function: str


def _in(fragment: str, *functions: str) -> Callable[[Frame], bool]:
    """A frame of a file whose path contains ``fragment`` (any function, or one of ``functions``)."""
    fragment = fragment.replace("/", os.sep)
    return lambda frame: fragment in frame.filename and (not functions or frame.function in functions)


def _any(*rules: Callable[[Frame], bool]) -> Callable[[Sequence[Frame]], bool]:
    """A stack with at least one frame that one of ``rules`` accepts."""
    return lambda stack: any(rule(frame) for frame in stack for rule in rules)


def _test_runner_only(stack: Sequence[Frame]) -> bool:
    """pytest's own work (collection, fixtures, reporting): no frame of the course's code below it."""
    ours = (os.sep + "bn_utils" + os.sep, os.sep + "tests" + os.sep)
    return any(os.sep + "_pytest" + os.sep in f.filename for f in stack) and not any(
        part in f.filename for f in stack for part in ours
    )


# (category, rule over the whole stack, outermost frame first), in priority order: a sample goes to
# the first category whose rule accepts its stack.
CATEGORIES: tuple[tuple[str, Callable[[Sequence[Frame]], bool]], ...] = (
    ("import", _any(lambda frame: frame.filename.startswith("<frozen importlib"))),
    ("explorer frames", _any(_in("bn_utils/explorers.py", "frame_explorer"))),
    (
        "checks",
        _any(
            _in("bn_utils/checks.py"),
            _in("tests/claim_checks.py"),
            _in("bn_utils/exercises.py", "check_forward", "check_backward", "check_running_update"),
            _in("bn_utils/exercises.py", "check_training_step", "compare_prediction"),
        ),
    ),
    (
        "evaluation",
        _any(
            _in("bn_utils/training.py", "evaluate"),
            _in("bn_utils/stacked.py", "evaluate_stacked"),
            _in("bn_utils/experiments/batch_size/sweep.py", "_accuracy_eval_mode", "_accuracy_train_mode"),
            _in("bn_utils/experiments/inference.py", "accuracy_in_mode"),
        ),
    ),
    ("train: training.train", _any(_in("bn_utils/training.py", "train"))),
    ("train: stacked MLPs", _any(_in("bn_utils/stacked.py", "train_stacked"))),
    ("train: stacked conv nets", _any(_in("bn_utils/stacked_conv.py", "train_stacked_convnets"))),
    # layer_dynamics trains through train_stacked (its own update rule): only its measurements are left here
    ("layer-dynamics measurements", _any(_in("bn_utils/experiments/layer_dynamics.py", "layer_dynamics"))),
    ("plotting", _any(_in("/matplotlib/"), _in("/PIL/"), _in("bn_utils/style.py", "publish"))),
    ("test runner", _test_runner_only),
    ("other", lambda stack: True),
)
CATEGORY_NAMES = tuple(name for name, _ in CATEGORIES)
# the columns of the table: time outside the sampled code first, then the categories
COLUMNS = ("start", "messaging", *CATEGORY_NAMES)


def categorize(stack: Sequence[Frame]) -> str:
    """The category of one sampled stack (outermost frame first)."""
    return _categorize(tuple(stack))


@functools.lru_cache(maxsize=1 << 16)
def _categorize(stack: tuple[Frame, ...]) -> str:
    # the same stacks come back sample after sample: each is categorized once
    return next(name for name, rule in CATEGORIES if rule(stack))


class Sampler:
    """Samples one thread's Python stack from a background thread and adds up the time per category."""

    def __init__(self, interval: float = 0.005):
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.seconds: dict[str, float] = {}
        # CPU seconds of the sampled thread per category (its own CPU clock): unlike the wall time,
        # not inflated by other processes on a shared machine
        self.cpu_seconds: dict[str, float] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target = 0
        self._last = 0.0
        self._clock: int | None = None
        self._last_cpu = 0.0

    def start(self) -> Sampler:
        """Start sampling the calling thread."""
        if self._thread is not None:
            raise RuntimeError("this sampler has already been started")
        self._target = threading.get_ident()
        self._last = time.perf_counter()
        try:  # the sampled thread's CPU clock (POSIX); without one, only wall seconds are counted
            self._clock = time.pthread_getcpuclockid(self._target)
            self._last_cpu = time.clock_gettime(self._clock)
        except (AttributeError, OSError):
            self._clock = None
        self._thread = threading.Thread(target=self._run, name="course-profile-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        now = time.perf_counter()
        cpu = time.clock_gettime(self._clock) if self._clock is not None else 0.0
        frame = sys._current_frames().get(self._target)
        stack: list[Frame] = []
        while frame is not None:
            stack.append(Frame(frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        category = _categorize(tuple(stack[::-1])) if stack else "other"
        self.seconds[category] = self.seconds.get(category, 0.0) + now - self._last
        if self._clock is not None:
            self.cpu_seconds[category] = self.cpu_seconds.get(category, 0.0) + cpu - self._last_cpu
            self._last_cpu = cpu
        self.samples += 1
        self._last = now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> dict[str, float]:
        """Stop sampling; the (wall) seconds per category (the CPU seconds are in :attr:`cpu_seconds`)."""
        if self._thread is None:
            raise RuntimeError("this sampler was never started")
        self._stop.set()
        self._thread.join()
        return dict(self.seconds)


@dataclass
class Profile:
    """Where the time of one notebook or claim module went (seconds per column of :data:`COLUMNS`)."""

    target: str
    wall: float
    seconds: dict[str, float] = field(default_factory=dict)
    error: str = ""
    # CPU seconds of the sampled thread per category (empty where the platform has no thread clock)
    cpu: dict[str, float] = field(default_factory=dict)

    def row(self) -> list[float]:
        return [self.seconds.get(column, 0.0) for column in COLUMNS]


# ---------------------------------------------------------------------------------------------
# Running one target


_KERNEL_START = """import sys as _sys
_sys.path.insert(0, {scripts!r})
import profile_course as _course_profile
_course_profile_sampler = _course_profile.Sampler({interval!r}).start()"""
_KERNEL_STOP = """import json as _json
_course_profile_seconds = _course_profile_sampler.stop()
with open({out!r}, "w") as _file:
    _json.dump({{"seconds": _course_profile_seconds, "cpu": _course_profile_sampler.cpu_seconds}}, _file)"""


def profile_notebook(path: Path, *, interval: float = 0.005, timeout: int = 900, write: Path | None = None) -> Profile:
    """Run the notebook at ``path`` in a fresh kernel with a sampler in it; nothing is written back.
    ``write``: save the executed notebook there (without the sampler's cells), e.g. to compare its
    outputs with the committed ones."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="course-profile-") as tmp:
        out = Path(tmp) / "seconds.json"
        nb.cells.insert(0, nbformat.v4.new_code_cell(_KERNEL_START.format(scripts=str(SCRIPTS), interval=interval)))
        nb.cells.append(nbformat.v4.new_code_cell(_KERNEL_STOP.format(out=str(out))))
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        start = time.perf_counter()
        error = ""
        with client.setup_kernel():
            started = time.perf_counter()
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except Exception as exc:  # a failing cell: report it, keep the rest of the table
                error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
            ran = time.perf_counter() - started
        wall = time.perf_counter() - start
        if write is not None:
            nb.cells = nb.cells[1:-1]
            nbformat.write(nb, write)
        inner = json.loads(out.read_text()) if out.exists() else {"seconds": {}, "cpu": {}}
    sampled = inner["seconds"]
    seconds = {"start": started - start, "messaging": max(ran - sum(sampled.values()), 0.0), **sampled}
    return Profile(_name(path), wall, seconds, error, inner["cpu"])


def profile_claims(path: Path, *, interval: float = 0.005, extra: Sequence[str] = ()) -> Profile:
    """Run one claim module under ``pytest -m claims`` in a fresh interpreter with a sampler in it."""
    with tempfile.TemporaryDirectory(prefix="course-profile-") as tmp:
        out = Path(tmp) / "seconds.json"
        command = [sys.executable, str(Path(__file__)), INNER, str(out), str(interval)]
        command += ["-q", "-m", "claims", "-p", "no:cacheprovider", *extra, str(path)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        inner = json.loads(out.read_text()) if out.exists() else {"seconds": {}, "cpu": {}, "ran": 0.0}
    sampled = inner["seconds"]
    seconds = {"start": max(wall - inner["ran"], 0.0), "messaging": 0.0, **sampled}
    error = "" if done.returncode == 0 else f"pytest exited {done.returncode}: {_last_line(done.stdout)}"
    return Profile(_name(path), wall, seconds, error, inner.get("cpu", {}))


def _inner_pytest(out: Path, interval: float, arguments: list[str]) -> int:
    """In the subprocess of :func:`profile_claims`: pytest under the sampler; the seconds to ``out``."""
    import pytest

    started = time.perf_counter()
    sampler = Sampler(interval).start()
    try:
        code = pytest.main(arguments)
    finally:
        seconds = sampler.stop()
        ran = time.perf_counter() - started
        out.write_text(json.dumps({"seconds": seconds, "cpu": sampler.cpu_seconds, "ran": ran}))
    return int(code)


def _name(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------------
# The table


def _fmt(value: float, total: float) -> str:
    return f"{value:.1f} ({100 * value / total:.0f}%)" if total > 0 and value >= 0.05 else "-"


def table(profiles: Iterable[Profile], *, markdown: bool = False, cpu: bool = False) -> str:
    """One row per profile and a total row: wall seconds, then seconds (and share of the wall time) per
    column of :data:`COLUMNS`; columns that are empty in every row are left out. With ``cpu``, the
    sampled thread's CPU seconds per category instead (and their share of its CPU total): on a shared
    machine these are what another run can be compared with; start and messaging have none."""
    profiles = list(profiles)
    if not profiles:
        raise ValueError("no profile to tabulate")

    def values(profile: Profile) -> dict[str, float]:
        return profile.cpu if cpu else profile.seconds

    def whole(profile: Profile) -> float:
        return sum(profile.cpu.values()) if cpu else profile.wall

    totals = Profile("total", sum(p.wall for p in profiles))
    for profile in profiles:
        for column, value in values(profile).items():
            values(totals)[column] = values(totals).get(column, 0.0) + value
    columns = [c for c in COLUMNS if any(values(p).get(c, 0.0) >= 0.05 for p in profiles)]
    header = ["what", "wall s", *(["cpu s"] if cpu else []), *columns]
    rows = [
        [p.target + (f" [{p.error}]" if p.error else ""), f"{p.wall:.1f}", *([f"{whole(p):.1f}"] if cpu else [])]
        + [_fmt(values(p).get(c, 0.0), whole(p)) for c in columns]
        for p in [*profiles, totals]
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    )


def default_targets() -> list[Path]:
    """Every notebook of the book (from _toc.yml) and every claim-test module."""
    sys.path.insert(0, str(SCRIPTS))
    import course_toc

    return [ROOT / notebook for notebook in course_toc.notebooks()] + sorted((ROOT / "tests").glob("test_claims_*.py"))


# how profile_claims calls this script: INNER OUT INTERVAL PYTEST-ARGUMENTS...
INNER = "--inner-pytest"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [INNER]:
        return _inner_pytest(Path(argv[1]), float(argv[2]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", type=Path, help="notebooks and claim modules (default: all of them)")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between samples (default 0.005)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, help="also write every profile to this JSON file")
    parser.add_argument("--claim-seeds", help="passed to the claim tests (e.g. 5-9)")
    parser.add_argument("--write", type=Path, help="save each executed notebook in this folder (under its name)")
    arguments = parser.parse_args(argv)
    targets = arguments.targets or default_targets()
    extra = ["--claim-seeds", arguments.claim_seeds] if arguments.claim_seeds else []
    profiles = []
    for target in targets:
        target = target.resolve()
        if target.suffix == ".ipynb":
            written = None
            if arguments.write:
                arguments.write.mkdir(parents=True, exist_ok=True)
                written = arguments.write / target.name
            profile = profile_notebook(target, interval=arguments.interval, write=written)
        elif target.suffix == ".py":
            profile = profile_claims(target, interval=arguments.interval, extra=extra)
        else:
            parser.error(f"{target}: expected a notebook (.ipynb) or a claim-test module (.py)")
        print(f"{profile.wall:7.1f} s  {profile.target}{'  ' + profile.error if profile.error else ''}", flush=True)
        profiles.append(profile)
    threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
    print(f"\nwhere the time goes (seconds, share of each row's wall time; OMP_NUM_THREADS={threads}):\n")
    print(table(profiles, markdown=arguments.markdown))
    if any(p.cpu for p in profiles):
        print("\nthe same in CPU seconds of the sampled thread (comparable on a shared machine):\n")
        print(table(profiles, markdown=arguments.markdown, cpu=True))
    if arguments.json:
        arguments.json.write_text(json.dumps([p.__dict__ for p in profiles], indent=1))
    return 1 if any(p.error for p in profiles) else 0


if __name__ == "__main__":
    sys.exit(main())
