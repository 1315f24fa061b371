"""The response documents of the REST API and ``--json``, defined once.

The service builds them (:meth:`RunDocument.build`, :meth:`JobDocument.build`, ...) from the store's and
discovery's models; the REST handlers and the CLI serve ``model_dump(mode="json")`` of the same model, so
the two answer the same JSON. ``docs/api.md`` lists every document and field (checked by
``tests/test_documents.py``), and the sidebar's TypeScript types (``labextension/src/documents.ts``) are
generated from :func:`json_schema` (``python -m jupyter_orchestrate.schemas.export``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from jupyter_orchestrate.errors import Problem
from jupyter_orchestrate.models import (
    Attempt,
    AttemptError,
    ChildRun,
    FireStatus,
    Job,
    KeptKernel,
    KeptKernelStatus,
    NotebookParameter,
    Repair,
    Run,
    RunStatus,
    Schedule,
    Task,
    TaskRun,
    TaskRunStatus,
    Trigger,
)
from jupyter_orchestrate.parameters import job_parameters_referenced, parameter_type, task_value_source


def relative_to(path: str | None, root: str | Path | None) -> str | None:
    """``path`` relative to ``root`` with forward slashes, or None if it is not inside ``root``."""
    if not path or root is None:
        return None
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None


def _may_be_absent(*names: str) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` that marks ``names`` not required: fields a document leaves out (not null)."""

    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = [name for name in schema.get("required", []) if name not in names]

    return extra


class Document(BaseModel):
    """Base of the response documents: every field is always present in the JSON (also when null), unless
    the model's ``json_schema_extra`` (:func:`_may_be_absent`) says otherwise."""

    def json_data(self) -> dict[str, Any]:
        """The document as JSON data (``model_dump(mode="json")``), what the API and ``--json`` print."""
        return self.model_dump(mode="json")


# -- runs ----------------------------------------------------------------------------------------------------
ENVIRONMENT_FIELDS = (
    "kernel_name",
    "python",
    "env_names",
    "requirements",
    "package_hash",
    "freeze",
    "built_now",
    "dask_worker",
    "host",
)


