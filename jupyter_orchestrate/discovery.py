"""Discovery: a folder of tagged notebooks plus an optional ``job.yaml`` becomes a :class:`~.models.Job`.

A notebook in the job folder or its subfolders (:func:`job_notebooks`) is a task when its notebook metadata has
the key ``orchestrate`` (a mapping of task settings, see :class:`~.models.TaskSettings`), or when ``job.yaml``
lists it under ``tasks:``. Notebooks are read as JSON and parameters cells with :mod:`ast`: discovery imports
neither nbformat nor papermill (their imports cost seconds, PERFORMANCE.md). Settings
are merged, later winning: ``job.yaml`` ``task_defaults`` < ``metadata.orchestrate`` < ``job.yaml``
``tasks.<task_key>``.

:func:`validate_job` checks everything a run needs before any kernel starts and returns every problem found
(never only the first), separating the job's errors, one task's errors and warnings; :func:`load_job` raises
the errors as one :class:`~.errors.ValidationError` when one of them refuses the job.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import logging
import os
import re
import tokenize
import types
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from jupyter_orchestrate.conditions import literal_problem
from jupyter_orchestrate.dag import CycleError, Dag
from jupyter_orchestrate.errors import PathOutsideRootError, Problem, ValidationError, did_you_mean
from jupyter_orchestrate.models import (
    MAX_PARALLEL_TASKS,
    ConditionOutcome,
    Dependency,
    Environment,
    ExecutorSettings,
    Job,
    NotebookParameter,
    Notifications,
    RunIf,
    RunJob,
    Schedule,
    Task,
    TaskProblem,
    TaskSettings,
    TriggerSpec,
)
from jupyter_orchestrate.parameters import REFERENCE, check_reference, parameter_problems, references
from jupyter_orchestrate.workspace import confine, workspace_root

log = logging.getLogger(__name__)
JOB_FILE = "job.yaml"
METADATA_KEY = "orchestrate"
TASK_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
MAX_JOB_FILE_BYTES = 256 * 1024  # settings, not data; bounds the (pure Python) parse to about a second
MAX_YAML_NODES = 100_000  # values in job.yaml, each alias counted as all the values it repeats
MAX_YAML_CHARS = (
    2 * 1024 * 1024
)  # characters of all scalars in job.yaml, each alias counted as all it repeats
WITHIN_JOB = "the job folder"
#: task settings only job.yaml's tasks: may have (a task without a notebook is written there, not in one)
JOB_FILE_ONLY_SETTINGS = ("notebook", "condition", "run_job")
#: task settings that say what a task is: never a task_defaults value
NOT_DEFAULT_SETTINGS = ("condition", "run_job", "for_each", "group")


class JobFile(BaseModel):
    """The schema of ``job.yaml`` (unknown fields are errors, so typos do not pass silently)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    max_parallel_tasks: int | None = Field(default=None, ge=1, le=MAX_PARALLEL_TASKS)
    max_concurrent_runs: int = Field(default=1, ge=1)
    queue: bool = True
    environments: dict[str, Environment] = Field(default_factory=dict)
    schedules: list[Schedule] = Field(default_factory=list)
    triggers: list[TriggerSpec] = Field(default_factory=list)
    notifications: Notifications | None = None
    executor: ExecutorSettings | None = None
    task_defaults: TaskSettings = Field(default_factory=TaskSettings)
    tasks: dict[str, TaskSettings] = Field(default_factory=dict)
    #: task groups by name: their member task keys (or set ``group`` on each task)
    groups: dict[str, list[str]] = Field(default_factory=dict)


class _JobFileLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing documents of more than :data:`MAX_YAML_NODES` values once aliases are
    expanded ("billion laughs": 330 bytes of nested aliases expand to 10**7 values) and aliases that refer to
    a value containing them. Checked on the composed node graph, before any Python object is built.

    (The pure Python loader: libyaml's composer recurses in C and crashes the process on deep nesting.)"""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        sizes: dict[int, tuple[int, int]] = {}

        def expanded(n: yaml.Node, path: tuple[int, ...]) -> tuple[int, int]:
            """(values, scalar characters) of ``n`` with every alias expanded."""
            if id(n) in sizes:
                return sizes[id(n)]
            if id(n) in path:
                raise yaml.MarkedYAMLError(
                    problem="an alias refers to a value that contains it", problem_mark=n.start_mark
                )
            children = (
                [c for pair in n.value for c in pair]
                if isinstance(n, yaml.MappingNode)
                else (n.value if isinstance(n, yaml.SequenceNode) else [])
            )
            count, chars = 1, len(n.value) if isinstance(n, yaml.ScalarNode) else 0
            for child in children:
                c_count, c_chars = expanded(child, (*path, id(n)))
                count, chars = count + c_count, chars + c_chars
                if count > MAX_YAML_NODES or chars > MAX_YAML_CHARS:
                    # one long anchored string repeated by many aliases is as much a bomb as many values
                    raise yaml.MarkedYAMLError(
                        problem=f"more than {MAX_YAML_NODES} values or {MAX_YAML_CHARS} characters once aliases are "
                        "expanded; a job file holds settings, not data",
                        problem_mark=n.start_mark,
                    )
            sizes[id(n)] = (count, chars)
            return count, chars

        if node is not None:
            expanded(node, ())
        return node


def read_job_file(folder: Path, shown: str) -> JobFile | None:
    """The job folder's ``job.yaml``, read, parsed and validated: the only reader of job files.

    Refused before anything is built from it: a ``job.yaml`` that leads outside ``folder`` (a symlink), one
    larger than 256 KiB, invalid YAML, more than :data:`MAX_YAML_NODES` values once aliases are expanded, a
    document that is not a mapping, fields that do not fit :class:`JobFile`.

    Args:
        folder: the resolved job folder. shown: how messages name the file (e.g. ``green_energy/job.yaml``).

    Returns: the :class:`JobFile`, or None when the folder has no ``job.yaml``.

    Raises:
        PathOutsideRootError: ``job.yaml`` is a link to a file outside the job folder (never read).
        ValidationError: every other problem, as ``shown: field: problem``.
    """
    path = folder / JOB_FILE
    if not path.exists():
        return None
    try:
        path = confine(JOB_FILE, folder, what="job file", within=WITHIN_JOB)  # open what was checked
    except PathOutsideRootError as exc:
        raise PathOutsideRootError(Problem(shown, "", exc.problems[0].message)) from None
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JOB_FILE_BYTES + 1)
    except OSError as exc:
        raise ValidationError(Problem(shown, "", f"cannot be read: {exc.strerror or exc}")) from None
    if len(data) > MAX_JOB_FILE_BYTES:
        raise ValidationError(
            Problem(shown, "", f"larger than {MAX_JOB_FILE_BYTES} bytes; a job file holds settings, not data")
        )
    try:
        raw = yaml.load(data.decode("utf-8"), Loader=_JobFileLoader)
    except UnicodeDecodeError as exc:
        raise ValidationError(Problem(shown, "", f"not UTF-8 text: {exc}")) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ValidationError(
            Problem(shown, "", f"invalid YAML: {where}{getattr(exc, 'problem', None) or exc}")
        ) from None
    except RecursionError:
        raise ValidationError(Problem(shown, "", "invalid YAML: nested too deeply")) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError(Problem(shown, "", "must be a mapping of job settings"))
    try:
        return JobFile.model_validate(raw)
    except PydanticValidationError as exc:
        raise ValidationError(pydantic_problems(shown, exc, model=JobFile)) from None


def job_file_parameter_problems(job_file: JobFile, shown: str) -> list[Problem]:
    """Parameter names and values of every mapping in ``job.yaml`` (job, task defaults, tasks, schedules,
    triggers); see :func:`~.parameters.parameter_problems`."""
    problems = parameter_problems(job_file.parameters, shown, "parameters")
    problems += parameter_problems(job_file.task_defaults.parameters or {}, shown, "task_defaults.parameters")
    for key, settings in job_file.tasks.items():
        problems += parameter_problems(settings.parameters or {}, shown, f"tasks.{key}.parameters")
    for field, parameters in _fire_parameters(job_file):
        problems += parameter_problems(parameters, shown, field)
    return problems


def _fire_parameters(job_file: JobFile) -> list[tuple[str, dict[str, Any]]]:
    """``(field, parameters)`` of every schedule and trigger of ``job.yaml`` (``schedules.0.parameters``)."""
    return [(f"schedules.{i}.parameters", s.parameters) for i, s in enumerate(job_file.schedules)] + [
        (f"triggers.{i}.parameters", t.parameters) for i, t in enumerate(job_file.triggers)
    ]


