"""Unit tests of the SQLite state store (no kernels): runs, task runs, attempts, task values, repairs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jupyter_orchestrate.errors import NotFoundError, StoreError
from jupyter_orchestrate.models import (
    Attempt,
    AttemptError,
    Job,
    Repair,
    RunStatus,
    Task,
    TaskRunStatus,
    Trigger,
    utc_now,
)
from jupyter_orchestrate.store import DB_NAME, Store

S = TaskRunStatus


def make_job(tmp_path: Path, name: str = "demo") -> Job:
    return Job(
        name=name,
        path=str(tmp_path / name),
        parameters={"year": 2024},
        tasks=[
            Task(task_key="load", notebook="load.ipynb"),
            Task(task_key="clean", notebook="clean.ipynb", depends_on=["load"], max_retries=2),
            Task(task_key="report", notebook="sub/report.ipynb", depends_on=["clean", "load"]),
        ],
    )


@pytest.fixture
def store(home: Path):
    s = Store(home)
    yield s
    s.close()


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return make_job(tmp_path)


def new_run(store: Store, job: Job, **kwargs: object) -> int:
    args: dict[str, object] = {"parameters": {"year": 2024}, "overrides": {}, "max_parallel_tasks": 2}
    args.update(kwargs)
    return store.create_run(job, **args)  # type: ignore[arg-type]


def start_attempt(store: Store, run_id: int, key: str, number: int, repair_number: int = 0) -> None:
    store.create_attempt(
        Attempt(
            run_id=run_id,
            task_key=key,
            attempt_number=number,
            repair_number=repair_number,
            status=S.running,
            start_time=utc_now(),
        ),
        worker_pid=None,
        kernel_pid=None,
        kernel_create_time=None,
    )


# ---------------------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------------------


def test_create_run_records_a_queued_run_with_pending_task_runs(store: Store, job: Job) -> None:
    run_id = new_run(
        store,
        job,
        parameters={"year": 2025},
        overrides={"year": 2025, "limit": 3},
        max_parallel_tasks=4,
        trigger=Trigger.api,
    )
    assert run_id == 1
    run = store.get_run(run_id)
    assert run.run_id == 1
    assert (run.job_name, run.job_path) == ("demo", job.path)
    assert run.status == RunStatus.queued
    assert run.trigger == Trigger.api
    assert run.parameters == {"year": 2025}
    assert run.overrides == {"year": 2025, "limit": 3}
    assert run.max_parallel_tasks == 4
    assert run.repair_count == 0 and run.repairs == []
    assert run.start_time and run.end_time is None
    assert [(t.task_key, t.notebook, t.depends_on, t.status) for t in run.task_runs] == [
        ("load", "load.ipynb", [], S.pending),
        ("clean", "clean.ipynb", ["load"], S.pending),
        ("report", "sub/report.ipynb", ["clean", "load"], S.pending),
    ]
    assert all(t.attempts == [] and t.task_values == {} and t.start_time is None for t in run.task_runs)
    assert store.snapshot(run_id) == job
    assert store.statuses(run_id) == {"load": S.pending, "clean": S.pending, "report": S.pending}
    assert store.run_status(run_id) == RunStatus.queued


def test_runs_of_the_same_job_share_one_job_row(store: Store, job: Job, tmp_path: Path) -> None:
    assert new_run(store, job) == 1
    assert new_run(store, job.model_copy(update={"name": "renamed"})) == 2
    assert new_run(store, make_job(tmp_path, "other")) == 3
    rows = list(store.db["jobs"].rows)
    assert sorted((r["name"], r["path"]) for r in rows) == [
        ("other", str(tmp_path / "other")),
        ("renamed", job.path),
    ]


def test_unknown_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="run 42 not found"):
        store.get_run(42)
    with pytest.raises(NotFoundError, match="run 42 not found"):
        store.run_status(42)
    with pytest.raises(NotFoundError):
        store.request_cancel(42)


def test_claim_heartbeat_and_finish_run(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    store.claim_run(run_id, pid=1234, create_time=99.5, host="h1")
    assert store.run_status(run_id) == RunStatus.running
    (row,) = store.unfinished_runs()
    assert (
        row.run_id,
        row.orchestrator_pid,
        row.orchestrator_create_time,
        row.orchestrator_host,
    ) == (run_id, 1234, 99.5, "h1")
    first_beat = row.heartbeat_time
    store.heartbeat(run_id)
    assert store.unfinished_runs()[0].heartbeat_time >= first_beat
    store.finish_run(run_id, RunStatus.failed, "leaf clean failed")
    run = store.get_run(run_id)
    assert run.status == RunStatus.failed
    assert run.status_reason == "leaf clean failed"
    assert run.end_time is not None and run.end_time >= run.start_time
    assert run.duration_seconds is not None and run.duration_seconds >= 0
    assert store.unfinished_runs() == []


def test_set_task_status_records_times(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    store.set_task_status(run_id, "load", S.queued)
    t = store.get_run(run_id).task_run("load")
    assert t.status == S.queued and t.start_time is None and t.end_time is None

    store.set_task_status(run_id, "load", S.running)
    started = store.get_run(run_id).task_run("load").start_time
    assert started is not None
    store.set_task_status(run_id, "load", S.up_for_retry, "attempt 1 failed; retry 1 of 2")
    store.set_task_status(run_id, "load", S.running)
    t = store.get_run(run_id).task_run("load")
    assert t.start_time == started  # the first start is kept across retries
    assert t.status_reason is None and t.end_time is None

    store.set_task_status(run_id, "load", S.succeeded)
    t = store.get_run(run_id).task_run("load")
    assert t.status == S.succeeded
    assert t.end_time is not None and t.end_time >= started
    assert t.duration_seconds is not None and t.duration_seconds >= 0

    store.set_task_status(run_id, "report", S.upstream_failed, "run_if all_success not met (clean=failed)")
    t = store.get_run(run_id).task_run("report")
    assert t.status == S.upstream_failed
    assert t.status_reason == "run_if all_success not met (clean=failed)"
    assert t.start_time is None and t.end_time is not None and t.duration_seconds is None


# ---------------------------------------------------------------------------------------------------------
# attempts
# ---------------------------------------------------------------------------------------------------------


def test_attempts_round_trip_with_separate_error_fields(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    attempt = Attempt(
        run_id=run_id,
        task_key="clean",
        attempt_number=1,
        status=S.running,
        start_time=utc_now(),
        notebook_path="/state/runs/1/clean/attempt-1.ipynb",
        log_path="/state/runs/1/clean/attempt-1.log",
        parameters={"year": 2024, "tags": ["a"]},
        kernel_name="python3",
        cwd="/jobs/demo",
        env_names=["A", "B"],
        cells_total=5,
        cells_completed=0,
    )
    store.create_attempt(attempt, worker_pid=11, kernel_pid=None, kernel_create_time=None)
    store.set_attempt_kernel(run_id, "clean", 1, 22, 123.25)
    (row,) = store.unfinished_attempts(run_id)
    assert (row.worker_pid, row.kernel_pid, row.kernel_create_time) == (11, 22, 123.25)
    store.update_attempt_progress(run_id, "clean", 1, 2, 5)

    error = AttemptError(
        kind="cell_error",
        ename="ZeroDivisionError",
        evalue="division by zero",
        traceback=["\x1b[0;31mZeroDivisionError\x1b[0m", "Cell In[3], line 1\n----> 1 1/0"],
        cell_index=0,
        executed_cell_index=1,
        cell_source="x = 1\n1/0",
        execution_count=3,
    )
    store.finish_attempt(run_id, "clean", 1, S.failed, error)
    start_attempt(store, run_id, "clean", 2)
    store.finish_attempt(run_id, "clean", 2, S.succeeded, None)

    attempts = store.get_run(run_id).task_run("clean").attempts
    assert [a.attempt_number for a in attempts] == [1, 2]
    first, second = attempts
    assert first.status == S.failed
    assert first.error == error
    assert first.error is not None
    assert first.error.traceback == error.traceback  # a list, not one flattened string
    assert first.error.cell_index == 0  # 0 is a value, not "missing"
    assert (first.notebook_path, first.log_path, first.kernel_name, first.cwd) == (
        attempt.notebook_path,
        attempt.log_path,
        "python3",
        "/jobs/demo",
    )
    assert first.parameters == {"year": 2024, "tags": ["a"]}
    assert first.env_names == ["A", "B"]
    assert (first.cells_completed, first.cells_total) == (2, 5)
    assert first.end_time is not None and first.duration_seconds is not None and first.duration_seconds >= 0
    assert second.status == S.succeeded and second.error is None
    assert store.attempt_counts(run_id) == {"clean": 2}
    assert store.unfinished_attempts(run_id) == []


def test_attempt_error_without_cell_fields(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    start_attempt(store, run_id, "load", 1)
    error = AttemptError(kind="kernel_died", ename="DeadKernelError", evalue="Kernel died")
    store.finish_attempt(run_id, "load", 1, S.failed, error)
    got = store.get_run(run_id).task_run("load").attempts[0].error
    assert got == error
    assert got is not None and got.cell_index is None and got.traceback == [] and got.cell_source is None


# ---------------------------------------------------------------------------------------------------------
# task values
# ---------------------------------------------------------------------------------------------------------


def test_task_values_are_replaced_per_task_run(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    store.set_task_values(
        run_id, "load", 1, {"rows": 10, "meta": {"k": [1, None]}, "name": "x", "none": None}
    )
    store.set_task_values(run_id, "clean", 1, {"ok": True})
    assert store.task_values(run_id) == {
        "clean": {"ok": True},
        "load": {"meta": {"k": [1, None]}, "name": "x", "none": None, "rows": 10},
    }
    store.set_task_values(run_id, "load", 2, {"rows": 11})
    assert store.task_values(run_id) == {"clean": {"ok": True}, "load": {"rows": 11}}
    assert store.get_run(run_id).task_run("load").task_values == {"rows": 11}
    store.set_task_values(run_id, "load", 3, {})
    assert store.task_values(run_id) == {"clean": {"ok": True}}
    assert store.task_values(999) == {}


# ---------------------------------------------------------------------------------------------------------
# listing
# ---------------------------------------------------------------------------------------------------------


def test_list_runs_newest_first_with_filters_and_paging(store: Store, job: Job, tmp_path: Path) -> None:
    other = make_job(tmp_path, "other")
    ids = [new_run(store, j) for j in (job, other, job, job, other)]
    assert ids == [1, 2, 3, 4, 5]
    store.finish_run(3, RunStatus.succeeded)
    store.finish_run(4, RunStatus.failed)
    store.set_task_status(4, "load", S.failed)
    start_attempt(store, 4, "load", 1)

    assert [r.run_id for r in store.list_runs()] == [5, 4, 3, 2, 1]
    assert [r.run_id for r in store.list_runs(job_name="demo")] == [4, 3, 1]
    assert [r.run_id for r in store.list_runs(job_name="other")] == [5, 2]
    assert [r.run_id for r in store.list_runs(status=RunStatus.queued)] == [5, 2, 1]
    assert [r.run_id for r in store.list_runs(job_name="demo", status=RunStatus.queued)] == [1]
    assert [r.run_id for r in store.list_runs(limit=2)] == [5, 4]
    assert [r.run_id for r in store.list_runs(limit=2, before=4)] == [3, 2]
    assert [r.run_id for r in store.list_runs(before=2)] == [1]
    assert store.list_runs(before=1) == []
    assert store.list_runs(job_name="nope") == []

    listed = store.list_runs(job_name="demo", limit=1)[0]
    assert listed.status == RunStatus.failed
    assert {t.task_key: t.status for t in listed.task_runs} == {
        "load": S.failed,
        "clean": S.pending,
        "report": S.pending,
    }
    assert all(t.attempts == [] for t in listed.task_runs)  # no attempts in listings
    assert len(store.get_run(4).task_run("load").attempts) == 1


# ---------------------------------------------------------------------------------------------------------
# cancel
# ---------------------------------------------------------------------------------------------------------


def test_request_cancel(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    assert store.request_cancel(run_id) is True
    run = store.get_run(run_id)
    assert run.status == RunStatus.canceling
    assert run.status_reason == "cancel requested"
    store.finish_run(run_id, RunStatus.canceled, "run canceled")
    assert store.request_cancel(run_id) is False
    assert store.run_status(run_id) == RunStatus.canceled
    done = new_run(store, job)
    store.finish_run(done, RunStatus.succeeded)
    assert store.request_cancel(done) is False
    assert store.run_status(done) == RunStatus.succeeded


# ---------------------------------------------------------------------------------------------------------
# repairs
# ---------------------------------------------------------------------------------------------------------


def test_start_repair_resets_selected_task_runs_and_records_the_repair(store: Store, job: Job) -> None:
    run_id = new_run(store, job, overrides={"year": 2025})
    store.claim_run(run_id, pid=1, create_time=1.0, host="h")
    for key, status in (("load", S.succeeded), ("clean", S.failed), ("report", S.upstream_failed)):
        store.set_task_status(run_id, key, S.running if key != "report" else S.pending)
        store.set_task_status(run_id, key, status)
    start_attempt(store, run_id, "load", 1)
    store.finish_attempt(run_id, "load", 1, S.succeeded, None)
    start_attempt(store, run_id, "clean", 1)
    store.finish_attempt(run_id, "clean", 1, S.failed, AttemptError(kind="cell_error", ename="E"))
    store.set_task_values(run_id, "load", 1, {"rows": 3})
    store.set_task_values(run_id, "clean", 1, {"partial": 1})
    store.finish_run(run_id, RunStatus.failed, "leaf report failed")

    fixed = job.model_copy(update={"description": "fixed"})
    number = store.start_repair(
        run_id,
        job=fixed,
        requested_task_keys=None,
        rerun_dependents=False,
        task_keys=["clean", "report"],
        reused_task_keys=["load"],
        parameters={"limit": 5},
        run_parameters={"year": 2026},
        overrides={"year": 2026},
    )
    assert number == 1
    run = store.get_run(run_id)
    assert run.status == RunStatus.queued
    assert run.status_reason == "repair 1"
    assert run.end_time is None
    assert run.repair_count == 1
    assert run.parameters == {"year": 2026} and run.overrides == {"year": 2026}
    assert store.snapshot(run_id).description == "fixed"
    load, clean, report = (run.task_run(k) for k in ("load", "clean", "report"))
    assert load.status == S.succeeded and load.end_time is not None and load.task_values == {"rows": 3}
    for t in (clean, report):
        assert t.status == S.pending
        assert t.status_reason == "repair 1"
        assert (t.start_time, t.end_time, t.duration_seconds) == (None, None, None)
        assert t.task_values == {}
    assert [a.attempt_number for a in clean.attempts] == [1]  # history is kept
    assert store.attempt_counts(run_id) == {"clean": 1, "load": 1}
    (repair,) = run.repairs
    assert repair == Repair(
        run_id=run_id,
        repair_number=1,
        repair_time=repair.repair_time,
        requested_task_keys=None,
        rerun_dependents=False,
        task_keys=["clean", "report"],
        reused_task_keys=["load"],
        parameters={"limit": 5},
    )
    assert repair.repair_time >= run.start_time

    store.finish_run(run_id, RunStatus.failed)
    number = store.start_repair(
        run_id,
        job=job,
        requested_task_keys=["load"],
        rerun_dependents=True,
        task_keys=["load", "clean", "report"],
        reused_task_keys=[],
        parameters={},
        run_parameters={"year": 2024},
        overrides={},
    )
    assert number == 2
    run = store.get_run(run_id)
    assert run.repair_count == 2
    assert [r.repair_number for r in run.repairs] == [1, 2]
    assert run.repairs[1].requested_task_keys == ["load"]
    assert run.repairs[1].rerun_dependents is True
    assert run.repairs[1].reused_task_keys == []
    assert store.statuses(run_id) == {"load": S.pending, "clean": S.pending, "report": S.pending}
    assert store.task_values(run_id) == {}


def test_end_unfinished_fails_running_work_and_cancels_the_rest(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    store.claim_run(run_id, pid=999999, create_time=1.0, host="h")
    store.set_task_status(run_id, "load", S.running)
    store.set_task_status(run_id, "load", S.succeeded)
    start_attempt(store, run_id, "load", 1)
    store.finish_attempt(run_id, "load", 1, S.succeeded, None)
    store.set_task_status(run_id, "clean", S.running)
    start_attempt(store, run_id, "clean", 1)
    store.set_task_status(run_id, "report", S.queued)

    reason = "the orchestrator (pid 999999 on h) died while the run was running"
    store.end_unfinished(run_id, reason, run_status=RunStatus.failed)
    run = store.get_run(run_id)
    assert run.status == RunStatus.failed
    assert run.status_reason == reason
    assert run.end_time is not None
    load, clean, report = (run.task_run(k) for k in ("load", "clean", "report"))
    assert load.status == S.succeeded and load.attempts[0].error is None
    assert clean.status == S.failed and clean.status_reason == reason and clean.end_time is not None
    assert report.status == S.canceled and report.status_reason == reason
    (attempt,) = clean.attempts
    assert attempt.status == S.failed
    assert attempt.error == AttemptError(kind="orchestrator_died", ename="OrchestratorDied", evalue=reason)
    assert store.unfinished_runs() == []
    assert store.unfinished_attempts(run_id) == []


# ---------------------------------------------------------------------------------------------------------
# database file
# ---------------------------------------------------------------------------------------------------------


def test_reopening_the_home_keeps_data_and_applies_no_migration(home: Path, job: Job) -> None:
    first = Store(home)
    run_id = new_run(first, job)
    applied = list(first.db["_sqlite_migrations"].rows)
    from jupyter_orchestrate.store import migrations

    assert (
        [m["name"] for m in applied]
        == [m.name for m in migrations._migrations]
        == [
            "m001_initial",
            "m002_scheduling",
            "m003_trigger_details",
            "m004_attempt_environment",
            "m005_schedule_rule",
            "m006_cell_timings",
            "m007_attempt_phases",
            "m008_run_listing_indexes",
            "m009_history_views",
            "m010_kept_kernels",
            "m011_for_each_iterations",
            "m012_child_runs",
        ]
    )
    first.close()

    second = Store(home)
    try:
        assert list(second.db["_sqlite_migrations"].rows) == applied
        assert second.get_run(run_id).task_run("load").status == S.pending
        assert new_run(second, job) == run_id + 1
    finally:
        second.close()
    assert (home / DB_NAME).is_file()


def test_wal_journal_and_foreign_keys(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    # WAL is a property of the file: another connection sees it too
    other = sqlite3.connect(str(store.path))
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()
    with pytest.raises(sqlite3.IntegrityError):
        store.db["task_runs"].insert({"run_id": 12345, "task_key": "x", "status": "pending"})


def test_store_creates_the_home_and_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    home = tmp_path / "deep" / "state"
    s = Store(home)
    s.close()
    assert (home / DB_NAME).is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        StoreError, match=f"state database {bad / DB_NAME} is damaged .*file is not a database"
    ):
        Store(bad)


def test_end_unfinished_records_the_duration_of_the_failed_task_run(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    store.set_task_status(run_id, "load", S.running)
    store.end_unfinished(run_id, "dead", run_status=RunStatus.failed)
    load = store.get_run(run_id).task_run("load")
    assert load.status == S.failed and load.start_time is not None and load.end_time is not None
    assert load.duration_seconds is not None


def test_start_repair_clears_the_run_duration(store: Store, job: Job) -> None:
    run_id = new_run(store, job)
    store.finish_run(run_id, RunStatus.failed)
    assert store.get_run(run_id).duration_seconds is not None
    store.start_repair(
        run_id,
        job=job,
        requested_task_keys=None,
        rerun_dependents=False,
        task_keys=["load"],
        reused_task_keys=["clean", "report"],
        parameters={},
        run_parameters={},
        overrides={},
    )
    run = store.get_run(run_id)
    assert run.status == RunStatus.queued and run.end_time is None
    assert run.duration_seconds is None
