"""A class on a JupyterHub, driven end to end on the loopback interface: one instructor and three students.

The hub: JupyterHub with its DummyAuthenticator (the four users allowed, any password), the
SimpleLocalProcessSpawner (each user's server a local process with its own home directory under a temporary
folder, no system users needed), its proxy configurable-http-proxy (from npm: ``npm ci --prefix class``), and
nbgrader's exchange in a temporary folder. The instructor's server runs nbgrader's formgrader on a course
directory made by scripts/make_assignments.py; the students' servers run nbgrader's assignment list. The
test does through their HTTP APIs what the people would do in JupyterLab:

instructor: generate and release ``bn_from_scratch_quiz``; students: list and fetch it, write their answers
(correct, a named mistake, untouched), save and submit; instructor: collect, autograde each, generate and
release feedback; students: fetch their feedback. It checks the scores the formgrader reports and the
named mistake in the feedback the student fetched.

Marker ``hub`` (``pytest -m hub``). Without configurable-http-proxy or Node.js the test is skipped and says
what to install; with BN_REQUIRE_HUB=1 (set by .ci/run) it fails instead. A hub that has what it needs
but does not start fails, with its log."""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from course_scripts import LazyScript

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASSIGNMENT = "bn_from_scratch_quiz"
NOTEBOOK = "01_bn_from_scratch.ipynb"
STUDENTS = {"student1": "correct", "student2": "mistake", "student3": "untouched"}
INSTRUCTOR = "instructor"
COURSE_ID = "bn-measured"

pytestmark = pytest.mark.hub


ma = LazyScript("make_assignments")  # nbgrader loaded at the first use, not at collection


def find_proxy() -> str | None:
    """configurable-http-proxy: class/node_modules (``npm ci --prefix class``), else on PATH."""
    local = ROOT / "class" / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.is_file() else shutil.which("configurable-http-proxy")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what: str, ready, timeout: float, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"{what}: not ready after {timeout:.0f} s\n{tail}")


HUB_CONFIG = """
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = {cookie_secret!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = ["--allow-root"]  # CI runs as root; a hub's real users are not
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # start the four servers side by side
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.environment = {{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
c.JupyterHub.services = [{{"name": "class-driver", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": "class-driver",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
        "services": ["class-driver"],
    }}
]
"""

INSTRUCTOR_CONFIG = """c = get_config()  # noqa: F821
load_subconfig({course_config!r})  # noqa: F821  (the course directory's own: course id, root, stubs)
c.Exchange.root = {exchange!r}
"""

# On this hub every user's server is the same operating-system user, so nbgrader is told who the student
# is (on a hub with one system user per person, or DockerSpawner's jovyan, it finds out by itself).
STUDENT_CONFIG = """c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.student_id = {student!r}
c.Exchange.root = {exchange!r}
"""


