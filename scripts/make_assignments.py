"""Make the class's nbgrader assignments, and a timing and solution sheet for each, from the course notebooks.

    python scripts/make_assignments.py                           # class/assignments.yml, into _build/class/
    python scripts/make_assignments.py --course ~/bn-class       # elsewhere (a course directory you keep)
    python scripts/make_assignments.py --assignment bn_from_scratch_quiz
    python scripts/make_assignments.py --assignment bn_from_scratch_quiz --rehearse   # after generate_assignment

It writes an nbgrader course directory: ``nbgrader_config.py`` (it loads the repository's
``class/nbgrader_config.py``), ``source/<assignment>/<notebook>.ipynb`` for nbgrader, and
``sheets/<assignment>.md``, the instructor's timing and solution sheet. Then, in that directory,
``nbgrader generate_assignment <assignment>`` makes the release, and the usual nbgrader commands
grade it (the README's instructor section lists them).

Nothing is marked by hand: the nbgrader metadata is derived from the marks the course notebooks
already carry for the student edition (CONTRIBUTING.md, "Exercises"), so the two cannot drift apart:

- a **solution cell** (``solution`` tag, or ``hide-cell`` with ``# Solution to exercise N``) becomes an
  nbgrader solution cell; the release's stub is the student edition's own (``make_student_edition.stub_source``:
  ``# BEGIN SOLUTION`` / ``# END SOLUTION`` regions, the exercise named in the ``NotImplementedError``,
  a prediction left as ``...``), because ``class/nbgrader_config.py`` puts :class:`CourseStubs` in
  place of nbgrader's ClearSolutions;
- a **"Your turn" check** (a cell tagged ``answer-output`` that calls a ``bn_utils.exercises`` checker)
  becomes a graded, locked test cell, with **hidden tests** appended (:data:`HIDDEN_TESTS`: the checker
  as shipped, even if the learner's code replaced it, and PyTorch's own batch norm on inputs the public
  check does not use);
- a **predict-then-measure** comparison (``ex.compare_prediction``) becomes a graded test cell worth a
  point for a prediction written before the measurement (it raises only when the prediction is ``...``);
- every other cell becomes read-only, so autograding runs the course's code as written; a prose
  solution (``<details>`` "Solution" block) leaves the release as it leaves the student edition.

Points default to the exercise's difficulty rating (●○○ = 1, ●●○ = 2, ●●● = 3). The sheet lists, per
graded cell, its points, expected time, hidden tests and the named mistakes its checker detects: each
known-wrong version in :data:`KNOWN_MISTAKES` is run through the checker when the sheet is written,
and the sheet quotes what the learner's feedback will say.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import importlib.util
import io
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml
from nbgrader import utils as nbgrader_utils
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COURSE = ROOT / "_build" / "class"
ASSIGNMENTS_FILE = ROOT / "class" / "assignments.yml"
COURSE_CONFIG = ROOT / "class" / "nbgrader_config.py"


def _load_student_edition() -> Any:
    name = "make_student_edition"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mse = _load_student_edition()  # the student edition's marks and stubs: one mechanism for both editions

SCHEMA_VERSION = 3  # nbgrader's cell metadata schema (nbgrader 0.9)
POINTS_BY_DIFFICULTY = {1: 1, 2: 2, 3: 3}
RATING = re.compile(r"\*\*Difficulty\*\*\s*(●+)○*.*?\*\*Time\*\*\s*(\d+)\s*min", re.DOTALL)
SECTION = re.compile(r"^#{2,3}\s+(.+?)\s*\((\d+)\s*min\)\s*$")
ESTIMATED = re.compile(r"\*\*Estimated time:\*\*\s*(\d+)\s*minutes")
DEF_NAME = re.compile(r"^def\s+(\w+)\s*\(", re.MULTILINE)
HEADER_TAG = "assignment-header"


# --------------------------------------------------------------------------------------------
# the assignments (class/assignments.yml)


@dataclass(frozen=True)
class Assignment:
    """One nbgrader assignment: a course notebook, or its first sections (``until``)."""

    id: str
    notebook: Path
    until: str | None = None
    points: dict[str, float] = field(default_factory=dict)


def load_assignments(path: Path = ASSIGNMENTS_FILE, root: Path = ROOT) -> tuple[str, list[Assignment]]:
    """The course id and the assignments of ``path``, checked: each names an existing notebook, ids are unique."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("assignments"), list) or not data.get("course_id"):
        raise ValueError(f"{path}: expected a mapping with 'course_id' and a list 'assignments'")
    assignments, seen = [], set()
    for entry in data["assignments"]:
        unknown = set(entry) - {"id", "notebook", "until", "points"}
        if unknown or "id" not in entry or "notebook" not in entry:
            raise ValueError(f"{path}: an assignment needs 'id' and 'notebook' (optional: until, points), got {entry}")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(entry["id"])) or entry["id"] in seen:
            raise ValueError(
                f"{path}: assignment ids must be unique and of letters, digits, _ and -, got {entry['id']!r}"
            )
        notebook = (root / entry["notebook"]).resolve()
        if not notebook.is_file():
            raise FileNotFoundError(
                f"{path}: assignment {entry['id']!r} names {entry['notebook']}, which does not exist"
            )
        seen.add(entry["id"])
        assignments.append(Assignment(entry["id"], notebook, entry.get("until"), dict(entry.get("points") or {})))
    return str(data["course_id"]), assignments


