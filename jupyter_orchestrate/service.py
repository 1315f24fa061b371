"""OrchestrateService: the one API that the CLI (and later the REST handlers, widgets and scheduler) call.

It turns requests into store records and :class:`~.engine.runner.Runner` s, and ends runs whose
orchestrator died (at start-up and, with :meth:`OrchestrateService.start_monitor`, every few seconds while it
lives). It holds no execution logic of its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from jupyter_orchestrate.conditions import OUTCOME_VALUE
from jupyter_orchestrate.dag import Dag
from jupyter_orchestrate.discovery import FROM_FILE, check_task_settings, load_job, validate_job
from jupyter_orchestrate.discovery_cache import DiscoveryCache, Signature, kernels_signature
from jupyter_orchestrate.engine import kept_kernels
from jupyter_orchestrate.engine.active_run import ActiveRun, TaskState, repair_selection
from jupyter_orchestrate.engine.runner import EventCallback, Runner
from jupyter_orchestrate.environments import public_job
from jupyter_orchestrate.errors import ConflictError, NotFoundError, Problem, StoreError, ValidationError
from jupyter_orchestrate.executors.base import ResumeSpec, TaskExecutor, max_output_bytes
from jupyter_orchestrate.executors.kernel_pool import KernelPool
from jupyter_orchestrate.executors.resume import changed_before
from jupyter_orchestrate.models import (
    HEARTBEAT_TIMEOUT_SECONDS,
    MAX_PARALLEL_TASKS,
    AttemptErrorKind,
    ExecutorSettings,
    ExecutorType,
    Job,
    KeptKernel,
    Run,
    RunStatus,
    Schedule,
    TaskRun,
    TaskRunStatus,
    Trigger,
    cell_label,
    epoch_of,
    seconds_between,
    task_key_of,
    utc_now,
)
from jupyter_orchestrate.parameters import CHECKED_TYPES, check_parameters, coerce, parameter_type, render
from jupyter_orchestrate.scheduling.policy import effective_paused, named_schedules, schedule_name
from jupyter_orchestrate.schemas.documents import (
    MAX_TRENDS_RUNS,
    SLOWEST_CELLS_PER_TASK,
    FireDocument,
    JobDocument,
    JobListDocument,
    RepairPlanDocument,
    RunDocument,
    RunListDocument,
    ScheduleDocument,
    TaskSettingsDocument,
    TrendsDocument,
    relative_to,
)
from jupyter_orchestrate.schemas.events import RunStatusEvent
from jupyter_orchestrate.store import RunOwner, ScheduleState, Store
from jupyter_orchestrate.workspace import DB_NAME, confine

RECENT_RUNS = 10  # runs per job in the job documents (the jobs list's cells)
CANCEL_TIMEOUT_SECONDS = 30.0  # a live owner that has not ended a cancel by then: the run is force-ended
MONITOR_SECONDS = 5.0  # time between two checks of the run monitor
SHUTDOWN_SECONDS = 15.0  # a clean shutdown waits this long for its runs to record their cancel
log = logging.getLogger(__name__)


RepairPlan = RepairPlanDocument  # what a repair would do; the dry run's document


def coerce_overrides(job: Job, raw: dict[str, Any]) -> dict[str, Any]:
    """Type ``-p`` values by the parameter they set: a job parameter's default, else the notebook's
    ``parameters`` cell type. Values that are not strings are taken as they are.

    Raises:
        ValidationError: a name that is not a Python identifier (or is a keyword), a value that is not JSON or
            too large (:func:`~.parameters.parameter_problems`), a name no job parameter, notebook parameter or
            task parameter has; or a value that is not of the parameter's type. A problem of one parameter
            names it in its field, ``parameters.<name>`` (the run form shows it at that parameter's input).
    """
    check_parameters(raw, "", "parameters")
    notebook_types: dict[str, list[str | None]] = {}
    task_params: set[str] = set()
    for task in job.tasks:
        task_params |= set(task.parameters)
        for p in task.notebook_parameters:
            notebook_types.setdefault(p.name, []).append(p.inferred_type)
    problems, result = [], {}
    for name, value in raw.items():
        if name not in job.parameters and name not in notebook_types and name not in task_params:
            known = sorted(set(job.parameters) | set(notebook_types) | task_params)
            problems.append(
                Problem(
                    "",
                    f"parameters.{name}",
                    f"no job parameter or notebook parameter is named {name!r} (known: {', '.join(known) or 'none'})",
                )
            )
            continue
        if not isinstance(value, str):
            result[name] = value
            continue
        type_name = parameter_type(job.parameters.get(name), notebook_types.get(name, []))
        try:
            result[name] = coerce(value, type_name if type_name in CHECKED_TYPES else None, name)
        except ValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ValidationError(problems)
    check_parameters(result, "", "parameters")  # typed values (e.g. -p x=1e999 is infinity) are checked again
    return result


def job_parameter_values(job: Job, overrides: dict[str, Any]) -> dict[str, Any]:
    """The job parameters of a run: defaults from ``job.yaml`` with the overrides of the same name applied."""
    return {**job.parameters, **{k: v for k, v in overrides.items() if k in job.parameters}}


def _check_parallel(max_parallel: int | None) -> None:
    """Raise ValidationError unless ``max_parallel`` is None or 1..MAX_PARALLEL_TASKS."""
    if max_parallel is not None and not 1 <= max_parallel <= MAX_PARALLEL_TASKS:
        raise ValidationError(Problem("", "--max-parallel", f"must be between 1 and {MAX_PARALLEL_TASKS}"))


def effective_parallelism(requested: int | None, job: Job, default: int | None) -> int:
    """The one rule for how many attempts of a run (or repair) execute at once: the request's own value
    (``--max-parallel``, ``max_parallel`` of a request body), else the job's ``max_parallel_tasks``, else the
    orchestrator's default (the server's ``OrchestrateApp.max_parallel_tasks``), else the CPU count."""
    return requested or job.max_parallel_tasks or default or os.cpu_count() or 1


def _process_alive(pid: int | None, create_time: float | None) -> bool:
    """Whether the process ``pid`` that started at ``create_time`` (psutil seconds) still exists on this host."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return create_time is None or abs(process.create_time() - create_time) < 1.0
    except psutil.Error:
        return False


