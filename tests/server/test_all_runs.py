"""The all-runs listing (``GET runs`` with filters and keyset paging), the jobs list's cached discovery and
recent runs, and the attempt phases a real run records (queued, kernel ready, execution)."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_notebook
from tests.server.conftest import Api

REPO = Path(__file__).resolve().parents[2]


def _sidebar_load() -> Any:
    spec = importlib.util.spec_from_file_location("sidebar_load", REPO / "benchmarks" / "sidebar_load.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def runs250(jp_root_dir: Path, state_home: Path) -> Path:
    """5 jobs (job_000..job_004) and 250 finished runs (every 10th failed, every 3rd by a schedule)."""
    _sidebar_load().build_fixture(jp_root_dir, jobs=5, runs=250, home=state_home)
    return jp_root_dir


async def all_pages(api: Api, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every run of the listing ``query``, page after page by ``next_before``; and how many pages."""
    runs: list[dict[str, Any]] = []
    before: int | None = None
    pages = 0
    while True:
        params = f"{query}&limit={limit}" + (f"&before={before}" if before else "")
        page = await api.ok("GET", "runs", params=params.lstrip("&"))
        pages += 1
        runs += page["runs"]
        assert len(page["runs"]) <= limit
        before = page["next_before"]
        if before is None:
            return runs, pages
        assert before == page["runs"][-1]["run_id"]
        assert pages < 100, "paging does not end"


async def test_paging_has_no_duplicates_and_no_gaps(api: Api, runs250: Path) -> None:
    runs, pages = await all_pages(api, "", 40)
    ids = [r["run_id"] for r in runs]
    assert ids == list(range(250, 0, -1)), "every run once, newest first"
    assert pages == 7  # 6 full pages and 10 on the last
    # a page size that divides the total: the last full page still says there may be more, the next is empty
    runs, pages = await all_pages(api, "", 50)
    assert [r["run_id"] for r in runs] == list(range(250, 0, -1)) and pages == 6
    # runs added between two pages do not shift the pages (keyset, not offset)
    first = await api.ok("GET", "runs", params="limit=100")
    await api.start_run("job_000")  # a new run, newest: never on a later page
    second = await api.ok("GET", "runs", params=f"limit=100&before={first['next_before']}")
    assert [r["run_id"] for r in second["runs"]] == list(range(150, 50, -1))


async def test_filters(api: Api, runs250: Path) -> None:
    failed, _ = await all_pages(api, "status=failed", 7)
    assert len(failed) == 25 and {r["status"] for r in failed} == {"failed"}
    assert [r["run_id"] for r in failed] == sorted((r["run_id"] for r in failed), reverse=True)

    scheduled, _ = await all_pages(api, "trigger=schedule", 30)
    assert len(scheduled) == 84 and {r["trigger"] for r in scheduled} == {"schedule"}

    one_job, _ = await all_pages(api, "job=job_003", 20)
    assert len(one_job) == 50 and {r["job_id"] for r in one_job} == {"job_003"}

    both, _ = await all_pages(api, "job=job_004&status=failed&trigger=manual", 5)
    everything, _ = await all_pages(api, "", 500)
    expected = [
        r["run_id"]
        for r in everything
        if r["job_id"] == "job_004" and r["status"] == "failed" and r["trigger"] == "manual"
    ]
    assert [r["run_id"] for r in both] == expected and expected

    # a time window: start times at or after since, before until (ISO with Z, with an offset, or naive UTC)
    starts = sorted(datetime.fromisoformat(r["start_time"]) for r in everything)
    since, until = starts[100], starts[160]
    for since_text, until_text in (
        (since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), until.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        (
            since.astimezone(timezone(timedelta(hours=2))).isoformat(),
            until.astimezone(timezone(timedelta(hours=-5))).isoformat(),
        ),
        (since.replace(tzinfo=None).isoformat(), until.replace(tzinfo=None).isoformat()),
    ):
        query = f"since={since_text}&until={until_text}".replace("+", "%2B")
        window, _ = await all_pages(api, query, 25)
        assert len(window) == 60, (since_text, until_text)
        assert all(since <= datetime.fromisoformat(r["start_time"]) < until for r in window)


