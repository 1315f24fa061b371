"""The exception hierarchy of jupyter-orchestrate.

Every error the package raises on purpose derives from :class:`OrchestrateError`, so callers (CLI, server
handlers, widgets) can catch one root and map the subclasses to exit codes or HTTP statuses once:
validation -> 2 / 400, path outside the root -> 2 / 403, not found -> 404, conflict -> 409.

This module is imported inside user kernels (through :mod:`jupyter_orchestrate.task_values`), so it must
stay free of heavy imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class OrchestrateError(Exception):
    """Root of all jupyter-orchestrate errors."""


@dataclass(frozen=True)
class Problem:
    """One validation problem, rendered as ``path: field: message``.

    ``path`` is the file the problem is in (a notebook or ``job.yaml``), ``field`` the dotted location inside
    it (e.g. ``metadata.orchestrate.depends_on``) or ``""`` when the whole file is at fault.

    ``task_key`` is set when the problem belongs to one task (its notebook cannot be read, its kernel is not
    installed): the job still runs, that task fails and its dependents follow their ``run_if``. A problem
    without a task key is the job's (a cycle, an unknown key, an invalid ``job.yaml``): nothing runs.
    ``severity`` is ``error`` or ``warning`` (a warning never stops anything; validation prints it).
    """

    path: str
    field: str
    message: str
    task_key: str | None = None
    severity: str = "error"

    @property
    def is_warning(self) -> bool:
        """True for a warning (the task still runs as papermill would run it)."""
        return self.severity == "warning"

    @property
    def refuses_job(self) -> bool:
        """True for an error of the job as a whole: the run is refused before any kernel starts."""
        return not self.is_warning and self.task_key is None

    def __str__(self) -> str:
        parts = [p for p in (self.path, self.field) if p]
        return ": ".join([*parts, self.message])


def did_you_mean(word: str, allowed: Iterable[str]) -> str | None:
    """``did you mean 'max_parallel_tasks'?`` for the allowed name closest to the misspelt ``word``
    (:func:`difflib.get_close_matches`, the standard cutoff 0.6), or None when none is close."""
    import difflib  # only when a problem is reported (this module is imported in kernels)

    close = difflib.get_close_matches(word, list(allowed), n=1)
    return f"did you mean {close[0]!r}?" if close else None


class ValidationError(OrchestrateError):
    """A job, a request or a command line is invalid; carries every :class:`Problem` found, not just the first."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PathOutsideRootError(ValidationError):
    """A path leads outside the folder it must stay in (the server root, a job folder, the state home), by
    ``..``, an absolute path or a symlink. Raised by :func:`~.workspace.confine`; the API answers 403, the
    CLI exits 2 (it is a usage error like any other :class:`ValidationError`)."""


class NotFoundError(OrchestrateError):
    """A job, run, task or attempt that was asked for does not exist."""


class ConflictError(OrchestrateError):
    """The request conflicts with the current state, e.g. repairing a run that is still running."""


class ExecutorUnavailable(OrchestrateError):
    """The run's executor cannot be used here: its package is not installed (the message says how to install
    it) or its cluster cannot be reached (the message names the address)."""


class TaskValueError(OrchestrateError, ValueError):
    """A task value could not be set or read (not JSON, too large, unknown task, not upstream, missing key)."""


class StoreError(OrchestrateError):
    """The state database cannot be used: disk full, corrupt, not a database, unreadable or read-only.

    The message says what happened, names the file and what to do; ``path`` is the database file.
    """

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class StoreBusyError(StoreError):
    """Another process held the state database's write lock for longer than the busy timeout."""
