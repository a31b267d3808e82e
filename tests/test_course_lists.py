"""One list of chapters: _toc.yml. Everything else that names the chapters is read from it
(scripts/course_toc.py) or checked against it here: the README's chapter table, the intro's and
the teaching guide's tables, and the notebooks folder (no notebook outside the book)."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import course_toc  # noqa: E402

pytestmark = pytest.mark.unit


def _section(text: str, heading: str) -> str:
    """The text under a Markdown ``heading`` (up to the next heading of the same level or higher)."""
    level = heading.split()[0]
    start = text.index(heading + "\n")
    following = re.search(rf"^#{{1,{len(level)}}} ", text[start + len(heading) :], re.M)
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def test_the_toc_names_chapters_with_their_notebooks():
    chapters = course_toc.chapters()
    assert chapters, "_toc.yml names no chapter with a lab notebook"
    assert all(chapter.page.startswith("book/") and chapter.notebooks for chapter in chapters)
    assert course_toc.notebooks() == [nb for chapter in chapters for nb in chapter.notebooks]


def test_every_notebook_of_the_repository_is_in_the_book():
    on_disk = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "notebooks").glob("*.ipynb"))
    assert on_disk == sorted(course_toc.notebooks()), "add each notebook to _toc.yml, as a section of its chapter"


def test_the_readme_table_lists_every_chapter_and_notebook_in_order():
    table = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Chapters")
    assert re.findall(r"\]\((book/[\w/]+\.md)\)", table) == course_toc.chapter_pages()
    assert re.findall(r"\]\((notebooks/[\w/]+\.ipynb)\)", table) == course_toc.notebooks()


@pytest.mark.parametrize("page", ["book/intro.md", "book/teaching.md"])
def test_the_intro_and_teaching_tables_list_every_chapter_in_order(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    listed = [f"book/{stem}.md" for stem in re.findall(r"^\| \{doc\}`([\w/]+)`", text, re.M)]
    assert listed == course_toc.chapter_pages()


def test_the_toc_reader_on_a_small_book(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    for page in ("intro", "one", "two", "notes"):
        (tmp_path / "book" / f"{page}.md").write_text(f"# {page}\n")
    for notebook in ("01_one", "02_two_a", "02_two_b"):
        (tmp_path / "notebooks" / f"{notebook}.ipynb").write_text("{}")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: Chapters\n    chapters:\n"
        "      - file: book/one\n        sections:\n          - file: notebooks/01_one\n"
        "      - file: book/two\n        sections:\n          - file: notebooks/02_two_a\n"
        "          - file: notebooks/02_two_b\n"
        "  - caption: Reference\n    chapters:\n      - file: book/notes\n"
    )
    assert course_toc.chapters(tmp_path) == [
        course_toc.Chapter("Chapters", "book/one.md", ("notebooks/01_one.ipynb",)),
        course_toc.Chapter("Chapters", "book/two.md", ("notebooks/02_two_a.ipynb", "notebooks/02_two_b.ipynb")),
    ]
    assert course_toc.toc_pages(tmp_path) == ["book/intro.md", "book/one.md", "book/two.md", "book/notes.md"]
    (tmp_path / "book" / "notes.md").unlink()
    with pytest.raises(FileNotFoundError, match="_toc.yml names 'book/notes'"):
        course_toc.toc_pages(tmp_path)
