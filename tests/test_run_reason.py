"""The headline of a failed run (``Run.status_reason``) names the task runs that failed, their cell and error,
failures first, not the leaf tasks that could not run because of them (engine/runner.py)."""

from __future__ import annotations

from jupyter_orchestrate.dag import Dag
from jupyter_orchestrate.engine.runner import failed_run_reason, root_causes
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, TaskRunStatus

S = TaskRunStatus
REPAIR_DEMO = Dag({"extract": [], "validate": ["extract"], "publish": ["validate"]})
CELL_ERROR = AttemptError(
    kind=AttemptErrorKind.cell_error,
    ename="ValueError",
    evalue="threshold is not set: repair this run with -p threshold=0.5\nsecond line",
    cell_index=3,
)


def test_the_failed_task_is_named_with_its_cell_and_error_and_the_leaf_comes_last() -> None:
    statuses = {"extract": S.succeeded, "validate": S.failed, "publish": S.upstream_failed}
    assert root_causes(REPAIR_DEMO, statuses) == ["validate"]
    assert failed_run_reason(REPAIR_DEMO, statuses, {"validate": CELL_ERROR}) == (
        "validate failed in cell 4: ValueError: threshold is not set: repair this run with -p threshold=0.5;"
        " not run: publish"
    )


def test_a_failed_leaf_is_its_own_root_cause() -> None:
    statuses = {"extract": S.succeeded, "validate": S.succeeded, "publish": S.failed}
    error = AttemptError(kind=AttemptErrorKind.kernel_died, ename="DeadKernelError", evalue="")
    assert failed_run_reason(REPAIR_DEMO, statuses, {"publish": error}) == "publish failed: DeadKernelError"


def test_several_root_causes_in_order_timeouts_and_the_injected_parameters_cell() -> None:
    dag = Dag({"a": [], "b": [], "report": ["a", "b"], "side": []})
    statuses = {"a": S.timed_out, "b": S.failed, "report": S.upstream_failed, "side": S.succeeded}
    timeout = AttemptError(
        kind=AttemptErrorKind.timeout, ename="TimeoutError", evalue="exceeded timeout_seconds=5", cell_index=1
    )
    injected = AttemptError(kind=AttemptErrorKind.cell_error, ename="NameError", evalue="x", cell_index=None)
    assert failed_run_reason(dag, statuses, {"a": timeout, "b": injected}) == (
        "a timed out in cell 2: TimeoutError: exceeded timeout_seconds=5; "
        "b failed in the injected-parameters cell: NameError: x; not run: report"
    )


def test_a_failure_that_did_not_fail_the_run_is_not_blamed() -> None:
    # `work` failed but an all_done cleanup leaf succeeded; only the other branch's failure failed the run
    dag = Dag({"work": [], "cleanup": ["work"], "load": [], "publish": ["load"]})
    statuses = {"work": S.failed, "cleanup": S.succeeded, "load": S.failed, "publish": S.upstream_failed}
    assert root_causes(dag, statuses) == ["load"]
    assert failed_run_reason(dag, statuses, {}) == "load failed; not run: publish"


def test_long_messages_are_cut_and_without_an_errored_task_the_leaves_are_named() -> None:
    long_error = AttemptError(kind=AttemptErrorKind.cell_error, ename="E", evalue="x" * 500, cell_index=0)
    statuses = {"extract": S.succeeded, "validate": S.succeeded, "publish": S.failed}
    reason = failed_run_reason(REPAIR_DEMO, statuses, {"publish": long_error})
    assert (
        reason.startswith("publish failed in cell 1: E: xxx") and reason.endswith("…") and len(reason) < 260
    )
    canceled = {"extract": S.succeeded, "validate": S.canceled, "publish": S.upstream_failed}
    assert failed_run_reason(REPAIR_DEMO, canceled, {}) == "leaf task(s) not successful: publish"
