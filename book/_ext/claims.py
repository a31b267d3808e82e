"""Verdict sentences that carry their evidence: the ``claim`` role and the generated evidence page.

Each sentence of a verdict ends with the claim test that keeps it true, written inline after its
full stop, so that the sentence stays in its paragraph::

    BN trains deeper than the plain network.{claim}`tests/test_claims_gradient_flow.py::test_bn_trains_deeper`

In the book the reference is a small superscript check mark linking to the sentence's entry on the
page that holds the ``claim-evidence`` directive (book/evidence.md). That page is generated at build
time from the book's own sentences and the claim tests' source, so it cannot drift from either: one
entry per reference, with

- the sentence, as the chapter renders it (numbers, maths and citations included), and a link back;
- the claim test's name and file, and a link to its source when ``repository.url`` is set;
- what it asserts, in words, read from its source: the ``claim_checks`` calls (``cc.every``,
  ``cc.at_least``, ``cc.median``, ``cc.compare``) with their description, comparison and threshold,
  or a bare ``assert``'s message and condition;
- its seeds and setting (the claim file's docstring, once per page section, and the docstrings of
  the fixtures the test uses);
- the arithmetic paths and seed sets on which CI runs it, read from the ``pytest`` commands of
  ``.ci/run`` (or, where a copy of the book has no ``.ci/run``, from the ``claim_ci_commands``
  setting that scripts/make_student_edition.py writes).

tests/test_claim_references.py checks the page sources (every verdict sentence has its mark, every
named test exists); this extension makes the build fail (a warning, and the book builds with -W)
on a malformed reference, a test it cannot find, or a mark that is not directly after a sentence.
"""

from __future__ import annotations

import ast
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claim_sources import (
    DEFAULT_SEEDS,
    Assertion,
    CiRun,
    ClaimFile,
    ClaimTest,
    ci_pytest_commands,
    parse_ci_command,
    read_claim_file,
)
from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

REFERENCE = re.compile(r"^(?P<file>tests/test_claims_\w+\.py)::(?P<test>\w+)$")
MARK = "\u2713"  # ✓


# --------------------------------------------------------------------------------------------------
# The role, and the sentences it marks


class claim_mark(nodes.Inline, nodes.Element):
    """The reference after a verdict sentence; replaced by a linked check mark once resolved."""


class claim_evidence(nodes.General, nodes.Element):
    """Where the evidence page's entries go."""


@dataclass
class ClaimReference:
    """One reference in the book: where it is and the sentence it ends."""

    docname: str
    number: int  # 1, 2, ... in the page's order
    file: str
    test: str
    line: int
    section: str
    sentence: list[nodes.Node]  # deep copies of the sentence's nodes, resolved on the evidence page
    text: str

    @property
    def mark_id(self) -> str:
        return f"claim-{self.number}"

    @property
    def entry_id(self) -> str:
        return "evidence-" + re.sub(r"[^\w-]", "-", self.docname) + f"-{self.number}"


def claim_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{claim}`tests/test_claims_x.py::test_name```: the claim test behind the sentence it ends."""
    reference = REFERENCE.match(text.strip())
    if reference is None:
        message = inliner.reporter.error(
            f"claim: expected `tests/test_claims_<chapter>.py::test_<name>`, got {text!r}", line=lineno
        )
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    node = claim_mark(rawtext, file=reference["file"], test=reference["test"], line=lineno)
    return [node], []


def _sentence(mark: claim_mark) -> tuple[list[nodes.Node], str] | None:
    """The nodes of the sentence that ``mark`` ends: its paragraph's nodes since the previous mark."""
    paragraph = mark.parent
    if not isinstance(paragraph, nodes.paragraph):
        return None
    children = list(paragraph.children)
    at = children.index(mark)
    start = max((i for i in range(at) if isinstance(children[i], claim_mark)), default=-1) + 1
    sentence = [child.deepcopy() for child in children[start:at]]
    if sentence and isinstance(sentence[0], nodes.Text):
        sentence[0] = nodes.Text(sentence[0].astext().lstrip())
    for node in sentence:
        for element in node.findall(nodes.Element) if isinstance(node, nodes.Element) else ():
            element["ids"] = []
    text = " ".join("".join(n.astext() for n in sentence).split())
    return sentence, text


_TEST_NAMES: dict[tuple[Path, float], set[str]] = {}


