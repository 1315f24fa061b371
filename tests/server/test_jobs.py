"""Jobs over the REST API: discovery, job documents, validation problems, task settings edits. No kernels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import GREEN_ENERGY_TASKS, write_notebook
from tests.server.conftest import Api


def make_cycle(root: Path) -> Path:
    write_notebook(root / "cyclic" / "a.ipynb", "print('a')", orchestrate={"depends_on": ["b"]})
    write_notebook(root / "cyclic" / "b.ipynb", "print('b')", orchestrate={"depends_on": ["a"]})
    return root / "cyclic"


async def test_list_jobs(api: Api, examples: Path) -> None:
    root = examples
    write_notebook(
        root / "teams" / "ops" / "nightly" / "load.ipynb", "print(1)", parameters="day = 1", orchestrate={}
    )
    write_notebook(root / "scratch" / "plain.ipynb", "print('not a task')")  # no metadata.orchestrate
    make_cycle(root)

    jobs = {j["job_id"]: j for j in (await api.ok("GET", "jobs"))["jobs"]}
    assert set(jobs) == {"green_energy", "repair_demo", "teams/ops/nightly", "cyclic"}, (
        "job ids are paths relative to the root"
    )
    green = jobs["green_energy"]
    assert green["valid"] is True and green["problems"] == []
    assert [t["task_key"] for t in green["tasks"]] == GREEN_ENERGY_TASKS
    assert {(e["upstream"], e["downstream"]) for e in green["edges"]} == {
        ("list_files", "bronze"),
        ("bronze", "silver"),
        ("silver", "check_silver"),
        ("check_silver", "gold_country_totals"),
        ("check_silver", "gold_source_shares"),
        ("gold_country_totals", "report"),
        ("gold_source_shares", "report"),
    }
    by_key = {t["task_key"]: t for t in green["tasks"]}
    assert by_key["bronze"]["for_each"]["inputs"] == "{{tasks.list_files.values.files}}"
    assert by_key["check_silver"]["notebook"] is None and by_key["check_silver"]["condition"]["op"] == ">"
    assert by_key["gold_country_totals"]["depends_on_outcomes"] == {"check_silver": "true"}
    assert {t["task_key"] for t in green["tasks"] if t["group"] == "gold"} == {
        "gold_country_totals",
        "gold_source_shares",
    }
    assert green["recent_runs"] == [] and green["schedules"] == []
    assert jobs["teams/ops/nightly"]["tasks"][0]["notebook_path"] == "teams/ops/nightly/load.ipynb"
    assert jobs["cyclic"]["valid"] is False and "dependency cycle" in jobs["cyclic"]["problems"][0]["message"]


async def test_job_document(api: Api, examples: Path) -> None:
    doc = await api.ok("GET", "jobs/repair_demo")
    assert (doc["job_id"], doc["name"], doc["valid"], doc["problems"], doc["schedules"]) == (
        "repair_demo",
        "repair_demo",
        True,
        [],
        [],
    )
    assert doc["parameters"] == {"threshold": None, "output_dir": "output/run-{{job.run_id}}"}
    assert doc["max_parallel_tasks"] == 2
    assert [(e["upstream"], e["downstream"]) for e in doc["edges"]] == [
        ("extract", "validate"),
        ("validate", "publish"),
    ]
    tasks = {t["task_key"]: t for t in doc["tasks"]}
    assert list(tasks) == ["extract", "validate", "publish"]
    extract = tasks["extract"]
    assert [(p["name"], p["default"], p["inferred_type"]) for p in extract["notebook_parameters"]] == [
        ("output_dir", '"output"', "str"),
        ("n_readings", "20", "int"),
        ("seed", "42", "int"),
    ]
    assert [(p["name"], p["inferred_type"]) for p in tasks["validate"]["notebook_parameters"]] == [
        ("output_dir", "str"),
        ("threshold", None),
    ]
    assert tasks["validate"]["depends_on"] == ["extract"]
    assert extract["notebook"] == "extract.ipynb" and extract["notebook_path"] == "repair_demo/extract.ipynb"
    assert extract["kernel_name"] == "python3"
    assert isinstance(extract["environment"], dict) and "env" in extract["environment"]
    assert doc["recent_runs"] == []

    green = await api.ok("GET", "jobs/green_energy")
    silver = next(t for t in green["tasks"] if t["task_key"] == "silver")
    assert silver["parameters"] == {"bronze_rows": "{{tasks.bronze.values.rows}}"}
    assert silver["timeout_seconds"] == 300, "task_defaults of job.yaml apply"


async def test_invalid_job_reports_problems(api: Api, jp_root_dir: Path) -> None:
    make_cycle(jp_root_dir)
    doc = await api.ok("GET", "jobs/cyclic")
    assert doc["valid"] is False and "tasks" not in doc
    messages = [p["message"] for p in doc["problems"]]
    assert any(m in ("dependency cycle: a -> b -> a", "dependency cycle: b -> a -> b") for m in messages), (
        messages
    )
    # Starting it is refused with the same problem, and nothing is recorded.
    refused = await api.post("jobs/cyclic/runs", {})
    assert refused.code == 400 and "dependency cycle" in refused.message
    assert any("dependency cycle" in p["message"] for p in refused.json()["problems"])
    assert await api.run_count() == 0

    write_notebook(
        jp_root_dir / "broken" / "x.ipynb",
        "print(1)",
        orchestrate={"depends_on": ["ghost"], "timeout_seconds": -1},
    )
    doc = await api.ok("GET", "jobs/broken")
    assert doc["valid"] is False
    assert any(p["field"] == "metadata.orchestrate.timeout_seconds" for p in doc["problems"]), doc["problems"]


def orchestrate_metadata(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["metadata"]["orchestrate"]


async def test_change_task_settings(api: Api, examples: Path) -> None:
    report = examples / "green_energy" / "report.ipynb"
    doc = await api.ok("PUT", "jobs/green_energy/tasks/report", {"timeout_seconds": 120, "max_retries": 1})
    task = next(t for t in doc["tasks"] if t["task_key"] == "report")
    assert (task["timeout_seconds"], task["max_retries"]) == (120, 1)
    assert orchestrate_metadata(report) == {
        "depends_on": ["gold"],
        "task_key": "report",
        "timeout_seconds": 120,
        "max_retries": 1,
    }
    again = await api.ok("GET", "jobs/green_energy")
    assert next(t for t in again["tasks"] if t["task_key"] == "report")["timeout_seconds"] == 120
    # None removes a field
    await api.ok("PUT", "jobs/green_energy/tasks/report", {"max_retries": None})
    assert "max_retries" not in orchestrate_metadata(report)


async def test_task_settings_that_create_a_cycle_are_refused(api: Api, examples: Path) -> None:
    bronze = examples / "green_energy" / "bronze.ipynb"
    before = bronze.read_bytes()
    refused = await api.put("jobs/green_energy/tasks/bronze", {"depends_on": ["report"]})
    assert refused.code == 400, refused.body
    assert (
        "dependency cycle" in refused.message and "bronze" in refused.message and "report" in refused.message
    )
    assert bronze.read_bytes() == before, "a refused change leaves the notebook byte-identical"
    assert not list((examples / "green_energy").glob(".*orchestrate-tmp"))
    assert (await api.ok("GET", "jobs/green_energy"))["valid"] is True


async def test_task_settings_errors(api: Api, examples: Path) -> None:
    bronze = examples / "green_energy" / "bronze.ipynb"
    before = bronze.read_bytes()
    unknown = await api.put("jobs/green_energy/tasks/bronze", {"timeout": 5})
    assert unknown.code == 400 and "timeout" in [p["field"] for p in unknown.json()["problems"]], unknown.body
    read_only = await api.put("jobs/green_energy/tasks/bronze", {"task_key": "renamed"})
    assert read_only.code == 400 and "task_key" in read_only.message
    bad_type = await api.put("jobs/green_energy/tasks/bronze", {"timeout_seconds": "soon"})
    assert bad_type.code == 400 and "timeout_seconds" in bad_type.message
    negative = await api.put("jobs/green_energy/tasks/bronze", {"timeout_seconds": 0})
    assert negative.code == 400 and "timeout_seconds" in negative.message
    unknown_dep = await api.put("jobs/green_energy/tasks/bronze", {"depends_on": ["ghost"]})
    assert unknown_dep.code == 400 and "ghost" in unknown_dep.message
    malformed = await api.put("jobs/green_energy/tasks/bronze", "{timeout_seconds: 5")
    assert malformed.code == 400 and "not valid JSON" in malformed.message
    not_object = await api.put("jobs/green_energy/tasks/bronze", "[1, 2]")
    assert not_object.code == 400 and "JSON object" in not_object.message
    assert bronze.read_bytes() == before
    missing_task = await api.put("jobs/green_energy/tasks/platinum", {"timeout_seconds": 5})
    assert missing_task.code == 404 and "platinum" in missing_task.message
    missing_job = await api.put("jobs/nowhere/tasks/bronze", {"timeout_seconds": 5})
    assert missing_job.code == 404 and "nowhere" in missing_job.message


async def test_task_settings_set_by_job_yaml_conflict(api: Api, jp_root_dir: Path) -> None:
    job = jp_root_dir / "pinned"
    write_notebook(job / "a.ipynb", "print(1)", orchestrate={})
    (job / "job.yaml").write_text("tasks:\n  a:\n    timeout_seconds: 10\n")
    before = (job / "a.ipynb").read_bytes()
    conflict = await api.put("jobs/pinned/tasks/a", {"timeout_seconds": 20})
    assert conflict.code == 409 and "job.yaml" in conflict.message
    assert (job / "a.ipynb").read_bytes() == before


async def test_every_listed_job_id_can_be_fetched(api: Api, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "experiments" / "runs" / "a.ipynb", "print(1)", orchestrate={})
    write_notebook(jp_root_dir / "team" / "tasks" / "nightly" / "b.ipynb", "print(1)", orchestrate={})
    listed = sorted(j["job_id"] for j in (await api.ok("GET", "jobs"))["jobs"])
    assert listed == ["experiments/runs", "team/tasks/nightly"]
    for job_id in listed:
        response = await api.get(f"jobs/{job_id}")
        assert response.code == 200, (job_id, response.code)
        assert response.json()["job_id"] == job_id
