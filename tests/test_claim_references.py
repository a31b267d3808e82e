"""Every sentence of every chapter's verdict names the claim test behind it, and that test exists.

Each sentence of a verdict ends with its claim test, written right after its full stop with the
``claim`` role (book/_ext/claims.py), so that the sentence stays in its paragraph and the book shows
a check mark linking to the sentence's entry on the evidence page:

    BN trains deeper than the plain network.{claim}`tests/test_claims_gradient_flow.py::test_bn_trains_deeper`
    Neither trains at depth 40.{claim}`tests/test_claims_gradient_flow.py::test_neither_trains_at_depth_40`

These tests read the page sources: in a verdict every sentence carries exactly one mark; on every
page (verdicts, the teaching guide, the misconceptions page) every mark names a test that exists;
and no page still uses the old ``% claim:`` comments.
"""

import ast
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


def _masked(text: str) -> str:
    text = ABBREVIATIONS.sub(r"\1", ROLE.sub("X", text))
    return re.sub(r"\d\.\d", "0", text)  # decimals


def count_sentences(text: str) -> int:
    """The number of sentences in a paragraph of MyST prose (roles and abbreviations do not end one)."""
    return len(SENTENCE_END.findall(_masked(text).strip()))


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


def claim_tests(file: str) -> set[str]:
    """The test functions defined in a claim-test file."""
    tree = ast.parse((ROOT / file).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


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
