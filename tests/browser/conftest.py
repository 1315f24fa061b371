"""Fixtures of the browser tests: a real ``jupyter lab`` over a copy of ``example_notebooks/`` and a Chromium page.

The browser is Debian's ``/usr/bin/chromium`` driven by Python Playwright (``playwright install`` cannot download
browsers on these machines; ``.ci/run`` installs the package). Nothing here imports Playwright at module level,
so collecting the rest of the test suite never depends on it.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_notebooks"
DOCS_IMAGES = REPO / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


@dataclass
class LabServer:
    """A running ``jupyter lab``: its root folder, URL, token and log."""

    root: Path
    port: int
    token: str
    process: subprocess.Popen
    log_path: Path
    runtime_dir: Path
    descendants: list[psutil.Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str) -> object:
        request = urllib.request.Request(
            f"{self.url}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(
                self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return "(no server log)"

    def remember_descendants(self) -> None:
        """Record the server's child processes (kernels, the executor's forkserver and workers) seen so far."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return
        known = {(p.pid, p.create_time()) for p in self.descendants}
        for child in children:
            try:
                if (child.pid, child.create_time()) not in known:
                    self.descendants.append(child)
            except psutil.Error:
                pass


def _leftover_processes(server: LabServer) -> list[psutil.Process]:
    """Processes of this server still alive: recorded descendants and anything using its runtime dir (kernels)."""
    alive = [p for p in server.descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    marker = str(server.runtime_dir)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if marker in cmdline and proc.pid != os.getpid() and all(proc.pid != p.pid for p in alive):
            alive.append(proc)
    return alive


def _stop(server: LabServer) -> list[str]:
    """Terminate the server (SIGTERM, then SIGKILL) and reap every process it left; returns what had to be killed."""
    server.remember_descendants()
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # kernels and workers get a moment to exit after their parent
    deadline = time.monotonic() + 10
    leftovers = _leftover_processes(server)
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.2)
        leftovers = _leftover_processes(server)
    killed = []
    for proc in leftovers:
        try:
            killed.append(f"{proc.pid} {' '.join(proc.cmdline())[:200]}")
            proc.kill()
        except psutil.Error:
            pass
    return killed


#: Launches of ``jupyter lab`` tried when another process takes the free port first.
PORT_TRIES = 3


def _wait_ready(server: LabServer, *, may_retry: bool) -> bool:
    """Poll ``api/status`` until the server answers (True). False when the port was taken by another process
    between :func:`_free_port` and the server's bind (a busy machine's kernels pick free ports too: the probe
    then reads a ZeroMQ greeting, or the server exits with "already in use") and ``may_retry``; otherwise a
    failure of the test naming what happened."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    process = server.process
    while True:
        if process.poll() is not None:
            if may_retry and "already in use" in server.log_tail():
                return False
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}", pytrace=False)
        try:
            server.api("api/status")
            return True
        except http.client.HTTPException as exc:  # not an HTTP server on our port
            if may_retry:
                return False
            pytest.fail(f"port {server.port} answers, but not as HTTP ({exc!r})", pytrace=False)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter lab did not answer /api/status within {SERVER_START_TIMEOUT:.0f} s:\n"
                    f"{server.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.25)


@contextmanager
def launch_lab(base: Path, root: Path) -> Iterator[LabServer]:
    """``jupyter lab`` (with ``--expose-app-in-browser``) over ``root``, until the block ends; then stopped, and
    any process it left is killed and fails the test.

    Settings, workspaces and runtime files live in ``base`` too, so neither the user's JupyterLab state nor an
    earlier run leaks in, and JupyterLab's news/update notifications are turned off.
    """
    settings = base / "lab-settings"
    _write_json(
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    runtime_dir = base / "runtime"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("JUPYTER_ORCHESTRATE_HOME", None)  # state goes to <root>/orchestrate_runs
    token = secrets.token_hex(16)
    log_path = base / "jupyter-lab.log"
    for tries_left in reversed(range(PORT_TRIES)):
        port = _free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyterlab",
                    "--no-browser",
                    f"--port={port}",
                    "--ServerApp.ip=127.0.0.1",
                    f"--IdentityProvider.token={token}",
                    f"--ServerApp.root_dir={root}",
                    "--allow-root",
                    "--expose-app-in-browser",
                    "--ServerApp.port_retries=0",
                    "--LabApp.news_url=None",
                ],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LabServer(
            root=root, port=port, token=token, process=process, log_path=log_path, runtime_dir=runtime_dir
        )
        try:
            if _wait_ready(server, may_retry=tries_left > 0):
                break
        except BaseException:
            _stop(server)
            raise
        _stop(server)  # the port was taken before the server bound it: again on another
    try:
        yield server
    finally:
        killed = _stop(server)
        if killed:
            pytest.fail(
                "processes survived the jupyter lab shutdown (killed now):\n" + "\n".join(killed),
                pytrace=False,
            )


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` (:func:`launch_lab`) over a fresh copy of ``example_notebooks/``."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    shutil.copytree(
        EXAMPLES,
        root / "example_notebooks",
        ignore=shutil.ignore_patterns(
            "output", ".ipynb_checkpoints", "__pycache__", ".orchestrate", "orchestrate_runs"
        ),
    )
    with launch_lab(base, root) as server:
        yield server


# pytest-jupyter (enabled in the top-level conftest for tests/server) adds autouse fixtures that take the
# thread's asyncio loop and close it after each test. Here that loop belongs to Playwright's sync API, and the
# server is a subprocess, so they are replaced by no-ops for the browser tests.
@pytest.fixture
def jp_asyncio_loop():
    yield None


@pytest.fixture
def jp_server_cleanup():
    yield


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def lab_page(browser, lab_server: LabServer, request: pytest.FixtureRequest, tmp_path: Path):
    """A page showing JupyterLab (``/lab?token=...``), once the app has started; on failure, saves
    ``failure-state.png`` in tmp_path and prints the browser console errors and the server log."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on(
        "console",
        lambda m: console.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.goto(f"{lab_server.url}/lab?token={lab_server.token}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.started !== undefined", timeout=60_000
    )
    page.evaluate("() => window.jupyterapp.started")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            try:
                page.screenshot(path=str(tmp_path / "failure-state.png"))
            except Exception:
                pass
            print(f"---- page state: {tmp_path / 'failure-state.png'}")
            print("---- browser console ----\n" + "\n".join(console[-50:]))
            print("---- jupyter lab log ----\n" + lab_server.log_tail(120))
        context.close()


@pytest.fixture
def screenshots(tmp_path: Path):
    """``save(page_or_locator, "run-view.png")``: writes to tmp_path, and to docs/images/ when UPDATE_SCREENSHOTS=1."""
    update = os.environ.get("UPDATE_SCREENSHOTS") == "1"
    saved: list[Path] = []

    def save(target, name: str) -> Path:
        path = tmp_path / name
        target.screenshot(path=str(path))
        saved.append(path)
        if update:
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / name)
        return path

    save.saved = saved  # type: ignore[attr-defined]
    yield save
    if saved:
        print(
            "screenshots: "
            + ", ".join(str(p) for p in saved)
            + (" (copied to docs/images/)" if update else "")
        )
