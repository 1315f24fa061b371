"""The attempt worker: runs inside a child process (forked from a pre-imported forkserver) and executes one
attempt with papermill in a kernel of its own.

Protocol over the duplex pipe ``conn`` (the parent is :class:`~.local.LocalExecutor`):

- worker -> parent: ``("kernel_started", {"pid", "create_time"})``, ``("progress", {"cell", "total"})``,
  ``("finished", AttemptResult)``
- parent -> worker: ``("go", parameters, context)`` to execute, ``("stop",)`` to shut down at once.

The worker starts the kernel as soon as it is created (so kernel start-up overlaps upstream tasks), waits
for ``go``, then runs ``papermill.execute_notebook`` with that kernel. If the parent goes away (pipe closed,
e.g. the orchestrator was killed) or sends ``stop``, a watchdog thread kills the kernel's process group and
exits, so no kernel outlives its orchestrator.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import traceback
from typing import Any

# Imported at module level on purpose: the forkserver preloads this module so that every attempt
# starts with papermill, nbclient and jupyter_client already imported (see PERFORMANCE.md).
import nbformat
import papermill
import psutil
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from traitlets import Unicode
from papermill.exceptions import PapermillExecutionError

from jupyter_orchestrate.executors.base import AttemptResult, AttemptSpec
from jupyter_orchestrate.task_values import CONTEXT_ENV, read_values_file

KERNEL_START_TRIES = 4
INJECTED_TAG = "injected-parameters"


class _InterpreterSpecs(KernelSpecManager):
    """Kernel specs for a given interpreter: ``python -m ipykernel_launcher``, whatever name is asked for."""

    python = Unicode()

    def get_kernel_spec(self, kernel_name: str, *args: Any, **kwargs: Any) -> KernelSpec:
        return KernelSpec(argv=[self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name=f"Python ({self.python})", language="python", metadata={})


def _freeze(python: str) -> list[str]:
    """``pip freeze`` of an interpreter (what a task on it can import); [] if pip is not there."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = subprocess.run([python, "-m", "pip", "freeze", "--disable-pip-version-check"], capture_output=True, text=True,
                           timeout=120, env=env)
    return probe.stdout.split() if probe.returncode == 0 else []


