"""Domain models and status enums (pydantic v2).

The vocabulary is that of Databricks Jobs / Airflow (see DESIGN.md): a **job** is a DAG of **tasks**; running it
creates a **run** made of **task runs**, each with one or more **attempts**; a **repair** re-executes selected
task runs inside an existing run. Timestamps are UTC ISO-8601 strings in fields ending ``_time``; durations
are seconds in fields ending ``_seconds``.

Models here hold data only: discovery builds :class:`Job`, the store returns :class:`Run`, :class:`TaskRun`,
:class:`Attempt` and :class:`Repair`.
"""

from __future__ import annotations

import datetime as _dt
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_ID = 2**63 - 1  # SQLite's largest integer: no run id (or paging cursor) can be larger
MAX_PARALLEL_TASKS = 1024  # the most attempts one run may keep in flight (job.yaml, API, CLI)
# A run's owner is taken for dead when its heartbeat is older (the server trait, `scheduler
# --heartbeat-timeout` and the service default). It must exceed the store's busy timeout plus the beat
# interval: a live runner whose heartbeat waits for a lock held by other processes is not dead.
HEARTBEAT_TIMEOUT_SECONDS = 90.0
#: How long the kernel of an attempt that failed in a cell is kept alive for debugging and resume, by default
#: in the Jupyter server (``OrchestrateApp.keep_failed_kernels_seconds``); the CLI's default is 0 (off).
SERVER_KEEP_FAILED_KERNELS_SECONDS = 900.0


def utc_now() -> str:
    """The current UTC time as ISO-8601 with microseconds and ``+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def utc_iso(epoch_seconds: float) -> str:
    """A time in seconds since the epoch as :func:`utc_now` writes times."""
    return _dt.datetime.fromtimestamp(epoch_seconds, _dt.timezone.utc).isoformat()


def epoch_of(time: str) -> float:
    """Seconds since the epoch of a time :func:`utc_now` or :func:`utc_iso` wrote."""
    return _dt.datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp()


def cell_label(cell_index: int | None) -> str:
    """How every message names a cell of a notebook: ``cell 7`` is the notebook's 7th cell counting from 1,
    markdown cells included, in the *input* notebook as the user wrote it (``cell_index`` 6, 0-based as in
    nbformat). ``None`` is the cell papermill injected with the parameters, which the input does not have.
    The sidebar's ``cellLabel`` (labextension/src/components/common.tsx) says the same."""
    return "the injected-parameters cell" if cell_index is None else f"cell {cell_index + 1}"


def code_cell_progress(cell: int, total: int) -> str:
    """Progress through an attempt: ``code cell 2 of 5`` (code cells counted from 1; markdown cells and empty
    code cells are not executed, so they are not counted). Not a cell position: see :func:`cell_label`."""
    return f"code cell {cell} of {total}"


def iteration_counts(statuses: list[TaskRunStatus]) -> str:
    """A for-each task's iterations as the DAG node and ``show`` count them: ``12/12``, ``10/12 · 2 failed``
    (succeeded of all, then the failures and what still runs). The sidebar's ``iterationCounts`` says the same."""
    done = sum(s == TaskRunStatus.succeeded for s in statuses)
    failed = sum(s.is_failure for s in statuses)
    running = sum(not s.is_terminal for s in statuses)
    parts = [f"{done}/{len(statuses)}"]
    parts += [f"{failed} failed"] if failed else []
    parts += [f"{running} running"] if running else []
    return " · ".join(parts)


def seconds_between(start_time: str | None, end_time: str | None) -> float | None:
    """Seconds from ``start_time`` to ``end_time`` (ISO-8601 strings), or None if either is missing."""
    if not start_time or not end_time:
        return None
    delta = _dt.datetime.fromisoformat(end_time) - _dt.datetime.fromisoformat(start_time)
    return round(delta.total_seconds(), 3)


