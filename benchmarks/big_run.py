#!/usr/bin/env python
"""A run with 1,000 task runs, served and drawn (issue 15): ``GET runs/{id}`` and the sidebar's DAG.

The run is the 1,000-task DAG of :func:`scale.make_dag_job`, executed on
:class:`~jupyter_orchestrate.executors.memory.MemoryExecutor` (no kernels) into a real SQLite store, every task
run with one attempt; every 50th task fails (its error fields filled) and the tasks below it are
``upstream_failed``, as in a real large run. Then a real ``jupyter lab`` with the extension serves it:

* ``GET runs/{id}`` over HTTP: the first request (cold) and the median of the next 20. Target <= 100 ms.
* The sidebar's DAG, in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright; skipped
  with a note if either is missing): from the click on the job's card to all 1,000 nodes drawn with their
  statuses in the selected run (requests, dagre layout and SVG paint), the median of ``--repeat`` page
  loads, and the layout alone (the ``jo-dag-layout`` performance measure the sidebar records). Target <= 1 s.
* A for-each task over 200 inputs (issue 17), recorded the same way: the sidebar's run view opened by its link
  (``lab?orchestrate-run=ID``), from the start of its ``GET runs/{id}`` request to the view painted with the
  for-each task's card and its counts (``200/200``). Target <= 300 ms.

    python benchmarks/big_run.py            # about a minute
    python benchmarks/big_run.py --quick    # one page load

``measure_big_run(quick)`` returns the rows for ``run_benchmark.py``'s scale table. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale import TASKS, at_most, format_rows, make_dag_job, notebook, row  # noqa: E402
from server_runs import API, TOKEN, jupyter_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
GET_TARGET_MS = 100.0
DAG_TARGET_S = 1.0
JOB = "dag1000"


def record_run(root: Path, home: Path) -> int:
    """Write the job under ``root`` and execute one run of it into the store at ``home``; returns its run id."""
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.executors.memory import MemoryExecutor, fail, succeed
    from jupyter_orchestrate.service import OrchestrateService

    path = make_dag_job(root / JOB)
    job = load_job(path)
    failing = {f"t{i:04d}": [fail(1.0, "ValueError", "bad row")] for i in range(49, TASKS, 50)}
    executor = MemoryExecutor(failing, default=succeed(1.0, rows=1))
    service = OrchestrateService(home)
    runner = service.new_run(path, job=job, executor=executor, clock=executor.clock, max_parallel=8)
    runner.execute()
    return runner.run_id


FOR_EACH_JOB = "for_each200"
FOR_EACH_INPUTS = 200
RUN_VIEW_TARGET_S = 0.3


def record_for_each_run(root: Path, home: Path) -> int:
    """A job of one for-each task over 200 inputs, executed on MemoryExecutor into the store at ``home``."""
    import json

    from jupyter_orchestrate.executors.memory import MemoryExecutor, succeed
    from jupyter_orchestrate.service import OrchestrateService

    folder = root / FOR_EACH_JOB
    folder.mkdir(parents=True)
    for_each = {
        "inputs": [f"file-{i:03}.csv" for i in range(FOR_EACH_INPUTS)],
        "concurrency": 2,
        "parameter": "label",
    }
    (folder / "load.ipynb").write_text(json.dumps(notebook({"for_each": for_each})))
    executor = MemoryExecutor(default=succeed(1.0, rows=1))
    service = OrchestrateService(home)
    runner = service.new_run(folder, executor=executor, clock=executor.clock, max_parallel=2)
    runner.execute()
    return runner.run_id


# the page's clock: when the run view shows the for-each task's card with its iteration counts
WATCH_RUN_VIEW = """
([runId, counts]) => new Promise(resolve => {
  (function poll() {
    const view = document.querySelector(`#jupyter-orchestrate-sidebar [data-testid=jo-run-view][data-run-id="${runId}"]`);
    const facts = view && view.querySelector('[data-testid=jo-task][data-task-key=load] .jo-task-facts');
    if (facts && facts.textContent.startsWith(counts)) {
      resolve(performance.now());
    } else {
      requestAnimationFrame(poll);
    }
  })();
})
"""


def loaded_pages(url: str, repeat: int) -> Iterator[Any]:
    """``repeat`` fresh pages of headless Chromium, each with JupyterLab loaded from ``url`` (the splash gone);
    each page is closed when the caller asks for the next."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(url)
                page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
                yield page
                page.close()
        finally:
            browser.close()


