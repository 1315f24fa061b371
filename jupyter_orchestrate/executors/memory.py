"""MemoryExecutor: attempts that run no kernel and no process, scripted per task, on a fake clock.

For tests and engine benchmarks of :class:`~..engine.runner.Runner`: each attempt of a task takes the next
:class:`Outcome` of its script (succeed, fail with an :class:`~..models.AttemptError`, hang, or make the
executor raise) after a duration in clock seconds. ``wait(timeout)`` never sleeps: it advances the
:class:`FakeClock` to the next attempt end (at most ``timeout``), so a run of minutes of fake time takes
milliseconds. Give the runner the same clock (``Runner(..., clock=executor.clock)``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jupyter_orchestrate.executors.base import AttemptResult, AttemptSpec, ExecutorEvent, TaskExecutor
from jupyter_orchestrate.models import AttemptError, AttemptErrorKind, ResultStatus
from jupyter_orchestrate.schemas.messages import Finished


class FakeClock:
    """Monotonic seconds that move only when advanced; callbacks run when their time is reached.

    Args:
        now: the starting time in seconds.
    """

    def __init__(self, now: float = 0.0):
        self.now = now
        self._calls: list[tuple[float, int, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the clock reaches ``when`` (from :meth:`advance_to`)."""
        heapq.heappush(self._calls, (when, len(self._calls), callback))

    def next_call(self) -> float | None:
        """The time of the earliest pending callback, or None."""
        return self._calls[0][0] if self._calls else None

    def advance_to(self, when: float) -> None:
        """Move to ``when`` (never backwards), running the callbacks due on the way in time order."""
        while self._calls and self._calls[0][0] <= when:
            at, _, callback = heapq.heappop(self._calls)
            self.now = max(self.now, at)
            callback()
        self.now = max(self.now, when)


@dataclass(frozen=True)
class Outcome:
    """What one scripted attempt does: ``kind`` is ``succeed``, ``fail``, ``hang`` (never ends by itself) or
    ``raise`` (the executor's ``start`` raises ``RuntimeError(message)``, like a broken executor); it ends
    ``seconds`` after its start with ``values`` (task values) or ``error``."""

    kind: str
    seconds: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)
    error: AttemptError | None = None
    message: str = ""


def succeed(seconds: float = 0.0, **values: Any) -> Outcome:
    """An attempt that succeeds after ``seconds``, publishing ``values`` as task values."""
    return Outcome("succeed", seconds, values=values)


def fail(
    seconds: float = 0.0, ename: str = "ValueError", evalue: str = "scripted failure", cell_index: int = 0
) -> Outcome:
    """An attempt that fails in a cell after ``seconds`` with ``ename: evalue``."""
    return Outcome(
        "fail",
        seconds,
        error=AttemptError(
            kind=AttemptErrorKind.cell_error, ename=ename, evalue=evalue, cell_index=cell_index
        ),
    )


def hang() -> Outcome:
    """An attempt that never ends by itself (only a timeout or a cancel ends it)."""
    return Outcome("hang")


def crash(message: str = "the executor broke") -> Outcome:
    """An attempt whose start makes the executor raise ``RuntimeError(message)``."""
    return Outcome("raise", message=message)


@dataclass(eq=False)
class MemoryHandle:
    """A prepared or started scripted attempt."""

    spec: AttemptSpec
    outcome: Outcome | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    ends_at: float | None = None
    worker_pid: int | None = None
    state: str = "prepared"  # prepared, started, finished, killed, discarded
    seq: int = 0  # position in MemoryExecutor.handles: simultaneous ends are reported in that order


class MemoryExecutor(TaskExecutor):
    """Runs scripted attempts (see the module docstring).

    Args:
        script: ``{task_key: [Outcome, ...]}``, one outcome per attempt in order; a task without a script, or
            whose script is used up, takes ``default``.
        clock: the fake clock (a new one from 0 by default); ``wait`` advances it.
        default: the outcome of unscripted attempts.

    Attributes: ``handles``: every handle in the order prepared (their ``state``, ``parameters``, times).
    """

    def __init__(
        self,
        script: dict[str, Iterable[Outcome]] | None = None,
        *,
        clock: FakeClock | None = None,
        default: Outcome | None = None,
    ):
        self.clock = clock or FakeClock()
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.default = default or succeed()
        self.handles: list[MemoryHandle] = []
        self._live: dict[
            int, MemoryHandle
        ] = {}  # started handles by seq: wait looks at these, not every handle
        self._woken = False

    def started(self, task_key: str | None = None) -> list[MemoryHandle]:
        """Handles that were started (of ``task_key``), in start order."""
        found = [h for h in self.handles if h.started_at is not None and task_key in (None, h.spec.task_key)]
        return sorted(found, key=lambda h: h.started_at or 0.0)

    def prepare(self, spec: AttemptSpec) -> MemoryHandle:
        handle = MemoryHandle(spec, seq=len(self.handles))
        self.handles.append(handle)
        return handle

    def start(self, handle: MemoryHandle, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        queue = self.script.get(handle.spec.task_key) or []
        outcome = queue.pop(0) if queue else self.default
        if outcome.kind == "raise":
            raise RuntimeError(outcome.message)
        handle.outcome, handle.parameters, handle.context = outcome, parameters, context
        handle.state, handle.started_at = "started", self.clock.now
        handle.ends_at = None if outcome.kind == "hang" else self.clock.now + outcome.seconds
        self._live[handle.seq] = handle

    def wake(self) -> None:
        self._woken = True

    def _due(self) -> list[ExecutorEvent]:
        events = []
        now = self.clock.now
        for seq in sorted(s for s, h in self._live.items() if h.ends_at is not None and h.ends_at <= now):
            handle = self._live.pop(seq)
            if handle.state == "started":
                handle.state = "finished"
                outcome = handle.outcome
                assert outcome is not None
                result = AttemptResult(
                    status=ResultStatus.succeeded if outcome.kind == "succeed" else ResultStatus.failed,
                    error=outcome.error.model_copy() if outcome.error else None,
                    task_values=dict(outcome.values),
                )
                events.append(ExecutorEvent(handle, Finished(result)))
        return events

    def wait(self, timeout: float | None) -> list[ExecutorEvent]:
        """Return the attempts that ended by now; else advance the clock to the next end or clock callback, at
        most ``timeout`` seconds, and return what ended then.

        Raises:
            RuntimeError: ``timeout`` is None and nothing could ever happen (the runner would block forever).
        """
        if self._woken:
            self._woken = False
            return []
        events = self._due()
        if events:
            return events
        ends = [h.ends_at for h in self._live.values() if h.state == "started" and h.ends_at is not None]
        call = self.clock.next_call()
        upcoming = [t for t in (*ends, call) if t is not None]
        if timeout is None and not upcoming:
            raise RuntimeError(
                "wait(None) with nothing in flight that could ever end: the runner would block forever"
            )
        target = self.clock.now + timeout if timeout is not None else min(upcoming)
        if upcoming:
            target = min(target, *upcoming)
        self.clock.advance_to(target)
        if self._woken:
            self._woken = False
        return self._due()

    def kill(self, handle: MemoryHandle) -> None:
        if handle.state in ("prepared", "started"):
            handle.state = "killed"
            self._live.pop(handle.seq, None)

    def discard(self, handle: MemoryHandle) -> None:
        if handle.state == "prepared":
            handle.state = "discarded"

    def close(self) -> None:
        for handle in self.handles:
            self.kill(handle)
