#!/usr/bin/env python
"""Runs started the way the sidebar starts them: ``POST jobs/{job}/runs`` to a real Jupyter server with the
extension, its warm kernel pool on (``OrchestrateApp.warm_kernels``, default 2).

The server runs as a subprocess on a temp root holding the ``chain-10`` workload (:mod:`workloads`). The job
is run ``--runs`` times (the first finds no warm kernel; later ones find the kernel the previous run left
ready). For each run it prints, from the request's time and the run document's attempt times:

* request -> first task start (the first attempt's ``start_time``; target <= 0.5 s),
* request -> first kernel ready (``kernel_ready_time``: what the warm pool hides),
* request -> run end seen (polled every 0.05 s).

``measure_server(quick)`` returns the rows for ``run_benchmark.py``'s scale table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import write_workload  # noqa: E402

TOKEN = "orchestrate-bench"
API = "jupyter-orchestrate/api/"
FIRST_TASK_TARGET_SECONDS = 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(base: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(
        f"{base}{path}", data=data, method=method, headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


@contextlib.contextmanager
def jupyter_server(root: Path, home: Path, app: str = "server") -> Iterator[str]:
    """A ``jupyter server`` (``app="lab"``: ``jupyter lab``) with the extension on ``root`` and the state home
    ``home``, token :data:`TOKEN`; yields its base URL once ``GET jobs`` answers (up to 120 s). Stopped (SIGTERM,
    then SIGKILL after 30 s) on exit. JupyterLab's workspaces and settings go to a temporary folder, so the
    user's are neither read nor changed. Raises RuntimeError when it does not start."""
    port = _free_port()
    lab_state = Path(tempfile.mkdtemp(prefix="orchestrate-bench-lab-"))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            app,
            f"--port={port}",
            "--no-browser",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--allow-root",
            "--ServerApp.jpserver_extensions={'jupyter_orchestrate': True}",
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "JUPYTER_ORCHESTRATE_HOME": str(home),
            "JUPYTERLAB_WORKSPACES_DIR": str(lab_state / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(lab_state / "settings"),
        },
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _request(base, "GET", "api/status")
                _request(base, "GET", API + "jobs")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the Jupyter server did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(lab_state, ignore_errors=True)


def measure_runs(runs: int = 3) -> list[dict]:
    """Start the server, run ``chain-10`` ``runs`` times through the REST API; per run: seconds from the
    request to the first task start, to the first kernel ready and to the run's end."""
    root = Path(tempfile.mkdtemp(prefix="orchestrate-server-bench-"))
    write_workload("chain-10", root / "chain-10")
    results = []
    try:
        with jupyter_server(root, root / "orchestrate_runs") as base:
            for _ in range(runs):
                # the previous run's replacement warm kernel boots meanwhile, as between clicks
                time.sleep(2.0)
                requested = time.time()
                run_id = _request(base, "POST", API + "jobs/chain-10/runs", {})["run_id"]
                while (doc := _request(base, "GET", API + f"runs/{run_id}"))["status"] not in (
                    "succeeded",
                    "failed",
                    "canceled",
                ):
                    time.sleep(0.05)
                ended = time.time()
                attempts = [a for t in doc["task_runs"] for a in t.get("attempts", [])]
                first = min(attempts, key=lambda a: a["start_time"])
                results.append(
                    {
                        "status": doc["status"],
                        "first_task_start_s": _epoch(first["start_time"]) - requested,
                        "first_kernel_ready_s": (_epoch(first.get("kernel_ready_time")) or ended) - requested,
                        "run_s": ended - requested,
                    }
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def measure_server(quick: bool = False) -> list[dict]:
    """Rows (name, value, unit, target, passed) for the scale table: the median over the warm runs."""
    results = measure_runs(2 if quick else 4)
    warm = results[1:] or results
    start = statistics.median(r["first_task_start_s"] for r in warm)
    ready = statistics.median(r["first_kernel_ready_s"] for r in warm)
    cold = results[0]["first_kernel_ready_s"]
    return [
        {
            "name": "sidebar/API: request -> first task start",
            "value": start,
            "unit": "s",
            "target": f"<= {FIRST_TASK_TARGET_SECONDS} s",
            "passed": start <= FIRST_TASK_TARGET_SECONDS,
        },
        {
            "name": "sidebar/API: request -> first kernel ready (warm pool)",
            "value": ready,
            "unit": "s",
            "target": f"report (cold run: {cold:.2f} s)",
            "passed": True,
        },
        {
            "name": "sidebar/API: chain-10 run (warm pool)",
            "value": statistics.median(r["run_s"] for r in warm),
            "unit": "s",
            "target": "report",
            "passed": all(r["status"] == "succeeded" for r in results),
        },
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    for i, r in enumerate(measure_runs(args.runs), 1):
        print(
            f"run {i}: {r['status']}, first task start {r['first_task_start_s']:.3f} s, first kernel ready "
            f"{r['first_kernel_ready_s']:.3f} s, run {r['run_s']:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