# --------------------------------------------------------------------------------------------
# reading the course's marks


@dataclass(frozen=True)
class GradedCell:
    """A graded test cell of an assignment, for the release and the sheet."""

    grade_id: str
    kind: str  # "check": a "Your turn" checker; "prediction": a predict-then-measure comparison
    title: str
    call: str  # the checker's name, or "compare_prediction"
    answer: str  # the learner's function, or the prediction's variable
    points: float
    minutes: int | None
    difficulty: int | None
    solution: str  # the source of the instructor's solution cell
    hidden: bool


def _calls(source: str) -> list[tuple[str, list[ast.expr]]]:
    """(method name, positional arguments) of every ``something.method(...)`` call in a cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        (node.func.attr, list(node.args))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]


def checker_call(cell: Any) -> tuple[str, str] | None:
    """``("check_forward", "bn_forward")`` for a "Your turn" check cell (tagged answer-output), else None."""
    if cell.cell_type != "code" or mse.ANSWER_OUTPUT_TAG not in mse._tags(cell):
        return None
    return _check_in_source(cell.source)


def _check_in_source(source: str) -> tuple[str, str] | None:
    for name, args in _calls(source):
        if name.startswith("check_") and args and isinstance(args[0], ast.Name):
            return name, args[0].id
    return None


def prediction_call(cell: Any) -> tuple[str, str] | None:
    """``(what is predicted, "PREDICTED_X")`` for a predict-then-measure comparison cell, else None."""
    if cell.cell_type != "code":
        return None
    for name, args in _calls(cell.source):
        if name == "compare_prediction" and len(args) >= 2 and isinstance(args[1], ast.Name):
            title = args[0].value if isinstance(args[0], ast.Constant) and isinstance(args[0].value, str) else ""
            return title, args[1].id
    return None


def _defines(cell: Any, name: str) -> bool:
    return bool(re.search(rf"^(?:def\s+{re.escape(name)}\s*\(|{re.escape(name)}\s*=(?!=))", cell.source, re.MULTILINE))


def _rating(cells: list[Any], index: int) -> tuple[int | None, int | None]:
    """(difficulty dots, minutes) of the nearest rated exercise at or above ``index``."""
    for cell in reversed(cells[: index + 1]):
        if cell.cell_type == "markdown":
            match = RATING.search(cell.source)
            if match:
                return len(match.group(1)), int(match.group(2))
    return None, None


def _exercise_titles() -> dict[str, str]:
    from bn_utils.exercises import EXERCISES  # a public table: checker name -> the exercise's title

    return {exercise.check: exercise.title for exercise in EXERCISES.values()}


def _prefix(cells: list[Any], until: str | None) -> list[Any]:
    if until is None:
        return list(cells)
    for index, cell in enumerate(cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(until):
            return list(cells[:index])
    raise ValueError(f"no markdown cell starts with {until!r}: 'until' must name the first line of one")


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, points: float | None = None) -> dict:
    meta: dict[str, Any] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": not solution,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = points
    return meta


def _unique(grade_id: str, taken: set[str]) -> str:
    candidate, n = grade_id, 2
    while candidate in taken:
        candidate, n = f"{grade_id}_{n}", n + 1
    taken.add(candidate)
    return candidate


def nbgrader_source(nb: Any, assignment: Assignment) -> tuple[Any, list[GradedCell]]:
    """The nbgrader source of an assignment (its notebook with nbgrader metadata), and its graded cells.

    The input is not changed. Raises ValueError if a graded cell's answer is not defined above it, or
    if ``assignment.points`` names a grade id the assignment does not have."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if not isinstance(cell.source, str):
            cell.source = "".join(cell.source)
    cells = [
        c
        for c in _prefix(nb.cells, assignment.until)
        if not (c.cell_type == "markdown" and mse.SOLUTION_TAG in mse._tags(c))
    ]
    titles = _exercise_titles()
    taken: set[str] = set()
    graded: list[GradedCell] = []
    for index, cell in enumerate(cells):
        check, prediction = checker_call(cell), prediction_call(cell)
        if check is not None:
            call, answer = check
            title = titles.get(call, call)
        elif prediction is not None:
            call, answer = "compare_prediction", prediction[1]
            title = f"Prediction: {prediction[0]}"
        else:
            continue
        defining = [i for i in range(index) if mse.is_solution_cell(cells[i]) and _defines(cells[i], answer)]
        if not defining:
            raise ValueError(f"{assignment.id}: cell {index} grades {answer}, but no solution cell above defines it")
        difficulty, minutes = _rating(cells, defining[-1])
        grade_id = _unique(call.removeprefix("check_") if check else answer.lower(), taken)
        default = POINTS_BY_DIFFICULTY.get(difficulty or 1, 1) if check else 1  # a prediction: completion
        points = float(assignment.points.get(grade_id, default))
        hidden = call in HIDDEN_TESTS
        if hidden:
            cell.source = cell.source.rstrip("\n") + "\n" + HIDDEN_TESTS[call].replace("__FUNCTION__", answer)
        cell.metadata["nbgrader"] = _meta(grade_id, grade=True, points=points)
        kind = "check" if check else "prediction"
        solution = cells[defining[-1]].source
        graded.append(GradedCell(grade_id, kind, title, call, answer, points, minutes, difficulty, solution, hidden))
    for index, cell in enumerate(cells):
        if "nbgrader" in cell.metadata:
            continue
        if mse.is_solution_cell(cell):
            match = mse.LEGACY_SOLUTION.match(cell.source)
            names = DEF_NAME.findall(cell.source) or re.findall(r"^(\w+)\s*=(?!=)", cell.source, re.MULTILINE)
            base = (
                f"exercise_{match.group(1)}" if match else f"answer_{names[0].lower()}" if names else f"answer_{index}"
            )
            cell.metadata["nbgrader"] = _meta(_unique(base, taken), solution=True)
        else:
            cell.metadata["nbgrader"] = _meta(_unique(f"{cell.cell_type}_{index:02d}", taken))
    unknown = set(assignment.points) - {g.grade_id for g in graded}
    if unknown:
        raise ValueError(f"{assignment.id}: points given for {sorted(unknown)}, not graded cells of this assignment")
    header = nbformat.v4.new_markdown_cell(_header(assignment, graded))
    header.metadata["nbgrader"] = _meta("assignment_header")
    header.metadata["tags"] = [HEADER_TAG]
    nb.cells = [header, *cells]
    nb.metadata.setdefault("bn_course", {})["assignment"] = assignment.id
    return nb, graded