def _test_names(path: Path) -> set[str]:
    """The test functions of a claim file (empty if it is missing or unreadable)."""
    try:
        key = (path, path.stat().st_mtime)
        if key not in _TEST_NAMES:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            _TEST_NAMES[key] = {
                n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
            }
        return _TEST_NAMES[key]
    except (OSError, SyntaxError):
        return set()


def _collect(app, doctree: nodes.document) -> None:
    env = app.env
    references = []
    for number, mark in enumerate(doctree.findall(claim_mark), start=1):
        found = _sentence(mark)
        if found is None:
            logger.warning(
                "claim: put the mark directly after its sentence's full stop, in the paragraph (not inside "
                "emphasis, a heading or a table header)",
                location=mark,
            )
            continue
        sentence, text = found
        if mark["test"] not in _test_names(Path(app.srcdir) / mark["file"]):
            logger.warning(f"claim: {mark['file']} has no test {mark['test']}", location=mark)
        if not text:
            logger.warning("claim: the mark follows no sentence (two marks in a row?)", location=mark)
        parent = mark.parent
        while parent is not None and not isinstance(parent, nodes.section):
            parent = parent.parent
        section = (
            parent[0].astext() if parent is not None and len(parent) and isinstance(parent[0], nodes.title) else ""
        )
        references.append(
            ClaimReference(env.docname, number, mark["file"], mark["test"], mark["line"], section, sentence, text)
        )
        mark["ids"] = [references[-1].mark_id]
    if any(True for _ in doctree.findall(claim_evidence)):
        # its sentences' maths arrive after reading: tell Sphinx the page needs MathJax
        env.get_domain("math").data["has_equations"][env.docname] = True
    if references:
        env.claim_references[env.docname] = references
    else:
        env.claim_references.pop(env.docname, None)


def _builder_inited(app) -> None:
    env = app.env
    if not hasattr(env, "claim_references"):
        env.claim_references = {}
    if not hasattr(env, "claim_evidence_docs"):
        env.claim_evidence_docs = set()


def _purge(app, env, docname: str) -> None:
    env.claim_references.pop(docname, None)
    env.claim_evidence_docs.discard(docname)


def _merge(app, env, docnames, other) -> None:
    for docname in docnames:
        if docname in other.claim_references:
            env.claim_references[docname] = other.claim_references[docname]
        if docname in other.claim_evidence_docs:
            env.claim_evidence_docs.add(docname)


def _always_outdated(app, env, added, changed, removed) -> list[str]:
    """The evidence page depends on every page with a claim and on the test files: rebuild it."""
    return sorted(env.claim_evidence_docs)


def _evidence_doc(app) -> str | None:
    docs = sorted(app.env.claim_evidence_docs)
    return docs[0] if docs else None


def _check_consistency(app, env) -> None:
    if len(env.claim_evidence_docs) > 1:
        logger.warning(f"claim-evidence: more than one evidence page: {sorted(env.claim_evidence_docs)}")
    if env.claim_references and not env.claim_evidence_docs:
        logger.warning("claim: the book has claim marks but no page with the claim-evidence directive")


def _resolve_marks(app, doctree: nodes.document, docname: str) -> None:
    """Each mark becomes a superscript check mark linking to its entry on the evidence page."""
    evidence = _evidence_doc(app)
    for mark in list(doctree.findall(claim_mark)):
        title = f"Checked by the claim test {mark['test']} ({mark['file']}): see its evidence"
        mark_id = (mark["ids"] or [""])[0]
        entry = next(
            (r.entry_id for r in app.env.claim_references.get(docname, []) if r.mark_id == mark_id),
            None,
        )
        if app.builder.format == "html" and evidence and entry:
            uri = app.builder.get_relative_uri(docname, evidence) + "#" + entry
            markup = (
                f'<sup class="claim-mark" id="{html.escape(mark_id)}"><a href="{html.escape(uri)}" '
                f'title="{html.escape(title)}" aria-label="{html.escape(title)}">{MARK}</a></sup>'
            )
            mark.replace_self(nodes.raw("", markup, format="html"))
        else:
            mark.replace_self(nodes.superscript(MARK, MARK, classes=["claim-mark"]))


# --------------------------------------------------------------------------------------------------
# The evidence page


class ClaimEvidence(SphinxDirective):
    """``claim-evidence``: the generated list of every claim reference in the book."""

    has_content = False

    def run(self):
        self.env.claim_evidence_docs.add(self.env.docname)
        return [claim_evidence("")]


