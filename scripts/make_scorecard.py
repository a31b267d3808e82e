"""Write book/scorecard.md, the scorecard of the essay's claims and the course's findings, from the claim tests.

    python scripts/make_scorecard.py           # rewrite book/scorecard.md
    python scripts/make_scorecard.py --check   # exit 1 if the committed page is not what it would write

One row per claim; columns: the digits (the chapter's own claim test, at the chapter's number of steps),
MNIST-1D (the same experiment, same steps) and the longer budget (4x the steps, on both benchmarks).

Where each cell comes from, so that it cannot say "holds" where its test says otherwise:

- the digits column names the chapter's claim test (``DIGITS`` below): that test asserts the chapter's
  verdict sentence, so its outcome is the chapter's; its number is pasted from the chapter's notebook
  (``{glue:text}``), as the chapter page pastes it;
- the MNIST-1D and budget columns come from the ``scorecard`` markers of tests/test_claims_transfer.py
  (row, column, benchmark, outcome, and ``shows``, how to print the number). Those tests assert the
  claim in the direction their marker names (its ``verdict`` helper), and the number is the one the
  test asserted on: the deciding value and threshold that ``pytest -m claims --margins`` recorded on
  seeds 0-4, stored in scripts/scorecard_margins.json (refresh it with
  ``pytest -m claims tests/test_claims_transfer.py --margins scripts/scorecard_margins.json``).

tests/test_scorecard.py checks that the committed page is the generated one, that every test named
exists and passed in the stored run, and that each test's recorded assertion matches its outcome.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import course_toc  # noqa: E402  (scripts/course_toc.py: the chapters, read from _toc.yml)

TESTS = ROOT / "tests" / "test_claims_transfer.py"
MARGINS = ROOT / "scripts" / "scorecard_margins.json"
PAGE = ROOT / "book" / "scorecard.md"
OUTCOMES = ("holds", "does not hold", "not settled")
COLUMNS = ("mnist1d", "budget")
BENCHMARK_NAMES = {"digits": "digits", "mnist1d": "MNIST-1D"}


@dataclass(frozen=True)
class Digits:
    """The digits cell: the chapter's claim test, its outcome for the row's claim, and the number
    (MyST with ``{glue:text}`` roles pasting the chapter notebook's values)."""

    test: str
    outcome: str
    shows: str


@dataclass(frozen=True)
class Row:
    """One claim: ``source`` is "essay" (the popular account the course tests) or "course" (a finding
    of the chapters); ``chapter`` is the page that measures it on the digits."""

    key: str
    claim: str
    source: str
    chapter: str | None
    digits: Digits | None


def glue(notebook: str, key: str) -> str:
    return f"{{glue:text}}`/notebooks/{notebook}.ipynb::{key}:s`"


# each chapter's page name (book/<page>.md) -> its lab notebook's name and its title "ch. N", from _toc.yml
CHAPTERS = course_toc.chapters(ROOT)
NOTEBOOKS = {Path(chapter.page).stem: Path(chapter.notebooks[0]).stem for chapter in CHAPTERS}
CHAPTER_TITLES = {Path(chapter.page).stem: f"ch. {number}" for number, chapter in enumerate(CHAPTERS, 1)}
NB2, NB3, NB4, NB5, NB6, NB7, NB8 = (
    NOTEBOOKS[page]
    for page in (
        "internal_covariate_shift",
        "faster_convergence",
        "initialization_robustness",
        "gradient_flow",
        "residual_networks",
        "regularization_noise",
        "batch_size",
    )
)

ROWS: tuple[Row, ...] = (
    Row(
        "outside",
        "The course's training code reproduces the published MNIST-1D baselines (logistic regression, MLP, CNN)",
        "outside check",
        None,
        None,
    ),
    Row(
        "lr",
        "BN allows higher learning rates",
        "essay",
        "faster_convergence",
        Digits(
            "tests/test_claims_convergence.py::test_bn_trains_every_seed_where_the_plain_network_already_fails",
            "holds",
            f"BN's limit {glue(NB3, 'stable_ratio_low')}–{glue(NB3, 'stable_ratio_high')}× the plain network's",
        ),
    ),
    Row(
        "speed",
        "BN speeds up training",
        "essay",
        "faster_convergence",
        Digits(
            "tests/test_claims_convergence.py::test_at_their_best_learning_rates_bn_reaches_95_percent_sooner",
            "holds",
            f"{glue(NB3, 'speedup')}× fewer steps to 95%",
        ),
    ),
    Row(
        "ahead",
        "At their best learning rates, BN ends ahead in median test accuracy (here: by a point or more)",
        "course",
        "faster_convergence",
        Digits(
            "tests/test_claims_convergence.py::test_at_their_best_learning_rates_bn_ends_with_higher_test_accuracy",
            "holds",
            f"{glue(NB3, 'bn_test_best')}% against {glue(NB3, 'plain_test_best')}%",
        ),
    ),
    Row(
        "small-lr",
        "At the small equal learning rate 0.01, BN ends behind the plain network (chapter 3: in median; "
        "here: by 5 points or more in the mean)",
        "course",
        "faster_convergence",
        Digits(
            "tests/test_claims_convergence.py::test_at_a_small_equal_learning_rate_bn_ends_behind",
            "holds",
            f"{glue(NB3, 'bn_acc_small')}% against {glue(NB3, 'plain_acc_small')}%",
        ),
    ),
    Row(
        "smooth",
        "BN smooths the loss landscape (its gradient change along the step at most half the plain network's)",
        "essay",
        "faster_convergence",
        Digits(
            "tests/test_claims_convergence.py::test_bn_shrinks_the_loss_range_and_the_gradient_change_along_the_step",
            "holds",
            f"gradient change {glue(NB3, 'bn_gradient_change')} against {glue(NB3, 'plain_gradient_change')}",
        ),
    ),
    Row(
        "init",
        "BN makes training insensitive to the initial weight scale",
        "essay",
        "initialization_robustness",
        Digits(
            "tests/test_claims_initialization.py::test_bn_trains_at_every_scale_the_plain_network_near_he_only",
            "holds",
            f"BN at every scale 0.1–10, plain at {glue(NB4, 'plain_stable_scales')}",
        ),
    ),
    Row(
        "init-cost",
        "BN learns slower from a large initial scale (15 points or more behind at 10× He)",
        "course",
        "initialization_robustness",
        Digits(
            "tests/test_claims_initialization.py::test_bn_learns_slower_at_large_scales",
            "holds",
            f"{glue(NB4, 'bn_acc_scale10')}% at scale 10, {glue(NB4, 'bn_acc_scale1')}% at 1",
        ),
    ),
    Row(
        "depth",
        "BN makes deeper networks trainable",
        "essay",
        "gradient_flow",
        Digits(
            "tests/test_claims_gradient_flow.py::test_bn_trains_deeper_but_not_at_depth_40",
            "holds",
            f"depth {glue(NB5, 'bn_deepest')} against {glue(NB5, 'plain_deepest')}",
        ),
    ),
    Row(
        "depth-40",
        "Without skip connections, neither network trains at depth 40",
        "course",
        "gradient_flow",
        Digits(
            "tests/test_claims_gradient_flow.py::test_bn_trains_deeper_but_not_at_depth_40",
            "holds",
            f"BN {glue(NB5, 'bn_acc40')}% at depth 40",
        ),
    ),
    Row(
        "explode",
        "At initialisation BN's gradients grow towards the input at the mean-field rate",
        "course",
        "gradient_flow",
        Digits(
            "tests/test_claims_gradient_flow.py::test_bn_gradients_explode_at_the_mean_field_rate",
            "holds",
            f"{glue(NB5, 'bn_growth')} per layer",
        ),
    ),
    Row(
        "residual",
        "Residual BN trains at depth 40 where the plain BN stack fails",
        "course",
        "residual_networks",
        Digits(
            "tests/test_claims_residual.py::test_residual_bn_trains_where_the_plain_bn_stack_fails",
            "holds",
            f"plain BN stack {glue(NB6, 'plain_acc40')}%, residual BN ≥ {glue(NB6, 'bn_min40')}%",
        ),
    ),
    Row(
        "ics",
        "BN steadies the inputs of later layers (less internal covariate shift)",
        "essay",
        "internal_covariate_shift",
        Digits(
            "tests/test_claims_covariate_shift.py::test_bn_layer_inputs_drift_less",
            "holds",
            f"drift {glue(NB2, 'bn_drift')} against {glue(NB2, 'plain_drift')}",
        ),
    ),
    Row(
        "figure1",
        "From the BN paper's small initialisation, BN reaches the target in a quarter of the steps or fewer",
        "course",
        "internal_covariate_shift",
        Digits(
            "tests/test_claims_covariate_shift.py::test_bn_reaches_90_percent_in_at_most_a_quarter_of_the_steps",
            "holds",
            f"{glue(NB2, 'speedup90')}× fewer steps to 90%",
        ),
    ),
    Row(
        "noisy",
        "Noisy BN, which adds covariate shift back, trains within twice BN's steps",
        "course",
        "internal_covariate_shift",
        Digits(
            "tests/test_claims_covariate_shift.py::test_noisy_bn_trains_about_as_fast_as_bn",
            "holds",
            f"{glue(NB2, 'noisy_steps90')} against {glue(NB2, 'bn_steps90')} steps to 90%",
        ),
    ),
    Row(
        "regularize",
        "BN regularizes through batch noise: ghost batches of 8 leave a smaller generalization gap than the "
        "whole batch (chapter 7: in the mean; here: by the 95% interval)",
        "essay",
        "regularization_noise",
        Digits(
            "tests/test_claims_regularization.py::test_ghost_batches_leave_a_smaller_gap_than_the_whole_batch",
            "holds",
            f"gap {glue(NB7, 'gap_drop')} smaller",
        ),
    ),
    Row(
        "small-effect",
        "… mildly: every network's mean test accuracy within about a point (1.25) of the plain network's",
        "essay",
        "regularization_noise",
        Digits(
            "tests/test_claims_regularization.py::test_the_test_accuracy_differences_are_about_a_point_or_less",
            "holds",
            f"ghost minus whole batch {glue(NB7, 'edge')}",
        ),
    ),
    Row(
        "bn-alone",
        "On 256 training examples, BN alone does not measurably raise test accuracy (chapter 7: its gain's 95% "
        "interval reaches zero; here: a mean gain below 2 points)",
        "course",
        "regularization_noise",
        Digits(
            "tests/test_claims_regularization.py::test_with_256_images_bn_alone_does_not_measurably_reduce_the_overfitting",
            "holds",
            f"BN minus plain {glue(NB7, 'bn_alone')}",
        ),
    ),
    Row(
        "explicit",
        "Dropout and L2 still raise the BN network's test accuracy (L2's gain clear of zero by its 95% interval)",
        "course",
        "regularization_noise",
        Digits(
            "tests/test_claims_regularization.py::test_dropout_and_l2_still_raise_bn_test_accuracy",
            "holds",
            f"dropout {glue(NB7, 'gain_dropout_bn')}, L2 {glue(NB7, 'gain_l2_bn')}",
        ),
    ),
    Row(
        "fc-batch",
        "BN depends on the batch size: a fully connected BN network breaks at batch 2",
        "essay",
        "batch_size",
        Digits(
            "tests/test_claims_batch_size.py::test_fully_connected_bn_collapses_at_batch_2",
            "holds",
            f"{glue(NB8, 'fc_bn_2')}% at batch 2, {glue(NB8, 'fc_bn_32')}% at 32",
        ),
    ),
    Row(
        "ln",
        "… so use layer norm: it holds at batch 2",
        "essay",
        "batch_size",
        Digits(
            "tests/test_claims_batch_size.py::test_fully_connected_layer_norm_holds_at_batch_2",
            "holds",
            f"{glue(NB8, 'fc_ln_2')}% at batch 2",
        ),
    ),
    Row(
        "conv-batch",
        "In a conv net, BN at batch 2 does not lose what Wu & He's ResNet-50 lost (11 points below batch 32; "
        "chapter 8 and at 40 epochs: by the 95% seed interval; MNIST-1D at 10 epochs: the median seed)",
        "course",
        "batch_size",
        Digits(
            "tests/test_claims_batch_size.py::test_conv_bn_at_batch_2_did_not_lose_what_wu_and_he_lost",
            "holds",
            f"batch 2 minus 32: {glue(NB8, 'bn_change_both')}",
        ),
    ),
)


@dataclass(frozen=True)
class Marked:
    """A claim test of tests/test_claims_transfer.py and its ``scorecard`` marker."""

    name: str
    row: str
    column: str
    outcome: str
    shows: str
    benchmark: str = "mnist1d"

    @property
    def nodeid(self) -> str:
        return f"tests/test_claims_transfer.py::{self.name}"


def marked_tests(path: Path = TESTS) -> list[Marked]:
    """Every test function of ``path`` with a ``pytest.mark.scorecard(...)`` decorator, in file order."""
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and isinstance(decorator.func, ast.Attribute)
                and decorator.func.attr == "scorecard"
            ):
                kwargs = {k.arg: ast.literal_eval(k.value) for k in decorator.keywords if k.arg}
                found.append(Marked(node.name, **kwargs))
    return found


