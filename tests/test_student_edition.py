"""scripts/make_student_edition.py: solutions become stubs, answers go, everything else is untouched,
and a student notebook raises nothing but NotImplementedError at its stubs."""

import importlib.util
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))

_spec = importlib.util.spec_from_file_location("make_student_edition", ROOT / "scripts" / "make_student_edition.py")
assert _spec is not None and _spec.loader is not None
mse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mse)


@pytest.fixture
def notebook_copies(tmp_path):
    """Copies of the current instructor notebooks, so that nothing here can touch the originals."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for path in NOTEBOOKS:
        shutil.copy2(path, folder / path.name)
    return sorted(folder.glob("*.ipynb"))


def test_real_notebooks_solution_cells_become_stubs_and_the_rest_is_untouched(notebook_copies):
    total = 0
    for path in notebook_copies:
        original = nbformat.read(path, as_version=4)
        student, stubs = mse.make_student_notebook(original)
        solutions = [i for i, cell in enumerate(original.cells) if mse.is_solution_cell(cell)]
        assert stubs == len(solutions) > 0, path.name
        total += stubs
        assert len(student.cells) == len(original.cells), "no cell is dropped (no markdown cell is tagged solution)"
        for i, (before, after) in enumerate(zip(original.cells, student.cells, strict=True)):
            if i in solutions:
                if "# BEGIN SOLUTION" in before.source:  # a "Your turn" or prediction cell: only its middle goes
                    kept = before.source.split("# BEGIN SOLUTION")[0].strip()
                    assert after.source.startswith(kept), "the signature and docstring stay"
                    assert "# END SOLUTION" not in after.source and "# BEGIN SOLUTION" not in after.source
                    assert "write your solution here" in after.source or "...  # your prediction" in after.source
                else:
                    assert after.source.startswith('raise NotImplementedError("Exercise '), after.source
                    assert "write your solution here (see the exercise above)" in after.source
                assert "hide-cell" not in after.metadata["tags"] and mse.STUB_TAG in after.metadata["tags"]
                assert "jupyter" not in after.metadata, "the stub is not hidden from the learner"
                assert all(mse._glue_name(o) for o in after.outputs), "only glue records (never shown) may stay"
                assert not after.outputs, "no keep_glue given: nothing of a solution's output stays"
            elif before.cell_type == "markdown" and mse.DETAILS.search(before.source):
                assert not mse.DETAILS.search(after.source) and mse.SOLUTION_REMOVED in after.source
                assert after.source.split("\n")[0] == before.source.split("\n")[0], "the exercise itself stays"
            elif "answer-output" in before.metadata.get("tags", []):  # a check that prints the answer
                assert after.source == before.source and not after.outputs
            else:
                assert after == before, f"{path.name}, cell {i} changed"
        assert student.metadata["bn_course"]["edition"] == "student"
        assert "edition" not in original.metadata["bn_course"], "the input notebook is not changed"
    assert total >= 17, "the six notebooks had 17 solution cells when the student edition was introduced"


def test_exercise_labels_come_from_the_solution_or_the_markdown_above():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Section\n\n**Your turn (10 min).** Write the forward pass."),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("# Solution to exercise 4\ny = 2", metadata={"tags": ["hide-cell"]}),
        nbformat.v4.new_markdown_cell("**Exercise 5 (3 min).** Predict it."),
        nbformat.v4.new_code_cell("z = 3", metadata={"tags": ["solution"]}),
    ]
    assert [mse.exercise_label(nb.cells, i) for i in (1, 2, 4)] == ["Your turn", "Exercise 4", "Exercise 5"]
    assert mse.exercise_label([nbformat.v4.new_code_cell("a = 1")], 0) == "This exercise"


def test_a_source_held_as_a_list_of_lines_is_read_as_text():
    nb = nbformat.from_dict(
        {
            "cells": [{"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": ["x = 1\n", "y = 2"]}],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )
    student, stubs = mse.make_student_notebook(nb)
    assert stubs == 1 and student.cells[0].source.startswith("raise NotImplementedError")


def test_hide_cell_without_the_solution_comment_is_not_a_solution():
    assert not mse.is_solution_cell(nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["hide-cell"]}))
    assert not mse.is_solution_cell(nbformat.v4.new_markdown_cell("x", metadata={"tags": ["solution"]}))
    assert mse.is_solution_cell(
        nbformat.v4.new_code_cell("# solution to Exercise 2\n", metadata={"tags": ["hide-cell"]})
    )


YOUR_TURN = '''def bn_forward(x, gamma, beta, eps=1e-5):
    """Batch norm's training-mode forward pass."""
    # BEGIN SOLUTION
    dims = [0, *range(2, x.dim())]
    return x
    # END SOLUTION'''


