"""``glue-figure``: a numbered figure, with caption and alt text, whose image is a figure that a
notebook glued (myst-nb ``glue``), pasted into another page.

myst-nb's own ``glue:figure`` only pastes from the same document, and its cross-document
``glue:any`` gives no caption, number or alt text. Every figure links to its image at full size (a
reader on a phone, or anyone who wants the small print, can open it), and a figure of several
panels side by side (wider than ``WIDE`` times its height) takes the page's margin too
(sphinx-book-theme's ``full-width``), so that its type is not shrunk to half its size. Usage in a
chapter page::

    ```{glue-figure} fig_running_stats
    :doc: ../notebooks/01_bn_from_scratch.ipynb
    :alt: Two panels of running-mean traces ...
    :name: fig-running-stats

    Caption: what the figure shows and what to look at.
    ```
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from PIL import Image
from sphinx.util.docutils import SphinxDirective

GLUE_PREFIX = "application/papermill.record/"
WIDE = 2.4  # width / height above which a figure has panels side by side and gets the margin too


def glued_png(notebook: Path, key: str) -> bytes:
    """The PNG bytes glued under ``key`` in a stored notebook (KeyError if absent)."""
    nb = json.loads(notebook.read_text())
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get("scrapbook", {}).get("name") != key:
                continue
            data = output.get("data", {})
            png = data.get("image/png") or data.get(GLUE_PREFIX + "image/png")
            if png:
                return base64.b64decode(png)
    raise KeyError(f"no PNG glued as {key!r} in {notebook}")


class GlueFigure(SphinxDirective):
    required_arguments = 1
    has_content = True
    option_spec = {
        "doc": directives.unchanged_required,
        "alt": directives.unchanged_required,
        "name": directives.unchanged,
        "width": directives.length_or_percentage_or_unitless,
    }

    def run(self):
        key = self.arguments[0]
        if "doc" not in self.options or "alt" not in self.options:
            raise self.error("glue-figure needs :doc: (the notebook) and :alt: (text for screen readers)")
        rel, notebook = self.env.relfn2path(self.options["doc"], self.env.docname)
        notebook = Path(notebook)
        if not notebook.exists():
            raise self.error(f"glue-figure: no notebook at {rel}")
        self.env.note_dependency(str(notebook))
        try:
            png = glued_png(notebook, key)
        except KeyError as exc:
            raise self.error(f"glue-figure: {exc.args[0]}") from None
        # Written inside _build (excluded from the sources); Sphinx copies it next to the page.
        out = Path(self.env.srcdir) / "_build" / "glued" / notebook.stem / f"{key}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists() or out.read_bytes() != png:
            out.write_bytes(png)
        image = nodes.image(uri="/" + out.relative_to(self.env.srcdir).as_posix(), alt=self.options["alt"])
        width, height = Image.open(io.BytesIO(png)).size
        # a width makes Sphinx link the image to itself at full size (html_scaled_image_link); the
        # browser still shows it no wider than the column (or the column and margin)
        image["width"] = self.options.get("width", f"{width}px")
        figure = nodes.figure("", image)
        self.set_source_info(figure)
        if self.content:
            holder = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, holder)
            first = holder[0]
            if not isinstance(first, nodes.paragraph):
                raise self.error("glue-figure: the caption must be a paragraph")
            figure += nodes.caption(first.rawsource, "", *first.children)
            if len(holder) > 1:
                figure += nodes.legend("", *holder[1:])
        self.add_name(figure)
        if width > WIDE * height and "width" not in self.options:
            return [nodes.container("", figure, classes=["full-width"])]
        return [figure]


def setup(app):
    app.add_directive("glue-figure", GlueFigure)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