async def test_listing_has_task_statuses_and_durations(api: Api, runs250: Path) -> None:
    page = await api.ok("GET", "runs", params="job=job_002&limit=3")
    for run in page["runs"]:
        assert list(run["task_statuses"]) == ["extract", "transform", "load"], "the job's task order"
        assert set(run["task_duration_seconds"]) == {"extract", "transform", "load"}
        assert all(1 <= d <= 6 for d in run["task_duration_seconds"].values())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("status=bogus", "status"),
        ("status=SUCCEEDED", "status"),
        ("trigger=cron", "trigger"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=-5", "limit"),
        ("before=0", "before"),
        ("before=x", "before"),
    ],
)
async def test_bad_filter_values_are_400_naming_the_field(api: Api, params: str, field: str) -> None:
    response = await api.get("runs", params=params)
    assert response.code == 400, (params, response.code, response.body[:300])
    body = response.json()
    assert [p["field"] for p in body["problems"]] == [field], body
    assert body["message"].startswith(f"query: {field}:"), body


async def test_job_filter_is_confined_and_must_exist(api: Api, runs250: Path) -> None:
    assert (await api.get("runs", params="job=../etc")).code == 403
    assert (await api.get("runs", params="job=no_such_job")).code == 404
    assert (await api.get("runs", params="job=/etc")).code == 400


async def test_jobs_list_recent_runs_and_cached_discovery(
    api: Api, runs250: Path, orchestrate_app: Any
) -> None:
    jobs = {j["job_id"]: j for j in (await api.ok("GET", "jobs"))["jobs"]}
    assert set(jobs) == {f"job_{i:03d}" for i in range(5)}
    for job_id, job in jobs.items():
        listed = await api.ok("GET", "runs", params=f"job={job_id}&limit=10")
        assert [(r["run_id"], r["status"], r["start_time"]) for r in job["recent_runs"]] == [
            (r["run_id"], r["status"], r["start_time"]) for r in listed["runs"]
        ], "the job's 10 newest runs, newest first"
    cache = orchestrate_app.service.discovery
    hits = cache.hits
    await api.ok("GET", "jobs")
    assert cache.hits >= hits + 5, "unchanged folders are not validated again"

    # a changed notebook is seen at once: a dependency on an unknown task refuses the job
    notebook = runs250 / "job_001" / "load.ipynb"
    nb = json.loads(notebook.read_text())
    nb["metadata"]["orchestrate"] = {"depends_on": ["nowhere"]}
    notebook.write_text(json.dumps(nb))
    jobs = {j["job_id"]: j for j in (await api.ok("GET", "jobs"))["jobs"]}
    assert not jobs["job_001"]["valid"] and "nowhere" in jobs["job_001"]["problems"][0]["text"]
    # a new notebook in a job folder is a new task
    write_notebook(runs250 / "job_002" / "publish.ipynb", "print(1)", orchestrate={"depends_on": ["load"]})
    jobs = {j["job_id"]: j for j in (await api.ok("GET", "jobs"))["jobs"]}
    assert "publish" in [t["task_key"] for t in jobs["job_002"]["tasks"]]
    assert jobs["job_000"]["valid"] and len(jobs["job_000"]["tasks"]) == 3


@pytest.mark.kernel
async def test_a_run_records_its_attempt_phases(api: Api, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "phases" / "a.ipynb", "x = 1", orchestrate={})
    write_notebook(jp_root_dir / "phases" / "b.ipynb", "y = 2", orchestrate={"depends_on": ["a"]})
    run = await api.wait_run((await api.start_run("phases"))["run_id"])
    assert run["status"] == "succeeded", run
    for task in run["task_runs"]:
        attempt = task["attempts"][0]
        queued, start, ready, end = (
            datetime.fromisoformat(attempt[f])
            for f in ("queued_time", "start_time", "kernel_ready_time", "end_time")
        )
        assert queued <= start <= end, attempt
        # a kernel started ahead of need is ready before the attempt starts; it is never ready after it ended
        assert ready <= end, attempt
