"""scripts/make_scorecard.py: the committed scorecard is the generated one, and it can only say what the tests say."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("make_scorecard", ROOT / "scripts" / "make_scorecard.py")
scorecard = importlib.util.module_from_spec(_spec)
sys.modules["make_scorecard"] = scorecard  # its dataclasses look their module up by name
_spec.loader.exec_module(scorecard)


def record(test: str, what: str, *, passed: bool = True, values=(0.5, 0.6), deciding=0.55, threshold=0.4):
    return {
        "test": test,
        "what": what,
        "form": "compare",
        "op": ">",
        "threshold": threshold,
        "values": list(values),
        "deciding": deciding,
        "margin": deciding - threshold,
        "spread": 0.07,
        "passed": passed,
    }


def test_the_committed_scorecard_is_the_generated_one():
    assert (ROOT / "book" / "scorecard.md").read_text() == scorecard.generate(), (
        "book/scorecard.md is out of date: run python scripts/make_scorecard.py"
    )


def test_every_claim_test_of_the_transfer_module_is_on_the_scorecard():
    tree = ast.parse(scorecard.TESTS.read_text())
    tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    marked = {t.name for t in scorecard.marked_tests()}
    assert tests == marked, f"claim tests without a scorecard marker: {sorted(tests - marked)}"
    rows = {row.key for row in scorecard.ROWS}
    assert {t.row for t in scorecard.marked_tests()} <= rows
    for row in scorecard.ROWS:
        if row.key != "outside":
            assert any(t.row == row.key and t.column == "mnist1d" for t in scorecard.marked_tests()), row.key


def test_every_named_test_exists_and_passed_in_the_stored_run():
    margins = scorecard.load_margins()
    scorecard.check(scorecard.marked_tests(), margins)  # raises ScorecardError otherwise
    for t in scorecard.marked_tests():
        assert all(r["passed"] for r in margins[t.nodeid]), t.nodeid


def test_a_cell_cannot_claim_an_outcome_its_test_did_not_assert():
    marked = scorecard.Marked("test_x", row="lr", column="mnist1d", outcome="holds", shows="{value:.2f}")
    nodeid = marked.nodeid
    negated = {nodeid: [record(nodeid, "BN's largest learning rate [the claim is > 0.3]")]}
    with pytest.raises(scorecard.ScorecardError, match="does not assert 'holds'"):
        scorecard.check([marked], negated)
    with pytest.raises(scorecard.ScorecardError, match="does not assert 'does not hold'"):
        scorecard.check([replace(marked, outcome="does not hold")], {nodeid: [record(nodeid, "BN's largest")]})
    with pytest.raises(scorecard.ScorecardError, match="does not assert 'not settled'"):
        scorecard.check([replace(marked, outcome="not settled")], {nodeid: [record(nodeid, "BN's largest")]})
    with pytest.raises(scorecard.ScorecardError, match="does not assert 'holds'"):
        scorecard.check([marked], {nodeid: [record(nodeid, "BN - plain: lower end [not settled]")]})
    with pytest.raises(scorecard.ScorecardError, match="failed in the stored margins run"):
        scorecard.check([marked], {nodeid: [record(nodeid, "BN's largest", passed=False)]})
    with pytest.raises(scorecard.ScorecardError, match="no record"):
        scorecard.check([marked], {})
    with pytest.raises(scorecard.ScorecardError, match="unknown row 'speedy'"):
        scorecard.check([replace(marked, row="speedy")], {nodeid: [record(nodeid, "BN's largest")]})
    scorecard.check([marked], {nodeid: [record(nodeid, "BN's largest")]})  # consistent: no error


def test_numbers_come_from_the_recorded_assertion():
    marked = scorecard.Marked(
        "test_x",
        row="speed",
        column="mnist1d",
        outcome="holds",
        shows="BN {value:.0f} steps, 0.6 x plain {threshold:.0f}",
    )
    assert scorecard.number(marked, [record("x", "w", deciding=120.0, threshold=float("inf"))]) == (
        "BN 120 steps, 0.6 x plain never"
    )
    points = replace(marked, shows="{mean100:+.1f} points ({low100:+.1f} to {high100:+.1f})")
    text = scorecard.number(points, [record("x", "w", values=(0.01, 0.03, 0.02, 0.02, 0.02))])
    assert text.startswith("+2.0 points (") and "to +" in text
    assert scorecard.outcome_of(["holds", "holds"]) == "holds"
    assert scorecard.outcome_of(["holds", "does not hold"]) == "partly"


def test_the_digits_numbers_are_glued_from_values_the_chapter_notebooks_store():
    glued = re.compile(r"\{glue:text\}`/notebooks/(?P<notebook>[\w-]+)\.ipynb::(?P<key>\w+):s`")
    stored: dict[str, set[str]] = {}
    for row in scorecard.ROWS:
        if row.digits is None:
            continue
        matches = list(glued.finditer(row.digits.shows))
        assert matches, f"row {row.key}: the digits number is not pasted from a notebook"
        for match in matches:
            notebook = match["notebook"]
            if notebook not in stored:
                cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
                stored[notebook] = {
                    o.get("metadata", {}).get("scrapbook", {}).get("name") for c in cells for o in c.get("outputs", [])
                }
            assert match["key"] in stored[notebook], f"row {row.key}: {notebook} stores no glued value {match['key']!r}"
