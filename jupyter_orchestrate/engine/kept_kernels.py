"""The rules of kept kernels' lives that the runner and the service share: reaping one (its keeper's files
and process, then its record), reconciling records with the processes (a kernel that expired or exited while
no orchestrator ran), and the bound on how many are kept at once (oldest reaped first)."""

from __future__ import annotations

import logging
import os
import time

from jupyter_orchestrate.errors import Problem, ValidationError
from jupyter_orchestrate.executors import keeper
from jupyter_orchestrate.models import KeptKernel, KeptKernelStatus, epoch_of
from jupyter_orchestrate.store import Store

log = logging.getLogger(__name__)

#: The orchestrator's environment variable bounding the kernels kept at once in one state home.
MAX_KEPT_KERNELS_ENV = "JUPYTER_ORCHESTRATE_MAX_KEPT_KERNELS"
DEFAULT_MAX_KEPT_KERNELS = 8


def max_kept_kernels() -> int:
    """The bound on kernels kept at once: ``$JUPYTER_ORCHESTRATE_MAX_KEPT_KERNELS``, else 8.

    Raises: ValidationError naming the variable when it is set but not a whole number >= 0.
    """
    text = os.environ.get(MAX_KEPT_KERNELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_KEPT_KERNELS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationError(Problem("", MAX_KEPT_KERNELS_ENV, f"must be a whole number >= 0, not {text!r}"))
    return value


def control_file(kept: KeptKernel) -> str:
    """The keeper's control file of a kept kernel (beside its connection file)."""
    base = (
        kept.connection_file[: -len(".json")]
        if kept.connection_file.endswith(".json")
        else kept.connection_file
    )
    return f"{base}.keep.json"


def reap(store: Store, kept: KeptKernel, reason: str) -> None:
    """End a kept kernel now: kill it and its keeper's files (:func:`~..executors.keeper.reap`), then record
    ``ended`` with ``reason``. Never raises for a kernel that is gone already."""
    keeper.reap(control_file(kept), kept.kernel_pid, kept.kernel_create_time)
    store.set_kept_kernel_status(
        kept.run_id, kept.task_key, kept.attempt_number, KeptKernelStatus.ended, reason
    )


def reconcile(store: Store, run_id: int | None = None) -> list[KeptKernel]:
    """Bring the records of live kept kernels (of ``run_id``, else all) in line with their processes.

    A kernel no longer running is recorded ``ended`` ("expired" when past its expiry: its keeper killed it;
    else "the kernel exited"); a ``kept`` kernel whose keeper is gone (killed) is reaped, since nothing would
    end it at its expiry. Returns: the kept kernels still alive, oldest first.
    """
    alive = []
    for kept in store.kept_kernels(run_id):
        if not keeper.process_alive(kept.kernel_pid, kept.kernel_create_time):
            past = time.time() >= epoch_of(kept.expires_time)
            why = f"expired at {kept.expires_time}" if past else "the kernel exited"
            store.set_kept_kernel_status(
                kept.run_id, kept.task_key, kept.attempt_number, KeptKernelStatus.ended, why
            )
            keeper.reap(control_file(kept))  # its files, if the keeper did not remove them
        elif kept.status == KeptKernelStatus.kept and not os.path.exists(control_file(kept)):
            reap(store, kept, "reaped: its keeper's control file is gone")
        elif (
            kept.status == KeptKernelStatus.kept
            and kept.keeper_pid
            and not keeper.process_alive(kept.keeper_pid, None)
        ):
            reap(store, kept, "reaped: its keeper process is gone")
        else:
            alive.append(kept)
    return alive


def enforce_bound(store: Store, limit: int | None = None) -> list[KeptKernel]:
    """Reap the oldest ``kept`` kernels of the state home beyond ``limit`` (default :func:`max_kept_kernels`)
    at once; kernels in use by a resume are never reaped here. Returns: the reaped ones."""
    limit = max_kept_kernels() if limit is None else limit
    alive = reconcile(store)
    reaped = []
    for kept in [k for k in alive if k.status == KeptKernelStatus.kept][: max(len(alive) - limit, 0)]:
        reap(store, kept, f"reaped: more than {limit} kernels were kept at once ({MAX_KEPT_KERNELS_ENV})")
        reaped.append(kept)
    return reaped
