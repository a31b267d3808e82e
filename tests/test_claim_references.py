"""Every sentence of every chapter's verdict names the claim test behind it, and that test exists.

Each sentence of a verdict ends with its claim test, written right after its full stop with the
``claim`` role (book/_ext/claims.py), so that the sentence stays in its paragraph and the book shows
a check mark linking to the sentence's entry on the evidence page:

    BN trains deeper than the plain network.{claim}`tests/test_claims_gradient_flow.py::test_bn_trains_deeper`
    Neither trains at depth 40.{claim}`tests/test_claims_gradient_flow.py::test_neither_trains_at_depth_40`

These tests read the page sources: in a verdict every sentence carries exactly one mark; on every
page (verdicts, the teaching guide, the misconceptions page) every mark names a test that exists;
and no page still uses the old ``% claim:`` comments.

The pages that restate the verdicts carry the same marks, where a verdict is restated:

- the teaching guide's table "The course at a glance": a mark in a table cell would crowd the row,
  so comments follow the table, each naming its row's chapter, one per sentence of the row's last
  column, in order: ``% claim (bn_from_scratch): tests/test_claims_bn_from_scratch.py::test_x``;
- the teaching guide's discussion questions: one mark per statement (a sentence that is not a
  question) of each item;
- the misconceptions page: each "**What is true.**" paragraph, one mark per sentence; an entry
  settled by a derivation rather than a measurement (how to implement BN) names the unit test that
  checks it instead, once for the paragraph: ``% unit: tests/test_x.py::test_y``;
- the intro: any paragraph or list item with marks has one per sentence.
"""

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "book").glob("*.md"))
CHAPTERS = [page for page in PAGES if "## The verdict" in page.read_text()]
CLAIM_ROLE = re.compile(r"\{claim\}`(?P<reference>[^`]*)`")
REFERENCE = re.compile(r"^(?P<file>tests/test_claims_\w+\.py)::(?P<test>\w+)$")
OLD_COMMENT = re.compile(r"^\s*%\s*claim:")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")  # {glue:text}`...`, {cite:p}`...`, {eq}`...`
ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|et al|cf|vs|Fig|Eq|approx)\.")
SENTENCE_END = re.compile(r"[.!?](?:\*\*|_|\))?(?=\s+[A-Z(*\"]|\s*$)")
ENDS_A_SENTENCE = re.compile(r"[.!?](?:\*\*|_|\))?\s*$")
CODE_FENCE = re.compile(r"^\s*(```|~~~)")
ROW_CLAIM = re.compile(r"^% claim \((?P<row>\w+)\): (?P<file>tests/test_claims_\w+\.py)::(?P<test>\w+)\s*$")
UNIT = re.compile(r"^\s*% unit: (?P<file>tests/test_\w+\.py)::(?P<test>\w+)\s*$")


def _masked(text: str) -> str:
    text = ABBREVIATIONS.sub(r"\1", ROLE.sub("X", text))
    return re.sub(r"\d\.\d", "0", text)  # decimals


def sentence_ends(text: str) -> list[str]:
    """The punctuation that ends each sentence of a paragraph of MyST prose (roles, abbreviations and
    decimals do not end one)."""
    return [match.group()[0] for match in SENTENCE_END.finditer(_masked(text).strip())]


def count_sentences(text: str) -> int:
    """The number of sentences in a paragraph of MyST prose."""
    return len(sentence_ends(text))


def count_statements(text: str) -> int:
    """The number of sentences of ``text`` that are not questions."""
    return sum(end != "?" for end in sentence_ends(text))


def unmarked_sentences(prose: str) -> list[str]:
    """What is wrong with one verdict paragraph or list item, one line per problem (none: every
    sentence ends with exactly one claim mark, right after its closing punctuation)."""
    problems = []
    pieces = CLAIM_ROLE.split(prose)  # text, reference, text, reference, ..., text
    texts, references = pieces[0::2], pieces[1::2]
    for text, reference in zip(texts, references, strict=False):
        sentences = count_sentences(text)
        shown = " ".join(text.split())[-100:]
        if not text.strip():
            problems.append(f"the mark for {reference} follows no sentence of its own (two marks in a row?)")
        elif not ENDS_A_SENTENCE.search(_masked(text)):
            problems.append(f"the mark for {reference} is not right after a sentence's full stop: ...{shown!r}")
        elif sentences > 1:
            problems.append(f"{sentences} sentences share the one mark {reference}; give each its own: ...{shown!r}")
    if count_sentences(texts[-1]):
        shown = " ".join(texts[-1].split())[:120]
        problems.append(
            f"{count_sentences(texts[-1])} sentence(s) without a claim mark: {shown!r}; end each with "
            "{claim}`tests/test_claims_<chapter>.py::test_<name>` right after its full stop"
        )
    return problems


