"""Every exercise carries its ratings (difficulty, importance, time) and a hint before its solution.

The convention is in CONTRIBUTING.md, "Exercises". The pages and notebooks checked are read from the
book's table of contents (``_toc.yml``): every chapter page and lab notebook, and every other page
with an exercise.
The checkers themselves are tested on the synthetic examples below.
"""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import course_toc  # noqa: E402  (scripts/course_toc.py: the chapters, read from _toc.yml)

# The book's pages and notebooks, read from _toc.yml (scripts/course_toc.py): a new chapter is
# checked as soon as it is in the table of contents. Every chapter page and notebook has exercises;
# any other page of the book with an exercise (the misconceptions page) follows the same convention.
CHAPTER_PAGES = course_toc.chapter_pages()
RATED_PAGES = CHAPTER_PAGES + [
    page
    for page in course_toc.toc_pages()
    if page not in CHAPTER_PAGES and "{exercise}" in (ROOT / page).read_text(encoding="utf-8")
]
RATED_NOTEBOOKS = course_toc.notebooks()

RATING = re.compile(r"^\*\*Difficulty\*\* [●○]{3} · \*\*Importance\*\* [●○]{3} · \*\*Time\*\* \d+ min$")
NOTEBOOK_RATING = re.compile(
    r"^\*\*(Exercise \w+|Your turn)\*\* · \*\*Difficulty\*\* [●○]{3} · \*\*Importance\*\* [●○]{3} · "
    r"\*\*Time\*\* \d+ min"
)
OPEN = re.compile(r"^(`{3,}|:{3,})\{(exercise|solution|admonition)\}\s*(.*)$")


def _blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """The top-level exercise, solution and admonition directives of a page: (kind, argument, body lines)."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        match = OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        fence, kind, argument = match.groups()
        closer = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body, i = [], i + 1
        while i < len(lines) and not closer.match(lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append((kind, argument.strip(), body))
        i += 1
    return blocks


def _options_and_content(body: list[str]) -> tuple[dict[str, str], list[str]]:
    options, k = {}, 0
    while k < len(body) and body[k].startswith(":"):
        name, _, value = body[k][1:].partition(":")
        options[name.strip()] = value.strip()
        k += 1
    return options, [line for line in body[k:] if line.strip()]


def page_problems(text: str) -> list[str]:
    """What is missing from a page's exercises: a rating line first, a dropdown hint before the solution."""
    problems, blocks = [], _blocks(text)
    for index, (kind, _, body) in enumerate(blocks):
        if kind != "exercise":
            continue
        options, content = _options_and_content(body)
        label = options.get("label", f"exercise {index + 1}")
        if not content or not RATING.match(content[0]):
            first = content[0] if content else "(empty)"
            problems.append(
                f"{label}: the first line must be '**Difficulty** ●●○ · **Importance** ●●● · **Time** 10 min', "
                f"got {first!r}"
            )
        following = []
        for later_kind, argument, later_body in blocks[index + 1 :]:
            if later_kind == "exercise":
                break
            following.append((later_kind, argument, _options_and_content(later_body)[0]))
        hints = [
            position
            for position, (k, argument, opts) in enumerate(following)
            if k == "admonition" and argument.startswith("Hint") and "dropdown" in opts.get("class", "")
        ]
        solutions = [position for position, (k, argument, _) in enumerate(following) if k == "solution"]
        if not hints:
            problems.append(f"{label}: no hint (an ':::{{admonition}} Hint' with ':class: dropdown') after it")
        elif solutions and min(hints) > min(solutions):
            problems.append(f"{label}: the hint comes after the solution; put it before")
    return problems


def notebook_problems(cells: list[dict]) -> list[str]:
    """What is missing from a notebook's exercises: the rating line, and a hint (a <details> block
    whose summary says Hint, or a call to ex.hint) in the exercise's cell or the cells up to its solution."""
    problems = []
    sources = ["".join(cell["source"]) for cell in cells]
    for i, (cell, source) in enumerate(zip(cells, sources, strict=True)):
        if cell["cell_type"] != "markdown" or not re.match(r"\*\*(Exercise \w+|Your turn)", source.lstrip()):
            continue
        name = re.match(r"\*\*(Exercise \w+|Your turn)", source.lstrip()).group(1)  # type: ignore[union-attr]
        if not NOTEBOOK_RATING.match(source.lstrip()):
            problems.append(
                f"{name}: start with '**{name}** · **Difficulty** ●●○ · **Importance** ●●● · **Time** 10 min'"
            )
        span = [source]
        for later, later_source in zip(cells[i + 1 :], sources[i + 1 :], strict=True):
            if "solution" in later.get("metadata", {}).get("tags", []) or later["cell_type"] == "markdown":
                break
            span.append(later_source)
        if not any(re.search(r"<summary>[^<]*Hint", s) or "ex.hint(" in s for s in span):
            problems.append(f"{name}: no hint before its solution (a <details><summary>Hint</summary> block)")
    return problems


