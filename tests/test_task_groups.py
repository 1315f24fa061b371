"""Task groups (Airflow's TaskGroup): membership from `group` or job.yaml `groups:`, `depends_on` on a group,
`repair --task <group>`, and the problems validation names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.discovery import validate_job
from jupyter_orchestrate.errors import ValidationError
from jupyter_orchestrate.executors.memory import MemoryExecutor, fail, succeed
from jupyter_orchestrate.models import RunStatus, TaskRunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import write_notebook

S = TaskRunStatus


def make_job(tmp_path: Path, job_yaml: str = "", **tasks: dict[str, Any]) -> Path:
    folder = tmp_path / "job"
    for key, metadata in tasks.items():
        write_notebook(folder / f"{key}.ipynb", "pass", orchestrate=metadata)
    if job_yaml:
        (folder / "job.yaml").write_text(job_yaml, encoding="utf-8")
    return folder


def gold_job(tmp_path: Path, job_yaml: str = "", gold_group: bool = True) -> Path:
    group = {"group": "gold"} if gold_group else {}
    return make_job(
        tmp_path,
        job_yaml,
        silver={},
        gold_totals={"depends_on": ["silver"], **group},
        gold_shares={"depends_on": ["silver"], **group},
        report={"depends_on": ["gold"]},
    )


def test_group_from_notebook_metadata_and_depends_on_a_group(tmp_path: Path) -> None:
    job, problems = validate_job(gold_job(tmp_path), check_kernels=False)
    assert job is not None and problems == []
    assert {k: sorted(v) for k, v in job.groups.items()} == {"gold": ["gold_shares", "gold_totals"]}
    assert sorted(job.task("report").depends_on) == ["gold_shares", "gold_totals"]
    assert job.task("gold_totals").group == "gold" and job.task("silver").group is None
    assert set(job.expand_groups(["gold", "silver"])) == {"gold_totals", "gold_shares", "silver"}


def test_groups_in_job_yaml(tmp_path: Path) -> None:
    folder = gold_job(tmp_path, "groups:\n  gold: [gold_totals, gold_shares]\n", gold_group=False)
    job, problems = validate_job(folder, check_kernels=False)
    assert job is not None and problems == []
    assert {t.task_key: t.group for t in job.tasks}["gold_shares"] == "gold"


@pytest.mark.parametrize(
    ("job_yaml", "expected"),
    [
        ("groups:\n  gold: [gold_totals, nothing]\n", "job/job.yaml: groups.gold: unknown task 'nothing'"),
        (
            "groups:\n  silver: [gold_totals]\n",
            "job/job.yaml: groups.silver: invalid group name 'silver': is a task key too",
        ),
        (
            "groups:\n  other: [gold_totals]\n",
            "job/job.yaml: groups.other: task 'gold_totals' is in group 'gold' already",
        ),
        (
            "task_defaults:\n  group: gold\n",
            "job/job.yaml: task_defaults.group: set it on a task under tasks:",
        ),
    ],
)
def test_group_problems(tmp_path: Path, job_yaml: str, expected: str) -> None:
    _, problems = validate_job(gold_job(tmp_path, job_yaml), check_kernels=False)
    found = [str(p) for p in problems if not p.is_warning]
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_task_cannot_depend_on_its_own_group(tmp_path: Path) -> None:
    folder = make_job(tmp_path, a={"group": "g"}, b={"group": "g", "depends_on": ["g"]})
    _, problems = validate_job(folder, check_kernels=False)
    assert [str(p) for p in problems] == ["job/b.ipynb: depends_on: task 'b' depends on its own group 'g'"]


def test_repair_of_a_group_selects_all_its_tasks(tmp_path: Path) -> None:
    service = OrchestrateService(tmp_path / "state")
    executor = MemoryExecutor({"gold_shares": [fail(1)]}, default=succeed(1))
    path = gold_job(tmp_path)
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    assert runner.execute() == RunStatus.failed
    repair = service.new_repair(runner.run_id, task_keys=["gold"], executor=executor, clock=executor.clock)
    assert repair.execute() == RunStatus.succeeded
    run = service.get_run(runner.run_id)
    attempts = {t.task_key: len(t.attempts) for t in run.task_runs}
    assert attempts == {"silver": 1, "gold_totals": 2, "gold_shares": 2, "report": 1}
    with pytest.raises(ValidationError, match=r"unknown task\(s\) bronze \(tasks: .*; groups: gold\)"):
        service.new_repair(runner.run_id, task_keys=["bronze"], executor=executor, clock=executor.clock)


def test_an_outcome_on_a_group_and_an_invalid_group_name(tmp_path: Path) -> None:
    folder = make_job(
        tmp_path,
        a={"group": "g"},
        b={"depends_on": [{"task_key": "g", "outcome": "true"}]},
        c={"group": "bad name!"},
    )
    _, problems = validate_job(folder, check_kernels=False)
    assert sorted(str(p) for p in problems) == [
        "job/b.ipynb: depends_on: 'g' is a task group: only a condition task has an outcome (remove outcome)",
        "job/c.ipynb: group: invalid group name 'bad name!': use letters, digits, '_' and '-' (at most 100)",
    ]
