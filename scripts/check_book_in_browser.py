"""Open every page of the built book in headless Chromium and check it the way a reader sees it.

    python scripts/check_book_in_browser.py            # after `jupyter-book build .`
    python scripts/check_book_in_browser.py --html DIR --shots DIR   # another build, other folder

For each page listed in _toc.yml, served from _build/html on 127.0.0.1, it checks that
  - the maths is typeset (no raw $$, \\( or \\[ left in the text outside code),
  - no image is broken, and every image has alt text that is not its file name,
  - no request leaves 127.0.0.1 (the book must work offline),
  - our pages raise no JavaScript error,
  - the page does not overflow sideways at phone width (390 px),
  - every kernel-free explorer responds: moving each of its sliders changes the figure,
  - every explorer's controls are laid out so that each name, slider and readout sit together and
    apart from the next control's (no two boxes of different controls within 8 px of each other, no
    overlap within a control, each readout nearer its own slider than any other control), at 1280
    and at 390 px, and its figure shows no text under 8 pt at 100% zoom at 1280 px,
  - every claim mark after a verdict sentence sits in the sentence's paragraph and links to an
    entry of the evidence page that exists, and every entry links back to a mark that exists,
and that every toc page is reachable by following links from the landing page. Screenshots go to
_build/screenshots/: every page whole at 1280 px and at 390 px (NAME.png, NAME--phone.png) and
every explorer (explorers/NAME--N.png, NAME--N--phone.png). Needs Chromium: Debian's `chromium`
package, or BOOK_BROWSER=/path/to/chrome.
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import os
import sys
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import yaml
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
BROWSER = os.environ.get("BOOK_BROWSER", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]

RAW_MATH_JS = """() => {
  const root = document.querySelector('main') || document.body;
  const clone = root.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .MathJax').forEach(e => e.remove());
  const text = clone.textContent;
  return ['$$', '\\\\(', '\\\\[', '\\\\begin{'].filter(s => text.includes(s));
}"""
BROKEN_IMAGES_JS = """() => Array.from(document.images)
  .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.getAttribute('src'))"""
# For each kernel-free explorer (bn_utils.explorers): move every slider to another position and
# report the explorers whose image did not change.
EXPLORERS_JS = """() => Array.from(document.querySelectorAll('.bn-frames')).map(root => {
  const image = root.querySelector('img');
  const dead = [];
  root.querySelectorAll('input[type=range]').forEach((input, i) => {
    const before = image.src;
    const old = Number(input.value);
    input.value = String(old === Number(input.max) ? Number(input.min) : old + 1);
    input.dispatchEvent(new Event('input'));
    if (image.src === before) dead.push(i);
    input.value = String(old);
    input.dispatchEvent(new Event('input'));
  });
  return {id: root.id, sliders: root.querySelectorAll('input[type=range]').length, dead: dead};
})"""
# Each explorer's controls: the boxes of every control's name, slider and readout (old outputs have
# the name as the label's own text; new ones a span.bn-frames-name), the figure's scale and type size.
EXPLORER_LAYOUT_JS = """() => Array.from(document.querySelectorAll('.bn-frames')).map(root => {
  const box = r => ({x: r.left, y: r.top, w: r.width, h: r.height});
  const controls = Array.from(root.querySelectorAll('label')).map(label => {
    let name = label.querySelector('.bn-frames-name');
    let nameBox;
    if (name) { nameBox = name.getBoundingClientRect(); }
    else {
      const text = Array.from(label.childNodes).find(n => n.nodeType === 3 && n.textContent.trim());
      const range = document.createRange(); range.selectNodeContents(text); nameBox = range.getBoundingClientRect();
    }
    return {name: box(nameBox), slider: box(label.querySelector('input').getBoundingClientRect()),
            readout: box(label.querySelector('output').getBoundingClientRect()),
            label: (name ? name.textContent : label.textContent).trim()};
  });
  const image = root.querySelector('img');
  return {id: root.id, controls: controls, textPt: root.dataset.textPt ? Number(root.dataset.textPt) : null,
          scale: image.getBoundingClientRect().width / image.naturalWidth};
})"""
# Every claim mark: where it links, and whether it sits in a paragraph (its sentence's).
CLAIM_MARKS_JS = """() => Array.from(document.querySelectorAll('sup.claim-mark')).map(mark => {
  const link = mark.querySelector('a'); const r = mark.getBoundingClientRect();
  return {id: mark.id, href: link ? link.href : null, inParagraph: mark.parentElement.tagName === 'P',
          visible: r.width > 0 && r.height > 0};
})"""
EVIDENCE_JS = """() => ({entries: Array.from(document.querySelectorAll('.claim-entry')).map(e => e.id),
  back: Array.from(document.querySelectorAll('.claim-entry a.claim-back')).map(a => a.href)})"""
ALT_IS_A_PATH_JS = """() => Array.from(document.images)
  .filter(img => !img.alt || img.alt.includes('_images/') || img.alt.endsWith('.png'))
  .map(img => img.getAttribute('src'))"""
WAIT_FOR_MATHJAX_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  return document.querySelectorAll('mjx-container').length;
}"""


