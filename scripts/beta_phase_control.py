"""The control behind chapter 3's beta-phase claim: the same measurement on many sets of 5 seeds.

    python scripts/beta_phase_control.py                 # seeds 0-29, six sets of 5 (~26 CPU s a set)
    python scripts/beta_phase_control.py --seeds 0-9     # another range, still in sets of 5

A new set of seeds stands in for a machine we cannot try (DEVELOPERS.md, "Evidence that holds
anywhere"): run it natively and with ``ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1`` and read, per
set, what the claim test
``tests/test_claims_convergence.py::test_bns_beta_lead_is_large_early_and_shrinks_late_as_the_plain_networks_beta_falls``
asserts (early ratio, the medians' relative rise, the plain network's change) and what it does not
(per-seed counts, BN's own change, where the late ratio ends). Nothing is stored or cached here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SET_SIZE = 5  # the claim tests' seed sets


def seed_range(text: str) -> list[int]:
    """``"0-29"`` -> [0, ..., 29], a whole number of sets of 5."""
    first, _, last = text.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    if not seeds or len(seeds) % SET_SIZE:
        raise argparse.ArgumentTypeError(f"expected a range of a multiple of {SET_SIZE} seeds, e.g. 0-29; got {text!r}")
    return seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_range, default=seed_range("0-29"), help="a range such as 0-29")
    seeds = parser.parse_args(argv).seeds

    from bn_utils import load_digits
    from bn_utils.chapters import faster_convergence as chapter

    data = load_digits()
    print("seeds | early BN/plain | late BN/plain | log10 relative rise | plain late/early | BN late/early | rising")
    early_per_seed, late_per_seed = [], []
    for start in range(0, len(seeds), SET_SIZE):
        group = seeds[start : start + SET_SIZE]
        phases = chapter.beta_phases(chapter.landscapes(group, data), 0.1)
        early_per_seed += phases.early.per_seed.tolist()
        late_per_seed += phases.late.per_seed.tolist()
        print(
            f"{group[0]}-{group[-1]} | {phases.early.ratio:.3f} | {phases.late.ratio:.2f} | "
            f"{np.log10(phases.relative_rise):.3f} | {phases.plain_change:.2f} | {phases.bn_change:.2f} | "
            f"{phases.seeds_rising} of {len(group)}",
            flush=True,
        )
    early, late = np.array(early_per_seed), np.array(late_per_seed)
    print(
        f"all {len(seeds)} seeds: the ratio fell on {int(np.sum(late < early))}; late BN/plain per seed "
        f"{late.min():.2f} to {late.max():.2f}; early per seed at most {early.max():.3f}"
    )


if __name__ == "__main__":
    main()