def owner_death(run: RunOwner, *, now: str, host: str, heartbeat_timeout: float) -> str | None:
    """The one rule for "is this run's owner alive". ``run`` is an unfinished run with its owner fields.

    The owner is dead when no owner is recorded; when it ran on this host (``host``) and its process (pid and
    start time) is gone; or when the run is ``running``/``canceling`` (or owned on another host) and its
    heartbeat is older than ``heartbeat_timeout`` seconds at ``now`` (ISO UTC): a live owner beats every
    :data:`~.engine.runner.HEARTBEAT_SECONDS` while it executes the run, a queued run's owner only created it.

    Returns: None while the owner is alive, else why it is taken for dead (names pid and host).
    """
    pid, where = run.orchestrator_pid, run.orchestrator_host
    if pid is None:
        return "the orchestrator died before the run started"
    who = f"the orchestrator (pid {pid} on {where})"
    if where in (None, host) and not _process_alive(pid, run.orchestrator_create_time):
        return f"{who} died while the run was {run.status.value}"
    if run.status != RunStatus.queued or where not in (None, host):
        age = seconds_between(run.heartbeat_time, now)
        if age is None or age > heartbeat_timeout:
            last = "never heartbeat" if age is None else f"last heartbeat {age:.0f} s ago"
            return (
                f"{who} stopped heartbeating while the run was {run.status.value} ({last}, "
                f"timeout {heartbeat_timeout:g} s)"
            )
    return None


class ChildRunStarter:
    """The runs of run-job tasks (:class:`~.engine.runner.ChildRuns`), started through ``service`` like any
    run and executed on a thread of this process (:meth:`OrchestrateService.start`), with the service's default
    executor. Databricks' Run Job semantics: the child is a run of its own, linked to its parent; a repair of the
    parent repairs the child run that did not succeed instead of starting another."""

    def __init__(self, service: OrchestrateService):
        self.service = service

    def start(
        self, parent_run_id: int, task_key: str, job_folder: Path, parameters: dict[str, Any], repair: bool
    ) -> int:
        service = self.service
        if service.root is not None:  # under a server: the child job, like the parent, inside its root
            confine(job_folder, service.root, what="run_job.job", within="the server root")
        earlier = service.store.child_run_of(parent_run_id, task_key) if repair else None
        status = service.store.run_status(earlier) if earlier is not None else None
        if earlier is not None and status is not None and not status.is_terminal:
            raise ConflictError(f"run {earlier} that task {task_key} started is still {status.value}")
        if earlier is not None and status in (RunStatus.failed, RunStatus.canceled):
            runner = service.new_repair(earlier, parameters=parameters)
        else:
            runner = service.new_run(
                job_folder,
                parameters=parameters,
                trigger=Trigger.run_job,
                trigger_reason=f"task {task_key} of run {parent_run_id}",
                parent=(parent_run_id, task_key),
            )
        service.start(runner)
        return runner.run_id

    def status(self, run_id: int) -> tuple[RunStatus, str | None]:
        status = self.service.store.run_status(run_id)  # a cheap query: the runner polls it
        return status, self.service.store.run_reason(run_id) if status.is_terminal else None

    def cancel(self, run_id: int) -> None:
        self.service.cancel(run_id)


