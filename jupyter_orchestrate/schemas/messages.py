"""Messages over the pipe between an attempt's worker process and its executor, defined once.

The worker (:mod:`~..executors.worker`) and :class:`~..executors.local.LocalExecutor` exchange these frozen
dataclasses (pickled by ``multiprocessing``); executors hand the worker's messages to the runner inside
:class:`~..executors.base.ExecutorEvent`. This module is imported by the forkserver and every worker: it stays
free of heavy imports.

- worker -> parent (:data:`WorkerMessage`): :class:`KernelStarted` once the kernel is ready, :class:`Progress`
  before each code cell, :class:`CellTimed` after each code cell, :class:`Finished` with the :class:`~..executors.base.AttemptResult` (last message).
- parent -> worker (:data:`ParentMessage`): :class:`Go` to execute, :class:`Stop` to shut down at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupyter_orchestrate.executors.base import AttemptResult
from jupyter_orchestrate.models import CellTiming


@dataclass(frozen=True)
class KernelStarted:
    """The attempt's kernel is ready: its process id and start time (``psutil`` ``create_time``, seconds since
    the epoch; None when it could not be read), so recovery can tell the process from a reused pid, and when it
    became ready (``ready_time``, UTC ISO, the worker's clock; the Gantt's kernel-start phase ends there)."""

    pid: int | None
    create_time: float | None
    ready_time: str | None = None


@dataclass(frozen=True)
class Progress:
    """The attempt began code cell ``cell`` (1-based; 0 before the first) of ``total``; ``cell_index`` is the
    cell's 0-based index in the input notebook (None for the injected-parameters cell, and before the first)."""

    cell: int
    total: int
    cell_index: int | None = None


@dataclass(frozen=True)
class CellTimed:
    """The attempt finished executing a code cell (the kernel replied, ok or error): when and how long."""

    timing: CellTiming


@dataclass(frozen=True)
class Finished:
    """The attempt ran to its end (or could not run): how it finished."""

    result: AttemptResult


@dataclass(frozen=True)
class Go:
    """Execute the prepared attempt with papermill ``parameters`` and the job-run ``context``."""

    parameters: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    """Kill the kernel and exit now."""


WorkerMessage = KernelStarted | Progress | CellTimed | Finished
"""What a worker sends its parent."""
ParentMessage = Go | Stop
"""What the parent sends a worker."""
