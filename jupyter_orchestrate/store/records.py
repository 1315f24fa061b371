"""Typed records the store returns for recovery, the server's store watcher and scheduling.

Small frozen dataclasses, one per question a caller asks of the database, so that no module outside the store
package indexes a database row by a string key. Each is built from a row by its ``from_row`` (the one place
that knows the column names); times are ISO strings in UTC as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jupyter_orchestrate.models import FireStatus, RunStatus, TaskRunStatus


@dataclass(frozen=True)
class Orchestrator:
    """An orchestrator process, the owner of the runs it executes: its ``pid``, psutil's ``create_time`` of it
    (seconds since the epoch, so that a reused pid is not mistaken for it) and its ``host`` name."""

    pid: int
    create_time: float
    host: str

    def columns(self) -> dict[str, Any]:
        """The owner columns of a ``runs`` row."""
        return {
            "orchestrator_pid": self.pid,
            "orchestrator_create_time": self.create_time,
            "orchestrator_host": self.host,
        }


@dataclass(frozen=True)
class RunOwner:
    """An unfinished run with the orchestrator process that owns it (crash recovery, the run monitor).

    ``orchestrator_create_time`` is psutil's process start time (seconds since the epoch), so that a reused
    pid is not mistaken for the owner; ``heartbeat_time`` is the owner's last heartbeat (None: never).
    """

    run_id: int
    job_name: str
    job_path: str
    status: RunStatus
    start_time: str
    orchestrator_pid: int | None
    orchestrator_create_time: float | None
    orchestrator_host: str | None
    heartbeat_time: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunOwner:
        """The record of a ``runs`` row."""
        return cls(
            run_id=row["run_id"],
            job_name=row["job_name"],
            job_path=row["job_path"],
            status=RunStatus(row["status"]),
            start_time=row["start_time"],
            orchestrator_pid=row["orchestrator_pid"],
            orchestrator_create_time=row["orchestrator_create_time"],
            orchestrator_host=row["orchestrator_host"],
            heartbeat_time=row["heartbeat_time"],
        )

    def expected(self, *, heartbeat: bool = True) -> dict[str, Any]:
        """The column values :meth:`~.runs.RunRecords.end_unfinished` compares-and-sets against: status and
        owner, and (``heartbeat``) the heartbeat time, so that an owner beating since is not ended."""
        fields: dict[str, Any] = {
            "status": self.status.value,
            "orchestrator_pid": self.orchestrator_pid,
            "orchestrator_create_time": self.orchestrator_create_time,
        }
        if heartbeat:
            fields["heartbeat_time"] = self.heartbeat_time
        return fields


@dataclass(frozen=True)
class RunningAttempt:
    """An attempt still marked ``running``, with the processes to reap should its orchestrator be dead."""

    run_id: int
    task_key: str
    attempt_number: int
    start_time: str
    worker_pid: int | None
    kernel_pid: int | None
    kernel_create_time: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunningAttempt:
        """The record of an ``attempts`` row."""
        return cls(
            run_id=row["run_id"],
            task_key=row["task_key"],
            attempt_number=row["attempt_number"],
            start_time=row["start_time"],
            worker_pid=row["worker_pid"],
            kernel_pid=row["kernel_pid"],
            kernel_create_time=row["kernel_create_time"],
        )


@dataclass(frozen=True)
class WatchedRun:
    """What the server's store watcher compares of a run between two polls."""

    run_id: int
    status: RunStatus
    status_reason: str | None
    job_name: str
    orchestrator_pid: int | None
    orchestrator_host: str | None


@dataclass(frozen=True)
class WatchedTaskRun:
    """What the server's store watcher compares of a task run between two polls."""

    run_id: int
    task_key: str
    status: TaskRunStatus
    status_reason: str | None


@dataclass(frozen=True)
class Lease:
    """A named lease (the scheduler's leader lease): who holds it (``""``: nobody) and until when."""

    name: str
    holder: str
    acquired_time: str
    heartbeat_time: str
    expires_time: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Lease:
        """The record of a ``leases`` row."""
        return cls(
            name=row["name"],
            holder=row["holder"],
            acquired_time=row["acquired_time"],
            heartbeat_time=row["heartbeat_time"],
            expires_time=row["expires_time"],
        )


@dataclass(frozen=True)
class ScheduleState:
    """The persisted state of a schedule or trigger (``schedule_name`` ``trigger:<name>``).

    ``paused`` is None while job.yaml decides (a pause or resume from the UI or CLI sets it); ``rule`` is the
    rule ``next_fire_time`` was computed from (a changed rule is recomputed, see the scheduler).
    """

    job_path: str
    schedule_name: str
    next_fire_time: str | None = None
    last_fire_time: str | None = None
    paused: bool | None = None
    rule: str | None = None
    updated_time: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ScheduleState:
        """The record of a ``schedule_state`` row."""
        return cls(
            job_path=row["job_path"],
            schedule_name=row["schedule_name"],
            next_fire_time=row["next_fire_time"],
            last_fire_time=row["last_fire_time"],
            paused=None if row["paused"] is None else bool(row["paused"]),
            rule=row.get("rule"),
            updated_time=row["updated_time"],
        )


@dataclass(frozen=True)
class Fire:
    """The record of one fire of a schedule or trigger (unique per job, schedule and scheduled time).

    ``status``: ``firing`` (recorded, its run not created yet), ``started`` (``run_id`` is its run),
    ``queued`` (waiting for a ``max_concurrent_runs`` slot), ``skipped`` or ``failed`` (``reason`` says why).
    ``scheduled_time`` is the logical fire time (an event trigger's unique key for trigger fires),
    ``fire_time`` when it was recorded, ``holder`` the scheduler that recorded it.
    """

    fire_id: int
    job_path: str
    schedule_name: str
    scheduled_time: str
    fire_time: str
    status: FireStatus
    run_id: int | None
    reason: str | None
    holder: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Fire:
        """The record of a ``fires`` row."""
        return cls(
            fire_id=row["fire_id"],
            job_path=row["job_path"],
            schedule_name=row["schedule_name"],
            scheduled_time=row["scheduled_time"],
            fire_time=row["fire_time"],
            status=FireStatus(row["status"]),
            run_id=row["run_id"],
            reason=row["reason"],
            holder=row["holder"],
        )


@dataclass(frozen=True)
class CellStats:
    """One code cell of a task over a set of runs (a job's trends): its ``cell_index`` in the input notebook
    (None for the injected-parameters cell), how many times it executed, the ``durations`` of those executions
    in seconds (oldest first) and the most recent first line of its source (None when unknown)."""

    task_key: str
    cell_index: int | None
    executions: int
    max_duration_seconds: float
    durations: tuple[float, ...]
    source_first_line: str | None