@pytest.mark.parametrize("page", RATED_PAGES)
def test_rated_pages_exercises_carry_ratings_and_a_hint(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    assert "{exercise}" in text, f"{page} is listed as rated but has no exercise"
    assert page_problems(text) == []


@pytest.mark.parametrize("notebook", RATED_NOTEBOOKS)
def test_rated_notebooks_exercises_carry_ratings_and_a_hint(notebook):
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    assert any(
        re.match(r"\*\*(Exercise \w+|Your turn)", "".join(cell["source"]).lstrip())
        for cell in cells
        if cell["cell_type"] == "markdown"
    ), f"{notebook} is listed as rated but has no exercise"
    assert notebook_problems(cells) == []


GOOD = """
```{exercise}
:label: ex-a
**Difficulty** ●●○ · **Importance** ●●● · **Time** 10 min

Question.
```

:::{admonition} Hint
:class: dropdown
Look at the equation.
:::

````{solution} ex-a
:class: dropdown
```python
code = 1
```
````
"""


def test_page_checker_accepts_the_convention():
    assert page_problems(GOOD) == []


def test_page_checker_names_a_missing_or_malformed_rating():
    missing = GOOD.replace("**Difficulty** ●●○ · **Importance** ●●● · **Time** 10 min\n\n", "")
    assert page_problems(missing) == [
        "ex-a: the first line must be '**Difficulty** ●●○ · **Importance** ●●● · **Time** 10 min', got 'Question.'"
    ]
    assert len(page_problems(GOOD.replace("●●○ ·", "●●○● ·"))) == 1
    assert len(page_problems(GOOD.replace("10 min", "ten minutes"))) == 1


def test_page_checker_names_a_missing_hint_and_a_hint_after_the_solution():
    no_hint = GOOD.replace(":::{admonition} Hint\n:class: dropdown\nLook at the equation.\n:::\n", "")
    assert page_problems(no_hint) == ["ex-a: no hint (an ':::{admonition} Hint' with ':class: dropdown') after it"]
    not_dropdown = GOOD.replace(":class: dropdown\nLook", ":class: tip\nLook")
    assert page_problems(not_dropdown) == page_problems(no_hint)
    hint = ":::{admonition} Hint\n:class: dropdown\nLook at the equation.\n:::\n"
    late = GOOD.replace(hint, "") + "\n" + hint
    assert page_problems(late) == ["ex-a: the hint comes after the solution; put it before"]
    two = GOOD + GOOD.replace("ex-a", "ex-b").replace(hint, "")
    assert page_problems(two) == ["ex-b: no hint (an ':::{admonition} Hint' with ':class: dropdown') after it"]


def _md(source, tags=()):
    return {"cell_type": "markdown", "metadata": {"tags": list(tags)}, "source": source}


def _code(source, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": source, "outputs": []}


def test_notebook_checker():
    rated = "**Exercise 1** · **Difficulty** ●○○ · **Importance** ●●○ · **Time** 5 min\n\nDo it."
    hint = "\n\n<details>\n<summary>Hint</summary>\n\nLook up.\n</details>\n"
    assert notebook_problems([_md(rated + hint), _code("x = 1", ["solution"])]) == []
    assert notebook_problems([_md(rated), _code('ex.hint("forward")'), _code("x = 1", ["solution"])]) == []
    assert notebook_problems([_md(rated), _code("x = 1", ["solution"])]) == [
        "Exercise 1: no hint before its solution (a <details><summary>Hint</summary> block)"
    ]
    unrated = "**Exercise 2 (5 min).** Do it." + hint
    assert notebook_problems([_md(unrated), _code("x = 1", ["solution"])]) == [
        "Exercise 2: start with '**Exercise 2** · **Difficulty** ●●○ · **Importance** ●●● · **Time** 10 min'"
    ]