class RunStatus(str, Enum):
    """Status of a run."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceling = "canceling"
    canceled = "canceled"

    @property
    def is_terminal(self) -> bool:
        """True once the run has finished (succeeded, failed or canceled)."""
        return self in TERMINAL_RUN_STATUSES


class TaskRunStatus(str, Enum):
    """Status of a task run (Airflow's task instance states, Databricks' names where they differ)."""

    pending = "pending"
    queued = "queued"
    running = "running"
    up_for_retry = "up_for_retry"
    succeeded = "succeeded"
    failed = "failed"
    upstream_failed = "upstream_failed"
    skipped = "skipped"
    canceled = "canceled"
    timed_out = "timed_out"

    @property
    def is_terminal(self) -> bool:
        """True for statuses a task run does not leave without a repair."""
        return self in TERMINAL_TASK_STATUSES

    @property
    def is_failure(self) -> bool:
        """True for the outcomes that count as "failed" in run_if conditions and the run's result."""
        return self in FAILED_TASK_STATUSES


TERMINAL_TASK_STATUSES = frozenset(
    {
        TaskRunStatus.succeeded,
        TaskRunStatus.failed,
        TaskRunStatus.upstream_failed,
        TaskRunStatus.skipped,
        TaskRunStatus.canceled,
        TaskRunStatus.timed_out,
    }
)
FAILED_TASK_STATUSES = frozenset(
    {TaskRunStatus.failed, TaskRunStatus.upstream_failed, TaskRunStatus.canceled, TaskRunStatus.timed_out}
)


TERMINAL_RUN_STATUSES = (RunStatus.succeeded, RunStatus.failed, RunStatus.canceled)


def _terminal_run_status(value: Any) -> Any:
    """Only a status a run ends in passes (``running`` or a typo such as ``succeded`` is an enum error)."""
    allowed = [s.value for s in TERMINAL_RUN_STATUSES]
    if (value.value if isinstance(value, RunStatus) else value) not in allowed:
        expected = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})
    return value


TerminalRunStatus = Annotated[RunStatus, BeforeValidator(_terminal_run_status)]
"""A :class:`RunStatus` a run ends in: succeeded, failed or canceled."""


class AttemptErrorKind(str, Enum):
    """Why an attempt failed (:attr:`AttemptError.kind`)."""

    cell_error = "cell_error"  # an exception in a cell
    kernel_died = "kernel_died"
    timeout = "timeout"
    canceled = "canceled"
    early_exit = "early_exit"  # sys.exit() left code cells unexecuted
    launch_error = "launch_error"  # the kernel (or its environment) could not start
    parameter_error = "parameter_error"  # a parameter reference could not be resolved
    orchestrator_died = "orchestrator_died"
    internal = "internal"  # the worker, executor or runner failed
    child_run_failed = (
        "child_run_failed"  # the run a run-job task started did not succeed (or could not start)
    )


class ResultStatus(str, Enum):
    """How an attempt that ran to its end finished (:attr:`~.executors.base.AttemptResult.status`)."""

    succeeded = "succeeded"
    failed = "failed"


class FireStatus(str, Enum):
    """Status of a schedule or trigger fire recorded by the scheduler."""

    firing = "firing"  # claimed by a scheduler, the run not created yet
    queued = "queued"  # waiting behind max_concurrent_runs
    started = "started"  # the run was created (``run_id`` is set)
    skipped = "skipped"  # no run: the job is paused, busy without queue, or the fire was missed
    failed = "failed"  # the run could not be created


class RunIf(str, Enum):
    """When a task runs, given the outcomes of its dependencies (semantics of Databricks ``run_if``)."""

    all_success = "all_success"
    at_least_one_success = "at_least_one_success"
    none_failed = "none_failed"
    all_done = "all_done"
    at_least_one_failed = "at_least_one_failed"
    all_failed = "all_failed"


class Trigger(str, Enum):
    """What started a run."""

    manual = "manual"
    schedule = "schedule"
    file_arrival = "file_arrival"
    job_completion = "job_completion"
    api = "api"
    run_job = "run_job"  # a run_job task of another run started it (Run.parent_run_id)


