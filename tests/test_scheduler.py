"""The scheduler: leader lease, exactly-once fires, catch-up, concurrency. Fake clock, no kernels, except the
real-time tests at the end (two `jupyter orchestrate scheduler` processes racing on one state home)."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.models import Job, RunStatus, Task, Trigger
from jupyter_orchestrate.scheduling.scheduler import LEASE, Scheduler
from jupyter_orchestrate.store import Store

T0 = dt.datetime(2026, 3, 2, 12, 0, 0, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self, now: dt.datetime = T0):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class FakeRunner:
    def __init__(self, run_id: int):
        self.run_id = run_id


class FakeService:
    """The service as the scheduler uses it: a real store; runs are recorded but not executed."""

    def __init__(self, home: Path):
        self.store = Store(home)
        self.started: list[tuple[int, str, dict[str, Any], Trigger]] = []

    def new_run(
        self,
        path: Path,
        *,
        parameters: dict[str, Any],
        trigger: Trigger,
        trigger_time: str | None = None,
        trigger_reason: str | None = None,
        fire_id: int | None = None,
    ) -> FakeRunner:
        job = Job(name=Path(path).name, path=str(path), tasks=[Task(task_key="t", notebook="t.ipynb")])
        run_id = self.store.create_run(
            job,
            parameters=parameters,
            overrides=parameters,
            max_parallel_tasks=1,
            trigger=trigger,
            trigger_time=trigger_time,
            trigger_reason=trigger_reason,
            fire_id=fire_id,
        )
        self.started.append((run_id, str(path), parameters, trigger))
        return FakeRunner(run_id)

    def start(self, runner: FakeRunner) -> None:
        pass  # stays queued: counts as an active run

    def finish(self, run_id: int) -> None:
        self.store.finish_run(run_id, RunStatus.succeeded)


def write_job(root: Path, name: str, body: str) -> Path:
    job = root / name
    job.mkdir(parents=True, exist_ok=True)
    (job / "job.yaml").write_text(textwrap.dedent(body))
    return job


@pytest.fixture
def env(tmp_path: Path) -> tuple[FakeService, Path, Clock]:
    return FakeService(tmp_path / "state"), tmp_path / "root", Clock()


def make(service: FakeService, root: Path, clock: Clock, holder: str = "a", **kwargs: Any) -> Scheduler:
    options = {"lease_seconds": 5, "grace_seconds": 30, "rescan_seconds": 0}
    options.update(kwargs)
    return Scheduler(service, [root], holder=holder, clock=clock, **options)


def test_fires_once_on_time_and_never_twice(env: Any) -> None:
    service, root, clock = env
    write_job(
        root,
        "hourly",
        """
        schedules:
          - name: top
            cron: "0 * * * *"
            parameters: {size: 3}
    """,
    )
    scheduler = make(service, root, clock)
    assert scheduler.tick() == []  # first sight: nothing owed for the past
    clock.advance(59 * 60)
    assert scheduler.tick() == []
    clock.advance(61)  # 13:00:01
    fires = scheduler.tick()
    assert [(f.schedule_name, f.scheduled_time, f.status) for f in fires] == [
        ("top", "2026-03-02T13:00:00+00:00", "started")
    ]
    assert service.started[0][2:] == ({"size": 3}, Trigger.schedule)
    run = service.store.get_run(service.started[0][0])
    assert run.trigger_time == "2026-03-02T13:00:00+00:00" and "schedule top fired" in run.trigger_reason
    assert scheduler.tick() == []  # same minute again: nothing new
    assert len(service.started) == 1
    state = service.store.schedule_state(str((root / "hourly").resolve()), "top")
    assert state.next_fire_time == "2026-03-02T14:00:00+00:00"


def test_only_the_leader_fires_and_another_takes_over_after_the_lease(env: Any) -> None:
    service, root, clock = env
    write_job(
        root,
        "minutely",
        """
        max_concurrent_runs: 100
        schedules:
          - cron: "* * * * *"
    """,
    )
    a, b = (
        make(service, root, clock, "a", lease_seconds=90),
        make(service, root, clock, "b", lease_seconds=90),
    )
    a.tick(), b.tick()
    assert (a.is_leader, b.is_leader) == (True, False)
    for _ in range(3):
        clock.advance(60)
        assert b.tick() == []  # follower records nothing
        assert len(a.tick()) == 1
    # a dies (stops renewing); before its lease expires b still waits, after it b leads and fires
    clock.advance(60)
    assert b.tick() == [] and not b.is_leader
    clock.advance(31)
    fired = b.tick()
    assert b.is_leader and len(fired) == 1 and fired[0].holder == "b"
    assert service.store.lease(LEASE).holder == "b"
    times = [f.scheduled_time for f in service.store.fires()]
    assert (
        len(times) == len(set(times)) == 4
    )  # the minute a was down while holding the lease fires late, once


def test_a_fire_is_recorded_once_even_if_two_leaders_race(env: Any) -> None:
    service, root, clock = env
    write_job(
        root,
        "j",
        """
        max_concurrent_runs: 10
        schedules:
          - cron: "* * * * *"
    """,
    )
    a, b = make(service, root, clock, "a"), make(service, root, clock, "b")
    a.tick(), b.tick()
    clock.advance(60)
    b._renew = lambda now: True  # simulate a handover race: both believe they lead
    b.is_leader = True
    first, second = a.tick(), b.tick()
    assert len(first) + len(second) == 1
    assert len(service.started) == 1


@pytest.mark.parametrize(("policy", "expected_started"), [("none", 0), ("latest", 1), ("all", 5)])
def test_catch_up_of_fires_missed_while_down(env: Any, policy: str, expected_started: int) -> None:
    service, root, clock = env
    write_job(
        root,
        "j",
        f"""
        max_concurrent_runs: 100
        schedules:
          - name: s
            cron: "0 * * * *"
            catchup: {policy}
            max_catchup_runs: 5
    """,
    )
    make(service, root, clock).tick()  # 12:00: next fire 13:00
    clock.advance(10 * 3600 + 120)  # down until 22:02: 13:00 .. 22:00 missed (10 fires)
    make(service, root, clock, "again").tick()
    started = [f for f in service.store.fires() if f.status == "started"]
    skipped = [f for f in service.store.fires() if f.status == "skipped"]
    assert len(started) == expected_started == len(service.started)
    assert len(started) + len(skipped) == 10
    if policy == "latest":
        assert started[0].scheduled_time == "2026-03-02T22:00:00+00:00"
    if policy == "all":
        assert sorted(f.scheduled_time[11:16] for f in started) == [
            "18:00",
            "19:00",
            "20:00",
            "21:00",
            "22:00",
        ]
    assert all("missed" in f.reason for f in skipped)


@pytest.mark.parametrize("queue", [True, False])
def test_max_concurrent_runs_queues_or_skips(env: Any, queue: bool) -> None:
    service, root, clock = env
    write_job(
        root,
        "j",
        f"""
        max_concurrent_runs: 1
        queue: {str(queue).lower()}
        schedules:
          - cron: "* * * * *"
    """,
    )
    scheduler = make(service, root, clock)
    scheduler.tick()
    clock.advance(60)
    scheduler.tick()  # run 1 starts and stays active
    clock.advance(60)
    fire = scheduler.tick()[0]
    assert len(service.started) == 1
    assert fire.status == ("queued" if queue else "skipped") and "max_concurrent_runs=1" in fire.reason
    service.finish(service.started[0][0])
    clock.advance(1)
    scheduler.tick()  # a slot is free: the queued fire starts, in order
    assert len(service.started) == (2 if queue else 1)
    if queue:
        assert service.store.fire(fire.fire_id).status == "started"


class RunEndsDuringPass(Store):
    """A real store whose ``end_on_call``-th active-runs query first ends ``run_id``, as a run thread finishing
    while the scheduler walks its queue would."""

    end_on_call: int | None = None
    run_id = 0
    calls = 0

    def active_runs(self, job_path: str) -> list[int]:
        self.calls += 1
        if self.calls == self.end_on_call:
            self.finish_run(self.run_id, RunStatus.succeeded)
        return super().active_runs(job_path)


def test_queued_fires_start_in_fire_order_when_a_slot_frees_during_the_pass(tmp_path: Path) -> None:
    service, root, clock = FakeService(tmp_path / "state"), tmp_path / "root", Clock()
    service.store = store = RunEndsDuringPass(tmp_path / "state")
    write_job(root, "j", 'max_concurrent_runs: 1\nschedules:\n  - cron: "* * * * *"\n')
    scheduler = make(service, root, clock)
    scheduler.tick()
    for _ in range(3):  # run 1 starts and stays active; the next two fires queue behind it
        clock.advance(60)
        scheduler.tick()
    queued = [f for f in store.fires(limit=10) if f.status == "queued"]
    assert len(service.started) == 1 and len(queued) == 2
    # run 1 ends (its thread) right after the oldest queued fire found no slot: neither the younger queued
    # fire nor the fire that comes due in this tick may take the slot
    store.run_id, store.end_on_call, store.calls = service.started[0][0], 2, 0
    clock.advance(60)
    scheduler.tick()
    assert store.calls >= 2 and store.run_status(service.started[0][0]) == RunStatus.succeeded
    assert len(service.started) == 1
    store.end_on_call = None
    for _ in range(3):  # each tick starts the oldest waiting fire once the slot is free
        clock.advance(1)
        scheduler.tick()
        service.finish(service.started[-1][0])
    fires = sorted(store.fires(limit=10), key=lambda f: f.scheduled_time)
    assert [f.status for f in fires] == ["started"] * 4 and len(service.started) == 4
    assert [f.run_id for f in fires] == sorted(f.run_id for f in fires)  # runs in fire order


def test_queued_fires_survive_a_scheduler_restart_and_start_once_in_order(env: Any) -> None:
    service, root, clock = env
    write_job(root, "j", 'max_concurrent_runs: 1\nschedules:\n  - cron: "* * * * *"\n')
    first = make(service, root, clock)
    first.tick()
    for _ in range(3):  # run 1 starts and stays active; two fires queue behind it
        clock.advance(60)
        first.tick()
    assert len(service.started) == 1
    # the scheduler stops (its queue was in memory only); another one takes the lease over
    clock.advance(6)
    second = make(service, root, clock, holder="b")
    service.finish(service.started[0][0])
    second.tick()
    assert len(service.started) == 2  # the oldest queued fire started, the other still waits
    service.finish(service.started[1][0])
    clock.advance(1)
    second.tick()
    fires = sorted(service.store.fires(limit=10), key=lambda f: f.scheduled_time)
    assert [f.status for f in fires] == ["started"] * 3
    assert [f.run_id for f in fires] == [r[0] for r in service.started]
    # the first scheduler, leader again with its stale queue, cannot start those fires a second time
    service.finish(service.started[2][0])
    assert service.store.queued_fires() == []
    clock.advance(20)
    assert len(first._queue) == 2  # what it still holds: it never saw that it lost the lease
    first.tick()
    assert len(service.started) == 3 and not first._queue
    assert [f.status for f in service.store.fires(limit=10)] == ["started"] * 3


def test_paused_schedule_does_not_fire(env: Any) -> None:
    service, root, clock = env
    write_job(
        root,
        "j",
        """
        schedules:
          - cron: "* * * * *"
            paused: true
    """,
    )
    scheduler = make(service, root, clock)
    scheduler.tick()
    clock.advance(120)
    assert scheduler.tick() == [] and service.started == []


# -- real time: two scheduler processes racing on one state home ------------------------------------------


def _fires(home: Path) -> list[dict[str, Any]]:
    return Store(home).fires(limit=1000)


@pytest.mark.kernel
def test_two_schedulers_racing_fire_each_second_once_and_hand_over(
    tmp_path: Path, make_notebook: Any
) -> None:
    root, home = tmp_path / "root", tmp_path / "state"
    make_notebook("root/tick/t.ipynb", "x = 1", orchestrate={})
    (root / "tick" / "job.yaml").write_text(
        'max_concurrent_runs: 1\nqueue: false\nschedules:\n  - name: every-second\n    cron: "* * * * * *"\n'
    )
    cli = [
        sys.executable,
        "-m",
        "jupyter_orchestrate",
        "--home",
        str(home),
        "scheduler",
        str(root),
        "--lease-seconds",
        "2",
        "--poll-seconds",
        "0.2",
    ]
    procs = [subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_fires(home)) < 5:
            time.sleep(0.2)
        before = _fires(home)
        holders = {f.holder for f in before}
        assert len(holders) == 1, "one leader fires"
        leader = Store(home).lease(LEASE).holder
        victim = next(p for p in procs if f":{p.pid}:" in leader)
        killed_at = dt.datetime.now(dt.timezone.utc)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(f.holder != leader for f in _fires(home)):
            time.sleep(0.2)
        time.sleep(2)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    after = _fires(
        home
    )  # read once both have stopped: a fire recorded meanwhile is compared with the runs too
    takeover = [f for f in after if f.holder != leader]
    assert takeover, "the other scheduler took over"
    first_new = min(dt.datetime.fromisoformat(f.fire_time) for f in takeover)
    assert (first_new - killed_at).total_seconds() < 2 + 3, "handover within the lease time (2 s) plus a poll"
    times = [f.scheduled_time for f in after]
    assert len(times) == len(set(times)), "no fire recorded twice"
    run_ids = [f.run_id for f in after if f.run_id is not None]
    assert len(run_ids) == len(set(run_ids)) and run_ids, "each started fire has its own run"
    runs = Store(home).list_runs(limit=1000)
    assert {r.run_id for r in runs} == set(run_ids), "every scheduled run belongs to exactly one fire"


# -- event triggers -------------------------------------------------------------------------------------------


def _tick_until(scheduler: Scheduler, predicate: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
    fired: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fired.extend(scheduler.tick())
        if predicate(fired):
            return fired
        time.sleep(0.1)
    return fired


def test_file_arrival_fires_once_for_a_burst_after_files_settle(tmp_path: Path) -> None:
    service, root = FakeService(tmp_path / "state"), tmp_path / "root"
    job = write_job(
        root,
        "ingest",
        """
        triggers:
          - name: csv
            file_arrival: {path: "incoming/*.csv", wait_after_last_change_seconds: 0.8, min_time_between_triggers_seconds: 0}
            parameters: {mode: incremental}
    """,
    )
    (job / "incoming").mkdir()
    scheduler = Scheduler(service, [root], holder="a", rescan_seconds=3600)
    scheduler.tick()  # starts watching
    assert scheduler.watching.wait(30), "the file-arrival watcher did not start"
    for i in range(5):
        (job / "incoming" / f"part-{i}.csv").write_text("x\n")
        (job / "incoming" / f"ignored-{i}.txt").write_text("x\n")
        time.sleep(0.1)
    assert scheduler.tick() == [], "files are still settling"
    fired = _tick_until(scheduler, lambda f: len(f) >= 1)
    time.sleep(1.5)
    fired += scheduler.tick()
    scheduler.stop()
    assert len(fired) == 1 and len(service.started) == 1
    reason = fired[0].reason
    assert all(f"part-{i}.csv" in reason for i in range(5)) and "ignored" not in reason
    run = service.store.get_run(service.started[0][0])
    assert run.trigger == Trigger.file_arrival and run.trigger_reason == reason
    assert service.started[0][2] == {"mode": "incremental"}


def test_file_arrival_respects_min_time_between_triggers(tmp_path: Path) -> None:
    service, root = FakeService(tmp_path / "state"), tmp_path / "root"
    job = write_job(
        root,
        "ingest",
        """
        triggers:
          - file_arrival: {path: "*.csv", wait_after_last_change_seconds: 0.2, min_time_between_triggers_seconds: 3}
    """,
    )
    scheduler = Scheduler(service, [root], holder="a", rescan_seconds=3600)
    scheduler.tick()
    assert scheduler.watching.wait(30), "the file-arrival watcher did not start"
    (job / "a.csv").write_text("1")
    assert len(_tick_until(scheduler, lambda f: len(f) >= 1)) == 1
    (job / "b.csv").write_text("2")
    early = _tick_until(scheduler, lambda f: len(f) >= 1, timeout=1.5)
    late = _tick_until(scheduler, lambda f: len(f) >= 1, timeout=10)
    scheduler.stop()
    assert early == [] and len(late) == 1 and "b.csv" in late[0].reason


def test_job_completion_chains_jobs_once_per_upstream_run(tmp_path: Path) -> None:
    service, root = FakeService(tmp_path / "state"), tmp_path / "root"
    upstream = write_job(root, "bronze", "name: bronze\n")
    write_job(
        root,
        "report",
        """
        triggers:
          - job_completion: {job: ../bronze}
    """,
    )
    clock = Clock(dt.datetime.now(dt.timezone.utc))
    scheduler = make(service, root, clock)
    assert scheduler.tick() == []  # first sight
    ok = service.new_run(upstream, parameters={}, trigger=Trigger.manual).run_id
    failed = service.new_run(upstream, parameters={}, trigger=Trigger.manual).run_id
    service.store.finish_run(ok, RunStatus.succeeded)
    service.store.finish_run(failed, RunStatus.failed)
    clock.advance(1)
    fired = scheduler.tick()
    assert [f.reason for f in fired] == [f"job bronze run {ok} succeeded"]
    assert scheduler.tick() == [] and make(service, root, clock, "b").tick() == []
    chained = service.store.get_run(service.started[-1][0])
    assert chained.trigger == Trigger.job_completion and chained.job_path.endswith("report")


def test_editing_a_rule_recomputes_the_next_fire(env: Any) -> None:
    service, root, clock = env
    job = write_job(
        root,
        "j",
        """
        schedules:
          - name: s
            cron: "0 3 1 * *"
    """,
    )
    scheduler = make(service, root, clock)
    scheduler.tick()
    assert service.store.schedule_state(str(job.resolve()), "s").next_fire_time == "2026-04-01T03:00:00+00:00"
    (job / "job.yaml").write_text('schedules:\n  - name: s\n    cron: "* * * * *"\n')
    clock.advance(1)
    scheduler.tick()  # rescans, notices the new rule
    clock.advance(60)
    assert len(scheduler.tick()) == 1 and len(service.started) == 1


def test_schedule_parameters_must_name_known_parameters(tmp_path: Path, make_notebook: Any) -> None:
    from jupyter_orchestrate.discovery import validate_job

    make_notebook("job/a.ipynb", "1", parameters="region = 'eu'", orchestrate={})
    (tmp_path / "job" / "job.yaml").write_text(
        'schedules:\n  - cron: "0 * * * *"\n    parameters: {regoin: us}\n'
    )
    _, problems = validate_job(tmp_path / "job")
    assert [str(p) for p in problems] == [
        "job/job.yaml: schedules.0.parameters.regoin: no job parameter or notebook parameter is named 'regoin' (known: region)"
    ]
