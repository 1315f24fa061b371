"""The dask executor's overhead (issue 16): a workload run by ``jupyter orchestrate run`` on the local executor
and on a Dask cluster of 2 workers x 1 thread on this machine, interleaved, medians printed with the ratio
(target <= 1.2x) and the Dask path's overhead per attempt in ms.

The cluster (a ``dask scheduler`` and two ``dask worker`` processes) is started once before the runs and
passed with ``--dask-scheduler``, as a team with a running cluster uses it; the time a LocalCluster takes to
start (``run --executor dask`` without an address) is printed on its own line.

    python benchmarks/dask_executor.py [--workload wide-40] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_benchmark import compile_package, orchestrate_command, timed  # noqa: E402
from workloads import WORKLOADS, write_workload  # noqa: E402

RATIO_TARGET = 1.2
BIN = Path(sys.executable).parent


def start_cluster(folder: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A scheduler and two single-thread workers on 127.0.0.1; returns its address and the processes."""
    scheduler_file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **quiet,  # type: ignore[call-overload]
        )
    ]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    address = json.loads(scheduler_file.read_text())["address"]
    for n in range(2):
        workdir = folder / f"worker-{n}"
        workdir.mkdir()
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "dask"),
                    "worker",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--local-directory",
                    str(workdir),
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                **quiet,  # type: ignore[call-overload]
            )
        )
    import distributed

    with distributed.Client(address, timeout=60) as client:  # type: ignore[no-untyped-call]
        client.wait_for_workers(2, timeout=60)
    return address, processes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="wide-40", choices=list(WORKLOADS))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args(argv)
    compile_package()
    work = Path(tempfile.mkdtemp(prefix="orchestrate-dask-bench-"))
    address, processes = start_cluster(work)
    runners = {
        "local": ["--max-parallel", "2"],
        "dask, 2 workers x 1 thread": [
            "--max-parallel",
            "2",
            "--executor",
            "dask",
            "--dask-scheduler",
            address,
        ],
    }
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    try:
        # warm the workers once (their first attempt starts their forkserver), as a running cluster is
        folder = work / "warm"
        write_workload("chain-10", folder)
        timed(
            [
                *orchestrate_command(),
                "run",
                str(folder),
                "--home",
                str(work / "warm-home"),
                *runners["dask, 2 workers x 1 thread"],
            ],
            folder,
            dict(os.environ),
            args.timeout,
        )
        for rep in range(args.repeat):
            for name, extra in runners.items():
                folder = work / f"{args.workload}-{rep}-{name.split(',')[0]}"
                write_workload(args.workload, folder)
                cmd = [*orchestrate_command(), "run", str(folder), "--home", str(folder / "home"), *extra]
                took, error = timed(cmd, folder, dict(os.environ), args.timeout)
                if error:
                    sys.exit(f"{name} failed:\n{error}")
                seconds[name].append(took)
                print(f"  {args.workload} {name:28} {took:6.2f} s", file=sys.stderr)
                shutil.rmtree(folder, ignore_errors=True)
        folder = work / "localcluster"
        write_workload("chain-10", folder)
        began = time.perf_counter()
        timed(
            [
                *orchestrate_command(),
                "run",
                str(folder),
                "--home",
                str(folder / "home"),
                "--executor",
                "dask",
            ],
            folder,
            dict(os.environ),
            args.timeout,
        )
        local_cluster_run = time.perf_counter() - began
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    med = {name: statistics.median(v) for name, v in seconds.items()}
    local, dask = med["local"], med["dask, 2 workers x 1 thread"]
    ratio = dask / local
    tasks = len(WORKLOADS[args.workload])
    print("| workload | local | dask, 2 workers x 1 thread | dask / local | overhead per attempt |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.workload} | {local:.2f} s | {dask:.2f} s | {ratio:.2f} {'PASS' if ratio <= RATIO_TARGET else 'MISS'} "
        f"| {(dask - local) * 2 / tasks * 1000:.0f} ms |"
    )
    print(
        f"chain-10 with --executor dask and no scheduler (a LocalCluster started for the run): {local_cluster_run:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
