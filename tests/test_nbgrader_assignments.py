"""scripts/make_assignments.py: nbgrader sources derived from the course's marks, the release's stubs equal to
the student edition's, hidden tests, the named mistakes each checker detects, and the timing and solution sheets.

Everything here runs in this process in a few seconds (unit tests); the instructor's loop, which executes
notebooks, is tests/test_nbgrader_loop.py, and the class on a JupyterHub tests/test_nbgrader_hub.py."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import nbformat
import pytest
from course_scripts import load_script

ROOT = Path(__file__).resolve().parent.parent


# scripts/make_assignments.py and nbgrader, loaded by the fixture below before this file's first test, not
# at collection: nbgrader costs about 0.8 s of CPU, which a pytest-xdist worker that runs no test of this
# file (and a run that deselects them) need not pay
ma = mse = COURSE_ID = ASSIGNMENTS = BY_ID = None
nbgrader_utils = MetadataValidator = ClearHiddenTests = ClearSolutions = PyFileConfigLoader = None


@pytest.fixture(autouse=True, scope="module")
def _scripts_and_nbgrader():
    global ma, mse, COURSE_ID, ASSIGNMENTS, BY_ID
    global nbgrader_utils, MetadataValidator, ClearHiddenTests, ClearSolutions, PyFileConfigLoader
    from nbgrader import utils as nbgrader_utils
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
    from traitlets.config.loader import PyFileConfigLoader

    ma = load_script("make_assignments")
    mse = ma.mse
    COURSE_ID, ASSIGNMENTS = ma.load_assignments()
    BY_ID = {a.id: a for a in ASSIGNMENTS}


@functools.cache
def _notebook(path: Path):
    """A course notebook, read once (the functions under test copy what they change)."""
    return nbformat.read(path, as_version=4)


def _source(assignment_id: str):
    assignment = BY_ID[assignment_id]
    return ma.nbgrader_source(_notebook(assignment.notebook), assignment)


def _release(source):
    """What nbgrader's generate_assignment does to the cells (less checksums and the database)."""
    nb, _ = ma.CourseStubs().preprocess(copy.deepcopy(source), {})
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    return nb


def test_every_lab_is_an_assignment_and_the_quiz_is_chapter_1s_first_sections():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    whole = [a for a in ASSIGNMENTS if a.until is None]
    assert sorted(a.notebook for a in whole) == notebooks
    quiz = BY_ID["bn_from_scratch_quiz"]
    assert quiz.notebook.name.startswith("01_") and quiz.until


def test_sources_mark_exactly_the_courses_graded_cells():
    for assignment in ASSIGNMENTS:
        original = _notebook(assignment.notebook)
        source, graded = ma.nbgrader_source(original, assignment)
        assert "nbgrader" not in original.cells[1].metadata, "the course notebook is not changed"
        cells = source.cells[1:]  # after the assignment's header
        kept = ma._prefix(original.cells, assignment.until)
        assert [c.source.split("### BEGIN HIDDEN")[0].rstrip() for c in cells] == [c.source.rstrip() for c in kept]
        checks = [c for c in cells if ma.checker_call(c)]
        predictions = [c for c in cells if ma.prediction_call(c)]
        assert [c.metadata.nbgrader.grade_id for c in checks + predictions] == [g.grade_id for g in graded]
        assert len(graded) >= 1, assignment.id
        ids = [c.metadata.nbgrader.grade_id for c in source.cells]
        assert len(set(ids)) == len(ids), "grade ids are unique"
        validator = MetadataValidator()
        for cell in source.cells:
            validator.validate_cell(cell)
            meta = cell.metadata.nbgrader
            if mse.is_solution_cell(cell):
                assert meta.solution and not meta.grade and not meta.locked
            elif meta.grade:
                assert meta.locked and not meta.solution and meta.points >= 1
                assert cell in checks or cell in predictions
            else:
                assert meta.locked and not meta.solution, "every other cell is read-only"
    quiz = {g.grade_id: g for g in _source("bn_from_scratch_quiz")[1]}
    assert {k: (g.points, g.minutes, g.difficulty) for k, g in quiz.items()} == {
        "forward": (1, 10, 1),
        "backward": (2, 15, 2),
        "running_update": (1, 10, 1),
    }, "points from the difficulty ratings, times from the rating lines"
    chapter = {g.grade_id: g for g in _source("ch01_bn_from_scratch")[1]}
    assert set(chapter) == {*quiz, "predicted_points_lost"} and chapter["predicted_points_lost"].points == 1


def test_the_release_stubs_are_the_student_editions():
    """One mechanism: the release's stubs are byte for byte the student edition's (33 when this was written),
    where nbgrader's own ClearSolutions would have written '# YOUR CODE HERE / raise NotImplementedError()'."""
    total = 0
    for assignment in ASSIGNMENTS:
        if assignment.until:
            continue
        original = _notebook(assignment.notebook)
        student, stubs = mse.make_student_notebook(original)
        expected = [c for c in student.cells if mse.STUB_TAG in c.metadata.get("tags", [])]
        source, _ = ma.nbgrader_source(original, assignment)
        release = [c for c in _release(source).cells if nbgrader_utils.is_solution(c)]
        assert [c.source for c in release] == [c.source for c in expected], assignment.id
        assert [c.metadata["tags"] for c in release] == [c.metadata["tags"] for c in expected]
        assert not any("jupyter" in c.metadata for c in release), "a stub is not collapsed"
        stock, _ = ClearSolutions().preprocess(copy.deepcopy(source), {})
        assert all("# YOUR CODE HERE" in c.source for c in stock.cells if nbgrader_utils.is_solution(c))
        total += stubs
    assert total >= 30


