"""No run stays ``running`` or ``canceling`` forever, with real processes and kernels: an orchestrator that is
SIGKILLed mid-run has its run ended by another live orchestrator (its kernels reaped, its slot freed), and a
SIGTERMed scheduler cancels its run cleanly. Deadlines are generous: the machine may be loaded."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.models import RunStatus
from jupyter_orchestrate.service import OrchestrateService
from jupyter_orchestrate.store import Store
from tests.conftest import REPO
from tests.test_e2e import _running_attempts, kernels_of, statuses, wait_for

pytestmark = pytest.mark.kernel


def cli(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def test_a_sigkilled_cli_run_is_ended_by_a_live_orchestrator_and_can_be_repaired(
    make_notebook: Any, tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "job"
    make_notebook("job/quick.ipynb", "print('quick')", orchestrate={})
    make_notebook(
        "job/slow.ipynb",
        "import time\ntime.sleep(seconds)",
        parameters="seconds = 600",
        orchestrate={"depends_on": ["quick"]},
    )
    make_notebook("job/after.ipynb", "print('after')", orchestrate={"depends_on": ["slow"]})
    server = OrchestrateService(
        home, heartbeat_timeout_seconds=10.0
    )  # stands for the Jupyter server on this home
    server.start_monitor(poll_seconds=0.5)
    proc = cli(home, "run", str(job))
    try:
        wait_for(
            lambda: _running_attempts(home, "slow") == 1 and len(kernels_of(home)) >= 1, 120, "slow to run"
        )
        proc.kill()
        proc.wait(30)
        wait_for(lambda: server.store.run_status(1).is_terminal, 10.0 + 30, "the monitor to end the run")
    finally:
        stop(proc)
        server.shutdown(timeout=1)
    run = server.get_run(1)
    assert run.status == RunStatus.failed
    assert (
        f"the orchestrator (pid {proc.pid} on " in run.status_reason
        and "died while the run was running" in run.status_reason
    )
    assert statuses(run) == {"quick": "succeeded", "slow": "failed", "after": "canceled"}
    assert run.task_run("slow").attempts[0].error.kind == "orchestrator_died"
    wait_for(lambda: not kernels_of(home), 30, "its kernel reaped")
    repair = server.new_repair(1, parameters={"seconds": "0"})
    try:
        assert repair.execute() == RunStatus.succeeded
    finally:
        repair.executor.close()
    assert statuses(server.get_run(1)) == {"quick": "succeeded", "slow": "succeeded", "after": "succeeded"}


def _fires(home: Path) -> list[dict[str, Any]]:
    return Store(home).fires(limit=1000)


def test_a_killed_scheduler_leader_frees_its_slot_and_a_sigterm_cancels_cleanly(
    tmp_path: Path, make_notebook: Any
) -> None:
    root, home = tmp_path / "root", tmp_path / "state"
    make_notebook("root/hold/t.ipynb", "import time\ntime.sleep(600)", orchestrate={})
    (root / "hold" / "job.yaml").write_text(
        'max_concurrent_runs: 1\nqueue: true\nschedules:\n  - cron: "*/3 * * * * *"\n'
    )
    args = [
        "scheduler",
        str(root),
        "--lease-seconds",
        "2",
        "--poll-seconds",
        "0.2",
        "--heartbeat-timeout",
        "10",
        "--monitor-seconds",
        "0.5",
    ]
    procs = [cli(home, *args) for _ in range(2)]
    try:
        wait_for(lambda: _running_attempts(home) == 1, 120, "the first scheduled run to execute")
        store = Store(home)
        running = next(r for r in store.unfinished_runs() if r.status == "running")
        first = running.run_id
        victim = next(p for p in procs if p.pid == running.orchestrator_pid)  # the leader that started it
        survivor = next(p for p in procs if p is not victim)
        victim.kill()
        victim.wait(30)
        wait_for(lambda: store.run_status(first).is_terminal, 60, "the orphaned run to be ended")
        ended = store.get_run(first)
        assert ended.status == RunStatus.failed and f"(pid {victim.pid} on " in ended.status_reason, (
            ended.status_reason
        )

        def later_run() -> int | None:
            started = [f for f in _fires(home) if f.status == "started" and f":{victim.pid}:" not in f.holder]
            return started[-1].run_id if started else None

        wait_for(lambda: later_run() is not None, 60, "a later fire to start: the slot was freed")
        second = later_run()
        wait_for(
            lambda: (
                store.get_run(second).task_run("t").status.value == "running" and len(kernels_of(home)) >= 1
            ),
            120,
            "the later run to execute",
        )
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(60) == 0, survivor.stderr.read().decode() if survivor.stderr else ""
    finally:
        for p in procs:
            stop(p)
    run = Store(home).get_run(second)
    assert run.status == RunStatus.canceled, (run.status, run.status_reason)
    assert run.status_reason == "the scheduler shut down"
    assert statuses(run) == {"t": "canceled"} and run.task_run("t").attempts[-1].error.kind == "canceled"
    assert Store(home).unfinished_runs() == [], "nothing left running or canceling"
    wait_for(lambda: not kernels_of(home), 30, "no kernel left")
