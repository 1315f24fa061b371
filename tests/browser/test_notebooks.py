"""Notebooks the sidebar touches, in a real JupyterLab and Chromium: Task settings write nothing behind the
user's back (Cancel leaves the file byte-identical, Save changes only ``metadata.orchestrate`` through the
notebook's model and keeps unsaved edits and the dirty state, a bad value is an inline error), and an executed
attempt notebook opens read-only with no kernel, titled by its run, at its failing cell's error output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .browser import Locator, Page, expect, open_sidebar
from .conftest import LabServer

pytestmark = pytest.mark.kernel

RUN_TIMEOUT = 120_000  # ms
REPAIR_DEMO = "example_notebooks/repair_demo"
PLAIN = "scratch/plain.ipynb"
VIEWPORT_HEIGHT = 900
CURRENT_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
SETTINGS_BUTTON = f"{CURRENT_PANEL} [data-command='jupyter-orchestrate:task-settings']"

# JavaScript run in the page: the current notebook panel's state
PANEL_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  if (!w || !w.context || !w.context.model) { return null; }
  const m = w.context.model;
  return {
    path: w.context.path,
    dirty: m.dirty,
    readOnly: m.readOnly,
    orchestrate: m.getMetadata('orchestrate') ?? null,
    sources: m.sharedModel.cells.map(c => c.getSource()),
    label: w.title.label,
    session: w.sessionContext ? (w.sessionContext.session ? w.sessionContext.session.id : null) : 'none',
    kernel: w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
      ? w.sessionContext.session.kernel.id : null,
    cellsReadOnly: w.content.widgets.map(c => c.readOnly),
    marker: w.node.dataset.orchestrateExecuted ?? null
  };
}"""


# -- helpers (small copies of test_sidebar's, so the files merge independently) -----------------------------


def show_jobs_list(sidebar: Locator) -> Locator:
    jobs = sidebar.locator("[data-testid=jo-jobs]")
    for _ in range(3):
        if jobs.is_visible():
            break
        sidebar.locator(".jo-header").get_by_title("Back").first.click()
    expect(jobs).to_be_visible()
    return jobs


def write_plain_notebook(path: Path, orchestrate: dict[str, Any] | None = None) -> None:
    """A notebook that is not a task (no ``metadata.orchestrate``, unless given)."""
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("print('hello')"), nbformat.v4.new_markdown_cell("# Notes")]
    )
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata.language_info = {"name": "python"}
    if orchestrate is not None:
        nb.metadata.orchestrate = orchestrate
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def panel_state(page: Page) -> dict[str, Any]:
    state = page.evaluate(PANEL_STATE)
    assert state is not None, "no document is open"
    return state


def open_document(page: Page, path: str) -> None:
    """Open ``path`` as a user would (the file browser's open command) and wait for its kernel to be idle."""
    page.evaluate(
        "path => window.jupyterapp.commands.execute('docmanager:open', { path }).then(() => null)", path
    )
    page.wait_for_function(
        """path => { const w = window.jupyterapp.shell.currentWidget;
          return !!w && !!w.context && w.context.path === path && w.context.isReady
            && !!w.sessionContext.session && !!w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.status === 'idle'; }""",
        arg=path,
        timeout=60_000,
    )
    page.wait_for_timeout(500)  # kernel info may still update the notebook's metadata


def open_settings(page: Page) -> Locator:
    page.locator(SETTINGS_BUTTON).click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator("[data-testid=jo-task-settings]")).to_be_visible()
    return dialog


