"""scripts/profile_course.py and scripts/benchmark.py: how a sampled stack is categorized, how
samples and timings are added up and tabulated, how another commit is exported. No wall-clock
assertion: what is timed is never compared with a number."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import benchmark  # noqa: E402
import profile_course  # noqa: E402
from profile_course import Frame, Profile, categorize  # noqa: E402

pytestmark = pytest.mark.unit

NOTEBOOK = [Frame("/env/ipykernel/kernelapp.py", "start"), Frame("<ipython-input-3>", "<module>")]
BN = "/repo/bn_utils/"


@pytest.mark.parametrize(
    "stack, category",
    [
        (
            NOTEBOOK + [Frame("<frozen importlib._bootstrap>", "_find_and_load"), Frame("/env/torch/__init__.py", "x")],
            "import",
        ),
        (
            NOTEBOOK + [Frame(BN + "stacked.py", "train_stacked"), Frame("/env/torch/nn/functional.py", "linear")],
            "train: stacked MLPs",
        ),
        (
            NOTEBOOK + [Frame(BN + "stacked.py", "train_stacked"), Frame(BN + "stacked.py", "evaluate_stacked")],
            "evaluation",
        ),
        (NOTEBOOK + [Frame(BN + "training.py", "train"), Frame(BN + "training.py", "evaluate")], "evaluation"),
        (NOTEBOOK + [Frame(BN + "training.py", "train")], "train: training.train"),
        (NOTEBOOK + [Frame(BN + "stacked_conv.py", "train_stacked_convnets")], "train: stacked conv nets"),
        (NOTEBOOK + [Frame(BN + "experiments/layer_dynamics.py", "layer_dynamics")], "layer-dynamics measurements"),
        (
            NOTEBOOK + [Frame(BN + "explorers.py", "frame_explorer"), Frame("/env/matplotlib/figure.py", "savefig")],
            "explorer frames",
        ),
        (NOTEBOOK + [Frame(BN + "style.py", "publish"), Frame("/env/matplotlib/figure.py", "savefig")], "plotting"),
        (NOTEBOOK + [Frame(BN + "checks.py", "check_range")], "checks"),
        (NOTEBOOK + [Frame("/repo/tests/claim_checks.py", "every")], "checks"),
        ([Frame("/env/_pytest/main.py", "main"), Frame("/env/_pytest/python.py", "collect")], "test runner"),
        ([Frame("/env/_pytest/main.py", "main"), Frame("/repo/tests/test_claims_x.py", "test_a")], "other"),
        (NOTEBOOK + [Frame(BN + "data.py", "load_digits")], "other"),
    ],
)
def test_a_sampled_stack_goes_to_the_first_category_it_matches(stack, category):
    assert categorize(stack) == category


def test_every_category_has_a_column_and_other_catches_the_rest():
    assert profile_course.COLUMNS[:2] == ("start", "messaging")
    assert profile_course.CATEGORY_NAMES[-1] == "other" and categorize([]) == "other"


def test_the_sampler_gives_the_sampled_time_to_the_category_of_the_running_code():
    code = compile("import time\ndef check_range():\n    time.sleep(0.2)\n", "/repo/bn_utils/checks.py", "exec")
    scope: dict = {}
    exec(code, scope)
    sampler = profile_course.Sampler(interval=0.002).start()
    scope["check_range"]()
    seconds = sampler.stop()
    assert sampler.samples > 0 and "checks" in seconds and max(seconds, key=seconds.get) == "checks"
    with pytest.raises(RuntimeError, match="already been started"):
        sampler.start()
    with pytest.raises(ValueError, match="interval must be positive"):
        profile_course.Sampler(interval=0)


def test_the_profile_table_adds_up_rows_and_leaves_out_empty_columns():
    rows = [
        Profile("notebooks/a.ipynb", 10.0, {"start": 2.0, "import": 3.0, "other": 5.0}),
        Profile("tests/test_claims_b.py", 5.0, {"start": 1.0, "train: stacked MLPs": 4.0}, error="pytest exited 1: x"),
    ]
    text = profile_course.table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["what", "wall", "s", "start", "import", "train:", "stacked", "MLPs", "other"]
    assert lines[1].startswith("notebooks/a.ipynb") and "2.0 (20%)" in lines[1] and "5.0 (50%)" in lines[1]
    assert "[pytest exited 1: x]" in lines[2] and "4.0 (80%)" in lines[2]
    assert lines[3].startswith("total") and "15.0" in lines[3] and "3.0 (20%)" in lines[3]
    markdown = profile_course.table(rows, markdown=True).splitlines()
    assert markdown[0] == "| what | wall s | start | import | train: stacked MLPs | other |"
    assert markdown[1] == "|---|---|---|---|---|---|" and len(markdown) == 5
    with pytest.raises(ValueError, match="no profile"):
        profile_course.table([])


def test_the_sampler_counts_the_sampled_threads_cpu_seconds_not_its_waiting():
    code = "import time\ndef check_range():\n    time.sleep(0.15)\n    end = time.thread_time() + 0.15\n"
    code += "    while time.thread_time() < end:\n        pass\n"
    scope: dict = {}
    exec(compile(code, "/repo/bn_utils/checks.py", "exec"), scope)
    sampler = profile_course.Sampler(interval=0.002).start()
    scope["check_range"]()
    wall = sampler.stop()["checks"]
    cpu = sampler.cpu_seconds["checks"]
    assert wall >= 0.29 and 0.12 <= cpu <= 0.25, f"0.15 s asleep and 0.15 s busy: wall {wall:.3f}, cpu {cpu:.3f}"


def test_the_cpu_table_gives_each_category_its_share_of_the_cpu_seconds():
    rows = [Profile("notebooks/a.ipynb", 10.0, {"start": 2.0, "import": 3.0}, cpu={"import": 1.0, "other": 3.0})]
    lines = profile_course.table(rows, cpu=True).splitlines()
    assert lines[0].split() == ["what", "wall", "s", "cpu", "s", "import", "other"]
    assert lines[1].split() == ["notebooks/a.ipynb", "10.0", "4.0", "1.0", "(25%)", "3.0", "(75%)"]


def test_profile_targets_default_to_every_notebook_and_claim_module():
    targets = profile_course.default_targets()
    assert [t.suffix for t in targets].count(".ipynb") >= 8
    assert all(t.name.startswith("test_claims_") for t in targets if t.suffix == ".py")


def test_benchmark_parts_are_parsed_in_a_fixed_order():
    assert benchmark.parse_parts("unit, notebooks") == ("notebooks", "unit")
    assert benchmark.parse_parts("tests") == ("tests",)
    for bad in ("", "unit,slow"):
        with pytest.raises(ValueError, match="--only takes a comma-separated list of notebooks, unit, tests"):
            benchmark.parse_parts(bad)


def test_benchmark_measures_a_command_and_its_exit_status(tmp_path):
    timing = benchmark.measure([sys.executable, "-c", "sum(range(10**6))"], cwd=tmp_path, env={})
    assert timing.returncode == 0 and timing.wall > 0 and timing.cpu > 0
    assert benchmark.measure([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path, env={}).returncode == 3


def test_benchmark_table_puts_two_commits_side_by_side_with_their_ratio():
    Timing = benchmark.Timing
    columns = {
        "abc1234": {"notebooks/a.ipynb": Timing(10.0, 12.0), "pytest -m unit": Timing(20.0, 19.0, 1)},
        "main (def5678)": {"notebooks/a.ipynb": Timing(20.0, 25.0), "pytest -m unit": Timing(40.0, 39.0)},
    }
    lines = benchmark.comparison_table(columns).splitlines()
    assert lines[0].split() == ["what", "abc1234", "main", "(def5678)", "ratio"]
    assert "10.0 s (12.0 s CPU)" in lines[1] and "20.0 s (25.0 s CPU)" in lines[1] and lines[1].endswith("0.50x")
    assert "FAILED (1)" in lines[2] and lines[2].endswith("0.50x")
    one = benchmark.comparison_table({"abc1234": columns["abc1234"]}).splitlines()
    assert "ratio" not in one[0] and len(one) == 3


def test_benchmark_checks_out_a_commit_in_a_clone_without_a_worktree(tmp_path):
    repository = tmp_path / "repo"
    repository.mkdir()

    def git(*args):
        return subprocess.run(["git", *args], cwd=repository, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    (repository / "a.txt").write_text("first\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    first = git("rev-parse", "HEAD").strip()
    (repository / "a.txt").write_text("second\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "second")
    commit = benchmark.checkout_tree("HEAD~1", tmp_path / "out", repository=repository)
    assert commit == first and (tmp_path / "out" / "a.txt").read_text() == "first\n"
    out = subprocess.run(["git", "-C", str(tmp_path / "out"), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert out.stdout.strip() == first, "a repository of its own, at the commit"
    assert len(git("worktree", "list").splitlines()) == 1, "no worktree registered"
    with pytest.raises(ValueError, match="is not a commit"):
        benchmark.checkout_tree("no-such-ref", tmp_path / "other", repository=repository)


def test_the_claim_runner_hands_its_arguments_to_pytest_untouched(tmp_path, capsys):
    """profile_claims runs ``profile_course.py --inner-pytest OUT INTERVAL ARGS...``: ARGS go to pytest
    as they are (here ``--version``, so that no test runs), and the sampled seconds go to OUT."""
    out = tmp_path / "seconds.json"
    assert profile_course.main([profile_course.INNER, str(out), "0.01", "--version"]) == 0
    inner = json.loads(out.read_text())
    assert set(inner) == {"seconds", "cpu", "ran"} and inner["ran"] >= 0
