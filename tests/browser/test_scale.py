"""The sidebar on a large workspace, in a real JupyterLab and Chromium: 50 jobs and 10,000 runs in the store
(written through the store API by ``benchmarks/sidebar_load.py``, no kernels).

Prints the figures: time from opening the panel to the first job card, and, on a cold page load with the panel
restored open, from JupyterLab's splash going away to the jobs list. The issue's targets (300 ms and 1 s) are
benchmarks' business; the assertions here have generous bounds, so a loaded CI machine does not fail them,
while a regression to the old seconds-long loads still does. Also uses the All runs filter (status=failed
shows only failed runs, Load more pages on without duplicates) and checks that the matrix shows durations.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from .browser import SIDEBAR, Page, benchmark_module, expect, load_lab
from .conftest import LabServer, launch_lab

expect.set_options(timeout=20_000)

JOBS, RUNS = 50, int(os.environ.get("JO_SCALE_RUNS", "10000"))  # fewer runs only to debug
# generous bounds (the targets are 300 ms and 1 s; the issue measured 3.9-7.2 s before)
PANEL_BOUND_MS = 1500
COLD_BOUND_MS = 3000

# records, from the page's first script on, each frame: when the splash goes, and when a job card is first
# visible in the panel (a card rendered in a closed panel does not count)
TIMING_SCRIPT = """
window.__jo = {};
(function poll() {
  const now = performance.now();
  if (document.getElementById('jupyterlab-splash')) {
    window.__jo.splashSeen = now;
  } else if (window.__jo.splashSeen !== undefined && window.__jo.splashGone === undefined) {
    window.__jo.splashGone = now;
  }
  const job = document.querySelector('#jupyter-orchestrate-sidebar .jo-job');
  if (window.__jo.firstJob === undefined && job && job.checkVisibility()) {
    window.__jo.firstJob = now;
  }
  requestAnimationFrame(poll);
})();
"""


@pytest.fixture(scope="module")
def scale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` over a root of 50 job folders with 10,000 runs in its state home."""
    base = tmp_path_factory.mktemp("scale")
    root = base / "root"
    root.mkdir()
    started = time.perf_counter()
    benchmark_module("sidebar_load").build_fixture(root, jobs=JOBS, runs=RUNS)
    print(f"fixture: {JOBS} jobs, {RUNS} runs written in {time.perf_counter() - started:.1f} s")
    with launch_lab(base, root) as server:
        yield server


def _open_panel_ms(page: Page) -> float:
    """Click the Orchestrate tab (a real click: Lumino's tab bar reacts to pointer events); milliseconds from
    the pointer going down on it to the first visible job card (the page's clock, per frame)."""
    page.evaluate(
        """() => {
          window.__jo.firstJob = undefined;
          const tab = document.querySelector('li[data-id="jupyter-orchestrate-sidebar"]');
          tab.addEventListener('pointerdown', () => { window.__jo.clicked = performance.now(); },
                               { capture: true, once: true });
        }"""
    )
    page.locator('li[data-id="jupyter-orchestrate-sidebar"]').click()
    page.wait_for_function("() => window.__jo.firstJob !== undefined", timeout=30_000)
    return page.evaluate("() => window.__jo.firstJob - window.__jo.clicked")


