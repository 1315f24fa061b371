"""Jobs and runs (tables ``jobs``, ``runs``, ``repairs``): creating, claiming, heartbeating, finishing and
repairing runs, reading them as models, and ending what a dead owner left unfinished."""

from __future__ import annotations

import socket
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from jupyter_orchestrate.errors import ConflictError
from jupyter_orchestrate.models import (
    Attempt,
    ChildRun,
    Job,
    KeptKernel,
    Repair,
    Run,
    RunStatus,
    TaskRun,
    TaskRunStatus,
    Trigger,
    iteration_key,
    seconds_between,
    utc_now,
)
from jupyter_orchestrate.store.attempts import AttemptRecords, attempt_of
from jupyter_orchestrate.store.connection import dumps, last_pk, loads, reads, writes
from jupyter_orchestrate.store.kept_kernels import KeptKernelRecords
from jupyter_orchestrate.store.records import Orchestrator, RunOwner, WatchedRun, WatchedTaskRun
from jupyter_orchestrate.store.schedules import mark_fire_started

_UNFINISHED = (RunStatus.queued.value, RunStatus.running.value, RunStatus.canceling.value)


class _SnapshotTask(BaseModel):
    """What a run's document needs of a task in the run's job snapshot (validating the whole
    :class:`~..models.Job` costs 4x as much: ~10 ms per ``GET runs/{id}`` of a 1,000-task run)."""

    model_config = ConfigDict(extra="ignore")
    task_key: str
    warnings: list[str] = Field(default_factory=list)


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tasks: list[_SnapshotTask]


# the runs columns a listing reads (not the snapshot: parsing every run's job definition made listings slow)
_SUMMARY_COLUMNS = (
    "run_id",
    "job_name",
    "job_path",
    "status",
    "status_reason",
    "trigger",
    "trigger_time",
    "trigger_reason",
    "start_time",
    "end_time",
    "duration_seconds",
    "parameters",
    "overrides",
    "max_parallel_tasks",
    "repair_count",
    "parent_run_id",
    "parent_task_key",
)


def this_process() -> Orchestrator:
    """This process as the owner of the runs it executes (pid, psutil's start time, host name)."""
    me = psutil.Process()
    return Orchestrator(pid=me.pid, create_time=me.create_time(), host=socket.gethostname())