def test_begin_end_markers_keep_the_skeleton_and_predictions_become_ellipsis():
    stub = mse.stub_source(YOUR_TURN, "Your turn")
    assert stub == (
        'def bn_forward(x, gamma, beta, eps=1e-5):\n    """Batch norm\'s training-mode forward pass."""\n'
        '    raise NotImplementedError("Your turn: write your solution here (see the exercise above)")'
    )
    prediction = (
        "# your prediction, in steps:\n# BEGIN SOLUTION\nPREDICTED_STEPS = 40  # a guess\nratio=2\n# END SOLUTION"
    )
    assert mse.stub_source(prediction, "Exercise 1") == (
        "# your prediction, in steps:\nPREDICTED_STEPS = ...  # your prediction\nratio = ...  # your prediction"
    )
    assert mse.stub_source("a = 1\nprint(a)", "Exercise 2") == (
        'raise NotImplementedError("Exercise 2: write your solution here (see the exercise above)")'
    )
    with pytest.raises(ValueError, match="'# BEGIN SOLUTION' without a matching '# END SOLUTION'"):
        mse.stub_source("# BEGIN SOLUTION\nx = 1", "Exercise 3")


def _output(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def test_answer_outputs_solution_markdown_and_clear_all():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print(1)", outputs=[_output("figure")]),
        nbformat.v4.new_code_cell("check(f)", metadata={"tags": ["answer-output"]}, outputs=[_output("✓")]),
        nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("Q?\n<details>\n<summary>Hint</summary>\nthink\n</details>\n"),
    ]
    student, stubs = mse.make_student_notebook(nb)
    assert stubs == 0 and len(student.cells) == 3
    assert student.cells[0].outputs and not student.cells[1].outputs
    assert "<summary>Hint</summary>" in student.cells[2].source, "a hint is not a solution"
    everything, _ = mse.make_student_notebook(nb, clear_all_outputs=True)
    assert not everything.cells[0].outputs


def test_glue_records_the_student_book_pastes_are_kept():
    glued = nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": "'71'"}, metadata={"scrapbook": {"name": "k"}}
    )
    other = nbformat.v4.new_output(
        "display_data", data={"application/papermill.record/text/plain": "'3'"}, metadata={"scrapbook": {"name": "z"}}
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("# Solution to exercise 1", metadata={"tags": ["hide-cell"]})]
    nb.cells[0].outputs = [_output("answer"), glued, other]
    student, _ = mse.make_student_notebook(nb, keep_glue={"k"})
    assert student.cells[0].outputs == [glued]
    page = "a {glue:text}`/notebooks/06_x.ipynb::k:s` b {glue}`plain`\n```{glue-figure} fig_a\n:doc: x\n```\n"
    assert mse.referenced_glue_keys([page]) == {"k", "plain", "fig_a"}


SYNTHETIC_PAGE = """# Page

```{exercise}
:label: ex-a
Question A.
```

```{solution} ex-a
:class: dropdown
Answer A.
```

Between.

````{solution} ex-b
```python
nested = "code"
```
````

:::{solution} ex-c
Answer C.
:::

```{solution-start} ex-d
```
Answer D, gated.
```{solution-end}
```

End.
"""


def test_strip_book_solutions_on_every_fence_style():
    text, removed = mse.strip_book_solutions(SYNTHETIC_PAGE)
    assert removed == 4
    assert "Answer" not in text and "nested" not in text and "solution" not in text
    assert "Question A." in text and "Between." in text and text.rstrip().endswith("End.")
    with pytest.raises(ValueError, match="unclosed solution directive"):
        mse.strip_book_solutions("```{solution} ex-a\nAnswer\n")


def test_strip_book_solutions_on_the_real_pages():
    for page in PAGES:
        source = page.read_text(encoding="utf-8")
        text, removed = mse.strip_book_solutions(source)
        assert removed == source.count("{solution}"), page.name
        assert "{solution" not in text
        assert text.count("{exercise}") == source.count("{exercise}"), "the exercises stay"