class _Worker:
    def __init__(self, conn: Any, spec: AttemptSpec):
        self.conn = conn
        self.spec = spec
        self.km: AsyncKernelManager | None = None
        self.kernel_lock = threading.Lock()
        self.go = threading.Event()
        self.go_message: tuple[Any, ...] | None = None
        self.current_cell: int | None = None  # executed-notebook index of the cell being executed
        self.environment: dict[str, Any] = {}
        self.cell_numbers: dict[int, int] = {}
        self.input_index: dict[int, int | None] = {}

    # -- process control -----------------------------------------------------------------------------------
    def watch(self) -> None:
        """Watchdog thread: receive go/stop; on stop or a closed pipe, kill the kernel and exit."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                self.die()
                return
            if message[0] == "go":
                self.go_message = message
                self.go.set()
            else:
                self.die()
                return

    def kernel_pid(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        return getattr(process, "pid", None)

    def kill_kernel(self) -> None:
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
        self.environment = {"kernel_name": spec.kernel_name if not python else None, "python": python,
                            "env_names": sorted(spec.env), "requirements": list(spec.requirements)}
        if spec.requirements:
            from jupyter_orchestrate.environments import EnvironmentCache

            built = EnvironmentCache(spec.state_home or os.path.dirname(spec.output_path)).ensure(spec.requirements, log=log)
            python = str(built.python)
            self.environment.update(kernel_name=None, python=python, package_hash=built.hash, freeze=built.freeze,
                                    built_now=built.built_now)
        elif python:
            self.environment["freeze"] = _freeze(python)
        return python

    def start_kernel(self) -> None:
        spec = self.spec
        env = {**(spec.base_env if spec.base_env is not None else os.environ), **spec.env, CONTEXT_ENV: spec.context_path}
        env.pop("JPY_PARENT_PID", None)
        last_error: BaseException | None = None
        # The kernel process's own stdout/stderr (not cell output) go to the attempt log, not the terminal.
        kernel_log = open(spec.log_path, "a", encoding="utf-8")  # noqa: SIM115 - inherited by the kernel
        python = self.prepare_environment(kernel_log)
        if python and "PYTHONPATH" not in spec.env:
            env.pop("PYTHONPATH", None)  # the orchestrator's PYTHONPATH would shadow the environment's packages
        kernel_log.flush()
        for _ in range(KERNEL_START_TRIES):
            with self.kernel_lock:
                if python:
                    # the kernel runs on this interpreter; no kernelspec has to be registered for it
                    self.km = AsyncKernelManager(kernel_name="orchestrate-python",
                                                 kernel_spec_manager=_InterpreterSpecs(python=python))
                else:
                    self.km = AsyncKernelManager(kernel_name=spec.kernel_name)
                run_sync(self.km.start_kernel)(cwd=spec.cwd, env=env, stdout=kernel_log, stderr=kernel_log)
            probe = self.km.client()
            try:
                probe.start_channels()
                run_sync(probe.wait_for_ready)(timeout=spec.start_timeout_seconds)
                return
            except Exception as exc:  # jupyter_client raises RuntimeError when the kernel died while starting
                # Port races ("Address already in use", about 1 in 1,400 launches) kill the kernel at start:
                # start another rather than failing the attempt.
                last_error = exc
                with self.kernel_lock:
                    self.kill_kernel()
            finally:
                probe.stop_channels()
        raise RuntimeError(f"kernel {spec.kernel_name!r} failed to start {KERNEL_START_TRIES} times: {last_error}")

    # -- progress hooks (called by nbclient inside papermill) -----------------------------------------------
    def on_notebook_start(self, notebook: Any, **_: Any) -> None:
        code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and c.source.strip()]
        self.cell_numbers = {index: n for n, index in enumerate(code, start=1)}
        self.input_index = {index: _input_index(notebook, index) for index in code}
        self.conn.send(("progress", {"cell": 0, "total": len(code), "cell_index": None}))

    def on_cell_start(self, cell: Any, cell_index: int, **_: Any) -> None:
        number = self.cell_numbers.get(cell_index)
        if number is None:
            return  # nbclient calls this for markdown and empty cells too; they are not executed
        self.current_cell = cell_index
        self.conn.send(("progress", {"cell": number, "total": len(self.cell_numbers), "cell_index": self.input_index.get(cell_index)}))

    # -- execution -------------------------------------------------------------------------------------------
    def execute(self) -> AttemptResult:
        spec = self.spec
        _, parameters, context = self.go_message  # type: ignore[misc]
        with open(spec.context_path, "w", encoding="utf-8") as f:
            json.dump(context, f)
        with open(spec.log_path, "a", encoding="utf-8", buffering=1) as log:
            try:
                nb = papermill.execute_notebook(
                    spec.input_path,
                    spec.output_path,
                    parameters=parameters,
                    kernel_name=spec.kernel_name,
                    progress_bar=False,
                    stdout_file=log,
                    stderr_file=log,
                    autosave_cell_every=10,
                    km=self.km,
                    on_notebook_start=self.on_notebook_start,
                    on_cell_start=self.on_cell_start,
                )
            except PapermillExecutionError as exc:
                return self.failed(cell_error(exc, spec.output_path))
            except DeadKernelError as exc:
                return self.failed(self.kernel_died(exc))
            except Exception as exc:  # papermill and nbclient raise many kinds; keep the traceback
                log.write(traceback.format_exc())
                return self.failed(
                    {"kind": "internal", "ename": type(exc).__name__, "evalue": str(exc),
                     "traceback": traceback.format_exception(exc)}
                )
        early = early_exit(nb, spec.output_path)
        if early:
            return self.failed(early)
        return AttemptResult(status="succeeded", task_values=self.task_values(), environment=self.environment,
                             **self.cell_counts(nb))

    def failed(self, error: dict[str, Any]) -> AttemptResult:
        try:
            nb = nbformat.read(self.spec.output_path, as_version=4)
            counts = self.cell_counts(nb)
        except (OSError, ValueError):
            counts = {}
        return AttemptResult(status="failed", error=error, task_values=self.task_values(), environment=self.environment,
                             **counts)

    @staticmethod
    def cell_counts(nb: Any) -> dict[str, int]:
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        return {"cells_total": len(code), "cells_completed": sum(c.get("execution_count") is not None for c in code)}

    def task_values(self) -> dict[str, Any]:
        return read_values_file(self.spec.values_path)

    def kernel_died(self, exc: DeadKernelError) -> dict[str, Any]:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        code = process.poll() if process is not None else None
        how = ""
        if code is not None and code < 0:
            how = f" (killed by {signal.Signals(-code).name})"
        elif code is not None:
            how = f" (exit code {code})"
        error: dict[str, Any] = {"kind": "kernel_died", "ename": "DeadKernelError"}
        error.update(locate_cell(self.spec.output_path, self.current_cell))
        number = error.get("cell_index")
        where = f"while executing cell {number}" if number is not None else "during execution"
        error["evalue"] = f"the kernel died {where}{how}: {exc}".rstrip(": ")
        return error

    def shutdown(self) -> None:
        with self.kernel_lock:
            if self.km is not None and self.km.has_kernel:
                try:
                    run_sync(self.km.shutdown_kernel)(now=True)  # graceful shutdown stalls; output is saved
                except Exception:
                    self.kill_kernel()


def _input_index(nb: Any, executed_index: int | None) -> int | None:
    """Map a cell index of the parameterized notebook (before error markers) to the input notebook's."""
    if executed_index is None:
        return None
    injected = next((i for i, c in enumerate(nb.cells) if INJECTED_TAG in c.metadata.get("tags", [])), None)
    if injected is None or executed_index < injected:
        return executed_index
    if executed_index == injected:
        return None
    return executed_index - 1


