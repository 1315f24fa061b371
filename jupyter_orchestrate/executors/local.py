"""LocalExecutor: each attempt runs in a child process of its own, forked from a forkserver that has
papermill, nbclient and jupyter_client imported already, and executes in a kernel of its own.

Why a forkserver: importing the execution stack costs 0.2-2.3 s per process depending on the environment
(PERFORMANCE.md); a fork of a pre-imported server costs milliseconds, and the child stays a separate process
that can be timed out, cancelled and killed without harming the orchestrator.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jupyter_orchestrate.executors.base import AttemptResult, AttemptSpec, ExecutorEvent, TaskExecutor
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, ResultStatus
from jupyter_orchestrate.schemas.messages import Finished, Go, KernelStarted, Stop, WorkerMessage

WORKER_MODULE = "jupyter_orchestrate.executors.worker"
PRELOAD_MODULE = (
    "jupyter_orchestrate.executors.preload"  # imported first: keeps the forkserver's imports lean
)
STOP_GRACE_SECONDS = 1.0
_MAIN_LOCK = threading.Lock()


@dataclass(eq=False)
class LocalHandle:
    """A running or prepared attempt: its worker process and pipe, and what it reported."""

    spec: AttemptSpec
    process: Any
    conn: Any
    kernel_pid: int | None = None
    kernel_create_time: float | None = None
    started: bool = False
    done: bool = False

    @property
    def worker_pid(self) -> int | None:
        pid: int | None = self.process.pid
        return pid


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Hide the parent's ``__main__`` while a worker or the forkserver starts.

    multiprocessing re-runs the parent's main script in each child (to find pickled functions defined there).
    Workers need only this package, and the parent's main may be anything (a user's script, pytest, a
    Jupyter server, a notebook kernel), so they start with an empty main instead.
    """
    with _MAIN_LOCK:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def _attempt_entry(conn: Any, spec: AttemptSpec) -> None:
    """The worker process's target: :func:`~.worker.attempt_main`, imported in the child (the forkserver has
    it loaded), so that the orchestrator never imports papermill (~2 s in a Jupyter environment)."""
    from jupyter_orchestrate.executors.worker import attempt_main

    attempt_main(conn, spec)


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD_MODULE, WORKER_MODULE])
    return ctx


class LocalExecutor(TaskExecutor):
    """Runs attempts as local processes (see the module docstring). Not thread-safe: one runner drives it.

    The forkserver starts in the background on creation, so that its imports overlap job discovery.
    """

    def __init__(self) -> None:
        self._ctx = _context()
        self._handles: list[LocalHandle] = []
        self._events: list[ExecutorEvent] = []
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._warm = threading.Thread(
            target=self._ensure_forkserver, name="orchestrate-forkserver", daemon=True
        )
        self._warm.start()

    @staticmethod
    def _ensure_forkserver() -> None:
        from multiprocessing import forkserver

        with _bare_main():
            forkserver.ensure_running()

    def prepare(self, spec: AttemptSpec) -> LocalHandle:
        self._warm.join()
        os.makedirs(os.path.dirname(spec.output_path), exist_ok=True)
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_attempt_entry, args=(child_conn, spec), name=f"attempt-{spec.task_key}", daemon=False
        )
        with _bare_main():
            process.start()
        child_conn.close()
        handle = LocalHandle(spec=spec, process=process, conn=parent_conn)
        self._handles.append(handle)
        return handle

    def start(self, handle: LocalHandle, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        handle.started = True
        if not handle.done:
            try:
                handle.conn.send(Go(parameters, context))
                return
            except OSError:
                handle.done = True
                self._reap(handle)
        self._events.append(self._worker_died(handle))

    @staticmethod
    def _worker_died(handle: LocalHandle) -> ExecutorEvent:
        code = handle.process.exitcode
        how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        result = AttemptResult(
            status=ResultStatus.failed,
            error=AttemptError(
                kind=AttemptErrorKind.internal,
                ename="WorkerDied",
                evalue=f"the attempt's worker process ended ({how}) without a result",
            ),
        )
        return ExecutorEvent(handle, Finished(result))

    def wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"x")
        except OSError:
            pass

    def wait(self, timeout: float | None) -> list[ExecutorEvent]:
        if self._events:
            queued, self._events = self._events, []
            return queued
        events: list[ExecutorEvent] = []
        by_conn = {h.conn: h for h in self._handles if not h.done}
        ready = multiprocessing.connection.wait([*by_conn, self._wake_r], timeout)
        for conn in ready:
            if conn is self._wake_r:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
                continue
            handle = by_conn[conn]
            events.extend(self._drain(handle))
        return events

    def _drain(self, handle: LocalHandle) -> list[ExecutorEvent]:
        events: list[ExecutorEvent] = []
        try:
            while handle.conn.poll():
                message: WorkerMessage = handle.conn.recv()
                if isinstance(message, KernelStarted):
                    handle.kernel_pid = message.pid
                    handle.kernel_create_time = message.create_time
                elif isinstance(message, Finished):
                    handle.done = True
                    self._reap(handle)
                    events.append(ExecutorEvent(handle, message))
                    return events
                events.append(ExecutorEvent(handle, message))
        except (EOFError, OSError):
            handle.done = True
            self._reap(handle)
            if handle.started:
                events.append(self._worker_died(handle))
        return events

    def _reap(self, handle: LocalHandle) -> None:
        handle.process.join(timeout=5)
        handle.conn.close()
        if handle in self._handles:
            self._handles.remove(handle)

    def kill(self, handle: LocalHandle) -> None:
        if not handle.done:
            handle.done = True
            try:
                handle.conn.send(Stop())
            except OSError:
                pass
            handle.process.join(timeout=STOP_GRACE_SECONDS)
        for pid in (handle.kernel_pid, handle.process.pid):
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        self._reap(handle)

    def discard(self, handle: LocalHandle) -> None:
        self.kill(handle)

    def close(self) -> None:
        for handle in list(self._handles):
            self.kill(handle)
        deadline = time.monotonic() + 5
        while self._handles and time.monotonic() < deadline:
            time.sleep(0.05)
