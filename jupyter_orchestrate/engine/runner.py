"""Runner: drives an :class:`~.active_run.ActiveRun` with an executor and records everything in the store.

One runner executes one run (or one repair of it) to its end, in the calling thread. It sleeps in
``executor.wait`` until an attempt reports, a retry or timeout is due, or a cancel arrives; it never spins.

Liveness: while it executes, a heartbeat thread of its own renews ``runs.heartbeat_time`` every
``HEARTBEAT_SECONDS`` on its own database connection, so a loop stalled under load does not stop the heartbeat;
the run monitors of live orchestrators end runs whose owner stopped heartbeating or died
(:meth:`~..service.OrchestrateService.recover`). If a monitor ended the run (its status became terminal while
this runner executes it), the runner stops its attempts and leaves that record as it is. If the runner itself
crashes, it ends what it leaves the way recovery does (:meth:`Runner.mark_crashed`).

Kernels are started ahead of need: while upstream tasks run, the runner prepares attempts of the tasks that
will be ready next, up to :data:`PREPARE_LEVELS` hops ahead (at most ``max_parallel`` prepared at once), so a task starts executing as soon as its
dependencies succeed instead of paying kernel start-up (~0.6 s, PERFORMANCE.md) on the critical path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jupyter_orchestrate.conditions import OUTCOME_VALUE, ConditionError, evaluate
from jupyter_orchestrate.dag import Dag
from jupyter_orchestrate.discovery import run_job_folder
from jupyter_orchestrate.engine import kept_kernels
from jupyter_orchestrate.engine.active_run import ActiveRun, TaskState, Transition
from jupyter_orchestrate.engine.cell_timings import CellTimings, max_cell_timings
from jupyter_orchestrate.engine.prelaunch import kernel_place
from jupyter_orchestrate.environments import redact_value, secret_names
from jupyter_orchestrate.errors import (
    ConflictError,
    OrchestrateError,
    StoreBusyError,
    StoreError,
    ValidationError,
)
from jupyter_orchestrate.executors.base import (
    AttemptResult,
    AttemptSpec,
    ExecutorEvent,
    ResumeSpec,
    TaskExecutor,
    max_output_bytes,
)
from jupyter_orchestrate.models import (
    Attempt,
    AttemptError,
    AttemptErrorKind,
    Condition,
    ForEach,
    Job,
    KeptKernel,
    KeptKernelStatus,
    ResultStatus,
    RunJob,
    RunStatus,
    Task,
    TaskRunStatus,
    cell_label,
    code_cell_progress,
    iteration_key,
    utc_iso,
    utc_now,
)
from jupyter_orchestrate.parameters import check_parameters, render
from jupyter_orchestrate.schemas.events import ProgressEvent, RunEvent, RunStatusEvent, TaskStatusEvent
from jupyter_orchestrate.schemas.messages import CellTimed, Finished, KernelStarted, Progress
from jupyter_orchestrate.store import Store, this_process
from jupyter_orchestrate.task_values import read_values_file

S = TaskRunStatus
HEARTBEAT_SECONDS = 2.0
CANCEL_POLL_SECONDS = 0.5
#: How far ahead kernels are prepared: the next tasks of a chain up to this many hops (capped at max_parallel
#: prepared). One hop leaves a chain's next kernel starting while the current task (shorter) already ran.
PREPARE_LEVELS = 3
STORE_PATIENCE_SECONDS = 300.0  # how long the run loop's store writes retry a busy database in total
log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict[str, Any]], None]
"""A listener: called with ``(kind, payload)``, the wire shape of a :data:`~..schemas.events.RunEvent`
(:meth:`~..schemas.events.RunStatusEvent.wire`); :func:`~..schemas.events.parse_event` reads it back."""


@dataclass
class _InFlight:
    task_key: str
    attempt_number: int
    handle: Any
    started: float | None = None  # monotonic time of "go"; None while only prepared
    deadline: float | None = None
    cell: int = 0
    cells_total: int | None = None
    cell_index: int | None = None
    cells: CellTimings | None = None  # per-cell execution times as they arrive (recorded when it ends)
    kernel_ready_time: str | None = None  # the executor's KernelStarted, also when it came before "go"


def _position(flight: _InFlight) -> str:
    """Where a started attempt is: ``cell 7 (code cell 3 of 5)`` (:func:`~..models.cell_label`), or ""."""
    if not flight.cells_total or not flight.cell:
        return ""
    return f"{cell_label(flight.cell_index)} ({code_cell_progress(flight.cell, flight.cells_total)})"


def task_parameters(
    task: Task, run_parameters: dict[str, Any], overrides: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """The parameters papermill injects into ``task``'s notebook (precedence in :mod:`..parameters`).

    Args:
        run_parameters: the run's job parameter values (defaults with overrides applied, rendered).
        overrides: ``-p`` values of the run/repair (typed).
        context: the reference context for :func:`~..parameters.render`.

    Raises:
        ValidationError: a reference cannot be resolved (e.g. an upstream task did not set a task value).
    """
    declared = {p.name for p in task.notebook_parameters}
    params = {k: v for k, v in run_parameters.items() if k in declared}
    params.update(render(task.parameters, context))
    params.update({k: v for k, v in overrides.items() if k in declared or k in task.parameters})
    return params


REASON_EVALUE_CHARS = 200  # an error's message in a run's headline: its first line, at most this long


def _headline(text: str) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= REASON_EVALUE_CHARS else line[: REASON_EVALUE_CHARS - 1] + "…"


def root_causes(dag: Dag, statuses: Mapping[str, TaskRunStatus]) -> list[str]:
    """The task runs that made a run fail: those that failed or timed out themselves (not ``upstream_failed``
    or canceled) among the unsuccessful leaves and everything upstream of them, in topological order."""
    suspects: set[str] = set()
    for leaf in dag.leaves():
        if statuses[leaf].is_failure:
            suspects |= {leaf} | dag.upstream_of(leaf)
    return [k for k in dag.order if k in suspects and statuses[k] in (S.failed, S.timed_out)]


def failed_run_reason(
    dag: Dag, statuses: Mapping[str, TaskRunStatus], errors: Mapping[str, AttemptError | None]
) -> str:
    """A failed run's ``status_reason``, failures first: the root-cause task runs (:func:`root_causes`) with
    their cell and error, then the leaf tasks that did not succeed because of them, e.g.
    ``validate failed in cell 4: ValueError: threshold is not set; not run: publish``.

    Args:
        dag: the run's task graph. statuses: every task run's final status by task key.
        errors: the latest attempt's error by task key (missing or None: the task has none recorded).

    Returns: one line. Without an errored task (e.g. a leaf was canceled) it names the unsuccessful leaves.
    """
    leaves = [k for k in dag.leaves() if statuses[k].is_failure]
    causes = root_causes(dag, statuses)
    if not causes:
        return f"leaf task(s) not successful: {', '.join(leaves)}"
    parts = []
    for key in causes:
        text = f"{key} {'timed out' if statuses[key] == S.timed_out else 'failed'}"
        error = errors.get(key)
        if error is not None:
            located = error.cell_index is not None or error.kind == AttemptErrorKind.cell_error
            where = f" in {cell_label(error.cell_index)}" if located else ""
            evalue = _headline(error.evalue)
            text += f"{where}: {error.ename}: {evalue}" if evalue else f"{where}: {error.ename}"
        parts.append(text)
    reason = "; ".join(parts)
    others = [k for k in leaves if k not in causes]
    return f"{reason}; not run: {', '.join(others)}" if others else reason


class ChildRuns(Protocol):
    """How a runner starts and follows the runs of its run-job tasks (the service implements it: a child run is
    a run like any other, recorded in the same state home and executed on a thread of this process)."""

    def start(
        self, parent_run_id: int, task_key: str, job_folder: Path, parameters: dict[str, Any], repair: bool
    ) -> int:
        """Start a run of the job in ``job_folder`` for run-job task ``task_key`` of run ``parent_run_id``,
        with ``parameters`` overriding its defaults; with ``repair``, repair the task's earlier child run
        instead when it did not succeed. Returns the child's run id.

        Raises:
            OrchestrateError: the child run cannot start (its job is invalid, a parameter is unknown ...).
        """
        ...

    def status(self, run_id: int) -> tuple[RunStatus, str | None]:
        """The child run's status and reason."""
        ...

    def cancel(self, run_id: int) -> None:
        """Ask the child run to stop (the parent run is being canceled)."""
        ...


