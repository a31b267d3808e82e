"""Imports point down: read bn_utils' own imports with ast (every import, also those deferred into a
function or kept for type checking), and fail on a cycle, on an import that points up a layer, on
an experiment (or chapter) module that imports another one, and on a new module that has no layer yet.
``import bn_utils`` loads no plotting library (checked in a fresh interpreter)."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bn_utils"

# Lower layers never import higher ones. A new module joins the lowest layer its imports allow.
LAYERS: dict[str, tuple[str, ...]] = {
    # argument checks, plain data and labelled axes: nothing of bn_utils
    "base": ("_validate", "palette", "grid"),
    # what everything else stands on: seeding, the device, run records, data sets, the maths, statistics, checks
    "foundations": ("seeding", "devices", "history", "data", "functional", "statistics", "checks", "cache"),
    # the normalization layers and their registry
    "layers": ("layers", "norms", "norm_axes"),
    # networks built from them, and probes that watch a network
    "models": ("models", "probes"),
    # the engines that train networks, and what measures or checks a training step
    "training": ("training", "stacked", "stacked_conv", "diagnostics", "exercises"),
    # figures: the house style and the explorers (the first layer that may load matplotlib)
    "presentation": ("style", "explorers"),
    # one module (or one package of modules) per experiment (bn_utils.experiments.*): none imports
    # another experiment; the modules of one experiment's package may import each other
    "experiments": ("experiments.*",),
    # one module per chapter (bn_utils.chapters.*): the computations a chapter's notebook and its claim
    # tests share; may use several experiment modules, never another chapter's module
    "chapters": ("chapters.*",),
    # the package's front doors: bn_utils/__init__.py, bn_utils/experiments/__init__.py
    "package": ("__init__", "experiments.__init__", "chapters.__init__"),
}
ORDER = list(LAYERS)


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``experiments.batch_size`` for bn_utils/experiments/batch_size.py, ``__init__`` for the package's."""
    return ".".join(path.relative_to(package).with_suffix("").parts)