def test_make_student_edition_writes_a_course_folder(tmp_path):
    out = tmp_path / "student"
    counts = mse.make_student_edition(ROOT, out)
    solutions = sum(mse.is_solution_cell(c) for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells)
    assert counts["notebooks"] == len(NOTEBOOKS) and counts["stubs"] == solutions >= 17
    assert {p.name for p in (out / "notebooks").glob("*.ipynb")} == {p.name for p in NOTEBOOKS}
    assert (out / "bn_utils" / "exercises.py").is_file() and (out / "requirements.txt").is_file()
    assert not (out / "book" / "misconceptions.md").exists(), "instructor-only pages stay out"
    config = yaml.safe_load((out / "_config.yml").read_text())
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["title"].endswith("(student edition)")
    toc = (out / "_toc.yml").read_text()
    assert "book/misconceptions" not in toc and "book/bn_from_scratch" in toc
    assert not any("{solution}" in p.read_text() for p in (out / "book").glob("*.md"))
    # the verdicts keep their claim marks, and the evidence page they link to can be built
    for page in (out / "book").glob("*.md"):
        assert page.read_text().count("{claim}`") == (ROOT / "book" / page.name).read_text().count("{claim}`")
    claim_files = sorted(p.name for p in (ROOT / "tests").glob("test_claims_*.py"))
    assert counts["claim tests"] == len(claim_files) > 0
    assert sorted(p.name for p in (out / "tests").glob("test_claims_*.py")) == claim_files
    assert (out / "tests" / "claim_checks.py").is_file() and (out / "conftest.py").is_file()
    assert any("pytest" in c for c in config["sphinx"]["config"]["claim_ci_commands"]), "where CI runs the claims"
    for name in ("book", "notebooks", "bn_utils"):
        with pytest.raises(ValueError, match="would overwrite the instructor edition"):
            mse.make_student_edition(ROOT, ROOT / name)
    with pytest.raises(FileNotFoundError, match="expected a course folder with _toc.yml"):
        mse.make_student_edition(tmp_path, tmp_path / "x")


def _errors(nb):
    return [
        (i, out["ename"])
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def _execute(nb, folder):
    from nbclient import NotebookClient  # here, not at collection: it brings jupyter_client

    NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(folder)}}
    ).execute()
    return nb


def _your_turn_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import torch\n\nfrom bn_utils import exercises as ex"),
        nbformat.v4.new_markdown_cell("**Your turn (10 min).** Write the forward pass."),
        nbformat.v4.new_code_cell(
            YOUR_TURN.replace("    dims = [0, *range(2, x.dim())]\n    return x\n", ex_solution("forward")),
            metadata={"tags": ["solution"]},
        ),
        nbformat.v4.new_code_cell("ex.check_forward(bn_forward)", metadata={"tags": ["answer-output"]}),
        nbformat.v4.new_markdown_cell("**Exercise 1 (2 min).** Predict the ratio."),
        nbformat.v4.new_code_cell("# BEGIN SOLUTION\nPREDICTED = 2.0\n# END SOLUTION", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell('ex.compare_prediction("ratio", PREDICTED, 2.1, relative=0.2, explanation="Why.")'),
    ]
    return nb


def ex_solution(exercise_id):
    from bn_utils import exercises

    lines = exercises.EXERCISES[exercise_id].solution.splitlines()
    return "\n".join(lines[2:]) + "\n"  # the body, without the def line and docstring


@pytest.mark.notebooks
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_your_turn_notebook_passes_and_its_student_edition_raises_only_at_stubs(tmp_path):
    instructor = _execute(_your_turn_notebook(), tmp_path)
    assert _errors(instructor) == []
    printed = "".join(o.get("text", "") for c in instructor.cells for o in c.get("outputs", []))
    assert "✓ forward pass: matches the reference on 6 cases" in printed and "ratio: you predicted 2" in printed
    student, stubs = mse.make_student_notebook(_your_turn_notebook())
    assert stubs == 2
    errors = _errors(_execute(student, tmp_path))
    assert [name for _, name in errors] == ["NotImplementedError"] * 2, errors
    assert [i for i, _ in errors] == [3, 6], "the check cell calls the stub; the comparison finds no prediction"


@pytest.mark.notebooks
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_student_notebook_raises_only_not_implemented_at_its_stubs(notebook_copies):
    path = next(p for p in notebook_copies if p.name.startswith("03_"))  # the fastest notebook
    student, stubs = mse.make_student_notebook(nbformat.read(path, as_version=4))
    stub_cells = [i for i, cell in enumerate(student.cells) if mse.STUB_TAG in cell.metadata.get("tags", [])]
    errors = _errors(_execute(student, ROOT / "notebooks"))
    assert errors and {name for _, name in errors} == {"NotImplementedError"}, errors
    # a whole-cell stub raises itself; a "your turn" skeleton or a prediction raises where it is used
    raising = [i for i in stub_cells if student.cells[i].source.startswith("raise NotImplementedError")]
    assert set(raising) <= {i for i, _ in errors}, (raising, errors)
    assert stubs == len(stub_cells) >= 3


def test_links_to_instructor_pages_become_plain_titles():
    text = "See {doc}`misconceptions`, {doc}`../book/misconceptions` and {doc}`the list <misconceptions>`."
    assert mse.unlink_instructor_pages(text) == (
        "See *Misconceptions* (instructor edition), *Misconceptions* (instructor edition) and "
        "*Misconceptions* (instructor edition)."
    )
