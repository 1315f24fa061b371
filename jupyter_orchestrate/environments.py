"""Task environments: environment variables, secrets, and cached per-requirements virtualenvs.

A task's ``environment`` may declare

- ``env``: environment variables for the kernel. Values may reference the orchestrator's own environment as
  ``${NAME}`` (see :func:`expand_env`), so a secret lives in the orchestrator's environment, not in
  ``job.yaml``. Variables whose names look secret (:func:`is_secret`) have their values replaced by ``***``
  in logs and stored output (:func:`redact`).
- ``requirements`` / ``requirements_file``: Python packages the task needs. Every distinct requirement set
  gets its own virtualenv, built once and shared by every task and run that asks for the same set
  (:class:`EnvironmentCache`). The hash of the set (:func:`environment_hash`) names the venv directory.
  :func:`task_requirements` is the one place a task's requirements are resolved (runner and CLI use it).

Why virtualenvs built with ``--system-site-packages``: the kernel needs ``ipykernel`` and the task needs
``jupyter_orchestrate`` itself (task values); both come from the orchestrator's interpreter. The venv's own
``site-packages`` comes *before* the base's on ``sys.path``, so a package pinned in the requirements (say
``six==1.15.0``) wins over the base's version of it. Requirements the base already satisfies are not
installed again (pip reports them "already satisfied"), which keeps builds fast; the freeze
(``freeze.txt``, ``pip freeze --local``) therefore lists only what the venv itself installed.

Caveats (by design, documented rather than hidden):

- ``PYTHONPATH`` entries come before every ``site-packages`` on ``sys.path``; a package found through
  ``PYTHONPATH`` shadows the venv's pinned version.
- A venv is built by ``virtualenv`` in its final place, under the build lock, and becomes visible to
  :meth:`EnvironmentCache.ensure` only when its ``complete`` marker is written last. Building in place (not
  in a temporary directory that is renamed) keeps the shebangs of console scripts (``bin/pip``,
  ``bin/jupyter`` ...) pointing at the environment's own interpreter, so they work.
- The build lock is a :class:`filelock.FileLock` (``flock`` on POSIX), per requirement set.

This module does nothing at import time.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from jupyter_orchestrate.errors import OrchestrateError, Problem, ValidationError

if TYPE_CHECKING:
    from packaging.specifiers import Specifier
    from packaging.version import Version

    from jupyter_orchestrate.models import Environment

# filelock and packaging are imported where requirements are read or built: most jobs declare none, and
# together they cost ~0.03 s of the CLI's start (issue 15).

__all__ = [
    "SECRET_WORDS",
    "BuiltEnvironment",
    "EnvironmentBuildError",
    "EnvironmentCache",
    "environment_hash",
    "expand_env",
    "is_secret",
    "read_requirements",
    "redact",
    "redact_value",
    "secret_names",
    "task_requirements",
]

#: A variable whose name contains one of these words (case-insensitive) is treated as a secret.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")

#: Secret values shorter than this are not redacted: replacing e.g. ``"1"`` everywhere would make logs
#: unreadable and would itself hint at the value.
_MIN_SECRET_LENGTH = 4

_COMPLETE_MARKER = "complete"
_LAST_USED = "last_used"
_FREEZE = "freeze.txt"
_REQUIREMENTS = "requirements.txt"
_TMP_PREFIX = ".tmp-"  # temp build dirs of earlier versions (and their crashes): pruned


class EnvironmentBuildError(OrchestrateError):
    """Building a task environment failed (``python -m venv`` or ``pip install`` exited non-zero).

    Args:
        message: one line saying what failed, e.g. ``"pip install failed for environment 3fa2...: six==9"``.
        output: the failing command's combined stdout and stderr, verbatim, so the user sees pip's own
            explanation (``No matching distribution found for ...``).

    Attributes:
        output: as passed in.
    """

    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


# ---------------------------------------------------------------------------------------------------------
# environment variables and secrets


def is_secret(name: str, marked: Iterable[str] = ()) -> bool:
    """Whether the environment variable ``name`` holds a secret whose value must never be shown.

    Args:
        name: the variable's name, e.g. ``"GITHUB_TOKEN"``.
        marked: names the user explicitly marked secret (e.g. an environment's ``secrets: [...]`` list);
            matched exactly (case-sensitive, as environment variable names are).

    Returns:
        True when ``name`` is in ``marked`` or contains one of :data:`SECRET_WORDS`, case-insensitively
        (``"api_key"``, ``"DB_PASSWORD"``). The word match errs on the side of hiding: ``"MONKEY"`` counts.
    """
    if name in set(marked):
        return True
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


_REFERENCE = re.compile(r"\$\$\{(?P<escaped>[^}]*)\}|\$\{(?P<name>[^}]*)\}")
_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def expand_env(env: Mapping[str, str], source: Mapping[str, str] | None = None) -> dict[str, str]:
    """Resolve ``${NAME}`` references in environment variable values against the orchestrator's environment.

    ``${NAME}`` is replaced by ``source[NAME]`` (an empty string counts as set). ``$${...}`` is an escape and
    becomes the literal text ``${...}``. Anything else, including a bare ``$NAME``, is left untouched: the
    expansion is deliberately narrower than a shell's so that values with ``$`` in them (passwords) survive.
    References are not recursive: a value taken from ``source`` is not expanded again.

    Why: secrets belong in the orchestrator's environment, not in notebooks or ``job.yaml``; a task says
    ``GITHUB_TOKEN: ${GITHUB_TOKEN}`` and gets the value at launch time.

    Args:
        env: the task's declared variables, name -> value (values may contain references).
        source: where references are looked up; defaults to ``os.environ`` at call time.

    Returns:
        A new dict with the same keys and every value expanded.

    Raises:
        ValidationError: one :class:`~jupyter_orchestrate.errors.Problem` per reference that is not set in
            ``source`` (or is not a valid variable name); each names the referenced variable and, in its
            ``field``, the env key that references it (``env.GITHUB_TOKEN``). All problems are reported at
            once.
    """
    lookup: Mapping[str, str] = os.environ if source is None else source
    problems: list[Problem] = []
    result: dict[str, str] = {}
    for key, value in env.items():
        value = "" if value is None else str(value)

        def replace(match: re.Match[str], key: str = key) -> str:
            if match.group("escaped") is not None:
                return "${" + match.group("escaped") + "}"
            name = match.group("name")
            if not _VALID_NAME.match(name):
                problems.append(
                    Problem("", f"env.{key}", f"${{{name}}} is not a valid environment variable name")
                )
                return match.group(0)
            if name not in lookup:
                problems.append(
                    Problem(
                        "",
                        f"env.{key}",
                        f"references ${{{name}}}, but {name} is not set in the orchestrator's environment",
                    )
                )
                return match.group(0)
            return lookup[name]

        result[key] = _REFERENCE.sub(replace, value)
    if problems:
        raise ValidationError(problems)
    return result


def _forms(secrets: Iterable[str]) -> list[str]:
    """Every spelling of each secret that output may hold, longest first.

    A value is also looked for as it appears inside a JSON string (``"`` -> ``\\"``, non-ASCII as ``\\u00dc``
    or kept), inside a Python ``repr`` of it or of its UTF-8 bytes (``\\`` doubled, ``\\xc3\\x9c``), HTML-escaped
    (``&lt;``, ``&quot;``) and URL-quoted (``%40``, ``+``): printing a dict, bytes, a DataFrame or a request URL
    escapes it so.
    """
    forms: set[str] = set()
    for value in secrets:
        if not value or len(value) < _MIN_SECRET_LENGTH:
            continue
        forms.update(
            (
                value,
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
                repr(value)[1:-1],
                repr(value.encode("utf-8"))[2:-1],  # print(secret.encode()), subprocess output
                html.escape(value),
                html.escape(value, quote=False),  # text/html outputs (a DataFrame)
                urllib.parse.quote(value, safe=""),
                urllib.parse.quote_plus(value),  # URLs in error messages
                urllib.parse.quote(value),
            )
        )
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value in ``text`` with ``***``.

    Args:
        text: log or notebook output text.
        secrets: secret *values* (not names). Empty values and values shorter than 4 characters are ignored:
            redacting ``"1"`` everywhere would wreck the text and reveal the value by its absence.

    Returns:
        ``text`` with the secrets replaced, also where they appear JSON- or ``repr``-escaped. Longer secrets
        are replaced first, so a secret that contains another is hidden completely.
    """
    for form in _forms(secrets):
        if form in text:
            text = text.replace(form, "***")
    return text


def redact_value(value: Any, secrets: Iterable[str]) -> Any:
    """:func:`redact` applied to every string inside ``value``: the one redaction for structured data.

    Args:
        value: a string, or dicts (returned as plain dicts) / lists / tuples of them nested to any depth (keys
            are redacted too), or a
            pydantic model (redacted through ``model_dump`` and rebuilt with ``model_validate``); anything else
            (numbers, None, paths) is returned as it is.
        secrets: secret values, as for :func:`redact`.

    Returns:
        A redacted copy; ``value`` itself is not modified. With no secrets, ``value`` itself.
    """
    forms = _forms(secrets)
    if not forms:
        return value

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            for form in forms:
                if form in item:
                    item = item.replace(form, "***")
            return item
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(walk(v) for v in item)
        if hasattr(item, "model_dump") and hasattr(type(item), "model_validate"):
            return type(item).model_validate(walk(item.model_dump()))
        return item

    return walk(value)


def public_job(job: Any) -> Any:
    """A copy of ``job`` (a :class:`~.models.Job`) fit to store and show: the values of its tasks' secret
    variables (:func:`is_secret`, ``secret_env``) written literally in job.yaml or metadata become ``***``;
    ``${NAME}`` references are kept, since they name a variable and hold no value. Used for the run's stored
    snapshot and the API's job document."""
    tasks = []
    for task in job.tasks:
        env = task.environment.env
        hidden = {
            k: "***" if is_secret(k, task.environment.secret_env) and not _only_reference(v) else v
            for k, v in env.items()
        }
        tasks.append(
            task
            if hidden == env
            else task.model_copy(update={"environment": task.environment.model_copy(update={"env": hidden})})
        )
    return job.model_copy(update={"tasks": tasks})


def _only_reference(value: str) -> bool:
    match = _REFERENCE.fullmatch(value)
    return match is not None and match["name"] is not None


#: Values of the orchestrator's own secret-by-name variables shorter than this are not redacted (short values
#: such as ``KEY=1`` are more likely flags than credentials).
MIN_OWN_SECRET_LENGTH = 8


def secret_names(
    env: Mapping[str, str], marked: Iterable[str] = (), own_env: Mapping[str, str] | None = None
) -> list[str]:
    """Names of the variables whose values a task's output must not show.

    Args:
        env: the task's variables (expanded); those secret by :func:`is_secret` (name or ``marked``) count.
        marked: the task's ``secret_env`` names.
        own_env: the orchestrator's own environment (default ``os.environ``); its variables that are secret by
            name and hold at least :data:`MIN_OWN_SECRET_LENGTH` characters count too, since a kernel inherits
            them.

    Returns:
        The names, sorted. Look the values up in the environment the kernel gets (``own_env`` updated by ``env``).
    """
    own = os.environ if own_env is None else own_env
    names = {k for k in env if is_secret(k, marked)}
    names.update(
        k for k, v in own.items() if k not in env and is_secret(k) and len(v) >= MIN_OWN_SECRET_LENGTH
    )
    return sorted(names)


# ---------------------------------------------------------------------------------------------------------
# requirements and hashing


def _specifier_key(spec: Specifier) -> tuple[int, Version | str, str]:
    """Order of specifiers in a normalized requirement: by version, then operator (``>=2.0,<3``)."""
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(spec.version.removesuffix(".*")), spec.operator)
    except InvalidVersion:  # ``===`` arbitrary strings
        return (1, spec.version, spec.operator)


