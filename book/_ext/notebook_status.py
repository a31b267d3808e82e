"""``notebook-status``: a table of every course notebook with when it was last executed and how
long it took, read from the metadata that scripts/execute_notebooks.py stores in each notebook."""

from __future__ import annotations

import json
from pathlib import Path

from sphinx.util.docutils import SphinxDirective

BUDGET_SECONDS = 30
TOTAL_BUDGET_SECONDS = 150


class NotebookStatus(SphinxDirective):
    has_content = False

    def run(self):
        src = Path(self.env.srcdir)
        here = Path(self.env.doc2path(self.env.docname)).parent
        rows = [
            f"| Notebook | Last executed (UTC) | Run time, fresh kernel | Within the {BUDGET_SECONDS} s budget |",
            "|---|---|---|---|",
        ]
        total = 0.0
        for path in sorted((src / "notebooks").glob("*.ipynb")):
            self.env.note_dependency(str(path))
            nb = json.loads(path.read_text())
            meta = nb.get("metadata", {}).get("bn_course", {})
            seconds = meta.get("execution_seconds")
            total += seconds or 0.0
            title = next(
                (
                    c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                    for c in nb["cells"]
                    if c["cell_type"] == "markdown"
                ),
                path.stem,
            )
            title = title.splitlines()[0].lstrip("# ").strip()
            link = Path("..") / path.relative_to(src) if here != src else path.relative_to(src)
            time = f"{seconds:.0f} s" if seconds is not None else "never recorded"
            ok = "yes" if seconds is not None and seconds < BUDGET_SECONDS else "**no**"
            rows.append(f"| [{title}]({link.as_posix()}) | {meta.get('executed_on', 'unknown')} | {time} | {ok} |")
        within = "yes" if total < TOTAL_BUDGET_SECONDS else "**no**"
        rows.append(f"| **All notebooks** | | **{total:.0f} s** | {within} ({TOTAL_BUDGET_SECONDS} s for all) |")
        return self.parse_text_to_nodes("\n".join(rows))


def setup(app):
    app.add_directive("notebook-status", NotebookStatus)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
