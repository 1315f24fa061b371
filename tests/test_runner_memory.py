"""The Runner without kernels: scripted attempts (MemoryExecutor) on a fake clock, a real SQLite store.

Minutes of fake time run in milliseconds; every test here runs well under a second. Also the liveness rules
that need no process: the owner rule, the monitor's pass over stored runs, a runner's crash path, and a runner
that finds its run ended by a monitor.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_orchestrate.engine import runner as runner_module
from jupyter_orchestrate.engine.active_run import ActiveRun, IncompleteStateError, TaskState
from jupyter_orchestrate.executors.memory import MemoryExecutor, crash, fail, hang, succeed
from jupyter_orchestrate.models import HEARTBEAT_TIMEOUT_SECONDS, RunStatus, Task, TaskRunStatus, utc_now
from jupyter_orchestrate.service import OrchestrateService, owner_death
from jupyter_orchestrate.store import BUSY_TIMEOUT_SECONDS, RunOwner, this_process
from tests.conftest import write_notebook

S = TaskRunStatus
pytestmark = pytest.mark.timeout(20)  # a hang here is the bug (a run that never ends), not slowness


@pytest.fixture
def service(tmp_path: Path) -> OrchestrateService:
    return OrchestrateService(tmp_path / "state")


def job(tmp_path: Path, **tasks: dict[str, Any]) -> Path:
    """A job folder with one (never executed) notebook per task; ``tasks`` maps task_key -> orchestrate metadata."""
    for key, metadata in tasks.items():
        write_notebook(tmp_path / "job" / f"{key}.ipynb", "pass", orchestrate=metadata)
    return tmp_path / "job"


def run_with(service: OrchestrateService, path: Path, executor: MemoryExecutor, **kwargs: Any) -> Any:
    runner = service.new_run(path, executor=executor, clock=executor.clock, **kwargs)
    started = time.perf_counter()
    runner.status = runner.execute()
    assert time.perf_counter() - started < 1.0, "fake time: no real waiting"
    return runner


def statuses(service: OrchestrateService, run_id: int) -> dict[str, str]:
    return {t.task_key: t.status.value for t in service.get_run(run_id).task_runs}


def test_retries_wait_their_exponential_backoff_on_the_clock(
    service: OrchestrateService, tmp_path: Path
) -> None:
    path = job(
        tmp_path,
        a={"max_retries": 3, "min_retry_interval_seconds": 10, "max_retry_interval_seconds": 300},
        b={"depends_on": ["a"]},
    )
    executor = MemoryExecutor(
        {"a": [fail(2, evalue="flaky 1"), fail(2, evalue="flaky 2"), succeed(1, rows=5)]}
    )
    runner = run_with(service, path, executor)
    assert runner.status == RunStatus.succeeded
    starts = [h.started_at for h in executor.started("a")]
    # attempt 1 at 0 ends at 2; retry 1 after 10 s; attempt 2 ends at 14; retry 2 after 20 s
    assert starts == [0.0, 12.0, 34.0]
    run = service.get_run(runner.run_id)
    a = run.task_run("a")
    assert [x.status for x in a.attempts] == [S.failed, S.failed, S.succeeded]
    assert a.attempts[1].error.evalue == "flaky 2" and a.task_values == {"rows": 5}
    assert executor.started("b")[0].started_at == 35.0, "b starts when a succeeds"


def test_timeout_kills_the_attempt_and_ends_timed_out(service: OrchestrateService, tmp_path: Path) -> None:
    path = job(tmp_path, slow={"timeout_seconds": 30, "max_retries": 1})
    executor = MemoryExecutor({"slow": [hang()]})
    runner = run_with(service, path, executor)
    assert runner.status == RunStatus.failed
    (handle,) = executor.handles
    assert handle.state == "killed" and 30.0 <= executor.clock.now <= 31.0
    (attempt,) = service.get_run(runner.run_id).task_run("slow").attempts
    assert attempt.status == S.timed_out and attempt.error.kind == "timeout"
    assert "timeout_seconds=30" in attempt.error.evalue, "no retry: retry_on_timeout is off"


def test_cancel_from_the_store_stops_attempts_within_a_poll(
    service: OrchestrateService, tmp_path: Path
) -> None:
    path = job(tmp_path, a={}, b={"depends_on": ["a"]})
    executor = MemoryExecutor({"a": [hang()]})
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    executor.clock.call_at(5.0, lambda: service.cancel(runner.run_id))
    assert runner.execute() == RunStatus.canceled
    assert executor.clock.now <= 5.0 + 2 * runner_module.CANCEL_POLL_SECONDS
    assert statuses(service, runner.run_id) == {"a": "canceled", "b": "canceled"}
    run = service.get_run(runner.run_id)
    assert run.status == RunStatus.canceled and run.task_run("a").attempts[0].error.kind == "canceled"
    assert [h.state for h in executor.handles if h.spec.task_key == "a"] == ["killed"]


def test_run_if_decides_downstream_of_a_failure(service: OrchestrateService, tmp_path: Path) -> None:
    path = job(
        tmp_path,
        a={},
        ok={},
        needs_a={"depends_on": ["a"]},
        cleanup={"depends_on": ["a", "ok"], "run_if": "all_done"},
        alert={"depends_on": ["a"], "run_if": "at_least_one_failed"},
        either={"depends_on": ["a", "ok"], "run_if": "at_least_one_success"},
    )
    executor = MemoryExecutor({"a": [fail(1)]})
    runner = run_with(service, path, executor)
    assert statuses(service, runner.run_id) == {
        "a": "failed",
        "ok": "succeeded",
        "needs_a": "upstream_failed",
        "cleanup": "succeeded",
        "alert": "succeeded",
        "either": "succeeded",
    }
    assert runner.status == RunStatus.failed, "a leaf (needs_a) did not succeed"


def dangling_run(service: OrchestrateService, path: Path) -> int:
    """A run as a runner that crashed inside the server used to leave it: ended ``failed`` by ``finish_run``
    alone, with task run ``a`` still ``running`` (its attempt too) and ``b`` pending."""
    store = service.store
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.models import Attempt

    run_id = store.create_run(load_job(path), parameters={}, overrides={}, max_parallel_tasks=2)
    store.claim_run(
        run_id, pid=os.getpid(), create_time=psutil.Process().create_time(), host=socket.gethostname()
    )
    store.set_task_status(run_id, "a", S.running)
    store.create_attempt(
        Attempt(run_id=run_id, task_key="a", attempt_number=1, status=S.running, start_time=utc_now()),
        worker_pid=None,
        kernel_pid=None,
        kernel_create_time=None,
    )
    store.finish_run(run_id, RunStatus.failed, "the orchestrator crashed; see the server log")
    return run_id


def test_repair_of_a_run_left_with_a_running_task_ends(service: OrchestrateService, tmp_path: Path) -> None:
    path = job(tmp_path, a={}, b={"depends_on": ["a"]})
    run_id = dangling_run(service, path)
    plan, _, _ = service.plan_repair(run_id)
    assert plan.task_keys == ["a", "b"], "the task run left running is repaired"
    assert statuses(service, run_id) == {"a": "running", "b": "pending"}, (
        "planning (a dry run) writes nothing"
    )
    executor = MemoryExecutor()
    runner = service.new_repair(run_id, executor=executor, clock=executor.clock)
    left = service.get_run(run_id).task_run("a").attempts[0]
    assert left.status == S.failed and "ended (failed)" in left.error.evalue, (
        "the repair ended the dangling attempt"
    )
    assert runner.execute() == RunStatus.succeeded
    assert statuses(service, run_id) == {"a": "succeeded", "b": "succeeded"}
    assert [a.status for a in service.get_run(run_id).task_run("a").attempts] == [S.failed, S.succeeded]


@pytest.mark.parametrize(
    "state", [TaskState(S.running, attempts=1), TaskState(S.queued), TaskState(S.up_for_retry, attempts=1)]
)
def test_active_run_refuses_a_task_state_that_needs_an_attempt_in_flight(state: TaskState) -> None:
    tasks = {
        "a": Task(task_key="a", notebook="a.ipynb"),
        "b": Task(task_key="b", notebook="b.ipynb", depends_on=["a"]),
    }
    with pytest.raises(IncompleteStateError, match=f"a is {state.status.value} with no attempt in flight"):
        ActiveRun(tasks, {"a": state, "b": TaskState(S.pending)}, 1)
    ActiveRun(tasks, {"a": TaskState(S.up_for_retry, attempts=1, retry_at=3.0), "b": TaskState(S.pending)}, 1)


def test_a_crashing_runner_marks_what_it_leaves_like_recovery(
    service: OrchestrateService, tmp_path: Path
) -> None:
    path = job(tmp_path, a={}, b={}, c={"depends_on": ["a", "b"]})
    executor = MemoryExecutor({"a": [crash("disk on fire")]})
    runner = service.new_run(path, executor=executor, clock=executor.clock, max_parallel=1)
    events: list[tuple[str, dict[str, Any]]] = []
    service.listeners.append(lambda kind, payload: events.append((kind, payload)))
    with pytest.raises(RuntimeError, match="disk on fire"):
        runner.execute()
    run = service.get_run(runner.run_id)
    assert run.status == RunStatus.failed and run.end_time
    assert run.status_reason == "the runner crashed (RuntimeError: disk on fire); repair the run to finish it"
    assert statuses(service, runner.run_id) == {"a": "failed", "b": "canceled", "c": "canceled"}
    (attempt,) = run.task_run("a").attempts
    assert attempt.status == S.failed and attempt.error.ename == "RunnerCrashed"
    assert service.store.unfinished_attempts(runner.run_id) == []
    assert [p["status"] for k, p in events if k == "run_status"][-1] == "failed"
    repair_executor = MemoryExecutor()
    assert (
        service.new_repair(runner.run_id, executor=repair_executor, clock=repair_executor.clock).execute()
        == RunStatus.succeeded
    )


def test_a_runner_crashing_in_a_service_thread_is_recorded_once(
    service: OrchestrateService, tmp_path: Path
) -> None:
    path = job(tmp_path, a={})
    executor = MemoryExecutor({"a": [crash("boom")]})
    ended: list[dict[str, Any]] = []
    service.listeners.append(
        lambda kind, payload: (
            ended.append(payload) if kind == "run_status" and payload["status"] == "failed" else None
        )
    )
    thread = service.start(service.new_run(path, executor=executor, clock=executor.clock))
    thread.join(10)
    assert not thread.is_alive()
    run = service.get_run(1)
    assert run.status == RunStatus.failed and "RuntimeError: boom" in run.status_reason
    assert statuses(service, 1) == {"a": "failed"}
    assert len(ended) == 1, "one failure event (one notification), not one per layer"


def test_a_runner_whose_run_a_monitor_ended_stops_and_keeps_that_record(
    service: OrchestrateService, tmp_path: Path
) -> None:
    path = job(tmp_path, a={}, b={"depends_on": ["a"]})
    executor = MemoryExecutor({"a": [hang()]})
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    executor.clock.call_at(
        3.0,
        lambda: service.store.end_unfinished(
            runner.run_id, "judged dead by a monitor", run_status=RunStatus.failed
        ),
    )
    assert runner.execute() == RunStatus.failed
    run = service.get_run(runner.run_id)
    assert run.status_reason == "judged dead by a monitor"
    assert statuses(service, runner.run_id) == {"a": "failed", "b": "canceled"}
    assert executor.handles[0].state == "killed"


def test_the_heartbeat_is_renewed_while_the_loop_is_stalled(
    service: OrchestrateService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "HEARTBEAT_SECONDS", 0.05)
    path = job(tmp_path, a={})
    executor = MemoryExecutor({"a": [succeed(2)]})
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    beats: list[str] = []

    def stall() -> None:  # the runner's thread blocks (a loaded machine, a slow executor call)
        beats.append(service.store.unfinished_runs()[0].heartbeat_time)
        time.sleep(0.4)
        beats.append(service.store.unfinished_runs()[0].heartbeat_time)

    executor.clock.call_at(1.0, stall)
    assert runner.execute() == RunStatus.succeeded
    assert beats[1] > beats[0], "the heartbeat went on while the run's loop was blocked"
    time.sleep(0.2)
    assert not any(t.name == f"orchestrate-heartbeat-{runner.run_id}" for t in threading.enumerate()), (
        "stopped with the run"
    )


# -- the owner rule and the monitor's pass over stored runs ---------------------------------------------------

HOST = socket.gethostname()


def row(
    status: str = "running",
    *,
    pid: int | None = None,
    create_time: float | None = None,
    host: str = HOST,
    heartbeat_age: float | None = 1.0,
) -> RunOwner:
    import datetime as dt

    me = this_process()
    beat = (
        None
        if heartbeat_age is None
        else (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=heartbeat_age)).isoformat()
    )
    return RunOwner(
        run_id=1,
        job_name="j",
        job_path="/j",
        status=RunStatus(status),
        start_time=utc_now(),
        orchestrator_pid=me.pid if pid is None else pid,
        orchestrator_create_time=me.create_time if create_time is None else create_time,
        orchestrator_host=host,
        heartbeat_time=beat,
    )


def dead_pid() -> int:
    pid = 2**22 - 7
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


@pytest.mark.parametrize(
    ("fields", "dead"),
    [
        ({}, None),
        (
            {"heartbeat_age": 31.0},
            "stopped heartbeating while the run was running (last heartbeat 31 s ago, timeout 30 s)",
        ),
        ({"status": "canceling", "heartbeat_age": 60.0}, "stopped heartbeating while the run was canceling"),
        ({"status": "queued", "heartbeat_age": 600.0}, None),  # created, not executed yet: its creator lives
        ({"pid": 1, "create_time": 12.0}, "died while the run was running"),  # pid reused by another process
        (
            {"host": "elsewhere", "pid": 1, "heartbeat_age": 5.0},
            None,
        ),  # another host: only the heartbeat tells
        (
            {"host": "elsewhere", "pid": 1, "status": "queued", "heartbeat_age": 31.0},
            "on elsewhere) stopped heartbeating",
        ),
        ({"heartbeat_age": None}, "never heartbeat"),
    ],
)
def test_owner_death_is_decided_by_pid_on_this_host_and_by_the_heartbeat(
    fields: dict[str, Any], dead: str | None
) -> None:
    found = owner_death(row(**fields), now=utc_now(), host=HOST, heartbeat_timeout=30.0)
    assert (found is None) == (dead is None), found
    if dead:
        assert dead in found and "the orchestrator (pid" in found


def test_a_heartbeat_that_waits_out_a_busy_database_is_not_taken_for_death() -> None:
    """A heartbeat write may wait the store's whole busy timeout behind other processes' writes (20 CLI runs
    on one home did that on a busy machine), and the next beat comes HEARTBEAT_SECONDS later: the default
    death threshold must be longer, or a monitor ends a live run."""
    late = BUSY_TIMEOUT_SECONDS + runner_module.HEARTBEAT_SECONDS + 1
    assert late < HEARTBEAT_TIMEOUT_SECONDS
    found = owner_death(
        row(heartbeat_age=late), now=utc_now(), host=HOST, heartbeat_timeout=HEARTBEAT_TIMEOUT_SECONDS
    )
    assert found is None, found


def test_the_monitor_ends_runs_of_dead_owners_and_canceling_runs_past_the_bound(tmp_path: Path) -> None:
    path = job(tmp_path, a={}, b={"depends_on": ["a"]})
    monitor = OrchestrateService(tmp_path / "state", cancel_timeout_seconds=3600.0)
    store = monitor.store
    from jupyter_orchestrate.discovery import load_job

    def claimed(pid: int, host: str, status: str) -> int:
        run_id = store.create_run(load_job(path), parameters={}, overrides={}, max_parallel_tasks=1)
        me = this_process()
        store.claim_run(
            run_id,
            pid=pid,
            create_time=me.create_time if pid == os.getpid() else 1.0,
            host=host,
        )
        store.set_task_status(run_id, "a", S.running)
        if status == "canceling":
            store.request_cancel(run_id)
        return run_id

    alive = claimed(os.getpid(), HOST, "running")
    dead = claimed(dead_pid(), HOST, "running")
    dead_canceling = claimed(dead_pid(), HOST, "canceling")
    live_canceling = claimed(os.getpid(), HOST, "canceling")
    assert sorted(monitor.recover()) == [dead, dead_canceling]
    assert (
        store.run_status(alive) == RunStatus.running
        and store.run_status(live_canceling) == RunStatus.canceling
    )
    assert (
        store.get_run(dead).status == RunStatus.failed
        and "died while the run was running" in store.get_run(dead).status_reason
    )
    assert statuses(monitor, dead) == {"a": "failed", "b": "canceled"}
    ended = store.get_run(dead_canceling)
    assert ended.status == RunStatus.canceled and "died while the run was canceling" in ended.status_reason
    assert statuses(monitor, dead_canceling) == {"a": "canceled", "b": "canceled"}

    monitor.cancel_timeout_seconds = 0.0  # the owner lives but does not end its cancel
    assert monitor.recover() == [live_canceling]
    forced = store.get_run(live_canceling)
    assert (
        forced.status == RunStatus.canceled and "the cancel did not finish within 0 s" in forced.status_reason
    )
    assert statuses(monitor, live_canceling) == {"a": "canceled", "b": "canceled"}
    assert monitor.recover() == [] and store.run_status(alive) == RunStatus.running


def test_the_monitor_does_not_end_a_run_whose_owner_renewed_meanwhile(tmp_path: Path) -> None:
    path = job(tmp_path, a={})
    store = OrchestrateService(tmp_path / "state").store
    from jupyter_orchestrate.discovery import load_job

    run_id = store.create_run(load_job(path), parameters={}, overrides={}, max_parallel_tasks=1)
    store.claim_run(run_id, pid=1, create_time=1.0, host="elsewhere")
    (seen,) = store.unfinished_runs()
    store.heartbeat(run_id)  # between the monitor's look and its write
    expected = seen.expected()  # status, owner and heartbeat time as the monitor saw them
    assert not store.end_unfinished(run_id, "dead?", run_status=RunStatus.failed, expected=expected)
    assert store.run_status(run_id) == RunStatus.running


def test_a_background_monitor_frees_the_slot_of_a_run_whose_owner_died(tmp_path: Path) -> None:
    path = job(tmp_path, a={})
    service = OrchestrateService(tmp_path / "state")
    from jupyter_orchestrate.discovery import load_job

    service.start_monitor(poll_seconds=0.05)
    try:
        run_id = service.store.create_run(load_job(path), parameters={}, overrides={}, max_parallel_tasks=1)
        assert service.store.active_runs(str(path)) == [run_id]
        service.store.claim_run(run_id, pid=dead_pid(), create_time=1.0, host=HOST)
        deadline = time.monotonic() + 10
        while service.store.active_runs(str(path)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert service.store.active_runs(str(path)) == [], (
            "ended while the service lives, not at its next start"
        )
        assert service.get_run(run_id).status == RunStatus.failed
    finally:
        service.shutdown(timeout=1)
    service._monitor.join(5)
    assert not service._monitor.is_alive(), "shutdown stops the monitor"


def test_a_cancel_requested_before_the_runner_starts_is_honoured(
    service: OrchestrateService, tmp_path: Path
) -> None:
    """``jupyter orchestrate cancel`` from another process can land between the run's creation and its runner's
    start: the runner's claim must not overwrite ``canceling`` with ``running`` (the run then succeeded)."""
    from jupyter_orchestrate.store import Store

    path = job(tmp_path, a={})
    executor = MemoryExecutor({"a": [succeed(5.0)]})
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    assert Store(service.store.home).request_cancel(runner.run_id) is True  # another process's connection
    assert runner.execute() == RunStatus.canceled
    assert service.get_run(runner.run_id).status == RunStatus.canceled
    assert statuses(service, runner.run_id) == {"a": "canceled"}


