"""scripts/claim_margins.py: reading --margins files of several runs, lining up each assertion across
them, and the table of the tightest, on a small fixture written here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("claim_margins", ROOT / "scripts" / "claim_margins.py")
claim_margins = importlib.util.module_from_spec(_spec)
sys.modules["claim_margins"] = claim_margins  # dataclasses look their module up by name
_spec.loader.exec_module(claim_margins)

TEST_A = "tests/test_claims_demo.py::test_accuracy"
TEST_B = "tests/test_claims_demo.py::test_ratio"


def record(test, what, deciding, margin, relative, *, passed=True, form="every", op=">=", threshold=0.5):
    return {
        "test": test,
        "what": what,
        "form": form,
        "op": op,
        "threshold": threshold,
        "values": [deciding],
        "deciding": deciding,
        "margin": margin,
        "spread": None if relative is None else abs(margin / relative),
        "passed": passed,
        "relative": relative,
    }


@pytest.fixture
def files(tmp_path):
    """Two runs (seeds 0-4 native, 5-9 portable): a comfortable claim, a tight one that fails on the
    second run, a claim without a known spread, and an assertion repeated with the same text."""
    runs = {
        "a.json": (
            {"seeds": "0-4", "cpu_capability": "AVX512", "threads": 1},
            [
                record(TEST_A, "accuracy", 0.9, 0.4, 4.0),
                record(TEST_A, "tanh accuracy", 0.6, 0.1, 0.8),
                record(TEST_B, "steps ratio", 3.0, 2.0, None, form="compare", op=">", threshold=1.0),
                record(TEST_B, "gap", 0.01, 0.02, 2.0, op="<", threshold=0.03),
                record(TEST_B, "gap", 0.02, 0.01, 1.0, op="<", threshold=0.03),
            ],
        ),
        "b.json": (
            {"seeds": "5-9", "cpu_capability": "DEFAULT", "threads": 1},
            [
                record(TEST_A, "accuracy", 0.8, 0.3, 3.0),
                record(TEST_A, "tanh accuracy", 0.41, -0.09, -0.5, passed=False),
                record(TEST_B, "steps ratio", 1.5, 0.5, None, form="compare", op=">", threshold=1.0),
                record(TEST_B, "gap", 0.01, 0.02, 2.0, op="<", threshold=0.03),
                record(TEST_B, "gap", 0.025, 0.005, 0.5, op="<", threshold=0.03),
            ],
        ),
    }
    paths = []
    for name, (context, margins) in runs.items():
        path = tmp_path / name
        path.write_text(json.dumps({"context": context, "margins": margins}))
        paths.append(path)
    return paths


def test_runs_are_named_by_seeds_path_and_threads(files):
    runs = claim_margins.load_runs(files)
    assert [run.name for run in runs] == ["0-4 AVX512 1t", "5-9 DEFAULT 1t"]
    assert len(runs[0].margins) == 5


def test_each_assertion_is_lined_up_across_runs_and_repeats_are_kept_apart(files):
    assertions = claim_margins.collect(claim_margins.load_runs(files))
    assert [a.what for a in assertions] == ["accuracy", "tanh accuracy", "steps ratio", "gap", "gap #2"]
    gap2 = assertions[-1]
    assert gap2.tightest == pytest.approx(0.005) and gap2.tightest_relative == pytest.approx(0.5)
    tanh = assertions[1]
    assert tanh.failed_runs == ["5-9 DEFAULT 1t"] and tanh.tightest == pytest.approx(-0.09)
    assert assertions[2].tightest_relative is None


def test_tightest_first_puts_failures_first_then_relative_margins_then_unknown_spreads(files):
    ordered = claim_margins.tightest_first(claim_margins.collect(claim_margins.load_runs(files)))
    assert [a.what for a in ordered] == ["tanh accuracy", "gap #2", "gap", "accuracy", "steps ratio"]


def test_the_table_shows_each_runs_deciding_value_and_the_tightest_margin(files):
    runs = claim_margins.load_runs(files)
    table = claim_margins.format_table(claim_margins.collect(runs), runs, top=2).splitlines()
    assert table[0].startswith("| # | claim test | assertion | rule | 0-4 AVX512 1t | 5-9 DEFAULT 1t |")
    assert len(table) == 4  # header, rule, the two tightest
    assert table[2] == (
        "| 1 | test_claims_demo::test_accuracy | tanh accuracy | every >= 0.5 | 0.6 | 0.41 | -0.09 | -0.5 | "
        "5-9 DEFAULT 1t |"
    )
    summary = claim_margins.summary(claim_margins.collect(runs), runs)
    assert summary == "2 run(s), 5 assertion(s) in 2 claim test(s); 1 failed somewhere"


def test_main_prints_the_report_and_fails_when_a_claim_failed(files, capsys):
    assert claim_margins.main([str(f) for f in files]) == 1
    out = capsys.readouterr().out
    assert "tanh accuracy" in out and out.index("tanh accuracy") < out.index("steps ratio")
    assert claim_margins.main([str(files[0]), "--top", "1"]) == 0


def test_a_file_that_is_not_a_margins_file_is_refused_by_name(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"tests": []}')
    with pytest.raises(SystemExit, match="bad.json: expected an object with 'context' and 'margins'"):
        claim_margins.load_runs([bad])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit, match="broken.json: not a readable --margins JSON file"):
        claim_margins.load_runs([broken])


def test_standard_runs_cover_both_seed_sets_on_three_paths_with_one_thread(tmp_path):
    runs = claim_margins.standard_runs(tmp_path, ("0-4", "5-9"), ("native", "default", "avx2"))
    assert [Path(path).name for path, _ in runs] == [
        f"margins-{seeds}-{path}.json" for seeds in ("0-4", "5-9") for path in ("native", "default", "avx2")
    ]
    assert all(env["OMP_NUM_THREADS"] == "1" for _, env in runs)
    assert "ATEN_CPU_CAPABILITY" not in runs[0][1] and runs[1][1]["ATEN_CPU_CAPABILITY"] == "default"
    with pytest.raises(SystemExit, match="unknown arithmetic path 'neon'"):
        claim_margins.standard_runs(tmp_path, ("0-4",), ("neon",))


def test_a_test_parametrized_by_seed_is_one_claim_on_both_seed_sets(tmp_path):
    paths = []
    for seeds, first in (("0-4", 0), ("5-9", 5)):
        margins = [
            record(f"tests/test_claims_demo.py::test_loss[{first + i}]", "loss ratio", 4.0 - i, 1.0, 2.0)
            for i in range(2)
        ]
        path = tmp_path / f"{seeds}.json"
        path.write_text(
            json.dumps({"context": {"seeds": seeds, "cpu_capability": "AVX512", "threads": 1}, "margins": margins})
        )
        paths.append(path)
    assertions = claim_margins.collect(claim_margins.load_runs(paths))
    assert [(a.test, a.what, len(a.records)) for a in assertions] == [
        ("tests/test_claims_demo.py::test_loss[seed]", "loss ratio", 2),
        ("tests/test_claims_demo.py::test_loss[seed]", "loss ratio #2", 2),
    ]