def verdict_blocks(page: Path) -> list[tuple[int, str]]:
    """(first line number, prose) of each paragraph or list item of the verdict."""
    lines = page.read_text().splitlines()
    start = lines.index("## The verdict") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines[start:end], start=start + 1):
        if not line.strip() or line.lstrip().startswith("%"):
            continue
        new_item = line.startswith(("- ", "* ")) or not lines[number - 2].strip()
        if new_item or not blocks:
            blocks.append((number, []))
        blocks[-1][1].append(line)
    return [(number, " ".join(prose)) for number, prose in blocks]


def references(page: Path) -> list[tuple[int, str]]:
    """(line number, reference) of every claim mark of a page, outside code blocks."""
    found, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if CODE_FENCE.match(line):
            fenced = not fenced
        if not fenced:
            found.extend((number, match["reference"]) for match in CLAIM_ROLE.finditer(line))
    return found


@functools.cache  # parsed once per run, not once per reference (a page names the same file dozens of times)
def claim_tests(file: str) -> frozenset[str]:
    """The test functions defined in a claim-test file."""
    tree = ast.parse((ROOT / file).read_text())
    return frozenset(
        node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    )


def test_sentence_counting_ignores_roles_abbreviations_and_decimals():
    assert count_sentences("BN trains 1.5 times faster, e.g. at lr 0.1. The plain net does not.") == 2
    assert count_sentences("Up to depth {glue:text}`/n.ipynb::bn_deepest:s`. Then {cite:t}`yang2019mean` fails.") == 2
    assert count_sentences("**What the evidence says:** it explodes (by 1.2 per layer).") == 1
    assert count_sentences("Yang et al. predicted it") == 0


def test_the_sentence_check_finds_each_kind_of_missing_or_misplaced_mark():
    mark = "{claim}`tests/test_claims_x.py::test_%s`"
    assert unmarked_sentences(f"**Lead:** A holds at 1.5.{mark % 'a'} B holds (e.g. here).{mark % 'b'}") == []
    assert unmarked_sentences("**What holds:**") == [], "a lead-in with a colon is no sentence"
    assert "1 sentence(s) without a claim mark" in unmarked_sentences(f"A holds.{mark % 'a'} B holds.")[0]
    assert "not right after a sentence's full stop" in unmarked_sentences(f"A holds{mark % 'a'} everywhere.")[0]
    assert "2 sentences share the one mark" in unmarked_sentences(f"A holds. B holds.{mark % 'a'}")[0]
    assert "follows no sentence" in unmarked_sentences(f"A holds.{mark % 'a'}{mark % 'b'}")[0]


@pytest.mark.parametrize("page", CHAPTERS, ids=[page.stem for page in CHAPTERS])
def test_every_verdict_sentence_names_its_claim_test(page):
    for number, prose in verdict_blocks(page):
        problems = unmarked_sentences(prose)
        assert not problems, f"{page.name}, verdict block at line {number}: " + "; ".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_every_named_claim_test_exists(page):
    for number, reference in references(page):
        claim = REFERENCE.match(reference)
        assert claim, (
            f"{page.name}, line {number}: write {{claim}}`tests/test_claims_x.py::test_name`, got {reference!r}"
        )
        assert (ROOT / claim["file"]).exists(), f"{page.name}, line {number}: no file {claim['file']}"
        assert claim["test"] in claim_tests(claim["file"]), (
            f"{page.name}, line {number}: {claim['file']} has no test {claim['test']}"
        )


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_no_old_claim_comment_is_left(page):
    left = [number for number, line in enumerate(page.read_text().splitlines(), start=1) if OLD_COMMENT.match(line)]
    assert not left, (
        f"{page.name}, line(s) {left}: a '% claim:' comment, which the book neither shows nor links. Write the "
        "reference inline instead, right after the sentence's full stop: "
        "{claim}`tests/test_claims_x.py::test_name` (convert_claim_comments.py converts a whole page: "
        "`python convert_claim_comments.py <repository root>`)"
    )


def test_every_chapter_with_a_verdict_has_marks_and_the_book_has_an_evidence_page():
    assert CHAPTERS, "no page has a '## The verdict' section"
    for page in CHAPTERS:
        assert references(page), f"{page.name}: a verdict without a single claim mark"
    evidence = [page for page in PAGES if "```{claim-evidence}" in page.read_text()]
    assert len(evidence) == 1, f"exactly one page holds the claim-evidence directive, found {evidence}"
    toc = (ROOT / "_toc.yml").read_text()
    assert f"book/{evidence[0].stem}" in toc, "the evidence page is in the table of contents"


