"""Validated jobs kept between requests while their files are unchanged.

``GET jobs`` validates every job folder under the roots (parses job.yaml, every notebook, inspects parameter
cells, looks up kernels): with 50 jobs that was about half of the request's time (benchmarks/sidebar_load.py).
A folder's validation depends on the files in it and on the installed kernelspecs, so the result is kept under
a signature of both (every file's and folder's path, size and mtime in nanoseconds; the kernel folders'
mtimes) and reused while the signature is the same. Reading the signature is one ``stat`` per entry, no file
is opened.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from jupyter_orchestrate.discovery import MAX_NOTEBOOK_DEPTH, SKIP_DIRS, STATE_DB, validate_job
from jupyter_orchestrate.errors import Problem
from jupyter_orchestrate.models import Job

Signature = tuple[tuple[str, int, int], ...]


def folder_signature(root: Path, max_depth: int = MAX_NOTEBOOK_DEPTH + 1) -> Signature:
    """``(relative path, size, mtime_ns)`` of ``root`` and every file and folder below it (links followed,
    hidden folders, :data:`~.discovery.SKIP_DIRS` and state homes left out, ``max_depth`` levels), sorted.
    Entries that vanish while it is read are left out (the next request sees the change)."""
    found: list[tuple[str, int, int]] = []

    def visit(folder: Path, depth: int) -> None:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            return
        for entry in entries:
            try:
                st = entry.stat()  # follows links: a link's target changing changes the job
            except OSError:
                continue
            found.append((os.path.relpath(entry.path, root), st.st_size, st.st_mtime_ns))
            if (
                entry.is_dir()
                and depth < max_depth
                and not entry.name.startswith(".")
                and entry.name not in SKIP_DIRS
                and not entry.is_symlink()
                and not os.path.exists(os.path.join(entry.path, STATE_DB))
            ):
                visit(Path(entry.path), depth + 1)

    try:
        st = root.stat()
    except OSError:
        return ()
    found.append((".", st.st_size, st.st_mtime_ns))
    visit(root, 0)
    return tuple(sorted(found))


def kernels_signature() -> Signature:
    """The mtimes of the kernelspec folders of the Jupyter data path, where :func:`~.discovery.installed_kernels`
    looks (installing or removing a kernel changes its folder's mtime, and which tasks' kernels resolve). Not
    ``KernelSpecManager().kernel_dirs``: its default imports IPython (1.7 s on a cold server)."""
    from jupyter_core.paths import jupyter_path

    result = []
    for folder in jupyter_path("kernels"):
        try:
            st = os.stat(folder)
        except OSError:
            continue
        result.append((folder, st.st_size, st.st_mtime_ns))
    return tuple(result)


class DiscoveryCache:
    """:func:`~.discovery.validate_job` results by job folder, reused while the folder's
    :func:`folder_signature` and the :func:`kernels_signature` are unchanged. Thread-safe (handlers call it
    from the server's thread pool); at most ``max_entries`` folders are kept (the oldest dropped first)."""

    def __init__(self, max_entries: int = 1000) -> None:
        self.max_entries = max_entries
        self._entries: dict[Path, tuple[Signature, Signature, Job | None, list[Problem]]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def validate(self, path: Path, kernels: Signature | None = None) -> tuple[Job | None, list[Problem]]:
        """``validate_job(path)``, from the cache when nothing it read has changed since.

        Args:
            kernels: :func:`kernels_signature`, when the caller validates many folders (read once).

        Returns: ``(job, problems)`` as :func:`~.discovery.validate_job` (callers must not change them: the
            same objects are returned to later callers).

        Raises: PathOutsideRootError as :func:`~.discovery.validate_job` (never cached).
        """
        kernels = kernels_signature() if kernels is None else kernels
        signature = folder_signature(path)
        with self._lock:
            entry = self._entries.get(path)
        if entry is not None and entry[0] == signature and entry[1] == kernels:
            self.hits += 1
            return entry[2], entry[3]
        self.misses += 1
        job, problems = validate_job(path)
        with self._lock:
            self._entries.pop(path, None)
            self._entries[path] = (signature, kernels, job, problems)
            while len(self._entries) > self.max_entries:
                self._entries.pop(next(iter(self._entries)))
        return job, problems
