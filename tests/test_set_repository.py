"""scripts/set_repository.py: the install cell it writes into the notebooks, on copies in a temp dir."""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("set_repository", ROOT / "scripts" / "set_repository.py")
set_repository = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(set_repository)

URL = "https://github.com/someone/batch-normalization-measured"


def write_config(directory: Path, url: str, branch: str | None = "main") -> Path:
    config = directory / "_config.yml"
    lines = ["title: test", "repository:", f'  url: "{url}"']
    if branch is not None:
        lines.append(f"  branch: {branch}")
    config.write_text("\n".join(lines) + "\n")
    return config


def copy_notebooks(directory: Path) -> list[Path]:
    (directory / "notebooks").mkdir()
    return [Path(shutil.copy(nb, directory / "notebooks" / nb.name)) for nb in NOTEBOOKS]


def install_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.get("id") == set_repository.CELL_ID]


def test_reads_url_and_branch(tmp_path):
    assert set_repository.repository(write_config(tmp_path, URL + "/", "trunk")) == (URL, "trunk")
    assert set_repository.repository(write_config(tmp_path, URL, None)) == (URL, "main")


@pytest.mark.parametrize("url", ["", "   "])
def test_refuses_a_config_without_url(tmp_path, url, capsys):
    config = write_config(tmp_path, url)
    with pytest.raises(set_repository.NoRepository, match="repository.url"):
        set_repository.repository(config)
    copy_notebooks(tmp_path)
    assert set_repository.main(["--config", str(config)]) == 2
    assert "Publish your own copy" in capsys.readouterr().err
    for nb in (tmp_path / "notebooks").glob("*.ipynb"):  # nothing written
        assert nb.read_bytes() == (ROOT / "notebooks" / nb.name).read_bytes()


def test_refuses_a_url_that_would_break_the_pip_line(tmp_path):
    with pytest.raises(ValueError, match="not a plain repository URL"):
        set_repository.repository(write_config(tmp_path, "https://example.org/a b"))


def test_writes_the_install_cell_first_among_the_code_cells_and_touches_nothing_else(tmp_path):
    config = write_config(tmp_path, URL)
    copies = copy_notebooks(tmp_path)
    assert set_repository.main(["--config", str(config)]) == 0
    for copy in copies:
        original = nbformat.read(ROOT / "notebooks" / copy.name, as_version=4)
        nb = nbformat.read(copy, as_version=4)
        nbformat.validate(nb)
        [i] = install_cells(nb)
        first_code = next(j for j, c in enumerate(nb.cells) if c.cell_type == "code")
        assert i == first_code, copy.name
        cell = nb.cells[i]
        assert "remove-cell" in cell.metadata["tags"]
        assert cell.outputs == [] and cell.execution_count is None
        assert f'%pip install --quiet "bn_utils[hosted] @ git+{URL}@main"' in cell.source
        assert "except ImportError" in cell.source
        del nb.cells[i]
        assert nb == original, f"{copy.name}: a cell other than the install cell changed"


def test_is_idempotent_and_updates_the_cell_in_place(tmp_path):
    copies = copy_notebooks(tmp_path)
    set_repository.main(["--config", str(write_config(tmp_path, URL))])
    written = {c: c.read_bytes() for c in copies}
    assert set_repository.main(["--config", str(write_config(tmp_path, URL))]) == 0
    assert {c: c.read_bytes() for c in copies} == written, "a second run changed a notebook"

    other = "https://gitlab.com/another/fork"
    assert set_repository.update_notebook(copies[0], other, "dev") is True
    nb = nbformat.read(copies[0], as_version=4)
    [i] = install_cells(nb)
    assert f"git+{other}@dev" in nb.cells[i].source and URL not in nb.cells[i].source


def test_keeps_the_cells_own_tags_when_updating(tmp_path):
    [copy, *_] = copy_notebooks(tmp_path)
    set_repository.update_notebook(copy, URL, "main")
    nb = nbformat.read(copy, as_version=4)
    [i] = install_cells(nb)
    nb.cells[i].metadata["tags"].append("nbval-skip")
    nbformat.write(nb, copy)
    set_repository.update_notebook(copy, URL, "dev")
    nb = nbformat.read(copy, as_version=4)
    [i] = install_cells(nb)
    assert nb.cells[i].metadata["tags"] == ["nbval-skip", "remove-cell"]


@pytest.mark.install  # starts a kernel: not a unit test (pytest -m install; the README's test command runs it)
def test_the_cell_prints_nothing_where_bn_utils_is_installed(tmp_path):
    """What nbval compares: the install cell, run in a kernel that has bn_utils, has no output."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [set_repository.install_cell(URL, "main")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs == []


def pip_arguments(source: str) -> list[str]:
    """The arguments of the cell's `%pip install` line."""
    [line] = [line.strip() for line in source.splitlines() if line.strip().startswith("%pip ")]
    words = shlex.split(line)
    assert words[:2] == ["%pip", "install"]
    return words[2:]


def run(args: list[str], cwd: Path, clean: bool = True) -> subprocess.CompletedProcess:
    """Run a command. ``clean``: with no PYTHONPATH or user site, so that only what the environment holds
    is importable; otherwise with this process's environment (git then sees its global configuration)."""
    if clean:
        path = f"{Path(shutil.which('git') or '/usr/bin/git').parent}:/usr/bin:/bin"
        env = {"PATH": path, "HOME": str(cwd), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    else:
        env = dict(os.environ)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.install  # clones the repository and pip-installs it (~13 s of CPU): not a unit test
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_cells_pip_command_installs_bn_utils_from_a_git_repository(tmp_path):
    """Offline: a bare clone of this repository's HEAD, and a fresh environment that has every
    dependency (this environment's site-packages) but not bn_utils; the cell's pip command installs it."""
    git = shutil.which("git")
    bare = tmp_path / "course.git"
    # safe.directory: a CI container's user may not own the checkout; we only read our own repository
    git = [git, "-c", "safe.directory=*"]
    head = run([*git, "-C", str(ROOT), "rev-parse", "HEAD"], tmp_path, clean=False)
    assert head.returncode == 0, head.stderr
    clone = run([*git, "clone", "--quiet", "--bare", str(ROOT), str(bare)], tmp_path, clean=False)
    assert clone.returncode == 0, clone.stderr
    ref = [*git, "--git-dir", str(bare), "update-ref", "refs/heads/main", head.stdout.strip()]
    assert run(ref, tmp_path, clean=False).returncode == 0

    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = env_dir / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    venv_site = Path(run([str(python), "-c", purelib], tmp_path).stdout.strip())
    # Our site-packages as a plain path: its own .pth files (the editable bn_utils) are not processed.
    (venv_site / "course_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "work"  # not the repository root, where ./bn_utils would be importable
    work.mkdir()

    before = run([str(python), "-c", "import bn_utils"], work)
    assert before.returncode != 0 and "No module named 'bn_utils'" in before.stderr
    assert run([str(python), "-c", "import torch, myst_nb, setuptools"], work).returncode == 0

    source = set_repository.install_source(f"file://{bare}", "main")
    # --no-index and --no-build-isolation: everything it needs is already here, nothing is downloaded
    offline = ["--no-index", "--no-build-isolation"]
    install = run([str(python), "-m", "pip", "install", *offline, *pip_arguments(source)], work)
    assert install.returncode == 0, install.stdout + install.stderr

    after = run([str(python), "-c", "import bn_utils; print(bn_utils.__file__)"], work)
    assert after.returncode == 0, after.stderr
    assert Path(after.stdout.strip()).is_relative_to(venv_site), after.stdout
