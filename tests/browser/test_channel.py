"""The sidebar's channel and memory, in a real JupyterLab and Chromium: live run events over JupyterLab's own
event bus websocket (no token in any URL the page requests after it loaded), the open run restored after a
reload (IStateDB, saved with the workspace), and run links (``/lab?orchestrate-run=<id>``, IRouter) that open
JupyterLab on a run.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from .browser import SIDEBAR, Browser, Locator, Page, PlaywrightError, expect, open_sidebar
from .conftest import LabServer

pytestmark = pytest.mark.kernel

RUN_TIMEOUT = 120_000  # ms
GREEN_ENERGY = "example_notebooks/green_energy"
REPAIR_DEMO = "example_notebooks/repair_demo"
EVENT_SCHEMA_ID = "https://events.jupyter-orchestrate.org/run_event/v1"
STATE_KEY = "jupyter-orchestrate:view"


# -- helpers (small copies of test_sidebar.py's, so the two files merge without conflicts) ----------------------
def wait_for_lab(page: Page) -> None:
    """Wait until JupyterLab has restored its layout. A second window of a workspace is redirected to a new
    workspace (JupyterLab's window resolver), which reloads the page once: then wait again."""
    for attempt in range(3):
        try:
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.started !== undefined", timeout=60_000
            )
            page.evaluate("() => window.jupyterapp.restored")
            page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
            return
        except PlaywrightError as error:
            if "context was destroyed" not in str(error) or attempt == 2:
                raise
            page.wait_for_load_state()


def start_run(server: LabServer, job_id: str) -> int:
    """Start a run through the REST API (token header: the test's own request, not the page's)."""
    request = urllib.request.Request(
        f"{server.url}/jupyter-orchestrate/api/jobs/{job_id}/runs",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.loads(response.read())["run_id"])


