"""End to end with real kernels, real papermill and a real SQLite file."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from jupyter_orchestrate.errors import ConflictError
from jupyter_orchestrate.models import Run, RunStatus, TaskRunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import EXAMPLES, write_notebook

S = TaskRunStatus
pytestmark = pytest.mark.kernel


def execute(runner: Any) -> Any:
    try:
        runner.execute()
    finally:
        runner.executor.close()
    return runner


def run_job(home: Path, path: Path, **kwargs: Any) -> Run:
    service = OrchestrateService(home)
    runner = execute(service.new_run(path, **kwargs))
    return service.get_run(runner.run_id)


def repair_run(home: Path, run_id: int, **kwargs: Any) -> Run:
    service = OrchestrateService(home)
    execute(service.new_repair(run_id, **kwargs))
    return service.get_run(run_id)


def statuses(run: Run) -> dict[str, str]:
    return {t.task_key: t.status.value for t in run.task_runs}


def attempts(run: Run) -> dict[str, int]:
    return {t.task_key: len(t.attempts) for t in run.task_runs}


def kernels_of(home: Path) -> list[psutil.Process]:
    """Live kernel processes started by runs of this state home (or kept warm by a server on it)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" not in " ".join(process.info["cmdline"] or []):
                continue
            environ = process.environ()
            # a server's warm kernels start before their attempt is known: the context variable is set inside
            # them after attaching, but they inherit the server's JUPYTER_ORCHESTRATE_HOME
            if environ.get("JUPYTER_ORCHESTRATE_CONTEXT", "").startswith(str(home)) or environ.get(
                "JUPYTER_ORCHESTRATE_HOME"
            ) == str(home):
                found.append(process)
        except psutil.Error:
            continue
    return found


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def diamond(make_notebook: Any, tmp_path: Path) -> Path:
    """a -> (b -> d) and a -> (c -> e); b fails in its third cell."""
    job = tmp_path / "diamond"
    make_notebook(
        "diamond/a.ipynb",
        "from jupyter_orchestrate import task_values\ntask_values.set('rows', 7)",
        parameters="x = 1",
        orchestrate={},
    )
    make_notebook(
        "diamond/b.ipynb",
        "y = rows * 2",
        "# md a note",
        "raise ValueError(f'bad rows: {rows}')",
        "print('after')",
        parameters="rows = 0",
        orchestrate={"depends_on": ["a"], "parameters": {"rows": "{{tasks.a.values.rows}}"}},
    )
    make_notebook("diamond/c.ipynb", "import time\ntime.sleep(1.0)", orchestrate={"depends_on": ["a"]})
    make_notebook("diamond/d.ipynb", "print('d')", orchestrate={"depends_on": ["b"]})
    make_notebook("diamond/e.ipynb", "print('e')", orchestrate={"depends_on": ["c"]})
    return job


