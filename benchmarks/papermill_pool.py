#!/usr/bin/env python3
"""The naive papermill pool (issue 15's second column): ``workers`` processes, each runs
``papermill.execute_notebook`` on the next notebook whose upstream notebooks are done. No kernels ahead of need.

    python papermill_pool.py WORKLOAD_DIR OUT_DIR [--workers 2]
"""

import argparse
import json
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path


def execute(source, output, parameters):
    import papermill

    papermill.execute_notebook(source, output, parameters=parameters, progress_bar=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    wdir, out = Path(a.workload_dir).resolve(), Path(a.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    dag = json.loads((wdir / "dag.json").read_text())
    ups = {t["name"]: set(t["upstream"]) for t in dag["tasks"]}
    done, submitted, running = set(), set(), {}
    with ProcessPoolExecutor(a.workers) as pool:
        while True:
            for k in dag["order"]:
                if k not in submitted and ups[k] <= done:
                    submitted.add(k)
                    product = str(out / f"{k}.ipynb")
                    running[pool.submit(execute, str(wdir / f"{k}.ipynb"), product, {"product": product})] = k
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()
                done.add(running.pop(f))


if __name__ == "__main__":
    main()
