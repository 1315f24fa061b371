#!/usr/bin/env python
"""Benchmark: the orchestration cost alone, at scale, and the orchestrator's memory (issue 15).

Figures (each a row: figure, value, unit, target, PASS/MISS):

* ``validate 1,000 tasks``: ``python -m jupyter_orchestrate validate FOLDER`` on a folder of 1,000 small
  notebooks (a markdown cell, a ``parameters`` cell, three trivial code cells; ``metadata.orchestrate``
  ``depends_on`` on up to two of the 50 tasks before it), timed whole as a subprocess (interpreter start and
  imports included), its peak RSS, and :func:`~jupyter_orchestrate.discovery.validate_job` timed in a fresh
  process after its imports (the in-process figure). Target: <= 1 s.
* ``engine + store per task``: :class:`~jupyter_orchestrate.engine.runner.Runner` driving the same 1,000-task
  DAG on :class:`~jupyter_orchestrate.executors.memory.MemoryExecutor` (no kernels, fake clock, so only the
  orchestration is timed; attempts of one fake second, two at a time, so one event per task) with a real SQLite
  store: (record the run + execute it) wall time / tasks, and its CPU time. The job is discovered before the
  clock starts (that is the validate figure). Target: <= 5 ms.
* ``for_each``: a for-each task over 200 inputs on the same executor and store (issue 17): (record the run +
  execute it) / iterations. Target: <= 10 ms.
* ``queue``: the real queueing path, the :class:`~jupyter_orchestrate.scheduling.scheduler.Scheduler` of a job
  with ``max_concurrent_runs: 2`` and a schedule every minute, ticked on a fake clock: 100 fires arrive while the
  first two runs are held (MemoryExecutor attempts that wait for a gate), 98 queue; then that scheduler stops
  and a new one takes the lease over (a restart), the gate opens, and it ticks until no fire is queued. Rows: runs started (target: all 100), runs started out of fire
  order (0), most runs of the job active at once (<= 2), and the wall time.
* ``RSS growth, consecutive runs``: 100 consecutive runs (``quick``: 10) of a one-task job with a real kernel
  (LocalExecutor) through one :class:`~jupyter_orchestrate.service.OrchestrateService` (``new_run``, then
  ``start``: a background thread, as the Jupyter server runs them), the orchestrator's RSS after two warm-up
  runs versus after the last one. Target: < 50 MB.
* ``peak RSS, 100 MB output``: after a warm-up run of a trivial task, a real-kernel task printing 100 MB; the
  orchestrator's RSS sampled every 10 ms, its peak minus its RSS just before the run. Target: < 50 MB (the attempt worker may hold the output).

Every measurement runs in a fresh child process of this script (``--child NAME``), so that one's imports and
garbage do not count in another's figures. Timing figures are medians of the repeats; a machine shared with
other work makes them noisy. Nothing here asserts: a MISS does not change the exit code (a broken measurement
does).

    python benchmarks/scale.py            # full: a few minutes
    python benchmarks/scale.py --quick    # under a minute
    python benchmarks/scale.py --json out.json

``measure_scale(quick)`` returns the rows as dicts for ``run_benchmark.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASKS = 1000
QUEUED_RUNS = 100
MB = 1024 * 1024
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# -- rows ------------------------------------------------------------------------------------------------------
def row(name: str, value: float | None, unit: str, target: str, passed: bool | None) -> dict[str, Any]:
    """One figure: ``target`` is how it is judged, written out (``<= 1``); ``passed`` None: report only."""
    return {"name": name, "value": value, "unit": unit, "target": target, "passed": passed}


def at_most(name: str, value: float, unit: str, limit: float, *, strict: bool = False) -> dict[str, Any]:
    passed = value < limit if strict else value <= limit
    return row(name, value, unit, f"{'<' if strict else '<='} {limit:g}", passed)


# -- workloads -------------------------------------------------------------------------------------------------
def _cell(kind: str, source: str, index: int, tags: list[str] | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "id": f"cell-{index}",
        "cell_type": kind,
        "metadata": {"tags": tags} if tags else {},
        "source": source,
    }
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(orchestrate: dict[str, Any], *code: str) -> dict[str, Any]:
    """A notebook dict (nbformat 4): a markdown cell, a ``parameters`` cell, then ``code`` (default: three
    trivial cells). Written as JSON, without nbformat, so that this script's imports stay out of the figures."""
    body = code or ("y = x + 1", "z = y * 2", "print(label, z)")
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": dict(KERNELSPEC),
            "language_info": {"name": "python"},
            "orchestrate": orchestrate,
        },
        "cells": [
            _cell("markdown", "# A small task", 0),
            _cell("code", "x = 1\nlabel = 'a'", 1, ["parameters"]),
            *(_cell("code", c, i) for i, c in enumerate(body, start=2)),
        ],
    }


