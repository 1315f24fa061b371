#!/usr/bin/env python3
"""The floor runner: what a careful papermill-like runner reaches on this machine (issue 15's reference column).

    python floor.py WORKLOAD_DIR OUT_DIR [--workers 2]

One NEW kernel per notebook (papermill's isolation), started ahead of need by ``workers`` background threads
(pool depth = workers) and killed off the critical path (``shutdown_kernel(now=True)``); parameters injected like
papermill (a cell tagged ``injected-parameters`` after the ``parameters`` cell); every executed notebook written
with nbformat. Same as the shared ``bench/warm_pool.py --mode fresh``. Prints a JSON summary on stderr.
Run it in a lean venv (papermill, ipykernel, nbclient, nbformat): with jupyter_server installed its imports
cost ~2 s more (PERFORMANCE.md).
"""

import argparse
import json
import queue
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from nbclient import NotebookClient


def start_kernel(cwd):
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def stop_kernel(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run_on(km, kc, wdir, out, task):
    nb = nbformat.read(str(wdir / task["source"]), as_version=4)
    params = {"product": str(out / f"{task['name']}.ipynb")}
    if task["upstream"]:
        params["upstream"] = {u: str(out / f"{u}.ipynb") for u in task["upstream"]}
    cell = nbformat.v4.new_code_cell("# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    at = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), -1)
    nb.cells.insert(at + 1, cell)
    client = NotebookClient(nb, km=km, kernel_name="python3")
    client.kc = kc
    client.execute(cleanup_kc=False)
    nbformat.write(nb, params["product"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t_start = time.perf_counter()
    wdir, out = Path(a.workload_dir).resolve(), Path(a.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dag = json.loads((wdir / "dag.json").read_text())
    by_name = {t["name"]: t for t in dag["tasks"]}
    ready = queue.Queue()  # (km, kc) ready to use
    starter, reaper = ThreadPoolExecutor(a.workers), ThreadPoolExecutor(1)
    lock, started = threading.Lock(), [0]

    def want_kernel():
        with lock:
            if started[0] >= len(by_name):
                return
            started[0] += 1
        starter.submit(lambda: ready.put(start_kernel(wdir)))

    for _ in range(min(a.workers, len(by_name))):
        want_kernel()

    def job(task):
        km, kc = ready.get()
        want_kernel()  # refill the pool while this notebook runs
        try:
            run_on(km, kc, wdir, out, task)
        finally:
            reaper.submit(stop_kernel, km, kc)

    ups = {k: set(t["upstream"]) for k, t in by_name.items()}
    done, submitted, running = set(), set(), {}
    with ThreadPoolExecutor(a.workers) as ex:
        while True:
            for k in dag["order"]:
                if k not in submitted and ups[k] <= done:
                    submitted.add(k)
                    running[ex.submit(job, by_name[k])] = k
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()
                done.add(running.pop(f))
    t_done = time.perf_counter()
    starter.shutdown(wait=True)
    reaper.shutdown(wait=True)
    summary = {
        "tasks": len(by_name),
        "dag_s": round(t_done - t_start, 3),
        "wall_in_process_s": round(time.perf_counter() - t_start, 3),
    }
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
