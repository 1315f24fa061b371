"""The workspace: the one rule that finds the state home (:func:`find_state_home`) and the one function that
confines a path to a root folder (:func:`confine`).

Every path the orchestrator reads, writes or executes on behalf of a request or a job file (job folders,
job.yaml, notebooks, requirements files, interpreters, working directories, logs, the job of a stored run)
goes through :func:`confine`, so "inside the root" is decided in one place: after resolving ``..`` and
symlinks. This module imports only :mod:`.errors`, so discovery can call it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jupyter_orchestrate.errors import PathOutsideRootError, Problem, ValidationError


def confine(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str, within: str = "the root"
) -> Path:
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


# -- the state home ------------------------------------------------------------------------------------------
HOME_ENV = "JUPYTER_ORCHESTRATE_HOME"
HOME_NAME = (
    "orchestrate_runs"  # one visible name for every entry point (the contents API refuses hidden paths)
)
OLD_HOME_NAMES = (".orchestrate",)  # earlier CLI and Python API default; still found and used as it is
DB_NAME = "orchestrate.db"


@dataclass(frozen=True)
class StateHome:
    """The state home an entry point uses, and how it was chosen.

    Attributes:
        path: the folder (absolute, resolved); it may not exist yet when ``kind`` is ``"new"``.
        kind: ``"explicit"`` (``--home``, ``home=``, ``OrchestrateApp.state_home``), ``"environment"``
            (``$JUPYTER_ORCHESTRATE_HOME``), ``"found"`` (an existing home found walking up) or ``"new"``.
        how: for messages, e.g. ``"found above the job folder"``, ``"new, at the root of the git repository"``.
    """

    path: Path
    kind: str
    how: str

    @property
    def exists(self) -> bool:
        """Whether the home's database exists now."""
        return (self.path / DB_NAME).is_file()

    def __str__(self) -> str:
        return f"{self.path} ({self.how})"


def _home_in(folder: Path) -> Path | None:
    """The state home directly inside ``folder``: ``orchestrate_runs`` first, then an old ``.orchestrate``."""
    for name in (HOME_NAME, *OLD_HOME_NAMES):
        if (folder / name / DB_NAME).is_file():
            return folder / name
    return None


def workspace_root(job_folder: Path) -> Path:
    """The folder the paths a job names outside its own folder must stay in (a run-job task's job): the root
    of the git repository enclosing ``job_folder``, else its parent folder (jobs side by side)."""
    folder = job_folder.resolve()
    return git_root(folder) or folder.parent


def git_root(start: Path) -> Path | None:
    """The root of the git repository (or worktree) enclosing ``start``: the nearest folder with a ``.git``
    directory or file. Plain file-system checks, no ``git`` subprocess."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def find_state_home(
    start: str | os.PathLike[str] | None,
    *,
    explicit: str | os.PathLike[str] | None,
    server_root: str | os.PathLike[str] | None = None,
    explicit_name: str = "--home",
    start_name: str = "the job folder",
) -> StateHome:
    """The one rule that decides the state home, for the CLI, the server, the scheduler and the Python API.

    1. ``explicit`` if given (``--home``, ``home=``, the server's ``OrchestrateApp.state_home``), else
       ``$JUPYTER_ORCHESTRATE_HOME`` (the server exports its home there for its kernels and terminals).
    2. Else the nearest existing home walking up from ``start`` (or, when ``start`` is None, from the server
       root under a server, else the current directory), like git finds ``.git``: a folder's
       ``orchestrate_runs/orchestrate.db``, else its old ``.orchestrate/orchestrate.db``. The walk stops at the
       root of the enclosing git repository (a home above it belongs to another workspace), else at ``/``.
    3. Else a new ``orchestrate_runs`` at the top of the workspace: the server root under a server; otherwise
       the root of the git repository enclosing ``start`` if there is one, else the current directory.

    An old ``.orchestrate`` is used where it is, never renamed: a process may have its WAL database open
    (renaming it under a live run would split the history), and its rows record the absolute paths of
    executed notebooks, logs and cached environments. Where both names exist in one folder, ``orchestrate_runs``
    wins and ``how`` names the other so its runs can still be read with ``--home``.

    Args:
        start: the job folder of the command (relative to the current directory), or None.
        explicit: a home given by the user; relative to the current directory.
        server_root: the Jupyter server's root (under a server), else None.
        explicit_name: how ``explicit`` was given, for :attr:`StateHome.how`.
        start_name: what ``start`` is, for :attr:`StateHome.how` (e.g. ``"the scheduler's root"``).

    Returns: the :class:`StateHome`; nothing is created.
    """
    if explicit:
        return StateHome(Path(explicit).expanduser().resolve(), "explicit", f"given by {explicit_name}")
    if os.environ.get(HOME_ENV):
        return StateHome(
            Path(os.environ[HOME_ENV]).expanduser().resolve(), "environment", f"from ${HOME_ENV}"
        )
    if start is not None:
        origin, origin_name = Path(start).expanduser().resolve(), start_name
    elif server_root is not None:
        origin, origin_name = Path(server_root).expanduser().resolve(), "the server root"
    else:
        origin, origin_name = Path.cwd().resolve(), "the current directory"
    top = git_root(origin)
    for folder in (origin, *origin.parents):
        found = _home_in(folder)
        if found is not None:
            where = "in" if folder == origin else "above"
            how = f"found {where} {origin_name}"
            if found.name != HOME_NAME:
                how += f"; old name {found.name}, used as it is"
            elif _home_in_old(folder):
                how += f"; {folder / OLD_HOME_NAMES[0]} beside it holds older runs (read them with --home)"
            return StateHome(found, "found", how)
        if folder == top:
            break
    if server_root is not None:
        return StateHome(
            Path(server_root).expanduser().resolve() / HOME_NAME, "new", "new, in the server root"
        )
    if top is not None:
        return StateHome(top / HOME_NAME, "new", "new, at the root of the git repository")
    return StateHome(Path.cwd().resolve() / HOME_NAME, "new", "new, in the current directory")


def _home_in_old(folder: Path) -> bool:
    return any((folder / name / DB_NAME).is_file() for name in OLD_HOME_NAMES)