class AttemptEnvironment(Document):
    """What an attempt ran in, as the worker recorded it (variable names only, never values): the kernel
    (``kernel_name``) or interpreter (``python``), ``env_names``, ``requirements``, and for a built
    environment its ``package_hash``, ``freeze`` (installed packages) and ``built_now``; an attempt of the dask
    executor also where it ran (``dask_worker`` address, ``host`` name). Only the recorded fields are present
    (an attempt that never started has none)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_may_be_absent(*ENVIRONMENT_FIELDS))
    kernel_name: str | None = None
    python: str | None = None
    env_names: list[str] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list)
    package_hash: str | None = None
    freeze: list[str] = Field(default_factory=list)
    built_now: bool = False
    dask_worker: str | None = None
    host: str | None = None

    @model_serializer(mode="wrap")
    def _recorded_only(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in self.model_fields_set or k not in ENVIRONMENT_FIELDS}


class AttemptDocument(Document):
    """One attempt of a task run. ``executed_notebook_path`` is relative to the server root (null without a
    root or when the state home is outside it); ``executed_notebook`` and ``log`` are absolute paths."""

    executed_notebook_path: str | None
    attempt_number: int
    repair_number: int
    status: TaskRunStatus
    queued_time: str | None = Field(
        default=None, description="When the task run was queued for this attempt (null in older records)."
    )
    start_time: str | None
    kernel_ready_time: str | None = Field(
        default=None,
        description="When the attempt's kernel was ready: before `start_time` for a kernel started ahead of "
        "need; null until ready and in older records.",
    )
    end_time: str | None
    duration_seconds: float | None
    executed_notebook: str | None
    log: str | None
    parameters: dict[str, Any]
    cells_completed: int | None
    cells_total: int | None
    environment: AttemptEnvironment
    error: AttemptError | None
    resumed_from_cell: int | None = Field(
        default=None,
        description="A resumed attempt: the input notebook's index of the cell it resumed from (it executed "
        "from there in the failed attempt's kept kernel); null for an attempt from the top.",
    )
    reused_cells: int | None = Field(
        default=None,
        description="A resumed attempt: code cells copied with their outputs from the failed attempt.",
    )

    @classmethod
    def build(cls, attempt: Attempt, root: str | Path | None = None) -> AttemptDocument:
        """The document of ``attempt``; ``root`` as in :meth:`RunDocument.build`."""
        return cls(
            executed_notebook_path=relative_to(attempt.notebook_path, root),
            attempt_number=attempt.attempt_number,
            repair_number=attempt.repair_number,
            status=attempt.status,
            queued_time=attempt.queued_time,
            start_time=attempt.start_time,
            kernel_ready_time=attempt.kernel_ready_time,
            end_time=attempt.end_time,
            duration_seconds=attempt.duration_seconds,
            executed_notebook=attempt.notebook_path,
            log=attempt.log_path,
            parameters=attempt.parameters,
            cells_completed=attempt.cells_completed,
            cells_total=attempt.cells_total,
            environment=AttemptEnvironment.model_validate(attempt.environment),
            error=attempt.error,
            resumed_from_cell=attempt.resumed_from_cell,
            reused_cells=attempt.reused_cells,
        )


class KeptKernelDocument(Document):
    """The live kernel of a task run's last attempt, kept after it failed in a cell: debug it (a console on
    ``connection_file``, or ``POST runs/{run_id}/tasks/{task_key}/kernel`` in JupyterLab) and resume from
    ``cell_index`` (``POST runs/{run_id}/repair`` with ``resume``). The connection file holds the kernel's key;
    this document never does."""

    attempt_number: int
    cell_index: int | None = Field(description="The input notebook's index (0-based) of the failed cell.")
    kernel_pid: int
    kernel_create_time: float | None = Field(
        description="The kernel process's start (seconds since the epoch)."
    )
    kept_time: str
    expires_time: str = Field(description="When the kernel is shut down unless resumed (UTC).")
    status: KeptKernelStatus
    connection_file: str = Field(description="The kernel's connection file (absolute, under the state home).")
    console_command: str = Field(description="The terminal command that attaches a console to the kernel.")

    @classmethod
    def build(cls, kept: KeptKernel) -> KeptKernelDocument:
        """The document of ``kept``."""
        return cls(
            attempt_number=kept.attempt_number,
            cell_index=kept.cell_index,
            kernel_pid=kept.kernel_pid,
            kernel_create_time=kept.kernel_create_time,
            kept_time=kept.kept_time,
            expires_time=kept.expires_time,
            status=kept.status,
            connection_file=kept.connection_file,
            console_command=kept.console_command,
        )


class LiveKernelDocument(Document):
    """Answer of ``POST runs/{run_id}/tasks/{task_key}/kernel``: the task's kept kernel, registered with the
    Jupyter server, so a JupyterLab console or notebook attaches to it by ``kernel_id`` (``/api/kernels``)."""

    kernel_id: str = Field(description="The kernel's id in the Jupyter server's kernel API.")


class TaskRunDocument(Document):
    """One task run: its status, the last attempt's error, paths and task values, and every attempt."""

    task_key: str
    notebook: str | None = Field(
        description="The task's notebook, relative to the job folder; null for a condition task (its "
        "status_reason says what it compared and its outcome, its task value `outcome` holds the outcome)."
    )
    depends_on: list[str]
    status: TaskRunStatus
    status_reason: str | None
    attempt_count: int
    duration_seconds: float | None
    executed_notebook: str | None = Field(description="The last attempt's executed notebook (absolute).")
    log: str | None = Field(description="The last attempt's log (absolute).")
    error: AttemptError | None = Field(description="The last attempt's error.")
    task_values: dict[str, Any]
    warnings: list[str] = Field(
        description="What validation warned about for this task when the run started (no parameters cell, "
        "no kernelspec ...)."
    )
    attempts: list[AttemptDocument]
    kept_kernel: KeptKernelDocument | None = Field(
        default=None, description="The last attempt's kernel while it is kept alive after failing in a cell."
    )
    map_index: int | None = Field(
        default=None, description="An iteration of a for-each task: its index (from 0); null for a task run."
    )
    input: Any = Field(
        default=None, description="An iteration of a for-each task: its element of the inputs."
    )
    iterations: list[TaskRunDocument] = Field(
        default_factory=list,
        description="A for-each task run: its iterations in map_index order, each a task run keyed "
        "`<task_key>[<map_index>]` (empty until the task expands; always empty for an iteration).",
    )

    @classmethod
    def build(cls, task_run: TaskRun, root: str | Path | None = None) -> TaskRunDocument:
        """The document of ``task_run``; ``root`` as in :meth:`RunDocument.build`."""
        last = task_run.last_attempt
        return cls(
            task_key=task_run.task_key,
            notebook=task_run.notebook,
            depends_on=task_run.depends_on,
            status=task_run.status,
            status_reason=task_run.status_reason,
            attempt_count=len(task_run.attempts),
            duration_seconds=task_run.duration_seconds,
            executed_notebook=last.notebook_path if last else None,
            log=last.log_path if last else None,
            error=last.error if last else None,
            task_values=task_run.task_values,
            warnings=task_run.warnings,
            attempts=[AttemptDocument.build(a, root) for a in task_run.attempts],
            kept_kernel=KeptKernelDocument.build(task_run.kept_kernel) if task_run.kept_kernel else None,
            map_index=task_run.map_index,
            input=task_run.input,
            iterations=[cls.build(i, root) for i in task_run.iterations],
        )


