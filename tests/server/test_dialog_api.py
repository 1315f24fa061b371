"""What the sidebar's run and repair dialogs rely on, over the REST API with real kernels: parameter problems
name the parameter's field (``parameters.<name>``, not the CLI's ``-p`` syntax) and start nothing, fields fed
by an upstream task value name that task (``source_task``), and a repair plan follows the chosen tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.conftest import Api

pytestmark = pytest.mark.kernel


async def test_bad_run_parameters_name_their_field_and_start_nothing(api: Api, examples: Path) -> None:
    before = await api.run_count()
    response = await api.post(
        "jobs/repair_demo/runs", {"parameters": {"n_readings": "abc", "seed": "7", "zzz": "1"}}
    )
    assert response.code == 400, response.body
    problems = {p["field"]: p["message"] for p in response.json()["problems"]}
    assert set(problems) == {"parameters.n_readings", "parameters.zzz"}, problems
    assert problems["parameters.n_readings"] == "parameter 'n_readings' is int; 'abc' is not a valid int"
    assert problems["parameters.zzz"].startswith("no job parameter or notebook parameter is named 'zzz'")
    assert "-p" not in response.message
    assert await api.run_count() == before, "a refused run is not recorded"


async def test_parameter_fed_by_an_upstream_task_value_names_its_task(api: Api, examples: Path) -> None:
    job = await api.ok("GET", "jobs/green_energy")
    fields = {f["name"]: f for f in job["parameter_fields"]}
    # silver's metadata passes bronze_rows as {{tasks.bronze.values.rows}}
    assert fields["bronze_rows"]["source_task"] == "bronze"
    assert fields["bronze_rows"]["tasks"] == ["silver"]
    assert {name for name, f in fields.items() if f["source_task"] is not None} == {"bronze_rows"}
    listed = next(j for j in (await api.ok("GET", "jobs"))["jobs"] if j["job_id"] == "green_energy")
    assert "parameter_fields" not in listed or listed["parameter_fields"] == job["parameter_fields"]


async def test_repair_plan_follows_the_chosen_tasks(api: Api, examples: Path) -> None:
    run_id = (await api.start_run("repair_demo"))["run_id"]
    run = await api.wait_run(run_id)
    assert {t["task_key"]: t["status"] for t in run["task_runs"]} == {
        "extract": "succeeded",
        "validate": "failed",
        "publish": "upstream_failed",
    }
    plan = await api.ok("POST", f"runs/{run_id}/repair", {"dry_run": True})
    assert (plan["task_keys"], plan["reused_task_keys"]) == (["validate", "publish"], ["extract"])
    # choosing a succeeded upstream task re-executes it and its unsuccessful downstream
    chosen = await api.ok("POST", f"runs/{run_id}/repair", {"dry_run": True, "task_keys": ["extract"]})
    assert (chosen["task_keys"], chosen["reused_task_keys"]) == (["extract", "validate", "publish"], [])
    only_leaf = await api.ok("POST", f"runs/{run_id}/repair", {"dry_run": True, "task_keys": ["publish"]})
    assert (only_leaf["task_keys"], only_leaf["reused_task_keys"]) == (["publish"], ["extract", "validate"])
    bad = await api.post(
        f"runs/{run_id}/repair", {"dry_run": True, "task_keys": ["extract"], "parameters": {"seed": "x"}}
    )
    assert bad.code == 400
    assert [p["field"] for p in bad.json()["problems"]] == ["parameters.seed"]
    assert (await api.ok("GET", f"runs/{run_id}"))["repair_count"] == 0, "dry runs change nothing"
