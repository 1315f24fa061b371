"""Resume from the failed cell versus a repair from the top, on a task whose earlier cells are slow.

Usage::

    python benchmarks/resume.py [--repeat 3] [--cell-seconds 2] [--cells 5] [--no-downstream] [--json FILE]

Builds a job at run time in a temp dir (nothing is downloaded): task ``compute`` has ``--cells`` code cells that
each ``time.sleep(--cell-seconds)`` and append to a list (10 s of work by default), then a cell that fails until
``fixed.flag`` exists, then a cell that publishes a task value; task ``report`` (unless ``--no-downstream``)
depends on it and reads that value. Each repetition, with a fresh copy of the job and a fresh ``--home``:

- (a) ``run JOB --keep-failed-kernels 600`` fails in the flag cell and keeps its kernel; ``fixed.flag`` is created;
  ``repair RUN --resume`` is timed;
- (b) ``run JOB`` fails the same way (no kernel kept, so the repair has nothing to reap); ``fixed.flag`` is
  created; ``repair RUN`` (from the top) is timed.

Only the repairs are timed, each as a whole ``python -m jupyter_orchestrate`` subprocess with
:func:`time.perf_counter` (interpreter start, kernel start for the downstream task included). After each repair
the script checks the run succeeded (and for (a) that the attempt resumed from the flag cell). Prints the medians
and ``ratio = resume / repair`` against the target (<= 0.2) as a PASS/FAIL line; exits 1 if any command fails,
not on a FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat import v4 as nbf

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.2
KEEP_SECONDS = 600
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_ORCHESTRATE_HOME"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _notebook(cells: list[str], orchestrate: dict, parameters: str | None = None) -> nbformat.NotebookNode:
    nb_cells = []
    if parameters is not None:
        nb_cells.append(nbf.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    nb_cells += [nbf.new_code_cell(source) for source in cells]
    nb = nbf.new_notebook(cells=nb_cells)
    nb.metadata.kernelspec = KERNELSPEC
    nb.metadata.language_info = {"name": "python"}
    nb.metadata.orchestrate = orchestrate
    return nb


def build_job(folder: Path, cells: int, cell_seconds: float, downstream: bool) -> int:
    """Write the job into ``folder``; returns the 0-based index of the failing cell of ``compute``."""
    folder.mkdir(parents=True)
    slow = [f"time.sleep({cell_seconds})\nstate.append(list(range(100_000)))" for _ in range(cells)]
    source = [
        "import os, time\nstate = []",
        *slow,
        "assert os.path.exists('fixed.flag'), 'fixed.flag is missing'",
        "from jupyter_orchestrate import task_values\ntask_values.set('rows', sum(len(s) for s in state))",
    ]
    nbformat.write(_notebook(source, {}), str(folder / "compute.ipynb"))
    if downstream:
        report = _notebook(
            ["open('report.txt', 'w').write(str(rows))"],
            {"depends_on": ["compute"], "parameters": {"rows": "{{tasks.compute.values.rows}}"}},
            parameters="rows = 0",
        )
        nbformat.write(report, str(folder / "report.ipynb"))
    return len(source) - 2


def cli(home: Path, *args: str, timeout: float) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``python -m jupyter_orchestrate --home HOME ARGS``; returns (seconds to exit, the process)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return time.perf_counter() - start, done


def _check(done: subprocess.CompletedProcess[str], code: int, what: str) -> None:
    if done.returncode != code:
        sys.exit(f"{what}: exit code {done.returncode}, expected {code}\n{done.stdout}\n{done.stderr}")


def failed_run(job: Path, home: Path, keep: bool, timeout: float) -> int:
    """Run the job (it fails in the flag cell), create fixed.flag; returns the run id."""
    args = ["run", str(job), "--json"] + (["--keep-failed-kernels", str(KEEP_SECONDS)] if keep else [])
    _, done = cli(home, *args, timeout=timeout)
    _check(done, 1, f"run {job}")
    run_id = int(json.loads(done.stdout)["run_id"])
    (job / "fixed.flag").touch()
    return run_id


def timed_repair(home: Path, run_id: int, resume: bool, failing_cell: int, timeout: float) -> float:
    """Time ``repair RUN [--resume]`` and check the run succeeded (and resumed at the failing cell)."""
    seconds, done = cli(home, "repair", str(run_id), *(["--resume"] if resume else []), timeout=timeout)
    _check(done, 0, f"repair {run_id}{' --resume' if resume else ''} (home {home})")
    _, shown = cli(home, "show", str(run_id), "--json", timeout=timeout)
    run = json.loads(shown.stdout)
    if run["status"] != "succeeded":
        sys.exit(f"run {run_id} of {home} ended {run['status']} after the repair")
    compute = next(t for t in run["task_runs"] if t["task_key"] == "compute")
    resumed_from = compute["attempts"][-1].get("resumed_from_cell")
    if resume and resumed_from != failing_cell:
        sys.exit(f"the resume of run {run_id} started at cell index {resumed_from}, not {failing_cell}")
    if not resume and resumed_from is not None:
        sys.exit(
            f"the repair of run {run_id} resumed (from cell index {resumed_from}) instead of starting over"
        )
    return seconds


def warm_pair(base: Path, cells: int, cell_seconds: float, downstream: bool) -> tuple[float, float]:
    """(resume seconds, repair seconds) in this long-lived process, through the service API as the Jupyter
    server executes runs and repairs (its forkserver, started by the first run, stays warm): a failed run with
    kept kernels and its ``new_repair(resume=True)``, then a failed run and its ``new_repair()``."""
    sys.path.insert(0, str(REPO))
    from jupyter_orchestrate.models import RunStatus
    from jupyter_orchestrate.service import OrchestrateService

    figures = []
    for resume in (True, False):
        folder = base / ("warm-resume" if resume else "warm-repair")
        failing = build_job(folder / "job", cells, cell_seconds, downstream)
        service = OrchestrateService(folder / "home")
        runner = service.new_run(folder / "job", keep_failed_kernels_seconds=KEEP_SECONDS if resume else 0)
        try:
            runner.execute()
        finally:
            runner.executor.close()
        (folder / "job" / "fixed.flag").touch()
        start = time.perf_counter()
        runner = service.new_repair(runner.run_id, resume=resume)
        try:
            status = runner.execute()
        finally:
            runner.executor.close()
        figures.append(time.perf_counter() - start)
        run = service.get_run(runner.run_id)
        resumed = run.task_run("compute").attempts[-1].resumed_from_cell
        if status != RunStatus.succeeded or resumed != (failing if resume else None):
            sys.exit(
                f"the warm {'resume' if resume else 'repair'} ended {status.value} (resumed from {resumed})"
            )
    return figures[0], figures[1]


def main() -> int:
    """Measure and print the figures (see the module docstring); returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of (a) and (b) (default 3)")
    parser.add_argument("--cells", type=int, default=5, help="slow code cells before the failing one (5)")
    parser.add_argument("--cell-seconds", type=float, default=2.0, help="sleep of each slow cell (2.0)")
    parser.add_argument("--no-downstream", action="store_true", help="leave out the downstream task")
    parser.add_argument("--timeout", type=float, default=300.0, help="limit of each command, seconds (300)")
    parser.add_argument(
        "--workdir", type=Path, help="keep the jobs and state homes here (default: a temp dir)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument(
        "--mode",
        choices=("cli", "warm", "both"),
        default="both",
        help="cli: each repair a fresh `python -m jupyter_orchestrate` process; warm: repairs through the "
        "service API in this long-lived process, as the Jupyter server (sidebar) runs them (default both)",
    )
    args = parser.parse_args()

    work = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="orchestrate-resume-"))
    resume_s: list[float] = []
    repair_s: list[float] = []
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    warm_resume: list[float] = []
    warm_repair: list[float] = []
    try:
        for i in range(args.repeat if args.mode != "cli" else 0):
            r, p = warm_pair(work / f"{i}-warm", args.cells, args.cell_seconds, not args.no_downstream)
            warm_resume.append(r)
            warm_repair.append(p)
            print(f"repetition {i + 1}: warm resume {r:6.2f} s, warm repair {p:6.2f} s")
        for i in range(args.repeat if args.mode != "warm" else 0):
            for kind in ("resume", "repair"):
                base = work / f"{i}-{kind}"
                failing = build_job(base / "job", args.cells, args.cell_seconds, not args.no_downstream)
                run_id = failed_run(base / "job", base / "home", kind == "resume", args.timeout)
                seconds = timed_repair(base / "home", run_id, kind == "resume", failing, args.timeout)
                (resume_s if kind == "resume" else repair_s).append(seconds)
                print(
                    f"repetition {i + 1}: {'repair --resume' if kind == 'resume' else 'repair':<16} {seconds:6.2f} s"
                )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    verdicts = []
    figures: dict[str, dict[str, float]] = {}
    for mode, (resumes, repairs) in {"warm": (warm_resume, warm_repair), "cli": (resume_s, repair_s)}.items():
        if not resumes:
            continue
        r, p = statistics.median(resumes), statistics.median(repairs)
        verdict = "PASS" if r / p <= TARGET else "FAIL"
        verdicts.append(verdict)
        figures[mode] = {"resume_median_seconds": r, "repair_median_seconds": p, "ratio": r / p}
        print(
            f"{mode:<4}: resume {r:6.2f} s, repair {p:6.2f} s, ratio = {r / p:.3f}   target <= {TARGET}   {verdict}"
        )
    if not resume_s:  # warm only
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"benchmark": "resume", "figures": figures}, indent=2) + "\n")
        return 0
    resume, repair = statistics.median(resume_s), statistics.median(repair_s)
    ratio = resume / repair
    print(
        f"{sys.executable} on {os.cpu_count()} cores, load average {load_before:.1f} before, {load_after:.1f} after; "
        f"medians of {args.repeat}; {args.cells} cells x {args.cell_seconds:g} s before the failing cell"
        f"{'' if args.no_downstream else ', 1 downstream task'}"
    )
    print(f"repair --resume  {resume:6.2f} s")
    print(f"repair           {repair:6.2f} s")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"ratio = resume / repair = {ratio:.3f}   target <= {TARGET}   {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "benchmark": "resume",
            "python": sys.executable,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average": [load_before, load_after],
            "cells": args.cells,
            "cell_seconds": args.cell_seconds,
            "downstream": not args.no_downstream,
            "repeat": args.repeat,
            "resume_seconds": resume_s,
            "repair_seconds": repair_s,
            "resume_median_seconds": resume,
            "repair_median_seconds": repair,
            "ratio": ratio,
            "target": TARGET,
            "status": verdict,
            "figures": figures,
            "warm_resume_seconds": warm_resume,
            "warm_repair_seconds": warm_repair,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
