"""Registering a kernel the server did not start (a kept kernel) with a real Jupyter server: listed by
``GET /api/kernels``, executed through the server's kernel websocket, interrupted and shut down through the REST
API, left running when the server itself shuts down, refused when its process is gone or its pid was reused.

The kernels are real ipykernel processes started by the test in a session of their own (as the orchestrator's
kept kernels are); every one is killed at the end of its test, and the test fails if one is left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tornado.httpclient
from jupyter_client.connect import write_connection_file

from jupyter_orchestrate.errors import ConflictError
from jupyter_orchestrate.server.kept_kernels import (
    KeptKernelGoneError,
    kept_kernel_ids,
    register_kept_kernel,
)
from tests.conftest import process_gone

pytestmark = pytest.mark.kernel


class OwnKernel:
    """A real ipykernel started outside the server, leading its own session."""

    def __init__(self, folder: Path):
        self.connection_file, _ = write_connection_file(
            str(folder / f"kernel-{uuid.uuid4().hex[:8]}.json"),
            ip="127.0.0.1",
            key=uuid.uuid4().hex.encode(),
            kernel_name="python3",
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.create_time = psutil.Process(self.pid).create_time()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
        self.process.wait(timeout=10)


@pytest.fixture
def own_kernels(tmp_path: Path) -> Iterator[list[OwnKernel]]:
    """Start kernels with ``own_kernels.append(OwnKernel(folder))``: all are killed (SIGKILL to their process
    group) after the test, whatever it left running."""
    started: list[OwnKernel] = []
    yield started
    for kernel in started:
        kernel.kill()
    assert not any(k.alive() for k in started)


async def until(condition: Any, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def message(msg_type: str, content: dict[str, Any], channel: str = "shell") -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "session": "test-session",
            "username": "test",
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


async def execute(ws: Any, code: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Execute ``code`` over a kernel websocket (JSON protocol); the IOPub messages answering it, up to idle."""
    request = message(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
    )
    await ws.write_message(json.dumps(request))
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.read_message(), timeout=max(0.1, deadline - time.monotonic()))
        assert raw is not None, "the kernel websocket closed"
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
            continue
        if msg["channel"] == "iopub":
            replies.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return replies


def result_of(replies: list[dict[str, Any]]) -> str | None:
    for msg in replies:
        if msg["msg_type"] == "execute_result":
            return str(msg["content"]["data"]["text/plain"])
    return None


async def kernels_listed(jp_fetch: Any) -> dict[str, dict[str, Any]]:
    response = await jp_fetch("api", "kernels", method="GET")
    return {k["id"]: k for k in json.loads(response.body)}


async def test_registered_kernel_is_listed_and_executes_over_the_server_websocket(
    jp_serverapp: Any, jp_fetch: Any, jp_ws_fetch: Any, tmp_path: Path, own_kernels: list[OwnKernel]
) -> None:
    kernel = OwnKernel(tmp_path)
    own_kernels.append(kernel)
    km = jp_serverapp.kernel_manager

    kernel_id = await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")
    again = await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")
    assert again == kernel_id, "the same connection file and process must give the same kernel id"

    listed = await kernels_listed(jp_fetch)
    assert list(listed) == [kernel_id]
    assert listed[kernel_id]["name"] == "python3"
    assert listed[kernel_id]["execution_state"] in {"idle", "busy", "starting"}

    ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
    try:
        replies = await execute(ws, "x = 41; x")
        assert result_of(replies) == "41", replies
        await until(lambda: km._kernel_connections.get(kernel_id) == 1, what="the connection count")
        listed = await kernels_listed(jp_fetch)
        assert listed[kernel_id]["connections"] == 1

        # interrupt through the REST API: SIGINT to the kernel's process group
        sleeper = asyncio.ensure_future(execute(ws, "import time\ntime.sleep(60)"))
        await asyncio.sleep(1.0)
        await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
        replies = await asyncio.wait_for(sleeper, timeout=20)
        errors = [m["content"]["ename"] for m in replies if m["msg_type"] == "error"]
        assert errors == ["KeyboardInterrupt"], replies
        # the kernel lives on with its state
        assert result_of(await execute(ws, "x + 1")) == "42"
    finally:
        ws.close()
    assert kernel.alive()
    assert Path(kernel.connection_file).exists()

    # a restart would lose the state being debugged, and the server cannot start this kernel: refused, kept
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
    assert refused.value.code == 500
    assert kernel.alive() and kernel_id in await kernels_listed(jp_fetch)


async def test_user_shutdown_through_the_rest_api_stops_the_kernel(
    jp_serverapp: Any, jp_fetch: Any, tmp_path: Path, own_kernels: list[OwnKernel]
) -> None:
    kernel = OwnKernel(tmp_path)
    own_kernels.append(kernel)
    km = jp_serverapp.kernel_manager
    kernel_id = await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")

    response = await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    assert response.code == 204
    await until(lambda: not kernel.alive(), timeout=20, what="the kernel process to exit")
    assert kernel_id not in await kernels_listed(jp_fetch)
    assert Path(kernel.connection_file).exists(), (
        "the server must not remove a connection file it did not write"
    )


