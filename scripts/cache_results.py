"""Store the results of the course's slowest computations with the package, as CI computes them.

    python scripts/cache_results.py ci         # run CI's claim and notebook runs, keeping what they compute
    python scripts/cache_results.py status     # the stored entries, and whether this process finds them

bn_utils.cache reads a result back only under an equal key (the call's arguments and data, the code
of every bn_utils module the computation imports, PyTorch, NumPy, scikit-learn, mnist1d, the CPU
kernels, the thread count, the processor): after a code change, or on another machine, it computes
again, so a stored entry can make CI faster but never makes it test old code. ``ci`` runs the claim
tests and the notebooks exactly as .ci/run does (``pytest -n auto``, one thread per process and per
notebook kernel: claims on seeds 0-4 and the notebooks with the native kernels, the notebooks and
the claims on seeds 5-9 with the portable ones) with ``BN_CACHE_DIR`` set to the stored folder, so
every remembered computation they make is stored under the key CI will ask for; then it removes the
entries no run used. Run it on the course's machine after changing code that such a
computation imports, and commit bn_utils/experiments/stored/cache/.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# CI's runs that train (.ci/run): the claim tests on seeds 0-4 and the notebooks with the native
# kernels (in the README's test command), then both again, claims on seeds 5-9, with the portable ones
CI_RUNS: tuple[tuple[tuple[str, ...], dict[str, str]], ...] = (
    (("-m", "claims or notebooks", "--claim-seeds", "0-4"), {}),
    (("-m", "notebooks or claims", "--claim-seeds", "5-9"), {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}),
)


# Remembered, but not stored with the package: each entry is large for what it saves. A
# covariate_shift_run keeps every probed layer's statistics (0.7 MB) for 2.7 s of training; 161 of
# them were 104 MB of the 113 MB that CI's runs compute. CI trains them again (about 7 CPU-minutes).
NOT_STORED = frozenset({"bn_utils.experiments.covariate_shift.covariate_shift_run"})


def status() -> list[str]:
    """One line per stored entry: what it is, and whether this process (its code, libraries,
    kernels, threads, processor) would find it."""
    from dataclasses import asdict

    import bn_utils as bu
    from bn_utils import cache

    here = asdict(cache.cache_key("status", "cache", bu.load_digits(), {}))
    lines = []
    for path in sorted(cache.STORED.glob("*.pkl")):
        with path.open("rb") as file:
            key = pickle.load(file)["key"]
        module = key["computation"].removeprefix("bn_utils.").rsplit(".", 1)[0]
        differs = [field for field in ("torch", "numpy", "libraries", "cpu_capability", "threads", "processor")
                   if key.get(field) != here[field]]  # fmt: skip
        if key["source"] != cache.source_digest(module):
            differs.insert(0, "source")
        state = "found" if not differs else "not found here (" + ", ".join(differs) + " differ)"
        size = path.stat().st_size // 1024
        lines.append(f"{path.name}: {key['computation']}, {key['cpu_capability']}, {size} KiB: {state}")
    return lines


def ci() -> None:
    from bn_utils import cache

    start = time.time()
    failed: list[str] = []  # a failing test stores what it computed all the same; the script says so at the end
    cache.STORED.mkdir(parents=True, exist_ok=True)
    for selection, extra in CI_RUNS:
        env = dict(os.environ, BN_CACHE_DIR=str(cache.STORED), **extra)
        command = [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider", *selection]
        print("==", " ".join(f"{k}={v}" for k, v in extra.items()), " ".join(command[1:]), flush=True)
        started = time.time()
        returncode = subprocess.run(command, env=env, cwd=ROOT).returncode
        print(f"   {time.time() - started:.0f} s, pytest exit status {returncode}", flush=True)
        failed += [" ".join(command[1:])] if returncode else []
    for path in cache.STORED.glob("*.pkl"):
        if path.stat().st_mtime < start:
            path.unlink()
            print(f"removed {path.name}: no run used it")
            continue
        with path.open("rb") as file:
            computation = pickle.load(file)["key"]["computation"]
        if computation in NOT_STORED:
            path.unlink()
    print("\n".join(status()))
    if failed:
        sys.exit("tests failed in: " + "; ".join(failed) + " (their computations are stored all the same)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="the stored entries, and whether this process finds them")
    commands.add_parser("ci", help="run CI's claim and notebook runs, storing what they compute; drop unused entries")
    args = parser.parse_args(argv)
    if args.command == "status":
        print("\n".join(status()) or "no stored entries")
    else:
        ci()


if __name__ == "__main__":
    main()
