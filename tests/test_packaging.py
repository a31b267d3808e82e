"""The declared dependencies agree with the pinned, tested ones, and the licence and citation files agree."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(path: Path) -> dict[str, Version]:
    """The `name==version` lines of a requirements file, by canonical name."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        [spec] = requirement.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        found[canonicalize_name(requirement.name)] = Version(spec.version)
    return found


PINNED = pins(ROOT / "requirements.txt")
BINDER = pins(ROOT / "binder" / "requirements.txt")
DECLARED = [Requirement(r) for r in PROJECT["dependencies"]] + [
    Requirement(r) for extra in PROJECT["optional-dependencies"].values() for r in extra
]


@pytest.mark.parametrize("requirement", DECLARED, ids=str)
def test_every_declared_range_admits_the_tested_pin(requirement):
    name = canonicalize_name(requirement.name)
    if name in PINNED:
        assert requirement.specifier.contains(PINNED[name], prereleases=True), (
            f"pyproject.toml's {requirement} excludes requirements.txt's tested {name}=={PINNED[name]}"
        )


# import name -> distribution name, where they differ
DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "pillow", "IPython": "ipython"}
# imported only inside `try: ... except ImportError`, with a fallback: not required at run time
OPTIONAL_IMPORTS = {"myst_nb"}


def third_party_imports() -> set[str]:
    """The distributions bn_utils imports (absolute imports outside the standard library)."""
    found = set()
    for path in (ROOT / "bn_utils").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "bn_utils" and top not in OPTIONAL_IMPORTS:
                    found.add(canonicalize_name(DISTRIBUTIONS.get(top, top)))
    return found


def test_the_runtime_dependencies_are_what_bn_utils_imports():
    declared = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert declared == third_party_imports(), "pyproject.toml's dependencies must be exactly what bn_utils imports"


def test_the_book_extra_brings_the_extensions_of_config_yml():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    book = {canonicalize_name(Requirement(r).name) for r in PROJECT["optional-dependencies"]["book"]}
    for extension in config["sphinx"]["extra_extensions"]:
        assert canonicalize_name(extension) in book, extension
    if config.get("bibtex_bibfiles"):
        assert "sphinxcontrib-bibtex" in book


def test_binder_pins_the_tested_versions_and_the_declared_ranges_admit_them():
    assert "torch" in BINDER and "myst-nb" in BINDER
    declared = {canonicalize_name(r.name): r for r in DECLARED}
    for name, version in BINDER.items():
        if name in PINNED:
            assert version.public == PINNED[name].public, f"binder: {name}=={version}, requirements.txt: {PINNED[name]}"
        if name in declared:
            assert declared[name].specifier.contains(version, prereleases=True), f"{name}=={version}"
    runtime = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    assert runtime <= set(BINDER), f"binder/requirements.txt lacks {runtime - set(BINDER)}"


def test_citation_and_licences_agree_with_pyproject():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == PROJECT["version"]
    assert citation["license"] == PROJECT["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    content = (ROOT / "LICENSE-CONTENT").read_text()
    assert "Attribution 4.0 International" in content
    assert "https://creativecommons.org/licenses/by/4.0/legalcode" in content
    for path in PROJECT["license-files"]:
        assert (ROOT / path).is_file()
