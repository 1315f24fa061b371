"""Kernels launched ahead of need by the orchestrator (executors/kernel_pool.py), with real kernels.

An attempt always gets a fresh kernel (never one another attempt used); the pool is bounded and idle kernels
expire; a launched kernel that dies before it is ready is replaced by one the worker starts; no pooled kernel
outlives the pool; and the orchestrator's own process never imports the execution stack (papermill), which
the forkserver has loaded for the workers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_orchestrate.executors.kernel_pool import KernelKey, KernelPool, PooledKernel, _launch
from jupyter_orchestrate.executors.local import LocalExecutor
from jupyter_orchestrate.models import RunStatus, TaskRunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import REPO, write_notebook

pytestmark = pytest.mark.kernel

PID_CELL = "import os, pathlib\npathlib.Path(f'pid-{os.getpid()}.txt').write_text(os.getcwd())"


def wait_until(condition, seconds: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def python_script(script: str, timeout: float) -> tuple[str, Any]:
    """Run ``script`` in a fresh interpreter from the repository; returns (its stdout, its last line as JSON).
    Fails the test (with the script's stderr) if it exits non-zero."""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(done.stdout.strip().splitlines()[-1])


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_job(home: Path, job: Path, executor: LocalExecutor | None = None) -> object:
    service = OrchestrateService(home)
    runner = service.new_run(job, max_parallel=2, executor=executor)
    try:
        runner.execute()
    finally:
        runner.executor.close()
    return service.get_run(runner.run_id)


def test_every_attempt_gets_a_fresh_kernel_in_its_folder_and_none_outlives_the_run(
    tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "job"
    for key in ("a", "b", "c"):
        write_notebook(job / "sub" / f"{key}.ipynb", PID_CELL, orchestrate={"task_key": key})
    write_notebook(job / "d.ipynb", PID_CELL, orchestrate={"task_key": "d", "depends_on": ["a", "b", "c"]})

    run = run_job(home, job)

    assert run.status == RunStatus.succeeded  # type: ignore[attr-defined]
    files = sorted((job / "sub").glob("pid-*.txt")) + sorted(job.glob("pid-*.txt"))
    pids = {int(f.stem.split("-")[1]) for f in files}
    assert len(files) == 4 and len(pids) == 4, "two attempts shared a kernel"
    # each kernel ran in its notebook's folder, as one the worker launched itself would
    assert {f.read_text() for f in files} == {str(job / "sub"), str(job)}
    with sqlite3.connect(home / "orchestrate.db") as db:
        recorded = {pid for (pid,) in db.execute("select kernel_pid from attempts")}
    assert recorded == pids, "the run recorded other kernels than the ones that executed"
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10), "a pooled kernel outlived the run"


def test_warm_pool_is_bounded_hands_each_kernel_out_once_and_expires_idle_ones(tmp_path: Path) -> None:
    launched: list[PooledKernel] = []

    def counting_launch(key: KernelKey, extra_env: Mapping[str, str] | None) -> PooledKernel:
        kernel = _launch(key, extra_env)
        launched.append(kernel)
        return kernel

    key = KernelKey.of("python3", str(tmp_path), dict(os.environ))
    other = KernelKey.of("python3", str(tmp_path), {**os.environ, "X": "1"})
    pool = KernelPool(max_idle=2, idle_seconds=3600, launcher=counting_launch)
    try:
        pool.warm(key, 2)
        pool.warm(key, 2)  # already warming: no more launches
        assert wait_until(lambda: pool.idle_count == 2)
        assert len(launched) == 2
        first = pool.take(key)
        second = pool.take(key)
        assert first is not None and second is not None and first.pid != second.pid
        assert pool.take(key) is None, "an idle kernel was handed out twice"
        assert pool.take(other) is None, "a kernel of other settings fits nobody else"
        pool.end(first)
        pool.end(second)
        assert wait_until(lambda: not alive(first.pid) and not alive(second.pid), 10)

        pool.warm(key, 2)
        assert wait_until(lambda: pool.idle_count == 2)
        pool.warm(other, 1)  # over the bound: the oldest idle kernel is shut down
        assert wait_until(lambda: len(launched) == 5 and pool.idle_count == 2)
        warmed = launched[2:4]
        assert wait_until(lambda: sum(alive(k.pid) for k in warmed) == 1, 10), "the bound was not kept"
        assert pool.take(other) is not None

        pool.idle_seconds = 0.2
        time.sleep(0.3)
        pool.expire()
        assert pool.idle_count == 0
        assert wait_until(lambda: not any(alive(k.pid) for k in warmed), 10), "an expired kernel still runs"
    finally:
        pool.close()
    assert not [k.pid for k in launched if alive(k.pid)], "close() left kernels running"


def test_a_launched_kernel_that_dies_before_it_is_ready_is_replaced_by_the_worker(
    tmp_path: Path, home: Path
) -> None:
    dead: list[int] = []

    def dying_launch(key: KernelKey, extra_env: Mapping[str, str] | None) -> PooledKernel:
        kernel = _launch(key, extra_env)
        os.killpg(kernel.pid, 9)  # as a port race kills a kernel at start
        dead.append(kernel.pid)
        return kernel

    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", PID_CELL, orchestrate={"task_key": "a"})

    run = run_job(home, job, LocalExecutor(KernelPool(max_idle=0, launcher=dying_launch)))

    assert run.status == RunStatus.succeeded  # type: ignore[attr-defined]
    (task_run,) = run.task_runs  # type: ignore[attr-defined]
    assert task_run.status == TaskRunStatus.succeeded
    (pid_file,) = job.glob("pid-*.txt")
    assert int(pid_file.stem.split("-")[1]) not in dead
    log = Path(task_run.last_attempt.log_path).read_text()
    assert "launched ahead did not become ready" in log


def test_the_orchestrators_process_never_imports_papermill(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", "print('hi')", orchestrate={"task_key": "a"})
    script = f"""
import json, sys
from jupyter_orchestrate.service import OrchestrateService
service = OrchestrateService({str(home)!r})
runner = service.new_run({str(job)!r})
status = runner.execute()
runner.executor.close()
print(json.dumps([status.value, sorted(m for m in ("papermill", "nbclient", "nbformat") if m in sys.modules)]))
"""
    _, (status, imported) = python_script(script, timeout=300)
    assert status == "succeeded"
    assert imported == [], f"the orchestrator imported {imported} (the forkserver's workers do)"


def test_the_command_starts_its_forkserver_before_the_cli_is_imported() -> None:
    """``jupyter orchestrate`` enters through the standard-library-only ``startup`` module, so the forkserver's
    imports overlap the CLI's (click, rich, pydantic) instead of following them."""
    script = """
import json, sys
from unittest import mock
import jupyter_orchestrate.executors.forkserver as forkserver
import jupyter_orchestrate.startup as startup
seen = []
def start():
    seen.append(sorted(m for m in ("click", "rich", "pydantic", "jupyter_orchestrate.cli") if m in sys.modules))
sys.argv = ["jupyter-orchestrate", "run", "--help"]
with mock.patch.object(forkserver, "start_in_background", start):
    try:
        startup.entry()
    except SystemExit:
        pass
print(json.dumps(seen))
"""
    stdout, seen = python_script(script, timeout=120)
    assert "Usage:" in stdout  # the CLI ran after the forkserver was started
    assert seen == [[]]


def test_papermill_imports_without_the_remote_clients_the_worker_skips() -> None:
    """The worker's process skips papermill's optional s3/azure/gcs/hdfs/github clients
    (``startup.UNUSED_OPTIONAL_IMPORTS``); papermill must still import, with a clear error for such paths."""
    script = """
import json, sys
from jupyter_orchestrate.startup import skip_unused_imports
skip_unused_imports()
import papermill, papermill.iorw
error = "no error"
try:
    papermill.iorw.papermill_io.read("s3://bucket/in.ipynb")
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
print(json.dumps([m for m in ("boto3", "pyarrow", "gcsfs") if sys.modules.get(m) is not None] + [error]))
"""
    _, (*imported, error) = python_script(script, timeout=120)
    assert imported == []
    assert "boto3" in error, error


def test_a_plain_run_does_not_import_what_only_requirements_or_notifications_need(tmp_path: Path) -> None:
    """The CLI's path to its first kernel launch (the cli module, reading the job, the notifier's module)
    leaves out filelock and packaging (requirements environments) and http.client, urllib.request and smtplib
    (sending a notification): issue 15's time to first task start."""
    job = tmp_path / "job"
    job.mkdir()
    write_notebook(job / "a.ipynb", "x = 1", orchestrate={})
    script = f"""
import json, sys
from jupyter_orchestrate.startup import skip_unused_imports
skip_unused_imports()
import jupyter_orchestrate.cli, jupyter_orchestrate.notifications
from jupyter_orchestrate.discovery import load_job
job = load_job({str(job)!r})
lazy = ("filelock", "packaging.requirements", "http.client", "urllib.request", "smtplib")
print(json.dumps([job.tasks[0].task_key, sorted(m for m in lazy if m in sys.modules)]))
"""
    _, (task_key, imported) = python_script(script, timeout=120)
    assert task_key == "a"
    assert imported == []


def test_the_exit_handler_freezes_the_collector_after_the_handlers_registered_later() -> None:
    """``end_without_final_collection``: exit handlers registered after it still run with the collector on;
    by the time the ones registered before it run, the collector is off and the live objects are frozen."""
    script = """
import atexit, gc
import jupyter_orchestrate.startup as startup
atexit.register(lambda: print("before:", gc.isenabled(), gc.get_freeze_count() > 0, flush=True))
startup.end_without_final_collection()
atexit.register(lambda: print("after:", gc.isenabled(), gc.get_freeze_count() > 0, flush=True))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["after: True False", "before: False True"]
