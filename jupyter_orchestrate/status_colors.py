"""How each run and task run status looks, in one table: the CLI's rich style, the notebook widget's colour
and progress bar style. The status predicates (terminal, failure) are the enums' own
(:class:`~.models.RunStatus`, :class:`~.models.TaskRunStatus`); the sidebar's are ``labextension/src/status.ts``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jupyter_orchestrate.models import RunStatus, TaskRunStatus


@dataclass(frozen=True)
class StatusLook:
    """``rich``: a rich style (CLI tables and progress); ``color``: a CSS colour (widget badges);
    ``bar``: an ipywidgets ``bar_style`` ("" for the default)."""

    rich: str
    color: str
    bar: str = ""


UNKNOWN = StatusLook(rich="", color="#9e9e9e")

LOOKS: dict[str, StatusLook] = {
    TaskRunStatus.pending.value: StatusLook("dim", "#9e9e9e"),
    TaskRunStatus.queued.value: StatusLook("cyan", "#64b5f6"),
    TaskRunStatus.running.value: StatusLook("bold blue", "#1976d2", "info"),
    TaskRunStatus.up_for_retry.value: StatusLook("yellow", "#ffb300"),
    TaskRunStatus.succeeded.value: StatusLook("green", "#2e7d32", "success"),
    TaskRunStatus.failed.value: StatusLook("bold red", "#c62828", "danger"),
    TaskRunStatus.upstream_failed.value: StatusLook("red", "#ef6c00", "warning"),
    TaskRunStatus.skipped.value: StatusLook("dim", "#9e9e9e"),
    TaskRunStatus.canceled.value: StatusLook("magenta", "#6d4c41"),
    TaskRunStatus.timed_out.value: StatusLook("bold red", "#c62828", "danger"),
    RunStatus.canceling.value: StatusLook("magenta", "#6d4c41"),
}


def look(status: str | RunStatus | TaskRunStatus) -> StatusLook:
    """The look of ``status`` (a status or its value); :data:`UNKNOWN` for anything else."""
    return LOOKS.get(getattr(status, "value", status), UNKNOWN)
