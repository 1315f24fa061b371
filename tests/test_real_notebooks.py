"""Notebooks as users (and other projects' test suites) write them, run with real kernels and real papermill:
truncated JSON, stale outputs and error cells from an earlier papermill run, no kernelspec, an R kernelspec,
``%magic`` failures, a kernel that dies, notebooks in subfolders, papermill's own warnings.

One test per case of issue 11 "Real notebooks as they are". The CLI runs in a subprocess from the repository
root, so its stdout/stderr are what a user sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from jupyter_orchestrate.discovery import find_jobs, validate_job
from jupyter_orchestrate.models import Run
from jupyter_orchestrate.schemas.documents import JobDocument
from jupyter_orchestrate.service import OrchestrateService, run_document
from tests.conftest import EXAMPLES, REPO, write_notebook

pytestmark = pytest.mark.kernel


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``jupyter orchestrate --home HOME ARGS`` in a fresh process (stdout, stderr, exit code)."""
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("JUPYTER_ORCHESTRATE_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def run_json(home: Path, job: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = cli(home, "run", str(job), "--json", *args)
    assert result.stdout.strip(), result.stderr
    return result, json.loads(result.stdout)


def task_runs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task_key"]: t for t in doc["task_runs"]}


def run_in_process(home: Path, job: Path) -> Run:
    service = OrchestrateService(home)
    runner = service.new_run(job)
    try:
        runner.execute()
    finally:
        runner.executor.close()
    return service.get_run(runner.run_id)


def truncate(path: Path) -> None:
    """Cut a saved notebook in half, as an interrupted save or copy leaves it (its metadata is at the end)."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------
# one bad notebook does not refuse the whole job
# ---------------------------------------------------------------------------------------------------------


def test_one_unreadable_notebook_or_missing_kernel_fails_only_its_task(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    write_notebook(job / "extract.ipynb", "print('extract')", orchestrate={})
    write_notebook(job / "broken.ipynb", "print('never')", orchestrate={"depends_on": ["extract"]})
    truncate(job / "broken.ipynb")
    write_notebook(job / "after_broken.ipynb", "print('never')", orchestrate={"depends_on": ["broken"]})
    write_notebook(
        job / "no_kernel.ipynb", "1", orchestrate={"environment": {"kernel_name": "not-installed-kernel"}}
    )
    write_notebook(job / "report.ipynb", "print('report')", orchestrate={"depends_on": ["extract"]})
    (job / "scratch.ipynb").write_text("{ this was never a notebook", encoding="utf-8")  # untagged, malformed

    checked = cli(home, "validate", str(job))
    assert checked.returncode == 2, checked.stderr
    lines = checked.stderr.splitlines()
    assert any(
        line.startswith("error: job/broken.ipynb: not valid JSON (a truncated or unsaved file?): line ")
        for line in lines
    ), lines
    assert (
        "error: job/no_kernel.ipynb: metadata.orchestrate.environment.kernel_name: kernel 'not-installed-kernel' "
        "is not installed"
    ) in checked.stderr
    assert any(
        line.startswith("warning: job/scratch.ipynb: not valid JSON") and "skipped" in line for line in lines
    ), lines
    assert "a run would fail broken, no_kernel at once" in checked.stderr
    assert not home.exists(), "validate must not create a state home"

    result, doc = run_json(home, job)
    assert result.returncode == 1, result.stderr
    runs = task_runs(doc)
    assert {k: t["status"] for k, t in runs.items()} == {
        "extract": "succeeded",
        "report": "succeeded",
        "broken": "failed",
        "after_broken": "upstream_failed",
        "no_kernel": "failed",
    }
    assert runs["broken"]["status_reason"].startswith(
        "reading the notebook: not valid JSON (a truncated or unsaved file?)"
    )
    assert runs["no_kernel"]["status_reason"].startswith(
        "resolving the kernel: metadata.orchestrate.environment.kernel_name: kernel 'not-installed-kernel' is not installed"
    )
    assert (
        runs["broken"]["attempt_count"] == 0 and runs["no_kernel"]["attempt_count"] == 0
    )  # nothing was executed
    assert runs["after_broken"]["status_reason"] == "run_if all_success not met (broken=failed)"

    shown = cli(home, "show", str(doc["run_id"]))
    assert (
        "reading the notebook: not valid JSON" in shown.stdout and "resolving the kernel:" in shown.stdout
    ), shown.stdout

    # a structural problem still refuses the run before any kernel starts, and records nothing
    (job / "job.yaml").write_text("tasks:\n  extract:\n    depends_on: [report]\n", encoding="utf-8")
    refused = cli(home, "run", str(job))
    assert refused.returncode == 2
    assert "error: job: depends_on: dependency cycle: extract -> report -> extract" in refused.stderr
    listed = json.loads(cli(home, "runs", "--json").stdout)
    assert [r["run_id"] for r in listed["runs"]] == [doc["run_id"]]


# ---------------------------------------------------------------------------------------------------------
# kernel names
# ---------------------------------------------------------------------------------------------------------


def test_python_kernel_name_resolves_like_jupyter_client_and_problems_name_where_it_came_from(
    tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", "import sys; print(sys.version)", orchestrate={}, kernel="python")
    write_notebook(job / "b.ipynb", "1", orchestrate={}, kernel="Python3")
    found, problems = validate_job(job)
    assert problems == [] and found is not None
    assert [t.kernel_name for t in found.tasks] == ["python3", "python3"]
    run = run_in_process(home, job)
    assert run.status.value == "succeeded", run.task_runs
    assert {t.last_attempt.kernel_name for t in run.task_runs if t.last_attempt} == {"python3"}

    other = tmp_path / "other"
    installed = ", ".join(sorted(KernelSpecManager().find_kernel_specs()))
    write_notebook(other / "from_notebook.ipynb", "1", orchestrate={}, kernel="ir")
    write_notebook(other / "from_yaml.ipynb", "1", orchestrate={})
    (other / "job.yaml").write_text(
        "tasks:\n  from_yaml:\n    environment:\n      kernel_name: julia-1.9\n", encoding="utf-8"
    )
    _, problems = validate_job(other)
    assert sorted(str(p) for p in problems) == [
        (
            f"other/from_notebook.ipynb: metadata.kernelspec.name: kernel 'ir' is not installed (installed: {installed}); "
            "install it, or set environment.kernel_name to run the notebook on an installed kernel"
        ),
        (
            f"other/from_yaml.ipynb: job.yaml tasks.from_yaml.environment.kernel_name: kernel 'julia-1.9' is not installed "
            f"(installed: {installed})"
        ),
    ]


# ---------------------------------------------------------------------------------------------------------
# parameters papermill cannot inspect; no parameters cell
# ---------------------------------------------------------------------------------------------------------


def r_notebook(path: Path, parameters: str, *cells: str, orchestrate: dict[str, Any]) -> Path:
    write_notebook(path, *cells, parameters=parameters, orchestrate=orchestrate)
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    nb["metadata"]["language_info"] = {"name": "R"}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def test_r_kernelspec_parameters_are_passed_through_even_on_python3(tmp_path: Path, home: Path) -> None:
    # an R kernelspec, the kernel overridden to python3: the cells are read as the kernel that runs them reads them
    job = tmp_path / "job"
    r_notebook(
        job / "r_saved.ipynb",
        'msg = "default"',
        "open('msg.txt', 'w').write(msg)",
        orchestrate={"parameters": {"msg": "injected"}, "environment": {"kernel_name": "python3"}},
    )
    found, problems = validate_job(job)
    assert problems == [], [str(p) for p in problems]
    assert found is not None and [p.name for p in found.task("r_saved").notebook_parameters] == ["msg"]
    run = run_in_process(home, job)
    assert run.status.value == "succeeded", run.task_runs[0]
    assert (job / "msg.txt").read_text() == "injected"

    # a real R notebook: its parameters cannot be inspected, so they are passed on with a warning, not refused
    rjob = tmp_path / "rjob"
    r_notebook(
        rjob / "analysis.ipynb",
        'msg <- "default"',
        "print(msg)",
        orchestrate={"parameters": {"msg": "injected"}},
    )
    found, problems = validate_job(rjob, check_kernels=False)
    assert found is not None and found.task("analysis").parameters == {"msg": "injected"}
    assert [str(p) for p in problems] == [
        (
            "rjob/analysis.ipynb: parameters cell: the parameters of a R notebook cannot be inspected; task parameters (msg) "
            "are passed on unchecked"
        )
    ]
    assert problems[0].is_warning
    # a Python parameters cell that is not Python (a typo): a warning too, the parameters are passed on
    write_notebook(
        rjob / "analysis.ipynb",
        "print(msg)",
        parameters="msg = 'a' +",
        orchestrate={"parameters": {"msg": "b"}},
    )
    (warning,) = validate_job(rjob)[1]
    assert warning.is_warning and warning.message.startswith(
        "cannot be read as Python (line 1: invalid syntax)"
    )


def test_no_parameters_cell_is_a_warning_on_the_task_everywhere(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", "print(msg)", orchestrate={"parameters": {"msg": "injected"}})
    expected = (
        "parameters cell: the notebook has no cell tagged 'parameters': papermill injects msg in a new first "
        "cell, before the notebook's own code (tag the cell that sets the defaults 'parameters')"
    )
    checked = cli(home, "validate", str(job))
    assert checked.returncode == 0, checked.stderr
    assert f"warning: job/a.ipynb: {expected}" in checked.stderr

    found, problems = validate_job(job)
    doc = JobDocument.build(found, job, tmp_path, problems, []).json_data()
    assert doc["valid"] is True
    assert doc["tasks"][0]["warnings"] == [expected]
    assert [(p["severity"], p["task_key"]) for p in doc["problems"]] == [("warning", "a")]

    result, run = run_json(home, job)
    assert result.returncode == 0, result.stderr
    assert f"warning: a: {expected}" in result.stderr
    (task_run,) = run["task_runs"]
    assert task_run["warnings"] == [expected]
    assert task_run["attempts"][0]["parameters"] == {"msg": "injected"}
    shown = cli(home, "show", str(run["run_id"]))
    assert f"warning: a: {expected}" in shown.stdout
    assert run_document(OrchestrateService(home).get_run(run["run_id"]))["task_runs"][0]["warnings"] == [
        expected
    ]


# ---------------------------------------------------------------------------------------------------------
# which cell failed
# ---------------------------------------------------------------------------------------------------------


def papermill_output(tmp_path: Path) -> dict[str, Any]:
    """A notebook executed by papermill that failed: error markers, an injected-parameters cell, old outputs."""
    source = tmp_path / "source.ipynb"
    write_notebook(
        source,
        "# md # Title",
        "a = 1",
        "raise ValueError('first failure')",
        "b = 2",
        "# md ## More",
        "c = 3",
        "d = 4",
        parameters="x = 1",
    )
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(
            str(source), str(tmp_path / "earlier.ipynb"), parameters={"x": 2}, progress_bar=False
        )
    earlier = json.loads((tmp_path / "earlier.ipynb").read_text(encoding="utf-8"))
    tags = [c["metadata"].get("tags", []) for c in earlier["cells"]]
    assert ["papermill-error-cell-tag"] in tags and ["injected-parameters"] in tags  # what a user then edits
    return earlier


@pytest.mark.parametrize("failure", ["raise", "sys.exit"])
@pytest.mark.parametrize("ids", [True, False], ids=["cell ids", "nbformat 4.4 without ids"])
def test_failing_cell_of_a_previously_executed_notebook_is_found_by_cell_id(
    tmp_path: Path,
    home: Path,
    failure: str,
    ids: bool,
) -> None:
    nb = papermill_output(tmp_path)
    # the user fixes the first failure (its stale error output stays) and breaks a later cell
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if "first failure" in text:
            cell["source"] = "print('fixed')"
        elif text == "c = 3":
            cell["source"] = (
                "raise RuntimeError('second failure')" if failure == "raise" else "import sys; sys.exit(0)"
            )
    if not ids:
        nb["nbformat_minor"] = 4
        for cell in nb["cells"]:
            cell.pop("id", None)
    nb["metadata"]["orchestrate"] = {"parameters": {"x": 3}}
    job = tmp_path / "job"
    job.mkdir()
    (job / "stale.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    failing = next(
        i
        for i, c in enumerate(nb["cells"])
        if "second failure" in "".join(c["source"]) or "sys.exit" in "".join(c["source"])
    )
    assert failing == 9  # 2 old markers and the old injected cell come before it

    run = run_in_process(home, job)
    (task_run,) = run.task_runs
    error = task_run.last_attempt.error
    assert (error.kind, error.ename) == (
        ("cell_error", "RuntimeError") if failure == "raise" else ("early_exit", "SystemExit")
    )
    assert error.cell_index == failing, error
    saved = nbformat.read(task_run.last_attempt.notebook_path, as_version=4)
    assert saved.cells[error.executed_cell_index].source == nb["cells"][failing]["source"]
    shown = cli(home, "show", str(run.run_id))
    assert f"failed in cell {failing + 1} of stale.ipynb" in shown.stdout, shown.stdout


def test_magic_usage_error_printed_on_stderr_has_its_name_and_message(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    write_notebook(job / "magic.ipynb", "x = 1", "%timeit -badflag x", "print(2)", orchestrate={})
    run = run_in_process(home, job)
    error = run.task_runs[0].last_attempt.error
    assert (error.kind, error.ename, error.cell_index) == ("cell_error", "UsageError", 1)
    assert error.evalue.startswith("option -b not recognized"), error
    shown = cli(home, "show", str(run.run_id))
    assert "cell 2: UsageError: option -b not recognized" in shown.stdout, shown.stdout


def test_one_cell_numbering_in_cli_api_widget_and_messages(tmp_path: Path, home: Path) -> None:
    from jupyter_orchestrate.widgets import TaskRow

    job = tmp_path / "job"
    write_notebook(
        job / "dies.ipynb",
        "# md # Kernel death",
        "x = 1",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        orchestrate={},
    )
    write_notebook(
        job / "slow.ipynb",
        "# md # Too slow",
        "import time",
        "time.sleep(600)",
        orchestrate={"timeout_seconds": 8},
    )
    run = run_in_process(home, job)
    dies, slow = run.task_run("dies"), run.task_run("slow")
    died = dies.last_attempt.error
    assert (died.kind, died.cell_index) == ("kernel_died", 2)
    assert died.evalue.startswith("the kernel died while executing cell 3"), died.evalue
    timed_out = slow.last_attempt.error
    log = Path(slow.last_attempt.log_path).read_text(encoding="utf-8", errors="replace")[-3000:]
    assert (timed_out.kind, timed_out.cell_index) == ("timeout", 2), f"{timed_out}\nattempt log:\n{log}"
    assert "while executing cell 3 (code cell 2 of 2)" in timed_out.evalue, timed_out.evalue

    shown = cli(home, "show", str(run.run_id))
    assert "cell 3: DeadKernelError: the kernel died while executing cell 3" in shown.stdout, shown.stdout
    assert "failed in cell 3 of dies.ipynb" in shown.stdout
    api = run_document(run)["task_runs"]
    assert [t["error"]["cell_index"] for t in api] == [2, 2]  # 0-based in the API, "cell 3" in words
    row = TaskRow("dies")
    row.update(dies)
    assert "cell 3: DeadKernelError: the kernel died while executing cell 3" in row.failure.value


# ---------------------------------------------------------------------------------------------------------
# where notebooks are; what they run on; papermill's own messages
# ---------------------------------------------------------------------------------------------------------


def test_tagged_notebooks_in_subfolders_are_tasks_but_not_checkpoints_state_or_outputs(
    tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "job"
    write_notebook(job / "scripts" / "extract.ipynb", "open('here.txt', 'w').write('x')", orchestrate={})
    write_notebook(
        job / "nbs" / "deep" / "report.ipynb", "print('report')", orchestrate={"depends_on": ["extract"]}
    )
    tagged = {"depends_on": []}
    for ignored in (
        ".ipynb_checkpoints/extract-checkpoint.ipynb",
        ".orchestrate/runs/1/a/attempt-1.ipynb",
        "orchestrate_runs/runs/1/a/attempt-1.ipynb",
        "output/executed.ipynb",
        ".hidden/h.ipynb",
        "my_state/old.ipynb",
        "other_job/other.ipynb",
        "a/b/c/d/too_deep.ipynb",
    ):
        write_notebook(job / ignored, "1", orchestrate=tagged)
    (job / "my_state" / "orchestrate.db").write_bytes(b"")  # a state home of any name
    (job / "other_job" / "job.yaml").write_text("name: other\n", encoding="utf-8")  # a job of its own

    found, problems = validate_job(job)
    assert problems == [], [str(p) for p in problems]
    assert found is not None and [(t.task_key, t.notebook) for t in found.tasks] == [
        ("extract", "scripts/extract.ipynb"),
        ("report", "nbs/deep/report.ipynb"),
    ]
    # with a job.yaml the folder is listed as one job; its subfolders' notebooks are its tasks, not jobs
    (job / "job.yaml").write_text("name: pipeline\n", encoding="utf-8")
    assert find_jobs(tmp_path) == [job, job / "other_job"]
    run = run_in_process(home, job)
    assert run.status.value == "succeeded"
    assert (job / "scripts" / "here.txt").exists()  # a notebook runs in its own folder, as papermill runs it

    write_notebook(job / "nbs" / "extract.ipynb", "1", orchestrate={})
    _, problems = validate_job(job)
    assert [str(p) for p in problems] == [
        "job/nbs/extract.ipynb, job/scripts/extract.ipynb: task_key: duplicate task key 'extract'"
    ]


def test_notebook_without_kernelspec_says_it_runs_on_python3(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    path = write_notebook(job / "bare.ipynb", "import sys; print(sys.executable)", orchestrate={})
    nb = json.loads(path.read_text(encoding="utf-8"))
    del nb["metadata"]["kernelspec"], nb["metadata"]["language_info"]
    path.write_text(json.dumps(nb), encoding="utf-8")
    expected = "metadata.kernelspec: the notebook has no kernelspec: it runs on python3 (set environment.kernel_name to choose)"

    checked = cli(home, "validate", str(job))
    assert checked.returncode == 0 and f"warning: job/bare.ipynb: {expected}" in checked.stderr, (
        checked.stderr
    )
    result, doc = run_json(home, job)
    assert result.returncode == 0, result.stderr
    assert doc["task_runs"][0]["attempts"][0]["environment"]["kernel_name"] == "python3"
    assert f"warning: bare: {expected}" in cli(home, "show", str(doc["run_id"])).stdout


def test_papermill_warnings_stay_in_the_attempt_log_not_on_the_terminal(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    write_notebook(
        job / "unparsable.ipynb",
        "print(msg)",
        parameters="a = b = 1\nmsg = 'default'",
        orchestrate={"parameters": {"msg": "set"}},
    )
    write_notebook(job / "no_cell.ipynb", "print(msg)", orchestrate={"parameters": {"msg": "set"}})
    r_notebook(
        job / "r_saved.ipynb",
        "msg = 'default'",
        "print(msg)",
        orchestrate={"parameters": {"msg": "set"}, "environment": {"kernel_name": "python3"}},
    )
    write_notebook(
        job / "dies.ipynb", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", orchestrate={}
    )
    result, doc = run_json(home, job)
    assert result.returncode == 1
    messages = {
        "unparsable": "Unable to parse line 1 'a = b = 1'",
        "no_cell": "Passed unknown parameter: msg",
        "r_saved": "Translator for 'R' language does not support parameter introspection",
    }
    for key, message in messages.items():
        assert message not in result.stderr, result.stderr
        log = Path(task_runs(doc)[key]["log"]).read_text(encoding="utf-8")
        assert message in log, (key, log)
    assert "Kernel died while waiting for execute reply" not in result.stderr, result.stderr
    assert "Kernel died while waiting for execute reply" in Path(task_runs(doc)["dies"]["log"]).read_text(
        encoding="utf-8"
    )


# ---------------------------------------------------------------------------------------------------------
# latency: discovery needs neither nbformat nor papermill
# ---------------------------------------------------------------------------------------------------------


def test_cli_import_and_discovery_do_not_import_nbformat_papermill_or_jsonschema() -> None:
    code = (
        "import json, sys\n"
        "import jupyter_orchestrate.cli\n"
        "from jupyter_orchestrate.discovery import validate_job\n"
        f"job, problems = validate_job({str(EXAMPLES / 'green_energy')!r})\n"
        "assert job is not None and not problems, problems\n"
        "print(json.dumps(sorted(m for m in ('nbformat', 'papermill', 'jsonschema', 'nbclient') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
