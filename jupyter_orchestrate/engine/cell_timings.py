"""What the runner keeps of an attempt's per-cell execution times (the executor streams one
:class:`~..schemas.messages.CellTimed` per executed code cell; the runner records the kept ones when the attempt
ends), bounded so that a notebook of many thousands of cells cannot grow the database without limit."""

from __future__ import annotations

import heapq
import os
from collections.abc import Mapping

from jupyter_orchestrate.errors import Problem, ValidationError
from jupyter_orchestrate.models import CellStatus, CellTiming, seconds_between

#: Cell timings kept per attempt by default.
DEFAULT_MAX_CELL_TIMINGS = 2_000
#: The orchestrator's environment variable that sets how many cell timings are kept per attempt.
MAX_CELL_TIMINGS_ENV = "JUPYTER_ORCHESTRATE_MAX_CELL_TIMINGS"


def max_cell_timings(environ: Mapping[str, str] | None = None) -> int:
    """Cell timings kept per attempt: ``JUPYTER_ORCHESTRATE_MAX_CELL_TIMINGS`` if set (0 keeps none), else
    :data:`DEFAULT_MAX_CELL_TIMINGS`.

    Raises:
        ValidationError: the variable is set but not a whole number >= 0 (the problem names the variable).
    """
    text = (os.environ if environ is None else environ).get(MAX_CELL_TIMINGS_ENV)
    if text is None or not text.strip():
        return DEFAULT_MAX_CELL_TIMINGS
    try:
        value = int(text.strip().replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationError(
            Problem("", MAX_CELL_TIMINGS_ENV, f"must be a whole number of cells (0 or more), not {text!r}")
        )
    return value


class CellTimings:
    """The cell timings of one attempt as they arrive, at most ``limit`` of them: beyond it the fastest ``ok``
    cells are dropped first (trends look for slow and failing cells), so failed cells and the slowest stay.

    ``begin`` notes the cell that started executing (from the executor's progress); a cell that never reports
    its end (the attempt was killed by a timeout or cancel, or its kernel died) is kept by :meth:`close` as an
    ``error`` ending then.
    """

    def __init__(self, limit: int = DEFAULT_MAX_CELL_TIMINGS):
        self.limit = limit
        self.dropped = 0
        self._heap: list[tuple[bool, float, int, CellTiming]] = []  # min-heap: the first to drop on top
        self._open: tuple[int, int | None, str] | None = None

    def begin(self, cell_number: int, cell_index: int | None, start_time: str) -> None:
        """Code cell ``cell_number`` (1-based) began at ``start_time`` (UTC ISO-8601)."""
        self._open = (cell_number, cell_index, start_time)

    def add(self, timing: CellTiming) -> None:
        """A cell finished executing (ok or error)."""
        if self._open is not None and self._open[0] == timing.cell_number:
            self._open = None
        item = (timing.status == CellStatus.error, timing.duration_seconds, timing.cell_number, timing)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif self._heap and item[:3] > self._heap[0][:3]:
            heapq.heapreplace(self._heap, item)
            self.dropped += 1
        else:
            self.dropped += 1

    def close(self, end_time: str) -> list[CellTiming]:
        """The kept timings in execution order, with the cell still executing (if any) ended at ``end_time``
        as an ``error``."""
        if self._open is not None:
            number, index, start = self._open
            self._open = None
            self.add(
                CellTiming(
                    cell_number=number,
                    cell_index=index,
                    start_time=start,
                    end_time=end_time,
                    duration_seconds=max(seconds_between(start, end_time) or 0.0, 0.0),
                    status=CellStatus.error,
                )
            )
        return sorted((t for *_, t in self._heap), key=lambda t: t.cell_number)