def _doc_order(env, root: str) -> list[str]:
    order, stack, seen = [], [root], set()
    while stack:
        doc = stack.pop(0)
        if doc in seen:
            continue
        seen.add(doc)
        order.append(doc)
        stack[0:0] = env.toctree_includes.get(doc, [])
    return order


def _paragraph(*children: nodes.Node, classes: list[str] | None = None) -> nodes.paragraph:
    return nodes.paragraph("", "", *children, classes=classes or [])


def _field(name: str, *body: nodes.Node) -> nodes.field:
    return nodes.field("", nodes.field_name(name, name), nodes.field_body("", *body))


def _assertion_item(assertion: Assertion) -> nodes.list_item:
    paragraph = _paragraph()
    if assertion.context:
        paragraph += nodes.emphasis(text="; ".join(assertion.context) + ": ")
    if assertion.words:
        paragraph += nodes.Text(assertion.words)
    if assertion.code:
        paragraph += nodes.Text(" (checked as " if assertion.words else "checked as ")
        paragraph += nodes.literal(assertion.code, assertion.code)
        if assertion.words:
            paragraph += nodes.Text(")")
    return nodes.list_item("", paragraph)


class EvidencePage(SphinxPostTransform):
    """Fills the ``claim-evidence`` placeholder, before glue and cross-references are resolved, so
    that the copied sentences get their numbers, maths and citations on this page too."""

    default_priority = 2  # before myst-nb's glue (5) and Sphinx's references (10)

    def run(self, **kwargs: Any) -> None:
        placeholders = list(self.document.findall(claim_evidence))
        if not placeholders:
            return
        env, app = self.env, self.app
        here = env.docname
        root = Path(app.srcdir)
        files: dict[str, ClaimFile | None] = {}
        runs = self._ci_runs(root)
        theme = app.config.html_theme_options or {}
        repository = (app.config.claim_repository_url or theme.get("repository_url") or "").rstrip("/")
        branch = app.config.claim_repository_branch or theme.get("repository_branch") or "main"
        count = 0
        sections = []
        for docname in _doc_order(env, app.config.root_doc) + sorted(
            set(env.claim_references) - set(_doc_order(env, app.config.root_doc))
        ):
            references = env.claim_references.get(docname)
            if not references:
                continue
            title = env.titles[docname].astext() if docname in env.titles else docname
            number = env.toc_secnumbers.get(docname, {}).get("")
            heading = (".".join(map(str, number)) + ". " if number else "") + title
            section = nodes.section("", ids=["evidence-" + re.sub(r"[^\w-]", "-", docname)])
            section += nodes.title(heading, heading)
            page_link = nodes.reference("", title, internal=True, refuri=app.builder.get_relative_uri(here, docname))
            count_text = "1 sentence" if len(references) == 1 else f"{len(references)} sentences"
            intro = _paragraph(
                nodes.Text(f"{count_text} of "), page_link, nodes.Text(", each with the claim test that keeps it true.")
            )
            section += intro
            cited_files = sorted({r.file for r in references})
            for file in cited_files:
                if file not in files:
                    files[file] = self._read(root, file)
                claim_file = files[file]
                if claim_file is not None:
                    setting = _paragraph(
                        nodes.strong(text="Setting of "),
                        nodes.literal(file, file),
                        nodes.strong(text=": "),
                        nodes.Text(claim_file.setting or "(the file has no module docstring)"),
                        classes=["claim-setting"],
                    )
                    section += setting
            for reference in references:
                claim_file = files.get(reference.file)
                test = claim_file.tests.get(reference.test) if claim_file else None
                if test is None:
                    logger.warning(
                        f"claim: {reference.file} has no test {reference.test}",
                        location=(reference.docname, reference.line),
                    )
                    continue
                section += self._entry(reference, test, runs, repository, branch)
                count += 1
            sections.append(section)
        summary = _paragraph(
            nodes.Text(
                f"{count} references to claim tests, on {len(sections)} pages. Each test runs on seeds "
                f"{DEFAULT_SEEDS} unless its CI line names others (tests/claim_seeds.py)."
            ),
            classes=["claim-count"],
        )
        placeholders[0].replace_self([summary, *sections])
        for extra in placeholders[1:]:
            extra.replace_self([])

    def _read(self, root: Path, file: str) -> ClaimFile | None:
        self.env.note_dependency(str(root / file))
        try:
            return read_claim_file(root, file)
        except (OSError, SyntaxError) as error:
            logger.warning(f"claim: cannot read {file}: {error}")
            return None

    def _ci_runs(self, root: Path) -> list[CiRun]:
        commands = self.app.config.claim_ci_commands
        if not commands:
            script = root / self.app.config.claim_ci_script
            if not script.is_file():
                logger.warning(
                    f"claim-evidence: no CI script at {self.app.config.claim_ci_script} and no claim_ci_commands: "
                    "the evidence page cannot say where CI runs the claims"
                )
                return []
            self.env.note_dependency(str(script))
            commands = ci_pytest_commands(script.read_text(encoding="utf-8"))
        return [parse_ci_command(c) for c in commands]

    def _entry(
        self, reference: ClaimReference, test: ClaimTest, runs: list[CiRun], repository: str, branch: str
    ) -> nodes.container:
        app, here = self.app, self.env.docname
        entry = nodes.container("", ids=[reference.entry_id], classes=["claim-entry"])
        quote = nodes.paragraph("", "", classes=["claim-sentence"])
        for node in reference.sentence:
            copy = node.deepcopy()
            for xref in copy.findall(addnodes.pending_xref):
                if xref.get("reftype") == "doc" and not str(xref.get("reftarget", "")).startswith("/"):
                    base = reference.docname.rsplit("/", 1)[0] + "/" if "/" in reference.docname else ""
                    xref["reftarget"] = "/" + base + xref["reftarget"]
                xref["refdoc"] = here
            quote += copy
        back = app.builder.get_relative_uri(here, reference.docname) + "#" + reference.mark_id
        quote += nodes.Text(" ")
        quote += nodes.reference(
            "", "\u21a9", internal=True, refuri=back, classes=["claim-back"], reftitle="back to the sentence"
        )
        entry += quote
        fields = nodes.field_list(classes=["claim-facts"])
        name = _paragraph(nodes.literal(test.name, test.name), nodes.Text(" in "), nodes.literal(test.file, test.file))
        if repository:
            url = f"{repository}/blob/{branch}/{test.file}#L{test.line}"
            name += nodes.Text(" (")
            name += nodes.reference("", "source", refuri=url)
            name += nodes.Text(")")
        fields += _field("Claim test", name)
        asserts: list[nodes.Node] = []
        if test.docstring:
            asserts.append(_paragraph(nodes.Text(" ".join(test.docstring.split()))))
        if test.assertions:
            items = nodes.bullet_list()
            for assertion in test.assertions:
                items += _assertion_item(assertion)
            asserts.append(items)
        else:
            logger.warning(f"claim: {test.file}::{test.name} asserts nothing the evidence page can read")
        fields += _field("It asserts", *asserts)
        setting: list[nodes.Node] = []
        for fixture, doc in test.fixtures:
            setting += [nodes.literal(fixture, fixture), nodes.Text(f": {doc} ")]
        setting.append(nodes.Text(f"Otherwise as in {test.file}, above." if setting else f"As in {test.file}, above."))
        fields += _field("Setting", _paragraph(*setting))
        where = [run.describe() for run in runs if run.runs(test)]
        if runs:
            if where:
                paths = nodes.bullet_list()
                for text in dict.fromkeys(where):
                    paths += nodes.list_item("", _paragraph(nodes.Text(text)))
                fields += _field("CI runs it on", paths)
            else:
                fields += _field("CI runs it on", _paragraph(nodes.Text("no CI run selects this test")))
                logger.warning(f"claim: no pytest command of the CI script runs {test.file}::{test.name}")
        command = f"pytest {test.file}::{test.name}"
        fields += _field("Run it", _paragraph(nodes.literal(command, command)))
        entry += fields
        return entry


def setup(app):
    app.add_config_value("claim_ci_script", ".ci/run", "env")
    app.add_config_value("claim_ci_commands", [], "env")
    # where the source links point; Jupyter Book's repository.url and .branch (the theme's options) by default
    app.add_config_value("claim_repository_url", "", "env")
    app.add_config_value("claim_repository_branch", "", "env")
    app.add_node(claim_mark)
    app.add_node(claim_evidence)
    app.add_role("claim", claim_role)
    app.add_directive("claim-evidence", ClaimEvidence)
    app.add_post_transform(EvidencePage)
    app.connect("builder-inited", _builder_inited)
    app.connect("doctree-read", _collect)
    app.connect("doctree-resolved", _resolve_marks)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _always_outdated)
    app.connect("env-check-consistency", _check_consistency)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