def make_dag_job(folder: Path, tasks: int = TASKS, seed: int = 0) -> Path:
    """``tasks`` notebooks ``t0000.ipynb``...; each depends on up to two of the 50 tasks before it (seeded, so
    the same DAG every time: 999 edge-bearing tasks, depth in the hundreds)."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    for i in range(tasks):
        deps = sorted({f"t{j:04d}" for j in rnd.sample(range(max(0, i - 50), i), min(i, 2))})
        text = json.dumps(notebook({"depends_on": deps}), indent=1)
        (folder / f"t{i:04d}.ipynb").write_text(text, encoding="utf-8")
    return folder


def write_job_file(folder: Path, text: str) -> None:
    (folder / "job.yaml").write_text(text, encoding="utf-8")


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# -- 1. validate -----------------------------------------------------------------------------------------------
def child_validate_in_process(work: Path, quick: bool) -> list[dict[str, Any]]:
    """In a fresh process: import discovery, then time ``validate_job`` (first call: nothing cached)."""
    job = make_dag_job(work / "dag1000") if not (work / "dag1000").is_dir() else work / "dag1000"
    started = time.perf_counter()
    from jupyter_orchestrate.discovery import validate_job

    imported = time.perf_counter()
    result, problems = validate_job(job)
    done = time.perf_counter()
    assert result is not None and len(result.tasks) == TASKS, problems
    return [
        row("validate 1,000 tasks: discovery import", imported - started, "s", "", None),
        at_most("validate 1,000 tasks: validate_job in-process", done - imported, "s", 1.0),
    ]


def measure_validate(work: Path, quick: bool) -> list[dict[str, Any]]:
    """The CLI as a subprocess (median of repeats, peak RSS of the slowest-memory one) and the in-process call."""
    job = make_dag_job(work / "dag1000")
    repeats = 3 if quick else 7
    seconds, peaks, cpu = [], [], []
    cmd = [sys.executable, "-m", "jupyter_orchestrate", "validate", str(job)]
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds.append(time.perf_counter() - started)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"validate exited {proc.returncode}: {stderr}")
        peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
        cpu.append(usage.ru_utime + usage.ru_stime)
    rows = [
        at_most("validate 1,000 tasks: CLI subprocess", statistics.median(seconds), "s", 1.0),
        row("  (its CPU time: the wall time without the other load)", statistics.median(cpu), "s", "", None),
        row("validate 1,000 tasks: CLI peak RSS", max(peaks), "MB", "", None),
    ]
    in_process = [run_child("validate_in_process", work, quick) for _ in range(repeats)]
    for index in range(len(in_process[0])):
        values = [r[index]["value"] for r in in_process]
        first = dict(in_process[0][index], value=statistics.median(values))
        if first["passed"] is not None:
            first["passed"] = first["value"] <= 1.0
        rows.append(first)
    return rows


# -- 2. engine + store -----------------------------------------------------------------------------------------
def child_engine(work: Path, quick: bool) -> list[dict[str, Any]]:
    """Runner + MemoryExecutor + SQLite store on the 1,000-task DAG: (new_run + execute) / tasks, median.

    Every attempt lasts one second of fake time and ``max_parallel`` is 2 (this machine's cores), so attempts
    end one at a time and the runner handles one event per task, as with real kernels (attempts of no duration
    at a high parallelism end in batches and hide a cost per event). CPU time is reported too: on a shared
    machine it says what the wall time would be without the other load."""
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.executors.memory import MemoryExecutor, succeed
    from jupyter_orchestrate.models import RunStatus
    from jupyter_orchestrate.service import OrchestrateService

    path = make_dag_job(work / "dag1000") if not (work / "dag1000").is_dir() else work / "dag1000"
    job = load_job(path)
    service = OrchestrateService(work / "engine-state")
    wall, cpu = [], []
    for _ in range(2 if quick else 5):
        executor = MemoryExecutor(default=succeed(1.0))
        started, started_cpu = time.perf_counter(), time.process_time()
        runner = service.new_run(path, job=job, executor=executor, clock=executor.clock, max_parallel=2)
        status = runner.execute()
        wall.append((time.perf_counter() - started) / len(job.tasks))
        cpu.append((time.process_time() - started_cpu) / len(job.tasks))
        if status != RunStatus.succeeded:
            raise RuntimeError(f"the 1,000-task run ended {status}")
    return [
        at_most(
            "engine + store per task (1,000 tasks, 2 at a time)", statistics.median(wall) * 1000, "ms", 5.0
        ),
        row("  (CPU time per task)", statistics.median(cpu) * 1000, "ms", "", None),
    ]


def child_for_each(work: Path, quick: bool) -> list[dict[str, Any]]:
    """Issue 17: a for-each task over 200 inputs of a trivial notebook on MemoryExecutor (one fake second per
    iteration, ``concurrency: 2``) with a real SQLite store: (record the run + execute it) / iterations, median.
    Target: <= 10 ms of engine + store per iteration."""
    from jupyter_orchestrate.executors.memory import MemoryExecutor, succeed
    from jupyter_orchestrate.models import RunStatus
    from jupyter_orchestrate.service import OrchestrateService

    inputs = [f"file-{i:03}.csv" for i in range(200)]
    folder = work / "for_each200"
    folder.mkdir(parents=True, exist_ok=True)
    for_each = {"inputs": inputs, "concurrency": 2, "parameter": "label"}
    (folder / "load.ipynb").write_text(json.dumps(notebook({"for_each": for_each})))
    service = OrchestrateService(work / "for-each-state")
    wall, cpu = [], []
    for _ in range(2 if quick else 5):
        executor = MemoryExecutor(default=succeed(1.0, rows=1))
        started, started_cpu = time.perf_counter(), time.process_time()
        runner = service.new_run(folder, executor=executor, clock=executor.clock, max_parallel=2)
        status = runner.execute()
        wall.append((time.perf_counter() - started) / len(inputs))
        cpu.append((time.process_time() - started_cpu) / len(inputs))
        if status != RunStatus.succeeded:
            raise RuntimeError(f"the for-each run ended {status}")
    return [
        at_most(
            "for_each: engine + store per iteration (200, 2 at a time)",
            statistics.median(wall) * 1000,
            "ms",
            10.0,
        ),
        row("  (CPU time per iteration)", statistics.median(cpu) * 1000, "ms", "", None),
    ]


# -- 3. queue --------------------------------------------------------------------------------------------------
def child_queue(work: Path, quick: bool) -> list[dict[str, Any]]:
    """The scheduler's queue behind ``max_concurrent_runs: 2`` (see the module docstring)."""
    import datetime as dt

    from jupyter_orchestrate.executors.memory import MemoryExecutor
    from jupyter_orchestrate.models import FireStatus, RunStatus
    from jupyter_orchestrate.scheduling.scheduler import Scheduler
    from jupyter_orchestrate.service import OrchestrateService

    root = work / "queue-root"
    job_dir = root / "queued"
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "a.ipynb").write_text(json.dumps(notebook({})), encoding="utf-8")
    write_job_file(
        job_dir,
        "max_concurrent_runs: 2\nqueue: true\nschedules:\n  - cron: '* * * * *'\n    catchup: none\n",
    )
    service = OrchestrateService(work / "queue-state")
    job_path = str(job_dir.resolve())
    gate = threading.Event()
    started_order: list[int] = []
    most_active = 0
    lock = threading.Lock()

    class GatedExecutor(MemoryExecutor):
        """Attempts that begin only once the gate opens: the runs stay active while fires arrive."""

        def start(self, handle: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
            gate.wait()
            super().start(handle, parameters, context)

    class Starter:
        """The scheduler's RunStarter: the service's own new_run and start, with a MemoryExecutor per run."""

        store = service.store

        def new_run(self, path: Path, **kwargs: Any) -> Any:
            executor = GatedExecutor()
            return service.new_run(path, executor=executor, clock=executor.clock, **kwargs)

        def start(self, runner: Any) -> object:
            nonlocal most_active
            with lock:
                started_order.append(runner.run_id)
                most_active = max(most_active, len(service.store.active_runs(job_path)))
            return service.start(runner)

    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    scheduler = Scheduler(Starter(), [root], clock=lambda: now, grace_seconds=30)  # type: ignore[arg-type]
    scheduler.tick()  # first sight: the next fire is a minute on
    began = time.perf_counter()
    for _ in range(QUEUED_RUNS):
        now += dt.timedelta(minutes=1)
        scheduler.tick()

    def queued() -> int:
        return sum(1 for f in service.store.fires(job_path, limit=10 * QUEUED_RUNS) if f.status == "queued")

    queued_at_peak = queued()
    # the scheduler stops here (a server restart); another one takes the lease over, and the queue with it
    now += dt.timedelta(seconds=scheduler.lease_seconds + 1)
    scheduler = Scheduler(Starter(), [root], clock=lambda: now, grace_seconds=30)  # type: ignore[arg-type]
    gate.set()
    deadline = time.monotonic() + 30  # 100 runs of no work drain in about 2 s
    while time.monotonic() < deadline:
        scheduler.tick()
        if not queued():
            break
        time.sleep(0.005)
    for thread in [t for t in threading.enumerate() if t.name.startswith("orchestrate-run-")]:
        thread.join(30)
    elapsed = time.perf_counter() - began
    fires = [f for f in service.store.fires(job_path, limit=10 * QUEUED_RUNS) if f.schedule_name]
    fires.sort(key=lambda f: f.scheduled_time)
    run_ids = [f.run_id for f in fires if f.status == FireStatus.started and f.run_id is not None]
    succeeded = [r for r in run_ids if service.get_run(r).status == RunStatus.succeeded]
    out_of_order = sum(1 for a, b in itertools.pairwise(started_order) if b < a) + sum(
        1 for a, b in itertools.pairwise(run_ids) if b < a
    )
    return [
        row(
            f"queue: runs started and succeeded of {len(fires)} fires ({queued_at_peak} queued at once)",
            len(succeeded),
            "runs",
            f"= {QUEUED_RUNS}",
            len(fires) == QUEUED_RUNS and len(succeeded) == QUEUED_RUNS,
        ),
        at_most("queue: runs started out of fire order", out_of_order, "runs", 0),
        at_most("queue: most runs of the job active at once", most_active, "runs", 2),
        row("queue: 100 fires, queue drained, runs ended", elapsed, "s", "", None),
    ]


# -- 4. memory -------------------------------------------------------------------------------------------------
def child_rss_runs(work: Path, quick: bool) -> list[dict[str, Any]]:
    """Consecutive real-kernel runs of a one-task job through one service: RSS after the warm-up versus after."""
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.models import RunStatus
    from jupyter_orchestrate.service import OrchestrateService

    runs = 10 if quick else 100
    job_dir = work / "small"
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "a.ipynb").write_text(json.dumps(notebook({})), encoding="utf-8")
    service = OrchestrateService(work / "rss-state")

    def one() -> None:
        # as the Jupyter server runs it: discovered, recorded, executed on a background thread of the service
        runner = service.new_run(job_dir, job=load_job(job_dir))
        service.start(runner).join()
        if service.get_run(runner.run_id).status != RunStatus.succeeded:
            raise RuntimeError(
                f"run {runner.run_id} did not succeed: {service.get_run(runner.run_id).reason}"
            )

    one()
    one()
    before = _rss()
    started = time.perf_counter()
    for _ in range(runs):
        one()
    seconds = (time.perf_counter() - started) / runs
    growth = (_rss() - before) / MB
    return [
        at_most(f"RSS growth over {runs} consecutive real-kernel runs", growth, "MB", 50, strict=True),
        row("  (seconds per one-task run)", seconds, "s", "", None),
    ]


