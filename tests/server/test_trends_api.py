"""``GET jobs/{job}/trends`` over the REST API: numbers of real runs, the limit bound, errors, authentication."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_notebook
from tests.server.conftest import Api


def make_job(root: Path) -> None:
    """``nested/trendy``: ``work`` sleeps 0.3 s, then ``check`` fails when ``fail`` is true."""
    job = root / "nested" / "trendy"
    write_notebook(job / "work.ipynb", "import time", "time.sleep(0.3)", orchestrate={})
    write_notebook(
        job / "check.ipynb",
        "if fail:\n    raise ValueError('asked to fail')",
        parameters="fail = False",
        orchestrate={"depends_on": ["work"]},
    )
    (job / "job.yaml").write_text("name: trendy\nparameters:\n  fail: false\n", encoding="utf-8")


@pytest.mark.kernel
async def test_trends_of_real_runs(api: Api, jp_root_dir: Path) -> None:
    make_job(jp_root_dir)
    empty = await api.ok("GET", "jobs/nested/trendy/trends")
    assert empty == {"job_id": "nested/trendy", "limit": 50, "runs": [], "tasks": []}

    ids = []
    for fail in (False, True, False):
        run = await api.wait_run(
            (await api.start_run("nested/trendy", {"parameters": {"fail": fail}}))["run_id"]
        )
        ids.append(run["run_id"])
    doc = await api.ok("GET", "jobs/nested/trendy/trends", params="limit=10")
    assert doc["limit"] == 10
    assert [(r["run_id"], r["status"]) for r in doc["runs"]] == [
        (ids[0], "succeeded"),
        (ids[1], "failed"),
        (ids[2], "succeeded"),
    ]
    assert all(r["duration_seconds"] > 0.3 for r in doc["runs"])
    tasks = {t["task_key"]: t for t in doc["tasks"]}
    assert [tasks["check"][k] for k in ("ran", "failed", "succeeded")] == [3, 1, 2]
    assert tasks["check"]["failure_rate"] == pytest.approx(1 / 3)
    assert tasks["work"]["failure_rate"] == 0 and tasks["work"]["p50_duration_seconds"] > 0.3
    assert tasks["work"]["p90_duration_seconds"] >= tasks["work"]["p50_duration_seconds"]
    slowest = tasks["work"]["slowest_cells"][0]
    assert (slowest["cell_index"], slowest["executions"], slowest["source_first_line"]) == (
        1,
        3,
        "time.sleep(0.3)",
    )
    assert slowest["median_duration_seconds"] >= 0.3

    last = await api.ok("GET", "jobs/nested/trendy/trends", params="limit=1")
    assert [r["run_id"] for r in last["runs"]] == [ids[2]]
    assert {t["task_key"]: t["failure_rate"] for t in last["tasks"]} == {"work": 0, "check": 0}


async def test_trends_limit_and_errors(api: Api, jp_root_dir: Path) -> None:
    make_job(jp_root_dir)
    for bad in ("10000", "501", "0", "-3", "abc", "1.5"):
        response = await api.get("jobs/nested/trendy/trends", params=f"limit={bad}")
        assert response.code == 400, (bad, response.body)
    assert "between 1 and 500" in (await api.get("jobs/nested/trendy/trends", params="limit=10000")).message
    assert (await api.ok("GET", "jobs/nested/trendy/trends", params="limit=500"))["limit"] == 500
    assert (await api.get("jobs/nope/trends")).code == 404
    assert (await api.get("jobs/../../etc/trends")).code in (403, 404)
    assert (await api.get("jobs/nested/trendy/trends", auth=False)).code == 403


async def test_a_folder_named_trends_is_a_job_not_the_route(api: Api, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "reports" / "trends" / "t.ipynb", "print(1)", orchestrate={})
    doc = await api.ok("GET", "jobs/reports/trends")
    assert doc["job_id"] == "reports/trends" and doc["valid"] is True, "the folder's job document"
    assert (await api.ok("GET", "jobs/reports/trends/trends"))["job_id"] == "reports/trends"
