"""Scheduler: starts runs of scheduled jobs on time, exactly once, across restarts and competing schedulers.

- **Leader lease** (table ``leases``): only the scheduler holding the lease ``scheduler`` fires. A running
  scheduler renews it on a thread and database connection of its own, every third of ``lease_seconds``, so a
  tick that spends seconds starting runs (a loaded machine) never lets it lapse; when the scheduler dies,
  another takes over once the lease expires (``lease_seconds``).
- **Exactly once**: the lease only keeps schedulers from doing the same work twice; the arbiter is the fire
  record. Every fire is recorded under a unique (job, schedule, scheduled time) key before its run starts,
  so even two leaders (a lease handover race) cannot start the same fire twice.
- **Persisted next fires** (table ``schedule_state``) and a record of every fire (table ``fires``: scheduled
  time, actual time, run id or why it was skipped).
- **Catch-up** of fires missed while no scheduler ran, per schedule: ``none``, ``latest`` (default), ``all``
  (bounded); a fire is on time when it is at most ``grace_seconds`` late.
- **Concurrency**: ``max_concurrent_runs`` per job (default 1); with ``queue: true`` (default) a fire beyond
  it waits and starts when a slot frees, in order; with ``queue: false`` it is skipped and the skip recorded.
  The queue is the fire records (``queued``): a scheduler that becomes the leader (a restart, a handover) takes
  it over, and a fire starts only from ``firing`` or ``queued`` (compare-and-set), so it starts once.

Runs execute in this process (background threads of :class:`~..service.OrchestrateService`): headless with
``jupyter orchestrate scheduler``, or inside the Jupyter server extension. The scheduler takes the service as
a :class:`RunStarter` (the three things it uses), so this module never imports the service, and the service
imports the shared rules from :mod:`.policy`, not from here.

Job folders are found by discovery's scan (:func:`~..discovery.find_jobs`) and read by its
:func:`~..discovery.read_job_file`; names, the effective pause and the concurrency limit are :mod:`.policy`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from jupyter_orchestrate.discovery import JOB_FILE, JobFile, find_jobs, read_job_file
from jupyter_orchestrate.errors import ConflictError, OrchestrateError
from jupyter_orchestrate.models import FireStatus, Schedule, Trigger, TriggerSpec
from jupyter_orchestrate.scheduling.policy import (
    concurrency_block,
    effective_paused,
    schedule_name,
    trigger_name,
    trigger_state_name,
)
from jupyter_orchestrate.scheduling.timing import catchup_fires, fires_between, next_fire, schedule_problems
from jupyter_orchestrate.store import Fire, Store

log = logging.getLogger(__name__)
LEASE = "scheduler"
MAX_RECORDED = 1000  # fires considered in one pass (a scheduler down for years does not record millions)


def utc(now: dt.datetime | None = None) -> dt.datetime:
    """``now`` (or the current time) as an aware UTC datetime."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)


RunnerT = TypeVar("RunnerT")


class RunStarter(Protocol[RunnerT]):
    """What the scheduler needs of :class:`~..service.OrchestrateService`: its store, and to create and start
    the run of a fire (tests pass a service that records runs without executing them)."""

    store: Store

    def new_run(
        self,
        path: Path,
        *,
        parameters: dict[str, Any],
        trigger: Trigger,
        trigger_time: str | None = None,
        trigger_reason: str | None = None,
        fire_id: int | None = None,
    ) -> RunnerT:
        """Validate the job at ``path`` and record a new run of it (the fire ``fire_id`` marked started).

        Raises: OrchestrateError when the run cannot be created (invalid job, bad parameters, busy store)."""
        ...

    def start(self, runner: RunnerT, /) -> object:
        """Execute the run in the background."""
        ...


@dataclass
class ScheduledJob:
    """A job folder with its ``job.yaml`` schedules and triggers (valid ones only)."""

    path: Path
    job_file: JobFile
    schedules: dict[str, Schedule] = field(default_factory=dict)
    triggers: dict[str, TriggerSpec] = field(default_factory=dict)


@dataclass
class _Arrival:
    files: set[str] = field(default_factory=set)
    last_change: dt.datetime | None = None


