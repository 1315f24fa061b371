"""Unit tests of parameter references and typing (parameters, service.coerce_overrides) and of task_values."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate import task_values
from jupyter_orchestrate.errors import OrchestrateError, TaskValueError, ValidationError
from jupyter_orchestrate.models import Job, NotebookParameter, Task
from jupyter_orchestrate.parameters import check_reference, coerce, parse_assignments, references, render
from jupyter_orchestrate.service import coerce_overrides

# ---------------------------------------------------------------------------------------------------------
# references / check_reference
# ---------------------------------------------------------------------------------------------------------


def test_references_finds_every_reference_in_order_inside_containers() -> None:
    value = {
        "a": "{{ job.name }} and {{tasks.x.values.rows}}",
        "b": ["plain", "{{job.parameters.year}}"],
        "c": 5,
    }
    assert references(value) == ["job.name", "tasks.x.values.rows", "job.parameters.year"]
    assert references(("{{job.run_id}}",)) == ["job.run_id"]
    assert references("no braces {here}") == []
    assert references(42) == []
    assert references(None) == []


KEYS = {"a", "b", "c"}


@pytest.mark.parametrize(
    ("ref", "upstream", "expected"),
    [
        ("job.run_id", None, None),
        ("job.name", None, None),
        ("job.start_time", None, None),
        ("job.repair_number", None, None),
        ("job.parameters.year", None, None),
        ("tasks.a.values.rows", {"a"}, None),
        (
            "job.parameters.nope",
            None,
            "{{job.parameters.nope}} names unknown job parameter 'nope' (job parameters: year)",
        ),
        (
            "job.id",
            None,
            "{{job.id}} is not a known reference (use job.run_id, job.name, job.start_time, "
            "job.repair_number, job.trigger.time, job.trigger.type, job.parameters.<name> or "
            "tasks.<task_key>.values.<name>)",
        ),
        (
            "tasks.a.values.rows",
            None,
            "{{tasks.a.values.rows}}: task values cannot be referenced here, only in task parameters",
        ),
        ("tasks.z.values.rows", {"a"}, "{{tasks.z.values.rows}} names unknown task 'z'"),
        (
            "tasks.c.values.rows",
            {"a"},
            "{{tasks.c.values.rows}}: task 'c' is not upstream of task 'b'; add it to depends_on",
        ),
        ("tasks.a.rows", {"a"}, "{{tasks.a.rows}} is malformed: use {{tasks.<task_key>.values.<name>}}"),
        (
            "tasks.a.values.1st",
            {"a"},
            "{{tasks.a.values.1st}} is malformed: use {{tasks.<task_key>.values.<name>}}",
        ),
        (
            "tasks.a.values.rows.extra",
            {"a"},
            "{{tasks.a.values.rows.extra}} is malformed: use {{tasks.<task_key>.values.<name>}}",
        ),
        ("env.HOME", None, "{{env.HOME}} is not a known reference (it must start with job. or tasks.)"),
    ],
)
def test_check_reference(ref: str, upstream: set[str] | None, expected: str | None) -> None:
    got = check_reference(ref, job_parameters={"year": 2024}, task_keys=KEYS, upstream=upstream, task_key="b")
    assert got == expected


def test_check_reference_without_task_key_says_this_task() -> None:
    got = check_reference("tasks.a.values.x", job_parameters=[], task_keys=["a"], upstream=[])
    assert got == "{{tasks.a.values.x}}: task 'a' is not upstream of this task; add it to depends_on"


# ---------------------------------------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------------------------------------

CONTEXT: dict[str, Any] = {
    "job": {
        "run_id": 7,
        "name": "demo",
        "start_time": "2024-01-02T03:04:05+00:00",
        "repair_number": 1,
        "parameters": {"year": 2024, "label": "x"},
    },
    "tasks": {
        "a": {
            "values": {
                "rows": 1234,
                "meta": {"k": [1, 2]},
                "name": "bronze",
                "nothing": None,
                "ok": True,
                "ratio": 0.5,
            }
        }
    },
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{tasks.a.values.rows}}", 1234),
        ("{{ tasks.a.values.meta }}", {"k": [1, 2]}),
        ("{{tasks.a.values.nothing}}", None),
        ("{{tasks.a.values.ok}}", True),
        ("{{tasks.a.values.ratio}}", 0.5),
        ("{{job.run_id}}", 7),
        ("{{job.parameters.year}}", 2024),
        ("rows={{tasks.a.values.rows}}", "rows=1234"),
        ("m={{tasks.a.values.meta}}", 'm={"k": [1, 2]}'),
        ("{{tasks.a.values.name}}-{{job.run_id}}", "bronze-7"),
        ("{{job.run_id}}{{job.run_id}}", "77"),
        ("[{{tasks.a.values.nothing}}|{{tasks.a.values.ok}}]", "[null|true]"),
        ("{{job.name}} started {{job.start_time}}", "demo started 2024-01-02T03:04:05+00:00"),
        ("no references", "no references"),
        (5, 5),
        (None, None),
        ({"a": "{{tasks.a.values.rows}}", "b": ["{{job.name}}", 1]}, {"a": 1234, "b": ["demo", 1]}),
    ],
)
def test_render(value: Any, expected: Any) -> None:
    got = render(value, CONTEXT)
    assert got == expected
    assert type(got) is type(expected)


def test_render_missing_task_value_raises_a_clear_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        render({"x": "{{tasks.a.values.missing}}"}, CONTEXT)
    assert (
        str(info.value)
        == "{{tasks.a.values.missing}}: upstream task 'a' did not set a task value named 'missing'"
    )
    with pytest.raises(ValidationError, match="upstream task 'b' did not set a task value named 'v'"):
        render("prefix {{tasks.b.values.v}}", CONTEXT)


def test_render_unresolvable_job_reference() -> None:
    with pytest.raises(ValidationError, match=r"\{\{job.parameters.nope\}\} cannot be resolved"):
        render("{{job.parameters.nope}}", CONTEXT)


# ---------------------------------------------------------------------------------------------------------
# parse_assignments / coerce
# ---------------------------------------------------------------------------------------------------------


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", " b =x=y", "c=", "a=2"]) == {"a": "2", "b": "x=y", "c": ""}
    assert parse_assignments([]) == {}


@pytest.mark.parametrize("item", ["novalue", "1abc=2", "=5", "a-b=1", "a.b=1", "a b=1", "class=1", "None=1"])
def test_parse_assignments_rejects(item: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_assignments(["ok=1", item])
    assert (
        str(info.value) == f"-p {item}: expected name=value with a Python identifier (not a keyword) as name"
    )


@pytest.mark.parametrize(
    ("raw", "type_name", "expected"),
    [
        ("5", "int", 5),
        ("-3", "int", -3),
        ("5", "float", 5.0),
        ("2.5", "float", 2.5),
        ("true", "bool", True),
        ("True", "bool", True),
        ("False", "bool", False),
        ("007", "str", "007"),
        ("true", "str", "true"),
        ("[1, 2]", "list", [1, 2]),
        ('{"a": 1}', "dict", {"a": 1}),
        ("5", None, 5),
        ("1.5", None, 1.5),
        ("abc", None, "abc"),
        ("None", None, None),
        ('"quoted"', None, "quoted"),
    ],
)
def test_coerce(raw: str, type_name: str | None, expected: Any) -> None:
    got = coerce(raw, type_name, "p")
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("raw", "type_name"),
    [
        ("abc", "int"),
        ("2.5", "int"),
        ("true", "int"),
        ("x", "float"),
        ("true", "float"),
        ("1", "bool"),
        ("yes", "bool"),
        ("1", "list"),
        ("[1]", "dict"),
    ],
)
def test_coerce_rejects_values_of_the_wrong_type(raw: str, type_name: str) -> None:
    with pytest.raises(ValidationError) as info:
        coerce(raw, type_name, "p")
    # the problem names the parameter's field (a form shows it there), not the CLI's -p syntax
    (problem,) = info.value.problems
    assert problem.field == "parameters.p"
    assert (
        str(info.value) == f"parameters.p: parameter 'p' is {type_name}; {raw!r} is not a valid {type_name}"
    )


# ---------------------------------------------------------------------------------------------------------
# service.coerce_overrides
# ---------------------------------------------------------------------------------------------------------


def _job() -> Job:
    a = Task(
        task_key="a",
        notebook="a.ipynb",
        parameters={"task_only": 1},
        notebook_parameters=[
            NotebookParameter(name="limit", default="10", inferred_type="int"),
            NotebookParameter(name="ratio", default="0.1", inferred_type="float"),
            NotebookParameter(name="label", default="'x'", inferred_type="str"),
            NotebookParameter(name="flags", default="[]", inferred_type="list"),
            NotebookParameter(name="dry_run", default="False", inferred_type="bool"),
            NotebookParameter(name="free", default="1", inferred_type="None"),
            NotebookParameter(name="region", default="1", inferred_type="int"),
        ],
    )
    b = Task(
        task_key="b",
        notebook="b.ipynb",
        depends_on=["a"],
        notebook_parameters=[NotebookParameter(name="limit", default="'s'", inferred_type="str")],
    )
    return Job(
        name="j",
        path="/tmp/j",
        parameters={
            "year": 2024,
            "rate": 0.5,
            "debug": False,
            "region": "eu",
            "tags": ["t"],
            "nothing": None,
        },
        tasks=[a, b],
    )


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("year", "2025", 2025),  # job parameter default int
        ("rate", "1", 1.0),  # job parameter default float
        ("debug", "true", True),  # job parameter default bool
        ("region", "123", "123"),  # job parameter str default wins over the notebook's int
        ("tags", '["a", "b"]', ["a", "b"]),
        ("nothing", "5", 5),  # None default: untyped
        ("limit", "20", 20),  # notebook int (first task declaring it)
        ("ratio", "3", 3.0),
        ("label", "42", "42"),
        ("flags", "[1]", [1]),
        ("dry_run", "True", True),
        ("free", "abc", "abc"),  # papermill's "None" type: untyped
        ("free", "7", 7),
        ("task_only", "3", 3),  # a task parameter the notebook does not declare
    ],
)
def test_coerce_overrides_types_by_parameter(name: str, raw: str, expected: Any) -> None:
    got = coerce_overrides(_job(), {name: raw})
    assert got == {name: expected}
    assert type(got[name]) is type(expected)


def test_coerce_overrides_keeps_non_string_values() -> None:
    assert coerce_overrides(_job(), {"year": 7, "limit": [1], "debug": 0}) == {
        "year": 7,
        "limit": [1],
        "debug": 0,
    }


def test_coerce_overrides_unknown_parameter_is_named() -> None:
    with pytest.raises(ValidationError) as info:
        coerce_overrides(_job(), {"yaer": "2025"})
    (problem,) = info.value.problems
    assert problem.field == "parameters.yaer"
    assert "no job parameter or notebook parameter is named 'yaer'" in problem.message
    assert (
        "(known: debug, dry_run, flags, free, label, limit, nothing, rate, ratio, region, tags, task_only, year)"
        in problem.message
    )


def test_coerce_overrides_bad_int_and_every_problem_reported() -> None:
    with pytest.raises(ValidationError) as info:
        coerce_overrides(_job(), {"year": "twenty", "limit": "1.5", "zzz": "1", "label": "fine"})
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 3
    assert "parameters.year: parameter 'year' is int; 'twenty' is not a valid int" in messages
    assert "parameters.limit: parameter 'limit' is int; '1.5' is not a valid int" in messages
    assert any(
        m.startswith("parameters.zzz: no job parameter or notebook parameter is named 'zzz'")
        for m in messages
    )


def test_coerce_overrides_empty() -> None:
    assert coerce_overrides(_job(), {}) == {}


# ---------------------------------------------------------------------------------------------------------
# task_values
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """task_values with no job context and no values set."""
    monkeypatch.delenv(task_values.CONTEXT_ENV, raising=False)
    monkeypatch.setattr(task_values, "_context_cache", None)
    monkeypatch.setattr(task_values, "_local_values", {})


@pytest.fixture
def job_context(fresh_values: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A job-run context for task ``b``, downstream of ``a`` (which set rows and nothing)."""
    values_dir = tmp_path / "values"
    values_dir.mkdir()
    context = {
        "run_id": 3,
        "task_key": "b",
        "upstream": {"a": {"rows": 10, "nothing": None}, "root": {}},
        "values_path": str(values_dir / "b.json"),
    }
    path = tmp_path / "context.json"
    path.write_text(json.dumps(context), encoding="utf-8")
    monkeypatch.setenv(task_values.CONTEXT_ENV, str(path))
    return context


