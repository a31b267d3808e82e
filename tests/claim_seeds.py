"""The seeds every claim test runs on: 0-4 by default, another set with ``pytest --claim-seeds 5-9``.

A claim must hold on a second, disjoint set of seeds too: a few hundred chaotic training steps
decorrelate a run from its arithmetic about as much as a new seed does, so a claim that fails on
seeds 5-9 would fail on some other CPU. The root ``conftest.py`` turns the pytest option into the
environment variable ``BN_CLAIM_SEEDS``, which this module reads when a claim-test module imports it.
"""

import os

DEFAULT = "0-4"


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from '5-9', '0,2,4' or '0-4,10' (ranges inclusive); at least 5 distinct ones."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"claim seeds: expected '5-9', '0,2,4' or '0-4,10', got {text!r}")
        seeds.extend(range(int(first), int(last) + 1) if sep else [int(first)])
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"claim seeds: each seed once, got {text!r}")
    if len(seeds) < 5:
        raise ValueError(f"claim seeds: a verdict rests on at least 5 seeds, got {len(seeds)} from {text!r}")
    return tuple(seeds)


SEEDS: tuple[int, ...] = parse_seeds(os.environ.get("BN_CLAIM_SEEDS") or DEFAULT)
