"""The response documents are defined once (jupyter_orchestrate/schemas/documents.py): the checked-in JSON
Schema (the source of the sidebar's generated TypeScript types) and docs/api.md's reference must be what the
models give, and the documents keep the shapes the sidebar and the CLI's --json readers rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from jupyter_orchestrate.errors import Problem
from jupyter_orchestrate.models import (
    Attempt,
    Job,
    NotebookParameter,
    Run,
    RunStatus,
    Task,
    TaskRun,
    TaskRunStatus,
)
from jupyter_orchestrate.schemas import export
from jupyter_orchestrate.schemas.documents import (
    DOCUMENTS,
    JOB_ONLY_FIELDS,
    ErrorDocument,
    ErrorProblem,
    JobDocument,
    ParameterFieldDocument,
    RunDocument,
    RunListDocument,
)
from jupyter_orchestrate.schemas.events import (
    STREAM_EVENTS,
    ProgressEvent,
    ProgressStreamEvent,
    RunStatusEvent,
    StreamEvent,
    TaskStatusEvent,
    stream_message,
)

FIX = "run `python -m jupyter_orchestrate.schemas.export` and `npm run build:types` in labextension/"


def test_checked_in_schema_is_the_models() -> None:
    checked_in = json.loads(export.SCHEMA_PATH.read_text(encoding="utf-8"))
    assert checked_in == export.json_schema(), f"labextension/schema/documents.json is stale: {FIX}"


def test_api_md_lists_every_document_and_field() -> None:
    text = export.DOCS_PATH.read_text(encoding="utf-8")
    assert export.docs_text(text) == text, f"docs/api.md's document reference is stale: {FIX}"
    for model in DOCUMENTS:
        assert f"### {model.__name__}" in text
        for field in model.model_fields:
            assert f"| `{field}` |" in text, f"{model.__name__}.{field} is not in docs/api.md"
    for model in STREAM_EVENTS:
        assert f"### {model.__name__}" in text


def test_stream_messages_are_the_events_wire_shape_with_id_and_type() -> None:
    """What the server's event stream sends (``EventBus.publish``): ``{"id", "type": kind, **payload}``,
    unset fields still absent, validated as a StreamEvent (the sidebar's generated type)."""
    events = [
        RunStatusEvent(run_id=2, status=RunStatus.running),
        RunStatusEvent(run_id=2, status=RunStatus.failed, reason=None, job_name="job"),  # the watcher's
        TaskStatusEvent(run_id=2, task_key="a", status=TaskRunStatus.queued, reason=None, attempt_number=0),
        TaskStatusEvent(run_id=2, task_key="a", status=TaskRunStatus.running, reason=None),
        ProgressEvent(run_id=2, task_key="a", attempt_number=1, cell=0, total=4),
    ]
    for number, event in enumerate(events, 1):
        kind, payload = event.wire()
        message = stream_message(number, kind, payload)
        assert message == {"id": number, "type": kind, **payload}
        typed = StreamEvent.model_validate(message).root
        assert (
            typed.kind == kind and typed.model_dump(mode="json", by_alias=True, exclude_unset=True) == message
        )
    assert "reason" not in stream_message(1, *events[0].wire())
    assert isinstance(
        StreamEvent.model_validate(stream_message(5, *events[-1].wire())).root, ProgressStreamEvent
    )
    with pytest.raises(ValidationError, match="run_status"):
        stream_message(6, "run_stat", {"run_id": 2})
    with pytest.raises(ValidationError):
        stream_message(6, "progress", {"run_id": 2, "task_key": "a", "cell": 1})  # no attempt_number


def test_stream_schema_marks_the_fields_an_event_may_leave_out() -> None:
    definitions = export.json_schema()["$defs"]
    assert definitions["StreamEvent"]["discriminator"]["propertyName"] == "type"
    required = {
        name: set(definitions[name]["required"]) for name in ("RunStatusStreamEvent", "ProgressStreamEvent")
    }
    assert required["RunStatusStreamEvent"] == {"id", "run_id", "type", "status"}
    assert required["ProgressStreamEvent"] == {"id", "run_id", "type", "task_key", "attempt_number", "cell"}


def _run() -> Run:
    attempt = Attempt(
        run_id=3, task_key="a", attempt_number=1, status=TaskRunStatus.failed, log_path="/h/a.log"
    )
    return Run(
        run_id=3,
        job_name="job",
        job_path="/srv/job",
        status=RunStatus.failed,
        start_time="2026-01-01T00:00:00+00:00",
        max_parallel_tasks=1,
        task_runs=[
            TaskRun(
                run_id=3, task_key="a", notebook="a.ipynb", status=TaskRunStatus.failed, attempts=[attempt]
            )
        ],
    )


def test_run_documents_keep_their_shapes() -> None:
    doc = RunDocument.build(_run(), root=Path("/srv")).json_data()
    assert doc["job_id"] == "job" and doc["status"] == "failed" and doc["trigger"] == "manual"
    task_run = doc["task_runs"][0]
    assert task_run["attempt_count"] == 1 and task_run["log"] == "/h/a.log" and task_run["error"] is None
    assert task_run["attempts"][0]["environment"] == {}, "an attempt without an environment has none"
    listed = RunListDocument.build([_run()], limit=1).json_data()
    assert listed["next_before"] == 3 and "task_runs" not in listed["runs"][0]
    assert listed["runs"][0]["task_statuses"] == {"a": "failed"} and listed["runs"][0]["job_id"] is None


def test_invalid_job_and_error_documents_leave_fields_out() -> None:
    problem = Problem("job/job.yaml", "tasks", "bad", severity="error")
    doc = JobDocument.build(None, Path("/srv/job"), Path("/srv"), [problem], []).json_data()
    assert doc["valid"] is False and not set(JOB_ONLY_FIELDS) & set(doc)
    assert doc["problems"][0]["text"] == str(problem)
    assert ErrorDocument(message="gone").json_data() == {"message": "gone"}
    with_problems = ErrorDocument(message="bad", problems=[ErrorProblem.build(problem)]).json_data()
    assert with_problems["problems"] == [{"path": "job/job.yaml", "field": "tasks", "message": "bad"}]


def _job(
    parameters: dict[str, Any], tasks: list[tuple[str, list[tuple[str, str | None, str | None]]]]
) -> Job:
    return Job(
        name="job",
        path="/srv/job",
        parameters=parameters,
        tasks=[
            Task(
                task_key=key,
                notebook=f"{key}.ipynb",
                notebook_parameters=[
                    NotebookParameter(name=n, default=d, inferred_type=t) for n, d, t in params
                ],
            )
            for key, params in tasks
        ],
    )


def _fields(job: Job) -> list[dict[str, Any]]:
    return [f.json_data() for f in ParameterFieldDocument.build_all(job)]


# The sidebar's run form shows these fields (JobDocument.parameter_fields); formerly typed in dialogs.tsx.
def test_parameter_fields_type_the_job_parameters_from_their_defaults() -> None:
    job = _job(
        {"start": "2024-01-01", "n": 3, "ratio": 0.5, "flag": False, "items": [1, 2], "threshold": None}, []
    )
    assert _fields(job) == [
        {"name": "start", "type": "str", "default": "2024-01-01", "tasks": ["job"], "source_task": None},
        {"name": "n", "type": "int", "default": "3", "tasks": ["job"], "source_task": None},
        {"name": "ratio", "type": "float", "default": "0.5", "tasks": ["job"], "source_task": None},
        {"name": "flag", "type": "bool", "default": "false", "tasks": ["job"], "source_task": None},
        {"name": "items", "type": "list", "default": "[1,2]", "tasks": ["job"], "source_task": None},
        {"name": "threshold", "type": None, "default": "null", "tasks": ["job"], "source_task": None},
    ]


def test_parameter_fields_merge_notebook_parameters_by_name() -> None:
    """The job default wins, the notebook gives a missing type."""
    job = _job(
        {"output_dir": "output/run-{{job.run_id}}", "threshold": None},
        [
            ("extract", [("output_dir", '"output"', "str"), ("seed", "42", "int")]),
            ("validate", [("output_dir", '"output"', "str"), ("threshold", "None", "float")]),
        ],
    )
    by_name = {f["name"]: f for f in _fields(job)}
    assert list(by_name) == ["output_dir", "threshold", "seed"]
    assert by_name["output_dir"] == {
        "name": "output_dir",
        "type": "str",
        "default": "output/run-{{job.run_id}}",
        "tasks": ["job", "extract", "validate"],
        "source_task": None,
    }
    assert by_name["threshold"] == {
        "name": "threshold",
        "type": "float",
        "default": "null",
        "tasks": ["job", "validate"],
        "source_task": None,
    }
    assert by_name["seed"] == {
        "name": "seed",
        "type": "int",
        "default": "42",
        "tasks": ["extract"],
        "source_task": None,
    }


def test_parameter_fields_strip_the_quotes_of_string_literals_only() -> None:
    job = _job(
        {},
        [
            (
                "a",
                [("path", '"data/readings.csv"', "str"), ("single", "'x'", "str"), ("mixed", "\"x'", "str")],
            ),
            ("b", [("items", '["a", "b"]', "list"), ("nothing", None, None)]),
        ],
    )
    assert [(f["name"], f["default"], f["type"]) for f in _fields(job)] == [
        ("path", "data/readings.csv", "str"),
        ("single", "x", "str"),
        ("mixed", "\"x'", "str"),
        ("items", '["a", "b"]', "list"),
        ("nothing", "", None),
    ]
    assert _fields(_job({}, [])) == []


def _fed_job(job_parameters: dict[str, Any], task_parameters: dict[str, dict[str, Any]]) -> Job:
    """Tasks a -> b -> c; b and c declare ``rows`` (int) and ``label``; ``task_parameters`` per task key."""
    declared = [NotebookParameter(name="rows", default="0", inferred_type="int")]
    return Job(
        name="job",
        path="/srv/job",
        parameters=job_parameters,
        tasks=[
            Task(task_key="a", notebook="a.ipynb", parameters=task_parameters.get("a", {})),
            Task(
                task_key="b",
                notebook="b.ipynb",
                depends_on=["a"],
                parameters=task_parameters.get("b", {}),
                notebook_parameters=declared,
            ),
            Task(
                task_key="c",
                notebook="c.ipynb",
                depends_on=["b"],
                parameters=task_parameters.get("c", {}),
                notebook_parameters=declared,
            ),
        ],
    )


def test_parameter_field_fed_by_an_upstream_task_value_names_that_task() -> None:
    fed = {"b": {"rows": "{{tasks.a.values.rows}}"}, "c": {"rows": "{{ tasks.a.values.n }}"}}
    (rows,) = _fields(_fed_job({}, fed))
    assert rows == {"name": "rows", "type": "int", "default": "0", "tasks": ["b", "c"], "source_task": "a"}


@pytest.mark.parametrize(
    ("job_parameters", "task_parameters"),
    [
        ({}, {}),  # nobody feeds it
        ({}, {"b": {"rows": "{{tasks.a.values.rows}}"}}),  # c declares it too and takes the user's value
        ({}, {"b": {"rows": 5}, "c": {"rows": "{{tasks.a.values.rows}}"}}),  # b's is a literal
        ({}, {"b": {"rows": "{{job.parameters.x}}"}, "c": {"rows": "{{job.run_id}}"}}),  # not task values
        ({"rows": 1}, {"b": {"rows": "{{tasks.a.values.rows}}"}, "c": {"rows": "{{tasks.a.values.rows}}"}}),
    ],
)
def test_parameter_field_the_user_sets_has_no_source_task(
    job_parameters: dict[str, Any], task_parameters: dict[str, dict[str, Any]]
) -> None:
    rows = next(f for f in _fields(_fed_job(job_parameters, task_parameters)) if f["name"] == "rows")
    assert rows["source_task"] is None


def test_parameter_field_of_a_job_parameter_lists_the_tasks_that_reference_it() -> None:
    """A task passing a job parameter on (``{{job.parameters.day}}``) uses it: a repair of it offers it."""
    job = _fed_job({"day": "2024-01-01"}, {"a": {"when": "day {{job.parameters.day}}"}})
    day = next(f for f in _fields(job) if f["name"] == "day")
    assert day["tasks"] == ["job", "a"]