def test_set_outside_a_job_keeps_the_value_in_memory(fresh_values: None) -> None:
    task_values.set("rows", 5)
    task_values.set("meta", {"a": [1, 2.5, None, "x"]})
    task_values.set("rows", 6)
    assert task_values.current() == {"rows": 6, "meta": {"a": [1, 2.5, None, "x"]}}
    copy = task_values.current()
    copy["rows"] = 0
    assert task_values.current()["rows"] == 6


def test_get_outside_a_job_returns_debug_value_or_explains(fresh_values: None) -> None:
    assert task_values.get("a", "rows", debug_value=100) == 100
    assert task_values.get("a", "rows", default=1, debug_value=None) is None
    with pytest.raises(TaskValueError) as info:
        task_values.get("a", "rows", default=1)
    assert "task_values.get('a', 'rows') was called outside a job run" in str(info.value)
    assert "debug_value=" in str(info.value)
    assert isinstance(info.value, OrchestrateError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        ({1, 2}, "set"),
        (float("nan"), "float"),
        (float("inf"), "float"),
        ({"a": b"x"}, "dict"),
    ],
)
def test_set_rejects_values_that_are_not_json(fresh_values: None, value: Any, type_name: str) -> None:
    with pytest.raises(TaskValueError) as info:
        task_values.set("v", value)
    assert f"task value 'v' is not JSON-serialisable ({type_name})" in str(info.value)
    assert "convert it first" in str(info.value)
    assert task_values.current() == {}


