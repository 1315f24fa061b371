#!/usr/bin/env python
"""Benchmark: jupyter-orchestrate versus a shell loop of papermill CLI calls.

Generates small, trivial notebook workloads at run time, runs each one

* as a sequential ``bash -c 'for nb in ...; do papermill IN OUT; done'`` loop
  (the baseline: what people do without an orchestrator), and
* as a job: ``jupyter orchestrate run FOLDER --home STATE_DIR [--max-parallel N]``,

timing both whole (process start included) with :func:`time.perf_counter`, and
prints the ratio orchestrator / papermill loop next to the target for the workload.

Workloads (one folder per workload; the folder is the job):

* ``chain10``: 10 notebooks, each depends on the previous one.
* ``fanout``:  1 root -> 8 middle tasks -> 1 sink (depends on all 8).
* ``wide40``:  40 independent notebooks.

Only the standard library and nbformat are required; rich is used for the table
when it is installed.  Run ``python benchmarks/run_benchmark.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:
    import nbformat
    from nbformat import v4 as nbf
except ImportError:  # pragma: no cover - nbformat is a dependency of the package
    sys.exit("run_benchmark.py needs nbformat: pip install nbformat")


# ---------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------

#: Target for ratio = orchestrator seconds / papermill-loop seconds (None: report only).
TARGETS: dict[str, float | None] = {
    "chain10": 0.50,
    "fanout": None,
    "wide40": 0.33,
}

ALL_WORKLOADS = ("chain10", "fanout", "wide40")

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def workload_tasks(name: str) -> list[tuple[str, list[str]]]:
    """Return ``[(task_key, depends_on), ...]`` in a topological (= generation) order."""
    if name == "chain10":
        keys = [f"step_{i:02d}" for i in range(1, 11)]
        return [(k, [keys[i - 1]] if i else []) for i, k in enumerate(keys)]
    if name == "fanout":
        mids = [f"mid_{i}" for i in range(1, 9)]
        return [("root", [])] + [(m, ["root"]) for m in mids] + [("sink", list(mids))]
    if name == "wide40":
        return [(f"nb_{i:02d}", []) for i in range(1, 41)]
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(ALL_WORKLOADS)}")


def make_notebook(task_key: str, depends_on: list[str]) -> nbformat.NotebookNode:
    nb = nbf.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["orchestrate"] = {"task_key": task_key, "depends_on": list(depends_on)}
    nb.cells = [
        nbf.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbf.new_code_cell("y = x + 1\nprint(y)"),
    ]
    return nb


def generate_workload(name: str, folder: Path) -> list[str]:
    """Write the workload's notebooks (and job.yaml) into ``folder``; return stems in order."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stems = []
    for key, deps in workload_tasks(name):
        nb = make_notebook(key, deps)
        nbformat.validate(nb)
        nbformat.write(nb, folder / f"{key}.ipynb")
        stems.append(key)
    (folder / "job.yaml").write_text(f"name: {name}\n", encoding="utf-8")
    return stems


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def _find_executable(name: str) -> str | None:
    """Prefer the script installed next to sys.executable, then PATH."""
    # The unresolved location first: in a venv, sys.executable is a symlink into the base install.
    dirs = dict.fromkeys([Path(sys.executable).parent, Path(sys.executable).resolve().parent])
    for d in dirs:
        for candidate in (name, f"{name}.exe"):
            p = d / candidate
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return shutil.which(name)


def papermill_executable() -> str:
    exe = _find_executable("papermill")
    if exe is None:
        sys.exit("papermill executable not found (next to sys.executable or on PATH)")
    return exe


def orchestrate_base_command() -> list[str] | None:
    """``[jupyter, 'orchestrate']`` or ``[jupyter-orchestrate]``; None if neither is found."""
    jupyter = _find_executable("jupyter")
    if jupyter is not None:
        return [jupyter, "orchestrate"]
    jo = _find_executable("jupyter-orchestrate")
    if jo is not None:
        return [jo]
    return None