def wait_run(server: LabServer, run_id: int, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = server.api(f"jupyter-orchestrate/api/runs/{run_id}")
        assert isinstance(run, dict)
        if run["status"] in ("succeeded", "failed", "canceled"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.3)


def workspace_of(page: Page) -> str:
    """The JupyterLab workspace a page shows (``/lab/workspaces/<name>``, else ``default``)."""
    path = urllib.parse.urlparse(page.url).path
    return path.split("/workspaces/", 1)[1].split("/")[0] if "/workspaces/" in path else "default"


def saved_view(server: LabServer, workspace: str = "default") -> Any:
    """The sidebar's view as the workspace on the server holds it (None before it was saved)."""
    document = server.api(f"lab/api/workspaces/{workspace}")
    assert isinstance(document, dict)
    return document.get("data", {}).get(STATE_KEY)


def wait_saved(
    server: LabServer, view: dict[str, Any], workspace: str = "default", timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while saved_view(server, workspace) != view:
        assert time.monotonic() < deadline, (
            f"the workspace {workspace} holds {saved_view(server, workspace)!r}, not {view!r}"
        )
        time.sleep(0.25)


def open_run_in_sidebar(page: Page, run_id: int) -> Locator:
    page.evaluate(
        "id => window.jupyterapp.commands.execute('jupyter-orchestrate:open-run', {runId: id})", run_id
    )
    run_view = page.locator(f"{SIDEBAR} [data-testid=jo-run-view]")
    expect(run_view).to_have_attribute("data-run-id", str(run_id))
    return run_view


@pytest.fixture
def context(browser: Browser, lab_server: LabServer):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(30_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab_server.url)
    try:
        yield context
    finally:
        context.close()


# -- tests ------------------------------------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_live_status_over_the_event_bus_with_no_token_in_urls(context, lab_server: LabServer) -> None:
    page = context.new_page()
    requests: list[str] = []
    sockets: list[str] = []
    frames: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        sockets.append(ws.url)

        def on_frame(payload: Any) -> None:
            try:
                message = json.loads(payload)
            except (TypeError, ValueError):
                return
            if isinstance(message, dict) and message.get("schema_id") == EVENT_SCHEMA_ID:
                frames.append(message)

        ws.on("framereceived", on_frame)

    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", on_socket)
    page.goto(f"{lab_server.url}/lab?token={lab_server.token}")
    wait_for_lab(page)
    first = requests[0]
    assert lab_server.token in first, "the test logs in with the token in the first URL"
    sidebar = open_sidebar(page)
    expect(sidebar.locator(f'.jo-job[data-job-id="{GREEN_ENERGY}"]')).to_be_visible()

    run_id = start_run(lab_server, GREEN_ENERGY)  # started by someone else: the page only listens
    open_run_in_sidebar(page, run_id)
    run_view = sidebar.locator(f'[data-testid=jo-run-view][data-run-id="{run_id}"]')
    expect(run_view, "live: running, without Refresh").to_have_attribute(
        "data-run-status", "running", timeout=30_000
    )
    expect(sidebar.locator("[data-testid=jo-progress]").first, "live cell progress").to_be_visible()
    final = wait_run(lab_server, run_id)
    ended = time.monotonic()
    expect(run_view).to_have_attribute("data-run-status", final["status"], timeout=10_000)
    lag = time.monotonic() - ended
    print(f"the page showed run {run_id} {final['status']} {lag:.1f} s after the server recorded it")
    assert lag < 10, "the end arrived by event, not by the 30 s refresh"

    mine = [f for f in frames if f["run_id"] == run_id]
    assert {f["type"] for f in mine} == {"run_status", "task_status", "progress"}, mine[:5]
    assert [f["status"] for f in mine if f["type"] == "run_status"][-1] == final["status"]
    events_sockets = [u for u in sockets if "/api/events/subscribe" in u]
    assert events_sockets, f"the page has no event bus websocket: {sockets}"
    assert not any("jupyter-orchestrate/api/events" in u for u in requests), "the sidebar must not use SSE"
    leaked = [u for u in requests[1:] + sockets if lab_server.token in u]
    assert leaked == [], f"URLs with the token after the page loaded: {leaked}"
    print(f"{len(requests)} requests, {len(sockets)} websockets ({events_sockets}), {len(mine)} run events")


@pytest.mark.timeout(600)
def test_reload_restores_the_run_and_a_run_link_opens_its_run(context, lab_server: LabServer) -> None:
    first_run = start_run(lab_server, REPAIR_DEMO)
    second_run = start_run(lab_server, REPAIR_DEMO)
    page = context.new_page()
    page.goto(f"{lab_server.url}/lab?token={lab_server.token}")
    wait_for_lab(page)
    open_sidebar(page)
    run_view = open_run_in_sidebar(page, first_run)
    wait_saved(lab_server, {"kind": "run", "runId": first_run})

    page.reload()
    wait_for_lab(page)
    sidebar = page.locator(SIDEBAR)
    expect(sidebar, "the layout restorer reopens the panel").to_be_visible()
    run_view = sidebar.locator("[data-testid=jo-run-view]")
    expect(run_view, "after a reload the sidebar shows the same run").to_have_attribute(
        "data-run-id", str(first_run)
    )

    copy = run_view.locator("[data-testid=jo-copy-link]")
    expect(copy).to_be_visible()
    link = copy.get_attribute("data-link")
    assert link == f"{lab_server.url}/lab?orchestrate-run={first_run}", link
    copy.click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == link, copied

    other = context.new_page()  # the same browser session (cookie), a link to the other run
    other.goto(f"{lab_server.url}/lab?orchestrate-run={second_run}")
    wait_for_lab(other)
    linked = other.locator(f"{SIDEBAR} [data-testid=jo-run-view]")
    expect(linked, "the run link opens the sidebar on its run").to_have_attribute(
        "data-run-id", str(second_run)
    )
    assert "orchestrate-run" not in other.url, f"the link's parameter stays in the address bar: {other.url}"
    print(f"the run link's page is {other.url}")
    # a second window of the "default" workspace gets a workspace of its own (JupyterLab's window resolver)
    wait_saved(lab_server, {"kind": "run", "runId": second_run}, workspace_of(other))
    other.reload()
    wait_for_lab(other)
    expect(other.locator(f"{SIDEBAR} [data-testid=jo-run-view]")).to_have_attribute(
        "data-run-id", str(second_run)
    )

    # a link to a run that does not exist says so instead of showing another view
    other.goto(f"{lab_server.url}/lab?orchestrate-run=999999")
    wait_for_lab(other)
    missing = other.locator(f"{SIDEBAR} [data-testid=jo-run-view]")
    expect(missing).to_contain_text("Cannot load run 999999")
    for run_id in (first_run, second_run):
        wait_run(lab_server, run_id)