class _Strict(BaseModel):
    # allow_inf_nan: YAML's .inf/.nan would pass float fields and be served as invalid JSON (Infinity, NaN)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Environment(_Strict):
    """What a task runs in.

    Fields:
        kernel_name: an installed kernelspec; None means the notebook's own ``metadata.kernelspec.name``.
        python: an interpreter (a venv's or conda env's ``bin/python``, absolute or relative to the job folder)
            that has ipykernel: the kernel runs on it, no kernelspec needed.
        requirements / requirements_file: pip requirements; the orchestrator builds (once) and caches a
            virtual environment for exactly that set under the state home and runs the kernel in it.
        env: environment variables added to the kernel's environment; ``${NAME}`` takes NAME from the
            orchestrator's environment (so secrets stay out of job files).
        secret_env: names of variables whose values are redacted in logs, executed notebooks and the UI (names
            containing TOKEN, SECRET, PASSWORD or KEY are secret anyway).
        cwd: working directory, relative to the job folder (default: the notebook's own folder).
    """

    kernel_name: str | None = None
    python: str | None = None
    requirements: list[str] | None = None
    requirements_file: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: list[str] = Field(default_factory=list)
    cwd: str | None = None

    @field_validator("env", mode="before")
    @classmethod
    def _env_values_are_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad = [k for k, v in value.items() if not isinstance(v, (str, int, float, bool))]
            if bad:
                raise ValueError(f"environment variable values must be strings, not for {', '.join(bad)}")
            return {str(k): str(v) for k, v in value.items()}
        return value


class CatchupPolicy(str, Enum):
    """What a schedule does about fires missed while no scheduler ran."""

    none = "none"  # skip them
    latest = "latest"  # one run for the most recent missed fire
    all = "all"  # one run per missed fire (bounded by max_catchup_runs)


class Schedule(_Strict):
    """A time-based trigger of a job (``job.yaml`` ``schedules:``).

    Exactly one of ``cron`` (five or six fields, croniter; six = with seconds) or ``every`` (a rule in the style
    of the ``schedule`` library: ``15 minutes``, ``day at 06:30``, ``monday at 09:00``). ``timezone`` is an IANA
    name; fire times are computed in it (DST-correct) and stored in UTC. ``parameters`` override job
    parameters for runs of this schedule.
    """

    name: str | None = None
    cron: str | None = None
    every: str | None = None
    timezone: str = "UTC"
    paused: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    catchup: CatchupPolicy = CatchupPolicy.latest
    max_catchup_runs: int = Field(default=100, ge=1)


class FileArrival(_Strict):
    """Start a run when new or changed files matching ``path`` (a glob relative to the job folder, inside the
    scheduler's roots) have settled: no change for ``wait_after_last_change_seconds``; at most once per
    ``min_time_between_triggers_seconds`` (semantics of Databricks file arrival triggers)."""

    path: str
    wait_after_last_change_seconds: float = Field(default=5.0, ge=0)
    min_time_between_triggers_seconds: float = Field(default=0.0, ge=0)


class JobCompletion(_Strict):
    """Start a run when a run of another job ends in one of ``statuses`` (data-aware chaining between jobs).

    ``job`` is the upstream job's folder, relative to this job's folder (e.g. ``../green_energy``).
    """

    job: str
    statuses: list[TerminalRunStatus] = Field(default_factory=lambda: [RunStatus.succeeded])


class TriggerSpec(_Strict):
    """An event trigger of a job (``job.yaml`` ``triggers:``): exactly one of ``file_arrival`` or
    ``job_completion``, with ``parameters`` overriding job parameters for the runs it starts."""

    name: str | None = None
    file_arrival: FileArrival | None = None
    job_completion: JobCompletion | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> TriggerSpec:
        if (self.file_arrival is None) == (self.job_completion is None):
            raise ValueError("give exactly one of file_arrival or job_completion")
        return self


class Destination(_Strict):
    """Where a notification goes: a webhook (JSON POST with a Slack-compatible ``text``) or email addresses.

    SMTP host, port and credentials come from configuration or the environment, never from job files.
    """

    webhook: str | None = None
    email: list[str] | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0)


class Notifications(_Strict):
    """Notifications of a job or a task (semantics of Databricks job notifications)."""

    on_start: list[Destination] = Field(default_factory=list)
    on_success: list[Destination] = Field(default_factory=list)
    on_failure: list[Destination] = Field(default_factory=list)
    on_duration_warning: list[Destination] = Field(default_factory=list)
    duration_warning_seconds: float | None = Field(default=None, gt=0)


#: Dask worker resources one task may ask for, at most (``resources:`` in task settings).
MAX_RESOURCES = 16
_RESOURCE_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"


