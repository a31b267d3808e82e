"""book/_ext/claims.py: the claim role, what a claim test asserts read from its source, where CI runs
it, and the evidence page built from them (a small Sphinx project built here)."""

import re
import sys
import textwrap
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import claim_sources as claims  # noqa: E402

SYNTHETIC = '''\
"""Headline claims of a chapter.

Setting: a 3 x 100 MLP on the digits,
200 steps.
"""
import pytest
import claim_checks as cc
from claim_checks import median as med


@pytest.fixture(scope="module")
def sweep():
    """The sweep at learning rate 0.1."""
    return 1


def helper(values):
    cc.compare(values.mean(), "<", 2, "mean gap (points)")


def test_checks(sweep):
    for depth in (40, 80):
        cc.every(sweep.at(depth), ">=", 0.9, f"depth {depth}: test accuracy per seed")
    cc.at_least(sweep.x, ">", 0.5, 3, "trained fraction")
    med(values=sweep.y, op="<=", threshold=1e15, what="ratio")
    helper(sweep)


def test_bare(sweep):
    """BN is ahead."""
    assert sweep.bn > sweep.plain, f"BN {sweep.bn:.2f}, plain {sweep.plain:.2f}"
    with pytest.raises(ValueError, match="model.eval"):
        sweep.predict(1)


@pytest.mark.slow
def test_marked():
    assert True
'''


