"""Make the student edition of the course from the instructor edition (the repository as it is).

    python scripts/make_student_edition.py                     # into _build/student/
    python scripts/make_student_edition.py --out /tmp/student  # elsewhere
    python scripts/make_student_edition.py --clear-all-outputs # no stored output at all
    jupyter-book build _build/student                          # the student book

The output folder is a complete course a learner can open: the notebooks, the book's pages, the
table of contents and configuration, and the ``bn_utils`` package with ``requirements.txt``.

What changes (the tag conventions are in CONTRIBUTING.md, "Exercises"):

- **Solution cells** become stubs that raise ``NotImplementedError`` naming the exercise. A code
  cell is a solution cell if it carries the tag ``solution``, or the tag ``hide-cell`` and a source
  that starts with ``# Solution to exercise N``. In a cell with ``# BEGIN SOLUTION`` / ``# END
  SOLUTION`` lines only the lines between them are replaced, so a "your turn" cell keeps its
  function's ``def`` line and docstring; a replaced block of plain assignments (``prediction = 2.0``)
  becomes ``prediction = ...`` instead, which ``bn_utils.exercises.compare_prediction`` turns into
  a ``NotImplementedError`` asking for the prediction. A markdown cell tagged ``solution`` is dropped.
- **Outputs that give an answer away** go: those of solution cells and of cells tagged
  ``answer-output`` (e.g. a check cell that prints "✓" after a learner's function);
  ``--clear-all-outputs`` drops every stored output. Kept everywhere: the glue records (never
  displayed) of the values and figures the student book still pastes, so that it builds.
- **Prose solutions** go: ``<details>`` blocks whose summary says "solution" in notebooks, and
  sphinx-exercise ``{solution}`` directives in the book's pages (the configuration also sets
  ``hide_solutions: true``, so a solution left anywhere is not rendered).
- **Instructor-only pages** (``INSTRUCTOR_PAGES``) are left out of the table of contents and the folder.
- **The claim tests come along** (``CLAIM_TEST_FILES``): each verdict sentence's check mark links to
  its entry on the evidence page, which the book builds from the claim tests' source; the student
  book, which has no CI script of its own, says where the course's CI runs them
  (``claim_ci_commands``, read from the instructor edition's ``.ci/run``).

Every other cell is copied unchanged.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "_build" / "student"
INSTRUCTOR_PAGES = ("book/misconceptions",)
CLAIM_TEST_FILES = (
    "conftest.py",
    "tests/conftest.py",
    "tests/claim_checks.py",
    "tests/claim_seeds.py",
    "tests/test_claims_*.py",
)
SOLUTION_TAG, ANSWER_OUTPUT_TAG, STUB_TAG = "solution", "answer-output", "student-stub"
LEGACY_SOLUTION = re.compile(r"\A\s*# Solution to exercise (\w+)", re.IGNORECASE)
BEGIN = re.compile(r"^\s*#+\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*#+\s*END SOLUTION\s*$")
ASSIGNMENT = re.compile(r"^(\s*)([A-Za-z_]\w*)\s*=(?!=)")
EXERCISE_NAME = re.compile(r"\*\*((?:Exercise|Your turn)[^*]*?)[.:]?\s*(?:\([^)]*\))?[.:]?\*\*")
DETAILS = re.compile(r"<details>\s*<summary>(?:(?!</summary>).)*solution.*?</details>\s*", re.IGNORECASE | re.DOTALL)
SOLUTION_REMOVED = "*(The solution is in the instructor edition.)*\n"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_solution_cell(cell: Any) -> bool:
    """A code cell tagged ``solution``, or tagged ``hide-cell`` with a ``# Solution to exercise N`` first line."""
    if cell.get("cell_type") != "code":
        return False
    tags = _tags(cell)
    return SOLUTION_TAG in tags or ("hide-cell" in tags and bool(LEGACY_SOLUTION.match(cell.source)))


def exercise_label(cells: list[Any], index: int) -> str:
    """What a stub calls its exercise: 'Exercise N' from the solution's first line, else the nearest
    '**Exercise ...**' or '**Your turn ...**' above the cell, else 'This exercise'."""
    match = LEGACY_SOLUTION.match(cells[index].source)
    if match:
        return f"Exercise {match.group(1)}"
    for cell in reversed(cells[:index]):
        if cell.cell_type == "markdown":
            names = EXERCISE_NAME.findall(cell.source)
            if names:
                return names[-1].strip()
    return "This exercise"


def stub_tags(cell: Any) -> list[str]:
    """A stub's tags: ``student-stub`` and the solution cell's tags, less those that hide it or mark it a solution."""
    return [STUB_TAG] + [t for t in _tags(cell) if t not in ("hide-cell", SOLUTION_TAG)]


def _raise_line(label: str, indent: str = "") -> str:
    return f'{indent}raise NotImplementedError("{label}: write your solution here (see the exercise above)")'


