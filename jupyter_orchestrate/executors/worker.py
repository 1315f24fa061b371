"""The attempt worker: runs inside a child process (forked from a pre-imported forkserver) and executes one
attempt with papermill in a kernel of its own.

Protocol over the duplex pipe ``conn`` (the parent is :class:`~.local.LocalExecutor`):

- worker -> parent: ``KernelStarted``, ``Progress`` (before each code cell), ``CellTimed`` (after each code
  cell: its start, end, duration and ok/error), ``Finished`` (the result)
- parent -> worker: ``Go`` (parameters, context) to execute, ``Stop`` to shut down at once

(the messages of :mod:`~..schemas.messages`).

The worker starts the kernel as soon as it is created (so kernel start-up overlaps upstream tasks), waits
for ``go``, then runs ``papermill.execute_notebook`` with that kernel. If the parent goes away (pipe closed,
e.g. the orchestrator was killed) or sends ``stop``, a watchdog thread kills the kernel's process group and
exits, so no kernel outlives its orchestrator.

Secrets (``spec.secrets``) never reach the disk, so nothing has to be cleaned up after a timeout, a cancel, a
SIGKILL or an orchestrator crash: each kernel message is redacted as data before papermill adds it to the
notebook (every save writes what is in memory), the attempt log is written only through :class:`_RedactingLog`
(the kernel's stdout/stderr reach it through a pipe), and the result's fields are redacted before they are sent.
The same message hook caps the outputs an attempt may add to its notebook (``spec.max_output_bytes``). Cell
output is not echoed into the log: the notebook holds it; the log holds what the notebook does not (the
kernel process's own output, environment builds, papermill's warnings, worker errors).
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

# Imported at module level on purpose: the forkserver preloads this module so that every attempt
# starts with papermill, nbclient and jupyter_client already imported (see PERFORMANCE.md).
import nbformat
import papermill
import psutil
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.execute import ERROR_MARKER_TAG
from papermill.log import logger as papermill_logger
from papermill.translators import translate_parameters
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Integer, List, Unicode

from jupyter_orchestrate.environments import redact, redact_value
from jupyter_orchestrate.executors import keeper
from jupyter_orchestrate.executors.base import (
    DEFAULT_MAX_OUTPUT_BYTES,
    MAX_OUTPUT_BYTES_ENV,
    AttemptResult,
    AttemptSpec,
    kernel_death_evalue,
    kernel_environment,
)
from jupyter_orchestrate.executors.kernel_pool import kernelspec_manager
from jupyter_orchestrate.executors.resume import input_index as _input_index
from jupyter_orchestrate.executors.resume import is_reused, resume_notebook
from jupyter_orchestrate.executors.resume import read_cells as _read_input_cells
from jupyter_orchestrate.executors.resume import tagged as _tagged
from jupyter_orchestrate.models import (
    AttemptError,
    AttemptErrorKind,
    CellStatus,
    CellTiming,
    ResultStatus,
    cell_label,
    utc_now,
)
from jupyter_orchestrate.schemas.messages import (
    CellTimed,
    Finished,
    Go,
    KernelStarted,
    ParentMessage,
    Progress,
)
from jupyter_orchestrate.task_values import CONTEXT_ENV, read_values_file

log = logging.getLogger(__name__)  # in a worker process it writes to the attempt log (attempt_main)
KERNEL_START_TRIES = 4
ENGINE_NAME = "jupyter-orchestrate"
RESUME_ENGINE_NAME = "jupyter-orchestrate-resume"
#: Kernel messages that add output to a cell or state to the notebook (widget comms), and so count against the cap.
OUTPUT_MESSAGES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "error", "comm_open", "comm_msg"}
)
#: A cell's first source line is kept in its timing record up to this many characters.
SOURCE_LINE_CHARS = 200
#: Over the cap, an error is still recorded (it says why the task failed), each of its strings cut to this.
ERROR_TEXT_OVER_CAP = 10_000


class _RedactingLog:
    """The attempt log, as every writer in the worker sees it: text is redacted before it reaches the file.

    Thread-safe (the kernel-output pump and the worker both write). A secret split across two writes (the
    kernel's output arrives in pipe-sized pieces) is still caught: text after the last newline, up to the length
    of the longest secret spelling, is held back until more text, a newline or :meth:`close` arrives.
    """

    def __init__(self, path: str, secrets: Iterable[str]):
        self.secrets = [s for s in secrets if s]
        self.hold = max((max(len(json.dumps(s)), len(repr(s))) for s in self.secrets), default=0)
        self.newline_ends_secrets = not any("\n" in s for s in self.secrets)
        self.pending = ""
        self.lock = threading.Lock()
        self.broken = False  # a write failed (disk full): the rest of the log is dropped
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, text: str) -> int:
        with self.lock:
            if self.file.closed:
                return 0  # a process the notebook started outlived the kernel and still writes
            text = redact(self.pending + text, self.secrets)
            cut = len(text) - self.hold
            if self.newline_ends_secrets:
                cut = max(cut, text.rfind("\n") + 1)
            cut = max(cut, 0)
            self.pending = text[cut:]
            self._put(text[:cut])
        return len(text)

    def _put(self, text: str) -> None:
        """Write and flush; a full disk (or any write error) stops the log instead of raising: the log is a
        by-product, and its writers (the kernel-output thread, logging) would print tracebacks on the user's
        terminal. The attempt's own error still reaches the orchestrator through the pipe."""
        if self.broken:
            return
        try:
            self.file.write(text)
            self.file.flush()
        except OSError:
            self.broken = True

    def flush(self) -> None:
        with self.lock:
            self._put("")

    def close(self) -> None:
        with self.lock:
            self._put(self.pending)
            self.pending = ""
            try:
                self.file.close()
            except OSError:  # flushing what the full disk refused
                pass


def _text_bytes(value: Any) -> int:
    """UTF-8 size of the strings inside a kernel message's content."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
    if isinstance(value, dict):
        return sum(_text_bytes(v) for v in value.values())
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value)
    return 0


def _head(text: str, size: int) -> str:
    """The longest start of ``text`` whose UTF-8 encoding fits in ``size`` bytes."""
    return text.encode("utf-8", "replace")[: max(size, 0)].decode("utf-8", "ignore")


class _Client(PapermillNotebookClient):  # type: ignore[misc]  # papermill is untyped
    """papermill's notebook client, with each kernel message redacted and the attempt's outputs capped as they
    arrive, before papermill adds them to the notebook that every save writes."""

    secrets = List(Unicode())
    max_output_bytes = Integer(DEFAULT_MAX_OUTPUT_BYTES)
    #: a client of the attempt's kernel, connected and ready: nbclient's own new client would wait for
    #: readiness again, and its IOPub flush idles 0.2 s on every attempt's critical path
    ready_kc = AnyTrait(allow_none=True)

    def __init__(self, nb_man: Any, **kw: Any):
        super().__init__(nb_man, **kw)
        self.output_bytes = 0
        self.truncated = False

    @contextlib.contextmanager
    def setup_kernel(self, **kwargs: Any) -> Iterator[None]:
        if self.ready_kc is None:
            with super().setup_kernel(**kwargs):
                yield
            return
        self.kc = self.ready_kc
        self.kc.allow_stdin = False
        if self.on_notebook_start is not None:
            self.on_notebook_start(notebook=self.nb)  # nbclient calls it only for a client it starts
        yield

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        content = msg["content"] = redact_value(msg["content"], self.secrets)
        kind = msg["msg_type"]
        if kind not in OUTPUT_MESSAGES:
            return super().process_message(msg, cell, cell_index)
        size = _text_bytes(content)
        if self.output_bytes + size <= self.max_output_bytes:
            self.output_bytes += size
            return super().process_message(msg, cell, cell_index)
        output = None
        if kind == "error":
            msg["content"] = _shorten(content, ERROR_TEXT_OVER_CAP)
            output = super().process_message(msg, cell, cell_index)
        elif kind == "stream" and not self.truncated:
            content["text"] = _head(content.get("text", ""), self.max_output_bytes - self.output_bytes)
            if content["text"]:
                output = super().process_message(msg, cell, cell_index)
        self.output_bytes = self.max_output_bytes
        if not self.truncated:
            self.truncated = True
            note = (
                f"[output truncated: this attempt's outputs exceeded {self.max_output_bytes:,} bytes "
                f"({MAX_OUTPUT_BYTES_ENV}); later output was dropped]\n"
            )
            cell.outputs.append(new_output("stream", name="stderr", text=note))  # type: ignore[no-untyped-call]
            self.nb_man.autosave_cell()
        return output


def _shorten(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + " [...]"
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    return value


class _Engine(NBClientEngine):  # type: ignore[misc]  # papermill is untyped
    """papermill's nbclient engine executing with :attr:`client_class` (registered as ``jupyter-orchestrate``)."""

    client_class: type[_Client] = _Client

    @classmethod
    def execute_managed_notebook(
        cls, nb_man: Any, kernel_name: str, log_output: bool = False, start_timeout: float = 60, **kwargs: Any
    ) -> Any:
        kwargs.pop("input_path", None)
        return cls.client_class(
            nb_man,
            kernel_name=kernel_name,
            log=papermill_logger,
            log_output=log_output,
            startup_timeout=start_timeout,
            **kwargs,
        ).execute()


class _ResumeClient(_Client):
    """:class:`_Client` executing in a kept kernel (``ready_kc``) instead of starting one:
    cells copied from the failed attempt (:func:`~.resume.is_reused`) get back the outputs papermill cleared
    when the notebook started and are not executed again; the kernel is left running (the worker decides)."""

    reused_outputs = Dict()

    def papermill_execute_cells(self) -> None:
        from nbclient.exceptions import CellExecutionError

        for index, cell in enumerate(self.nb.cells):
            if is_reused(cell):
                kept = self.reused_outputs.get(cell.get("id"))
                if kept is not None:
                    cell.outputs = nbformat.from_dict(kept["outputs"])  # type: ignore[no-untyped-call]
                    cell.execution_count = kept["execution_count"]
                cell.metadata.papermill["status"] = "completed"
                continue
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as ex:
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                break
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)


