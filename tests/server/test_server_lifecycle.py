"""The server stays responsive while runs execute, and recovers runs that a dead server left running."""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from traitlets.config import Config

from jupyter_orchestrate.discovery import load_job
from jupyter_orchestrate.models import TaskRunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import write_notebook
from tests.server.conftest import Api

pytestmark = pytest.mark.kernel


async def test_a_run_in_progress_does_not_block_other_requests(
    api: Api, jp_root_dir: Path, jp_fetch: Any
) -> None:
    write_notebook(jp_root_dir / "busy" / "sleeper.ipynb", "import time\ntime.sleep(5)", orchestrate={})
    write_notebook(
        jp_root_dir / "busy" / "burner.ipynb",
        "import time\nend = time.time() + 1.0\nn = 0\nwhile time.time() < end:\n    n += 1",
        orchestrate={},
    )
    run_id = (await api.start_run("busy"))["run_id"]
    await api.wait_task(run_id, "sleeper", "running")
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        response = await jp_fetch("api", "contents")
        latencies.append(time.perf_counter() - started)
        assert response.code == 200
    during = await api.ok("GET", f"runs/{run_id}")
    median = statistics.median(latencies)
    print(
        f"GET /api/contents during a run: median {median * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert during["status"] == "running", "the latencies were measured while the run was executing"
    assert median < 0.1, f"median latency {median * 1000:.0f} ms: {[round(x * 1000) for x in latencies]}"
    assert (await api.wait_run(run_id, timeout=60))["status"] == "succeeded"


def dead_pid() -> int:
    pid = 2**22 - 7
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


@pytest.fixture
def orphaned_run(jp_root_dir: Path, state_home: Path) -> int:
    """A run that a server which died mid-run left ``running`` in the state home: ``first`` was running,
    ``second`` (downstream) pending. Prepared before the server starts."""
    job = jp_root_dir / "interrupted"
    write_notebook(
        job / "first.ipynb",
        "from jupyter_orchestrate import task_values\ntask_values.set('n', 3)",
        orchestrate={},
    )
    write_notebook(
        job / "second.ipynb",
        "assert n == 3",
        parameters="n = 0",
        orchestrate={"depends_on": ["first"], "parameters": {"n": "{{tasks.first.values.n}}"}},
    )
    service = OrchestrateService(state_home)
    store = service.store
    run_id = store.create_run(load_job(job), parameters={}, overrides={}, max_parallel_tasks=1)
    store.claim_run(run_id, pid=dead_pid(), create_time=1.0, host=socket.gethostname())
    store.set_task_status(run_id, "first", TaskRunStatus.queued)
    store.set_task_status(run_id, "first", TaskRunStatus.running)
    assert store.get_run(run_id).status.value == "running"
    store.close()
    return run_id


class TestRestart:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, orphaned_run: int) -> Config:
        return jp_server_config  # the orphaned run exists before the server (and the extension) starts

    async def test_server_start_recovers_runs_of_a_dead_server(
        self, api: Api, orchestrate_app: Any, orphaned_run: int
    ) -> None:
        assert orchestrate_app.service.recovered == [orphaned_run], "recovered when the extension loads"
        run = await api.ok("GET", f"runs/{orphaned_run}")
        assert run["status"] == "failed" and run["end_time"], run
        assert "orchestrator" in run["status_reason"] and "died" in run["status_reason"], run["status_reason"]
        assert {t["task_key"]: t["status"] for t in run["task_runs"]} == {
            "first": "failed",
            "second": "canceled",
        }
        listed = await api.ok("GET", "runs", params="status=running")
        assert listed["runs"] == []

        plan = await api.ok("POST", f"runs/{orphaned_run}/repair", {"dry_run": True})
        assert (plan["task_keys"], plan["reused_task_keys"]) == (["first", "second"], [])
        await api.ok("POST", f"runs/{orphaned_run}/repair", {}, code=202)
        repaired = await api.wait_run(orphaned_run)
        assert repaired["status"] == "succeeded", repaired
        assert {t["task_key"]: t["attempt_count"] for t in repaired["task_runs"]} == {"first": 1, "second": 1}
        assert [r["task_keys"] for r in repaired["repairs"]] == [["first", "second"]]


class TestDefaultStateHome:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, monkeypatch: pytest.MonkeyPatch) -> Config:
        monkeypatch.delenv("JUPYTER_ORCHESTRATE_HOME", raising=False)
        del jp_server_config.OrchestrateApp["state_home"]
        return jp_server_config

    async def test_state_home_defaults_to_a_visible_folder_in_the_root(
        self, api: Api, orchestrate_app: Any, jp_root_dir: Path
    ) -> None:
        assert orchestrate_app.home == jp_root_dir.resolve() / "orchestrate_runs"
        assert (jp_root_dir / "orchestrate_runs" / "orchestrate.db").is_file()
        assert (await api.ok("GET", "jobs"))["jobs"] == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_of_a_real_server_cancels_its_run_cleanly(tmp_path: Path) -> None:
    """``jupyter server`` in its own process, a run in flight, SIGTERM: the run records ``canceled`` (its task
    run and attempt too) before the server exits, and no kernel is left; nothing for the next start to recover."""
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    from jupyter_orchestrate.models import RunStatus
    from tests.conftest import REPO
    from tests.test_e2e import _running_attempts, kernels_of, wait_for

    root, home, port, token = (
        tmp_path / "root",
        tmp_path / "root" / "orchestrate_runs",
        _free_port(),
        "liveness-test",
    )
    for key in (
        "sleeper",
        "b",
        "c",
        "d",
    ):  # four attempts to stop: the cancel takes a while, and is waited for
        write_notebook(root / "hold" / f"{key}.ipynb", "import time\ntime.sleep(600)", orchestrate={})
    (root / "hold" / "job.yaml").write_text("max_parallel_tasks: 4\n")
    config = tmp_path / "server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {
                    "jpserver_extensions": {"jupyter_orchestrate": True},
                    "open_browser": False,
                    "port": port,
                    "port_retries": 0,
                    "root_dir": str(root),
                    "ip": "127.0.0.1",
                    "allow_root": True,
                },
                "IdentityProvider": {"token": token},
                "OrchestrateApp": {"state_home": str(home), "scheduler_enabled": False},
            }
        )
    )
    env = {
        **__import__("os").environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--config={config}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def start_run() -> bool:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/jupyter-orchestrate/api/jobs/hold/runs",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"token {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status == 201
        except OSError:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server exited"
            return False

    try:
        wait_for(start_run, 120, "the server to start a run")
        wait_for(lambda: _running_attempts(home) == 4 and len(kernels_of(home)) >= 4, 120, "the tasks to run")
        server.send_signal(signal.SIGTERM)
        server.wait(90)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)
    run = OrchestrateService(home, recover=False).get_run(1)
    assert run.status == RunStatus.canceled, (run.status, run.status_reason)
    assert run.status_reason == "the server shut down"
    for task_run in run.task_runs:
        assert task_run.status == TaskRunStatus.canceled and task_run.attempts[0].error.kind == "canceled", (
            task_run
        )
    assert OrchestrateService(home).recovered == [], "nothing was left for the next start to recover"
    wait_for(lambda: not kernels_of(home), 30, "no kernel left")