def claim_tests(file: str) -> set[str]:
    """The test functions defined in a test file (relative to the repository root)."""
    tree = ast.parse((ROOT / file).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def load_margins(path: Path = MARGINS) -> dict[str, list[dict]]:
    """The stored margins run: test node id -> its assertions' records, in order."""
    data = json.loads(path.read_text())
    records: dict[str, list[dict]] = {}
    for record in data["margins"]:
        records.setdefault(record["test"], []).append(record)
    return records


def _interval(values: list[float]) -> tuple[float, float, float]:
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array)))
    return mean, mean - half, mean + half


def number(marked: Marked, records: list[dict]) -> str:
    """The marker's ``shows`` filled in from the test's first recorded assertion: ``value`` (the
    deciding value), ``threshold``, the per-seed ``mean`` and 95% interval ``low``..``high``, and
    each times 100 (``value100`` ...); an infinite number of steps prints as "never"."""
    first = records[0]
    mean, low, high = _interval(first["values"])
    fields = {"value": first["deciding"], "threshold": first["threshold"], "mean": mean, "low": low, "high": high}
    fields.update({f"{k}100": 100 * v for k, v in list(fields.items())})
    text = marked.shows.format(**fields)
    return re.sub(r"-?\binf\b", "never", text)


def outcome_of(outcomes: list[str]) -> str:
    """One cell's outcome from its tests': all the same, or "partly" when they differ."""
    return outcomes[0] if len(set(outcomes)) == 1 else "partly"