class OrchestrateService:
    """Jobs, runs and repairs over one state home.

    Args:
        home: the state home folder (chosen by :func:`~.workspace.find_state_home`).
        recover: on start, end runs whose orchestrator died and reap their kernels (:meth:`recover`).
        existing: only open a home that has a database (commands that read: ``runs``, ``show``): without one,
            raise NotFoundError ("no runs yet in state home <home>") and create nothing. An existing database is
            opened as usual, so runs whose owner died are still ended (:meth:`recover`) when it is read.
        default_max_parallel: parallelism of runs whose request and job set none (see :func:`effective_parallelism`).
        heartbeat_timeout_seconds: a run's owner is dead when its heartbeat is older (see :func:`owner_death`).
        cancel_timeout_seconds: a run ``canceling`` this long (seen by this process's monitor) is force-ended.
        keep_failed_kernels_seconds: how long the kernel of an attempt that fails in a cell stays alive for
            debugging and resume when neither the task nor the request says (CLI: 0, off; server: 900).
        kernel_pool: warm kernels shared by the runs this service executes (a server's, see
            :mod:`~.executors.kernel_pool`); closed by :meth:`shutdown`. None: each run launches its own.
        executor: the executor of runs whose job.yaml names none (a server's ``executor`` and
            ``dask_scheduler`` traits); None: local.
        root: a Jupyter server's root: the jobs runs start by themselves (run-job tasks) must lie inside it,
            as the jobs its requests name do; None (CLI, Python API): the workspace alone confines them.
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        recover: bool = True,
        existing: bool = False,
        default_max_parallel: int | None = None,
        heartbeat_timeout_seconds: float = HEARTBEAT_TIMEOUT_SECONDS,
        cancel_timeout_seconds: float = CANCEL_TIMEOUT_SECONDS,
        keep_failed_kernels_seconds: float = 0.0,
        kernel_pool: KernelPool | None = None,
        executor: ExecutorSettings | None = None,
        root: str | os.PathLike[str] | None = None,
    ):
        if existing and not (Path(home) / DB_NAME).is_file():
            raise NotFoundError(f"no runs yet in state home {Path(home).expanduser().resolve()}")
        self.store = Store(home)
        self.discovery = DiscoveryCache()
        self.default_max_parallel = default_max_parallel
        self.listeners: list[EventCallback] = []
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds
        self.cancel_timeout_seconds = cancel_timeout_seconds
        self.keep_failed_kernels_seconds = keep_failed_kernels_seconds
        self.kernel_pool = kernel_pool
        self.default_executor = executor or ExecutorSettings()
        #: a Jupyter server's root: the jobs a run starts by itself (run-job tasks) must lie inside it too
        self.root = Path(root).expanduser().resolve() if root is not None else None
        self._active: dict[int, tuple[Runner, threading.Thread]] = {}
        self._executed: set[int] = set()  # runs executed by start(): shutdown reaps the kernels they keep
        self._active_lock = threading.Lock()
        self._closing: str | None = None
        self._canceling_since: dict[int, float] = {}
        self._monitor_stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.recovered: list[int] = self.recover() if recover else []

    def _fan_out(self, kind: str, payload: dict[str, Any]) -> None:
        """Give a run event (wire shape, :mod:`~.schemas.events`) to every listener; one that raises is logged
        and the others still get the event."""
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:  # a display or network problem of one listener must not starve the others
                log.exception(
                    "listener %r failed on the %s event of run %s", listener, kind, payload.get("run_id")
                )

    # -- background execution (server, widgets) --------------------------------------------------------------
    def start(self, runner: Runner) -> threading.Thread:
        """Execute ``runner`` in a background thread; the run is then cancellable in-process.

        A runner that crashes is recorded by :meth:`~.engine.runner.Runner.mark_crashed` (never left running).
        After :meth:`shutdown` began, the run is canceled at once.

        Returns: the (started, daemon) thread; it closes the runner's executor when the run ends.
        """

        def target() -> None:
            try:
                runner.execute()
            except Exception as exc:  # recorded as a failed run; never kill the host process
                log.exception("run %s crashed", runner.run_id)
                runner.mark_crashed(exc)
            finally:
                runner.executor.close()
                with self._active_lock:
                    self._active.pop(runner.run_id, None)

        thread = threading.Thread(target=target, name=f"orchestrate-run-{runner.run_id}", daemon=True)
        with self._active_lock:
            self._active[runner.run_id] = (runner, thread)
            self._executed.add(runner.run_id)
            if self._closing:
                runner.cancel(self._closing)
        thread.start()
        return thread

    def shutdown(self, reason: str = "the server shut down", timeout: float = SHUTDOWN_SECONDS) -> list[int]:
        """Cancel the runs this process executes in the background and wait (up to ``timeout`` seconds) for
        them to record ``canceled``; stops the run monitor. Runs that have not ended by then are ended
        ``canceled`` here, their kernels killed.

        The kernels kept by runs this process executed are reaped too (a Jupyter server that stops ends its
        debugging sessions, as it ends its own kernels); kernels kept by CLI runs are not this process's.

        Returns: the ids of the runs that had to be force-ended.
        """
        self._monitor_stop.set()
        with self._active_lock:
            self._closing = reason
            active = list(self._active.values())
        for runner, _ in active:
            runner.cancel(reason)
        deadline = time.monotonic() + timeout
        for _, thread in active:
            thread.join(max(deadline - time.monotonic(), 0.0))
        forced = []
        for runner, thread in active:
            if thread.is_alive():
                self._end(
                    self.store,
                    runner.run_id,
                    RunStatus.canceled,
                    f"{reason}; the cancel did not finish within {timeout:g} s",
                    expected=None,
                    reap=True,
                )
                forced.append(runner.run_id)
        with self._active_lock:
            executed = sorted(self._executed)
        for run_id in executed:
            try:
                self.discard_kept_kernels(run_id, f"reaped: {reason}")
            except StoreError:
                log.warning("cannot reap the kernels kept by run %s", run_id, exc_info=True)
        if self.kernel_pool is not None:
            self.kernel_pool.close()
        return forced

    # -- run monitor -----------------------------------------------------------------------------------------
    def start_monitor(self, poll_seconds: float = MONITOR_SECONDS) -> threading.Thread:
        """Run :meth:`recover` every ``poll_seconds`` on a daemon thread with its own database connection (so
        it never holds up a run of this process), until :meth:`shutdown`. Dagster's run monitoring, Airflow's
        zombie detection: a run whose owner died is ended and its ``max_concurrent_runs`` slot freed while
        this orchestrator lives, not only when one starts.

        Returns: the monitor thread (the same one if already started).
        """
        if self._monitor is not None:
            return self._monitor

        def loop() -> None:
            store = Store(self.store.home)
            try:
                while not self._monitor_stop.wait(poll_seconds):
                    try:
                        ended = self._check_runs(store)
                    except StoreError as exc:  # a busy, full or damaged database must not stop the monitor
                        log.warning("run monitor pass failed: %s", exc)
                        continue
                    except Exception:
                        log.exception("run monitor pass failed")
                        continue
                    if ended:
                        log.warning(
                            "run monitor ended runs %s: their orchestrator died or their cancel did not finish",
                            ended,
                        )
            finally:
                store.close()

        self._monitor = threading.Thread(target=loop, name="orchestrate-run-monitor", daemon=True)
        self._monitor.start()
        return self._monitor

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
        trigger_time: str | None = None,
        trigger_reason: str | None = None,
        fire_id: int | None = None,
        executor: TaskExecutor | None = None,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        job: Job | None = None,
        keep_failed_kernels_seconds: float | None = None,
        parent: tuple[int, str] | None = None,
    ) -> Runner:
        """Validate the job at ``path``, record a new run, and return its runner (call ``execute()``).

        Args:
            job: the job at ``path`` as the caller just loaded it (:func:`~.discovery.load_job`), so that it is
                not discovered twice; default: load it here.
            clock: the runner's monotonic clock (tests: the fake clock of a
                :class:`~.executors.memory.MemoryExecutor`).
            parameters: ``-p`` overrides ``{name: value}``; string values are typed by the parameter they set.
            max_parallel: attempts in flight at most; default: see :func:`effective_parallelism`.
            trigger, trigger_time, trigger_reason: what started the run; ``trigger_time`` (ISO UTC, default the
                start time) is the run's logical time, ``{{job.trigger.time}}`` in parameters.
            fire_id: the scheduler's fire record that starts this run (linked in the run's own transaction).
            keep_failed_kernels_seconds: keep the kernel of an attempt that fails in a cell alive this long
                (seconds) where the task does not say; default the service's.
            parent: ``(run_id, task_key)`` of the run-job task that starts this run (:class:`ChildRunStarter`).

        Tasks that cannot execute (a notebook that cannot be read, a kernel that is not installed) end
        ``failed`` at once, without an attempt, with the reason; the other tasks run.

        Raises:
            ValidationError: the job or the parameters are invalid (nothing is recorded).
        """
        _check_parallel(max_parallel)
        max_output_bytes()  # a bad JUPYTER_ORCHESTRATE_MAX_OUTPUT_BYTES is refused before anything is recorded
        job = job if job is not None else load_job(path)
        overrides = coerce_overrides(job, parameters or {})
        run_parameters = job_parameter_values(job, overrides)
        parallel = effective_parallelism(max_parallel, job, self.default_max_parallel)
        run_id = self.store.create_run(
            public_job(job),
            parameters=run_parameters,
            overrides=overrides,
            max_parallel_tasks=parallel,
            trigger=trigger,
            trigger_time=trigger_time,
            trigger_reason=trigger_reason,
            fire_id=fire_id,
            parent=parent,
        )
        states = {t.task_key: TaskState(TaskRunStatus.pending) for t in job.tasks}
        self._fail_broken_tasks(run_id, job, states)
        return self._runner(
            run_id,
            job,
            states,
            parallel,
            overrides,
            executor,
            on_event,
            repair_number=0,
            clock=clock,
            keep_failed_kernels_seconds=keep_failed_kernels_seconds,
        )

    def _fail_broken_tasks(self, run_id: int, job: Job, states: dict[str, TaskState]) -> None:
        """End the pending task runs whose task cannot execute (:attr:`~.models.Task.problem`) as ``failed``,
        without an attempt: nothing was executed, so there is no attempt to number, retry or open, and a retry
        could not fix a notebook that cannot be read. The reason names the stage; dependents follow ``run_if``."""
        for task in job.tasks:
            if task.problem is not None and states[task.task_key].status == TaskRunStatus.pending:
                reason = str(task.problem)
                states[task.task_key] = TaskState(
                    TaskRunStatus.failed, attempts=states[task.task_key].attempts, reason=reason
                )
                self.store.set_task_status(run_id, task.task_key, TaskRunStatus.failed, reason)

    def _reused_outcomes(self, run_id: int, job: Job, states: dict[str, TaskState]) -> dict[str, bool]:
        """The outcomes of the condition tasks a repair reuses (succeeded earlier): their task value
        ``outcome`` (:mod:`~.conditions`), so that the branches they chose stay chosen."""
        values = self.store.task_values(run_id)
        return {
            t.task_key: bool(values[t.task_key][OUTCOME_VALUE])
            for t in job.tasks
            if t.condition is not None
            and states[t.task_key].status == TaskRunStatus.succeeded
            and OUTCOME_VALUE in values.get(t.task_key, {})
        }

    def executor_for(
        self, job: Job | None, executor_type: ExecutorType | None = None, scheduler: str | None = None
    ) -> TaskExecutor:
        """The executor of a run of ``job``: ``executor_type`` if given (``run --executor``), else the job's
        ``executor.type`` (job.yaml), else this service's default (a server's trait), else local. For ``dask``,
        the scheduler is ``scheduler``, else the job's ``executor.scheduler``, else the service's, else
        ``JUPYTER_ORCHESTRATE_DASK_SCHEDULER``, else a LocalCluster started for the run.

        Raises: :class:`~.errors.ExecutorUnavailable` when ``distributed`` is not installed or
        the scheduler cannot be reached.
        """
        settings = (job.executor if job is not None else None) or self.default_executor
        if (executor_type or settings.type) == ExecutorType.dask:
            from jupyter_orchestrate.executors.dask_executor import DaskExecutor

            return DaskExecutor(scheduler or settings.scheduler or self.default_executor.scheduler)
        return self._local_executor()

    def _local_executor(self) -> TaskExecutor:
        """A run's default executor: a LocalExecutor, on this service's warm kernel pool if it has one (a
        server's: kept kernels end with it anyway, so its pooled kernels may be kept)."""
        from jupyter_orchestrate.executors.local import LocalExecutor

        if self.kernel_pool is None:
            return LocalExecutor()
        return LocalExecutor(self.kernel_pool, pooled_kernels_may_be_kept=True, warm_replacements=True)

    def _runner(
        self,
        run_id: int,
        job: Job,
        states: dict[str, TaskState],
        parallel: int,
        overrides: dict[str, Any],
        executor: TaskExecutor | None,
        on_event: EventCallback | None,
        repair_number: int,
        clock: Callable[[], float],
        keep_failed_kernels_seconds: float | None = None,
        resume: dict[str, ResumeSpec] | None = None,
        fresh_iterations: list[str] | None = None,
    ) -> Runner:
        """The runner of a run just recorded (or a repair just claimed). Anything that fails before the runner
        exists ends the run ``failed`` with the reason, so no run is left ``queued`` holding a concurrency slot."""

        created: TaskExecutor | None = None
        try:
            run = self.store.get_run(run_id)
            trigger = {"time": run.trigger_time or run.start_time, "type": run.trigger.value}
            context = {
                "job": {
                    "run_id": run_id,
                    "name": job.name,
                    "start_time": run.start_time,
                    "repair_number": repair_number,
                    "trigger": trigger,
                }
            }
            if executor is None:
                executor = created = self.executor_for(job)
            runner = Runner(
                self.store,
                executor,
                run_id,
                job,
                ActiveRun(
                    {t.task_key: t for t in job.tasks},
                    states,
                    parallel,
                    outcomes=self._reused_outcomes(run_id, job, states) if repair_number else {},
                ),
                run_parameters=render(run.parameters, context),
                overrides=overrides,
                start_time=run.start_time,
                trigger=trigger,
                repair_number=repair_number,
                on_event=on_event,
                clock=clock,
                keep_failed_kernels_seconds=self.keep_failed_kernels_seconds
                if keep_failed_kernels_seconds is None
                else keep_failed_kernels_seconds,
                resume=resume or {},
                fresh_iterations=fresh_iterations or [],
                child_runs=ChildRunStarter(self),
            )
            runner.listeners.append(self._fan_out)
            return runner
        except BaseException as exc:
            from jupyter_orchestrate.environments import redact_value, secret_names

            if created is not None:  # made here (a Dask client, maybe a LocalCluster): nobody else closes it
                with contextlib.suppress(Exception):
                    created.close()
            reason = redact_value(
                f"the run could not start ({type(exc).__name__}: {exc})",
                [os.environ[n] for n in secret_names({})],
            )
            try:
                self.store.end_unfinished(
                    run_id,
                    reason,
                    run_status=RunStatus.failed,
                    error_kind=AttemptErrorKind.internal,
                    ename="RunNotStarted",
                )
            except Exception:  # the store itself failed: the monitor ends the run once its owner is gone
                log.warning(
                    "run %s could not start and could not be ended: %s", run_id, reason, exc_info=True
                )
            raise

    def get_run(self, run_id: int) -> Run:
        """The run with task runs, attempts, errors, task values, repairs and live kept kernels (their records
        reconciled with their processes first, :func:`~.engine.kept_kernels.reconcile`). Raises NotFoundError."""
        kept_kernels.reconcile(self.store, run_id)
        return self.store.get_run(run_id)

    def kept_kernel(self, run_id: int, task_key: str, root: str | Path | None = None) -> KeptKernel:
        """The live kept kernel of a task run (the kernel of its last attempt, kept after it failed in a cell).

        Args:
            root: when given (the Jupyter server's root), the run's job folder must lie inside it.

        Returns: the kept kernel, its connection file confined to the state home.

        Raises:
            NotFoundError: no such run or task. ConflictError: no kernel is kept for it (the message says why).
            PathOutsideRootError: the job folder is outside ``root``, or the stored connection file is outside
                the state home.
        """
        run = self.get_run(run_id)
        if root is not None:
            confine(run.job_path, root, what=f"the job folder of run {run_id}", within="the server root")
        try:
            task_run = run.task_run(task_key)
        except KeyError:
            raise NotFoundError(f"run {run_id} has no task {task_key!r}") from None
        if task_run.kept_kernel is None:
            raise ConflictError(f"run {run_id} task {task_key}: {self._not_kept(run_id, task_run)}")
        kept = task_run.kept_kernel
        confine(
            kept.connection_file,
            self.store.home,
            what="a kept kernel's connection file",
            within="the state home",
        )
        return kept

    def _not_kept(self, run_id: int, task_run: TaskRun) -> str:
        """Why a task run has no live kept kernel, in words a user can act on."""
        last = task_run.last_attempt
        if task_run.status == TaskRunStatus.timed_out:
            return "it failed by timeout, and a timed-out attempt's kernel is killed"
        if task_run.status != TaskRunStatus.failed or last is None or last.error is None:
            return f"it is {task_run.status.value.replace('_', ' ')}, not failed in a cell"
        kind = last.error.kind
        if kind != AttemptErrorKind.cell_error:
            return f"it failed with {kind.value.replace('_', ' ')}, not in a cell; its kernel was not kept"
        ended = [
            k
            for k in self.store.kept_kernels(run_id, live=False)
            if k.task_key == task_run.task_key and k.attempt_number == last.attempt_number
        ]
        if ended:
            return f"its kernel is gone ({ended[-1].end_reason or 'ended'})"
        return (
            "no kernel was kept for it (keep_failed_kernels_seconds was 0: run with --keep-failed-kernels "
            "SECONDS, or set keep_failed_kernels_seconds in job.yaml)"
        )

    def discard_kept_kernels(self, run_id: int, reason: str = "reaped on request") -> list[KeptKernel]:
        """Shut down every kept kernel of ``run_id`` now. Returns: the ones reaped."""
        alive = kept_kernels.reconcile(self.store, run_id)
        for kept in alive:
            kept_kernels.reap(self.store, kept, reason)
        return alive

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
        """Runs newest first, filtered; see :meth:`~.store.Store.list_runs`."""
        return self.store.list_runs(
            job_name=job_name,
            job_path=job_path,
            status=status,
            trigger=trigger,
            since=since,
            until=until,
            limit=limit,
            before=before,
        )

    def cancel(self, run_id: int) -> bool:
        """Request cancellation; the orchestrator executing the run stops it within about a second.

        Returns: False if the run had already finished. Raises NotFoundError.
        """
        requested = self.store.request_cancel(run_id)
        with self._active_lock:
            runner, _ = self._active.get(run_id, (None, None))
        if requested and runner is not None:
            runner.cancel("cancel requested")
        if not requested:  # a finished run: canceling it discards the kernels it keeps
            self.discard_kept_kernels(run_id, "reaped: cancel of the finished run")
        return requested

    # -- documents (what the REST API and --json serve; blocking: call them off an event loop) ------------------
    def run_document(self, run_id: int, root: str | Path | None = None) -> RunDocument:
        """The document of run ``run_id`` (paths relative to ``root`` where given). Raises NotFoundError."""
        return RunDocument.build(self.get_run(run_id), root)

    def runs_document(
        self, *, limit: int = 20, root: str | Path | None = None, **query: Any
    ) -> RunListDocument:
        """A page of runs newest first and the ``before`` of the next page; ``query``: the filters of
        :meth:`list_runs` (``job_name``, ``job_path``, ``status``, ``trigger``, ``since``, ``until``, ``before``)."""
        return RunListDocument.build(self.list_runs(limit=limit, **query), limit, root)

    def job_document(
        self,
        path: Path,
        root: Path,
        job: Job | None = None,
        problems: list[Problem] | None = None,
        *,
        runs: list[Run] | None = None,
        kernels: Signature | None = None,
    ) -> JobDocument:
        """The document of the job folder ``path``: validated here unless ``job`` or ``problems`` are given
        (``job`` None with problems: invalid), with its last 10 runs and its schedules' state; literal
        secret values are masked (:func:`~.environments.public_job`).

        Validation results are reused while the folder's files are unchanged (:class:`~.discovery_cache.
        DiscoveryCache`); ``runs``: its recent runs when the caller read them already (``jobs_document``);
        ``kernels``: the kernels' signature read once for many jobs.

        Raises: PathOutsideRootError when the job's files lead outside its folder (validation reads nothing).
        """
        if job is None and problems is None:
            job, problems = self.discovery.validate(path, kernels)
        if runs is None:
            runs = self.store.recent_runs([str(path)], RECENT_RUNS)[str(path)]
        schedules = self.schedules(job) if job is not None else []
        return JobDocument.build(job, path, root, problems or [], runs, schedules)

    def task_settings_document(
        self,
        path: Path,
        root: Path,
        task_key: str,
        changes: dict[str, Any],
        *,
        notebook: str | None = None,
        metadata: dict[str, Any] | None = FROM_FILE,
    ) -> TaskSettingsDocument:
        """A dry run of a task settings change (:func:`~.discovery.check_task_settings`): nothing is written.

        Returns: the notebook's ``metadata.orchestrate`` after the change and the job document as validated
        with it. Raises: as :func:`~.discovery.check_task_settings` (ValidationError names the fields).
        """
        change = check_task_settings(path, task_key, changes, notebook=notebook, metadata=metadata)
        return TaskSettingsDocument(
            task_key=change.task_key,
            notebook=change.notebook.relative_to(path.resolve()).as_posix(),
            metadata=change.settings,
            job=self.job_document(path, root, change.job, change.problems),
        )

    def trends_document(self, path: Path, root: Path, limit: int = 50) -> TrendsDocument:
        """The trends of the job folder ``path`` (``job_id`` relative to ``root``): its last ``limit`` runs'
        durations and statuses, and per task the p50/p90 duration, failure rate and slowest cells over them
        (:class:`~.schemas.documents.TrendsDocument`). A job without runs has empty trends.

        Raises: ValidationError when ``limit`` is not 1..:data:`~.schemas.documents.MAX_TRENDS_RUNS`.
        """
        if not 1 <= limit <= MAX_TRENDS_RUNS:
            raise ValidationError(Problem("query", "limit", f"must be between 1 and {MAX_TRENDS_RUNS}"))
        runs = self.list_runs(job_path=str(path), limit=limit)
        cells = self.store.slowest_cells([r.run_id for r in runs], per_task=SLOWEST_CELLS_PER_TASK)
        job_id = relative_to(str(path), root) or path.name
        return TrendsDocument.build(job_id, limit, runs, cells)

    def jobs_document(
        self, search_roots: list[Path], root: Path, *, max_depth: int, exclude: tuple[Path, ...] = ()
    ) -> JobListDocument:
        """Every job under ``search_roots`` (each found once, ``exclude``'d folders skipped), validated."""
        from jupyter_orchestrate.discovery import find_jobs
        from jupyter_orchestrate.errors import PathOutsideRootError

        paths: list[Path] = []
        for search_root in search_roots:
            for path in find_jobs(search_root, max_depth=max_depth, exclude=exclude):
                if path not in paths:
                    paths.append(path)
        # every job's recent runs in one read transaction, the kernels looked up once (not once per job)
        recent = self.store.recent_runs([str(p) for p in paths], RECENT_RUNS)
        kernels = kernels_signature()
        jobs = []
        for path in paths:
            runs = recent[str(path)]
            try:
                jobs.append(self.job_document(path, root, runs=runs, kernels=kernels))
            except PathOutsideRootError as exc:  # listed, so the user learns why it cannot be opened
                jobs.append(self.job_document(path, root, None, exc.problems, runs=runs))
        return JobListDocument(jobs=jobs)

    def attempt_log(self, run_id: int, task_key: str, attempt_number: str | int) -> bytes:
        """The log file of attempt ``attempt_number`` of ``task_key`` in run ``run_id`` (read from the state
        home only). Raises NotFoundError for an unknown run, task or attempt, or when no log was captured."""
        run = self.get_run(run_id)
        try:
            found = next(
                a for a in run.task_run(task_key).attempts if str(a.attempt_number) == str(attempt_number)
            )
        except (KeyError, StopIteration):
            raise NotFoundError(
                f"run {run_id} has no attempt {attempt_number} of task {task_key!r}"
            ) from None
        log_path = found.log_path and confine(
            found.log_path, self.store.home, what="log", within="the state home"
        )
        if not log_path or not log_path.is_file():
            raise NotFoundError(f"no log was captured for attempt {attempt_number} of task {task_key!r}")
        return log_path.read_bytes()

    # -- repair ----------------------------------------------------------------------------------------------
    def plan_repair(
        self,
        run_id: int,
        *,
        task_keys: list[str] | None = None,
        rerun_dependents: bool = False,
        parameters: dict[str, Any] | None = None,
        root: str | Path | None = None,
        resume: bool = False,
        force: bool = False,
    ) -> tuple[RepairPlan, Job, dict[str, Any]]:
        """Work out a repair without doing it (``--dry-run``).

        The repair executes the job's *current* definition (so a fixed notebook or setting takes effect); its
        tasks must be the same as the run's.

        Args:
            root: when given (the Jupyter server's root), the run's job folder must lie inside it: a server
                repairs only jobs it could have started, not runs of outside jobs recorded by the CLI on the
                same state home.
            resume, force: a resume (see :meth:`resume_specs`): checked here too, so a dry run refuses what the
                resume would.

        Returns: ``(plan, job, overrides)`` where overrides are the run's ``-p`` values merged with these.

        Raises:
            NotFoundError: no such run. ConflictError: the run is not finished, or nothing needs repair.
            PathOutsideRootError: the run's job folder is outside ``root`` (checked first; nothing is read).
            ValidationError: the job is now invalid, its tasks changed, a named task is unknown, bad parameters.
        """
        plan, job, overrides, _, _ = self._plan_repair(
            run_id,
            task_keys=task_keys,
            rerun_dependents=rerun_dependents,
            parameters=parameters,
            root=root,
            resume=resume,
            force=force,
        )
        return plan, job, overrides

    def _plan_repair(
        self,
        run_id: int,
        *,
        task_keys: list[str] | None,
        rerun_dependents: bool,
        parameters: dict[str, Any] | None,
        root: str | Path | None,
        resume: bool,
        force: bool,
    ) -> tuple[RepairPlan, Job, dict[str, Any], dict[str, ResumeSpec], Run]:
        """:meth:`plan_repair`, a resume's :meth:`resume_specs` ({} without ``resume``) and the finished run
        the plan was made from (what a repair's compare-and-set must expect)."""
        run = self.get_run(run_id)
        if root is not None:
            confine(run.job_path, root, what=f"the job folder of run {run_id}", within="the server root")
        if not run.status.is_terminal:
            raise ConflictError(
                f"run {run_id} is {run.status.value}; wait for it to finish or cancel it before repairing"
            )
        job = load_job(run.job_path)
        old = {t.task_key for t in run.task_runs}
        new = set(job.task_keys)
        if old != new:
            added, removed = sorted(new - old), sorted(old - new)
            raise ValidationError(
                Problem(
                    run.job_path,
                    "tasks",
                    f"the job's tasks changed since run {run_id} (added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}); start a new run instead",
                )
            )
        dag = Dag({t.task_key: t.depends_on for t in job.tasks})
        # a task run left unfinished in a finished run (a runner stopped without ending it) is repaired as failed
        statuses = {
            t.task_key: t.status if t.status.is_terminal else TaskRunStatus.failed for t in run.task_runs
        }
        if task_keys:
            task_keys = job.expand_groups(task_keys)  # a task group selects all its tasks
            unknown = sorted(set(task_keys) - new)
            if unknown:
                groups = f"; groups: {', '.join(sorted(job.groups))}" if job.groups else ""
                raise ValidationError(
                    Problem(
                        "",
                        "--task",
                        f"unknown task(s) {', '.join(unknown)} (tasks: {', '.join(sorted(new))}{groups})",
                    )
                )
        specs = self.resume_specs(run, job, task_keys or None, force=force) if resume else {}
        if resume:  # the tasks of the resumed iterations are repaired (their other iterations are reused)
            task_keys = sorted({task_key_of(k) for k in specs})
        to_run, reused = repair_selection(dag, statuses, task_keys or None, rerun_dependents)
        if not to_run:
            raise ConflictError(
                f"run {run_id} has nothing to repair: no task run is unsuccessful (name tasks with --task to re-execute them)"
            )
        new_overrides = coerce_overrides(job, parameters or {})
        return (
            RepairPlan(run_id=run_id, task_keys=to_run, reused_task_keys=reused, parameters=new_overrides),
            job,
            {**run.overrides, **new_overrides},
            specs,
            run,
        )

    def new_repair(
        self,
        run_id: int,
        *,
        task_keys: list[str] | None = None,
        rerun_dependents: bool = False,
        parameters: dict[str, Any] | None = None,
        max_parallel: int | None = None,
        root: str | Path | None = None,
        executor: TaskExecutor | None = None,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        resume: bool = False,
        force: bool = False,
        keep_failed_kernels_seconds: float | None = None,
    ) -> Runner:
        """Record a repair of ``run_id`` and return the runner that executes it (call ``execute()``).

        Semantics of Databricks "Repair run": the unsuccessful task runs (or ``task_keys``) and everything
        downstream of them that did not succeed (all of it with ``rerun_dependents``) re-execute inside the
        same run, as new attempts; succeeded task runs and their task values are reused. Parallelism: see
        :func:`effective_parallelism` (the job's current ``max_parallel_tasks``). ``root`` and errors: see
        :meth:`plan_repair`.

        With ``resume`` the selected failed tasks (default: every failed one) re-execute from their failed cell
        in their kept kernels instead of from the top (:meth:`resume_specs`; ``force`` resumes although cells
        before the failed one changed); what is downstream re-executes as in any repair. A resumed attempt that
        fails in a cell again keeps its kernel for ``keep_failed_kernels_seconds`` (default: the service's, else
        as long as the kernel was kept before).
        """
        max_output_bytes()
        plan, job, overrides, specs, run = self._plan_repair(
            run_id,
            task_keys=task_keys,
            rerun_dependents=rerun_dependents,
            parameters=parameters,
            root=root,
            resume=resume,
            force=force,
        )
        _check_parallel(max_parallel)
        if resume and keep_failed_kernels_seconds is None:
            keep_failed_kernels_seconds = self.keep_failed_kernels_seconds or max(
                (
                    epoch_of(k.expires_time) - epoch_of(k.kept_time)
                    for t in run.task_runs
                    if (k := t.kept_kernel)
                ),
                default=0.0,
            )
        if any(not t.status.is_terminal for t in run.task_runs):
            # end them first (compare-and-set against the finished run the plan saw: not if another repair
            # claimed the run since, whose running task runs these would be), so the repair's runner finds no
            # task run waiting for an attempt that is not there
            ended = self.store.end_unfinished(
                run_id,
                f"run {run_id} ended ({run.status.value}) while this task run had not; repair it",
                run_status=None,
                error_kind=AttemptErrorKind.internal,
                ename="RunnerStopped",
                expected={"status": run.status.value, "repair_count": run.repair_count},
            )
            if not ended:
                raise ConflictError(
                    f"run {run_id} changed while the repair was planned (another repair started?)"
                )
        run_parameters = job_parameter_values(job, overrides)
        number = self.store.start_repair(
            run_id,
            job=public_job(job),
            requested_task_keys=task_keys or None,
            rerun_dependents=rerun_dependents,
            task_keys=plan.task_keys,
            reused_task_keys=plan.reused_task_keys,
            parameters=plan.parameters,
            run_parameters=run_parameters,
            overrides=overrides,
            resumed_from={k: spec.from_cell_index for k, spec in specs.items()},
        )
        statuses = self.store.statuses(run_id)
        counts = self.store.attempt_counts(run_id)
        states = {k: TaskState(statuses[k], attempts=counts.get(k, 0)) for k in job.task_keys}
        self._fail_broken_tasks(run_id, job, states)
        parallel = effective_parallelism(max_parallel, job, self.default_max_parallel)
        return self._runner(
            run_id,
            job,
            states,
            parallel,
            overrides,
            executor,
            on_event,
            repair_number=number,
            clock=clock,
            keep_failed_kernels_seconds=keep_failed_kernels_seconds,
            resume=specs,
            fresh_iterations=self._fresh_iterations(run, job, plan.task_keys, task_keys, resume),
        )

    @staticmethod
    def _fresh_iterations(
        run: Run, job: Job, to_run: list[str], named: list[str] | None, resume: bool
    ) -> list[str]:
        """The for-each tasks a repair re-executes whole (every iteration, none reused): those it names
        (``--task``, groups expanded) and those it re-executes although they succeeded (``--rerun-dependents``).
        A for-each task it selects because it failed re-executes only its unsuccessful iterations; a resume
        re-executes only the resumed ones."""
        if resume:
            return []
        succeeded = {t.task_key for t in run.task_runs if t.status == TaskRunStatus.succeeded}
        return sorted(set(job.expand_groups(named or [])) | (set(to_run) & succeeded))

    def resume_specs(
        self, run: Run, job: Job, task_keys: list[str] | None, *, force: bool = False
    ) -> dict[str, ResumeSpec]:
        """Where each task of a resume resumes: its failed cell, in its kept kernel.

        Args:
            run: the finished run (with its kept kernels, :meth:`get_run`). job: its current definition.
            task_keys: the tasks to resume; default every ``failed`` or ``timed_out`` task run (a timed-out one
                is refused, saying why).
            force: resume although code cells before the failed one changed on disk since the failed attempt
                (the kernel's state then came from the old code).

        Returns: task key -> :class:`~.executors.base.ResumeSpec`.

        Raises:
            ConflictError: a task cannot be resumed: it did not fail in a cell, its kernel is gone (reaped,
                expired, timed out), it failed in the injected-parameters cell, or (without ``force``) cells
                before its failed cell changed. The message names each task and why, and offers the normal
                repair. PathOutsideRootError: a stored path is outside the state home.
        """
        unsuccessful = (TaskRunStatus.failed, TaskRunStatus.timed_out)
        named = set(task_keys or [t.task_key for t in run.task_runs])
        selected = []
        for t in run.task_runs:  # a for-each task resumes per iteration: each unsuccessful one in its kernel
            if t.task_key in named and t.iterations:
                selected += [i.task_key for i in t.iterations if i.status in unsuccessful]
            elif t.task_key in named and (task_keys or t.status in unsuccessful):
                selected.append(t.task_key)
        if not selected:
            raise ConflictError(f"run {run.run_id} has no failed task to resume")
        problems: list[str] = []
        specs: dict[str, ResumeSpec] = {}
        for key in selected:
            task_run = run.task_run(key)
            kept = task_run.kept_kernel
            last = task_run.last_attempt
            if kept is None or last is None or last.notebook_path is None:
                problems.append(f"task {key}: {self._not_kept(run.run_id, task_run)}")
                continue
            if kept.cell_index is None:
                problems.append(
                    f"task {key}: it failed in the injected-parameters cell; there is no cell to resume from"
                )
                continue
            home = self.store.home
            connection_file = confine(
                kept.connection_file, home, what="a kept kernel's connection file", within="the state home"
            )
            failed_notebook = confine(
                last.notebook_path, home, what="a failed attempt's notebook", within="the state home"
            )
            notebook = str(Path(job.path) / (job.task(task_key_of(key)).notebook or ""))
            if not force:
                try:
                    changed = changed_before(notebook, str(failed_notebook), kept.cell_index)
                except ValueError as exc:
                    problems.append(f"task {key}: {exc}")
                    continue
                if changed:
                    cells = ", ".join(cell_label(i) for i in changed)
                    problems.append(
                        f"task {key}: {cells} before the failed {cell_label(kept.cell_index)} changed since attempt "
                        f"{kept.attempt_number} (the kernel's state comes from the old code); resume with --force "
                        "to use the kernel anyway"
                    )
                    continue
            specs[key] = ResumeSpec(
                connection_file=str(connection_file),
                control_file=kept_kernels.control_file(kept),
                kernel_pid=kept.kernel_pid,
                kernel_create_time=kept.kernel_create_time,
                from_cell_index=kept.cell_index,
                failed_notebook_path=str(failed_notebook),
                failed_attempt_number=kept.attempt_number,
            )
        if problems:
            raise ConflictError(
                f"cannot resume run {run.run_id}: {'; '.join(problems)}. A repair re-executes from the top: "
                f"jupyter orchestrate repair {run.run_id}"
            )
        return specs

    # -- schedules -------------------------------------------------------------------------------------------
    def schedules(self, job: Job) -> list[ScheduleDocument]:
        """The job's schedules with their state: effective ``paused``, ``next_fire_time``, ``last_fire_time``
        and the 5 latest fires (scheduled time, status, run id, reason)."""
        fires = self.store.fires(job.path, limit=200)
        result = []
        for name, schedule in named_schedules(job.schedules).items():
            state = self.store.schedule_state(job.path, name) or ScheduleState(job.path, name)
            paused = effective_paused(schedule, state)
            result.append(
                ScheduleDocument(
                    **{**dict(schedule), "name": name, "paused": paused},
                    next_fire_time=None if paused else state.next_fire_time,
                    last_fire_time=state.last_fire_time,
                    recent_fires=[
                        FireDocument(
                            scheduled_time=f.scheduled_time,
                            fire_time=f.fire_time,
                            status=f.status,
                            run_id=f.run_id,
                            reason=f.reason,
                        )
                        for f in fires
                        if f.schedule_name == name
                    ][:5],
                )
            )
        return result

    def set_schedule_paused(self, job: Job, name: str, paused: bool) -> None:
        """Pause or resume a schedule (stored in the state home; overrides ``paused`` in job.yaml).

        Raises: NotFoundError when the job has no schedule ``name``.
        """
        self._schedule(job, name)
        self.store.set_schedule_state(job.path, name, paused=paused)

    def trigger_schedule(self, job: Job, name: str) -> Runner:
        """ "Trigger now": a new run with the schedule's parameters (recorded as trigger ``schedule``); call
        :meth:`start` or ``execute()`` on the returned runner. Raises NotFoundError for an unknown schedule."""
        schedule = self._schedule(job, name)
        return self.new_run(
            job.path,
            parameters=dict(schedule.parameters),
            trigger=Trigger.schedule,
            trigger_reason=f"schedule {name}: triggered now",
        )

    def backfill(
        self,
        job: Job,
        start: Any,
        end: Any,
        *,
        schedule: str | None = None,
        limit: int = 1000,
    ) -> tuple[str, Schedule, list[str]]:
        """The fire times (ISO UTC) of a schedule between ``start`` and ``end`` (aware datetimes, inclusive), for
        ``jupyter orchestrate backfill``; ``schedule`` defaults to the job's first schedule.

        Returns: ``(schedule name, schedule, fire times)``.

        Raises: ValidationError if the job has no schedule or the range holds more than ``limit`` fires;
        NotFoundError for an unknown schedule name.
        """
        from jupyter_orchestrate.scheduling.timing import fires_between  # croniter: only backfill needs it

        if not job.schedules:
            raise ValidationError(Problem(job.path, "schedules", "the job has no schedule to backfill"))
        chosen = self._schedule(job, schedule) if schedule else job.schedules[0]
        name = schedule_name(chosen, job.schedules.index(chosen))
        fires = fires_between(chosen, start - dt.timedelta(microseconds=1), end, limit=limit + 1)
        if len(fires) > limit:
            raise ValidationError(
                Problem(
                    "",
                    "--start/--end",
                    f"the range holds more than {limit} fires of schedule {name}; narrow it",
                )
            )
        return name, chosen, [f.isoformat() for f in fires]

    @staticmethod
    def _schedule(job: Job, name: str) -> Schedule:
        schedule = named_schedules(job.schedules).get(name)
        if schedule is not None:
            return schedule
        raise NotFoundError(f"job {job.name} has no schedule {name!r}")

    # -- crash recovery ------------------------------------------------------------------------------------
    def recover(self) -> list[int]:
        """End runs whose owner is dead (:func:`owner_death`) or whose cancel does not finish, and kill the
        kernels they left on this host. One pass of the run monitor, also made when the service opens.

        - owner dead, run ``queued`` or ``running``: the run ends ``failed`` with the reason (naming the owner),
          running attempts and task runs ``failed``, the rest ``canceled``, so that a repair selects them.
        - owner dead, run ``canceling``: the run ends ``canceled`` (what was asked), its task runs ``canceled``.
        - owner alive, run ``canceling`` for more than ``cancel_timeout_seconds`` since this process first saw
          it so: force-ended ``canceled`` with the reason; the owner, seeing the run ended, stops its attempts.

        Returns: the run ids ended by this pass.
        """
        ended = self._check_runs(self.store)
        try:
            kept_kernels.reconcile(self.store)
        except StoreError:
            raise
        except Exception:  # a process table that cannot be read must not stop recovery
            log.warning("cannot check the kept kernels", exc_info=True)
        return ended

    def _check_runs(self, store: Store) -> list[int]:
        host, now, clock = socket.gethostname(), utc_now(), time.monotonic()
        ended = []
        unfinished = store.unfinished_runs()
        canceling = {r.run_id for r in unfinished if r.status == RunStatus.canceling}
        for run_id in set(self._canceling_since) - canceling:
            del self._canceling_since[run_id]
        for run in unfinished:
            run_id, status = run.run_id, run.status
            expected = run.expected()
            reap = run.orchestrator_host in (None, host)  # kill only pids of this host
            death = owner_death(run, now=now, host=host, heartbeat_timeout=self.heartbeat_timeout_seconds)
            if death is not None:
                final = RunStatus.canceled if status == RunStatus.canceling else RunStatus.failed
                reason = (
                    f"{death}; repair the run to finish it"
                    if final == RunStatus.failed
                    else f"{death}; canceled"
                )
            elif status == RunStatus.canceling:
                since = self._canceling_since.setdefault(run_id, clock)
                if clock - since < self.cancel_timeout_seconds:
                    continue
                final = RunStatus.canceled
                reason = (
                    f"the cancel did not finish within {self.cancel_timeout_seconds:g} s (orchestrator pid "
                    f"{run.orchestrator_pid} on {run.orchestrator_host}); force-ended"
                )
                # a live owner beats on; it must not win against the bound
                expected = run.expected(heartbeat=False)
            else:
                continue
            if self._end(store, run_id, final, reason, expected=expected, reap=reap):
                ended.append(run_id)
        return ended

    def _end(
        self,
        store: Store,
        run_id: int,
        final: RunStatus,
        reason: str,
        *,
        expected: dict[str, Any] | None,
        reap: bool,
    ) -> bool:
        """End a run for its owner (see :meth:`recover`) unless its row changed from ``expected``; then kill
        the kernels of its running attempts (when ``reap``: they run on this host)."""
        attempts = store.unfinished_attempts(run_id)
        failed = final == RunStatus.failed
        if not store.end_unfinished(
            run_id,
            reason,
            run_status=final,
            running_status=TaskRunStatus.failed if failed else TaskRunStatus.canceled,
            error_kind=AttemptErrorKind.orchestrator_died if failed else AttemptErrorKind.canceled,
            ename="OrchestratorDied" if failed else "Canceled",
            expected=expected,
        ):
            return False
        for kept in store.kept_kernels(run_id) if reap else []:
            kept_kernels.reap(store, kept, f"reaped: {reason}")
        for attempt in attempts if reap else []:
            # a kernel is killed only when its start time proves the pid was not reused by another process
            if (
                attempt.kernel_pid is not None
                and attempt.kernel_create_time is not None
                and _process_alive(attempt.kernel_pid, attempt.kernel_create_time)
            ):
                try:
                    os.killpg(attempt.kernel_pid, signal.SIGKILL)
                except OSError:
                    pass
        self._fan_out(*RunStatusEvent(run_id=run_id, status=final, reason=reason).wire())
        return True


def run_document(run: Run, root: str | Path | None = None) -> dict[str, Any]:
    """The JSON data of :class:`~.schemas.documents.RunDocument` for ``run`` (``--json``, the API)."""
    return RunDocument.build(run, root).json_data()
