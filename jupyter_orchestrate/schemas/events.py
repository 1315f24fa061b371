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

The event stream's messages are typed by :class:`StreamEvent` (one model per kind: the event's fields, ``id``
and ``kind`` as ``type``; the fields :meth:`_Event.wire` may leave out are not required in its JSON Schema), the
source of the sidebar's generated ``StreamEvent`` type; :func:`stream_message` builds each message through it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter

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


# -- the event stream's messages (GET events) ------------------------------------------------------------------
def _absent_unless_set(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """``json_schema_extra`` of the stream messages: a field with a default may be absent (``wire`` leaves out
    the fields that were not set), ``type`` and ``id`` are always there."""
    optional = {
        field.alias or name
        for name, field in model.model_fields.items()
        if not field.is_required() and name != "kind"
    }
    schema["required"] = [name for name in schema.get("required", []) if name not in optional]


class _Streamed(BaseModel):
    """What the stream adds to an event: ``id``, the sequence number (the SSE ``id``; increases in publication
    order). Listed first among the bases' fields."""

    model_config = ConfigDict(json_schema_extra=_absent_unless_set)

    id: int = Field(
        description="Sequence number of the event (the SSE `id`): increases in publication order."
    )


class RunStatusStreamEvent(RunStatusEvent, _Streamed):
    """A ``run_status`` message of the event stream (:class:`RunStatusEvent` with ``id``)."""

    kind: Literal["run_status"] = Field("run_status", alias="type")


class TaskStatusStreamEvent(TaskStatusEvent, _Streamed):
    """A ``task_status`` message of the event stream (:class:`TaskStatusEvent` with ``id``)."""

    kind: Literal["task_status"] = Field("task_status", alias="type")


class ProgressStreamEvent(ProgressEvent, _Streamed):
    """A ``progress`` message of the event stream (:class:`ProgressEvent` with ``id``)."""

    kind: Literal["progress"] = Field("progress", alias="type")


class StreamEvent(
    RootModel[
        Annotated[
            RunStatusStreamEvent | TaskStatusStreamEvent | ProgressStreamEvent, Field(discriminator="kind")
        ]
    ]
):
    """A message of the server's event stream (``GET events``): one of the run events, told apart by
    ``type``."""


STREAM_EVENTS: tuple[type[BaseModel], ...] = (
    StreamEvent,
    RunStatusStreamEvent,
    TaskStatusStreamEvent,
    ProgressStreamEvent,
)
"""The stream's message models, for the JSON Schema export (``schemas.export.EXPORTED``)."""


def stream_message(event_id: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The event stream's message of event number ``event_id``: ``{"id", "type": kind, **payload}`` (the
    payload as :meth:`_Event.wire` gives it) validated as a :class:`StreamEvent`; the same keys, unset fields
    still left out.

    Raises:
        pydantic.ValidationError: ``kind`` is not an event kind, or ``payload`` does not fit it (also for an
            extra key).
    """
    message = StreamEvent.model_validate({"id": event_id, "type": kind, **payload}).root
    return message.model_dump(mode="json", by_alias=True, exclude_unset=True)


# -- jupyter_server's event bus (the sidebar's channel) --------------------------------------------------------
EVENT_SCHEMA_ID = "https://events.jupyter-orchestrate.org/run_event/v1"
"""The ``schema_id`` of the run events on jupyter_server's event bus (``serverapp.event_logger``); JupyterLab's
``serviceManager.events.stream`` emissions with this ``schema_id`` are :class:`StreamEvent` messages. The
sidebar's copy is ``EVENT_SCHEMA_ID`` in ``labextension/src/channel.ts`` (a test keeps them equal)."""
EVENT_SCHEMA_VERSION = "1"


def event_schema() -> dict[str, Any]:
    """The jupyter_events schema of :data:`EVENT_SCHEMA_ID`: :class:`StreamEvent`'s JSON Schema (one of the three
    messages, each closed: ``additionalProperties: false``, so nothing but the event's own fields can be emitted)
    with the ``$id``, ``version`` and top-level ``properties`` (``id``, ``type``, ``run_id``) that jupyter_events'
    metaschema asks for. Built from the models, never written by hand.
    """
    body = StreamEvent.model_json_schema(mode="serialization", by_alias=True)
    return {
        "$id": EVENT_SCHEMA_ID,
        "version": EVENT_SCHEMA_VERSION,
        "title": "jupyter-orchestrate run event",
        "description": "A run, task run or cell progress event of jupyter-orchestrate (a StreamEvent, "
        "jupyter_orchestrate/schemas/events.py; docs/api.md).",
        "type": "object",
        "properties": {
            "id": {"type": "integer", "description": "Sequence number (publication order)."},
            "type": {"enum": sorted(EVENT_KINDS), "description": "Which event it is."},
            "run_id": {"type": "integer", "description": "The run."},
        },
        "required": ["id", "type", "run_id"],
        "oneOf": body["oneOf"],
        "$defs": body["$defs"],
    }