def pydantic_problems(
    path: str, exc: PydanticValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    """Turn a pydantic error into ``path: field: problem`` lines (``prefix`` is prepended to field paths).

    With the ``model`` that was validated, typos are explained: an unknown field reads ``unknown field
    'max_paralel_tasks' (did you mean 'max_parallel_tasks'?)`` (or names the allowed fields when none is
    close), and a value outside an enum gets ``(did you mean 'all_done'?)`` after pydantic's list of the
    allowed values (:func:`~.errors.did_you_mean`). Without it, an unknown field is just ``unknown field``.
    """
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        field = ".".join(p for p in (prefix, loc) if p)
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
            if model is not None:
                message = _unknown_field_message(model, err["loc"])
        elif err["type"] in ("enum", "literal_error") and model is not None and isinstance(err["input"], str):
            allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            suggestion = did_you_mean(err["input"], allowed)
            if suggestion:
                message = f"{message} ({suggestion})"
        problems.append(Problem(path, field, message))
    return problems


def _unknown_field_message(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """``unknown field 'name' (did you mean ...?)``, or ``(allowed: ...)`` when no allowed name is close."""
    name = str(loc[-1])
    owner = _model_at(model, loc[:-1])
    if owner is None:
        return f"unknown field {name!r}"
    allowed = [info.alias or key for key, info in owner.model_fields.items()]
    suggestion = did_you_mean(name, allowed)
    return f"unknown field {name!r} ({suggestion or 'allowed: ' + ', '.join(allowed)})"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that validated the value at ``loc`` (a pydantic error location) inside ``model``."""
    annotation: Any = model
    for part in loc:
        annotation = _inner(annotation, part)
        if annotation is None:
            return None
    for candidate in _alternatives(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _alternatives(annotation: Any) -> list[Any]:
    """The members of a union (``X | None``) or ``[annotation]``; ``Annotated`` metadata is dropped."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for arg in get_args(annotation) for a in _alternatives(arg)]
    return [annotation]


def _inner(annotation: Any, part: int | str) -> Any:
    """The annotation of the value that ``part`` of an error location selects inside a value of ``annotation``
    (a model's field, a list's item, a dict's value, or a union member named by its class), or None."""
    for candidate in _alternatives(annotation):
        origin = get_origin(candidate)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if isinstance(part, str) and part == candidate.__name__:
                return candidate
            if isinstance(part, str) and part in candidate.model_fields:
                return candidate.model_fields[part].annotation
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            return get_args(candidate)[0] if get_args(candidate) else None
        elif origin is dict:
            return get_args(candidate)[1] if get_args(candidate) else None
    return None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


CELL_TYPES = ("code", "markdown", "raw")


def read_notebook(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Read a notebook file as JSON and check the structure papermill needs (no nbformat import: its schema
    checkers cost a second at import, PERFORMANCE.md). A notebook older than nbformat 4 is converted with
    nbformat, which papermill would do too.

    Returns: ``(notebook dict, None)``, or ``(None, problem)`` when the file is missing, not UTF-8 JSON, or
    not a notebook (``cells`` not a list of cells with a ``cell_type`` and text ``source``).
    """
    if not path.is_file():
        return None, "notebook not found"
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text)
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        return None, f"not a text file: {exc}"
    except json.JSONDecodeError as exc:
        return (
            None,
            f"not valid JSON (a truncated or unsaved file?): line {exc.lineno} column {exc.colno}: {exc.msg}",
        )
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
    if not isinstance(data, dict):
        return None, f"not a notebook: the file holds a JSON {type(data).__name__}, not an object"
    version = data.get("nbformat")
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version < 4:
        import nbformat  # only for old notebooks

        try:
            data = json.loads(nbformat.writes(nbformat.reads(text, as_version=4)))  # type: ignore[no-untyped-call]
        except Exception as exc:  # nbformat raises several types for what it cannot convert
            log.debug("cannot convert %s from nbformat %s", path, version, exc_info=True)
            return (
                None,
                f"not a valid notebook (nbformat {version}): {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
            )
    elif version != 4:
        return None, f"not a valid notebook: nbformat must be 4, not {version!r}"
    if not isinstance(data.get("metadata", {}), dict):
        return None, "not a valid notebook: metadata must be an object"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return None, "not a valid notebook: cells must be a list"
    for index, cell in enumerate(cells):
        source = cell.get("source") if isinstance(cell, dict) else None
        if not isinstance(cell, dict) or cell.get("cell_type") not in CELL_TYPES:
            return (
                None,
                f"not a valid notebook: cells.{index} must be an object with cell_type {', '.join(CELL_TYPES)}",
            )
        if not (
            isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))
        ):
            return None, f"not a valid notebook: cells.{index}.source must be text"
        if not isinstance(cell.get("metadata", {}), dict):
            return None, f"not a valid notebook: cells.{index}.metadata must be an object"
    return data, None


def cell_source(cell: dict[str, Any]) -> str:
    """A notebook cell's source as one string (nbformat allows a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def parameters_cell(nb: dict[str, Any]) -> dict[str, Any] | None:
    """The first cell tagged ``parameters`` (papermill's rule), or None."""
    return next(
        (c for c in nb.get("cells", []) if "parameters" in (c.get("metadata", {}).get("tags") or [])), None
    )


def notebook_language(nb: dict[str, Any]) -> str | None:
    """The notebook's language as papermill reads it: ``language_info.name``, else ``kernelspec.language``."""
    meta = nb.get("metadata", {})
    info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    spec = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    return info.get("name") or spec.get("language") or None


_TYPE_COMMENT = re.compile(r"^type:\s*(?P<type>\S*)\s*(?P<help>.*)$")


def notebook_parameters(cell: dict[str, Any]) -> tuple[list[NotebookParameter], str | None]:
    """The parameters a Python ``parameters`` cell declares, read with :mod:`ast` (what
    ``papermill.inspect_notebook`` yields for Python, without importing papermill): one per top-level
    assignment to a name, ``x = 1`` or ``x: int = 1``; ``default`` is the value's source text, the type comes
    from the annotation, a ``# type: int`` comment, else the literal default; ``help`` from the comment at the
    end of the assignment. IPython magics and shell escapes (``%``, ``!`` lines) are skipped.

    Returns: ``(parameters, None)``, or ``([], why)`` when the cell is not Python that can be parsed.
    """
    lines = cell_source(cell).splitlines()
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [], f"line {exc.lineno}: {exc.msg}"
    comments: dict[int, str] = {}
    try:
        # no '#' anywhere, no comment: tokenizing every parameters cell was a sixth of validating 1,000 notebooks
        for token in tokenize.generate_tokens(io.StringIO(code).readline) if "#" in code else ():
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation, value = node.targets[0].id, None, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
            annotation = (
                node.annotation.value
                if isinstance(node.annotation, ast.Constant) and isinstance(node.annotation.value, str)
                else ast.get_source_segment(code, node.annotation)
            )
        else:
            continue
        comment = comments.get(node.end_lineno or node.lineno, "")
        typed = _TYPE_COMMENT.match(comment)
        if typed:
            annotation, comment = annotation or typed["type"] or None, typed["help"]
        default = ast.get_source_segment(code, value)
        found.append(
            NotebookParameter(
                name=name, default=default, inferred_type=_type_name(annotation, default), help=comment
            )
        )
    return found, None


def _type_name(annotated: str | None, default: str | None) -> str | None:
    """The annotated type (``x: int = 1``), else the type of a literal default, else None."""
    if annotated and annotated != "None":
        return annotated
    try:
        value = ast.literal_eval(default) if default else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return type(value).__name__ if value is not None else None


def installed_kernels() -> dict[str, str]:
    """The installed kernelspecs, ``{name: resource folder}`` (jupyter_client's ``find_kernel_specs``).

    Looks in the Jupyter data path first; only when a name is not found there does the caller need the full
    search (:func:`resolve_kernel_name` does it), which also looks in IPython's folder and imports IPython.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import jupyter_path

    return KernelSpecManager(kernel_dirs=jupyter_path("kernels")).find_kernel_specs()


def resolve_kernel_name(name: str, installed: dict[str, str]) -> str | None:
    """The installed kernelspec that ``name`` means, the way jupyter_client resolves it: names are
    case-insensitive, and ``python`` is the native ``python3`` kernel (``KernelManager`` maps it).

    Args:
        installed: :func:`installed_kernels`; names missing from it are looked up in every kernel folder
            jupyter_client searches (and added to it).

    Returns: the kernelspec name to start, or None when no such kernel is installed.
    """
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

    key = name.lower()
    if key == "python":
        key = NATIVE_KERNEL_NAME
    if key not in installed:
        installed.update(KernelSpecManager().find_kernel_specs())
    return key if key in installed else None


def kernel_language(resource_dir: str) -> str | None:
    """The language a kernelspec declares (``kernel.json``), or None when it cannot be read."""
    from jupyter_client.kernelspec import KernelSpec

    try:
        return KernelSpec.from_resource_dir(resource_dir).language or None
    except (OSError, ValueError):
        return None


def _merge(*layers: TaskSettings | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        for key, value in layer.model_dump(exclude_unset=True).items():
            if key == "environment" and value is not None and merged.get("environment"):
                env = dict(merged["environment"])
                env.update({k: v for k, v in value.items() if k != "env"})
                env["env"] = {**merged["environment"].get("env", {}), **value.get("env", {})}
                merged["environment"] = env
            elif key == "parameters" and value is not None and merged.get("parameters"):
                merged["parameters"] = {**merged["parameters"], **value}
            else:
                merged[key] = value
    return merged


def validate_job(
    path: str | Path,
    *,
    check_kernels: bool = True,
    overrides: dict[Path, dict[str, Any]] | None = None,
    _jobs_above: tuple[Path, ...] = (),
) -> tuple[Job | None, list[Problem]]:
    """Discover and validate the job in folder ``path`` (or the folder of a ``job.yaml`` given as ``path``).

    Checks, before any kernel starts: ``job.yaml`` schema, notebooks (found by :func:`job_notebooks`) are
    readable notebooks, ``metadata.orchestrate`` schema (including ``run_if`` values), task keys (valid,
    unique), ``depends_on`` (no unknown key, no self dependency, no cycle, which is named ``a -> b -> a``),
    kernels installed (resolved by :func:`resolve_kernel_name`), ``cwd`` inside the job folder, parameter
    references valid and upstream, task parameters declared by the notebook's ``parameters`` cell.

    Problems come in three kinds (see :class:`~.errors.Problem`):

    - errors of the job (``task_key`` None): the job is refused, nothing runs;
    - errors of one task (``task_key`` set): its notebook cannot be read (stage ``reading the notebook``) or its
      kernel is not installed (``resolving the kernel``). The job is returned with :attr:`Task.problem` set on
      that task; a run fails that task at once and runs the rest (``validate`` still exits 2);
    - warnings (``severity`` ``warning``): an untagged notebook that cannot be read (skipped), no ``parameters``
      cell while the task has parameters, parameters that cannot be inspected (a non-Python notebook, a cell
      that is not Python; passed on unchecked), no kernelspec (python3). Also on :attr:`Task.warnings`.

    ``overrides`` (resolved notebook path -> notebook dict) validates notebooks as if they held those dicts,
    without writing them (the dry run of a task settings change, :func:`check_task_settings`).

    A run-job task's job is validated too (its folder inside the workspace, :func:`~.workspace.workspace_root`;
    its parameters known to it); ``_jobs_above`` is the chain of jobs whose run-job tasks led here, so that a
    job that runs itself through others is refused (``job cycle: a -> b -> a``).

    Returns: ``(job, problems)`` when no problem refuses the job (``problems`` may hold task errors and
    warnings), else ``(None, problems)``; problem paths are relative to the job folder's parent so that
    messages read like ``green_energy/job.yaml: tasks.x: ...``.

    Raises:
        PathOutsideRootError: ``job.yaml`` is a link to a file outside the job folder: the job's definition
            lies outside, so the job is refused as a whole and the file is never read.
    """
    scan = _Scan.of(path, check_kernels)
    if scan is not None and overrides:
        scan.overrides = overrides
    if scan is not None:
        scan.jobs_above = _jobs_above
    if scan is None:
        return None, [
            Problem(str(path), "", "not a folder (a job is a folder of notebooks, with an optional job.yaml)")
        ]
    try:
        scan.job_file = read_job_file(scan.root, scan.job_file_shown) or JobFile()
    except PathOutsideRootError:
        raise
    except ValidationError as exc:
        return None, exc.problems
    problems = scan.problems
    problems.extend(job_file_parameter_problems(scan.job_file, scan.job_file_shown))
    problems.extend(_schedule_problems(scan.job_file, scan.job_file_shown))
    for field_name in NOT_DEFAULT_SETTINGS:
        if getattr(scan.job_file.task_defaults, field_name) is not None:
            problems.append(
                Problem(scan.job_file_shown, f"task_defaults.{field_name}", "set it on a task under tasks:")
            )
    candidates = _candidate_notebooks(scan)
    entries = _task_entries(scan, candidates)
    _job_file_task_problems(scan, entries)
    tasks = [task for key in sorted(entries.by_key) if (task := _build_task(scan, key, entries)) is not None]
    for key, settings in sorted(scan.job_file.tasks.items()):
        if _without_notebook(settings):
            task = _job_file_task(scan, key, settings, entries)
            if task is None:
                entries.invalid_keys.add(key)  # still a task: dependents must not be told its key is unknown
            else:
                tasks.append(task)
    all_keys = {t.task_key for t in tasks} | set(entries.by_key) | entries.invalid_keys
    _task_groups(scan, tasks, all_keys)
    dag = _dependency_dag(scan, tasks, all_keys)
    _reference_problems(scan, tasks, dag, all_keys)
    if any(p.refuses_job for p in problems):
        return None, problems
    assert dag is not None
    return _job(scan, tasks, dag), problems


@dataclasses.dataclass
class _Scan:
    """What the steps of :func:`validate_job` share: the job folder, its ``job.yaml`` and the problems found."""

    root: Path
    check_kernels: bool
    job_file: JobFile = dataclasses.field(default_factory=JobFile)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    kernels: dict[str, str] | None = None  # installed kernels, looked up once when a task needs them
    jobs_above: tuple[Path, ...] = ()  # the jobs whose run-job tasks lead to this one (cycle check)
    overrides: dict[Path, dict[str, Any]] = dataclasses.field(
        default_factory=dict
    )  # resolved path -> notebook

    def read(self, path: Path) -> tuple[dict[str, Any] | None, str | None]:
        """:func:`read_notebook`, or the notebook dict that overrides the file (a dry run reads, never writes)."""
        if self.overrides:
            override = self.overrides.get(path.resolve())
            if override is not None:
                return override, None
        return read_notebook(path)

    @classmethod
    def of(cls, path: str | Path, check_kernels: bool) -> _Scan | None:
        """The scan of the job folder ``path`` (or of the folder of a ``job.yaml``); None if it is no folder."""
        root = Path(path).expanduser().resolve()
        if root.is_file() and root.name == JOB_FILE:
            root = root.parent
        return cls(root, check_kernels) if root.is_dir() else None

    def show(self, path: Path) -> str:
        """How problems name ``path``: relative to the job folder's parent (``green_energy/a.ipynb``)."""
        return _rel(path, self.root.parent)

    @property
    def job_file_shown(self) -> str:
        return self.show(self.root / JOB_FILE)

    def installed_kernels(self) -> dict[str, str]:
        if self.kernels is None:
            self.kernels = installed_kernels()
        return self.kernels


@dataclasses.dataclass
class _Entries:
    """The notebooks that are tasks, by task key (more than one entry is a duplicate key).

    ``by_key``: task key -> ``[(notebook, layers)]``, layers holding ``metadata`` (its :class:`TaskSettings`)
    and, for an unreadable notebook, ``problem``; ``invalid_keys``: tasks whose settings are invalid (still
    tasks: dependents are not told their key is unknown); ``notebooks``: the parsed notebooks (``{}`` when
    unreadable).
    """

    by_key: dict[str, list[tuple[Path, dict[str, Any]]]] = dataclasses.field(default_factory=dict)
    invalid_keys: set[str] = dataclasses.field(default_factory=set)
    notebooks: dict[Path, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _candidate_notebooks(scan: _Scan) -> dict[Path, str]:
    """Notebooks in the folder and its subfolders (:func:`job_notebooks`), plus those ``job.yaml`` names:
    notebook path -> how it became a candidate (``scan`` or the task key of ``job.yaml``)."""
    root, problems, show = scan.root, scan.problems, scan.show
    candidates: dict[Path, str] = {}
    for nb_path in job_notebooks(root):
        if not nb_path.is_symlink():
            # found by the walk from the resolved root, which never enters a linked folder: inside the job
            candidates[nb_path] = "scan"
            continue
        try:
            confine(nb_path.relative_to(root).as_posix(), root, what="notebook", within=WITHIN_JOB)
        except PathOutsideRootError:
            # a link out of the job folder is never read (the server confines every path to its root)
            problems.append(
                Problem(
                    show(nb_path), "", "is a link to a file outside the job folder; copy the notebook instead"
                )
            )
            continue
        candidates[nb_path] = "scan"
    for key, settings in scan.job_file.tasks.items():
        if settings.notebook and not _without_notebook(settings):  # else reported by _job_file_task
            try:
                nb_path = confine(settings.notebook, root, what="notebook", within=WITHIN_JOB)
            except ValidationError as exc:
                problems.append(
                    Problem(scan.job_file_shown, f"tasks.{key}.notebook", exc.problems[0].message)
                )
                continue
            candidates[nb_path] = key
    return candidates


def _referenced_keys(
    job_file: JobFile, read: dict[Path, tuple[dict[str, Any] | None, str | None]]
) -> set[str]:
    """Keys other tasks depend on: an unreadable notebook of that name is a (broken) task, not a scratch file."""
    referenced = {
        d
        for settings in (job_file.task_defaults, *job_file.tasks.values())
        for d in split_depends_on(settings.depends_on or [])[0]
    }
    for nb, _ in read.values():
        meta = (nb or {}).get("metadata", {}).get(METADATA_KEY)
        if isinstance(meta, dict) and isinstance(meta.get("depends_on"), list):
            for d in meta["depends_on"]:
                key = d.get("task_key") if isinstance(d, dict) else d
                if isinstance(key, str):
                    referenced.add(key)
    return referenced


def split_depends_on(items: list[Any]) -> tuple[list[str], dict[str, ConditionOutcome]]:
    """``depends_on`` as written (task keys, and ``{task_key, outcome}`` mappings) -> ``(task keys in order,
    {task_key: outcome})`` for the entries that ask for a condition task's outcome."""
    keys: list[str] = []
    outcomes: dict[str, ConditionOutcome] = {}
    for item in items:
        if isinstance(item, str):
            keys.append(item)
            continue
        entry = item if isinstance(item, Dependency) else Dependency.model_validate(item)
        keys.append(entry.task_key)
        if entry.outcome is not None:
            outcomes[entry.task_key] = entry.outcome
    return keys, outcomes


def _task_entries(scan: _Scan, candidates: dict[Path, str]) -> _Entries:
    """Read the candidate notebooks and keep those that are tasks, with their ``metadata.orchestrate``
    settings validated (unreadable notebooks that look like tasks become tasks that fail)."""
    problems, show = scan.problems, scan.show
    read = {nb_path: scan.read(nb_path) for nb_path in candidates}
    referenced = _referenced_keys(scan.job_file, read)
    entries = _Entries()
    for nb_path, origin in candidates.items():
        shown = show(nb_path)
        nb, unreadable = read[nb_path]
        if nb is None:
            key = origin if origin != "scan" else nb_path.stem
            if origin == "scan" and key not in referenced and not _mentions_metadata_key(nb_path):
                problems.append(
                    Problem(
                        shown,
                        "",
                        f"{unreadable}; skipped (not a task: no task depends on {key!r} and the file "
                        f"does not mention {METADATA_KEY!r})",
                        severity="warning",
                    )
                )
                continue
            where = shown if origin == "scan" else f"{scan.job_file_shown}: tasks.{origin}.notebook: {shown}"
            problems.append(Problem(where, "", unreadable or "", task_key=key))
            entries.notebooks[nb_path] = {}
            entries.by_key.setdefault(key, []).append(
                (nb_path, {"metadata": TaskSettings(), "problem": unreadable})
            )
            continue
        meta = nb.get("metadata", {}).get(METADATA_KEY)
        if origin == "scan" and meta is None:
            continue  # not a task
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            problems.append(Problem(shown, f"metadata.{METADATA_KEY}", "must be a mapping of task settings"))
            continue
        try:
            settings = TaskSettings.model_validate(meta)
            bad_parameters = parameter_problems(
                settings.parameters or {}, shown, f"metadata.{METADATA_KEY}.parameters"
            )
            if bad_parameters:
                raise ValidationError(bad_parameters)
        except (PydanticValidationError, ValidationError) as exc:
            problems.extend(
                exc.problems
                if isinstance(exc, ValidationError)
                else pydantic_problems(shown, exc, f"metadata.{METADATA_KEY}", model=TaskSettings)
            )
            # still a task: dependents must not also be told its key is unknown
            claimed = meta.get("task_key")
            entries.invalid_keys.add(
                origin if origin != "scan" else (claimed if isinstance(claimed, str) else nb_path.stem)
            )
            continue
        for field_name in JOB_FILE_ONLY_SETTINGS:
            if getattr(settings, field_name) is not None:
                problems.append(
                    Problem(shown, f"metadata.{METADATA_KEY}.{field_name}", "only allowed in job.yaml")
                )
        key = origin if origin != "scan" else (settings.task_key or nb_path.stem)
        entries.notebooks[nb_path] = nb
        entries.by_key.setdefault(key, []).append((nb_path, {"metadata": settings}))
    return entries


def _job_file_task_problems(scan: _Scan, entries: _Entries) -> None:
    """``tasks:`` of ``job.yaml`` that match no notebook or restate their key; a job without tasks."""
    for key, settings in scan.job_file.tasks.items():
        if _without_notebook(settings):
            continue  # checked by _job_file_task
        if not settings.notebook and key not in entries.by_key:
            scan.problems.append(
                Problem(
                    scan.job_file_shown,
                    f"tasks.{key}",
                    f"no notebook in the folder has task_key {key!r}; add notebook: <path>",
                )
            )
        if settings.task_key is not None and settings.task_key != key:
            scan.problems.append(
                Problem(
                    scan.job_file_shown,
                    f"tasks.{key}.task_key",
                    "the key under tasks: is the task_key; remove task_key",
                )
            )
    others = any(_without_notebook(settings) for settings in scan.job_file.tasks.values())
    if not entries.by_key and not others and not any(p.refuses_job for p in scan.problems):
        scan.problems.append(
            Problem(
                scan.show(scan.root),
                "",
                f"no tasks: tag a notebook by adding 'orchestrate' to its notebook metadata, e.g. "
                f'"metadata": {{"{METADATA_KEY}": {{"depends_on": []}}}}, or list notebooks under tasks: in {JOB_FILE}',
            )
        )


def _build_task(scan: _Scan, key: str, entries: _Entries) -> Task | None:
    """The :class:`Task` of ``key`` with its settings merged (task defaults < notebook metadata < ``job.yaml``
    task), its environment, kernel and parameters checked; None when a problem leaves no task to build."""
    problems, job_file = scan.problems, scan.job_file
    found = entries.by_key[key]
    if len(found) > 1:
        where = ", ".join(scan.show(p) for p, _ in found)
        problems.append(Problem(where, "task_key", f"duplicate task key {key!r}"))
        return None
    nb_path, layers = found[0]
    shown = scan.show(nb_path)
    if not TASK_KEY_PATTERN.match(key):
        problems.append(
            Problem(
                shown,
                "task_key",
                f"invalid task key {key!r}: use letters, digits, '_' and '-' (at most 100)",
            )
        )
        return None
    task_defaults = job_file.task_defaults.model_copy(update=dict.fromkeys(NOT_DEFAULT_SETTINGS))  # refused
    merged = _merge(task_defaults, layers["metadata"], job_file.tasks.get(key))
    merged.pop("notebook", None)
    merged.pop("task_key", None)
    merged = {k: v for k, v in merged.items() if v is not None}
    for field_name in JOB_FILE_ONLY_SETTINGS:  # they make a task without a notebook (or were reported above)
        merged.pop(field_name, None)
    merged["depends_on"], merged["depends_on_outcomes"] = split_depends_on(merged.get("depends_on", []))
    environment_key = merged.pop("environment_key", None)
    environment = _task_environment(scan, shown, environment_key, merged.pop("environment", {}) or {})
    if environment is None:
        return None
    problems.extend(_environment_problems(environment, scan.root, shown))
    task_parameters = dict(layers["metadata"].parameters or {})
    task_parameters.update((job_file.tasks.get(key) or TaskSettings()).parameters or {})
    if "problem" in layers:  # the notebook cannot be read: the task fails when the run starts
        merged["parameters"] = task_parameters
        return Task(
            task_key=key,
            notebook=_rel(nb_path, scan.root),
            environment=environment,
            problem=TaskProblem(stage=READING_STAGE, message=layers["problem"]),
            **merged,
        )
    nb = entries.notebooks[nb_path]
    warnings: list[Problem] = []

    def warn(field: str, message: str) -> None:
        warnings.append(Problem(shown, field, message, task_key=key, severity="warning"))

    kernel_name, language, problem = _task_kernel(
        scan, key, shown, nb, layers["metadata"], environment_key, environment, warn
    )
    if environment.cwd is not None:
        try:
            if not confine(environment.cwd, scan.root, what="working directory", within=WITHIN_JOB).is_dir():
                problems.append(Problem(shown, "environment.cwd", f"{environment.cwd!r} is not a folder"))
        except ValidationError as exc:
            problems.append(Problem(shown, "environment.cwd", exc.problems[0].message))
    declared = _declared_parameters(scan, shown, nb, language, task_parameters, warn)
    declared_names = {p.name for p in declared}
    # task_defaults parameters apply only where the notebook declares them
    defaults = {k: v for k, v in (job_file.task_defaults.parameters or {}).items() if k in declared_names}
    merged["parameters"] = {**defaults, **task_parameters}
    problems.extend(warnings)
    return Task(
        task_key=key,
        notebook=_rel(nb_path, scan.root),
        environment=environment,
        kernel_name=kernel_name,
        notebook_parameters=declared,
        problem=problem,
        warnings=[": ".join(x for x in (w.field, w.message) if x) for w in warnings],
        **merged,
    )


def _without_notebook(settings: TaskSettings) -> bool:
    """Whether ``tasks.<key>`` of job.yaml is a task without a notebook: a condition or a run-job task."""
    return settings.condition is not None or settings.run_job is not None


#: task settings a task without a notebook (a condition, a run-job task) cannot have: it runs no kernel
NOTEBOOK_ONLY_SETTINGS = (
    "notebook",
    "parameters",
    "environment_key",
    "environment",
    "max_retries",
    "min_retry_interval_seconds",
    "max_retry_interval_seconds",
    "retry_on_timeout",
    "timeout_seconds",
    "keep_failed_kernels_seconds",
    "resources",
    "for_each",
)


def _job_file_task(scan: _Scan, key: str, settings: TaskSettings, entries: _Entries) -> Task | None:
    """The task ``tasks.<key>`` of ``job.yaml`` that has no notebook: a condition task (``condition:``) or a
    run-job task (``run_job:``); ``task_defaults`` do not apply to it. None with the problems recorded."""
    shown, field = scan.job_file_shown, f"tasks.{key}"
    kind = "condition" if settings.condition is not None else "run_job"
    if settings.condition is not None and settings.run_job is not None:
        scan.problems.append(
            Problem(shown, f"{field}.run_job", "a task is a condition or runs a job, not both")
        )
        return None
    if key in entries.by_key:
        where = ", ".join(scan.show(p) for p, _ in entries.by_key[key])
        scan.problems.append(
            Problem(shown, f"{field}.{kind}", f"duplicate task key {key!r}: the notebook {where} has it too")
        )
        return None
    if not TASK_KEY_PATTERN.match(key):
        scan.problems.append(
            Problem(shown, field, f"invalid task key {key!r}: use letters, digits, '_' and '-' (at most 100)")
        )
        return None
    given = [name for name in NOTEBOOK_ONLY_SETTINGS if getattr(settings, name) is not None]
    if given:
        what = "a condition task" if kind == "condition" else "a run-job task"
        scan.problems.append(
            Problem(
                shown,
                f"{field}.{given[0]}",
                f"{what} runs no notebook: remove {', '.join(given)} (or the {kind})",
            )
        )
        return None
    if settings.condition is not None:
        problem = literal_problem(settings.condition)
        if problem:
            scan.problems.append(Problem(shown, f"{field}.condition", problem))
            return None
    if settings.run_job is not None and not _run_job_problems(scan, key, settings.run_job):
        return None
    depends_on, outcomes = split_depends_on(settings.depends_on or [])
    return Task(
        task_key=key,
        notebook=None,
        condition=settings.condition,
        run_job=settings.run_job,
        depends_on=depends_on,
        depends_on_outcomes=outcomes,
        run_if=settings.run_if or RunIf.all_success,
        description=settings.description,
        notifications=settings.notifications,
        kernel_name="",
    )


#: how deep run-job tasks may nest (a job that runs a job that runs a job ...)
MAX_RUN_JOB_DEPTH = 10


def run_job_folder(job_folder: str | Path, run_job: RunJob) -> Path:
    """The folder of the job a run-job task of the job in ``job_folder`` runs: ``run_job.job`` relative to it,
    confined to its workspace (:func:`~.workspace.workspace_root`, symlinks resolved).

    Raises:
        PathOutsideRootError: the path leads outside the workspace.
    """
    folder = Path(job_folder).resolve()
    root = workspace_root(folder)
    try:
        return confine(folder / run_job.job, root, what="run_job.job", within=f"the workspace {root}")
    except PathOutsideRootError:  # name the path as written, not joined to the job folder
        raise PathOutsideRootError(
            Problem("", "", f"run_job.job {run_job.job!r} leads outside the workspace {root}")
        ) from None


def _run_job_problems(scan: _Scan, key: str, run_job: RunJob) -> bool:
    """Check run-job task ``key``: its job's folder (inside the workspace), that job valid, no job cycle
    through run-job tasks, its parameters valid names known to that job. Returns True when it passes."""
    shown, field = scan.job_file_shown, f"tasks.{key}.run_job"
    try:
        child = run_job_folder(scan.root, run_job)
    except ValidationError as exc:
        scan.problems.append(Problem(shown, f"{field}.job", exc.problems[0].message))
        return False
    chain = (*scan.jobs_above, scan.root)
    if child in chain:
        names = [p.name for p in chain[chain.index(child) :]] + [child.name]
        scan.problems.append(Problem(shown, f"{field}.job", f"job cycle: {' -> '.join(names)}"))
        return False
    if len(chain) > MAX_RUN_JOB_DEPTH:
        scan.problems.append(
            Problem(shown, f"{field}.job", f"run-job tasks nest deeper than {MAX_RUN_JOB_DEPTH}")
        )
        return False
    if not child.is_dir():
        scan.problems.append(Problem(shown, f"{field}.job", f"{run_job.job!r} is not a folder"))
        return False
    job, problems = validate_job(child, check_kernels=scan.check_kernels, _jobs_above=chain)
    errors = [p for p in problems if not p.is_warning]
    if job is None or errors:
        cycle = next((p for p in errors if "job cycle" in p.message), None)
        first = cycle or (errors[0] if errors else Problem(str(child), "", "invalid"))
        message = first.message if cycle else f"the job at {run_job.job!r} is invalid: {first}"
        scan.problems.append(Problem(shown, f"{field}.job", message))
        return False
    bad = parameter_problems(run_job.parameters, shown, f"{field}.parameters")
    known = set(job.parameters) | {p.name for t in job.tasks for p in t.notebook_parameters}
    bad += [
        Problem(
            shown,
            f"{field}.parameters.{name}",
            f"job {job.name!r} has no job or notebook parameter {name!r} (known: {', '.join(sorted(known)) or 'none'})",
        )
        for name in run_job.parameters
        if name not in known
    ]
    scan.problems.extend(bad)
    return not bad


def task_shown(scan_root: Path, task: Task, job_file_shown: str) -> tuple[str, str]:
    """Where problems of ``task`` are reported: ``(file, field prefix)`` -- its notebook and ``""``, or
    ``job.yaml`` and ``tasks.<key>.`` for a condition task."""
    if task.notebook is None:
        return job_file_shown, f"tasks.{task.task_key}."
    return _rel(scan_root / task.notebook, scan_root.parent), ""


def _task_environment(
    scan: _Scan, shown: str, environment_key: str | None, own_environment: dict[str, Any]
) -> Environment | None:
    """The task's environment: the named one of ``job.yaml`` ``environments`` (if ``environment_key``) with the
    task's own fields on top; None (and a problem) when the name is unknown."""
    environments = scan.job_file.environments
    if environment_key is not None:
        if environment_key not in environments:
            scan.problems.append(
                Problem(
                    shown,
                    "environment_key",
                    f"unknown environment {environment_key!r} (job.yaml environments: {', '.join(sorted(environments)) or 'none'})",
                )
            )
            return None
        named = environments[environment_key].model_dump(exclude_unset=True)
        own_environment = {
            **named,
            **own_environment,
            "env": {**named.get("env", {}), **own_environment.get("env", {})},
        }
    return Environment.model_validate(own_environment)


def _task_kernel(
    scan: _Scan,
    key: str,
    shown: str,
    nb: dict[str, Any],
    metadata: TaskSettings,
    environment_key: str | None,
    environment: Environment,
    warn: Callable[[str, str], None],
) -> tuple[str, str | None, TaskProblem | None]:
    """``(kernel_name, language, problem)`` of a task: the kernel it runs on (resolved among the installed
    ones when ``check_kernels``), the language its cells are read in, and the task's problem when the
    kernel is not installed (also reported)."""
    spec = nb.get("metadata", {}).get("kernelspec")
    notebook_kernel = (
        spec.get("name") if isinstance(spec, dict) and isinstance(spec.get("name"), str) else None
    )
    requested = environment.kernel_name or notebook_kernel
    kernel_name, language, problem = requested or "python3", notebook_language(nb), None
    if environment.python:
        language = "python"
    elif scan.check_kernels:
        kernels = scan.installed_kernels()
        resolved = resolve_kernel_name(kernel_name, kernels)
        origin = (
            _kernel_origin(key, metadata, scan.job_file, environment_key)
            if environment.kernel_name
            else "metadata.kernelspec.name"
        )
        if resolved is None:
            hint = (
                "; install it, or set environment.kernel_name to run the notebook on an installed kernel"
                if not environment.kernel_name
                else ""
            )
            message = f"kernel {kernel_name!r} is not installed (installed: {', '.join(sorted(kernels)) or 'none'}){hint}"
            scan.problems.append(
                Problem(shown, origin if requested else "metadata.kernelspec", message, task_key=key)
            )
            problem = TaskProblem(stage=KERNEL_STAGE, message=f"{origin}: {message}")
        else:
            kernel_name = resolved
            if (
                environment.kernel_name or not language
            ):  # the kernel that runs the cells decides how they are read
                language = kernel_language(kernels[resolved]) or (
                    "python" if resolved == "python3" else language
                )
    if not requested and not environment.python:
        warn(
            "metadata.kernelspec",
            "the notebook has no kernelspec: it runs on python3 (set environment.kernel_name to choose)",
        )
    return kernel_name, language, problem


def _declared_parameters(
    scan: _Scan,
    shown: str,
    nb: dict[str, Any],
    language: str | None,
    task_parameters: dict[str, Any],
    warn: Callable[[str, str], None],
) -> list[NotebookParameter]:
    """The parameters the notebook's ``parameters`` cell declares; task parameters it does not declare are
    problems when the cell can be inspected, warnings say when it cannot."""
    cell = parameters_cell(nb)
    declared: list[NotebookParameter] = []
    inspectable = cell is not None
    if cell is not None and not (language or "python").lower().startswith("python"):
        inspectable = False
        if task_parameters:
            warn(
                "parameters cell",
                f"the parameters of a {language} notebook cannot be inspected; task parameters "
                f"({', '.join(task_parameters)}) are passed on unchecked",
            )
    elif cell is not None:
        declared, unreadable = notebook_parameters(cell)
        if unreadable:
            inspectable = False
            warn(
                "parameters cell",
                f"cannot be read as Python ({unreadable}); task parameters are passed on unchecked",
            )
    if cell is None and task_parameters:
        warn(
            "parameters cell",
            f"the notebook has no cell tagged 'parameters': papermill injects {', '.join(task_parameters)} "
            "in a new first cell, before the notebook's own code (tag the cell that sets the defaults 'parameters')",
        )
    declared_names = {p.name for p in declared}
    for name in task_parameters:
        if inspectable and name not in declared_names:
            scan.problems.append(
                Problem(
                    shown,
                    f"parameters.{name}",
                    f"the notebook's parameters cell does not declare {name!r} (it declares: {', '.join(sorted(declared_names)) or 'nothing'})",
                )
            )
    return declared


def _task_groups(scan: _Scan, tasks: list[Task], all_keys: set[str]) -> None:
    """Task groups (Airflow's TaskGroup): ``groups:`` of ``job.yaml`` sets ``group`` on its members (a task in
    two groups, an unknown member, a name that is a task key or not a valid key are errors); then ``depends_on``
    entries that name a group become its members (a task may not depend on its own group)."""
    by_key = {t.task_key: t for t in tasks}
    shown = scan.job_file_shown
    for name, members in scan.job_file.groups.items():
        field = f"groups.{name}"
        if not TASK_KEY_PATTERN.match(name) or name in all_keys:
            why = (
                "is a task key too" if name in all_keys else "use letters, digits, '_' and '-' (at most 100)"
            )
            scan.problems.append(Problem(shown, field, f"invalid group name {name!r}: {why}"))
            continue
        for key in members:
            task = by_key.get(key)
            if task is None:
                if key not in all_keys:
                    scan.problems.append(
                        Problem(shown, field, f"unknown task {key!r} (tasks: {', '.join(sorted(all_keys))})")
                    )
                continue
            if task.group is not None and task.group != name:
                scan.problems.append(
                    Problem(
                        shown,
                        field,
                        f"task {key!r} is in group {task.group!r} already: a task is in one group",
                    )
                )
                continue
            task.group = name
    groups: dict[str, list[str]] = {}
    for task in tasks:
        if task.group is None:
            continue
        if task.group in all_keys or not TASK_KEY_PATTERN.match(task.group):
            file, prefix = task_shown(scan.root, task, shown)
            why = (
                "it is a task key"
                if task.group in all_keys
                else "use letters, digits, '_' and '-' (at most 100)"
            )
            scan.problems.append(Problem(file, f"{prefix}group", f"invalid group name {task.group!r}: {why}"))
            continue
        groups.setdefault(task.group, []).append(task.task_key)
    for task in tasks:
        named = [d for d in task.depends_on if d in groups]
        if not named:
            continue
        for group in [g for g in named if g in task.depends_on_outcomes]:
            file, prefix = task_shown(scan.root, task, shown)
            scan.problems.append(
                Problem(
                    file,
                    f"{prefix}depends_on",
                    f"{group!r} is a task group: only a condition task has an outcome (remove outcome)",
                )
            )
        if task.group in named:
            file, prefix = task_shown(scan.root, task, shown)
            scan.problems.append(
                Problem(
                    file,
                    f"{prefix}depends_on",
                    f"task {task.task_key!r} depends on its own group {task.group!r}",
                )
            )
        task.depends_on = list(
            dict.fromkeys(k for d in task.depends_on for k in groups.get(d, [d]) if k != task.task_key)
        )


def _dependency_dag(scan: _Scan, tasks: list[Task], all_keys: set[str]) -> Dag | None:
    """The DAG of the tasks' ``depends_on`` (self and unknown dependencies reported and left out; a cycle
    reported and None returned)."""
    keys = {t.task_key for t in tasks}
    dag_input: dict[str, list[str]] = {}
    conditions = {t.task_key for t in tasks if t.condition is not None}
    for task in tasks:
        shown, prefix = task_shown(scan.root, task, scan.job_file_shown)
        field = f"{prefix}depends_on"
        deps = []
        for dep in task.depends_on:
            if dep == task.task_key:
                scan.problems.append(Problem(shown, field, f"task {dep!r} depends on itself"))
            elif dep not in all_keys:
                scan.problems.append(
                    Problem(shown, field, f"unknown task {dep!r} (tasks: {', '.join(sorted(all_keys))})")
                )
            elif dep in task.depends_on_outcomes and dep not in conditions:
                scan.problems.append(
                    Problem(
                        shown,
                        field,
                        f"{dep!r} is not a condition task: only a condition task has an outcome "
                        f"(remove outcome, or depend on a task with condition:)",
                    )
                )
            elif dep in keys:
                deps.append(dep)
        dag_input[task.task_key] = deps
    try:
        return Dag(dag_input)
    except CycleError as exc:
        scan.problems.append(
            Problem(scan.show(scan.root), "depends_on", f"dependency cycle: {' -> '.join(exc.cycle)}")
        )
        return None


def _reference_problems(scan: _Scan, tasks: list[Task], dag: Dag | None, all_keys: set[str]) -> None:
    """Parameters of schedules and triggers that name no parameter; ``{{...}}`` references of job and task
    parameters that name nothing or a task that is not upstream (:func:`~.parameters.check_reference`)."""
    job_file, shown = scan.job_file, scan.job_file_shown
    known = (
        set(job_file.parameters)
        | {p.name for t in tasks for p in t.notebook_parameters}
        | {k for t in tasks for k in t.parameters}
    )
    for field_name, parameters in _fire_parameters(job_file):
        for name in parameters:
            if name not in known:
                scan.problems.append(
                    Problem(
                        shown,
                        f"{field_name}.{name}",
                        f"no job parameter or notebook parameter is named {name!r} (known: {', '.join(sorted(known)) or 'none'})",
                    )
                )
    for name, value in job_file.parameters.items():
        for ref in references(value):
            message = check_reference(
                ref, job_parameters=job_file.parameters, task_keys=all_keys, upstream=None
            )
            if message:
                scan.problems.append(Problem(shown, f"parameters.{name}", message))
    for task in tasks:
        # (file, field, value) of every value of the task that may hold references
        file, _ = task_shown(scan.root, task, shown)
        values = [(file, f"parameters.{name}", value) for name, value in task.parameters.items()]
        if task.condition is not None:
            prefix = f"tasks.{task.task_key}.condition"
            values += [
                (shown, f"{prefix}.{side}", getattr(task.condition, side)) for side in ("left", "right")
            ]
        if task.run_job is not None:
            prefix = f"tasks.{task.task_key}.run_job.parameters"
            values += [(shown, f"{prefix}.{name}", value) for name, value in task.run_job.parameters.items()]
        if task.for_each is not None and REFERENCE.fullmatch(str(task.for_each.inputs)):
            where, prefix = _for_each_place(scan, task)
            values.append((where, f"{prefix}.inputs", task.for_each.inputs))
        upstream: set[str] | None = None  # looked up for tasks with references only
        for where, field, value in values:
            for ref in references(value):
                if upstream is None:
                    upstream = dag.upstream_of(task.task_key) if dag else set(task.depends_on)
                message = check_reference(
                    ref,
                    job_parameters=job_file.parameters,
                    task_keys=all_keys,
                    upstream=upstream,
                    task_key=task.task_key,
                )
                if message:
                    scan.problems.append(Problem(where, field, message))
        if task.for_each is not None:
            _for_each_problems(scan, task)


def _for_each_place(scan: _Scan, task: Task) -> tuple[str, str]:
    """Where problems of ``task``'s ``for_each`` are reported: ``(file, field prefix)``, job.yaml's
    ``tasks.<key>.for_each`` when it was written there, else the notebook's ``for_each``."""
    if (scan.job_file.tasks.get(task.task_key) or TaskSettings()).for_each is not None:
        return scan.job_file_shown, f"tasks.{task.task_key}.for_each"
    return task_shown(scan.root, task, scan.job_file_shown)[0], "for_each"


def _for_each_problems(scan: _Scan, task: Task) -> None:
    """``for_each`` of ``task``: ``inputs`` a list within ``max_inputs`` (each element a valid parameter
    value), or a string that is exactly one reference to a job parameter or an upstream task value; the
    parameter declared by the notebook's ``parameters`` cell when it could be inspected."""
    for_each = task.for_each
    assert for_each is not None
    shown, prefix = _for_each_place(scan, task)
    field = f"{prefix}.inputs"
    if isinstance(for_each.inputs, list):
        if len(for_each.inputs) > for_each.max_inputs:
            scan.problems.append(
                Problem(
                    shown,
                    field,
                    f"{len(for_each.inputs):,} inputs, more than max_inputs {for_each.max_inputs:,}",
                )
            )
        for index, element in enumerate(for_each.inputs):
            scan.problems.extend(
                parameter_problems({for_each.parameter: element}, shown, f"{field}[{index}]")
            )
    elif REFERENCE.fullmatch(for_each.inputs) is None:  # a reference: checked with the task's others
        scan.problems.append(
            Problem(
                shown,
                field,
                f"{for_each.inputs!r} is neither a list nor one reference such as "
                "'{{tasks.<task_key>.values.<name>}}'",
            )
        )
    declared = {p.name for p in task.notebook_parameters}
    if declared and for_each.parameter not in declared:
        scan.problems.append(
            Problem(
                shown,
                f"{prefix}.parameter",
                f"the notebook's parameters cell does not declare {for_each.parameter!r} (it declares "
                f"{', '.join(sorted(declared))}); each iteration sets it to its input",
            )
        )


def _job(scan: _Scan, tasks: list[Task], dag: Dag) -> Job:
    """The validated :class:`Job`, its tasks in topological order."""
    position = {key: i for i, key in enumerate(dag.order)}
    job_file = scan.job_file
    return Job(
        name=job_file.name or scan.root.name,
        path=str(scan.root),
        description=job_file.description,
        parameters=job_file.parameters,
        max_parallel_tasks=job_file.max_parallel_tasks,
        max_concurrent_runs=job_file.max_concurrent_runs,
        queue=job_file.queue,
        schedules=job_file.schedules,
        triggers=job_file.triggers,
        notifications=job_file.notifications,
        executor=job_file.executor,
        tasks=sorted(tasks, key=lambda t: position[t.task_key]),
    )


READING_STAGE = "reading the notebook"
KERNEL_STAGE = "resolving the kernel"


def _mentions_metadata_key(path: Path) -> bool:
    """The raw file names ``"orchestrate"``: an unreadable notebook that was probably meant to be a task."""
    try:
        return f'"{METADATA_KEY}"'.encode() in path.read_bytes()
    except OSError:
        return False


def _kernel_origin(key: str, metadata: TaskSettings, job_file: JobFile, environment_key: str | None) -> str:
    """Where a task's ``environment.kernel_name`` was set (the layer that wins in :func:`_merge`)."""
    task = job_file.tasks.get(key)
    if task is not None and task.environment is not None and task.environment.kernel_name:
        return f"{JOB_FILE} tasks.{key}.environment.kernel_name"
    if metadata.environment is not None and metadata.environment.kernel_name:
        return f"metadata.{METADATA_KEY}.environment.kernel_name"
    if job_file.task_defaults.environment is not None and job_file.task_defaults.environment.kernel_name:
        return f"{JOB_FILE} task_defaults.environment.kernel_name"
    return f"{JOB_FILE} environments.{environment_key}.kernel_name"


def _environment_problems(environment: Environment, root: Path, shown: str) -> list[Problem]:
    """An interpreter that is missing or lacks ipykernel, a requirements file outside the job folder or
    missing, a requirement that is a pip option or not PEP 508, both kernel_name and python, ``${NAME}``
    references to variables that are not set."""
    from jupyter_orchestrate.environments import expand_env, task_requirements

    problems = []
    if environment.python:
        python = Path(environment.python)
        try:
            if not python.is_absolute():
                # a relative interpreter lives in the job folder; the file itself may link out (a venv's
                # python links to its base interpreter), so the folder holding it is what is confined
                python = (
                    confine(python.parent, root, what="interpreter folder", within=WITHIN_JOB) / python.name
                )
        except ValidationError as exc:
            problems.append(Problem(shown, "environment.python", exc.problems[0].message))
        else:
            if not python.exists() or not os.access(python, os.X_OK):
                problems.append(
                    Problem(
                        shown,
                        "environment.python",
                        f"interpreter {environment.python!r} does not exist or is not executable",
                    )
                )
            elif not _has_ipykernel(str(python)):
                problems.append(
                    Problem(
                        shown,
                        "environment.python",
                        f"interpreter {environment.python!r} has no ipykernel: run {python} -m pip install ipykernel",
                    )
                )
        if environment.kernel_name:
            problems.append(Problem(shown, "environment", "give kernel_name or python, not both"))
    known = len(problems)
    if environment.requirements_file:
        try:
            if not confine(
                environment.requirements_file, root, what="requirements file", within=WITHIN_JOB
            ).is_file():
                problems.append(
                    Problem(
                        shown, "environment.requirements_file", f"{environment.requirements_file!r} not found"
                    )
                )
        except ValidationError as exc:
            problems.append(Problem(shown, "environment.requirements_file", exc.problems[0].message))
    if len(problems) == known:  # the requirements file (if any) is there to read
        try:
            task_requirements(environment, root)
        except ValidationError as exc:
            problems.extend(
                Problem(
                    shown,
                    f"environment.{'requirements' if p.path == 'requirements' else 'requirements_file'}",
                    p.message,
                )
                for p in exc.problems
            )
    if (environment.requirements or environment.requirements_file) and environment.python:
        problems.append(
            Problem(
                shown,
                "environment",
                "requirements build their own environment: do not combine them with python",
            )
        )
    try:
        expand_env(environment.env)
    except ValidationError as exc:
        problems.extend(Problem(shown, "environment.env", p.message) for p in exc.problems)
    return problems


_IPYKERNEL: dict[str, bool] = {}


def _has_ipykernel(python: str) -> bool:
    if python not in _IPYKERNEL:
        import subprocess

        probe = subprocess.run(
            [python, "-c", "import ipykernel"], check=False, capture_output=True, timeout=60
        )
        _IPYKERNEL[python] = probe.returncode == 0
    return _IPYKERNEL[python]


def _schedule_problems(job_file: JobFile, shown: str) -> list[Problem]:
    """Invalid cron, unknown timezone, bad ``every`` rule, duplicate schedule names (scheduling.timing)."""
    from jupyter_orchestrate.scheduling.policy import schedule_name

    problems, names = [], set()
    if job_file.schedules:  # croniter's import runs `file` on the interpreter (platform.architecture)
        from jupyter_orchestrate.scheduling.timing import schedule_problems
    for index, schedule in enumerate(job_file.schedules):
        for field, message in schedule_problems(schedule):
            problems.append(
                Problem(shown, f"schedules.{index}.{field}" if field else f"schedules.{index}", message)
            )
        name = schedule_name(schedule, index)
        if name in names:
            problems.append(Problem(shown, f"schedules.{index}.name", f"duplicate schedule name {name!r}"))
        names.add(name)
    for index, trigger in enumerate(job_file.triggers):
        if trigger.file_arrival and (
            Path(trigger.file_arrival.path).is_absolute() or ".." in Path(trigger.file_arrival.path).parts
        ):
            problems.append(
                Problem(
                    shown,
                    f"triggers.{index}.file_arrival.path",
                    "must be a path or glob inside the job folder",
                )
            )
    return problems


def load_job(path: str | Path, *, check_kernels: bool = True) -> Job:
    """Discover and validate the job at ``path``; see :func:`validate_job`. The job may hold tasks that cannot
    execute (:attr:`Task.problem`): a run fails them and runs the rest.

    Raises:
        ValidationError: with every error found (not the warnings), when one of them refuses the job.
    """
    job, problems = validate_job(path, check_kernels=check_kernels)
    if job is None:
        raise ValidationError([p for p in problems if not p.is_warning])
    return job


SKIP_DIRS = {
    "node_modules",
    "site-packages",
    "__pycache__",
    "output",
    "outputs",
    "executed",
    "build",
    "dist",
    "orchestrate_runs",
}
STATE_DB = "orchestrate.db"  # a folder holding it is a state home (store.DB_NAME), whatever its name
MAX_NOTEBOOK_DEPTH = 3  # subfolder levels below the job folder searched for task notebooks


def is_skipped_folder(folder: Path) -> bool:
    """Folders never searched for jobs or task notebooks: hidden ones (``.ipynb_checkpoints``, ``.git``,
    ``.orchestrate``), links, state homes (any folder holding ``orchestrate.db``), executed-notebook and build
    folders (:data:`SKIP_DIRS`)."""
    return (
        folder.name.startswith(".")
        or folder.name in SKIP_DIRS
        or folder.is_symlink()
        or (folder / STATE_DB).exists()
    )


def job_notebooks(root: Path, max_depth: int = MAX_NOTEBOOK_DEPTH) -> list[Path]:
    """The notebooks of the job folder ``root``: ``*.ipynb`` in it and in its subfolders down to ``max_depth``
    levels (``scripts/``, ``nbs/``), except :func:`is_skipped_folder` folders and subfolders with their own
    ``job.yaml`` (another job). Sorted by path relative to ``root``; a symlink and the notebook it links to
    inside the job count once (the first by that order)."""
    found: list[Path] = []

    def visit(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for entry in entries:
            if (
                entry.suffix == ".ipynb"
                and not entry.name.startswith(".")
                and (entry.is_file() or entry.is_symlink())
            ):
                found.append(entry)
            elif (
                depth < max_depth
                and entry.is_dir()
                and not is_skipped_folder(entry)
                and not (entry / JOB_FILE).exists()
            ):
                visit(entry, depth + 1)

    visit(root, 0)
    # a link to a notebook of the job is the same task as its target: keep the first by path, not both
    unique: dict[Path, Path] = {}
    resolved_root = root.resolve()
    for notebook in sorted(found, key=lambda p: p.relative_to(root).parts):
        # only a link needs resolving: the walk never enters a linked folder, so any other notebook's resolved
        # path is its path below the resolved root (resolving each cost a 1,000-notebook job 0.1 s)
        target = notebook.resolve() if notebook.is_symlink() else resolved_root / notebook.relative_to(root)
        unique.setdefault(target, notebook)
    return list(unique.values())


def is_task_notebook(path: Path) -> bool:
    """True if the notebook's metadata has the ``orchestrate`` key (cheap text check first)."""
    try:
        text = path.read_text(encoding="utf-8")
        return f'"{METADATA_KEY}"' in text and METADATA_KEY in json.loads(text).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return False


def _is_tagged_inside(entry: Path, folder: Path) -> bool:
    """``entry`` is a task notebook of ``folder`` that does not lead outside it (a link out is never read)."""
    if entry.suffix != ".ipynb":
        return False
    try:
        return is_task_notebook(confine(entry.name, folder, what="notebook", within=WITHIN_JOB))
    except ValidationError:
        return False


def find_jobs(
    root: str | Path, *, max_depth: int = 4, exclude: tuple[Path, ...] = (), tagged: bool = True
) -> list[Path]:
    """Job folders under ``root``: folders with a ``job.yaml`` or (``tagged``) a tagged notebook, at most
    ``max_depth`` levels down. Inside a job folder only folders with their own ``job.yaml`` are other jobs
    (tagged notebooks in its subfolders are its tasks, see :func:`job_notebooks`). :func:`is_skipped_folder`
    folders and ``exclude`` are skipped. ``tagged=False`` (the scheduler: only job.yaml holds schedules) reads
    no notebook.

    Returns: absolute paths, sorted.
    """
    root = Path(root).resolve()
    skip = {p.resolve() for p in exclude}
    found: list[Path] = []

    def visit(folder: Path, depth: int, in_job: bool) -> None:
        if folder in skip:
            return
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        if (folder / JOB_FILE).is_file() or (
            tagged and not in_job and any(_is_tagged_inside(e, folder) for e in entries)
        ):
            found.append(folder)
            in_job = True
        if depth >= max_depth:
            return
        for entry in entries:
            if entry.is_dir() and not is_skipped_folder(entry):
                visit(entry, depth + 1, in_job)

    visit(root, 0, False)
    return found


EDITABLE_FIELDS = frozenset(TaskSettings.model_fields) - {"task_key", "notebook"}


#: ``metadata`` of :func:`check_task_settings` not given: the notebook file's ``metadata.orchestrate`` is used.
FROM_FILE: Any = object()


@dataclasses.dataclass
class TaskSettingsChange:
    """A task settings change validated in memory (:func:`check_task_settings`): nothing written yet.

    ``notebook``: the task's notebook (resolved, inside the job folder); ``task_key``: its key after the
    change; ``settings``: its ``metadata.orchestrate`` after the change; ``data``: the whole notebook as
    the file holds it, with those settings; ``job``/``problems``: :func:`validate_job` with the change.
    """

    notebook: Path
    task_key: str
    settings: dict[str, Any]
    data: dict[str, Any]
    job: Job | None
    problems: list[Problem]


def _check_changes(changes: dict[str, Any]) -> None:
    unknown = sorted(set(changes) - EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(
            [
                Problem(
                    "",
                    f,
                    f"unknown or read-only task setting (editable: {', '.join(sorted(EDITABLE_FIELDS))})",
                )
                for f in unknown
            ]
        )
    try:
        TaskSettings.model_validate({k: v for k, v in changes.items() if v is not None})
    except PydanticValidationError as exc:
        raise ValidationError(pydantic_problems("", exc)) from None
    if isinstance(changes.get("parameters"), dict):
        bad = parameter_problems(changes["parameters"], "", "parameters")
        if bad:
            raise ValidationError(bad)


def _notebook_of_task(root: Path, task_key: str, entry: TaskSettings | None) -> Path:
    from jupyter_orchestrate.errors import NotFoundError

    what = f"notebook of task {task_key!r}"
    notebook: Path | None = None
    if entry is not None and entry.notebook:
        notebook = confine(entry.notebook, root, what=what, within=WITHIN_JOB)
    else:
        for path in job_notebooks(root):
            try:
                resolved = confine(path.relative_to(root).as_posix(), root, what=what, within=WITHIN_JOB)
            except PathOutsideRootError:
                if path.stem == task_key:
                    raise  # the task's notebook by name; a link out is never read, let alone written
                continue
            if is_task_notebook(resolved) and _task_key_of(resolved) == task_key:
                notebook = resolved  # a link inside the job folder is followed, so the link stays a link
                break
    if notebook is None or not notebook.is_file():
        raise NotFoundError(f"job {root.name} has no task {task_key!r}")
    return notebook


def _named_notebook(root: Path, notebook: str) -> Path:
    """The notebook ``notebook`` (relative to the job folder) that discovery would consider for the job."""
    from jupyter_orchestrate.errors import NotFoundError

    path = confine(notebook, root, what="notebook", within=WITHIN_JOB)
    if path.suffix != ".ipynb" or not path.is_file():
        raise NotFoundError(f"no notebook {notebook!r} in job {root.name}")
    if path not in {p.resolve() for p in job_notebooks(root)}:
        raise ValidationError(
            Problem("", "notebook", f"{notebook!r} is not a notebook discovery finds in job {root.name}")
        )
    return path


def check_task_settings(
    job_path: str | Path,
    task_key: str,
    changes: dict[str, Any],
    *,
    notebook: str | None = None,
    metadata: dict[str, Any] | None = FROM_FILE,
) -> TaskSettingsChange:
    """Validate a change of a task's ``metadata.orchestrate`` without writing anything (a dry run).

    Args:
        job_path: the job folder.
        task_key: the task; with ``notebook`` given, the key the notebook has after the change (its
            ``task_key`` setting, else its file name's stem) must be this one.
        changes: setting -> new value (:data:`EDITABLE_FIELDS`); ``None`` removes the setting.
        notebook: the notebook, relative to the job folder, when it is not (yet) a task: it is validated
            as if it were tagged. Default: the task's notebook, found by ``task_key``.
        metadata: the notebook's current ``metadata.orchestrate`` as open in an editor (may differ from the
            file while unsaved); ``None``: the notebook is not yet a task. Default: the file's.

    Returns: the :class:`TaskSettingsChange`, with the job as it would be validated after the change.

    Raises:
        ValidationError: unknown or invalid fields, a ``notebook`` whose key is not ``task_key``, or
            problems the change would create (problems that were there before may remain in ``problems``).
        NotFoundError: no task ``task_key`` (no notebook ``notebook``) in the job.
        ConflictError: ``job.yaml`` sets one of these fields for the task, so the notebook's value would not
            take effect.
        PathOutsideRootError: the notebook (or ``job.yaml``) leads outside the job folder; nothing is read.
    """
    from jupyter_orchestrate.errors import ConflictError

    root = Path(job_path).resolve()
    _check_changes(changes)
    if metadata is not FROM_FILE and metadata is not None and not isinstance(metadata, dict):
        raise ValidationError(Problem("", "metadata", "must be a mapping of task settings or null"))
    try:
        job_file = read_job_file(root, JOB_FILE) or JobFile()
    except PathOutsideRootError:
        raise
    except ValidationError:
        job_file = JobFile()  # reported by validation below
    entry = job_file.tasks.get(task_key)
    if entry is not None:
        fixed = sorted(set(changes) & set(entry.model_dump(exclude_unset=True)))
        if fixed:
            raise ConflictError(f"{JOB_FILE} sets {', '.join(fixed)} for task {task_key!r}; change it there")
    path = _notebook_of_task(root, task_key, entry) if notebook is None else _named_notebook(root, notebook)
    data, unreadable = read_notebook(path)
    if data is None:
        raise ValidationError(Problem(_rel(path, root.parent), "", unreadable or "cannot be read"))
    data.setdefault("metadata", {})
    current = data["metadata"].get(METADATA_KEY) if metadata is FROM_FILE else metadata
    settings = dict(current) if isinstance(current, dict) else {}
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    data["metadata"][METADATA_KEY] = settings
    claimed = settings.get("task_key")
    key = claimed if isinstance(claimed, str) else path.stem
    if notebook is not None and entry is None and key != task_key:
        raise ValidationError(
            Problem("", "notebook", f"{notebook!r} is task {key!r}, not {task_key!r}", task_key=key)
        )
    before = {str(p) for p in validate_job(root)[1]}
    job, after = validate_job(root, overrides={path: data})
    new = [p for p in after if str(p) not in before and not p.is_warning]
    if new:
        raise ValidationError(new)
    return TaskSettingsChange(path, key, settings, data, job, after)


def update_task_settings(
    job_path: str | Path, task_key: str, changes: dict[str, Any]
) -> tuple[Job | None, list[Problem]]:
    """Change a task's settings in its notebook's ``metadata.orchestrate``; a ``None`` value removes a field.

    The change is validated first (:func:`check_task_settings`), and the notebook is rewritten atomically
    only if the job has no new validation problem afterwards (so a change that creates a dependency cycle,
    names an unknown task or an uninstalled kernel is refused and the notebook is left as it was).

    Returns: ``(job, problems)`` after the change, as :func:`validate_job` (problems that were there before
    the change may remain).

    Raises: as :func:`check_task_settings`.
    """
    change = check_task_settings(job_path, task_key, changes)
    _atomic_write(
        change.notebook,
        (json.dumps(change.data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"),
    )
    return change.job, change.problems


def _task_key_of(path: Path) -> str:
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get(METADATA_KEY) or {}
    key = meta.get("task_key") if isinstance(meta, dict) else None
    return key if isinstance(key, str) else path.stem


def _atomic_write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.orchestrate-tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