def test_value_size_limit_is_64_kib(fresh_values: None) -> None:
    at_limit = "a" * (task_values.MAX_VALUE_BYTES - 2)  # two quotes make exactly 65,536 bytes of JSON
    assert len(task_values.encode("big", at_limit).encode()) == 65536
    task_values.set("big", at_limit)
    assert task_values.current()["big"] == at_limit
    with pytest.raises(TaskValueError) as info:
        task_values.set("bigger", at_limit + "a")
    assert str(info.value).startswith(
        "task value 'bigger' is 65,537 bytes of JSON; the limit is 65,536 bytes (64 KiB)."
    )
    assert "bigger" not in task_values.current()


def test_size_is_counted_in_utf8_bytes_of_compact_json() -> None:
    assert task_values.encode("v", {"a": [1, 2]}) == '{"a":[1,2]}'
    # ensure_ascii escapes non-ASCII: 6 bytes per character
    assert len(task_values.encode("v", "\u00e9" * 10922)) == 65534
    with pytest.raises(TaskValueError, match="65,540 bytes"):
        task_values.encode("v", "\u00e9" * 10923)


@pytest.mark.parametrize("name", ["1st", "a-b", "", "with space", "a.b", 5, None])
def test_invalid_task_value_names(fresh_values: None, name: Any) -> None:
    with pytest.raises(TaskValueError) as info:
        task_values.set(name, 1)
    assert f"task value name {name!r} is invalid" in str(info.value)


