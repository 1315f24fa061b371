"""Per-cell execution times, the history views and a job's trends, from real runs (real kernels, papermill,
SQLite). One module-scoped state home holds four runs of a small job; the tests read it."""

from __future__ import annotations

import itertools
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from jupyter_orchestrate.engine.cell_timings import MAX_CELL_TIMINGS_ENV, CellTimings, max_cell_timings
from jupyter_orchestrate.errors import ValidationError
from jupyter_orchestrate.models import (
    CellStatus,
    CellTiming,
    Run,
    RunStatus,
    TaskRun,
    TaskRunStatus,
)
from jupyter_orchestrate.schemas.documents import TrendsDocument, percentile
from jupyter_orchestrate.service import OrchestrateService
from jupyter_orchestrate.store import Store
from tests.conftest import REPO, write_notebook

DOC = REPO / "docs" / "history-tables.md"
EXAMPLE = REPO / "example_notebooks" / "history" / "duration_trends.ipynb"
VIEWS = ("v_runs", "v_task_runs", "v_attempts", "v_cells", "v_history_version")
SQL_TYPES = {"INTEGER": int, "REAL": float, "TEXT": str}
# run 1..4 of the job: flaky fails in runs 1 and 4
FAIL = [True, False, False, True]


def make_job(folder: Path) -> Path:
    """``slow`` (a 0.3 s cell) -> ``flaky`` (fails when ``fail``); ``after`` runs after flaky."""
    write_notebook(
        folder / "slow.ipynb",
        "import time",
        "time.sleep(0.3)",
        "# md a markdown cell is not executed",
        "x = 1",
        parameters="fail = False",
        orchestrate={},
    )
    write_notebook(
        folder / "flaky.ipynb",
        "y = 2",
        "if fail:\n    raise ValueError('flaky failed')",
        parameters="fail = False",
        orchestrate={"depends_on": ["slow"]},
    )
    write_notebook(folder / "after.ipynb", "z = 3", orchestrate={"depends_on": ["flaky"]})
    (folder / "job.yaml").write_text("name: trendy\nparameters:\n  fail: false\n", encoding="utf-8")
    return folder


def execute(service: OrchestrateService, job: Path, **kwargs: Any) -> Run:
    runner = service.new_run(job, **kwargs)
    try:
        runner.execute()
    finally:
        runner.executor.close()
    return service.get_run(runner.run_id)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Run]]:
    """(state home, job folder, the four runs)."""
    root = tmp_path_factory.mktemp("history")
    job = make_job(root / "trendy")
    service = OrchestrateService(root / "state")
    runs = [execute(service, job, parameters={"fail": fail}) for fail in FAIL]
    assert [r.status for r in runs] == [
        RunStatus.failed,
        RunStatus.succeeded,
        RunStatus.succeeded,
        RunStatus.failed,
    ]
    return root / "state", job, runs


def documented_columns() -> dict[str, list[tuple[str, str]]]:
    """``{view: [(column, SQL type)]}`` from the tables of docs/history-tables.md."""
    found: dict[str, list[tuple[str, str]]] = {}
    view = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"## (v_\w+)", line)
        if heading:
            view = heading[1]
            found[view] = []
            continue
        row = re.fullmatch(r"\| `(\w+)` \| (INTEGER|REAL|TEXT) \|.*", line)
        if row and view:
            found[view].append((row[1], row[2]))
    return found


# -- per-cell execution times --------------------------------------------------------------------------------
@pytest.mark.kernel
def test_every_executed_code_cell_is_recorded_with_its_duration(history: Any) -> None:
    home, _, runs = history
    store = Store(home)
    slow = store.cell_timings(runs[0].run_id, "slow", 1)
    # papermill injects a parameters cell after the tagged one; the markdown cell is not executed
    assert [(c.cell_number, c.cell_index) for c in slow] == [(1, 0), (2, None), (3, 1), (4, 2), (5, 4)]
    assert [c.source_first_line for c in slow] == [
        "fail = False",
        "# Parameters",
        "import time",
        "time.sleep(0.3)",
        "x = 1",
    ]
    assert all(c.status == CellStatus.ok for c in slow)
    sleep = slow[3]
    assert 0.3 <= sleep.duration_seconds < 30, sleep
    assert sleep.start_time < sleep.end_time
    assert all(c.duration_seconds < sleep.duration_seconds for c in slow if c is not sleep), slow
    assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(slow)), (
        "cells execute one after another"
    )

    flaky = store.cell_timings(runs[0].run_id, "flaky", 1)
    assert [(c.cell_index, c.status) for c in flaky] == [
        (0, CellStatus.ok),
        (None, CellStatus.ok),
        (1, CellStatus.ok),
        (2, CellStatus.error),
    ], "the failing cell is recorded as error and nothing after it"
    assert store.cell_timings(runs[0].run_id, "after", 1) == [], "a task that never ran has no cells"
    assert len(store.cell_timings(runs[1].run_id, "after", 1)) == 1


