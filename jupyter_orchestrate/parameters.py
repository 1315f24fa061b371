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
import keyword
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jupyter_orchestrate.errors import Problem, ValidationError

REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
JOB_FIELDS = ("run_id", "name", "start_time", "repair_number")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_VALUE_BYTES = 64 * 1024  # one parameter value, as JSON
MAX_TOTAL_BYTES = 1024 * 1024  # all values of one parameters mapping, as JSON
MAX_VALUE_DEPTH = 100  # nesting of lists and objects inside one value


def is_parameter_name(name: object) -> bool:
    """True if ``name`` can be a parameter: a Python identifier that is not a keyword (papermill writes
    ``name = value`` into the notebook, so anything else would be code, not a name)."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def parameter_problems(parameters: Mapping[Any, Any], path: str, field: str) -> list[Problem]:
    """Every problem with one ``parameters`` mapping, from any source (job.yaml, notebook metadata, a
    schedule or trigger, an API body, ``-p``).

    Names must pass :func:`is_parameter_name`. Values must be JSON (finite numbers, strings, booleans, null,
    lists, objects with string keys), nested at most 100 levels, at most 64 KiB each and 1 MiB together as
    JSON.

    Args:
        path: the file or source the mapping came from (``job/job.yaml``, ``request body``, ``-p``).
        field: where in it, e.g. ``tasks.clean.parameters``; problems name ``field.name``.

    Returns: ``[]`` when valid, else one :class:`~.errors.Problem` per bad name or value.
    """
    problems, total = [], 0
    for name, value in parameters.items():
        if not is_parameter_name(name):
            problems.append(
                Problem(
                    path,
                    field,
                    f"{name!r} is not a valid parameter name: use a Python identifier that is not a keyword",
                )
            )
            continue
        where = f"{field}.{name}" if field else name
        if _depth(value, MAX_VALUE_DEPTH + 1) > MAX_VALUE_DEPTH:
            problems.append(Problem(path, where, f"nested more than {MAX_VALUE_DEPTH} levels deep"))
            continue
        try:
            size = len(json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8"))
        except ValueError:
            problems.append(Problem(path, where, "not a finite number (NaN and infinity are not JSON)"))
            continue
        except TypeError as exc:
            problems.append(
                Problem(path, where, f"not a JSON value ({exc}); quote dates and times as strings")
            )
            continue
        if size > MAX_VALUE_BYTES:
            problems.append(
                Problem(
                    path, where, f"the value is {size} bytes as JSON; at most {MAX_VALUE_BYTES} are allowed"
                )
            )
        total += size
    if total > MAX_TOTAL_BYTES and not problems:
        problems.append(
            Problem(
                path,
                field,
                f"the values are {total} bytes as JSON together; at most {MAX_TOTAL_BYTES} are allowed",
            )
        )
    return problems


def check_parameters(parameters: Mapping[Any, Any], path: str, field: str) -> None:
    """Raise :class:`~.errors.ValidationError` with the :func:`parameter_problems` of ``parameters``, if any."""
    problems = parameter_problems(parameters, path, field)
    if problems:
        raise ValidationError(problems)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists and mappings in ``value``, counted no further than ``limit``."""
    if limit <= 0 or not isinstance(value, (list, tuple, Mapping)):
        return 0
    items = value.values() if isinstance(value, Mapping) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


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


def task_value_source(value: Any) -> str | None:
    """The upstream task whose task value feeds ``value`` (the first ``{{tasks.<task_key>.values.<name>}}``
    reference in it), or None when no task value does. The one rule for "this parameter comes from task X"
    (the run form shows such a parameter read-only)."""
    for ref in references(value):
        parts = ref.split(".")
        if len(parts) == 4 and parts[0] == "tasks" and parts[2] == "values":
            return parts[1]
    return None


def job_parameters_referenced(value: Any) -> list[str]:
    """The job parameters ``value`` references (``{{job.parameters.<name>}}``), in order."""
    names = []
    for ref in references(value):
        parts = ref.split(".")
        if len(parts) == 3 and parts[:2] == ["job", "parameters"] and parts[2] not in names:
            names.append(parts[2])
    return names


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
        fields = ", ".join(
            [
                *(f"job.{f}" for f in JOB_FIELDS),
                "job.trigger.time",
                "job.trigger.type",
                "job.parameters.<name>",
            ]
        )
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
                raise ValidationError(
                    f"{{{{{ref}}}}}: upstream task {key!r} did not set a task value named {name!r}"
                )
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
        if not sep or not is_parameter_name(name):
            raise ValidationError(
                f"-p {item}: expected name=value with a Python identifier (not a keyword) as name"
            )
        result[name] = raw
    return result


#: The parameter types :func:`coerce` checks values against (others are parsed, not checked).
CHECKED_TYPES = ("int", "float", "bool", "str", "list", "dict")


def parameter_type(default: Any, inferred: Iterable[str | None] = ()) -> str | None:
    """The type of a parameter, the one rule for ``-p``, the API and the sidebar's form: the Python type name
    of its job default when that is not None, else the first known ``inferred_type`` of the notebooks'
    parameters cells that have it; None when unknown."""
    if default is not None:
        return type(default).__name__
    return next((name for name in inferred if name is not None), None)


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
        ValidationError: ``raw`` is not a valid value of the parameter's type; its one problem's field is
            ``parameters.<name>``.
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
            # the field names the parameter (``parameters.<name>``), so a form can show it at its input
            raise ValidationError(
                Problem(
                    "",
                    f"parameters.{name}",
                    f"parameter {name!r} is {type_name}; {raw!r} is not a valid {type_name}",
                )
            )
        if type_name == "float":
            value = float(value)
    return value