class RepairDocument(Document):
    """A repair of a run: what it selected (``task_keys``), reused, and its parameter overrides."""

    run_id: int
    repair_number: int
    repair_time: str
    requested_task_keys: list[str] | None
    rerun_dependents: bool
    task_keys: list[str]
    reused_task_keys: list[str]
    parameters: dict[str, Any]
    resumed_from: dict[str, int] = Field(
        default_factory=dict,
        description="A resume: task key -> the input cell index it resumed from in its kept kernel (empty for "
        "a repair from the top).",
    )

    @classmethod
    def build(cls, repair: Repair) -> RepairDocument:
        """The document of ``repair`` (the same fields)."""
        return cls.model_validate(repair.model_dump())


class _RunFields(Document):
    """The fields a run has in both the run document and the run listing."""

    run_id: int
    job: str = Field(description="The job's name.")
    job_path: str = Field(description="The job folder (absolute).")
    job_id: str | None = Field(
        description="The job folder relative to the server root (null from the CLI or when outside it)."
    )
    status: RunStatus
    status_reason: str | None
    trigger: Trigger
    trigger_time: str | None
    trigger_reason: str | None
    start_time: str
    end_time: str | None
    duration_seconds: float | None
    parameters: dict[str, Any] = Field(description="The job parameter values in effect.")
    repair_count: int
    repairs: list[RepairDocument]
    parent_run_id: int | None = Field(
        default=None, description="A run started by a run-job task: the run of that task (trigger `run_job`)."
    )
    parent_task_key: str | None = Field(default=None, description="A run started by a run-job task: its key.")

    @staticmethod
    def _fields(run: Run, root: str | Path | None) -> dict[str, Any]:
        return {
            "run_id": run.run_id,
            "job": run.job_name,
            "job_path": run.job_path,
            "job_id": relative_to(run.job_path, root),
            "status": run.status,
            "status_reason": run.status_reason,
            "trigger": run.trigger,
            "trigger_time": run.trigger_time,
            "trigger_reason": run.trigger_reason,
            "start_time": run.start_time,
            "end_time": run.end_time,
            "duration_seconds": run.duration_seconds,
            "parameters": run.parameters,
            "repair_count": run.repair_count,
            "repairs": [RepairDocument.build(r) for r in run.repairs],
            "parent_run_id": run.parent_run_id,
            "parent_task_key": run.parent_task_key,
        }


class RunDocument(_RunFields):
    """A run with its task runs, attempts, errors, task values and repairs (``GET runs/{run_id}``, ``run``,
    ``repair`` and ``show --json``)."""

    task_runs: list[TaskRunDocument]
    child_runs: list[ChildRun] = Field(
        default_factory=list,
        description="The runs this run's run-job tasks started, the latest per task (task_key, run_id, status).",
    )

    @classmethod
    def build(cls, run: Run, root: str | Path | None = None) -> RunDocument:
        """The document of ``run``. With ``root`` (the Jupyter server's root) ``job_id`` and each attempt's
        ``executed_notebook_path`` are relative to it (None when outside it, and always without a root)."""
        return cls(
            **cls._fields(run, root),
            task_runs=[TaskRunDocument.build(t, root) for t in run.task_runs],
            child_runs=run.child_runs,
        )


