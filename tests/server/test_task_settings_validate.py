"""``POST jobs/{job}/tasks/{task_key}/validate``: a task settings change checked without writing anything (the
sidebar's Task settings dialog saves through the open notebook's model instead). No kernels."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import write_notebook
from tests.server.conftest import Api


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` and its bytes (a dry run must leave all of them, and add none)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_validate_returns_the_metadata_and_writes_nothing(api: Api, examples: Path) -> None:
    job = examples / "green_energy"
    before = snapshot(job)
    old = await api.ok("GET", "jobs/green_energy")
    old_timeout = next(t for t in old["tasks"] if t["task_key"] == "report")["timeout_seconds"]
    assert old_timeout != 120
    doc = await api.ok(
        "POST",
        "jobs/green_energy/tasks/report/validate",
        {"changes": {"timeout_seconds": 120, "max_retries": 1}},
    )
    assert doc["task_key"] == "report" and doc["notebook"] == "report.ipynb"
    assert doc["metadata"] == {
        "depends_on": ["gold"],
        "task_key": "report",
        "timeout_seconds": 120,
        "max_retries": 1,
    }
    report = next(t for t in doc["job"]["tasks"] if t["task_key"] == "report")
    assert (report["timeout_seconds"], report["max_retries"]) == (120, 1)
    assert snapshot(job) == before, "a dry run writes nothing"
    again = await api.ok("GET", "jobs/green_energy")
    assert next(t for t in again["tasks"] if t["task_key"] == "report")["timeout_seconds"] == old_timeout


async def test_validate_uses_the_editors_metadata(api: Api, examples: Path) -> None:
    """The open notebook's unsaved metadata.orchestrate is what the change applies to, not the file's."""
    before = snapshot(examples / "green_energy")
    doc = await api.ok(
        "POST",
        "jobs/green_energy/tasks/report/validate",
        {"metadata": {"depends_on": ["silver"], "description": "unsaved"}, "changes": {"max_retries": 2}},
    )
    assert doc["metadata"] == {"depends_on": ["silver"], "description": "unsaved", "max_retries": 2}
    edges = {(e["upstream"], e["downstream"]) for e in doc["job"]["edges"]}
    assert ("silver", "report") in edges and ("gold_country_totals", "report") not in edges
    assert snapshot(examples / "green_energy") == before


async def test_validate_a_plain_notebook_without_tagging_it(api: Api, jp_root_dir: Path) -> None:
    """A notebook that is not yet a task, in a folder that is not yet a job: checked as if tagged."""
    folder = jp_root_dir / "scratch"
    write_notebook(folder / "clean.ipynb", "print(1)")
    before = snapshot(folder)
    assert [j["job_id"] for j in (await api.ok("GET", "jobs"))["jobs"]] == []
    doc = await api.ok(
        "POST",
        "jobs/scratch/tasks/clean/validate",
        {"notebook": "clean.ipynb", "metadata": None, "changes": {}},
    )
    assert doc["task_key"] == "clean" and doc["metadata"] == {}
    assert doc["job"]["valid"] is True and [t["task_key"] for t in doc["job"]["tasks"]] == ["clean"]
    changed = await api.ok(
        "POST",
        "jobs/scratch/tasks/clean/validate",
        {"notebook": "clean.ipynb", "metadata": None, "changes": {"timeout_seconds": 30}},
    )
    assert changed["metadata"] == {"timeout_seconds": 30}
    assert snapshot(folder) == before, "the notebook is not tagged behind the user's back"
    assert [j["job_id"] for j in (await api.ok("GET", "jobs"))["jobs"]] == [], "the folder is still no job"


async def test_validate_errors_name_the_field_and_write_nothing(api: Api, examples: Path) -> None:
    job = examples / "green_energy"
    before = snapshot(job)
    url = "jobs/green_energy/tasks/bronze/validate"
    bad_type = await api.post(url, {"changes": {"timeout_seconds": "soon"}})
    assert bad_type.code == 400 and [p["field"] for p in bad_type.json()["problems"]] == ["timeout_seconds"]
    negative = await api.post(url, {"changes": {"max_retries": -1}})
    assert negative.code == 400 and [p["field"] for p in negative.json()["problems"]] == ["max_retries"]
    unknown = await api.post(url, {"changes": {"timeout": 5}})
    assert unknown.code == 400 and "timeout" in [p["field"] for p in unknown.json()["problems"]]
    cycle = await api.post(url, {"changes": {"depends_on": ["report"]}})
    assert cycle.code == 400 and "dependency cycle" in cycle.message
    assert any("depends_on" in p["field"] for p in cycle.json()["problems"]), cycle.json()["problems"]
    ghost = await api.post(url, {"changes": {"depends_on": ["ghost"]}})
    assert ghost.code == 400 and "ghost" in ghost.message
    extra = await api.post(url, {"changes": {}, "dry": True})
    assert extra.code == 400 and "dry" in [p["field"] for p in extra.json()["problems"]]
    missing_task = await api.post("jobs/green_energy/tasks/platinum/validate", {"changes": {}})
    assert missing_task.code == 404 and "platinum" in missing_task.message
    missing_notebook = await api.post(url, {"notebook": "nothing.ipynb", "changes": {}})
    assert missing_notebook.code == 404 and "nothing.ipynb" in missing_notebook.message
    outside = await api.post(url, {"notebook": "../repair_demo/extract.ipynb", "changes": {}})
    assert outside.code == 403, outside.body
    other_key = await api.post(url, {"notebook": "silver.ipynb", "changes": {}})
    assert other_key.code == 400 and [p["field"] for p in other_key.json()["problems"]] == ["notebook"]
    unauthenticated = await api.post(url, {"changes": {}}, auth=False)
    assert unauthenticated.code == 403
    assert snapshot(job) == before


async def test_put_still_writes_after_the_same_check(api: Api, examples: Path) -> None:
    """PUT validates in memory first, then writes: a refused change never touches the file, an accepted one
    writes what validate answered."""
    report = examples / "green_energy" / "report.ipynb"
    before = report.read_bytes()
    assert (await api.put("jobs/green_energy/tasks/report", {"timeout_seconds": -5})).code == 400
    assert report.read_bytes() == before
    checked = await api.ok(
        "POST", "jobs/green_energy/tasks/report/validate", {"changes": {"timeout_seconds": 60}}
    )
    await api.ok("PUT", "jobs/green_energy/tasks/report", {"timeout_seconds": 60})
    import json

    assert json.loads(report.read_text())["metadata"]["orchestrate"] == checked["metadata"]
