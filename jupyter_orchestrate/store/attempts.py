"""Task runs, attempts and task values (tables ``task_runs``, ``attempts``, ``task_values``)."""

from __future__ import annotations

import json
from typing import Any

from jupyter_orchestrate.models import (
    Attempt,
    AttemptError,
    TaskRunStatus,
    iteration_values,
    seconds_between,
    utc_now,
)
from jupyter_orchestrate.store.connection import (
    StoreConnection,
    dumps,
    get_row,
    loads,
    reads,
    update_row,
    writes,
)
from jupyter_orchestrate.store.records import RunningAttempt

_ATTEMPT_ERROR_FIELDS = (
    "ename",
    "evalue",
    "cell_index",
    "executed_cell_index",
    "cell_source",
    "execution_count",
)


def attempt_of(row: dict[str, Any]) -> Attempt:
    """The :class:`~..models.Attempt` of an ``attempts`` row."""
    error = None
    if row["error_kind"]:
        error = AttemptError(
            kind=row["error_kind"],
            traceback=loads(row["traceback"], []),
            **{f: row[f] for f in _ATTEMPT_ERROR_FIELDS if row[f] is not None},
        )
    return Attempt(
        run_id=row["run_id"],
        task_key=row["task_key"],
        attempt_number=row["attempt_number"],
        repair_number=row["repair_number"] or 0,
        status=TaskRunStatus(row["status"]),
        queued_time=row.get("queued_time"),
        start_time=row["start_time"],
        kernel_ready_time=row.get("kernel_ready_time"),
        end_time=row["end_time"],
        duration_seconds=row["duration_seconds"],
        notebook_path=row["notebook_path"],
        log_path=row["log_path"],
        parameters=loads(row["parameters"], {}),
        kernel_name=row["kernel_name"],
        cwd=row["cwd"],
        env_names=loads(row["env_names"], []),
        cells_total=row["cells_total"],
        cells_completed=row["cells_completed"],
        environment=loads(row.get("environment"), {}),
        error=error,
        resumed_from_cell=row.get("resumed_from_cell"),
        reused_cells=row.get("reused_cells"),
    )


