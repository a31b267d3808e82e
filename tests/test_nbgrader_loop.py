"""The instructor's loop on a laptop, end to end and offline: a course directory made by
scripts/make_assignments.py, nbgrader's release, three learners' submissions (correct, a named mistake,
untouched stubs), then ``nbgrader autograde``, ``generate_feedback`` and ``export``, as the README's
instructor section types them. The grades, the feedback HTML and the gradebook's SQLite tables are checked.

One autograde run serves every test here (module fixture): it executes the short assignment
``bn_from_scratch_quiz`` (chapter 1's three "Your turn" exercises, nothing that trains) three times.
Marker ``nbgrader``: not part of ``pytest -m unit``; ``pytest -m nbgrader`` runs it alone."""

from __future__ import annotations

import csv
import html
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from course_scripts import LazyScript

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "bn_from_scratch_quiz"
NOTEBOOK = "01_bn_from_scratch"

pytestmark = pytest.mark.nbgrader


ma = LazyScript("make_assignments")  # nbgrader loaded at the first use, not at collection


def nbgrader_env() -> dict[str, str]:
    """The environment an instructor's activated virtual environment gives nbgrader: its bin/ first on PATH
    (nbgrader runs `alembic` from there), one thread per kernel, this checkout's bn_utils."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def nbgrader(course: Path, *args: str) -> str:
    """Run one nbgrader command in the course directory, as the instructor types it; its log on failure."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), *args],
        cwd=course,
        env=nbgrader_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def page_text(path: Path) -> str:
    """An HTML page's text, tags removed and entities decoded, as a reader sees it."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The loop, run once: make_assignments, generate_assignment, three submissions, autograde, feedback, export."""
    course = tmp_path_factory.mktemp("class") / "course"
    assert ma.main(["--course", str(course), "--assignment", ASSIGNMENT]) == 0
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    # the README's rehearsal: three submissions, correct, a named mistake and untouched
    assert ma.main(["--course", str(course), "--assignment", ASSIGNMENT, "--rehearse"]) == 0
    students = {path.name: path / ASSIGNMENT / f"{NOTEBOOK}.ipynb" for path in (course / "submitted").iterdir()}
    assert set(students) == {"rehearsal-correct", "rehearsal-mistake", "rehearsal-untouched"}
    log = nbgrader(course, "autograde", ASSIGNMENT)
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    nbgrader(course, "export", "--to", "grades.csv")
    return course, students, log