def _header(assignment: Assignment, graded: list[GradedCell]) -> str:
    """The release's first cell: what is graded, for how many points, and how."""
    total = sum(g.points for g in graded)
    minutes = sum(g.minutes or 0 for g in graded)
    rows = "\n".join(f"| {g.title} | `{g.grade_id}` | {g.points:g} |" for g in graded)
    how = [
        "Write your answers where a cell raises `NotImplementedError` (it names its exercise) or holds a "
        "prediction `...`, run the notebook from the top, then submit it."
    ]
    if any(g.kind == "check" for g in graded):
        how.append(
            "A check cell names your mistake if there is one; when the notebook is graded, more checks run "
            "that you do not see here."
        )
    if any(g.kind == "prediction" for g in graded):
        how.append("A prediction earns its point for being written before the measurement, right or wrong.")
    return (
        f"**Assignment `{assignment.id}`** · {total:g} points · about {minutes} minutes of graded exercises\n\n"
        + " ".join(how)
        + f"\n\n| Graded | Id | Points |\n|---|---|---|\n{rows}\n"
    )


# --------------------------------------------------------------------------------------------
# hidden tests: in the source and the autograded notebook, cut from the release by nbgrader


HIDDEN_TESTS: dict[str, str] = {
    "check_forward": """
### BEGIN HIDDEN TESTS
# Hidden tests (not in the release): the checker as shipped, even if the notebook replaced
# ex.check_forward, then PyTorch's own batch norm on inputs the public check does not use.
import contextlib as _contextlib
import importlib as _importlib
import io as _io

import bn_utils.exercises as _exercises
import torch as _torch

with _contextlib.redirect_stdout(_io.StringIO()):
    _importlib.reload(_exercises).check_forward(__FUNCTION__)
_f32, _f64 = _torch.float32, _torch.float64
for _shape, _dtype, _eps in [((5, 7), _f64, 1e-3), ((3, 2, 4, 5), _f64, 0.5), ((9, 3), _f32, 1e-5)]:
    _gen = _torch.Generator().manual_seed(sum(_shape))
    _x = (4 * _torch.randn(_shape, generator=_gen, dtype=_torch.float64) - 2).to(_dtype)
    _gamma = (0.5 + _torch.rand(_shape[1], generator=_gen, dtype=_torch.float64)).to(_dtype)
    _beta = _torch.randn(_shape[1], generator=_gen, dtype=_torch.float64).to(_dtype)
    _want = _torch.nn.functional.batch_norm(_x, None, None, _gamma, _beta, training=True, eps=_eps)
    _got = __FUNCTION__(_x.clone(), _gamma.clone(), _beta.clone(), _eps)
    assert _torch.allclose(_got, _want, rtol=0, atol=1e-4 if _dtype == _torch.float32 else 1e-9), (
        f"hidden test: __FUNCTION__ differs from torch.nn.functional.batch_norm on x of shape {_shape}, "
        f"{_dtype}, eps={_eps:g}: largest error {(_got - _want).abs().max().item():.3g}"
    )
### END HIDDEN TESTS""",
    "check_backward": """
### BEGIN HIDDEN TESTS
# Hidden tests (not in the release): the checker as shipped, even if the notebook replaced
# ex.check_backward, then autograd through PyTorch's batch norm on inputs the public check does not use.
import contextlib as _contextlib
import importlib as _importlib
import io as _io

import bn_utils.exercises as _exercises
import torch as _torch

with _contextlib.redirect_stdout(_io.StringIO()):
    _importlib.reload(_exercises).check_backward(__FUNCTION__)
for _shape, _eps in [((7, 5), 1e-3), ((3, 2, 4, 5), 0.5)]:
    _gen = _torch.Generator().manual_seed(sum(_shape))
    _x = (4 * _torch.randn(_shape, generator=_gen, dtype=_torch.float64) - 2).requires_grad_()
    _gamma = (0.5 + _torch.rand(_shape[1], generator=_gen, dtype=_torch.float64)).requires_grad_()
    _beta = _torch.randn(_shape[1], generator=_gen, dtype=_torch.float64).requires_grad_()
    _dy = _torch.randn(_shape, generator=_gen, dtype=_torch.float64)
    _y = _torch.nn.functional.batch_norm(_x, None, None, _gamma, _beta, training=True, eps=_eps)
    _wants = _torch.autograd.grad(_y, (_x, _gamma, _beta), _dy)
    _gots = __FUNCTION__(_dy.clone(), _x.detach().clone(), _gamma.detach().clone(), _eps)
    for _label, _got, _want in zip(("dx", "dgamma", "dbeta"), _gots, _wants):
        assert _torch.allclose(_got, _want, rtol=0, atol=1e-9), (
            f"hidden test: __FUNCTION__'s {_label} differs from autograd through torch.nn.functional.batch_norm "
            f"on x of shape {_shape}, eps={_eps:g}: largest error {(_got - _want).abs().max().item():.3g}"
        )
### END HIDDEN TESTS""",
    "check_running_update": """
### BEGIN HIDDEN TESTS
# Hidden tests (not in the release): the checker as shipped, even if the notebook replaced
# ex.check_running_update, then PyTorch's own running statistics for momenta the public check does not use.
import contextlib as _contextlib
import importlib as _importlib
import io as _io

import bn_utils.exercises as _exercises
import torch as _torch

with _contextlib.redirect_stdout(_io.StringIO()):
    _importlib.reload(_exercises).check_running_update(__FUNCTION__)
for _shape, _momentum in [((7, 5), 0.05), ((3, 2, 4, 5), 0.5)]:
    _gen = _torch.Generator().manual_seed(sum(_shape))
    _x = 4 * _torch.randn(_shape, generator=_gen, dtype=_torch.float64) - 2
    _mean = _torch.rand(_shape[1], dtype=_torch.float64, generator=_gen)
    _var = 1 + _torch.rand(_shape[1], dtype=_torch.float64, generator=_gen)
    _want_mean, _want_var = _mean.clone(), _var.clone()
    _torch.nn.functional.batch_norm(_x, _want_mean, _want_var, training=True, momentum=_momentum)
    _got_mean, _got_var = __FUNCTION__(_mean.clone(), _var.clone(), _x.clone(), _momentum)
    for _label, _got, _want in (("mean", _got_mean, _want_mean), ("var", _got_var, _want_var)):
        assert _torch.allclose(_got, _want, rtol=0, atol=1e-9), (
            f"hidden test: __FUNCTION__'s new running {_label} differs from torch.nn.functional.batch_norm's "
            f"on x of shape {_shape}, momentum={_momentum:g}: largest error {(_got - _want).abs().max().item():.3g}"
        )
### END HIDDEN TESTS""",
}


