"""The Orchestrate sidebar in a real JupyterLab and a real browser (Chromium through Playwright).

A ``jupyter lab`` subprocess serves a copy of ``example_notebooks/``; the tests click through the sidebar like a
user: run ``green_energy`` to success (run view, then job view with DAG and matrix), and run ``repair_demo``,
which fails in ``validate``, inspect the failure, open the executed notebook at the failing cell, fix the
notebook on disk and repair the run to success.

Screenshots go to each test's ``tmp_path``; with ``UPDATE_SCREENSHOTS=1`` they are also copied to
``docs/images/`` (job-view.png, run-view.png, failure-view.png).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import GREEN_ENERGY_TASKS as EXAMPLE_TASKS

from .browser import SIDEBAR, Locator, Page, expect, open_sidebar, settle
from .conftest import LabServer

pytestmark = pytest.mark.kernel

RUN_TIMEOUT = 120_000  # ms
GREEN_ENERGY = "example_notebooks/green_energy"
REPAIR_DEMO = "example_notebooks/repair_demo"
GREEN_ENERGY_TASKS = set(EXAMPLE_TASKS)  # bronze: a for-each task; check_silver: a condition task
GOLD = {"gold_country_totals", "gold_source_shares"}  # the task group "gold"


# -- helpers ----------------------------------------------------------------------------------------------------


def widen_sidebar(page: Page, width: int = 620) -> None:
    """Drag the handle between the left panel and the main area so the panel is about ``width`` px wide."""
    box = page.locator(SIDEBAR).bounding_box()
    assert box is not None
    if box["width"] >= width - 10:  # already (e.g. restored from the workspace)
        return
    handle_x = box["x"] + box["width"] + 2
    y = box["y"] + box["height"] / 2
    page.mouse.move(handle_x, y)
    page.mouse.down()
    page.mouse.move(box["x"] + width, y, steps=8)
    page.mouse.up()
    new_box = page.locator(SIDEBAR).bounding_box()
    assert new_box is not None and new_box["width"] > box["width"], "could not widen the sidebar"


def go_back(sidebar: Locator) -> None:
    """The sidebar header's Back button."""
    sidebar.locator(".jo-header").get_by_title("Back").first.click()


def show_jobs_list(sidebar: Locator) -> Locator:
    """Go back to the Jobs view (the panel may show a job or a run)."""
    jobs = sidebar.locator("[data-testid=jo-jobs]")
    for _ in range(3):
        if jobs.is_visible():
            break
        go_back(sidebar)
    expect(jobs).to_be_visible()
    return jobs


def run_job_from_list(
    page: Page, sidebar: Locator, server: LabServer, job_id: str, parameters: dict[str, str] | None = None
) -> Locator:
    """Click the job's Run button, fill in ``parameters`` in the dialog and accept it; returns the run view the
    sidebar switches to, checked to be the new run's."""
    show_jobs_list(sidebar)
    job = sidebar.locator(f'[data-testid=jo-jobs] .jo-job[data-job-id="{job_id}"]')
    expect(job).to_be_visible()
    job.locator(".jo-run-button").click()
    dialog = page.locator(".jp-Dialog")
    form = dialog.locator("[data-testid=jo-parameters-form]")
    expect(form).to_be_visible()
    for name, value in (parameters or {}).items():
        form.locator(f'input[name="{name}"]').fill(value)
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    run_view = sidebar.locator("[data-testid=jo-run-view]")
    expect(run_view, "the sidebar did not switch to the run view").to_be_visible()
    newest = server.api(f"jupyter-orchestrate/api/runs?job={job_id}&limit=1")["runs"][0]
    expect(run_view, "the run view does not show the new run").to_have_attribute(
        "data-run-id", str(newest["run_id"])
    )
    return run_view


def run_id_of(run_view: Locator) -> int:
    return int(run_view.get_attribute("data-run-id") or 0)


def task_statuses(sidebar: Locator) -> dict[str, str]:
    tasks = sidebar.locator("[data-testid=jo-run-view] [data-testid=jo-task]")
    return {
        tasks.nth(i).get_attribute("data-task-key"): tasks.nth(i).get_attribute("data-status")
        for i in range(tasks.count())
    }


