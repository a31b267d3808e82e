"""Every sentence of every chapter's verdict names the claim test behind it, and that test exists;
so does every sentence of the pages that restate the verdicts (the teaching guide, the
misconceptions page, the intro).

A verdict paragraph (or list item) is followed by one MyST comment per sentence, in order:

    BN trains deeper than the plain network. Neither trains at depth 40.
    % claim: tests/test_claims_gradient_flow.py::test_bn_trains_deeper
    % claim: tests/test_claims_gradient_flow.py::test_neither_trains_at_depth_40

The restating pages use the same comments, where a verdict is restated:

- the teaching guide's table "The course at a glance": a table cannot hold a comment line, so the
  comments follow the table, each naming its row's chapter, one per sentence of the row's last
  column, in order: ``% claim (bn_from_scratch): tests/test_claims_bn_from_scratch.py::test_x``;
- the teaching guide's discussion questions: one comment per statement (a sentence that is not a
  question) of each item;
- the misconceptions page: each "**What is true.**" paragraph, one comment per sentence; an entry
  settled by a derivation rather than a measurement (how to implement BN) names the unit test that
  checks it instead, once for the paragraph: ``% unit: tests/test_exercises.py::test_x``;
- the intro: any paragraph or list item followed by claim comments (it restates no verdict now).

The comments do not show in the book; these tests read the page sources.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(page for page in (ROOT / "book").glob("*.md") if "## The verdict" in page.read_text())
RESTATING = [ROOT / "book" / name for name in ("teaching.md", "misconceptions.md", "intro.md")]
CLAIM = re.compile(r"^\s*% claim: (?P<file>tests/test_claims_\w+\.py)::(?P<test>\w+)\s*$")
ROW_CLAIM = re.compile(r"^% claim \((?P<row>\w+)\): (?P<file>tests/test_claims_\w+\.py)::(?P<test>\w+)\s*$")
UNIT = re.compile(r"^\s*% unit: (?P<file>tests/test_\w+\.py)::(?P<test>\w+)\s*$")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")  # {glue:text}`...`, {cite:p}`...`, {eq}`...`
ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|et al|cf|vs|Fig|Eq|approx)\.")
SENTENCE_END = re.compile(r"[.!?](?:\*\*|_|\))?(?=\s+[A-Z(*\"]|\s*$)")


def sentence_ends(text: str) -> list[str]:
    """The punctuation that ends each sentence of a paragraph of MyST prose (roles, abbreviations and
    decimals do not end one)."""
    text = ABBREVIATIONS.sub(r"\1", ROLE.sub("X", text))
    text = re.sub(r"\d\.\d", "0", text)  # decimals
    return [match.group()[0] for match in SENTENCE_END.finditer(text.strip())]


def count_sentences(text: str) -> int:
    """The number of sentences in a paragraph of MyST prose."""
    return len(sentence_ends(text))


def verdict_blocks(page: Path) -> list[tuple[int, str, list[re.Match]]]:
    """(first line number, prose, claim comments) of each paragraph or list item of the verdict."""
    lines = page.read_text().splitlines()
    start = lines.index("## The verdict") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[tuple[int, list[str], list[re.Match]]] = []
    for number, line in enumerate(lines[start:end], start=start + 1):
        claim = CLAIM.match(line)
        if not line.strip():
            continue
        new_item = line.startswith(("- ", "* ")) or (number - 2 >= 0 and not lines[number - 2].strip())
        if claim is None and (new_item or not blocks or blocks[-1][2]):
            blocks.append((number, [], []))
        if claim:
            blocks[-1][2].append(claim)
        elif not line.lstrip().startswith("%"):
            blocks[-1][1].append(line)
    return [(number, " ".join(prose), claims) for number, prose, claims in blocks]


def count_statements(text: str) -> int:
    """The number of sentences of ``text`` that are not questions."""
    return sum(end != "?" for end in sentence_ends(text))


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


def claim_tests(file: str) -> set[str]:
    """The test functions defined in a claim-test file."""
    tree = ast.parse((ROOT / file).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_sentence_counting_ignores_roles_abbreviations_and_decimals():
    assert count_sentences("BN trains 1.5 times faster, e.g. at lr 0.1. The plain net does not.") == 2
    assert count_sentences("Up to depth {glue:text}`/n.ipynb::bn_deepest:s`. Then {cite:t}`yang2019mean` fails.") == 2
    assert count_sentences("**What the evidence says:** it explodes (by 1.2 per layer).") == 1
    assert count_sentences("Yang et al. predicted it") == 0


@pytest.mark.parametrize("page", CHAPTERS, ids=[page.stem for page in CHAPTERS])
def test_every_verdict_sentence_names_its_claim_test(page):
    for number, prose, claims in verdict_blocks(page):
        sentences = count_sentences(prose)
        assert sentences == len(claims), (
            f"{page.name}, line {number}: {sentences} sentence(s) but {len(claims)} '% claim:' comment(s) "
            f"after them; each sentence of a verdict names its claim test, in order: {prose[:120]!r}"
        )


@pytest.mark.parametrize("page", CHAPTERS, ids=[page.stem for page in CHAPTERS])
def test_every_named_claim_test_exists(page):
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.lstrip().startswith("% claim:"):
            claim = CLAIM.match(line)
            assert claim, f"{page.name}, line {number}: write '% claim: tests/test_claims_x.py::test_name'"
            assert (ROOT / claim["file"]).exists(), f"{page.name}, line {number}: no file {claim['file']}"
            assert claim["test"] in claim_tests(claim["file"]), (
                f"{page.name}, line {number}: {claim['file']} has no test {claim['test']}"
            )


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


def test_the_teaching_guides_discussion_statements_name_their_claim_tests():
    lines = (ROOT / "book" / "teaching.md").read_text().splitlines()
    start, end = section(lines, "## Discussion questions")
    for number, prose, comments in blocks(lines, start, end):
        if not prose.startswith("- "):
            continue
        statements = count_statements(re.sub(r"^- Chapter \d+: ", "", prose))
        claims = [c for c in comments if CLAIM.match(c)]
        assert statements == len(claims), (
            f"teaching.md, line {number}: {statements} statement(s) but {len(claims)} '% claim:' comment(s): "
            f"{prose[:120]!r}"
        )


def test_every_misconception_names_what_settles_it():
    lines = (ROOT / "book" / "misconceptions.md").read_text().splitlines()
    found = 0
    for number, prose, comments in blocks(lines, 0, len(lines)):
        if not prose.startswith("**What is true.**"):
            continue
        found += 1
        claims, units = [c for c in comments if CLAIM.match(c)], [c for c in comments if UNIT.match(c)]
        sentences = count_sentences(prose.removeprefix("**What is true.**"))
        assert (units and not claims) or (sentences == len(claims) and not units), (
            f"misconceptions.md, line {number}: {sentences} sentence(s) with {len(claims)} '% claim:' and "
            f"{len(units)} '% unit:' comment(s); give one claim per sentence, or one unit test for a derivation: "
            f"{prose[:120]!r}"
        )
    assert found >= 10, f"misconceptions.md: only {found} 'What is true.' paragraphs found"


def test_the_intros_claims_match_their_sentences():
    lines = (ROOT / "book" / "intro.md").read_text().splitlines()
    for number, prose, comments in blocks(lines, 0, len(lines)):
        claims = [c for c in comments if CLAIM.match(c)]
        if claims:
            assert count_sentences(prose) == len(claims), (
                f"intro.md, line {number}: {count_sentences(prose)} sentence(s) but {len(claims)} claim comment(s)"
            )


@pytest.mark.parametrize("page", RESTATING, ids=[page.stem for page in RESTATING])
def test_every_test_a_restating_page_names_exists(page):
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if not line.lstrip().startswith("%"):
            continue
        match = CLAIM.match(line) or ROW_CLAIM.match(line) or UNIT.match(line)
        assert match, (
            f"{page.name}, line {number}: write '% claim: tests/test_claims_x.py::test_name' (or, after the "
            f"teaching guide's table, '% claim (chapter): ...'; for a derivation, '% unit: tests/test_x.py::test_name')"
        )
        assert (ROOT / match["file"]).exists(), f"{page.name}, line {number}: no file {match['file']}"
        assert match["test"] in claim_tests(match["file"]), (
            f"{page.name}, line {number}: {match['file']} has no test {match['test']}"
        )
