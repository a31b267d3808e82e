"""The course's scripts (scripts/<name>.py) as modules for the tests, loaded once per process.

``load_script("make_assignments")`` imports it now; ``LazyScript("make_assignments")`` at its first
attribute, so that a test file whose tests a run deselects (``pytest -m unit`` and the nbgrader or hub
tests) does not pay for what the script imports (nbgrader: about 0.8 s of CPU) at collection."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py, registered in ``sys.modules`` under ``name`` (its dataclasses look it up)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        assert spec is not None and spec.loader is not None, f"no script {name}.py in {SCRIPTS}"
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class LazyScript:
    """scripts/<name>.py, loaded at the first attribute asked for."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str):
        if attribute.startswith("_"):  # pytest's questions at collection (__test__, fixture markers): not the script's
            raise AttributeError(attribute)
        return getattr(load_script(self._name), attribute)