def _check_resources(value: dict[str, float] | None) -> dict[str, float] | None:
    """Resources are named like Dask worker resources (``GPU``, ``memory``) and are positive amounts."""
    if value is None:
        return None
    if len(value) > MAX_RESOURCES:
        raise ValueError(f"at most {MAX_RESOURCES} resources, not {len(value)}")
    for name, amount in value.items():
        if not re.match(_RESOURCE_NAME, name):
            raise ValueError(f"invalid resource name {name!r}: letters, digits, '_', '.', '-' (at most 64)")
        if not amount > 0:
            raise ValueError(f"resource {name} must be a positive amount, not {amount!r}")
    return value


class ExecutorType(str, Enum):
    """Where a run's attempts execute: ``local`` (a process per attempt on this machine) or ``dask`` (the
    workers of a Dask ``distributed`` cluster, :mod:`~.executors.dask_executor`)."""

    local = "local"
    dask = "dask"


class ExecutorSettings(_Strict):
    """``executor:`` of ``job.yaml``: ``type`` and, for ``dask``, the ``scheduler`` address
    (``tcp://host:8786``; default ``JUPYTER_ORCHESTRATE_DASK_SCHEDULER``, else a LocalCluster for the run);
    a ``scheduler`` without a ``type`` means ``dask``."""

    type: ExecutorType = ExecutorType.local
    scheduler: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _scheduler_means_dask(cls, data: Any) -> Any:
        """``executor: {scheduler: ADDRESS}`` alone means the dask executor (only dask has a scheduler)."""
        if isinstance(data, dict) and data.get("scheduler") and "type" not in data:
            return {**data, "type": ExecutorType.dask}
        return data


class ConditionOp(str, Enum):
    """The comparison of a condition task (Databricks If/else condition task operators)."""

    eq = "=="
    ne = "!="
    gt = ">"
    ge = ">="
    lt = "<"
    le = "<="


#: an operand of a condition: a JSON scalar, or a string with ``{{...}}`` references resolved at run time
ConditionOperand = Annotated[
    StrictBool | StrictInt | StrictFloat | StrictStr, Field(union_mode="left_to_right")
]
MAX_CONDITION_OPERAND_CHARS = 10_000


class Condition(_Strict):
    """A condition task's ``left op right`` (Databricks If/else condition task), evaluated by the engine
    without a kernel once the task's dependencies are done; its outcome is ``true`` or ``false``.

    Operands are JSON scalars or strings holding ``{{...}}`` references (``{{tasks.silver.values.rows}}``,
    ``{{job.parameters.country}}``); a string that is exactly one reference takes the referenced value's
    type. ``==``/``!=`` compare values (``1 == 1.0``); ordering operators need two numbers or two strings
    (:func:`~.conditions.evaluate`)."""

    left: ConditionOperand
    op: ConditionOp
    right: ConditionOperand

    @field_validator("left", "right")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_CONDITION_OPERAND_CHARS:
            raise ValueError(f"at most {MAX_CONDITION_OPERAND_CHARS:,} characters")
        return value

    def __str__(self) -> str:
        return f"{self.left!r} {self.op.value} {self.right!r}"


class RunJob(_Strict):
    """A run-job task (Databricks Run Job task): it starts a run of the job in folder ``job`` (relative to this
    job's folder, inside the workspace), in the same state home, waits for it and ends as it ends. ``parameters``
    (job or notebook parameters of that job; values may hold references such as ``{{tasks.x.values.y}}``)
    override its defaults. The child run links to its parent (``Run.parent_run_id``) and back
    (``Run.child_runs``); a repair of the parent repairs the child run instead of starting another."""

    job: str = Field(min_length=1, max_length=1000)
    parameters: dict[str, Any] = Field(default_factory=dict)


class ConditionOutcome(str, Enum):
    """The outcome of a condition task that a dependency asks for (``depends_on: [{task_key, outcome}]``)."""

    true = "true"
    false = "false"

    @classmethod
    def of(cls, value: bool) -> ConditionOutcome:
        return cls.true if value else cls.false


def _outcome_text(value: Any) -> Any:
    # YAML reads `outcome: true` as a boolean; Databricks writes the outcome as the string "true"
    return ("true" if value else "false") if isinstance(value, bool) else value


class Dependency(_Strict):
    """One entry of ``depends_on`` written as a mapping: ``{task_key: check, outcome: "true"}`` makes the task
    depend on condition task ``check`` and run only when its outcome is ``true`` (skipped otherwise,
    Databricks' If/else branches). Without ``outcome`` it is the same as the plain ``task_key`` string."""

    task_key: str
    outcome: Annotated[ConditionOutcome | None, BeforeValidator(_outcome_text)] = None


