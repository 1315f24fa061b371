"""Run and task notifications: webhooks (Slack-compatible JSON) and email, delivered off the run's thread.

Semantics follow Databricks job notifications:

* **Job level** (``job.yaml`` ``notifications:``): ``on_start`` when a run starts running (again for each
  repair of it), ``on_success`` when it ends ``succeeded``, ``on_failure`` when it ends ``failed`` or
  ``canceled`` (Databricks also alerts on canceled runs unless told not to), ``on_duration_warning`` once per
  execution when the run is still running ``duration_warning_seconds`` after it started running.
* **Task level** (``Task.notifications``): ``on_start`` when the task run starts its first attempt (not again
  for its automatic retries), ``on_success`` when it succeeds, ``on_failure`` when it ends ``failed`` or
  ``timed_out`` after its last retry (a failed attempt that will be retried is ``up_for_retry``, which does not
  alert: Databricks' ``alert_on_last_attempt``), ``on_duration_warning`` once when the task run is still not
  finished ``duration_warning_seconds`` after its first attempt started.

A :class:`Notifier` is a listener of :class:`~.service.OrchestrateService` (``service.listeners``). The runner
calls listeners synchronously from the thread that executes the run, so :meth:`Notifier.__call__` only hands
the event to a single-thread *dispatch* executor and returns; the dispatch thread reads the run and its job
snapshot from the store, builds the messages and submits every delivery to a small
:class:`~concurrent.futures.ThreadPoolExecutor` of *delivery* threads, which retry failed tries with
``tenacity``. A slow, hanging or failing webhook or SMTP server therefore never delays a run, and one failing
destination never stops the others; a delivery that still fails after its retries is logged
(``jupyter_orchestrate.notifications`` logger), never raised.

Messages are dicts (the webhook JSON body; the email body is ``text`` plus the link)::

    {"text": "Run 12 of job etl failed: task load failed in cell 3: ValueError: bad row. <http://.../lab?orchestrate-run=12|Open the run in JupyterLab>",
     "event": "run_failed", "run_id": 12, "job": "etl", "status": "failed", "reason": "...",
     "failure": {"task_key": "load", "cell_index": 2, "cell_source": "...", "ename": "ValueError",
                 "evalue": "bad row"},
     "url": "http://.../lab?orchestrate-run=12"}

``text`` uses Slack's message format: ``&``, ``<`` and ``>`` are escaped and the run's URL is appended as a
``<url|label>`` link; it is one paragraph. ``event`` is one of :data:`EVENTS`. ``task_key`` is present on task events; ``failure`` on failure events when
an attempt error is known; ``url`` when the notifier knows the Jupyter server's ``base_url``.

SMTP settings come only from the environment (:meth:`SmtpConfig.from_env`) or from the code that builds the
notifier, never from job files: a job file names recipients, not servers or credentials. Passwords are never
logged, and webhook URLs (which often embed a secret token, as Slack's do) are logged by scheme and host only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import tenacity

from jupyter_orchestrate.models import (
    Destination,
    Job,
    Notifications,
    Run,
    RunStatus,
    TaskRun,
    TaskRunStatus,
    cell_label,
)
from jupyter_orchestrate.schemas.events import EVENT_KINDS, RunStatusEvent, TaskStatusEvent, parse_event

log = logging.getLogger(__name__)

ENV_PREFIX = "JUPYTER_ORCHESTRATE_SMTP_"
DEFAULT_RETRY_BACKOFF_SECONDS = 0.5
DEFAULT_MAX_WORKERS = 4

#: Every value of a message's ``event`` field.
EVENTS = (
    "run_started",
    "run_succeeded",
    "run_failed",
    "run_canceled",
    "run_duration_warning",
    "task_started",
    "task_succeeded",
    "task_failed",
    "task_duration_warning",
)

# http.client, urllib.request and smtplib are imported where a notification is sent: every run has a
# notifier, few jobs configure a destination, and together they cost ~0.025 s of the CLI's start before its
# first task (issue 15). ssl and email are imported there too, though asyncio and importlib.metadata load them.


def delivery_errors() -> tuple[type[Exception], ...]:
    """What a failed webhook or email try raises (``smtplib.SMTPException`` and ``urllib.error.URLError`` are
    ``OSError``\\ s). Other exceptions are retried too but logged with their traceback: they are bugs."""
    import http.client

    return (OSError, http.client.HTTPException, ValueError)


_TASK_FAILED = (TaskRunStatus.failed.value, TaskRunStatus.timed_out.value)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# -- configuration ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmtpConfig:
    """How to reach the SMTP server that sends notification emails.

    Fields:
        host: SMTP server host name; None disables email (a warning is logged instead of sending).
        port: TCP port. 465 means implicit TLS (``smtplib.SMTP_SSL``); any other port uses ``smtplib.SMTP``.
        user: login user name; None sends without authenticating.
        password: login password. Never logged and left out of ``repr``.
        from_addr: the ``From`` address; default ``user`` if it looks like an address, else
            ``jupyter-orchestrate@localhost``.
        starttls: upgrade a plain connection with STARTTLS before logging in (ignored on port 465).
    """

    host: str | None = None
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    from_addr: str | None = None
    starttls: bool = False

    @property
    def enabled(self) -> bool:
        """True when a host is configured, i.e. email can be sent."""
        return bool(self.host)

    @property
    def sender(self) -> str:
        """The ``From`` address actually used."""
        if self.from_addr:
            return self.from_addr
        if self.user and "@" in self.user:
            return self.user
        return "jupyter-orchestrate@localhost"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SmtpConfig:
        """Read the configuration from environment variables (``os.environ`` unless ``environ`` is given).

        Variables: ``JUPYTER_ORCHESTRATE_SMTP_HOST``, ``..._PORT`` (default 587 when ``..._STARTTLS`` is true,
        else 25), ``..._USER``, ``..._PASSWORD``, ``..._FROM``, ``..._STARTTLS`` (``1/true/yes/on`` or
        ``0/false/no/off``; default true when the port is 587). Without ``..._HOST`` the result is disabled.

        Raises:
            ValueError: ``..._PORT`` is not an integer or ``..._STARTTLS`` is not a boolean word.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value.strip() if value is not None and value.strip() else None

        starttls_text = get("STARTTLS")
        starttls: bool | None = None
        if starttls_text is not None:
            lowered = starttls_text.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(f"{ENV_PREFIX}STARTTLS must be true or false, not {starttls_text!r}")
            starttls = lowered in _TRUE
        port_text = get("PORT")
        if port_text is not None:
            try:
                port = int(port_text)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}PORT must be an integer, not {port_text!r}") from None
        else:
            port = 587 if starttls else 25
        if starttls is None:
            starttls = port == 587
        return cls(
            host=get("HOST"),
            port=port,
            user=get("USER"),
            password=env.get(ENV_PREFIX + "PASSWORD") or None,
            from_addr=get("FROM"),
            starttls=starttls,
        )