# --------------------------------------------------------------------------------------------
# the named mistakes each checker detects: known-wrong versions, run through the checker


def _forward(dims: str = "[0, *range(2, x.dim())]", unbiased: str = "False", x_hat: str = "", out: str = "") -> str:
    return (
        "def bn_forward(x, gamma, beta, eps=1e-5):\n"
        f"    dims = {dims}\n"
        "    shape = (1, -1, *([1] * (x.dim() - 2)))\n"
        "    mean = x.mean(dim=dims, keepdim=True)\n"
        f"    var = x.var(dim=dims, unbiased={unbiased}, keepdim=True)\n"
        f"    x_hat = {x_hat or '(x - mean) / torch.sqrt(var + eps)'}\n"
        f"    return {out or 'gamma.reshape(shape) * x_hat + beta.reshape(shape)'}\n"
    )


def _backward(dx: str = "inv_std * (g - mean_term - var_term)", dgamma: str = "", dbeta: str = "") -> str:
    return (
        "def bn_backward(dy, x, gamma, eps=1e-5):\n"
        "    dims = [0, *range(2, x.dim())]\n"
        "    shape = (1, -1, *([1] * (x.dim() - 2)))\n"
        "    inv_std = torch.rsqrt(x.var(dim=dims, unbiased=False, keepdim=True) + eps)\n"
        "    x_hat = (x - x.mean(dim=dims, keepdim=True)) * inv_std\n"
        "    g = dy * gamma.reshape(shape)\n"
        "    mean_term = g.mean(dim=dims, keepdim=True)\n"
        "    var_term = x_hat * (g * x_hat).mean(dim=dims, keepdim=True)\n"
        f"    return {dx}, {dgamma or '(dy * x_hat).sum(dim=dims)'}, {dbeta or 'dy.sum(dim=dims)'}\n"
    )


