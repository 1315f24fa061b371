"""Task values: small JSON values a notebook publishes for the tasks downstream of it.

Used inside a task's notebook (semantics of Databricks ``dbutils.jobs.taskValues``)::

    from jupyter_orchestrate import task_values
    task_values.set("rows", 1234)                                   # in task "bronze"
    rows = task_values.get("bronze", "rows", default=0, debug_value=100)   # in a task downstream

How it works: the orchestrator starts each task's kernel with the environment variable
``JUPYTER_ORCHESTRATE_CONTEXT`` naming a JSON file (written before the first cell runs) that holds the run id,
the task key, the values of every upstream task, and the path where this task's own values are to be
written. Outside a job run the variable is absent: :func:`set` then only checks and keeps the value in
memory, and :func:`get` returns ``debug_value``, so the notebook can be developed interactively.

This module runs inside user kernels: it imports nothing heavy.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

from jupyter_orchestrate.errors import TaskValueError

CONTEXT_ENV = "JUPYTER_ORCHESTRATE_CONTEXT"
MAX_VALUE_BYTES = 64 * 1024
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_MISSING: Any = object()
_context_cache: dict[str, Any] | None = None
_local_values: dict[str, Any] = {}


def _context() -> dict[str, Any] | None:
    """The job-run context of this kernel, or None when the notebook runs outside any job run."""
    global _context_cache
    path = os.environ.get(CONTEXT_ENV)
    if not path:
        return None
    if _context_cache is None or _context_cache.get("_path") != path:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            raise TaskValueError(f"cannot read the job-run context {path}: {exc}") from exc
        data["_path"] = path
        _context_cache = data
    return _context_cache


def encode(name: str, value: Any) -> str:
    """Check a task value and return its JSON text.

    Args:
        name: the value's name; letters, digits and ``_``, not starting with a digit (it appears in
            ``{{tasks.<key>.values.<name>}}`` references).
        value: any JSON-serialisable value (no NaN/Infinity).

    Returns: the compact JSON encoding, at most 64 KiB (65,536 bytes) of UTF-8.

    Raises:
        TaskValueError: the name is invalid, the value is not JSON-serialisable, or it is larger than 64 KiB.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TaskValueError(
            f"task value name {name!r} is invalid: use letters, digits and '_', not starting with a digit"
        )
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TaskValueError(
            f"task value {name!r} is not JSON-serialisable ({type(value).__name__}): {exc}; "
            "convert it first, e.g. int(x), float(x), str(x) or df.to_dict()"
        ) from exc
    size = len(text.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise TaskValueError(
            f"task value {name!r} is {size:,} bytes of JSON; the limit is {MAX_VALUE_BYTES:,} bytes (64 KiB). "
            "Store large data in a file and publish its path instead"
        )
    return text


def set(name: str, value: Any) -> None:
    """Publish ``value`` under ``name`` for downstream tasks of this run.

    Setting a name again replaces its value. Outside a job run the value is checked and kept in memory only.
    In a job run, values of the task's secret variables inside ``value`` are replaced by ``***``.

    Raises:
        TaskValueError: see :func:`encode`; or the values file cannot be written.
    """
    text = encode(name, value)
    ctx = _context()
    _local_values[name] = json.loads(text)
    if ctx is not None and ctx.get("secret_names"):
        # A value holding a secret of this task's environment is published (and written) as "***".
        from jupyter_orchestrate.environments import redact_value

        _local_values[name] = redact_value(
            _local_values[name], [os.environ.get(n, "") for n in ctx["secret_names"]]
        )
    if ctx is None:
        return
    path = ctx["values_path"]
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".values-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_local_values, f)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise TaskValueError(f"cannot write task values to {path}: {exc}") from exc


def get(task_key: str, name: str, default: Any = _MISSING, debug_value: Any = _MISSING) -> Any:
    """Read the value ``name`` that upstream task ``task_key`` published in this run.

    Args:
        task_key: an upstream task of the current task (direct or indirect).
        name: the value's name.
        default: returned when the upstream task did not set ``name``.
        debug_value: returned when the notebook runs outside a job run (interactively).

    Returns: the JSON value (dict, list, str, int, float, bool or None).

    Raises:
        TaskValueError: outside a job run without ``debug_value``; ``task_key`` is not upstream of this task;
            the value is missing and no ``default`` was given.
    """
    ctx = _context()
    if ctx is None:
        if debug_value is not _MISSING:
            return debug_value
        raise TaskValueError(
            f"task_values.get({task_key!r}, {name!r}) was called outside a job run; "
            "pass debug_value=... to run this notebook interactively"
        )
    upstream: dict[str, dict[str, Any]] = ctx.get("upstream", {})
    if task_key not in upstream:
        known = ", ".join(sorted(upstream)) or "none"
        raise TaskValueError(
            f"task {task_key!r} is not upstream of task {ctx.get('task_key')!r} (upstream tasks: {known})"
        )
    values = upstream[task_key]
    if name in values:
        return values[name]
    if default is not _MISSING:
        return default
    raise TaskValueError(
        f"upstream task {task_key!r} did not set a task value named {name!r} "
        f"(it set: {', '.join(sorted(values)) or 'nothing'}); pass default=... if it is optional"
    )


def read_values_file(path: str) -> dict[str, Any]:
    """The values a task wrote to its values file: ``{name: value}``; ``{}`` if the file is missing or unreadable
    (a kernel killed mid-write leaves the previous complete file, as writes are atomic)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def current() -> dict[str, Any]:
    """The values this notebook has set so far, as a dict (a copy)."""
    return dict(_local_values)
