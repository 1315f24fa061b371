"""The server's side of one history per workspace, with a real Jupyter server: it exports its state home to the
kernels it starts, publishes runs that other processes record there on its event stream, and treats its
``max_parallel_tasks`` as a default that a job's own setting overrides."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from traitlets.config import Config

from jupyter_orchestrate.workspace import HOME_ENV
from tests.conftest import REPO, write_notebook
from tests.server.conftest import Api
from tests.server.test_events import BusListener, EventStream, events_url

pytestmark = pytest.mark.kernel


async def test_kernels_started_by_the_server_get_its_state_home(
    jp_fetch: Any, orchestrate_app: Any, jp_serverapp: Any, state_home: Path
) -> None:
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel_id = json.loads(response.body)["id"]
    try:
        manager = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        environment = psutil.Process(manager.provisioner.pid).environ()
        assert environment.get(HOME_ENV) == str(state_home.resolve()) == str(orchestrate_app.home)
    finally:
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")


async def test_a_run_recorded_by_a_cli_process_reaches_the_event_stream(
    api: Api,
    jp_root_dir: Path,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    orchestrate_app: Any,
    jp_serverapp: Any,
) -> None:
    """Also on jupyter_server's event bus, the sidebar's channel."""
    write_notebook(jp_root_dir / "outside" / "first.ipynb", "print('from the CLI')", orchestrate={})
    write_notebook(jp_root_dir / "outside" / "second.ipynb", "pass", orchestrate={"depends_on": ["first"]})
    stream = EventStream(events_url(jp_http_port, jp_base_url), jp_auth_header, stop_run=1)
    await stream.open()
    bus = BusListener(jp_serverapp.event_logger, {1}).__enter__()
    env = {k: v for k, v in os.environ.items() if k != HOME_ENV}  # the CLI finds the server's home walking up
    env["PYTHONPATH"] = str(REPO)
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyter_orchestrate",
        "run",
        "outside",
        cwd=jp_root_dir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(cli.communicate(), 300)
    assert cli.returncode == 0, err.decode()
    assert f"state home: {orchestrate_app.home} (found above the job folder)" in err.decode()
    events = await stream.wait(timeout=60)  # the run ended before: its end must still come, from the watcher
    mine = [e for e in events if e["run_id"] == 1]
    assert mine[-1]["type"] == "run_status" and mine[-1]["status"] == "succeeded", mine
    finals = {e["task_key"]: e["status"] for e in mine if e["type"] == "task_status"}
    assert finals == {"first": "succeeded", "second": "succeeded"}, mine
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    try:
        on_bus = await bus.wait(timeout=10)
    finally:
        bus.__exit__()
    assert [e for e in on_bus if e["run_id"] == 1] == mine, "the event bus carries the same messages"
    assert (await api.ok("GET", "runs/1"))["status"] == "succeeded", "and the REST API lists it"


class TestParallelismDefault:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config.OrchestrateApp.max_parallel_tasks = 7
        jp_server_config.OrchestrateApp.scheduler_enabled = False
        return jp_server_config

    async def test_the_jobs_setting_wins_and_the_trait_is_the_default(
        self, api: Api, jp_root_dir: Path, orchestrate_app: Any
    ) -> None:
        for job in ("own", "plain"):
            write_notebook(jp_root_dir / job / "a.ipynb", "pass", orchestrate={})
        (jp_root_dir / "own" / "job.yaml").write_text("max_parallel_tasks: 2\n")
        (jp_root_dir / "plain" / "job.yaml").write_text(
            "schedules:\n  - {name: nightly, cron: '0 2 * * *'}\n"
        )
        own = await api.start_run("own")
        plain = await api.start_run("plain")
        explicit = await api.start_run("own", {"max_parallel": 3})
        scheduled = await api.ok("POST", "jobs/plain/schedules/nightly/trigger", code=201)
        chosen = {}
        for name, doc in (("own", own), ("plain", plain), ("explicit", explicit), ("scheduled", scheduled)):
            await api.wait_run(doc["run_id"])
            chosen[name] = orchestrate_app.service.get_run(doc["run_id"]).max_parallel_tasks
        assert chosen == {"own": 2, "plain": 7, "explicit": 3, "scheduled": 7}
