"""The course's chapters, read from the book's table of contents (_toc.yml): the one list of chapters.

Tests and scripts that need "every chapter page" or "every lab notebook" ask this module instead of
keeping their own list, so a new chapter is known everywhere once it is in _toc.yml:

    python scripts/course_toc.py          # prints each chapter page and its notebooks
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["Chapter", "chapters", "toc_pages", "chapter_pages", "notebooks"]


@dataclass(frozen=True)
class Chapter:
    """One chapter: its prose page and its lab notebooks (paths relative to the repository root)."""

    part: str
    page: str  # e.g. "book/batch_size.md"
    notebooks: tuple[str, ...]  # e.g. ("notebooks/08_batch_size.ipynb",)


def _path(root: Path, entry: str) -> str:
    """A toc entry ("book/batch_size", no suffix) as the path of its file, relative to ``root``."""
    for suffix in (".md", ".ipynb"):
        if (root / f"{entry}{suffix}").exists():
            return f"{entry}{suffix}"
    raise FileNotFoundError(f"_toc.yml names {entry!r}, but neither {entry}.md nor {entry}.ipynb exists")


def _toc(root: Path) -> dict:
    with open(root / "_toc.yml", encoding="utf-8") as file:
        return yaml.safe_load(file)


def chapters(root: Path = ROOT) -> list[Chapter]:
    """Every chapter of the book, in order: a toc entry whose sections are lab notebooks."""
    found = []
    for part in _toc(root).get("parts", []):
        for entry in part.get("chapters", []):
            sections = [_path(root, s["file"]) for s in entry.get("sections", []) if "file" in s]
            labs = tuple(s for s in sections if s.endswith(".ipynb"))
            if labs:
                found.append(Chapter(part.get("caption", ""), _path(root, entry["file"]), labs))
    return found


def toc_pages(root: Path = ROOT) -> list[str]:
    """Every Markdown page of the book, in order (the root page, chapters, their sections, reference pages)."""
    toc = _toc(root)
    pages = [_path(root, toc["root"])]
    for part in toc.get("parts", []):
        for entry in part.get("chapters", []):
            pages.append(_path(root, entry["file"]))
            pages += [_path(root, s["file"]) for s in entry.get("sections", []) if "file" in s]
    return [page for page in pages if page.endswith(".md")]


def chapter_pages(root: Path = ROOT) -> list[str]:
    """The prose page of every chapter, in order."""
    return [chapter.page for chapter in chapters(root)]


def notebooks(root: Path = ROOT) -> list[str]:
    """Every lab notebook of the book, in order."""
    return [notebook for chapter in chapters(root) for notebook in chapter.notebooks]


if __name__ == "__main__":
    for chapter in chapters(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(f"{chapter.page}: {', '.join(chapter.notebooks)}")