def test_what_a_claim_test_asserts_is_read_in_words(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_claims_demo.py").write_text(SYNTHETIC)
    demo = claims.read_claim_file(tmp_path, "tests/test_claims_demo.py")
    assert demo.setting == "Setting: a 3 x 100 MLP on the digits, 200 steps."
    checks = demo.tests["test_checks"]
    assert [(a.words, a.context) for a in checks.assertions] == [
        ("every seed: depth {depth}: test accuracy per seed \u2265 0.9", ("depth = 40, 80",)),
        ("at least 3 seeds: trained fraction > 0.5", ()),
        ("the median over seeds: ratio \u2264 1e+15", ()),
        ("mean gap (points) < 2", ("in helper(sweep)",)),
    ]
    assert checks.fixtures == (("sweep", "The sweep at learning rate 0.1."),)
    assert checks.markers == {"claims"} and checks.line == 21
    bare = demo.tests["test_bare"]
    assert bare.docstring == "BN is ahead."
    assert [(a.words, a.code) for a in bare.assertions] == [
        ("BN \u2026, plain \u2026", "sweep.bn > sweep.plain"),
        ("raises ValueError whose message matches 'model.eval'", "sweep.predict(1)"),
    ]
    assert demo.tests["test_marked"].markers == {"slow", "claims"}


def test_every_claim_test_the_book_names_asserts_something_readable():
    named = set()
    for page in (ROOT / "book").glob("*.md"):
        named.update(re.findall(r"\{claim\}`([^`]*)`", page.read_text()))
    assert named, "the book names no claim test"
    files = {}
    for reference in sorted(named):
        file, test = reference.split("::")
        if file not in files:
            files[file] = claims.read_claim_file(ROOT, file)
        assertions = files[file].tests[test].assertions
        assert assertions and all(a.words or a.code for a in assertions), f"{reference}: nothing readable"
    assert all(f.setting for f in files.values()), "every claim file states its setting in its docstring"


CI_SCRIPT = """\
#!/usr/bin/env bash
echo "== tests (pytest)"
export OMP_NUM_THREADS=2
.venv/bin/pytest
ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 .venv/bin/pytest -m notebooks -p no:cacheprovider
OMP_NUM_THREADS=1 .venv/bin/python -m pytest -m claims \\
  --claim-seeds 5-9  # the second seed set
env ATEN_CPU_CAPABILITY=avx2 .venv/bin/pytest -m "claims and not slow" tests/test_claims_demo.py
.venv/bin/pytest -k "bare" tests/
.venv/bin/ruff check .
"""


def test_the_ci_scripts_pytest_commands_say_where_each_claim_test_runs(tmp_path):
    commands = claims.ci_pytest_commands(CI_SCRIPT)
    assert commands == [
        "OMP_NUM_THREADS=2 .venv/bin/pytest",
        "OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default .venv/bin/pytest -m notebooks -p no:cacheprovider",
        "OMP_NUM_THREADS=1 .venv/bin/python -m pytest -m claims --claim-seeds 5-9",
        "OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=avx2 .venv/bin/pytest -m 'claims and not slow' "
        "tests/test_claims_demo.py",
        "OMP_NUM_THREADS=2 .venv/bin/pytest -k bare tests/",
    ]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_claims_demo.py").write_text(SYNTHETIC)
    demo = claims.read_claim_file(tmp_path, "tests/test_claims_demo.py")
    runs = [claims.parse_ci_command(c) for c in commands]
    assert [run.runs(demo.tests["test_checks"]) for run in runs] == [True, False, True, True, False]
    assert [run.runs(demo.tests["test_marked"]) for run in runs] == [True, False, True, False, False]
    assert [run.runs(demo.tests["test_bare"]) for run in runs] == [True, False, True, True, True]
    assert runs[0].describe() == "the CPU's native kernels, 2 threads, seeds 0-4"
    assert runs[2].describe() == "the CPU's native kernels, 1 thread, seeds 5-9"
    assert runs[3].describe().startswith("avx2 kernels (ATEN_CPU_CAPABILITY=avx2), 2 threads")


def test_the_real_ci_script_runs_every_claim_test_somewhere():
    commands = claims.ci_pytest_commands((ROOT / ".ci" / "run").read_text())
    assert commands and not any("$" in c for c in commands), f"a command the evidence page cannot read: {commands}"
    runs = [claims.parse_ci_command(c) for c in commands]
    for file in sorted((ROOT / "tests").glob("test_claims_*.py")):
        for test in claims.read_claim_file(ROOT, f"tests/{file.name}").tests.values():
            assert any(run.runs(test) for run in runs), f"no CI command runs {test.file}::{test.name}"


PAGE = """\
# A chapter

## The verdict

**What holds:** BN is ahead by $\\alpha$ at 0.5.{claim}`tests/test_claims_demo.py::test_bare` It needs
{cite:p}`key` no help.{claim}`tests/test_claims_demo.py::test_checks`
"""


def _build(tmp_path, page=PAGE, evidence=True):
    from sphinx.application import Sphinx

    src = tmp_path / "src"
    (src / "tests").mkdir(parents=True)
    (src / "tests" / "test_claims_demo.py").write_text(SYNTHETIC)
    (src / ".ci").mkdir()
    (src / ".ci" / "run").write_text(CI_SCRIPT)
    (src / "chapter.md").write_text(page.replace("{cite:p}`key` ", ""))
    docs = ["chapter"]
    if evidence:
        (src / "evidence.md").write_text("# Evidence\n\n```{claim-evidence}\n```\n")
        docs.append("evidence")
    (src / "index.md").write_text("# Index\n\n```{toctree}\n" + "\n".join(docs) + "\n```\n")
    (src / "conf.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT / "book" / "_ext")!r})
            extensions = ["myst_parser", "claims"]
            myst_enable_extensions = ["dollarmath"]
            exclude_patterns = ["tests", ".ci"]
            claim_repository_url = "https://github.com/someone/course"
            claim_repository_branch = "dev"
            html_theme = "basic"
            """
        )
    )
    warnings = tmp_path / "warnings.txt"
    with open(warnings, "w") as stream:
        app = Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "doctrees"), "html", warning=stream)
        app.build()
    return tmp_path / "out", warnings.read_text()


def test_a_built_book_links_each_mark_to_its_entry_and_back(tmp_path):
    out, warnings = _build(tmp_path)
    assert "WARNING" not in warnings, warnings
    chapter = (out / "chapter.html").read_text()
    assert chapter.count('class="claim-mark"') == 2
    assert '<sup class="claim-mark" id="claim-1"><a href="evidence.html#evidence-chapter-1"' in chapter
    marks = BeautifulSoup(chapter, "html.parser").select("sup.claim-mark")
    assert marks[0].parent is marks[1].parent and marks[0].parent.name == "p", "both sentences stay in one paragraph"
    assert marks[0].previous_sibling.endswith("at 0.5."), "the mark follows its sentence's full stop"
    evidence = (out / "evidence.html").read_text()
    assert evidence.count('class="claim-entry') == 2 and 'id="evidence-chapter-2"' in evidence
    assert "2 references to claim tests, on 1 pages." in evidence and "2 sentences of" in evidence
    assert 'href="chapter.html#claim-1"' in evidence, "the entry links back to its sentence"
    assert "BN is ahead by" in evidence and "math" in evidence, "the sentence, maths included"
    assert "https://github.com/someone/course/blob/dev/tests/test_claims_demo.py#L29" in evidence
    assert "every seed: depth {depth}: test accuracy per seed" in evidence
    assert "Setting: a 3 x 100 MLP on the digits, 200 steps." in evidence
    assert "the CPU&#8217;s native kernels, 1 thread, seeds 5-9" in evidence or "native kernels, 1 thread" in evidence


def test_a_malformed_reference_an_unknown_test_a_misplaced_mark_and_no_evidence_page_warn(tmp_path):
    page = PAGE.replace("tests/test_claims_demo.py::test_bare", "test_bare").replace("test_checks", "test_gone")
    page += "\n**A bold {claim}`tests/test_claims_demo.py::test_bare` claim.**\n"
    _, warnings = _build(tmp_path, page, evidence=False)
    assert "claim: expected `tests/test_claims_<chapter>.py::test_<name>`, got 'test_bare'" in warnings
    assert "tests/test_claims_demo.py has no test test_gone" in warnings
    assert "put the mark directly after its sentence" in warnings
    assert "claim marks but no page with the claim-evidence directive" in warnings
