"""The run and repair dialogs in a real JupyterLab and a real browser (Chromium through Playwright): defaults
are shown as values, a parameter fed by an upstream task value is read-only, a bad value keeps the dialog open
with the input and an error at its field, starting nothing, until it is fixed; the repair dialog chooses its
tasks, re-plans, and offers only the parameters of the tasks that re-execute."""

from __future__ import annotations

import time

import pytest

from .browser import Locator, Page, expect, open_sidebar
from .conftest import LabServer

pytestmark = pytest.mark.kernel

GREEN_ENERGY = "example_notebooks/green_energy"
REPAIR_DEMO = "example_notebooks/repair_demo"
RUN_TIMEOUT = 120.0  # s


# -- helpers (small copies of test_sidebar.py's, so the files do not depend on each other) ----------------------


def open_run_dialog(page: Page, sidebar: Locator, job_id: str) -> Locator:
    """Click the job's Run button in the jobs list; returns the dialog."""
    jobs = sidebar.locator("[data-testid=jo-jobs]")
    for _ in range(3):
        if jobs.is_visible():
            break
        sidebar.locator(".jo-header").get_by_title("Back").first.click()
    job = jobs.locator(f'.jo-job[data-job-id="{job_id}"]')
    expect(job).to_be_visible()
    job.locator(".jo-run-button").click()
    dialog = page.locator(".jp-Dialog")
    # jo-run-form is new in this branch's build: its presence shows the page loaded this build
    expect(dialog.locator("[data-testid=jo-run-form] [data-testid=jo-parameters-form]")).to_be_visible()
    return dialog


def run_count(server: LabServer) -> int:
    return len(server.api("jupyter-orchestrate/api/runs?limit=500")["runs"])  # type: ignore[index]


def wait_run(server: LabServer, run_id: int) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        run = server.api(f"jupyter-orchestrate/api/runs/{run_id}")
        assert isinstance(run, dict)
        if run["status"] in ("succeeded", "failed", "canceled"):
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
        time.sleep(0.5)


# -- test -------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_run_and_repair_dialogs(lab_page: Page, lab_server: LabServer) -> None:
    page = lab_page
    sidebar = open_sidebar(page)

    # green_energy: silver's bronze_rows comes from {{tasks.bronze.values.rows}}: shown, not editable
    dialog = open_run_dialog(page, sidebar, GREEN_ENERGY)
    fed = dialog.locator('input[name="bronze_rows"]')
    expect(fed).to_be_disabled()
    expect(fed).to_have_value("from task bronze")
    expect(dialog.locator('input[name="start_date"]')).to_have_value("2024-01-01")
    expect(dialog.locator('input[name="start_date"]')).to_be_editable()
    dialog.locator(".jp-mod-reject").click()
    expect(dialog).to_have_count(0)

    # repair_demo: a bad int keeps the dialog open with the input and an error at its field
    before = run_count(lab_server)
    dialog = open_run_dialog(page, sidebar, REPAIR_DEMO)
    n_readings = dialog.locator('input[name="n_readings"]')
    expect(n_readings).to_have_value("20")  # the default, as a value
    expect(dialog.locator('input[name="seed"]')).to_have_value("42")
    n_readings.fill("abc")
    dialog.locator(".jp-mod-accept").click()
    dialog = page.locator(".jp-Dialog")
    field = dialog.locator('[data-field="n_readings"]')
    expect(field.locator(".jo-field-error")).to_have_text('"abc" is not a valid int')
    expect(dialog.locator('input[name="n_readings"]')).to_have_value("abc")
    expect(dialog.locator('input[name="seed"]')).to_have_value("42")
    expect(dialog.locator(".jo-field-error")).to_have_count(1)
    page.wait_for_timeout(1000)  # a run started behind the dialog's back would be listed by now
    assert run_count(lab_server) == before, "a run was started with a bad value"

    # fixed: Run starts the run, with only the changed value as an override, typed
    dialog.locator('input[name="n_readings"]').fill("25")
    dialog.locator(".jp-mod-accept").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    run_view = sidebar.locator("[data-testid=jo-run-view]")
    expect(run_view).to_be_visible()
    assert run_count(lab_server) == before + 1
    run_id = int(run_view.get_attribute("data-run-id") or 0)
    newest = lab_server.api(f"jupyter-orchestrate/api/runs?job={REPAIR_DEMO}&limit=1")["runs"][0]  # type: ignore[index]
    assert newest["run_id"] == run_id
    run = wait_run(lab_server, run_id)
    extract = next(t for t in run["task_runs"] if t["task_key"] == "extract")
    parameters = extract["attempts"][0]["parameters"]
    # papermill gets the typed override; seed, left at its default, was not sent (the notebook keeps its own)
    assert parameters["n_readings"] == 25 and "seed" not in parameters, parameters
    assert run["parameters"]["threshold"] is None

    # the run failed in validate: the repair dialog chooses its tasks and offers only their parameters
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=failed]")).to_be_visible()
    sidebar.locator("[data-testid=jo-repair]").click()
    dialog = page.locator(".jp-Dialog")
    plan = dialog.locator("[data-testid=jo-repair-plan]")
    tasks = plan.locator("[data-testid=jo-repair-tasks]")
    expect(tasks.locator('input[name="validate"]')).to_be_checked()
    expect(tasks.locator('input[name="publish"]')).to_be_checked()
    expect(tasks.locator('input[name="extract"]')).not_to_be_checked()
    expect(plan.locator("[data-testid=jo-repair-rerun]")).to_have_text("validate, publish")
    expect(plan.locator("[data-testid=jo-repair-reused]")).to_have_text("extract")
    shown = plan.locator("[data-field]")
    expect(shown).to_have_count(2)  # threshold and output_dir; extract's n_readings and seed are not rerun
    expect(plan.locator('[data-field="n_readings"]')).to_have_count(0)
    tasks.locator('input[name="extract"]').check()
    expect(plan.locator("[data-testid=jo-repair-rerun]")).to_have_text("extract, validate, publish")
    expect(plan.locator("[data-testid=jo-repair-reused]")).to_have_text("nothing")
    expect(plan.locator('input[name="n_readings"]')).to_be_visible()
    dialog.locator(".jp-mod-reject").click()
    expect(dialog).to_have_count(0)
    after = lab_server.api(f"jupyter-orchestrate/api/runs/{run_id}")
    assert isinstance(after, dict) and after["repair_count"] == 0, "Cancel repaired nothing"