def _update(batch_var: str = "x.var(dim=dims, unbiased=True)", new_mean: str = "", new_var: str = "") -> str:
    return (
        "def bn_running_update(running_mean, running_var, x, momentum=0.1):\n"
        "    dims = [0, *range(2, x.dim())]\n"
        "    batch_mean = x.mean(dim=dims)\n"
        f"    batch_var = {batch_var}\n"
        f"    new_mean = {new_mean or '(1 - momentum) * running_mean + momentum * batch_mean'}\n"
        f"    new_var = {new_var or '(1 - momentum) * running_var + momentum * batch_var'}\n"
        "    return new_mean, new_var\n"
    )


# checker -> (the reference, written the way the known-wrong versions are, and (mistake, known-wrong version)s)
KNOWN_MISTAKES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "check_forward": (
        _forward(),
        (
            ("the unbiased variance in training mode", _forward(unbiased="True")),
            ("eps outside the square root", _forward(x_hat="(x - mean) / (torch.sqrt(var) + eps)")),
            ("gamma and beta swapped", _forward(out="beta.reshape(shape) * x_hat + gamma.reshape(shape)")),
            ("statistics per example (layer norm)", _forward(dims="list(range(1, x.dim()))")),
            ("4-D input normalized over N only", _forward(dims="[0]")),
            ("statistics without gradient", _forward(x_hat="(x - mean.detach()) / torch.sqrt(var.detach() + eps)")),
        ),
    ),
    "check_backward": (
        _backward(),
        (
            ("the mean's projection term missing", _backward(dx="inv_std * (g - var_term)")),
            ("the variance's projection term missing", _backward(dx="inv_std * (g - mean_term)")),
            ("both projection terms missing (the inference-mode gradient)", _backward(dx="inv_std * g")),
            (
                "dx without the factor gamma",
                _backward(
                    dx="inv_std * (dy - dy.mean(dim=dims, keepdim=True) "
                    "- x_hat * (dy * x_hat).mean(dim=dims, keepdim=True))"
                ),
            ),
            ("dbeta as a mean, not a sum", _backward(dbeta="dy.mean(dim=dims)")),
        ),
    ),
    "check_running_update": (
        _update(),
        (
            (
                "the reversed momentum convention",
                _update(
                    new_mean="momentum * running_mean + (1 - momentum) * batch_mean",
                    new_var="momentum * running_var + (1 - momentum) * batch_var",
                ),
            ),
            ("the biased variance stored in running_var", _update(batch_var="x.var(dim=dims, unbiased=False)")),
            ("momentum ignored", _update(new_mean="batch_mean", new_var="batch_var")),
            (
                "Bessel's correction with the batch size N",
                _update(batch_var="x.var(dim=dims, unbiased=False) * x.shape[0] / (x.shape[0] - 1)"),
            ),
        ),
    ),
}


@dataclass(frozen=True)
class DetectedMistake:
    """A known mistake and what the checker said about it (empty if it did not raise)."""

    name: str
    message: str

    @property
    def detected(self) -> bool:
        return bool(self.message)


def function_from_source(source: str) -> Callable[..., Any]:
    """The function a cell's source defines (the first ``def``), executed with ``torch`` in scope."""
    import torch

    names = DEF_NAME.findall(source)
    if not names:
        raise ValueError(f"expected a function definition, got:\n{source}")
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, f"<{names[0]}>", "exec"), namespace)  # the course's own reference and its mutants
    return namespace[names[0]]