def stub_source(source: str, label: str) -> str:
    """The student's version of a solution cell's source."""
    lines = source.splitlines()
    if not any(BEGIN.match(line) for line in lines):
        return _raise_line(label)
    out: list[str] = []
    block: list[str] | None = None
    for line in lines:
        if block is None:
            if BEGIN.match(line):
                block = []
            else:
                out.append(line)
        elif END.match(line):
            out.extend(_stub_block(block, label))
            block = None
        else:
            block.append(line)
    if block is not None:
        raise ValueError(f"{label}: '# BEGIN SOLUTION' without a matching '# END SOLUTION' in:\n{source}")
    return "\n".join(out)


def _stub_block(block: list[str], label: str) -> list[str]:
    code = [line for line in block if line.strip() and not line.lstrip().startswith("#")]
    assignments = [ASSIGNMENT.match(line) for line in code]
    if code and all(assignments):
        return [f"{m.group(1)}{m.group(2)} = ...  # your prediction" for m in assignments if m]
    indent = re.match(r"\s*", code[0] if code else "").group(0)  # type: ignore[union-attr]
    return [_raise_line(label, indent)]


GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
GLUE_FIGURE = re.compile(r"^\s*(?:`{3,}|:{3,})\{glue(?:-figure|:figure|:any|:math)?\}\s+(\S+)", re.MULTILINE)


def referenced_glue_keys(texts: list[str]) -> set[str]:
    """The names of the glued values and figures that these pages paste."""
    keys = {ref.split("::")[-1].split(":")[0] for text in texts for ref in GLUE_ROLE.findall(text)}
    return keys | {name for text in texts for name in GLUE_FIGURE.findall(text)}


def _glue_name(output: Any) -> str | None:
    return output.get("metadata", {}).get("scrapbook", {}).get("name")


def make_student_notebook(
    nb: Any, *, clear_all_outputs: bool = False, keep_glue: set[str] | frozenset[str] = frozenset()
) -> tuple[Any, int]:
    """The student edition of one notebook, and how many stubs it has. The input is not changed.

    A stub keeps the glue records (never displayed) of the names in ``keep_glue``: values that the
    student book still pastes outside its solutions, such as a verdict's number that an exercise measures."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # a notebook built with nbformat.from_dict may hold its source as a list of lines
        if not isinstance(cell.source, str):
            cell.source = "".join(cell.source)
    cells, stubs = [], 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and SOLUTION_TAG in _tags(cell):
            continue
        if is_solution_cell(cell):
            label = exercise_label(nb.cells, index)
            new = nbformat.v4.new_code_cell(stub_source(cell.source, label))
            new.metadata["tags"] = stub_tags(cell)
            new.outputs = [copy.deepcopy(o) for o in cell.get("outputs", []) if _glue_name(o) in keep_glue]
            cell, stubs = new, stubs + 1
        elif cell.cell_type == "markdown" and DETAILS.search(cell.source):
            cell = copy.deepcopy(cell)
            cell.source = DETAILS.sub(SOLUTION_REMOVED, cell.source)
        elif cell.cell_type == "code" and (clear_all_outputs or ANSWER_OUTPUT_TAG in _tags(cell)):
            cell = copy.deepcopy(cell)
            cell.outputs = [o for o in cell.outputs if _glue_name(o) in keep_glue]
            cell.execution_count = None
        cells.append(cell)
    nb.cells = cells
    nb.metadata.setdefault("bn_course", {})["edition"] = "student"
    return nb, stubs


SOLUTION_FENCE = re.compile(r"^(\s*)(`{3,}|:{3,})\{solution(-start)?\}")
SOLUTION_END = re.compile(r"^(\s*)(`{3,}|:{3,})\{solution-end\}")


def strip_book_solutions(text: str) -> tuple[str, int]:
    """A page's MyST source without its sphinx-exercise solutions, and how many were removed."""
    lines, out, removed, i = text.splitlines(keepends=True), [], 0, 0
    while i < len(lines):
        match = SOLUTION_FENCE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        fence, gated = match.group(2), bool(match.group(3))
        closer = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        if gated:  # {solution-start} ... {solution-end}
            while i < len(lines) and not SOLUTION_END.match(lines[i]):
                i += 1
            i += 1  # the {solution-end} line
            while i < len(lines) and not closer.match(lines[i]):
                i += 1
        else:
            while i < len(lines) and not closer.match(lines[i]):
                i += 1
        if i >= len(lines):
            raise ValueError(f"unclosed solution directive opened with {fence!r}")
        i += 1  # the closing fence
        removed += 1
        while out and not out[-1].strip() and i < len(lines) and not lines[i].strip():
            i += 1  # no double blank line where the solution was
    return "".join(out), removed


def student_toc(toc: dict[str, Any]) -> dict[str, Any]:
    """The table of contents without the instructor-only pages."""
    toc = copy.deepcopy(toc)
    for part in toc.get("parts", []):
        part["chapters"] = [c for c in part.get("chapters", []) if c.get("file") not in INSTRUCTOR_PAGES]
    return toc


