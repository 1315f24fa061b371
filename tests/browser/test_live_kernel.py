"""Debug in live kernel, then resume from the failed cell, in a real JupyterLab and Chromium.

The job ``live``: ``compute`` (cell 0 its parameters, cell 1 ``x = 41``, cell 2 asserts that ``fixed.flag``
exists) and ``report`` downstream, with ``task_defaults: {keep_failed_kernels_seconds: 300}``. The test runs it
from the sidebar, waits for ``compute`` to fail in cell 2 with its kernel kept, clicks "Debug in live kernel",
evaluates ``x`` in the JupyterLab console that opens on that kernel (41: the failed attempt's state), creates
``fixed.flag`` and clicks "Resume from cell 3": the run succeeds.

The screenshot goes to the test's ``tmp_path`` (and ``docs/images/live-kernel.png`` with
``UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import write_notebook

from .browser import Page, expect, open_sidebar, settle
from .conftest import LabServer, launch_lab
from .test_sidebar import run_job_from_list, widen_sidebar

pytestmark = pytest.mark.kernel

RUN_TIMEOUT = 120_000  # ms
FLAG = "import os\nassert os.path.exists('fixed.flag'), 'fixed.flag is missing'"


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """``jupyter lab`` over a root holding only the job ``live``."""
    base = tmp_path_factory.mktemp("lab-live")
    root = base / "root"
    job = root / "live"
    write_notebook(job / "compute.ipynb", "x = 41", FLAG, parameters="note = ''", orchestrate={})
    write_notebook(job / "report.ipynb", "print('report')", orchestrate={"depends_on": ["compute"]})
    (job / "job.yaml").write_text(
        "name: live\nparameters:\n  note: hello\ntask_defaults:\n  keep_failed_kernels_seconds: 300\n"
    )
    with launch_lab(base, root) as server:
        yield server
    shutil.rmtree(root / "orchestrate_runs", ignore_errors=True)


@pytest.mark.timeout(600)
def test_debug_in_live_kernel_then_resume_from_the_failed_cell(
    lab_page: Page, lab_server: LabServer, screenshots
) -> None:
    page = lab_page
    sidebar = open_sidebar(page)
    widen_sidebar(page)

    run_view = run_job_from_list(page, sidebar, lab_server, "live")
    expect(run_view).to_have_attribute("data-run-status", "failed", timeout=RUN_TIMEOUT)
    card = run_view.locator('[data-testid=jo-task][data-task-key="compute"]')
    live = card.locator("[data-testid=jo-live-kernel]")
    expect(live).to_be_visible()
    expect(live.locator("[data-testid=jo-kept-until]")).to_contain_text("kept until")
    expect(live.locator("[data-testid=jo-console-command]")).to_contain_text("jupyter console --existing")
    resume = live.locator("[data-testid=jo-resume]")
    expect(resume).to_have_text("Resume from cell 3")

    live.locator("[data-testid=jo-debug-kernel]").click()
    console = page.locator(".jp-CodeConsole").last
    expect(console).to_be_visible()
    prompt = console.locator(".jp-CodeConsole-promptCell .cm-content")
    expect(prompt).to_be_visible()
    # the run's failure notification sits over the console's prompt: dismiss it
    for close in page.get_by_role("button", name="Hide notification").all():
        close.click()
    expect(console.locator(".jp-CodeConsole-banner")).to_contain_text("Python")  # the kernel answered
    prompt.click()
    prompt.fill("x")
    expect(prompt).to_have_text("x")
    prompt.press("Shift+Enter")
    output = console.locator(".jp-CodeConsole-content .jp-OutputArea-output")
    expect(output.last).to_have_text("41", timeout=30_000)
    # the kernel JupyterLab attached to is the kept one: the server lists it
    kernels = lab_server.api("api/kernels")
    assert isinstance(kernels, list) and len(kernels) == 1, kernels
    settle(page)
    screenshots(page, "live-kernel.png")

    (lab_server.root / "live" / "fixed.flag").touch()
    resume.click()
    expect(run_view).to_have_attribute("data-run-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(card.locator("[data-testid=jo-live-kernel]")).to_have_count(0)
    run_id = int(run_view.get_attribute("data-run-id") or 0)
    run = lab_server.api(f"jupyter-orchestrate/api/runs/{run_id}")
    assert isinstance(run, dict)
    compute = next(t for t in run["task_runs"] if t["task_key"] == "compute")
    assert compute["attempts"][-1]["resumed_from_cell"] == 2, compute
    assert {t["task_key"]: t["status"] for t in run["task_runs"]} == {
        "compute": "succeeded",
        "report": "succeeded",
    }