class _ResumeEngine(_Engine):
    """papermill's nbclient engine executing with :class:`_ResumeClient` (``jupyter-orchestrate-resume``)."""

    client_class = _ResumeClient


class _ProcessClient(AsyncKernelClient):
    """A client of a kernel this worker did not launch (launched ahead by the orchestrator, or kept): alive
    while its process runs. jupyter_client judges such a kernel by its heartbeat, which is silent until the
    kernel has booted, so on a loaded machine ``wait_for_ready`` took a kernel still booting for a dead one
    ("Kernel died before replying to kernel_info": 37 of 40 attempts of wide-40 at load 9)."""

    kernel_pid = Integer(0)
    kernel_create_time = Float(None, allow_none=True)

    async def _async_is_alive(self) -> bool:  # what wait_for_ready asks
        return keeper.process_alive(self.kernel_pid, self.kernel_create_time)

    is_alive = _async_is_alive  # what nbclient asks (jupyter_client binds its own function here)


class _InterpreterSpecs(KernelSpecManager):
    """Kernel specs for a given interpreter: ``python -m ipykernel_launcher``, whatever name is asked for."""

    python = Unicode()

    def get_kernel_spec(self, kernel_name: str, *args: Any, **kwargs: Any) -> KernelSpec:
        return KernelSpec(
            argv=[self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python ({self.python})",
            language="python",
            metadata={},
        )


def _freeze(python: str) -> list[str]:
    """``pip freeze`` of an interpreter (what a task on it can import); [] if pip is not there."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = subprocess.run(
        [python, "-m", "pip", "freeze", "--disable-pip-version-check"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return probe.stdout.split() if probe.returncode == 0 else []


class _Worker:
    def __init__(self, conn: Any, spec: AttemptSpec):
        self.conn = conn
        self.spec = spec
        self.km: AsyncKernelManager | None = None
        self.kernel_lock = threading.Lock()
        self.go = threading.Event()
        self.go_message: Go | None = None
        self.current_cell: int | None = None  # executed-notebook index of the cell being executed
        self.environment: dict[str, Any] = {}
        self.cell_numbers: dict[int, int] = {}
        self.input_index: dict[int, int | None] = {}
        # (UTC time, monotonic time) of the current cell's execute request
        self.cell_began: tuple[str, float] | None = None
        self.log = _RedactingLog(spec.log_path, spec.secrets)
        self.pump: threading.Thread | None = None
        self.kernel_output_fd: int | None = None  # read end of the kernel process's stdout/stderr pipe
        self.kernel_create_time: float | None = None
        self.kc: AsyncKernelClient | None = (
            None  # the client that saw the kernel ready (a resume's: kept kernel)
        )
        self.detached = False  # the kernel was kept (or handed back): it is the keeper's now, not ours

    # -- process control -----------------------------------------------------------------------------------
    def watch(self) -> None:
        """Watchdog thread: receive go/stop; on stop or a closed pipe, kill the kernel and exit."""
        while True:
            try:
                message: ParentMessage = self.conn.recv()
            except (EOFError, OSError):
                self.die()
                return
            if isinstance(message, Go):
                self.go_message = message
                self.go.set()
            else:
                self.die()
                return

    def kernel_pid(self) -> int | None:
        if self.spec.resume is not None:
            return self.spec.resume.kernel_pid
        if self.spec.attach is not None:
            return self.spec.attach.kernel_pid
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def kill_kernel(self) -> None:
        if self.detached:
            return  # kept: its keeper ends it
        pid = self.kernel_pid()
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)  # the kernel leads its own session: take its children too
            except OSError:
                pass

    def die(self) -> None:
        with self.kernel_lock:
            self.kill_kernel()
        os._exit(3)

    # -- kernel ----------------------------------------------------------------------------------------------
    def prepare_environment(self, log: Any) -> str | None:
        """Build or reuse the task's cached environment (requirements) and describe what the kernel runs in.

        Returns: the interpreter to run the kernel on, or None for the kernelspec's own.
        Raises: EnvironmentBuildError when pip fails (pip's output is in the attempt log).
        """
        spec = self.spec
        python = spec.python
        self.environment = {
            "kernel_name": spec.kernel_name if not python else None,
            "python": python,
            "env_names": sorted(spec.env),
            "requirements": list(spec.requirements),
        }
        if spec.requirements:
            from jupyter_orchestrate.environments import EnvironmentCache

            built = EnvironmentCache(spec.state_home or os.path.dirname(spec.output_path)).ensure(
                spec.requirements, log=log
            )
            python = str(built.python)
            self.environment.update(
                kernel_name=None,
                python=python,
                package_hash=built.hash,
                freeze=built.freeze,
                built_now=built.built_now,
            )
        elif python:
            self.environment["freeze"] = _freeze(python)
        return python

    def start_kernel(self) -> None:
        spec = self.spec
        if spec.resume is not None:
            self.connect_kept_kernel()
            return
        python = self.prepare_environment(self.log)
        if spec.attach is not None and self.attach_kernel():
            return
        env = {**kernel_environment(spec), CONTEXT_ENV: spec.context_path}
        if python and "PYTHONPATH" not in spec.env:
            env.pop(
                "PYTHONPATH", None
            )  # the orchestrator's PYTHONPATH would shadow the environment's packages
        # The kernel process's own stdout/stderr (not cell output) go to the attempt log, redacted on the way.
        read_end, kernel_log = os.pipe()
        self.kernel_output_fd = read_end
        self.pump = threading.Thread(
            target=self.pump_kernel_output, args=(read_end,), name="orchestrate-kernel-log", daemon=True
        )
        self.pump.start()
        try:
            self.launch_kernel(python, env, kernel_log)
        finally:
            os.close(kernel_log)  # the kernel holds its own copy; the pump ends when the kernel does

    def attach_kernel(self) -> bool:
        """Attach to the kernel the orchestrator launched for this attempt (:mod:`.kernel_pool`): pump its
        output into the attempt log, connect, wait until it is ready, point it at this attempt's context.

        Returns: False when it did not become ready (it is killed; the caller launches a kernel of its own).
        """
        spec, attach = self.spec, self.spec.attach
        assert attach is not None
        read_end: int = attach.output_fd
        self.kernel_output_fd = read_end
        self.pump = threading.Thread(
            target=self.pump_kernel_output, args=(read_end,), name="orchestrate-kernel-log", daemon=True
        )
        self.pump.start()
        kc = _ProcessClient(kernel_pid=attach.kernel_pid, kernel_create_time=attach.kernel_create_time)
        kc.load_connection_info(attach.connection_info)  # type: ignore[arg-type]  # a plain dict of the same keys
        kc.start_channels()
        try:
            run_sync(kc.wait_for_ready)(timeout=spec.start_timeout_seconds)
            self.kc = kc
            if attach.launch_env.get(CONTEXT_ENV) != spec.context_path:  # a warm kernel: launched before us
                self.point_kernel_at_context()
        except Exception:  # died at start (a port race) or does not answer
            log.warning("the kernel launched ahead did not become ready; starting another", exc_info=True)
            kc.stop_channels()
            self.kc = None
            with self.kernel_lock:
                self.kill_kernel()
            self.pump.join(timeout=5)
            self.spec = dataclasses.replace(spec, attach=None)
            return False
        self.kernel_create_time = attach.kernel_create_time
        return True

    def pump_kernel_output(self, read_end: int) -> None:
        """Copy what the kernel process writes to its stdout/stderr into the (redacting) attempt log."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                self.log.write(decoder.decode(chunk))
        self.log.write(decoder.decode(b"", final=True))

    def launch_kernel(self, python: str | None, env: dict[str, str], kernel_log: int) -> None:
        """Start the kernel (on ``python`` if given) with stdout/stderr on the file descriptor ``kernel_log``.

        Raises: RuntimeError when it failed to become ready :data:`KERNEL_START_TRIES` times.
        """
        spec = self.spec
        last_error: BaseException | None = None
        for _ in range(KERNEL_START_TRIES):
            with self.kernel_lock:
                if python:
                    # the kernel runs on this interpreter; no kernelspec has to be registered for it
                    self.km = AsyncKernelManager(
                        kernel_name="orchestrate-python", kernel_spec_manager=_InterpreterSpecs(python=python)
                    )
                else:
                    self.km = AsyncKernelManager(
                        kernel_name=spec.kernel_name, kernel_spec_manager=kernelspec_manager(spec.kernel_name)
                    )
                # a kernel that may be kept must not exit with this worker (ipykernel's parent poller)
                run_sync(self.km.start_kernel)(
                    cwd=spec.cwd,
                    env=env,
                    stdout=kernel_log,
                    stderr=kernel_log,
                    independent=spec.keep_failed_kernel_seconds > 0,
                )
            probe = self.km.client()
            try:
                probe.start_channels()
                run_sync(probe.wait_for_ready)(timeout=spec.start_timeout_seconds)
                self.kc = probe  # the attempt executes through it (see _Client.ready_kc)
                return
            except Exception as exc:  # jupyter_client raises RuntimeError when the kernel died while starting
                # Port races ("Address already in use", about 1 in 1,400 launches) kill the kernel at start:
                # start another rather than failing the attempt.
                log.warning("the kernel failed to become ready; starting another", exc_info=True)
                last_error = exc
                with self.kernel_lock:
                    self.kill_kernel()
                probe.stop_channels()
        raise RuntimeError(
            f"kernel {spec.kernel_name!r} failed to start {KERNEL_START_TRIES} times: {last_error}"
        )

    def connect_kept_kernel(self) -> None:
        """A resume: take the kept kernel over from its keeper and connect a client to it.

        Raises: LookupError when the kernel is no longer kept; RuntimeError when it does not answer within
        ``start_timeout_seconds``.
        """
        spec = self.spec
        resume = spec.resume
        assert resume is not None
        me = psutil.Process()
        keeper.take_over(resume.control_file, me.pid, me.create_time())
        self.kernel_create_time = resume.kernel_create_time
        self.environment = {
            "kernel_name": spec.kernel_name if not spec.python else None,
            "python": spec.python,
            "env_names": sorted(spec.env),
            "requirements": list(spec.requirements),
            "kept_kernel_pid": resume.kernel_pid,
        }
        kc = _ProcessClient(
            connection_file=resume.connection_file,
            kernel_pid=resume.kernel_pid,
            kernel_create_time=resume.kernel_create_time,
        )
        kc.load_connection_file()
        kc.start_channels()
        try:
            run_sync(kc.wait_for_ready)(timeout=spec.start_timeout_seconds)
        except Exception as exc:
            kc.stop_channels()
            raise RuntimeError(f"the kept kernel (pid {resume.kernel_pid}) did not answer: {exc}") from exc
        self.kc = kc

    def settle_kernel(self, result: AttemptResult) -> AttemptResult:
        """After the attempt: keep the kernel of an attempt that failed in a cell (:mod:`.keeper`), else leave
        it to :meth:`shutdown` (a resume's kernel is reaped here: it is not this worker's child).

        Returns: ``result`` with ``kept_kernel`` set when the kernel was kept.
        """
        spec = self.spec
        error = result.error
        in_cell = (
            result.status == ResultStatus.failed
            and error is not None
            and error.kind == AttemptErrorKind.cell_error
        )
        seconds = spec.keep_failed_kernel_seconds
        pid = self.kernel_pid()
        if spec.resume is not None:
            resume = spec.resume
            self.stop_client()
            expires = keeper.hand_back(resume.control_file, seconds) if in_cell and seconds > 0 else None
            if expires is not None and keeper.process_alive(pid, resume.kernel_create_time):
                self.detached = True
                result.kept_kernel = keeper.KeptKernelInfo(
                    connection_file=resume.connection_file,
                    control_file=resume.control_file,
                    kernel_pid=resume.kernel_pid,
                    kernel_create_time=resume.kernel_create_time,
                    keeper_pid=None,
                    expires_epoch=expires,
                    cell_index=error.cell_index if error else None,
                )
            else:
                keeper.reap(resume.control_file, resume.kernel_pid, resume.kernel_create_time)
                self.detached = True  # reaped: nothing left for shutdown to do
            return result
        if not in_cell or seconds <= 0 or (self.km is None and spec.attach is None) or not pid:
            return result
        connection_file = None
        try:
            if spec.attach is not None:
                info = spec.attach.connection_info
            else:
                connection_file = self.km.connection_file  # type: ignore[union-attr]  # km or attach
                with open(connection_file, encoding="utf-8") as f:
                    info = json.load(f)
            result.kept_kernel = keeper.keep(
                state_home=spec.state_home or os.path.dirname(spec.output_path),
                name=f"run-{spec.run_id}-{spec.task_key}-attempt-{spec.attempt_number}",
                connection_info=info,
                kernel_pid=pid,
                kernel_create_time=self.kernel_create_time,
                seconds=seconds,
                cell_index=error.cell_index if error else None,
                kernel_output_fd=self.kernel_output_fd,
            )
        except OSError:
            log.warning("the failed attempt's kernel could not be kept; shutting it down", exc_info=True)
            return result
        self.detached = True
        if (
            connection_file is not None
        ):  # jupyter_client's copy in the runtime dir; ours is under the state home
            with contextlib.suppress(OSError):
                os.unlink(connection_file)
        return result

    # -- progress hooks (called by nbclient inside papermill) -----------------------------------------------
    def on_notebook_start(self, notebook: Any, **_: Any) -> None:
        code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.source.strip()]
        self.cell_numbers = {index: n for n, index in enumerate(code, start=1)}
        mapped = _input_index(notebook.cells, _read_input_cells(self.spec.input_path))
        self.input_index = {index: mapped[index] for index in code}
        self.conn.send(Progress(cell=0, total=len(code), cell_index=None))

    def on_cell_start(self, cell: Any, cell_index: int, **_: Any) -> None:
        number = self.cell_numbers.get(cell_index)
        if number is None:
            return  # nbclient calls this for markdown and empty cells too; they are not executed
        self.current_cell = cell_index
        self.conn.send(
            Progress(cell=number, total=len(self.cell_numbers), cell_index=self.input_index.get(cell_index))
        )

    def on_cell_execute(self, cell: Any, cell_index: int, **_: Any) -> None:
        """Just before nbclient sends the cell's execute request: its timing starts here."""
        self.cell_began = (utc_now(), time.monotonic())

    def on_cell_executed(self, cell: Any, cell_index: int, execute_reply: dict[str, Any], **_: Any) -> None:
        """The kernel replied to the cell (ok or error, before papermill raises): send its timing."""
        number = self.cell_numbers.get(cell_index)
        if number is None or self.cell_began is None:
            return
        start_time, began = self.cell_began
        self.cell_began = None
        ok = (execute_reply or {}).get("content", {}).get("status") == "ok"
        line = next((text.strip() for text in cell.source.splitlines() if text.strip()), None)
        self.conn.send(
            CellTimed(
                CellTiming(
                    cell_number=number,
                    cell_index=self.input_index.get(cell_index),
                    start_time=start_time,
                    end_time=utc_now(),
                    duration_seconds=round(time.monotonic() - began, 6),
                    status=CellStatus.ok if ok else CellStatus.error,
                    source_first_line=redact(line, self.spec.secrets)[:SOURCE_LINE_CHARS] if line else None,
                )
            )
        )

    # -- execution -------------------------------------------------------------------------------------------
    def execute(self) -> AttemptResult:
        spec = self.spec
        assert self.go_message is not None  # execute runs after go
        parameters, context = self.go_message.parameters, self.go_message.context
        with open(spec.context_path, "w", encoding="utf-8") as f:
            json.dump({**context, "secret_names": spec.secret_names}, f)
        papermill_engines.register(ENGINE_NAME, _Engine)
        papermill_engines.register(RESUME_ENGINE_NAME, _ResumeEngine)
        messages = logging.StreamHandler(self.log)  # papermill's and nbclient's warnings
        papermill_logger.addHandler(messages)
        hooks: dict[str, Any] = {
            "on_notebook_start": self.on_notebook_start,
            "on_cell_start": self.on_cell_start,
            "on_cell_execute": self.on_cell_execute,
            "on_cell_executed": self.on_cell_executed,
            "secrets": spec.secrets,
            "max_output_bytes": spec.max_output_bytes,
        }
        reused = 0
        resume_input: str | None = None
        try:
            if spec.resume is None:
                nb = papermill.execute_notebook(
                    spec.input_path,
                    spec.output_path,
                    parameters=parameters,
                    engine_name=ENGINE_NAME,
                    kernel_name=spec.kernel_name,
                    progress_bar=False,
                    autosave_cell_every=10,
                    km=self.km,
                    ready_kc=self.kc,
                    **hooks,
                )
            else:
                resume_input, outputs, reused = self.resume_input(parameters)
                self.point_kernel_at_context()
                nb = papermill.execute_notebook(
                    resume_input,
                    spec.output_path,
                    parameters=None,
                    engine_name=RESUME_ENGINE_NAME,
                    kernel_name=spec.kernel_name,
                    progress_bar=False,
                    autosave_cell_every=10,
                    ready_kc=self.kc,
                    reused_outputs=outputs,
                    **hooks,
                )
        except PapermillExecutionError as exc:
            return self.failed(cell_error(exc, spec.output_path, spec.input_path))
        except DeadKernelError as exc:
            return self.failed(self.kernel_died(exc))
        except Exception as exc:  # papermill and nbclient raise many kinds; keep the traceback
            log.exception("the notebook's execution failed")
            return self.failed(_exception_error(AttemptErrorKind.internal, exc))
        finally:
            papermill_logger.removeHandler(messages)
            if resume_input is not None:
                with contextlib.suppress(OSError):
                    os.unlink(resume_input)
        early = early_exit(nb, spec.output_path, spec.input_path)
        if early:
            return self.failed(early)
        return AttemptResult(
            status=ResultStatus.succeeded,
            task_values=self.task_values(),
            environment=self.environment,
            reused_cells=reused if spec.resume is not None else None,
            **self.cell_counts(nb),  # type: ignore[arg-type]  # cells_total, cells_completed
        )

    def language(self) -> str:
        """The input notebook's language (kernelspec, else language_info; default ``python``)."""
        try:
            with open(self.spec.input_path, encoding="utf-8") as f:
                meta = json.load(f).get("metadata", {})
        except (OSError, ValueError, AttributeError):
            return "python"
        name = (meta.get("kernelspec") or {}).get("language") or (meta.get("language_info") or {}).get("name")
        return str(name or "python").lower()

    def point_kernel_at_context(self) -> None:
        """Make the kept kernel's ``task_values`` read this attempt's context file (it was started with the
        failed attempt's): set ``$JUPYTER_ORCHESTRATE_CONTEXT`` in it, silently (no output, no history).

        Raises: RuntimeError when the kernel does not reply within ``start_timeout_seconds``.
        """
        assert self.kc is not None
        if self.language() != "python":
            return  # task values are published from Python kernels only
        code = (
            f"import os as _jo_os; _jo_os.environ[{CONTEXT_ENV!r}] = {self.spec.context_path!r}; del _jo_os"
        )
        reply = run_sync(self.kc.execute_interactive)(
            code, silent=True, store_history=False, timeout=self.spec.start_timeout_seconds
        )
        if reply.get("content", {}).get("status") != "ok":
            raise RuntimeError(
                f"the kernel could not be pointed at this attempt's context: {reply.get('content')}"
            )

    def resume_input(self, parameters: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
        """Write the notebook a resume executes (:func:`~.resume.resume_notebook`) beside the output.

        Returns: ``(path, reused cell id -> {outputs, execution_count}, reused code cells)``.
        Raises: ValueError when a notebook cannot be read.
        """
        spec, resume = self.spec, self.spec.resume
        assert resume is not None
        source = None
        if parameters:
            source = translate_parameters(
                spec.kernel_name, self.language(), parameters, "Parameters of the resume"
            )
        notebook, reused = resume_notebook(
            spec.input_path,
            resume.failed_notebook_path,
            resume.from_cell_index,
            failed_attempt_number=resume.failed_attempt_number,
            parameters_source=source,
        )
        outputs = {
            c.get("id"): {"outputs": c.get("outputs", []), "execution_count": c.get("execution_count")}
            for c in notebook["cells"]
            if is_reused(c)
        }
        path = f"{os.path.splitext(spec.output_path)[0]}.resume-input.ipynb"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(notebook, f)
        return path, outputs, reused

    def failed(self, error: AttemptError) -> AttemptResult:
        try:
            nb = nbformat.read(self.spec.output_path, as_version=4)  # type: ignore[no-untyped-call]
            counts = self.cell_counts(nb)
        except (OSError, ValueError):
            counts = {}
        return AttemptResult(
            status=ResultStatus.failed,
            error=error,
            task_values=self.task_values(),
            environment=self.environment,
            reused_cells=sum(is_reused(c) and c.cell_type == "code" for c in nb.cells)
            if counts and self.spec.resume
            else None,
            **counts,  # type: ignore[arg-type]  # cells_total, cells_completed
        )

    @staticmethod
    def cell_counts(nb: Any) -> dict[str, int]:
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        return {
            "cells_total": len(code),
            "cells_completed": sum(c.get("execution_count") is not None for c in code),
        }

    def task_values(self) -> dict[str, Any]:
        """The task values the notebook wrote, redacted; the file is rewritten redacted if it held a secret (a
        kernel that imports an older jupyter_orchestrate writes values unredacted)."""
        values = read_values_file(self.spec.values_path)
        clean: dict[str, Any] = redact_value(values, self.spec.secrets)
        if clean != values:
            with open(self.spec.values_path, "w", encoding="utf-8") as f:
                json.dump(clean, f)
        return clean

    def kernel_died(self, exc: DeadKernelError) -> AttemptError:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None  # None for an attached kernel (not our child)
        located = locate_cell(self.spec.output_path, self.spec.input_path, self.current_cell)
        where = f"while executing {cell_label(located['cell_index'])}" if located else "during execution"
        return AttemptError(
            kind=AttemptErrorKind.kernel_died,
            ename="DeadKernelError",
            evalue=kernel_death_evalue(where, code, str(exc)),
            **located,
        )

    def stop_client(self) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):  # a dead kernel's channels: nothing to stop cleanly
                self.kc.stop_channels()
            self.kc = None

    def shutdown(self) -> None:
        self.stop_client()
        if self.detached:  # kept (its keeper drains its output and ends it) or reaped already
            self.log.close()
            return
        with self.kernel_lock:
            if self.spec.attach is not None:
                self.kill_kernel()  # launched by the orchestrator, which reaps it; its output is saved
            elif self.km is not None and self.km.has_kernel:
                try:
                    run_sync(self.km.shutdown_kernel)(now=True)  # graceful shutdown stalls; output is saved
                except Exception:  # whatever stalled the shutdown, the kernel must go
                    log.warning("the kernel did not shut down; killing it", exc_info=True)
                    self.kill_kernel()
        if self.pump is not None:
            self.pump.join(timeout=5)  # a process the notebook left running may still hold the pipe
        self.log.close()

    def redacted(self, result: AttemptResult) -> AttemptResult:
        """``result`` with the secrets removed from every field it reports (error, task values, environment)."""
        secrets = self.spec.secrets
        result.error = redact_value(result.error, secrets)
        result.task_values = redact_value(result.task_values, secrets)
        result.environment = redact_value(result.environment, secrets)
        return result


_ERROR_LINE = re.compile(r"^(?P<ename>[A-Za-z_][\w.]*): (?P<evalue>.*)$")


def _without_markers(nb: Any) -> Any:
    """The saved executed notebook without papermill's error-marker cells: the notebook as it executed."""
    nb = nbformat.from_dict(nb)  # type: ignore[no-untyped-call]
    nb.cells = [c for c in nb.cells if not _tagged(c, ERROR_MARKER_TAG)]
    return nb


def _saved_cell(output_path: str, executed_index: int | None) -> tuple[Any, int, list[Any]] | None:
    """``(cell, index in the saved file, cells as executed)`` of an executed cell, or None."""
    try:
        saved = nbformat.read(output_path, as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return None
    clean = _without_markers(saved)
    if executed_index is None or executed_index >= len(clean.cells):
        return None
    cell = clean.cells[executed_index]
    saved_index = next(
        (i for i, c in enumerate(saved.cells) if c.get("id") == cell.get("id")), executed_index
    )
    return cell, saved_index, clean.cells


def locate_cell(output_path: str, input_path: str, executed_index: int | None) -> dict[str, Any]:
    """Cell fields of an error from the saved executed notebook: the input notebook's index of the cell
    (:func:`_input_index`), its index in the saved file, its source and execution count."""
    found = _saved_cell(output_path, executed_index)
    if found is None:
        return {}
    cell, saved_index, executed = found
    return {
        "cell_index": _input_index(executed, _read_input_cells(input_path))[executed_index],  # type: ignore[index]
        "executed_cell_index": saved_index,
        "cell_source": cell.source,
        "execution_count": cell.get("execution_count"),
    }


def _error_from_outputs(cell: Any) -> tuple[str, str] | None:
    """``(ename, evalue)`` of a failed cell from its outputs: an error output, else the last line of its
    stderr stream that reads ``Name: message`` (an IPython ``UsageError`` of a ``%magic`` is printed there
    and leaves no error output), else that last stderr line as the message."""
    outputs = cell.get("outputs", [])
    for output in outputs:
        if output.get("output_type") == "error" and output.get("ename"):
            return output["ename"], output.get("evalue", "")
    stderr = "".join(
        "".join(o["text"]) if isinstance(o.get("text"), list) else o.get("text", "")
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        match = _ERROR_LINE.match(line)
        if match:
            return match["ename"], match["evalue"]
    return ("CellExecutionError", lines[-1]) if lines else None


def cell_error(exc: PapermillExecutionError, output_path: str, input_path: str) -> AttemptError:
    """Error fields of an exception raised in a cell (papermill's ``PapermillExecutionError``). When papermill
    has no exception name (``CellExecutionError`` with no message: the cell failed without an error output),
    the name and message come from the cell's outputs (:func:`_error_from_outputs`)."""
    ename, evalue = exc.ename, exc.evalue
    found = _saved_cell(output_path, exc.cell_index)
    if found is not None and (not ename or (ename == "CellExecutionError" and not evalue)):
        ename, evalue = _error_from_outputs(found[0]) or (
            ename,
            "the cell failed without an error output or stderr message",
        )
    located = locate_cell(output_path, input_path, exc.cell_index)
    return AttemptError(
        kind=AttemptErrorKind.cell_error,
        ename=ename or "CellExecutionError",
        evalue=evalue,
        traceback=list(exc.traceback),
        cell_source=exc.source,
        execution_count=exc.exec_count,
        **{k: v for k, v in located.items() if k in ("cell_index", "executed_cell_index")},
    )


def early_exit(nb: Any, output_path: str, input_path: str) -> AttemptError | None:
    """Papermill counts ``sys.exit(0)`` as success; we do not when code cells were left unexecuted."""
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    exits = [
        (i, c)
        for i, c in code
        if any(
            o.get("output_type") == "error" and o.get("ename") == "SystemExit" for o in c.get("outputs", [])
        )
    ]
    if not exits:
        return None
    index, cell = exits[0]
    skipped = [i for i, c in code if i > index and c.get("execution_count") is None]
    if not skipped:
        return None
    return AttemptError(
        kind=AttemptErrorKind.early_exit,
        ename="SystemExit",
        evalue=f"the notebook called sys.exit() and {len(skipped)} code cell(s) after it were not executed",
        traceback=next(o.get("traceback", []) for o in cell.outputs if o.get("output_type") == "error"),
        **locate_cell(output_path, input_path, index),
    )


def _exception_error(kind: AttemptErrorKind, exc: BaseException) -> AttemptError:
    """The error of an attempt that ``exc`` ended: its type, message and traceback."""
    return AttemptError(
        kind=kind, ename=type(exc).__name__, evalue=str(exc), traceback=traceback.format_exception(exc)
    )


def attempt_main(conn: Any, spec: AttemptSpec) -> None:
    """Entry point of the worker process (see the module docstring)."""
    os.setsid()  # out of the terminal's process group: Ctrl-C reaches the orchestrator only
    logging.getLogger("papermill").setLevel(logging.WARNING)
    worker = _Worker(conn, spec)
    log.addHandler(logging.StreamHandler(worker.log))  # redacted, like everything the attempt log holds
    log.setLevel(logging.INFO)
    log.propagate = False
    threading.Thread(target=worker.watch, name="orchestrate-watchdog", daemon=True).start()
    try:
        try:
            worker.start_kernel()
        except Exception as exc:  # any failure to start is the attempt's launch_error
            log.exception("the kernel could not be started")
            worker.log.write(getattr(exc, "output", "") or "")
            worker.go.wait()
            result = AttemptResult(
                status=ResultStatus.failed,
                error=_exception_error(AttemptErrorKind.launch_error, exc),
                environment=worker.environment,
            )
        else:
            pid = worker.kernel_pid()
            try:
                create_time = psutil.Process(pid).create_time() if pid else None
            except psutil.Error:
                create_time = None
            worker.kernel_create_time = create_time
            conn.send(KernelStarted(pid=pid, create_time=create_time, ready_time=utc_now()))
            worker.go.wait()
            result = worker.settle_kernel(worker.execute())
        conn.send(Finished(worker.redacted(result)))
    except Exception as exc:  # e.g. the disk filled while saving the notebook or writing the log
        log.exception("the attempt failed")
        failed = AttemptResult(
            status=ResultStatus.failed,
            error=_exception_error(AttemptErrorKind.internal, exc),
        )
        try:
            conn.send(Finished(worker.redacted(failed)))
        except (OSError, ValueError):
            pass  # the orchestrator is gone; the watchdog kills the kernel
    finally:
        worker.shutdown()