class RunSummaryDocument(_RunFields):
    """A run in a listing: the run document without ``task_runs``, plus ``task_statuses`` and
    ``task_duration_seconds`` (the matrix's cells)."""

    task_statuses: dict[str, TaskRunStatus]
    task_duration_seconds: dict[str, float | None] = Field(
        default_factory=dict,
        description="Each task run's duration in seconds (null while it has not finished or never started).",
    )

    @classmethod
    def build(cls, run: Run, root: str | Path | None = None) -> RunSummaryDocument:
        """The listing entry of ``run``; ``root`` as in :meth:`RunDocument.build`."""
        return cls(
            **cls._fields(run, root),
            task_statuses={t.task_key: t.status for t in run.task_runs},
            task_duration_seconds={t.task_key: t.duration_seconds for t in run.task_runs},
        )


class RunListDocument(Document):
    """``GET runs`` and ``runs --json``: a page of runs newest first (highest run id first). Paging is by
    keyset: pass ``next_before`` as ``before`` for the next page; pages never repeat or skip a run."""

    runs: list[RunSummaryDocument]
    next_before: int | None = Field(
        description="The `before` value of the next page (the last run id of this page); null on the last page."
    )

    @classmethod
    def build(cls, runs: list[Run], limit: int, root: str | Path | None = None) -> RunListDocument:
        """The page of ``runs`` fetched with ``limit`` (a full page has a next one)."""
        return cls(
            runs=[RunSummaryDocument.build(r, root) for r in runs],
            next_before=runs[-1].run_id if runs and len(runs) == limit else None,
        )


class RepairPlanDocument(Document):
    """What a repair would do (``dry_run``): ``task_keys`` re-execute, ``reused_task_keys`` keep their
    results, with the repair's parameter overrides."""

    run_id: int
    task_keys: list[str]
    reused_task_keys: list[str]
    parameters: dict[str, Any]


# -- jobs ----------------------------------------------------------------------------------------------------
class ProblemDocument(Document):
    """A validation problem: ``path: field: message`` (``text``), the task it belongs to, its severity."""

    path: str
    field: str
    message: str
    text: str
    task_key: str | None = Field(
        description="Set when the problem is one task's: the job still runs, that task fails at once."
    )
    severity: str = Field(description="`error` or `warning` (a warning never stops anything).")

    @classmethod
    def build(cls, problem: Problem) -> ProblemDocument:
        """The document of ``problem``."""
        return cls(
            path=problem.path,
            field=problem.field,
            message=problem.message,
            text=str(problem),
            task_key=problem.task_key,
            severity=problem.severity,
        )


JOB_ONLY_FIELDS = (
    "description",
    "parameters",
    "parameter_fields",
    "max_parallel_tasks",
    "max_concurrent_runs",
    "queue",
    "edges",
    "tasks",
)


class ErrorProblem(Document):
    """A validation problem of an error answer: ``path: field: message``."""

    path: str
    field: str
    message: str

    @classmethod
    def build(cls, problem: Problem) -> ErrorProblem:
        """The error answer's form of ``problem``."""
        return cls(path=problem.path, field=problem.field, message=problem.message)


