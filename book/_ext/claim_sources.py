"""What the evidence page says about a claim test, read without running it: what it asserts (from
its source, with ``ast``), its setting (its module's docstring) and where CI runs it (the ``pytest``
commands of ``.ci/run``). No Sphinx here: claims.py (the book's extension) and
scripts/make_student_edition.py both use it.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

OPERATORS = {">": ">", ">=": "\u2265", "<": "<", "<=": "\u2264"}
CLAIM_CHECKS_MODULE = "claim_checks"
KINDS = {"unit", "claims", "notebooks"}  # the markers conftest.py gives a test that names none
DEFAULT_SEEDS = "0-4"  # tests/claim_seeds.py
PYTEST_VALUE_OPTIONS = {
    "-m", "-k", "-p", "-c", "-o", "-n", "-W", "--tb", "--rootdir", "--claim-seeds", "--margins", "--deselect",
    "--ignore", "--maxfail", "--durations", "--basetemp", "--confcutdir", "--junitxml", "--log-level",
}  # fmt: skip


# --------------------------------------------------------------------------------------------------
# What a claim test asserts, read from its source


@dataclass(frozen=True)
class Assertion:
    """One assertion of a claim test, in words (and, for a bare ``assert``, its condition as code)."""

    words: str
    code: str | None = None
    context: tuple[str, ...] = ()  # the loops, conditions and helpers it sits in, outermost first


@dataclass(frozen=True)
class ClaimTest:
    """What the evidence page says about one claim test."""

    file: str
    name: str
    line: int
    docstring: str | None
    assertions: tuple[Assertion, ...]
    fixtures: tuple[tuple[str, str], ...]  # (name, docstring) of the fixtures of its module it uses
    markers: frozenset[str]


@dataclass(frozen=True)
class ClaimFile:
    """A claim-test file: its setting (the module docstring) and its tests."""

    file: str
    setting: str
    tests: dict[str, ClaimTest] = field(default_factory=dict)


def _words(node: ast.expr, names: frozenset[str] = frozenset()) -> str:
    """A description or message in words: a string, or an f-string whose fields that are loop
    variables (``names``) stay as ``{depth}`` and whose other fields (the measured numbers) become
    ``…``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                inner = value.value
                if isinstance(inner, ast.Name) and inner.id in names:
                    parts.append("{" + inner.id + "}")
                else:
                    parts.append("\u2026")
        return re.sub(r"\s+", " ", "".join(parts)).strip()
    return _short(ast.unparse(node))


def _short(code: str, limit: int = 100) -> str:
    code = " ".join(code.split())
    code = re.sub(r"\b\d{7,}\.0\b", lambda m: f"{float(m.group()):g}", code)  # 1e15, not 1000000000000000.0
    return code if len(code) <= limit else code[: limit - 1] + "\u2026"