def test_grades_full_partial_zero_in_the_csv(course):
    course, _, _ = course
    with open(course / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert {s: (float(r["score"]), float(r["max_score"])) for s, r in rows.items()} == {
        "rehearsal-correct": (4.0, 4.0),
        "rehearsal-mistake": (3.0, 4.0),  # the forward pass (1 point) uses the unbiased variance
        "rehearsal-untouched": (0.0, 4.0),
    }
    assert {r["assignment"] for r in rows.values()} == {ASSIGNMENT}


def test_the_feedback_names_the_mistake(course):
    course, students, _ = course
    submitted = nbformat.read(students["rehearsal-mistake"], as_version=4)
    forward = next(c for c in submitted.cells if c.source.startswith("def bn_forward"))
    assert "unbiased=True" in forward.source, "the mistake: the unbiased variance in training mode"
    _, mistakes = ma.KNOWN_MISTAKES["check_forward"]
    _, wrong = mistakes[0]
    expected = ma.checker_message("check_forward", ma.function_from_source(wrong))  # what the checker says today
    assert "unbiased" in expected
    feedback = course / "feedback"
    mistake = page_text(feedback / "rehearsal-mistake" / ASSIGNMENT / f"{NOTEBOOK}.html")
    assert expected in mistake, f"the feedback does not quote the checker's message {expected!r}"
    assert "Score: 3.0 / 4.0" in mistake and "Score: 0.0 / 1.0" in mistake
    correct = page_text(feedback / "rehearsal-correct" / ASSIGNMENT / f"{NOTEBOOK}.html")
    assert "Score: 4.0 / 4.0" in correct and "ExerciseFailed" not in correct
    graded = nbformat.read(course / "autograded" / "rehearsal-correct" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    assert not [o for c in graded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    untouched = page_text(feedback / "rehearsal-untouched" / ASSIGNMENT / f"{NOTEBOOK}.html")
    assert "Score: 0.0 / 4.0" in untouched
    assert "NotImplementedError: Your turn: write your solution here (see the exercise above)" in untouched


def test_the_gradebook_holds_every_graded_cell(course):
    course, _, _ = course
    with sqlite3.connect(course / "gradebook.db") as db:
        rows = db.execute(
            """
            SELECT submitted_assignment.student_id, base_cell.name, grade.auto_score, grade_cells.max_score,
                   grade.needs_manual_grade
            FROM grade
            JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id
            JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id
            JOIN assignment ON submitted_assignment.assignment_id = assignment.id
            JOIN grade_cells ON grade.cell_id = grade_cells.id
            JOIN base_cell ON grade_cells.id = base_cell.id
            WHERE assignment.name = ?
            """,
            (ASSIGNMENT,),
        ).fetchall()
        students = {row[0] for row in db.execute("SELECT id FROM student")}
    scores = {(student, cell): (score, top) for student, cell, score, top, manual in rows if not manual}
    assert len(scores) == len(rows) == 9, "three graded cells of three students, none left for manual grading"
    assert students == {"rehearsal-correct", "rehearsal-mistake", "rehearsal-untouched"}
    top = {"forward": 1.0, "backward": 2.0, "running_update": 1.0}
    for cell, points in top.items():
        assert scores["rehearsal-correct", cell] == (points, points)
        assert scores["rehearsal-untouched", cell] == (0.0, points)
        assert scores["rehearsal-mistake", cell] == (0.0 if cell == "forward" else points, points)


def test_hidden_tests_are_cut_from_the_release_and_run_by_the_autograder(course):
    course, _, log = course
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    assert not any("HIDDEN TESTS" in cell.source or "_importlib" in cell.source for cell in release.cells)
    assert not any(cell.get("outputs") for cell in release.cells if cell.cell_type == "code")
    graded = nbformat.read(course / "autograded" / "rehearsal-correct" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    checks = [cell for cell in graded.cells if cell.metadata.get("nbgrader", {}).get("grade")]
    assert len(checks) == 3 and all("### BEGIN HIDDEN TESTS" in cell.source for cell in checks)
    assert all(not any(o.output_type == "error" for o in cell.outputs) for cell in checks)
    # nbgrader warns that the graded cells differ from the release: the hidden tests it put back
    assert "Attribute 'checksum' for cell forward has changed" in log


CHEAT = """
import bn_utils.exercises as ex

def bn_forward(x, gamma, beta, eps=1e-5):
    return x  # wrong
ex.check_forward = lambda fn: print("✓ forward pass: matches the reference on 6 cases")  # the cheat
"""


def test_hidden_tests_fail_a_notebook_that_replaced_the_checker(course, tmp_path):
    """A learner who replaces ex.check_forward passes the visible check cell, not its hidden tests. Run in a
    Python of its own: the hidden tests reload bn_utils.exercises, which this test process must not do."""
    course, _, _ = course
    source = nbformat.read(course / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    check = next(c for c in source.cells if c.metadata.nbgrader.get("grade_id") == "forward")
    visible, hidden = check.source.split("### BEGIN HIDDEN TESTS")
    script = tmp_path / "cheat.py"
    script.write_text(
        CHEAT
        + f"\n{visible}\nprint('visible check passed')\n"
        + "try:\n"
        + "".join(f"    {line}\n" for line in ("### BEGIN HIDDEN TESTS" + hidden).splitlines())
        + "except Exception as error:\n    print(f'hidden tests: {type(error).__name__}: {error}')\n"
        + "else:\n    print('hidden tests passed')\n"
    )
    result = subprocess.run([sys.executable, str(script)], env=nbgrader_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "visible check passed" in result.stdout
    assert "hidden tests: ExerciseFailed: forward pass" in result.stdout, result.stdout
    assert "hidden tests passed" not in result.stdout


def test_the_sheet_and_the_release_agree(course):
    course, _, _ = course
    sheet = (course / "sheets" / f"{ASSIGNMENT}.md").read_text()
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", as_version=4)
    points = {
        c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points
        for c in release.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert points == {"forward": 1.0, "backward": 2.0, "running_update": 1.0}
    for grade_id, value in points.items():
        assert re.search(rf"\| `{grade_id}` \| [^|]+ \| {value:g} \|", sheet), grade_id