def measure_run_view(base: str, run_id: int, repeat: int) -> list[dict[str, Any]]:
    """Seconds from the run view's ``GET runs/{id}`` request to its paint, per page load (its run link)."""
    painted = []
    for page in loaded_pages(f"{base}lab?reset&orchestrate-run={run_id}&token={TOKEN}", repeat):
        shown = page.evaluate(WATCH_RUN_VIEW, [run_id, f"{FOR_EACH_INPUTS}/{FOR_EACH_INPUTS}"])
        starts = page.evaluate(
            "([id]) => performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes(`jupyter-orchestrate/api/runs/${id}`)).map(e => e.startTime)",
            [run_id],
        )
        if starts:
            painted.append((shown - min(starts)) / 1000)
    if not painted:
        return [row("sidebar: for-each run view: its request was not seen", None, "", "", None)]
    return [
        at_most(
            f"sidebar: run view of a {FOR_EACH_INPUTS}-iteration for-each task, request -> paint",
            statistics.median(painted),
            "s",
            RUN_VIEW_TARGET_S,
        )
    ]


def _get_ms(base: str, path: str) -> float:
    request = urllib.request.Request(base + path, headers={"Authorization": f"token {TOKEN}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert body.startswith(b"{"), body[:200]
    return elapsed


# the page's clock, per frame: when every DAG node is drawn with a status of the selected run
WATCH_DAG = """
([tasks]) => new Promise(resolve => {
  (function poll() {
    const nodes = document.querySelectorAll('#jupyter-orchestrate-sidebar [data-testid=jo-dag] .jo-node');
    const painted = [...nodes].filter(n => n.getAttribute('data-status') !== 'none').length;
    if (nodes.length === tasks && painted === tasks) {
      resolve(performance.now());
    } else {
      requestAnimationFrame(poll);
    }
  })();
})
"""


def measure_dag(base: str, repeat: int) -> list[dict[str, Any]]:
    """Seconds from the click on the job card to the whole DAG drawn, per page load; and the layout alone."""
    totals, layouts, answered = [], [], []
    # reset: not the job view the last load left open
    for page in loaded_pages(f"{base}lab?reset&token={TOKEN}", repeat):
        tab = page.locator('li[data-id="jupyter-orchestrate-sidebar"]')
        tab.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # the layout restorer may reopen the panel
        if not page.locator("#jupyter-orchestrate-sidebar").is_visible():
            tab.click()
        card = page.locator(f'#jupyter-orchestrate-sidebar .jo-job[data-job-id="{JOB}"]')
        card.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        clicked = page.evaluate("() => performance.now()")
        card.click()
        drawn = page.evaluate(WATCH_DAG, [TASKS])
        totals.append((drawn - clicked) / 1000)
        measures = page.evaluate("() => performance.getEntriesByName('jo-dag-layout').map(m => m.duration)")
        if measures:
            layouts.append(measures[-1] / 1000)
        # the requests the job view made after the click: when the last answer arrived
        ends = page.evaluate(
            "([t]) => performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('jupyter-orchestrate/api/') && e.startTime >= t)"
            ".map(e => e.responseEnd)",
            [clicked],
        )
        if ends:
            answered.append((max(ends) - clicked) / 1000)
    rows = [
        at_most("sidebar: 1,000-task DAG drawn after the click", statistics.median(totals), "s", DAG_TARGET_S)
    ]
    if answered:
        rows.append(row("  (click -> its requests answered)", statistics.median(answered), "s", "", None))
    if layouts:
        rows.append(row("  (its layout)", statistics.median(layouts), "s", "", None))
    return rows


def measure_big_run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows (name, value, unit, target, passed) for the scale table; the DAG rows only with Playwright and
    Chromium present."""
    work = Path(tempfile.mkdtemp(prefix="orchestrate-big-run-"))
    root, home = work / "root", work / "home"
    root.mkdir()
    try:
        run_id = record_run(root, home)
        for_each_run = record_for_each_run(root, home)
        with jupyter_server(root, home, app="lab") as base:
            path = API + f"runs/{run_id}"
            cold = _get_ms(base, path)
            warm = statistics.median(_get_ms(base, path) for _ in range(5 if quick else 20))
            rows = [
                at_most("GET runs/{id}, 1,000 task runs", warm, "ms", GET_TARGET_MS),
                row("  (its first request)", cold, "ms", "", None),
            ]
            if importlib.util.find_spec("playwright") is None or not Path(CHROMIUM).exists():
                rows.append(
                    row("sidebar DAG: not measured (needs playwright and chromium)", None, "", "", None)
                )
            else:
                rows += measure_dag(base, 1 if quick else 3)
                rows += measure_run_view(base, for_each_run, 1 if quick else 3)
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests, one page load")
    args = ap.parse_args(argv)
    print(format_rows(measure_big_run(args.quick)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