class Runner:
    """Executes the pending task runs of one run.

    Args:
        store: the state store.
        executor: runs attempts.
        run_id: the run, already recorded (``store.create_run`` or ``store.start_repair``).
        job: the job definition to execute (the run's snapshot).
        active: the state machine, with reused task runs already terminal.
        run_parameters: job parameter values of the run (rendered); overrides: typed ``-p`` values.
        repair_number: 0 for the original execution, n for repair n.
        on_event: a first listener; every callable in ``listeners`` is called with ``(kind, payload)`` for
            each :data:`~..schemas.events.RunEvent` (``task_status``, ``progress``, ``run_status``; the wire
            shape of :meth:`~..schemas.events.RunStatusEvent.wire`); payloads carry ``run_id``. A listener that
            raises is logged and skipped; the run and the other listeners go on.
        clock: monotonic seconds; timeouts, retry backoff and cancel polling use it (tests pass a fake clock
            that the in-memory executor advances).
        keep_failed_kernels_seconds: how long the kernel of an attempt that fails in a cell is kept alive
            when its task does not say (``Task.keep_failed_kernels_seconds``); 0: not kept.
        resume: task key -> where its next attempt resumes (a resume repair): that attempt executes from the
            failed cell in the kept kernel; later attempts (retries) execute from the top.

    Kept kernels: the runner records each kernel an executor kept, reaps a task's kept kernel when the task
    executes again from the top or the run is canceled, and keeps at most
    :func:`~.kept_kernels.max_kept_kernels` in the state home (oldest reaped first).

    Secrets: everything the runner records (reasons, error fields, task values, parameters, environments) or
    emits (event payloads, which feed the event stream and notifications) passes :meth:`_clean` first, which
    redacts the values of every task's secret variables and of the orchestrator's own secret-by-name variables
    (:func:`~..environments.secret_names`), whatever the executor already did.
    """

    def __init__(
        self,
        store: Store,
        executor: TaskExecutor,
        run_id: int,
        job: Job,
        active: ActiveRun,
        *,
        run_parameters: dict[str, Any],
        overrides: dict[str, Any],
        start_time: str,
        trigger: dict[str, Any] | None = None,
        repair_number: int = 0,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        keep_failed_kernels_seconds: float = 0.0,
        resume: Mapping[str, ResumeSpec] | None = None,
        fresh_iterations: Iterable[str] = (),
        child_runs: ChildRuns | None = None,
    ):
        self.store = store
        self.executor = executor
        self.run_id = run_id
        self.job = job
        self.active = active
        self.tasks = active.tasks  # the job's tasks, and the iterations of for-each tasks once expanded
        #: for-each tasks a repair re-executes whole (named by it): no iteration is reused
        self.fresh_iterations = set(fresh_iterations)
        #: iteration -> (parameter name, its input element), set after the task's parameters are rendered
        self.iteration_inputs: dict[str, tuple[str, Any]] = {}
        self.child_runs = child_runs
        #: run-job task -> (its child run id, the attempt that waits for it)
        self.children: dict[str, tuple[int, int]] = {}
        self.run_parameters = run_parameters
        self.overrides = overrides
        self.start_time = start_time
        self.trigger = trigger or {"time": start_time, "type": "manual"}
        self.repair_number = repair_number
        self.listeners: list[EventCallback] = [on_event] if on_event else []
        self.in_flight: dict[str, _InFlight] = {}
        self._queued_time: dict[str, str] = {}  # task key -> when its task run was last queued (UTC ISO)
        self.cancel_reason: str | None = None
        self.clock = clock
        self._crashed = False
        self._store_fault: StoreError | None = None  # the heartbeat found the database unwritable
        self.secrets: set[str] = {os.environ[name] for name in secret_names({})}
        self.max_cell_timings = max_cell_timings()
        self.keep_failed_kernels_seconds = keep_failed_kernels_seconds
        self.resume = dict(resume or {})
        # the live kept kernel of each task of this run (a repair finds those of earlier attempts)
        self.kept: dict[str, KeptKernel] = (
            {k.task_key: k for k in store.kept_kernels(run_id)} if repair_number else {}
        )

    # -- control ---------------------------------------------------------------------------------------------
    def cancel(self, reason: str = "run canceled") -> None:
        """Ask the runner to cancel the run (thread- and signal-handler-safe)."""
        self.cancel_reason = reason
        self.executor.wake()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _clean(self, value: Any) -> Any:
        """``value`` with every secret this run knows of replaced by ``***`` (see the class docstring)."""
        return redact_value(value, self.secrets)

    def _emit(self, event: RunEvent) -> None:
        kind, payload = event.wire()
        payload = self._clean(payload)
        for listener in list(self.listeners):
            try:
                listener(kind, payload)
            except Exception:  # a display or network problem must never break a run
                log.exception("a listener failed on the %s event of run %s", kind, self.run_id)

    def _record(self, changes: list[Transition]) -> None:
        for change in changes:
            self.store.set_task_status(self.run_id, change.task_key, change.new, self._clean(change.reason))
            task = self.tasks[change.task_key]
            if (
                self.repair_number
                and task.for_each is not None
                and change.new.is_terminal
                and change.task_key not in self.active.iterations
            ):  # a repaired for-each task that ended without expanding: its earlier iterations are not its now
                self.store.record_iterations(
                    self.run_id, change.task_key, [], [], f"not executed in repair {self.repair_number}"
                )
            if change.new == S.queued:  # the attempt's queued phase starts here (the Gantt shows it)
                self._queued_time[change.task_key] = utc_now()
            flight = self.in_flight.get(change.task_key)
            if change.new.is_terminal and flight is not None and flight.started is None:
                self._discard(flight)  # prepared ahead for a task that will not run
            self._emit(
                TaskStatusEvent(
                    run_id=self.run_id,
                    task_key=change.task_key,
                    status=change.new,
                    reason=change.reason,
                    attempt_number=self.active.states[change.task_key].attempts,
                )
            )

    def context(self) -> dict[str, Any]:
        """The reference context for parameters (job fields, job parameters, task values so far). A for-each
        task's task values are lists of its iterations' values in map_index order (None where an iteration
        did not set one)."""
        values = self.store.task_values(self.run_id)
        return {
            "job": {
                "run_id": self.run_id,
                "name": self.job.name,
                "start_time": self.start_time,
                "repair_number": self.repair_number,
                "trigger": self.trigger,
                "parameters": self.run_parameters,
            },
            "tasks": {k: {"values": v} for k, v in values.items()},
        }

    def _spec(self, task: Task, attempt_number: int) -> AttemptSpec:
        folder = self.store.attempt_dir(self.run_id, task.task_key)
        stem = folder / f"attempt-{attempt_number}"
        from jupyter_orchestrate.environments import task_requirements

        job_root = Path(self.job.path)
        assert task.notebook is not None, "a condition or run-job task has no attempt spec"
        notebook = job_root / task.notebook
        environment = task.environment
        cwd, env = kernel_place(self.job, task)
        names = secret_names(env, environment.secret_env)
        kernel_env = {**os.environ, **env}
        secrets = [kernel_env[name] for name in names]
        self.secrets.update(secrets)
        python = environment.python
        if python and not Path(python).is_absolute():
            python = str(job_root / python)
        keep = task.keep_failed_kernels_seconds
        return AttemptSpec(
            run_id=self.run_id,
            task_key=task.task_key,
            attempt_number=attempt_number,
            input_path=str(notebook),
            output_path=f"{stem}.ipynb",
            log_path=f"{stem}.log",
            context_path=f"{stem}.context.json",
            values_path=f"{stem}.values.json",
            kernel_name=task.kernel_name,
            cwd=cwd,
            env=env,
            python=python,
            requirements=task_requirements(environment, job_root),
            state_home=str(self.store.home),
            secrets=secrets,
            secret_names=names,
            base_env=dict(os.environ),
            max_output_bytes=max_output_bytes(),
            keep_failed_kernel_seconds=self.keep_failed_kernels_seconds if keep is None else keep,
            resume=self.resume.get(task.task_key),
            resources=dict(task.resources),
        )

    def _prepare(self, key: str) -> _InFlight:
        attempt_number = self.active.states[key].attempts + 1
        handle = self.executor.prepare(self._spec(self.tasks[key], attempt_number))
        flight = _InFlight(key, attempt_number, handle)
        self.in_flight[key] = flight
        return flight

    def _discard(self, flight: _InFlight) -> None:
        self.executor.discard(flight.handle)
        self.in_flight.pop(flight.task_key, None)
        for path in (flight.handle.spec.log_path, flight.handle.spec.context_path):
            try:
                os.unlink(path)
            except OSError:
                pass

    # -- launching -------------------------------------------------------------------------------------------
    def _launch(self, key: str, now: float) -> None:
        task = self.tasks[key]
        if task.condition is not None:
            self._evaluate_condition(key, task.condition, now)
            return
        if task.for_each is not None:
            self._expand(key, task.for_each)
            return
        if task.run_job is not None:
            self._start_child(key, task.run_job, now)
            return
        flight = self.in_flight.get(key)
        if flight is None or flight.attempt_number != self.active.states[key].attempts + 1:
            if flight is not None:
                self._discard(flight)
            flight = self._prepare(key)
            # preparing may block (the first attempt waits for the forkserver to start): the timeout counts
            # from the attempt's start, not from before it
            now = max(now, self.clock())
        attempt_number, change = self.active.start(key)
        spec: AttemptSpec = flight.handle.spec
        self.resume.pop(key, None)  # a retry of a resumed attempt executes from the top
        self._release_kept(key, spec, attempt_number)
        context = self.context()
        error: AttemptError | None = None
        try:
            parameters = task_parameters(task, self.run_parameters, self.overrides, context)
            if key in self.iteration_inputs:  # after the task's parameters: the element is never rendered
                name, element = self.iteration_inputs[key]
                parameters[name] = element
        except OrchestrateError as exc:
            parameters = {}
            error = AttemptError(
                kind=AttemptErrorKind.parameter_error, ename="ParameterError", evalue=str(exc)
            )
        dag = self.active.dag
        upstream = sorted(dag.upstream_of(self.active.parent_of.get(key, key)))  # an iteration: its task's
        run_context = {
            "run_id": self.run_id,
            "job_name": self.job.name,
            "task_key": key,
            "attempt_number": attempt_number,
            "values_path": spec.values_path,
            "upstream": {k: context["tasks"].get(k, {}).get("values", {}) for k in upstream},
        }
        attempt = self._new_attempt(
            key,
            attempt_number,
            kernel_ready_time=flight.kernel_ready_time,
            notebook_path=spec.output_path,
            log_path=spec.log_path,
            parameters=self._clean(parameters),
            kernel_name=spec.kernel_name,
            cwd=spec.cwd,
            env_names=sorted(spec.env),
            resumed_from_cell=spec.resume.from_cell_index if spec.resume else None,
        )
        self.store.create_attempt(
            attempt,
            worker_pid=flight.handle.worker_pid,
            kernel_pid=getattr(flight.handle, "kernel_pid", None),
            kernel_create_time=getattr(flight.handle, "kernel_create_time", None),
        )
        self._record([change])
        if error is not None:
            self._discard_started(flight)
            self._finish(key, attempt_number, S.failed, error, {}, now)
            return
        flight.started = now
        timeout = task.timeout_seconds
        flight.deadline = now + timeout if timeout else None
        self.executor.start(flight.handle, parameters, run_context)

    def _expand(self, key: str, for_each: ForEach) -> None:
        """Expand for-each task ``key`` into its iterations (:meth:`ActiveRun.expand`): its inputs are resolved
        now (a reference to an upstream task value) and checked (a JSON list of at most ``max_inputs``
        elements, each within the parameter size bound). Inputs that are not such a list fail the task, with
        no iteration. A repair reuses the iterations that succeeded with the same input unless it names the
        task (``fresh_iterations``)."""
        try:
            inputs = render(for_each.inputs, self.context())
            if not isinstance(inputs, list):
                raise ValidationError(
                    f"for_each.inputs must be a JSON list, got {type(inputs).__name__} {str(inputs)[:100]!r}"
                )
            if len(inputs) > for_each.max_inputs:
                raise ValidationError(
                    f"for_each.inputs has {len(inputs):,} elements, more than max_inputs {for_each.max_inputs:,}"
                )
            for index, element in enumerate(inputs):  # each becomes a parameter: the same bounds
                check_parameters({for_each.parameter: element}, f"task {key}", f"for_each.inputs[{index}]")
        except ValidationError as exc:
            self._record([self.active.end_unstarted(key, S.failed, f"for_each: {exc}")])
            return
        old = self.store.iteration_records(self.run_id, key) if self.repair_number else []
        reused: dict[int, TaskState] = {}
        for index, (element, status, attempts) in enumerate(old[: len(inputs)]):
            same = key not in self.fresh_iterations and element == inputs[index]
            reused[index] = TaskState(
                status if same and status == S.succeeded else S.pending, attempts=attempts
            )
        changes = self.active.expand(key, inputs, reused)
        # recorded before the changes: the iterations' rows take their statuses (queued, or reused as they were)
        statuses = [self.active.states[k].status for k in self.active.iterations[key]]
        self.store.record_iterations(
            self.run_id,
            key,
            self._clean(inputs),
            statuses,
            f"not among the inputs of repair {self.repair_number}",
        )
        for index, element in enumerate(inputs):
            self.iteration_inputs[iteration_key(key, index)] = (for_each.parameter, element)
        self._record(changes)

    def _new_attempt(self, key: str, attempt_number: int, **fields: Any) -> Attempt:
        """The record of attempt ``attempt_number`` of ``key`` starting now (its queued phase ends here)."""
        return Attempt(
            run_id=self.run_id,
            task_key=key,
            attempt_number=attempt_number,
            repair_number=self.repair_number,
            status=S.running,
            queued_time=self._queued_time.pop(key, None),
            start_time=utc_now(),
            **fields,
        )

    def _start_without_kernel(self, key: str) -> int:
        """Start the attempt of a task that runs no kernel (a condition, a run-job task): it is ``running``
        and recorded at once. Returns its attempt number."""
        attempt_number, change = self.active.start(key)
        self.store.create_attempt(
            self._new_attempt(key, attempt_number),
            worker_pid=None,
            kernel_pid=None,
            kernel_create_time=None,
        )
        self._record([change])
        return attempt_number

    def _start_child(self, key: str, run_job: RunJob, now: float) -> None:
        """A run-job task's attempt: start (or, in a repair, repair) the child run and wait for it
        (:meth:`_poll_children`); no kernel. A child that cannot start fails the attempt at once, as does a job
        that is already running above this run (a cycle through files changed since validation)."""
        attempt_number = self._start_without_kernel(key)
        try:
            if self.child_runs is None:
                raise ConflictError("this runner cannot start runs of other jobs (no child runs service)")
            folder = run_job_folder(self.job.path, run_job)
            above = [path for _, path in self.store.parent_runs(self.run_id)]
            if str(folder) in above:
                raise ValidationError(f"job cycle: {folder} is running above this run already")
            parameters = render(run_job.parameters, self.context())
            child = self.child_runs.start(
                self.run_id, key, folder, self._clean(parameters), self.repair_number > 0
            )
        except OrchestrateError as exc:
            error = AttemptError(
                kind=AttemptErrorKind.child_run_failed, ename=type(exc).__name__, evalue=str(exc)[:2000]
            )
            self._finish(key, attempt_number, S.failed, error, {}, now)
            return
        self.children[key] = (child, attempt_number)  # first: a failing write below still cancels it
        self.store.set_attempt_environment(self.run_id, key, attempt_number, {"child_run_id": child})

    def _cancel_children(self) -> None:
        """Ask every child run still waited for to stop (each child's own runner records how it ends)."""
        for child, _ in self.children.values():
            with contextlib.suppress(Exception):  # one child that cannot be reached must not keep the others
                assert self.child_runs is not None
                self.child_runs.cancel(child)

    def _poll_children(self, now: float) -> None:
        """End the attempts of run-job tasks whose child run ended: succeeded with it (task value ``run_id``),
        else failed (``child_run_failed``, naming the child run and its reason) or canceled."""
        for key, (child, attempt_number) in list(self.children.items()):
            assert self.child_runs is not None
            status, reason = self.child_runs.status(child)
            if not status.is_terminal:
                continue
            self.children.pop(key)
            values = {"run_id": child}
            if status == RunStatus.succeeded:
                self._finish(key, attempt_number, S.succeeded, None, values, now)
                continue
            canceled = status == RunStatus.canceled
            error = AttemptError(
                kind=AttemptErrorKind.canceled if canceled else AttemptErrorKind.child_run_failed,
                ename="ChildRunCanceled" if canceled else "ChildRunFailed",
                evalue=f"run {child} {status.value}" + (f": {reason}" if reason else ""),
            )
            self._finish(key, attempt_number, S.canceled if canceled else S.failed, error, values, now)

    def _evaluate_condition(self, key: str, condition: Condition, now: float) -> None:
        """A condition task's attempt: evaluated here, no kernel (:func:`~..conditions.evaluate`). Its outcome
        is recorded as the task value ``outcome``; one it cannot evaluate fails the attempt (``ConditionError``
        naming the reference or the operands)."""
        attempt_number = self._start_without_kernel(key)
        try:
            outcome, description = evaluate(condition, self.context())
        except ConditionError as exc:
            error = AttemptError(
                kind=AttemptErrorKind.parameter_error, ename="ConditionError", evalue=str(exc)
            )
            self._finish(key, attempt_number, S.failed, error, {}, now)
            return
        self.store.finish_attempt(self.run_id, key, attempt_number, S.succeeded, None)
        self.store.set_task_values(self.run_id, key, attempt_number, self._clean({OUTCOME_VALUE: outcome}))
        reason = self._clean(f"condition {description}")
        self._record([self.active.finish_condition(key, outcome, now, reason)])

    def _release_kept(self, key: str, spec: AttemptSpec, attempt_number: int) -> None:
        """Before attempt ``attempt_number`` of ``key`` starts: a resume takes the task's kept kernel over
        (``in_use``); an attempt from the top reaps it (its state would be stale)."""
        kept = self.kept.get(key)
        if kept is None:
            return
        if spec.resume is not None:
            self.store.set_kept_kernel_status(
                kept.run_id, key, kept.attempt_number, KeptKernelStatus.in_use, None
            )
            return
        self.kept.pop(key)
        kept_kernels.reap(
            self.store, kept, f"reaped: task {key} executes again from the top in attempt {attempt_number}"
        )

    def _kept_result(self, flight: _InFlight, result: AttemptResult) -> None:
        """Record what became of kept kernels when an attempt ended: a resumed kernel's old record ends, and a
        kernel the executor kept (again) gets a record; then the bound on kept kernels is applied."""
        key = flight.task_key
        old = self.kept.pop(key, None)
        spec: AttemptSpec = flight.handle.spec
        if old is not None and spec.resume is not None:
            how = "kept again" if result.kept_kernel else "shut down"
            self.store.set_kept_kernel_status(
                old.run_id,
                key,
                old.attempt_number,
                KeptKernelStatus.ended,
                f"resumed by attempt {flight.attempt_number} ({result.status.value}); {how}",
            )
        info = result.kept_kernel
        if info is None:
            return
        kept = KeptKernel(
            run_id=self.run_id,
            task_key=key,
            attempt_number=flight.attempt_number,
            cell_index=info.cell_index,
            kernel_pid=info.kernel_pid,
            kernel_create_time=info.kernel_create_time,
            keeper_pid=info.keeper_pid if info.keeper_pid is not None else (old.keeper_pid if old else None),
            connection_file=info.connection_file,
            kept_time=utc_now(),
            expires_time=utc_iso(info.expires_epoch),
        )
        self.store.record_kept_kernel(kept)
        self.kept[key] = kept
        try:
            kept_kernels.enforce_bound(self.store)
        except OrchestrateError:
            log.warning("cannot apply the bound on kept kernels", exc_info=True)

    def _discard_started(self, flight: _InFlight) -> None:
        self.executor.kill(flight.handle)
        self.in_flight.pop(flight.task_key, None)

    # -- outcomes --------------------------------------------------------------------------------------------
    def _finish(
        self,
        key: str,
        attempt_number: int,
        outcome: TaskRunStatus,
        error: AttemptError | None,
        values: dict[str, Any],
        now: float,
    ) -> None:
        error, values = self._clean(error), self._clean(values)
        self.store.finish_attempt(self.run_id, key, attempt_number, outcome, error)
        if values:
            self.store.set_task_values(self.run_id, key, attempt_number, values)
        reason = f"{error.ename}: {error.evalue}" if error else None
        self._record([self.active.finish(key, outcome, now, reason)])

    def _record_cells(self, flight: _InFlight) -> None:
        """Record the kept cell timings of an attempt that ended (the cell still executing ends now, as error)."""
        if flight.cells is None:
            return
        kept = flight.cells.close(utc_now())
        if kept:
            self.store.record_cells(self.run_id, flight.task_key, flight.attempt_number, self._clean(kept))
        if flight.cells.dropped:
            log.info(
                "run %s task %s attempt %s: kept %s cell timings, dropped the %s fastest",
                self.run_id,
                flight.task_key,
                flight.attempt_number,
                len(kept),
                flight.cells.dropped,
            )

    def _on_result(self, flight: _InFlight, result: AttemptResult, now: float) -> None:
        self.in_flight.pop(flight.task_key, None)
        self._record_cells(flight)
        self._kept_result(flight, result)
        spec: AttemptSpec = flight.handle.spec
        if spec.resume is not None:
            self.store.set_attempt_resume(
                self.run_id,
                flight.task_key,
                flight.attempt_number,
                spec.resume.from_cell_index,
                result.reused_cells,
            )
        if result.cells_total is not None:
            self.store.update_attempt_progress(
                self.run_id,
                flight.task_key,
                flight.attempt_number,
                result.cells_completed or 0,
                result.cells_total,
            )
        if result.environment:
            self.store.set_attempt_environment(
                self.run_id, flight.task_key, flight.attempt_number, self._clean(result.environment)
            )
        outcome = S.succeeded if result.status == ResultStatus.succeeded else S.failed
        self._finish(flight.task_key, flight.attempt_number, outcome, result.error, result.task_values, now)

    def _stop(self, flight: _InFlight, outcome: TaskRunStatus, error: AttemptError, now: float) -> None:
        """End a started attempt from outside (timeout or cancel): kill it, then record what it had done."""
        self.executor.kill(flight.handle)
        self.in_flight.pop(flight.task_key, None)
        spec: AttemptSpec = flight.handle.spec
        old = self.kept.pop(flight.task_key, None)
        if old is not None:  # a resume's kept kernel: the kill took it too
            kept_kernels.reap(
                self.store,
                old,
                f"attempt {flight.attempt_number} resumed in it ended {outcome.value}; killed",
            )
        if flight.cell_index is not None:
            error.cell_index = flight.cell_index
            try:
                with open(spec.input_path, encoding="utf-8") as f:
                    cells = json.load(f)["cells"]
                source = cells[flight.cell_index]["source"]
                error.cell_source = "".join(source) if isinstance(source, list) else source
            except (OSError, ValueError, KeyError, IndexError):
                pass
        values = read_values_file(spec.values_path)
        self._record_cells(flight)
        if flight.cells_total is not None:
            self.store.update_attempt_progress(
                self.run_id,
                flight.task_key,
                flight.attempt_number,
                max(flight.cell - 1, 0),
                flight.cells_total,
            )
        self._finish(flight.task_key, flight.attempt_number, outcome, error, values, now)

    def _cancel_all(self, reason: str, now: float) -> None:
        self.store.request_cancel(self.run_id)
        self._emit(RunStatusEvent(run_id=self.run_id, status=RunStatus.canceling, reason=reason))
        self._record(self.active.cancel(reason))
        self._cancel_children()  # their tasks end when the children have (_poll_children)
        for key, kept in list(self.kept.items()):
            if key not in self.in_flight:
                self.kept.pop(key)
                kept_kernels.reap(self.store, kept, f"reaped: the run was canceled ({reason})")
        for flight in list(self.in_flight.values()):
            if flight.started is None:
                self._discard(flight)
            else:
                where = f" at {_position(flight)}" if _position(flight) else ""
                self._stop(
                    flight,
                    S.canceled,
                    AttemptError(kind=AttemptErrorKind.canceled, ename="Canceled", evalue=f"{reason}{where}"),
                    now,
                )

    # -- main loop -------------------------------------------------------------------------------------------
    def execute(self) -> RunStatus:
        """Run until every task run is terminal. Returns the run's final status (also recorded).

        If a run monitor ended the run meanwhile (its owner was judged dead), returns that recorded status
        after stopping the attempts, without recording anything. On any exception, attempts still alive are
        killed and the run is marked as :meth:`mark_crashed` says before the exception propagates.

        Store writes of this thread retry a busy database for up to :data:`STORE_PATIENCE_SECONDS` (the
        heartbeat, on its own thread, retries at every beat): a burst of contention must not fail the run.
        """
        with self.store.patience(STORE_PATIENCE_SECONDS):
            return self._execute()

    def _execute(self) -> RunStatus:
        me = this_process()
        claimed: RunStatus = self.store.claim_run(
            self.run_id,
            pid=me.pid,
            create_time=me.create_time,
            host=me.host,
        )
        if claimed.is_terminal:  # a monitor ended the run before it started: nothing to execute
            self._emit_end(claimed)
            return claimed
        if claimed == RunStatus.canceling and self.cancel_reason is None:
            self.cancel_reason = (
                "cancel requested"  # asked before this runner started: honour it, do not overwrite it
            )
        beating = threading.Event()
        threading.Thread(
            target=self._heartbeat, args=(beating,), name=f"orchestrate-heartbeat-{self.run_id}", daemon=True
        ).start()
        self._emit(RunStatusEvent(run_id=self.run_id, status=RunStatus.running))
        last_poll = self.clock()
        try:
            while True:
                if self._store_fault is not None:  # disk full or damaged: nothing of the run can be recorded
                    raise self._store_fault
                now = self.clock()
                if now - last_poll >= CANCEL_POLL_SECONDS:
                    last_poll = now
                    stored = self.store.run_status(self.run_id)
                    if stored.is_terminal:
                        return self._abandon(stored)
                    if self.cancel_reason is None and stored == RunStatus.canceling:
                        self.cancel_reason = "cancel requested"
                if self.cancel_reason is not None and not self.active.canceling:
                    self._cancel_all(self.cancel_reason, now)
                if self.children:
                    self._poll_children(now)
                while True:
                    self._record(self.active.advance())
                    launched = self.active.launchable(now)
                    for key in launched:
                        self._launch(key, now)
                    # a condition is evaluated, a for-each task expanded (a run-job task started) here, with no
                    # attempt to wait for: what they decide launches now, not after the next wait
                    if all(self.tasks[k].runs_kernel for k in launched):
                        break
                self._prepare_ahead()
                if self.active.is_done and not any(f.started is not None for f in self.in_flight.values()):
                    break
                for flight in list(self.in_flight.values()):
                    if flight.deadline is not None and now >= flight.deadline:
                        timeout = self.tasks[flight.task_key].timeout_seconds
                        where = f" while executing {_position(flight)}" if _position(flight) else ""
                        self._stop(
                            flight,
                            S.timed_out,
                            AttemptError(
                                kind=AttemptErrorKind.timeout,
                                ename="TimeoutError",
                                evalue=f"the attempt exceeded timeout_seconds={timeout:g}{where}; the kernel was killed",
                            ),
                            now,
                        )
                self._handle_events(self.executor.wait(self._wait_timeout(now)))
        except BaseException as exc:
            for flight in list(self.in_flight.values()):
                self.executor.kill(flight.handle)
            self._cancel_children()
            self.mark_crashed(exc)
            raise
        finally:
            beating.set()
        for flight in list(self.in_flight.values()):
            self._discard(flight)
        status = self.active.final_status()
        reason = self.cancel_reason if status == RunStatus.canceled else None
        if status == RunStatus.failed:
            reason = self._clean(self._failed_reason())
        self.store.finish_run(self.run_id, status, reason)
        self._emit(RunStatusEvent(run_id=self.run_id, status=status, reason=reason))
        return status

    def _failed_reason(self) -> str:
        """The failed run's headline (:func:`failed_run_reason`), with the errors as the store recorded them."""
        errors: dict[str, AttemptError | None] = {}
        try:
            for task_run in self.store.get_run(self.run_id).task_runs:
                last = task_run.last_attempt
                errors[task_run.task_key] = last.error if last else None
        except StoreError:  # the headline still names the tasks
            log.warning("cannot read the errors of run %s for its status reason", self.run_id, exc_info=True)
        statuses = {k: s.status for k, s in self.active.states.items()}
        return failed_run_reason(self.active.dag, statuses, errors)

    def _heartbeat(self, stop: threading.Event) -> None:
        """Renew the run's heartbeat until ``stop`` is set, on a connection of its own (never waits for the loop).
        A database that cannot be written (disk full, damaged) stops the run: the loop raises the error."""
        store = None
        try:
            store = Store(self.store.home)
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    store.heartbeat(self.run_id)
                except StoreBusyError as exc:  # try again at the next beat
                    log.warning("heartbeat of run %s not recorded: %s", self.run_id, exc)
                except StoreError:
                    raise
                except Exception:
                    log.warning("heartbeat of run %s not recorded", self.run_id, exc_info=True)
        except StoreError as exc:
            self._store_fault = exc
        finally:
            if store is not None:
                store.close()

    def _abandon(self, stored: RunStatus) -> RunStatus:
        """The run was ended by someone else (a run monitor): stop its attempts and child runs, keep the record
        as it is."""
        for flight in list(self.in_flight.values()):
            self.executor.kill(flight.handle)
            self.in_flight.pop(flight.task_key, None)
        self._cancel_children()
        log.warning(
            "run %s was ended (%s) by a run monitor while this runner executed it", self.run_id, stored.value
        )
        self._emit_end(stored)
        return stored

    def _emit_end(self, status: RunStatus) -> None:
        """Announce an end someone else recorded (a run monitor), with its recorded reason."""
        reason = self.store.get_run(self.run_id).status_reason
        self._emit(RunStatusEvent(run_id=self.run_id, status=status, reason=reason))

    def mark_crashed(self, exc: BaseException) -> None:
        """Record that this runner crashed with ``exc``, as recovery records a dead orchestrator: running
        attempts and task runs ``failed``, other unfinished task runs ``canceled``, the run ``failed`` with the
        reason (so a repair selects what did not finish). Only the first call records; never raises."""
        if self._crashed:
            return
        self._crashed = True
        reason = self._clean(f"the runner crashed ({type(exc).__name__}: {exc}); repair the run to finish it")
        try:
            self.store.end_unfinished(
                self.run_id,
                reason,
                run_status=RunStatus.failed,
                error_kind=AttemptErrorKind.internal,
                ename="RunnerCrashed",
            )
        except StoreError as error:
            if not isinstance(
                exc, StoreError
            ):  # else the crash is this same fault, reported by whoever gets exc
                log.warning("cannot record the crash of run %s: %s", self.run_id, error)
            return
        except Exception:
            log.exception("cannot record the crash of run %s", self.run_id)
            return
        self._emit(RunStatusEvent(run_id=self.run_id, status=RunStatus.failed, reason=reason))

    def _wait_timeout(self, now: float) -> float:
        times = [CANCEL_POLL_SECONDS]
        times += [f.deadline - now for f in self.in_flight.values() if f.deadline is not None]
        retry = self.active.next_retry_time()
        if retry is not None:
            times.append(retry - now)
        return max(min(times), 0.0)

    def _prepare_ahead(self) -> None:
        launchable_soon = self.active.queued + self.active.soon_launchable(levels=PREPARE_LEVELS)
        # kernels not in use yet (booting, or ready and waiting) stay within max_parallel, the floor runner's
        # pool depth, while a started attempt waits for its kernel: one more booting would slow that one
        # (CPU-bound start-up). Once none waits, one more may boot: a chain's boots then overlap its tasks
        # (issue 15, medians of 2-5: chain of 10 4.23 -> 4.13 s, sleep chain 6.82 -> 6.63 s, 40 independent
        # 16.30 -> 15.55 s, fan-out unchanged)
        not_in_use = waiting = 0
        for f in self.in_flight.values():
            if f.started is None or f.kernel_ready_time is None:
                not_in_use += 1
                waiting += f.started is not None
        depth = self.active.max_parallel + (0 if waiting else 1)
        # iterations: no more kernels waiting for one for-each task than its concurrency lets start next
        ahead: dict[str, int] = {}
        for f in self.in_flight.values():
            parent = self.active.parent_of.get(f.task_key)
            if parent is not None and f.started is None:
                ahead[parent] = ahead.get(parent, 0) + 1
        for key in launchable_soon:
            if not_in_use >= depth:
                break
            if key in self.in_flight or not self.tasks[key].runs_kernel:
                continue
            parent = self.active.parent_of.get(key)
            if parent is not None:
                for_each = self.tasks[parent].for_each
                assert for_each is not None
                if ahead.get(parent, 0) >= for_each.concurrency:
                    continue
                ahead[parent] = ahead.get(parent, 0) + 1
            self._prepare(key)
            not_in_use += 1

    def _handle_events(self, events: list[ExecutorEvent]) -> None:
        by_handle = {id(f.handle): f for f in self.in_flight.values()}
        now = self.clock()
        for event in events:
            flight = by_handle.get(id(event.handle))
            if flight is None:
                continue
            message = event.message
            if isinstance(message, KernelStarted):
                flight.kernel_ready_time = message.ready_time
                if flight.started is not None:
                    self.store.set_attempt_kernel(
                        self.run_id,
                        flight.task_key,
                        flight.attempt_number,
                        message.pid,
                        message.create_time,
                        message.ready_time,
                    )
            elif isinstance(message, Progress):
                flight.cell = message.cell
                flight.cells_total = message.total
                flight.cell_index = message.cell_index
                if message.cell > 0:
                    if flight.cells is None:
                        flight.cells = CellTimings(self.max_cell_timings)
                    flight.cells.begin(message.cell, message.cell_index, utc_now())
                self._emit(
                    ProgressEvent(
                        run_id=self.run_id,
                        task_key=flight.task_key,
                        attempt_number=flight.attempt_number,
                        cell=flight.cell,
                        total=flight.cells_total,
                    )
                )
            elif isinstance(message, CellTimed):
                if flight.cells is None:
                    flight.cells = CellTimings(self.max_cell_timings)
                flight.cells.add(message.timing)
            elif isinstance(message, Finished):
                if flight.started is None:
                    # a prepared kernel that failed: prepare again later
                    self.in_flight.pop(flight.task_key, None)
                else:
                    self._on_result(flight, message.result, now)