def without_orchestrate(data: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    copy["metadata"].pop("orchestrate", None)
    return copy


def api_ids(server: LabServer, route: str) -> list[str]:
    return sorted(item["id"] for item in server.api(route))  # type: ignore[union-attr]


# -- tests ------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_task_settings_write_nothing_behind_the_users_back(lab_page: Page, lab_server: LabServer) -> None:
    page = lab_page
    path = lab_server.root / PLAIN
    write_plain_notebook(path)
    open_document(page, PLAIN)
    # the kernel's language_info makes a fresh notebook dirty: start from the notebook as JupyterLab saves it
    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.save()")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    original = path.read_bytes()
    assert "orchestrate" not in json.loads(original)["metadata"]

    # Opening the dialog on a plain notebook and pressing Cancel changes nothing
    dialog = open_settings(page)
    expect(dialog.locator(".jp-Dialog-header")).to_contain_text("Task settings: plain")
    assert path.read_bytes() == original, "opening the dialog wrote the notebook"
    dialog.locator(".jp-mod-reject").click()
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(500)
    assert path.read_bytes() == original, "Cancel changed the notebook file"
    state = panel_state(page)
    assert state["dirty"] is False and state["orchestrate"] is None
    jobs = lab_server.api("jupyter-orchestrate/api/jobs")["jobs"]  # type: ignore[index]
    assert "scratch" not in [j["job_id"] for j in jobs], "the folder became a job without Save"

    # Save on the clean notebook: only metadata.orchestrate changes, and the document is saved (clean)
    dialog = open_settings(page)
    dialog.locator("input[type=number]").nth(1).fill("45")  # timeout_seconds
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    page.wait_for_function(
        """() => { const m = window.jupyterapp.shell.currentWidget.context.model;
          return !m.dirty && m.getMetadata('orchestrate') !== undefined; }""",
        timeout=10_000,
    )
    deadline = time.monotonic() + 10
    while b'"orchestrate"' not in path.read_bytes():
        assert time.monotonic() < deadline, "Save did not save the clean notebook"
        time.sleep(0.2)
    saved = json.loads(path.read_bytes())
    assert saved["metadata"]["orchestrate"] == {"timeout_seconds": 45}
    assert without_orchestrate(saved) == without_orchestrate(json.loads(original)), (
        "Save changed more than metadata.orchestrate"
    )
    assert panel_state(page)["dirty"] is False

    # Save on a dirty notebook: the user's unsaved edit stays unsaved, the document stays dirty
    page.locator(f"{CURRENT_PANEL} .jp-Cell").first.locator(".cm-content").click()
    page.keyboard.press("End")
    page.keyboard.type("  # unsaved edit")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.context.model.dirty")
    before_save = path.read_bytes()
    dialog = open_settings(page)
    dialog.locator("input[type=number]").nth(0).fill("2")  # max_retries
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.context.model.getMetadata('orchestrate').max_retries === 2"
    )
    page.wait_for_timeout(500)
    state = panel_state(page)
    assert state["dirty"] is True, "the dirty notebook was saved behind the user's back"
    assert state["sources"][0] == "print('hello')  # unsaved edit", state["sources"]
    assert state["orchestrate"] == {"timeout_seconds": 45, "max_retries": 2}
    assert path.read_bytes() == before_save, "the file was written while the user had unsaved edits"

    # A value the form cannot take keeps Save disabled (the inputs' own constraints, checked by the dialog)
    dialog = open_settings(page)
    dialog.locator("input[type=number]").nth(1).fill("0")  # timeout_seconds must be >= 1
    expect(dialog.locator(".jp-mod-accept")).to_be_disabled()
    dialog.locator(".jp-mod-reject").click()
    expect(dialog).to_have_count(0)

    # A value the server refuses (a dependency cycle) is shown inline; the dialog stays open with the input
    write_plain_notebook(path.with_name("other.ipynb"), {"depends_on": ["plain"]})
    dialog = open_settings(page)
    select = dialog.locator("select[multiple]")
    expect(select.locator("option")).to_have_text(["other"])
    select.select_option(["other"])
    dialog.locator(".jp-mod-accept").click()
    error = page.locator(".jp-Dialog .jo-field-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("dependency cycle")
    expect(page.locator(".jp-Dialog select[multiple] option:checked")).to_have_text(["other"])
    page.locator(".jp-Dialog .jp-mod-reject").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    assert panel_state(page)["orchestrate"] == {"timeout_seconds": 45, "max_retries": 2}
    assert path.read_bytes() == before_save

    # leave the document as on disk, so closing the page prompts nothing
    page.evaluate("() => window.jupyterapp.shell.currentWidget.context.revert()")


@pytest.mark.timeout(400)
def test_executed_notebook_opens_read_only_without_a_kernel(
    lab_page: Page, lab_server: LabServer, screenshots
) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    show_jobs_list(sidebar)
    job = sidebar.locator(f'[data-testid=jo-jobs] .jo-job[data-job-id="{REPAIR_DEMO}"]')
    expect(job).to_be_visible()
    job.locator(".jo-run-button").click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog.locator("[data-testid=jo-parameters-form]")).to_be_visible()
    dialog.locator(".jp-mod-accept").click()
    expect(dialog).to_have_count(0)
    run_view = sidebar.locator("[data-testid=jo-run-view]")
    expect(run_view).to_be_visible()
    expect(sidebar.locator("[data-testid=jo-run-view][data-run-status=failed]")).to_be_visible(
        timeout=RUN_TIMEOUT
    )
    run_id = int(run_view.get_attribute("data-run-id") or 0)
    run = lab_server.api(f"jupyter-orchestrate/api/runs/{run_id}")
    assert isinstance(run, dict) and run["status"] == "failed"
    validate = next(t for t in run["task_runs"] if t["task_key"] == "validate")
    executed_path = validate["attempts"][-1]["executed_notebook_path"]
    assert executed_path == f"orchestrate_runs/runs/{run_id}/validate/attempt-1.ipynb"
    executed_file = lab_server.root / executed_path
    executed_bytes = executed_file.read_bytes()

    time.sleep(1)  # the run's own kernels are the executor's, not the server's; let any bookkeeping settle
    kernels_before = api_ids(lab_server, "api/kernels")
    sessions_before = api_ids(lab_server, "api/sessions")

    run_view.locator("[data-testid=jo-open-notebook]").first.click()
    page.wait_for_function(
        """path => { const w = window.jupyterapp.shell.currentWidget;
          return !!w && !!w.context && w.context.path === path && w.context.isReady
            && !!w.node.dataset.orchestrateExecuted; }""",
        arg=executed_path,
    )
    title = f"{run['job']} #{run_id} validate attempt 1"
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    expect(tab).to_have_text(title)

    # the failing cell's error output is in view (not only the cell's top)
    active_cell = page.locator(f"{CURRENT_PANEL} .jp-Notebook .jp-Cell.jp-mod-active")
    expect(active_cell).to_contain_text("raise ValueError")
    error_output = active_cell.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    expect(error_output.first).to_contain_text("threshold is not set")
    deadline = time.monotonic() + 10
    while True:
        box = error_output.last.bounding_box()
        if box and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT_HEIGHT:
            break
        assert time.monotonic() < deadline, f"the error output is outside the viewport: {box}"
        page.wait_for_timeout(200)

    screenshots(page, "executed-notebook.png")
    state = panel_state(page)
    assert state["readOnly"] is True, state
    assert state["dirty"] is False, state
    assert state["session"] is None and state["kernel"] is None, state
    assert all(state["cellsReadOnly"]), state["cellsReadOnly"]
    assert state["label"] == title

    # editing a cell is impossible
    sources = state["sources"]
    active_cell.locator(".cm-content").first.click()
    page.keyboard.type("edited = True\n")
    page.wait_for_timeout(300)
    assert panel_state(page)["sources"] == sources, "a cell of the executed notebook could be edited"
    assert panel_state(page)["dirty"] is False
    # and so are structural edits (command mode: insert above/below, cut): they are undone at once
    page.keyboard.press("Escape")
    for key in ("a", "b", "x"):
        page.keyboard.press(key)
    page.wait_for_timeout(1000)
    assert panel_state(page)["sources"] == sources, "cells of the executed notebook could be added or cut"
    assert panel_state(page)["dirty"] is False
    assert all(panel_state(page)["cellsReadOnly"])

    time.sleep(1)
    assert api_ids(lab_server, "api/kernels") == kernels_before, (
        "opening the executed notebook started a kernel"
    )
    assert api_ids(lab_server, "api/sessions") == sessions_before, (
        "opening the executed notebook made a session"
    )
    # the tab's title is a label only: the file was neither renamed nor rewritten
    assert executed_file.read_bytes() == executed_bytes
    assert panel_state(page)["path"] == executed_path

    # the task's source notebook still opens as before (editable, with a kernel)
    source_path = f"{REPAIR_DEMO}/validate.ipynb"
    open_document(page, source_path)
    source_state = panel_state(page)
    assert source_state["readOnly"] is False and source_state["kernel"] is not None
    assert source_state["label"] == "validate.ipynb"
