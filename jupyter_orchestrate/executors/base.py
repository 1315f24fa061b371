"""The executor interface: what runs attempts. Executors never touch the database; they take an
:class:`AttemptSpec` and report :class:`ExecutorEvent` s; the runner records.

Life of an attempt on an executor::

    handle = executor.prepare(spec)          # start the kernel ahead of need (may be long before start)
    executor.start(handle, parameters, context)   # execute the notebook with these parameters
    executor.wait(timeout)                   # -> events: kernel_started, progress, finished
    executor.kill(handle)                    # timeout or cancel: kernel and worker are gone on return
    executor.discard(handle)                 # a prepared attempt that will not start
"""

from __future__ import annotations

import abc
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupyter_orchestrate.errors import Problem, ValidationError
from jupyter_orchestrate.executors.keeper import KeptKernelInfo
from jupyter_orchestrate.executors.kernel_pool import AttachSpec
from jupyter_orchestrate.models import AttemptError, ResultStatus

if TYPE_CHECKING:
    from jupyter_orchestrate.schemas.messages import WorkerMessage

#: Outputs one attempt may add to its executed notebook before further output is dropped (50 MiB).
DEFAULT_MAX_OUTPUT_BYTES = 50 * 1024 * 1024
#: The orchestrator's environment variable that sets :attr:`AttemptSpec.max_output_bytes` for every attempt.
MAX_OUTPUT_BYTES_ENV = "JUPYTER_ORCHESTRATE_MAX_OUTPUT_BYTES"


def max_output_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The per-attempt output cap: ``JUPYTER_ORCHESTRATE_MAX_OUTPUT_BYTES`` if set, else 50 MiB.

    Args:
        environ: where to look (default ``os.environ``).

    Returns: the cap in bytes, at least 1.

    Raises:
        ValidationError: the variable is set but not a positive integer (the problem names the variable).
    """
    text = (os.environ if environ is None else environ).get(MAX_OUTPUT_BYTES_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_OUTPUT_BYTES
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError(
            Problem("", MAX_OUTPUT_BYTES_ENV, f"must be a positive whole number of bytes, not {text!r}")
        )
    return value


@dataclass(frozen=True)
class ResumeSpec:
    """A resumed attempt: execute from the failed cell of an earlier attempt, in that attempt's kept kernel.

    Fields: ``connection_file``/``control_file`` of the kept kernel (:mod:`.keeper`), ``kernel_pid`` and
    ``kernel_create_time``; ``from_cell_index``: the input notebook's index of the failed cell;
    ``failed_notebook_path``: the failed attempt's executed notebook (its cells before the failed one are
    reused); ``failed_attempt_number``.
    """

    connection_file: str
    control_file: str
    kernel_pid: int
    kernel_create_time: float | None
    from_cell_index: int
    failed_notebook_path: str
    failed_attempt_number: int


@dataclass(frozen=True)
class AttemptSpec:
    """Everything needed to execute one attempt; paths are absolute.

    Fields:
        input_path: the task's notebook (never modified).
        output_path: where the executed notebook is saved (after every cell).
        log_path: captured stdout/stderr of the kernel.
        context_path: the job-run context file read by :mod:`jupyter_orchestrate.task_values` in the kernel.
        values_path: where the kernel writes this task's task values.
        kernel_name: kernelspec to start; cwd: the kernel's working directory; env: variables added to the
        kernel's environment; start_timeout_seconds: how long the kernel may take to become ready.
        python: an interpreter to run the kernel on instead of the kernelspec's; requirements: pip requirements
        of a cached environment (built under ``state_home``) to run the kernel in; base_env: the
        orchestrator's environment when the attempt was prepared (a forkserver's own environment is a snapshot
        from its start).
        secrets: values redacted (as ``***``) from everything the attempt writes or reports: outputs as they
        arrive (so every save of the executed notebook is clean), the attempt log, error fields, task values
        and the environment description; never stored. secret_names: the variables holding them, for the
        kernel to redact the task values it writes (names only reach the context file, never values).
        max_output_bytes: output the attempt may add to its executed notebook (stream text, rich data, error
        text; UTF-8 bytes); beyond it outputs are dropped and a note says so.
        keep_failed_kernel_seconds: when the attempt fails in a cell (not timeout, kernel death or cancel), its
        kernel is kept alive this long for debugging and resume (:mod:`.keeper`); 0: shut down as usual.
        resume: execute from a failed cell in a kept kernel instead of starting a kernel (:class:`ResumeSpec`);
        the ``Go`` message's parameters are then the resume's overrides, applied in an injected cell.
        attach: a kernel the executor launched for this attempt (:mod:`.kernel_pool`); the worker attaches to it
        instead of launching one (and launches one if it does not become ready).
        resources: Dask worker resources the attempt needs (``{"GPU": 1}``); only the dask executor uses them.
    """

    run_id: int
    task_key: str
    attempt_number: int
    input_path: str
    output_path: str
    log_path: str
    context_path: str
    values_path: str
    kernel_name: str
    cwd: str
    # repr=False: a spec's repr reaches logs (Dask logs a failed task's arguments); these hold secret values
    env: dict[str, str] = field(default_factory=dict, repr=False)
    start_timeout_seconds: float = 60.0
    python: str | None = None
    requirements: list[str] = field(default_factory=list)
    state_home: str | None = None
    secrets: list[str] = field(default_factory=list, repr=False)
    secret_names: list[str] = field(default_factory=list)
    base_env: dict[str, str] | None = field(default=None, repr=False)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    keep_failed_kernel_seconds: float = 0.0
    resume: ResumeSpec | None = None
    attach: AttachSpec | None = None
    resources: dict[str, float] = field(default_factory=dict)


def _exit_text(code: int | None) -> str:
    if code is None:
        return ""
    return f" (killed by {signal.Signals(-code).name})" if code < 0 else f" (exit code {code})"


def kernel_death_evalue(where: str, exit_code: int | None, detail: str) -> str:
    """The message of a ``kernel_died`` error: ``the kernel died WHERE (killed by SIGKILL): DETAIL``.

    ``where``: e.g. ``while executing cell 2``; ``exit_code``: the kernel process's (negative: the signal), None
    when the worker could not see it (a kernel the executor launched: see :func:`with_kernel_exit`)."""
    return f"the kernel died {where}{_exit_text(exit_code)}: {detail}".rstrip(": ")


def with_kernel_exit(evalue: str, exit_code: int | None) -> str:
    """A :func:`kernel_death_evalue` made without the exit code, with it: the executor that launched the
    kernel (its parent) knows how it ended, the worker that attached to it does not."""
    if exit_code is None or " (killed by " in evalue or " (exit code " in evalue:
        return evalue
    head, sep, tail = evalue.partition(": ")
    return f"{head}{_exit_text(exit_code)}{sep}{tail}"


def kernel_environment(spec: AttemptSpec) -> dict[str, str]:
    """The environment an attempt's kernel starts with, without the attempt's context variable: the
    orchestrator's environment when the attempt was prepared, then the task's variables. Without
    ``JPY_PARENT_PID``: jupyter_client sets it to the kernel's launcher (whose death ends the kernel)."""
    return kernel_environment_of(spec.base_env, spec.env)