def checker_message(call: str, function: Callable[..., Any]) -> str:
    """What ``bn_utils.exercises.<call>(function)`` raises, as the learner sees it ('' if it passes)."""
    from bn_utils import exercises

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            getattr(exercises, call)(function)
        except Exception as error:  # the checker's verdict, whatever its class
            return f"{type(error).__name__}: {error}"
    return ""


@functools.cache
def detected_mistakes(call: str) -> tuple[DetectedMistake, ...]:
    """Run every known-wrong version for this graded cell through its checker, and record what it says."""
    if call == "compare_prediction":
        from bn_utils import exercises

        try:
            exercises.compare_prediction("your prediction", ..., 1.0, tolerance=1.0, explanation="(measured)")
        except NotImplementedError as error:
            return (DetectedMistake("no prediction written (left as ...)", f"NotImplementedError: {error}"),)
        return (DetectedMistake("no prediction written (left as ...)", ""),)
    return tuple(
        DetectedMistake(name, checker_message(call, function_from_source(source)))
        for name, source in KNOWN_MISTAKES.get(call, ("", ()))[1]
    )


# --------------------------------------------------------------------------------------------
# the timing and solution sheet


def _fence(source: str) -> str:
    return f"```python\n{source.rstrip()}\n```"


def sheet_markdown(assignment: Assignment, source: Any, graded: list[GradedCell], root: Path = ROOT) -> str:
    """The instructor's timing and solution sheet of one assignment (Markdown)."""
    cells = source.cells
    try:
        notebook = assignment.notebook.relative_to(root)
    except ValueError:
        notebook = assignment.notebook
    scope = f"its first sections, up to “{assignment.until}”" if assignment.until else "the whole lab"
    estimated = next((ESTIMATED.search(c.source) for c in cells if ESTIMATED.search(c.source)), None)
    headings = [SECTION.match(c.source.splitlines()[0]) for c in cells if c.cell_type == "markdown" and c.source]
    sections = [(m.group(1), int(m.group(2))) for m in headings if m]
    exercises = [
        (mse.exercise_label(cells, i), _rating(cells, i)[1]) for i, c in enumerate(cells) if mse.is_solution_cell(c)
    ]
    total_points = sum(g.points for g in graded)
    lines = [
        f"# `{assignment.id}`: timing and solution sheet",
        "",
        f"For the instructor: do not hand out. Made by `scripts/make_assignments.py` from `{notebook}` ({scope});",
        "rerun it after the notebook changes. The checkers' messages below were measured when this sheet was written.",
        "",
        f"**Points:** {total_points:g} in {len(graded)} graded cells. "
        f"**Expected time:** {sum(m for _, m in sections)} min of reading and running "
        f"({len(sections)} sections{f'; the whole lab is {estimated.group(1)} min' if estimated else ''}), "
        f"and {sum(m or 0 for _, m in exercises)} min of exercises ({sum(g.minutes or 0 for g in graded)} min graded).",
        "",
        "## Timing",
        "",
        "| Part | Minutes | Graded (points) |",
        "|---|---|---|",
    ]
    graded_by_answer = {g.answer: g for g in graded}
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and cell.source:
            match = SECTION.match(cell.source.splitlines()[0])
            if match:
                lines.append(f"| {match.group(1)} | {match.group(2)} | |")
        if mse.is_solution_cell(cell):
            owner = next((g for name, g in graded_by_answer.items() if _defines(cell, name)), None)
            minutes = _rating(cells, i)[1]
            marked = f"`{owner.grade_id}` ({owner.points:g})" if owner else "not graded"
            lines.append(
                f"| *{mse.exercise_label(cells, i)}*{f': {owner.title}' if owner else ''} "
                f"| {minutes or '?'} | {marked} |"
            )
    lines += ["", "## Graded cells", ""]
    lines += [
        "| Id | Exercise | Points | Time | Difficulty | Checked by | Hidden tests |",
        "|---|---|---|---|---|---|---|",
    ]
    for g in graded:
        dots = "●" * (g.difficulty or 0) + "○" * (3 - (g.difficulty or 0)) if g.difficulty else "?"
        lines.append(
            f"| `{g.grade_id}` | {g.title} | {g.points:g} | {g.minutes or '?'} min | {dots} | "
            f"`ex.{g.call}` | {'yes' if g.hidden else 'no'} |"
        )
    for g in graded:
        lines += ["", f"### `{g.grade_id}`: {g.title}", ""]
        if g.kind == "prediction":
            lines.append(
                f"Completion: the point is for a prediction written into `{g.answer}` before the measurement; "
                "`ex.compare_prediction` prints it beside the measured value and never fails a wrong guess."
            )
        else:
            lines.append(
                f"`ex.{g.call}({g.answer})` runs the learner's function against the reference and names the "
                "likely mistake; the grade is all or nothing."
            )
        if g.hidden:
            lines.append(
                "Hidden tests (cut from the release, run by `nbgrader autograde`, shown in the feedback): the checker "
                "as shipped, even if the notebook replaced it, and PyTorch's own batch norm on inputs the public check "
                "does not use."
            )
        mistakes = detected_mistakes(g.call)
        if mistakes:
            lines += [
                "",
                "Named mistakes it detects (each known-wrong version run through the checker; the feedback quotes):",
                "",
            ]
            for mistake in mistakes:
                said = f"`{mistake.message}`" if mistake.detected else "**not detected**"
                lines.append(f"- {mistake.name}: {said}")
        lines += ["", "Solution:", "", _fence(g.solution)]
    ungraded = [
        (i, c)
        for i, c in enumerate(cells)
        if mse.is_solution_cell(c) and not any(_defines(c, g.answer) for g in graded)
    ]
    prose = [m.group(0) for c in cells if c.cell_type == "markdown" for m in mse.DETAILS.finditer(c.source)]
    if ungraded or prose:
        lines += ["", "## Exercises not graded (practice), with their solutions", ""]
        for i, cell in ungraded:
            lines += [
                f"**{mse.exercise_label(cells, i)}** ({_rating(cells, i)[1] or '?'} min)",
                "",
                _fence(cell.source),
                "",
            ]
        for block in prose:
            lines += [block.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------
# the course directory


COURSE_CONFIG_TEXT = '''"""nbgrader's configuration of this course directory, written by scripts/make_assignments.py.

The course's settings live in the repository: {config}
"""

import os

c = get_config()  # noqa: F821 (traitlets defines get_config in a configuration file)
load_subconfig(r"{config}")  # noqa: F821
c.CourseDirectory.course_id = "{course_id}"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
'''


@dataclass(frozen=True)
class Written:
    """What make_course wrote for one assignment."""

    assignment: Assignment
    source: Path
    sheet: Path
    graded: list[GradedCell]


def make_course(course: Path, course_id: str, assignments: list[Assignment], *, root: Path = ROOT) -> list[Written]:
    """Write (or refresh) the course directory: its nbgrader_config.py, and each assignment's source and sheet.

    Only ``source/<assignment>/`` and ``sheets/<assignment>.md`` are replaced; the gradebook, releases and
    submissions of an existing course directory stay."""
    course = Path(course).resolve()
    if course == root or root in course.parents and course.parts[len(root.parts)] in ("notebooks", "book", "bn_utils"):
        raise ValueError(f"the course directory {course} would mix with the course's own files in {root}")
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(
        COURSE_CONFIG_TEXT.format(config=COURSE_CONFIG, course_id=course_id), encoding="utf-8"
    )
    (course / "sheets").mkdir(exist_ok=True)
    written = []
    for assignment in assignments:
        folder = course / "source" / assignment.id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        source, graded = nbgrader_source(nbformat.read(assignment.notebook, as_version=4), assignment)
        path = folder / assignment.notebook.name
        nbformat.write(source, path)
        sheet = course / "sheets" / f"{assignment.id}.md"
        sheet.write_text(sheet_markdown(assignment, source, graded, root), encoding="utf-8")
        written.append(Written(assignment, path, sheet, graded))
    return written


# --------------------------------------------------------------------------------------------
# nbgrader's side: the release's stubs are the student edition's


class CourseStubs(ClearSolutions):
    """nbgrader's ClearSolutions with the student edition's stubs (scripts/make_student_edition.py).

    A solution cell becomes exactly the student edition's stub: the ``# BEGIN SOLUTION`` region goes, a
    "Your turn" cell keeps its ``def`` line and docstring and raises ``NotImplementedError`` naming the
    exercise, a prediction becomes ``PREDICTED = ...``; a prose ``<details>`` "Solution" block goes.
    Everything else (a solution region outside a solution cell is an error, markdown answers get the
    text stub) is nbgrader's."""

    def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
        self._labels = {
            index: mse.exercise_label(nb.cells, index)
            for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and nbgrader_utils.is_solution(cell)
        }
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell: Any, resources: Any, index: int) -> tuple[Any, Any]:
        if cell.cell_type == "code" and nbgrader_utils.is_solution(cell):
            cell.source = mse.stub_source(cell.source, self._labels[index])
            cell.metadata["tags"] = mse.stub_tags(cell)
            cell.metadata.pop("jupyter", None)  # shown, not collapsed: the learner writes here
            return cell, resources
        if cell.cell_type == "markdown" and mse.DETAILS.search(cell.source):
            cell.source = mse.DETAILS.sub(mse.SOLUTION_REMOVED, cell.source)
        return super().preprocess_cell(cell, resources, index)


