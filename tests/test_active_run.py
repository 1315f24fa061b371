"""Unit tests of the pure run state machine (ActiveRun, run_if_decision, repair_selection) and of Dag.

No kernels, no I/O: time is a number passed in.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from jupyter_orchestrate.dag import CycleError, Dag
from jupyter_orchestrate.engine.active_run import (
    ActiveRun,
    TaskState,
    Transition,
    repair_selection,
    run_if_decision,
)
from jupyter_orchestrate.models import RunIf, RunStatus, Task, TaskRunStatus

S = TaskRunStatus


def task(key: str, *depends_on: str, **kwargs: Any) -> Task:
    return Task(task_key=key, notebook=f"{key}.ipynb", depends_on=list(depends_on), **kwargs)


def active(*tasks: Task, max_parallel: int = 10, states: dict[str, TaskState] | None = None) -> ActiveRun:
    states = states or {t.task_key: TaskState(S.pending) for t in tasks}
    return ActiveRun({t.task_key: t for t in tasks}, states, max_parallel)


def statuses(run: ActiveRun) -> dict[str, TaskRunStatus]:
    return {k: s.status for k, s in run.states.items()}


def run_to(run: ActiveRun, key: str, outcome: TaskRunStatus, now: float = 0.0) -> None:
    """Start ``key`` (which must be launchable) and finish it with ``outcome``, then advance."""
    run.advance()
    assert key in run.launchable(now), f"{key} not launchable: {statuses(run)}"
    run.start(key)
    run.finish(key, outcome, now)
    run.advance()


# A diamond: a -> (b, c) -> d, plus an independent e.
def diamond(**d_kwargs: Any) -> list[Task]:
    return [task("a"), task("b", "a"), task("c", "a"), task("d", "b", "c", **d_kwargs), task("e")]


# ---------------------------------------------------------------------------------------------------------
# ready tasks, ordering, max_parallel
# ---------------------------------------------------------------------------------------------------------


def test_roots_are_queued_in_topological_order_and_dependents_stay_pending() -> None:
    # Declared out of order on purpose: the run must still follow the DAG.
    run = active(task("d", "b", "c"), task("c", "a"), task("b", "a"), task("a"), task("e"))
    changes = run.advance()
    assert [(t.task_key, t.old, t.new) for t in changes] == [
        ("a", S.pending, S.queued),
        ("e", S.pending, S.queued),
    ]
    assert statuses(run) == {"a": S.queued, "b": S.pending, "c": S.pending, "d": S.pending, "e": S.queued}
    assert run.launchable(0.0) == ["a", "e"]
    assert run.dag.order.index("a") < run.dag.order.index("b") < run.dag.order.index("d")


def test_launchable_respects_max_parallel() -> None:
    run = active(task("a"), task("b"), task("c"), task("d"), max_parallel=2)
    run.advance()
    assert run.launchable(0.0) == ["a", "b"]
    run.start("a")
    assert run.running == ["a"]
    assert run.launchable(0.0) == ["b"]
    run.start("b")
    assert run.launchable(0.0) == []  # two in flight
    assert statuses(run)["c"] == S.queued  # ready, but waiting for a slot
    run.finish("a", S.succeeded, 1.0)
    assert run.launchable(1.0) == ["c"]


def test_dependent_is_queued_only_after_its_dependencies_succeed() -> None:
    run = active(*diamond())
    run_to(run, "a", S.succeeded)
    assert statuses(run)["b"] == S.queued and statuses(run)["c"] == S.queued
    assert statuses(run)["d"] == S.pending
    run_to(run, "b", S.succeeded)
    assert statuses(run)["d"] == S.pending  # c is not done
    assert "d" not in run.launchable(0.0)
    run_to(run, "c", S.succeeded)
    assert statuses(run)["d"] == S.queued
    assert run.launchable(0.0) == [k for k in run.dag.order if k in {"d", "e"}]


def test_start_rejects_a_task_that_is_not_ready() -> None:
    run = active(task("a"), task("b", "a"))
    run.advance()
    with pytest.raises(ValueError, match="cannot start from status pending"):
        run.start("b")


def test_max_parallel_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_parallel"):
        active(task("a"), max_parallel=0)


def test_finish_rejects_a_non_outcome() -> None:
    run = active(task("a"))
    run.advance()
    run.start("a")
    with pytest.raises(ValueError, match="not an attempt outcome"):
        run.finish("a", S.skipped, 0.0)


def test_full_run_succeeds_and_is_done() -> None:
    run = active(*diamond())
    for key in ["a", "e", "b", "c", "d"]:
        assert not run.is_done
        run_to(run, key, S.succeeded)
    assert run.is_done
    assert run.final_status() == RunStatus.succeeded


# ---------------------------------------------------------------------------------------------------------
# run_if
# ---------------------------------------------------------------------------------------------------------

ok, fail, skip, upf, canc, tout = S.succeeded, S.failed, S.skipped, S.upstream_failed, S.canceled, S.timed_out
RUN, UPSTREAM_FAILED, SKIPPED = None, S.upstream_failed, S.skipped

RUN_IF_TABLE = [
    # all_success: every dependency succeeded
    (RunIf.all_success, [ok, ok], RUN),
    (RunIf.all_success, [ok, fail], UPSTREAM_FAILED),
    (RunIf.all_success, [ok, tout], UPSTREAM_FAILED),
    (RunIf.all_success, [ok, upf], UPSTREAM_FAILED),
    (RunIf.all_success, [ok, canc], UPSTREAM_FAILED),
    (RunIf.all_success, [ok, skip], SKIPPED),  # skipped is neutral: no failure, so skipped
    (RunIf.all_success, [skip, skip], SKIPPED),
    # at_least_one_success
    (RunIf.at_least_one_success, [ok, fail], RUN),
    (RunIf.at_least_one_success, [ok, skip], RUN),
    (RunIf.at_least_one_success, [fail, fail], UPSTREAM_FAILED),
    (RunIf.at_least_one_success, [skip, tout], UPSTREAM_FAILED),
    (RunIf.at_least_one_success, [skip, skip], SKIPPED),
    # none_failed: no failure and at least one ran
    (RunIf.none_failed, [ok, skip], RUN),
    (RunIf.none_failed, [ok, ok], RUN),
    (RunIf.none_failed, [ok, fail], UPSTREAM_FAILED),
    (RunIf.none_failed, [ok, canc], UPSTREAM_FAILED),
    (RunIf.none_failed, [skip, skip], SKIPPED),
    # all_done: whatever happened
    (RunIf.all_done, [ok, fail], RUN),
    (RunIf.all_done, [fail, fail], RUN),
    (RunIf.all_done, [skip, upf], RUN),
    (RunIf.all_done, [canc, tout], RUN),
    # at_least_one_failed
    (RunIf.at_least_one_failed, [ok, fail], RUN),
    (RunIf.at_least_one_failed, [ok, upf], RUN),
    (RunIf.at_least_one_failed, [ok, tout], RUN),
    (RunIf.at_least_one_failed, [ok, canc], RUN),
    (RunIf.at_least_one_failed, [ok, ok], SKIPPED),
    (RunIf.at_least_one_failed, [ok, skip], SKIPPED),
    # all_failed
    (RunIf.all_failed, [fail, tout], RUN),
    (RunIf.all_failed, [upf, canc], RUN),
    (RunIf.all_failed, [fail, ok], SKIPPED),
    (RunIf.all_failed, [fail, skip], SKIPPED),
    (RunIf.all_failed, [ok, ok], SKIPPED),
]


@pytest.mark.parametrize(
    ("run_if", "upstream", "expected"),
    RUN_IF_TABLE,
    ids=[f"{r.value}-{'+'.join(s.value for s in u)}" for r, u, _ in RUN_IF_TABLE],
)
def test_run_if_decision_table(
    run_if: RunIf, upstream: list[TaskRunStatus], expected: TaskRunStatus | None
) -> None:
    assert run_if_decision(run_if, upstream) == expected


@pytest.mark.parametrize("run_if", list(RunIf))
def test_run_if_without_dependencies_always_runs(run_if: RunIf) -> None:
    assert run_if_decision(run_if, []) is None


def test_run_if_table_covers_every_value_and_outcome() -> None:
    assert {r for r, _, _ in RUN_IF_TABLE} == set(RunIf)
    for run_if in RunIf:
        assert {e for r, _, e in RUN_IF_TABLE if r == run_if} >= (
            {RUN, SKIPPED} if run_if != RunIf.all_done else {RUN}
        )


def test_run_if_decided_inside_active_run_with_reason() -> None:
    run = active(
        task("a"),
        task("b"),
        task("all", "a", "b"),
        task("alert", "a", "b", run_if=RunIf.at_least_one_failed),
        task("always", "a", "b", run_if=RunIf.all_done),
    )
    run_to(run, "a", S.succeeded)
    run.start("b")
    run.finish("b", S.failed, 0.0)
    changes = {t.task_key: t for t in run.advance()}
    assert changes["all"].new == S.upstream_failed
    assert changes["all"].reason == "run_if all_success not met (a=succeeded, b=failed)"
    assert changes["alert"].new == S.queued
    assert changes["always"].new == S.queued
    assert run.launchable(0.0) == ["alert", "always"]


# ---------------------------------------------------------------------------------------------------------
# failure propagation
# ---------------------------------------------------------------------------------------------------------


def test_failed_middle_task_fails_dependents_while_sibling_continues() -> None:
    # a -> b -> c -> d ; a -> s (independent of b)
    run = active(task("a"), task("b", "a"), task("c", "b"), task("d", "c"), task("s", "a"))
    run_to(run, "a", S.succeeded)
    run.start("b")
    run.finish("b", S.failed, 0.0, "boom")
    changes = run.advance()
    assert [(t.task_key, t.new) for t in changes] == [("c", S.upstream_failed), ("d", S.upstream_failed)]
    assert statuses(run)["b"] == S.failed
    assert run.states["b"].reason == "boom"
    assert run.launchable(0.0) == ["s"]
    assert not run.is_done
    run_to(run, "s", S.succeeded)
    assert run.is_done
    assert run.final_status() == RunStatus.failed  # leaf d is upstream_failed


def test_upstream_failed_does_not_cross_into_independent_branch() -> None:
    run = active(*diamond())
    run.advance()
    run.start("a")
    run.finish("a", S.failed, 0.0)
    run.advance()
    assert statuses(run) == {
        "a": S.failed,
        "b": S.upstream_failed,
        "c": S.upstream_failed,
        "d": S.upstream_failed,
        "e": S.queued,
    }
    assert run.launchable(0.0) == ["e"]


# ---------------------------------------------------------------------------------------------------------
# retries
# ---------------------------------------------------------------------------------------------------------


def test_failed_attempt_is_retried_with_exponential_backoff_then_fails() -> None:
    t = task("a", max_retries=2, min_retry_interval_seconds=10, max_retry_interval_seconds=300)
    run = active(t)
    run.advance()

    attempt, transition = run.start("a")
    assert attempt == 1 and transition == Transition("a", S.queued, S.running)
    change = run.finish("a", S.failed, 100.0, "ZeroDivisionError")
    assert change.new == S.up_for_retry
    assert change.reason == "attempt 1 failed; retry 1 of 2: ZeroDivisionError"
    assert run.states["a"].retry_at == 110.0  # 10 * 2**0
    assert run.next_retry_time() == 110.0
    assert run.launchable(109.9) == []
    assert run.launchable(110.0) == ["a"]

    attempt, transition = run.start("a")
    assert attempt == 2 and transition.old == S.up_for_retry
    assert run.states["a"].retry_at is None
    run.finish("a", S.failed, 200.0)
    assert run.status("a") == S.up_for_retry
    assert run.states["a"].retry_at == 220.0  # 10 * 2**1
    assert run.launchable(219.0) == []
    assert run.launchable(220.5) == ["a"]

    attempt, _ = run.start("a")
    assert attempt == 3
    change = run.finish("a", S.failed, 300.0, "still broken")
    assert change.new == S.failed  # retries exhausted
    assert change.reason == "still broken"
    assert run.next_retry_time() is None
    assert run.is_done and run.final_status() == RunStatus.failed


def test_retry_delay_is_capped_by_max_retry_interval() -> None:
    t = task("a", max_retries=5, min_retry_interval_seconds=10, max_retry_interval_seconds=25)
    assert [t.retry_delay_seconds(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 25.0, 25.0]
    run = active(t)
    run.advance()
    delays = []
    for i in range(4):
        run.start("a")
        now = 1000.0 * (i + 1)
        run.finish("a", S.failed, now)
        delays.append(run.states["a"].retry_at - now)
    assert delays == [10.0, 20.0, 25.0, 25.0]


def test_zero_retry_interval_makes_retry_launchable_at_once() -> None:
    run = active(task("a", max_retries=1))
    run.advance()
    run.start("a")
    run.finish("a", S.failed, 50.0)
    assert run.status("a") == S.up_for_retry
    assert run.launchable(50.0) == ["a"]


def test_retry_then_success_unblocks_dependents() -> None:
    run = active(task("a", max_retries=1, min_retry_interval_seconds=5), task("b", "a"))
    run.advance()
    run.start("a")
    run.finish("a", S.failed, 0.0)
    assert run.advance() == []  # up_for_retry is not terminal: b waits
    assert run.status("b") == S.pending
    run.start("a")
    run.finish("a", S.succeeded, 10.0)
    run.advance()
    assert run.status("b") == S.queued


def test_timed_out_not_retried_without_retry_on_timeout() -> None:
    run = active(task("a", max_retries=3))
    run.advance()
    run.start("a")
    change = run.finish("a", S.timed_out, 0.0, "timeout after 5s")
    assert change.new == S.timed_out
    assert run.final_status() == RunStatus.failed


def test_timed_out_retried_with_retry_on_timeout() -> None:
    run = active(task("a", max_retries=1, retry_on_timeout=True, min_retry_interval_seconds=2))
    run.advance()
    run.start("a")
    change = run.finish("a", S.timed_out, 0.0)
    assert change.new == S.up_for_retry
    assert change.reason == "attempt 1 timed_out; retry 1 of 1"
    assert run.states["a"].retry_at == 2.0
    run.start("a")
    assert run.finish("a", S.timed_out, 5.0).new == S.timed_out


def test_canceled_outcome_is_not_retried() -> None:
    run = active(task("a", max_retries=3))
    run.advance()
    run.start("a")
    assert run.finish("a", S.canceled, 0.0).new == S.canceled


def test_attempt_numbers_continue_from_earlier_attempts_in_a_repair() -> None:
    run = active(task("a", max_retries=1), states={"a": TaskState(S.pending, attempts=2)})
    run.advance()
    assert run.start("a")[0] == 3
    run.finish("a", S.failed, 0.0)
    assert run.status("a") == S.up_for_retry  # retries are counted per execution, not per run
    assert run.start("a")[0] == 4


# ---------------------------------------------------------------------------------------------------------
# cancel
# ---------------------------------------------------------------------------------------------------------


def test_cancel_cancels_waiting_tasks_and_leaves_running_ones_to_the_runner() -> None:
    run = active(
        task("r"),
        task("q"),
        task("retry", max_retries=2, min_retry_interval_seconds=60),
        task("p", "r"),
        max_parallel=2,
    )
    run.advance()
    run.start("r")
    run.start("retry")
    run.finish("retry", S.failed, 0.0)
    assert statuses(run) == {"r": S.running, "q": S.queued, "retry": S.up_for_retry, "p": S.pending}

    changes = run.cancel()
    assert {(t.task_key, t.old, t.new, t.reason) for t in changes} == {
        ("q", S.queued, S.canceled, "run canceled"),
        ("retry", S.up_for_retry, S.canceled, "run canceled"),
        ("p", S.pending, S.canceled, "run canceled"),
    }
    assert run.status("r") == S.running
    assert run.launchable(1e9) == []
    assert run.soon_launchable() == []
    assert run.advance() == []
    assert not run.is_done
    run.finish("r", S.canceled, 1.0)  # the runner reports the killed attempt
    assert run.is_done
    assert run.final_status() == RunStatus.canceled


def test_failure_while_canceling_is_not_retried() -> None:
    run = active(task("a", max_retries=3))
    run.advance()
    run.start("a")
    run.cancel()
    assert run.finish("a", S.failed, 0.0).new == S.failed


# ---------------------------------------------------------------------------------------------------------
# final status: decided by leaf tasks
# ---------------------------------------------------------------------------------------------------------


def test_failed_non_leaf_with_all_done_leaf_that_succeeded_means_run_succeeded() -> None:
    run = active(task("work"), task("cleanup", "work", run_if=RunIf.all_done))
    run.advance()
    run.start("work")
    run.finish("work", S.failed, 0.0)
    run.advance()
    assert run.status("cleanup") == S.queued
    run.start("cleanup")
    run.finish("cleanup", S.succeeded, 1.0)
    assert run.is_done
    assert run.final_status() == RunStatus.succeeded


def test_skipped_alert_leaf_when_everything_succeeded_means_run_succeeded() -> None:
    run = active(task("a"), task("b", "a"), task("alert", "a", "b", run_if=RunIf.at_least_one_failed))
    run_to(run, "a", S.succeeded)
    run_to(run, "b", S.succeeded)
    assert run.status("alert") == S.skipped
    assert run.is_done
    assert run.final_status() == RunStatus.succeeded


def test_alert_leaf_that_ran_does_not_hide_a_failed_leaf() -> None:
    run = active(task("a"), task("b", "a"), task("alert", "a", run_if=RunIf.at_least_one_failed))
    run.advance()
    run.start("a")
    run.finish("a", S.failed, 0.0)
    run.advance()
    run.start("alert")
    run.finish("alert", S.succeeded, 1.0)
    assert run.status("b") == S.upstream_failed
    assert run.final_status() == RunStatus.failed


@pytest.mark.parametrize("leaf_status", [S.failed, S.timed_out, S.upstream_failed, S.canceled])
def test_any_failure_outcome_on_a_leaf_fails_the_run(leaf_status: TaskRunStatus) -> None:
    run = active(task("a"), task("b"), states={"a": TaskState(S.succeeded), "b": TaskState(leaf_status)})
    assert run.final_status() == RunStatus.failed


# ---------------------------------------------------------------------------------------------------------
# soon_launchable
# ---------------------------------------------------------------------------------------------------------


def test_soon_launchable_lists_pending_tasks_whose_dependencies_succeeded_or_run() -> None:
    run = active(task("a"), task("b"), task("c", "a"), task("d", "a", "b"), task("e", "c"))
    run.advance()
    run.start("a")
    # c: a running -> soon; d: b only queued -> not; e: c pending -> not
    assert run.soon_launchable() == ["c"]
    run.start("b")
    assert run.soon_launchable() == ["c", "d"]
    run.finish("a", S.failed, 0.0)
    assert run.soon_launchable() == []  # a failed: c and d will not launch


def test_soon_launchable_looks_further_down_a_chain_level_by_level() -> None:
    run = active(task("a"), task("b", "a"), task("c", "b"), task("d", "c"), task("x"), task("y", "x"))
    run.advance()
    run.start("a")
    # x is queued (not running): y stays out at every level; the chain comes nearest first
    assert run.soon_launchable(levels=1) == ["b"]
    assert run.soon_launchable(levels=2) == ["b", "c"]
    assert run.soon_launchable(levels=9) == ["b", "c", "d"]
    run.finish("a", S.failed, 0.0)
    assert run.soon_launchable(levels=9) == []  # below a failure nothing will launch


# ---------------------------------------------------------------------------------------------------------
# repair_selection
# ---------------------------------------------------------------------------------------------------------

# a -> b -> c ; a -> d ; e -> f  ; g independent
REPAIR_DAG = Dag({"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": [], "f": ["e"], "g": []})


def test_repair_default_selects_unsuccessful_tasks_and_their_unsuccessful_downstream() -> None:
    statuses_ = {"a": ok, "b": fail, "c": upf, "d": ok, "e": tout, "f": upf, "g": canc}
    to_run, reused = repair_selection(REPAIR_DAG, statuses_)
    assert to_run == [k for k in REPAIR_DAG.order if k in {"b", "c", "e", "f", "g"}]
    assert reused == [k for k in REPAIR_DAG.order if k in {"a", "d"}]


def test_repair_default_includes_skipped_downstream_but_not_unrelated_skipped() -> None:
    dag = Dag({"a": [], "b": ["a"], "alert": ["a"], "x": [], "x_alert": ["x"]})
    st = {"a": fail, "b": upf, "alert": skip, "x": ok, "x_alert": skip}
    to_run, reused = repair_selection(dag, st)
    assert set(to_run) == {"a", "b", "alert"}
    assert set(reused) == {"x", "x_alert"}


def test_repair_named_tasks_keep_succeeded_downstream() -> None:
    statuses_ = {"a": ok, "b": ok, "c": fail, "d": ok, "e": ok, "f": ok, "g": ok}
    to_run, reused = repair_selection(REPAIR_DAG, statuses_, task_keys=["a"])
    assert to_run == [k for k in REPAIR_DAG.order if k in {"a", "c"}]  # c is downstream and failed
    assert set(reused) == {"b", "d", "e", "f", "g"}


def test_repair_rerun_dependents_includes_succeeded_downstream() -> None:
    statuses_ = {k: ok for k in REPAIR_DAG.order}
    to_run, reused = repair_selection(REPAIR_DAG, statuses_, task_keys=["a"], rerun_dependents=True)
    assert to_run == [k for k in REPAIR_DAG.order if k in {"a", "b", "c", "d"}]
    assert reused == [k for k in REPAIR_DAG.order if k in {"e", "f", "g"}]


def test_repair_unknown_task_key_raises_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        repair_selection(REPAIR_DAG, {k: ok for k in REPAIR_DAG.order}, task_keys=["a", "nope"])


def test_repair_nothing_to_do_when_everything_succeeded() -> None:
    to_run, reused = repair_selection(REPAIR_DAG, {k: ok for k in REPAIR_DAG.order})
    assert to_run == []
    assert reused == REPAIR_DAG.order


def test_repair_lists_are_in_topological_order() -> None:
    # Keys whose alphabetical order contradicts the DAG order.
    dag = Dag({"z": [], "y": ["z"], "x": ["y"], "w": ["x"]})
    assert dag.order == ["z", "y", "x", "w"]
    to_run, reused = repair_selection(dag, {"z": ok, "y": fail, "x": upf, "w": upf})
    assert to_run == ["y", "x", "w"]
    assert reused == ["z"]
    to_run, _ = repair_selection(
        dag, {"z": ok, "y": ok, "x": ok, "w": ok}, task_keys=["w", "z"], rerun_dependents=True
    )
    assert to_run == ["z", "y", "x", "w"]


def test_active_run_built_from_repair_runs_only_selected_tasks() -> None:
    tasks = [task("a"), task("b", "a"), task("c", "b"), task("d", "a")]
    st = {"a": ok, "b": fail, "c": upf, "d": ok}
    dag = Dag({t.task_key: t.depends_on for t in tasks})
    to_run, _reused = repair_selection(dag, st)
    states = {k: TaskState(S.pending if k in to_run else st[k], attempts=1) for k in st}
    run = active(*tasks, states=states)
    run.advance()
    assert run.launchable(0.0) == ["b"]
    assert run.start("b")[0] == 2


# ---------------------------------------------------------------------------------------------------------
# Dag
# ---------------------------------------------------------------------------------------------------------


def test_dag_cycle_error_names_the_cycle_in_flow_order() -> None:
    with pytest.raises(CycleError) as info:
        Dag({"a": ["c"], "b": ["a"], "c": ["b"]})
    assert info.value.cycle == ["a", "b", "c", "a"]
    assert str(info.value) == "dependency cycle: a -> b -> c -> a"


def test_dag_cycle_is_in_flow_order_whatever_the_start() -> None:
    depends_on = {"b": ["a"], "c": ["b"], "a": ["c"], "root": [], "tail": ["c"]}
    with pytest.raises(CycleError) as info:
        Dag(depends_on)
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"} and len(cycle) == 4
    for upstream, downstream in itertools.pairwise(cycle):
        assert upstream in depends_on[downstream], f"{upstream} -> {downstream} is not an edge"


def test_dag_self_dependency_is_a_cycle() -> None:
    with pytest.raises(CycleError) as info:
        Dag({"a": ["a"], "b": []})
    assert info.value.cycle == ["a", "a"]
    assert str(info.value) == "dependency cycle: a -> a"


def test_dag_unknown_dependency_is_key_error() -> None:
    with pytest.raises(KeyError, match="b depends on unknown task zz"):
        Dag({"a": [], "b": ["zz"]})


def test_dag_upstream_downstream_leaves() -> None:
    dag = Dag({"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": [], "f": ["c", "e"]})
    assert dag.upstream_of("f") == {"a", "b", "c", "e"}
    assert dag.upstream_of("a") == set()
    assert dag.downstream_of(["a"]) == {"b", "c", "d", "f"}
    assert dag.downstream_of(["c", "e"]) == {"f"}
    assert dag.downstream_of([]) == set()
    assert set(dag.leaves()) == {"d", "f"}
    assert dag.leaves() == [k for k in dag.order if k in {"d", "f"}]
    order = dag.order
    for key, deps in dag.depends_on.items():
        for dep in deps:
            assert order.index(dep) < order.index(key)
