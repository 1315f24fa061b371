"""Many orchestrators on one state home at once: every write takes the lock up front, migrations race safely,
and a lock that cannot be had is a clear error. Real processes, real SQLite, real kernels."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.errors import StoreBusyError
from jupyter_orchestrate.models import Job, RunStatus, Task
from jupyter_orchestrate.service import OrchestrateService
from jupyter_orchestrate.store import DB_NAME, Store, migrations

REPO = Path(__file__).resolve().parent.parent

# Each process imports the store, says it is ready, waits for the start signal, then opens the (fresh) state
# home and records one run: the migrations and the first writes of every process collide.
CREATE_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from jupyter_orchestrate.models import Job, Task
    from jupyter_orchestrate.store import Store
    home, job_path, ready, go = sys.argv[1:5]
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    store = Store(home)
    job = Job(name="race", path=job_path, tasks=[Task(task_key="a", notebook="a.ipynb"),
                                                  Task(task_key="b", notebook="b.ipynb")])
    print(store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1))
""")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("count", [24])  # 12 proved nothing 24 does not, at a minute of CI
def test_processes_racing_on_a_fresh_home_each_record_a_run(tmp_path: Path, home: Path, count: int) -> None:
    procs = []
    for i in range(count):
        ready = tmp_path / f"ready-{i}"
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        CREATE_RUN,
                        str(home),
                        str(tmp_path / "job"),
                        str(ready),
                        str(tmp_path / "go"),
                    ],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    try:
        _wait(lambda: all(r.exists() for r, _ in procs), 300, "every process to import the store")
        (tmp_path / "go").touch()
        results = [(*p.communicate(timeout=300), p.returncode) for _, p in procs]
    finally:
        for _, p in procs:
            p.kill()
    failures = [err for _, err, code in results if code != 0]
    assert not failures, failures[0]
    run_ids = sorted(int(out) for out, _, _ in results)
    assert run_ids == list(range(1, count + 1))
    store = Store(home)
    assert len(store.list_runs(limit=100)) == count
    applied = [r["name"] for r in store.db["_sqlite_migrations"].rows]
    assert len(applied) == len(set(applied)) and not migrations.pending(
        store.db
    )  # each applied once, by one racer


def test_threads_with_their_own_store_on_a_fresh_home_each_record_a_run(home: Path, tmp_path: Path) -> None:
    import threading

    count, barrier, run_ids, errors = 16, threading.Barrier(16), [], []
    job = Job(name="race", path=str(tmp_path / "job"), tasks=[Task(task_key="a", notebook="a.ipynb")])

    def record() -> None:
        try:
            barrier.wait()
            store = Store(home)
            for _ in range(5):
                run_ids.append(store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1))
            store.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=record) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[0]
    assert sorted(run_ids) == list(range(1, 5 * count + 1))


def test_a_lock_held_past_the_busy_timeout_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    store = Store(home, busy_timeout_seconds=0.5)
    job = Job(name="j", path=str(tmp_path / "j"), tasks=[Task(task_key="a", notebook="a.ipynb")])
    holder = sqlite3.connect(home / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreBusyError) as caught:
            store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1)
        assert time.monotonic() - started >= 0.4  # it waited for the lock before giving up
        message = str(caught.value)
        assert str(home / DB_NAME) in message
        assert "locked" in message and "0.5" in message and "retry" in message
        assert caught.value.path == str(home / DB_NAME)
        assert store.list_runs() == []  # reads still work while another process writes (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (
        store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1) == 1
    )  # and writes once it is free


def test_a_write_sqlite_refuses_at_once_is_retried_until_the_busy_timeout(home: Path, tmp_path: Path) -> None:
    """SQLite may answer "locked" without waiting (a fresh file switching to WAL, a WAL index being rebuilt):
    the store retries the transaction from its start until its busy timeout has passed, so a lock released
    within it costs a wait, not a StoreBusyError. Here the connection's own wait is switched off to make
    SQLite refuse at once while another connection holds the write lock for half a second."""
    import threading

    store = Store(home, busy_timeout_seconds=5)
    store.db.execute("PRAGMA busy_timeout=0")
    job = Job(name="j", path=str(tmp_path / "j"), tasks=[Task(task_key="a", notebook="a.ipynb")])
    holder = sqlite3.connect(home / DB_NAME, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        started = time.monotonic()
        assert store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1) == 1
        assert 0.4 <= time.monotonic() - started < 5
    finally:
        release.join()
        holder.close()
    assert [r.run_id for r in store.list_runs()] == [1]  # written once, not once per try


def test_a_thread_with_patience_outlasts_a_lock_held_past_the_busy_timeout(
    home: Path, tmp_path: Path
) -> None:
    """A runner's thread (Store.patience) keeps retrying past the busy timeout, so a lock held longer than that
    costs the run a wait, not its records; another thread still gets StoreBusyError after the busy timeout."""
    import threading

    store = Store(home, busy_timeout_seconds=0.3)
    job = Job(name="j", path=str(tmp_path / "j"), tasks=[Task(task_key="a", notebook="a.ipynb")])
    holder = sqlite3.connect(home / DB_NAME, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        with pytest.raises(StoreBusyError):
            store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1)
        with store.patience(30):
            assert store.create_run(job, parameters={}, overrides={}, max_parallel_tasks=1) == 1
    finally:
        release.join()
        holder.close()


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("count", [20])  # 10 proved nothing 20 does not, at minutes of CI
def test_concurrent_cli_runs_on_a_fresh_home_all_succeed(
    make_notebook: Any, tmp_path: Path, home: Path, count: int
) -> None:
    job = tmp_path / "job"
    make_notebook("job/hello.ipynb", "print('hello')", orchestrate={})
    cli = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home)]
    procs = [
        subprocess.Popen(
            [*cli, "run", str(job), "--max-parallel", "1"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        results = [(*p.communicate(timeout=1200), p.returncode) for p in procs]
    finally:
        for p in procs:
            p.kill()
    failures = [err for _, err, code in results if code != 0]
    assert not failures, f"{len(failures)} of {count} failed; first:\n{failures[0]}"
    runs = OrchestrateService(home, recover=False).list_runs(limit=100)
    assert sorted(r.run_id for r in runs) == list(range(1, count + 1))
    assert {r.status for r in runs} == {RunStatus.succeeded}
    assert all(r.task_runs[0].status.value == "succeeded" for r in runs)
