"""Notifications end to end: real kernels, the CLI as a subprocess, and a local HTTP server as the webhook.

``jupyter orchestrate run`` wires a :class:`~jupyter_orchestrate.notifications.Notifier` to the service and
closes it (waiting up to 30 s for pending deliveries) before it exits, so once the process has exited every
delivery has been made or given up on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_orchestrate.store import Store
from tests.conftest import write_notebook
from tests.webhooks import HANG_SECONDS, Hooks

pytestmark = pytest.mark.kernel


def write_job_yaml(job: Path, **content: Any) -> None:
    job.mkdir(parents=True, exist_ok=True)
    (job / "job.yaml").write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def cli(
    home: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def run_cli(home: Path, job: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``run JOB --json`` as a subprocess: the process and the finished run's document (printed after the
    notifier was closed)."""
    proc = cli(home, "run", str(job), "--json")
    assert proc.stdout.strip(), proc.stderr
    return proc, json.loads(proc.stdout)


def show_run(home: Path, run_id: int) -> dict[str, Any]:
    """``show RUN --json`` as a subprocess."""
    shown = cli(home, "show", str(run_id), "--json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_failed_run_posts_one_failure_naming_task_cell_and_error(
    hooks: Hooks, tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "etl"
    write_job_yaml(
        job,
        notifications={
            "on_start": [{"webhook": hooks.url("/start")}],
            "on_success": [{"webhook": hooks.url("/ok")}],
            "on_failure": [{"webhook": hooks.url("/hook")}],
        },
    )
    # input cells: 0 markdown, 1 code, 2 code that raises -> "cell 3" (1-based), the 2nd code cell
    write_notebook(
        job / "load.ipynb",
        "# md # Load the rows",
        "rows = list(range(10))",
        "raise ValueError('bad row 7')",
        "print('never reached')",
        orchestrate={},
    )

    proc, run = run_cli(home, job)

    assert proc.returncode == 1, proc.stderr
    assert run["status"] == "failed"
    failures = hooks.bodies("/hook")
    assert len(failures) == 1, hooks.posts
    message = failures[0]
    assert message["event"] == "run_failed" and message["run_id"] == run["run_id"] and message["job"] == "etl"
    assert message["status"] == "failed"
    text = message["text"]
    assert "task load" in text and "cell 3" in text and "ValueError: bad row 7" in text, text
    assert "Run 1 of job etl failed" in text, text
    failure = message["failure"]
    assert failure["task_key"] == "load"
    assert failure["ename"] == "ValueError" and failure["evalue"] == "bad row 7"
    assert failure["cell_index"] == 2
    assert "raise ValueError('bad row 7')" in failure["cell_source"]
    # the same cell as the run's own record of the error
    error = next(t for t in run["task_runs"] if t["task_key"] == "load")["error"]
    assert error["cell_index"] == failure["cell_index"]
    started = hooks.bodies("/start")
    assert [b["event"] for b in started] == ["run_started"] and started[0][
        "text"
    ] == "Run 1 of job etl started."
    assert hooks.bodies("/ok") == []
    assert "url" not in message  # the CLI knows no Jupyter server URL


def test_successful_run_posts_on_success_only(hooks: Hooks, tmp_path: Path, home: Path) -> None:
    job = tmp_path / "report"
    write_job_yaml(
        job,
        notifications={
            "on_success": [{"webhook": hooks.url("/ok")}],
            "on_failure": [{"webhook": hooks.url("/hook")}],
        },
    )
    write_notebook(job / "a.ipynb", "x = 1", orchestrate={})
    write_notebook(job / "b.ipynb", "y = 2", orchestrate={"depends_on": ["a"]})

    proc, run = run_cli(home, job)

    assert proc.returncode == 0, proc.stderr
    assert run["status"] == "succeeded"
    successes = hooks.bodies("/ok")
    assert len(successes) == 1, hooks.posts
    message = successes[0]
    assert message["event"] == "run_succeeded" and message["status"] == "succeeded" and message["run_id"] == 1
    assert message["text"].startswith("Run 1 of job report succeeded"), message["text"]
    assert "failure" not in message
    assert hooks.bodies("/hook") == []


def test_a_hanging_webhook_does_not_delay_the_run(hooks: Hooks, tmp_path: Path, home: Path) -> None:
    """Five hanging job on_start destinations and five task on_start ones: a notifier that delivered on the
    run's thread would add at least 10 s (10 tries of 1 s) to the run. The run is compared with the same
    notebook run without notifications just before, so that a busy machine slows both alike."""
    control = tmp_path / "control"
    write_notebook(control / "quick.ipynb", "x = 1", orchestrate={})
    assert cli(home, "run", str(control)).returncode == 0
    control_seconds = show_run(home, 1)["duration_seconds"]
    job = tmp_path / "slowhook"
    hanging = [{"webhook": hooks.url(f"/hang/{n}"), "timeout_seconds": 1, "retries": 0} for n in range(5)]
    write_job_yaml(
        job,
        notifications={
            "on_start": hanging,
            "on_success": [
                {"webhook": hooks.url("/hang/success"), "timeout_seconds": 1, "retries": 0},
                {"webhook": hooks.url("/ok")},
            ],
        },
    )
    write_notebook(job / "quick.ipynb", "x = 1", orchestrate={"notifications": {"on_start": hanging}})

    started = time.monotonic()
    proc = cli(home, "run", str(job))
    process_seconds = time.monotonic() - started
    run = show_run(home, 2)

    assert proc.returncode == 0, proc.stderr
    assert run["status"] == "succeeded"
    assert run["duration_seconds"] < control_seconds + 6, (
        f"the run took {run['duration_seconds']} s, {control_seconds} s without notifications: they delayed it"
    )
    # every delivery was tried (and given up after its 1 s timeout) before the process exited
    hung = [p for p in hooks.paths() if p.startswith("/hang")]
    assert sorted(hung) == sorted([f"/hang/{n}" for n in range(5)] * 2 + ["/hang/success"]), hung
    assert [b["event"] for b in hooks.bodies("/ok")] == ["run_succeeded"]
    assert process_seconds < HANG_SECONDS + 10, f"the CLI took {process_seconds:.1f} s to exit"


def test_task_level_on_failure_fires_for_that_task_after_its_last_retry(
    hooks: Hooks, tmp_path: Path, home: Path
) -> None:
    job = tmp_path / "tasks"
    write_job_yaml(job, description="no job-level notifications")
    write_notebook(
        job / "extract.ipynb",
        "rows = 7",
        orchestrate={
            "notifications": {
                "on_success": [{"webhook": hooks.url("/extract/ok")}],
                "on_failure": [{"webhook": hooks.url("/extract/failed")}],
            }
        },
    )
    write_notebook(
        job / "load.ipynb",
        "n = 7",
        "raise ValueError(f'bad row {n}')",
        orchestrate={
            "depends_on": ["extract"],
            "max_retries": 1,
            "notifications": {"on_failure": [{"webhook": hooks.url("/load/failed")}]},
        },
    )

    proc, run = run_cli(home, job)

    assert proc.returncode == 1, proc.stderr
    load = next(t for t in run["task_runs"] if t["task_key"] == "load")
    assert load["status"] == "failed" and load["attempt_count"] == 2
    failed = hooks.bodies("/load/failed")
    assert len(failed) == 1, hooks.posts  # not for the first attempt, which was retried
    message = failed[0]
    assert (
        message["event"] == "task_failed" and message["task_key"] == "load" and message["status"] == "failed"
    )
    assert message["text"].startswith(
        "Task load of run 1 of job tasks failed in cell 2: ValueError: bad row 7"
    ), message["text"]
    assert message["failure"]["cell_index"] == 1 and message["failure"]["ename"] == "ValueError"
    assert message["failure"]["evalue"] == "bad row 7"
    assert [b["event"] for b in hooks.bodies("/extract/ok")] == ["task_succeeded"]
    assert hooks.bodies("/extract/failed") == []
    assert sorted(set(hooks.paths())) == ["/extract/ok", "/load/failed"]


def test_a_bad_smtp_setting_is_a_clean_usage_error_before_any_run(tmp_path: Path, home: Path) -> None:
    job = tmp_path / "mailer"
    write_job_yaml(job, notifications={"on_failure": [{"email": ["team@example.com"]}]})
    write_notebook(job / "a.ipynb", "x = 1", orchestrate={})
    env = {**os.environ, "JUPYTER_ORCHESTRATE_SMTP_HOST": "127.0.0.1", "JUPYTER_ORCHESTRATE_SMTP_PORT": "abc"}

    proc = cli(home, "run", str(job), env=env)

    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and "JUPYTER_ORCHESTRATE_SMTP_PORT must be an integer" in proc.stderr, (
        proc.stderr
    )
    assert Store(home).list_runs() == [], "no run is recorded for a command that cannot notify"
