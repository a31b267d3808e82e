"""The contributor kit's chapter templates do what the notebooks and pages of the book do (the same
cell tags, exercises with ratings and hints, the explorer shown twice), and the notebook template
runs: its check cells print what they checked and its explorer draws frames."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
NOTEBOOK = TEMPLATES / "chapter_notebook.ipynb"
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
import course_toc  # noqa: E402
from test_claim_references import unmarked_sentences, verdict_blocks  # noqa: E402
from test_exercise_ratings import notebook_problems, page_problems  # noqa: E402


def cells(kind: str | None = None, path: Path = NOTEBOOK) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if kind is None or cell["cell_type"] == kind]


def tags(cell: dict) -> set[str]:
    return set(cell["metadata"].get("tags", []))


def explorer_cells(path: Path) -> tuple[list[dict], list[dict]]:
    """The live explorer cells and the kernel-free ones (``live=False``) of a notebook."""
    code = [cell for cell in cells("code", path) if "explorer(" in "".join(cell["source"])]
    kernel_free = [cell for cell in code if "live=False" in "".join(cell["source"])]
    return [cell for cell in code if cell not in kernel_free], kernel_free


@pytest.mark.unit
def test_notebook_template_has_the_chapter_skeleton():
    markdown = ["".join(cell["source"]) for cell in cells("markdown")]
    code = cells("code")
    assert markdown[0].startswith("# Lab:") and "**Estimated time:**" in markdown[0]
    assert "you will be able to" in markdown[0], "the first cell states the learning objectives"
    assert "SEEDS = (0, 1, 2, 3, 4)" in "".join(code[0]["source"]), "one setup cell with the 5 seeds"
    assert any(text.startswith("**Check.**") for text in markdown), "a section ends in a check"
    checked = [cell for cell in code if "bu.check_range" in "".join(cell["source"])]
    assert checked and all("nbval-ignore-output" in tags(cell) for cell in checked)
    assert any(text.startswith("## Exercises") for text in markdown)
    functions = [cell for cell in code if "def " in "".join(cell["source"]) and "solution" not in tags(cell)]
    assert not functions, "no bookkeeping in notebooks (a learner's own function is a solution cell)"


@pytest.mark.unit
@pytest.mark.parametrize("notebook", [NOTEBOOK, *(ROOT / nb for nb in course_toc.notebooks())], ids=lambda p: p.stem)
def test_template_and_notebooks_show_the_explorer_alike(notebook):
    """Live in the kernel (cell removed from the book), drawn in advance for the book (input removed)."""
    live, kernel_free = explorer_cells(notebook)
    assert live and kernel_free, "an explorer, live and kernel-free"
    assert all({"remove-cell", "nbval-ignore-output"} <= tags(cell) for cell in live)
    assert all({"remove-input", "nbval-ignore-output"} <= tags(cell) for cell in kernel_free)


@pytest.mark.unit
def test_template_exercises_carry_ratings_hints_and_solutions_as_the_notebooks_do():
    notebook = cells()
    assert notebook_problems(notebook) == []
    exercises = [c for c in cells("markdown") if "".join(c["source"]).startswith("**Exercise")]
    assert len(exercises) >= 2
    solutions = [cell for cell in cells("code") if "solution" in tags(cell)]
    assert any("# BEGIN SOLUTION" in "".join(cell["source"]) for cell in solutions), "a prediction to write"
    assert any("ex.compare_prediction(" in "".join(cell["source"]) for cell in cells("code")), "predict, then measure"
    hidden = [cell for cell in solutions if "hide-cell" in tags(cell)]
    assert hidden and all(cell["metadata"].get("jupyter", {}).get("source_hidden") for cell in hidden)


@pytest.mark.unit
def test_page_template_has_the_chapter_sections_and_rated_exercises():
    page = (TEMPLATES / "chapter_page.md").read_text()
    for section in ("Learning objectives", "## The idea", "## The evidence", "## The verdict", "## Exercises"):
        assert section in page, f"the page template lost its {section!r} section"
    assert "{claim}`tests/test_claims_" in page, "the verdict shows how a sentence names its claim test"
    assert page.count("{exercise}") >= 2 and page_problems(page) == []


@pytest.mark.unit
def test_page_templates_verdict_passes_the_verdict_sentence_check():
    """A chapter copied from the template and its placeholders filled in passes
    tests/test_claim_references.py's check: every sentence ends with its claim mark."""
    blocks = verdict_blocks(TEMPLATES / "chapter_page.md")
    assert len(blocks) >= 2, "the template's verdict shows a lead-in with its sentences, and a limit"
    assert [problem for _, prose in blocks for problem in unmarked_sentences(prose)] == []


@pytest.mark.notebooks
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_template_runs_top_to_bottom():
    from nbclient import NotebookClient  # here, not at collection: it brings jupyter_client

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": TEMPLATES}}).execute()

    def printed(cell: nbformat.NotebookNode) -> str:
        return "".join(out.get("text", "") for out in cell.get("outputs", []))

    checks = [cell for cell in notebook.cells if cell.cell_type == "code" and "bu.check_" in cell.source]
    assert checks and all(": OK" in printed(cell) for cell in checks), "each check cell prints the check it passed"
    figures = [out for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert any(out["metadata"].get("scrapbook", {}).get("name") == "fig_template_sweep" for out in figures)
    _, kernel_free = explorer_cells(NOTEBOOK)
    [frames] = [cell for cell in notebook.cells if cell.source == "".join(kernel_free[0]["source"])]
    assert "bn-frames" in frames.outputs[0]["data"]["text/html"], "the kernel-free explorer drew its frames"
    comparison = [cell for cell in notebook.cells if "ex.compare_prediction(" in cell.source]
    assert "predicted" in printed(comparison[0]).lower(), printed(comparison[0])


@pytest.mark.unit
def test_the_chapter_module_template_follows_the_contract():
    """templates/chapter_module.py: a setup function of the seeds and a claim quantity, typed, with
    the imports a module in bn_utils/chapters may make (experiments and the core, no other chapter)."""
    import ast
    import importlib.util

    source = (TEMPLATES / "chapter_module.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(name.startswith("bn_utils.chapters") for name in imported), imported
    spec = importlib.util.spec_from_file_location("chapter_module_template", TEMPLATES / "chapter_module.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    from bn_utils.history import History, Sweep

    def history(final: float) -> History:
        h = History(steps_per_epoch=10)
        h.eval_steps, h.test_acc, h.test_loss, h.loss = [0, 10], [0.1, final], [2.0, 1.0], [1.0] * 10
        return h

    histories = {
        "none": [[history(0.8), history(0.9)], [history(0.5), history(0.6)]],
        "batch": [[history(0.95), history(0.97)], [history(0.9), history(0.92)]],
    }
    result = Sweep("lr", (0.1, 1.0), (0, 1), histories)
    at_01 = module.final_accuracy(result, lr=0.1)
    assert at_01.mean("none") == pytest.approx(0.85) and at_01.mean("batch") == pytest.approx(0.96)
    assert module.final_accuracy(result, lr=1.0).mean("batch") == pytest.approx(0.91)
    with pytest.raises(ValueError, match=r"unknown network 'bn'; valid names are: none, batch"):
        at_01.mean("bn")  # a wrong name is named, with the right ones
    with pytest.raises(ValueError, match=r"learning rate 0\.5 is not on the grid; the sweep has: 0\.1, 1$"):
        module.final_accuracy(result, lr=0.5)  # a learning rate off the grid, with those on it
