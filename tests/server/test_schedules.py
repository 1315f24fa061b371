"""Schedules over the API: listed with next fire times, paused/resumed, triggered now; the server's scheduler."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.conftest import write_notebook
from tests.server.conftest import Api


def scheduled_job(root: Path) -> Path:
    job = root / "nightly"
    write_notebook(job / "load.ipynb", "print(mode)", parameters="mode = 'full'", orchestrate={})
    (job / "job.yaml").write_text(
        "schedules:\n"
        "  - name: morning\n    cron: '30 6 * * *'\n    timezone: Europe/Amsterdam\n    parameters: {mode: incremental}\n"
        "  - every: 10 minutes\n    paused: true\n"
    )
    return job


async def test_schedules_are_listed_paused_resumed_and_triggered(
    api: Api, jp_root_dir: Path, orchestrate_app: Any
) -> None:
    scheduled_job(jp_root_dir)
    for _ in range(100):  # the server's scheduler computes the next fire times in the background
        doc = await api.ok("GET", "jobs/nightly")
        if doc["schedules"][0]["next_fire_time"]:
            break
        await asyncio.sleep(0.1)
    morning, second = doc["schedules"]
    assert (morning["name"], morning["cron"], morning["timezone"], morning["paused"]) == (
        "morning",
        "30 6 * * *",
        "Europe/Amsterdam",
        False,
    )
    assert morning["next_fire_time"].endswith(("05:30:00+00:00", "04:30:00+00:00")), (
        morning
    )  # 06:30 Amsterdam in UTC
    assert (second["name"], second["paused"], second["next_fire_time"]) == ("schedule-2", True, None)

    paused = await api.ok("POST", "jobs/nightly/schedules/morning/pause")
    assert paused["schedules"][0]["paused"] is True and paused["schedules"][0]["next_fire_time"] is None
    resumed = await api.ok("POST", "jobs/nightly/schedules/schedule-2/resume")
    assert resumed["schedules"][1]["paused"] is False

    run = await api.ok("POST", "jobs/nightly/schedules/morning/trigger", code=201)
    assert run["trigger"] == "schedule" and "triggered now" in run["trigger_reason"]
    done = await api.wait_run(run["run_id"])
    assert done["status"] == "succeeded"
    assert done["task_runs"][0]["attempts"][0]["parameters"] == {"mode": "incremental"}

    missing = await api.post("jobs/nightly/schedules/nope/trigger")
    assert missing.code == 404 and "no schedule 'nope'" in missing.message
    bad_action = await api.post("jobs/nightly/schedules/morning/explode")
    assert bad_action.code == 404


async def test_invalid_schedule_is_a_validation_problem(api: Api, jp_root_dir: Path) -> None:
    job = scheduled_job(jp_root_dir)
    (job / "job.yaml").write_text(
        "schedules:\n  - cron: '61 * * * *'\n  - cron: '0 * * * *'\n    timezone: Mars/Olympus\n"
    )
    doc = await api.ok("GET", "jobs/nightly")
    assert doc["valid"] is False
    fields = {p["field"] for p in doc["problems"]}
    assert {"schedules.0.cron", "schedules.1.timezone"} <= fields, doc["problems"]