def blocks(lines: list[str], start: int, end: int) -> list[tuple[int, str, list[str]]]:
    """(first line number, prose, comment lines) of each paragraph or list item in lines[start:end]."""
    found: list[tuple[int, list[str], list[str]]] = []
    for number, line in enumerate(lines[start:end], start=start + 1):
        if not line.strip():
            continue
        comment = line.lstrip().startswith("%")
        new_item = line.startswith(("- ", "* ")) or not lines[number - 2].strip()
        if not comment and (new_item or not found or found[-1][2]):
            found.append((number, [], []))
        if not found:
            continue
        (found[-1][2] if comment else found[-1][1]).append(line.strip())
    return [(number, " ".join(prose), comments) for number, prose, comments in found]


def section(lines: list[str], heading: str) -> tuple[int, int]:
    """The line range of the section under ``heading`` (up to the next heading of its level or above)."""
    start = lines.index(heading) + 1
    level = heading.split()[0]
    end = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("#") and lines[i].split()[0] <= level),
        len(lines),
    )
    return start, end


def glance_rows(lines: list[str]) -> tuple[list[tuple[str, str]], list[re.Match], int]:
    """The teaching guide's table: (chapter, evidence cell) per row, the row claims after it, and
    the line number of the table's first row."""
    start, end = section(lines, "## The course at a glance")
    table = [(i, line) for i, line in enumerate(lines[start:end], start=start) if line.startswith("|")]
    rows = []
    for _, line in table[2:]:  # header and rule first
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        chapter = re.search(r"\{doc\}`(\w+)`", cells[0])
        assert chapter, f"teaching.md: a row of the table names no chapter: {line[:80]!r}"
        rows.append((chapter[1], cells[-1]))
    claims = [m for line in lines[table[-1][0] + 1 : end] if (m := ROW_CLAIM.match(line))]
    return rows, claims, table[0][0] + 1


def test_statements_are_counted_without_questions():
    assert count_statements("BN's best rate is 10 times the plain one's. Which matters, and when?") == 1
    assert count_statements("Does it? It does. Why?") == 1
    assert count_statements("No question here. None here either.") == 2


def test_the_teaching_guides_table_names_a_claim_test_for_each_sentence():
    lines = (ROOT / "book" / "teaching.md").read_text().splitlines()
    rows, claims, first = glance_rows(lines)
    for chapter, evidence in rows:
        named = [claim for claim in claims if claim["row"] == chapter]
        assert count_sentences(evidence) == len(named), (
            f"teaching.md, table row {chapter}: {count_sentences(evidence)} sentence(s) but {len(named)} "
            f"'% claim ({chapter}): ...' comment(s) after the table (line {first}): {evidence[:100]!r}"
        )
    unknown = {claim["row"] for claim in claims} - {chapter for chapter, _ in rows}
    assert not unknown, f"teaching.md: claim comments for rows the table does not have: {sorted(unknown)}"
    for claim in claims:
        assert claim["test"] in claim_tests(claim["file"]), f"teaching.md: {claim['file']} has no test {claim['test']}"


def test_the_teaching_guides_discussion_statements_carry_their_marks():
    lines = (ROOT / "book" / "teaching.md").read_text().splitlines()
    start, end = section(lines, "## Discussion questions")
    for number, prose, _ in blocks(lines, start, end):
        if not prose.startswith("- "):
            continue
        text = re.sub(r"^- Chapter \d+: ", "", prose)
        statements, marks = count_statements(CLAIM_ROLE.sub("", text)), len(CLAIM_ROLE.findall(text))
        assert statements == marks, (
            f"teaching.md, line {number}: {statements} statement(s) but {marks} claim mark(s): {prose[:120]!r}"
        )


def test_every_misconception_names_what_settles_it():
    lines = (ROOT / "book" / "misconceptions.md").read_text().splitlines()
    found = 0
    for number, prose, comments in blocks(lines, 0, len(lines)):
        if not prose.startswith("**What is true.**"):
            continue
        found += 1
        text = prose.removeprefix("**What is true.**")
        marks, units = CLAIM_ROLE.findall(text), [c for c in comments if UNIT.match(c)]
        if units:
            assert not marks, f"misconceptions.md, line {number}: a unit test and claim marks; give one or the other"
            for unit in units:
                match = UNIT.match(unit)
                assert match and (ROOT / match["file"]).exists(), f"misconceptions.md, line {number}: {unit!r}"
            continue
        problems = unmarked_sentences(text)
        assert marks and not problems, (
            f"misconceptions.md, line {number}: give each sentence its claim mark, or one '% unit:' comment "
            f"for a derivation: " + "; ".join(problems or ["no mark"])
        )
    assert found >= 10, f"misconceptions.md: only {found} 'What is true.' paragraphs found"


def test_the_intros_marks_match_their_sentences():
    lines = (ROOT / "book" / "intro.md").read_text().splitlines()
    for number, prose, _ in blocks(lines, 0, len(lines)):
        if CLAIM_ROLE.search(prose):
            problems = unmarked_sentences(prose)
            assert not problems, f"intro.md, line {number}: " + "; ".join(problems)
