"""Kept kernels (table ``kept_kernels``): kernels kept alive after an attempt failed in a cell, for debugging and
resume (:mod:`~jupyter_orchestrate.executors.keeper` owns their processes; this module only records them)."""

from __future__ import annotations

from typing import Any

from jupyter_orchestrate.models import KeptKernel, KeptKernelStatus, utc_now
from jupyter_orchestrate.store.connection import StoreConnection, reads, writes

_LIVE = (KeptKernelStatus.kept.value, KeptKernelStatus.in_use.value)


def kept_kernel_of(row: dict[str, Any]) -> KeptKernel:
    """The :class:`~..models.KeptKernel` of a ``kept_kernels`` row."""
    return KeptKernel(**{k: v for k, v in row.items() if v is not None})


class KeptKernelRecords(StoreConnection):
    """The record of every kept kernel: when it was kept, until when, and how it ended."""

    @writes
    def record_kept_kernel(self, kept: KeptKernel) -> None:
        """Record a kernel kept (or kept again after a resume failed) for an attempt."""
        self.db.table("kept_kernels").insert(kept.model_dump(mode="json"), replace=True)

    @reads
    def kept_kernels(self, run_id: int | None = None, *, live: bool = True) -> list[KeptKernel]:
        """Kept kernels, oldest first: of ``run_id`` (None: of every run); with ``live`` only those ``kept``
        or ``in_use`` (whether their process still runs is the caller's to check)."""
        where: list[str] = []
        args: list[Any] = []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if live:
            where.append("status in (?, ?)")
            args.extend(_LIVE)
        rows = self.db.table("kept_kernels").rows_where(
            " and ".join(where) or None, args, order_by="kept_time, run_id, task_key, attempt_number"
        )
        return [kept_kernel_of(r) for r in rows]

    @writes
    def set_kept_kernel_status(
        self,
        run_id: int,
        task_key: str,
        attempt_number: int,
        status: KeptKernelStatus,
        reason: str | None = None,
    ) -> bool:
        """Set a live kept kernel's status (``ended`` records the end time and ``reason``).

        Returns: False when the record is not live (ended already) or missing; nothing changes then.
        """
        update: dict[str, Any] = {"status": status.value}
        if status == KeptKernelStatus.ended:
            update.update(end_time=utc_now(), end_reason=reason)
        cursor = self.db.execute(
            f"update kept_kernels set {', '.join(f'{k} = ?' for k in update)} "
            "where run_id = ? and task_key = ? and attempt_number = ? and status in (?, ?)",
            [*update.values(), run_id, task_key, attempt_number, *_LIVE],
        )
        return bool(cursor.rowcount)
