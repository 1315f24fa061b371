"""The Orchestrate sidebar at 300 px, failures first, and Cancel's confirmation, in a real JupyterLab and Chromium.

Besides the example jobs, the server's root gets a job with long names (a long folder, a long first task and two
twin tasks ``reconcile_intercompany_balances_eu`` / ``_us`` that a tail ellipsis would show alike) and a job with
one slow task to cancel. At a 300 px sidebar the jobs list, the job view, the succeeded run view and the failed run
view must not scroll sideways: neither the panel nor any scroll container inside it (tracebacks excepted: code
keeps its lines and scrolls in its own box) has ``scrollWidth > clientWidth``, and nothing reaches past the panel's
right edge.
"""

from __future__ import annotations

import re

import pytest

from ..conftest import write_notebook
from .browser import SIDEBAR, Locator, Page, expect, open_sidebar
from .conftest import LabServer

pytestmark = pytest.mark.kernel

RUN_TIMEOUT = 120_000  # ms
WIDTH = 300
REPAIR_DEMO = "example_notebooks/repair_demo"
LONG_JOB = "finance/month_end_close_reconciliation_of_intercompany_balances_for_every_subsidiary"
LONG_FIRST = "extract_general_ledger_entries_for_the_closing_month"
TWINS = ("reconcile_intercompany_balances_eu", "reconcile_intercompany_balances_us")
SLOW_JOB = "slow_job"

# Every element of the panel that reaches past its right edge, and every scroll container (the panel included)
# whose content is wider than its box. Returns one line per offender.
OVERFLOW_JS = """
panel => {
  const describe = el => {
    const cls = typeof el.className === 'string' ? el.className : (el.className && el.className.baseVal) || '';
    const id = el.dataset && (el.dataset.testid || el.dataset.taskKey || el.dataset.jobId);
    return `${el.tagName.toLowerCase()}${cls ? '.' + cls.trim().split(/\\s+/).join('.') : ''}${id ? `[${id}]` : ''}`;
  };
  const bad = [];
  const right = panel.getBoundingClientRect().right;
  const scrolls = el => el.scrollWidth > el.clientWidth + 1;
  if (scrolls(panel)) bad.push(`panel: scrollWidth ${panel.scrollWidth} > clientWidth ${panel.clientWidth}`);
  for (const el of panel.querySelectorAll('*')) {
    if (el.closest('.jo-traceback')) continue;
    const style = getComputedStyle(el);
    if ((style.overflowX === 'auto' || style.overflowX === 'scroll') && scrolls(el)) {
      bad.push(`${describe(el)}: scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}`);
    }
    else if (el.clientWidth > 0 && scrolls(el) && style.overflowX === 'visible') {
      // content (a long word, a wide child) spills out of a box that does not clip or scroll
      bad.push(`${describe(el)}: content ${el.scrollWidth} wider than its box ${el.clientWidth}`);
    }
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > right + 1) {
      bad.push(`${describe(el)}: right edge ${Math.round(box.right)} > panel ${Math.round(right)}`);
    }
  }
  return bad;
}
"""

# Whether an element's text is cut by CSS (its content is wider than its box) and shown with an ellipsis.
ELLIPSIS_JS = """
el => ({
  cut: el.scrollWidth > el.clientWidth,
  ellipsis: getComputedStyle(el).textOverflow === 'ellipsis',
  title: el.getAttribute('title')
})
"""


@pytest.fixture(scope="module")
def extra_jobs(lab_server: LabServer) -> None:
    """The long-names job and the slow job, written into the server's root before the page loads."""
    folder = lab_server.root / LONG_JOB
    write_notebook(folder / f"{LONG_FIRST}.ipynb", "print('ledger')", orchestrate={})
    for twin in TWINS:
        write_notebook(folder / f"{twin}.ipynb", f"print('{twin}')", orchestrate={"depends_on": [LONG_FIRST]})
    write_notebook(lab_server.root / SLOW_JOB / "sleep.ipynb", "import time\ntime.sleep(120)", orchestrate={})


# -- helpers ----------------------------------------------------------------------------------------------------


def set_sidebar_width(page: Page, width: int = WIDTH) -> None:
    """Drag the handle between the left panel and the main area so the panel is ``width`` px wide."""
    box = page.locator(SIDEBAR).bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + width + 2, y, steps=8)
    page.mouse.up()
    new_box = page.locator(SIDEBAR).bounding_box()
    assert new_box is not None and abs(new_box["width"] - width) <= 12, f"sidebar is {new_box} wide"


def go_back(sidebar: Locator) -> None:
    sidebar.locator(".jo-header").get_by_title("Back").first.click()


def show_jobs_list(sidebar: Locator) -> Locator:
    jobs = sidebar.locator("[data-testid=jo-jobs]")
    for _ in range(3):
        if sidebar.locator(".jo-panel").get_attribute("data-view") == "jobs":
            break  # the list may still be loading
        go_back(sidebar)
    expect(jobs).to_be_visible()
    return jobs


