"""The state store: one SQLite file (via sqlite-utils) holding jobs, runs, task runs, attempts, task values,
repairs and the scheduler's records. The only package with SQL. Returns models (:mod:`~.models`) and typed
records (:mod:`.records`), never rows.

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

    <home>/orchestrate.db                               the tables, and the history views (v_runs, ...)
    <home>/runs/<run_id>/<task_key>/attempt-<n>.ipynb   executed notebook (saved after every cell)
    <home>/runs/<run_id>/<task_key>/attempt-<n>.log     captured stdout/stderr

Modules, one concern each, behind the :class:`Store` facade: :mod:`.connection` (opening, the lock,
transactions, busy retries, SQLite faults), :mod:`.migrations` (the schema), :mod:`.runs` (jobs, runs,
repairs, recovery), :mod:`.attempts` (task runs, attempts, task values), :mod:`.history` (per-cell execution
times, the slowest cells of a job's tasks), :mod:`.schedules` (leases, schedule state, fires) and :mod:`.records`
(the typed records returned). The read-only views ``v_*`` over these tables are the documented history
(docs/history-tables.md).
"""

from __future__ import annotations

from jupyter_orchestrate.store.connection import BUSY_TIMEOUT_SECONDS
from jupyter_orchestrate.store.history import HistoryRecords
from jupyter_orchestrate.store.migrations import migrations
from jupyter_orchestrate.store.records import (
    CellStats,
    Fire,
    Lease,
    Orchestrator,
    RunningAttempt,
    RunOwner,
    ScheduleState,
    WatchedRun,
    WatchedTaskRun,
)
from jupyter_orchestrate.store.runs import RunRecords, this_process
from jupyter_orchestrate.store.schedules import ScheduleRecords
from jupyter_orchestrate.workspace import DB_NAME

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "DB_NAME",
    "CellStats",
    "Fire",
    "Lease",
    "Orchestrator",
    "RunOwner",
    "RunningAttempt",
    "ScheduleState",
    "Store",
    "WatchedRun",
    "WatchedTaskRun",
    "migrations",
    "this_process",
]


class Store(RunRecords, ScheduleRecords, HistoryRecords):
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