# -- messages --------------------------------------------------------------------------------------------------
def _seconds(value: float) -> str:
    """A duration for humans: ``0.2 s``, ``45 s``, ``12 min``, ``1.5 h``."""
    if value < 60:
        return f"{value:g} s"
    if value < 3600:
        return f"{value / 60:.3g} min"
    return f"{value / 3600:.3g} h"


def run_url(base_url: str | None, run_id: int) -> str | None:
    """The JupyterLab link that opens the run in the sidebar: ``<base_url>lab?orchestrate-run=<run_id>``.

    ``base_url`` is the Jupyter server's public URL (``http://host:8888/`` or with a base path); a missing
    trailing slash is added. None when ``base_url`` is None or empty.
    """
    if not base_url:
        return None
    if not base_url.endswith("/"):
        base_url += "/"
    return f"{base_url}lab?orchestrate-run={run_id}"


def failure_details(task_run: TaskRun) -> dict[str, Any] | None:
    """The ``failure`` field for a task run: its last attempt's error, or None when it has none.

    Returns: ``{"task_key", "cell_index", "cell_source", "ename", "evalue"}``; ``cell_index`` is 0-based in
    the input notebook (None for the injected-parameters cell or an error outside cells).
    """
    attempt = task_run.last_attempt
    if attempt is None or attempt.error is None:
        return None
    error = attempt.error
    return {
        "task_key": task_run.task_key,
        "cell_index": error.cell_index,
        "cell_source": error.cell_source,
        "ename": error.ename,
        "evalue": error.evalue,
    }