class RunRecords(AttemptRecords, KeptKernelRecords):
    """Runs of jobs, with their task runs, attempts (:class:`~.attempts.AttemptRecords`) and repairs."""

    # -- jobs and runs -------------------------------------------------------------------------------------
    @writes
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
        parent: tuple[int, str] | None = None,
    ) -> int:
        """Record a new ``queued`` run of ``job`` with a snapshot of its definition and a ``pending`` task run
        per task, owned by this process (:func:`this_process`) until a runner claims it. Returns the run id.

        ``parent``: ``(run_id, task_key)`` of the run-job task that starts this run (a child run).

        ``fire_id``: the schedule or trigger fire that starts the run; it is marked ``started`` with this run id
        in the same transaction, so a scheduler killed in between leaves no run without its fire."""
        now = utc_now()
        existing = list(self.db.table("jobs").rows_where("path = ?", [job.path]))
        if existing:
            job_id = existing[0]["job_id"]
            self.db.table("jobs").update(job_id, {"name": job.name, "updated_time": now})
        else:
            job_id = (
                self.db.table("jobs")
                .insert({"name": job.name, "path": job.path, "created_time": now, "updated_time": now})
                .last_pk
            )
        run_id = last_pk(
            self.db.table("runs").insert(
                {
                    "job_id": job_id,
                    "job_name": job.name,
                    "job_path": job.path,
                    "status": RunStatus.queued.value,
                    "trigger": trigger.value,
                    "trigger_time": trigger_time or now,
                    "trigger_reason": trigger_reason,
                    "start_time": now,
                    "parameters": dumps(parameters),
                    "overrides": dumps(overrides),
                    "snapshot": job.model_dump_json(),
                    "max_parallel_tasks": max_parallel_tasks,
                    "repair_count": 0,
                    "parent_run_id": parent[0] if parent else None,
                    "parent_task_key": parent[1] if parent else None,
                    **this_process().columns(),  # the creating process owns the queued run until it executes it or dies
                    "heartbeat_time": now,
                }
            )
        )
        self.db.table("task_runs").insert_all(
            {
                "run_id": run_id,
                "task_key": t.task_key,
                "notebook": t.notebook,
                "depends_on": dumps(t.depends_on),
                "status": TaskRunStatus.pending.value,
            }
            for t in job.tasks
        )
        if fire_id is not None:
            mark_fire_started(self.db, fire_id, run_id)
        return run_id

    def snapshot(self, run_id: int) -> Job:
        """The job definition the run executes (updated by repairs)."""
        return Job.model_validate_json(self._run_row(run_id)["snapshot"])

    @writes
    def claim_run(self, run_id: int, *, pid: int, create_time: float, host: str) -> RunStatus:
        """Record which orchestrator process executes the run now, and mark it running.

        A compare-and-set: only a ``queued`` run becomes ``running``. A run that was asked to cancel before its
        runner started stays ``canceling`` (the claim still records the owner, who must cancel it); a run a
        monitor has already ended is left as it is.

        Returns: the run's status after the claim: ``running``, ``canceling`` or the terminal status it had.
        """
        owner = {**Orchestrator(pid, create_time, host).columns(), "heartbeat_time": utc_now()}
        status = self.run_status(run_id)
        if status == RunStatus.queued:
            self.db.table("runs").update(
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
            self.db.table("runs").update(run_id, owner)
        return status

    @writes
    def heartbeat(self, run_id: int) -> None:
        """Record that the run's orchestrator is alive now (read by the run monitors of every orchestrator)."""
        self.db.table("runs").update(run_id, {"heartbeat_time": utc_now()})

    @reads
    def run_status(self, run_id: int) -> RunStatus:
        """The run's status (a cheap query, polled by runners to notice a cancel request).

        Raises:
            NotFoundError: no run has this id.
        """
        row = self.db.execute("select status from runs where run_id = ?", [run_id]).fetchone()
        if row is None:
            raise self._not_found(run_id)
        return RunStatus(row[0])

    @writes
    def request_cancel(self, run_id: int) -> bool:
        """Ask the orchestrator executing the run to cancel it. Returns False if the run is already terminal."""
        status = self.run_status(run_id)
        if status.is_terminal:
            return False
        self.db.table("runs").update(
            run_id, {"status": RunStatus.canceling.value, "status_reason": "cancel requested"}
        )
        return True

    @writes
    def finish_run(self, run_id: int, status: RunStatus, reason: str | None = None) -> None:
        """Record the run's final status, its end time and duration (seconds since its start)."""
        row = self._run_row(run_id)
        now = utc_now()
        self.db.table("runs").update(
            run_id,
            {
                "status": status.value,
                "status_reason": reason,
                "end_time": now,
                "duration_seconds": seconds_between(row["start_time"], now),
            },
        )

    @writes
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
        resumed_from: dict[str, int] | None = None,
    ) -> int:
        """Record a repair and reset its task runs to ``pending``, in one transaction. ``resumed_from``: a
        resume's task keys and the input cell index each resumes from.

        Returns the repair number (1 for the first repair of the run).

        Raises:
            ConflictError: the run is not finished (e.g. another repair of it started first).
        """
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
        number: int = (row["repair_count"] or 0) + 1
        self.db.table("repairs").insert(
            {
                "run_id": run_id,
                "repair_number": number,
                "repair_time": utc_now(),
                "requested_task_keys": dumps(requested_task_keys)
                if requested_task_keys is not None
                else None,
                "rerun_dependents": int(rerun_dependents),
                "task_keys": dumps(task_keys),
                "reused_task_keys": dumps(reused_task_keys),
                "parameters": dumps(parameters),
                "resumed_from": dumps(resumed_from or {}),
            }
        )
        self.db.table("runs").update(
            run_id,
            {
                "repair_count": number,
                "status": RunStatus.queued.value,
                "status_reason": f"repair {number}",
                "snapshot": job.model_dump_json(),
                "parameters": dumps(run_parameters),
                "overrides": dumps(overrides),
                "end_time": None,
                "duration_seconds": None,
                **this_process().columns(),  # the repairing process owns the run now, not the one that ran it before
                "heartbeat_time": utc_now(),
            },
        )
        for key in task_keys:
            self.db.table("task_runs").update(
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

    # -- reading -------------------------------------------------------------------------------------------
    @reads
    def _run_row(self, run_id: int) -> dict[str, Any]:
        rows = list(self.db.table("runs").rows_where("run_id = ?", [run_id]))
        if not rows:
            raise self._not_found(run_id)
        return rows[0]

    @staticmethod
    def _run_fields(row: dict[str, Any]) -> Run:
        """The run of a ``runs`` row (``_SUMMARY_COLUMNS`` at least), without task runs and repairs."""
        return Run(
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
            parameters=loads(row["parameters"], {}),
            overrides=loads(row["overrides"], {}),
            max_parallel_tasks=row["max_parallel_tasks"],
            repair_count=row["repair_count"] or 0,
            parent_run_id=row.get("parent_run_id"),
            parent_task_key=row.get("parent_task_key"),
        )

    def _run(self, row: dict[str, Any], details: bool) -> Run:
        run = self._run_fields(row)
        run_id = row["run_id"]
        attempts: dict[str, list[Attempt]] = {}
        values: dict[str, dict[str, Any]] = {}
        live: dict[str, KeptKernel] = {}
        if details:
            for arow in self.db.table("attempts").rows_where(
                "run_id = ?", [run_id], order_by="task_key, attempt_number"
            ):
                attempts.setdefault(arow["task_key"], []).append(attempt_of(arow))
            values = self.task_values(run_id)
            for kept in self.kept_kernels(run_id):
                live[kept.task_key] = kept
            run.repairs = [
                Repair(
                    run_id=r["run_id"],
                    repair_number=r["repair_number"],
                    repair_time=r["repair_time"],
                    requested_task_keys=loads(r["requested_task_keys"], None),
                    rerun_dependents=bool(r["rerun_dependents"]),
                    task_keys=loads(r["task_keys"], []),
                    reused_task_keys=loads(r["reused_task_keys"], []),
                    parameters=loads(r["parameters"], {}),
                    resumed_from=loads(r.get("resumed_from"), {}),
                )
                for r in self.db.table("repairs").rows_where("run_id = ?", [run_id], order_by="repair_number")
            ]
        snapshot = _Snapshot.model_validate_json(row["snapshot"]).tasks
        order = {t.task_key: i for i, t in enumerate(snapshot)}
        warnings = {t.task_key: t.warnings for t in snapshot}
        if details:
            run.child_runs = [
                ChildRun(task_key=r[0], run_id=r[1], job_name=r[2], status=RunStatus(r[3]))
                for r in self.db.execute(
                    "select parent_task_key, run_id, job_name, status from runs where run_id in "
                    "(select max(run_id) from runs where parent_run_id = ? group by parent_task_key) "
                    "order by run_id",
                    [run_id],
                ).fetchall()
            ]
        rows = list(self.db.table("task_runs").rows_where("run_id = ?", [run_id]))
        task_rows = sorted(
            (r for r in rows if r["parent_task_key"] is None), key=lambda r: order.get(r["task_key"], 0)
        )

        def task_run(t: dict[str, Any]) -> TaskRun:
            key = t["task_key"]
            return TaskRun(
                run_id=run_id,
                task_key=key,
                notebook=t["notebook"],
                depends_on=loads(t["depends_on"], []),
                status=TaskRunStatus(t["status"]),
                status_reason=t["status_reason"],
                start_time=t["start_time"],
                end_time=t["end_time"],
                duration_seconds=t["duration_seconds"],
                attempts=attempts.get(key, []),
                task_values=values.get(key, {}),
                warnings=warnings.get(t["parent_task_key"] or key, []),
                kept_kernel=live.get(key),
                map_index=t["map_index"],
                input=loads(t["input"], None),
            )

        iterations: dict[str, list[TaskRun]] = {}
        for t in sorted((r for r in rows if r["parent_task_key"] is not None), key=lambda r: r["map_index"]):
            iterations.setdefault(t["parent_task_key"], []).append(task_run(t))
        run.task_runs = []
        for t in task_rows:
            found = task_run(t)
            found.iterations = iterations.get(t["task_key"], [])  # its values: task_values() made them
            run.task_runs.append(found)
        return run

    @reads
    def run_reason(self, run_id: int) -> str | None:
        """The run's status reason (a cheap query)."""
        row = self.db.execute("select status_reason from runs where run_id = ?", [run_id]).fetchone()
        return row[0] if row else None

    @reads
    def child_run_of(self, run_id: int, task_key: str) -> int | None:
        """The latest run that run-job task ``task_key`` of run ``run_id`` started, or None."""
        row = self.db.execute(
            "select max(run_id) from runs where parent_run_id = ? and parent_task_key = ?", [run_id, task_key]
        ).fetchone()
        return row[0] if row else None

    @reads
    def parent_runs(self, run_id: int) -> list[tuple[int, str]]:
        """The chain of runs above run ``run_id`` (a child run's parent, its parent ...): ``[(run_id, job_path)]``,
        nearest first, ``run_id``'s own first."""
        chain: list[tuple[int, str]] = []
        current: int | None = run_id
        while current is not None and len(chain) < 100:
            row = self.db.execute(
                "select job_path, parent_run_id from runs where run_id = ?", [current]
            ).fetchone()
            if row is None:
                break
            chain.append((current, row[0]))
            current = row[1]
        return chain

    @writes
    def record_iterations(
        self, run_id: int, task_key: str, inputs: list[Any], statuses: list[TaskRunStatus], reason: str
    ) -> None:
        """Record the expansion of for-each task ``task_key``: one task run ``task_key[i]`` per element of
        ``inputs`` with ``statuses[i]`` (an iteration reused from an earlier execution keeps its row, attempts
        and task values; one to execute is reset and its task values dropped). Iterations of an earlier
        expansion beyond ``len(inputs)`` are ``skipped`` with ``reason``."""
        table = self.db.table("task_runs")
        notebook = None
        for row in table.rows_where("run_id = ? and task_key = ?", [run_id, task_key]):
            notebook = row["notebook"]
        old = {
            r["map_index"]: r
            for r in table.rows_where("run_id = ? and parent_task_key = ?", [run_id, task_key])
        }
        for index, (element, status) in enumerate(zip(inputs, statuses, strict=True)):
            key = iteration_key(task_key, index)
            if index in old and status.is_terminal:
                continue  # reused as it is
            if index in old:
                self.db.execute("delete from task_values where run_id = ? and task_key = ?", [run_id, key])
            table.upsert(
                {
                    "run_id": run_id,
                    "task_key": key,
                    "notebook": notebook,
                    "depends_on": "[]",
                    "status": status.value,
                    "status_reason": None,
                    "start_time": None,
                    "end_time": None,
                    "duration_seconds": None,
                    "parent_task_key": task_key,
                    "map_index": index,
                    "input": dumps(element),
                },
                pk=("run_id", "task_key"),
            )
        for index in sorted(i for i in old if i >= len(inputs)):
            table.update(
                (run_id, iteration_key(task_key, index)),
                {"status": TaskRunStatus.skipped.value, "status_reason": reason},
            )

    @reads
    def iteration_records(self, run_id: int, task_key: str) -> list[tuple[Any, TaskRunStatus, int]]:
        """The iterations recorded for for-each task ``task_key``: ``(input, status, attempts made)`` in
        map_index order (empty before its first expansion)."""
        counts = dict(
            self.db.execute(
                "select task_key, count(*) from attempts where run_id = ? and task_key like ? group by task_key",
                [run_id, f"{task_key}[%"],
            ).fetchall()
        )
        return [
            (loads(r["input"], None), TaskRunStatus(r["status"]), counts.get(r["task_key"], 0))
            for r in self.db.table("task_runs").rows_where(
                "run_id = ? and parent_task_key = ?", [run_id, task_key], order_by="map_index"
            )
        ]

    @reads
    def get_run(self, run_id: int) -> Run:
        """The run with its task runs, attempts, task values and repairs.

        Raises:
            NotFoundError: no run has this id.
        """
        return self._run(self._run_row(run_id), details=True)

    @reads
    def list_runs(
        self,
        *,
        job_name: str | None = None,
        job_path: str | None = None,
        status: RunStatus | None = None,
        trigger: Trigger | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        before: int | None = None,
    ) -> list[Run]:
        """Runs, newest (highest run id) first, with their task runs' statuses and durations (no attempts).

        Filters (all optional, combined with *and*): ``job_name``; ``job_path`` (the job folder's absolute path);
        ``status``; ``trigger``; ``since``/``until``: UTC ISO times (as :func:`~..models.utc_now` writes them)
        the run's start time is at or after / before. ``before``: a run id, the keyset cursor of paging (the
        last run id of the previous page): pages never repeat or skip a run, also while new runs are added.
        ``limit``: at most this many runs.
        """
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("job_name", job_name),
            ("job_path", job_path),
            ("status", status.value if status else None),
            ("trigger", trigger.value if trigger else None),
        ):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("start_time >= ?")
            args.append(since)
        if until is not None:
            where.append("start_time < ?")
            args.append(until)
        if before is not None:
            where.append("run_id < ?")
            args.append(before)
        rows = list(
            self.db.table("runs").rows_where(
                " and ".join(where) or None,
                args,
                select=", ".join(_SUMMARY_COLUMNS),
                order_by="run_id desc",
                limit=limit,
            )
        )
        return self._summaries(rows)

    def _summaries(self, rows: list[dict[str, Any]]) -> list[Run]:
        """Runs of ``runs`` rows with their task runs (one query for all; in the job's task order, as
        ``create_run`` inserted them), without attempts, task values or the snapshot's warnings."""
        tasks: dict[int, list[TaskRun]] = {}
        ids = [r["run_id"] for r in rows]
        if ids:
            for t in self.db.execute(
                "select run_id, task_key, notebook, depends_on, status, status_reason, start_time, end_time, "
                f"duration_seconds from task_runs where run_id in ({', '.join('?' * len(ids))}) "
                "and parent_task_key is null order by run_id, rowid",
                ids,
            ).fetchall():
                tasks.setdefault(t[0], []).append(
                    TaskRun(
                        run_id=t[0],
                        task_key=t[1],
                        notebook=t[2],
                        depends_on=loads(t[3], []),
                        status=TaskRunStatus(t[4]),
                        status_reason=t[5],
                        start_time=t[6],
                        end_time=t[7],
                        duration_seconds=t[8],
                    )
                )
        runs = []
        for row in rows:
            run = self._run_fields(row)
            run.task_runs = tasks.get(row["run_id"], [])
            runs.append(run)
        return runs

    @reads
    def recent_runs(self, job_paths: list[str], limit: int = 10) -> dict[str, list[Run]]:
        """The last ``limit`` runs of each job folder in ``job_paths`` (absolute paths), newest first, in one
        read transaction: one indexed query per job (index ``runs(job_path, run_id)``), run fields only (no
        task runs). The jobs list shows them for every job; loading each run whole made ``GET jobs`` slow."""
        columns = ", ".join(_SUMMARY_COLUMNS)
        result: dict[str, list[Run]] = {}
        for path in job_paths:
            cursor = self.db.execute(
                f"select {columns} from runs where job_path = ? order by run_id desc limit ?", [path, limit]
            )
            names = [d[0] for d in cursor.description]
            result[path] = [self._run_fields(dict(zip(names, r, strict=True))) for r in cursor.fetchall()]
        return result

    @reads
    def unfinished_runs(self) -> list[RunOwner]:
        """Runs not in a terminal status, with their orchestrator process fields (for crash recovery)."""
        return [
            RunOwner.from_row(row)
            for row in self.db.table("runs").rows_where("status in (?, ?, ?)", list(_UNFINISHED))
        ]

    @reads
    def watched_rows(
        self, after_run_id: int, run_ids: list[int]
    ) -> tuple[list[WatchedRun], list[WatchedTaskRun]]:
        """What the server's store watcher compares between two polls (two indexed queries, one snapshot): the
        runs with an id above ``after_run_id``, the unfinished runs and the runs in ``run_ids``, and the task
        runs of those runs, each ordered by run id."""
        marks = ", ".join("?" * len(run_ids))
        where = "run_id > ? or status in (?, ?, ?)" + (f" or run_id in ({marks})" if run_ids else "")
        runs = [
            WatchedRun(run_id, RunStatus(status), reason, job_name, pid, host)
            for run_id, status, reason, job_name, pid, host in self.db.execute(
                "select run_id, status, status_reason, job_name, orchestrator_pid, orchestrator_host from runs "
                f"where {where} order by run_id",
                [after_run_id, *_UNFINISHED, *run_ids],
            ).fetchall()
        ]
        ids = [r.run_id for r in runs]
        tasks: list[WatchedTaskRun] = []
        if ids:
            tasks = [
                WatchedTaskRun(run_id, task_key, TaskRunStatus(status), reason)
                for run_id, task_key, status, reason in self.db.execute(
                    "select run_id, task_key, status, status_reason from task_runs "
                    f"where run_id in ({', '.join('?' * len(ids))}) and parent_task_key is null order by run_id",
                    ids,
                ).fetchall()
            ]
        return runs, tasks

    @reads
    def max_run_id(self) -> int:
        """The highest run id recorded (0 when there is none)."""
        return int(self.db.execute("select coalesce(max(run_id), 0) from runs").fetchone()[0])

    # -- recovery ------------------------------------------------------------------------------------------
    @writes
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
                heartbeat, finishing or a new owner claiming the run since the caller looked), e.g.
                :meth:`~.records.RunOwner.expected`.

        Returns: False, changing nothing, when the row no longer matches ``expected``; else True.
        """
        now = utc_now()
        row = self._run_row(run_id)
        if expected and any(row[k] != v for k, v in expected.items()):
            return False
        for a in self.unfinished_attempts(run_id):
            self.db.table("attempts").update(
                (run_id, a.task_key, a.attempt_number),
                {
                    "status": running_status.value,
                    "end_time": now,
                    "duration_seconds": seconds_between(a.start_time, now),
                    "error_kind": error_kind,
                    "ename": ename,
                    "evalue": reason,
                    "traceback": "[]",
                },
            )
        for t in self.db.table("task_runs").rows_where("run_id = ?", [run_id]):
            status = TaskRunStatus(t["status"])
            if status.is_terminal:
                continue
            new = running_status if status == TaskRunStatus.running else TaskRunStatus.canceled
            self.db.table("task_runs").update(
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