def test_a_run_ended_by_a_monitor_before_its_runner_starts_is_not_revived(
    service: OrchestrateService, tmp_path: Path
) -> None:
    path = job(tmp_path, a={})
    executor = MemoryExecutor({"a": [succeed()]})
    runner = service.new_run(path, executor=executor, clock=executor.clock)
    service.store.end_unfinished(runner.run_id, "judged dead by a monitor", run_status=RunStatus.failed)
    assert runner.execute() == RunStatus.failed
    assert service.get_run(runner.run_id).status_reason == "judged dead by a monitor"
    assert statuses(service, runner.run_id) == {"a": "canceled"}, "no attempt was started"


def test_a_run_whose_runner_cannot_be_built_is_ended_not_left_queued(
    service: OrchestrateService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between recording the run and building its runner (here: the parameter rendering) used to
    leave the run ``queued`` forever, holding a max_concurrent_runs slot."""
    import jupyter_orchestrate.service as service_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("rendering broke")

    monkeypatch.setattr(service_module, "render", broken)
    path = job(tmp_path, a={})
    executor = MemoryExecutor({"a": [succeed()]})
    with pytest.raises(RuntimeError, match="rendering broke"):
        service.new_run(path, executor=executor, clock=executor.clock)
    (run,) = service.list_runs()
    assert run.status == RunStatus.failed and "could not start" in run.status_reason
    assert statuses(service, run.run_id) == {"a": "canceled"}


def test_a_failing_listener_is_logged_and_the_other_listeners_get_every_event(
    service: OrchestrateService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = job(tmp_path, a={}, b={"depends_on": ["a"]})
    executor = MemoryExecutor()
    first: list[tuple[str, dict[str, Any]]] = []
    after: list[tuple[str, dict[str, Any]]] = []

    def broken(kind: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("display gone")

    service.listeners += [lambda kind, payload: first.append((kind, payload)), broken]
    service.listeners.append(lambda kind, payload: after.append((kind, payload)))
    runner = service.new_run(path, executor=executor, clock=executor.clock, on_event=broken)
    runner.listeners.append(lambda kind, payload: None)
    assert runner.execute() == RunStatus.succeeded
    assert first == after and first[-1] == (
        "run_status",
        {"run_id": 1, "status": "succeeded", "reason": None},
    )
    assert "display gone" in caplog.text and "listener" in caplog.text


def test_run_events_keep_their_wire_shape_and_read_back_typed(
    service: OrchestrateService, tmp_path: Path
) -> None:
    from jupyter_orchestrate.schemas.events import RunStatusEvent, TaskStatusEvent, parse_event

    path = job(tmp_path, a={})
    events: list[tuple[str, dict[str, Any]]] = []
    run_with(service, path, MemoryExecutor(), on_event=lambda kind, payload: events.append((kind, payload)))
    assert events[0] == ("run_status", {"run_id": 1, "status": "running"}), "no reason key while running"
    assert events[1] == (
        "task_status",
        {"run_id": 1, "task_key": "a", "status": "queued", "reason": None, "attempt_number": 0},
    )
    typed = [parse_event(kind, payload) for kind, payload in events]
    assert [e.wire() for e in typed] == events
    assert isinstance(typed[-1], RunStatusEvent) and typed[-1].status == RunStatus.succeeded
    assert isinstance(typed[1], TaskStatusEvent) and typed[1].status == S.queued
    with pytest.raises(ValueError, match="run_status"):
        parse_event("run_stat", {"run_id": 1})
