"""DaskExecutor: each attempt is a task on a Dask ``distributed`` cluster (scale-out, GPU nodes).

The attempt runs on a worker as :func:`~.dask_remote.run_attempt` (its kernel starts there, papermill executes
there). The orchestrator keeps the state home: it sends the input notebook and the run context with the task,
receives the worker's progress through a ``distributed.Queue`` while the attempt runs, and writes the executed
notebook and the attempt log it gets back into the state home as a local attempt would have written them.

Semantics (issue 16, after Dagster's dask executor and Prefect's DaskTaskRunner):

- Without a scheduler address (``scheduler=None`` and no ``JUPYTER_ORCHESTRATE_DASK_SCHEDULER``), a
  ``LocalCluster`` of processes with one thread each is started for the executor and closed with it.
- Task ``resources`` are passed to ``client.submit(resources=...)``: the attempt waits for a worker that has them.
- A worker that leaves the cluster while it runs an attempt fails the attempt ``WorkerDied`` (the task's retry
  policy applies). Each attempt executes at most once: a LocalCluster does not reschedule it
  (``allowed-failures: 0``), and on another scheduler a second copy stops as soon as it starts.
- The orchestrator's own environment stays here: the kernel gets the worker's environment plus the task's
  variables (and only their secret values travel, to be redacted there).
- :meth:`kill` (timeout, cancel) sets the attempt's stop event; the task kills the kernel on its worker.
- Kept kernels and resume need the local executor (a kernel kept on a remote worker could not be reached by the
  CLI's console command): a resumed attempt is refused, and failed kernels are not kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from jupyter_orchestrate.errors import ExecutorUnavailable
from jupyter_orchestrate.executors.base import AttemptResult, AttemptSpec, ExecutorEvent, TaskExecutor
from jupyter_orchestrate.executors.dask_remote import HEARTBEAT_SECONDS, run_attempt
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, CellTiming, ResultStatus
from jupyter_orchestrate.schemas.messages import CellTimed, Finished, KernelStarted, Progress

#: The environment variable naming the Dask scheduler when none is given (``tcp://host:8786``).
DASK_SCHEDULER_ENV = "JUPYTER_ORCHESTRATE_DASK_SCHEDULER"
#: Seconds :meth:`DaskExecutor.kill` waits for the task to report its kernel stopped.
KILL_WAIT_SECONDS = 15.0
#: Seconds between checks that the workers running attempts are still in the cluster.
WORKER_CHECK_SECONDS = 1.0
INSTALL_HINT = 'the dask executor needs the distributed package: pip install "jupyter-orchestrate[dask]"'
log = logging.getLogger(__name__)


def scheduler_address(scheduler: str | None) -> str | None:
    """The Dask scheduler to use: ``scheduler``, else ``JUPYTER_ORCHESTRATE_DASK_SCHEDULER``, else None (start
    a LocalCluster)."""
    return scheduler or os.environ.get(DASK_SCHEDULER_ENV) or None


@dataclass(eq=False)
class DaskHandle:
    """An attempt on the cluster: its spec, its Dask future once started, and where it runs."""

    spec: AttemptSpec
    attempt_id: str
    future: Any = None
    done: bool = False
    where: dict[str, Any] | None = None
    timings_delivered: int = 0  # CellTimed messages wait() has handed on (the rest come with the result)
    kernel_delivered: bool = False
    # a remote kernel and worker are not processes of this machine: recovery must never signal their pids
    kernel_pid: None = None
    worker_pid: None = None


class DaskExecutor(TaskExecutor):
    """Runs attempts on a Dask cluster (see the module docstring). Not thread-safe: one runner drives it.

    Args:
        scheduler: the scheduler's address; default :func:`scheduler_address` (None: a LocalCluster).
        n_workers: workers of the LocalCluster started when there is no scheduler (default: CPU cores).
        connect_timeout: seconds to wait for the scheduler.

    Raises:
        ExecutorUnavailable: ``distributed`` is not installed, or the scheduler cannot be reached.
    """

    def __init__(
        self, scheduler: str | None = None, *, n_workers: int | None = None, connect_timeout: float = 30.0
    ) -> None:
        try:
            import dask as dask_package
            import distributed as distributed_package
        except ImportError as exc:
            raise ExecutorUnavailable(INSTALL_HINT) from exc
        dask: Any = dask_package  # untyped packages
        distributed: Any = distributed_package
        self._distributed = distributed
        self._cluster: Any = None
        address = scheduler_address(scheduler)
        if address is None:
            # each attempt executes at most once: a worker's death fails it (our retries), Dask does not rerun it
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = distributed.LocalCluster(
                    n_workers=n_workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            address = self._cluster.scheduler_address
        self.address: str = address
        try:
            self._client: Any = distributed.Client(address, set_as_default=False, timeout=connect_timeout)
        except Exception as exc:
            self._close_cluster()
            raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        self._id = uuid.uuid4().hex
        self._queue_name = f"orchestrate-messages-{self._id}"
        try:
            self._messages: Any = distributed.Queue(self._queue_name, client=self._client)
            self._alive: Any = distributed.Variable(f"orchestrate-alive-{self._id}", client=self._client)
            self._alive.set(time.time())
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._client.close()
            self._close_cluster()
            raise ExecutorUnavailable(f"the Dask scheduler at {address} does not answer: {exc}") from exc
        # (what, handle, detail) from the relay and watch threads and the futures' callbacks; None: a wake
        self._events: queue.SimpleQueue[tuple[str, DaskHandle, Any] | None] = queue.SimpleQueue()
        self._handles: dict[str, DaskHandle] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._relay, name="orchestrate-dask-relay", daemon=True).start()
        threading.Thread(target=self._watch, name="orchestrate-dask-watch", daemon=True).start()

    # -- TaskExecutor ------------------------------------------------------------------------------------
    def prepare(self, spec: AttemptSpec) -> DaskHandle:
        """A handle only: the kernel starts on the worker the task lands on, once it is submitted."""
        return DaskHandle(spec, f"{spec.run_id}-{spec.task_key}-{spec.attempt_number}-{uuid.uuid4().hex[:8]}")

    def start(self, handle: DaskHandle, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        spec = handle.spec
        if spec.resume is not None:
            self._finish(
                handle,
                _error_result(
                    AttemptErrorKind.launch_error,
                    "ResumeNotSupported",
                    "a resume executes in a kernel kept on this machine; repair from the top on the dask "
                    "executor, or resume with the local executor",
                ),
            )
            return
        try:
            with open(spec.input_path, "rb") as f:
                notebook = f.read()
        except OSError as exc:
            self._finish(handle, _error_result(AttemptErrorKind.launch_error, type(exc).__name__, str(exc)))
            return
        if self._cluster is not None and spec.resources:
            self._finish(
                handle,
                _error_result(
                    AttemptErrorKind.launch_error,
                    "ResourcesUnavailable",
                    f"the task asks for Dask worker resources {spec.resources}, which no worker of a LocalCluster "
                    "has: give a scheduler whose workers have them (--dask-scheduler, see docs/scale-out.md)",
                ),
            )
            return
        # the kernel gets the worker's environment: the orchestrator's own (and its secret-named values) stays here
        sent = dataclasses.replace(
            spec,
            base_env=None,
            secrets=[v for n, v in zip(spec.secret_names, spec.secrets, strict=False) if n in spec.env],
        )
        payload = {
            "spec": sent,
            "notebook": notebook,
            "parameters": parameters,
            "context": context,
            "attempt_id": handle.attempt_id,
            "queue": self._queue_name,
            "stop": f"orchestrate-stop-{handle.attempt_id}",
            "alive": f"orchestrate-alive-{self._id}",
        }
        try:
            handle.future = self._client.submit(
                run_attempt,
                payload,
                key=f"orchestrate-attempt-{handle.attempt_id}",
                pure=False,
                resources=spec.resources or None,
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the client gave up reconnecting to the scheduler
            self._finish(
                handle, _worker_died(handle, f"it could not be submitted ({type(exc).__name__}: {exc})")
            )
            return
        with self._lock:
            self._handles[handle.attempt_id] = handle
        handle.future.add_done_callback(lambda _f: self._events.put(("done", handle, None)))

    def wait(self, timeout: float | None) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        try:
            pending = [self._events.get(timeout=timeout)]
        except queue.Empty:
            return events
        while True:
            try:
                pending.append(self._events.get_nowait())
            except queue.Empty:
                break
        for item in pending:
            if item is None:
                continue
            what, handle, detail = item
            if handle.done:
                continue  # news of an attempt already ended (killed, or its worker left)
            if what == "message":
                if isinstance(detail, CellTimed):
                    handle.timings_delivered += 1
                elif isinstance(detail, KernelStarted):
                    handle.kernel_delivered = True
                events.append(ExecutorEvent(handle, detail))
                continue
            if what == "done":
                result, late = self._result_of(handle)
                events.extend(ExecutorEvent(handle, message) for message in late)
            elif what == "left":
                self._stop_task(handle)
                result = _worker_died(handle, "it left the cluster")
            else:  # "finished": could not be submitted
                result = detail
            handle.done = True
            self._forget(handle)
            events.append(ExecutorEvent(handle, Finished(result)))
        return events

    def wake(self) -> None:
        self._events.put(None)

    def kill(self, handle: DaskHandle) -> None:
        """Stop the attempt: its task kills the kernel on the worker and sends back what it had executed, and
        this returns once the task has ended, at most :data:`KILL_WAIT_SECONDS` later. A task still queued for a
        worker is cancelled at once. A worker that does not answer in time keeps its kernel until the task
        sees its stop event or, if the scheduler is lost, its orchestrator's heartbeat go silent."""
        handle.done = True
        if handle.future is not None:
            # not started on a worker yet: nothing to wait for (if it starts now, its stop event ends it)
            wait_seconds = KILL_WAIT_SECONDS if handle.where is not None else 0.0
            self._stop_task(handle, wait_seconds=wait_seconds, keep=True)
            if handle.future.status == "finished":  # what it executed until stopped, as a local attempt keeps
                with contextlib.suppress(Exception):
                    self._save_products(handle, handle.future.result())
            with contextlib.suppress(Exception):
                handle.future.cancel()
        self._forget(handle)

    def discard(self, handle: DaskHandle) -> None:
        self.kill(handle)

    def close(self) -> None:
        with self._lock:
            alive = [h for h in self._handles.values() if not h.done]
        for handle in alive:
            self.kill(handle)
        self._closed.set()
        with contextlib.suppress(Exception):
            self._messages.put(["closed", ""], timeout=5)
        with contextlib.suppress(Exception):  # the scheduler keeps neither our heartbeat nor our queue
            self._alive.delete()
            self._messages.close()
        with contextlib.suppress(Exception):
            self._client.close()
        self._close_cluster()

    # -- internals ---------------------------------------------------------------------------------------
    def _finish(self, handle: DaskHandle, result: AttemptResult) -> None:
        """Report ``result`` for an attempt that was never submitted (delivered by the next :meth:`wait`)."""
        self._events.put(("finished", handle, result))

    def _stop_task(self, handle: DaskHandle, wait_seconds: float = 0.0, keep: bool = False) -> None:
        """Set the attempt's stop event (its task kills the kernel), wait up to ``wait_seconds`` for the task to
        end, and cancel its future (so that Dask does not run it again elsewhere) unless ``keep`` (the caller
        reads its result first)."""
        with contextlib.suppress(Exception):
            self._distributed.Event(f"orchestrate-stop-{handle.attempt_id}", client=self._client).set()
        if wait_seconds > 0:
            with contextlib.suppress(Exception):  # (distributed.wait would need a default client)
                handle.future.result(timeout=wait_seconds)
        if not keep:
            with contextlib.suppress(Exception):
                handle.future.cancel()

    def _result_of(self, handle: DaskHandle) -> tuple[AttemptResult, list[Any]]:
        """The ended task's result, and the messages its relay had not delivered yet (the kernel's start, cell
        timings: the queue may lag the result); its executed notebook, log and task values are written where
        the local executor writes them (the state home, this machine)."""
        try:
            value = handle.future.result()  # done: its callback queued this
        except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost connection, the task's own exception
            name = type(exc).__name__
            if name in ("KilledWorker", "CommClosedError", "CancelledError", "FutureCancelledError"):
                return _worker_died(handle, f"{name}: {exc}"), []
            return _error_result(AttemptErrorKind.internal, name, str(exc)), []
        handle.where = handle.where or value.get("where")
        if value.get("stopped"):
            return _worker_died(handle, "Dask ran its task again after its first worker was lost"), []
        late: list[Any] = []
        if not handle.kernel_delivered and value.get("kernel_ready_time"):
            late.append(KernelStarted(pid=None, create_time=None, ready_time=value["kernel_ready_time"]))
        timings = value.get("timings") or []
        late += [CellTimed(CellTiming.model_validate(t)) for t in timings[handle.timings_delivered :]]
        result: AttemptResult = value["result"]
        try:
            self._save_products(handle, value)
            if result.task_values:
                with open(handle.spec.values_path, "w", encoding="utf-8") as f:
                    json.dump(result.task_values, f)
        except OSError as exc:  # e.g. the disk is full: this attempt fails, the run goes on
            return _error_result(AttemptErrorKind.internal, type(exc).__name__, str(exc)), late
        return result, late

    @staticmethod
    def _save_products(handle: DaskHandle, value: dict[str, Any]) -> None:
        """Write the executed notebook and the log a task sent back where a local attempt writes them."""
        spec = handle.spec
        os.makedirs(os.path.dirname(spec.output_path), exist_ok=True)
        if value.get("notebook") is not None:
            with open(spec.output_path, "wb") as f:
                f.write(value["notebook"])
        with open(spec.log_path, "a", encoding="utf-8") as f:
            f.write(value.get("log") or "")

    def _forget(self, handle: DaskHandle) -> None:
        """The attempt is over: drop it, and its stop events from the scheduler (clearing a distributed Event
        nobody waits on deletes it), so that a long-lived scheduler does not keep one per attempt."""
        with self._lock:
            self._handles.pop(handle.attempt_id, None)
        if handle.future is None:
            return
        for name in (
            f"orchestrate-stop-{handle.attempt_id}",
            f"orchestrate-stop-{handle.attempt_id}-started",
        ):
            with contextlib.suppress(Exception):
                self._distributed.Event(name, client=self._client).clear()

    def _relay(self) -> None:
        """Thread: the workers' messages (plain lists, see :func:`~.dask_remote._relay`) to executor events."""
        while not self._closed.is_set():
            try:
                # no timeout: the scheduler logs every timed-out get as an error; close() puts a last item
                item = self._messages.get()
            except Exception:  # noqa: BLE001 - the client is closing, or the scheduler is gone
                if self._closed.wait(1.0):
                    return
                continue
            kind, attempt_id, *rest = item
            if kind == "closed":
                return
            with self._lock:
                handle = self._handles.get(attempt_id)
            if handle is None:
                continue
            message: Any
            if kind == "where":
                if handle.where is None:
                    handle.where = rest[0]
                elif handle.where != rest[0]:  # Dask moved it after its worker died
                    self._events.put(("left", handle, None))
                continue
            if kind == "kernel_started":
                message = KernelStarted(pid=None, create_time=None, ready_time=rest[0])
            elif kind == "progress":
                message = Progress(cell=rest[0], total=rest[1], cell_index=rest[2])
            elif kind == "cell_timed":
                message = CellTimed(CellTiming.model_validate(rest[0]))
            else:
                continue
            self._events.put(("message", handle, message))

    def _watch(self) -> None:
        """Thread: renew the heartbeat the tasks watch, and fail the attempts whose worker left the cluster."""
        last_beat = 0.0
        while not self._closed.wait(WORKER_CHECK_SECONDS):
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_SECONDS:
                with contextlib.suppress(Exception):
                    self._alive.set(time.time())
                    last_beat = now
            try:
                workers = set(self._client.scheduler_info(n_workers=-1)["workers"])
            except Exception:  # noqa: BLE001 - the scheduler is unreachable for now: try again
                continue
            with self._lock:
                running = [h for h in self._handles.values() if h.where and not h.done]
            for handle in running:
                address = (handle.where or {}).get("dask_worker")
                if address and address not in workers:
                    self._events.put(("left", handle, None))

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None


def _error_result(kind: AttemptErrorKind, ename: str, evalue: str) -> AttemptResult:
    return AttemptResult(
        status=ResultStatus.failed, error=AttemptError(kind=kind, ename=ename, evalue=evalue)
    )


def _worker_died(handle: DaskHandle, detail: str) -> AttemptResult:
    where = handle.where or {}
    at = f" {where['dask_worker']} ({where.get('host')})" if where.get("dask_worker") else ""
    result = _error_result(
        AttemptErrorKind.internal, "WorkerDied", f"the Dask worker{at} running the attempt was lost: {detail}"
    )
    result.environment = dict(where)
    return result