def scheduled_jobs(
    roots: list[Path], *, max_depth: int = 4, exclude: tuple[Path, ...] = ()
) -> list[ScheduledJob]:
    """Job folders under ``roots`` (:func:`~..discovery.find_jobs`, job.yaml folders only) whose ``job.yaml``
    has schedules or triggers. Invalid files or schedules are logged and skipped (``jupyter orchestrate
    validate`` reports them)."""
    found: list[ScheduledJob] = []
    for root in roots:
        for folder in find_jobs(root, max_depth=max_depth, exclude=exclude, tagged=False):
            try:
                job_file = read_job_file(folder, str(folder / JOB_FILE)) or JobFile()
            except OrchestrateError as exc:
                log.warning("skipping %s", exc)
                continue
            job = ScheduledJob(folder, job_file)
            for index, schedule in enumerate(job_file.schedules):
                problems = schedule_problems(schedule)
                if problems:
                    log.warning("skipping schedule %d of %s: %s", index + 1, folder / JOB_FILE, problems)
                    continue
                job.schedules[schedule_name(schedule, index)] = schedule
            for index, trigger in enumerate(job_file.triggers):
                job.triggers[trigger_name(trigger, index)] = trigger
            if job.schedules or job.triggers:
                found.append(job)
    return found


@dataclass
class _Queued:
    fire_id: int
    job_path: Path
    schedule: Schedule


