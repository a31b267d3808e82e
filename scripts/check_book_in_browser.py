"""Open every page of the built book in headless Chromium and check it the way a reader sees it.

    python scripts/check_book_in_browser.py            # after `jupyter-book build .`

For each page listed in _toc.yml, served from _build/html on 127.0.0.1, it checks that
  - the maths is typeset (no raw $$, \\( or \\[ left in the text outside code),
  - no image is broken, and every image has alt text that is not its file name,
  - no request leaves 127.0.0.1 (the book must work offline),
  - our pages raise no JavaScript error,
  - the page does not overflow sideways at phone width (390 px),
  - every kernel-free explorer responds: moving each of its sliders changes the figure,
and that every toc page is reachable by following links from the landing page. A screenshot of
each page (desktop and phone width) goes to _build/screenshots/. Needs Chromium: Debian's
`chromium` package, or BOOK_BROWSER=/path/to/chrome.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import sys
import threading
import urllib.request
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
ALT_IS_A_PATH_JS = """() => Array.from(document.images)
  .filter(img => !img.alt || img.alt.includes('_images/') || img.alt.endsWith('.png'))
  .map(img => img.getAttribute('src'))"""
WAIT_FOR_MATHJAX_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  return document.querySelectorAll('mjx-container').length;
}"""


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


def check_page(
    page, base: str, path: str, problems: list[str], external: list[str], js_errors: list[str], explorers: list[str]
) -> int:
    """Open one page, record what is wrong with it, screenshot it; return its typeset-math count."""
    external.clear(), js_errors.clear()
    page.set_viewport_size({"width": 1280, "height": 900})
    response = page.goto(base + path, wait_until="networkidle")
    if response is None or response.status != 200:
        problems.append(f"{path}: HTTP {response.status if response else 'no response'}")
        return 0
    math_count = page.evaluate(WAIT_FOR_MATHJAX_JS)
    if raw := page.evaluate(RAW_MATH_JS):
        problems.append(f"{path}: untypeset maths left in the text: {raw}")
    if broken := page.evaluate(BROKEN_IMAGES_JS):
        problems.append(f"{path}: {len(broken)} broken image(s): {broken[:3]}")
    if unnamed := page.evaluate(ALT_IS_A_PATH_JS):
        problems.append(f"{path}: {len(unnamed)} image(s) whose alt text is missing or a file name: {unnamed[:2]}")
    for explorer in page.evaluate(EXPLORERS_JS):
        explorers.append(f"{path}#{explorer['id']}")
        if not explorer["sliders"] or explorer["dead"]:
            problems.append(f"{path}: explorer {explorer['id']} does not respond to slider(s) {explorer['dead']}")
    name = path.replace("/", "__").removesuffix(".html")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 1:
        problems.append(f"{path}: overflows sideways by {overflow} px at phone width")
    page.screenshot(path=str(SHOTS / f"{name}--phone.png"), full_page=False)
    if external:
        problems.append(f"{path}: {len(external)} request(s) off 127.0.0.1: {sorted(set(external))[:3]}")
    if js_errors:
        problems.append(f"{path}: JavaScript errors: {js_errors[:3]}")
    return math_count


def main() -> int:
    if not (HTML / "index.html").exists():
        print("no built book in _build/html: run `jupyter-book build . -W -n --keep-going` first")
        return 2
    if not Path(BROWSER).exists():
        print(f"no Chromium at {BROWSER}: install Debian's `chromium` or set BOOK_BROWSER")
        return 2
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = toc_pages(ROOT / "_toc.yml")
    server, base = serve(HTML)
    external: list[str] = []
    js_errors: list[str] = []
    failed, math_total = [], 0
    explorers: list[str] = []
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
            math_total += check_page(page, base, path, problems, external, js_errors, explorers)
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
        browser.close()
    server.shutdown()
    print(
        f"{len(pages)} pages checked, {math_total} typeset formulas, {len(explorers)} kernel-free explorers moved, "
        f"screenshots in {SHOTS.relative_to(ROOT)}/"
    )
    print(f"{len(pages) + 1 - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
