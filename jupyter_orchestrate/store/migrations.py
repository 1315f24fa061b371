"""The state database's schema, versioned by sqlite-utils migrations (table ``_sqlite_migrations``).

Add a new migration function, never edit an applied one. :class:`~.connection.StoreConnection` applies the
pending ones under the write lock, so racing processes apply each one once.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("jupyter_orchestrate")


@migrations()
def m001_initial(db: Database) -> None:
    """Schema version 1: jobs, runs, task_runs, attempts, task_values, repairs."""
    db.table("jobs").create(
        {"job_id": int, "name": str, "path": str, "created_time": str, "updated_time": str}, pk="job_id"
    )
    db.table("jobs").create_index(["path"], unique=True)
    db.table("runs").create(
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
    db.table("runs").create_index(["job_name", "run_id"])
    db.table("runs").create_index(["status"])
    db.table("task_runs").create(
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
    db.table("attempts").create(
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
    db.table("task_values").create(
        {"run_id": int, "task_key": str, "name": str, "value": str, "attempt_number": int, "set_time": str},
        pk=("run_id", "task_key", "name"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.table("repairs").create(
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
    db.table("leases").create(
        {"name": str, "holder": str, "acquired_time": str, "heartbeat_time": str, "expires_time": str},
        pk="name",
    )
    db.table("schedule_state").create(
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
    db.table("fires").create(
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
    db.table("fires").create_index(["job_path", "schedule_name", "scheduled_time"], unique=True)


@migrations()
def m003_trigger_details(db: Database) -> None:
    """Schema version 3: what started a run (logical trigger time, reason)."""
    db.table("runs").add_column("trigger_time", str)
    db.table("runs").add_column("trigger_reason", str)


@migrations()
def m004_attempt_environment(db: Database) -> None:
    """Schema version 4: the environment each attempt ran in (kernel, interpreter, package hash and list,
    environment variable names; never values)."""
    db.table("attempts").add_column("environment", str)


@migrations()
def m005_schedule_rule(db: Database) -> None:
    """Schema version 5: the rule a schedule's next fire was computed from (recomputed when it changes)."""
    db.table("schedule_state").add_column("rule", str)