def _normalize_requirement(line: str, where: str) -> str | None:
    """One requirement line -> its normalized form, or None for a blank/comment line.

    The line is parsed as a PEP 508 requirement (:class:`packaging.requirements.Requirement`) after dropping
    inline comments (``#`` at the start or after whitespace, pip's rule). The normalized form is the
    canonical project name (:func:`packaging.utils.canonicalize_name`: lowercase, ``-``/``_``/``.`` runs ->
    ``-``), sorted canonical extras, the specifiers ordered by version then operator without whitespace,
    then `` @ url`` and ``; marker`` as packaging writes them. So ``Six == 1.15.0`` and ``six==1.15.0`` (and
    ``<3, >=2`` and ``>=2,<3``) hash alike.

    Raises:
        ValidationError: the line is a pip option, or not a valid PEP 508 requirement.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    line = re.sub(r"(^|\s)#.*$", "", line).strip()
    if not line:
        return None
    if line.startswith("-"):
        raise ValidationError(
            Problem(
                where, "", f"pip options are not supported in requirements: {line!r} (list packages only)"
            )
        )
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        raise ValidationError(
            Problem(
                where,
                "",
                f"{line!r} is not a valid requirement (PEP 508, e.g. 'name>=1.2'): {str(exc).splitlines()[0]}",
            )
        ) from None
    text: str = canonicalize_name(requirement.name)
    if requirement.extras:
        text += "[" + ",".join(sorted(canonicalize_name(e) for e in requirement.extras)) + "]"
    text += ",".join(str(spec) for spec in sorted(requirement.specifier, key=_specifier_key))
    if requirement.url:
        text += f" @ {requirement.url}" + (" " if requirement.marker else "")
    if requirement.marker:
        text += f"; {requirement.marker}"
    return text


def read_requirements(requirements: list[str] | None, requirements_file: str | Path | None) -> list[str]:
    """Collect a task's requirements from its inline list and/or its requirements file.

    Args:
        requirements: requirement strings (``"six==1.15.0"``), or None.
        requirements_file: path to a pip-style requirements file (one requirement a line, ``#`` comments,
            blank lines), or None. A relative path is relative to the current directory; callers resolve it
            against the job folder first.

    Returns:
        The normalized (see below), de-duplicated requirement strings, sorted; ``[]`` when there are none.
        Normalizing makes equivalent spellings share one environment: comments and whitespace are stripped,
        whitespace around version operators removed, project names lowercased with ``_``/``.`` -> ``-``.

    Raises:
        ValidationError: the file cannot be read, or a line is a pip option (``-r``, ``-e``,
            ``--index-url`` ...); options would make the environment depend on more than its hash covers.
    """
    found: set[str] = set()
    for item in requirements or []:
        normalized = _normalize_requirement(str(item), "requirements")
        if normalized:
            found.add(normalized)
    if requirements_file is not None:
        path = Path(requirements_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(Problem(str(path), "", f"cannot read requirements file: {exc}")) from exc
        for line in text.splitlines():
            normalized = _normalize_requirement(line, str(path))
            if normalized:
                found.add(normalized)
    return sorted(found)


_PYTHON_INFO_CODE = (
    "import json, sys, sysconfig; print(json.dumps({"
    "'version': '%d.%d.%d' % sys.version_info[:3], 'implementation': sys.implementation.name, "
    "'prefix': sys.prefix, 'base_prefix': sys.base_prefix, "
    "'site_packages': sorted({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})}))"
)
_python_info_cache: dict[str, dict[str, Any]] = {}
_python_info_lock = threading.Lock()


def _python_info(base_python: str) -> dict[str, Any]:
    """Version, implementation, prefixes and site-packages of an interpreter (cached per path).

    The running interpreter is answered in-process; another one is asked with a short subprocess.

    Raises:
        EnvironmentBuildError: the interpreter cannot be run.
    """
    key = os.path.abspath(base_python)
    with _python_info_lock:
        if key in _python_info_cache:
            return _python_info_cache[key]
    if key == os.path.abspath(sys.executable):
        import sysconfig

        info = {
            "version": "{}.{}.{}".format(*sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "site_packages": sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}),
        }
    else:
        try:
            proc = subprocess.run(
                [base_python, "-c", _PYTHON_INFO_CODE],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentBuildError(
                f"cannot run base interpreter {base_python}: {exc}", str(exc)
            ) from exc
        if proc.returncode != 0:
            raise EnvironmentBuildError(
                f"cannot run base interpreter {base_python} (exit {proc.returncode})",
                proc.stdout + proc.stderr,
            )
        info = json.loads(proc.stdout)
    with _python_info_lock:
        _python_info_cache[key] = info
    return info


def task_requirements(environment: Environment, job_root: str | Path) -> list[str]:
    """The requirements of a task's environment: the one rule for reading them (runner and CLI call it).

    Args:
        environment: the task's :class:`~.models.Environment` (``requirements`` and ``requirements_file``).
        job_root: the job folder; a relative ``requirements_file`` is relative to it.

    Returns:
        :func:`read_requirements` of both, normalized and sorted; ``[]`` when the task has none (it then runs
        without a built environment).

    Raises:
        ValidationError: as :func:`read_requirements` (unreadable file, pip option, invalid requirement).
    """
    requirements_file = (
        Path(job_root) / environment.requirements_file if environment.requirements_file else None
    )
    return read_requirements(environment.requirements, requirements_file)


def environment_hash(requirements: list[str], base_python: str = sys.executable) -> str:
    """The identity of an environment: which packages, on top of which interpreter.

    Args:
        requirements: requirement strings; order and duplicates do not matter (they are sorted and
            de-duplicated first). Pass :func:`read_requirements` output so equivalent spellings agree.
        base_python: the interpreter the venv is built from. Its ``major.minor.micro`` version and
            implementation (``cpython``, ``pypy``) are part of the hash, because compiled wheels and the venv's
            ``lib/pythonX.Y`` layout depend on them, and so is its ``sys.prefix`` (the installation or the
            virtual environment it belongs to), because the venv sees that installation's packages
            (``--system-site-packages``, the ``.pth`` of a base venv) and links to its interpreter. Two
            executables of one installation (``python3``, ``python3.11``) share environments.

    Returns:
        The first 16 hex characters of a SHA-256 (64 bits: collisions are not a practical concern for a
        per-user cache), e.g. ``"3fa29c0e1b7d4a55"``.

    Raises:
        EnvironmentBuildError: ``base_python`` is not the running interpreter and cannot be run.
    """
    info = _python_info(base_python)
    payload = json.dumps(
        {
            "requirements": sorted(set(requirements)),
            "python": info["version"],
            "implementation": info["implementation"],
            "prefix": os.path.realpath(info["prefix"]),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# the cache of built environments


@dataclass
class BuiltEnvironment:
    """A ready virtualenv for one requirement set.

    Attributes:
        hash: :func:`environment_hash` of the set; also the directory name.
        path: the venv directory, ``<home>/envs/<hash>``.
        python: ``<path>/bin/python``, the interpreter kernels run on (``bin/``'s console scripts work too).
        requirements: the normalized, sorted requirement strings the env was built for.
        freeze: ``pip freeze --local`` of the venv after the build: the exact versions installed into the
            venv itself (packages satisfied by the base interpreter are not listed).
        built_now: True when this call built it, False when an existing environment was reused.
    """

    hash: str
    path: Path
    python: Path
    requirements: list[str]
    freeze: list[str]
    built_now: bool


def _iso(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, tz=_dt.timezone.utc).isoformat()


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError:
        return []


def _dir_size(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """Hold the lock at ``path`` for the ``with`` block if it is free now; yield whether it is held.

    Every call uses its own :class:`~filelock.FileLock` (its own file descriptor), so threads of one process
    exclude each other as processes do.
    """
    from filelock import FileLock, Timeout

    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


class EnvironmentCache:
    """Builds, reuses, lists and prunes one virtualenv per requirement set.

    Layout under ``home`` (the orchestrator's state directory)::

        <home>/envs/<hash>/            the venv (bin/python, bin/pip, lib/..., pyvenv.cfg)
        <home>/envs/<hash>/complete    marker, JSON {hash, requirements, python, created_time}; written last
        <home>/envs/<hash>/requirements.txt, freeze.txt, last_used (its mtime = last use)
        <home>/envs/<hash>.lock        the build lock (kept; tiny)

    A directory without ``complete`` is a build in progress (its lock is held) or the debris of a crashed
    build (rebuilt by :meth:`ensure`, removed by :meth:`prune`).

    Safe to share between threads, and between processes using the same ``home``: :meth:`ensure` holds an
    exclusive :class:`~filelock.FileLock` on ``<hash>.lock`` while it checks for and builds an environment,
    so a set is built once however many callers need it at the same moment.

    Args:
        home: the state directory; ``envs/`` is created under it on first use.
    """

    def __init__(self, home: str | Path):
        self.home = Path(home)
        self.envs_dir = self.home / "envs"
        self._build_count = 0
        self._count_lock = threading.Lock()

    @property
    def build_count(self) -> int:
        """How many environments *this object* has built (reuses and other processes' builds not counted)."""
        return self._build_count

    def _lock_path(self, env_hash: str) -> Path:
        return self.envs_dir / f"{env_hash}.lock"

    # -- ensure -------------------------------------------------------------------------------------------

    def ensure(
        self, requirements: list[str], *, base_python: str = sys.executable, log: TextIO | None = None
    ) -> BuiltEnvironment:
        """Return the venv for exactly this requirement set, building it first if needed.

        Building, in ``envs/<hash>`` itself while holding the build lock: ``virtualenv --python <base_python>
        --system-site-packages``, then ``bin/python -m pip install --disable-pip-version-check --no-input
        <requirements>`` (skipped for an empty set), ``pip freeze --local`` to ``freeze.txt``, the
        requirements to ``requirements.txt``, and last the ``complete`` marker (written atomically). No
        ``--ignore-installed`` is needed: a pinned version the base does not satisfy is installed into the
        venv (pip says it cannot uninstall the base's copy, "outside environment", and carries on), and the
        venv's site-packages is first on ``sys.path``. Console scripts work (``bin/pip``, and those the
        requirements install): the environment is never moved after it is built.

        If ``base_python`` itself runs inside a virtualenv, a ``.pth`` file appends that venv's site-packages
        (``--system-site-packages`` alone would only expose the *underlying* installation's), so the kernel
        still finds ``ipykernel`` and ``jupyter_orchestrate``.

        Reuse: an existing complete environment is returned with ``built_now=False`` and its ``last_used``
        time touched; pip is not run.

        Args:
            requirements: requirement strings; normalized, sorted and de-duplicated here (same rules as
                :func:`read_requirements`).
            base_python: the interpreter to build from (default: the orchestrator's own).
            log: where progress goes, line by line as it happens: ``creating environment <hash> for: ...``,
                then the virtualenv and pip output. None: nowhere (pip's output is still kept for errors).

        Returns:
            The :class:`BuiltEnvironment`.

        Raises:
            EnvironmentBuildError: virtualenv or pip failed; ``.output`` holds the command's output. The
                directory is removed, so no half-built environment is left.
            ValidationError: a requirement is a pip option or not a valid requirement.
        """
        from filelock import FileLock

        reqs = read_requirements(list(requirements), None)
        env_hash = environment_hash(reqs, base_python)
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        final = self.envs_dir / env_hash
        with FileLock(self._lock_path(env_hash)):
            if (final / _COMPLETE_MARKER).is_file():
                self._touch(final)
                return self._built(env_hash, final, built_now=False)
            # Holding the lock, anything else for this hash is debris from a crashed build.
            for stale in self.envs_dir.glob(f"{_TMP_PREFIX}{env_hash}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            self._build(env_hash, reqs, base_python, final, log)
            with self._count_lock:
                self._build_count += 1
            return self._built(env_hash, final, built_now=True)

    def _build(
        self, env_hash: str, reqs: list[str], base_python: str, final: Path, log: TextIO | None
    ) -> None:
        try:
            _emit(log, f"creating environment {env_hash} for: {' '.join(reqs) or '(no requirements)'}\n")
            self._run(
                [
                    sys.executable,
                    "-m",
                    "virtualenv",
                    "--python",
                    base_python,
                    "--system-site-packages",
                    "--no-periodic-update",
                    "--no-vcs-ignore",
                    str(final),
                ],
                log,
                f"creating the virtualenv for environment {env_hash} failed",
            )
            python = final / "bin" / "python"
            self._add_base_venv_path(python, base_python)
            if reqs:
                self._run(
                    [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *reqs],
                    log,
                    f"pip install failed for environment {env_hash}: {' '.join(reqs)}",
                )
            freeze = self._run(
                [str(python), "-m", "pip", "freeze", "--local", "--disable-pip-version-check"],
                None,
                f"pip freeze failed for environment {env_hash}",
            )
            (final / _FREEZE).write_text(freeze, encoding="utf-8")
            (final / _REQUIREMENTS).write_text("".join(r + "\n" for r in reqs), encoding="utf-8")
            info = _python_info(base_python)
            now = time.time()
            (final / _LAST_USED).write_text("", encoding="utf-8")
            marker = final / f"{_COMPLETE_MARKER}.part"
            marker.write_text(
                json.dumps(
                    {
                        "hash": env_hash,
                        "requirements": reqs,
                        "python": f"{info['implementation']} {info['version']}",
                        "base_python": base_python,
                        "created_time": _iso(now),
                        "created_timestamp": now,
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
            os.replace(marker, final / _COMPLETE_MARKER)
            _emit(log, f"environment {env_hash} ready at {final}\n")
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise

    @staticmethod
    def _add_base_venv_path(python: Path, base_python: str) -> None:
        info = _python_info(base_python)
        if info["prefix"] == info["base_prefix"]:
            return  # a plain installation: --system-site-packages already exposes its site-packages
        ours = _python_info(str(python))  # cheap, once per build; not kept (the env may be rebuilt)
        _python_info_cache.pop(os.path.abspath(str(python)), None)
        target = Path(ours["site_packages"][0])
        target.mkdir(parents=True, exist_ok=True)
        (target / "_jupyter_orchestrate_base.pth").write_text(
            "".join(p + "\n" for p in info["site_packages"]), encoding="utf-8"
        )

    @staticmethod
    def _run(cmd: list[str], log: TextIO | None, failure: str) -> str:
        """Run ``cmd``, streaming its combined output to ``log`` line by line; return the output.

        Raises:
            EnvironmentBuildError: non-zero exit or the command cannot start.
        """
        env = dict(os.environ)
        env.pop("PIP_REQUIRE_VIRTUALENV", None)
        # a PYTHONPATH (or PYTHONHOME) from the caller would make pip see, install and freeze another
        # environment's packages instead of the venv's own
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        env["PYTHONUNBUFFERED"] = "1"
        lines: list[str] = []
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env=env,
            )
        except OSError as exc:
            raise EnvironmentBuildError(f"{failure}: {exc}", str(exc)) from exc
        assert proc.stdout is not None
        with proc:
            for line in proc.stdout:
                lines.append(line)
                _emit(log, line)
        output = "".join(lines)
        if proc.returncode != 0:
            raise EnvironmentBuildError(f"{failure} (exit {proc.returncode})", output)
        return output

    @staticmethod
    def _touch(path: Path) -> None:
        try:
            (path / _LAST_USED).touch()
        except OSError:
            pass  # a read-only cache still works; only pruning by age is affected

    @staticmethod
    def _built(env_hash: str, path: Path, *, built_now: bool) -> BuiltEnvironment:
        return BuiltEnvironment(
            hash=env_hash,
            path=path,
            python=path / "bin" / "python",
            requirements=_read_lines(path / _REQUIREMENTS),
            freeze=_read_lines(path / _FREEZE),
            built_now=built_now,
        )

    def _building(self, env_hash: str) -> bool:
        """Whether another caller holds the build lock of ``env_hash`` right now."""
        if not self._lock_path(env_hash).exists():
            return False
        with _try_lock(self._lock_path(env_hash)) as locked:
            return not locked

    # -- list / prune -------------------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        """Describe every environment directory under ``<home>/envs`` (builds in progress excluded).

        Returns:
            One dict per environment, sorted by hash::

                {"hash": str, "path": str, "requirements": [str], "size_bytes": int,
                 "created_time": ISO-8601 UTC str | None, "last_used_time": ISO-8601 UTC str | None,
                 "complete": bool}

            ``size_bytes`` counts files and links themselves (symlinks not followed), so the shared base
            interpreter is not counted. ``complete`` is False for a directory without the marker (only
            left by a crashed build or manual tampering); :meth:`ensure` rebuilds such a directory.
        """
        if not self.envs_dir.is_dir():
            return []
        result = []
        for path in sorted(self.envs_dir.iterdir()):
            if not path.is_dir() or path.name.startswith("."):
                continue
            marker = path / _COMPLETE_MARKER
            if not marker.is_file() and self._building(path.name):
                continue
            created: str | None = None
            if marker.is_file():
                try:
                    created = json.loads(marker.read_text(encoding="utf-8")).get("created_time")
                except (OSError, ValueError):
                    created = None
            try:
                last_used: str | None = _iso((path / _LAST_USED).stat().st_mtime)
            except OSError:
                last_used = None
            result.append(
                {
                    "hash": path.name,
                    "path": str(path),
                    "requirements": _read_lines(path / _REQUIREMENTS),
                    "size_bytes": _dir_size(path),
                    "created_time": created,
                    "last_used_time": last_used,
                    "complete": marker.is_file(),
                }
            )
        return result

    def prune(
        self, *, keep: Iterable[str] = (), unused_for_seconds: float | None = None
    ) -> builtins.list[str]:
        """Delete environments to reclaim disk space.

        The cache cannot see which kernels are running in which venv; pass the hashes of environments that
        running or queued tasks use in ``keep``. An environment whose build lock is held (being built or being
        handed out by :meth:`ensure` right now) is skipped, never waited for.

        Args:
            keep: hashes never to delete.
            unused_for_seconds: only delete environments whose last use (build or reuse) is at least this many
                seconds ago; None deletes every environment not in ``keep``. Incomplete directories are
                always deleted (unless kept).

        Returns:
            The removed hashes, sorted. Leftover temp dirs of crashed builds are removed too but not listed.
        """
        if not self.envs_dir.is_dir():
            return []
        keep_set = set(keep)
        now = time.time()
        removed: list[str] = []
        for path in sorted(self.envs_dir.iterdir()):
            if not path.is_dir() or path.name.startswith(".") or path.name in keep_set:
                continue
            complete = (path / _COMPLETE_MARKER).is_file()
            if complete and unused_for_seconds is not None:
                try:
                    last_used = (path / _LAST_USED).stat().st_mtime
                except OSError:
                    last_used = 0.0
                if now - last_used < unused_for_seconds:
                    continue
            with _try_lock(self._lock_path(path.name)) as locked:
                if not locked:
                    continue
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    removed.append(path.name)
        # Temp dirs whose build lock is free belong to crashed builds.
        for tmp in self.envs_dir.glob(f"{_TMP_PREFIX}*"):
            env_hash = tmp.name[len(_TMP_PREFIX) :].split("-", 1)[0]
            with _try_lock(self._lock_path(env_hash)) as locked:
                if locked:
                    shutil.rmtree(tmp, ignore_errors=True)
        return removed


def _emit(log: TextIO | None, text: str) -> None:
    if log is None:
        return
    log.write(text)
    try:
        log.flush()
    except (AttributeError, OSError, ValueError):
        pass
