"""The state store: one SQLite file (via sqlite-utils) holding jobs, runs, task runs, attempts, task values
and repairs. The only module with SQL. Returns models, never rows.

Durability: WAL journal with ``synchronous=NORMAL`` survives a killed process (SIGKILL) without corruption.
Concurrency: any number of processes (CLI runs, schedulers, servers) may share one state home. Every write
method is one transaction that takes the write lock up front (``BEGIN IMMEDIATE``), waiting up to the busy
timeout for it; a lock not had by then is a :class:`~.errors.StoreBusyError`. Reads see one snapshot and never
wait for writers. The schema is versioned by sqlite-utils migrations (table ``_sqlite_migrations``), applied
under the write lock so that racing processes apply each one once; add a new migration function, never edit
an applied one.
Faults: SQLite errors that are not bugs (disk full, damaged file, not a database, cannot open, read-only,
locked) become a :class:`~.errors.StoreError` naming the file and what to do. A database that fails
``PRAGMA quick_check`` on open is refused before anything is written to it.

Layout of the state home (which folder: :func:`~.workspace.find_state_home`)::

    <home>/orchestrate.db
    <home>/runs/<run_id>/<task_key>/attempt-<n>.ipynb   executed notebook (saved after every cell)
    <home>/runs/<run_id>/<task_key>/attempt-<n>.log     captured stdout/stderr
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from jupyter_orchestrate.errors import ConflictError, NotFoundError, StoreBusyError, StoreError
from jupyter_orchestrate.models import (
    Attempt,
    AttemptError,
    Job,
    Repair,
    Run,
    RunStatus,
    TaskRun,
    TaskRunStatus,
    Trigger,
    seconds_between,
    utc_now,
)
from jupyter_orchestrate.workspace import DB_NAME

BUSY_TIMEOUT_SECONDS = 30.0
_checked_files: set[str] = (
    set()
)  # database files this process found to pass PRAGMA quick_check (heartbeat and
# run monitor threads open their own connections; one check per process keeps a large file's cost to one read)

migrations = Migrations("jupyter_orchestrate")


@migrations()
def m001_initial(db: Database) -> None:
    """Schema version 1: jobs, runs, task_runs, attempts, task_values, repairs."""
    db["jobs"].create(
        {"job_id": int, "name": str, "path": str, "created_time": str, "updated_time": str}, pk="job_id"
    )
    db["jobs"].create_index(["path"], unique=True)
    db["runs"].create(
        {
            "run_id": int,
            "job_id": int,
            "job_name": str,
            "job_path": str,
            "status": str,
            "status_reason": str,
            "trigger": str,
            "start_time": str,
            "end_time": str,
            "duration_seconds": float,
            "parameters": str,
            "overrides": str,
            "snapshot": str,
            "max_parallel_tasks": int,
            "repair_count": int,
            "orchestrator_pid": int,
            "orchestrator_create_time": float,
            "orchestrator_host": str,
            "heartbeat_time": str,
        },
        pk="run_id",
        foreign_keys=[("job_id", "jobs", "job_id")],
        not_null={"job_id", "status", "start_time"},
    )
    db["runs"].create_index(["job_name", "run_id"])
    db["runs"].create_index(["status"])
    db["task_runs"].create(
        {
            "run_id": int,
            "task_key": str,
            "notebook": str,
            "depends_on": str,
            "status": str,
            "status_reason": str,
            "start_time": str,
            "end_time": str,
            "duration_seconds": float,
        },
        pk=("run_id", "task_key"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db["attempts"].create(
        {
            "run_id": int,
            "task_key": str,
            "attempt_number": int,
            "repair_number": int,
            "status": str,
            "start_time": str,
            "end_time": str,
            "duration_seconds": float,
            "notebook_path": str,
            "log_path": str,
            "parameters": str,
            "kernel_name": str,
            "cwd": str,
            "env_names": str,
            "cells_total": int,
            "cells_completed": int,
            "error_kind": str,
            "ename": str,
            "evalue": str,
            "traceback": str,
            "cell_index": int,
            "executed_cell_index": int,
            "cell_source": str,
            "execution_count": int,
            "worker_pid": int,
            "kernel_pid": int,
            "kernel_create_time": float,
        },
        pk=("run_id", "task_key", "attempt_number"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db["task_values"].create(
        {"run_id": int, "task_key": str, "name": str, "value": str, "attempt_number": int, "set_time": str},
        pk=("run_id", "task_key", "name"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db["repairs"].create(
        {
            "run_id": int,
            "repair_number": int,
            "repair_time": str,
            "requested_task_keys": str,
            "rerun_dependents": int,
            "task_keys": str,
            "reused_task_keys": str,
            "parameters": str,
        },
        pk=("run_id", "repair_number"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )


@migrations()
def m002_scheduling(db: Database) -> None:
    """Schema version 2: scheduler leases, per-schedule state (next fire, pause) and the record of every fire."""
    db["leases"].create(
        {"name": str, "holder": str, "acquired_time": str, "heartbeat_time": str, "expires_time": str},
        pk="name",
    )
    db["schedule_state"].create(
        {
            "job_path": str,
            "schedule_name": str,
            "next_fire_time": str,
            "last_fire_time": str,
            "paused": int,
            "updated_time": str,
        },
        pk=("job_path", "schedule_name"),
    )
    db["fires"].create(
        {
            "fire_id": int,
            "job_path": str,
            "schedule_name": str,
            "scheduled_time": str,
            "fire_time": str,
            "status": str,
            "run_id": int,
            "reason": str,
            "holder": str,
        },
        pk="fire_id",
    )
    # one record per (schedule, scheduled time): two schedulers can never both start the same fire
    db["fires"].create_index(["job_path", "schedule_name", "scheduled_time"], unique=True)


@migrations()
def m003_trigger_details(db: Database) -> None:
    """Schema version 3: what started a run (logical trigger time, reason)."""
    db["runs"].add_column("trigger_time", str)
    db["runs"].add_column("trigger_reason", str)


@migrations()
def m004_attempt_environment(db: Database) -> None:
    """Schema version 4: the environment each attempt ran in (kernel, interpreter, package hash and list,
    environment variable names; never values)."""
    db["attempts"].add_column("environment", str)


@migrations()
def m005_schedule_rule(db: Database) -> None:
    """Schema version 5: the rule a schedule's next fire was computed from (recomputed when it changes)."""
    db["schedule_state"].add_column("rule", str)


