"""ActiveRun: the pure state machine of one run (or one repair of a run). No I/O; time is passed in.

Modelled on Dagster's ``ActiveExecution`` (pending -> executable -> in flight -> done, waiting to retry) with
the task states of Airflow and the ``run_if`` semantics of Databricks Jobs:

- A task is decided once all its dependencies are terminal. If its ``run_if`` holds it becomes ``queued``
  (ready to launch); otherwise it becomes ``upstream_failed`` when the condition needs successes
  (``all_success``, ``at_least_one_success``, ``none_failed``) and a dependency failed, and ``skipped``
  otherwise.
- Failure outcomes are ``failed``, ``timed_out``, ``upstream_failed`` and ``canceled``; ``skipped`` is neutral.
- A failed attempt is retried while retries remain (``up_for_retry`` until its retry time); a timed-out one
  only with ``retry_on_timeout``.
- The run's result is decided by its leaf tasks: it fails if any leaf task run ended in a failure outcome.

The runner asks :meth:`ActiveRun.launchable` for tasks to start, reports starts and outcomes, and records every
:class:`Transition` this returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jupyter_orchestrate.dag import Dag
from jupyter_orchestrate.models import RunIf, RunStatus, Task, TaskRunStatus

S = TaskRunStatus


class IncompleteStateError(ValueError):
    """An :class:`ActiveRun` was given task states that only an attempt in flight could end."""


@dataclass(frozen=True)
class Transition:
    """A task run changed status; ``reason`` says why in words a user can read."""

    task_key: str
    old: TaskRunStatus
    new: TaskRunStatus
    reason: str | None = None


@dataclass
class TaskState:
    """Mutable per-task state inside an :class:`ActiveRun`."""

    status: TaskRunStatus
    attempts: int = 0  # attempts already made in this run (across repairs)
    retries: int = 0  # retries made in this execution (reset by a repair)
    retry_at: float | None = None  # clock time when an up_for_retry task may start
    reason: str | None = None


def run_if_decision(run_if: RunIf, upstream: Iterable[TaskRunStatus]) -> TaskRunStatus | None:
    """Decide a task from the terminal statuses of its dependencies (semantics of Databricks ``run_if``).

    Returns: None when the task should run, else the status it ends in without running
    (``upstream_failed`` or ``skipped``). A task without dependencies always runs.
    """
    statuses = list(upstream)
    if not statuses:
        return None
    succeeded = sum(s == S.succeeded for s in statuses)
    failed = sum(s.is_failure for s in statuses)
    n = len(statuses)
    if run_if == RunIf.all_success:
        ok, missing_success = succeeded == n, True
    elif run_if == RunIf.at_least_one_success:
        ok, missing_success = succeeded >= 1, True
    elif run_if == RunIf.none_failed:
        ok, missing_success = failed == 0 and succeeded >= 1, True
    elif run_if == RunIf.all_done:
        ok, missing_success = True, False
    elif run_if == RunIf.at_least_one_failed:
        ok, missing_success = failed >= 1, False
    else:  # all_failed
        ok, missing_success = failed == n, False
    if ok:
        return None
    if missing_success and failed:
        return S.upstream_failed
    return S.skipped


@dataclass
class ActiveRun:
    """The state of every task run of one run while it executes.

    Args:
        tasks: the job's tasks by task_key.
        states: the starting state of each task: ``pending`` for tasks to execute, terminal statuses for
            tasks reused from an earlier execution (repair), ``up_for_retry`` with a ``retry_at``. ``attempts``
            carries the attempts already made.
        max_parallel: at most this many attempts in flight.

    Raises:
        IncompleteStateError: a starting state needs an attempt in flight (``running``, ``queued``, or
            ``up_for_retry`` without a retry time): nothing is in flight when an execution starts, so such a task
            would never end and the run would never finish (Dagster's ``verify_complete``).
    """

    tasks: Mapping[str, Task]
    states: dict[str, TaskState]
    max_parallel: int
    dag: Dag = field(init=False)
    canceling: bool = False

    def __post_init__(self) -> None:
        self.dag = Dag({k: t.depends_on for k, t in self.tasks.items()})
        if self.max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        # refuse rather than normalise: this machine cannot fix the stored record, and a silent fix here would
        # hide the caller's bug (the store ends such task runs before a repair selects, see end_unfinished)
        stuck = [
            f"{k} is {s.status.value}"
            for k, s in self.states.items()
            if s.status in (S.running, S.queued) or (s.status == S.up_for_retry and s.retry_at is None)
        ]
        if stuck:
            raise IncompleteStateError(
                f"cannot execute: task run(s) {', '.join(stuck)} with no attempt in flight; end them first "
                "(failed or canceled) so that they are repaired, or they would never finish"
            )

    # -- queries -------------------------------------------------------------------------------------------
    def status(self, key: str) -> TaskRunStatus:
        return self.states[key].status

    @property
    def running(self) -> list[str]:
        return [k for k in self.dag.order if self.states[k].status == S.running]

    @property
    def is_done(self) -> bool:
        return all(s.status.is_terminal for s in self.states.values())

    def launchable(self, now: float) -> list[str]:
        """Tasks to launch now, in topological order, respecting ``max_parallel``.

        Includes ``queued`` tasks and ``up_for_retry`` tasks whose retry time has come. Call :meth:`advance`
        first so that newly ready tasks are queued.
        """
        if self.canceling:
            return []
        free = self.max_parallel - len(self.running)
        ready = [
            k
            for k in self.dag.order
            if self.states[k].status == S.queued
            or (self.states[k].status == S.up_for_retry and (self.states[k].retry_at or 0) <= now)
        ]
        return ready[: max(free, 0)]

    def soon_launchable(self, levels: int = 1) -> list[str]:
        """Pending tasks likely to launch next, nearest first (for kernel pre-start).

        Level 1: every dependency succeeded or is running. Level n: every dependency succeeded, is running or
        is on a level before n (a chain's next ``levels`` tasks). Tasks below a failed or queued dependency are
        not listed. Args: ``levels``: how many levels to look ahead (at least 1). Returns task keys, level 1
        first, each level in topological order.
        """
        if self.canceling:
            return []
        likely = {k for k, s in self.states.items() if s.status in (S.succeeded, S.running)}
        soon: list[str] = []
        for _ in range(max(levels, 1)):
            level = [
                k
                for k in self.dag.order
                if self.states[k].status == S.pending
                and k not in likely
                and all(d in likely for d in self.tasks[k].depends_on)
            ]
            if not level:
                break
            soon += level
            likely.update(level)
        return soon

    def next_retry_time(self) -> float | None:
        """The earliest clock time an ``up_for_retry`` task may start, or None."""
        times = [
            s.retry_at for s in self.states.values() if s.status == S.up_for_retry and s.retry_at is not None
        ]
        return min(times) if times else None

    def final_status(self) -> RunStatus:
        """The run's status once every task run is terminal: decided by the leaf tasks (Databricks)."""
        if self.canceling:
            return RunStatus.canceled
        leaves = self.dag.leaves()
        if any(self.states[k].status.is_failure for k in leaves):
            return RunStatus.failed
        return RunStatus.succeeded

    # -- transitions ---------------------------------------------------------------------------------------
    def _set(self, key: str, new: TaskRunStatus, reason: str | None = None) -> Transition:
        state = self.states[key]
        old = state.status
        state.status = new
        state.reason = reason
        return Transition(key, old, new, reason)

    def advance(self) -> list[Transition]:
        """Decide pending tasks whose dependencies are all terminal: queue them or end them by ``run_if``."""
        changes: list[Transition] = []
        if self.canceling:
            return changes
        for key in self.dag.order:
            if self.states[key].status != S.pending:
                continue
            task = self.tasks[key]
            upstream = [self.states[d].status for d in task.depends_on]
            if not all(s.is_terminal for s in upstream):
                continue
            decision = run_if_decision(task.run_if, upstream)
            if decision is None:
                changes.append(self._set(key, S.queued))
            else:
                summary = ", ".join(f"{d}={self.states[d].status.value}" for d in task.depends_on)
                changes.append(self._set(key, decision, f"run_if {task.run_if.value} not met ({summary})"))
        return changes

    def start(self, key: str) -> tuple[int, Transition]:
        """Mark ``key`` running. Returns ``(attempt_number, transition)``.

        Raises:
            ValueError: the task is not queued or due for retry.
        """
        state = self.states[key]
        if state.status not in (S.queued, S.up_for_retry):
            raise ValueError(f"task {key} cannot start from status {state.status.value}")
        state.attempts += 1
        state.retry_at = None
        return state.attempts, self._set(key, S.running)

    def finish(self, key: str, outcome: TaskRunStatus, now: float, reason: str | None = None) -> Transition:
        """Record the outcome of the running attempt of ``key``.

        Args:
            outcome: ``succeeded``, ``failed``, ``timed_out`` or ``canceled``.
            now: clock time in seconds, to schedule a retry.
        """
        if outcome not in (S.succeeded, S.failed, S.timed_out, S.canceled):
            raise ValueError(f"not an attempt outcome: {outcome.value}")
        state = self.states[key]
        task = self.tasks[key]
        retryable = outcome == S.failed or (outcome == S.timed_out and task.retry_on_timeout)
        if retryable and not self.canceling and state.retries < task.max_retries:
            state.retries += 1
            state.retry_at = now + task.retry_delay_seconds(state.retries)
            why = f"attempt {state.attempts} {outcome.value}; retry {state.retries} of {task.max_retries}"
            return self._set(key, S.up_for_retry, f"{why}: {reason}" if reason else why)
        return self._set(key, outcome, reason)

    def cancel(self, reason: str = "run canceled") -> list[Transition]:
        """Cancel the run: every task run not yet started or terminal becomes ``canceled``.

        Running tasks stay ``running`` until the runner reports their outcome (``canceled``) via :meth:`finish`.
        """
        self.canceling = True
        return [
            self._set(k, S.canceled, reason)
            for k in self.dag.order
            if self.states[k].status in (S.pending, S.queued, S.up_for_retry)
        ]


def repair_selection(
    dag: Dag,
    statuses: Mapping[str, TaskRunStatus],
    task_keys: Iterable[str] | None = None,
    rerun_dependents: bool = False,
) -> tuple[list[str], list[str]]:
    """Choose the task runs a repair re-executes (semantics of Databricks "Repair run").

    Args:
        dag: the job's DAG.
        statuses: current status of every task run.
        task_keys: tasks to re-execute; None selects every unsuccessful one (failed, timed_out,
            upstream_failed, canceled).
        rerun_dependents: also re-execute downstream tasks that succeeded.

    Returns: ``(to_run, reused)`` in topological order: the selection plus everything downstream of it that
    did not succeed (all of it with ``rerun_dependents``); and the tasks whose results are kept.

    Raises:
        KeyError: a named task is not in the DAG.
    """
    if task_keys is None:
        selected = {k for k, s in statuses.items() if s.is_failure}
    else:
        selected = set(task_keys)
        unknown = selected - set(dag.order)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
    downstream = dag.downstream_of(selected)
    if not rerun_dependents:
        downstream = {k for k in downstream if statuses[k] != S.succeeded}
    to_run = selected | downstream
    order = dag.order
    return [k for k in order if k in to_run], [k for k in order if k not in to_run]
