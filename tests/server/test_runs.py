"""Runs over the REST API with real kernels: start, poll, list, logs, repair, cancel; request validation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GREEN_ENERGY_TASKS, write_notebook
from tests.server.conftest import Api, task_of

pytestmark = pytest.mark.kernel


async def test_run_green_energy(api: Api, examples: Path, jp_root_dir: Path, jp_fetch: Any) -> None:
    started = await api.start_run("green_energy")
    run_id = started["run_id"]
    assert started["job_id"] == "green_energy" and started["status"] in ("queued", "running")
    assert started["trigger"] == "manual" and started["parameters"]["countries"] == "NL,DE,DK,ES,FR,NO"

    run = await api.wait_run(run_id)
    assert run["status"] == "succeeded", run
    assert {t["task_key"]: t["status"] for t in run["task_runs"]} == dict.fromkeys(
        GREEN_ENERGY_TASKS,
        "succeeded",
    )
    bronze = task_of(run, "bronze")
    assert bronze["attempt_count"] == 0 and [i["map_index"] for i in bronze["iterations"]] == list(range(6))
    # every notebook execution: the notebook tasks, and each iteration of the for-each task bronze
    executed = [t for t in run["task_runs"] if t["notebook"] and not t["iterations"]] + bronze["iterations"]
    for task in executed:
        assert task["attempt_count"] == 1 and len(task["attempts"]) == 1
        attempt = task["attempts"][0]
        relative = attempt["executed_notebook_path"]
        folder = f"bronze/{task['map_index']}" if task["map_index"] is not None else task["task_key"]
        assert relative == f"orchestrate_runs/runs/{run_id}/{folder}/attempt-1.ipynb"
        assert (jp_root_dir / relative).is_file()
        opened = json.loads((await jp_fetch("api", "contents", relative)).body)
        assert opened["type"] == "notebook" and opened["content"]["metadata"]["papermill"], (
            "JupyterLab can open it"
        )
        assert attempt["status"] == "succeeded" and attempt["error"] is None
        assert attempt["cells_total"] and attempt["cells_completed"] == attempt["cells_total"]
    bronze_rows = task_of(run, "bronze")["task_values"]["rows"]  # one count per file, in map_index order
    assert len(bronze_rows) == 6 and 0 < task_of(run, "silver")["task_values"]["rows"] < sum(bronze_rows)
    assert task_of(run, "check_silver")["task_values"] == {"outcome": True}
    assert task_of(run, "silver")["attempts"][0]["parameters"]["bronze_rows"] == bronze_rows
    assert (jp_root_dir / "green_energy" / "output" / f"run-{run_id}" / "report.png").is_file()

    job = await api.ok("GET", "jobs/green_energy")
    assert [(r["run_id"], r["status"]) for r in job["recent_runs"]] == [(run_id, "succeeded")]
    listed = {j["job_id"]: j for j in (await api.ok("GET", "jobs"))["jobs"]}
    assert set(listed) == {"green_energy", "repair_demo"}, "executed notebooks in the state home are not jobs"
    assert [r["run_id"] for r in listed["green_energy"]["recent_runs"]] == [run_id]
    assert listed["repair_demo"]["recent_runs"] == []

    # Logs: the attempt's captured output as text; a missing attempt or task is 404.
    log = await api.get(f"runs/{run_id}/tasks/bronze%5B0%5D/attempts/1/log")  # iteration bronze[0]
    # what bronze prints is in its executed notebook only; the log holds the kernel process's own output
    assert log.code == 200 and "countries NL, DE, DK, ES, FR, NO" not in log.text, log.body
    for missing in (
        f"runs/{run_id}/tasks/bronze/attempts/1/log",  # a for-each task has no attempt of its own
        f"runs/{run_id}/tasks/bronze%5B0%5D/attempts/2/log",
        f"runs/{run_id}/tasks/platinum/attempts/1/log",
        "runs/999/tasks/bronze/attempts/1/log",
    ):
        response = await api.get(missing)
        assert response.code == 404 and response.message, missing


async def test_list_runs_filters_and_pages(api: Api, examples: Path, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "quick" / "hello.ipynb", "print('hello')", orchestrate={})
    write_notebook(jp_root_dir / "oops" / "boom.ipynb", "raise RuntimeError('boom')", orchestrate={})
    ids = []
    for job in ("quick", "oops", "quick"):
        run_id = (await api.start_run(job))["run_id"]
        await api.wait_run(run_id)
        ids.append(run_id)
    first, failed, last = ids

    page = await api.ok("GET", "runs", params="limit=1")
    assert [r["run_id"] for r in page["runs"]] == [last] and page["next_before"] == last
    assert page["runs"][0]["task_statuses"] == {"hello": "succeeded"} and "task_runs" not in page["runs"][0]
    seen, before = [], None
    while True:
        page = await api.ok("GET", "runs", params=f"limit=1&before={before}" if before else "limit=1")
        seen += [r["run_id"] for r in page["runs"]]
        before = page["next_before"]
        if before is None:
            break
        assert len(seen) <= 3
    assert seen == [last, failed, first], "pages walk every run once, newest first"

    by_job = await api.ok("GET", "runs", params="job=quick&limit=1")
    assert [r["run_id"] for r in by_job["runs"]] == [last] and by_job["next_before"] == last
    rest = await api.ok("GET", "runs", params=f"job=quick&limit=1&before={last}")
    assert [r["run_id"] for r in rest["runs"]] == [first]
    all_quick = await api.ok("GET", "runs", params="job=quick")
    assert [r["run_id"] for r in all_quick["runs"]] == [last, first] and all_quick["next_before"] is None
    assert [r["run_id"] for r in (await api.ok("GET", "runs", params="status=failed"))["runs"]] == [failed]
    assert [r["run_id"] for r in (await api.ok("GET", "runs", params="status=succeeded"))["runs"]] == [
        last,
        first,
    ]
    assert (await api.ok("GET", "runs", params="job=green_energy"))["runs"] == []

    for query in ("status=exploded", "limit=0", "limit=501", "limit=ten", "before=yesterday"):
        response = await api.get("runs", params=query)
        assert response.code == 400 and response.message, query
    assert (await api.get("runs", params="job=nowhere")).code == 404


async def test_failed_run_repaired_through_the_api(api: Api, examples: Path) -> None:
    run_id = (await api.start_run("repair_demo"))["run_id"]
    run = await api.wait_run(run_id)
    # the headline names the task that failed, its cell and error, not the leaf that could not run
    assert run["status"] == "failed"
    assert run["status_reason"].startswith("validate failed in cell 4: ValueError: threshold is not set")
    assert run["status_reason"].endswith("; not run: publish")
    assert {t["task_key"]: t["status"] for t in run["task_runs"]} == {
        "extract": "succeeded",
        "validate": "failed",
        "publish": "upstream_failed",
    }
    error = task_of(run, "validate")["error"]
    assert error["ename"] == "ValueError" and error["evalue"].startswith("threshold is not set")
    assert (
        isinstance(error["traceback"], list)
        and error["traceback"]
        and all(isinstance(line, str) for line in error["traceback"])
    )
    assert any("ValueError" in line for line in error["traceback"])
    assert error["cell_index"] == 3, "markdown, parameters, imports, then the failing cell"
    assert error["cell_source"].startswith("if threshold is None:")
    assert task_of(run, "validate")["attempts"][0]["error"] == error

    plan = await api.ok("POST", f"runs/{run_id}/repair", {"dry_run": True, "parameters": {"threshold": 0.5}})
    assert plan == {
        "run_id": run_id,
        "task_keys": ["validate", "publish"],
        "reused_task_keys": ["extract"],
        "parameters": {"threshold": 0.5},
    }
    after_dry_run = await api.ok("GET", f"runs/{run_id}")
    assert (
        after_dry_run["repair_count"] == 0
        and after_dry_run["repairs"] == []
        and after_dry_run["status"] == "failed"
    )

    accepted = await api.ok("POST", f"runs/{run_id}/repair", {"parameters": {"threshold": 0.5}}, code=202)
    assert accepted["run_id"] == run_id and accepted["status"] not in ("failed", "succeeded")
    repaired = await api.wait_run(run_id)
    assert repaired["status"] == "succeeded", repaired
    assert {t["task_key"]: t["attempt_count"] for t in repaired["task_runs"]} == {
        "extract": 1,
        "validate": 2,
        "publish": 1,
    }
    assert task_of(repaired, "validate")["attempts"][1]["repair_number"] == 1
    assert task_of(repaired, "validate")["attempts"][1]["parameters"]["threshold"] == 0.5
    assert len(repaired["repairs"]) == 1 and repaired["repair_count"] == 1
    assert repaired["repairs"][0]["task_keys"] == ["validate", "publish"]
    assert repaired["repairs"][0]["parameters"] == {"threshold": 0.5}

    nothing = await api.post(f"runs/{run_id}/repair", {})
    assert nothing.code == 409 and "nothing to repair" in nothing.message
    unknown_task = await api.post(f"runs/{run_id}/repair", {"task_keys": ["ghost"]})
    assert unknown_task.code == 400 and "ghost" in unknown_task.message
    unknown_param = await api.post(
        f"runs/{run_id}/repair", {"task_keys": ["publish"], "parameters": {"treshold": 1}}
    )
    assert unknown_param.code == 400 and "treshold" in unknown_param.message
    assert (await api.ok("GET", f"runs/{run_id}"))["repair_count"] == 1


async def test_repair_while_running_conflicts_and_cancel(api: Api, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "sleepy" / "nap.ipynb", "import time\ntime.sleep(30)", orchestrate={})
    write_notebook(
        jp_root_dir / "sleepy" / "after.ipynb", "print('after')", orchestrate={"depends_on": ["nap"]}
    )
    run_id = (await api.start_run("sleepy"))["run_id"]
    await api.wait_task(run_id, "nap", "running")

    conflict = await api.post(f"runs/{run_id}/repair", {})
    assert conflict.code == 409 and "running" in conflict.message
    dry = await api.post(f"runs/{run_id}/repair", {"dry_run": True})
    assert dry.code == 409
    assert (await api.ok("GET", f"runs/{run_id}"))["repair_count"] == 0

    started = asyncio.get_running_loop().time()
    canceling = await api.ok("POST", f"runs/{run_id}/cancel", code=202)
    assert canceling["status"] in ("canceling", "canceled")
    run = await api.wait_run(run_id, timeout=30)
    assert asyncio.get_running_loop().time() - started < 15, "cancel stops a sleeping kernel promptly"
    assert run["status"] == "canceled"
    assert {t["task_key"]: t["status"] for t in run["task_runs"]} == {"nap": "canceled", "after": "canceled"}
    assert task_of(run, "nap")["attempts"][0]["error"]["kind"] == "canceled"
    again = await api.post(f"runs/{run_id}/cancel")
    assert again.code == 409 and "already finished" in again.message
    assert (await api.post("runs/999/cancel")).code == 404


async def test_request_validation(api: Api, examples: Path) -> None:
    cases = [
        ("jobs/green_energy/runs", "{not json", "not valid JSON"),
        ("jobs/green_energy/runs", "[1]", "JSON object"),
        ("jobs/green_energy/runs", {"paramters": {}}, "paramters"),
        ("jobs/green_energy/runs", {"max_parallel": 0}, "max_parallel"),
        ("jobs/green_energy/runs", {"max_parallel": "two"}, "max_parallel"),
        ("jobs/green_energy/runs", {"parameters": ["countries=NL"]}, "parameters"),
        ("jobs/green_energy/runs", {"parameters": {"contries": "NL"}}, "contries"),
        ("jobs/repair_demo/runs", {"parameters": {"n_readings": "many"}}, "n_readings"),
        ("runs/1/repair", {"dry_run": "perhaps"}, "dry_run"),
        ("runs/1/repair", {"task_keys": "validate"}, "task_keys"),
        ("runs/1/repair", {"rerun": True}, "rerun"),
        ("runs/1/repair", "{", "not valid JSON"),
    ]
    for path, body, named in cases:
        response = await api.post(path, body)
        assert response.code == 400, (path, body, response.code, response.body)
        assert named in response.message, (path, body, response.message)
        if isinstance(body, dict):
            assert named in [p["field"] for p in response.json()["problems"]] or named in str(
                response.json()["problems"]
            )
    unknown_field = await api.post("jobs/green_energy/runs", {"paramters": {}})
    assert unknown_field.json()["problems"] == [
        {"path": "request body", "field": "paramters", "message": "unknown field"}
    ]

    for method, path in [
        ("POST", "jobs/nowhere/runs"),
        ("GET", "jobs/nowhere"),
        ("GET", "runs/999"),
        ("POST", "runs/999/repair"),
        ("POST", "runs/999/cancel"),
    ]:
        response = await api.request(method, path, {} if method == "POST" else None)
        assert response.code == 404 and response.message, (method, path, response.body)
    assert await api.run_count() == 0, "no invalid request recorded a run"


async def test_concurrent_repairs_of_one_run_are_serialised(api: Api, jp_root_dir: Path) -> None:
    job = jp_root_dir / "flaky"
    write_notebook(
        job / "a.ipynb",
        # the repair lasts 3 s, so all four requests arrive while it is active (with warm kernels a repair of
        # a trivial notebook ends before the last request is read)
        "import os, time\nif not os.path.exists('fixed'):\n    raise ValueError('not fixed')\ntime.sleep(3)",
        orchestrate={},
    )
    for i in range(
        100
    ):  # notebooks that are not tasks: reading them widens the window between check and record
        write_notebook(job / f"notes-{i}.ipynb", *[f"x = {j}" for j in range(50)])
    run_id = (await api.start_run("flaky"))["run_id"]
    assert (await api.wait_run(run_id))["status"] == "failed"
    (job / "fixed").touch()
    responses = await asyncio.gather(*[api.post(f"runs/{run_id}/repair", {}) for _ in range(4)])
    run = await api.wait_run(run_id)
    await asyncio.sleep(1.0)  # let any extra runner finish before asserting (and before the server stops)
    run = await api.wait_run(run_id)
    assert sorted(r.code for r in responses) == [202, 409, 409, 409], [
        (r.code, r.body[:120]) for r in responses
    ]
    assert run["status"] == "succeeded" and run["repair_count"] == 1 and len(run["repairs"]) == 1, (
        run["status_reason"],
        task_of(run, "a")["attempts"][-1]["error"],
    )
    assert task_of(run, "a")["attempt_count"] == 2
    # a refused request must not touch the repair that won: once its plan saw the finished run, a second request
    # used to end the winner's running attempt as "RunnerStopped" (compare-and-set against the re-read run)
    assert task_of(run, "a")["attempts"][-1]["error"] is None, task_of(run, "a")["attempts"][-1]


async def test_log_is_served_as_text(api: Api, jp_root_dir: Path) -> None:
    # the log holds the kernel process's own stdout (here written to its file descriptor), not cell output
    write_notebook(
        jp_root_dir / "chatty" / "talk.ipynb",
        "import os\nos.write(1, b'hello from the kernel\\n')",
        orchestrate={},
    )
    run_id = (await api.start_run("chatty"))["run_id"]
    assert (await api.wait_run(run_id))["status"] == "succeeded"
    log = await api.get(f"runs/{run_id}/tasks/talk/attempts/1/log")
    assert log.code == 200 and "hello from the kernel" in log.text
    assert log.headers["Content-Type"].startswith("text/plain"), log.headers["Content-Type"]


async def test_huge_run_id_is_not_found(api: Api) -> None:
    response = await api.get("runs/99999999999999999999")
    assert response.code == 404
