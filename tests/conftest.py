"""Shared fixtures: build job folders of real notebooks, and a state home per test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.webhooks import hooks  # noqa: F401 - the webhook receiver fixture, for every test module

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "example_notebooks"
#: the tasks of example_notebooks/green_energy in its DAG's order (bronze: a for-each task over 6 country files;
#: check_silver: a condition task; the gold tasks: the task group "gold")
GREEN_ENERGY_TASKS = [
    "list_files",
    "bronze",
    "silver",
    "check_silver",
    "gold_country_totals",
    "gold_source_shares",
    "report",
]


def process_gone(pid: int) -> bool:
    """The process ``pid`` has ended (exited, or a zombie not reaped yet). Safe against the process ending
    between two checks (``pid_exists`` then ``Process(pid)`` raced under load in CI)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def write_notebook(
    path: Path,
    *cells: str,
    parameters: str | None = None,
    orchestrate: dict[str, Any] | None = None,
    kernel: str = "python3",
) -> Path:
    """Write a notebook: an optional ``parameters``-tagged cell, then one code cell per string.

    A string starting with ``# md`` becomes a markdown cell. ``orchestrate`` goes to ``metadata.orchestrate``
    (pass None for a notebook that is not a task).
    """
    nb_cells = []
    if parameters is not None:
        nb_cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    for source in cells:
        nb_cells.append(new_markdown_cell(source[4:]) if source.startswith("# md") else new_code_cell(source))
    nb = new_notebook(cells=nb_cells)
    nb.metadata.kernelspec = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.metadata.language_info = {"name": "python"}
    if orchestrate is not None:
        nb.metadata.orchestrate = orchestrate
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def cli(
    home: Path, *args: str, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``jupyter orchestrate --home HOME ARGS...`` in a process of its own (``python -m``), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.fixture
def make_notebook(tmp_path: Path) -> Callable[..., Path]:
    """``make_notebook("job/a.ipynb", "print(1)", parameters="x = 1", orchestrate={...})`` under tmp_path."""

    def make(relative: str, *cells: str, **kwargs: Any) -> Path:
        return write_notebook(tmp_path / relative, *cells, **kwargs)

    return make


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh state home."""
    return tmp_path / "state"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No kept kernel outlives the suite: every keeper process of a test's state home (under pytest's base
    temporary folder) must be gone by now; any left is killed with its kernel and fails the session."""
    import psutil

    try:
        base = str(session.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return
    left = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "jupyter_orchestrate.executors.keeper" in cmdline and any(base in part for part in cmdline):
            from jupyter_orchestrate.executors import keeper

            keeper.reap(cmdline[-1])
            process.kill()
            left.append(cmdline[-1])
    if left:
        session.config._orchestrate_kept_left = left  # type: ignore[attr-defined]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly when the browser tests did not run (a skip's reason is otherwise shown only with ``-rs``);
    in CI they fail instead of skipping (tests/browser/test_sidebar.py). Also name kept kernels the suite left."""
    for control in getattr(terminalreporter.config, "_orchestrate_kept_left", []):
        terminalreporter.write_line(
            f"KEPT KERNEL LEFT ALIVE BY THE SUITE (killed): {control}", red=True, bold=True
        )
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "tests/browser" in str(getattr(r, "nodeid", ""))
        or "tests/browser" in str(getattr(r, "location", ("",))[0])
    ]
    if skipped:
        reason = (
            skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else str(skipped[0].longrepr)
        )
        terminalreporter.write_sep("!", "THE SIDEBAR'S BROWSER TESTS DID NOT RUN", red=True, bold=True)
        terminalreporter.write_line(f"{len(skipped)} browser test(s) skipped: {reason}", red=True)
