"""Write, as the first code cell of every notebook, a cell that installs bn_utils from the course's repository.

    python scripts/set_repository.py                      # every notebooks/*.ipynb
    python scripts/set_repository.py notebooks/01_bn_from_scratch.ipynb

It reads `repository.url` (and `repository.branch`) from _config.yml, the setting that also turns on
the book's launch buttons, and puts this cell before each notebook's first code cell:

    try:
        import bn_utils  # noqa: F401
    except ImportError:  # e.g. on Colab: install the course's package from its repository
        %pip install --quiet "bn_utils[hosted] @ git+<url>@<branch>"

Where bn_utils is installed (a local install, Binder, the test suite) the cell does nothing and prints
nothing, so nbval has nothing machine-specific to compare. The cell is tagged `remove-cell`: the book
does not show it. Run again after changing the URL: the cell is found by its id and updated in place,
never duplicated. A notebook that is already up to date is not rewritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
CELL_ID = "install-bn-utils"
TAGS = ["remove-cell"]


class NoRepository(ValueError):
    """_config.yml names no repository URL."""


def repository(config: Path) -> tuple[str, str]:
    """The repository URL and branch that ``config`` (a Jupyter Book _config.yml) names."""
    settings = yaml.safe_load(config.read_text()) or {}
    repo = settings.get("repository") or {}
    url = str(repo.get("url") or "").strip().rstrip("/")
    if not url:
        raise NoRepository(
            f"{config} sets no repository.url: set it to your copy's repository "
            "(README, 'Publish your own copy') and run this again"
        )
    if any(c in url for c in "\"' \n"):
        raise ValueError(f"repository.url {url!r} is not a plain repository URL")
    branch = str(repo.get("branch") or "main").strip()
    return url, branch


def pip_requirement(url: str, branch: str) -> str:
    """The pip requirement that installs bn_utils, and what the notebooks need on a hosted service, from git."""
    return f"bn_utils[hosted] @ git+{url}@{branch}"


def install_source(url: str, branch: str) -> str:
    """The source of the install cell."""
    return (
        "try:\n"
        "    import bn_utils  # noqa: F401\n"
        "except ImportError:  # e.g. on Colab: install the course's package from its repository\n"
        f'    %pip install --quiet "{pip_requirement(url, branch)}"'
    )


def install_cell(url: str, branch: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(install_source(url, branch), id=CELL_ID)
    cell.metadata["tags"] = list(TAGS)
    return cell


def update_notebook(path: Path, url: str, branch: str) -> bool:
    """Put the install cell first among ``path``'s code cells; return whether the file changed."""
    raw = path.read_text(encoding="utf-8")
    nb = nbformat.reads(raw, as_version=4)
    cell = install_cell(url, branch)
    old = [i for i, c in enumerate(nb.cells) if c.get("id") == CELL_ID]
    for i in reversed(old):
        kept = nb.cells.pop(i)
        cell.metadata = {**kept.metadata, "tags": sorted(set(kept.metadata.get("tags", [])) | set(TAGS))}
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, cell)
    nbformat.validate(nb)
    new = nbformat.writes(nb) + "\n"
    if new == raw:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--config", type=Path, default=ROOT / "_config.yml", help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        url, branch = repository(args.config)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    notebooks = args.notebooks or sorted((args.config.parent / "notebooks").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 2
    for path in notebooks:
        changed = update_notebook(path, url, branch)
        print(f"{'updated' if changed else 'up to date'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
