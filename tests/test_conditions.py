"""Condition tasks (Databricks If/else): the comparison rules, the engine's branch skipping, validation before
the run, the runner without kernels (MemoryExecutor, real SQLite) and one end-to-end run with real kernels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.conditions import ConditionError, compare, evaluate
from jupyter_orchestrate.discovery import validate_job
from jupyter_orchestrate.engine.active_run import ActiveRun, TaskState
from jupyter_orchestrate.executors.memory import MemoryExecutor, fail, succeed
from jupyter_orchestrate.models import Condition, ConditionOp, RunStatus, Task, TaskRunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import cli, write_notebook
from tests.test_active_run import run_to

S = TaskRunStatus
OPS = {op.value: op for op in ConditionOp}


# -- comparison rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "op", "right", "expected"),
    [
        (3, ">", 0, True),
        (0, ">", 0, False),
        (0, ">=", 0, True),
        (1.5, "<", 2, True),
        (1, "==", 1.0, True),
        ("3", "==", 3, False),  # a string is not a number
        (True, "==", 1, False),  # a boolean is not a number
        (True, "!=", 1, True),
        ("DE", "==", "DE", True),
        ("apple", "<", "banana", True),
        (None, "==", None, True),
        ([1, 2], "==", [1, 2], True),
    ],
)
def test_compare(left: Any, op: str, right: Any, expected: bool) -> None:
    assert compare(left, OPS[op], right) is expected


@pytest.mark.parametrize(("left", "right"), [("a", 1), (True, 0), (None, 1), ([1], [2])])
def test_ordering_needs_two_numbers_or_two_strings(left: Any, right: Any) -> None:
    with pytest.raises(ConditionError, match="ordering needs two numbers or two strings"):
        compare(left, ConditionOp.gt, right)


def context(**values: dict[str, Any]) -> dict[str, Any]:
    return {"job": {"parameters": {"country": "DE"}}, "tasks": {k: {"values": v} for k, v in values.items()}}


def test_evaluate_resolves_references_keeping_the_referenced_type() -> None:
    condition = Condition(left="{{tasks.silver.values.rows}}", op=">", right=0)
    assert evaluate(condition, context(silver={"rows": 12})) == (True, "12 > 0 is true")
    assert evaluate(condition, context(silver={"rows": 0})) == (False, "0 > 0 is false")
    text = Condition(left="{{job.parameters.country}}", op="==", right="DE")
    assert evaluate(text, context())[0] is True


def test_evaluate_names_a_task_value_that_was_not_set() -> None:
    condition = Condition(left="{{tasks.silver.values.rows}}", op=">", right=0)
    with pytest.raises(ConditionError) as raised:
        evaluate(condition, context(silver={}))
    assert "upstream task 'silver' did not set a task value named 'rows'" in str(raised.value)
    assert "'{{tasks.silver.values.rows}}' > 0" in str(raised.value)


def test_evaluate_refuses_to_order_a_string_value() -> None:
    condition = Condition(left="{{tasks.silver.values.rows}}", op=">", right=0)
    with pytest.raises(ConditionError, match=r"cannot compare 'many' \(string\) > 0 \(number\)"):
        evaluate(condition, context(silver={"rows": "many"}))


def test_operands_keep_their_json_type() -> None:
    condition = Condition.model_validate({"left": 0, "op": "==", "right": False})
    assert condition.left == 0 and type(condition.left) is int and condition.right is False


# -- the engine ------------------------------------------------------------------------------------------------


def branches() -> dict[str, Task]:
    """silver -> check -> (gold if true -> report) and (alert if false); audit runs after check either way."""
    tasks = [
        Task(task_key="silver", notebook="silver.ipynb"),
        Task(
            task_key="check",
            notebook=None,
            condition=Condition(left="{{tasks.silver.values.rows}}", op=">", right=0),
            depends_on=["silver"],
        ),
        Task(
            task_key="gold",
            notebook="gold.ipynb",
            depends_on=["check"],
            depends_on_outcomes={"check": "true"},
        ),
        Task(task_key="report", notebook="report.ipynb", depends_on=["gold"]),
        Task(
            task_key="alert", notebook="a.ipynb", depends_on=["check"], depends_on_outcomes={"check": "false"}
        ),
        Task(task_key="audit", notebook="audit.ipynb", depends_on=["check"]),
    ]
    return {t.task_key: t for t in tasks}


def through_check(outcome: bool | None) -> ActiveRun:
    """An ActiveRun of :func:`branches` with silver succeeded and check ended: with ``outcome``, or failed."""
    tasks = branches()
    run = ActiveRun(tasks, {k: TaskState(S.pending) for k in tasks}, 4)
    run_to(run, "silver", S.succeeded)
    assert run.launchable(0.0) == ["check"]
    run.start("check")
    if outcome is None:
        run.finish("check", S.failed, 0.0, "ConditionError: ...")
    else:
        run.finish_condition("check", outcome, 0.0, f"condition ... is {outcome}")
    run.advance()
    return run


def test_outcome_true_runs_the_true_branch_and_skips_the_false_one() -> None:
    run = through_check(True)
    assert run.status("check") == S.succeeded
    assert set(run.launchable(0.0)) == {"gold", "audit"}
    assert run.status("alert") == S.skipped
    assert run.states["alert"].reason == "run_if all_success not met (check outcome true, needs false)"


def test_outcome_false_skips_the_true_branch_and_what_depends_on_it() -> None:
    run = through_check(False)
    assert set(run.launchable(0.0)) == {"alert", "audit"}
    assert run.status("gold") == S.skipped and run.status("report") == S.skipped
    assert run.states["report"].reason == "run_if all_success not met (gold=skipped)"
    for key in ("alert", "audit"):
        run.start(key)
        run.finish(key, S.succeeded, 0.0)
    run.advance()
    assert run.is_done and run.final_status() == RunStatus.succeeded, "a branch not taken is no failure"


def test_a_condition_that_cannot_be_evaluated_fails_both_branches_upstream() -> None:
    run = through_check(None)
    assert {k: run.status(k) for k in ("gold", "alert", "audit", "report")} == {
        "gold": S.upstream_failed,
        "alert": S.upstream_failed,
        "audit": S.upstream_failed,
        "report": S.upstream_failed,
    }
    assert run.final_status() == RunStatus.failed


def test_a_repair_reuses_the_outcome_it_is_given() -> None:
    tasks = branches()
    states = {k: TaskState(S.succeeded, attempts=1) for k in ("silver", "check", "audit")}
    states |= {
        "gold": TaskState(S.pending, attempts=1),
        "report": TaskState(S.pending),
        "alert": TaskState(S.skipped),
    }
    run = ActiveRun(tasks, states, 4, outcomes={"check": True})
    run.advance()
    assert run.launchable(0.0) == ["gold"] and run.status("alert") == S.skipped


def test_all_done_downstream_of_the_branch_not_taken_still_runs() -> None:
    tasks = branches()
    tasks["report"] = Task(task_key="report", notebook="r.ipynb", depends_on=["gold"], run_if="all_done")
    run = ActiveRun(tasks, {k: TaskState(S.pending) for k in tasks}, 4)
    run_to(run, "silver", S.succeeded)
    run.start("check")
    run.finish_condition("check", False, 0.0, "...")
    run.advance()
    assert run.status("gold") == S.skipped and "report" in run.launchable(0.0)


# -- validation -----------------------------------------------------------------------------------------------


def make_job(tmp_path: Path, job_yaml: str, **notebooks: dict[str, Any]) -> Path:
    folder = tmp_path / "job"
    for key, metadata in notebooks.items():
        write_notebook(folder / f"{key}.ipynb", "pass", parameters="rows = 1", orchestrate=metadata)
    (folder / "job.yaml").write_text(job_yaml, encoding="utf-8")
    return folder


CHECK = """
tasks:
  check:
    condition: {left: "{{tasks.silver.values.rows}}", op: ">", right: 0}
    depends_on: [silver]