def child_big_output(work: Path, quick: bool) -> list[dict[str, Any]]:
    """A real-kernel task printing 100 MB: the orchestrator's peak RSS above its RSS before the run."""
    from jupyter_orchestrate.models import RunStatus
    from jupyter_orchestrate.service import OrchestrateService

    job_dir = work / "loud"
    job_dir.mkdir(parents=True, exist_ok=True)
    code = 'line = "x" * 100\nfor i in range(1_000_000):\n    print(f"{i:07d}{line}")  # ~108 MB'
    (job_dir / "loud.ipynb").write_text(json.dumps(notebook({}, code)), encoding="utf-8")
    quiet_dir = work / "quiet"
    quiet_dir.mkdir(parents=True, exist_ok=True)
    (quiet_dir / "a.ipynb").write_text(json.dumps(notebook({})), encoding="utf-8")
    service = OrchestrateService(work / "loud-state")
    # a warm-up run first: what the first run imports and starts (forkserver, lazy imports) is not the output's
    if service.new_run(quiet_dir).execute() != RunStatus.succeeded:
        raise RuntimeError("the warm-up run did not succeed")
    runner = service.new_run(job_dir)
    baseline = peak = _rss()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    status = runner.execute()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if status != RunStatus.succeeded:
        raise RuntimeError(f"the 100 MB run ended {status}: {service.get_run(runner.run_id).reason}")
    return [
        at_most("peak RSS rise, task printing 100 MB", (peak - baseline) / MB, "MB", 50, strict=True),
        row("  (its run's wall time)", seconds, "s", "", None),
    ]


