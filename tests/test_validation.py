"""Discovery and validation of job folders (validate_job, load_job, ``validate`` CLI) on real notebook files.

No kernel is started: kernels are only looked up through jupyter_client's KernelSpecManager.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jupyter_client.kernelspec import KernelSpecManager

from jupyter_orchestrate.cli import main
from jupyter_orchestrate.discovery import load_job, validate_job
from jupyter_orchestrate.errors import Problem, ValidationError
from jupyter_orchestrate.models import RunIf

MakeNotebook = Callable[..., Path]


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


def job_yaml(job_dir: Path, text: str) -> Path:
    path = job_dir / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, **kwargs: Any) -> list[str]:
    """The errors validation reports (``validate`` exits 2): those of the job (then no job is returned) and
    those of single tasks (the job is returned and runs its other tasks)."""
    job, problems = validate_job(path, **kwargs)
    errors = [p for p in problems if not p.is_warning]
    assert errors, "an invalid job must report problems"
    assert all(isinstance(p, Problem) for p in problems)
    assert (job is None) == any(p.refuses_job for p in errors), (
        "a job is returned exactly when no problem refuses it"
    )
    return [str(p) for p in errors]


def valid(path: Path, **kwargs: Any):
    job, problems = validate_job(path, **kwargs)
    assert problems == [], [str(p) for p in problems]
    assert job is not None
    return job


# ---------------------------------------------------------------------------------------------------------
# depends_on
# ---------------------------------------------------------------------------------------------------------


def test_dependency_cycle_is_named_in_flow_order(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"depends_on": ["c"]})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    make_notebook("job/c.ipynb", "1", orchestrate={"depends_on": ["b"]})
    assert problems_of(job_dir) == ["job: depends_on: dependency cycle: a -> b -> c -> a"]


def test_self_dependency(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"depends_on": ["a"]})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    assert problems_of(job_dir) == ["job/a.ipynb: depends_on: task 'a' depends on itself"]


def test_unknown_depends_on_key(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a", "zzz"]})
    assert problems_of(job_dir) == ["job/b.ipynb: depends_on: unknown task 'zzz' (tasks: a, b)"]


def test_duplicate_task_keys(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/first.ipynb", "1", orchestrate={"task_key": "load"})
    make_notebook("job/second.ipynb", "1", orchestrate={"task_key": "load"})
    assert problems_of(job_dir) == ["job/first.ipynb, job/second.ipynb: task_key: duplicate task key 'load'"]


# ---------------------------------------------------------------------------------------------------------
# notebook files
# ---------------------------------------------------------------------------------------------------------


def test_missing_notebook_named_in_job_yaml(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "tasks:\n  extra:\n    notebook: missing.ipynb\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: tasks.extra.notebook: job/missing.ipynb: notebook not found"
    ]


def test_job_yaml_task_without_notebook_and_no_matching_task_key(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "tasks:\n  ghost:\n    max_retries: 1\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: tasks.ghost: no notebook in the folder has task_key 'ghost'; add notebook: <path>"
    ]


def test_job_yaml_notebook_outside_the_job_folder(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook("elsewhere.ipynb", "1")
    job_yaml(job_dir, "tasks:\n  out:\n    notebook: ../elsewhere.ipynb\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: tasks.out.notebook: notebook '../elsewhere.ipynb' leads outside the job folder"
    ]


def test_notebook_that_is_not_json(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["broken"]})
    (job_dir / "broken.ipynb").write_text('{"cells": [', encoding="utf-8")
    # a task depends on it: a task of its own that cannot be read (the job still runs a)
    (problem,) = problems_of(job_dir)
    assert problem.startswith(
        "job/broken.ipynb: not valid JSON (a truncated or unsaved file?): line 1 column "
    )
    # nothing depends on it and it does not mention "orchestrate": a scratch file, skipped with a warning
    make_notebook("job/b.ipynb", "1", orchestrate={})
    job, (warning,) = validate_job(job_dir)
    assert job is not None and job.task_keys == ["a", "b"]
    assert warning.is_warning and str(warning).startswith("job/broken.ipynb: not valid JSON")
    assert "skipped (not a task" in str(warning)


def test_notebook_that_is_json_but_not_nbformat(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    bad = {"cells": "not a list", "metadata": {"orchestrate": {}}, "nbformat": 4, "nbformat_minor": 5}
    (job_dir / "bad.ipynb").write_text(json.dumps(bad), encoding="utf-8")
    (job_dir / "nokeys.ipynb").write_text(json.dumps({"hello": "world"}), encoding="utf-8")
    assert problems_of(job_dir) == ["job/bad.ipynb: not a valid notebook: cells must be a list"]
    warnings = [str(p) for p in validate_job(job_dir)[1] if p.is_warning]
    assert warnings == [
        (
            "job/nokeys.ipynb: not a valid notebook: nbformat must be 4, not None; skipped (not a task: no task "
            "depends on 'nokeys' and the file does not mention 'orchestrate')"
        )
    ]


def test_kernel_not_installed_lists_installed_kernels(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"environment": {"kernel_name": "no-such-kernel"}})
    installed = sorted(KernelSpecManager().find_kernel_specs())
    assert installed, "the test environment needs at least one kernelspec"
    assert problems_of(job_dir) == [
        f"job/a.ipynb: metadata.orchestrate.environment.kernel_name: kernel 'no-such-kernel' is not installed "
        f"(installed: {', '.join(installed)})"
    ]
    # the notebook's own kernelspec is checked too
    make_notebook("job/a.ipynb", "1", orchestrate={}, kernel="other-missing-kernel")
    (problem,) = problems_of(job_dir)
    assert "kernel 'other-missing-kernel' is not installed" in problem
    # and not at all with check_kernels=False
    assert valid(job_dir, check_kernels=False).task("a").kernel_name == "other-missing-kernel"


# ---------------------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{tasks.zzz.values.rows}}", "{{tasks.zzz.values.rows}} names unknown task 'zzz'"),
        (
            "{{tasks.c.values.rows}}",
            "{{tasks.c.values.rows}}: task 'c' is not upstream of task 'b'; add it to depends_on",
        ),
        ("rows: {{ tasks.c.values.rows }}!", "{{tasks.c.values.rows}}: task 'c' is not upstream of task 'b'"),
        ("{{tasks.b.values.rows}}", "{{tasks.b.values.rows}}: task 'b' is not upstream of task 'b'"),
        (
            "{{job.parameters.nope}}",
            "{{job.parameters.nope}} names unknown job parameter 'nope' (job parameters: year)",
        ),
        ("{{tasks.a.rows}}", "{{tasks.a.rows}} is malformed: use {{tasks.<task_key>.values.<name>}}"),
        ("{{tasks.a.values.bad-name}}", "{{tasks.a.values.bad-name}} is malformed"),
        ("{{job.nope}}", "{{job.nope}} is not a known reference (use job.run_id, job.name"),
        ("{{foo.bar}}", "{{foo.bar}} is not a known reference (it must start with job. or tasks.)"),
        (["ok", {"deep": "{{tasks.zzz.values.v}}"}], "{{tasks.zzz.values.v}} names unknown task 'zzz'"),
    ],
)
def test_bad_parameter_reference(
    make_notebook: MakeNotebook, job_dir: Path, value: Any, expected: str
) -> None:
    job_yaml(job_dir, "parameters:\n  year: 2024\n")
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook(
        "job/b.ipynb", "1", parameters="x = 0", orchestrate={"depends_on": ["a"], "parameters": {"x": value}}
    )
    make_notebook("job/c.ipynb", "1", orchestrate={})
    (problem,) = problems_of(job_dir)
    assert problem.startswith("job/b.ipynb: parameters.x: ")
    assert expected in problem


def test_valid_references_include_indirect_upstream(make_notebook: MakeNotebook, job_dir: Path) -> None:
    job_yaml(job_dir, "parameters:\n  year: 2024\n  label: 'run {{job.run_id}}'\n")
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    refs = "{{tasks.a.values.rows}} {{job.parameters.year}} {{job.name}} {{job.start_time}} {{job.repair_number}}"
    make_notebook(
        "job/c.ipynb", "1", parameters="x = 0", orchestrate={"depends_on": ["b"], "parameters": {"x": refs}}
    )
    job = valid(job_dir)
    assert job.task("c").parameters == {"x": refs}
    assert job.parameters == {"year": 2024, "label": "run {{job.run_id}}"}


def test_task_value_reference_in_job_parameters_is_rejected(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    job_yaml(job_dir, "parameters:\n  rows: '{{tasks.a.values.rows}}'\n")
    make_notebook("job/a.ipynb", "1", orchestrate={})
    assert problems_of(job_dir) == [
        "job/job.yaml: parameters.rows: {{tasks.a.values.rows}}: task values cannot be referenced here, "
        "only in task parameters"
    ]


def test_task_parameter_the_notebook_does_not_declare(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", parameters="x = 1\nz = 2", orchestrate={"parameters": {"x": 5, "y": 6}})
    assert problems_of(job_dir) == [
        "job/a.ipynb: parameters.y: the notebook's parameters cell does not declare 'y' (it declares: x, z)"
    ]


def test_undeclared_parameter_from_job_yaml_task_is_reported(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", parameters="x = 1", orchestrate={})
    job_yaml(job_dir, "tasks:\n  a:\n    parameters:\n      typo: 1\n")
    assert problems_of(job_dir) == [
        "job/a.ipynb: parameters.typo: the notebook's parameters cell does not declare 'typo' (it declares: x)"
    ]


def test_parameters_allowed_without_a_parameters_cell(make_notebook: MakeNotebook, job_dir: Path) -> None:
    # papermill injects parameters even when there is no tagged cell: allowed, with a warning
    make_notebook("job/a.ipynb", "1", orchestrate={"parameters": {"anything": 1}})
    job, (warning,) = validate_job(job_dir)
    assert job is not None and job.task("a").parameters == {"anything": 1}
    assert warning.is_warning and warning.task_key == "a" and "no cell tagged 'parameters'" in warning.message


# ---------------------------------------------------------------------------------------------------------
# metadata.orchestrate schema
# ---------------------------------------------------------------------------------------------------------


def test_invalid_run_if_value(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"run_if": "sometimes"})
    (problem,) = problems_of(job_dir)
    assert problem.startswith("job/a.ipynb: metadata.orchestrate.run_if: ")
    for value in RunIf:
        assert f"'{value.value}'" in problem


def test_unknown_field_in_metadata(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"retries": 3})
    assert problems_of(job_dir) == [
        "job/a.ipynb: metadata.orchestrate.retries: unknown field 'retries' (did you mean 'max_retries'?)"
    ]


def test_metadata_that_is_not_a_mapping(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate=["a"])  # type: ignore[arg-type]
    assert problems_of(job_dir) == ["job/a.ipynb: metadata.orchestrate: must be a mapping of task settings"]


def test_bad_metadata_types_name_each_field(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook(
        "job/a.ipynb", "1", orchestrate={"max_retries": -1, "environment": {"cwd": 5, "colour": "x"}}
    )
    problems = problems_of(job_dir)
    assert any(
        p.startswith("job/a.ipynb: metadata.orchestrate.max_retries: ") and "greater than or equal to 0" in p
        for p in problems
    )
    assert (
        "job/a.ipynb: metadata.orchestrate.environment.colour: unknown field 'colour' (allowed: kernel_name, python, requirements, requirements_file, env, secret_env, cwd)"
        in problems
    )
    assert any(p.startswith("job/a.ipynb: metadata.orchestrate.environment.cwd: ") for p in problems)


def test_cwd_outside_the_job_folder(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"environment": {"cwd": ".."}})
    make_notebook("job/b.ipynb", "1", orchestrate={"environment": {"cwd": "no_such_dir"}})
    assert problems_of(job_dir) == [
        "job/a.ipynb: environment.cwd: working directory '..' leads outside the job folder",
        "job/b.ipynb: environment.cwd: 'no_such_dir' is not a folder",
    ]


# ---------------------------------------------------------------------------------------------------------
# job.yaml
# ---------------------------------------------------------------------------------------------------------


def test_job_yaml_invalid_yaml(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "name: demo\nparameters: [unclosed\n")
    (problem,) = problems_of(job_dir)
    assert problem.startswith("job/job.yaml: invalid YAML: line ")


def test_job_yaml_not_a_mapping(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "- a\n- b\n")
    assert problems_of(job_dir) == ["job/job.yaml: must be a mapping of job settings"]


def test_job_yaml_unknown_field(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "name: demo\nmax_parallel: 2\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: max_parallel: unknown field 'max_parallel' (did you mean 'max_parallel_tasks'?)"
    ]


def test_job_yaml_bad_type(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "max_parallel_tasks: 0\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: max_parallel_tasks: Input should be greater than or equal to 1"
    ]


def test_job_yaml_task_settings_are_checked_with_their_location(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "task_defaults:\n  run_if: never\ntasks:\n  a:\n    max_retriess: 2\n")
    problems = problems_of(job_dir)
    assert len(problems) == 2
    assert problems[0].startswith("job/job.yaml: task_defaults.run_if: Input should be 'all_success'")
    assert (
        problems[1]
        == "job/job.yaml: tasks.a.max_retriess: unknown field 'max_retriess' (did you mean 'max_retries'?)"
    )


def _problem(job_dir: Path, field: str) -> Problem:
    """The one error validation reports at ``field``."""
    _, problems = validate_job(job_dir)
    found = [p for p in problems if p.field == field and not p.is_warning]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


def test_job_yaml_misspelt_field_suggests_the_field(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "max_paralel_tasks: 3\n")
    problem = _problem(job_dir, "max_paralel_tasks")
    assert problem.path == "job/job.yaml"
    assert problem.message == "unknown field 'max_paralel_tasks' (did you mean 'max_parallel_tasks'?)"
    assert str(problem) == (
        "job/job.yaml: max_paralel_tasks: unknown field 'max_paralel_tasks' (did you mean 'max_parallel_tasks'?)"
    )


def test_job_yaml_nested_misspelt_field_names_its_path(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "tasks:\n  a:\n    environment:\n      kernal_name: python3\n")
    problem = _problem(job_dir, "tasks.a.environment.kernal_name")
    assert problem.message == "unknown field 'kernal_name' (did you mean 'kernel_name'?)"


def test_job_yaml_unknown_field_with_no_close_name_lists_the_allowed_fields(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "triggers:\n  - whenever: 1\n")
    problem = _problem(job_dir, "triggers.0.whenever")
    assert problem.message == (
        "unknown field 'whenever' (allowed: name, file_arrival, job_completion, parameters, paused)"
    )


def test_job_yaml_misspelt_enum_value_names_the_allowed_values_and_suggests_one(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "tasks:\n  a:\n    run_if: all_sucess\n")
    problem = _problem(job_dir, "tasks.a.run_if")
    assert problem.message.startswith("Input should be 'all_success', 'at_least_one_success'")
    assert problem.message.endswith(" (did you mean 'all_success'?)")


def test_job_completion_statuses_accept_only_terminal_run_statuses(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(
        job_dir, "triggers:\n  - job_completion:\n      job: ../up\n      statuses: [failed, succeded]\n"
    )
    problem = _problem(job_dir, "triggers.0.job_completion.statuses.1")
    assert problem.path == "job/job.yaml"
    assert problem.message == (
        "Input should be 'succeeded', 'failed' or 'canceled' (did you mean 'succeeded'?)"
    )
    job_yaml(job_dir, "triggers:\n  - job_completion:\n      job: ../up\n      statuses: [running]\n")
    problem = _problem(job_dir, "triggers.0.job_completion.statuses.0")
    assert problem.message == "Input should be 'succeeded', 'failed' or 'canceled'"


def test_notebook_metadata_misspelt_field_suggests_the_field(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"depends_onn": []})
    problem = _problem(job_dir, "metadata.orchestrate.depends_onn")
    assert problem.path == "job/a.ipynb"
    assert problem.message == "unknown field 'depends_onn' (did you mean 'depends_on'?)"


def test_job_yaml_task_key_must_not_differ_from_its_key(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "tasks:\n  a:\n    task_key: b\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: tasks.a.task_key: the key under tasks: is the task_key; remove task_key"
    ]


def test_invalid_task_key(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/my notebook.ipynb", "1", orchestrate={})
    assert problems_of(job_dir) == [
        "job/my notebook.ipynb: task_key: invalid task key 'my notebook': use letters, digits, '_' and '-' (at most 100)"
    ]


def test_invalid_metadata_does_not_make_dependents_report_unknown_task(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"retries": 1})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    assert problems_of(job_dir) == [
        "job/a.ipynb: metadata.orchestrate.retries: unknown field 'retries' (did you mean 'max_retries'?)"
    ]


# ---------------------------------------------------------------------------------------------------------
# empty folders and several problems
# ---------------------------------------------------------------------------------------------------------


def test_folder_with_no_tasks_tells_how_to_tag(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/scratch.ipynb", "1")  # no orchestrate metadata
    (problem,) = problems_of(job_dir)
    assert problem.startswith(
        "job: no tasks: tag a notebook by adding 'orchestrate' to its notebook metadata"
    )
    assert '"metadata": {"orchestrate": {"depends_on": []}}' in problem
    assert "tasks: in job.yaml" in problem


def test_path_that_is_not_a_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert problems_of(missing) == [
        f"{missing}: not a folder (a job is a folder of notebooks, with an optional job.yaml)"
    ]


def test_several_problems_are_reported_together(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"depends_on": ["a"]})
    make_notebook("job/b.ipynb", "1", orchestrate={"environment": {"kernel_name": "no-such-kernel"}})
    make_notebook("job/c.ipynb", "1", orchestrate={"retries": 1})
    make_notebook("job/d.ipynb", "1", orchestrate={"depends_on": ["missing_task"]})
    (job_dir / "e.ipynb").write_text('nope "orchestrate"', encoding="utf-8")
    problems = problems_of(job_dir)
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    assert "job/a.ipynb: depends_on: task 'a' depends on itself" in joined
    assert (
        "job/b.ipynb: metadata.orchestrate.environment.kernel_name: kernel 'no-such-kernel' is not installed"
        in joined
    )
    assert (
        "job/c.ipynb: metadata.orchestrate.retries: unknown field 'retries' (did you mean 'max_retries'?)"
        in joined
    )
    assert "job/d.ipynb: depends_on: unknown task 'missing_task'" in joined
    assert "job/e.ipynb: not valid JSON" in joined

    with pytest.raises(ValidationError) as info:
        load_job(job_dir)
    assert [str(p) for p in info.value.problems] == problems
    assert str(info.value) == "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------
# happy paths
# ---------------------------------------------------------------------------------------------------------


def test_task_key_defaults_to_file_stem(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/clean_data.ipynb", "1", orchestrate={})
    make_notebook("job/other.ipynb", "1", orchestrate={"task_key": "renamed", "depends_on": ["clean_data"]})
    job = valid(job_dir)
    assert job.task_keys == ["clean_data", "renamed"]
    assert job.task("renamed").notebook == "other.ipynb"
    assert job.edges == [("clean_data", "renamed")]
    assert job.name == "job"
    assert job.path == str(job_dir.resolve())


def test_settings_merge_defaults_metadata_and_job_yaml(make_notebook: MakeNotebook, job_dir: Path) -> None:
    job_yaml(
        job_dir,
        """