class ErrorDocument(Document):
    """Every error answer of the REST API: the message and, for validation errors, the problems."""

    model_config = ConfigDict(json_schema_extra=_may_be_absent("problems"))
    message: str
    problems: list[ErrorProblem] | None = Field(default=None, description="Only for validation errors.")

    @model_serializer(mode="wrap")
    # no return annotation: pydantic then keeps the fields' schema for serialization
    def _without_no_problems(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        if self.problems is None:
            data.pop("problems", None)
        return data


class FireDocument(Document):
    """One fire of a schedule."""

    scheduled_time: str = Field(description="The fire time the rule gave (ISO, UTC).")
    fire_time: str | None = Field(description="When the scheduler handled it (ISO, UTC).")
    status: FireStatus = Field(description="started, queued, skipped, failed or firing.")
    run_id: int | None
    reason: str | None


class ScheduleDocument(Schedule, Document):
    """A schedule of a job (job.yaml ``schedules:``) with its state: the effective ``paused``,
    ``next_fire_time`` (null while paused), ``last_fire_time`` and the 5 latest fires, newest first."""

    name: str  # always set here: the schedule's name or its generated one
    next_fire_time: str | None
    last_fire_time: str | None
    recent_fires: list[FireDocument]


class SchedulesDocument(Document):
    """``POST jobs/{job}/schedules/{name}/pause|resume``: the job's schedules after the change."""

    schedules: list[ScheduleDocument]


class NotebookParameterDocument(NotebookParameter, Document):
    """A parameter of a task's notebook (its parameters cell): the default as source text and its type."""


class TaskDocument(Task, Document):
    """A task of a job document: its settings as :class:`~jupyter_orchestrate.models.Task`, the notebook
    relative to the server root and the notebook's parameters."""

    notebook_path: str | None = Field(description="The notebook relative to the server root.")
    notebook_parameters: list[NotebookParameterDocument]  # type: ignore[assignment]

    @classmethod
    def build(cls, task: Task, job_folder: Path, root: Path) -> TaskDocument:
        """The document of ``task`` of the job in ``job_folder``."""
        return cls(
            **{name: getattr(task, name) for name in Task.model_fields if name != "notebook_parameters"},
            notebook_path=relative_to(str(job_folder / task.notebook), root) if task.notebook else None,
            notebook_parameters=[
                NotebookParameterDocument.model_validate(p.model_dump()) for p in task.notebook_parameters
            ],
        )


class ParameterFieldDocument(Document):
    """A field of the sidebar's "Run with parameters" form: a job parameter or notebook parameter (merged by
    name, the job's first), its type (:func:`~jupyter_orchestrate.parameters.parameter_type`, the rule ``-p``
    values are typed by; null when unknown), its default as text, who uses it (``job`` and task keys) and,
    when an upstream task value feeds it, that task (``source_task``; the form shows it read-only)."""

    name: str
    type: str | None
    default: str = Field(description="A job default as given (strings) or JSON; a notebook's as its source.")
    tasks: list[str] = Field(
        description="Who uses it: `job` for a job parameter, then the tasks whose notebook declares it or "
        "whose task parameters reference it (`{{job.parameters.<name>}}`); a repair offers it when one of "
        "these tasks re-executes."
    )
    source_task: str | None = Field(
        default=None,
        description="The upstream task whose task value (`{{tasks.<task_key>.values.<name>}}`) feeds this "
        "notebook parameter in every task that declares it; null for job parameters and fields the user sets.",
    )

    @classmethod
    def build_all(cls, job: Job) -> list[ParameterFieldDocument]:
        """The form fields of ``job``: job parameters in job.yaml order, then notebook parameters by task."""
        fields: dict[str, ParameterFieldDocument] = {}
        inferred: dict[str, list[str | None]] = {}
        sources: dict[str, list[str | None]] = {}  # per notebook parameter: the feeding task of each declarer
        for name, value in job.parameters.items():
            text = (
                value
                if isinstance(value, str)
                else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            )
            fields[name] = cls(name=name, type=None, default=text, tasks=["job"])
        for task in job.tasks:
            for p in task.notebook_parameters:
                inferred.setdefault(p.name, []).append(p.inferred_type)
                sources.setdefault(p.name, []).append(
                    task_value_source(task.parameters[p.name]) if p.name in task.parameters else None
                )
                if p.name in fields:
                    if task.task_key not in fields[p.name].tasks:
                        fields[p.name].tasks.append(task.task_key)
                    continue
                literal = p.default or ""
                quoted = re.fullmatch(r"(['\"])(.*)\1", literal) if p.inferred_type == "str" else None
                fields[p.name] = cls(
                    name=p.name,
                    type=None,
                    default=quoted.group(2) if quoted else literal,
                    tasks=[task.task_key],
                )
            # a task that passes a job parameter on by reference uses it too (a repair of it must offer it)
            for name in job_parameters_referenced(task.parameters):
                if name in fields and task.task_key not in fields[name].tasks:
                    fields[name].tasks.append(task.task_key)
        for name, field in fields.items():
            field.type = parameter_type(job.parameters.get(name), inferred.get(name, []))
            fed = sources.get(name, [])
            # read-only only when no value of the user's would be used: not a job parameter, and fed wherever
            # it is declared (an override would replace the task value, so the form does not offer it)
            if name not in job.parameters and fed and all(fed):
                field.source_task = fed[0]
        return list(fields.values())


class EdgeDocument(Document):
    """A DAG edge: ``downstream`` depends on ``upstream``."""

    upstream: str
    downstream: str


class RecentRunDocument(Document):
    """One of a job's recent runs."""

    run_id: int
    status: RunStatus
    start_time: str


class JobDocument(Document):
    """A job (``GET jobs``, ``GET jobs/{job}``): tasks with settings and notebook parameters, DAG edges, job
    parameters, schedules with their state, the last 10 runs, and ``problems`` (``valid`` is False when one
    refuses the job; an invalid job's document has none of the fields from ``description`` on)."""

    model_config = ConfigDict(json_schema_extra=_may_be_absent(*JOB_ONLY_FIELDS))
    job_id: str = Field(description="The job folder relative to the server root.")
    name: str
    path: str = Field(description="The job folder (absolute).")
    valid: bool
    problems: list[ProblemDocument]
    schedules: list[ScheduleDocument]
    recent_runs: list[RecentRunDocument] = Field(description="The last 10 runs, newest first.")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_fields: list[ParameterFieldDocument] = Field(
        default_factory=list, description="The run form's fields: every job and notebook parameter, typed."
    )
    max_parallel_tasks: int | None = None
    max_concurrent_runs: int = 1
    queue: bool = True
    edges: list[EdgeDocument] = Field(default_factory=list)
    tasks: list[TaskDocument] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _valid_fields(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data: dict[str, Any] = handler(self)
        if not self.valid:
            for name in JOB_ONLY_FIELDS:
                data.pop(name, None)
        return data

    @classmethod
    def build(
        cls,
        job: Job | None,
        path: Path,
        root: Path,
        problems: list[Problem],
        runs: list[Run],
        schedules: list[ScheduleDocument] | None = None,
    ) -> JobDocument:
        """The document of the job in folder ``path`` (``job`` None when it is invalid), its validation
        ``problems``, recent ``runs`` and ``schedules``. Literal secret values of ``job`` are masked
        (:func:`~jupyter_orchestrate.environments.public_job`): they are never served."""
        from jupyter_orchestrate.environments import public_job

        job = public_job(job) if job is not None else None
        doc = cls(
            job_id=relative_to(str(path), root) or path.name,
            name=job.name if job else path.name,
            path=str(path),
            valid=job is not None,
            problems=[ProblemDocument.build(p) for p in problems],
            schedules=schedules or [],
            recent_runs=[
                RecentRunDocument(run_id=r.run_id, status=r.status, start_time=r.start_time) for r in runs
            ],
        )
        if job is not None:
            doc.description = job.description
            doc.parameters = job.parameters
            doc.parameter_fields = ParameterFieldDocument.build_all(job)
            doc.max_parallel_tasks = job.max_parallel_tasks
            doc.max_concurrent_runs = job.max_concurrent_runs
            doc.queue = job.queue
            doc.edges = [EdgeDocument(upstream=a, downstream=b) for a, b in job.edges]
            doc.tasks = [TaskDocument.build(t, path, root) for t in job.tasks]
        return doc


class TaskSettingsDocument(Document):
    """``POST jobs/{job}/tasks/{task_key}/validate``: a task settings change checked without writing it: the
    notebook's ``metadata.orchestrate`` after the change (for an editor to set), and the job as validated
    with it."""

    task_key: str
    notebook: str = Field(description="The task's notebook, relative to the job folder.")
    metadata: dict[str, Any] = Field(description="The notebook's metadata.orchestrate after the change.")
    job: JobDocument


class JobListDocument(Document):
    """``GET jobs``: every job under the job roots."""

    jobs: list[JobDocument]


# -- trends --------------------------------------------------------------------------------------------------
#: Task-run statuses that mean the task's own notebook ran to an end (what a failure rate counts).
_RAN_STATUSES = (TaskRunStatus.succeeded, TaskRunStatus.failed, TaskRunStatus.timed_out)
#: The most runs a trends document reads (``GET jobs/{job}/trends?limit=``).
MAX_TRENDS_RUNS = 500
#: Slowest cells listed per task in a trends document.
SLOWEST_CELLS_PER_TASK = 5


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` (0..1) percentile of ``values`` by linear interpolation between closest ranks (numpy's
    and pandas' default, ``statistics.quantiles(method="inclusive")``); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 6)


class TrendRunDocument(Document):
    """One run of a job's trends: when it started, how it ended and how long it took (None while unfinished)."""

    run_id: int
    start_time: str
    status: RunStatus
    trigger: Trigger
    duration_seconds: float | None


class CellTrendDocument(Document):
    """One of a task's slowest code cells over the trends' runs (every attempt counts)."""

    cell_index: int | None = Field(
        description="0-based index in the input notebook; None for the injected-parameters cell."
    )
    executions: int = Field(description="How many times the cell executed (attempts of those runs).")
    median_duration_seconds: float
    max_duration_seconds: float
    source_first_line: str | None = Field(
        description="The first non-blank line of the cell's source as last recorded (secrets redacted)."
    )


class TaskTrendDocument(Document):
    """One task over the trends' runs. ``ran``: task runs whose notebook ran to an end (succeeded, failed or
    timed out; upstream failures, skips and cancels are not the task's); ``failure_rate`` = (failed + timed
    out) / ran, 0..1, None when none ran; ``p50``/``p90`` are of succeeded task runs' durations (all attempts
    of the task run, retries included), None without one."""

    task_key: str
    task_runs: int = Field(description="Task runs of this task in the trends' runs.")
    ran: int
    succeeded: int
    failed: int = Field(description="Failed or timed out.")
    failure_rate: float | None
    p50_duration_seconds: float | None
    p90_duration_seconds: float | None
    slowest_cells: list[CellTrendDocument] = Field(description="At most 5, slowest (mean duration) first.")


class TrendsDocument(Document):
    """``GET jobs/{job}/trends?limit=N``: the job's last ``limit`` runs (1..500, default 50) oldest first, with
    each task's duration percentiles, failure rate and slowest cells over them."""

    job_id: str = Field(description="The job folder relative to the server root.")
    limit: int
    runs: list[TrendRunDocument] = Field(description="Oldest first (chart order).")
    tasks: list[TaskTrendDocument] = Field(description="In the order of the newest run's tasks.")

    @classmethod
    def build(cls, job_id: str, limit: int, runs: list[Run], cells: list[Any]) -> TrendsDocument:
        """The trends of ``runs`` (newest first, as :meth:`~..store.Store.list_runs` returns them, with task
        runs) and the slowest ``cells`` of their tasks (:class:`~..store.CellStats`, slowest first per task)."""
        import statistics

        keys: list[str] = []
        for run in runs:
            keys.extend(t.task_key for t in run.task_runs if t.task_key not in keys)
        tasks = []
        for key in keys:
            task_runs = [t for run in runs for t in run.task_runs if t.task_key == key]
            ran = [t for t in task_runs if t.status in _RAN_STATUSES]
            succeeded = [t for t in ran if t.status == TaskRunStatus.succeeded]
            durations = [t.duration_seconds for t in succeeded if t.duration_seconds is not None]
            tasks.append(
                TaskTrendDocument(
                    task_key=key,
                    task_runs=len(task_runs),
                    ran=len(ran),
                    succeeded=len(succeeded),
                    failed=len(ran) - len(succeeded),
                    failure_rate=round((len(ran) - len(succeeded)) / len(ran), 6) if ran else None,
                    p50_duration_seconds=percentile(durations, 0.5),
                    p90_duration_seconds=percentile(durations, 0.9),
                    slowest_cells=[
                        CellTrendDocument(
                            cell_index=c.cell_index,
                            executions=c.executions,
                            median_duration_seconds=round(statistics.median(c.durations), 6),
                            max_duration_seconds=c.max_duration_seconds,
                            source_first_line=c.source_first_line,
                        )
                        for c in cells
                        if c.task_key == key and c.durations
                    ][:SLOWEST_CELLS_PER_TASK],
                )
            )
        return cls(
            job_id=job_id,
            limit=limit,
            runs=[
                TrendRunDocument(
                    run_id=r.run_id,
                    start_time=r.start_time,
                    status=r.status,
                    trigger=r.trigger,
                    duration_seconds=r.duration_seconds,
                )
                for r in reversed(runs)
            ],
            tasks=tasks,
        )


#: Every document, in the order docs/api.md and the generated TypeScript list them. The events of the event
#: stream (``jupyter_orchestrate.schemas.events``) are to be added to the export beside these.
DOCUMENTS: tuple[type[BaseModel], ...] = (
    JobListDocument,
    JobDocument,
    TaskSettingsDocument,
    TaskDocument,
    NotebookParameterDocument,
    ParameterFieldDocument,
    ProblemDocument,
    EdgeDocument,
    RecentRunDocument,
    SchedulesDocument,
    ScheduleDocument,
    FireDocument,
    RunListDocument,
    RunSummaryDocument,
    RunDocument,
    TaskRunDocument,
    AttemptDocument,
    AttemptEnvironment,
    KeptKernelDocument,
    LiveKernelDocument,
    TrendsDocument,
    TrendRunDocument,
    TaskTrendDocument,
    CellTrendDocument,
    RepairDocument,
    RepairPlanDocument,
    ErrorDocument,
    ErrorProblem,
)