def papermill_loop_script(papermill: str, in_dir: Path, out_dir: Path, stems: list[str]) -> str:
    """The baseline: a plain sequential shell loop of papermill CLI calls."""
    names = " ".join(shlex.quote(s) for s in stems)
    return (
        f"PAPERMILL={shlex.quote(papermill)}\n"
        f"IN={shlex.quote(str(in_dir))}\n"
        f"OUT={shlex.quote(str(out_dir))}\n"
        f"for nb in {names}; do\n"
        f'  "$PAPERMILL" "$IN/$nb.ipynb" "$OUT/$nb.ipynb" || exit $?\n'
        f"done\n"
    )


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


@dataclass
class RunResult:
    ok: bool
    seconds: float
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    note: str = ""


def timed_run(cmd: list[str], *, cwd: Path, timeout: float) -> RunResult:
    """Run ``cmd`` to completion, capturing output; wall time measured around the whole process.

    On POSIX the child gets its own process group so that, on timeout, it and anything it
    started (kernels) are killed together rather than left behind.
    """
    posix = os.name == "posix"
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=posix,
        )
    except OSError as exc:
        return RunResult(False, time.perf_counter() - start, None, "", str(exc), "could not start")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        elapsed = time.perf_counter() - start
        if posix:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            proc.kill()
        out, err = proc.communicate()
        return RunResult(False, elapsed, None, out or "", err or "", f"timed out after {timeout:g}s")
    elapsed = time.perf_counter() - start
    return RunResult(proc.returncode == 0, elapsed, proc.returncode, out or "", err or "")


def run_papermill_loop(
    papermill: str, job_dir: Path, out_dir: Path, stems: list[str], *, cwd: Path, timeout: float
) -> RunResult:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    script = papermill_loop_script(papermill, job_dir, out_dir, stems)
    result = timed_run(["bash", "-c", script], cwd=cwd, timeout=timeout)
    if result.ok:
        missing = [s for s in stems if not (out_dir / f"{s}.ipynb").is_file()]
        if missing:
            result.ok = False
            result.note = f"papermill loop exited 0 but outputs are missing: {', '.join(missing)}"
    return result


def orchestrate_command(base: list[str], job_dir: Path, home: Path, max_parallel: int | None) -> list[str]:
    cmd = [*base, "run", str(job_dir), "--home", str(home)]
    if max_parallel is not None:
        cmd += ["--max-parallel", str(max_parallel)]
    return cmd


def run_orchestrator(
    base: list[str], source_dir: Path, run_root: Path, max_parallel: int | None, *, cwd: Path, timeout: float
) -> tuple[RunResult, list[str]]:
    """Run one fresh copy of the job folder with a fresh state dir (no cached state between repeats)."""
    if run_root.exists():
        shutil.rmtree(run_root)
    run_root.mkdir(parents=True)
    job_dir = run_root / source_dir.name  # keep the folder name = workload name
    shutil.copytree(source_dir, job_dir)
    home = run_root / "home"
    home.mkdir()
    cmd = orchestrate_command(base, job_dir, home, max_parallel)
    return timed_run(cmd, cwd=cwd, timeout=timeout), cmd


def warm_up(papermill: str, workdir: Path, timeout: float) -> None:
    """One untimed papermill run so neither side pays for cold disk / bytecode caches."""
    src = workdir / "warmup"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    nbformat.write(make_notebook("warmup", []), src / "warmup.ipynb")
    res = timed_run(
        [papermill, str(src / "warmup.ipynb"), str(src / "warmup.out.ipynb")], cwd=workdir, timeout=timeout
    )
    if not res.ok:
        print_failure("warm-up papermill run", res)


def print_failure(what: str, res: RunResult, cmd: list[str] | None = None) -> None:
    print(
        f"\n!! {what} FAILED (exit code {res.returncode}){': ' + res.note if res.note else ''}",
        file=sys.stderr,
    )
    if cmd:
        print(f"   command: {shlex.join(cmd)}", file=sys.stderr)
    if res.stdout.strip():
        print("---- stdout ----", file=sys.stderr)
        print(res.stdout.rstrip(), file=sys.stderr)
    if res.stderr.strip():
        print("---- stderr ----", file=sys.stderr)
        print(res.stderr.rstrip(), file=sys.stderr)
    print("----------------", file=sys.stderr)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass
