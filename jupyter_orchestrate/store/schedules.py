"""Scheduling records: leases, per-schedule state and the record of every fire (tables ``leases``,
``schedule_state``, ``fires``), and the job's active runs that its ``max_concurrent_runs`` counts."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from jupyter_orchestrate.errors import ConflictError
from jupyter_orchestrate.models import FireStatus, RunStatus, utc_now
from jupyter_orchestrate.store.connection import StoreConnection, last_pk, reads, writes
from jupyter_orchestrate.store.records import Fire, Lease, ScheduleState


def mark_fire_started(db: Database, fire_id: int, run_id: int) -> None:
    """Mark a fire ``started`` by ``run_id`` (inside the transaction that created the run).

    A compare-and-set: only a ``firing`` or ``queued`` fire starts, so two schedulers that both hold a queued
    fire (a lease handover: the new leader adopts the queued fires from the records) cannot both start it.

    Raises:
        ConflictError: the fire is no longer waiting (another scheduler started it, or it was skipped); the
            caller's transaction rolls back, so no run is recorded for it.
    """
    cursor = db.execute(
        "update fires set status = ?, run_id = ? where fire_id = ? and status in (?, ?)",
        [FireStatus.started.value, run_id, fire_id, FireStatus.firing.value, FireStatus.queued.value],
    )
    if cursor.rowcount == 0:
        raise ConflictError(
            f"fire {fire_id} is not waiting to start (started or skipped by another scheduler)"
        )


class ScheduleRecords(StoreConnection):
    """The scheduler's lease, schedule state and fire records."""

    @writes
    def acquire_lease(self, name: str, holder: str, ttl_seconds: float, now: str, expires: str) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``expires`` (ISO times, UTC).

        Succeeds when nobody holds it, ``holder`` already does, or the holder's lease expired before ``now``.
        A single conditional UPDATE is the compare-and-set, so two processes can never both succeed.
        """
        self.db.execute(
            "insert or ignore into leases (name, holder, acquired_time, heartbeat_time, expires_time) "
            "values (?, '', ?, ?, ?)",
            [name, now, now, now],
        )
        cursor = self.db.execute(
            "update leases set holder = ?, heartbeat_time = ?, expires_time = ?, "
            "acquired_time = case when holder = ? then acquired_time else ? end "
            "where name = ? and (holder = ? or holder = '' or expires_time < ?)",
            [holder, now, expires, holder, now, name, holder, now],
        )
        return cursor.rowcount == 1

    @writes
    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (on clean shutdown) so another scheduler takes over at once."""
        self.db.execute("update leases set holder = '' where name = ? and holder = ?", [name, holder])

    @reads
    def lease(self, name: str) -> Lease | None:
        """The lease (holder, acquired/heartbeat/expires times) or None."""
        rows = list(self.db.table("leases").rows_where("name = ?", [name]))
        return Lease.from_row(rows[0]) if rows else None

    @reads
    def schedule_state(self, job_path: str, schedule_name: str) -> ScheduleState | None:
        """Persisted state of a schedule (None: never seen by a scheduler, pause or resume)."""
        rows = list(
            self.db.table("schedule_state").rows_where(
                "job_path = ? and schedule_name = ?", [job_path, schedule_name]
            )
        )
        return ScheduleState.from_row(rows[0]) if rows else None

    @writes
    def set_schedule_state(
        self,
        job_path: str,
        schedule_name: str,
        *,
        next_fire_time: str | None = None,
        last_fire_time: str | None = None,
        paused: bool | None = None,
        rule: str | None = None,
    ) -> None:
        """Upsert a schedule's state: the fields given (not None) change, the others keep their value."""
        given = {"next_fire_time": next_fire_time, "last_fire_time": last_fire_time, "rule": rule}
        update: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if paused is not None:
            update["paused"] = int(paused)
        self.db.table("schedule_state").upsert(
            {"job_path": job_path, "schedule_name": schedule_name, "updated_time": utc_now(), **update},
            pk=("job_path", "schedule_name"),
        )

    @writes
    def record_fire(
        self,
        job_path: str,
        schedule_name: str,
        scheduled_time: str,
        *,
        status: FireStatus,
        holder: str,
        reason: str | None = None,
    ) -> int | None:
        """Record a fire once. Returns its id, or None if this fire was already recorded (by anyone)."""
        try:
            return last_pk(
                self.db.table("fires").insert(
                    {
                        "job_path": job_path,
                        "schedule_name": schedule_name,
                        "scheduled_time": scheduled_time,
                        "fire_time": utc_now(),
                        "status": FireStatus(status).value,
                        "reason": reason,
                        "holder": holder,
                    }
                )
            )
        except sqlite3.IntegrityError:
            return None

    @writes
    def update_fire(
        self, fire_id: int, *, status: FireStatus, reason: str | None = None, run_id: int | None = None
    ) -> None:
        """Set a fire's outcome: status (started, queued, skipped, failed), why, and (started) its run."""
        update: dict[str, Any] = {"status": FireStatus(status).value, "reason": reason}
        if run_id is not None:
            update["run_id"] = run_id
        self.db.table("fires").update(fire_id, update)

    @reads
    def fire(self, fire_id: int) -> Fire:
        """One fire record."""
        return Fire.from_row(dict(self.db.table("fires").get(fire_id)))

    @reads
    def fires(self, job_path: str | None = None, limit: int = 100) -> list[Fire]:
        """Fire records, newest first."""
        where, args = ("job_path = ?", [job_path]) if job_path else (None, [])
        return [
            Fire.from_row(row)
            for row in self.db.table("fires").rows_where(where, args, order_by="fire_id desc", limit=limit)
        ]

    @reads
    def queued_fires(self) -> list[Fire]:
        """Fires waiting for a ``max_concurrent_runs`` slot (status ``queued``), oldest first (a new leader
        adopts them: a scheduler's queue must survive its restart)."""
        return [
            Fire.from_row(row)
            for row in self.db.table("fires").rows_where(
                "status = ?", [FireStatus.queued.value], order_by="fire_id"
            )
        ]

    @reads
    def active_runs(self, job_path: str) -> list[int]:
        """Ids of the job's runs that are queued, running or canceling, oldest first."""
        rows = self.db.execute(
            "select run_id from runs where job_path = ? and status in (?, ?, ?) order by run_id",
            [job_path, RunStatus.queued.value, RunStatus.running.value, RunStatus.canceling.value],
        ).fetchall()
        return [int(r[0]) for r in rows]