def run_job_from_list(page: Page, sidebar: Locator, server: LabServer, job_id: str) -> Locator:
    """Run ``job_id`` from its card's Run button with the dialog's defaults; returns the new run's view."""
    show_jobs_list(sidebar)
    card = sidebar.locator(f'[data-testid=jo-jobs] .jo-job[data-job-id="{job_id}"]')
    expect(card).to_be_visible()
    card.locator(".jo-run-button").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_be_visible()  # the parameters form, or "This job has no parameters."
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    run_view = sidebar.locator("[data-testid=jo-run-view]")
    expect(run_view).to_be_visible()
    newest = server.api(f"jupyter-orchestrate/api/runs?job={job_id}&limit=1")["runs"][0]
    expect(run_view).to_have_attribute("data-run-id", str(newest["run_id"]))
    return run_view


def assert_no_horizontal_scroll(page: Page, what: str) -> None:
    """Nothing in the panel is wider than the panel (see OVERFLOW_JS), after React and layout settled."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    page.wait_for_timeout(300)
    offenders = page.locator(f"{SIDEBAR} .jo-panel").evaluate(OVERFLOW_JS)
    assert offenders == [], f"{what} overflows the {WIDTH} px sidebar:\n" + "\n".join(offenders[:20])


def card_order(run_view: Locator) -> list[tuple[str, str]]:
    cards = run_view.locator("[data-testid=jo-task]")
    return [
        (
            cards.nth(i).get_attribute("data-task-key") or "",
            cards.nth(i).get_attribute("data-collapsed") or "",
        )
        for i in range(cards.count())
    ]


# -- tests ------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_narrow_sidebar_has_no_horizontal_scroll_and_shows_failures_first(
    extra_jobs: None, lab_page: Page, lab_server: LabServer, screenshots
) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    assert sidebar.locator(".jo-panel").get_attribute("data-stale") == "false", "not this worktree's build"
    set_sidebar_width(page)

    # jobs list: the long job's name is cut with an ellipsis, its full name in a title; its path wraps
    jobs = show_jobs_list(sidebar)
    long_card = jobs.locator(f'.jo-job[data-job-id="{LONG_JOB}"]')
    expect(long_card).to_be_visible()
    name = long_card.locator(".jo-job-name").evaluate(ELLIPSIS_JS)
    assert name["cut"] and name["ellipsis"], name
    assert name["title"] == LONG_JOB.split("/")[-1]
    expect(long_card.locator(".jo-path")).to_have_text(f"{LONG_JOB} · 3 tasks")
    expect(jobs.locator(f'.jo-job[data-job-id="{SLOW_JOB}"] .jo-path')).to_have_text(f"{SLOW_JOB} · 1 task")
    assert_no_horizontal_scroll(page, "the jobs list")
    screenshots(sidebar, "narrow-jobs-list.png")

    # a succeeded run of the long job: every card collapsed, twins told apart in the timeline, full names on hover
    run_view = run_job_from_list(page, sidebar, lab_server, LONG_JOB)
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=succeeded]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    expect(run_view.locator("[data-testid=jo-task]:not([data-status=succeeded])")).to_have_count(0)
    expect(run_view.locator("[data-testid=jo-task][data-collapsed=false]")).to_have_count(0)
    expect(run_view.locator("[data-testid=jo-failed-tasks]")).to_have_count(0)
    labels = {}
    for twin in TWINS:
        row = run_view.locator(f'[data-testid=jo-gantt] .jo-gantt-row-group[data-task-key="{twin}"]')
        labels[twin] = row.locator("text.jo-gantt-label").evaluate("t => t.lastChild.textContent")
        expect(row.locator("text.jo-gantt-label title")).to_have_text(twin)
        key = run_view.locator(f'[data-testid=jo-task][data-task-key="{twin}"] .jo-task-key')
        expect(key).to_have_attribute("title", twin)
    assert labels[TWINS[0]] != labels[TWINS[1]], labels
    assert_no_horizontal_scroll(page, "the succeeded run view")
    # expand a collapsed card on click
    first_card = run_view.locator(f'[data-testid=jo-task][data-task-key="{LONG_FIRST}"]')
    first_card.locator("[data-testid=jo-task-header]").click()
    expect(first_card).to_have_attribute("data-collapsed", "false")
    expect(first_card.locator("[data-testid=jo-attempts]")).to_be_visible()
    assert_no_horizontal_scroll(page, "the run view with an expanded card")

    # job view: DAG twins apart, full names on hover and in the selection detail
    go_back(sidebar)
    job_view = sidebar.locator("[data-testid=jo-job-view]")
    expect(job_view).to_be_visible()
    dag = job_view.locator("[data-testid=jo-dag]")
    expect(dag.locator(".jo-node")).to_have_count(3)
    node_labels = [dag.locator(f'.jo-node[data-task-key="{t}"] text').text_content() for t in TWINS]
    assert node_labels[0] != node_labels[1], node_labels
    for twin in TWINS:
        expect(dag.locator(f'.jo-node[data-task-key="{twin}"] title')).to_contain_text(twin)
    matrix_labels = [
        job_view.locator(f'[data-testid=jo-matrix] tr[data-task-key="{t}"] td.jo-matrix-task') for t in TWINS
    ]
    for twin, label in zip(TWINS, matrix_labels, strict=True):
        expect(label).to_have_attribute("title", twin)
    assert matrix_labels[0].text_content() != matrix_labels[1].text_content()
    assert_no_horizontal_scroll(page, "the job view")
    dag.locator(f'.jo-node[data-task-key="{TWINS[1]}"]').click()
    detail = job_view.locator("[data-testid=jo-selected-task]")
    expect(detail).to_have_attribute("data-task-key", TWINS[1])
    detail_key = detail.locator(".jo-task-key").first
    expect(detail_key).to_have_text(TWINS[1])
    assert not detail_key.evaluate(ELLIPSIS_JS)["cut"], "the selection detail must show the whole name"
    assert_no_horizontal_scroll(page, "the job view with a selected task")
    screenshots(sidebar, "narrow-job-view.png")

    # a failed run: the headline blames validate; validate, its cell and error come first, above the fold
    run_view = run_job_from_list(page, sidebar, lab_server, REPAIR_DEMO)
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=failed]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    expect(run_view.locator('[data-testid=jo-task][data-task-key="publish"]')).to_have_attribute(
        "data-status", "upstream_failed", timeout=10_000
    )
    expect(run_view.locator("[data-testid=jo-run-reason]")).to_have_text(
        re.compile(r"^validate failed in cell 4: ValueError: threshold is not set.*; not run: publish$")
    )
    assert card_order(run_view) == [("validate", "false"), ("publish", "false"), ("extract", "true")]
    failed = run_view.locator("[data-testid=jo-failed-tasks] [data-testid=jo-task]")
    expect(failed).to_have_count(1)
    expect(failed).to_have_attribute("data-task-key", "validate")
    error = failed.locator("[data-testid=jo-failure-error]")
    expect(error).to_contain_text("ValueError: threshold is not set")
    expect(failed.locator("[data-testid=jo-failure-cell]")).to_contain_text("cell 4")
    expect(error).to_be_in_viewport()  # above the fold of the 900 px window
    # the failed section is above the timeline
    gantt_top = run_view.locator("[data-testid=jo-gantt]").bounding_box()
    failed_box = failed.bounding_box()
    assert gantt_top and failed_box and failed_box["y"] < gantt_top["y"]
    expect(
        run_view.locator('[data-testid=jo-task][data-task-key="extract"] [data-testid=jo-attempts]')
    ).to_have_count(0)
    assert_no_horizontal_scroll(page, "the failed run view")
    failed.locator("[data-testid=jo-traceback-toggle]").click()
    expect(failed.locator("[data-testid=jo-traceback]")).to_be_visible()
    assert_no_horizontal_scroll(page, "the failed run view with its traceback")
    screenshots(sidebar, "narrow-failed-run.png")


@pytest.mark.timeout(300)
def test_cancel_asks_first_and_keep_running_keeps_the_run(
    extra_jobs: None, lab_page: Page, lab_server: LabServer
) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    run_view = run_job_from_list(page, sidebar, lab_server, SLOW_JOB)
    run_id = int(run_view.get_attribute("data-run-id") or 0)
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=running]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    dialog = page.locator(".jp-Dialog")

    run_view.locator("[data-testid=jo-cancel]").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Cancel run {run_id}?")
    expect(dialog.locator(".jp-mod-warn")).to_have_text("Cancel run")
    dialog.locator(".jp-mod-reject").click()  # "Cancel": close the dialog, keep the run
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(1500)
    assert lab_server.api(f"jupyter-orchestrate/api/runs/{run_id}")["status"] == "running"
    expect(run_view).to_have_attribute("data-run-status", "running")

    run_view.locator("[data-testid=jo-cancel]").click()
    expect(dialog).to_be_visible()
    dialog.locator(".jp-mod-warn").click()
    expect(dialog).to_have_count(0)
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=canceled]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    assert lab_server.api(f"jupyter-orchestrate/api/runs/{run_id}")["status"] == "canceled"


@pytest.mark.timeout(300)
def test_unreachable_server_shows_a_stale_banner_with_retry(
    extra_jobs: None, lab_page: Page, lab_server: LabServer
) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    show_jobs_list(sidebar)
    expect(sidebar.locator("[data-testid=jo-stale-banner]")).to_have_count(0)
    # the orchestrate API stops answering (as when the server is stopped: the requests fail at the network level)
    page.route("**/jupyter-orchestrate/api/**", lambda route: route.abort("connectionrefused"))
    sidebar.locator(".jo-header").get_by_title("Refresh").click()
    banner = sidebar.locator("[data-testid=jo-stale-banner]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Cannot reach the server")
    expect(sidebar.locator(".jo-panel")).to_have_attribute("data-stale", "true")
    expect(
        sidebar.locator("[data-testid=jo-jobs] .jo-job").first
    ).to_be_visible()  # last content kept, greyed
    page.unroute("**/jupyter-orchestrate/api/**")
    banner.locator("[data-testid=jo-retry]").click()
    expect(banner).to_have_count(0)
    expect(sidebar.locator(".jo-panel")).to_have_attribute("data-stale", "false")
