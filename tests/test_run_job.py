"""Run-job tasks (Databricks Run Job task): validation before the run (the child job's folder, validity and
parameters, job cycles) and, with real kernels, a child run that fails and is repaired through its parent, and a
parent canceled while its child runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import nbformat
import pytest

from jupyter_orchestrate.discovery import validate_job
from jupyter_orchestrate.models import RunStatus, TaskRunStatus, Trigger
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import cli, write_notebook

S = TaskRunStatus


def workspace(
    tmp_path: Path, run_job: str, child_yaml: str = "name: child\nparameters:\n  threshold: null\n"
) -> Path:
    """``ws/parent`` (prepare -> load_child (run_job) -> after) and ``ws/child`` (one notebook, load)."""
    root = tmp_path / "ws"
    write_notebook(
        root / "child" / "load.ipynb",
        "if threshold is None:\n    raise ValueError('no threshold')\nprint('loaded', threshold)",
        parameters="threshold = None",
        orchestrate={},
    )
    (root / "child" / "job.yaml").write_text(child_yaml, encoding="utf-8")
    write_notebook(
        root / "parent" / "prepare.ipynb",
        "from jupyter_orchestrate import task_values\ntask_values.set('threshold', 0.5)",
        orchestrate={},
    )
    write_notebook(
        root / "parent" / "after.ipynb", "print('after')", orchestrate={"depends_on": ["load_child"]}
    )
    (root / "parent" / "job.yaml").write_text(
        f"name: parent\ntasks:\n  load_child:\n    run_job: {run_job}\n    depends_on: [prepare]\n",
        encoding="utf-8",
    )
    return root


def errors(folder: Path) -> list[str]:
    _, problems = validate_job(folder, check_kernels=False)
    return [str(p) for p in problems if not p.is_warning]


# -- validation -----------------------------------------------------------------------------------------------


def test_a_valid_run_job_task(tmp_path: Path) -> None:
    root = workspace(
        tmp_path, "{job: ../child, parameters: {threshold: '{{tasks.prepare.values.threshold}}'}}"
    )
    job, problems = validate_job(root / "parent", check_kernels=False)
    assert job is not None and problems == []
    task = job.task("load_child")
    assert task.notebook is None and task.run_job is not None and task.run_job.job == "../child"
    assert task.target == "run job ../child"


@pytest.mark.parametrize(
    ("run_job", "expected"),
    [
        ("{job: ../nowhere}", "parent/job.yaml: tasks.load_child.run_job.job: '../nowhere' is not a folder"),
        (
            "{job: /etc}",
            "parent/job.yaml: tasks.load_child.run_job.job: run_job.job '/etc' leads outside the workspace",
        ),
        (
            "{job: ../child, parameters: {limit: 3}}",
            "parent/job.yaml: tasks.load_child.run_job.parameters.limit: job 'child' has no job or notebook "
            "parameter 'limit' (known: threshold)",
        ),
        (
            "{job: ../child, parameters: {threshold: '{{tasks.after.values.x}}'}}",
            "parent/job.yaml: tasks.load_child.run_job.parameters.threshold: {{tasks.after.values.x}}: task "
            "'after' is not upstream of task 'load_child'",
        ),
        ("{job: ../parent}", "parent/job.yaml: tasks.load_child.run_job.job: job cycle: parent -> parent"),
    ],
)
def test_run_job_problems_name_file_field_and_problem(tmp_path: Path, run_job: str, expected: str) -> None:
    found = errors(workspace(tmp_path, run_job) / "parent")
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_link_out_of_the_workspace_is_refused_as_written(tmp_path: Path) -> None:
    root = workspace(tmp_path, "{job: ../elsewhere}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "elsewhere").symlink_to(outside)
    (found,) = errors(root / "parent")
    assert found.startswith(
        "parent/job.yaml: tasks.load_child.run_job.job: run_job.job '../elsewhere' leads outside the workspace "
    ), found


def test_a_cycle_through_two_jobs_is_refused(tmp_path: Path) -> None:
    root = workspace(
        tmp_path,
        "{job: ../child}",
        child_yaml="name: child\nparameters:\n  threshold: null\ntasks:\n  back:\n    run_job: {job: ../parent}\n",
    )
    assert errors(root / "parent") == [
        "parent/job.yaml: tasks.load_child.run_job.job: job cycle: parent -> child -> parent"
    ]


def test_an_invalid_child_job_and_notebook_settings_are_refused(tmp_path: Path) -> None:
    root = workspace(tmp_path, "{job: ../child}", child_yaml="name: child\nmax_paralel_tasks: 2\n")
    (found,) = errors(root / "parent")
    assert found.startswith(
        "parent/job.yaml: tasks.load_child.run_job.job: the job at '../child' is invalid: "
    )
    assert "max_paralel_tasks" in found
    root = workspace(tmp_path / "2", "{job: ../child}\n    timeout_seconds: 5")
    assert errors(root / "parent") == [
        "parent/job.yaml: tasks.load_child.timeout_seconds: a run-job task runs no notebook: remove "
        "timeout_seconds (or the run_job)"
    ]


def test_a_job_of_one_run_job_task_is_a_job(tmp_path: Path) -> None:
    root = workspace(tmp_path, "{job: ../child}")
    (root / "runner").mkdir()
    (root / "runner" / "job.yaml").write_text("tasks:\n  all:\n    run_job: {job: ../child}\n")
    job, problems = validate_job(root / "runner", check_kernels=False)
    assert job is not None and problems == [] and job.task_keys == ["all"]


def test_run_job_is_refused_in_notebook_metadata_and_task_defaults(tmp_path: Path) -> None:
    root = workspace(tmp_path, "{job: ../child}")
    write_notebook(root / "parent" / "sneaky.ipynb", "pass", orchestrate={"run_job": {"job": "../child"}})
    assert errors(root / "parent") == [
        "parent/sneaky.ipynb: metadata.orchestrate.run_job: only allowed in job.yaml"
    ]
    (root / "parent" / "sneaky.ipynb").unlink()
    job_yaml = (root / "parent" / "job.yaml").read_text()
    (root / "parent" / "job.yaml").write_text(job_yaml + "task_defaults:\n  run_job: {job: ../child}\n")
    assert errors(root / "parent") == [
        "parent/job.yaml: task_defaults.run_job: set it on a task under tasks:"
    ]


# -- real kernels -----------------------------------------------------------------------------------------------


@pytest.mark.kernel
def test_a_child_run_fails_and_the_parent_repair_repairs_it(tmp_path: Path) -> None:
    root = workspace(tmp_path, "{job: ../child, parameters: {threshold: null}}")
    home = tmp_path / "state"
    first = cli(home, "run", str(root / "parent"), timeout=300)
    assert first.returncode == 1, first.stderr
    service = OrchestrateService(home)
    parent = service.get_run(1)
    (child_link,) = parent.child_runs
    assert (child_link.task_key, child_link.job_name, child_link.status) == (
        "load_child",
        "child",
        RunStatus.failed,
    )
    child = service.get_run(child_link.run_id)
    assert (child.parent_run_id, child.parent_task_key, child.trigger) == (1, "load_child", Trigger.run_job)
    load_child = parent.task_run("load_child")
    error = load_child.attempts[0].error
    assert error is not None and error.kind == "child_run_failed" and error.ename == "ChildRunFailed"
    assert f"run {child.run_id} failed: load failed in cell 2: ValueError: no threshold" in error.evalue
    assert load_child.attempts[0].environment == {"child_run_id": child.run_id}
    assert parent.task_run("after").status == S.upstream_failed
    assert "load_child: run 2 of job child (failed)" in cli(home, "show", "1", timeout=300).stdout
    assert "started by task load_child of run 1" in cli(home, "show", "2", timeout=300).stdout

    nb = nbformat.read(root / "child" / "load.ipynb", as_version=4)  # the user fixes the child's notebook
    nb.cells[1].source = "print('loaded', threshold or 0.5)"
    nbformat.write(nb, root / "child" / "load.ipynb")
    second = cli(home, "repair", "1", timeout=300)
    assert second.returncode == 0, second.stderr
    parent, child = service.get_run(1), service.get_run(child.run_id)
    assert parent.status == RunStatus.succeeded and [c.run_id for c in parent.child_runs] == [child.run_id]
    assert child.status == RunStatus.succeeded and child.repair_count == 1, "repaired, not a new run"
    assert [a.status for a in child.task_run("load").attempts] == [S.failed, S.succeeded]
    assert parent.task_run("load_child").task_values == {"run_id": child.run_id}
    assert len(service.list_runs(limit=10)) == 2


@pytest.mark.kernel
def test_canceling_the_parent_cancels_the_child(tmp_path: Path) -> None:
    root = workspace(tmp_path, "{job: ../child, parameters: {threshold: 1}}")
    nb = nbformat.read(root / "child" / "load.ipynb", as_version=4)
    nb.cells[1].source = "import time\ntime.sleep(60)"
    nbformat.write(nb, root / "child" / "load.ipynb")
    service = OrchestrateService(tmp_path / "state")
    runner = service.new_run(root / "parent")
    thread = threading.Thread(target=runner.execute)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not service.get_run(runner.run_id).child_runs:
        time.sleep(0.2)
    (link,) = service.get_run(runner.run_id).child_runs
    while time.monotonic() < deadline and service.get_run(link.run_id).task_run("load").status != S.running:
        time.sleep(0.2)
    service.cancel(runner.run_id)
    thread.join(timeout=60)
    runner.executor.close()
    assert not thread.is_alive()
    parent, child = service.get_run(runner.run_id), service.get_run(link.run_id)
    assert parent.status == RunStatus.canceled and child.status == RunStatus.canceled
    assert parent.task_run("load_child").status == S.canceled
