"""The Trends view of a job in a real JupyterLab and a real browser (Chromium through Playwright).

Two runs of ``repair_demo`` are started through the REST API (the first fails in ``validate``: no threshold; the
second succeeds with ``threshold=0.5``); the test then opens the job in the sidebar, goes to its Trends view
and checks the duration bars (one per run, coloured by status, with tooltips), each task's p50 and
``validate``'s failure rate, and the slowest cells; then goes back to the job view. With
``UPDATE_SCREENSHOTS=1`` the view is also saved as ``docs/images/trends.png``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from .browser import Page, expect, open_sidebar, settle
from .conftest import LabServer

pytestmark = pytest.mark.kernel

REPAIR_DEMO = "example_notebooks/repair_demo"
TASKS = ["extract", "validate", "publish"]
RUN_TIMEOUT = 180.0  # s


# -- helpers (small copies of test_sidebar.py's, so the two files merge without conflicts) ------------------------
def post(server: LabServer, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{server.url}/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run_to_end(server: LabServer, parameters: dict[str, Any]) -> dict[str, Any]:
    run = post(server, f"jupyter-orchestrate/api/jobs/{REPAIR_DEMO}/runs", {"parameters": parameters})
    deadline = time.monotonic() + RUN_TIMEOUT
    while run["status"] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"run {run['run_id']} did not end: {run}"
        time.sleep(0.5)
        run = server.api(f"jupyter-orchestrate/api/runs/{run['run_id']}")
    return run


# -- the test ---------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_trends_view_after_two_runs(lab_page: Page, lab_server: LabServer, screenshots) -> None:
    failed = run_to_end(lab_server, {})
    succeeded = run_to_end(lab_server, {"threshold": 0.5})
    assert (failed["status"], succeeded["status"]) == ("failed", "succeeded")
    trends = lab_server.api(f"jupyter-orchestrate/api/jobs/{REPAIR_DEMO}/trends?limit=50")
    p50 = {t["task_key"]: t["p50_duration_seconds"] for t in trends["tasks"]}

    page = lab_page
    sidebar = open_sidebar(page)
    job = sidebar.locator(f'[data-testid=jo-jobs] .jo-job[data-job-id="{REPAIR_DEMO}"]')
    expect(job).to_be_visible()
    job.locator(".jo-job-name").click()
    job_view = sidebar.locator("[data-testid=jo-job-view]")
    expect(job_view).to_be_visible()
    job_view.locator("[data-testid=jo-open-trends]").click()

    view = sidebar.locator("[data-testid=jo-trends]")
    expect(view, "the Trends view of this build is not there").to_be_visible()
    expect(view).to_have_attribute("data-job-id", REPAIR_DEMO)
    expect(sidebar.locator(".jo-title")).to_have_text("repair_demo: trends")

    bars = view.locator("[data-testid=jo-trends-runs] rect.jo-trend-bar")
    expect(bars).to_have_count(2)
    assert [bars.nth(i).get_attribute("data-run-id") for i in range(2)] == [
        str(failed["run_id"]),
        str(succeeded["run_id"]),
    ], "oldest run on the left"
    assert [bars.nth(i).get_attribute("data-status") for i in range(2)] == ["failed", "succeeded"]
    # the bars are drawn in the status colours (the theme's error and success colours), and have height
    fills = [bars.nth(i).evaluate("e => getComputedStyle(e).fill") for i in range(2)]
    assert fills[0] != fills[1] and all(f.startswith("rgb") for f in fills), fills
    assert all((bars.nth(i).bounding_box() or {}).get("height", 0) > 0 for i in range(2))
    expect(bars.nth(0).locator("title")).to_contain_text(f"run {failed['run_id']} · failed")

    rows = view.locator("[data-testid=jo-trends-tasks] tbody tr")
    expect(rows).to_have_count(len(TASKS))
    for key in TASKS:
        row = view.locator(f'[data-testid=jo-trends-tasks] tr[data-task-key="{key}"]')
        shown = row.locator("[data-testid=jo-trends-p50]")
        expect(shown).to_be_visible()
        seconds = p50[key]
        assert seconds is not None and seconds > 0, trends
        # the sidebar's formatSeconds: one decimal under two minutes
        expect(shown).to_have_text(f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min")
    rate = view.locator('tr[data-task-key="validate"] [data-testid=jo-trends-failure-rate]')
    expect(rate).to_have_text("50 %")
    expect(view.locator('tr[data-task-key="extract"] [data-testid=jo-trends-failure-rate]')).to_have_text(
        "0 %"
    )
    expect(view.locator('.jo-trends-cells[data-task-key="validate"] li').first).to_be_visible()

    # the 300 px sidebar does not scroll sideways because of the view
    width = view.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert width[0] <= width[1] + 1, width
    settle(page)
    screenshots(sidebar, "trends.png")

    # a bar opens its run; Back returns to the job view
    bars.nth(0).click()
    expect(sidebar.locator("[data-testid=jo-run-view]")).to_have_attribute(
        "data-run-id", str(failed["run_id"])
    )
    sidebar.locator(".jo-header").get_by_title("Back").first.click()
    expect(job_view).to_be_visible()
    job_view.locator("[data-testid=jo-open-trends]").click()
    expect(view).to_be_visible()
    sidebar.locator(".jo-header").get_by_title("Back").first.click()
    expect(sidebar.locator("[data-testid=jo-job-view]")).to_be_visible()


def luminance(css_colour: str) -> float:
    """Relative luminance (0 black .. 1 white) of a computed ``rgb(...)``/``rgba(...)`` colour."""
    parts = [float(p) for p in css_colour[css_colour.index("(") + 1 : css_colour.index(")")].split(",")[:3]]
    return (0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]) / 255


@pytest.mark.timeout(600)
def test_dark_theme_job_and_failed_run(lab_page: Page, lab_server: LabServer, screenshots) -> None:
    """In JupyterLab Dark the sidebar follows the theme (dark panel, light text, the matrix's bars in status
    colours): nothing of ours is drawn in fixed light colours. Saves the dark screenshots of the README."""
    runs = lab_server.api(f"jupyter-orchestrate/api/runs?job={REPAIR_DEMO}&status=failed&limit=1")["runs"]
    failed = runs[0] if runs else run_to_end(lab_server, {})
    page = lab_page
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    try:
        sidebar = open_sidebar(page)
        # the sidebar reopens where the last test left it (restored with the workspace): back to the jobs list
        for _ in range(4):
            if sidebar.locator("[data-testid=jo-jobs]").is_visible():
                break
            sidebar.locator(".jo-header").get_by_title("Back").first.click()
            page.wait_for_timeout(300)
        job = sidebar.locator(f'[data-testid=jo-jobs] .jo-job[data-job-id="{REPAIR_DEMO}"]')
        expect(job).to_be_visible()
        job.locator(".jo-job-name").click()
        job_view = sidebar.locator("[data-testid=jo-job-view]")
        expect(job_view).to_be_visible()
        matrix = job_view.locator("[data-testid=jo-matrix] .jo-matrix-bar")
        expect(matrix.first).to_be_visible()
        panel = sidebar.locator(".jo-panel")
        background = panel.evaluate(
            "e => { let n = e; while (n) { const c = getComputedStyle(n).backgroundColor;"
            " if (c && !c.endsWith(', 0)') && c !== 'transparent') return c; n = n.parentElement; } return '' }"
        )
        text = sidebar.locator(".jo-title").evaluate("e => getComputedStyle(e).color")
        assert luminance(background) < 0.3 < luminance(text), (background, text)
        bar_fills = {matrix.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(2)}
        assert all(luminance(c) < 0.95 for c in bar_fills), bar_fills
        settle(page)
        screenshots(sidebar, "dark-job-view.png")

        sidebar.locator(".jo-header").get_by_title("Back").first.click()
        page.evaluate(
            f"() => window.jupyterapp.commands.execute('jupyter-orchestrate:open-run', {{runId: {failed['run_id']}}})"
        )
        run_view = sidebar.locator("[data-testid=jo-run-view]")
        expect(run_view).to_have_attribute("data-run-id", str(failed["run_id"]))
        expect(
            run_view.locator("[data-testid=jo-failed-tasks] [data-testid=jo-failure]").first
        ).to_be_visible()
        settle(page)
        screenshots(sidebar, "dark-failed-run.png")
    finally:
        page.evaluate(
            "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})"
        )
