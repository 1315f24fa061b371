"""The workspace: the one function that confines a path to a root folder.

Every path the orchestrator reads, writes or executes on behalf of a request or a job file (job folders,
job.yaml, notebooks, requirements files, interpreters, working directories, logs, the job of a stored run)
goes through :func:`confine`, so "inside the root" is decided in one place: after resolving ``..`` and
symlinks. This module imports only :mod:`.errors`, so discovery can call it too.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_orchestrate.errors import PathOutsideRootError, Problem, ValidationError


def confine(path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str, within: str = "the root") -> Path:
    """``path`` resolved (``..`` and symlinks followed), provided it stays inside ``root``.

    Args:
        path: absolute, or relative to ``root``; it need not exist (``Path.resolve(strict=False)``), so a
            missing file inside the root is returned and the caller reports "not found".
        root: the folder the path must stay in (resolved as well, so a root reached through a symlink works).
        what: what the path is, for the message, e.g. ``"notebook of task 'x'"``.
        within: how the message names ``root``, e.g. ``"the server root"`` or ``"the job folder"``.

    Returns: the resolved absolute path (equal to the resolved root, or below it).

    Raises:
        PathOutsideRootError: the resolved path is not inside the resolved root; the message names ``what``
            and ``path`` as given (never the outside target a symlink points to).
        ValidationError: the path contains a NUL byte (no file can have such a name).
    """
    text = os.fspath(path)
    if "\x00" in text:
        raise ValidationError(Problem("", "", f"{what} {text!r} contains a NUL byte"))
    base = Path(root).resolve()
    resolved = (base / text).resolve()  # an absolute ``text`` replaces ``base``
    if not resolved.is_relative_to(base):
        raise PathOutsideRootError(Problem("", "", f"{what} {text!r} leads outside {within}"))
    return resolved
