"""Parameter values: ``{{...}}`` references, their validation and rendering, and typed ``-p name=value`` input.

A parameter value may reference (Databricks' dynamic value references):

- ``{{job.run_id}}``, ``{{job.name}}``, ``{{job.start_time}}``, ``{{job.repair_number}}``
- ``{{job.trigger.time}}`` (the run's logical time: a schedule's fire time or backfill date, else its start
  time) and ``{{job.trigger.type}}`` (manual, schedule, file_arrival, job_completion, api)
- ``{{job.parameters.<name>}}``: a job parameter's value in this run
- ``{{tasks.<task_key>.values.<name>}}``: a task value published by an upstream task

A value that is exactly one reference keeps the referenced value's JSON type (``"{{tasks.a.values.rows}}"``
becomes the int 1234); references inside a longer string are replaced by their text.

Precedence of a task's parameters (lowest first): the notebook's ``parameters`` cell defaults, job parameters
of the same name, the task's ``parameters``, then ``-p name=value`` given for the run (or repair).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_orchestrate.errors import ValidationError

REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
JOB_FIELDS = ("run_id", "name", "start_time", "repair_number")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def references(value: Any) -> list[str]:
    """Every ``{{...}}`` reference inside ``value`` (strings inside lists and dicts too), in order."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(m.group(1) for m in REFERENCE.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(references(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(references(item))
    return found


def check_reference(
    ref: str,
    *,
    job_parameters: Iterable[str],
    task_keys: Iterable[str],
    upstream: Iterable[str] | None,
    task_key: str | None = None,
) -> str | None:
    """Check one reference (the text between the braces).

    Args:
        ref: e.g. ``tasks.clean.values.rows``.
        job_parameters: names of the job's parameters.
        task_keys: every task key of the job.
        upstream: the tasks upstream of the referencing task, or None where task references are not allowed
            (in job parameters).
        task_key: the referencing task, for messages.

    Returns: None if the reference is valid, else a message naming the problem.
    """
    parts = ref.split(".")
    if parts[0] == "job":
        if len(parts) == 2 and parts[1] in JOB_FIELDS:
            return None
        if len(parts) == 3 and parts[1] == "trigger" and parts[2] in ("time", "type"):
            return None
        if len(parts) == 3 and parts[1] == "parameters":
            names = sorted(job_parameters)
            if parts[2] in names:
                return None
            return f"{{{{{ref}}}}} names unknown job parameter {parts[2]!r} (job parameters: {', '.join(names) or 'none'})"
        fields = ", ".join([*(f"job.{f}" for f in JOB_FIELDS), "job.trigger.time", "job.trigger.type", "job.parameters.<name>"])
        return f"{{{{{ref}}}}} is not a known reference (use {fields} or tasks.<task_key>.values.<name>)"
    if parts[0] == "tasks":
        if len(parts) != 4 or parts[2] != "values" or not IDENTIFIER.match(parts[3]):
            return f"{{{{{ref}}}}} is malformed: use {{{{tasks.<task_key>.values.<name>}}}}"
        if upstream is None:
            return f"{{{{{ref}}}}}: task values cannot be referenced here, only in task parameters"
        key = parts[1]
        if key not in set(task_keys):
            return f"{{{{{ref}}}}} names unknown task {key!r}"
        if key not in set(upstream):
            who = f"task {task_key!r}" if task_key else "this task"
            return f"{{{{{ref}}}}}: task {key!r} is not upstream of {who}; add it to depends_on"
        return None
    return f"{{{{{ref}}}}} is not a known reference (it must start with job. or tasks.)"


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Replace references in ``value`` using ``context``.

    ``context`` is ``{"job": {"run_id":..., "name":..., "start_time":..., "repair_number":...,
    "parameters": {...}}, "tasks": {task_key: {"values": {...}}}}``.

    Raises:
        ValidationError: a reference cannot be resolved (e.g. the upstream task did not set that value).
    """
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(whole.group(1), context)

        def text(match: re.Match[str]) -> str:
            found = _lookup(match.group(1), context)
            return found if isinstance(found, str) else json.dumps(found)

        return REFERENCE.sub(text, value)
    if isinstance(value, Mapping):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def _lookup(ref: str, context: Mapping[str, Any]) -> Any:
    node: Any = context
    for part in ref.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if ref.startswith("tasks."):
                key, name = ref.split(".")[1], ref.split(".")[-1]
                raise ValidationError(f"{{{{{ref}}}}}: upstream task {key!r} did not set a task value named {name!r}")
            raise ValidationError(f"{{{{{ref}}}}} cannot be resolved")
        node = node[part]
    return node


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Parse ``-p name=value`` items into ``{name: raw value}``.

    Raises:
        ValidationError: an item has no ``=`` or an invalid name.
    """
    result: dict[str, str] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not IDENTIFIER.match(name):
            raise ValidationError(f"-p {item}: expected name=value with a Python identifier as name")
        result[name] = raw
    return result


def coerce(raw: str, type_name: str | None, name: str) -> Any:
    """Turn a command-line string into a value of the parameter's type.

    Args:
        raw: the text after ``=``.
        type_name: papermill's inferred type of the notebook parameter (``int``, ``float``, ``bool``, ``str``,
            ``list``, ``dict``, ``None``) or the Python type name of a job parameter's default; None if
            unknown.
        name: the parameter's name, for messages.

    Returns: ``str`` as given for str parameters; otherwise the JSON (or Python-literal ``True``/``False``/
        ``None``) reading of ``raw`` checked against the type, falling back to the string for unknown types.

    Raises:
        ValidationError: ``raw`` is not a valid value of the parameter's type.
    """
    if type_name == "str":
        return raw
    literal = {"True": True, "False": False, "None": None}
    try:
        value: Any = literal[raw] if raw in literal else json.loads(raw)
    except ValueError:
        value = raw
    expected = {"int": (int,), "float": (int, float), "bool": (bool,), "list": (list,), "dict": (dict,)}
    if type_name in expected:
        ok = isinstance(value, expected[type_name]) and not (type_name != "bool" and isinstance(value, bool))
        if not ok:
            raise ValidationError(f"-p {name}={raw}: parameter {name!r} is {type_name}; {raw!r} is not a valid {type_name}")
        if type_name == "float":
            value = float(value)
    return value
