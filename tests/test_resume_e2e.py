"""Kept kernels and resume from the failed cell, end to end: real kernels, real keeper processes, the CLI in
processes of their own (a kept kernel must outlive the command that ran the attempt), a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest

from jupyter_orchestrate.engine import kept_kernels
from jupyter_orchestrate.errors import ConflictError
from jupyter_orchestrate.models import KeptKernelStatus, RunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import cli, process_gone, write_notebook
from tests.test_e2e import _running_attempts, execute, kernels_of, statuses, wait_for

pytestmark = pytest.mark.kernel

COUNTER = "open('counter.txt', 'a').write('ran\\n')"
FLAG = "import os\nassert os.path.exists('fixed.flag'), 'fixed.flag is missing'"
PUBLISH = "from jupyter_orchestrate import task_values\ntask_values.set('x', x + 1)"


def keepers_of(home: Path) -> list[psutil.Process]:
    """Live keeper processes of kept kernels of this state home."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "jupyter_orchestrate.executors.keeper" in cmdline and str(home) in cmdline:
            found.append(process)
    return found


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """compute: cell 0 counts its executions, cell 1 sets x = 41, cell 2 needs fixed.flag, cell 3 publishes
    x + 1; report reads the task value and writes it to report.txt."""
    folder = tmp_path / "job"
    write_notebook(folder / "compute.ipynb", COUNTER, "x = 41", FLAG, PUBLISH, orchestrate={})
    write_notebook(
        folder / "report.ipynb",
        "open('report.txt', 'a').write(f'{x}\\n')",
        parameters="x = 0",
        orchestrate={"depends_on": ["compute"], "parameters": {"x": "{{tasks.compute.values.x}}"}},
    )
    return folder