MAX_FOR_EACH_INPUTS = 10_000  # the most iterations any for_each may allow itself (for_each.max_inputs)
_ITERATION_KEY = re.compile(r"^(.+)\[(\d+)\]$")


def iteration_values(values: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A for-each task's task values, from its iterations' (in map_index order): each name any iteration set,
    as the list of every iteration's value (None where one did not set it). What ``{{tasks.<key>.values.<name>}}``
    gives downstream and what the task run shows."""
    names = list(dict.fromkeys(name for v in values for name in v))
    return {name: [v.get(name) for v in values] for name in names}


def iteration_key(task_key: str, map_index: int) -> str:
    """The key of iteration ``map_index`` of for-each task ``task_key``: ``process[3]`` (brackets are never
    in a task key, so it names no task). Iterations are stored, referenced and shown under it."""
    return f"{task_key}[{map_index}]"


def task_key_of(key: str) -> str:
    """The task of ``key``: ``process`` for iteration ``process[3]``; a task key is its own."""
    split = split_iteration_key(key)
    return split[0] if split else key


def split_iteration_key(key: str) -> tuple[str, int] | None:
    """``process[3]`` -> ``("process", 3)``; None for a task key."""
    found = _ITERATION_KEY.match(key)
    return (found.group(1), int(found.group(2))) if found else None


class ForEach(_Strict):
    """A for-each task (Databricks For each, Airflow's dynamic task mapping): at run time, once its
    dependencies are done, the task expands into one iteration per element of ``inputs``, each an execution of
    the task's notebook with parameter ``parameter`` set to the element (``map_index`` from 0), at most
    ``concurrency`` at once and within the run's ``max_parallel_tasks``.

    ``inputs``: a JSON list, or a string that is one reference resolving to a list
    (``"{{tasks.list_files.values.files}}"``). ``max_inputs``: more elements fail the task (1,000).
    """

    inputs: list[Any] | StrictStr
    concurrency: int = Field(default=1, ge=1, le=MAX_PARALLEL_TASKS)
    parameter: str = Field(default="input", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)
    max_inputs: int = Field(default=1000, ge=1, le=MAX_FOR_EACH_INPUTS)


class TaskSettings(_Strict):
    """Task settings as written in ``metadata.orchestrate``, ``job.yaml`` ``task_defaults`` or ``tasks.<key>``.

    Every field is optional so that layers can be merged (defaults < notebook metadata < job.yaml task);
    :class:`Task` holds the merged, complete result.
    """

    task_key: str | None = None
    notebook: str | None = None
    depends_on: list[str | Dependency] | None = None
    run_if: RunIf | None = None
    #: a condition task (job.yaml only, no notebook): ``left op right``, evaluated without a kernel
    condition: Condition | None = None
    #: a run-job task (job.yaml only, no notebook): starts a run of another job and ends as it ends
    run_job: RunJob | None = None
    for_each: ForEach | None = None
    #: the task group this task belongs to (shown and selected as one; ``depends_on`` may name it)
    group: str | None = None
    parameters: dict[str, Any] | None = None
    environment_key: str | None = None
    environment: Environment | None = None
    max_retries: int | None = Field(default=None, ge=0)
    min_retry_interval_seconds: float | None = Field(default=None, ge=0)
    max_retry_interval_seconds: float | None = Field(default=None, ge=0)
    retry_on_timeout: bool | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    keep_failed_kernels_seconds: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    #: Dask worker resources the task's attempts need (``{GPU: 1}``); only the dask executor uses them
    resources: dict[str, float] | None = None
    description: str | None = None
    notifications: Notifications | None = None

    _resources = field_validator("resources")(_check_resources)


class NotebookParameter(BaseModel):
    """A parameter declared in a notebook's ``parameters`` cell (from ``papermill.inspect_notebook``).

    ``default`` is the source text of the default (papermill does not evaluate it); ``inferred_type`` is
    papermill's inferred type name (``int``, ``str``, ``list`` ...) or None.
    """

    name: str
    default: str | None = None
    inferred_type: str | None = None
    help: str = ""


class TaskProblem(BaseModel):
    """Why one task cannot execute although its job can: ``stage`` is what failed (``reading the notebook``,
    ``resolving the kernel``), ``message`` the problem. Such a task run ends ``failed`` without an attempt (no
    papermill execution happened) and its dependents follow their ``run_if``."""

    stage: str
    message: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}"


class Task(BaseModel):
    """One task of a job (a notebook, or a condition task), with its merged settings.

    A condition task has ``condition`` and no ``notebook``: the engine evaluates it without a kernel
    (:mod:`~.conditions`). ``depends_on_outcomes`` names the condition tasks among ``depends_on`` whose
    outcome this task needs (Databricks' If/else branches). ``notebook`` is the path relative to the job folder; ``kernel_name`` is resolved (environment, else the
    notebook's kernelspec, else ``python3``; jupyter_client's spelling, e.g. ``python`` is ``python3``);
    ``notebook_parameters`` are the names declared in the notebook. ``problem`` is set when the task cannot
    execute (its run fails at once, see :class:`TaskProblem`); ``warnings`` say what papermill will do that the
    user may not expect (no ``parameters`` cell, parameters that cannot be inspected, no kernelspec).
    Retry delays grow exponentially: ``min_retry_interval_seconds * 2**(retry-1)``, capped at
    ``max_retry_interval_seconds``.
    """

    task_key: str
    #: None for a condition task (it has ``condition`` instead)
    notebook: str | None
    depends_on: list[str] = Field(default_factory=list)
    #: dependency task_key -> the outcome of that condition task this task needs to run (else it is skipped)
    depends_on_outcomes: dict[str, ConditionOutcome] = Field(default_factory=dict)
    run_if: RunIf = RunIf.all_success
    condition: Condition | None = None
    run_job: RunJob | None = None
    for_each: ForEach | None = None
    group: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    environment: Environment = Field(default_factory=Environment)
    kernel_name: str = "python3"
    max_retries: int = 0
    min_retry_interval_seconds: float = 0.0
    max_retry_interval_seconds: float = 300.0
    retry_on_timeout: bool = False
    timeout_seconds: float | None = None
    #: seconds the kernel of an attempt that fails in a cell stays alive (0: shut down at once; None: the
    #: orchestrator's default, ``run --keep-failed-kernels`` or the server's trait)
    keep_failed_kernels_seconds: float | None = None
    #: Dask worker resources each attempt needs (``client.submit(resources=...)``); the local executor ignores them
    resources: dict[str, float] = Field(default_factory=dict)
    description: str | None = None
    notifications: Notifications | None = None
    notebook_parameters: list[NotebookParameter] = Field(default_factory=list)
    problem: TaskProblem | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def runs_kernel(self) -> bool:
        """Whether an attempt of this task executes its notebook in a kernel (not a condition, a run-job task,
        or a for-each task, whose iterations do): the tasks whose kernels are started ahead."""
        return self.notebook is not None and self.for_each is None

    @property
    def target(self) -> str:
        """What the task executes, as messages name it: its notebook, ``condition 'a' > 0`` or ``run job
        ../load``."""
        if self.notebook is not None:
            return self.notebook
        return f"run job {self.run_job.job}" if self.run_job else f"condition {self.condition}"

    def retry_delay_seconds(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1 for the first retry), exponential backoff, in seconds."""
        if self.min_retry_interval_seconds <= 0:
            return 0.0
        delay = self.min_retry_interval_seconds * (2 ** max(retry_number - 1, 0))
        return float(min(delay, max(self.max_retry_interval_seconds, self.min_retry_interval_seconds)))


class Job(BaseModel):
    """A named DAG of tasks: a folder of notebooks plus its optional ``job.yaml``.

    ``path`` is the absolute path of the job folder; ``parameters`` the job parameters with their defaults;
    ``tasks`` are in topological order (deterministic for the same job).
    """

    name: str
    path: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    max_parallel_tasks: int | None = None
    max_concurrent_runs: int = 1
    queue: bool = True
    schedules: list[Schedule] = Field(default_factory=list)
    triggers: list[TriggerSpec] = Field(default_factory=list)
    notifications: Notifications | None = None
    #: where the job's attempts execute (``executor:`` of job.yaml); None: the local executor
    executor: ExecutorSettings | None = None
    tasks: list[Task] = Field(default_factory=list)

    def task(self, task_key: str) -> Task:
        """The task with ``task_key``; raises KeyError if there is none."""
        for task in self.tasks:
            if task.task_key == task_key:
                return task
        raise KeyError(task_key)

    @property
    def groups(self) -> dict[str, list[str]]:
        """Task groups: name -> the task keys of its members, in the job's (topological) order."""
        found: dict[str, list[str]] = {}
        for task in self.tasks:
            if task.group is not None:
                found.setdefault(task.group, []).append(task.task_key)
        return found

    def expand_groups(self, keys: list[str]) -> list[str]:
        """``keys`` with each task group's name replaced by its members (Airflow: a dependency on a task group
        is one on all its tasks; ``repair --task <group>`` selects them all); duplicates dropped, order kept."""
        groups = self.groups
        return list(dict.fromkeys(k for key in keys for k in groups.get(key, [key])))

    @property
    def task_keys(self) -> list[str]:
        """Task keys in the job's (topological) order."""
        return [t.task_key for t in self.tasks]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """DAG edges as ``(upstream, downstream)`` pairs."""
        return [(dep, t.task_key) for t in self.tasks for dep in t.depends_on]


class AttemptError(BaseModel):
    """Why an attempt failed, as separate fields (never one flattened string).

    ``kind``: ``cell_error`` (an exception in a cell), ``kernel_died``, ``timeout``, ``canceled``,
    ``early_exit`` (``sys.exit`` left cells unexecuted), ``launch_error`` (the kernel could not start),
    ``orchestrator_died`` or ``internal``. ``cell_index`` is the 0-based index of the failing cell in the
    *input* notebook (None for the injected-parameters cell; shown as :func:`cell_label`);
    ``executed_cell_index`` its index in the executed notebook as saved.
    """

    kind: AttemptErrorKind
    ename: str
    evalue: str = ""
    traceback: list[str] = Field(default_factory=list)
    cell_index: int | None = None
    executed_cell_index: int | None = None
    cell_source: str | None = None
    execution_count: int | None = None


class CellStatus(str, Enum):
    """How one execution of a code cell ended: ``ok``, or ``error`` (an exception, a dead kernel, or the attempt
    was stopped while the cell ran: timeout or cancel)."""

    ok = "ok"
    error = "error"


class CellTiming(BaseModel):
    """One execution of one code cell in one attempt (what the history's ``v_cells`` view shows).

    ``cell_number``: 1-based among the attempt's executed code cells (the injected-parameters cell included);
    ``cell_index``: the cell's 0-based index in the *input* notebook (None for the injected-parameters cell,
    shown as :func:`cell_label`); ``start_time``/``end_time``: UTC ISO-8601; ``duration_seconds``: wall-clock
    seconds from the execute request to the kernel's reply; ``source_first_line``: the first non-blank line
    of the cell's source (at most 200 characters, secrets redacted), None when unknown.
    """

    cell_number: int
    cell_index: int | None = None
    start_time: str
    end_time: str
    duration_seconds: float
    status: CellStatus
    source_first_line: str | None = None


class Attempt(BaseModel):
    """One papermill execution of a task run. ``attempt_number`` counts from 1 across retries and repairs."""

    run_id: int
    task_key: str
    attempt_number: int
    repair_number: int = 0
    status: TaskRunStatus
    #: when the task run became ready to execute (queued) before this attempt; None in records from before
    #: schema version 7
    queued_time: str | None = None
    start_time: str | None = None
    #: when the attempt's kernel was ready (reported by the executor); before ``start_time`` for a kernel started
    #: ahead of need, None until it is ready (and in records from before schema version 7)
    kernel_ready_time: str | None = None
    end_time: str | None = None
    duration_seconds: float | None = None
    notebook_path: str | None = None
    log_path: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    kernel_name: str | None = None
    cwd: str | None = None
    env_names: list[str] = Field(default_factory=list)
    cells_total: int | None = None
    cells_completed: int | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    error: AttemptError | None = None
    #: a resumed attempt: the input notebook's index of the cell it resumed from (the failed cell of the attempt
    #: before), None for an attempt that executed the notebook from the top
    resumed_from_cell: int | None = None
    #: code cells a resumed attempt copied, with their outputs, from the failed attempt instead of executing
    reused_cells: int | None = None


class KeptKernelStatus(str, Enum):
    """Life of a kept kernel: ``kept`` (alive, waiting for debugging or a resume), ``in_use`` (a resume is
    executing in it), ``ended`` (shut down or reaped; ``end_reason`` says why)."""

    kept = "kept"
    in_use = "in_use"
    ended = "ended"


class KeptKernel(BaseModel):
    """The live kernel of an attempt that failed in a cell, kept for post-mortem debugging and resume: the one
    exception to "no kernel outlives its orchestrator". A detached keeper process (``keeper_pid``) kills it at
    ``expires_time`` whether or not an orchestrator runs then.

    ``connection_file`` (absolute, under the state home, mode 0600) is what ``jupyter console --existing``
    and the Jupyter server connect with; ``cell_index`` is the input notebook's index of the failed cell.
    """

    run_id: int
    task_key: str
    attempt_number: int
    cell_index: int | None = None
    kernel_pid: int
    kernel_create_time: float | None = None
    keeper_pid: int | None = None
    connection_file: str
    kept_time: str
    expires_time: str
    status: KeptKernelStatus = KeptKernelStatus.kept
    end_time: str | None = None
    end_reason: str | None = None

    @property
    def console_command(self) -> str:
        """The terminal command that attaches a console to the kernel."""
        return f"jupyter console --existing {self.connection_file}"


class TaskRun(BaseModel):
    """One task inside one run, with its attempts (oldest first), the task values it published and the
    warnings validation gave for its task when the run (or its latest repair) started."""

    run_id: int
    task_key: str
    #: None for a condition task
    notebook: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    status: TaskRunStatus
    status_reason: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration_seconds: float | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    task_values: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    #: the kernel of the last attempt, while it is kept alive after failing in a cell
    kept_kernel: KeptKernel | None = None
    #: an iteration of a for-each task: its index (from 0) and its element of the inputs
    map_index: int | None = None
    input: Any = None
    #: a for-each task run: its iterations in map_index order (empty until it expands)
    iterations: list[TaskRun] = Field(default_factory=list)

    @property
    def last_attempt(self) -> Attempt | None:
        """The newest attempt, or None if the task run never started."""
        return self.attempts[-1] if self.attempts else None


class Repair(BaseModel):
    """A repair of a run: which task runs it selected, which it reused, and its parameter overrides."""

    run_id: int
    repair_number: int
    repair_time: str
    requested_task_keys: list[str] | None = None
    rerun_dependents: bool = False
    task_keys: list[str] = Field(default_factory=list)
    reused_task_keys: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    #: a resume: the failed tasks re-executed from their failed cell in their kept kernels, task key -> the
    #: input notebook's cell index it resumed from (empty for a repair that re-executes from the top)
    resumed_from: dict[str, int] = Field(default_factory=dict)


class ChildRun(BaseModel):
    """A run that a run-job task of this run started: the task, the child's run id and status."""

    task_key: str
    run_id: int
    job_name: str
    status: RunStatus


class Run(BaseModel):
    """One execution of a job. ``parameters`` are the job parameter values in effect (defaults + overrides).

    ``trigger_time`` is the logical time of the run (a schedule's fire time, a backfill date; else the start
    time) and ``trigger_reason`` says what started it (schedule and fire time, arrived files, upstream run).
    """

    run_id: int
    job_name: str
    job_path: str
    status: RunStatus
    status_reason: str | None = None
    trigger: Trigger = Trigger.manual
    trigger_time: str | None = None
    trigger_reason: str | None = None
    start_time: str
    end_time: str | None = None
    duration_seconds: float | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    overrides: dict[str, Any] = Field(default_factory=dict)
    max_parallel_tasks: int
    repair_count: int = 0
    task_runs: list[TaskRun] = Field(default_factory=list)
    repairs: list[Repair] = Field(default_factory=list)
    #: a run started by a run-job task: that task's run and key
    parent_run_id: int | None = None
    parent_task_key: str | None = None
    #: the runs this run's run-job tasks started (the latest per task)
    child_runs: list[ChildRun] = Field(default_factory=list)

    def task_run(self, task_key: str) -> TaskRun:
        """The task run of ``task_key``, or of an iteration (``process[3]``); raises KeyError if the run has
        none."""
        for task_run in self.task_runs:
            if task_run.task_key == task_key:
                return task_run
        split = split_iteration_key(task_key)
        if split is not None:
            for iteration in self.task_run(split[0]).iterations:
                if iteration.map_index == split[1]:
                    return iteration
        raise KeyError(task_key)