def first_failure(run: Run) -> dict[str, Any] | None:
    """The failure to report for a run: the first task run (in the run's order) that ended ``failed`` or
    ``timed_out`` with a recorded error; else the first unsuccessful one with an error (e.g. ``canceled``);
    else None (for instance when the orchestrator died)."""
    unsuccessful = [t for t in run.task_runs if t.status.is_failure]
    for candidates in ([t for t in unsuccessful if t.status.value in _TASK_FAILED], unsuccessful):
        for task_run in candidates:
            details = failure_details(task_run)
            if details is not None:
                return details
    return None


def describe_error(failure: dict[str, Any]) -> str:
    """Where and what: `` in cell 3: ValueError: bad row`` (cell numbers are 1-based; no cell part when the
    error is not in a cell of the input notebook)."""
    where = f" in {cell_label(failure['cell_index'])}" if failure.get("cell_index") is not None else ""
    evalue = failure.get("evalue") or ""
    error = f"{failure['ename']}: {evalue}" if evalue else str(failure["ename"])
    return f"{where}: {error}"


def describe_failure(failure: dict[str, Any]) -> str:
    """One sentence fragment: ``task load failed in cell 3: ValueError: bad row``."""
    return f"task {failure['task_key']} failed{describe_error(failure)}"


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's message format reserves (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_unescape(text: str) -> str:
    """Undo :func:`slack_escape` (for email bodies)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _one_line(text: str, limit: int = 500) -> str:
    """``text`` as one line (whitespace collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def build_message(
    event: str,
    run: Run,
    *,
    base_url: str | None = None,
    task_key: str | None = None,
    threshold_seconds: float | None = None,
) -> dict[str, Any]:
    """The notification for ``event`` (one of :data:`EVENTS`) about ``run`` (as the store returns it).

    Args:
        task_key: the task of a ``task_*`` event.
        threshold_seconds: the ``duration_warning_seconds`` of a ``*_duration_warning`` event.

    Returns: the message dict described in the module docstring; ``text`` is one Slack-compatible paragraph.

    Raises:
        ValueError: unknown ``event``. KeyError: ``task_key`` is not a task run of ``run``.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    subject = f"Run {run.run_id} of job {run.job_name}"
    message: dict[str, Any] = {
        "event": event,
        "run_id": run.run_id,
        "job": run.job_name,
        "status": run.status.value,
    }
    failure: dict[str, Any] | None = None
    status = run.status.value
    reason = run.status_reason
    if event.startswith("task_"):
        if task_key is None:
            raise ValueError(f"{event} needs a task_key")
        task_run = run.task_run(task_key)
        status, reason = task_run.status.value, task_run.status_reason
        message.update(task_key=task_key, status=status)
        subject = f"Task {task_key} of run {run.run_id} of job {run.job_name}"
        if event == "task_failed":
            failure = failure_details(task_run)
    elif event in ("run_failed", "run_canceled"):
        failure = first_failure(run)
    if reason:
        message["reason"] = reason

    if event in ("run_started", "task_started"):
        text = f"{subject} started."
    elif event in ("run_succeeded", "task_succeeded"):
        took = run.duration_seconds if event == "run_succeeded" else run.task_run(task_key).duration_seconds  # type: ignore[arg-type]
        text = f"{subject} succeeded" + (f" in {_seconds(took)}." if took is not None else ".")
    elif event.endswith("_duration_warning"):
        limit = f" after {_seconds(threshold_seconds)}" if threshold_seconds is not None else ""
        text = f"{subject} is still {status}{limit} (duration warning)."
    else:  # run_failed, run_canceled, task_failed
        verb = {"run_canceled": "was canceled", "task_failed": status.replace("_", " ")}.get(event, "failed")
        if failure is not None and event == "task_failed":
            text = _sentence(f"{subject} {verb}{describe_error(failure)}")
        elif failure is not None:
            text = _sentence(f"{subject} {verb}: {describe_failure(failure)}")
        elif reason:
            text = _sentence(f"{subject} {verb}: {reason}")
        else:
            text = f"{subject} {verb}."
    if failure is not None:
        message["failure"] = failure
    text = slack_escape(_one_line(text, 3000))
    url = run_url(base_url, run.run_id)
    if url:
        message["url"] = url
        text += f" <{url}|Open the run in JupyterLab>"
    message["text"] = text
    return message


def _safe_url(url: str) -> str:
    """``scheme://host`` of a webhook URL, for logs (paths and queries often hold secret tokens)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


# -- the notifier ----------------------------------------------------------------------------------------------
class SnapshotStore(Protocol):
    """What a :class:`Notifier` needs of the store: the job definition a run was started (or repaired) with."""

    def snapshot(self, run_id: int) -> Job:
        """The job snapshot of run ``run_id``."""
        ...


class NotifierService(Protocol):
    """What a :class:`Notifier` needs of :class:`~.service.OrchestrateService`."""

    @property
    def store(self) -> SnapshotStore:
        """The service's store."""
        ...

    def get_run(self, run_id: int) -> Run:
        """Run ``run_id`` as the store has it now, with its task runs and attempts."""
        ...


@dataclass
class _Delivery:
    destination: Destination
    message: dict[str, Any]


def _sleep(seconds: float) -> None:
    """The backoff between tries (``time.sleep`` looked up when called, so tests can replace it)."""
    time.sleep(seconds)


def _abandon_at_exit(ref: weakref.ReferenceType[Notifier]) -> None:
    notifier = ref()
    if notifier is not None:
        notifier._abandon()


class Notifier:
    """Sends job and task notifications for the runs of a service; a service listener.

    Args:
        service_like: anything with ``get_run(run_id) -> Run`` and ``store.snapshot(run_id) -> Job``
            (:class:`NotifierService`; an :class:`~.service.OrchestrateService`).
        base_url: the Jupyter server's public URL; when given, messages carry a ``url`` to the run.
        smtp: SMTP settings; None reads them from the environment (:meth:`SmtpConfig.from_env`). Pass
            ``SmtpConfig()`` to disable email explicitly.
        clock: monotonic clock in seconds, used to time duration warnings from the moment the event arrived.
        max_workers: delivery threads at most (created on demand).
        retry_backoff_seconds: a failed webhook/email try is retried after ``retry_backoff_seconds * 2**n``
            seconds (n = 0 for the first retry).

    Threads: a one-thread dispatch executor and a delivery :class:`~concurrent.futures.ThreadPoolExecutor` of
    up to ``max_workers`` threads, both started on first use. Call :meth:`close` at shutdown to give pending
    deliveries a chance to finish. Each try is bounded by the destination's ``timeout_seconds``; when
    :meth:`close` times out, or the interpreter exits without it, deliveries not started yet are dropped and
    the ones in flight stop after their current try, so a hanging endpoint delays exit by one try at most
    (plus a backoff sleep in progress).

    Usage::

        notifier = Notifier(service, base_url="http://localhost:8888/")
        service.listeners.append(notifier)
        ...
        notifier.close(timeout=5)
    """

    def __init__(
        self,
        service_like: NotifierService,
        *,
        base_url: str | None = None,
        smtp: SmtpConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_workers: int = DEFAULT_MAX_WORKERS,
        retry_backoff_seconds: float = DEFAULT_RETRY_BACKOFF_SECONDS,
    ):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.service: NotifierService = service_like
        self.base_url = base_url
        self.smtp = smtp if smtp is not None else SmtpConfig.from_env()
        self.clock = clock
        self.max_workers = max_workers
        self.retry_backoff_seconds = retry_backoff_seconds
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # queued events + queued or in-flight deliveries
        self._closed = False
        self._abandoned = threading.Event()  # set: no new tries (close timed out, or the interpreter exits)
        # one dispatch thread keeps events in order; the dispatch state below is only touched by it
        self._dispatcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orchestrate-notify-dispatch")
        self._deliveries = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="orchestrate-notify"
        )
        # The pools' threads are joined at interpreter exit after they ran everything queued: abandon first,
        # through the hook concurrent.futures itself uses (CPython >= 3.9; its hooks run last-in first-out).
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            try:
                register(_abandon_at_exit, weakref.ref(self))
            except RuntimeError:  # made while the interpreter shuts down: nothing left to protect
                pass
        # dispatch-thread state
        self._snapshots: dict[int, Job] = {}
        self._timers: dict[tuple[int, str | None], threading.Timer] = {}
        self._task_status: dict[tuple[int, str], str] = {}

    # -- listener --------------------------------------------------------------------------------------------
    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        """Take one runner event (``run_status`` or ``task_status``; others are ignored) without blocking.

        The event is queued with the current ``clock()`` time; reading the store, building messages and
        delivering them happen in background threads. Never raises for a well-formed event; events after
        :meth:`close` are dropped.
        """
        if kind not in ("run_status", "task_status"):
            return
        self._enqueue_event(kind, dict(payload), self.clock())

    def _enqueue_event(self, kind: str, payload: dict[str, Any], at: float) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending += 1
        self._track(self._dispatcher, f"{kind} event", self._dispatch_safely, kind, payload, at)

    def _track(
        self, pool: ThreadPoolExecutor, what: str, fn: Callable[..., None], *args: Any
    ) -> Future[None] | None:
        """Submit ``fn(*args)`` to ``pool``, already counted in ``_pending``; uncounted when it ends, fails
        or is cancelled. None (and a log line) when the pool no longer takes work."""
        try:
            future = pool.submit(fn, *args)
        except RuntimeError:  # shut down by close() or by the interpreter's exit
            log.warning("notification %s dropped: the notifier is shut down", what)
            self._done()
            return None
        future.add_done_callback(lambda _: self._done())
        return future

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    # -- waiting and shutdown --------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is handled and every delivery has finished (succeeded or given up).

        Args:
            timeout: seconds to wait at most; None waits without limit.

        Returns: True if nothing is pending any more, False on timeout. Duration-warning timers that have not
        fired yet are not pending.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Stop taking events, cancel duration-warning timers, and wait for pending deliveries.

        Args:
            timeout: seconds to wait for pending deliveries at most (None: without limit). After it,
                deliveries not started are dropped and those in flight end after their current try (each
                bounded by its ``timeout_seconds``) without further retries.

        Returns: True if every pending delivery finished in time. Calling it again is harmless.
        """
        with self._lock:
            self._closed = True
            timers = list(self._timers.values())
        for timer in timers:
            timer.cancel()
        finished = self.flush(timeout)
        if not finished:
            log.warning("notifications still pending after %s s are given up", timeout)
            self._abandon()
        self._dispatcher.shutdown(wait=False)
        self._deliveries.shutdown(wait=False)
        return finished

    def _abandon(self) -> None:
        """No new tries: drop queued events and deliveries, end retries after the try in flight."""
        self._abandoned.set()
        self._dispatcher.shutdown(wait=False, cancel_futures=True)
        self._deliveries.shutdown(wait=False, cancel_futures=True)

    # -- dispatch thread -------------------------------------------------------------------------------------
    def _dispatch_safely(self, kind: str, payload: dict[str, Any], at: float) -> None:
        try:
            self._dispatch(kind, payload, at)
        except Exception:  # a store or message problem loses this event's notifications, not the next
            log.exception(
                "cannot build notifications for %s %s of run %s",
                kind,
                payload.get("status"),
                payload.get("run_id"),
            )

    def _snapshot(self, run_id: int, refresh: bool = False) -> Job:
        if refresh or run_id not in self._snapshots:
            self._snapshots[run_id] = self.service.store.snapshot(run_id)
        return self._snapshots[run_id]

    def _dispatch(self, kind: str, payload: dict[str, Any], at: float) -> None:
        if kind in EVENT_KINDS:
            event = parse_event(kind, payload)
            if isinstance(event, RunStatusEvent):
                self._on_run_status(event.run_id, event.status.value, at)
            elif isinstance(event, TaskStatusEvent):
                self._on_task_status(event.run_id, event.task_key, event.status.value, at)
        elif kind == "duration_warning":  # the notifier's own timers (not a run event)
            self._on_duration_warning(payload["run_id"], payload.get("task_key"), payload["threshold"])

    def _on_run_status(self, run_id: int, status: str | None, at: float) -> None:
        if status == RunStatus.running.value:
            job = self._snapshot(run_id, refresh=True)  # a repair may have changed the definition
            notifications = job.notifications
            if notifications is None:
                return
            self._notify(notifications.on_start, "run_started", run_id)
            self._start_timer(run_id, None, notifications, at)
            return
        if status not in (RunStatus.succeeded.value, RunStatus.failed.value, RunStatus.canceled.value):
            return  # canceling / queued
        self._cancel_timers(run_id)
        job = self._snapshot(run_id)
        for key in [k for k in self._task_status if k[0] == run_id]:
            del self._task_status[key]
        self._snapshots.pop(run_id, None)
        notifications = job.notifications
        if notifications is None:
            return
        if status == RunStatus.succeeded.value:
            self._notify(notifications.on_success, "run_succeeded", run_id)
        else:
            event = "run_failed" if status == RunStatus.failed.value else "run_canceled"
            self._notify(notifications.on_failure, event, run_id)

    def _on_task_status(self, run_id: int, task_key: str, status: str | None, at: float) -> None:
        previous = self._task_status.get((run_id, task_key))
        self._task_status[(run_id, task_key)] = status or ""
        try:
            notifications = self._snapshot(run_id).task(task_key).notifications
        except KeyError:
            return
        if status == TaskRunStatus.running.value:
            if previous == TaskRunStatus.up_for_retry.value:
                return  # a retry of a task run already announced
            if notifications is not None:
                self._notify(notifications.on_start, "task_started", run_id, task_key)
                self._start_timer(run_id, task_key, notifications, at)
            return
        if status is None or not TaskRunStatus(status).is_terminal:
            return
        self._cancel_timer((run_id, task_key))
        if notifications is None:
            return
        if status == TaskRunStatus.succeeded.value:
            self._notify(notifications.on_success, "task_succeeded", run_id, task_key)
        elif status in _TASK_FAILED:
            self._notify(notifications.on_failure, "task_failed", run_id, task_key)

    def _on_duration_warning(self, run_id: int, task_key: str | None, threshold: float) -> None:
        key = (run_id, task_key)
        with self._lock:
            if self._timers.pop(key, None) is None:
                return  # the run or task finished before the warning could be handled
        run = self.service.get_run(run_id)
        if task_key is None:
            if run.status.is_terminal:
                return
            notifications = self._snapshot(run_id).notifications
        else:
            if run.task_run(task_key).status.is_terminal:
                return
            notifications = self._snapshot(run_id).task(task_key).notifications
        if notifications is not None:
            event = "run_duration_warning" if task_key is None else "task_duration_warning"
            self._notify(
                notifications.on_duration_warning, event, run_id, task_key, threshold=threshold, run=run
            )

    # -- duration timers -------------------------------------------------------------------------------------
    def _start_timer(
        self, run_id: int, task_key: str | None, notifications: Notifications, at: float
    ) -> None:
        threshold = notifications.duration_warning_seconds
        if threshold is None or not notifications.on_duration_warning:
            return
        key = (run_id, task_key)
        delay = max(threshold - (self.clock() - at), 0.0)
        timer = threading.Timer(
            delay,
            self._enqueue_event,
            args=("duration_warning", {"run_id": run_id, "task_key": task_key, "threshold": threshold}, at),
        )
        timer.daemon = True
        timer.name = f"orchestrate-notify-timer-{run_id}" + (f"-{task_key}" if task_key else "")
        with self._lock:
            if self._closed:
                return
            old = self._timers.pop(key, None)
            self._timers[key] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _cancel_timer(self, key: tuple[int, str | None]) -> None:
        with self._lock:
            timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _cancel_timers(self, run_id: int) -> None:
        with self._lock:
            keys = [k for k in self._timers if k[0] == run_id]
            timers = [self._timers.pop(k) for k in keys]
        for timer in timers:
            timer.cancel()

    # -- delivery --------------------------------------------------------------------------------------------
    def _notify(
        self,
        destinations: list[Destination],
        event: str,
        run_id: int,
        task_key: str | None = None,
        *,
        threshold: float | None = None,
        run: Run | None = None,
    ) -> None:
        if not destinations:
            return
        run = run or self.service.get_run(run_id)
        message = build_message(
            event, run, base_url=self.base_url, task_key=task_key, threshold_seconds=threshold
        )
        for destination in destinations:
            self._submit(_Delivery(destination, message))

    def _submit(self, delivery: _Delivery) -> None:
        with self._lock:
            self._pending += 1
        what = f"{delivery.message['event']} of run {delivery.message['run_id']}"
        self._track(self._deliveries, what, self._deliver_safely, delivery)

    def _deliver_safely(self, delivery: _Delivery) -> None:
        try:
            self.deliver(delivery.destination, delivery.message)
        except Exception:  # deliver logs its own failures; this is a bug guard
            log.exception("notification delivery crashed")

    def deliver(self, destination: Destination, message: dict[str, Any]) -> None:
        """Send ``message`` to ``destination`` now, in the calling thread (the delivery threads call this).

        A webhook and an email of the same destination are independent; each gets ``1 + retries`` tries of
        at most ``timeout_seconds`` each, with exponential backoff between them (``retry_backoff_seconds *
        2**n`` before retry n + 1). A final failure is logged as a warning, never raised.
        """
        url = destination.webhook
        if url:
            self._with_retries(
                destination,
                f"webhook {_safe_url(url)}",
                lambda: self.post_webhook(url, message, destination.timeout_seconds),
                message,
            )
        if destination.email:
            if not self.smtp.enabled:
                log.warning(
                    "not emailing %s about %s of run %s: no SMTP host is configured (set %sHOST)",
                    ", ".join(destination.email),
                    message["event"],
                    message["run_id"],
                    ENV_PREFIX,
                )
            else:
                recipients = list(destination.email)
                self._with_retries(
                    destination,
                    f"email to {', '.join(recipients)}",
                    lambda: self.send_email(recipients, message, destination.timeout_seconds),
                    message,
                )

    def _with_retries(
        self, destination: Destination, what: str, send: Callable[[], None], message: dict[str, Any]
    ) -> None:
        """Call ``send`` up to ``destination.retries + 1`` times until it returns; log the final failure.

        Every exception is retried the same way (network, HTTP status and SMTP errors alike); one that is not
        a :func:`delivery_errors` one is logged with its traceback. Tries stop early once the notifier is
        abandoned (:meth:`close` timed out, or the interpreter exits).
        """
        tries = destination.retries + 1

        def retrying_after(state: tenacity.RetryCallState) -> None:
            error = _describe_error(_failure(state))
            log.info(
                "notification %s failed (try %d of %d): %s; retrying",
                what,
                state.attempt_number,
                tries,
                error,
            )

        given_up: list[tenacity.RetryCallState] = []
        tenacity.Retrying(
            stop=tenacity.stop_after_attempt(tries) | tenacity.stop_when_event_set(self._abandoned),
            wait=tenacity.wait_exponential(multiplier=self.retry_backoff_seconds, exp_base=2, min=0),
            sleep=_sleep,
            before_sleep=retrying_after,
            retry_error_callback=given_up.append,
        )(send)
        if not given_up:
            return
        state = given_up[0]
        exc = _failure(state)
        log.warning(
            "notification %s of run %s (%s) failed after %d tries: %s",
            what,
            message["run_id"],
            message["event"],
            state.attempt_number,
            _describe_error(exc),
            exc_info=None if isinstance(exc, delivery_errors()) else exc,
        )

    @staticmethod
    def post_webhook(url: str, message: dict[str, Any], timeout: float) -> None:
        """POST ``message`` as JSON to ``url``.

        Args:
            timeout: seconds for connecting and for each read.

        Raises:
            ValueError: the URL is not http(s). urllib.error.URLError / HTTPError (status >= 400),
            TimeoutError, OSError: the try failed.
        """
        import urllib.request

        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("webhook URLs must be http or https")
        body = json.dumps(message).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "jupyter-orchestrate"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # the scheme is checked above
            response.read()

    def send_email(self, recipients: list[str], message: dict[str, Any], timeout: float) -> None:
        """Email ``message`` to ``recipients`` through the configured SMTP server.

        The subject is the start of ``text``; the body is ``text`` (which already ends with the run's URL when
        known). Port 465 uses implicit TLS; otherwise STARTTLS when configured; login when a user is set.

        Raises:
            smtplib.SMTPException, OSError: the try failed. RuntimeError: SMTP is not configured.
        """
        import smtplib
        import ssl
        from email.message import EmailMessage

        config = self.smtp
        host = config.host
        if not host:
            raise RuntimeError("no SMTP host is configured")
        email = EmailMessage()
        text = message["text"]
        if message.get("url"):
            text = text.split(" <" + message["url"])[0]  # the Slack link markup; the URL goes on its own line
        text = slack_unescape(text)
        email["Subject"] = _one_line(text.split(": ")[0].rstrip("."), 150)
        email["From"] = config.sender
        email["To"] = ", ".join(recipients)
        email.set_content(text + ("\n\n" + message["url"] if message.get("url") else "") + "\n")
        context = ssl.create_default_context()
        if config.port == 465:
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, config.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, config.port, timeout=timeout)
        with client:
            if config.starttls and config.port != 465:
                client.starttls(context=context)
            if config.user:
                client.login(config.user, config.password or "")
            client.send_message(email, from_addr=config.sender, to_addrs=recipients)


def _failure(state: tenacity.RetryCallState) -> BaseException:
    """The exception of the try that ``state`` describes (tenacity only calls back for failed tries)."""
    assert state.outcome is not None and state.outcome.failed
    exc = state.outcome.exception()
    assert exc is not None
    return exc


def _describe_error(exc: BaseException) -> str:
    """A log-safe description of a delivery error (no URLs, which may hold tokens; no credentials)."""
    import smtplib
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    return f"{type(exc).__name__}: {exc}"
