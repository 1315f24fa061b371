"""What runs on a Dask worker for one attempt of the dask executor (:mod:`.dask_executor`).

:func:`run_attempt` is the Dask task. It checks that the job folder exists on the worker, writes the input
notebook it was sent into a folder of its own under the worker's local directory, and runs the attempt exactly
as the local executor does: :func:`~.worker.attempt_main` in a child process of its own (started with
``subprocess``: a Dask worker is a daemonic process, which ``multiprocessing`` forbids to have children), over a
``multiprocessing`` connection on a socket pair. The worker's messages (kernel ready, cell progress, cell
timings) are relayed to the orchestrator through a ``distributed.Queue`` while the attempt runs; the executed
notebook, the attempt log and the result come back as the task's return value, as data. Nothing is written
to the orchestrator's state home: no shared filesystem is assumed.

Stopping: the orchestrator sets the attempt's ``distributed.Event`` (timeout, cancel, Ctrl-C), and the task
stops the worker, which kills the kernel. The orchestrator renews a ``distributed.Variable`` every
:data:`HEARTBEAT_SECONDS`; when it stops changing for :data:`ORPHAN_SECONDS` (the orchestrator died), the task
stops its attempt too. If the Dask worker itself dies, the socket closes and the attempt's worker kills its
kernel (its watchdog, as for a local attempt whose orchestrator died).

This module is imported on Dask workers and as the child's entry point: it imports ``distributed`` only
inside :func:`run_attempt`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing.connection
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from jupyter_orchestrate.executors.base import AttemptResult, AttemptSpec
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, ResultStatus
from jupyter_orchestrate.schemas.messages import CellTimed, Finished, Go, KernelStarted, Progress, Stop

#: Seconds between the orchestrator's heartbeats (a ``distributed.Variable`` it renews).
HEARTBEAT_SECONDS = 2.0
#: Seconds without a new heartbeat after which a task judges its orchestrator dead and stops its attempt.
ORPHAN_SECONDS = 20.0
#: Seconds between the task's checks of its stop event and of the heartbeat.
POLL_SECONDS = 0.5
#: Seconds the attempt's worker gets to kill its kernel and exit after ``Stop`` before it is killed.
STOP_GRACE_SECONDS = 5.0
#: Executed notebooks and logs larger than this are not sent back whole (bytes; the output cap bounds them).
MAX_RETURN_BYTES = 256 * 1024 * 1024


def _failed(kind: AttemptErrorKind, ename: str, evalue: str, where: dict[str, Any]) -> dict[str, Any]:
    return {
        "result": AttemptResult(
            status=ResultStatus.failed,
            error=AttemptError(kind=kind, ename=ename, evalue=evalue),
            environment=dict(where),
        ),
        "notebook": None,
        "log": "",
        "where": where,
    }


def _read(path: str) -> bytes | None:
    """The file's bytes, or None when it is missing or larger than :data:`MAX_RETURN_BYTES`."""
    try:
        if os.path.getsize(path) > MAX_RETURN_BYTES:
            return None
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _relay(message: Any) -> list[Any] | None:
    """A worker message as plain data for the ``distributed.Queue`` (msgpack-serializable), or None."""
    if isinstance(message, KernelStarted):
        return ["kernel_started", message.ready_time]
    if isinstance(message, Progress):
        return ["progress", message.cell, message.total, message.cell_index]
    if isinstance(message, CellTimed):
        return ["cell_timed", message.timing.model_dump(mode="json")]
    return None


