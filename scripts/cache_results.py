"""Store the course's slowest computations with the package, for the arithmetic paths CI runs them on.

    python scripts/cache_results.py store residual 0-4      # in the environment of the path to store
    ATEN_CPU_CAPABILITY=default python scripts/cache_results.py store residual 5-9
    python scripts/cache_results.py status                  # which stored entries this process finds
    python scripts/cache_results.py ci                      # both of CI's paths, 1 thread, in subprocesses

bn_utils.cache reads a stored result back only under an equal key (the code of every module the
computation imports, the data, PyTorch, NumPy, the CPU kernels, the thread count, the processor): on
another machine or after a code change it trains again, so a stored entry can make CI faster but
never makes it test old code. ``ci`` stores what CI's two claim runs compute (seeds 0-4 with the
native kernels, seeds 5-9 with the portable ones, one thread per test process) and removes entries
that no current key names.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> (the computation's function, how to call it with seeds and a folder to store in)
COMPUTATIONS: dict[str, Callable[[tuple[int, ...], Path | None], object]] = {}


def _residual(seeds: tuple[int, ...], store_in: Path | None) -> object:
    import bn_utils as bu
    from bn_utils.experiments import residual

    return residual.chapter_grids(bu.load_digits(), seeds=seeds, store_in=store_in)


COMPUTATIONS["residual"] = _residual
CI_RUNS: tuple[tuple[str, dict[str, str]], ...] = (("0-4", {}), ("5-9", {"ATEN_CPU_CAPABILITY": "default"}))


def parse_seeds(text: str) -> tuple[int, ...]:
    first, _, last = text.partition("-")
    return tuple(range(int(first), int(last or first) + 1))


def store(name: str, seeds: str) -> None:
    import torch

    from bn_utils import cache

    start = time.process_time()
    COMPUTATIONS[name](parse_seeds(seeds), cache.STORED)
    print(
        f"{name}, seeds {seeds}: {time.process_time() - start:.0f} CPU-s, {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} thread(s), stored in {cache.STORED.relative_to(ROOT)}"
    )


def status() -> list[str]:
    """One line per stored entry: whether this process, with its path and threads, finds it."""
    import bn_utils as bu
    from bn_utils import cache

    lines = []
    for path in sorted(cache.STORED.glob("*.pkl")):
        with path.open("rb") as file:
            key = pickle.load(file)["key"]
        module = key["computation"].removeprefix("bn_utils.").rsplit(".", 1)[0]
        seeds = tuple(json.loads(key["arguments"]).get("seeds", ()))
        here = cache.cache_key(key["computation"], module, bu.load_digits(), {"seeds": seeds})
        differs = [field for field, value in key.items() if getattr(here, field) != value]
        state = "found" if not differs else "not found here (" + ", ".join(differs) + " differ)"
        lines.append(f"{path.name}: {key['computation']}, seeds {list(seeds)}, {key['cpu_capability']}: {state}")
    return lines


def ci() -> None:
    from bn_utils import cache

    before = set(cache.STORED.glob("*.pkl"))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    jobs = [(name, seeds, extra) for name in COMPUTATIONS for seeds, extra in CI_RUNS]
    running: list[subprocess.Popen] = []
    for name, seeds, extra in jobs:  # one job per core at a time, each one thread
        while len(running) >= (os.cpu_count() or 1):
            _wait_for_one(running)
        running.append(subprocess.Popen([sys.executable, __file__, "store", name, seeds], env=env | extra))
    while running:
        _wait_for_one(running)
    kept = set()
    for _, extra in CI_RUNS:  # keep the entries one of CI's runs finds; drop the rest
        out = subprocess.run(
            [sys.executable, __file__, "status"], env=env | extra, check=True, capture_output=True, text=True
        ).stdout
        print(out, end="")
        kept |= {line.split(":")[0] for line in out.splitlines() if line.endswith(": found")}
    for path in before:
        if path.name not in kept:
            path.unlink()
            print(f"removed {path.name}: no current key names it")


def _wait_for_one(running: list[subprocess.Popen]) -> None:
    """Wait until one of the running jobs ends (raising if it failed) and take it off the list."""
    while True:
        for job in running:
            if job.poll() is not None:
                running.remove(job)
                if job.returncode:
                    raise SystemExit(f"{job.args!r} failed with exit code {job.returncode}")
                return
        time.sleep(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    stored = commands.add_parser("store", help="compute and store one computation on some seeds")
    stored.add_argument("name", choices=sorted(COMPUTATIONS))
    stored.add_argument("seeds", help="e.g. 0-4")
    commands.add_parser("status", help="which stored entries this process finds")
    commands.add_parser("ci", help="store what CI's two claim runs compute, drop what no key names")
    args = parser.parse_args(argv)
    if args.command == "store":
        store(args.name, args.seeds)
    elif args.command == "status":
        print("\n".join(status()) or "no stored entries")
    else:
        ci()


if __name__ == "__main__":
    main()