def _targets(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _loop_words(node: ast.For) -> str:
    """A loop in words: ``depth = 40, 80`` over literal values, otherwise ``for each (a, b)``."""
    target = ast.unparse(node.target).strip("()")
    values = node.iter
    if isinstance(values, ast.Tuple | ast.List | ast.Set) and all(isinstance(v, ast.Constant) for v in values.elts):
        return f"{target} = " + ", ".join(
            repr(v.value) if isinstance(v.value, str) else str(v.value) for v in values.elts
        )
    iterable = ast.unparse(values)
    if len(iterable) <= 40:
        return f"for each {target} in {iterable}"
    return f"for each {target}"


def _argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _op(node: ast.expr | None) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return OPERATORS.get(node.value, node.value)
    return "?" if node is None else ast.unparse(node)


def _claim_check(call: ast.Call, form: str, names: frozenset[str] = frozenset()) -> str | None:
    """A ``claim_checks`` call in words, e.g. "every seed: test accuracy ≥ 0.9"."""
    if form == "compare":
        what, op, threshold = _argument(call, 3, "what"), _argument(call, 1, "op"), _argument(call, 2, "threshold")
        prefix = ""
    else:
        what_at = 4 if form == "at_least" else 3
        what, op, threshold = (
            _argument(call, what_at, "what"),
            _argument(call, 1, "op"),
            _argument(call, 2, "threshold"),
        )
        if form == "every":
            prefix = "every seed: "
        elif form == "median":
            prefix = "the median over seeds: "
        else:
            count = _argument(call, 3, "count")
            prefix = f"at least {_short(ast.unparse(count), 20) if count is not None else '?'} seeds: "
    if what is None or threshold is None:
        return None
    return f"{prefix}{_words(what, names)} {_op(op)} {_short(ast.unparse(threshold), 40)}"


class _AssertionReader(ast.NodeVisitor):
    """Collects the assertions of one function, following the module's own helper functions."""

    def __init__(self, module: ast.Module, helpers: dict[str, ast.FunctionDef]):
        self.helpers = helpers
        self.module_aliases, self.function_aliases = set(), {}
        for node in module.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == CLAIM_CHECKS_MODULE:
                        self.module_aliases.add(alias.asname or alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module == CLAIM_CHECKS_MODULE:
                for alias in node.names:
                    self.function_aliases[alias.asname or alias.name] = alias.name
        self.found: list[Assertion] = []
        self.context: list[str] = []
        self.names: frozenset[str] = frozenset()  # the loop variables around the current statement
        self.visiting: set[str] = set()

    def read(self, function: ast.FunctionDef) -> list[Assertion]:
        self.visiting.add(function.name)
        for statement in function.body:
            self.visit(statement)
        self.visiting.discard(function.name)
        return self.found

    def _add(self, words: str, code: str | None = None) -> None:
        self.found.append(Assertion(words, code, tuple(self.context)))

    def _nested(self, label: str, body: list[ast.stmt]) -> None:
        self.context.append(label)
        for statement in body:
            self.visit(statement)
        self.context.pop()

    def visit_For(self, node: ast.For) -> None:
        outer = self.names
        self.names = outer | _targets(node.target)
        self._nested(_loop_words(node), node.body)
        self.names = outer

    def visit_If(self, node: ast.If) -> None:
        self._nested(f"if {_short(ast.unparse(node.test), 60)}", node.body)
        if node.orelse:
            self._nested(f"unless {_short(ast.unparse(node.test), 60)}", node.orelse)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            call = item.context_expr
            if isinstance(call, ast.Call) and ast.unparse(call.func) in ("pytest.raises", "raises"):
                error = ast.unparse(call.args[0]) if call.args else "an error"
                match = next((k.value for k in call.keywords if k.arg == "match"), None)
                words = f"raises {error}" + (f" whose message matches {_words(match)!r}" if match is not None else "")
                self._add(words, _short("; ".join(ast.unparse(s) for s in node.body)))
                return
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        words = _words(node.msg, self.names) if node.msg is not None else ""
        self._add(words, _short(ast.unparse(node.test)))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        form = None
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in self.module_aliases
        ):
            form = func.attr
        elif isinstance(func, ast.Name) and func.id in self.function_aliases:
            form = self.function_aliases[func.id]
        if form in ("every", "at_least", "median", "compare"):
            words = _claim_check(node, form, self.names)
            if words:
                self._add(words)
            return
        if isinstance(func, ast.Name) and func.id in self.helpers and func.id not in self.visiting:
            helper = self.helpers[func.id]
            self.context.append(_short(f"in {func.id}({', '.join(ast.unparse(a) for a in node.args)})", 60))
            self.read(helper)
            self.context.pop()
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass  # a nested function is read where it is called, if anywhere


def _is_fixture(function: ast.FunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in function.decorator_list)


def _markers(function: ast.FunctionDef) -> set[str]:
    found = set()
    for decorator in function.decorator_list:
        text = ast.unparse(decorator.func if isinstance(decorator, ast.Call) else decorator)
        if text.startswith("pytest.mark."):
            found.add(text.split(".")[2])
    return found


def read_claim_file(root: Path, file: str) -> ClaimFile:
    """Every test of a claim file, with what it asserts (SyntaxError or OSError if unreadable)."""
    source = (root / file).read_text(encoding="utf-8")
    module = ast.parse(source)
    functions = {n.name: n for n in module.body if isinstance(n, ast.FunctionDef)}
    fixtures = {name: f for name, f in functions.items() if _is_fixture(f)}
    helpers = {name: f for name, f in functions.items() if name not in fixtures and not name.startswith("test_")}
    docstring = ast.get_docstring(module) or ""
    paragraphs = [p.strip() for p in docstring.split("\n\n") if p.strip()]
    setting = " ".join(paragraphs[1:] or paragraphs).replace("\n", " ")
    # default markers, as conftest.py gives them
    default_marker = "claims" if Path(file).name.startswith("test_claims_") else "unit"
    claim_file = ClaimFile(file, re.sub(r"\s+", " ", setting))
    for name, function in functions.items():
        if not name.startswith("test_"):
            continue
        assertions = _AssertionReader(module, helpers).read(function)
        used = [a.arg for a in function.args.args if a.arg in fixtures]
        claim_file.tests[name] = ClaimTest(
            file=file,
            name=name,
            line=function.lineno,
            docstring=(ast.get_docstring(function) or None),
            assertions=tuple(assertions),
            fixtures=tuple(
                (u, re.sub(r"\s+", " ", ast.get_docstring(fixtures[u]) or ""))
                for u in used
                if ast.get_docstring(fixtures[u])
            ),
            markers=frozenset(_markers(function) | ({default_marker} if not _markers(function) & KINDS else set())),
        )
    return claim_file


# --------------------------------------------------------------------------------------------------
# The arithmetic paths CI runs the claim tests on, read from .ci/run


@dataclass(frozen=True)
class CiRun:
    """One ``pytest`` command of the CI script, as far as it decides which claim tests run where."""

    command: str
    capability: str | None  # ATEN_CPU_CAPABILITY
    threads: str | None  # OMP_NUM_THREADS
    seeds: str
    marker: str | None
    keyword: str | None
    paths: tuple[str, ...]

    def runs(self, test: ClaimTest) -> bool:
        """Whether this command runs ``test``."""
        from _pytest.mark.expression import Expression

        if self.paths and not any(
            test.file == p or test.file.startswith(p.rstrip("/") + "/") or p in (f"{test.file}::{test.name}",)
            for p in self.paths
        ):
            return False
        if self.marker and not Expression.compile(self.marker).evaluate(lambda name, **_: name in test.markers):
            return False
        if self.keyword:
            names = f"{test.name} {Path(test.file).stem}".lower()
            return Expression.compile(self.keyword).evaluate(lambda sub, **_: sub.lower() in names)
        return True

    def describe(self) -> str:
        kernels = {
            None: "the CPU's native kernels",
            "default": "PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default)",
        }.get(self.capability, f"{self.capability} kernels (ATEN_CPU_CAPABILITY={self.capability})")
        threads = (
            "PyTorch's default thread count"
            if self.threads is None
            else ("1 thread" if self.threads == "1" else f"{self.threads} threads")
        )
        return f"{kernels}, {threads}, seeds {self.seeds}"


def _logical_lines(script: str) -> list[str]:
    lines, current = [], ""
    for raw in script.splitlines():
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    if current:
        lines.append(current)
    return lines


def ci_pytest_commands(script: str) -> list[str]:
    """The ``pytest`` commands of a shell script, each with the environment exported before it
    written in front of it (``A=1 B=2 pytest ...``)."""
    exported: dict[str, str] = {}
    commands = []
    for line in _logical_lines(script):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if not words:
            continue
        if words[0] == "export":
            for word in words[1:]:
                name, sep, value = word.partition("=")
                if sep:
                    exported[name] = value
            continue
        env = dict(exported)
        i = 0
        if words[0] == "env":
            i = 1
        while i < len(words) and re.fullmatch(r"[A-Za-z_]\w*=.*", words[i]):
            name, _, value = words[i].partition("=")
            env[name] = value
            i += 1
        command = words[i:]
        if not command:
            continue
        is_pytest = Path(command[0]).name == "pytest" or (
            Path(command[0]).name.startswith("python") and command[1:3] == ["-m", "pytest"]
        )
        if not is_pytest:
            continue
        prefix = [
            f"{k}={v}" for k, v in env.items() if k in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "BN_CLAIM_SEEDS")
        ]
        commands.append(shlex.join(prefix + command))
    return commands


def parse_ci_command(command: str) -> CiRun:
    """A ``pytest`` command line (with its environment in front) as a :class:`CiRun`."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    while words and not (Path(words[0]).name == "pytest" or words[0] == "pytest"):
        words.pop(0)  # the interpreter and "-m" of "python -m pytest"
    options: dict[str, str] = {}
    paths: list[str] = []
    args = iter(words[1:])
    for word in args:
        if word.startswith("-"):
            name, sep, value = word.partition("=")
            if name in PYTEST_VALUE_OPTIONS:
                options[name] = value if sep else next(args, "")
            continue
        paths.append(word)
    seeds = options.get("--claim-seeds") or env.get("BN_CLAIM_SEEDS") or DEFAULT_SEEDS
    return CiRun(
        command=command,
        capability=env.get("ATEN_CPU_CAPABILITY"),
        threads=env.get("OMP_NUM_THREADS"),
        seeds=seeds,
        marker=options.get("-m"),
        keyword=options.get("-k"),
        paths=tuple(paths),
    )
