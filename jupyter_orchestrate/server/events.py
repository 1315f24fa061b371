"""EventBus: fans run events out from runner threads to jupyter_server's event bus and to the scripts' stream.

Runners execute in background threads; every consumer lives on the server's event loop: jupyter_server's
``event_logger`` (:class:`EventLoggerSink`: each message is emitted there under
:data:`~.schemas.events.EVENT_SCHEMA_ID`, and JupyterLab's ``serviceManager.events`` receives it over
``/api/events/subscribe``, the server's own authenticated websocket: this is the sidebar's channel), and each
client of ``GET /jupyter-orchestrate/api/events`` (Server-Sent Events for scripts, token in the header only),
which owns an asyncio queue. :meth:`EventBus.publish` is thread-safe: it hands each event to the loops with
``call_soon_threadsafe``. Events carry a sequence number (``id``) so a client can tell their order; each
message is built through :class:`~.schemas.events.StreamEvent`, the sidebar's type of it.
:class:`StoreWatcher` adds the events of runs that other processes record in the same state home.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_events import EventLogger

    from jupyter_orchestrate.store import Store, WatchedTaskRun

from jupyter_orchestrate.schemas.events import (
    EVENT_KINDS,
    EVENT_SCHEMA_ID,
    RunStatusEvent,
    TaskStatusEvent,
    event_schema,
    parse_event,
    stream_message,
)

log = logging.getLogger(__name__)
QUEUE_SIZE = 10_000


class EventBus:
    """Publish ``(kind, payload)`` events to every subscribed queue, in publication order."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self._sinks: list[tuple[asyncio.AbstractEventLoop, Callable[[dict[str, Any]], None]]] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    def add_sink(self, loop: asyncio.AbstractEventLoop, sink: Callable[[dict[str, Any]], None]) -> None:
        """Call ``sink(message)`` on ``loop`` for every later event, in publication order (``message``: a
        :class:`~.schemas.events.StreamEvent` as JSON). A sink that raises is logged, not removed."""
        with self._lock:
            self._sinks.append((loop, sink))

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A new queue on the running loop that receives every later event. Call from the loop."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering events to ``queue`` (its client went away)."""
        with self._lock:
            self._subscribers = [(loop, q) for loop, q in self._subscribers if q is not queue]

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Deliver an event to every subscriber (from any thread). A full queue drops the event for that client.

        Raises:
            pydantic.ValidationError: ``(kind, payload)`` is not a run event's wire shape (the stream's messages
                are :class:`~.schemas.events.StreamEvent`).
        """
        with self._lock:
            event = stream_message(next(self._sequence), kind, payload)
            subscribers = list(self._subscribers)
            sinks = list(self._sinks)
        for loop, sink in sinks:
            try:
                loop.call_soon_threadsafe(self._call, sink, event)
            except RuntimeError:  # the server's loop is closed: it is shutting down
                pass
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(self._put, queue, event)
            except RuntimeError:  # the loop is closed: the client is gone
                self.unsubscribe(queue)

    @staticmethod
    def _call(sink: Callable[[dict[str, Any]], None], event: dict[str, Any]) -> None:
        try:
            sink(event)
        except Exception:  # one consumer's bug must not stop the others
            log.exception("event sink %r failed on event %s", sink, event.get("id"))

    @staticmethod
    def _put(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event stream client is %d events behind; dropping event %s", QUEUE_SIZE, event["id"])


class EventLoggerSink:
    """Emits each message of the :class:`EventBus` on jupyter_server's event bus (``serverapp.event_logger``,
    a ``jupyter_events.EventLogger``) under :data:`~.schemas.events.EVENT_SCHEMA_ID`: the data is the
    :class:`~.schemas.events.StreamEvent` itself, validated by jupyter_events against
    :func:`~.schemas.events.event_schema` (registered here). Subscribers of ``/api/events/subscribe`` (JupyterLab's
    ``serviceManager.events.stream``) receive ``{"schema_id": ..., **message}``. Call only on the server's loop
    (the logger schedules its listeners as asyncio tasks).
    """

    def __init__(self, event_logger: EventLogger):
        self.event_logger = event_logger
        if EVENT_SCHEMA_ID not in event_logger.schemas:
            event_logger.register_event_schema(event_schema())

    def __call__(self, message: dict[str, Any]) -> None:
        self.event_logger.emit(schema_id=EVENT_SCHEMA_ID, data=message)

    def __repr__(self) -> str:
        return f"EventLoggerSink({EVENT_SCHEMA_ID})"


class StoreWatcher:
    """Publishes the run and task run status changes that *other processes* record in the state home (a CLI
    run, the Python API in a notebook, a headless scheduler), so an open sidebar shows them without a reload.

    A daemon thread polls the store every ``poll_seconds`` over its own read-only connection
    (:meth:`~.store.Store.watched_rows`: runs above the highest id seen, unfinished runs, and their task runs)
    and publishes ``run_status`` and ``task_status`` events shaped like the runner's. Runs this process owns
    are skipped (their runner publishes its own events), and :meth:`seen`, a service listener, records what
    this process published so it is not sent twice.

    Args:
        home: the state home (its database must exist: the server's service has created it).
        publish: ``(kind, payload)`` callback, e.g. :meth:`EventBus.publish`.
        poll_seconds: time between two polls.
    """

    def __init__(self, home: Path, publish: Callable[[str, dict[str, Any]], None], poll_seconds: float = 0.5):
        self.home = home
        self.publish = publish
        self.poll_seconds = poll_seconds
        self._runs: dict[int, str] = {}  # run id -> status last seen
        self._tasks: dict[tuple[int, str], str] = {}
        self._max_run_id = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._me = (os.getpid(), socket.gethostname())

    def seen(self, kind: str, payload: dict[str, Any]) -> None:
        """Record an event this process published itself (listener of the service)."""
        if kind not in EVENT_KINDS:
            return
        event = parse_event(kind, payload)
        with self._lock:
            if isinstance(event, RunStatusEvent):
                self._runs[event.run_id] = event.status.value
            elif isinstance(event, TaskStatusEvent):
                self._tasks[(event.run_id, event.task_key)] = event.status.value

    def start(self) -> None:
        """Take the current state as the baseline (nothing is published for it), then poll on a daemon thread."""
        from jupyter_orchestrate.store import Store

        store = Store.open_read_only(self.home)
        if store is None:
            raise FileNotFoundError(f"the state home {self.home} has no database to watch")
        self._max_run_id = store.max_run_id()
        self.poll(store, publish=False)  # the unfinished runs and their task runs
        self._thread = threading.Thread(
            target=self._loop, args=(store,), name="orchestrate-store-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling and wait (up to ``timeout`` seconds) for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self, store: Store) -> None:
        try:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.poll(store)
                except Exception:  # a busy or damaged database must not stop the watcher
                    log.exception("state home watcher pass failed")
        finally:
            store.close()

    def poll(self, store: Store, publish: bool = True) -> list[tuple[str, dict[str, Any]]]:
        """One pass: compare the store with what was seen; publish (and return) the changes, in the order a
        runner would send them (a run's start, its task runs, then its end)."""
        from jupyter_orchestrate.models import RunStatus

        with self._lock:
            unfinished = [
                run_id for run_id, status in self._runs.items() if not RunStatus(status).is_terminal
            ]
            max_seen = self._max_run_id
        runs, tasks = store.watched_rows(max_seen, unfinished)
        tasks_of: dict[int, list[WatchedTaskRun]] = {}
        for task_run in tasks:
            tasks_of.setdefault(task_run.run_id, []).append(task_run)
        events: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            for run in runs:
                run_id = run.run_id
                self._max_run_id = max(self._max_run_id, run_id)
                started: list[tuple[str, dict[str, Any]]] = []
                changed: list[tuple[str, dict[str, Any]]] = []
                ended: list[tuple[str, dict[str, Any]]] = []
                if self._runs.get(run_id) != run.status.value:
                    self._runs[run_id] = run.status.value
                    event = RunStatusEvent(
                        run_id=run_id,
                        status=run.status,
                        reason=run.status_reason,
                        job_name=run.job_name,
                    ).wire()
                    (ended if run.status.is_terminal else started).append(event)
                for task in tasks_of.get(run_id, []):
                    key = (run_id, task.task_key)
                    if self._tasks.get(key) != task.status.value:
                        self._tasks[key] = task.status.value
                        changed.append(
                            TaskStatusEvent(
                                run_id=run_id,
                                task_key=task.task_key,
                                status=task.status,
                                reason=task.status_reason,
                            ).wire()
                        )
                if (run.orchestrator_pid, run.orchestrator_host) != self._me:  # a runner here sends its own
                    events += started + changed + ended
            # forget ended runs (memory stays bounded): a later repair makes one unfinished, and so listed, again
            ended_ids = {run_id for run_id, status in self._runs.items() if RunStatus(status).is_terminal}
            self._runs = {k: v for k, v in self._runs.items() if k not in ended_ids}
            self._tasks = {k: v for k, v in self._tasks.items() if k[0] not in ended_ids}
        if publish:
            for kind, payload in events:
                self.publish(kind, payload)
        return events