@pytest.mark.kernel
def test_a_cell_stopped_while_executing_is_recorded_as_error(make_notebook: Any, home: Path) -> None:
    job = make_notebook("stuck/stuck.ipynb", "a = 1", "import time; time.sleep(60)", orchestrate={})
    runner = OrchestrateService(home).new_run(job.parent)
    thread = threading.Thread(target=runner.execute)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not (runner.in_flight.get("stuck") and runner.in_flight["stuck"].cell == 2):
            assert thread.is_alive() and time.monotonic() < deadline, "the sleeping cell never started"
            time.sleep(0.05)
        time.sleep(1.0)
        runner.cancel("enough")
        thread.join(timeout=60)
    finally:
        runner.executor.close()
    run = OrchestrateService(home).get_run(runner.run_id)
    assert run.task_runs[0].status == TaskRunStatus.canceled
    cells = Store(home).cell_timings(run.run_id, "stuck", 1)
    assert [(c.cell_index, c.status) for c in cells] == [(0, CellStatus.ok), (1, CellStatus.error)]
    assert 0.9 < cells[1].duration_seconds < 60, "the stuck cell ran until the attempt was killed"
    assert cells[1].source_first_line is None, "the executor never reported the cell's end"


@pytest.mark.kernel
def test_cell_timings_kept_per_attempt_are_bounded(
    make_notebook: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = [f"v{i} = {i}" for i in range(6)] + ["import time; time.sleep(0.3)"]
    job = make_notebook("many/many.ipynb", *cells, orchestrate={})
    monkeypatch.setenv(MAX_CELL_TIMINGS_ENV, "2")
    run = execute(OrchestrateService(home), job.parent)
    kept = Store(home).cell_timings(run.run_id, "many", 1)
    assert len(kept) == 2, kept
    assert kept[-1].source_first_line == "import time; time.sleep(0.3)", "the slowest cell is kept"
    assert run.task_runs[0].last_attempt.cells_completed == 7, "the attempt's counts are not cut"


def test_cell_timings_keep_the_slowest_and_failed_cells() -> None:
    def timing(number: int, seconds: float, status: CellStatus = CellStatus.ok) -> CellTiming:
        return CellTiming(
            cell_number=number,
            cell_index=number,
            start_time="2026-01-01T00:00:00+00:00",
            end_time="2026-01-01T00:00:01+00:00",
            duration_seconds=seconds,
            status=status,
        )

    kept = CellTimings(limit=3)
    for number, seconds in enumerate([0.5, 0.1, 2.0, 0.2, 0.3], start=1):
        kept.add(timing(number, seconds))
    kept.add(timing(6, 0.01, CellStatus.error))
    assert [(t.cell_number, t.duration_seconds) for t in kept.close("2026-01-01T00:00:02+00:00")] == [
        (1, 0.5),
        (3, 2.0),
        (6, 0.01),
    ], "in execution order: the two slowest and the failed cell"
    assert kept.dropped == 3

    running = CellTimings(limit=10)
    running.add(timing(1, 0.1))
    running.begin(2, 5, "2026-01-01T00:00:00+00:00")
    closed = running.close("2026-01-01T00:00:04.5+00:00")
    assert (closed[-1].cell_index, closed[-1].status, closed[-1].duration_seconds) == (
        5,
        CellStatus.error,
        4.5,
    )
    assert CellTimings(limit=0).close("2026-01-01T00:00:00+00:00") == []


def test_the_cell_timings_limit_comes_from_the_environment() -> None:
    assert max_cell_timings({}) == 2000
    assert max_cell_timings({MAX_CELL_TIMINGS_ENV: "10_000"}) == 10_000
    assert max_cell_timings({MAX_CELL_TIMINGS_ENV: "0"}) == 0
    for bad in ("-1", "many", "1.5"):
        with pytest.raises(ValidationError, match=MAX_CELL_TIMINGS_ENV):
            max_cell_timings({MAX_CELL_TIMINGS_ENV: bad})


# -- history views --------------------------------------------------------------------------------------------
@pytest.mark.kernel
def test_the_views_are_queryable_read_only_and_match_their_documentation(history: Any) -> None:
    home, _job, runs = history
    documented = documented_columns()
    assert set(documented) == set(VIEWS), "every view is documented, and only the views"
    db = sqlite3.connect(f"file:{home / 'orchestrate.db'}?mode=ro", uri=True)
    for view, columns in documented.items():
        cursor = db.execute(f"select * from {view}")
        assert [d[0] for d in cursor.description] == [c for c, _ in columns], view
        frame = pd.read_sql_query(f"select * from {view}", db)
        assert list(frame.columns) == [c for c, _ in columns], view
        rows = cursor.fetchall()
        assert rows, f"{view} is empty"
        for name, sql_type in columns:
            values = [row[[c for c, _ in columns].index(name)] for row in rows]
            assert all(isinstance(v, SQL_TYPES[sql_type]) for v in values if v is not None), (view, name)
    assert db.execute("select version from v_history_version").fetchall() == [(1,)]
    assert db.execute("select count(*) from v_runs where job_name = 'trendy'").fetchone() == (4,)
    assert db.execute(
        "select status, attempt_count from v_task_runs where run_id = ? order by task_key", [runs[0].run_id]
    ).fetchall() == [("upstream_failed", 0), ("failed", 1), ("succeeded", 1)]
    assert db.execute(
        "select ename, error_cell_index from v_attempts where run_id = ? and task_key = 'flaky'",
        [runs[0].run_id],
    ).fetchone() == ("ValueError", 2)
    sleep = db.execute(
        "select min(duration_seconds), count(*) from v_cells where task_key = 'slow' and cell_index = 2 "
        "and source_first_line = 'time.sleep(0.3)'",
    ).fetchone()
    assert sleep[0] >= 0.3 and sleep[1] == 4
    db.close()

    writable = sqlite3.connect(home / "orchestrate.db")
    for statement in (
        "insert into v_runs (run_id) values (99)",
        "delete from v_cells",
        "update v_runs set status = 'x'",
    ):
        with pytest.raises(sqlite3.OperationalError, match="cannot modify"):
            writable.execute(statement)
    writable.close()


def test_an_existing_database_gains_the_cells_table_and_the_views(tmp_path: Path) -> None:
    from sqlite_utils import Database

    from jupyter_orchestrate.store.migrations import migrations

    db = Database(tmp_path / "orchestrate.db")
    migrations.apply(db, stop_before="m006_cell_timings")
    assert "cells" not in db.table_names()
    Store(tmp_path).close()
    db = Database(tmp_path / "orchestrate.db")
    assert "cells" in db.table_names() and set(VIEWS) <= set(db.view_names())


# -- trends ---------------------------------------------------------------------------------------------------
def test_percentiles_interpolate_like_pandas() -> None:
    values = [4.0, 1.0, 3.0, 2.0, 10.0]
    for fraction in (0.0, 0.5, 0.9, 1.0):
        assert percentile(values, fraction) == pytest.approx(pd.Series(values).quantile(fraction))
    assert percentile([2.5], 0.9) == 2.5
    assert percentile([], 0.5) is None


def test_trends_count_failures_of_the_task_itself() -> None:
    def run(run_id: int, status: RunStatus, tasks: dict[str, tuple[TaskRunStatus, float | None]]) -> Run:
        return Run(
            run_id=run_id,
            job_name="j",
            job_path="/j",
            status=status,
            start_time=f"2026-01-0{run_id}T00:00:00+00:00",
            duration_seconds=float(run_id * 10),
            max_parallel_tasks=1,
            task_runs=[
                TaskRun(run_id=run_id, task_key=k, notebook=f"{k}.ipynb", status=s, duration_seconds=d)
                for k, (s, d) in tasks.items()
            ],
        )

    S = TaskRunStatus
    newest_first = [
        run(4, RunStatus.failed, {"a": (S.timed_out, 9.0), "b": (S.upstream_failed, None)}),
        run(3, RunStatus.succeeded, {"a": (S.succeeded, 3.0), "b": (S.succeeded, 1.0)}),
        run(2, RunStatus.failed, {"a": (S.failed, 0.5), "b": (S.upstream_failed, None)}),
        run(1, RunStatus.succeeded, {"a": (S.succeeded, 1.0), "b": (S.succeeded, 2.0)}),
    ]
    doc = TrendsDocument.build("j", 50, newest_first, [])
    assert [r.run_id for r in doc.runs] == [1, 2, 3, 4], "oldest first"
    assert [r.duration_seconds for r in doc.runs] == [10.0, 20.0, 30.0, 40.0]
    a, b = doc.tasks
    assert (a.task_key, a.task_runs, a.ran, a.succeeded, a.failed, a.failure_rate) == ("a", 4, 4, 2, 2, 0.5)
    assert (a.p50_duration_seconds, a.p90_duration_seconds) == (2.0, 2.8), "of succeeded task runs: 1 and 3"
    assert (b.ran, b.failed, b.failure_rate, b.p50_duration_seconds) == (2, 0, 0.0, 1.5), (
        "upstream failures are not b's own"
    )
    assert TrendsDocument.build("j", 50, [], []).tasks == []


@pytest.mark.kernel
def test_trends_of_known_runs(history: Any) -> None:
    home, job, runs = history
    service = OrchestrateService(home)
    doc = service.trends_document(job, job.parent, 50)
    assert doc.job_id == "trendy"
    assert [(r.run_id, r.status) for r in doc.runs] == [(r.run_id, r.status) for r in runs]
    assert [r.duration_seconds for r in doc.runs] == [r.duration_seconds for r in runs]
    tasks = {t.task_key: t for t in doc.tasks}
    assert list(tasks) == ["slow", "flaky", "after"]
    flaky = tasks["flaky"]
    assert (flaky.ran, flaky.failed, flaky.failure_rate) == (4, 2, 0.5)
    assert (tasks["after"].ran, tasks["after"].failure_rate) == (2, 0.0), "skipped when flaky failed"
    slow_durations = [next(t for t in r.task_runs if t.task_key == "slow").duration_seconds for r in runs]
    assert tasks["slow"].p50_duration_seconds == pytest.approx(statistics.median(slow_durations))
    assert tasks["slow"].p90_duration_seconds == pytest.approx(pd.Series(slow_durations).quantile(0.9))
    assert tasks["slow"].failure_rate == 0.0
    slowest = tasks["slow"].slowest_cells[0]
    assert (slowest.cell_index, slowest.executions, slowest.source_first_line) == (2, 4, "time.sleep(0.3)")
    assert 0.3 <= slowest.median_duration_seconds <= slowest.max_duration_seconds
    assert len(tasks["slow"].slowest_cells) == 5
    error_cell = tasks["flaky"].slowest_cells
    assert any(c.cell_index == 2 for c in error_cell)

    last_two = service.trends_document(job, job.parent, 2)
    assert [r.run_id for r in last_two.runs] == [runs[2].run_id, runs[3].run_id]
    assert last_two.tasks[1].failure_rate == 0.5
    for bad in (0, 501, 10_000):
        with pytest.raises(ValidationError, match="between 1 and 500"):
            service.trends_document(job, job.parent, bad)


@pytest.mark.kernel
@pytest.mark.timeout(300)
def test_the_example_notebook_charts_trends_under_papermill(history: Any, tmp_path: Path) -> None:
    home, _, _runs = history
    output, chart = tmp_path / "out.ipynb", tmp_path / "trends.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(EXAMPLE),
            str(output),
            "-p",
            "state_home",
            str(home),
            "-p",
            "chart_path",
            str(chart),
            "--cwd",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert chart.stat().st_size > 10_000, "a real chart was saved"
    text = "\n".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for c in nbformat.read(output, as_version=4).cells
        for o in c.get("outputs", [])
    )
    assert "job trendy: 4 runs" in text and "time.sleep(0.3)" in text
    assert "history of" in text and "views version 1" in text


def test_the_example_notebook_is_not_a_job_task() -> None:
    from jupyter_orchestrate.discovery import find_jobs, is_task_notebook

    assert not is_task_notebook(EXAMPLE)
    assert EXAMPLE.parent not in find_jobs(REPO / "example_notebooks")
