"""What runs on a Dask worker for one attempt of the dask executor (:mod:`.dask_executor`).

:func:`run_attempt` is the Dask task. It checks that the job folder exists on the worker, writes the input
notebook it was sent into a folder of its own under the worker's local directory, and runs the attempt there
exactly as a local run does: through a :class:`~.local.LocalExecutor` kept by the worker thread (its forkserver
has the execution stack imported, its kernel is launched while the attempt's worker forks). The attempt's
messages (kernel ready, cell progress, cell timings) are relayed to the orchestrator through a
``distributed.Queue`` while it runs; the executed notebook, the attempt log and the result come back as the
task's return value, as data. Nothing is written to the orchestrator's state home: no shared filesystem is
assumed for state.

Stopping: the orchestrator sets the attempt's ``distributed.Event`` (timeout, cancel, Ctrl-C), and the task
kills the attempt (its kernel and its worker). The orchestrator renews a ``distributed.Variable`` every
:data:`HEARTBEAT_SECONDS`; when it stops changing for :data:`ORPHAN_SECONDS` (the orchestrator died), the task
kills its attempt too. If the Dask worker itself dies, the attempt's worker sees its pipe close and kills its
kernel, as a local attempt does when its orchestrator dies.

This module is imported on Dask workers: it imports ``distributed`` only inside :func:`run_attempt`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any

from jupyter_orchestrate.executors.base import AttemptResult, AttemptSpec
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, ResultStatus
from jupyter_orchestrate.schemas.messages import CellTimed, Finished, KernelStarted, Progress

#: Seconds between the orchestrator's heartbeats (a ``distributed.Variable`` it renews).
HEARTBEAT_SECONDS = 2.0
#: Seconds without a new heartbeat after which a task judges its orchestrator dead and stops its attempt.
ORPHAN_SECONDS = 20.0
#: Seconds between the task's checks of its stop event and of the heartbeat.
POLL_SECONDS = 0.5
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

    Returns: ``{"result": AttemptResult, "notebook": bytes | None, "log": str, "where": {...}, "timings":
    [cell timings], "kernel_ready_time": ...}``, or
    ``{"stopped": True, "where": ..., "notebook": ..., "log": ...}`` when the orchestrator stopped it (what
    the attempt had executed by then). ``where`` names the worker
    (``dask_worker`` address, ``host``); the result's ``environment`` carries it too.
    """
    import distributed

    from jupyter_orchestrate.environments import redact

    dist: Any = distributed  # untyped package
    where: dict[str, Any] = {}
    try:  # nothing may raise out of here: Dask would log the task's arguments (secrets among them)
        worker = dist.get_worker()
        attempt_id = payload["attempt_id"]
        where.update(dask_worker=worker.address, host=socket.gethostname())
        messages = dist.Queue(payload["queue"])
        stop = dist.Event(payload["stop"])
        alive = dist.Variable(payload["alive"])
        started = dist.Event(f"{payload['stop']}-started")
        if (
            started.is_set()
        ):  # Dask runs it again after its first worker died: an attempt executes at most once
            return {"stopped": True, "where": where}
        started.set()
        messages.put(["where", attempt_id, where])
        return _attempt(payload, worker, _Channels(attempt_id, where, messages, stop, alive))
    except Exception as exc:  # noqa: BLE001 - returned as the attempt's error
        spec = payload.get("spec")
        secrets = [*getattr(spec, "secrets", []), *_own_secrets(getattr(spec, "env", {}))]
        return _failed(AttemptErrorKind.internal, type(exc).__name__, redact(str(exc), secrets), where)


@dataclasses.dataclass(frozen=True)
class _Channels:
    """What connects a running task to its orchestrator: the attempt's id and where it runs, the message
    queue, the stop event and the heartbeat variable (``distributed`` objects)."""

    attempt_id: str
    where: dict[str, Any]
    messages: Any
    stop: Any
    alive: Any