name: merged
description: a merge test
max_parallel_tasks: 3
parameters:
  year: 2024
task_defaults:
  max_retries: 1
  timeout_seconds: 60
  run_if: all_done
  parameters:
    region: eu
  environment:
    env: {A: "1", B: "1"}
tasks:
  a:
    max_retries: 3
    parameters:
      x: 2
    environment:
      env: {C: "3"}
""",
    )
    make_notebook(
        "job/a.ipynb",
        "1",
        parameters="x = 0\nregion = 'us'",
        orchestrate={
            "max_retries": 2,
            "min_retry_interval_seconds": 5,
            "run_if": "none_failed",
            "parameters": {"x": 1},
            "environment": {"env": {"B": "2"}, "cwd": "."},
            "description": "task a",
        },
    )
    make_notebook("job/b.ipynb", "1", parameters="y = 0", orchestrate={"depends_on": ["a"]})
    job = valid(job_dir)
    assert (job.name, job.description, job.max_parallel_tasks, job.parameters) == (
        "merged",
        "a merge test",
        3,
        {"year": 2024},
    )
    a = job.task("a")
    assert a.max_retries == 3  # job.yaml tasks wins over metadata
    assert a.min_retry_interval_seconds == 5  # metadata
    assert a.timeout_seconds == 60  # task_defaults
    assert a.run_if == RunIf.none_failed  # metadata over task_defaults
    assert a.description == "task a"
    assert a.environment.env == {"A": "1", "B": "2", "C": "3"}
    assert a.environment.cwd == "."
    assert a.parameters == {"region": "eu", "x": 2}
    b = job.task("b")
    assert b.max_retries == 1 and b.timeout_seconds == 60 and b.run_if == RunIf.all_done
    assert b.environment.env == {"A": "1", "B": "1"}
    assert b.parameters == {}  # task_defaults parameters apply only where the notebook declares them


def test_notebook_parameters_from_the_parameters_cell(make_notebook: MakeNotebook, job_dir: Path) -> None:
    cell = 'year: int = 2024  # the year\nrate: float = 0.5\nname: str = "abc"\nitems: list = [1, 2]\nflag: bool = True'
    make_notebook("job/a.ipynb", "print(year)", parameters=cell, orchestrate={})
    (a,) = valid(job_dir).tasks
    assert [(p.name, p.default, p.inferred_type) for p in a.notebook_parameters] == [
        ("year", "2024", "int"),
        ("rate", "0.5", "float"),
        ("name", '"abc"', "str"),
        ("items", "[1, 2]", "list"),
        ("flag", "True", "bool"),
    ]
    assert a.notebook_parameters[0].help == "the year"


def test_unannotated_parameter_type_comes_from_its_literal_default(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook(
        "job/a.ipynb",
        "1",
        parameters="x = 1\ns = 'a'\nn = None\nf = float('nan')\ny: float = 2",
        orchestrate={},
    )
    (a,) = valid(job_dir).tasks
    types = {p.name: p.inferred_type for p in a.notebook_parameters}
    assert types == {"x": "int", "s": "str", "n": None, "f": None, "y": "float"}


def test_job_yaml_tasks_entry_adds_a_notebook_without_metadata(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook("job/reports/summary.ipynb", "1")  # no metadata, in a subfolder
    job_yaml(
        job_dir,
        "tasks:\n  report:\n    notebook: reports/summary.ipynb\n    depends_on: [a]\n    max_retries: 2\n",
    )
    job = valid(job_dir)
    assert job.task_keys == ["a", "report"]
    report = job.task("report")
    assert report.notebook == "reports/summary.ipynb"
    assert report.depends_on == ["a"]
    assert report.max_retries == 2


def test_notebooks_without_orchestrate_metadata_are_ignored(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook("job/scratch.ipynb", "1")
    make_notebook("job/nested/scratch2.ipynb", "1")
    (job_dir / "notes.txt").write_text("not a notebook")
    assert valid(job_dir).task_keys == ["a"]


def test_job_yaml_path_and_kernel_resolution(make_notebook: MakeNotebook, job_dir: Path) -> None:
    kernel = sorted(KernelSpecManager().find_kernel_specs())[0]
    make_notebook("job/a.ipynb", "1", orchestrate={})
    make_notebook(
        "job/b.ipynb", "1", orchestrate={"environment": {"kernel_name": kernel}}, kernel="ignored-kernel"
    )
    path = job_yaml(job_dir, "name: from-yaml\n")
    job = valid(path)  # the job.yaml file itself may be given
    assert job.name == "from-yaml"
    assert job.task("a").kernel_name == "python3"  # the notebook's kernelspec
    assert job.task("b").kernel_name == kernel  # environment.kernel_name wins


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------


def _cli(path: Path) -> Any:
    return CliRunner().invoke(main, ["validate", str(path)])


def test_cli_validate_exit_2_and_one_line_per_problem(
    make_notebook: MakeNotebook, job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(job_dir.parent)
    make_notebook("job/a.ipynb", "1", orchestrate={"depends_on": ["a"]})
    make_notebook("job/b.ipynb", "1", orchestrate={"retries": 1})
    make_notebook("job/c.ipynb", "1", orchestrate={"depends_on": ["zz"]})
    result = _cli(job_dir)
    assert result.exit_code == 2, result.output
    expected = [f"error: {p}" for p in validate_job(job_dir)[1]]
    assert len(expected) == 3
    assert result.stderr.splitlines() == expected
    assert not (job_dir.parent / "orchestrate_runs").exists(), "validate creates no state home"
    assert result.stdout == ""


def test_cli_validate_long_problem_stays_on_one_line(
    make_notebook: MakeNotebook, job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    # 40 tasks: the "unknown task" problem lists them all, far wider than any terminal
    for i in range(40):
        make_notebook(f"job/task_with_a_descriptive_name_{i:02}.ipynb", "1", orchestrate={})
    make_notebook("job/z.ipynb", "1", orchestrate={"depends_on": ["missing"]})
    result = _cli(job_dir)
    assert result.exit_code == 2
    (problem,) = validate_job(job_dir)[1]
    assert len(str(problem)) > 1000
    assert result.stderr.splitlines() == [f"error: {problem}"]


def test_cli_validate_prints_brackets_in_problems_verbatim(job_dir: Path) -> None:
    (job_dir / "copy [draft].ipynb").write_text("{", encoding="utf-8")
    result = _cli(job_dir)
    assert result.exit_code == 2
    assert "job/copy [draft].ipynb: not valid JSON" in result.stderr


def test_cli_validate_valid_job_exit_0(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", parameters="x = 1", orchestrate={})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    result = _cli(job_dir)
    assert result.exit_code == 0, result.output
    assert "job job is valid: 2 task(s)" in result.stdout
    assert "a (a.ipynb, kernel python3)  parameters: x" in result.stdout
    assert "b (b.ipynb, kernel python3) <- a" in result.stdout
    assert result.stderr == ""


# ---------------------------------------------------------------------------------------------------------
# hostile job files and command lines: refused fast, naming the file, field and problem; no kernel starts
# ---------------------------------------------------------------------------------------------------------

LAUGHS = (
    "parameters:\n  a: &a ["
    + ",".join(["lol"] * 10)
    + "]\n"
    + "".join(
        f"  {c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]\n" for p, c in zip("abcdef", "bcdefg", strict=False)
    )
)


def test_billion_laughs_is_refused_fast_and_runs_nothing(
    make_notebook: MakeNotebook, job_dir: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from jupyter_orchestrate.discovery import MAX_YAML_CHARS, MAX_YAML_NODES
    from jupyter_orchestrate.service import OrchestrateService

    assert len(LAUGHS) < 340  # 7 levels x 10: 10**7 strings once expanded
    monkeypatch.chdir(job_dir.parent)
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, LAUGHS)
    started = time.monotonic()
    assert problems_of(job_dir) == [
        f"job/job.yaml: invalid YAML: line 6 column 6: more than {MAX_YAML_NODES} values or {MAX_YAML_CHARS} "
        "characters once aliases are expanded; a job file holds settings, not data"
    ]
    result = CliRunner().invoke(main, ["--home", str(home), "run", str(job_dir)])
    assert result.exit_code == 2, result.output
    assert "once aliases are expanded" in result.stderr
    assert time.monotonic() - started < 10, (
        "refused before anything is expanded (it took 100 s and 5 GB before)"
    )
    assert OrchestrateService(home).list_runs() == [], "no run was recorded, so no kernel started"


def test_yaml_aliases_within_the_limit_and_recursive_aliases(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", parameters="x = 1", orchestrate={})
    job_yaml(
        job_dir, "task_defaults: &d\n  max_retries: 2\ntasks:\n  a:\n    <<: *d\n    parameters: {x: 3}\n"
    )
    job = valid(job_dir)
    assert job.task("a").max_retries == 2 and job.task("a").parameters == {"x": 3}
    job_yaml(job_dir, "parameters:\n  loop: &a [1, *a]\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: invalid YAML: line 2 column 9: an alias refers to a value that contains it"
    ]
    job_yaml(job_dir, "parameters:\n  deep: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problems_of(job_dir) == ["job/job.yaml: invalid YAML: nested too deeply"]


def test_job_yaml_size_and_parameter_value_limits(make_notebook: MakeNotebook, job_dir: Path) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, "description: |\n" + "  filler line of text\n" * 12_000)
    assert problems_of(job_dir) == [
        "job/job.yaml: larger than 262144 bytes; a job file holds settings, not data"
    ]
    # aliases of one scalar expand nothing, but 18 of a 60 kB value are more than 1 MiB of parameters
    values = f"  p0: &v {'y' * 60_000}\n" + "".join(f"  p{i}: *v\n" for i in range(1, 18))
    job_yaml(job_dir, f"parameters:\n  big: {'x' * 70_000}\n  nan: .nan\n  inf: -.inf\n  day: 2024-01-31\n")
    assert problems_of(job_dir) == [
        "job/job.yaml: parameters.big: the value is 70002 bytes as JSON; at most 65536 are allowed",
        "job/job.yaml: parameters.nan: not a finite number (NaN and infinity are not JSON)",
        "job/job.yaml: parameters.inf: not a finite number (NaN and infinity are not JSON)",
        "job/job.yaml: parameters.day: not a JSON value (Object of type date is not JSON serializable); quote dates and times as strings",
    ]
    job_yaml(job_dir, f"parameters:\n{values}")
    assert problems_of(job_dir) == [
        "job/job.yaml: parameters: the values are 1080036 bytes as JSON together; at most 1048576 are allowed"
    ]


BAD_NAMES = {
    "job.yaml parameters": (
        "parameters: {'a b': 1}\n",
        "job/job.yaml: parameters: 'a b' is not a valid parameter name",
    ),
    "job.yaml keyword": (
        "parameters: {class: 1}\n",
        "job/job.yaml: parameters: 'class' is not a valid parameter name",
    ),
    "task_defaults": (
        "task_defaults: {parameters: {'x=1;y': 1}}\n",
        "job/job.yaml: task_defaults.parameters: 'x=1;y'",
    ),
    "tasks": ("tasks: {a: {parameters: {'1st': 1}}}\n", "job/job.yaml: tasks.a.parameters: '1st'"),
    "schedules": (
        "schedules: [{cron: '0 6 * * *', parameters: {'import os': 1}}]\n",
        "job/job.yaml: schedules.0.parameters: 'import os'",
    ),
    "triggers": (
        "triggers: [{file_arrival: {path: 'in/*'}, parameters: {'': 1}}]\n",
        "job/job.yaml: triggers.0.parameters: ''",
    ),
}


@pytest.mark.parametrize("source", list(BAD_NAMES))
def test_parameter_names_from_job_yaml_must_be_identifiers(
    source: str, make_notebook: MakeNotebook, job_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(job_dir.parent)
    text, expected = BAD_NAMES[source]
    make_notebook("job/a.ipynb", "1", orchestrate={})
    job_yaml(job_dir, text)
    result = _cli(job_dir)
    assert result.exit_code == 2, result.output
    assert f"error: {expected}" in result.stderr, result.stderr
    assert "use a Python identifier that is not a keyword" in result.stderr


def test_parameter_names_in_notebook_metadata_must_be_identifiers(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    make_notebook("job/a.ipynb", "1", orchestrate={"parameters": {"x = 1\nimport os\ny": 1}})
    make_notebook("job/b.ipynb", "1", orchestrate={"depends_on": ["a"]})
    assert problems_of(job_dir) == [
        "job/a.ipynb: metadata.orchestrate.parameters: 'x = 1\\nimport os\\ny' is not a valid parameter name: "
        "use a Python identifier that is not a keyword"
    ]


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["run", "JOB", "-p", "a b=1"],
            "-p a b=1: expected name=value with a Python identifier (not a keyword) as name",
        ),
        (["run", "JOB", "-p", "class=1"], "-p class=1: expected name=value"),
        (["run", "JOB", "-p", "n=1e999"], "parameters.n: not a finite number"),
        (["run", "JOB", "--max-parallel", str(10**30)], "Invalid value for '--max-parallel'"),
        (["run", "JOB", "--max-parallel", "0"], "Invalid value for '--max-parallel'"),
        (["repair", str(2**63)], "Invalid value for 'RUN_ID'"),
        (["repair", "1", "--max-parallel", str(10**30)], "Invalid value for '--max-parallel'"),
        (["show", str(2**63)], "Invalid value for 'RUN_ID'"),
        (["cancel", str(2**64)], "Invalid value for 'RUN_ID'"),
        (["runs", "--limit", str(10**30)], "Invalid value for '--limit'"),
    ],
)
def test_cli_out_of_range_and_bad_names_exit_2(
    args: list[str], expected: str, make_notebook: MakeNotebook, job_dir: Path, home: Path
) -> None:
    from jupyter_orchestrate.service import OrchestrateService

    make_notebook("job/a.ipynb", "1", parameters="n = 1.0", orchestrate={})
    args = [str(job_dir) if a == "JOB" else a for a in args]
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 2, (result.output, result.exception)
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.output
    assert not home.exists() or OrchestrateService(home).list_runs() == []


def test_non_finite_numbers_in_job_yaml_are_refused(
    make_notebook: Callable[..., Path], tmp_path: Path
) -> None:
    """YAML's ``.inf``/``.nan`` would pass float fields, then be served as invalid JSON (``Infinity``) and, as a
    retry interval, leave a task waiting forever."""
    make_notebook("inf/a.ipynb", "1", orchestrate={})
    (tmp_path / "inf" / "job.yaml").write_text(
        "task_defaults:\n  timeout_seconds: .inf\n  min_retry_interval_seconds: .nan\n"
    )
    job, problems = validate_job(tmp_path / "inf")
    assert job is None
    text = "\n".join(map(str, problems))
    assert "task_defaults.timeout_seconds" in text and "task_defaults.min_retry_interval_seconds" in text, (
        text
    )
    assert "job.yaml" in text and "finite" in text, text


def test_a_long_anchored_string_repeated_by_aliases_is_refused_fast(
    make_notebook: MakeNotebook, job_dir: Path
) -> None:
    """Few values but many characters: a 120 KB anchor repeated by 1,000 aliases built 120 MB (and at the size
    cap about 3 GB) before; the expansion is bounded by characters as well as by values."""
    import time

    make_notebook("job/a.ipynb", "1", orchestrate={})
    aliases = "\n".join(f"  p{i}: *big" for i in range(1000))
    job_yaml(job_dir, f"x-big: &big {'y' * 120_000}\nparameters:\n{aliases}\n")
    started = time.monotonic()
    problems = problems_of(job_dir)
    assert len(problems) == 1 and "characters once aliases are expanded" in problems[0], problems
    assert time.monotonic() - started < 10