def course_preprocessors() -> list[type]:
    """nbgrader's generate_assignment preprocessors, with CourseStubs in place of ClearSolutions."""
    default = GenerateAssignment.class_traits()["preprocessors"].default()
    return [CourseStubs if step is ClearSolutions else step for step in default]


# --------------------------------------------------------------------------------------------
# a rehearsal: three learners' submissions, to try the instructor's loop before the class


REHEARSAL = {
    "rehearsal-correct": "correct",
    "rehearsal-mistake": "mistake",
    "rehearsal-untouched": "untouched",
}


def answered_notebook(release: Any, source: Any, kind: str) -> tuple[Any, str]:
    """A learner's answer to a released notebook, and what it is. ``kind``: "correct" (every solution
    written as in the instructor's source), "mistake" (the same, but the first graded function carries
    its first known mistake; None where the notebook grades no checker) or "untouched" (the release)."""
    if kind not in ("correct", "mistake", "untouched"):
        raise ValueError(f"kind must be 'correct', 'mistake' or 'untouched', got {kind!r}")
    nb = copy.deepcopy(release)
    if kind == "untouched":
        return nb, "the release as handed out: every stub left in place"
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if nbgrader_utils.is_solution(c)}
    for cell in nb.cells:
        if nbgrader_utils.is_solution(cell):
            cell.source = solutions[cell.metadata["nbgrader"]["grade_id"]]
    if kind == "correct":
        return nb, "every solution written as in the instructor edition"
    mistake = _first_mistake(nb)
    if mistake is None:
        return None, "no graded checker, so no named mistake to make"
    index, wrong, name = mistake
    nb.cells[index].source = wrong
    return nb, f"correct but for one named mistake: {name}"


