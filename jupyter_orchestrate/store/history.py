"""Per-cell execution times of attempts (table ``cells``) and the aggregates a job's trends read from them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jupyter_orchestrate.models import CellStatus, CellTiming
from jupyter_orchestrate.store.connection import StoreConnection, reads, writes
from jupyter_orchestrate.store.records import CellStats

#: SQLite's default limit on bound parameters is 32,766; run id lists are cut well below it.
_MAX_IDS = 900


class HistoryRecords(StoreConnection):
    """Cell timings of attempts, and the slowest cells of a job's tasks over a set of runs."""

    @writes
    def record_cells(
        self, run_id: int, task_key: str, attempt_number: int, timings: Iterable[CellTiming]
    ) -> None:
        """Record (or replace) the cell timings of one attempt; ``timings`` is what the runner kept (bounded)."""
        self.db.table("cells").insert_all(
            (
                {
                    "run_id": run_id,
                    "task_key": task_key,
                    "attempt_number": attempt_number,
                    "cell_number": t.cell_number,
                    "cell_index": t.cell_index,
                    "start_time": t.start_time,
                    "end_time": t.end_time,
                    "duration_seconds": t.duration_seconds,
                    "status": t.status.value,
                    "source_first_line": t.source_first_line,
                }
                for t in timings
            ),
            replace=True,
        )

    @reads
    def cell_timings(self, run_id: int, task_key: str, attempt_number: int) -> list[CellTiming]:
        """The recorded cell timings of one attempt, in execution order ([] when none were recorded)."""
        rows = self.db.table("cells").rows_where(
            "run_id = ? and task_key = ? and attempt_number = ?",
            [run_id, task_key, attempt_number],
            order_by="cell_number",
        )
        return [
            CellTiming(
                cell_number=r["cell_number"],
                cell_index=r["cell_index"],
                start_time=r["start_time"],
                end_time=r["end_time"],
                duration_seconds=r["duration_seconds"],
                status=CellStatus(r["status"]),
                source_first_line=r["source_first_line"],
            )
            for r in rows
        ]

    @reads
    def slowest_cells(self, run_ids: list[int], per_task: int = 5) -> list[CellStats]:
        """The ``per_task`` slowest cells of each task over the runs ``run_ids`` (every attempt), slowest first
        by mean duration, with every duration of each (for medians). At most :data:`_MAX_IDS` runs are read
        (the newest ids given); an empty list reads nothing.

        Returns: per task ordered by task_key, then slowest first.
        """
        ids = sorted(run_ids)[-_MAX_IDS:]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        top = self.db.execute(
            f"""
            select task_key, cell_index, executions, max_duration from (
                select task_key, cell_index, count(*) as executions, max(duration_seconds) as max_duration,
                       row_number() over (partition by task_key order by avg(duration_seconds) desc,
                                          cell_index) as rank
                from cells where run_id in ({marks}) group by task_key, cell_index)
            where rank <= ? order by task_key, rank
            """,
            [*ids, per_task],
        ).fetchall()
        found: list[CellStats] = []
        for task_key, cell_index, executions, max_duration in top:
            rows: list[Any] = self.db.execute(
                f"""select duration_seconds, source_first_line from cells
                    where run_id in ({marks}) and task_key = ? and cell_index is ?
                    order by run_id, attempt_number""",
                [*ids, task_key, cell_index],
            ).fetchall()
            source = next((line for _, line in reversed(rows) if line), None)
            found.append(
                CellStats(
                    task_key=task_key,
                    cell_index=cell_index,
                    executions=executions,
                    max_duration_seconds=max_duration,
                    durations=tuple(d for d, _ in rows),
                    source_first_line=source,
                )
            )
        return found