def test_the_release_gives_nothing_away():
    source, _ = _source("ch01_bn_from_scratch")
    release = _release(source)
    code = "\n".join(c.source for c in release.cells if c.cell_type == "code")
    hidden = [
        line.strip()
        for cell in source.cells
        if mse.is_solution_cell(cell)
        for line in cell.source.splitlines()
        if len(line.strip()) > 20 and not line.lstrip().startswith(("def ", '"""', "#"))
    ]
    assert len(hidden) > 20 and not [line for line in hidden if line in code], "no solution line is released"
    text = "\n".join(c.source for c in release.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "_importlib" not in text
    assert "<summary><b>Solution to exercise 3" not in text and mse.SOLUTION_REMOVED in text
    assert "PREDICTED_POINTS_LOST = ...  # your prediction" in text
    header = release.cells[0].source
    assert "`ch01_bn_from_scratch`" in header and "5 points" in header


def test_until_points_and_bad_assignments_are_checked(tmp_path):
    quiz = BY_ID["bn_from_scratch_quiz"]
    nb = _notebook(quiz.notebook)
    with pytest.raises(ValueError, match="no markdown cell starts with 'no such heading'"):
        ma.nbgrader_source(nb, ma.Assignment("x", quiz.notebook, until="no such heading"))
    with pytest.raises(ValueError, match=r"points given for \['nope'\]"):
        ma.nbgrader_source(nb, ma.Assignment("x", quiz.notebook, quiz.until, {"nope": 3}))
    _, graded = ma.nbgrader_source(nb, ma.Assignment("x", quiz.notebook, quiz.until, {"backward": 5}))
    assert [g.points for g in graded] == [1, 5, 1]
    bad = tmp_path / "a.yml"
    bad.write_text("course_id: c\nassignments:\n  - id: a\n    notebook: notebooks/none.ipynb\n")
    with pytest.raises(FileNotFoundError, match="names notebooks/none.ipynb, which does not exist"):
        ma.load_assignments(bad)
    bad.write_text("course_id: c\nassignments:\n  - {id: 'a b', notebook: notebooks/01_bn_from_scratch.ipynb}\n")
    with pytest.raises(ValueError, match="letters, digits"):
        ma.load_assignments(bad)
    with pytest.raises(ValueError, match="would mix with the course's own files"):
        ma.make_course(ROOT / "notebooks" / "class", COURSE_ID, [quiz])


def test_every_known_mistake_is_named_and_the_references_pass():
    for call, (reference, mistakes) in ma.KNOWN_MISTAKES.items():
        assert ma.checker_message(call, ma.function_from_source(reference)) == "", f"{call}: the reference passes"
        detected = ma.detected_mistakes(call)
        assert [d.name for d in detected] == [name for name, _ in mistakes]
        undetected = [d.name for d in detected if not d.detected]
        assert not undetected, f"{call} no longer detects {undetected}"
        messages = [d.message for d in detected]
        assert len(set(messages)) == len(messages), f"{call}: each mistake gets its own message"
    forward = ma.detected_mistakes("check_forward")[0]
    assert "unbiased" in forward.message, forward.message
    (prediction,) = ma.detected_mistakes("compare_prediction")
    assert prediction.message.startswith("NotImplementedError")


def test_the_sheet_has_points_times_mistakes_and_solutions():
    assignment = BY_ID["bn_from_scratch_quiz"]
    source, graded = _source(assignment.id)
    sheet = ma.sheet_markdown(assignment, source, graded)
    assert "**Points:** 4 in 3 graded cells" in sheet and "35 min of exercises" in sheet
    for g in graded:
        assert f"| `{g.grade_id}` | {g.title} | {g.points:g} | {g.minutes} min |" in sheet
        for mistake in ma.detected_mistakes(g.call):
            assert f"- {mistake.name}: `{mistake.message}`" in sheet
        assert g.solution.strip() in sheet
    assert "| 1. The forward pass, by hand | 5 | |" in sheet
    chapter = BY_ID["ch04_initialization_robustness"]
    sheet = ma.sheet_markdown(chapter, *_source(chapter.id))
    assert "Completion: the point is for a prediction" in sheet and "Exercises not graded" in sheet


def test_make_course_writes_a_course_nbgrader_loads_with_the_course_stubs(tmp_path):
    written = ma.make_course(tmp_path / "course", "test-course", [BY_ID["bn_from_scratch_quiz"]])
    (item,) = written
    assert item.source == tmp_path / "course" / "source" / "bn_from_scratch_quiz" / "01_bn_from_scratch.ipynb"
    assert item.sheet.read_text().startswith("# `bn_from_scratch_quiz`: timing and solution sheet")
    # nbgrader swallows an error in its configuration and goes on with its defaults: load it strictly here
    loader = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path / "course"))
    config = loader.load_config()
    assert config.CourseDirectory.course_id == "test-course"
    assert config.CourseDirectory.root == str(tmp_path / "course")
    steps = [step.__name__ for step in config.GenerateAssignment.preprocessors]
    assert "CourseStubs" in steps and "ClearSolutions" not in steps and "ClearHiddenTests" in steps
    assert config.Execute.timeout >= 300