def run_attempt(payload: dict[str, Any]) -> dict[str, Any]:
    """The Dask task of one attempt (see the module docstring).

    Args:
        payload: ``spec`` (:class:`~.base.AttemptSpec`, the orchestrator's paths), ``notebook`` (the input
            notebook's bytes), ``parameters`` and ``context`` (the ``Go`` message), ``attempt_id``, and the names
            of the ``queue`` (messages), ``stop`` event and ``alive`` heartbeat variable.

    Returns: ``{"result": AttemptResult, "notebook": bytes | None, "log": str, "where": {...}}``, or
    ``{"stopped": True, "where": ...}`` when the orchestrator stopped it. ``where`` names the worker
    (``dask_worker`` address, ``host``); the result's ``environment`` carries it too.
    """
    import distributed

    dist: Any = distributed  # untyped package
    worker = dist.get_worker()
    attempt_id = payload["attempt_id"]
    where = {"dask_worker": worker.address, "host": socket.gethostname()}
    messages = dist.Queue(payload["queue"])
    stop = dist.Event(payload["stop"])
    alive = dist.Variable(payload["alive"])
    messages.put(["where", attempt_id, where])
    spec: AttemptSpec = payload["spec"]
    if not os.path.isdir(spec.cwd):
        return _failed(
            AttemptErrorKind.launch_error,
            "JobFolderMissing",
            f"the job folder {spec.cwd} does not exist on Dask worker {worker.address} ({where['host']}): "
            "the workers need the project at the same path (a shared filesystem or a checkout), see "
            "docs/scale-out.md",
            where,
        )
    if stop.is_set():
        return {"stopped": True, "where": where}
    base = os.path.join(worker.local_directory, "jupyter-orchestrate")
    os.makedirs(base, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"run-{spec.run_id}-{spec.task_key}-{spec.attempt_number}-", dir=base)
    try:
        return _run(payload, spec, folder, base, where, messages, stop, alive, attempt_id)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(
    payload: dict[str, Any],
    spec: AttemptSpec,
    folder: str,
    base: str,
    where: dict[str, Any],
    messages: Any,
    stop: Any,
    alive: Any,
    attempt_id: str,
) -> dict[str, Any]:
    name = os.path.basename(spec.input_path)
    local = dataclasses.replace(
        spec,
        input_path=os.path.join(folder, name),
        output_path=os.path.join(folder, "attempt.ipynb"),
        log_path=os.path.join(folder, "attempt.log"),
        context_path=os.path.join(folder, "attempt.context.json"),
        values_path=os.path.join(folder, "attempt.values.json"),
        state_home=base,  # requirements environments are built and cached on this worker
        base_env=None,  # the kernel gets this worker's environment, plus the task's variables
        attach=None,
        keep_failed_kernel_seconds=0.0,
    )
    with open(local.input_path, "wb") as f:
        f.write(payload["notebook"])
    context = {**payload["context"], "values_path": local.values_path}
    ours, theirs = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-m", "jupyter_orchestrate.executors.dask_remote", str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    theirs.close()
    conn = multiprocessing.connection.Connection(ours.detach())
    result: AttemptResult | None = None
    try:
        conn.send(local)
        conn.send(Go(payload["parameters"], context))
        beat, beat_seen = None, time.monotonic()
        next_check = 0.0
        while result is None:
            if conn.poll(POLL_SECONDS):
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                if isinstance(message, Finished):
                    result = message.result
                    break
                relayed = _relay(message)
                if relayed is not None:
                    messages.put([relayed[0], attempt_id, *relayed[1:]])
            now = time.monotonic()
            if now < next_check:
                continue
            next_check = now + POLL_SECONDS
            if stop.is_set():
                _stop(conn, child)
                return {"stopped": True, "where": where}
            with contextlib.suppress(Exception):  # a slow scheduler: judge by the last value seen
                value = alive.get(timeout=POLL_SECONDS)
                if value != beat:
                    beat, beat_seen = value, now
            if now - beat_seen > ORPHAN_SECONDS:
                _stop(conn, child)
                return {"stopped": True, "where": where}
        try:
            child.wait(timeout=30)  # it shuts the kernel down, then exits
        except subprocess.TimeoutExpired:
            child.kill()
    finally:
        conn.close()
        if child.poll() is None:
            child.kill()
            child.wait()
    if result is None:
        code = child.returncode
        return _failed(
            AttemptErrorKind.internal,
            "WorkerDied",
            f"the attempt's worker process on Dask worker {where['dask_worker']} ended (exit code {code}) "
            "without a result",
            where,
        )
    result.environment = {**result.environment, **where}
    return {
        "result": result,
        "notebook": _read(local.output_path),
        "log": (_read(local.log_path) or b"").decode("utf-8", errors="replace"),
        "where": where,
    }


def _stop(conn: Any, child: subprocess.Popen[bytes]) -> None:
    """Have the attempt's worker kill its kernel and exit (``Stop``); kill it if it does not in time."""
    with contextlib.suppress(OSError, ValueError):
        conn.send(Stop())
    try:
        child.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _child_main(fd: int) -> None:
    """The attempt's worker process: receive the spec on the connection, then run it as a local worker."""
    from jupyter_orchestrate.executors.worker import attempt_main

    conn = multiprocessing.connection.Connection(fd)
    spec = conn.recv()
    attempt_main(conn, spec)


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