def student_config(config: dict[str, Any], ci_commands: list[str] | None = None) -> dict[str, Any]:
    """The book's configuration for the student edition: solutions hidden, the title says so, and the
    evidence page told where the course's CI runs the claim tests (``ci_commands``)."""
    config = copy.deepcopy(config)
    config["title"] = f"{config.get('title', 'Course')} (student edition)"
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    if ci_commands:
        config["sphinx"]["config"]["claim_ci_commands"] = list(ci_commands)
    return config


def claim_ci_commands(source: Path) -> list[str]:
    """The ``pytest`` commands of the instructor edition's CI script (none without one), read by the
    book's own extension (book/_ext/claim_sources.py)."""
    script, reader = source / ".ci" / "run", source / "book" / "_ext" / "claim_sources.py"
    if not script.is_file() or not reader.is_file():
        return []
    module = sys.modules.get("claim_sources")
    if module is None:
        spec = importlib.util.spec_from_file_location("claim_sources", reader)
        assert spec is not None and spec.loader is not None
        module = sys.modules["claim_sources"] = importlib.util.module_from_spec(spec)  # for its dataclasses
        spec.loader.exec_module(module)
    return module.ci_pytest_commands(script.read_text(encoding="utf-8"))


def unlink_instructor_pages(text: str) -> str:
    """A page's links to an instructor-only page become its plain title: the page is not in the
    student edition, and a link to it would break the student book's build."""
    for page in INSTRUCTOR_PAGES:
        name = page.rsplit("/", 1)[-1]
        title = name.replace("_", " ").capitalize()
        text = re.sub(rf"\{{doc\}}`(?:[^`<]*<)?[./]*(?:book/)?{name}>?`", f"*{title}* (instructor edition)", text)
    return text


def make_student_edition(source: Path, out: Path, *, clear_all_outputs: bool = False) -> dict[str, int]:
    """Write the student edition of the course at ``source`` into ``out`` (replaced); return counts."""
    source, out = Path(source).resolve(), Path(out).resolve()
    if not (source / "_toc.yml").is_file():
        raise FileNotFoundError(f"expected a course folder with _toc.yml, got {source}")
    protected = [source / name for name in ("book", "notebooks", "bn_utils")]
    if out == source or out in source.parents or any(out == p or p in out.parents for p in protected):
        raise ValueError(f"the output folder {out} would overwrite the instructor edition in {source}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    counts = {"notebooks": 0, "stubs": 0, "book solutions": 0, "pages": 0, "claim tests": 0}
    instructor_only = {f"{page}.md" for page in INSTRUCTOR_PAGES}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(source / "book", out / "book", ignore=ignore)
    pages = []
    for page in sorted((out / "book").glob("*.md")):
        if page.relative_to(out).as_posix() in instructor_only:
            page.unlink()
            continue
        text, removed = strip_book_solutions(page.read_text(encoding="utf-8"))
        text = unlink_instructor_pages(text)
        page.write_text(text, encoding="utf-8")
        pages.append(text)
        counts["pages"] += 1
        counts["book solutions"] += removed
    keep_glue = referenced_glue_keys(pages)
    (out / "notebooks").mkdir()
    for path in sorted((source / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nb, stubs = make_student_notebook(nb, clear_all_outputs=clear_all_outputs, keep_glue=keep_glue)
        nbformat.write(nb, out / "notebooks" / path.name)
        counts["notebooks"] += 1
        counts["stubs"] += stubs
    for pattern in CLAIM_TEST_FILES:
        for path in sorted(source.glob(pattern)):
            (out / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / path.relative_to(source))
            counts["claim tests"] += path.name.startswith("test_claims_")
    if (source / "bn_utils").is_dir():
        shutil.copytree(source / "bn_utils", out / "bn_utils", ignore=ignore)
    for name in ("requirements.txt", "pyproject.toml"):
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    toc = yaml.safe_load((source / "_toc.yml").read_text(encoding="utf-8"))
    config = yaml.safe_load((source / "_config.yml").read_text(encoding="utf-8"))
    header = "# The student edition, written by scripts/make_student_edition.py: edit the instructor edition instead.\n"
    (out / "_toc.yml").write_text(header + yaml.safe_dump(student_toc(toc), sort_keys=False), encoding="utf-8")
    (out / "_config.yml").write_text(
        header + yaml.safe_dump(student_config(config, claim_ci_commands(source)), sort_keys=False), encoding="utf-8"
    )
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (replaced); default _build/student"
    )
    parser.add_argument("--source", type=Path, default=ROOT, help="the instructor edition; default this repository")
    parser.add_argument("--clear-all-outputs", action="store_true", help="drop every stored output, not only answers")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = make_student_edition(args.source, args.out, clear_all_outputs=args.clear_all_outputs)
    print(
        f"student edition in {args.out}: {counts['notebooks']} notebooks with {counts['stubs']} stubs, "
        f"{counts['pages']} pages without their {counts['book solutions']} solutions "
        f"({time.perf_counter() - start:.1f} s)\nbuild its book with: jupyter-book build {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