def test_scale_first_paint_all_runs_filter_and_matrix(browser, scale_server: LabServer) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.add_init_script(TIMING_SCRIPT)
    try:
        # 1. a loaded page, panel closed: open it and time the first job card
        load_lab(page, scale_server)
        page.wait_for_timeout(1500)  # the plugin's first GET jobs has answered; opening is then paint only
        sidebar = page.locator(SIDEBAR)
        if sidebar.is_visible():  # restored open: close it first
            page.locator('li[data-id="jupyter-orchestrate-sidebar"]').click()
            expect(sidebar).to_be_hidden()
        panel_ms = _open_panel_ms(page)
        cards = sidebar.locator("[data-testid=jo-jobs] .jo-job")
        expect(cards).to_have_count(JOBS)
        expect(
            sidebar.get_by_title("All runs of every job, with filters"),
            "the All runs button is missing: is this worktree's labextension the one loaded?",
        ).to_be_visible()

        # 2. a cold page load with the panel restored open: splash gone -> jobs list
        page.wait_for_timeout(1500)  # the layout restorer saves the open panel
        page.reload()
        page.wait_for_function("() => window.__jo && window.__jo.firstJob !== undefined", timeout=60_000)
        marks = page.evaluate("() => window.__jo")
        cold_ms = marks["firstJob"] - marks.get("splashGone", marks["firstJob"])
        api_started = time.perf_counter()
        scale_server.api("jupyter-orchestrate/api/jobs")
        api_ms = (time.perf_counter() - api_started) * 1000
        print(
            f"\nscale ({JOBS} jobs, {RUNS} runs): panel open -> first job card {panel_ms:.0f} ms; "
            f"cold load: splash gone -> jobs list {cold_ms:.0f} ms (page start -> jobs list "
            f"{marks['firstJob']:.0f} ms); GET jobs (warm) {api_ms:.0f} ms"
        )
        assert panel_ms < PANEL_BOUND_MS, f"first paint of the jobs list took {panel_ms:.0f} ms"
        assert cold_ms < COLD_BOUND_MS, f"the jobs list came {cold_ms:.0f} ms after the splash"

        # 3. All runs: status=failed shows only failed runs, newest first; Load more continues without repeats
        sidebar = page.locator(SIDEBAR)
        expect(sidebar.locator("[data-testid=jo-jobs]")).to_be_visible()
        sidebar.get_by_title("All runs of every job, with filters").click()
        all_runs = sidebar.locator("[data-testid=jo-all-runs]")
        rows = all_runs.locator(".jo-run-row")
        expect(rows).to_have_count(50)
        all_runs.locator("select[data-filter=status]").select_option("failed")
        expect(rows.first).to_have_attribute("data-run-id", str(RUNS))  # the newest run failed (every 10th)
        expect(rows).to_have_count(50)
        all_runs.locator(".jo-load-more").click()
        expect(rows).to_have_count(100)
        statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
        ids = [int(i) for i in rows.evaluate_all("rows => rows.map(r => r.dataset.runId)")]
        assert set(statuses) == {"failed"}, statuses
        assert ids == sorted(set(ids), reverse=True) and ids == list(range(RUNS, RUNS - 1000, -10))
        rows.nth(3).click()
        run_view = sidebar.locator("[data-testid=jo-run-view]")
        expect(run_view).to_have_attribute("data-run-id", str(ids[3]))
        sidebar.locator(".jo-header").get_by_title("Back").first.click()
        expect(all_runs.locator("select[data-filter=status]")).to_have_value("failed")  # filters kept

        # 4. the matrix of a job shows each cell's duration as a bar, and the runs' start times
        sidebar.locator(".jo-header").get_by_title("Back").first.click()
        sidebar.locator('[data-testid=jo-jobs] .jo-job[data-job-id="job_007"]').click()
        matrix = sidebar.locator("[data-testid=jo-matrix]")
        expect(matrix.locator(".jo-matrix-cell[data-seconds]").first).to_be_visible()
        cells = matrix.locator(".jo-matrix-cell[data-seconds]")
        # the job's recent runs (GET runs?job=) arrive after the selected run's cells: wait for all 10 columns
        expect(cells).to_have_count(10 * 3)
        seconds = [float(s) for s in cells.evaluate_all("cells => cells.map(c => c.dataset.seconds)")]
        widths = cells.evaluate_all(
            "cells => cells.map(c => c.firstElementChild.getBoundingClientRect().width / c.getBoundingClientRect().width)"
        )
        assert len(seconds) >= 3 and all(1 <= s <= 6 for s in seconds), seconds
        assert max(widths) == pytest.approx(1, abs=0.02) and min(widths) < 0.9, widths
        starts = matrix.locator("thead [data-start]").all_text_contents()
        assert starts and all(s for s in starts), starts
        title = cells.first.get_attribute("title") or ""
        assert " in run " in title and title.endswith(" s"), title
    finally:
        context.close()