def _imported(importer: str, node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The bn_utils modules that one import statement of module ``importer`` loads."""
    if isinstance(node, ast.Import):
        candidates = [[alias.name.removeprefix("bn_utils").lstrip(".")] for alias in node.names]
        candidates = [c for c, alias in zip(candidates, node.names, strict=True) if alias.name.startswith("bn_utils")]
        return {found for [name] in candidates if (found := _module(name, modules))}
    if node.level:  # relative: from the importer's package, up node.level - 1 packages
        package = importer.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    elif node.module and node.module.split(".")[0] == "bn_utils":
        base = node.module.removeprefix("bn_utils").lstrip(".")
    else:
        return set()
    found = set()
    for alias in node.names:  # "from package import module" imports the module itself
        submodule = _module(f"{base}.{alias.name}" if base else alias.name, modules, package_only=False)
        # "from package import subpackage" its __init__ (not for "from bn_utils import experiments")
        subpackage = bool(base) and submodule == f"{base}.{alias.name}.__init__"
        target = (
            submodule if submodule and (subpackage or not submodule.endswith("__init__")) else _module(base, modules)
        )
        if target:
            found.add(target)
    return found


def _module(name: str, modules: set[str], package_only: bool = False) -> str | None:
    """``name`` as a module of the graph: itself, or its package's ``__init__`` (None if neither)."""
    if name in modules and not package_only:
        return name
    init = f"{name}.__init__" if name else "__init__"
    return init if init in modules else None


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the bn_utils modules it imports anywhere in its source, deferred imports and those
    for type checking included (module names as :func:`module_name` gives them; a package is its
    ``__init__``)."""
    paths = {module_name(path, package): path for path in sorted(package.rglob("*.py"))}
    modules = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(name, node, modules)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> str | None:
    """The layer of ``module`` in :data:`LAYERS`, None if it has none yet."""
    if module in LAYERS["package"]:
        return "package"
    if module.startswith("experiments."):
        return "experiments"
    if module.startswith("chapters."):
        return "chapters"
    return next((layer for layer, members in LAYERS.items() if module in members), None)


def unit_of(module: str) -> str:
    """The experiment or chapter ``module`` belongs to: ``experiments.batch_size`` for
    ``experiments.batch_size.sweep`` (a package's modules are one experiment), the module itself
    otherwise."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in ("experiments", "chapters") and len(parts) > 2 else module


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports that point up a layer, or sideways from one experiment module to another (the modules
    of one experiment's package may import each other)."""
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = layer_of(module), layer_of(target)
            if here is None or there is None or unit_of(module) == unit_of(target):
                continue
            if ORDER.index(there) > ORDER.index(here):
                problems.append(f"{module} ({here}) imports {target} ({there})")
            elif here == there == "experiments":
                problems.append(f"{module} imports the experiment module {target}: share through a core module")
            elif here == there == "chapters":
                problems.append(f"{module} imports the chapter module {target}: share through an experiment module")
    return problems


@functools.cache
def package_graph() -> dict[str, set[str]]:
    """bn_utils' own import graph, read once per test session."""
    return import_graph()


def test_every_module_has_a_layer():
    unplaced = [module for module in package_graph() if layer_of(module) is None]
    assert not unplaced, f"place {unplaced} in a layer of tests/test_imports.py (the lowest its imports allow)"


def test_no_import_cycles():
    assert cycles(package_graph()) == []


def test_imports_point_down_and_experiments_do_not_import_each_other():
    assert upward_imports(package_graph()) == []


def test_core_modules_load_no_plotting_library():
    plotting = ("matplotlib", "IPython", "ipywidgets", "PIL")
    below = [name for layer in ORDER[: ORDER.index("presentation")] for name in LAYERS[layer]]
    for name in below:
        source = (PACKAGE / f"{name}.py").read_text()
        imported = {
            (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not imported & set(plotting), f"bn_utils/{name}.py imports {imported & set(plotting)}"


def test_the_graph_reader_sees_deferred_relative_and_absolute_imports(tmp_path):
    package = tmp_path / "bn_utils"
    (package / "experiments").mkdir(parents=True)
    (package / "__init__.py").write_text("from .data import x\n")
    (package / "_validate.py").write_text("def f():\n    from .data import Dataset\n")
    (package / "data.py").write_text("from . import _validate as valid\n")
    (package / "style.py").write_text("import bn_utils.data\n")
    (package / "experiments" / "__init__.py").write_text("")
    (package / "experiments" / "a.py").write_text("from ..style import y\nfrom .b import z\n")
    (package / "experiments" / "b.py").write_text("from bn_utils.experiments import a\n")
    (package / "experiments" / "c").mkdir()
    (package / "experiments" / "c" / "__init__.py").write_text("from .d import w\n")
    (package / "experiments" / "c" / "d.py").write_text("from ...data import v\n")
    (package / "chapters").mkdir()
    (package / "chapters" / "__init__.py").write_text("")
    (package / "chapters" / "e.py").write_text("from ..experiments import c\n")
    graph = import_graph(package)
    assert graph["experiments.c.__init__"] == {"experiments.c.d"} and graph["chapters.e"] == {"experiments.c.__init__"}
    assert upward_imports({"experiments.c.__init__": {"experiments.c.d"}, "experiments.c.d": {"experiments.a"}}) == [
        "experiments.c.d imports the experiment module experiments.a: share through a core module"
    ]
    assert graph["_validate"] == {"data"} and graph["data"] == {"_validate"} and graph["style"] == {"data"}
    assert graph["experiments.a"] == {"style", "experiments.b"} and graph["experiments.b"] == {"experiments.a"}
    assert cycles(graph) == [["_validate", "data"], ["experiments.a", "experiments.b"]]
    assert upward_imports({"data": {"style"}, "experiments.a": {"experiments.b"}}) == [
        "data (foundations) imports style (presentation)",
        "experiments.a imports the experiment module experiments.b: share through a core module",
    ]


def test_import_bn_utils_loads_no_plotting_library_and_the_lazy_names_still_work():
    code = (
        "import json, sys, time; start = time.perf_counter(); import bn_utils; took = time.perf_counter() - start; "
        "before = sorted(m for m in ('matplotlib', 'IPython', 'ipywidgets') if m in sys.modules); "
        "bn_utils.forgotten_eval_study; "
        "print(json.dumps([before, 'matplotlib' in sys.modules, took]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after, _ = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [], f"import bn_utils loaded {before}"
    assert after, "bn_utils.forgotten_eval_study loads its experiment module (and matplotlib) on first use"


# The private names of other packages that bn_utils may use, each because nothing public does the job:
# torch's batch-norm base (the course's drop-ins subclass it, so that torch code that selects batch
# norms by it, e.g. torch.optim.swa_utils.update_bn, finds them) and the base it shares with the
# instance norms (the only type common to torch's per-channel norms and the course's batch renorm).
# Scope: the check reads names reached through an import (``torch._C``, ``nn.modules.batchnorm._BatchNorm``,
# ``from torch.x import _y``), not private attributes reached through an object, so this is not an
# inventory of every private attribute bn_utils touches: ``module._forward_pre_hooks`` (_validate.py),
# ``stacked._buffers`` and ``conv._conv_forward`` (stacked_conv.py) and ``legend._loc`` (style.py) are
# not listed here and not checked.
THIRD_PARTY_PRIVATES = frozenset({"torch.nn.modules.batchnorm._BatchNorm", "torch.nn.modules.batchnorm._NormBase"})


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names_used_across_modules(package: Path = PACKAGE) -> list[str]:
    """Every place where a bn_utils module reaches into another module's private names: ``from .x import
    _y``, ``x._y`` on an imported bn_utils module, class or function, or a private name of another
    package outside :data:`THIRD_PARTY_PRIVATES` (names reached through an import only; see there). A
    package-private module (``_validate``) may be imported anywhere in the package: its underscore
    keeps it out of the package's public face, not out of its modules."""
    paths = {module_name(path, package): path for path in sorted(package.rglob("*.py"))}
    problems = []
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = f"bn_utils/{path.relative_to(package).as_posix()}"
        bound: dict[str, tuple[bool, str]] = {}  # local name -> (a bn_utils name?, what it names)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    ours = alias.name.split(".")[0] == "bn_utils"
                    target = alias.name if alias.asname else alias.name.split(".")[0]
                    bound[alias.asname or target] = (ours, target)
            elif isinstance(node, ast.ImportFrom):
                ours = bool(node.level) or (node.module or "").split(".")[0] == "bn_utils"
                if node.level:
                    package_parts = name.split(".")[:-1]
                    base = ".".join(
                        package_parts[: len(package_parts) - node.level + 1] + ([node.module] if node.module else [])
                    )
                else:
                    base = (node.module or "").removeprefix("bn_utils").lstrip(".") if ours else node.module or ""
                for alias in node.names:
                    full = f"{base}.{alias.name}" if base else alias.name
                    is_module = ours and (full in paths or f"{full}.__init__" in paths)
                    if _is_private(alias.name) and not is_module:
                        if ours:
                            problems.append(
                                f"{where}:{node.lineno} imports {alias.name} from bn_utils.{base or '__init__'}"
                            )
                        elif full not in THIRD_PARTY_PRIVATES:
                            problems.append(f"{where}:{node.lineno} imports {full}")
                    bound[alias.asname or alias.name] = (ours, full)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.insert(0, value.attr)
                value = value.value
            if not isinstance(value, ast.Name) or value.id not in bound:
                continue  # an attribute of an object: a module's own private attributes are its business
            ours, target = bound[value.id]
            full = ".".join([target, *parts])
            if ours and full.removeprefix("bn_utils").lstrip(".") not in paths:
                owner = ".".join(["bn_utils", *full.removeprefix("bn_utils").lstrip(".").split(".")[:-1]])
                problems.append(f"{where}:{node.lineno} uses {ast.unparse(node)}, private to {owner}")
            elif not ours and full not in THIRD_PARTY_PRIVATES and not any(map(_is_private, parts[:-1])):
                problems.append(f"{where}:{node.lineno} uses {full}")
    return problems


def test_no_module_uses_another_modules_private_names(tmp_path):
    package = tmp_path / "bn_utils"
    (package / "experiments").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_validate.py").write_text("def check():\n    pass\n")
    (package / "data.py").write_text(
        "from . import _validate as valid\nfrom ._validate import check\n_ROWS = 1\nclass Rows:\n    _N = 1\n"
    )
    (package / "layers.py").write_text(
        "import torch\nfrom torch import nn\nfrom .data import _ROWS\n"
        "class B(nn.modules.batchnorm._BatchNorm):\n    x = torch._C\n"
    )
    (package / "experiments" / "__init__.py").write_text("")
    (package / "experiments" / "a.py").write_text(
        "from .. import data\nfrom ..data import valid, Rows\nrows = data._ROWS\nn = Rows._N\n"
    )
    assert private_names_used_across_modules(package) == [
        "bn_utils/experiments/a.py:3 uses data._ROWS, private to bn_utils.data",
        "bn_utils/experiments/a.py:4 uses Rows._N, private to bn_utils.data.Rows",  # a class's, not torch's
        "bn_utils/layers.py:3 imports _ROWS from bn_utils.data",
        "bn_utils/layers.py:5 uses torch._C",
    ]
    problems = private_names_used_across_modules()
    assert not problems, "make these names public (with a docstring) or move them to their user:\n" + "\n".join(
        problems
    )