GAP_PX = 8  # the least room between the boxes of two controls
TOP_OF_PAGE_JS = "() => { window.scrollTo(0, 0); if (document.activeElement) document.activeElement.blur(); }"
STICKY_HIDDEN = ".bd-header-article, .skip-link { visibility: hidden !important; }"
MIN_TEXT_PT = 8.0


def _distance(a: dict, b: dict) -> float:
    """The gap between two boxes (0 where they touch or overlap)."""
    dx = max(b["x"] - (a["x"] + a["w"]), a["x"] - (b["x"] + b["w"]), 0.0)
    dy = max(b["y"] - (a["y"] + a["h"]), a["y"] - (b["y"] + b["h"]), 0.0)
    return (dx * dx + dy * dy) ** 0.5


def _overlap(a: dict, b: dict) -> float:
    """The area two boxes share."""
    dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return max(dx, 0.0) * max(dy, 0.0)


def control_layout_problems(controls: list[dict]) -> list[str]:
    """What is wrong with an explorer's controls (each: boxes of its name, slider and readout): two
    controls closer than GAP_PX, a control's own boxes overlapping, or a name or readout nearer
    another control than its own slider. One line per problem, none when the layout is right."""
    problems = []
    parts = ("name", "slider", "readout")
    for i, control in enumerate(controls):
        for a in range(3):
            for b in range(a + 1, 3):
                if _overlap(control[parts[a]], control[parts[b]]) > 1:
                    problems.append(f"{control['label']!r}: its {parts[a]} and {parts[b]} overlap")
        for j, other in enumerate(controls):
            if j <= i:
                continue
            for a in parts:
                for b in parts:
                    if _distance(control[a], other[b]) < GAP_PX:
                        problems.append(
                            f"{control['label']!r} {a} and {other['label']!r} {b} are "
                            f"{_distance(control[a], other[b]):.0f} px apart (at least {GAP_PX})"
                        )
        for part in ("name", "readout"):
            own = _distance(control[part], control["slider"])
            nearest = min(
                (_distance(control[part], other[p]) for j, other in enumerate(controls) if j != i for p in parts),
                default=float("inf"),
            )
            if nearest <= own:
                problems.append(f"{control['label']!r}: its {part} is nearer another control than its own slider")
    return problems