"""


def errors(folder: Path) -> list[str]:
    _, problems = validate_job(folder, check_kernels=False)
    return [str(p) for p in problems if not p.is_warning]


def test_a_valid_condition_task(tmp_path: Path) -> None:
    folder = make_job(
        tmp_path,
        CHECK,
        silver={},
        gold={"depends_on": [{"task_key": "check", "outcome": True}]},
        alert={"depends_on": [{"task_key": "check", "outcome": "false"}]},
    )
    job, problems = validate_job(folder, check_kernels=False)
    assert job is not None and [str(p) for p in problems] == []
    check = job.task("check")
    assert check.notebook is None and check.condition is not None and check.depends_on == ["silver"]
    assert (
        check.condition.op == ConditionOp.gt
        and check.target == "condition '{{tasks.silver.values.rows}}' > 0"
    )
    assert job.task("gold").depends_on == ["check"] and job.task("gold").depends_on_outcomes == {
        "check": "true"
    }
    assert job.task("alert").depends_on_outcomes == {"check": "false"}
    assert [t.task_key for t in job.tasks].index("check") < [t.task_key for t in job.tasks].index("gold")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            CHECK.replace("silver.values", "bronze.values"),
            "job/job.yaml: tasks.check.condition.left: {{tasks.bronze.values.rows}} names unknown task 'bronze'",
        ),
        (
            CHECK.replace("depends_on: [silver]", "depends_on: []"),
            "job/job.yaml: tasks.check.condition.left: {{tasks.silver.values.rows}}: task 'silver' is not "
            "upstream of task 'check'; add it to depends_on",
        ),
        (CHECK.replace('op: ">"', 'op: "=~"'), "job/job.yaml: tasks.check.condition.op: "),
        (
            CHECK.replace('"{{tasks.silver.values.rows}}"', '"many"'),
            "job/job.yaml: tasks.check.condition: cannot compare 'many' (string) > 0 (number)",
        ),
        (
            CHECK + "    notebook: silver.ipynb\n",
            "job/job.yaml: tasks.check.notebook: a condition task runs no notebook: remove notebook",
        ),
        (
            CHECK + "    max_retries: 2\n    parameters: {x: 1}\n",
            "job/job.yaml: tasks.check.parameters: a condition task runs no notebook: remove parameters, "
            "max_retries",
        ),
        (
            CHECK.replace("depends_on: [silver]", "depends_on: [check]"),
            "job/job.yaml: tasks.check.depends_on: task 'check' depends on itself",
        ),
        (
            CHECK.replace("check:", "silver:"),
            "job/job.yaml: tasks.silver.condition: duplicate task key 'silver': the notebook job/silver.ipynb has it",
        ),
    ],
)
def test_condition_problems_name_file_field_and_problem(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    folder = make_job(tmp_path, yaml_text, silver={})
    found = errors(folder)
    assert any(p.startswith(expected) for p in found), found


def test_outcome_of_a_task_that_is_not_a_condition(tmp_path: Path) -> None:
    folder = make_job(
        tmp_path, CHECK, silver={}, gold={"depends_on": [{"task_key": "silver", "outcome": "true"}]}
    )
    assert errors(folder) == [
        "job/gold.ipynb: depends_on: 'silver' is not a condition task: only a condition task has an outcome "
        "(remove outcome, or depend on a task with condition:)"
    ]


def test_bad_outcome_and_condition_in_notebook_metadata(tmp_path: Path) -> None:
    folder = make_job(
        tmp_path,
        CHECK,
        silver={},
        gold={"depends_on": [{"task_key": "check", "outcome": "maybe"}]},
        other={"condition": {"left": 1, "op": "==", "right": 1}},
    )
    found = errors(folder)
    assert any(p.startswith("job/gold.ipynb: metadata.orchestrate.depends_on.0") for p in found), found
    assert "job/other.ipynb: metadata.orchestrate.condition: only allowed in job.yaml" in found


def test_a_job_of_condition_tasks_only_is_a_job(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.yaml").write_text("tasks:\n  always:\n    condition: {left: 1, op: '==', right: 1}\n")
    job, problems = validate_job(folder, check_kernels=False)
    assert job is not None and problems == [] and job.task("always").condition is not None


# -- the runner, no kernels --------------------------------------------------------------------------------------


def memory_job(tmp_path: Path) -> Path:
    return make_job(
        tmp_path,
        CHECK,
        silver={},
        gold={"depends_on": [{"task_key": "check", "outcome": "true"}]},
        alert={"depends_on": [{"task_key": "check", "outcome": "false"}]},
    )


def run_with(service: OrchestrateService, path: Path, executor: MemoryExecutor) -> Any:
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    runner.execute()
    return service.get_run(runner.run_id)


@pytest.mark.parametrize(("rows", "ran", "skipped"), [(5, "gold", "alert"), (0, "alert", "gold")])
def test_the_runner_takes_one_branch_without_a_kernel(
    tmp_path: Path, rows: int, ran: str, skipped: str
) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"silver": [succeed(1, rows=rows)]})
    run = run_with(service, memory_job(tmp_path), executor)
    assert run.status == RunStatus.succeeded
    check = run.task_run("check")
    assert check.status == S.succeeded and check.task_values == {"outcome": rows > 0}
    assert check.status_reason == f"condition {rows} > 0 is {'true' if rows > 0 else 'false'}"
    (attempt,) = check.attempts
    assert attempt.status == S.succeeded and attempt.notebook_path is None and attempt.kernel_name is None
    assert check.notebook is None
    assert not executor.started("check"), "the executor never sees a condition task"
    assert run.task_run(ran).status == S.succeeded and run.task_run(skipped).status == S.skipped
    assert not executor.started(skipped)


def test_a_condition_whose_value_is_missing_fails_and_a_repair_evaluates_it_again(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"silver": [succeed(1), succeed(1, rows=2)]})
    run = run_with(service, memory_job(tmp_path), executor)
    assert run.status == RunStatus.failed
    check = run.task_run("check")
    assert check.status == S.failed
    error = check.attempts[0].error
    assert error is not None and error.ename == "ConditionError"
    assert "upstream task 'silver' did not set a task value named 'rows'" in error.evalue
    assert run.task_run("gold").status == S.upstream_failed == run.task_run("alert").status

    repair = service.new_repair(run.run_id, task_keys=["silver"], executor=executor, clock=executor.clock)
    repair.execute()
    run = service.get_run(run.run_id)
    assert run.status == RunStatus.succeeded
    assert [a.status for a in run.task_run("check").attempts] == [S.failed, S.succeeded]
    assert run.task_run("gold").status == S.succeeded and run.task_run("alert").status == S.skipped


def test_a_repair_of_the_branch_keeps_the_outcome_it_reuses(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"silver": [succeed(1, rows=2)], "gold": [fail(1), succeed(1)]})
    run = run_with(service, memory_job(tmp_path), executor)
    assert run.task_run("gold").status == S.failed and run.task_run("alert").status == S.skipped
    service.new_repair(run.run_id, executor=executor, clock=executor.clock).execute()
    run = service.get_run(run.run_id)
    assert run.status == RunStatus.succeeded
    assert len(run.task_run("check").attempts) == 1, "the condition is reused, not evaluated again"
    assert len(run.task_run("gold").attempts) == 2 and run.task_run("alert").status == S.skipped
    assert len(executor.started("silver")) == 1


# -- end to end, real kernels ------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_cli_run_with_a_condition_task(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    write_notebook(
        folder / "silver.ipynb",
        "from jupyter_orchestrate import task_values\ntask_values.set('rows', rows)",
        parameters="rows = 3",
        orchestrate={},
    )
    write_notebook(
        folder / "gold.ipynb",
        "print('gold')",
        orchestrate={"depends_on": [{"task_key": "check", "outcome": True}]},
    )
    write_notebook(
        folder / "alert.ipynb",
        "print('alert')",
        orchestrate={"depends_on": [{"task_key": "check", "outcome": False}]},
    )
    (folder / "job.yaml").write_text(CHECK, encoding="utf-8")
    home = tmp_path / "state"
    done = cli(home, "run", str(folder), "-p", "rows=0", timeout=240)
    assert done.returncode == 0, done.stderr
    assert "check: succeeded: condition 0 > 0 is false" in done.stdout + done.stderr
    shown = cli(home, "show", "1", "--json", timeout=60)
    document = json.loads(shown.stdout)
    by_key = {t["task_key"]: t for t in document["task_runs"]}
    assert by_key["check"]["notebook"] is None and by_key["check"]["task_values"] == {"outcome": False}
    assert by_key["check"]["attempts"][0]["executed_notebook"] is None
    assert by_key["alert"]["status"] == "succeeded" and by_key["gold"]["status"] == "skipped"
    assert (home / "runs" / "1" / "alert" / "attempt-1.ipynb").is_file()
    assert not (home / "runs" / "1" / "check").exists() or not list(
        (home / "runs" / "1" / "check").glob("*.ipynb")
    )
