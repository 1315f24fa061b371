"""Run events: what a runner reports while it executes a run, defined once.

The runner builds one of these models per event; listeners (``service.listeners``, ``Runner.listeners``)
receive it on the wire as ``(kind, payload)``, the JSON shape the server's event stream sends to the sidebar
(``{"id", "type": kind, **payload}``) and that notifications read. :meth:`_Event.wire` makes that shape (only
the fields that were set, so a ``run_status`` without a reason has no ``reason`` key, as before) and
:func:`parse_event` turns it back into a model, so that no reader indexes the payload by string keys.

Kinds:

- ``run_status`` (:class:`RunStatusEvent`): the run's status changed; ``reason`` for canceling and ends,
  ``job_name`` from the state-home watcher (runs of other processes).
- ``task_status`` (:class:`TaskStatusEvent`): a task run's status changed; ``attempt_number`` is the number of
  attempts so far (from the runner; the watcher does not know it).
- ``progress`` (:class:`ProgressEvent`): an attempt began executing code cell ``cell`` of ``total`` (0 before
  the first).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from jupyter_orchestrate.models import RunStatus, TaskRunStatus


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: int
    kind: str  # a Literal in each event class

    def wire(self) -> tuple[str, dict[str, Any]]:
        """``(kind, payload)``: the event as listeners and the event stream receive it (statuses as their
        string values; fields that were not set are left out)."""
        payload = self.model_dump(mode="json", exclude_unset=True, exclude={"kind"})
        return self.kind, {"run_id": self.run_id, **payload}


class RunStatusEvent(_Event):
    """The run's status changed (``reason`` says why for canceling, failed and canceled)."""

    kind: Literal["run_status"] = "run_status"
    status: RunStatus
    reason: str | None = None
    job_name: str | None = None


class TaskStatusEvent(_Event):
    """A task run's status changed; ``attempt_number``: attempts so far (None when unknown)."""

    kind: Literal["task_status"] = "task_status"
    task_key: str
    status: TaskRunStatus
    reason: str | None = None
    attempt_number: int | None = None


class ProgressEvent(_Event):
    """An attempt of ``task_key`` began executing code cell ``cell`` (1-based; 0 before the first) of ``total``."""

    kind: Literal["progress"] = "progress"
    task_key: str
    attempt_number: int
    cell: int
    total: int | None = None


RunEvent = Annotated[RunStatusEvent | TaskStatusEvent | ProgressEvent, Field(discriminator="kind")]
"""Any run event (a pydantic discriminated union on ``kind``)."""

_MODELS: dict[str, type[_Event]] = {
    "run_status": RunStatusEvent,
    "task_status": TaskStatusEvent,
    "progress": ProgressEvent,
}
EVENT_KINDS: frozenset[str] = frozenset(_MODELS)

_ADAPTER: TypeAdapter[RunStatusEvent | TaskStatusEvent | ProgressEvent] = TypeAdapter(RunEvent)


def parse_event(kind: str, payload: dict[str, Any]) -> RunStatusEvent | TaskStatusEvent | ProgressEvent:
    """The typed event of a ``(kind, payload)`` pair as listeners receive it (extra keys are ignored).

    Raises:
        pydantic.ValidationError: ``kind`` is not an event kind or the payload does not fit it.
    """
    model = _MODELS.get(kind)
    fields = model.model_fields if model is not None else {}
    # an unknown kind raises, naming the allowed kinds
    return _ADAPTER.validate_python({**{k: v for k, v in payload.items() if k in fields}, "kind": kind})