def anchor(name: str) -> str:
    return "t-" + name.removeprefix("test_").replace("_", "-")


def cell(tests: list[Marked], margins: dict[str, list[dict]]) -> str:
    if not tests:
        return "—"
    parts = [f"{number(t, margins[t.nodeid])} {{ref}}`↗ <{anchor(t.name)}>`" for t in tests]
    return f"**{outcome_of([t.outcome for t in tests])}**: " + "; ".join(parts)


def generate(marked: list[Marked] | None = None, margins: dict[str, list[dict]] | None = None) -> str:
    """The scorecard page, as Markdown."""
    marked = marked_tests() if marked is None else marked
    margins = load_margins() if margins is None else margins
    check(marked, margins)
    lines = [
        "(scorecard)=",
        "# Scorecard: does it transfer?",
        "",
        "% Generated by scripts/make_scorecard.py from the claim tests: do not edit by hand.",
        "",
        "Every verdict of the course was measured on one problem, scikit-learn's 8×8 digits, for the",
        "number of steps its chapter trains. This page tests each claim of the popular account of batch",
        "normalization the course examines (*essay*), and each headline finding of the chapters (*course*),",
        "on a second, harder benchmark, MNIST-1D (chapter {ref}`ch-transfer`), and after four times the",
        "steps, on both benchmarks. A run *trains* when it ends at 50% (digits) or 40% (MNIST-1D) accuracy",
        "or more, halfway from chance to a published MLP's accuracy; the speed targets are 95% (digits)",
        "and 40% (MNIST-1D).",
        "",
        "Each cell says what its claim test asserts, over 5 seeds: **holds**, **does not hold**, or **not",
        "settled** (5 seeds, or the chapter's number of steps, cannot decide it), each decided by the",
        "statistic its test names (every seed, a count, the median, the mean or an interval's end), with the",
        "number the test decided on (its value in the stored run on seeds 0-4; the tests pass on seeds 5-9",
        "too). A cell decided by a median or a mean can hold while a seed sits on the other side of the",
        "line, and a cell near the 40% line can move with it (chapter 9): read the seeds before trusting",
        "it. The digits column's numbers are the chapters' own. ↗ leads to the test.",
        "",
        "| Claim | Digits (the chapter) | MNIST-1D (same steps) | 4× the steps |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        where = f" ({row.source}; {{doc}}`{CHAPTER_TITLES[row.chapter]} <{row.chapter}>`)" if row.chapter else ""
        claim = f"{row.claim}{where}" if row.source != "outside check" else f"{row.claim} (outside check)"
        if row.digits is not None:
            digits = (
                f"**{row.digits.outcome}**: {row.digits.shows} {{ref}}`↗ <{anchor(row.digits.test.split('::')[1])}>`"
            )
        else:
            digits = "—"
        mnist = cell([t for t in marked if t.row == row.key and t.column == "mnist1d"], margins)
        budget_parts = []
        for benchmark in ("digits", "mnist1d"):
            tests = [t for t in marked if t.row == row.key and t.column == "budget" and t.benchmark == benchmark]
            if tests:
                budget_parts.append(f"{BENCHMARK_NAMES[benchmark]} {cell(tests, margins)}")
        budget = "<br>".join(budget_parts) if budget_parts else "—"
        lines.append(f"| {claim} | {digits} | {mnist} | {budget} |")
    lines += [
        "",
        "## The claim tests",
        "",
        "The digits column's tests are the chapters' own; the others are in",
        "`tests/test_claims_transfer.py`, whose docstring gives the settings. Each entry: the test, and",
        "what it asserted in the stored run (per seed where the values are per seed).",
        "",
    ]
    for row in ROWS:
        if row.digits is not None:
            name = row.digits.test.split("::")[1]
            lines += [f"({anchor(name)})=", f"`{row.digits.test}`: the chapter's own verdict.", ""]
    seen = set()
    for row in ROWS:
        for t in [t for t in marked if t.row == row.key]:
            if t.name in seen:
                continue
            seen.add(t.name)
            lines += [f"({anchor(t.name)})=", f"`{t.nodeid}` ({t.outcome}):", ""]
            for record in margins[t.nodeid]:
                values = ", ".join(_short(v) for v in record["values"])
                per_seed = f" (per seed: {values})" if len(record["values"]) > 1 else ""
                lines.append(
                    f"- {_escape(record['what'])}: {record['form']} {record['op']} {_short(record['threshold'])}; "
                    f"measured {_short(record['deciding'])}{per_seed}"
                )
            lines.append("")
    return "\n".join(_dedupe_anchors(lines)).rstrip() + "\n"


def _escape(text: str) -> str:
    """Record text as plain Markdown: no emphasis from ``*``, no HTML from ``<``."""
    return text.replace("*", "\\*").replace("<", "&lt;").replace("|", "\\|")


def _short(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.4g}"


def _dedupe_anchors(lines: list[str]) -> list[str]:
    """A digits test can back two rows: keep its first anchor and entry only."""
    out, seen, skip = [], set(), False
    for line in lines:
        if line.startswith("(t-") and line.endswith(")="):
            skip = line in seen
            seen.add(line)
        if skip and line == "":
            skip = False
            continue
        if not skip:
            out.append(line)
    return out


class ScorecardError(ValueError):
    """The markers, the stored margins and the rows disagree."""


def check(marked: list[Marked], margins: dict[str, list[dict]]) -> None:
    """Every marker names a known row, column and outcome; every marked test has passing records in the
    stored run, the first of them asserting in the marker's direction; every digits test exists."""
    rows = {row.key for row in ROWS}
    for t in marked:
        problems = []
        if t.row not in rows:
            problems.append(f"unknown row {t.row!r}")
        if t.column not in COLUMNS:
            problems.append(f"unknown column {t.column!r}")
        if t.outcome not in OUTCOMES:
            problems.append(f"unknown outcome {t.outcome!r}")
        if t.benchmark not in BENCHMARK_NAMES:
            problems.append(f"unknown benchmark {t.benchmark!r}")
        records = margins.get(t.nodeid)
        if not records:
            problems.append("no record in the stored margins run: rerun the claim tests with --margins")
        elif not all(r["passed"] for r in records):
            problems.append("failed in the stored margins run")
        else:
            negated = "[the claim is" in records[0]["what"]
            unsettled = "[not settled]" in records[0]["what"]
            if (t.outcome == "does not hold") != negated or (t.outcome == "not settled") != unsettled:
                problems.append(f"its first assertion ({records[0]['what']!r}) does not assert {t.outcome!r}")
        if problems:
            raise ScorecardError(f"{t.nodeid}: " + "; ".join(problems))
    for row in ROWS:
        if row.digits is not None:
            file, name = row.digits.test.split("::")
            if not (ROOT / file).exists() or name not in claim_tests(file):
                raise ScorecardError(f"row {row.key!r}: no claim test {row.digits.test}")
            if row.digits.outcome not in OUTCOMES:
                raise ScorecardError(f"row {row.key!r}: unknown outcome {row.digits.outcome!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if book/scorecard.md is out of date")
    args = parser.parse_args(argv)
    page = generate()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/make_scorecard.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