def kernel_environment_of(base_env: Mapping[str, str] | None, env: Mapping[str, str]) -> dict[str, str]:
    """:func:`kernel_environment` from its parts: ``base_env`` (None: ``os.environ``) and the task's ``env``."""
    merged = {**(base_env if base_env is not None else os.environ), **env}
    merged.pop("JPY_PARENT_PID", None)
    return merged


@dataclass
class AttemptResult:
    """How an attempt that ran to its end finished.

    ``status``: succeeded or failed; ``error``: why it failed (None when it succeeded); ``task_values``: what
    the notebook published; cells are code cells of the executed notebook; ``environment``: what the kernel
    ran in (kernel name or interpreter, requirements, freeze); ``kept_kernel``: the kernel kept alive after a
    failure in a cell (:attr:`AttemptSpec.keep_failed_kernel_seconds`); ``reused_cells``: code cells a resumed
    attempt copied from the failed attempt instead of executing.
    """

    status: ResultStatus
    error: AttemptError | None = None
    task_values: dict[str, Any] = field(default_factory=dict)
    cells_total: int | None = None
    cells_completed: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    kept_kernel: KeptKernelInfo | None = None
    reused_cells: int | None = None


@dataclass
class ExecutorEvent:
    """Something happened to the attempt of ``handle``: one of the worker's messages
    (:mod:`~..schemas.messages`: ``KernelStarted``, ``Progress`` or ``Finished``), whichever executor ran it."""

    handle: Any
    message: WorkerMessage


class TaskExecutor(abc.ABC):
    """Runs attempts. Implementations: :class:`~.local.LocalExecutor` (a process per attempt on this machine)."""

    @abc.abstractmethod
    def prepare(self, spec: AttemptSpec) -> Any:
        """Begin an attempt: start its kernel without executing anything. Returns a handle."""

    @abc.abstractmethod
    def start(self, handle: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        """Execute the prepared attempt with papermill ``parameters`` and the job-run ``context``."""

    @abc.abstractmethod
    def wait(self, timeout: float | None) -> list[ExecutorEvent]:
        """Block up to ``timeout`` seconds (None: until something happens or :meth:`wake`) for events."""

    @abc.abstractmethod
    def wake(self) -> None:
        """Make a blocked :meth:`wait` return now (thread- and signal-handler-safe)."""

    @abc.abstractmethod
    def kill(self, handle: Any) -> None:
        """Stop an attempt now: its kernel and worker are gone when this returns. No ``finished`` event follows."""

    @abc.abstractmethod
    def discard(self, handle: Any) -> None:
        """Drop a prepared attempt that will not start (its kernel is shut down)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Kill every attempt still alive and release resources."""

    def prelaunch(self, kernel_name: str, cwd: str, env: dict[str, str], marker: str, count: int = 1) -> None:  # noqa: B027 - optional: a no-op by default
        """Start ``count`` kernels for attempts not prepared yet, if the executor can (default: nothing). See
        :meth:`~.local.LocalExecutor.prelaunch`."""