def test_failing_task_stops_dependents_while_sibling_runs_then_repair(diamond: Path, home: Path) -> None:
    original = (diamond / "b.ipynb").read_bytes()
    run = run_job(home, diamond, max_parallel=2)
    assert run.status == RunStatus.failed
    assert statuses(run) == {
        "a": "succeeded",
        "b": "failed",
        "c": "succeeded",
        "d": "upstream_failed",
        "e": "succeeded",
    }
    assert attempts(run) == {"a": 1, "b": 1, "c": 1, "d": 0, "e": 1}
    b = run.task_run("b")
    error = b.attempts[0].error
    assert error is not None
    assert (error.kind, error.ename) == ("cell_error", "ValueError")
    assert error.evalue == "bad rows: 7"  # the task value reached b as its parameter
    assert error.cell_index == 3  # parameters, y = ..., markdown, raise: index in the input notebook
    assert error.cell_source.startswith("raise ValueError")
    assert error.execution_count is not None
    assert any("ValueError" in line for line in error.traceback)
    executed = nbformat.read(b.attempts[0].notebook_path, as_version=4)
    assert executed.cells[error.executed_cell_index].source == error.cell_source
    assert (diamond / "b.ipynb").read_bytes() == original, "input notebooks are never modified"
    assert run.task_run("a").task_values == {"rows": 7}
    assert "upstream" not in (run.task_run("e").status_reason or "")

    # Fix the notebook and repair: only b and its downstream d re-execute.
    write_notebook(
        diamond / "b.ipynb",
        "y = rows * 2",
        parameters="rows = 0",
        orchestrate={"depends_on": ["a"], "parameters": {"rows": "{{tasks.a.values.rows}}"}},
    )
    service = OrchestrateService(home)
    plan, _, _ = service.plan_repair(run.run_id)
    assert (plan.task_keys, plan.reused_task_keys) == (["b", "d"], ["a", "c", "e"])
    repaired = repair_run(home, run.run_id)
    assert repaired.status == RunStatus.succeeded
    assert attempts(repaired) == {"a": 1, "b": 2, "c": 1, "d": 1, "e": 1}
    assert repaired.task_run("b").attempts[1].repair_number == 1
    assert repaired.task_run("b").attempts[1].parameters == {"rows": 7}, "reused task values feed the repair"
    assert [r.task_keys for r in repaired.repairs] == [["b", "d"]]
    with pytest.raises(ConflictError, match="nothing to repair"):
        service.plan_repair(run.run_id)

    # A second repair, of a named task with its dependents: b and d again, a, c, e reused.
    again = repair_run(home, run.run_id, task_keys=["b"], rerun_dependents=True)
    assert attempts(again) == {"a": 1, "b": 3, "c": 1, "d": 2, "e": 1}
    assert [r.repair_number for r in again.repairs] == [1, 2]


