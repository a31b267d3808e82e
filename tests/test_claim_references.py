"""Every sentence of every chapter's verdict names the claim test behind it, and that test exists.

A verdict paragraph (or list item) is followed by one MyST comment per sentence, in order:

    BN trains deeper than the plain network. Neither trains at depth 40.
    % claim: tests/test_claims_gradient_flow.py::test_bn_trains_deeper
    % claim: tests/test_claims_gradient_flow.py::test_neither_trains_at_depth_40

The comments do not show in the book; these tests read the page sources.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(page for page in (ROOT / "book").glob("*.md") if "## The verdict" in page.read_text())
CLAIM = re.compile(r"^\s*% claim: (?P<file>tests/test_claims_\w+\.py)::(?P<test>\w+)\s*$")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")  # {glue:text}`...`, {cite:p}`...`, {eq}`...`
ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|et al|cf|vs|Fig|Eq|approx)\.")
SENTENCE_END = re.compile(r"[.!?](?:\*\*|_|\))?(?=\s+[A-Z(*\"]|\s*$)")


def count_sentences(text: str) -> int:
    """The number of sentences in a paragraph of MyST prose (roles and abbreviations do not end one)."""
    text = ABBREVIATIONS.sub(r"\1", ROLE.sub("X", text))
    text = re.sub(r"\d\.\d", "0", text)  # decimals
    return len(SENTENCE_END.findall(text.strip()))


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