def rehearsal_submissions(course: Path, assignment_id: str) -> dict[str, str]:
    """Write three submissions of a released assignment into ``submitted/<student>/<assignment>/`` (replaced):
    correct, with a named mistake (only where the assignment grades a checker), untouched.
    Returns student id -> what the submission is."""
    course = Path(course)
    release, source = course / "release" / assignment_id, course / "source" / assignment_id
    notebooks = sorted(release.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no release of {assignment_id!r} in {course}: run nbgrader generate_assignment first")
    made: dict[str, str] = {}
    for student, kind in REHEARSAL.items():
        answers, said = {}, []
        for path in notebooks:
            released, instructor = nbformat.read(path, as_version=4), nbformat.read(source / path.name, as_version=4)
            nb, what = answered_notebook(released, instructor, kind)
            if nb is None:  # nothing to get wrong by name in this notebook: answer it correctly
                nb, _ = answered_notebook(released, instructor, "correct")
            else:
                said.append(what)
            answers[path.name] = nb
        folder = course / "submitted" / student / assignment_id
        if folder.exists():
            shutil.rmtree(folder)
        if not said:
            continue
        folder.mkdir(parents=True)
        for name, nb in answers.items():
            nbformat.write(nb, folder / name)
        made[student] = said[0]
    return made


def _first_mistake(nb: Any) -> tuple[int, str, str] | None:
    """(cell index, known-wrong source, mistake) for the first graded checker of a notebook, if any."""
    for cell in nb.cells:
        check = _check_in_source(cell.source) if nbgrader_utils.is_grade(cell) else None
        if check and check[0] in KNOWN_MISTAKES:
            call, function = check
            index = next(i for i, c in enumerate(nb.cells) if nbgrader_utils.is_solution(c) and _defines(c, function))
            name, wrong = KNOWN_MISTAKES[call][1][0]
            return index, re.sub(r"^def\s+\w+", f"def {function}", wrong, count=1, flags=re.MULTILINE), name
    return None


# --------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--course", type=Path, default=DEFAULT_COURSE, help="the course directory; default _build/class"
    )
    parser.add_argument("--assignment", action="append", help="only this assignment (repeatable); default all")
    parser.add_argument("--assignments", type=Path, default=ASSIGNMENTS_FILE, help="default class/assignments.yml")
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="also write three rehearsal submissions (correct, a named mistake, untouched) of each released assignment",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    course_id, assignments = load_assignments(args.assignments)
    if args.assignment:
        known = {a.id for a in assignments}
        missing = [name for name in args.assignment if name not in known]
        if missing:
            parser.error(f"unknown assignment(s) {missing}; class/assignments.yml has {sorted(known)}")
        assignments = [a for a in assignments if a.id in args.assignment]
    written = make_course(args.course, course_id, assignments)
    for item in written:
        points = sum(g.points for g in item.graded)
        print(
            f"{item.assignment.id}: {len(item.graded)} graded cells, {points:g} points -> {item.source}; "
            f"sheet {item.sheet}"
        )
        if args.rehearse:
            for student, what in rehearsal_submissions(args.course, item.assignment.id).items():
                print(f"  submitted/{student}/{item.assignment.id}: {what}")
    print(f"course {course_id} in {args.course} ({time.perf_counter() - start:.1f} s); next, there:")
    print(f"  nbgrader generate_assignment {written[0].assignment.id if written else '<assignment>'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
