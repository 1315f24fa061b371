"""How long the sidebar's first requests take on a large workspace: ``GET jobs`` (the jobs list the panel paints
first) and a page of ``GET runs`` (the all-runs view), with 50 jobs and 10,000 runs in the store.

The fixture is written through the store API (no kernels): ``--jobs`` job folders of three tagged notebooks
each, and ``--runs`` runs spread over them, every run with its task runs and one attempt per task, a tenth of
them failed. The script times the service calls the handlers make (the same documents the REST API serves),
``--repeat`` times each, and prints the median and the best in milliseconds. Run it on a branch and on main to
compare (``--json`` writes the figures; the same file runs against an older checkout's code too)::

    PYTHONPATH=$PWD python benchmarks/sidebar_load.py
    PYTHONPATH=$PWD python benchmarks/sidebar_load.py --jobs 50 --runs 10000 --repeat 5 --json out.json

:func:`build_fixture` is also what ``tests/browser/test_scale.py`` serves to a real JupyterLab.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat

TASKS = ("extract", "transform", "load")


def _notebook(task_key: str, depends_on: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["orchestrate"] = {"depends_on": depends_on}
    nb.cells = [
        nbformat.v4.new_code_cell("rows = 10", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(rows)"),
    ]
    return nb


def write_jobs(root: Path, jobs: int) -> list[Path]:
    """Write ``jobs`` job folders ``job_000``... under ``root`` (a job.yaml and a chain of three tasks each).

    Returns: the folders, absolute."""
    folders = []
    for j in range(jobs):
        folder = root / f"job_{j:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "job.yaml").write_text(f"name: job_{j:03d}\nparameters:\n  day: '2026-01-01'\n")
        for i, key in enumerate(TASKS):
            nbformat.write(_notebook(key, list(TASKS[i - 1 : i])), folder / f"{key}.ipynb")
        folders.append(folder.resolve())
    return folders


def write_runs(home: Path, folders: list[Path], runs: int, *, failed_every: int = 10) -> None:
    """Record ``runs`` finished runs of the jobs in ``folders`` (round robin) in the store at ``home``: each
    created by the store's ``create_run`` (its job, snapshot and task runs), then its task runs finished and one
    attempt per task recorded (queued, kernel-ready, start and end times a few seconds apart); every
    ``failed_every``-th run failed in its last task. Batched 500 runs per write transaction, the finishing
    columns written as bulk statements in it (seconds, not minutes). Runs are a minute apart, ending now."""
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.models import RunStatus, Trigger
    from jupyter_orchestrate.models import TaskRunStatus as S
    from jupyter_orchestrate.store import Store

    store = Store(home)
    jobs = [load_job(f) for f in folders]
    base = datetime.now(timezone.utc) - timedelta(minutes=runs)
    phases = "kernel_ready_time" in store.db.table("attempts").columns_dict

    def iso(t: datetime) -> str:
        return t.isoformat()

    def batch(first: int, last: int) -> None:
        run_rows, task_rows, attempt_rows = [], [], []
        for n in range(first, last):
            job = jobs[n % len(jobs)]
            run_id = store.create_run(
                job,
                parameters={"day": "2026-01-01"},
                overrides={},
                max_parallel_tasks=1,
                trigger=Trigger.schedule if n % 3 == 0 else Trigger.manual,
            )
            t0 = base + timedelta(minutes=n)
            failed = n % failed_every == failed_every - 1
            clock = t0
            for i, key in enumerate(TASKS):
                bad = failed and i == len(TASKS) - 1
                start, ready = clock + timedelta(seconds=0.1), clock + timedelta(seconds=0.4)
                finish = ready + timedelta(seconds=1 + (n // len(jobs) + i) % 5)  # varies per job
                status = (S.failed if bad else S.succeeded).value
                seconds = (finish - start).total_seconds()
                task_rows.append((status, iso(start), iso(finish), seconds, run_id, key))
                attempt_rows.append(
                    (
                        run_id,
                        key,
                        status,
                        iso(clock),
                        iso(start),
                        iso(ready),
                        iso(finish),
                        seconds,
                        "cell_error" if bad else None,
                        "ValueError" if bad else None,
                        "bad rows" if bad else None,
                    )
                )
                clock = finish
            run_status = (RunStatus.failed if failed else RunStatus.succeeded).value
            run_rows.append((run_status, iso(t0), iso(t0), iso(clock), (clock - t0).total_seconds(), run_id))
        store.db.conn.executemany(
            "update task_runs set status = ?, start_time = ?, end_time = ?, duration_seconds = ? "
            "where run_id = ? and task_key = ?",
            task_rows,
        )
        if phases:
            store.db.conn.executemany(
                "insert into attempts (run_id, task_key, attempt_number, repair_number, status, queued_time, "
                "start_time, kernel_ready_time, end_time, duration_seconds, error_kind, ename, evalue, traceback) "
                "values (?, ?, 1, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]')",
                attempt_rows,
            )
        else:  # a store from before schema version 6 (running this script against an older checkout)
            store.db.conn.executemany(
                "insert into attempts (run_id, task_key, attempt_number, repair_number, status, start_time, "
                "end_time, duration_seconds, error_kind, ename, evalue, traceback) "
                "values (?, ?, 1, 0, ?, ?, ?, ?, ?, ?, ?, '[]')",
                [(r[0], r[1], r[2], r[4], r[6], r[7], r[8], r[9], r[10]) for r in attempt_rows],
            )
        store.db.conn.executemany(
            "update runs set status = ?, start_time = ?, trigger_time = ?, end_time = ?, duration_seconds = ? "
            "where run_id = ?",
            run_rows,
        )

    for first in range(0, runs, 500):
        store.in_transaction(True, lambda first=first: batch(first, min(runs, first + 500)))
    store.close()


def build_fixture(root: Path, *, jobs: int = 50, runs: int = 10_000, home: Path | None = None) -> Path:
    """Write the job folders under ``root`` and their runs into the state home (default ``root/orchestrate_runs``,
    where a server over ``root`` finds it). Returns the state home."""
    home = home or root / "orchestrate_runs"
    write_runs(home, write_jobs(root, jobs), runs)
    return home


def _time(call, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "best_ms": round(min(times), 1)}


def measure(root: Path, home: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Time the service calls behind ``GET jobs`` (first and warm) and ``GET runs`` pages."""
    from jupyter_orchestrate.models import RunStatus
    from jupyter_orchestrate.service import OrchestrateService

    service = OrchestrateService(home)

    def jobs() -> None:
        service.jobs_document([root], root, max_depth=4, exclude=(home,))

    figures = {"GET jobs (first, cold discovery)": _time(jobs, 1)}
    figures["GET jobs"] = _time(jobs, repeat)
    cache = getattr(service, "discovery", None)
    if cache is not None:  # what every request cost before discovery was cached
        figures["GET jobs (discovery cache off)"] = _time(lambda: (cache._entries.clear(), jobs()), repeat)
    figures["GET runs limit=50"] = _time(lambda: service.runs_document(limit=50, root=root), repeat)
    figures["GET runs status=failed limit=50"] = _time(
        lambda: service.runs_document(limit=50, status=RunStatus.failed, root=root), repeat
    )
    figures["GET runs job=job_007 page 3"] = _time(
        lambda: service.runs_document(limit=50, job_path=str(root / "job_007"), before=9000, root=root),
        repeat,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        t = time.perf_counter()
        home = build_fixture(root, jobs=args.jobs, runs=args.runs)
        print(f"fixture: {args.jobs} jobs, {args.runs} runs in {time.perf_counter() - t:.1f} s")
        figures = measure(root, home, args.repeat)
    for name, f in figures.items():
        print(f"{name:40s} median {f['median_ms']:8.1f} ms   best {f['best_ms']:8.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