def fix_validate_notebook(root: Path) -> None:
    """Fix repair_demo's failing cell on disk, as a user would in the editor.

    (Changing the parameters cell's default ``threshold = None`` to ``0.5`` would not fix it: ``job.yaml``
    declares ``threshold: null``, which papermill injects after the parameters cell.)
    """
    import nbformat

    path = root / REPAIR_DEMO / "validate.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "raise ValueError" in cell.source:
            # the call spans lines since the notebooks are formatted (ruff): match up to its closing parenthesis
            cell.source = re.sub(
                r"raise ValueError\(.*?\)", "threshold = 0.5  # fixed", cell.source, count=1, flags=re.DOTALL
            )
            break
    else:
        raise AssertionError("validate.ipynb has no failing cell to fix")
    nbformat.write(nb, path)


# -- tests ------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_run_job_then_job_view(lab_page: Page, lab_server: LabServer, screenshots) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    widen_sidebar(page)

    jobs = show_jobs_list(sidebar)
    expect(jobs.locator(f'.jo-job[data-job-id="{GREEN_ENERGY}"]')).to_be_visible()
    expect(jobs.locator(f'.jo-job[data-job-id="{REPAIR_DEMO}"]')).to_be_visible()
    expect(sidebar.locator("[data-testid=jo-empty]")).to_have_count(0)

    run_view = run_job_from_list(page, sidebar, lab_server, GREEN_ENERGY)
    # live: the run is seen running (with cell progress) before it succeeds, without reloading anything
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=running]")).to_be_visible()
    expect(sidebar.locator("[data-testid=jo-progress]").first).to_be_visible()
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=succeeded]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    tasks = run_view.locator("[data-testid=jo-task]")
    expect(tasks).to_have_count(len(GREEN_ENERGY_TASKS))
    expect(run_view.locator("[data-testid=jo-task]:not([data-status=succeeded])")).to_have_count(
        0, timeout=10_000
    )
    assert task_statuses(sidebar) == {key: "succeeded" for key in GREEN_ENERGY_TASKS}
    expect(run_view.locator("[data-testid=jo-gantt]")).to_be_visible()
    expect(run_view.locator("[data-testid=jo-failure]")).to_have_count(0)
    # the server agrees
    runs = lab_server.api(f"jupyter-orchestrate/api/runs?job={GREEN_ENERGY}")["runs"]
    assert runs[0]["status"] == "succeeded"
    settle(page)
    screenshots(sidebar, "run-view.png")
    first_run = run_id_of(run_view)

    # a second run, with a parameter typed into the dialog
    run_view = run_job_from_list(page, sidebar, lab_server, GREEN_ENERGY, {"countries": "NL,DE"})
    second_run = run_id_of(run_view)
    assert second_run > first_run
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=succeeded]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    run = lab_server.api(f"jupyter-orchestrate/api/runs/{second_run}")
    assert run["parameters"]["countries"] == "NL,DE"
    assert run["parameters"]["start_date"] == "2024-01-01"  # untouched fields keep their defaults

    go_back(sidebar)
    job_view = sidebar.locator("[data-testid=jo-job-view]")
    expect(job_view).to_be_visible()
    dag = job_view.locator("[data-testid=jo-dag]")
    expect(dag).to_be_visible()
    # the task group "gold" is one box (collapsed) with the group's status; the for-each task shows its counts
    group = dag.locator('.jo-node.jo-group[data-group="gold"]')
    expect(group).to_have_attribute("data-status", "succeeded")
    assert set((group.get_attribute("data-members") or "").split()) == GOLD
    expect(dag.locator(".jo-node")).to_have_count(len(GREEN_ENERGY_TASKS) - len(GOLD) + 1)
    for key in GREEN_ENERGY_TASKS - GOLD:
        expect(dag.locator(f'.jo-node[data-task-key="{key}"]')).to_have_attribute("data-status", "succeeded")
    bronze = dag.locator('.jo-node[data-task-key="bronze"]')
    expect(bronze, "the second run (countries NL,DE) has two files").to_have_attribute("data-counts", "2/2")
    expect(bronze.locator("text")).to_have_text("bronze 2/2")
    group.click()  # expanded: its tasks, each with its status
    expect(dag.locator(".jo-node")).to_have_count(len(GREEN_ENERGY_TASKS))
    for key in GOLD:
        expect(dag.locator(f'.jo-node[data-task-key="{key}"]')).to_have_attribute("data-status", "succeeded")
    dag.locator('[data-testid=jo-group-collapse][data-group="gold"]').click()
    expect(group).to_be_visible()
    matrix = job_view.locator("[data-testid=jo-matrix]")
    expect(matrix).to_be_visible()
    for run_id in (first_run, second_run):  # one column per run
        expect(matrix.locator(f'th[data-run-id="{run_id}"]')).to_have_count(1)
    expect(job_view.locator("[data-testid=jo-run-job]")).to_be_visible()
    settle(page)
    screenshots(sidebar, "job-view.png")


