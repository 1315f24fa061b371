"""Latency before anything happens: ``validate`` and the first line of ``run``, as ratios to ``import nbformat``.

Usage::

    python benchmarks/latency.py [--repeat 5] [--job example_notebooks/green_energy]

Every figure is the median of ``--repeat`` fresh processes of this interpreter, so the ratios compare like with
like in this environment (the cost of ``import nbformat`` depends on what else is installed, PERFORMANCE.md):

- ``import nbformat``: ``python -c "import nbformat"`` (the reference, ratio 1.0);
- ``validate``: ``python -m jupyter_orchestrate validate JOB`` from start to exit (goal: ratio below 1);
- ``run: first line``: from starting ``python -m jupyter_orchestrate run`` on a copy of JOB (fresh state home) to
  its first line on stderr (goal: within 0.5 s on an idle machine); ``run: total`` to its exit.

Prints the figures and the ratios; asserts nothing (the machine decides the numbers, see the README).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_ORCHESTRATE_HOME"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def wall(args: list[str], cwd: Path) -> float:
    """Seconds from starting ``args`` to its exit (raises if it fails)."""
    start = time.perf_counter()
    subprocess.run(
        args, cwd=cwd, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def first_line(job: Path, work: Path, index: int) -> tuple[float, float, str]:
    """Run a fresh copy of ``job``: seconds to the first stderr line, seconds to exit, and that line."""
    copy = work / f"run-{index}" / job.name
    shutil.copytree(
        job,
        copy,
        ignore=shutil.ignore_patterns("output", ".orchestrate", "orchestrate_runs", ".ipynb_checkpoints"),
    )
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(copy.parent / "state"), "run", str(copy)],
        cwd=copy.parent,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    first = time.perf_counter() - start
    process.stderr.read()
    code = process.wait()
    total = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"the run of {copy} failed (exit code {code})")
    return first, total, line.strip()


def main() -> None:
    """Measure and print the figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--job", type=Path, default=REPO / "example_notebooks" / "green_energy")
    args = parser.parse_args()
    job = args.job.resolve()
    py = sys.executable
    figures: dict[str, float] = {}
    figures["import nbformat"] = statistics.median(
        wall([py, "-c", "import nbformat"], REPO) for _ in range(args.repeat)
    )
    figures["validate"] = statistics.median(
        wall([py, "-m", "jupyter_orchestrate", "validate", str(job)], REPO) for _ in range(args.repeat)
    )
    with tempfile.TemporaryDirectory() as tmp:
        runs = [first_line(job, Path(tmp), i) for i in range(args.repeat)]
    figures["run: first line"] = statistics.median(r[0] for r in runs)
    figures["run: total"] = statistics.median(r[1] for r in runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{py} on {os.cpu_count()} cores, load average {load:.1f}; medians of {args.repeat}; job {job.name}"
    )
    print(f"first line of run: {runs[0][2]!r}")
    reference = figures["import nbformat"]
    for name, seconds in figures.items():
        print(f"{name:<18} {seconds:6.3f} s   {seconds / reference:5.2f} x import nbformat")


if __name__ == "__main__":
    main()
