"""LocalExecutor: each attempt runs in a child process of its own, forked from a forkserver that has
papermill, nbclient and jupyter_client imported already, and executes in a kernel of its own.

Why a forkserver: importing the execution stack costs 0.2-2.3 s per process depending on the environment
(PERFORMANCE.md); a fork of a pre-imported server costs milliseconds, and the child stays a separate process
that can be timed out, cancelled and killed without harming the orchestrator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.reduction
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jupyter_orchestrate.executors import forkserver
from jupyter_orchestrate.executors.base import (
    AttemptResult,
    AttemptSpec,
    ExecutorEvent,
    TaskExecutor,
    kernel_environment,
    kernel_environment_of,
    with_kernel_exit,
)
from jupyter_orchestrate.executors.kernel_pool import KernelKey, KernelPool, PooledKernel
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, ResultStatus
from jupyter_orchestrate.schemas.messages import Finished, Go, KernelStarted, Stop, WorkerMessage
from jupyter_orchestrate.task_values import CONTEXT_ENV

STOP_GRACE_SECONDS = 1.0
PRELAUNCH_MAX = 8  # kernels a CLI run launches before it is recorded, at most
SPAWN_WAIT_SECONDS = 60.0  # how long kill/close wait for a worker's background start (forkserver start-up)
log = logging.getLogger(__name__)


@dataclass(eq=False)
class LocalHandle:
    """A running or prepared attempt: its worker process and pipe, and what it reported."""

    spec: AttemptSpec
    conn: Any
    process: Any = None  # None until the background start (see LocalExecutor.prepare) forked it
    kernel_pid: int | None = None
    kernel_create_time: float | None = None
    started: bool = False
    done: bool = False
    kernel: PooledKernel | None = None  # launched by the executor's pool; None: the worker launches its own
    spawned: threading.Event = field(default_factory=threading.Event)  # the background start is over
    spawn_error: str | None = None  # why the worker could not be started
    canceled: bool = False  # killed or discarded: a pending start does not fork it

    @property
    def worker_pid(self) -> int | None:
        pid: int | None = getattr(self.process, "pid", None)
        return pid


def _attempt_entry(conn: Any, spec: AttemptSpec) -> None:
    """The worker process's target: :func:`~.worker.attempt_main`, imported in the child (the forkserver has
    it loaded), so that the orchestrator never imports papermill (~2 s in a Jupyter environment)."""
    from jupyter_orchestrate.executors.worker import attempt_main

    attempt_main(conn, spec)


class _InheritedFd:
    """A file descriptor handed to a worker: pickled while the forkserver forks it, so the worker gets a copy
    (multiprocessing's ``DupFd``, as for a ``Connection``) and unpickles it as a plain ``int``."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return (_inherited_fd, (multiprocessing.reduction.DupFd(self.fd),))


def _inherited_fd(dup: Any) -> int:
    fd: int = dup.detach()
    return fd


class LocalExecutor(TaskExecutor):
    """Runs attempts as local processes (see the module docstring). Not thread-safe: one runner drives it.

    The forkserver starts in the background on creation, so that its imports overlap job discovery. Each
    attempt's kernel is launched from this process (:mod:`.kernel_pool`) when the attempt is prepared, so it
    boots while the worker forks; the worker attaches to it. Attempts on an interpreter or a requirements
    environment, and attempts whose kernel may be kept after the orchestrator exits, launch their own.

    Args:
        pool: the kernel pool to launch (or take warm) kernels from, e.g. a server's; default: one of its own.
        pooled_kernels_may_be_kept: kernels of the pool may be kept for debugging (a server: kept kernels end
            with it anyway); else an attempt with ``keep_failed_kernel_seconds`` launches its own kernel.
        warm_replacements: after each launch, have the pool warm another kernel of the same settings (a
            server's warm pool: the next run finds one ready).
    """

    def __init__(
        self,
        pool: KernelPool | None = None,
        *,
        pooled_kernels_may_be_kept: bool = False,
        warm_replacements: bool = False,
    ) -> None:
        self._pool = pool or KernelPool(max_idle=PRELAUNCH_MAX)
        self._own_pool = pool is None
        self._warm_replacements = warm_replacements
        self._pooled_kernels_may_be_kept = pooled_kernels_may_be_kept
        self._ctx = forkserver.context()
        self._handles: list[LocalHandle] = []
        self._exiting: list[Any] = []  # workers that reported their end and are shutting their kernel down
        self._events: list[ExecutorEvent] = []
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._warm = forkserver.start_in_background()
        # no thread of its own imports jupyter_client ahead: discovery's kernelspec search imports it on the
        # caller's thread before any launch, and a second importer raced it into traitlets.config's circular
        # imports (_DeadlockError, tests/test_store_concurrency.py under load)
        # prepare() returns at once: kernels are launched on one thread and workers forked on another, so that
        # neither a kernel launch (~0.15 s) nor the forkserver's start-up (~1 s) blocks the run loop
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="orchestrate-kernel-launch")
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="orchestrate-worker-start")

    def _launch_kernel(self, spec: AttemptSpec) -> PooledKernel | None:
        """The attempt's kernel from the pool, launched now (or taken warm); None: the worker launches it."""
        if spec.resume is not None or spec.python or spec.requirements:
            return None
        if spec.keep_failed_kernel_seconds > 0 and not self._pooled_kernels_may_be_kept:
            return None  # it must outlive this process; the worker starts it independent
        key = KernelKey.of(spec.kernel_name, spec.cwd, kernel_environment(spec))
        try:
            kernel = self._pool.launch(key, {CONTEXT_ENV: spec.context_path})
        except Exception:  # an unknown kernelspec, a failed Popen: the worker reports it as the launch error
            log.debug(
                "could not launch the kernel of %s ahead; the worker will", spec.task_key, exc_info=True
            )
            return None
        if self._warm_replacements:
            self._pool.warm(key, 1)  # the next run of these settings finds one ready
        return kernel

    def prelaunch(self, kernel_name: str, cwd: str, env: dict[str, str], marker: str, count: int = 1) -> None:
        """Launch ``count`` kernels for attempts not prepared yet (a run's first tasks, before the run is
        recorded: :func:`~..engine.prelaunch.prelaunch_kernels`); the attempts prepared with these settings take
        them. ``env``: the task's variables; ``marker``: the context variable's value until then."""
        key = KernelKey.of(kernel_name, cwd, kernel_environment_of(None, env))
        self._pool.warm(key, count, {CONTEXT_ENV: marker})

    def prepare(self, spec: AttemptSpec) -> LocalHandle:
        """Begin an attempt and return at once: its kernel is launched and its worker forked in the background.
        ``start`` may come before the worker runs (its ``Go`` waits in the pipe); a worker that cannot be
        started reports as a worker that died (``WorkerDied``, with the reason)."""
        os.makedirs(os.path.dirname(spec.output_path), exist_ok=True)
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        handle = LocalHandle(spec=spec, conn=parent_conn)
        self._handles.append(handle)
        self._launcher.submit(self._launch_then_start, handle, child_conn)
        return handle

    def _launch_then_start(self, handle: LocalHandle, child_conn: Any) -> None:
        """Launcher thread: the attempt's kernel, then its worker's start on the starter thread."""
        try:
            if not handle.canceled:
                kernel = handle.kernel = self._launch_kernel(handle.spec)
                if kernel is not None:
                    handle.kernel_pid, handle.kernel_create_time = (
                        kernel.pid,
                        kernel.attach.kernel_create_time,
                    )
        finally:
            self._starter.submit(self._start_worker, handle, child_conn)

    def _start_worker(self, handle: LocalHandle, child_conn: Any) -> None:
        """Starter thread: fork the attempt's worker from the forkserver (the first waits for its imports)."""
        kernel = handle.kernel
        try:
            if handle.canceled:
                return
            self._warm.join()
            spec = handle.spec
            if kernel is not None:
                assert kernel.output_read_fd is not None
                attach = dataclasses.replace(kernel.attach, output_fd=_InheritedFd(kernel.output_read_fd))
                spec = dataclasses.replace(spec, attach=attach)
            process = self._ctx.Process(
                target=_attempt_entry, args=(child_conn, spec), name=f"attempt-{spec.task_key}", daemon=False
            )
            with forkserver.bare_main():
                process.start()
            handle.process = process
        except Exception as exc:  # e.g. the forkserver could not start: the parent sees the pipe close
            log.warning("could not start the worker of %s", handle.spec.task_key, exc_info=True)
            handle.spawn_error = f"{type(exc).__name__}: {exc}"
        finally:
            child_conn.close()  # the worker holds its own copy: EOF reaches the parent when it ends
            if kernel is not None:
                kernel.close_output()  # likewise the kernel's output pipe
            handle.spawned.set()

    def _end_kernel(self, handle: LocalHandle, result: AttemptResult | None = None) -> None:
        """The attempt of ``handle`` is over: a pooled kernel is shut down, or left to its keeper if kept."""
        kernel = handle.kernel
        if kernel is None:
            return
        error = result.error if result is not None else None
        if error is not None and error.kind == AttemptErrorKind.kernel_died:
            with contextlib.suppress(Exception):  # this process is the kernel's parent: it knows how it ended
                code = kernel.manager.provisioner.process.wait(timeout=STOP_GRACE_SECONDS)
                error.evalue = with_kernel_exit(error.evalue, code)
        self._pool.end(kernel, kept=result is not None and result.kept_kernel is not None)
        handle.kernel = None

    def start(self, handle: LocalHandle, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        handle.started = True
        if not handle.done:
            try:
                handle.conn.send(Go(parameters, context))
                return
            except OSError:
                handle.done = True
                self._end_kernel(handle)
                self._reap(handle)
        self._events.append(self._worker_died(handle))

    @staticmethod
    def _worker_died(handle: LocalHandle) -> ExecutorEvent:
        if handle.process is None:
            evalue = f"the attempt's worker process could not be started: {handle.spawn_error or 'canceled'}"
        else:
            code = handle.process.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
            evalue = f"the attempt's worker process ended ({how}) without a result"
        result = AttemptResult(
            status=ResultStatus.failed,
            error=AttemptError(kind=AttemptErrorKind.internal, ename="WorkerDied", evalue=evalue),
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
                    self._end_kernel(handle, message.result)
                    self._reap(handle)
                    events.append(ExecutorEvent(handle, message))
                    return events
                events.append(ExecutorEvent(handle, message))
        except (EOFError, OSError):
            handle.done = True
            self._end_kernel(handle)
            self._reap(handle)
            if handle.started:
                events.append(self._worker_died(handle))
        return events

    def _reap(self, handle: LocalHandle) -> None:
        """Forget a worker that ended or reported its end. It is not waited for here: after its result it
        shuts its kernel down (~0.2 s), which must not delay the next task; :meth:`close` waits for it."""
        handle.conn.close()
        if handle in self._handles:
            self._handles.remove(handle)
        if handle.process is not None:
            self._exiting.append(handle.process)
        self._exiting = [p for p in self._exiting if p.is_alive()]  # is_alive() reaps the ones that exited

    def kill(self, handle: LocalHandle) -> None:
        handle.canceled = True
        handle.spawned.wait(SPAWN_WAIT_SECONDS)
        process = handle.process
        if not handle.done:
            handle.done = True
            try:
                handle.conn.send(Stop())
            except OSError:
                pass
            if process is not None:
                process.join(timeout=STOP_GRACE_SECONDS)
        for pid in (handle.kernel_pid, handle.worker_pid):
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        if process is not None:
            process.join(timeout=5)  # killed: gone on return, as the interface promises
        self._end_kernel(handle)
        self._reap(handle)

    def discard(self, handle: LocalHandle) -> None:
        self.kill(handle)

    def close(self) -> None:
        for handle in self._handles:
            handle.canceled = True  # pending starts fork nothing
        self._launcher.shutdown(wait=True)
        self._starter.shutdown(wait=True)
        for handle in list(self._handles):
            self.kill(handle)
        deadline = time.monotonic() + 5
        while self._handles and time.monotonic() < deadline:
            time.sleep(0.05)
        for process in self._exiting:
            process.join(timeout=max(deadline - time.monotonic(), 0.1))
        self._exiting = [p for p in self._exiting if p.is_alive()]
        if self._own_pool:
            self._pool.close()