def _without_markers(nb: Any) -> Any:
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    return nb


def locate_cell(output_path: str, executed_index: int | None) -> dict[str, Any]:
    """Cell fields of an error from the saved executed notebook: input index, saved index, source, count."""
    try:
        saved = nbformat.read(output_path, as_version=4)
    except (OSError, ValueError):
        return {}
    clean = _without_markers(saved)
    if executed_index is None or executed_index >= len(clean.cells):
        return {}
    cell = clean.cells[executed_index]
    saved_index = next((i for i, c in enumerate(saved.cells) if c is cell or c.get("id") == cell.get("id")), executed_index)
    return {
        "cell_index": _input_index(clean, executed_index),
        "executed_cell_index": saved_index,
        "cell_source": cell.source,
        "execution_count": cell.get("execution_count"),
    }


def cell_error(exc: PapermillExecutionError, output_path: str) -> dict[str, Any]:
    """Error fields of an exception raised in a cell (papermill's ``PapermillExecutionError``)."""
    error: dict[str, Any] = {
        "kind": "cell_error",
        "ename": exc.ename,
        "evalue": exc.evalue,
        "traceback": list(exc.traceback),
        "cell_source": exc.source,
        "execution_count": exc.exec_count,
    }
    located = locate_cell(output_path, exc.cell_index)
    error.update({k: v for k, v in located.items() if k in ("cell_index", "executed_cell_index")})
    return error


def early_exit(nb: Any, output_path: str) -> dict[str, Any] | None:
    """Papermill counts ``sys.exit(0)`` as success; we do not when code cells were left unexecuted."""
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    exits = [
        (i, c) for i, c in code
        if any(o.get("output_type") == "error" and o.get("ename") == "SystemExit" for o in c.get("outputs", []))
    ]
    if not exits:
        return None
    index, cell = exits[0]
    skipped = [i for i, c in code if i > index and c.get("execution_count") is None]
    if not skipped:
        return None
    error = {"kind": "early_exit", "ename": "SystemExit",
             "evalue": f"the notebook called sys.exit() and {len(skipped)} code cell(s) after it were not executed",
             "traceback": next(o.get("traceback", []) for o in cell.outputs if o.get("output_type") == "error")}
    error.update(locate_cell(output_path, index))
    return error


def attempt_main(conn: Any, spec: AttemptSpec) -> None:
    """Entry point of the worker process (see the module docstring)."""
    os.setsid()  # out of the terminal's process group: Ctrl-C reaches the orchestrator only
    logging.getLogger("papermill").setLevel(logging.WARNING)
    worker = _Worker(conn, spec)
    threading.Thread(target=worker.watch, name="orchestrate-watchdog", daemon=True).start()
    try:
        try:
            worker.start_kernel()
        except Exception as exc:
            with open(spec.log_path, "a", encoding="utf-8") as log:
                log.write(traceback.format_exc())
            with open(spec.log_path, "a", encoding="utf-8") as log:
                log.write(getattr(exc, "output", "") or "")
            worker.go.wait()
            result = AttemptResult(
                status="failed",
                error={"kind": "launch_error", "ename": type(exc).__name__, "evalue": str(exc),
                       "traceback": traceback.format_exception(exc)},
                environment=worker.environment,
            )
        else:
            pid = worker.kernel_pid()
            try:
                create_time = psutil.Process(pid).create_time() if pid else None
            except psutil.Error:
                create_time = None
            conn.send(("kernel_started", {"pid": pid, "create_time": create_time}))
            worker.go.wait()
            result = worker.execute()
        redact_files(spec)
        conn.send(("finished", result))
    finally:
        worker.shutdown()


def redact_files(spec: AttemptSpec) -> None:
    """Replace secret values in the attempt's log and executed notebook (a notebook may print them)."""
    if not spec.secrets:
        return
    from jupyter_orchestrate.environments import redact

    for path in (spec.log_path, spec.output_path):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        cleaned = redact(text, spec.secrets)
        if cleaned != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(cleaned)