def this_process() -> dict[str, Any]:
    """The owner fields of a run executed by this process: ``orchestrator_pid``, ``orchestrator_create_time``
    (psutil's process start time, so a reused pid is not mistaken for the owner) and ``orchestrator_host``."""
    me = psutil.Process()
    return {
        "orchestrator_pid": me.pid,
        "orchestrator_create_time": me.create_time(),
        "orchestrator_host": socket.gethostname(),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


# primary SQLite result codes (https://www.sqlite.org/rescode.html) that are faults of the file, not bugs
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
_CODE_OF_MESSAGE = {  # Python < 3.11 has no sqlite_errorcode
    "database is locked": _BUSY,
    "database table is locked": _LOCKED,
    "readonly database": _READONLY,
    "disk I/O error": _IOERR,
    "disk image is malformed": _CORRUPT,
    "database or disk is full": _FULL,
    "unable to open database file": _CANTOPEN,
    "file is not a database": _NOTADB,
}


def _sqlite_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF
    return next((c for text, c in _CODE_OF_MESSAGE.items() if text in str(exc)), None)


_ATTEMPT_ERROR_FIELDS = (
    "ename",
    "evalue",
    "cell_index",
    "executed_cell_index",
    "cell_source",
    "execution_count",
)


class Store:
    """Access to the state database of one state home. Thread-safe (one connection, serialised by a lock);
    any number of processes may open the same state home.

    Args:
        home: the state home folder (chosen by :func:`~.workspace.find_state_home`); created if missing.
            :meth:`open_read_only` opens an existing one without writing.
        busy_timeout_seconds: how long a write waits for another process's write lock before giving up.

    Every method may raise :class:`~.errors.StoreError` (disk full, damaged database, cannot open, read-only)
    and :class:`~.errors.StoreBusyError` (the lock was not had within ``busy_timeout_seconds``).

    Raises:
        StoreError: the home cannot be created, the file is not a database or fails ``PRAGMA quick_check``
            (it is then left unchanged), or it cannot be opened.
    """

    def __init__(self, home: str | os.PathLike[str], *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS):
        self.home = Path(home).expanduser().resolve()
        self.path = self.home / DB_NAME
        self.busy_timeout_seconds = busy_timeout_seconds
        self._lock = threading.RLock()
        self._transaction_kind: str | None = None  # "read" or "write" while this connection has one open
        self._damaged: StoreError | None = None  # set once the file is found damaged: no write after that
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the state home {self.home}: {exc.strerror}; "
                "fix its permissions or free space, or choose another --home",
                str(self.path),
            ) from exc
        conn = None
        try:
            # isolation_level=None: no implicit transactions; _transaction opens each one itself
            conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_seconds, check_same_thread=False, isolation_level=None
            )
            self.db = Database(conn, execute_plugins=False)
            if str(self.path) not in _checked_files:  # later connections of this process skip the full read
                self._check_integrity()
                _checked_files.add(str(self.path))
            self._use_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self._transaction(write=False):
                pending = migrations.pending(self.db)
            if pending:
                with self._transaction(
                    write=True
                ):  # racing processes: the first applies, the others see it done
                    migrations.apply(self.db)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            error = self._translate(exc) if isinstance(exc, sqlite3.Error) else None
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: sqlite3.Error) -> StoreError | None:
        """The :class:`StoreError` for an SQLite error that is a fault of the file or the disk; None for a bug."""
        code, path = _sqlite_code(exc), str(self.path)
        if code in (_BUSY, _LOCKED):
            return StoreBusyError(
                f"the state database {path} stayed locked by another process for more than "
                f"{self.busy_timeout_seconds:g} s ({exc}); nothing was written: retry, or stop the process holding it "
                "(a run, scheduler or server on this state home)",
                path,
            )
        if code == _FULL:
            return StoreError(
                f"cannot write the state database {path}: the disk is full ({exc}); the change was rolled "
                "back: free space on its disk and retry",
                path,
            )
        if code in (_CORRUPT, _NOTADB):
            self._damaged = self._damaged_error(str(exc))
            return self._damaged
        if code in (_READONLY, _PERM, _CANTOPEN, _IOERR):
            return StoreError(
                f"cannot use the state database {path} ({exc}); check that it and its folder are "
                "writable by you and on a working local disk, or choose another --home",
                path,
            )
        return None

    def _damaged_error(self, detail: str) -> StoreError:
        path = str(self.path)
        return StoreError(
            f"the state database {path} is damaged ({detail}); it was left unchanged: move it (with its "
            "-wal and -shm files) aside to start a new history, or salvage it with "
            f"`sqlite3 {path} .recover`",
            path,
        )

    def _check_integrity(self) -> None:
        """Refuse a damaged file before anything writes to it (recovery of dead runs, migrations, a new run)."""
        rows = self.db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            more = f" and {len(rows) - 1} more problem(s)" if len(rows) > 1 else ""
            self._damaged = self._damaged_error(f"quick_check: {rows[0][0]}{more}")
            raise self._damaged

    def _use_wal(self) -> None:
        """Switch the file to WAL (persistent; a no-op once done). On a fresh file racing processes contend for
        the exclusive lock this needs, and SQLite may answer SQLITE_BUSY early: retry until the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout_seconds
        while True:
            try:
                mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if _sqlite_code(exc) not in (_BUSY, _LOCKED) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            if mode.lower() != "wal":
                raise StoreError(
                    f"the state database {self.path} cannot use write-ahead logging (journal mode stays "
                    f"{mode}); put the state home on a local disk",
                    str(self.path),
                )
            return

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[None]:
        """One transaction on this thread's turn of the connection; nested calls join the open one.

        A write takes the write lock at once (``BEGIN IMMEDIATE``, waiting up to the busy timeout), so it never
        fails half-way on a lock another process took after its first read; a read sees one snapshot. SQLite
        faults become :class:`StoreError` and roll the transaction back.
        """
        with self._lock:
            if self._transaction_kind is not None:
                if write and self._transaction_kind == "read":
                    raise RuntimeError(
                        "a store write inside a read transaction"
                    )  # would upgrade the lock late
                yield
                return
            if write and self._damaged is not None:
                raise self._damaged
            conn = self.db.conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                self._transaction_kind = "write" if write else "read"
                yield
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # the original error says more than a failed rollback
                        conn.execute("ROLLBACK")
                error = self._translate(exc) if isinstance(exc, sqlite3.Error) else None
                if error is None:
                    raise
                raise error from exc
            finally:
                self._transaction_kind = None

    @classmethod
    def open_read_only(cls, home: str | os.PathLike[str]) -> Store | None:
        """The store of an existing state home opened read-only (SQLite ``mode=ro``): no folder, database,
        migration or write is made (read-only commands, the server's store watcher).

        Returns: the store, or None when ``home`` has no database yet. A write through it raises StoreError.

        Raises:
            StoreError: the file cannot be opened or is not a database.
        """
        self = cls.__new__(cls)
        self.home = Path(home).expanduser().resolve()
        self.path = self.home / DB_NAME
        if not self.path.is_file():
            return None
        self.busy_timeout_seconds = BUSY_TIMEOUT_SECONDS
        self._lock = threading.RLock()
        self._transaction_kind = None
        self._damaged = None
        try:
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_SECONDS,
                check_same_thread=False,
                isolation_level=None,
            )
            self.db = Database(conn, execute_plugins=False)
            self.db.execute(
                "select count(*) from sqlite_master"
            ).fetchone()  # fails now on a file that is not a database
        except sqlite3.Error as exc:
            raise self._translate(exc) or exc from exc
        return self

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    # -- paths ---------------------------------------------------------------------------------------------
    def attempt_dir(self, run_id: int, task_key: str) -> Path:
        """Folder holding the executed notebooks and logs of a task run."""
        return self.home / "runs" / str(run_id) / task_key

    # -- jobs and runs -------------------------------------------------------------------------------------
    def create_run(
        self,
        job: Job,
        *,
        parameters: dict[str, Any],
        overrides: dict[str, Any],
        max_parallel_tasks: int,
        trigger: Trigger = Trigger.manual,
        trigger_time: str | None = None,
        trigger_reason: str | None = None,
        fire_id: int | None = None,
    ) -> int:
        """Record a new ``queued`` run of ``job`` with a snapshot of its definition and a ``pending`` task run
        per task, owned by this process (:func:`this_process`) until a runner claims it. Returns the run id.

        ``fire_id``: the schedule or trigger fire that starts the run; it is marked ``started`` with this run id
        in the same transaction, so a scheduler killed in between leaves no run without its fire."""
        now = utc_now()
        with self._transaction(write=True):
            existing = list(self.db["jobs"].rows_where("path = ?", [job.path]))
            if existing:
                job_id = existing[0]["job_id"]
                self.db["jobs"].update(job_id, {"name": job.name, "updated_time": now})
            else:
                job_id = (
                    self.db["jobs"]
                    .insert({"name": job.name, "path": job.path, "created_time": now, "updated_time": now})
                    .last_pk
                )
            run_id = (
                self.db["runs"]
                .insert(
                    {
                        "job_id": job_id,
                        "job_name": job.name,
                        "job_path": job.path,
                        "status": RunStatus.queued.value,
                        "trigger": trigger.value,
                        "trigger_time": trigger_time or now,
                        "trigger_reason": trigger_reason,
                        "start_time": now,
                        "parameters": _dumps(parameters),
                        "overrides": _dumps(overrides),
                        "snapshot": job.model_dump_json(),
                        "max_parallel_tasks": max_parallel_tasks,
                        "repair_count": 0,
                        **this_process(),  # the creating process owns the queued run until it executes it or dies
                        "heartbeat_time": now,
                    }
                )
                .last_pk
            )
            self.db["task_runs"].insert_all(
                {
                    "run_id": run_id,
                    "task_key": t.task_key,
                    "notebook": t.notebook,
                    "depends_on": _dumps(t.depends_on),
                    "status": TaskRunStatus.pending.value,
                }
                for t in job.tasks
            )
            if fire_id is not None:
                self.db["fires"].update(fire_id, {"status": "started", "run_id": run_id})
        return int(run_id)

    def snapshot(self, run_id: int) -> Job:
        """The job definition the run executes (updated by repairs)."""
        return Job.model_validate_json(self._run_row(run_id)["snapshot"])

    def claim_run(self, run_id: int, *, pid: int, create_time: float, host: str) -> RunStatus:
        """Record which orchestrator process executes the run now, and mark it running.

        A compare-and-set: only a ``queued`` run becomes ``running``. A run that was asked to cancel before its
        runner started stays ``canceling`` (the claim still records the owner, who must cancel it); a run a
        monitor has already ended is left as it is.

        Returns: the run's status after the claim: ``running``, ``canceling`` or the terminal status it had.
        """
        owner = {
            "orchestrator_pid": pid,
            "orchestrator_create_time": create_time,
            "orchestrator_host": host,
            "heartbeat_time": utc_now(),
        }
        with self._transaction(write=True):
            status = self.run_status(run_id)
            if status == RunStatus.queued:
                self.db["runs"].update(
                    run_id,
                    {
                        "status": RunStatus.running.value,
                        "status_reason": None,
                        "end_time": None,
                        "duration_seconds": None,
                        **owner,
                    },
                )
                return RunStatus.running
            if status == RunStatus.canceling:
                self.db["runs"].update(run_id, owner)
            return status

    def heartbeat(self, run_id: int) -> None:
        """Record that the run's orchestrator is alive now (read by the run monitors of every orchestrator)."""
        with self._transaction(write=True):
            self.db["runs"].update(run_id, {"heartbeat_time": utc_now()})

    def run_status(self, run_id: int) -> RunStatus:
        """The run's status (a cheap query, polled by runners to notice a cancel request)."""
        with self._transaction(write=False):
            row = self.db.execute("select status from runs where run_id = ?", [run_id]).fetchone()
        if row is None:
            raise NotFoundError(f"run {run_id} not found in state home {self.home}")
        return RunStatus(row[0])

    def request_cancel(self, run_id: int) -> bool:
        """Ask the orchestrator executing the run to cancel it. Returns False if the run is already terminal."""
        with self._transaction(write=True):
            status = self.run_status(run_id)
            if status.is_terminal:
                return False
            self.db["runs"].update(
                run_id, {"status": RunStatus.canceling.value, "status_reason": "cancel requested"}
            )
            return True

    def finish_run(self, run_id: int, status: RunStatus, reason: str | None = None) -> None:
        """Record the run's final status, its end time and duration (seconds since its start)."""
        with self._transaction(write=True):
            row = self._run_row(run_id)
            now = utc_now()
            self.db["runs"].update(
                run_id,
                {
                    "status": status.value,
                    "status_reason": reason,
                    "end_time": now,
                    "duration_seconds": seconds_between(row["start_time"], now),
                },
            )

    def start_repair(
        self,
        run_id: int,
        *,
        job: Job,
        requested_task_keys: list[str] | None,
        rerun_dependents: bool,
        task_keys: list[str],
        reused_task_keys: list[str],
        parameters: dict[str, Any],
        run_parameters: dict[str, Any],
        overrides: dict[str, Any],
    ) -> int:
        """Record a repair and reset its task runs to ``pending``, in one transaction.

        Returns the repair number (1 for the first repair of the run).

        Raises:
            ConflictError: the run is not finished (e.g. another repair of it started first).
        """
        with self._transaction(write=True):
            # compare-and-set: only a finished run can be claimed, so concurrent repairs cannot both start
            claimed = self.db.execute(
                "update runs set status = ? where run_id = ? and status in (?, ?, ?)",
                [
                    RunStatus.queued.value,
                    run_id,
                    RunStatus.succeeded.value,
                    RunStatus.failed.value,
                    RunStatus.canceled.value,
                ],
            ).rowcount
            if claimed != 1:
                raise ConflictError(
                    f"run {run_id} is {self.run_status(run_id).value}; wait for it to finish before repairing"
                )
            row = self._run_row(run_id)
            number = (row["repair_count"] or 0) + 1
            self.db["repairs"].insert(
                {
                    "run_id": run_id,
                    "repair_number": number,
                    "repair_time": utc_now(),
                    "requested_task_keys": _dumps(requested_task_keys)
                    if requested_task_keys is not None
                    else None,
                    "rerun_dependents": int(rerun_dependents),
                    "task_keys": _dumps(task_keys),
                    "reused_task_keys": _dumps(reused_task_keys),
                    "parameters": _dumps(parameters),
                }
            )
            self.db["runs"].update(
                run_id,
                {
                    "repair_count": number,
                    "status": RunStatus.queued.value,
                    "status_reason": f"repair {number}",
                    "snapshot": job.model_dump_json(),
                    "parameters": _dumps(run_parameters),
                    "overrides": _dumps(overrides),
                    "end_time": None,
                    "duration_seconds": None,
                    **this_process(),  # the repairing process owns the run now, not the one that ran it before
                    "heartbeat_time": utc_now(),
                },
            )
            for key in task_keys:
                self.db["task_runs"].update(
                    (run_id, key),
                    {
                        "status": TaskRunStatus.pending.value,
                        "status_reason": f"repair {number}",
                        "start_time": None,
                        "end_time": None,
                        "duration_seconds": None,
                    },
                )
                self.db.execute("delete from task_values where run_id = ? and task_key = ?", [run_id, key])
        return number

    # -- task runs and attempts ----------------------------------------------------------------------------
    def set_task_status(
        self, run_id: int, task_key: str, status: TaskRunStatus, reason: str | None = None
    ) -> None:
        """Set a task run's status; sets its start time on first ``running`` and its end time when terminal."""
        with self._transaction(write=True):
            row = self.db["task_runs"].get((run_id, task_key))
            update: dict[str, Any] = {"status": status.value, "status_reason": reason}
            now = utc_now()
            if status == TaskRunStatus.running and not row["start_time"]:
                update["start_time"] = now
            if status.is_terminal:
                update["end_time"] = now
                update["duration_seconds"] = (
                    seconds_between(row["start_time"], now) if row["start_time"] else None
                )
            self.db["task_runs"].update((run_id, task_key), update)

    def create_attempt(
        self,
        attempt: Attempt,
        *,
        worker_pid: int | None,
        kernel_pid: int | None,
        kernel_create_time: float | None,
    ) -> None:
        """Record an attempt that has started, with the processes to reap should the orchestrator die."""
        with self._transaction(write=True):
            self.db["attempts"].insert(
                {
                    "run_id": attempt.run_id,
                    "task_key": attempt.task_key,
                    "attempt_number": attempt.attempt_number,
                    "repair_number": attempt.repair_number,
                    "status": attempt.status.value,
                    "start_time": attempt.start_time,
                    "notebook_path": attempt.notebook_path,
                    "log_path": attempt.log_path,
                    "parameters": _dumps(attempt.parameters),
                    "kernel_name": attempt.kernel_name,
                    "cwd": attempt.cwd,
                    "env_names": _dumps(attempt.env_names),
                    "cells_total": attempt.cells_total,
                    "cells_completed": attempt.cells_completed,
                    "worker_pid": worker_pid,
                    "kernel_pid": kernel_pid,
                    "kernel_create_time": kernel_create_time,
                }
            )

    def set_attempt_kernel(
        self, run_id: int, task_key: str, attempt_number: int, pid: int | None, create_time: float | None
    ) -> None:
        """Record the kernel process of a running attempt (reaped if the orchestrator dies)."""
        with self._transaction(write=True):
            self.db["attempts"].update(
                (run_id, task_key, attempt_number), {"kernel_pid": pid, "kernel_create_time": create_time}
            )

    def set_attempt_environment(
        self, run_id: int, task_key: str, attempt_number: int, environment: dict[str, Any]
    ) -> None:
        """Record the environment an attempt ran in (see :class:`~.models.Attempt`)."""
        with self._transaction(write=True):
            self.db["attempts"].update(
                (run_id, task_key, attempt_number), {"environment": _dumps(environment)}
            )

    def update_attempt_progress(
        self, run_id: int, task_key: str, attempt_number: int, cells_completed: int, cells_total: int
    ) -> None:
        """Record how many of the attempt's code cells were executed, of how many."""
        with self._transaction(write=True):
            self.db["attempts"].update(
                (run_id, task_key, attempt_number),
                {"cells_completed": cells_completed, "cells_total": cells_total},
            )

    def finish_attempt(
        self,
        run_id: int,
        task_key: str,
        attempt_number: int,
        status: TaskRunStatus,
        error: AttemptError | None,
    ) -> None:
        """Record an attempt's outcome and error fields."""
        with self._transaction(write=True):
            row = self.db["attempts"].get((run_id, task_key, attempt_number))
            now = utc_now()
            update: dict[str, Any] = {
                "status": status.value,
                "end_time": now,
                "duration_seconds": seconds_between(row["start_time"], now),
            }
            if error is not None:
                update.update({f: getattr(error, f) for f in _ATTEMPT_ERROR_FIELDS})
                update["error_kind"] = error.kind
                update["traceback"] = _dumps(error.traceback)
            self.db["attempts"].update((run_id, task_key, attempt_number), update)

    def set_task_values(
        self, run_id: int, task_key: str, attempt_number: int, values: dict[str, Any]
    ) -> None:
        """Replace the task values a task run published."""
        now = utc_now()
        with self._transaction(write=True):
            self.db.execute("delete from task_values where run_id = ? and task_key = ?", [run_id, task_key])
            self.db["task_values"].insert_all(
                {
                    "run_id": run_id,
                    "task_key": task_key,
                    "name": name,
                    "value": json.dumps(value),
                    "attempt_number": attempt_number,
                    "set_time": now,
                }
                for name, value in values.items()
            )

    def task_values(self, run_id: int) -> dict[str, dict[str, Any]]:
        """Every task value of the run: ``{task_key: {name: value}}``."""
        result: dict[str, dict[str, Any]] = {}
        with self._transaction(write=False):
            for row in self.db["task_values"].rows_where("run_id = ?", [run_id], order_by="task_key, name"):
                result.setdefault(row["task_key"], {})[row["name"]] = json.loads(row["value"])
        return result

    # -- reading -------------------------------------------------------------------------------------------
    def _run_row(self, run_id: int) -> dict[str, Any]:
        with self._transaction(write=False):
            rows = list(self.db["runs"].rows_where("run_id = ?", [run_id]))
        if not rows:
            raise NotFoundError(f"run {run_id} not found in state home {self.home}")
        return rows[0]

    @staticmethod
    def _attempt(row: dict[str, Any]) -> Attempt:
        error = None
        if row["error_kind"]:
            error = AttemptError(
                kind=row["error_kind"],
                traceback=_loads(row["traceback"], []),
                **{f: row[f] for f in _ATTEMPT_ERROR_FIELDS if row[f] is not None},
            )
        return Attempt(
            run_id=row["run_id"],
            task_key=row["task_key"],
            attempt_number=row["attempt_number"],
            repair_number=row["repair_number"] or 0,
            status=TaskRunStatus(row["status"]),
            start_time=row["start_time"],
            end_time=row["end_time"],
            duration_seconds=row["duration_seconds"],
            notebook_path=row["notebook_path"],
            log_path=row["log_path"],
            parameters=_loads(row["parameters"], {}),
            kernel_name=row["kernel_name"],
            cwd=row["cwd"],
            env_names=_loads(row["env_names"], []),
            cells_total=row["cells_total"],
            cells_completed=row["cells_completed"],
            environment=_loads(row.get("environment"), {}),
            error=error,
        )

    def _run(self, row: dict[str, Any], details: bool) -> Run:
        run = Run(
            run_id=row["run_id"],
            job_name=row["job_name"],
            job_path=row["job_path"],
            status=RunStatus(row["status"]),
            status_reason=row["status_reason"],
            trigger=Trigger(row["trigger"]),
            trigger_time=row.get("trigger_time"),
            trigger_reason=row.get("trigger_reason"),
            start_time=row["start_time"],
            end_time=row["end_time"],
            duration_seconds=row["duration_seconds"],
            parameters=_loads(row["parameters"], {}),
            overrides=_loads(row["overrides"], {}),
            max_parallel_tasks=row["max_parallel_tasks"],
            repair_count=row["repair_count"] or 0,
        )
        run_id = row["run_id"]
        attempts: dict[str, list[Attempt]] = {}
        values: dict[str, dict[str, Any]] = {}
        if details:
            for arow in self.db["attempts"].rows_where(
                "run_id = ?", [run_id], order_by="task_key, attempt_number"
            ):
                attempts.setdefault(arow["task_key"], []).append(self._attempt(arow))
            values = self.task_values(run_id)
            run.repairs = [
                Repair(
                    run_id=r["run_id"],
                    repair_number=r["repair_number"],
                    repair_time=r["repair_time"],
                    requested_task_keys=_loads(r["requested_task_keys"], None),
                    rerun_dependents=bool(r["rerun_dependents"]),
                    task_keys=_loads(r["task_keys"], []),
                    reused_task_keys=_loads(r["reused_task_keys"], []),
                    parameters=_loads(r["parameters"], {}),
                )
                for r in self.db["repairs"].rows_where("run_id = ?", [run_id], order_by="repair_number")
            ]
        snapshot = Job.model_validate_json(row["snapshot"]).tasks
        order = {t.task_key: i for i, t in enumerate(snapshot)}
        warnings = {t.task_key: t.warnings for t in snapshot}
        task_rows = sorted(
            self.db["task_runs"].rows_where("run_id = ?", [run_id]), key=lambda r: order.get(r["task_key"], 0)
        )
        run.task_runs = [
            TaskRun(
                run_id=run_id,
                task_key=t["task_key"],
                notebook=t["notebook"],
                depends_on=_loads(t["depends_on"], []),
                status=TaskRunStatus(t["status"]),
                status_reason=t["status_reason"],
                start_time=t["start_time"],
                end_time=t["end_time"],
                duration_seconds=t["duration_seconds"],
                attempts=attempts.get(t["task_key"], []),
                task_values=values.get(t["task_key"], {}),
                warnings=warnings.get(t["task_key"], []),
            )
            for t in task_rows
        ]
        return run

    def get_run(self, run_id: int) -> Run:
        """The run with its task runs, attempts, task values and repairs.

        Raises:
            NotFoundError: no run has this id.
        """
        with self._transaction(write=False):
            return self._run(self._run_row(run_id), details=True)

    def list_runs(
        self,
        *,
        job_name: str | None = None,
        job_path: str | None = None,
        status: RunStatus | None = None,
        limit: int = 20,
        before: int | None = None,
    ) -> list[Run]:
        """Runs, newest first, with their task runs' statuses (no attempts); ``before`` is a run id for paging;
        ``job_path`` is the job folder's absolute path."""
        where, args = [], []
        if job_name:
            where.append("job_name = ?")
            args.append(job_name)
        if job_path:
            where.append("job_path = ?")
            args.append(job_path)
        if status:
            where.append("status = ?")
            args.append(status.value)
        if before is not None:
            where.append("run_id < ?")
            args.append(before)
        with self._transaction(write=False):
            rows = list(
                self.db["runs"].rows_where(
                    " and ".join(where) or None, args, order_by="run_id desc", limit=limit
                )
            )
            return [self._run(r, details=False) for r in rows]

    def unfinished_runs(self) -> list[dict[str, Any]]:
        """Runs not in a terminal status, with their orchestrator process fields (for crash recovery)."""
        with self._transaction(write=False):
            return list(
                self.db["runs"].rows_where(
                    "status in (?, ?, ?)",
                    [RunStatus.queued.value, RunStatus.running.value, RunStatus.canceling.value],
                )
            )

    def watched_rows(
        self, after_run_id: int, run_ids: list[int]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """What the server's store watcher compares between two polls (two indexed queries): the runs with an id
        above ``after_run_id``, the unfinished runs and the runs in ``run_ids`` (``run_id, status,
        status_reason, job_name, orchestrator_pid, orchestrator_host``), and the task runs of those runs
        (``run_id, task_key, status, status_reason``), each ordered by run id."""
        unfinished = [RunStatus.queued.value, RunStatus.running.value, RunStatus.canceling.value]
        marks = ", ".join("?" * len(run_ids))
        where = "run_id > ? or status in (?, ?, ?)" + (f" or run_id in ({marks})" if run_ids else "")
        with self._transaction(write=False):  # one snapshot: task runs match their run rows
            cursor = self.db.execute(
                "select run_id, status, status_reason, job_name, orchestrator_pid, orchestrator_host from runs "
                f"where {where} order by run_id",
                [after_run_id, *unfinished, *run_ids],
            )
            runs = [
                dict(zip([c[0] for c in cursor.description], row, strict=True)) for row in cursor.fetchall()
            ]
            ids = [r["run_id"] for r in runs]
            tasks: list[dict[str, Any]] = []
            if ids:
                cursor = self.db.execute(
                    "select run_id, task_key, status, status_reason from task_runs "
                    f"where run_id in ({', '.join('?' * len(ids))}) order by run_id",
                    ids,
                )
                tasks = [
                    dict(zip([c[0] for c in cursor.description], row, strict=True))
                    for row in cursor.fetchall()
                ]
        return runs, tasks

    def max_run_id(self) -> int:
        """The highest run id recorded (0 when there is none)."""
        with self._transaction(write=False):
            return self.db.execute("select coalesce(max(run_id), 0) from runs").fetchone()[0]

    def unfinished_attempts(self, run_id: int) -> list[dict[str, Any]]:
        """Attempts of a run still marked running, with their process ids (for reaping orphans)."""
        with self._transaction(write=False):
            return list(
                self.db["attempts"].rows_where(
                    "run_id = ? and status = ?", [run_id, TaskRunStatus.running.value]
                )
            )

    def end_unfinished(
        self,
        run_id: int,
        reason: str,
        *,
        run_status: RunStatus | None,
        running_status: TaskRunStatus = TaskRunStatus.failed,
        error_kind: str = "orchestrator_died",
        ename: str = "OrchestratorDied",
        expected: dict[str, Any] | None = None,
    ) -> bool:
        """End what a run's owner left unfinished, in one transaction (recovery, a crashed runner, a cancel
        that did not finish, a repair of a run that ended with task runs still ``running``).

        Attempts still ``running`` and ``running`` task runs get ``running_status`` (``failed`` or ``canceled``),
        the attempts with error fields ``error_kind``/``ename`` and ``reason`` as evalue; other unfinished task
        runs (pending, queued, up_for_retry) are ``canceled``; the run gets ``run_status`` and ``reason`` unless
        it is already terminal (None: the run row is left as it is).

        Args:
            expected: column values the run row must still have (compare-and-set against the owner renewing its
                heartbeat, finishing or a new owner claiming the run since the caller looked).

        Returns: False, changing nothing, when the row no longer matches ``expected``; else True.
        """
        now = utc_now()
        with self._transaction(write=True):
            row = self._run_row(run_id)
            if expected and any(row[k] != v for k, v in expected.items()):
                return False
            for a in self.unfinished_attempts(run_id):
                self.db["attempts"].update(
                    (run_id, a["task_key"], a["attempt_number"]),
                    {
                        "status": running_status.value,
                        "end_time": now,
                        "duration_seconds": seconds_between(a["start_time"], now),
                        "error_kind": error_kind,
                        "ename": ename,
                        "evalue": reason,
                        "traceback": "[]",
                    },
                )
            for t in self.db["task_runs"].rows_where("run_id = ?", [run_id]):
                status = TaskRunStatus(t["status"])
                if status.is_terminal:
                    continue
                new = running_status if status == TaskRunStatus.running else TaskRunStatus.canceled
                self.db["task_runs"].update(
                    (run_id, t["task_key"]),
                    {
                        "status": new.value,
                        "status_reason": reason,
                        "end_time": now,
                        "duration_seconds": seconds_between(t["start_time"], now),
                    },
                )
            if run_status is not None and not RunStatus(row["status"]).is_terminal:
                self.finish_run(run_id, run_status, reason)
        return True

    def statuses(self, run_id: int) -> dict[str, TaskRunStatus]:
        """Every task run's status: ``{task_key: status}``."""
        with self._transaction(write=False):
            return {
                r["task_key"]: TaskRunStatus(r["status"])
                for r in self.db["task_runs"].rows_where("run_id = ?", [run_id])
            }

    def attempt_counts(self, run_id: int) -> dict[str, int]:
        """Attempts made so far per task run: ``{task_key: count}``."""
        with self._transaction(write=False):
            rows = self.db.execute(
                "select task_key, max(attempt_number) from attempts where run_id = ? group by task_key",
                [run_id],
            ).fetchall()
        return {k: n for k, n in rows}

    # -- scheduling ----------------------------------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl_seconds: float, now: str, expires: str) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``expires`` (ISO times, UTC).

        Succeeds when nobody holds it, ``holder`` already does, or the holder's lease expired before ``now``.
        A single conditional UPDATE is the compare-and-set, so two processes can never both succeed.
        """
        with self._transaction(write=True):
            self.db.execute(
                "insert or ignore into leases (name, holder, acquired_time, heartbeat_time, expires_time) values (?, '', ?, ?, ?)",
                [name, now, now, now],
            )
            cursor = self.db.execute(
                "update leases set holder = ?, heartbeat_time = ?, expires_time = ?, "
                "acquired_time = case when holder = ? then acquired_time else ? end "
                "where name = ? and (holder = ? or holder = '' or expires_time < ?)",
                [holder, now, expires, holder, now, name, holder, now],
            )
            return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (on clean shutdown) so another scheduler takes over at once."""
        with self._transaction(write=True):
            self.db.execute("update leases set holder = '' where name = ? and holder = ?", [name, holder])

    def lease(self, name: str) -> dict[str, Any] | None:
        """The lease row (holder, acquired/heartbeat/expires times) or None."""
        with self._transaction(write=False):
            rows = list(self.db["leases"].rows_where("name = ?", [name]))
        return rows[0] if rows else None

    def schedule_state(self, job_path: str, schedule_name: str) -> dict[str, Any] | None:
        """Persisted state of a schedule: next_fire_time, last_fire_time, paused (None = as job.yaml)."""
        with self._transaction(write=False):
            rows = list(
                self.db["schedule_state"].rows_where(
                    "job_path = ? and schedule_name = ?", [job_path, schedule_name]
                )
            )
        return rows[0] if rows else None

    def set_schedule_state(self, job_path: str, schedule_name: str, **fields: Any) -> None:
        """Upsert fields of a schedule's state (next_fire_time, last_fire_time, paused)."""
        with self._transaction(write=True):
            self.db["schedule_state"].upsert(
                {"job_path": job_path, "schedule_name": schedule_name, "updated_time": utc_now(), **fields},
                pk=("job_path", "schedule_name"),
            )

    def record_fire(
        self,
        job_path: str,
        schedule_name: str,
        scheduled_time: str,
        *,
        status: str,
        holder: str,
        reason: str | None = None,
    ) -> int | None:
        """Record a fire once. Returns its id, or None if this fire was already recorded (by anyone)."""
        with self._transaction(write=True):
            try:
                return int(
                    self.db["fires"]
                    .insert(
                        {
                            "job_path": job_path,
                            "schedule_name": schedule_name,
                            "scheduled_time": scheduled_time,
                            "fire_time": utc_now(),
                            "status": status,
                            "reason": reason,
                            "holder": holder,
                        }
                    )
                    .last_pk
                )
            except sqlite3.IntegrityError:
                return None

    def update_fire(self, fire_id: int, **fields: Any) -> None:
        """Set a fire's outcome: status (started, queued, skipped, failed), run_id, reason."""
        with self._transaction(write=True):
            self.db["fires"].update(fire_id, fields)

    def fire(self, fire_id: int) -> dict[str, Any]:
        """One fire record."""
        with self._transaction(write=False):
            return dict(self.db["fires"].get(fire_id))

    def fires(self, job_path: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Fire records, newest first."""
        with self._transaction(write=False):
            where, args = ("job_path = ?", [job_path]) if job_path else (None, [])
            return list(self.db["fires"].rows_where(where, args, order_by="fire_id desc", limit=limit))

    def active_runs(self, job_path: str) -> list[int]:
        """Ids of the job's runs that are queued, running or canceling, oldest first."""
        with self._transaction(write=False):
            rows = self.db.execute(
                "select run_id from runs where job_path = ? and status in (?, ?, ?) order by run_id",
                [job_path, RunStatus.queued.value, RunStatus.running.value, RunStatus.canceling.value],
            ).fetchall()
        return [r[0] for r in rows]
