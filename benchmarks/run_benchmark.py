#!/usr/bin/env python
"""Issue 15's benchmark: jupyter-orchestrate next to papermill loops, Ploomber and the floor runner, in one run.

Workloads (:mod:`workloads`, the notebooks of the shared ``bench/make_notebooks.py``): ``chain-10``,
``fanout-8`` (1 -> 8 -> 1), ``wide-40`` (independent), ``sleep-chain`` (5 x ``sleep(1)``). Every runner gives
each notebook a fresh kernel and writes every executed notebook; each is timed whole, as a subprocess, with
:func:`time.perf_counter` (process start and imports included), on a fresh copy of the workload:

* ``papermill loop``: a bash loop of ``papermill IN OUT -p product OUT`` in topological order;
* ``papermill pool(2)``: :mod:`papermill_pool`, two processes calling ``papermill.execute_notebook``;
* ``ploomber Parallel(2)``: ``ploomber build`` of ``pipeline-parallel.yaml`` (with ``--ploomber`` only);
* ``orchestrate``: ``jupyter orchestrate run FOLDER --home FRESH_HOME`` with all its bookkeeping (SQLite records,
  the executed notebook saved as cells finish, the CLI's live view);
* ``floor``: :mod:`floor`, fresh kernels started ahead of need over nbclient, 2 at a time.

The reference runners run in a lean venv (papermill, ipykernel, nbclient, nbformat, psutil; built once under
``~/.cache/jupyter-orchestrate-bench``) as the issue's figures were measured; the orchestrator runs in this
interpreter; every runner's kernels run this interpreter (a ``python3`` kernelspec with its absolute path, see
:func:`kernel_folder`: the same user-code kernel for all, so the columns differ only by the runner), except
``floor, lean kernel``: the floor runner with its venv's own kernel, as the issue's floor figures. Prints medians, ``ratio = orchestrate / floor`` (target <= 1.15) and the orchestrator's time to
its first task start (from the run record: the first attempt's ``start_time`` after the process was started;
target <= 0.5 s), then the scale figures of :mod:`scale`, :mod:`big_run` and :mod:`server_runs` (runs started through a real
server's REST API, as the sidebar starts them) when those modules are present.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import WORKLOADS, write_workload  # noqa: E402

RATIO_TARGET = 1.15
FIRST_TASK_TARGET_SECONDS = 0.5
RUNNERS = (
    "papermill loop",
    "papermill pool(2)",
    "ploomber Parallel(2)",
    "orchestrate",
    "floor",
    "floor, lean kernel",
)
#: runs of comparison runners timed again after their kernel died (see run_all), reported after the table
RETRIED: list[str] = []
LEAN_PACKAGES = ["papermill", "ipykernel", "nbclient", "nbformat", "psutil"]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jupyter-orchestrate-bench"


def ensure_venv(name: str, packages: list[str]) -> Path:
    """A cached venv under :data:`CACHE` with ``packages`` (pip); returns its python. Built on first use."""
    root = CACHE / name
    python = root / "bin" / "python"
    marker = root / "packages.json"
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == packages:
        return python
    shutil.rmtree(root, ignore_errors=True)
    print(f"building the {name} venv ({', '.join(packages)}) in {root} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "virtualenv", "-q", str(root)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    marker.write_text(json.dumps(packages))
    return python


def orchestrate_command() -> list[str]:
    jupyter = Path(sys.executable).with_name("jupyter")
    return (
        [str(jupyter), "orchestrate"] if jupyter.exists() else [sys.executable, "-m", "jupyter_orchestrate"]
    )


def kernel_folder(root: Path) -> Path:
    """A Jupyter data folder with one ``python3`` kernelspec that runs this interpreter (absolute path).

    Every runner gets it first on ``JUPYTER_PATH``. The installed kernelspec says ``python``, which
    jupyter_client replaces with the *launching* process's interpreter: the lean venv's runners would run a
    lighter kernel (another IPython) than the orchestrator, and the columns would differ by more than the runner.
    """
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3 (benchmark)", "language": "python"})
    )
    return root


def command(
    runner: str, folder: Path, out: Path, lean: Path, ploomber: Path | None, kernels: Path
) -> tuple[list[str], dict]:
    """The command line and environment of ``runner`` on the workload copy ``folder``."""
    env = dict(os.environ)
    if runner != "floor, lean kernel":  # that one: its own venv's kernel, as the floor figures
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernels), env.get("JUPYTER_PATH")]))
    if runner != "orchestrate":
        python = ploomber if runner.startswith("ploomber") else lean
        assert python is not None
        env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"  # the venv's papermill / ploomber
        env.pop("PYTHONPATH", None)
    if runner == "papermill loop":
        loop = (
            f'for nb in $(cat order.txt); do papermill --no-progress-bar "$nb.ipynb" "{out}/$nb.ipynb" -p product "{out}/$nb.ipynb"'
            " || exit 1; done"
        )
        return ["bash", "-c", loop], env
    if runner == "papermill pool(2)":
        return [str(lean), str(HERE / "papermill_pool.py"), str(folder), str(out)], env
    if runner.startswith("floor"):
        return [str(lean), str(HERE / "floor.py"), str(folder), str(out)], env
    if runner == "ploomber Parallel(2)":
        assert ploomber is not None
        return [
            str(ploomber.parent / "ploomber"),
            "build",
            "--entry-point",
            "pipeline-parallel.yaml",
            "--force",
        ], env
    return [*orchestrate_command(), "run", str(folder), "--home", str(out / "home")], env


def first_task_seconds(home: Path, spawned: float) -> float | None:
    """Seconds from the orchestrator's process start (``spawned``, epoch) to its first attempt's start."""
    try:
        with sqlite3.connect(home / "orchestrate.db") as db:
            (first,) = db.execute("select min(start_time) from attempts").fetchone()
    except sqlite3.Error:
        return None
    return datetime.fromisoformat(first).timestamp() - spawned if first else None


def timed(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[float, str | None]:
    """Run ``cmd``; returns (seconds, None) or (seconds, the error's tail)."""
    began = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return time.perf_counter() - began, f"timed out after {timeout:g} s"
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        return seconds, (done.stderr or done.stdout)[-2000:]
    return seconds, None


def compile_package() -> None:
    """Write this package's bytecode, as ``pip install`` does for a wheel (the lean venv's packages have theirs).

    An editable install has none, and where ``PYTHONDONTWRITEBYTECODE`` is set (this machine) Python never
    writes it, so every ``run`` would compile the package's sources again (~0.1 s of the CLI, more in its
    forkserver), a cost no installed user pays.
    """
    import compileall

    import jupyter_orchestrate

    compileall.compile_dir(str(Path(jupyter_orchestrate.__file__).parent), quiet=1)


def run_all(args: argparse.Namespace) -> tuple[dict, dict]:
    compile_package()
    lean = ensure_venv("lean", LEAN_PACKAGES)
    ploomber = ensure_venv("ploomber", [*LEAN_PACKAGES, "ploomber"]) if args.ploomber else None
    runners = [r for r in RUNNERS if (r != "ploomber Parallel(2)" or ploomber) and r not in args.skip]
    seconds: dict = {w: {r: [] for r in runners} for w in args.workloads}
    first: dict = {w: [] for w in args.workloads}
    work = Path(tempfile.mkdtemp(prefix="orchestrate-bench-"))
    kernels = kernel_folder(work / "jupyter")
    try:
        for rep in range(args.repeat):
            for workload in args.workloads:
                for runner in runners:  # interleaved, so that a burst of load spreads over every runner
                    folder = work / f"{workload}-{''.join(c if c.isalnum() else '-' for c in runner)}-{rep}"
                    write_workload(workload, folder)
                    out = folder / "out"
                    out.mkdir()
                    cmd, env = command(runner, folder, out, lean, ploomber, kernels)
                    spawned = time.time()
                    took, error = timed(cmd, folder, env, args.timeout)
                    if error and runner != "orchestrate" and "before replying to kernel_info" in error:
                        # a comparison runner's kernel died before replying to kernel_info (once in ~50 papermill
                        # pool runs here; two processes start kernels at once, each picking its free ports): that
                        # run is timed again, once, and counted in the report. Ours is never timed again.
                        print(f"  {workload:12} {runner:22} kernel died, timed again", file=sys.stderr)
                        RETRIED.append(f"{workload} / {runner}")
                        shutil.rmtree(out, ignore_errors=True)
                        out.mkdir()
                        spawned = time.time()
                        took, error = timed(cmd, folder, env, args.timeout)
                    if error:
                        sys.exit(f"{runner} failed on {workload}:\n{error}")
                    seconds[workload][runner].append(took)
                    if runner == "orchestrate":
                        first[workload].append(first_task_seconds(out / "home", spawned))
                    print(f"  {workload:12} {runner:22} {took:6.2f} s", file=sys.stderr)
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return seconds, first


def report(seconds: dict, first: dict) -> list[str]:
    """The table as lines of text (markdown), ratios and first-task figures included."""
    runners = list(next(iter(seconds.values())))
    lines = [
        "| workload | " + " | ".join(runners) + " | orchestrate / floor | first task start |",
        "|---" * (len(runners) + 3) + "|",
    ]
    for workload, by_runner in seconds.items():
        med = {r: statistics.median(v) for r, v in by_runner.items()}
        ratio = med["orchestrate"] / med["floor"] if "floor" in med and "orchestrate" in med else None
        starts = [s for s in first.get(workload, []) if s is not None]
        start = statistics.median(starts) if starts else None
        cells = [f"{med[r]:.2f} s" for r in runners]
        verdict = "" if ratio is None else f"{ratio:.2f} {'PASS' if ratio <= RATIO_TARGET else 'MISS'}"
        first_text = (
            ""
            if start is None
            else (f"{start:.2f} s {'PASS' if start <= FIRST_TASK_TARGET_SECONDS else 'MISS'}")
        )
        lines.append(f"| {workload} | " + " | ".join(cells) + f" | {verdict} | {first_text} |")
    return lines


def scale_lines(quick: bool) -> list[str]:
    """Rows of the engine-scale benchmarks (:mod:`scale`, :mod:`big_run`) that are present."""
    rows: list[dict] = []
    for module, function in (
        ("scale", "measure_scale"),
        ("big_run", "measure_big_run"),
        ("server_runs", "measure_server"),
    ):
        if (HERE / f"{module}.py").exists():
            rows += getattr(__import__(module), function)(quick=quick)
    if not rows:
        return []
    lines = ["", "| scale figure | value | target | |", "|---|---|---|---|"]
    for row in rows:
        verdict = {True: "PASS", False: "MISS"}.get(row["passed"], "")  # None: a figure to report
        value = "" if row["value"] is None else f"{row['value']:.4g} {row['unit']}"
        lines.append(f"| {row['name']} | {value} | {row['target']} | {verdict} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--repeat", type=int, default=2, help="runs of each runner on each workload (median)")
    ap.add_argument("--skip", nargs="*", default=[], choices=RUNNERS, help="runners to leave out")
    ap.add_argument("--ploomber", action="store_true", help="add the Ploomber column (builds its venv once)")
    ap.add_argument("--no-scale", action="store_true", help="leave out the scale figures")
    ap.add_argument("--quick-scale", action="store_true", help="smaller scale measurements")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per timed command")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M")
    load = os.getloadavg()[0]
    seconds, first = run_all(args)
    lines = [
        f"{started}, {os.cpu_count()} cores, load average {load:.1f} at start, medians of {args.repeat}",
        "",
    ]
    lines += report(seconds, first)
    if RETRIED:
        lines += ["", f"timed again after a kernel of theirs died: {', '.join(RETRIED)}"]
    if not args.no_scale:
        lines += scale_lines(args.quick_scale)
    print("\n".join(lines))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seconds": seconds, "first_task_seconds": first}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