def test_set_inside_a_job_writes_the_values_file_atomically(
    job_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    values_path = Path(job_context["values_path"])
    replaced: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(task_values.os, "replace", spy)
    task_values.set("rows", 42)
    task_values.set("names", ["x", "y"])
    task_values.set("rows", 43)
    assert json.loads(values_path.read_text(encoding="utf-8")) == {"rows": 43, "names": ["x", "y"]}
    # every write goes to a temporary file in the same folder, then is renamed over the values file
    assert len(replaced) == 3
    for src, dst in replaced:
        assert dst == str(values_path)
        assert Path(src).parent == values_path.parent
        assert Path(src).name.startswith(".values-")
    assert sorted(p.name for p in values_path.parent.iterdir()) == ["b.json"]


def test_failed_write_leaves_the_previous_values_file_and_no_temp(
    job_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    values_path = Path(job_context["values_path"])
    task_values.set("rows", 1)

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(task_values.os, "replace", broken)
    with pytest.raises(TaskValueError, match=f"cannot write task values to {values_path}: disk full"):
        task_values.set("rows", 2)
    assert json.loads(values_path.read_text(encoding="utf-8")) == {"rows": 1}
    assert sorted(p.name for p in values_path.parent.iterdir()) == ["b.json"]


def test_get_inside_a_job_reads_upstream_values(job_context: dict[str, Any]) -> None:
    assert task_values.get("a", "rows") == 10
    assert task_values.get("a", "rows", debug_value=99) == 10  # debug_value only applies outside a job
    assert task_values.get("a", "nothing", default=5) is None  # a value set to null is not missing


def test_get_missing_key_with_and_without_default(job_context: dict[str, Any]) -> None:
    assert task_values.get("a", "missing", default=0) == 0
    assert task_values.get("root", "x", default=None) is None
    with pytest.raises(TaskValueError) as info:
        task_values.get("a", "missing")
    assert str(info.value) == (
        "upstream task 'a' did not set a task value named 'missing' (it set: nothing, rows); "
        "pass default=... if it is optional"
    )
    with pytest.raises(TaskValueError, match=r"\(it set: nothing\)"):
        task_values.get("root", "x")


def test_get_from_a_task_that_is_not_upstream(job_context: dict[str, Any]) -> None:
    with pytest.raises(TaskValueError) as info:
        task_values.get("c", "rows", default=0)
    assert str(info.value) == "task 'c' is not upstream of task 'b' (upstream tasks: a, root)"


def test_unreadable_context_is_a_clear_error(
    fresh_values: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv(task_values.CONTEXT_ENV, str(missing))
    with pytest.raises(TaskValueError, match=f"cannot read the job-run context {missing}"):
        task_values.get("a", "rows")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    monkeypatch.setenv(task_values.CONTEXT_ENV, str(bad))
    with pytest.raises(TaskValueError, match=f"cannot read the job-run context {bad}"):
        task_values.set("rows", 1)


def test_context_is_reread_when_the_variable_names_another_file(
    job_context: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert task_values.get("a", "rows") == 10
    other = dict(job_context, task_key="c", upstream={"a": {"rows": 99}})
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other), encoding="utf-8")
    monkeypatch.setenv(task_values.CONTEXT_ENV, str(path))
    assert task_values.get("a", "rows") == 99