async def test_server_shutdown_leaves_kept_kernels_running(
    jp_serverapp: Any, jp_fetch: Any, tmp_path: Path, own_kernels: list[OwnKernel]
) -> None:
    kernel = OwnKernel(tmp_path)
    own_kernels.append(kernel)
    km = jp_serverapp.kernel_manager
    kept_id = await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    own_id = json.loads(response.body)["id"]
    own_pid = km.get_kernel(own_id).provisioner.pid
    assert set(await kernels_listed(jp_fetch)) == {kept_id, own_id}

    # what SIGTERM of the server runs: the extensions' stop_extension, then the kernel manager's shutdown_all
    await jp_serverapp._cleanup()

    assert kept_kernel_ids(km) == []
    assert process_gone(own_pid), "the server's own kernel must be shut down"
    await asyncio.sleep(1.0)
    assert kernel.alive(), "the server's shutdown must not stop a kept kernel"


async def test_a_dead_or_reused_pid_is_refused(
    jp_serverapp: Any, tmp_path: Path, own_kernels: list[OwnKernel]
) -> None:
    kernel = OwnKernel(tmp_path)
    own_kernels.append(kernel)
    km = jp_serverapp.kernel_manager

    # the pid runs, but it is not the process that started at this time (pid reuse)
    with pytest.raises(KeptKernelGoneError, match="now names another process"):
        await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time - 3600, "")

    kernel.kill()
    with pytest.raises(KeptKernelGoneError, match="is not running") as caught:
        await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")
    assert isinstance(caught.value, ConflictError)  # the REST API answers 409
    assert len(km) == 0


async def test_a_registered_kernel_that_dies_is_removed(
    jp_serverapp: Any, jp_fetch: Any, tmp_path: Path, own_kernels: list[OwnKernel]
) -> None:
    kernel = OwnKernel(tmp_path)
    own_kernels.append(kernel)
    km = jp_serverapp.kernel_manager
    kernel_id = await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")
    kernel.kill()  # the keeper reaped it at its expiry
    await until(lambda: kernel_id not in km, timeout=20, what="the dead kernel to leave the map")
    assert kernel_id not in await kernels_listed(jp_fetch)
    with pytest.raises(KeptKernelGoneError):
        await register_kept_kernel(km, kernel.connection_file, kernel.pid, kernel.create_time, "")


FLAG = "import os\nassert os.path.exists('fixed.flag'), 'fixed.flag is missing'"


async def test_debug_route_registers_the_task_kept_kernel_and_resume_finishes_the_run(
    api: Any, orchestrate_app: Any, jp_serverapp: Any, jp_fetch: Any, jp_ws_fetch: Any, jp_root_dir: Path
) -> None:
    from tests.conftest import write_notebook

    job = jp_root_dir / "live"
    write_notebook(job / "compute.ipynb", "x = 41", FLAG, orchestrate={"keep_failed_kernels_seconds": 300})
    write_notebook(job / "report.ipynb", "print('report')", orchestrate={"depends_on": ["compute"]})
    run_id = (await api.start_run("live"))["run_id"]
    kept: dict[str, Any] | None = None
    try:
        doc = await api.wait_run(run_id)
        assert doc["status"] == "failed"
        compute = next(t for t in doc["task_runs"] if t["task_key"] == "compute")
        kept = compute["kept_kernel"]
        assert kept is not None and kept["cell_index"] == 1, compute

        answer = await api.ok("POST", f"runs/{run_id}/tasks/compute/kernel")
        assert set(answer) == {"kernel_id"}
        kernel_id = answer["kernel_id"]
        key = json.loads(Path(kept["connection_file"]).read_text())["key"]
        assert key not in json.dumps(answer) and key not in json.dumps(await api.ok("GET", f"runs/{run_id}"))
        again = await api.ok("POST", f"runs/{run_id}/tasks/compute/kernel")
        assert again["kernel_id"] == kernel_id
        assert kernel_id in await kernels_listed(jp_fetch)

        ws = await jp_ws_fetch("api", "kernels", kernel_id, "channels")
        try:
            assert result_of(await execute(ws, "x")) == "41"  # the failed attempt's state
        finally:
            ws.close()

        refused = await api.post(f"runs/{run_id}/tasks/report/kernel")
        assert refused.code == 409, refused.body
        assert "upstream failed" in refused.message
        assert (await api.post(f"runs/{run_id}/tasks/nope/kernel")).code == 404
        assert (await api.post("runs/999/tasks/compute/kernel")).code == 404

        (job / "fixed.flag").touch()
        await api.ok("POST", f"runs/{run_id}/repair", {"resume": True, "task_keys": ["compute"]}, code=202)
        doc = await api.wait_run(run_id)
        assert doc["status"] == "succeeded", doc
        resumed = next(t for t in doc["task_runs"] if t["task_key"] == "compute")
        assert resumed["attempts"][-1]["resumed_from_cell"] == 1 and resumed["kept_kernel"] is None
        # the resumed kernel ended with its attempt: the server notices and drops it from its list
        await until(lambda: kernel_id not in jp_serverapp.kernel_manager, timeout=30, what="the kernel to go")
        gone = await api.post(f"runs/{run_id}/tasks/compute/kernel")
        assert gone.code == 409, gone.body
    finally:
        orchestrate_app.service.discard_kept_kernels(run_id, "test cleanup")
        if kept is not None:
            pid = kept["kernel_pid"]
            await until(lambda: process_gone(pid), 15)