@pytest.mark.timeout(600)
def test_failure_open_notebook_and_repair(lab_page: Page, lab_server: LabServer, screenshots) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    widen_sidebar(page)

    run_view = run_job_from_list(page, sidebar, lab_server, REPAIR_DEMO)
    run_id = run_id_of(run_view)
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=failed]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    expect(run_view.locator('[data-testid=jo-task][data-task-key="publish"]')).to_have_attribute(
        "data-status", "upstream_failed", timeout=10_000
    )
    assert task_statuses(sidebar) == {
        "extract": "succeeded",
        "validate": "failed",
        "publish": "upstream_failed",
    }

    failure = run_view.locator("[data-testid=jo-failure]")
    expect(failure).to_be_visible()
    expect(failure.locator("[data-testid=jo-failure-cell]")).to_contain_text("raise ValueError")
    expect(failure.locator("[data-testid=jo-failure-error]")).to_contain_text(
        "ValueError: threshold is not set"
    )
    expect(failure.locator("[data-testid=jo-traceback]")).to_have_count(0)
    failure.locator("[data-testid=jo-traceback-toggle]").click()
    traceback = failure.locator("[data-testid=jo-traceback]")
    expect(traceback).to_be_visible()
    expect(traceback).to_contain_text("ValueError")
    expect(traceback).not_to_contain_text("\x1b[")  # ANSI colours are rendered, not shown as escapes
    settle(page)
    screenshots(run_view.locator('[data-testid=jo-task][data-task-key="validate"]'), "failure-view.png")

    # open the executed notebook at the failing cell
    run_view.locator("[data-testid=jo-open-notebook]").first.click()
    expected_path = f"orchestrate_runs/runs/{run_id}/validate/attempt-1.ipynb"
    page.wait_for_function(
        "path => { const w = window.jupyterapp.shell.currentWidget; return !!w && !!w.context && w.context.path === path; }",
        arg=expected_path,
    )
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    expect(tab).to_contain_text("validate attempt 1")  # executed notebooks are titled by their run
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    active_cell = notebook.locator(".jp-Notebook .jp-Cell.jp-mod-active")
    expect(active_cell).to_have_count(1)
    expect(active_cell).to_contain_text("raise ValueError")
    expect(active_cell).to_be_in_viewport()

    # fix the notebook on disk, then repair the run from the sidebar
    fix_validate_notebook(lab_server.root)
    run_view.locator("[data-testid=jo-repair]").click()
    dialog = page.locator(".jp-Dialog")
    plan = dialog.locator("[data-testid=jo-repair-plan]")
    expect(plan).to_be_visible()
    expect(plan.locator("[data-testid=jo-repair-rerun]")).to_have_text(
        re.compile(r"^\s*validate,\s*publish\s*$")
    )
    expect(plan.locator("[data-testid=jo-repair-reused]")).to_have_text(re.compile(r"^\s*extract\s*$"))
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=succeeded]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    expect(run_view.locator("[data-testid=jo-task]:not([data-status=succeeded])")).to_have_count(
        0, timeout=10_000
    )
    assert task_statuses(sidebar) == {"extract": "succeeded", "validate": "succeeded", "publish": "succeeded"}
    expect(run_view.locator("[data-testid=jo-failure]")).to_have_count(0)

    run = lab_server.api(f"jupyter-orchestrate/api/runs/{run_id}")
    assert run["status"] == "succeeded" and run["repair_count"] == 1
    attempts = {t["task_key"]: t["attempt_count"] for t in run["task_runs"]}
    assert attempts == {"extract": 1, "validate": 2, "publish": 1}  # extract was reused, not re-executed