class Scheduler:
    """Fires the schedules of the jobs under ``roots`` (see the module docstring).

    Args:
        service: the :class:`~..service.OrchestrateService` (a :class:`RunStarter`) whose state home holds the
            lease and fire records.
        roots: folders searched for jobs with schedules.
        holder: this scheduler's id in the lease (default ``host:pid:random``).
        lease_seconds: how long the lease lasts without renewal (handover time after a crash).
        poll_seconds: time between ticks.
        grace_seconds: a fire at most this late is on time; later ones are "missed" (catch-up policy).
        rescan_seconds: how often job folders are searched again for changed schedules.
        clock: returns the current aware UTC datetime (tests pass a fake clock).
        on_fire: called with each fire record after it is recorded (tests, UI).
    """

    def __init__(
        self,
        service: RunStarter[Any],
        roots: list[Path],
        *,
        holder: str | None = None,
        lease_seconds: float = 15.0,
        poll_seconds: float = 1.0,
        grace_seconds: float = 60.0,
        rescan_seconds: float = 10.0,
        max_depth: int = 4,
        clock: Callable[[], dt.datetime] = utc,
        on_fire: Callable[[Fire], None] | None = None,
    ):
        self.service = service
        self.store = service.store
        self.roots = [Path(r).resolve() for r in roots]
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.rescan_seconds = rescan_seconds
        self.max_depth = max_depth
        self.clock = clock
        self.on_fire = on_fire
        self.is_leader = False
        self._jobs: list[ScheduledJob] = []
        self._scanned_at: dt.datetime | None = None
        self._queue: deque[_Queued] = deque()
        self._adopted = False  # whether this leadership took the queue from the fire records yet
        self._stop = threading.Event()
        self._lease_thread: threading.Thread | None = None
        self._arrivals: dict[tuple[str, str], _Arrival] = {}
        self._arrivals_lock = threading.Lock()
        self._watched: tuple[str, ...] = ()
        self._watch_stop: threading.Event | None = None
        #: set once the file-arrival watcher observes its folders (files changed before then are not seen)
        self.watching = threading.Event()

    # -- lease -----------------------------------------------------------------------------------------------
    def _renew(self, now: dt.datetime, store: Store | None = None) -> bool:
        expires = now + dt.timedelta(seconds=self.lease_seconds)
        leader = (store or self.store).acquire_lease(
            LEASE, self.holder, self.lease_seconds, now.isoformat(), expires.isoformat()
        )
        if leader and not self.is_leader:
            log.info("scheduler %s is now the leader", self.holder)
        self.is_leader = leader
        return leader

    # -- one pass ----------------------------------------------------------------------------------------------
    def tick(self) -> list[Fire]:
        """Renew the lease and, as leader, start due fires and queued runs. Returns the fires recorded."""
        now = self.clock()
        leader = self.is_leader if self._lease_thread is not None else self._renew(now)
        if not leader:
            with self._arrivals_lock:
                self._arrivals.clear()  # only the leader acts on arrivals; a new leader starts fresh
            self._adopted = False  # the next leadership takes the queue from the records again
            return []
        if self._scanned_at is None or (now - self._scanned_at).total_seconds() >= self.rescan_seconds:
            self._jobs = scheduled_jobs(self.roots, max_depth=self.max_depth, exclude=(self.store.home,))
            self._scanned_at = now
            self._watch_files()
        if not self._adopted:
            self._adopt_queued()
            self._adopted = True
        recorded: list[Fire] = []
        self._start_queued()
        for job in self._jobs:
            for name, schedule in job.schedules.items():
                recorded.extend(self._fire_due(job, name, schedule, now))
            for name, trigger in job.triggers.items():
                if trigger.paused:
                    continue
                if trigger.file_arrival:
                    recorded.extend(self._fire_arrivals(job, name, trigger, now))
                else:
                    recorded.extend(self._fire_completions(job, name, trigger, now))
        return recorded

    # -- event triggers ----------------------------------------------------------------------------------------
    def _watch_files(self) -> None:
        """(Re)start the watchfiles thread over the folders of jobs with file_arrival triggers."""
        folders = tuple(
            sorted({str(j.path) for j in self._jobs if any(t.file_arrival for t in j.triggers.values())})
        )
        if folders == self._watched:
            return
        if self._watch_stop is not None:
            self._watch_stop.set()
        self._watched = folders
        if not folders:
            self._watch_stop = None
            return
        stop = self._watch_stop = threading.Event()
        threading.Thread(
            target=self._watch, args=(folders, stop), name="orchestrate-file-arrival", daemon=True
        ).start()

    def _watch(self, folders: tuple[str, ...], stop: threading.Event) -> None:
        import watchfiles

        home = str(self.store.home)
        for changes in watchfiles.watch(
            *folders, stop_event=stop, yield_on_timeout=True, rust_timeout=500, debounce=100
        ):
            self.watching.set()  # the first yield (a change or a timeout) comes from a running watcher
            if stop.is_set():
                return
            for change, path in changes:
                if change == watchfiles.Change.deleted or path.startswith(home):
                    continue
                self._note_arrival(Path(path))

    def _note_arrival(self, path: Path) -> None:
        now = self.clock()
        for job in self._jobs:
            for name, trigger in job.triggers.items():
                if trigger.file_arrival is None or not path.is_relative_to(job.path):
                    continue
                relative = path.relative_to(job.path)
                if relative.match(trigger.file_arrival.path) or str(
                    relative
                ) == trigger.file_arrival.path.rstrip("/"):
                    with self._arrivals_lock:
                        arrival = self._arrivals.setdefault((str(job.path), name), _Arrival())
                        arrival.files.add(str(relative))
                        arrival.last_change = now

    def _fire_arrivals(
        self, job: ScheduledJob, name: str, trigger: TriggerSpec, now: dt.datetime
    ) -> list[Fire]:
        spec = trigger.file_arrival
        assert spec is not None
        key = (str(job.path), name)
        with self._arrivals_lock:
            arrival = self._arrivals.get(key)
            if arrival is None or arrival.last_change is None:
                return []
            if (now - arrival.last_change).total_seconds() < spec.wait_after_last_change_seconds:
                return []  # files still arriving: wait until they settle
            state = self.store.schedule_state(str(job.path), trigger_state_name(name))
            last = dt.datetime.fromisoformat(state.last_fire_time) if state and state.last_fire_time else None
            if last is not None and (now - last).total_seconds() < spec.min_time_between_triggers_seconds:
                return []  # keep collecting until the minimum time between triggers has passed
            files = sorted(arrival.files)
            settled = arrival.last_change
            del self._arrivals[key]
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        record = self._fire_event(
            job, name, trigger, settled.isoformat(), Trigger.file_arrival, f"files arrived: {shown}"
        )
        self.store.set_schedule_state(str(job.path), trigger_state_name(name), last_fire_time=now.isoformat())
        return [record] if record else []

    def _fire_completions(
        self, job: ScheduledJob, name: str, trigger: TriggerSpec, now: dt.datetime
    ) -> list[Fire]:
        spec = trigger.job_completion
        assert spec is not None
        upstream = (job.path / spec.job).resolve()
        state = self.store.schedule_state(str(job.path), trigger_state_name(name))
        if state is None:
            # first sight: only upstream runs that end from now on count
            self.store.set_schedule_state(
                str(job.path), trigger_state_name(name), last_fire_time=now.isoformat()
            )
            return []
        since = state.last_fire_time or ""
        recorded = []
        for run in reversed(self.store.list_runs(job_path=str(upstream), limit=50)):
            if run.status.value not in spec.statuses or not run.end_time or run.end_time < since:
                continue
            record = self._fire_event(
                job,
                name,
                trigger,
                f"run:{run.run_id}:{run.repair_count}",
                Trigger.job_completion,
                f"job {run.job_name} run {run.run_id} {run.status.value}",
            )
            if record:
                recorded.append(record)
        return recorded

    def _fire_event(
        self, job: ScheduledJob, name: str, trigger: TriggerSpec, key: str, kind: Trigger, reason: str
    ) -> Fire | None:
        """Record an event fire once (unique key) and start its run, like a schedule's fire."""
        fire_id = self.store.record_fire(
            str(job.path),
            trigger_state_name(name),
            key,
            status=FireStatus.firing,
            holder=self.holder,
            reason=reason,
        )
        if fire_id is None:
            return None
        if not self._start_run(
            fire_id, job.path, trigger.parameters, kind, None, reason, f"{reason}; not started: "
        ):
            return self.store.fire(fire_id)
        record = self.store.fire(fire_id)
        if self.on_fire:
            self.on_fire(record)
        return record

    def _fire_due(self, job: ScheduledJob, name: str, schedule: Schedule, now: dt.datetime) -> list[Fire]:
        path = str(job.path)
        state = self.store.schedule_state(path, name)
        paused = effective_paused(schedule, state)
        rule = f"{schedule.cron}|{schedule.every}|{schedule.timezone}"
        if state is None or state.next_fire_time is None or state.rule != rule:
            # first sight, or the rule was edited: nothing is owed for the past; fire from the next time on
            self.store.set_schedule_state(
                path,
                name,
                next_fire_time=next_fire(schedule, now).isoformat(),
                rule=rule,
                last_fire_time=now.isoformat() if state else None,
            )
            return []
        due_at = dt.datetime.fromisoformat(state.next_fire_time)
        if due_at > now:
            return []
        since = (
            dt.datetime.fromisoformat(state.last_fire_time)
            if state.last_fire_time
            else due_at - dt.timedelta(microseconds=1)
        )
        cutoff = now - dt.timedelta(seconds=self.grace_seconds)
        missed = fires_between(schedule, since, cutoff, limit=MAX_RECORDED) if cutoff > since else []
        caught_up = catchup_fires(schedule, since, cutoff) if missed else []
        on_time = fires_between(schedule, max(since, cutoff), now, limit=MAX_RECORDED)
        recorded = []
        if not paused:
            for fire in missed:
                if fire not in caught_up:
                    self.store.record_fire(
                        path,
                        name,
                        fire.isoformat(),
                        status=FireStatus.skipped,
                        holder=self.holder,
                        reason=f"missed while no scheduler ran (catchup: {schedule.catchup.value})",
                    )
            for fire in [*caught_up, *on_time]:
                record = self._fire(job, name, schedule, fire, missed=fire in caught_up)
                if record is not None:
                    recorded.append(record)
        considered = [*missed, *on_time]
        self.store.set_schedule_state(
            path,
            name,
            next_fire_time=next_fire(schedule, now).isoformat(),
            last_fire_time=max(considered).isoformat() if considered else state.last_fire_time,
        )
        return recorded

    def _fire(
        self, job: ScheduledJob, name: str, schedule: Schedule, fire: dt.datetime, missed: bool
    ) -> Fire | None:
        path = str(job.path)
        fire_id = self.store.record_fire(
            path,
            name,
            fire.isoformat(),
            status=FireStatus.firing,
            holder=self.holder,
            reason="catch-up of a missed fire" if missed else None,
        )
        if fire_id is None:
            return None  # another scheduler recorded this fire: exactly once
        why = concurrency_block(self.store, path, job.job_file.max_concurrent_runs)
        ahead = sum(1 for q in self._queue if q.job_path == job.path)
        if why is None and ahead and job.job_file.queue:
            # a slot freed since this tick started the queued fires: it is theirs, in order
            why = f"{ahead} earlier fire(s) of the job are queued"
        if why is not None:
            if job.job_file.queue:
                self._queue.append(_Queued(fire_id, job.path, schedule))
                self.store.update_fire(fire_id, status=FireStatus.queued, reason=why)
            else:
                self.store.update_fire(fire_id, status=FireStatus.skipped, reason=f"{why} and queue is false")
        else:
            self._start(fire_id, job.path, schedule)
        record = self.store.fire(fire_id)
        if self.on_fire:
            self.on_fire(record)
        return record

    def _start(self, fire_id: int, job_path: Path, schedule: Schedule) -> None:
        fire = self.store.fire(fire_id)
        reason = f"schedule {fire.schedule_name} fired for {fire.scheduled_time}" + (
            f" ({fire.reason})" if fire.reason else ""
        )
        self._start_run(
            fire_id, job_path, schedule.parameters, Trigger.schedule, fire.scheduled_time, reason, ""
        )

    def _start_run(
        self,
        fire_id: int,
        job_path: Path,
        parameters: dict[str, Any],
        kind: Trigger,
        trigger_time: str | None,
        reason: str,
        failure_prefix: str,
    ) -> bool:
        """Start the run of a recorded fire and record its outcome (started + run id, or failed + why)."""
        try:
            runner = self.service.new_run(
                job_path,
                parameters=dict(parameters),
                trigger=kind,
                trigger_time=trigger_time,
                trigger_reason=reason,
                fire_id=fire_id,
            )
        except ConflictError as exc:  # another scheduler started (or skipped) this fire: nothing to record
            log.info("%s run of %s not started: %s", kind.value, job_path, exc)
            return False
        except OrchestrateError as exc:
            self.store.update_fire(fire_id, status=FireStatus.failed, reason=f"{failure_prefix}{exc}")
            log.warning("%s run of %s not started: %s", kind.value, job_path, exc)
            return False
        self.service.start(runner)
        return True

    def _adopt_queued(self) -> None:
        """Take the queue from the fire records (status ``queued``, oldest first): on becoming the leader, the
        fires that a scheduler which stopped or lost the lease had queued wait here, in order, instead of
        staying ``queued`` forever. Fires of jobs outside this scheduler's roots are left to theirs; a fire
        whose schedule is no longer in its job.yaml is skipped, saying so."""
        jobs = {str(j.path): j for j in self._jobs}
        queue: deque[_Queued] = deque()
        for fire in self.store.queued_fires():
            job = jobs.get(fire.job_path)
            if job is None:
                continue
            schedule = job.schedules.get(fire.schedule_name)
            if schedule is None:
                self.store.update_fire(
                    fire.fire_id,
                    status=FireStatus.skipped,
                    reason=f"its schedule {fire.schedule_name} is no longer in {JOB_FILE}",
                )
                continue
            queue.append(_Queued(fire.fire_id, job.path, schedule))
        self._queue = queue

    def _start_queued(self) -> None:
        """Start queued fires while their job has a slot, oldest first. Once a job's oldest queued fire finds
        no slot, its later ones wait too: a run that ends during this pass (on its own thread) must not let a
        younger fire start before an older one."""
        blocked: set[Path] = set()
        waiting: deque[_Queued] = deque()
        try:
            while self._queue:
                item = self._queue.popleft()
                if item.job_path not in blocked:
                    job = next((j for j in self._jobs if j.path == item.job_path), None)
                    limit = job.job_file.max_concurrent_runs if job else 1
                    if concurrency_block(self.store, str(item.job_path), limit) is None:
                        self._start(item.fire_id, item.job_path, item.schedule)
                        continue
                    blocked.add(item.job_path)
                waiting.append(item)
        finally:  # an error in one start (logged by the tick) loses none of the fires not yet considered
            waiting.extend(self._queue)
            self._queue = waiting

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def _hold_lease(self, store: Store) -> None:
        """Renew (or try to take) the lease every third of ``lease_seconds`` until :meth:`stop`, on ``store``, a
        connection of its own: the ticking thread may hold the service's connection for seconds."""
        try:
            while not self._stop.wait(self.lease_seconds / 3):
                try:
                    self._renew(self.clock(), store)
                except Exception:  # a busy or broken database: not the leader until a renewal succeeds
                    log.exception("scheduler lease renewal failed")
                    self.is_leader = False
        finally:
            store.close()

    def run_forever(self) -> None:
        """Tick every ``poll_seconds`` until :meth:`stop`, holding the lease from a thread of its own;
        releases the lease on the way out."""
        self._renew(self.clock())
        self._lease_thread = threading.Thread(
            target=self._hold_lease,
            args=(Store(self.store.home),),
            name="orchestrate-scheduler-lease",
            daemon=True,
        )
        self._lease_thread.start()
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # a bad job or a busy database must not stop the scheduler
                    log.exception("scheduler tick failed")
                self._stop.wait(self.poll_seconds)
        finally:
            self._stop.set()
            self._lease_thread.join()
            self._lease_thread = None
            if self.is_leader:
                self.store.release_lease(LEASE, self.holder)
                self.is_leader = False

    def start(self) -> threading.Thread:
        """Run :meth:`run_forever` in a daemon thread."""
        thread = threading.Thread(target=self.run_forever, name="orchestrate-scheduler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return after the current tick (and stop watching files)."""
        self._stop.set()
        if self._watch_stop is not None:
            self._watch_stop.set()
