"""The claim tests' assertions: each form passes and fails as its rule says, names the measured
values when it fails, and records the margin of the value that decides it."""

import json
from pathlib import Path

import claim_checks as cc
import pytest


@pytest.fixture(autouse=True)
def fresh_records(monkeypatch):
    monkeypatch.setattr(cc, "RECORDED", [])
    monkeypatch.setattr(cc, "CURRENT_TEST", "tests/test_x.py::test_y")
    monkeypatch.setattr(cc, "DEFER", False)
    monkeypatch.setattr(cc, "PENDING", [])


def test_every_is_decided_by_the_worst_seed():
    cc.every([0.9, 0.7, 0.8], ">=", 0.5, "accuracy")
    (record,) = cc.RECORDED
    assert (record.deciding, record.margin, record.form) == (0.7, pytest.approx(0.2), "every")
    assert record.spread == pytest.approx(0.1) and record.relative == pytest.approx(2.0)
    assert record.test == "tests/test_x.py::test_y" and record.passed
    with pytest.raises(AssertionError, match=r"accuracy: per seed \[0.9, 0.41\]; expected every >= 0.5"):
        cc.every([0.9, 0.41], ">=", 0.5, "accuracy")
    assert cc.RECORDED[-1].margin == pytest.approx(-0.09) and not cc.RECORDED[-1].passed


def test_no_seed_claims_are_every_with_the_other_operator():
    cc.every([0.1, 0.3], "<", 0.5, "accuracy")
    assert cc.RECORDED[-1].deciding == 0.3 and cc.RECORDED[-1].margin == pytest.approx(0.2)
    with pytest.raises(AssertionError):
        cc.every([0.1, 0.6], "<", 0.5, "accuracy")


def test_a_nan_seed_fails_every_claim():
    with pytest.raises(AssertionError):
        cc.every([0.9, float("nan")], ">=", 0.5, "accuracy")


def test_at_least_is_decided_by_the_count_th_best_seed():
    cc.at_least([0.41, 0.83, 0.75, 0.89, 0.68], ">=", 0.5, 4, "tanh accuracy")
    assert cc.RECORDED[-1].deciding == 0.68 and cc.RECORDED[-1].form == "at least 4 of 5"
    with pytest.raises(AssertionError, match=r"\(3 pass\); expected at least 4 of 5 >= 0.5"):
        cc.at_least([0.41, 0.45, 0.75, 0.89, 0.68], ">=", 0.5, 4, "tanh accuracy")
    cc.at_least([3.0, 1.0, 2.0], "<", 2.5, 2, "ratio")
    assert cc.RECORDED[-1].deciding == 2.0
    with pytest.raises(ValueError, match="count must be between 1 and 3"):
        cc.at_least([1.0, 2.0, 3.0], ">", 0.0, 4, "x")


def test_median_and_compare():
    cc.median([0.2, 0.9, 0.6], ">", 0.5, "accuracy")
    assert cc.RECORDED[-1].deciding == 0.6
    cc.compare(0.4, "<=", 0.5, "BN / plain loss range", values=[0.3, 0.4, 0.5])
    assert cc.RECORDED[-1].margin == pytest.approx(0.1) and cc.RECORDED[-1].spread == pytest.approx(0.1)
    cc.compare(3.0, ">", 1.0, "steps ratio")
    assert cc.RECORDED[-1].spread is None and cc.RECORDED[-1].relative is None
    with pytest.raises(AssertionError, match=r"steps ratio: measured 0.5; expected compare > 1"):
        cc.compare(0.5, ">", 1.0, "steps ratio")


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="op must be one of"):
        cc.every([1.0], "=>", 0.5, "x")
    with pytest.raises(ValueError, match="no values to check"):
        cc.every([], ">", 0.5, "x")


def test_margins_option_writes_the_records(pytester, monkeypatch):
    monkeypatch.setenv("BN_CLAIM_SEEDS", "0-4")  # the inner run sets it; restored afterwards
    pytester.makeconftest((Path(__file__).parent.parent / "conftest.py").read_text())
    pytester.syspathinsert(str(Path(__file__).parent))
    pytester.makepyfile(
        test_claims_demo="""
        import claim_checks as cc
        def test_demo():
            cc.every([0.7, 0.9], ">=", 0.5, "demo accuracy")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--margins", "margins.json", "--claim-seeds", "5-9")
    result.assert_outcomes(passed=1)
    written = json.loads((pytester.path / "margins.json").read_text())
    assert written["context"]["seeds"] == "5-9" and written["context"]["threads"] >= 1
    (record,) = written["margins"]
    assert record["test"].endswith("test_claims_demo.py::test_demo") and record["margin"] == pytest.approx(0.2)


def test_under_margins_a_claim_test_records_every_assertion_and_still_fails(pytester, monkeypatch):
    monkeypatch.setenv("BN_CLAIM_SEEDS", "0-4")
    pytester.makeconftest((Path(__file__).parent.parent / "conftest.py").read_text())
    pytester.syspathinsert(str(Path(__file__).parent))
    pytester.makepyfile(
        test_claims_two="""
        import claim_checks as cc
        def test_two_failures():
            cc.every([0.4, 0.9], ">=", 0.5, "first accuracy")
            cc.median([0.1, 0.2, 0.3], ">", 0.5, "second accuracy")
            cc.every([0.7, 0.9], ">=", 0.5, "third accuracy")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--margins", "margins.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*claim assertions failed:*", "*first accuracy: per seed*", "*second accuracy*"])
    written = json.loads((pytester.path / "margins.json").read_text())
    assert [(r["what"], r["passed"]) for r in written["margins"]] == [
        ("first accuracy", False),
        ("second accuracy", False),
        ("third accuracy", True),
    ]
    plain = pytester.runpytest("-p", "no:cacheprovider")  # without --margins the first failure stops the test
    plain.assert_outcomes(failed=1)
    assert "second accuracy" not in plain.stdout.str()