class Hub:
    """A running JupyterHub and an HTTP client for it and its users' servers."""

    def __init__(self, folder: Path, proxy: str):
        import requests

        self.folder, self.session = folder, requests.Session()
        self.session.trust_env = False  # loopback only: never an HTTP proxy from the environment
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.homes = folder / "home"
        self.exchange = folder / "exchange"
        self.user_tokens: dict[str, str] = {}
        self.log = folder / "jupyterhub.log"
        config = folder / "jupyterhub_config.py"
        config.write_text(
            HUB_CONFIG.format(
                port=self.port,
                hub_port=_free_port(),
                proxy_api_port=_free_port(),
                proxy=proxy,
                pid_file=str(folder / "proxy.pid"),
                db=folder / "jupyterhub.sqlite",
                cookie_secret=str(folder / "cookie_secret"),
                users={INSTRUCTOR, *STUDENTS},
                homes=str(self.homes),
                singleuser=str(BIN / "jupyterhub-singleuser"),
                token=self.token,
            )
        )
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(BIN), str(Path(proxy).parent), env.get("PATH", "")])
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
        self.process = subprocess.Popen(
            [str(BIN / "jupyterhub"), "-f", str(config)],
            cwd=folder,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def api(self, method: str, path: str, **kwargs):
        response = self.session.request(
            method, f"{self.url}/hub/api{path}", headers={"Authorization": f"token {self.token}"}, timeout=60, **kwargs
        )
        assert response.status_code < 400, f"{method} /hub/api{path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"JupyterHub exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
        try:
            return self.session.get(f"{self.url}/hub/api/", timeout=2).status_code == 200
        except OSError:
            return False

    def start_server(self, user: str) -> None:
        self.api("POST", f"/users/{user}/server")

    def server_ready(self, user: str) -> bool:
        return bool(self.api("GET", f"/users/{user}").get("servers", {}).get("", {}).get("ready"))

    def user(self, user: str, method: str, path: str, timeout: float = 120, **kwargs):
        """A request to the user's own server, through the proxy, with a token of that user."""
        if user not in self.user_tokens:
            self.user_tokens[user] = self.api("POST", f"/users/{user}/tokens", json={"note": "class test"})["token"]
        response = self.session.request(
            method,
            f"{self.url}/user/{user}/{path}",
            headers={"Authorization": f"token {self.user_tokens[user]}"},
            timeout=timeout,
            **kwargs,
        )
        assert response.status_code < 400, f"{user}: {method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.process.poll() is None:
            for name in (INSTRUCTOR, *STUDENTS):
                try:
                    self.session.delete(
                        f"{self.url}/hub/api/users/{name}/server",
                        headers={"Authorization": f"token {self.token}"},
                        timeout=30,
                    )
                except OSError:
                    pass
            os.killpg(self.process.pid, signal.SIGTERM)  # the hub stops its proxy (and any server left)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    proxy = find_proxy()
    missing = []
    if proxy is None:
        missing.append("configurable-http-proxy (the hub's proxy, from npm: `npm ci --prefix class`)")
    if shutil.which("node") is None:
        missing.append("Node.js (`node`, which runs configurable-http-proxy)")
    if missing:
        reason = "the JupyterHub class test needs " + " and ".join(missing)
        if os.environ.get("BN_REQUIRE_HUB") == "1":
            pytest.fail(reason + "; BN_REQUIRE_HUB=1 forbids skipping it")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("hub")
    course = folder / "home" / INSTRUCTOR / "course"
    assert ma.main(["--course", str(course), "--assignment", ASSIGNMENT]) == 0
    (course.parent / ".jupyter").mkdir(parents=True)
    (course.parent / ".jupyter" / "nbgrader_config.py").write_text(
        INSTRUCTOR_CONFIG.format(course_config=str(course / "nbgrader_config.py"), exchange=str(folder / "exchange"))
    )
    for student in STUDENTS:
        config = folder / "home" / student / ".jupyter" / "nbgrader_config.py"
        config.parent.mkdir(parents=True)
        config.write_text(
            STUDENT_CONFIG.format(course_id=COURSE_ID, student=student, exchange=str(folder / "exchange"))
        )
    started = time.monotonic()
    hub = Hub(folder, proxy)
    try:
        _wait("JupyterHub", hub.alive, 90, hub.log)
        for name in (INSTRUCTOR, *STUDENTS):
            hub.start_server(name)
        for name in (INSTRUCTOR, *STUDENTS):
            _wait(f"{name}'s server", lambda name=name: hub.server_ready(name), 180, hub.log)
        hub.startup_seconds = time.monotonic() - started
        yield hub
    finally:
        hub.stop()


def _formgrader(hub: Hub, method: str, path: str, timeout: float = 300):
    result = hub.user(INSTRUCTOR, method, f"formgrader/api/{path}", timeout=timeout)
    if isinstance(result, dict) and "success" in result:
        assert result["success"], f"formgrader {path}: {result.get('error') or result.get('log')}"
    return result


def _assignments(hub: Hub, student: str) -> dict[str, dict]:
    listing = hub.user(student, "GET", f"assignments?course_id={COURSE_ID}")
    assert listing["success"], listing
    return {(a["assignment_id"], a["status"]): a for a in listing["value"]}


def test_a_class_on_a_jupyterhub(hub):
    import requests

    timings = {"servers up": hub.startup_seconds}
    clock = time.monotonic()

    # The DummyAuthenticator lets the class log in (any password) and no one else.
    login = requests.Session()
    login.trust_env = False
    form = login.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = login.cookies.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', form.text).group(1)
    ok = login.post(
        f"{hub.url}/hub/login",
        data={"username": "student1", "password": "anything", "_xsrf": xsrf},
        allow_redirects=False,
        timeout=30,
    )
    assert ok.status_code == 302, ok.text[:500]
    refused = requests.Session()
    refused.trust_env = False
    refused.get(f"{hub.url}/hub/login", timeout=30)
    outsider = refused.post(
        f"{hub.url}/hub/login",
        data={"username": "outsider", "password": "anything", "_xsrf": refused.cookies.get("_xsrf", "")},
        allow_redirects=False,
        timeout=30,
    )
    assert outsider.status_code == 403

    # instructor: generate the release and release it to the exchange
    _formgrader(hub, "POST", f"assignment/{ASSIGNMENT}/assign")
    _formgrader(hub, "POST", f"assignment/{ASSIGNMENT}/release")
    assert (hub.exchange / COURSE_ID / "outbound" / ASSIGNMENT / NOTEBOOK).is_file()

    # students: list, fetch, answer, save, submit
    course = hub.homes / INSTRUCTOR / "course"
    source = nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    for student, kind in STUDENTS.items():
        assert (ASSIGNMENT, "released") in _assignments(hub, student)
        hub.user(student, "POST", "assignments/fetch", json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT})
        model = hub.user(student, "GET", f"api/contents/{ASSIGNMENT}/{NOTEBOOK}?content=1")
        released = nbformat.from_dict(model["content"])
        assert "BEGIN SOLUTION" not in json.dumps(model["content"]), "the students get the release"
        answered, _ = ma.answered_notebook(released, source, kind)
        hub.user(
            student,
            "PUT",
            f"api/contents/{ASSIGNMENT}/{NOTEBOOK}",
            json={"type": "notebook", "format": "json", "content": answered},
        )
        hub.user(student, "POST", "assignments/submit", json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT})
        assert (ASSIGNMENT, "submitted") in _assignments(hub, student)
    timings["release, fetch, answer, submit"] = time.monotonic() - clock
    clock = time.monotonic()

    # instructor: collect, autograde each submission, generate and release the feedback
    _formgrader(hub, "POST", f"assignment/{ASSIGNMENT}/collect")
    for student in STUDENTS:
        _formgrader(hub, "POST", f"submission/{ASSIGNMENT}/{student}/autograde")
    timings["collect, autograde"] = time.monotonic() - clock
    clock = time.monotonic()
    _formgrader(hub, "POST", f"assignment/{ASSIGNMENT}/generate_feedback")
    _formgrader(hub, "POST", f"assignment/{ASSIGNMENT}/release_feedback")
    submissions = _formgrader(hub, "GET", f"submissions/{ASSIGNMENT}")
    scores = {s["student"]: (s["score"], s["max_score"]) for s in submissions}
    assert scores == {"student1": (4.0, 4.0), "student2": (3.0, 4.0), "student3": (0.0, 4.0)}, submissions

    # students: fetch their feedback
    _, mistakes = ma.KNOWN_MISTAKES["check_forward"]
    expected = ma.checker_message("check_forward", ma.function_from_source(mistakes[0][1]))
    for student, kind in STUDENTS.items():
        hub.user(
            student, "POST", "assignments/fetch_feedback", json={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}
        )
        (page,) = (hub.homes / student / ASSIGNMENT / "feedback").glob(f"*/{NOTEBOOK.replace('.ipynb', '.html')}")
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
        assert f"Score: {scores[student][0]} / 4.0" in text
        assert (expected in text) == (kind == "mistake"), f"{student}'s feedback and the named mistake"
    timings["feedback"] = time.monotonic() - clock
    print("hub test timings (wall, s):", {k: round(v, 1) for k, v in timings.items()})