class WorkloadResult:
    workload: str
    notebooks: int
    target: float | None
    papermill_runs: list[float] = field(default_factory=list)
    orchestrator_runs: list[float] = field(default_factory=list)
    papermill_failed: bool = False
    orchestrator_failed: bool = False
    papermill_skipped: bool = False
    orchestrator_skipped: bool = False
    orchestrator_command: list[str] | None = None

    @property
    def papermill_seconds(self) -> float | None:
        if self.papermill_failed or not self.papermill_runs:
            return None
        return statistics.median(self.papermill_runs)

    @property
    def orchestrator_seconds(self) -> float | None:
        if self.orchestrator_failed or not self.orchestrator_runs:
            return None
        return statistics.median(self.orchestrator_runs)

    @property
    def ratio(self) -> float | None:
        p, o = self.papermill_seconds, self.orchestrator_seconds
        if p is None or o is None or p <= 0:
            return None
        return o / p

    @property
    def status(self) -> str:
        if self.papermill_failed or self.orchestrator_failed:
            return "FAILED"
        r = self.ratio
        if r is None:
            return "-"
        if self.target is None:
            return "report"
        return "PASS" if r <= self.target else "MISS"

    def to_json(self) -> dict:
        d = asdict(self)
        n = self.notebooks
        d.update(
            papermill_seconds=self.papermill_seconds,
            orchestrator_seconds=self.orchestrator_seconds,
            papermill_seconds_per_notebook=(
                self.papermill_seconds / n if self.papermill_seconds is not None else None
            ),
            orchestrator_seconds_per_notebook=(
                self.orchestrator_seconds / n if self.orchestrator_seconds is not None else None
            ),
            ratio=self.ratio,
            status=self.status,
        )
        return d


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def table_rows(results: list[WorkloadResult]) -> tuple[list[str], list[list[str]]]:
    header = [
        "workload",
        "notebooks",
        "papermill loop s",
        "pm s/nb",
        "orchestrator s",
        "orch s/nb",
        "ratio",
        "target",
        "result",
    ]
    rows = []
    for r in results:
        p, o, n = r.papermill_seconds, r.orchestrator_seconds, r.notebooks
        pm = "skipped" if r.papermill_skipped else ("failed" if r.papermill_failed else _fmt(p))
        orch = "skipped" if r.orchestrator_skipped else ("failed" if r.orchestrator_failed else _fmt(o))
        rows.append(
            [
                r.workload,
                str(n),
                pm,
                _fmt(p / n if p is not None else None, ".3f"),
                orch,
                _fmt(o / n if o is not None else None, ".3f"),
                _fmt(r.ratio, ".3f"),
                f"<= {r.target:.2f}" if r.target is not None else "report only",
                r.status,
            ]
        )
    return header, rows