def test_timeout_kills_the_kernel_and_ends_timed_out(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    make_notebook(
        # the timeout covers the kernel's start (2-5 s here, more under load): 8 s leaves time to reach cell 2
        "job/slow.ipynb",
        "x = 1",
        "import time\ntime.sleep(600)",
        orchestrate={"timeout_seconds": 8},
    )
    started = time.monotonic()
    run = run_job(home, tmp_path / "job")
    assert time.monotonic() - started < 60
    slow = run.task_run("slow")
    assert slow.status == S.timed_out and run.status == RunStatus.failed
    error = slow.attempts[0].error
    assert error.kind == "timeout" and error.ename == "TimeoutError"
    assert error.cell_index == 1 and "time.sleep(600)" in error.cell_source
    assert "timeout_seconds=8" in error.evalue
    wait_for(lambda: not kernels_of(home), 10, "the timed-out kernel to be gone")


def test_kernel_that_kills_itself_is_reported_as_kernel_death(
    make_notebook: Any, tmp_path: Path, home: Path
) -> None:
    make_notebook(
        "job/suicide.ipynb",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "print('never')",
        orchestrate={},
    )
    run = run_job(home, tmp_path / "job")
    error = run.task_run("suicide").attempts[0].error
    assert run.task_run("suicide").status == S.failed
    assert error.kind == "kernel_died" and error.ename == "DeadKernelError"
    assert "SIGKILL" in error.evalue and error.cell_index == 0


def test_retry_succeeds_on_second_attempt(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    marker = tmp_path / "first-attempt-done"
    make_notebook(
        "job/flaky.ipynb",
        f"import pathlib\nm = pathlib.Path({str(marker)!r})\nif not m.exists():\n    m.touch()\n    raise ConnectionError('flaky')",
        orchestrate={"max_retries": 2, "min_retry_interval_seconds": 0.2},
    )
    run = run_job(home, tmp_path / "job")
    flaky = run.task_run("flaky")
    assert run.status == RunStatus.succeeded and flaky.status == S.succeeded
    assert [a.status for a in flaky.attempts] == [S.failed, S.succeeded]
    assert flaky.attempts[0].error.ename == "ConnectionError"
    gap = time.mktime(time.strptime(flaky.attempts[1].start_time[:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(
        time.strptime(flaky.attempts[0].end_time[:19], "%Y-%m-%dT%H:%M:%S")
    )
    assert gap >= 0


def test_sys_exit_zero_with_cells_left_is_not_success(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    make_notebook("job/quits.ipynb", "import sys\nsys.exit(0)", "print('skipped')", orchestrate={})
    make_notebook("job/done.ipynb", "print(1)", "import sys\nsys.exit(0)", orchestrate={})
    run = run_job(home, tmp_path / "job")
    quits = run.task_run("quits")
    assert quits.status == S.failed and quits.attempts[0].error.kind == "early_exit"
    assert "1 code cell(s)" in quits.attempts[0].error.evalue
    assert run.task_run("done").status == S.succeeded, (
        "sys.exit(0) in the last cell leaves nothing unexecuted"
    )


def test_parameters_precedence_templates_and_cwd(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.yaml").write_text(
        textwrap.dedent("""
        name: params
        parameters:
          region: eu
          size: 10
          out: "result-{{job.run_id}}.json"
        task_defaults:
          timeout_seconds: 60
        tasks:
          consume:
            parameters:
              label: "from-yaml"
    """)
    )
    make_notebook(
        "job/produce.ipynb",
        "from jupyter_orchestrate import task_values\ntask_values.set('total', size * 3)",
        parameters="size = 1\nregion = 'us'",
        orchestrate={},
    )
    make_notebook(
        "job/consume.ipynb",
        "import json, os\njson.dump({'region': region, 'size': size, 'total': total, 'label': label, 'note': note, 'cwd': os.getcwd()}, open(out, 'w'))",
        parameters="region = 'x'\nsize = 0\ntotal = 0\nlabel = 'default'\nnote = ''\nout = 'o.json'",
        orchestrate={
            "depends_on": ["produce"],
            "parameters": {
                "total": "{{tasks.produce.values.total}}",
                "label": "from-metadata",
                "note": "run {{job.run_id}} of {{job.name}}",
            },
        },
    )
    run = run_job(home, job, parameters={"size": "4"})
    assert run.status == RunStatus.succeeded, run
    result = json.loads((job / f"result-{run.run_id}.json").read_text())
    assert result == {
        "region": "eu",
        "size": 4,
        "total": 12,
        "label": "from-yaml",
        "note": f"run {run.run_id} of params",
        "cwd": str(job),
    }
    assert run.task_run("consume").attempts[0].parameters["total"] == 12
    assert run.parameters["size"] == 4


def test_sigint_cancels_cleanly_and_leaves_no_kernel(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    make_notebook("job/a.ipynb", "import time\ntime.sleep(60)", orchestrate={})
    make_notebook("job/b.ipynb", "import time\ntime.sleep(60)", orchestrate={})
    make_notebook("job/c.ipynb", "print('c')", orchestrate={"depends_on": ["a", "b"]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: len(kernels_of(home)) >= 2 and _running_attempts(home) == 2, 60, "two running attempts"
        )
        proc.send_signal(2)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    run = OrchestrateService(home).get_run(1)
    assert run.status == RunStatus.canceled
    assert statuses(run) == {"a": "canceled", "b": "canceled", "c": "canceled"}
    assert run.task_run("a").attempts[0].error.kind == "canceled"
    wait_for(lambda: not kernels_of(home), 10, "no kernel left")


def _running_attempts(home: Path, task_key: str = "%") -> int:
    db = home / "orchestrate.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute(
                "select count(*) from attempts where status = 'running' and task_key like ?", [task_key]
            ).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_sigkill_of_orchestrator_leaves_readable_db_and_repairable_run(
    make_notebook: Any, tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "job"
    make_notebook("job/quick.ipynb", "print('quick')", orchestrate={})
    make_notebook(
        "job/slow.ipynb",
        "import time\ntime.sleep(seconds)",
        parameters="seconds = 60",
        orchestrate={"depends_on": ["quick"]},
    )
    make_notebook("job/after.ipynb", "print('after')", orchestrate={"depends_on": ["slow"]})
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_orchestrate", "run", str(job), "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: _running_attempts(home, "slow") == 1 and len(kernels_of(home)) >= 1, 60, "slow to run"
        )
        time.sleep(0.5)  # let the kernel enter time.sleep
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    with sqlite3.connect(home / "orchestrate.db") as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    service = OrchestrateService(home)  # the next start recovers
    assert service.recovered == [1]
    run = service.get_run(1)
    assert run.status == RunStatus.failed and "died" in run.status_reason
    assert statuses(run) == {"quick": "succeeded", "slow": "failed", "after": "canceled"}
    assert run.task_run("slow").attempts[0].error.kind == "orchestrator_died"
    wait_for(lambda: not kernels_of(home), 15, "orphaned kernels reaped")
    repaired = repair_run(home, 1, parameters={"seconds": "0"})
    assert repaired.status == RunStatus.succeeded
    assert attempts(repaired) == {"quick": 1, "slow": 2, "after": 1}


def test_example_green_energy_job(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "green_energy"
    shutil.copytree(
        EXAMPLES / "green_energy", job, ignore=shutil.ignore_patterns("output", ".ipynb_checkpoints")
    )
    run = run_job(home, job)
    assert run.status == RunStatus.succeeded, [(t.task_key, t.status, t.status_reason) for t in run.task_runs]
    assert set(statuses(run).values()) == {"succeeded"}
    out = job / "output" / f"run-{run.run_id}"
    assert (out / "report.png").stat().st_size > 1000
    assert (out / "report.md").read_text().strip()
    bronze_rows = run.task_run("bronze").task_values["rows"]  # a for-each task: one count per country file
    assert [i.input for i in run.task_run("bronze").iterations] == [
        f"data/readings/{c}.csv" for c in ("DE", "DK", "ES", "FR", "NL", "NO")
    ]
    silver = run.task_run("silver")
    assert 0 < silver.task_values["rows"] < sum(bronze_rows), "silver drops duplicates and nulls"
    assert silver.attempts[0].parameters["bronze_rows"] == bronze_rows
    assert run.task_run("check_silver").status_reason == f"condition {silver.task_values['rows']} > 0 is true"


def test_example_repair_demo_repaired_with_parameter(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "repair_demo"
    shutil.copytree(
        EXAMPLES / "repair_demo", job, ignore=shutil.ignore_patterns("output", ".ipynb_checkpoints")
    )
    cli = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home)]
    first = subprocess.run([*cli, "run", str(job), "--json"], capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stderr
    doc = json.loads(first.stdout)
    tasks = {t["task_key"]: t for t in doc["task_runs"]}
    assert doc["status"] == "failed" and tasks["validate"]["status"] == "failed"
    assert (
        tasks["validate"]["error"]["ename"] == "ValueError"
        and tasks["validate"]["error"]["cell_index"] is not None
    )
    assert tasks["publish"]["status"] == "upstream_failed"
    assert Path(tasks["validate"]["executed_notebook"]).exists()

    dry = subprocess.run(
        [*cli, "repair", str(doc["run_id"]), "--dry-run", "--json", "-p", "threshold=0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(dry.stdout)["task_keys"] == ["validate", "publish"], dry.stderr
    fixed = subprocess.run(
        [*cli, "repair", str(doc["run_id"]), "-p", "threshold=0.5", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fixed.returncode == 0, fixed.stderr
    doc = json.loads(fixed.stdout)
    counts = {t["task_key"]: t["attempt_count"] for t in doc["task_runs"]}
    assert counts == {"extract": 1, "validate": 2, "publish": 1}
    assert doc["repairs"][0]["parameters"] == {"threshold": 0.5}

    shown = subprocess.run([*cli, "show", str(doc["run_id"])], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "succeeded" in shown.stdout
    listed = subprocess.run([*cli, "runs", "--json"], capture_output=True, text=True, timeout=60)
    assert json.loads(listed.stdout)["runs"][0]["status"] == "succeeded"


def test_cancel_from_another_process(make_notebook: Any, tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    make_notebook("job/sleepy.ipynb", "import time\ntime.sleep(60)", orchestrate={})
    cli = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home)]
    proc = subprocess.Popen([*cli, "run", str(job)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _running_attempts(home, "sleepy") == 1, 60, "sleepy to run")
        canceled = subprocess.run([*cli, "cancel", "1"], capture_output=True, text=True, timeout=60)
        assert canceled.returncode == 0 and "cancel of run 1 requested" in canceled.stdout
        assert proc.wait(30) == 1
    finally:
        proc.kill()
    run = OrchestrateService(home).get_run(1)
    assert run.status == RunStatus.canceled and statuses(run) == {"sleepy": "canceled"}
    again = subprocess.run([*cli, "cancel", "1"], capture_output=True, text=True, timeout=60)
    assert "already finished" in again.stdout
    wait_for(lambda: not kernels_of(home), 10, "no kernel left")
