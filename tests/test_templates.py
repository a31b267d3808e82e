"""The contributor kit's chapter templates keep the chapter anatomy, and the notebook template runs."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
NOTEBOOK = TEMPLATES / "chapter_notebook.ipynb"


def cells(kind: str) -> list[dict]:
    return [cell for cell in json.loads(NOTEBOOK.read_text())["cells"] if cell["cell_type"] == kind]


def test_notebook_template_has_the_chapter_skeleton():
    markdown = ["".join(cell["source"]) for cell in cells("markdown")]
    code = cells("code")
    assert markdown[0].startswith("# Lab:") and "**Estimated time:**" in markdown[0]
    assert "you will be able to" in markdown[0], "the first cell states the learning objectives"
    assert "SEEDS = (0, 1, 2, 3, 4)" in "".join(code[0]["source"]), "one setup cell with the 5 seeds"
    assert any(text.startswith("**Check.**") for text in markdown), "a section ends in a check"
    checked = [cell for cell in code if "bu.check_range" in "".join(cell["source"])]
    assert checked and all("nbval-ignore-output" in cell["metadata"]["tags"] for cell in checked)
    explorer = [cell for cell in code if "explorer(" in "".join(cell["source"])]
    assert explorer and {"remove-output", "nbval-ignore-output"} <= set(explorer[0]["metadata"]["tags"])
    assert any(text.startswith("## Exercises") for text in markdown)
    assert not any("def " in "".join(cell["source"]) for cell in code), "no bookkeeping in notebooks"


def test_page_template_has_the_chapter_sections():
    page = (TEMPLATES / "chapter_page.md").read_text()
    for section in ("Learning objectives", "## The idea", "## The evidence", "## The verdict", "## Exercises"):
        assert section in page, f"the page template lost its {section!r} section"
    assert "{claim}`tests/test_claims_" in page, "the verdict shows how a sentence names its claim test"


@pytest.mark.notebooks
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_template_runs_top_to_bottom():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": TEMPLATES}}).execute()
    printed = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert "BN trains at learning rate 0.1 in every seed: yes" in printed or ": OK" in printed, printed[-500:]