def print_table(results: list[WorkloadResult], title: str, use_rich: bool) -> None:
    header, rows = table_rows(results)
    if use_rich:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            use_rich = False
    if use_rich:
        styles = {"PASS": "bold green", "MISS": "bold yellow", "FAILED": "bold red"}
        table = Table(title=title)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            style = styles.get(row[-1])
            table.add_row(*row[:-1], f"[{style}]{row[-1]}[/]" if style else row[-1])
        console = Console()
        if not console.is_terminal:  # piped / redirected: don't squeeze the table into 80 columns
            console = Console(width=max(console.width, 120))
        console.print(table)
        return
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    print(title)
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Compare `jupyter orchestrate run` against a shell loop of papermill CLI calls."
    )
    ap.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help=f"comma-separated subset of {','.join(ALL_WORKLOADS)} (default: all)",
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per workload and side; the median is reported"
    )
    ap.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        help="pass --max-parallel N to the orchestrator (default: let it choose)",
    )
    ap.add_argument("--skip-baseline", action="store_true", help="do not run the papermill loop")
    ap.add_argument("--skip-orchestrator", action="store_true", help="do not run the orchestrator")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    ap.add_argument(
        "--workdir",
        metavar="DIR",
        help="where to generate workloads and outputs (default: a temp dir, removed afterwards)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp workdir")
    ap.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds allowed per timed run (default 1800)"
    )
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up papermill run")
    ap.add_argument("--no-rich", action="store_true", help="plain-text table even if rich is installed")
    args = ap.parse_args(argv)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in ALL_WORKLOADS]
    if unknown or not args.workloads:
        ap.error(f"unknown workload(s) {unknown}; choose from {','.join(ALL_WORKLOADS)}")
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.max_parallel is not None and args.max_parallel < 1:
        ap.error("--max-parallel must be >= 1")
    if args.skip_baseline and args.skip_orchestrator:
        ap.error("nothing to do: both --skip-baseline and --skip-orchestrator given")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    if args.workdir:
        workdir = Path(args.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        workdir = Path(tempfile.mkdtemp(prefix="jo-bench-"))
        cleanup = not args.keep

    papermill = None if args.skip_baseline else papermill_executable()
    orch_base = None
    if not args.skip_orchestrator:
        orch_base = orchestrate_base_command()
        if orch_base is None:
            sys.exit("neither `jupyter` nor `jupyter-orchestrate` found next to sys.executable or on PATH")

    print(f"workdir:       {workdir}")
    print(
        f"python:        {sys.executable} ({platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs)"
    )
    if papermill:
        print(f"baseline:      bash -c 'for nb in ...; do {papermill} IN/$nb.ipynb OUT/$nb.ipynb; done'")
    if orch_base:
        mp = f" --max-parallel {args.max_parallel}" if args.max_parallel else ""
        print(f"orchestrator:  {shlex.join(orch_base)} run FOLDER --home STATE_DIR{mp}")
    print(f"repeat:        {args.repeat} (median reported)")

    results: list[WorkloadResult] = []
    try:
        if papermill and not args.no_warmup:
            warm_up(papermill, workdir, args.timeout)

        for name in args.workloads:
            job_dir = workdir / "workloads" / name
            stems = generate_workload(name, job_dir)
            res = WorkloadResult(
                name,
                len(stems),
                TARGETS[name],
                papermill_skipped=args.skip_baseline,
                orchestrator_skipped=args.skip_orchestrator,
            )
            results.append(res)
            for rep in range(1, args.repeat + 1):
                run_root = workdir / "runs" / name / f"r{rep}"
                tag = f"{name} [{rep}/{args.repeat}]"
                if papermill and not res.papermill_failed:
                    print(f"{tag} papermill loop ...", end=" ", flush=True)
                    r = run_papermill_loop(
                        papermill, job_dir, run_root / "papermill", stems, cwd=workdir, timeout=args.timeout
                    )
                    print(f"{r.seconds:.2f}s" if r.ok else "FAILED", flush=True)
                    if r.ok:
                        res.papermill_runs.append(r.seconds)
                    else:
                        res.papermill_failed = True
                        print_failure(f"{tag} papermill loop", r)
                if orch_base and not res.orchestrator_failed:
                    print(f"{tag} orchestrator ...", end=" ", flush=True)
                    r, cmd = run_orchestrator(
                        orch_base,
                        job_dir,
                        run_root / "orchestrate",
                        args.max_parallel,
                        cwd=workdir,
                        timeout=args.timeout,
                    )
                    res.orchestrator_command = cmd
                    print(f"{r.seconds:.2f}s" if r.ok else "FAILED", flush=True)
                    if r.ok:
                        res.orchestrator_runs.append(r.seconds)
                    else:
                        res.orchestrator_failed = True
                        print_failure(f"{tag} orchestrator", r, cmd)
    finally:
        if cleanup:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(
        results,
        "jupyter-orchestrate vs papermill CLI loop (median of "
        f"{args.repeat} run{'s' if args.repeat != 1 else ''})",
        use_rich=not args.no_rich,
    )
    print(
        "ratio = orchestrator seconds / papermill loop seconds (whole job, process start included); "
        "targets: chain10 <= 0.50, wide40 <= 0.33, fanout report only."
    )

    if args.json:
        payload = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": sys.executable,
            "python_version": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "repeat": args.repeat,
            "max_parallel": args.max_parallel,
            "papermill_executable": papermill,
            "orchestrator_command": orch_base,
            "results": [r.to_json() for r in results],
        }
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")

    return 1 if any(r.status == "FAILED" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