def _attempt(payload: dict[str, Any], worker: Any, channels: _Channels) -> dict[str, Any]:
    where, stop = channels.where, channels.stop
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
        return _run(payload, spec, folder, base, channels)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(
    payload: dict[str, Any], spec: AttemptSpec, folder: str, base: str, channels: _Channels
) -> dict[str, Any]:
    where, messages, stop, alive, attempt_id = (
        channels.where,
        channels.messages,
        channels.stop,
        channels.alive,
        channels.attempt_id,
    )
    name = os.path.basename(spec.input_path)
    # the kernel inherits this worker's environment, not the orchestrator's: its secret-named variables too
    own = _own_secrets(spec.env)
    local = dataclasses.replace(
        spec,
        secrets=[*spec.secrets, *own],
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
    executor = _local_executor()
    handle = executor.prepare(local)
    executor.start(handle, payload["parameters"], context)
    result: AttemptResult | None = None
    beat, beat_seen = None, time.monotonic()
    timings: list[dict[str, Any]] = []  # also sent with the result: the queue may lag behind it
    kernel_ready: str | None = None
    try:
        while result is None:
            for event in executor.wait(POLL_SECONDS):
                message = event.message
                if isinstance(message, Finished):
                    result = message.result
                    break
                if isinstance(message, CellTimed):
                    timings.append(message.timing.model_dump(mode="json"))
                elif isinstance(message, KernelStarted):
                    kernel_ready = message.ready_time
                relayed = _relay(message)
                if relayed is not None:
                    with contextlib.suppress(Exception):  # progress is news; a scheduler hiccup loses one
                        messages.put([relayed[0], attempt_id, *relayed[1:]])
            if result is not None:
                break
            now = time.monotonic()
            stopped = False
            with contextlib.suppress(Exception):  # unreachable for now: the heartbeat check decides
                stopped = stop.is_set()
            if stopped:
                executor.kill(handle)
                return {"stopped": True, "where": where, **_products(local)}
            with contextlib.suppress(Exception):  # a slow scheduler: judge by the last value seen
                value = alive.get(timeout=POLL_SECONDS)
                if value != beat:
                    beat, beat_seen = value, now
            if now - beat_seen > ORPHAN_SECONDS:
                executor.kill(handle)
                return {"stopped": True, "where": where}  # nobody to send the products to
    except BaseException:
        executor.kill(handle)
        raise
    result.environment = {**result.environment, **where}
    return {
        "result": result,
        "where": where,
        "timings": timings,
        "kernel_ready_time": kernel_ready,
        **_products(local),
    }


def _own_secrets(env: dict[str, str]) -> list[str]:
    """Values of this worker's own secret-named variables (the kernel inherits them), beyond the task's."""
    from jupyter_orchestrate.environments import secret_names

    return [os.environ[n] for n in secret_names(env, (), os.environ) if n not in env]


def _products(local: AttemptSpec) -> dict[str, Any]:
    """The attempt's executed notebook (bytes, None if missing or too large) and log (text), to send back."""
    return {
        "notebook": _read(local.output_path),
        "log": (_read(local.log_path) or b"").decode("utf-8", errors="replace"),
    }


_executors = threading.local()


def _local_executor() -> Any:
    """This worker thread's :class:`~.local.LocalExecutor`, kept for the worker's life: its forkserver (the
    execution stack imported once) and its kernel launches serve every attempt the thread runs, as on a local
    run. One per thread: a LocalExecutor is driven by one caller at a time."""
    executor = getattr(_executors, "executor", None)
    if executor is None:
        from jupyter_orchestrate.executors.local import LocalExecutor

        _allow_children()
        executor = _executors.executor = LocalExecutor()
    return executor


def _allow_children() -> None:
    """Let this Dask worker (daemonic under a Nanny) start the attempts' processes, for the rest of its life.
    multiprocessing refuses children to daemonic processes because they would not outlive it cleanly; an
    attempt's worker is the forkserver's child and kills its kernel and exits when this process's end of its
    pipe closes, and the kernels this process launches end with it (ipykernel's parent poller)."""
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