@migrations()
def m006_cell_timings(db: Database) -> None:
    """Schema version 6: every executed code cell of every attempt (start, end, duration, ok/error), at most
    :data:`~..engine.runner.DEFAULT_MAX_CELL_TIMINGS` per attempt by default."""
    db.table("cells").create(
        {
            "run_id": int,
            "task_key": str,
            "attempt_number": int,
            "cell_number": int,
            "cell_index": int,
            "start_time": str,
            "end_time": str,
            "duration_seconds": float,
            "status": str,
            "source_first_line": str,
        },
        pk=("run_id", "task_key", "attempt_number", "cell_number"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )


@migrations()
def m007_attempt_phases(db: Database) -> None:
    """Schema version 7: the phases of an attempt before it executes: when its task run was queued and when its
    kernel was ready (the Gantt shows queued, kernel start and execution apart)."""
    db.table("attempts").add_column("queued_time", str)
    db.table("attempts").add_column("kernel_ready_time", str)


@migrations()
def m008_run_listing_indexes(db: Database) -> None:
    """Schema version 8: indexes for the runs listings (newest first by run id): a job's recent runs (the jobs
    list reads them for every job), and the all-runs view's filters by status, trigger and start time."""
    db.table("runs").create_index(["job_path", "run_id"], if_not_exists=True)
    db.table("runs").create_index(["status", "run_id"], if_not_exists=True)
    db.table("runs").create_index(["trigger", "run_id"], if_not_exists=True)
    db.table("runs").create_index(["start_time"], if_not_exists=True)


#: The version of the history views (docs/history-tables.md, view ``v_history_version``). Within a version
#: columns are only added, never renamed, retyped or removed; anything else is a new version, said in the doc.
HISTORY_VIEWS_VERSION = 1

#: Version 1 of the history views (``v_*``): the stable, documented, read-only face of the tables
#: (docs/history-tables.md). Frozen like an applied migration: a later change adds a new dict and a migration
#: that recreates the views from it (and points :data:`HISTORY_VIEWS` at it).
HISTORY_VIEWS_V1 = {
    "v_history_version": "select 1 as version",
    "v_runs": """
        select run_id, job_name, job_path, status, status_reason, "trigger", trigger_time, trigger_reason,
               start_time, end_time, duration_seconds, repair_count, parameters
        from runs""",
    "v_task_runs": """
        select t.run_id, r.job_name, r.job_path, t.task_key, t.notebook, t.status, t.status_reason,
               t.start_time, t.end_time, t.duration_seconds,
               (select count(*) from attempts a where a.run_id = t.run_id and a.task_key = t.task_key)
                   as attempt_count
        from task_runs t join runs r on r.run_id = t.run_id""",
    "v_attempts": """
        select a.run_id, r.job_name, r.job_path, a.task_key, a.attempt_number, a.repair_number, a.status,
               a.queued_time, a.kernel_ready_time,
               a.start_time, a.end_time, a.duration_seconds, a.cells_total, a.cells_completed, a.kernel_name,
               a.notebook_path, a.error_kind, a.ename, a.evalue, a.cell_index as error_cell_index
        from attempts a join runs r on r.run_id = a.run_id""",
    "v_cells": """
        select c.run_id, r.job_name, r.job_path, c.task_key, c.attempt_number, c.cell_number, c.cell_index,
               c.start_time, c.end_time, c.duration_seconds, c.status, c.source_first_line
        from cells c join runs r on r.run_id = c.run_id""",
}
#: The views as the newest migration leaves them.
HISTORY_VIEWS = HISTORY_VIEWS_V1


def create_history_views(db: Database, views: dict[str, str]) -> None:
    """(Re)create the history views. A later migration that rebuilds a table they read (sqlite-utils
    ``transform``) drops them first (:func:`drop_history_views`) and calls this after: SQLite refuses to rename
    a table while a view names a missing one."""
    for name, select in views.items():
        db.execute(f"drop view if exists {name}")
        db.execute(f"create view {name} as {select}")


def drop_history_views(db: Database) -> None:
    """Drop the history views (see :func:`create_history_views`)."""
    for name in HISTORY_VIEWS:
        db.execute(f"drop view if exists {name}")


@migrations()
def m009_history_views(db: Database) -> None:
    """Schema version 9: the read-only history views ``v_runs``, ``v_task_runs``, ``v_attempts``, ``v_cells``
    and ``v_history_version`` (version 1)."""
    create_history_views(db, HISTORY_VIEWS_V1)


@migrations()
def m010_kept_kernels(db: Database) -> None:
    """Schema version 10: kernels kept alive after an attempt failed in a cell (for debugging and resume), and
    what a resumed attempt and a resume repair were resumed from."""
    db.table("kept_kernels").create(
        {
            "run_id": int,
            "task_key": str,
            "attempt_number": int,
            "cell_index": int,
            "kernel_pid": int,
            "kernel_create_time": float,
            "keeper_pid": int,
            "connection_file": str,
            "kept_time": str,
            "expires_time": str,
            "status": str,
            "end_time": str,
            "end_reason": str,
        },
        pk=("run_id", "task_key", "attempt_number"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.table("kept_kernels").create_index(["status", "kept_time"])
    db.table("attempts").add_column("resumed_from_cell", int)
    db.table("attempts").add_column("reused_cells", int)
    db.table("repairs").add_column("resumed_from", str)


@migrations()
def m011_for_each_iterations(db: Database) -> None:
    """Schema version 11: iterations of for-each tasks are task runs keyed ``<task_key>[<map_index>]`` with
    their parent's task key, their index and their input (JSON)."""
    db.table("task_runs").add_column("parent_task_key", str)
    db.table("task_runs").add_column("map_index", int)
    db.table("task_runs").add_column("input", str)
    db.table("task_runs").create_index(["run_id", "parent_task_key"])


@migrations()
def m012_child_runs(db: Database) -> None:
    """Schema version 12: a run started by a run-job task of another run records that run and task."""
    db.table("runs").add_column("parent_run_id", int)
    db.table("runs").add_column("parent_task_key", str)
    db.table("runs").create_index(["parent_run_id", "parent_task_key"])
