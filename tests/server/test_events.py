"""Run, task run and cell progress events with real kernels: on jupyter_server's event bus (the sidebar's
channel: ``serverapp.event_logger`` and its ``/api/events/subscribe`` websocket) and on the Server-Sent Events
stream for scripts (token in the Authorization header only)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_orchestrate.schemas.events import (
    EVENT_SCHEMA_ID,
    ProgressStreamEvent,
    RunStatusStreamEvent,
    StreamEvent,
    TaskStatusStreamEvent,
)
from tests.conftest import GREEN_ENERGY_TASKS, REPO, write_notebook
from tests.server.conftest import TERMINAL, Api

pytestmark = pytest.mark.kernel


class StopStream(Exception):
    """Raised in the streaming callback to close the connection once the awaited event has arrived."""


class EventStream:
    """A client of ``GET events``: parses SSE blocks as they arrive; stops after run ``stop_run`` ends."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        stop_run: int | None = None,
        stop_runs: set[int] | None = None,
    ):
        self.url = url
        self.headers = headers
        self.stop_runs = stop_runs if stop_runs is not None else {stop_run}
        self.ended: set[int] = set()
        self.buffer = ""
        self.comments: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.done = asyncio.Event()
        self.response_headers: Any = None
        self.task: asyncio.Future[Any] | None = None

    def on_chunk(self, chunk: bytes) -> None:
        self.buffer += chunk.decode("utf-8")
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    if line[1:].strip() == "connected":
                        self.connected.set()
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if not fields:
                continue
            data = json.loads(fields["data"])
            assert str(data["id"]) == fields["id"] and data["type"] == fields["event"], block
            self.events.append(data)
            if (
                data["type"] == "run_status"
                and data["status"] in TERMINAL
                and data["run_id"] in self.stop_runs
            ):
                self.ended.add(data["run_id"])
                if self.ended == self.stop_runs:
                    self.done.set()
                    raise StopStream

    def on_headers(self, line: str) -> None:
        self.response_headers = (self.response_headers or "") + line

    async def open(self) -> None:
        request = HTTPRequest(
            self.url,
            headers=self.headers,
            streaming_callback=self.on_chunk,
            header_callback=self.on_headers,
            request_timeout=150,
        )
        client = AsyncHTTPClient(force_instance=True)
        self.task = asyncio.ensure_future(client.fetch(request))
        await asyncio.wait_for(self.connected.wait(), 10)

    async def wait(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        assert self.task is not None
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        finally:
            try:
                await asyncio.wait_for(self.task, 5)
            except (StopStream, asyncio.TimeoutError):
                pass
            except Exception as exc:  # tornado wraps callback errors in some versions
                if not self.done.is_set():
                    raise AssertionError(f"event stream failed: {exc!r}") from exc
        return self.events


def events_url(jp_http_port: int, jp_base_url: str, query: str = "") -> str:
    return f"http://localhost:{jp_http_port}{jp_base_url}jupyter-orchestrate/api/events" + (
        f"?{query}" if query else ""
    )


async def test_event_stream_of_a_run(
    api: Api,
    examples: Path,
    jp_root_dir: Path,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    write_notebook(jp_root_dir / "other" / "noise.ipynb", "print('noise')", orchestrate={})
    # Run ids of a fresh state home are 1, 2...: "other" becomes run 1 and green_energy run 2.
    filtered = EventStream(events_url(jp_http_port, jp_base_url, "run_id=2"), jp_auth_header, stop_run=2)
    everything = EventStream(events_url(jp_http_port, jp_base_url), jp_auth_header, stop_runs={1, 2})
    await filtered.open()  # connected before the runs start, so no event can be missed
    await everything.open()
    assert "text/event-stream" in filtered.response_headers
    other = await api.start_run("other")
    green = await api.start_run("green_energy")
    assert (other["run_id"], green["run_id"]) == (1, 2)
    events = await filtered.wait()
    all_events = await everything.wait()

    assert events and all(e["run_id"] == 2 for e in events), "run_id= filters the stream"
    assert {e["run_id"] for e in all_events} == {1, 2}, "without a filter every run's events arrive"
    for e in all_events:  # the sidebar's type of the messages
        typed = StreamEvent.model_validate(e).root
        assert typed.model_dump(mode="json", by_alias=True, exclude_unset=True) == e
    assert [e for e in all_events if e["run_id"] == 2] == events, (
        "the filtered stream is the run's events, in order, none lost"
    )
    ids = [e["id"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(ids)), f"event ids strictly increase: {ids}"

    run_statuses = [e["status"] for e in events if e["type"] == "run_status"]
    assert run_statuses == ["running", "succeeded"] and events[-1]["type"] == "run_status"
    assert events[-1]["status"] == "succeeded"
    tasks = GREEN_ENERGY_TASKS
    iterations = [
        f"bronze[{i}]" for i in range(6)
    ]  # bronze is a for-each task: one iteration per country file
    sequence: dict[str, list[str]] = {key: [] for key in tasks + iterations}
    position: dict[tuple[str, str], int] = {}
    for i, event in enumerate(events):
        if event["type"] == "task_status":
            sequence[event["task_key"]].append(event["status"])
            position[(event["task_key"], event["status"])] = i
    assert sequence == {key: ["queued", "running", "succeeded"] for key in tasks + iterations}
    upstream = {
        "bronze": ["list_files"],
        **{i: ["list_files"] for i in iterations},
        "silver": ["bronze", *iterations],
        "check_silver": ["silver"],
        "gold_country_totals": ["check_silver"],
        "gold_source_shares": ["check_silver"],
        "report": ["gold_country_totals", "gold_source_shares"],
    }
    for key, ups in upstream.items():
        for up in ups:
            assert position[(up, "succeeded")] < position[(key, "queued")], (
                f"{key} queued before {up} succeeded"
            )

    progress = [e for e in events if e["type"] == "progress"]
    executing = [k for k in tasks if k not in ("bronze", "check_silver")] + iterations  # cells run there
    assert {e["task_key"] for e in progress} == set(executing)
    for key in executing:
        cells = [(e["cell"], e["total"]) for e in progress if e["task_key"] == key]
        assert all(0 <= cell <= total for cell, total in cells), (key, cells)
        assert [c for c, _ in cells] == list(range(cells[0][1] + 1)), (
            f"0 at the start, then each code cell once: {key} {cells}"
        )
        assert position[(key, "running")] < events.index(next(e for e in progress if e["task_key"] == key))
        final = await api.ok("GET", "runs/2")
        runs = [x for t in final["task_runs"] for x in (t, *t["iterations"])]  # tasks and iterations
        attempt = next(t for t in runs if t["task_key"] == key)["attempts"][0]
        assert cells[-1][1] == attempt["cells_total"], (key, cells, attempt)
        assert all(e["attempt_number"] == 1 for e in progress if e["task_key"] == key)


# -- jupyter_server's event bus: the sidebar's channel ----------------------------------------------------------
class BusListener:
    """Every emission of jupyter_server's event bus (``serverapp.event_logger``) with the run events' schema id,
    as a listener receives it; done once runs ``stop_runs`` have ended."""

    def __init__(self, event_logger: Any, stop_runs: set[int]):
        self.event_logger = event_logger
        self.stop_runs = stop_runs
        self.ended: set[int] = set()
        self.events: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def __call__(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        assert schema_id == EVENT_SCHEMA_ID
        self.events.append(dict(data))
        if data["type"] == "run_status" and data["status"] in TERMINAL and data["run_id"] in self.stop_runs:
            self.ended.add(data["run_id"])
            if self.ended == self.stop_runs:
                self.done.set()

    def __enter__(self) -> BusListener:
        self.event_logger.add_listener(schema_id=EVENT_SCHEMA_ID, listener=self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.event_logger.remove_listener(schema_id=EVENT_SCHEMA_ID, listener=self)

    async def wait(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        await asyncio.wait_for(self.done.wait(), timeout)
        return self.events


def test_the_sidebar_uses_the_servers_schema_id() -> None:
    channel = (REPO / "labextension" / "src" / "channel.ts").read_text(encoding="utf-8")
    assert f"export const EVENT_SCHEMA_ID = '{EVENT_SCHEMA_ID}';" in channel


async def test_run_events_reach_jupyter_servers_event_bus_and_its_websocket(
    api: Api,
    examples: Path,
    jp_serverapp: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    """The sidebar's path: JupyterLab's serviceManager.events reads /api/events/subscribe (here with the token
    in a header, as a script would; the browser test checks the cookie path); every message is a StreamEvent
    under our schema id, the same sequence as a listener of the event logger sees."""
    url = f"ws://localhost:{jp_http_port}{jp_base_url}api/events/subscribe"
    socket = await websocket_connect(HTTPRequest(url, headers=jp_auth_header))
    try:
        with BusListener(jp_serverapp.event_logger, {1}) as bus:
            run = await api.start_run("green_energy")
            assert run["run_id"] == 1
            events = await bus.wait()
            received: list[dict[str, Any]] = []
            while not (
                received
                and received[-1].get("type") == "run_status"
                and received[-1].get("status") in TERMINAL
            ):
                text = await asyncio.wait_for(socket.read_message(), 30)
                assert text is not None, "the event bus websocket closed"
                message = json.loads(text)
                if message["schema_id"] == EVENT_SCHEMA_ID:  # the server's own events (kernels...) pass too
                    received.append(message)
    finally:
        socket.close()
    assert [{k: v for k, v in m.items() if k != "schema_id"} for m in received] == events
    for event in events:
        typed = StreamEvent.model_validate(event).root
        assert typed.model_dump(mode="json", by_alias=True, exclude_unset=True) == event
    kinds = {e["type"] for e in events}
    assert kinds == {"run_status", "task_status", "progress"}, kinds
    assert [e["status"] for e in events if e["type"] == "run_status"] == ["running", "succeeded"]
    tasks = set(GREEN_ENERGY_TASKS)
    iterations = {f"bronze[{i}]" for i in range(6)}
    finals = {e["task_key"]: e["status"] for e in events if e["type"] == "task_status"}
    assert finals == dict.fromkeys(tasks | iterations, "succeeded")
    # cells execute in the notebook tasks and the iterations (not the for-each task itself, nor the condition)
    assert {e["task_key"] for e in events if e["type"] == "progress"} == tasks - {
        "bronze",
        "check_silver",
    } | iterations
    ids = [e["id"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(ids)), ids


SECRET = "bus-s3cret-value-4711"
PARAMETER = "param-value-0815-unique"


async def test_bus_events_carry_no_secret_and_no_parameter(
    api: Api, jp_root_dir: Path, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that gets a secret through its environment and a parameter, prints both and fails with the
    secret in its exception: its events hold only the StreamEvent fields (no parameters, no output), the
    reason is the run document's (redacted), and neither value is anywhere in them."""
    monkeypatch.setenv("JO_BUS_TEST_SECRET", SECRET)
    settings = {"environment": {"env": {"API_TOKEN": "${JO_BUS_TEST_SECRET}"}}}
    write_notebook(
        jp_root_dir / "leaky" / "leak.ipynb",
        "import os\ntok = os.environ['API_TOKEN']\nprint('token', tok, 'value', value)",
        "raise ValueError(f'failed with {tok}')",
        parameters="value = 'default'",
        orchestrate=settings,
    )
    (jp_root_dir / "leaky" / "job.yaml").write_text("parameters:\n  value: default\n", encoding="utf-8")
    with BusListener(jp_serverapp.event_logger, {1}) as bus:
        run = await api.start_run("leaky", {"parameters": {"value": PARAMETER}})
        events = await bus.wait()
    doc = await api.ok("GET", f"runs/{run['run_id']}")
    assert doc["status"] == "failed" and doc["parameters"] == {"value": PARAMETER}, doc
    text = json.dumps(events, ensure_ascii=False)
    assert SECRET not in text and json.dumps(SECRET)[1:-1] not in text
    assert PARAMETER not in text, "parameters are not on the event bus"
    allowed = {
        "run_status": set(RunStatusStreamEvent.model_fields) - {"kind"} | {"type"},
        "task_status": set(TaskStatusStreamEvent.model_fields) - {"kind"} | {"type"},
        "progress": set(ProgressStreamEvent.model_fields) - {"kind"} | {"type"},
    }
    for event in events:
        assert set(event) <= allowed[event["type"]], event
    reasons = [e.get("reason") for e in events if e["type"] == "task_status" and e["status"] == "failed"]
    assert reasons == ["ValueError: failed with ***"], reasons
    assert reasons[0] == doc["task_runs"][0]["status_reason"], "the reason the run document shows, no more"


# -- GET events: for scripts, token in the header only ----------------------------------------------------------
async def test_the_event_stream_refuses_a_token_in_the_url(
    api: Api, jp_serverapp: Any, jp_auth_header: dict[str, str]
) -> None:
    token = jp_auth_header["Authorization"].split(" ", 1)[1]
    response = await api.get("events", params=f"token={token}", auth=False)
    assert response.code == 400 and "Authorization header" in response.message
    response = await api.get("events", params=f"run_id=1&token={token}", auth=True)
    assert response.code == 400, "also next to a header"
    assert (await api.get("events", auth=False)).code == 403


async def test_the_event_stream_refuses_a_cookie_alone(api: Api, jp_serverapp: Any) -> None:
    """A browser session (cookie, no Authorization header) is not let in: the sidebar uses the event bus."""
    cookie_response = await api.client.fetch(
        f"{api.base_url}api/status",
        headers=api.auth_header,
        raise_error=False,
    )
    cookies = [v.split(";", 1)[0] for v in cookie_response.headers.get_list("Set-Cookie")]
    login_cookies = [c for c in cookies if c.startswith("username-")]
    assert login_cookies, f"token login set no cookie: {cookies}"
    assert (await api.get("jobs", auth=False, headers={"Cookie": "; ".join(login_cookies)})).code == 200, (
        "the cookie authenticates the REST routes"
    )
    refused = await api.get("events", auth=False, headers={"Cookie": "; ".join(login_cookies)})
    assert refused.code == 403, refused.body
