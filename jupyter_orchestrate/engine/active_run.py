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
- A condition task succeeds with an outcome (``true``/``false``, :meth:`ActiveRun.finish_condition`); a task that
  depends on it with ``outcome`` counts that dependency as ``skipped`` when the outcome differs (Databricks
  If/else: the branch not taken is skipped, and so is what depends on it under ``all_success``).
- A for-each task, once queued, is expanded by the runner into iterations (:meth:`ActiveRun.expand`, Airflow's
  mapped task instances): the task is ``running`` while they execute, at most ``for_each.concurrency`` at once
  and within ``max_parallel``; then it takes their aggregate status: ``succeeded`` if all succeeded,
  ``canceled`` if one was canceled, else ``failed`` if one ended in a failure. Iterations are not in the DAG:
  nothing depends on them but through their task.

The runner asks :meth:`ActiveRun.launchable` for tasks to start, reports starts and outcomes, and records every
:class:`Transition` this returns.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_orchestrate.dag import Dag
from jupyter_orchestrate.models import (
    ConditionOutcome,
    RunIf,
    RunStatus,
    Task,
    TaskRunStatus,
    iteration_key,
)

S = TaskRunStatus
_LIKELY = (S.succeeded, S.running)  # a dependency in one of these lets soon_launchable look past it


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
        outcomes: the outcomes of condition tasks that already succeeded (a repair reuses them), by task_key.

    Raises:
        IncompleteStateError: a starting state needs an attempt in flight (``running``, ``queued``, or
            ``up_for_retry`` without a retry time): nothing is in flight when an execution starts, so such a task
            would never end and the run would never finish (Dagster's ``verify_complete``).
    """

    tasks: dict[str, Task]
    states: dict[str, TaskState]
    max_parallel: int
    outcomes: dict[str, bool] = field(default_factory=dict)
    dag: Dag = field(init=False)
    canceling: bool = False

    def __post_init__(self) -> None:
        self.tasks = dict(self.tasks)  # expand() adds the iterations
        #: for-each task -> its iteration keys in map_index order (once expanded); iteration -> its task
        self.iterations: dict[str, list[str]] = {}
        self.parent_of: dict[str, str] = {}
        self._map_index: dict[str, int] = {}  # iteration -> its map_index
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
        # Indexes kept by _set, the only place a status changes, so that each query costs what it returns and
        # not a pass over every task: a 1,000-task run asks them after every event (5.9 ms per task of engine
        # and store at max_parallel 2 with scans of dag.order, most of it here; cProfile).
        order = self.dag.order
        self._pos = {key: i for i, key in enumerate(order)}
        self._deps = {key: set(self.dag.depends_on[key]) for key in order}
        self._children = {key: set(self.dag.downstream[key]) for key in order}
        self._by_status: dict[TaskRunStatus, set[str]] = {status: set() for status in S}
        for key in order:
            self._by_status[self.states[key].status].add(key)
        self._terminal_deps = {
            key: sum(self.states[d].status.is_terminal for d in deps) for key, deps in self._deps.items()
        }
        self._likely_deps = {
            key: sum(self.states[d].status in _LIKELY for d in deps) for key, deps in self._deps.items()
        }
        pending = self._by_status[S.pending]
        #: pending tasks whose dependencies are all terminal (advance decides them)
        self._decidable = {k for k in pending if self._terminal_deps[k] == len(self._deps[k])}
        #: pending tasks whose dependencies all succeeded or run (soon_launchable's first level)
        self._soon = {k for k in pending if self._likely_deps[k] == len(self._deps[k])}

    def _order(self, key: str) -> tuple[int, int]:
        """Where ``key`` comes in the run's order: its position in the DAG's topological order, and an
        iteration after the others of its task by map_index (the one order of queries and launches)."""
        return self._pos[key], self._map_index.get(key, -1)

    def _in_order(self, keys: Iterable[str]) -> list[str]:
        return sorted(keys, key=self._order)

    # -- queries -------------------------------------------------------------------------------------------
    def status(self, key: str) -> TaskRunStatus:
        return self.states[key].status

    @property
    def queued(self) -> list[str]:
        """Tasks ready to launch (``queued``), in topological order."""
        return self._in_order(self._by_status[S.queued])

    @property
    def running(self) -> list[str]:
        return self._in_order(self._by_status[S.running])

    @property
    def is_done(self) -> bool:
        return not any(keys for status, keys in self._by_status.items() if not status.is_terminal)

    def launchable(self, now: float) -> list[str]:
        """Tasks to launch now, in topological order, respecting ``max_parallel``.

        Includes ``queued`` tasks and ``up_for_retry`` tasks whose retry time has come. Call :meth:`advance`
        first so that newly ready tasks are queued.
        """
        if self.canceling:
            return []
        running = self._by_status[S.running]
        expanded = [p for p in self.iterations if p in running]  # running through their iterations
        free = self.max_parallel - len(running) + len(expanded)
        if free <= 0:
            return []
        due = [k for k in self._by_status[S.up_for_retry] if (self.states[k].retry_at or 0) <= now]
        candidates = [*self._by_status[S.queued], *due]
        if not any(k in self.parent_of for k in candidates):
            return heapq.nsmallest(free, candidates, key=self._pos.__getitem__)
        # iterations: at most for_each.concurrency of one task at once (the lowest map_index first)
        busy = {p: sum(k in running for k in self.iterations[p]) for p in expanded}
        chosen: list[str] = []
        for key in sorted(candidates, key=self._order):
            parent = self.parent_of.get(key)
            if parent is not None:
                for_each = self.tasks[parent].for_each
                assert for_each is not None
                if busy[parent] >= for_each.concurrency:
                    continue
                busy[parent] += 1
            chosen.append(key)
            if len(chosen) == free:
                break
        return chosen

    def soon_launchable(self, levels: int = 1) -> list[str]:
        """Pending tasks likely to launch next, nearest first (for kernel pre-start).

        Level 1: every dependency succeeded or is running. Level n: every dependency succeeded, is running or
        is on a level before n (a chain's next ``levels`` tasks). Tasks below a failed or queued dependency are
        not listed. Args: ``levels``: how many levels to look ahead (at least 1). Returns task keys, level 1
        first, each level in topological order.
        """
        if self.canceling:
            return []
        soon: list[str] = []
        listed: set[str] = set()
        level = self._in_order(self._soon)
        for _ in range(max(levels, 1)):
            if not level:
                break
            soon += level
            listed.update(level)
            # a task of the next level depends on one of this level (else it would be on an earlier one)
            level = self._in_order(
                {
                    child
                    for key in level
                    for child in self._children[key]
                    if self.states[child].status == S.pending
                    and child not in listed
                    and all(self.states[d].status in _LIKELY or d in listed for d in self._deps[child])
                }
            )
        return soon

    def next_retry_time(self) -> float | None:
        """The earliest clock time an ``up_for_retry`` task may start, or None."""
        retrying = (self.states[k] for k in self._by_status[S.up_for_retry])
        times = [s.retry_at for s in retrying if s.retry_at is not None]
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
        if old != new:
            self._by_status[old].discard(key)
            self._by_status[new].add(key)
            if old == S.pending:  # statuses never return to pending
                self._decidable.discard(key)
                self._soon.discard(key)
            terminal = int(new.is_terminal) - int(old.is_terminal)
            likely = int(new in _LIKELY) - int(old in _LIKELY)
            for child in self._children[key] if terminal or likely else ():
                self._terminal_deps[child] += terminal
                self._likely_deps[child] += likely
                if self.states[child].status == S.pending:
                    complete = len(self._deps[child])
                    for index, count in (
                        (self._decidable, self._terminal_deps),
                        (self._soon, self._likely_deps),
                    ):
                        if count[child] == complete:
                            index.add(child)
                        else:
                            index.discard(child)
        return Transition(key, old, new, reason)

    def expand(self, key: str, inputs: list[Any], reused: Mapping[int, TaskState]) -> list[Transition]:
        """Expand queued for-each task ``key`` into one iteration per element of ``inputs`` (the runner resolved
        them): iteration ``i`` is task ``key[i]`` (:func:`~..models.iteration_key`), a copy of the task without
        dependencies, ``queued`` (or the terminal state in ``reused``: a repair keeps the iterations that
        succeeded). The task becomes ``running``; with no inputs it is ``skipped``.

        Returns the transitions: the task's, then each new iteration's (``pending`` -> its status).

        Raises:
            ValueError: ``key`` is not a queued for-each task.
        """
        task = self.tasks[key]
        if task.for_each is None or self.states[key].status != S.queued:
            raise ValueError(f"task {key} is not a queued for-each task")
        if not inputs:
            self.iterations[key] = []
            return [self._set(key, S.skipped, "for_each: no inputs")]
        keys = []
        changes = [self._set(key, S.running, f"for_each: {len(inputs)} iteration(s)")]
        pos = self._pos[key]
        for index in range(len(inputs)):
            child = iteration_key(key, index)
            keys.append(child)
            self.tasks[child] = task.model_copy(
                update={"task_key": child, "depends_on": [], "depends_on_outcomes": {}, "for_each": None}
            )
            state = reused.get(index) or TaskState(S.pending)
            self.states[child] = TaskState(S.pending, attempts=state.attempts)
            self.parent_of[child] = key
            self._map_index[child] = index
            self._pos[child] = pos
            self._deps[child] = set()
            self._children[child] = set()
            self._terminal_deps[child] = self._likely_deps[child] = 0
            self._by_status[S.pending].add(child)
            if state.status.is_terminal:
                self._set(child, state.status, state.reason)  # reused as recorded: no change to report
            else:
                changes.append(self._set(child, S.queued))
        self.iterations[key] = keys
        return changes

    def end_unstarted(self, key: str, status: TaskRunStatus, reason: str) -> Transition:
        """End queued task ``key`` without an attempt (a for-each task whose inputs are not a list)."""
        if self.states[key].status != S.queued:
            raise ValueError(f"task {key} is not queued")
        return self._set(key, status, reason)

    def _aggregate(self) -> list[Transition]:
        """For-each tasks whose iterations are all terminal take their aggregate status (module docstring)."""
        changes = []
        for key in [p for p in self.iterations if self.states[p].status == S.running]:
            statuses = [self.states[k].status for k in self.iterations[key]]
            if not all(s.is_terminal for s in statuses):
                continue
            counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
            if counts.get(S.canceled):
                status = S.canceled
            elif any(s.is_failure for s in counts):
                status = S.failed
            else:
                status = S.succeeded
            summary = " · ".join(
                [f"{counts.get(S.succeeded, 0)}/{len(statuses)} succeeded"]
                + [f"{n} {s.value}" for s, n in counts.items() if s != S.succeeded]
            )
            changes.append(self._set(key, status, f"for_each: {summary}"))
        return changes

    def advance(self) -> list[Transition]:
        """Decide pending tasks whose dependencies are all terminal: queue them or end them by ``run_if``; end
        for-each tasks whose iterations are all done."""
        changes: list[Transition] = []
        if self.iterations:
            changes += self._aggregate()
        if self.canceling:
            return changes
        # topological order, as one pass over dag.order would decide them: a task ended here (skipped,
        # upstream_failed) can make a later one decidable, which the heap then yields in its turn
        heap = [self._pos[k] for k in self._decidable]
        heapq.heapify(heap)
        while heap:
            key = self.dag.order[heapq.heappop(heap)]
            if self.states[key].status != S.pending:
                continue
            task = self.tasks[key]
            upstream = {d: self._as_upstream(task, d) for d in task.depends_on}
            decision = run_if_decision(task.run_if, upstream.values())
            if decision is None:
                changes.append(self._set(key, S.queued))
            else:
                summary = ", ".join(self._upstream_summary(task, d, s) for d, s in upstream.items())
                changes.append(self._set(key, decision, f"run_if {task.run_if.value} not met ({summary})"))
                for child in self._children[key]:
                    if child in self._decidable:
                        heapq.heappush(heap, self._pos[child])
        return changes

    def _as_upstream(self, task: Task, dep: str) -> TaskRunStatus:
        """The status of dependency ``dep`` as ``task``'s ``run_if`` sees it: a condition task that succeeded
        with an outcome other than the one ``task`` asks for is ``skipped``."""
        status = self.states[dep].status
        wanted = task.depends_on_outcomes.get(dep)
        if wanted is None or status != S.succeeded:
            return status
        outcome = self.outcomes.get(dep)  # unknown (never for a condition that succeeded): not taken
        return status if outcome is not None and ConditionOutcome.of(outcome) == wanted else S.skipped

    def _upstream_summary(self, task: Task, dep: str, seen: TaskRunStatus) -> str:
        wanted = task.depends_on_outcomes.get(dep)
        if wanted is not None and dep in self.outcomes and self.states[dep].status == S.succeeded:
            got = ConditionOutcome.of(self.outcomes[dep]).value
            return f"{dep} outcome {got}" + (f", needs {wanted.value}" if seen == S.skipped else "")
        return f"{dep}={seen.value}"

    def finish_condition(self, key: str, outcome: bool, now: float, reason: str) -> Transition:
        """Record that condition task ``key`` (running) evaluated to ``outcome``: it succeeds, and its
        dependents that ask for the other outcome will be skipped (:meth:`advance`)."""
        self.outcomes[key] = outcome
        return self.finish(key, S.succeeded, now, reason)

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
        keys = [*self.dag.order, *(k for keys in self.iterations.values() for k in keys)]
        return [
            self._set(k, S.canceled, reason)
            for k in keys
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