@pytest.fixture(autouse=True)
def nothing_left(home: Path) -> Iterator[None]:
    """Every test ends with no kernel and no keeper of its state home left alive."""
    yield
    deadline = time.monotonic() + 10  # a keeper sees its control file gone within a second or so
    while (left := kernels_of(home) + keepers_of(home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in left:
        process.kill()
    assert not left, f"processes of the test's state home were left alive: {left}"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def discard(home: Path, run_id: int = 1) -> None:
    OrchestrateService(home).discard_kept_kernels(run_id, "test cleanup")


def test_resume_from_the_failed_cell_keeps_state_and_continues_downstream(job: Path, home: Path) -> None:
    failed = cli(home, "run", str(job), "--keep-failed-kernels", "300")
    assert failed.returncode == 1, failed.stderr
    # the command that ran the attempt has exited; its kernel lives on, with a keeper, and is listed
    assert "jupyter console --existing" in failed.stdout
    assert "repair 1 --resume" in failed.stdout
    service = OrchestrateService(home)
    run = service.get_run(1)
    assert statuses(run) == {"compute": "failed", "report": "upstream_failed"}
    kept = run.task_run("compute").kept_kernel
    assert kept is not None and kept.cell_index == 2 and kept.attempt_number == 1
    assert psutil.pid_exists(kept.kernel_pid) and len(keepers_of(home)) == 1
    connection = Path(kept.connection_file)
    assert connection.parent == home / "kernels" and oct(connection.stat().st_mode & 0o777) == "0o600"
    assert json.loads(connection.read_text())["key"]  # what jupyter console --existing needs
    shown = json.loads(cli(home, "show", "1", "--json").stdout)
    assert (
        shown["task_runs"][0]["kept_kernel"]["console_command"] == f"jupyter console --existing {connection}"
    )
    assert "key" not in json.dumps(shown["task_runs"][0]["kept_kernel"]).replace("kernel", "")

    (job / "fixed.flag").touch()
    resumed = cli(home, "repair", "1", "--resume")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    run = OrchestrateService(home).get_run(1)
    assert run.status == RunStatus.succeeded
    compute = run.task_run("compute")
    assert lines(job / "counter.txt") == ["ran"]  # cell 0 ran once: the resume started at the failed cell
    assert compute.task_values == {"x": 42}  # x = 41 survived in the kernel
    assert lines(job / "report.txt") == ["42"] and len(run.task_run("report").attempts) == 1
    second = compute.attempts[1]
    assert second.resumed_from_cell == 2 and second.reused_cells == 2 and second.repair_number == 1
    assert run.repairs[-1].resumed_from == {"compute": 2}
    executed = nbformat.read(second.notebook_path, as_version=4)
    reused = [
        c for c in executed.cells if c.metadata.get("jupyter_orchestrate", {}).get("reused_from_attempt")
    ]
    assert [c.source for c in reused] == [COUNTER, "x = 41"] and reused[0].execution_count == 1
    # the same kernel: its execution counter goes on after the failed execution 3
    assert [c.execution_count for c in executed.cells[2:]] == [4, 5]
    # after a successful resume the kernel is shut down and its record ended
    assert compute.kept_kernel is None
    wait_for(lambda: not kernels_of(home) and not keepers_of(home), 10, "the kernel and keeper to end")
    assert not connection.exists()
    records = OrchestrateService(home).store.kept_kernels(1, live=False)
    assert [(r.status, r.end_reason) for r in records] == [
        (KeptKernelStatus.ended, "resumed by attempt 2 (succeeded); shut down")
    ]


def test_resume_runs_the_failing_cell_as_edited_on_disk(job: Path, home: Path) -> None:
    assert cli(home, "run", str(job), "--keep-failed-kernels", "300").returncode == 1
    nb = nbformat.read(job / "compute.ipynb", as_version=4)
    nb.cells[2].source = "x = x * 1  # no flag needed any more"
    nb.cells.append(nbformat.v4.new_code_cell("print('a cell added after the failed one')"))
    nbformat.write(nb, job / "compute.ipynb")
    resumed = cli(home, "repair", "1", "--resume", "--task", "compute")
    assert resumed.returncode == 0, resumed.stderr
    run = OrchestrateService(home).get_run(1)
    assert run.task_run("compute").task_values == {"x": 42} and lines(job / "counter.txt") == ["ran"]
    executed = nbformat.read(run.task_run("compute").attempts[1].notebook_path, as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "a cell added after the failed one\n"


def test_a_resume_that_fails_again_keeps_the_kernel_for_the_next_resume(job: Path, home: Path) -> None:
    assert cli(home, "run", str(job), "--keep-failed-kernels", "300").returncode == 1
    again = cli(home, "repair", "1", "--resume")
    assert again.returncode == 1
    run = OrchestrateService(home).get_run(1)
    kept = run.task_run("compute").kept_kernel
    assert kept is not None and kept.attempt_number == 2 and kept.cell_index == 2  # kept again
    assert run.task_run("compute").attempts[1].error.evalue == "fixed.flag is missing"
    (job / "fixed.flag").touch()
    assert cli(home, "repair", "1", "--resume").returncode == 0
    run = OrchestrateService(home).get_run(1)
    assert run.status == RunStatus.succeeded and lines(job / "counter.txt") == ["ran"]
    assert [a.resumed_from_cell for a in run.task_run("compute").attempts] == [None, 2, 2]
    assert run.task_run("compute").task_values == {"x": 42}


def test_resume_applies_parameter_overrides_in_an_injected_cell(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "params"
    write_notebook(
        job / "t.ipynb",
        COUNTER,
        "y = scale * 10",
        FLAG,
        "from jupyter_orchestrate import task_values\ntask_values.set('y', y * factor)",
        parameters="scale = 1\nfactor = 1",
        orchestrate={},
    )
    service = OrchestrateService(home)
    execute(service.new_run(job, keep_failed_kernels_seconds=300))
    (job / "fixed.flag").touch()
    execute(service.new_repair(1, resume=True, parameters={"factor": "3"}))
    run = service.get_run(1)
    assert run.status == RunStatus.succeeded
    assert run.task_run("t").task_values == {"y": 30}  # y from the kept state, factor from the resume
    assert run.repairs[-1].parameters == {"factor": 3}
    executed = nbformat.read(run.task_run("t").attempts[1].notebook_path, as_version=4)
    injected = [
        c for c in executed.cells if c.metadata.get("jupyter_orchestrate", {}).get("resume_parameters")
    ]
    assert len(injected) == 1 and "factor = 3" in injected[0].source


def test_resume_is_refused_when_earlier_cells_changed_unless_forced(job: Path, home: Path) -> None:
    assert cli(home, "run", str(job), "--keep-failed-kernels", "300").returncode == 1
    nb = nbformat.read(job / "compute.ipynb", as_version=4)
    nb.cells[1].source = "x = 1000"
    nbformat.write(nb, job / "compute.ipynb")
    (job / "fixed.flag").touch()
    refused = cli(home, "repair", "1", "--resume")
    assert refused.returncode == 2
    assert "cell 2 before the failed cell 3 changed since attempt 1" in refused.stderr
    assert "--force" in refused.stderr and "jupyter orchestrate repair 1" in refused.stderr
    run = OrchestrateService(home).get_run(1)
    assert run.repair_count == 0 and run.task_run("compute").kept_kernel is not None  # nothing changed
    forced = cli(home, "repair", "1", "--resume", "--force")
    assert forced.returncode == 0, forced.stderr
    # the kernel's x is the one cell 2 set when it ran (41), not the edited source's
    assert OrchestrateService(home).get_run(1).task_run("compute").task_values == {"x": 42}


def test_resume_is_refused_when_the_kernel_was_reaped_or_the_task_timed_out(
    tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "two"
    write_notebook(job / "fails.ipynb", "x = 41", FLAG, orchestrate={})
    write_notebook(job / "slow.ipynb", "import time\ntime.sleep(60)", orchestrate={"timeout_seconds": 1})
    service = OrchestrateService(home)
    execute(service.new_run(job, keep_failed_kernels_seconds=300))
    run = service.get_run(1)
    assert statuses(run) == {"fails": "failed", "slow": "timed_out"}
    assert run.task_run("slow").kept_kernel is None  # a timed-out attempt's kernel is killed
    with pytest.raises(ConflictError, match="task slow: it failed by timeout"):
        service.new_repair(1, resume=True, task_keys=["slow"])
    # canceling the finished run reaps its kept kernels
    assert service.cancel(1) is False
    assert service.get_run(1).task_run("fails").kept_kernel is None
    with pytest.raises(ConflictError) as refused:
        service.new_repair(1, resume=True)
    message = str(refused.value)
    assert "task fails: its kernel is gone (reaped: cancel of the finished run)" in message
    assert "A repair re-executes from the top: jupyter orchestrate repair 1" in message
    exit_code = cli(home, "repair", "1", "--resume", "--task", "fails")
    assert exit_code.returncode == 2 and "its kernel is gone" in exit_code.stderr
    assert service.get_run(1).repair_count == 0


def test_a_run_without_kept_kernels_says_how_to_keep_them(job: Path, home: Path) -> None:
    assert cli(home, "run", str(job)).returncode == 1  # the CLI's default: 0, nothing kept
    assert not kernels_of(home) and not keepers_of(home)
    refused = cli(home, "repair", "1", "--resume")
    assert refused.returncode == 2
    assert "no kernel was kept for it" in refused.stderr and "--keep-failed-kernels" in refused.stderr


def test_kept_kernels_are_reaped_at_expiry_without_any_orchestrator(job: Path, home: Path) -> None:
    assert cli(home, "run", str(job), "--keep-failed-kernels", "2").returncode == 1
    # on a busy machine the 2 s may be over before the CLI has exited: the record, live or ended, is what counts
    (kept,) = OrchestrateService(home).store.kept_kernels(1, live=False)
    # no orchestrator process runs now: the keeper alone ends the kernel at its expiry
    wait_for(lambda: not kernels_of(home) and not keepers_of(home), 30, "the keeper to end the kernel")
    assert not Path(kept.connection_file).exists()
    run = OrchestrateService(home).get_run(1)  # reading the run reconciles the record
    assert run.task_run("compute").kept_kernel is None
    ended = OrchestrateService(home).store.kept_kernels(1, live=False)[0]
    assert ended.end_reason is not None and ended.end_reason.startswith("expired at ")


def _kept_records(home: Path) -> int:
    """Kept kernels recorded in the state home's database so far (0 before it exists)."""
    try:
        with sqlite3.connect(home / "orchestrate.db") as conn:
            return int(conn.execute("select count(*) from kept_kernels where status = 'kept'").fetchone()[0])
    except sqlite3.Error:
        return 0


def start_failing_and_slow(tmp_path: Path, home: Path) -> subprocess.Popen[str]:
    """``run --keep-failed-kernels 300`` of a job whose task ``fails`` fails in a cell while ``slow`` sleeps,
    in a process of its own; returns once the failed task's kernel is kept and ``slow`` executes."""
    job = tmp_path / "failing_and_slow"
    write_notebook(job / "fails.ipynb", "x = 41", FLAG, orchestrate={})
    write_notebook(job / "slow.ipynb", "import time\ntime.sleep(120)", orchestrate={})
    command = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job)]
    # stderr goes to a file: a pipe nobody reads until the end would block the CLI once 64 KB are written
    err = open(tmp_path / "run.stderr", "w+", encoding="utf-8")  # noqa: SIM115 - the caller's process owns it
    proc = subprocess.Popen(
        [*command, "--keep-failed-kernels", "300"], stdout=subprocess.DEVNULL, stderr=err, text=True
    )
    try:
        wait_for(
            lambda: _kept_records(home) == 1 and _running_attempts(home, "slow") == 1, 90, "a kept kernel"
        )
    except AssertionError as exc:
        proc.kill()
        proc.wait()
        err.seek(0)
        shown = cli(home, "show", "1")
        raise AssertionError(
            f"{exc}\nthe run's stderr:\n{err.read()[-4000:]}\nshow 1:\n{shown.stdout}"
        ) from exc
    except BaseException:
        proc.kill()
        raise
    return proc


def test_kept_kernels_are_reaped_on_cancel_of_a_running_run(tmp_path: Path, home: Path) -> None:
    proc = start_failing_and_slow(tmp_path, home)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    wait_for(lambda: not kernels_of(home) and not keepers_of(home), 15, "no kernel left after the cancel")
    ended = OrchestrateService(home).store.kept_kernels(1, live=False)
    assert [k.end_reason for k in ended] == ["reaped: the run was canceled (canceled by SIGINT)"]


def test_kept_kernels_are_reaped_by_crash_recovery_after_sigkill(tmp_path: Path, home: Path) -> None:
    proc = start_failing_and_slow(tmp_path, home)
    try:
        proc.kill()
        proc.wait(10)
    finally:
        proc.kill()
    service = OrchestrateService(home)  # the next start recovers the run and reaps what it kept
    assert service.recovered == [1]
    wait_for(lambda: not kernels_of(home) and not keepers_of(home), 15, "no kernel left after recovery")
    ended = service.store.kept_kernels(1, live=False)
    assert len(ended) == 1 and ended[0].end_reason is not None and ended[0].end_reason.startswith("reaped: ")


def test_the_bound_on_kept_kernels_reaps_the_oldest_first(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "bound"
    write_notebook(job / "fails.ipynb", "x = 41", FLAG, orchestrate={})
    monkeypatch.setenv(kept_kernels.MAX_KEPT_KERNELS_ENV, "2")
    service = OrchestrateService(home)
    for _ in range(3):
        execute(service.new_run(job, keep_failed_kernels_seconds=300))
    alive = kept_kernels.reconcile(service.store)
    assert [k.run_id for k in alive] == [2, 3]
    oldest = service.store.kept_kernels(1, live=False)[0]
    assert (
        oldest.end_reason
        == f"reaped: more than 2 kernels were kept at once ({kept_kernels.MAX_KEPT_KERNELS_ENV})"
    )
    assert process_gone(oldest.kernel_pid)
    for run_id in (2, 3):
        discard(home, run_id)


def test_a_normal_repair_reaps_the_kept_kernel_and_starts_from_the_top(job: Path, home: Path) -> None:
    service = OrchestrateService(home)
    execute(service.new_run(job, keep_failed_kernels_seconds=300))
    pid = service.get_run(1).task_run("compute").kept_kernel.kernel_pid  # type: ignore[union-attr]
    (job / "fixed.flag").touch()
    execute(service.new_repair(1))
    run = service.get_run(1)
    assert run.status == RunStatus.succeeded and lines(job / "counter.txt") == ["ran", "ran"]
    wait_for(
        lambda: process_gone(pid),
        10,
        "the old kernel to end",
    )
    ended = service.store.kept_kernels(1, live=False)[0]
    assert ended.end_reason == "reaped: task compute executes again from the top in attempt 2"


def test_secrets_stay_out_of_a_resumed_attempt(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-resume-value"
    monkeypatch.setenv("RESUME_TOKEN", secret)
    job = tmp_path / "secret"
    write_notebook(
        job / "t.ipynb",
        "import os\ntoken = os.environ['RESUME_TOKEN']",
        FLAG,
        "print('token is', token)\nfrom jupyter_orchestrate import task_values\ntask_values.set('t', token)",
        orchestrate={
            "environment": {"env": {"RESUME_TOKEN": "${RESUME_TOKEN}"}, "secret_env": ["RESUME_TOKEN"]}
        },
    )
    service = OrchestrateService(home)
    execute(service.new_run(job, keep_failed_kernels_seconds=300))
    (job / "fixed.flag").touch()
    execute(service.new_repair(1, resume=True))
    run = service.get_run(1)
    assert run.status == RunStatus.succeeded and run.task_run("t").task_values == {"t": "***"}
    attempt = run.task_run("t").attempts[1]
    for path in (attempt.notebook_path, attempt.log_path, str(home / "orchestrate.db")):
        assert secret.encode() not in Path(path).read_bytes(), path
    assert "token is ***" in Path(attempt.notebook_path).read_text()
    assert not any(secret in p.name for p in (home / "runs").rglob("*"))
    assert not list(Path(os.path.dirname(attempt.notebook_path)).glob("*.resume-input.ipynb"))


def test_keeper_ends_a_kernel_whose_resume_owner_died(job: Path, home: Path) -> None:
    """A resume takes the kernel over; if its worker dies without handing it back, the keeper kills it."""
    from jupyter_orchestrate.executors import keeper

    assert cli(home, "run", str(job), "--keep-failed-kernels", "300").returncode == 1
    kept = OrchestrateService(home).store.kept_kernels(1)[0]
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keeper.take_over(kept_kernels.control_file(kept), owner.pid, psutil.Process(owner.pid).create_time())
        time.sleep(1.5)
        assert psutil.pid_exists(kept.kernel_pid)  # in use: not killed although the owner could be slow
        owner.kill()
        owner.wait(5)
        wait_for(lambda: not kernels_of(home) and not keepers_of(home), 15, "the keeper to end the kernel")
    finally:
        owner.kill()


def test_the_widget_resumes_from_the_failed_cell_and_a_console_sees_the_kernel_state(
    job: Path, home: Path
) -> None:
    """The Python API and its monitor: "Resume from cell 3" appears while the kernel is kept; a client on the
    connection file (what ``jupyter console --existing`` does) sees the variables and the stored exception
    that ``%debug`` inspects."""
    from jupyter_client import BlockingKernelClient

    from jupyter_orchestrate.api import Job
    from jupyter_orchestrate.widgets import RunMonitor

    run = Job.load(job, home=home).run(keep_failed_kernels_seconds=300)
    assert run.status == "failed"
    kept = run.model.task_run("compute").kept_kernel
    assert kept is not None
    client = BlockingKernelClient(connection_file=kept.connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=30)
        seen: list[str] = []
        client.execute_interactive(
            "import sys; print(x, repr(sys.last_value))",
            output_hook=lambda m: seen.append(m["content"].get("text", "")),
            timeout=30,
        )
    finally:
        client.stop_channels()
    assert "".join(seen).strip() == "41 AssertionError('fixed.flag is missing')"

    monitor = RunMonitor(run, live=False)
    assert (
        monitor.resume_button.layout.display == ""
        and monitor.resume_button.description == "Resume from cell 3"
    )
    (job / "fixed.flag").touch()
    monitor.resume_button.click()
    assert run.wait(timeout=120) == "succeeded"
    monitor.refresh()
    assert monitor.resume_button.layout.display == "none"
    assert run.model.task_run("compute").task_values == {"x": 42} and lines(job / "counter.txt") == ["ran"]
    monitor.close()
