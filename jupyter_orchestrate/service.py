"""OrchestrateService: the one API that the CLI (and later the REST handlers, widgets and scheduler) call.

It turns requests into store records and :class:`~.engine.runner.Runner` s, and recovers runs whose
orchestrator died. It holds no execution logic of its own.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from jupyter_orchestrate.dag import Dag
from jupyter_orchestrate.discovery import load_job, validate_job
from jupyter_orchestrate.engine.active_run import ActiveRun, TaskState, repair_selection
from jupyter_orchestrate.engine.runner import EventCallback, Runner
from jupyter_orchestrate.errors import ConflictError, Problem, ValidationError
from jupyter_orchestrate.executors.base import TaskExecutor
from jupyter_orchestrate.models import Job, Run, RunStatus, TaskRunStatus, Trigger, seconds_between, utc_now
from jupyter_orchestrate.parameters import coerce, render
from jupyter_orchestrate.store import Store

STALE_HEARTBEAT_SECONDS = 60.0


@dataclass
class RepairPlan:
    """What a repair would do: ``task_keys`` re-execute, ``reused_task_keys`` keep their results."""

    run_id: int
    task_keys: list[str]
    reused_task_keys: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)


def coerce_overrides(job: Job, raw: dict[str, Any]) -> dict[str, Any]:
    """Type ``-p`` values by the parameter they set: a job parameter's default, else the notebook's
    ``parameters`` cell type. Values that are not strings are taken as they are.

    Raises:
        ValidationError: a name no job parameter, notebook parameter or task parameter has; or a value that
            is not of the parameter's type.
    """
    notebook_types: dict[str, str | None] = {}
    task_params: set[str] = set()
    for task in job.tasks:
        task_params |= set(task.parameters)
        for p in task.notebook_parameters:
            notebook_types.setdefault(p.name, p.inferred_type)
    problems, result = [], {}
    for name, value in raw.items():
        if name not in job.parameters and name not in notebook_types and name not in task_params:
            known = sorted(set(job.parameters) | set(notebook_types) | task_params)
            problems.append(Problem("", f"-p {name}", f"no job parameter or notebook parameter is named {name!r} (known: {', '.join(known) or 'none'})"))
            continue
        if not isinstance(value, str):
            result[name] = value
            continue
        if name in job.parameters and job.parameters[name] is not None:
            type_name = type(job.parameters[name]).__name__
        else:
            type_name = notebook_types.get(name)
        try:
            result[name] = coerce(value, type_name if type_name in ("int", "float", "bool", "str", "list", "dict") else None, name)
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    return result


def job_parameter_values(job: Job, overrides: dict[str, Any]) -> dict[str, Any]:
    """The job parameters of a run: defaults from ``job.yaml`` with the overrides of the same name applied."""
    return {**job.parameters, **{k: v for k, v in overrides.items() if k in job.parameters}}


def _process_alive(pid: int | None, create_time: float | None) -> bool:
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return create_time is None or abs(process.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


class OrchestrateService:
    """Jobs, runs and repairs over one state home.

    Args:
        home: the state home (see :func:`~.store.resolve_home`).
        recover: on start, mark runs whose orchestrator died as failed and reap their kernels.
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, *, recover: bool = True):
        self.store = Store(home)
        self.recovered: list[int] = self.recover() if recover else []

    # -- jobs ------------------------------------------------------------------------------------------------
    def validate(self, path: str | Path) -> tuple[Job | None, list[Problem]]:
        """Discover and validate a job; see :func:`~.discovery.validate_job`."""
        return validate_job(path)

    # -- runs ------------------------------------------------------------------------------------------------
    def new_run(
        self,
        path: str | Path,
        *,
        parameters: dict[str, Any] | None = None,
        max_parallel: int | None = None,
        trigger: Trigger = Trigger.manual,
        executor: TaskExecutor | None = None,
        on_event: EventCallback | None = None,
    ) -> Runner:
        """Validate the job at ``path``, record a new run, and return its runner (call ``execute()``).

        Args:
            parameters: ``-p`` overrides ``{name: value}``; string values are typed by the parameter they set.
            max_parallel: attempts in flight at most; default ``max_parallel_tasks`` of the job, else CPU count.

        Raises:
            ValidationError: the job or the parameters are invalid (nothing is recorded).
        """
        if max_parallel is not None and max_parallel < 1:
            raise ValidationError(Problem("", "--max-parallel", "must be at least 1"))
        job = load_job(path)
        overrides = coerce_overrides(job, parameters or {})
        run_parameters = job_parameter_values(job, overrides)
        parallel = max_parallel or job.max_parallel_tasks or os.cpu_count() or 1
        run_id = self.store.create_run(job, parameters=run_parameters, overrides=overrides, max_parallel_tasks=parallel, trigger=trigger)
        states = {t.task_key: TaskState(TaskRunStatus.pending) for t in job.tasks}
        return self._runner(run_id, job, states, parallel, overrides, executor, on_event, repair_number=0)

    def _runner(
        self, run_id: int, job: Job, states: dict[str, TaskState], parallel: int, overrides: dict[str, Any],
        executor: TaskExecutor | None, on_event: EventCallback | None, repair_number: int,
    ) -> Runner:
        from jupyter_orchestrate.executors.local import LocalExecutor

        run = self.store.get_run(run_id)
        run_parameters = run.parameters
        context = {"job": {"run_id": run_id, "name": job.name, "start_time": run.start_time, "repair_number": repair_number}}
        rendered = render(run_parameters, context)
        active = ActiveRun({t.task_key: t for t in job.tasks}, states, parallel)
        return Runner(
            self.store, executor or LocalExecutor(), run_id, job, active,
            run_parameters=rendered, overrides=overrides, start_time=run.start_time,
            repair_number=repair_number, on_event=on_event,
        )

    def get_run(self, run_id: int) -> Run:
        """The run with task runs, attempts, errors, task values and repairs. Raises NotFoundError."""
        return self.store.get_run(run_id)

    def list_runs(self, *, job_name: str | None = None, status: RunStatus | None = None, limit: int = 20, before: int | None = None) -> list[Run]:
        """Runs newest first; see :meth:`~.store.Store.list_runs`."""
        return self.store.list_runs(job_name=job_name, status=status, limit=limit, before=before)

    def cancel(self, run_id: int) -> bool:
        """Request cancellation; the orchestrator executing the run stops it within about a second.

        Returns: False if the run had already finished. Raises NotFoundError.
        """
        return self.store.request_cancel(run_id)

    # -- repair ----------------------------------------------------------------------------------------------
    def plan_repair(
        self, run_id: int, *, task_keys: list[str] | None = None, rerun_dependents: bool = False,
        parameters: dict[str, Any] | None = None,
    ) -> tuple[RepairPlan, Job, dict[str, Any]]:
        """Work out a repair without doing it (``--dry-run``).

        The repair executes the job's *current* definition (so a fixed notebook or setting takes effect); its
        tasks must be the same as the run's.

        Returns: ``(plan, job, overrides)`` where overrides are the run's ``-p`` values merged with these.

        Raises:
            NotFoundError: no such run. ConflictError: the run is not finished, or nothing needs repair.
            ValidationError: the job is now invalid, its tasks changed, a named task is unknown, bad parameters.
        """
        run = self.store.get_run(run_id)
        if not run.status.is_terminal:
            raise ConflictError(f"run {run_id} is {run.status.value}; wait for it to finish or cancel it before repairing")
        job = load_job(run.job_path)
        old = {t.task_key for t in run.task_runs}
        new = set(job.task_keys)
        if old != new:
            added, removed = sorted(new - old), sorted(old - new)
            raise ValidationError(Problem(run.job_path, "tasks", f"the job's tasks changed since run {run_id} (added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}); start a new run instead"))
        dag = Dag({t.task_key: t.depends_on for t in job.tasks})
        statuses = {t.task_key: t.status for t in run.task_runs}
        if task_keys:
            unknown = sorted(set(task_keys) - new)
            if unknown:
                raise ValidationError(Problem("", "--task", f"unknown task(s) {', '.join(unknown)} (tasks: {', '.join(sorted(new))})"))
        to_run, reused = repair_selection(dag, statuses, task_keys or None, rerun_dependents)
        if not to_run:
            raise ConflictError(f"run {run_id} has nothing to repair: no task run is unsuccessful (name tasks with --task to re-execute them)")
        new_overrides = coerce_overrides(job, parameters or {})
        return RepairPlan(run_id, to_run, reused, new_overrides), job, {**run.overrides, **new_overrides}

    def new_repair(
        self, run_id: int, *, task_keys: list[str] | None = None, rerun_dependents: bool = False,
        parameters: dict[str, Any] | None = None, max_parallel: int | None = None,
        executor: TaskExecutor | None = None, on_event: EventCallback | None = None,
    ) -> Runner:
        """Record a repair of ``run_id`` and return the runner that executes it (call ``execute()``).

        Semantics of Databricks "Repair run": the unsuccessful task runs (or ``task_keys``) and everything
        downstream of them that did not succeed (all of it with ``rerun_dependents``) re-execute inside the
        same run, as new attempts; succeeded task runs and their task values are reused. Errors: see
        :meth:`plan_repair`.
        """
        plan, job, overrides = self.plan_repair(run_id, task_keys=task_keys, rerun_dependents=rerun_dependents, parameters=parameters)
        run_parameters = job_parameter_values(job, overrides)
        number = self.store.start_repair(
            run_id, job=job, requested_task_keys=task_keys or None, rerun_dependents=rerun_dependents,
            task_keys=plan.task_keys, reused_task_keys=plan.reused_task_keys, parameters=plan.parameters,
            run_parameters=run_parameters, overrides=overrides,
        )
        statuses = self.store.statuses(run_id)
        counts = self.store.attempt_counts(run_id)
        states = {k: TaskState(statuses[k], attempts=counts.get(k, 0)) for k in job.task_keys}
        parallel = max_parallel or self.store.get_run(run_id).max_parallel_tasks
        return self._runner(run_id, job, states, parallel, overrides, executor, on_event, repair_number=number)

    # -- crash recovery --------------------------------------------------------------------------------------
    def recover(self) -> list[int]:
        """Mark runs whose orchestrator process is gone as failed, and kill kernels they left behind.

        A run belongs to a dead orchestrator when its recorded process (pid + start time) no longer exists on
        this host, or, for another host, when its heartbeat is older than 60 s.

        Returns: the run ids marked failed.
        """
        host = socket.gethostname()
        recovered = []
        for row in self.store.unfinished_runs():
            if row["orchestrator_host"] in (None, host):
                alive = _process_alive(row["orchestrator_pid"], row["orchestrator_create_time"])
            else:
                age = seconds_between(row["heartbeat_time"], utc_now())
                alive = age is not None and age < STALE_HEARTBEAT_SECONDS
            if alive:
                continue
            for attempt in self.store.unfinished_attempts(row["run_id"]):
                if _process_alive(attempt["kernel_pid"], attempt["kernel_create_time"]):
                    try:
                        os.killpg(attempt["kernel_pid"], signal.SIGKILL)
                    except OSError:
                        pass
            pid = row["orchestrator_pid"]
            reason = f"the orchestrator (pid {pid} on {row['orchestrator_host']}) died while the run was {row['status']}; repair the run to finish it"
            if pid is None:
                reason = "the orchestrator died before the run started; repair the run to execute it"
            self.store.mark_orphaned(row["run_id"], reason)
            recovered.append(row["run_id"])
        return recovered


