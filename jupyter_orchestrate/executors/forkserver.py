"""The LocalExecutor's forkserver: one per orchestrator process (multiprocessing's), preloading the worker's
imports (:mod:`.preload`, then :mod:`.worker`) so that each attempt's worker is a fork that starts in
milliseconds. Only the standard library is imported here: the CLI starts the forkserver first thing
(:func:`start_in_background`), before it imports anything else, so that its ~1 s of preloading overlaps the
CLI's own start-up instead of delaying the first attempt.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

WORKER_MODULE = "jupyter_orchestrate.executors.worker"
PRELOAD_MODULE = (
    "jupyter_orchestrate.executors.preload"  # imported first: keeps the forkserver's imports lean
)
_MAIN_LOCK = threading.Lock()
_started: threading.Thread | None = None
_started_lock = threading.Lock()


def context() -> Any:
    """The forkserver multiprocessing context, with the worker's preload set."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([PRELOAD_MODULE, WORKER_MODULE])
    return ctx


@contextlib.contextmanager
def bare_main() -> Iterator[None]:
    """Hide the parent's ``__main__`` while a worker or the forkserver starts.

    multiprocessing re-runs the parent's main script in each child (to find pickled functions defined there).
    Workers need only this package, and the parent's main may be anything (a user's script, pytest, a
    Jupyter server, a notebook kernel), so they start with an empty main instead.
    """
    with _MAIN_LOCK:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def _ensure_running() -> None:
    from multiprocessing import forkserver

    context()
    with bare_main():
        forkserver.ensure_running()


def start_in_background() -> threading.Thread:
    """Start this process's forkserver on a thread (once; later calls return the same thread). Join the
    thread before forking a worker."""
    global _started
    with _started_lock:
        if _started is None:
            _started = threading.Thread(target=_ensure_running, name="orchestrate-forkserver", daemon=True)
            _started.start()
        return _started
