"""The Server-Sent Events stream of run, task run and cell progress events, with real kernels."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jupyter_orchestrate.schemas.events import StreamEvent
from tests.conftest import write_notebook
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
    tasks = ["bronze", "silver", "gold_country_totals", "gold_source_shares", "report"]
    sequence: dict[str, list[str]] = {key: [] for key in tasks}
    position: dict[tuple[str, str], int] = {}
    for i, event in enumerate(events):
        if event["type"] == "task_status":
            sequence[event["task_key"]].append(event["status"])
            position[(event["task_key"], event["status"])] = i
    assert sequence == {key: ["queued", "running", "succeeded"] for key in tasks}
    upstream = {
        "silver": ["bronze"],
        "gold_country_totals": ["silver"],
        "gold_source_shares": ["silver"],
        "report": ["gold_country_totals", "gold_source_shares"],
    }
    for key, ups in upstream.items():
        for up in ups:
            assert position[(up, "succeeded")] < position[(key, "queued")], (
                f"{key} queued before {up} succeeded"
            )

    progress = [e for e in events if e["type"] == "progress"]
    assert {e["task_key"] for e in progress} == set(tasks)
    for key in tasks:
        cells = [(e["cell"], e["total"]) for e in progress if e["task_key"] == key]
        assert all(0 <= cell <= total for cell, total in cells), (key, cells)
        assert [c for c, _ in cells] == list(range(cells[0][1] + 1)), (
            f"0 at the start, then each code cell once: {key} {cells}"
        )
        assert position[(key, "running")] < events.index(next(e for e in progress if e["task_key"] == key))
        final = await api.ok("GET", "runs/2")
        attempt = next(t for t in final["task_runs"] if t["task_key"] == key)["attempts"][0]
        assert cells[-1][1] == attempt["cells_total"], (key, cells, attempt)
        assert all(e["attempt_number"] == 1 for e in progress if e["task_key"] == key)