CHILDREN: dict[str, Callable[[Path, bool], list[dict[str, Any]]]] = {
    "validate_in_process": child_validate_in_process,
    "engine": child_engine,
    "for_each": child_for_each,
    "queue": child_queue,
    "rss_runs": child_rss_runs,
    "big_output": child_big_output,
}


def run_child(name: str, work: Path, quick: bool, timeout: float = 900) -> list[dict[str, Any]]:
    """Run ``CHILDREN[name]`` in a fresh interpreter (this script, ``--child``) and return its rows."""
    cmd = [sys.executable, __file__, "--child", name, "--workdir", str(work)] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=work)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    rows: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows


def measure_scale(quick: bool = False, workdir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every figure of this benchmark (see the module docstring).

    Args:
        quick: fewer repeats and 10 instead of 100 consecutive real-kernel runs (under about a minute).
        workdir: where the generated jobs and state homes go (default: a temporary folder, removed after).

    Returns: rows ``{"name", "value", "unit", "target", "passed"}``; ``value`` in ``unit``, ``target`` the
    rule as text (``<= 1``, empty when the figure is reported only), ``passed`` True/False, or None when there
    is no target.

    Raises:
        RuntimeError: a measurement broke (a run did not succeed, a child process failed).
    """
    with tempfile.TemporaryDirectory(prefix="orchestrate-scale-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = measure_validate(work, quick)
        rows += run_child("engine", work, quick)
        rows += run_child("for_each", work, quick)
        rows += run_child("queue", work, quick)
        rows += run_child("rss_runs", work, quick)
        rows += run_child("big_output", work, quick)
        return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table: figure, value, unit, target, PASS/MISS (empty without a target)."""
    header = ("figure", "value", "unit", "target", "")
    cells = [header] + [
        (
            r["name"],
            ""
            if r["value"] is None
            else f"{r['value']:.3g}"
            if isinstance(r["value"], float)
            else str(r["value"]),
            r["unit"],
            r["target"],
            "" if r["passed"] is None else "PASS" if r["passed"] else "MISS",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = [
        "  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(5)) for c in cells
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; under about a minute")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--workdir", metavar="DIR", help="keep the generated jobs and state homes here")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](Path(args.workdir), args.quick)))
        return 0
    started = time.perf_counter()
    rows = measure_scale(args.quick, args.workdir)
    print(format_rows(rows))
    print(f"({time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