class AttemptRecords(StoreConnection):
    """Task runs' statuses, their attempts and the task values they publish."""

    @writes
    def set_task_status(
        self, run_id: int, task_key: str, status: TaskRunStatus, reason: str | None = None
    ) -> None:
        """Set a task run's status; sets its start time on first ``running`` and its end time when terminal."""
        key = {"run_id": run_id, "task_key": task_key}
        row = get_row(self.db, "task_runs", key, "start_time")
        update: dict[str, Any] = {"status": status.value, "status_reason": reason}
        now = utc_now()
        if status == TaskRunStatus.running and not row["start_time"]:
            update["start_time"] = now
        if status.is_terminal:
            update["end_time"] = now
            update["duration_seconds"] = (
                seconds_between(row["start_time"], now) if row["start_time"] else None
            )
        update_row(self.db, "task_runs", key, update)

    @writes
    def create_attempt(
        self,
        attempt: Attempt,
        *,
        worker_pid: int | None,
        kernel_pid: int | None,
        kernel_create_time: float | None,
    ) -> None:
        """Record an attempt that has started, with the processes to reap should the orchestrator die."""
        row = {
            "run_id": attempt.run_id,
            "task_key": attempt.task_key,
            "attempt_number": attempt.attempt_number,
            "repair_number": attempt.repair_number,
            "status": attempt.status.value,
            "queued_time": attempt.queued_time,
            "start_time": attempt.start_time,
            "kernel_ready_time": attempt.kernel_ready_time,
            "notebook_path": attempt.notebook_path,
            "log_path": attempt.log_path,
            "parameters": dumps(attempt.parameters),
            "kernel_name": attempt.kernel_name,
            "cwd": attempt.cwd,
            "env_names": dumps(attempt.env_names),
            "cells_total": attempt.cells_total,
            "cells_completed": attempt.cells_completed,
            "resumed_from_cell": attempt.resumed_from_cell,
            "worker_pid": worker_pid,
            "kernel_pid": kernel_pid,
            "kernel_create_time": kernel_create_time,
        }
        columns = ", ".join(f"[{c}]" for c in row)
        self.db.execute(  # not Table.insert: it reads the schema on every call (see update_row)
            f"insert into attempts ({columns}) values ({', '.join('?' * len(row))})", list(row.values())
        )

    @writes
    def set_attempt_resume(
        self,
        run_id: int,
        task_key: str,
        attempt_number: int,
        resumed_from_cell: int,
        reused_cells: int | None,
    ) -> None:
        """Record that an attempt resumed from the input cell ``resumed_from_cell`` and how many code cells it
        reused from the failed attempt."""
        update_row(
            self.db,
            "attempts",
            {"run_id": run_id, "task_key": task_key, "attempt_number": attempt_number},
            {"resumed_from_cell": resumed_from_cell, "reused_cells": reused_cells},
        )

    @writes
    def set_attempt_kernel(
        self,
        run_id: int,
        task_key: str,
        attempt_number: int,
        pid: int | None,
        create_time: float | None,
        ready_time: str | None = None,
    ) -> None:
        """Record the kernel process of a running attempt (reaped if the orchestrator dies) and, when given,
        when it was ready (UTC ISO)."""
        update: dict[str, Any] = {"kernel_pid": pid, "kernel_create_time": create_time}
        if ready_time is not None:
            update["kernel_ready_time"] = ready_time
        update_row(
            self.db,
            "attempts",
            {"run_id": run_id, "task_key": task_key, "attempt_number": attempt_number},
            update,
        )

    @writes
    def set_attempt_environment(
        self, run_id: int, task_key: str, attempt_number: int, environment: dict[str, Any]
    ) -> None:
        """Record the environment an attempt ran in (see :class:`~.models.Attempt`)."""
        update_row(
            self.db,
            "attempts",
            {"run_id": run_id, "task_key": task_key, "attempt_number": attempt_number},
            {"environment": dumps(environment)},
        )

    @writes
    def update_attempt_progress(
        self, run_id: int, task_key: str, attempt_number: int, cells_completed: int, cells_total: int
    ) -> None:
        """Record how many of the attempt's code cells were executed, of how many."""
        update_row(
            self.db,
            "attempts",
            {"run_id": run_id, "task_key": task_key, "attempt_number": attempt_number},
            {"cells_completed": cells_completed, "cells_total": cells_total},
        )

    @writes
    def finish_attempt(
        self,
        run_id: int,
        task_key: str,
        attempt_number: int,
        status: TaskRunStatus,
        error: AttemptError | None,
    ) -> None:
        """Record an attempt's outcome and error fields."""
        key = {"run_id": run_id, "task_key": task_key, "attempt_number": attempt_number}
        row = get_row(self.db, "attempts", key, "start_time")
        now = utc_now()
        update: dict[str, Any] = {
            "status": status.value,
            "end_time": now,
            "duration_seconds": seconds_between(row["start_time"], now),
        }
        if error is not None:
            update.update({f: getattr(error, f) for f in _ATTEMPT_ERROR_FIELDS})
            update["error_kind"] = error.kind
            update["traceback"] = dumps(error.traceback)
        update_row(self.db, "attempts", key, update)

    @writes
    def set_task_values(
        self, run_id: int, task_key: str, attempt_number: int, values: dict[str, Any]
    ) -> None:
        """Replace the task values a task run published."""
        now = utc_now()
        self.db.execute("delete from task_values where run_id = ? and task_key = ?", [run_id, task_key])
        self.db.table("task_values").insert_all(
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

    @reads
    def task_values(self, run_id: int) -> dict[str, dict[str, Any]]:
        """Every task value of the run: ``{task_key: {name: value}}``. A for-each task's are its current
        iterations' (not those a repair dropped: ``skipped``) as lists in map_index order
        (:func:`~..models.iteration_values`), whether or not this process expanded it."""
        result: dict[str, dict[str, Any]] = {}
        for row in self.db.table("task_values").rows_where("run_id = ?", [run_id], order_by="task_key, name"):
            result.setdefault(row["task_key"], {})[row["name"]] = json.loads(row["value"])
        iterations: dict[str, list[str]] = {}
        for key, parent in self.db.execute(
            "select task_key, parent_task_key from task_runs where run_id = ? and parent_task_key is not null "
            "and status != ? order by map_index",
            [run_id, TaskRunStatus.skipped.value],
        ).fetchall():
            iterations.setdefault(parent, []).append(key)
        for parent, keys in iterations.items():
            result[parent] = iteration_values([result.get(k, {}) for k in keys])
        return result

    @reads
    def unfinished_attempts(self, run_id: int) -> list[RunningAttempt]:
        """Attempts of a run still marked running, with their process ids (for reaping orphans)."""
        return [
            RunningAttempt.from_row(row)
            for row in self.db.table("attempts").rows_where(
                "run_id = ? and status = ?", [run_id, TaskRunStatus.running.value]
            )
        ]

    @reads
    def statuses(self, run_id: int) -> dict[str, TaskRunStatus]:
        """Every task run's status: ``{task_key: status}``."""
        return {
            r["task_key"]: TaskRunStatus(r["status"])
            for r in self.db.table("task_runs").rows_where("run_id = ?", [run_id])
        }

    @reads
    def attempt_counts(self, run_id: int) -> dict[str, int]:
        """Attempts made so far per task run: ``{task_key: count}``."""
        rows = self.db.execute(
            "select task_key, max(attempt_number) from attempts where run_id = ? group by task_key",
            [run_id],
        ).fetchall()
        return {k: n for k, n in rows}
