"""The server's warm kernel pool (``OrchestrateApp.warm_kernels``) with a real server and real kernels: after a
run, a kernel of its task settings waits ready; the next run from the sidebar's API takes it (a kernel launched
before that run was requested), each attempt still gets a kernel no other attempt used, the pool stays within
its bound, and the server's shutdown ends the warm kernels."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from traitlets.config import Config

from tests.conftest import process_gone, write_notebook
from tests.server.conftest import Api

pytestmark = pytest.mark.kernel

CELL = "import os\nprint(os.getpid())"


@pytest.fixture
def jp_server_config(state_home: Path) -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_orchestrate": True}},
            "OrchestrateApp": {"state_home": str(state_home), "warm_kernels": 2},
        }
    )


async def until(condition: Any, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def idle_pids(pool: Any) -> list[int]:
    with pool._lock:
        return [k.pid for k in pool._idle]


async def test_a_second_run_takes_the_warm_kernel_the_first_left_and_no_kernel_is_reused(
    api: Api, jp_root_dir: Path, orchestrate_app: Any
) -> None:
    write_notebook(jp_root_dir / "quick" / "hello.ipynb", CELL, orchestrate={})
    pool = orchestrate_app.service.kernel_pool
    assert pool is not None and pool.max_idle == 2

    first = await api.wait_run((await api.start_run("quick"))["run_id"])
    assert first["status"] == "succeeded"
    await until(lambda: len(idle_pids(pool)) == 1)
    (warm,) = idle_pids(pool)
    warm_born = psutil.Process(warm).create_time()

    requested = time.time()
    second = await api.wait_run((await api.start_run("quick"))["run_id"])
    assert second["status"] == "succeeded"

    with sqlite3.connect(orchestrate_app.service.store.home / "orchestrate.db") as db:
        kernels = [pid for (pid,) in db.execute("select kernel_pid from attempts order by run_id")]
    assert kernels[1] == warm, "the second run did not take the warm kernel"
    assert warm_born < requested, "the warm kernel was launched after the run was requested"
    assert kernels[0] != kernels[1]
    # a fresh one replaces it; the one the second run used is shut down, never handed out again
    await until(lambda: len(idle_pids(pool)) == 1 and warm not in idle_pids(pool))
    await until(lambda: process_gone(warm))
    assert len(idle_pids(pool)) <= pool.max_idle


async def test_server_shutdown_ends_its_warm_kernels(
    api: Api, jp_root_dir: Path, orchestrate_app: Any
) -> None:
    write_notebook(jp_root_dir / "quick" / "hello.ipynb", CELL, orchestrate={})
    pool = orchestrate_app.service.kernel_pool
    await api.wait_run((await api.start_run("quick"))["run_id"])
    await until(lambda: len(idle_pids(pool)) == 1)
    (warm,) = idle_pids(pool)

    await orchestrate_app.stop_extension()

    assert pool.idle_count == 0
    assert process_gone(warm)