def toc_pages(toc_file: Path) -> list[str]:
    """The html paths (relative to _build/html) of every page in _toc.yml, root first."""
    toc = yaml.safe_load(toc_file.read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return [str(Path(p).with_suffix("")) + ".html" for p in pages]


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``directory`` on 127.0.0.1 at a free port, in a background thread."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the report readable
        pass


class _LinkParser(html.parser.HTMLParser):
    """Collects link targets: <a href> and <meta http-equiv="refresh"> redirects."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            target = (attrs.get("content") or "").partition("url=")[2]
            if target:
                self.links.append(target)


def reachable_pages(base: str) -> set[str]:
    """Every local html page reachable from the landing page (index.html) by following links."""
    seen, queue = set(), ["index.html"]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        parser = _LinkParser()
        with urllib.request.urlopen(base + path) as response:
            parser.feed(response.read().decode("utf-8"))
        for href in parser.links:
            url = urlparse(urljoin(base + path, href))
            if url.hostname == "127.0.0.1" and url.path.endswith(".html"):
                queue.append(url.path.lstrip("/"))
    return seen


@dataclass
class Findings:
    """What the check saw across pages, for the checks that span pages and for the summary."""

    explorers: list[str] = field(default_factory=list)
    overlaps: dict[str, int] = field(default_factory=dict)  # explorer at a width -> problems found
    marks: dict[str, list[dict]] = field(default_factory=dict)  # page -> its claim marks
    entries: dict[str, dict] = field(default_factory=dict)  # page -> its evidence entries and back links
    verdicts: dict[str, tuple[int, int]] = field(default_factory=dict)  # page -> (paragraphs, marks)
    math: int = 0


def check_explorers(page, path: str, width: int, problems: list[str], findings: Findings, shots: Path) -> None:
    """The controls' layout of every explorer on the page at this width, its type size at 1280 px,
    and a screenshot of each."""
    name = path.replace("/", "__").removesuffix(".html")
    suffix = "" if width >= 1000 else "--phone"
    for n, explorer in enumerate(page.evaluate(EXPLORER_LAYOUT_JS), start=1):
        found = control_layout_problems(explorer["controls"])
        findings.overlaps[f"{path}#{explorer['id']} at {width} px"] = len(found)
        for problem in found:
            problems.append(f"explorer {explorer['id']} at {width} px: {problem}")
        if width >= 1000:
            if explorer["textPt"] is None:
                problems.append(
                    f"explorer {explorer['id']}: drawn before the house frame (no data-text-pt): "
                    "re-execute its notebook"
                )
            elif explorer["textPt"] * min(explorer["scale"], 1.0) < MIN_TEXT_PT - 0.05:
                problems.append(
                    f"explorer {explorer['id']}: its smallest text shows at "
                    f"{explorer['textPt'] * explorer['scale']:.1f} pt (at least {MIN_TEXT_PT:g})"
                )
        (shots / "explorers").mkdir(parents=True, exist_ok=True)
        hide = page.add_style_tag(content=STICKY_HIDDEN)  # the sticky top bar would cover the element's top
        page.locator(".bn-frames").nth(n - 1).screenshot(path=str(shots / "explorers" / f"{name}--{n}{suffix}.png"))
        hide.evaluate("element => element.remove()")


def check_page(
    page,
    base: str,
    path: str,
    problems: list[str],
    external: list[str],
    js_errors: list[str],
    findings: Findings,
    shots: Path,
) -> None:
    """Open one page, record what is wrong with it and what spans pages, screenshot it."""
    external.clear(), js_errors.clear()
    page.set_viewport_size({"width": 1280, "height": 900})
    response = page.goto(base + path, wait_until="networkidle")
    if response is None or response.status != 200:
        problems.append(f"{path}: HTTP {response.status if response else 'no response'}")
        return
    findings.math += page.evaluate(WAIT_FOR_MATHJAX_JS)
    if raw := page.evaluate(RAW_MATH_JS):
        problems.append(f"{path}: untypeset maths left in the text: {raw}")
    if broken := page.evaluate(BROKEN_IMAGES_JS):
        problems.append(f"{path}: {len(broken)} broken image(s): {broken[:3]}")
    if unnamed := page.evaluate(ALT_IS_A_PATH_JS):
        problems.append(f"{path}: {len(unnamed)} image(s) whose alt text is missing or a file name: {unnamed[:2]}")
    for explorer in page.evaluate(EXPLORERS_JS):
        findings.explorers.append(f"{path}#{explorer['id']}")
        if not explorer["sliders"] or explorer["dead"]:
            problems.append(f"{path}: explorer {explorer['id']} does not respond to slider(s) {explorer['dead']}")
    check_explorers(page, path, 1280, problems, findings, shots)
    marks = page.evaluate(CLAIM_MARKS_JS)
    findings.marks[path] = marks
    for mark in marks:
        if not (mark["href"] and mark["inParagraph"] and mark["visible"]):
            problems.append(f"{path}: claim mark {mark['id']} is not a visible link inside its sentence's paragraph")
    evidence = page.evaluate(EVIDENCE_JS)
    if evidence["entries"]:
        findings.entries[path] = evidence
    verdict = page.evaluate(
        "() => { const s = document.querySelector('section#the-verdict'); return s ? "
        "[s.querySelectorAll('p').length, s.querySelectorAll('sup.claim-mark').length] : null; }"
    )
    if verdict:
        findings.verdicts[path] = tuple(verdict)
    name = path.replace("/", "__").removesuffix(".html")
    page.evaluate(TOP_OF_PAGE_JS)  # the explorers' screenshots scrolled it
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        problems.append(f"{path}: overflows sideways by {overflow} px at phone width")
    check_explorers(page, path, 390, problems, findings, shots)
    page.evaluate(TOP_OF_PAGE_JS)
    page.screenshot(path=str(shots / f"{name}--phone.png"), full_page=True)
    if external:
        problems.append(f"{path}: {len(external)} request(s) off 127.0.0.1: {sorted(set(external))[:3]}")
    if js_errors:
        problems.append(f"{path}: JavaScript errors: {js_errors[:3]}")


def claim_link_problems(findings: Findings, base: str) -> list[str]:
    """Marks whose entry does not exist, and entries whose mark does not exist."""
    problems = []
    entries = {(page, entry) for page, evidence in findings.entries.items() for entry in evidence["entries"]}
    marks = {(page, mark["id"]) for page, page_marks in findings.marks.items() for mark in page_marks}
    for page, page_marks in findings.marks.items():
        for mark in page_marks:
            target = urlparse(mark["href"] or "")
            if (target.path.removeprefix(urlparse(base).path), target.fragment) not in entries:
                problems.append(f"{page}: claim mark {mark['id']} links to {mark['href']}, which is no evidence entry")
    for page, evidence in findings.entries.items():
        for href in evidence["back"]:
            target = urlparse(href)
            if (target.path.removeprefix(urlparse(base).path), target.fragment) not in marks:
                problems.append(f"{page}: an entry links back to {href}, where there is no claim mark")
    count = sum(len(m) for m in findings.marks.values())
    if count != len(entries):
        problems.append(f"{count} claim marks in the book but {len(entries)} evidence entries")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=HTML, help="the built book (default _build/html)")
    parser.add_argument("--shots", type=Path, default=SHOTS, help="where screenshots go (default _build/screenshots)")
    args = parser.parse_args(argv)
    html_dir, shots = args.html.resolve(), args.shots.resolve()
    if not (html_dir / "index.html").exists():
        print(f"no built book in {html_dir}: run `jupyter-book build . -W -n --keep-going` first")
        return 2
    if not Path(BROWSER).exists():
        print(f"no Chromium at {BROWSER}: install Debian's `chromium` or set BOOK_BROWSER")
        return 2
    shots.mkdir(parents=True, exist_ok=True)
    pages = toc_pages(ROOT / "_toc.yml")
    pages = [p for p in pages if (html_dir / p).exists() or p != "book/evidence.html"]  # an older build has none
    server, base = serve(html_dir)
    external: list[str] = []
    js_errors: list[str] = []
    failed: list[str] = []
    findings = Findings()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=BROWSER, headless=True, args=CHROMIUM_ARGS, chromium_sandbox=False)
        page = browser.new_page()

        def on_request(request):
            url = urlparse(request.url)
            if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
                external.append(request.url)

        page.on("request", on_request)
        page.route(
            lambda url: urlparse(url).hostname not in (None, "127.0.0.1") and urlparse(url).scheme in ("http", "https"),
            lambda route: route.abort(),
        )
        page.on("pageerror", lambda exc: js_errors.append(str(exc)))
        page.on("console", lambda msg: js_errors.append(msg.text) if msg.type == "error" else None)

        for path in pages:
            problems: list[str] = []
            check_page(page, base, path, problems, external, js_errors, findings, shots)
            status = "ok" if not problems else "FAILED"
            print(f"{status:6s} {path}")
            for problem in problems:
                print(f"       {problem}")
            if problems:
                failed.append(path)

        unreachable = sorted(set(pages) - reachable_pages(base))
        if unreachable:
            print(f"FAILED not reachable from the landing page: {unreachable}")
            failed.append("reachability")
        if link_problems := claim_link_problems(findings, base):
            print("FAILED claim marks and evidence entries:")
            for problem in link_problems[:20]:
                print(f"       {problem}")
            failed.append("claim links")
        browser.close()
    server.shutdown()
    for path, (paragraphs, marks) in findings.verdicts.items():
        print(f"       verdict of {path}: {paragraphs} paragraphs, {marks} claim marks")
    overlaps = sum(findings.overlaps.values())
    marks = sum(len(m) for m in findings.marks.values())
    entries = sum(len(e["entries"]) for e in findings.entries.values())
    print(
        f"{len(pages)} pages checked, {findings.math} typeset formulas, {len(findings.explorers)} kernel-free "
        f"explorers moved, {overlaps} control-layout problems, {marks} claim marks and {entries} evidence entries, "
        f"screenshots in {shots}/"
    )
    print(f"{len(pages) + 2 - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
