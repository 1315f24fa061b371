"""The dask executor on a real ``distributed`` cluster: a ``dask scheduler`` process and ``dask worker``
processes on 127.0.0.1 (each with a working directory of its own, under the test's folder, not the state home),
started by the tests. The same job runs on it as on the local executor and reports the same things."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_orchestrate.executors.base import TaskExecutor
from jupyter_orchestrate.models import RunStatus, TaskRunStatus
from jupyter_orchestrate.service import OrchestrateService
from tests.conftest import write_notebook
from tests.test_e2e import EXAMPLES, wait_for
from tests.test_secrets_e2e import secret_env  # noqa: F401 - a fixture

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.kernel
BIN = Path(sys.executable).parent
WORKER_OWN = "the-workers-own-api-key-5150"


class Cluster:
    """A scheduler and workers in processes of their own; ``add_worker`` starts another."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.processes: list[subprocess.Popen[bytes]] = []
        self._spawn(
            "scheduler",
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
            "--scheduler-file",
        )
        wait_for(self.scheduler_file.exists, 60, "the Dask scheduler")
        self.address: str = json.loads(self.scheduler_file.read_text())["address"]
        self.workers = 0

    def _spawn(self, name: str, command: list[str], *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - open while the process runs
        process = subprocess.Popen(
            [*command, *extra, str(self.scheduler_file)] if extra else command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            env={
                **os.environ,
                "JO_TEST_OWN_API_KEY": WORKER_OWN,
            },  # a worker's own secret, not the orchestrator's
        )
        self.processes.append(process)
        return process

    def add_worker(self, *args: str) -> str:
        """Start a worker (``--nthreads 1``, its own folder); returns its name once the scheduler has it."""
        self.workers += 1
        name = f"worker-{self.workers}"
        workdir = self.folder / name
        workdir.mkdir()
        command = [str(BIN / "dask"), "worker", "--nthreads", "1", "--name", name, "--no-dashboard"]
        command += ["--local-directory", str(workdir), "--host", "127.0.0.1", *args]
        self._spawn(name, [*command, "--scheduler-file", str(self.scheduler_file)])
        with distributed.Client(self.address, timeout=30) as client:
            wait_for(
                lambda: name in {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()},
                60,
                name,
            )
        return name

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        c.add_worker()
        c.add_worker()
        yield c
    finally:
        c.close()


def remote_kernels(cluster: Cluster) -> list[psutil.Process]:
    """Kernel processes started on the cluster's workers (their context file is in a worker's folder)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "ipykernel_launcher" not in " ".join(process.info["cmdline"] or []):
                continue
            if process.environ().get("JUPYTER_ORCHESTRATE_CONTEXT", "").startswith(str(cluster.folder)):
                found.append(process)
        except psutil.Error:
            continue
    return found


def execute(home: Path, job: Path, executor: TaskExecutor) -> Any:
    service = OrchestrateService(home)
    runner = service.new_run(job, executor=executor)
    try:
        runner.execute()
    finally:
        executor.close()
    return service.get_run(runner.run_id)


def dask_executor(cluster: Cluster) -> TaskExecutor:
    from jupyter_orchestrate.executors.dask_executor import DaskExecutor

    return DaskExecutor(cluster.address)


def test_the_example_job_succeeds_on_the_cluster(tmp_path: Path, home: Path, cluster: Cluster) -> None:
    job = tmp_path / "green_energy"
    shutil.copytree(
        EXAMPLES / "green_energy", job, ignore=shutil.ignore_patterns("output", ".ipynb_checkpoints")
    )
    run = execute(home, job, dask_executor(cluster))
    assert run.status == RunStatus.succeeded, [(t.task_key, t.status, t.status_reason) for t in run.task_runs]
    out = job / "output" / f"run-{run.run_id}"
    assert (out / "report.png").stat().st_size > 1000
    assert (out / "report.md").read_text().strip()
    silver = run.task_run("silver")
    assert 0 < silver.task_values["rows"] < sum(run.task_run("bronze").task_values["rows"])
    bronze = run.task_run("bronze").iterations
    notebook_runs = [t for t in run.task_runs if t.notebook and not t.iterations] + bronze
    for task_run in notebook_runs:  # every notebook execution ran on a worker (the condition task on none)
        attempt = task_run.last_attempt
        assert attempt.environment["dask_worker"].startswith("tcp://127.0.0.1:"), attempt.environment
        assert attempt.environment["host"]
        assert attempt.cells_completed == attempt.cells_total > 0  # live progress reached the orchestrator
        executed = json.loads(Path(attempt.notebook_path).read_text())  # written into the state home
        assert executed["cells"][-1].get("outputs") is not None
        assert Path(attempt.notebook_path).is_relative_to(home)
    assert not list(home.rglob("*.context.json")), "the run context travels with the task, not through files"
    store = OrchestrateService(home).store
    for task_run in notebook_runs:  # every code cell's timing arrived, through the queue or with the result
        attempt = task_run.last_attempt
        timings = store.cell_timings(run.run_id, task_run.task_key, attempt.attempt_number)
        assert [t.cell_number for t in timings] == list(range(1, attempt.cells_total + 1)), task_run.task_key
        assert attempt.kernel_ready_time is not None
    with distributed.Client(cluster.address, timeout=30) as client:
        left = client.run_on_scheduler(
            lambda dask_scheduler: [
                name
                for name in [
                    *dask_scheduler.extensions["events"]._events,
                    *dask_scheduler.extensions["variables"].variables,
                ]
                if str(name).startswith("orchestrate-")
            ]
        )
    assert left == [], "the scheduler keeps no event or variable of finished attempts"
    assert not remote_kernels(cluster)


@pytest.mark.parametrize("executor_name", ["local", "dask"])
def test_a_failing_cell_is_reported_the_same_on_both_executors(
    tmp_path: Path, home: Path, cluster: Cluster, executor_name: str
) -> None:
    from jupyter_orchestrate.executors.local import LocalExecutor

    job = tmp_path / "job"
    write_notebook(
        job / "fails.ipynb",
        "# md # Fails",
        "x = 1",
        "print('before')",
        "raise KeyError('missing')",
        orchestrate={},
    )
    write_notebook(job / "after.ipynb", "print(1)", orchestrate={"depends_on": ["fails"]})
    executor = LocalExecutor() if executor_name == "local" else dask_executor(cluster)
    run = execute(home, job, executor)
    fails = run.task_run("fails")
    error = fails.last_attempt.error
    assert (fails.status, error.kind, error.ename, error.cell_index) == (
        TaskRunStatus.failed,
        "cell_error",
        "KeyError",
        3,
    )
    assert error.evalue == "'missing'" and error.cell_source == "raise KeyError('missing')"
    assert run.task_run("after").status == TaskRunStatus.upstream_failed
    assert (
        "before" in Path(fails.last_attempt.log_path).read_text()
        or "before" in Path(fails.last_attempt.notebook_path).read_text()
    )


def test_retry_and_repair_on_the_cluster(tmp_path: Path, home: Path, cluster: Cluster) -> None:
    job = tmp_path / "job"
    flag = "import os\nn = len(open('tries.txt').read()) if os.path.exists('tries.txt') else 0\nopen('tries.txt', 'a').write('x')"
    write_notebook(
        job / "flaky.ipynb", flag, "assert n >= 1, 'first try fails'", orchestrate={"max_retries": 1}
    )
    write_notebook(job / "needs_fix.ipynb", "import os\nassert os.path.exists('fixed.flag')", orchestrate={})
    run = execute(home, job, dask_executor(cluster))
    assert [a.status.value for a in run.task_run("flaky").attempts] == ["failed", "succeeded"]
    assert run.task_run("needs_fix").status == TaskRunStatus.failed
    (job / "fixed.flag").write_text("")
    service = OrchestrateService(home)
    runner = service.new_repair(run.run_id, executor=dask_executor(cluster))
    try:
        runner.execute()
    finally:
        runner.executor.close()
    repaired = service.get_run(run.run_id)
    assert repaired.status == RunStatus.succeeded
    assert len(repaired.task_run("flaky").attempts) == 2, "repair re-executes only what failed"


def test_a_timeout_and_a_cancel_leave_no_kernel_on_the_workers(
    tmp_path: Path, home: Path, cluster: Cluster
) -> None:
    job = tmp_path / "job"
    write_notebook(job / "slow.ipynb", "import time", "time.sleep(600)", orchestrate={"timeout_seconds": 15})
    run = execute(home, job, dask_executor(cluster))
    slow = run.task_run("slow")
    assert slow.status == TaskRunStatus.timed_out
    assert (slow.last_attempt.error.kind, slow.last_attempt.error.cell_index) == ("timeout", 1)
    executed = json.loads(Path(slow.last_attempt.notebook_path).read_text())  # what ran until the timeout
    assert executed["cells"][-1]["metadata"]["papermill"]["status"] == "running"
    wait_for(lambda: not remote_kernels(cluster), 20, "no kernel left on the workers after the timeout")

    write_notebook(job / "slow.ipynb", "import time", "time.sleep(600)", orchestrate={})
    command = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job)]
    proc = subprocess.Popen(
        [*command, "--executor", "dask", "--dask-scheduler", cluster.address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: remote_kernels(cluster), 90, "the kernel on a worker")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert OrchestrateService(home).get_run(2).status == RunStatus.canceled
    wait_for(lambda: not remote_kernels(cluster), 20, "no kernel left on the workers after the cancel")


def test_a_worker_killed_mid_attempt_fails_it_worker_died_and_the_retry_succeeds(
    tmp_path: Path, home: Path, cluster: Cluster
) -> None:
    job = tmp_path / "job"
    wait = "import os, time\nwhile not os.path.exists('go.flag'):\n    time.sleep(0.2)"
    write_notebook(job / "long.ipynb", wait, orchestrate={"max_retries": 1})
    service = OrchestrateService(home)
    runner = service.new_run(job, executor=dask_executor(cluster))
    thread = threading.Thread(target=runner.execute)
    thread.start()
    try:
        wait_for(lambda: remote_kernels(cluster), 90, "the kernel on a worker")
        (kernel,) = remote_kernels(cluster)
        with distributed.Client(cluster.address, timeout=30) as client:
            worker_pids = set(client.run(os.getpid).values())
        (dask_worker,) = [p for p in kernel.parents() if p.pid in worker_pids]
        dask_worker.kill()  # SIGKILL: no goodbye to the scheduler
        wait_for(
            lambda: not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE, 30, "the kernel to go"
        )
        wait_for(lambda: len(service.get_run(runner.run_id).task_run("long").attempts) == 2, 120, "the retry")
        (job / "go.flag").write_text("")
        thread.join(180)
    finally:
        (job / "go.flag").write_text("")
        thread.join(60)
        runner.executor.close()
    long = service.get_run(runner.run_id).task_run("long")
    first, second = long.attempts
    assert first.error.ename == "WorkerDied", first.error
    assert "Dask worker" in first.error.evalue
    assert second.status.value == "succeeded"
    assert second.environment["dask_worker"] != first.environment.get("dask_worker")


def test_a_task_asking_for_a_gpu_waits_for_a_worker_that_has_one(
    tmp_path: Path, home: Path, cluster: Cluster
) -> None:
    job = tmp_path / "job"
    write_notebook(job / "train.ipynb", "print('on the GPU node')", orchestrate={})
    (job / "job.yaml").write_text("tasks:\n  train:\n    resources: {GPU: 1}\n")
    service = OrchestrateService(home)
    runner = service.new_run(job, executor=dask_executor(cluster))
    thread = threading.Thread(target=runner.execute)
    thread.start()
    try:
        time.sleep(4)
        assert not remote_kernels(cluster), "no worker has a GPU yet: nothing may start"
        gpu = cluster.add_worker("--resources", "GPU=1")
        thread.join(120)
    finally:
        thread.join(60)
        runner.executor.close()
    run = service.get_run(runner.run_id)
    assert run.status == RunStatus.succeeded
    with distributed.Client(cluster.address, timeout=30) as client:
        names = {a: w["name"] for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
    assert names[run.task_run("train").last_attempt.environment["dask_worker"]] == gpu


def test_bad_resources_name_the_file_and_field(tmp_path: Path, home: Path) -> None:
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.errors import ValidationError

    job = tmp_path / "job"
    write_notebook(job / "train.ipynb", "print(1)", orchestrate={})
    (job / "job.yaml").write_text("tasks:\n  train:\n    resources: {GPU: -1}\n")
    with pytest.raises(ValidationError) as refused:
        load_job(job)
    assert "job.yaml" in str(refused.value) and "resources" in str(refused.value), refused.value
    assert "positive" in str(refused.value)


def test_without_distributed_the_error_says_how_to_install_it(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", "print(1)", orchestrate={})
    script = (
        "import sys; sys.modules['distributed'] = None\n"
        "from jupyter_orchestrate.startup import entry\n"
        f"sys.argv = ['jupyter-orchestrate', '--home', {str(home)!r}, 'run', {str(job)!r}, '--executor', 'dask']\n"
        "entry()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert 'pip install "jupyter-orchestrate[dask]"' in result.stderr
    assert not (home / "orchestrate.db").exists() or not OrchestrateService(home).store.list_runs()


def test_the_job_yaml_executor_and_the_environment_variable_choose_the_scheduler(
    tmp_path: Path, home: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", "print(1)", orchestrate={})
    (job / "job.yaml").write_text("executor:\n  type: dask\n")
    env = {**os.environ, "JUPYTER_ORCHESTRATE_DASK_SCHEDULER": cluster.address}
    result = subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job), "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    (task_run,) = json.loads(result.stdout)["task_runs"]
    worker = task_run["attempts"][-1]["environment"]["dask_worker"]
    assert worker.startswith("tcp://127.0.0.1:")
    shown = subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "show", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"a ran on {socket.gethostname()} (Dask worker {worker})" in shown.stdout, shown.stdout


def test_a_job_folder_missing_on_the_worker_fails_the_attempt_with_a_clear_message(
    tmp_path: Path, cluster: Cluster
) -> None:
    from jupyter_orchestrate.executors.base import AttemptSpec
    from jupyter_orchestrate.executors.dask_remote import run_attempt

    missing = tmp_path / "checked-out-elsewhere"
    stem = tmp_path / "state" / "attempt-1"
    spec = AttemptSpec(
        run_id=1,
        task_key="a",
        attempt_number=1,
        input_path=str(missing / "a.ipynb"),
        output_path=f"{stem}.ipynb",
        log_path=f"{stem}.log",
        context_path=f"{stem}.context.json",
        values_path=f"{stem}.values.json",
        kernel_name="python3",
        cwd=str(missing),
    )
    payload = {
        "spec": spec,
        "notebook": b"{}",
        "parameters": {},
        "context": {},
        "attempt_id": "missing-folder",
        "queue": "orchestrate-test-messages",
        "stop": "orchestrate-stop-missing-folder",
        "alive": "orchestrate-test-alive",
    }
    with distributed.Client(cluster.address, timeout=30) as client:
        value = client.submit(run_attempt, payload, pure=False).result(timeout=60)
    error = value["result"].error
    assert (error.kind, error.ename) == ("launch_error", "JobFolderMissing")
    assert str(missing) in error.evalue and value["where"]["dask_worker"] in error.evalue
    assert "docs/scale-out.md" in error.evalue
    assert not (tmp_path / "state").exists(), "nothing of the state home is written on the worker"


@pytest.mark.usefixtures("secret_env")
def test_secrets_reach_neither_the_state_home_nor_the_workers_logs(
    tmp_path: Path, home: Path, cluster: Cluster
) -> None:
    from tests.test_secrets_e2e import (
        ENDINGS,
        SECRETS,
        assert_useful,
        leaks_in_home,
        leaks_in_text,
        secret_job,
    )

    secrets = (*SECRETS, WORKER_OWN)

    job = secret_job(tmp_path, "on_dask", {k: ENDINGS[k] for k in ("ok", "bad")})
    run = execute(home, job, dask_executor(cluster))
    assert {t.task_key: t.status.value for t in run.task_runs} == {"ok": "succeeded", "bad": "failed"}
    assert run.task_run("bad").attempts[-1].error.evalue == "failed with token *** and ***"
    for key in ("ok", "bad"):
        assert_useful(home, run, key)
    assert leaks_in_home(home, secrets) == []
    logs = "".join(p.read_text(errors="replace") for p in cluster.folder.glob("*.log"))
    assert leaks_in_text(logs, secrets) == []
    assert not [p for p in cluster.folder.rglob("*.context.json")], "the worker's attempt folder is removed"


def test_the_orchestrators_death_leaves_no_kernel_on_the_workers(
    tmp_path: Path, home: Path, cluster: Cluster
) -> None:
    from jupyter_orchestrate.executors.dask_remote import ORPHAN_SECONDS

    job = tmp_path / "job"
    write_notebook(job / "slow.ipynb", "import time", "time.sleep(600)", orchestrate={})
    command = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job)]
    proc = subprocess.Popen(
        [*command, "--dask-scheduler", cluster.address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: remote_kernels(cluster), 90, "the kernel on a worker")
        proc.kill()  # SIGKILL: no cancel reaches the cluster, only the heartbeat stops
        proc.wait(30)
        began = time.monotonic()
        wait_for(
            lambda: not remote_kernels(cluster),
            ORPHAN_SECONDS + 30,
            "the workers to kill the orphaned kernel",
        )
        assert time.monotonic() - began >= ORPHAN_SECONDS - 5, (
            "killed by the heartbeat's silence, not at once"
        )
    finally:
        proc.kill()


def test_a_task_no_worker_can_take_is_timed_out_without_waiting_for_it(
    tmp_path: Path, home: Path, cluster: Cluster
) -> None:
    from jupyter_orchestrate.executors.dask_executor import KILL_WAIT_SECONDS

    job = tmp_path / "job"
    write_notebook(job / "tpu.ipynb", "print('never')", orchestrate={"timeout_seconds": 3})
    (job / "job.yaml").write_text("tasks:\n  tpu:\n    resources: {TPU: 1}\n")
    run = execute(home, job, dask_executor(cluster))
    attempt = run.task_run("tpu").last_attempt
    assert (attempt.status.value, attempt.error.kind) == ("timed_out", "timeout")
    assert attempt.duration_seconds < KILL_WAIT_SECONDS, "a queued task is cancelled, not waited for"
    assert "dask_worker" not in attempt.environment


def test_resources_on_a_local_cluster_fail_at_once_saying_why(tmp_path: Path, home: Path) -> None:
    from jupyter_orchestrate.executors.dask_executor import DaskExecutor

    job = tmp_path / "job"
    write_notebook(job / "train.ipynb", "print(1)", orchestrate={})
    (job / "job.yaml").write_text("tasks:\n  train:\n    resources: {GPU: 1}\n")
    run = execute(home, job, DaskExecutor(n_workers=1))
    error = run.task_run("train").last_attempt.error
    assert (error.kind, error.ename) == ("launch_error", "ResourcesUnavailable")
    assert "GPU" in error.evalue and "--dask-scheduler" in error.evalue


def test_a_scheduler_alone_means_dask_and_resume_is_refused_on_dask(tmp_path: Path, home: Path) -> None:
    from jupyter_orchestrate.models import ExecutorSettings, ExecutorType

    assert ExecutorSettings.model_validate({"scheduler": "tcp://h:8786"}).type == ExecutorType.dask
    assert (
        ExecutorSettings.model_validate({"type": "local", "scheduler": "tcp://h:8786"}).type
        == ExecutorType.local
    )
    job = tmp_path / "job"
    write_notebook(job / "a.ipynb", "x = 1", "assert False, 'fails'", orchestrate={})
    base = [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home)]
    ran = subprocess.run([*base, "run", str(job)], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1, ran.stderr
    refused = subprocess.run(
        [*base, "repair", "1", "--resume", "--executor", "dask", "--dask-scheduler", "tcp://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stderr
    assert "--resume executes in a kernel kept on this machine" in refused.stderr
    assert OrchestrateService(home).get_run(1).repair_count == 0
