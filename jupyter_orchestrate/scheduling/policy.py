"""The scheduling rules that the scheduler, the service (schedule listing, pause, trigger now, backfill) and
the CLI's backfill share, each defined once: schedule and trigger names, the effective pause state, and the
``max_concurrent_runs`` limit.

It imports only models (the store's records for type checking), so that discovery, the service and the scheduler can all
import it at module level (no function-level import hiding a service ↔ scheduling cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from jupyter_orchestrate.models import Schedule, TriggerSpec

if TYPE_CHECKING:  # the CLI imports discovery, and so this module, before the store
    from jupyter_orchestrate.store.records import ScheduleState


def schedule_name(schedule: Schedule, index: int) -> str:
    """A schedule's name: its ``name``, else ``schedule-<n>`` (1-based position in job.yaml)."""
    return schedule.name or f"schedule-{index + 1}"


def trigger_name(trigger: TriggerSpec, index: int) -> str:
    """A trigger's name: its ``name``, else ``file_arrival-<n>`` / ``job_completion-<n>`` (1-based)."""
    kind = "file_arrival" if trigger.file_arrival else "job_completion"
    return trigger.name or f"{kind}-{index + 1}"


def trigger_state_name(name: str) -> str:
    """The name under which a trigger's state and fires are stored (beside the schedules' names)."""
    return f"trigger:{name}"


def named_schedules(schedules: Sequence[Schedule]) -> dict[str, Schedule]:
    """The schedules of a job by name (:func:`schedule_name`), in job.yaml order."""
    return {schedule_name(s, i): s for i, s in enumerate(schedules)}


def effective_paused(schedule: Schedule, state: ScheduleState | None) -> bool:
    """Whether the schedule is paused: a pause or resume stored in the state home (UI, CLI) overrides
    ``paused`` in job.yaml."""
    if state is not None and state.paused is not None:
        return state.paused
    return schedule.paused


class ActiveRuns(Protocol):
    """What the concurrency limit reads: the store's unfinished runs of a job."""

    def active_runs(self, job_path: str) -> list[int]:
        """Ids of the job's queued, running or canceling runs, oldest first."""
        ...


def concurrency_block(store: ActiveRuns, job_path: str, limit: int) -> str | None:
    """The ``max_concurrent_runs`` rule: None when a new run of the job at ``job_path`` may start now (fewer
    than ``limit`` of its runs are queued, running or canceling, in any process on the state home), else why
    not (names the active runs)."""
    active = store.active_runs(job_path)
    if len(active) < limit:
        return None
    return f"max_concurrent_runs={limit} reached (active runs: {', '.join(map(str, active))})"