def run_document(run: Run) -> dict[str, Any]:
    """The stable JSON document of a run printed by ``--json`` (schema in README "JSON output").

    Per task run: status, attempt count, the last attempt's error fields, executed notebook and log paths,
    task values, and every attempt.
    """

    def attempt_doc(a: Any) -> dict[str, Any]:
        return {
            "attempt_number": a.attempt_number,
            "repair_number": a.repair_number,
            "status": a.status.value,
            "start_time": a.start_time,
            "end_time": a.end_time,
            "duration_seconds": a.duration_seconds,
            "executed_notebook": a.notebook_path,
            "log": a.log_path,
            "parameters": a.parameters,
            "cells_completed": a.cells_completed,
            "cells_total": a.cells_total,
            "error": a.error.model_dump() if a.error else None,
        }

    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "job_path": run.job_path,
        "status": run.status.value,
        "status_reason": run.status_reason,
        "trigger": run.trigger.value,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "duration_seconds": run.duration_seconds,
        "parameters": run.parameters,
        "repair_count": run.repair_count,
        "task_runs": [
            {
                "task_key": t.task_key,
                "notebook": t.notebook,
                "depends_on": t.depends_on,
                "status": t.status.value,
                "status_reason": t.status_reason,
                "attempt_count": len(t.attempts),
                "duration_seconds": t.duration_seconds,
                "executed_notebook": t.last_attempt.notebook_path if t.last_attempt else None,
                "log": t.last_attempt.log_path if t.last_attempt else None,
                "error": t.last_attempt.error.model_dump() if t.last_attempt and t.last_attempt.error else None,
                "task_values": t.task_values,
                "attempts": [attempt_doc(a) for a in t.attempts],
            }
            for t in run.task_runs
        ],
        "repairs": [r.model_dump() for r in run.repairs],
    }
