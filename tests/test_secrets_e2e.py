"""Secrets never leave a task: real kernels, real papermill, real SQLite, a local webhook receiver.

A task gets secrets through ``environment.env`` (``${NAME}`` from the orchestrator's environment), prints them
every way a notebook can (print, repr, a dict, stderr, a shell command writing to the kernel's own stdout, rich
display, a cell result), publishes them as a task value and raises an exception holding one. For each ending
(success, cell failure, timeout, cancel, SIGKILL of the orchestrator then recovery) every file under the state
home (the database also as an SQL dump), the run document, the runner's event payloads and the webhook bodies
are searched for every spelling of every secret: none may be found, and ``***`` must be where they were.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_orchestrate.environments import redact, redact_value
from jupyter_orchestrate.executors.worker import _RedactingLog
from jupyter_orchestrate.models import RunStatus
from jupyter_orchestrate.notifications import Notifier
from jupyter_orchestrate.service import OrchestrateService, run_document
from tests.conftest import REPO, write_notebook
from tests.test_e2e import kernels_of
from tests.webhooks import Hooks

HARD = 'p@ss"w\\rd-Ünï'  # a quote, a backslash and non-ASCII: escaped differently in JSON, repr and SQL
PLAIN = "plain-s3cret-4711"
OWN = "own-api-key-value-0815"  # the orchestrator's own variable, secret by name, never given to the task
SECRETS = (HARD, PLAIN, OWN)
DEADLINE = 240.0  # generous: the machine is shared


def spellings(secret: str) -> set[str]:
    """Every way the secret may be written down: raw, inside JSON strings (ASCII-escaped or not), repr."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


def leaks_in_text(text: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    return [form for secret in secrets for form in spellings(secret) if form in text]


def leaks_in_home(home: Path, secrets: tuple[str, ...] = SECRETS) -> list[tuple[str, str]]:
    """(file, spelling) for every secret spelling found in any file under ``home`` or in an SQL dump of its DBs."""
    found = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for secret in secrets:
            for form in spellings(secret):
                if form.encode("utf-8") in data:
                    found.append((str(path.relative_to(home)), form))
        if path.suffix == ".db":
            with sqlite3.connect(path) as db:
                dump = "\n".join(db.iterdump())
            found += [(f"{path.name} (dump)", form) for form in leaks_in_text(dump, secrets)]
    return found


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TOKEN", HARD)
    monkeypatch.setenv("MY_DSN", PLAIN)
    monkeypatch.setenv("JO_TEST_OWN_API_KEY", OWN)
    # kernels import jupyter_orchestrate.task_values (which redacts the values file it writes) from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


SHOW = """\
import os, sys, subprocess
from IPython.display import HTML, display
from jupyter_orchestrate import task_values
tok, dsn, own = os.environ["API_TOKEN"], os.environ["DSN"], os.environ["JO_TEST_OWN_API_KEY"]
print("token", tok, "dsn", dsn, "own", own)
print(repr(tok), {"token": tok, "dsn": [dsn]})
print("to stderr", tok, file=sys.stderr)
subprocess.run(["echo", "kernel process stdout", dsn, tok], check=True)
display(HTML(f"<b>{tok}</b> {dsn}"))
task_values.set("leak", {"token": tok, "dsn": [dsn, own]})
print("values published")
tok"""

ENDINGS = {
    "ok": "print('done', tok)",
    "bad": 'raise ValueError(f"failed with token {tok} and {dsn}")',
    "slow": "import time\nprint('sleeping', tok, flush=True)\ntime.sleep(600)",
}


def secret_job(
    root: Path, name: str, endings: dict[str, str], job_yaml: dict[str, Any] | None = None
) -> Path:
    job = root / name
    job.mkdir(parents=True)
    env = {"env": {"API_TOKEN": "${MY_TOKEN}", "DSN": "${MY_DSN}", "PLAIN": "visible"}, "secret_env": ["DSN"]}
    for key, last in endings.items():
        settings: dict[str, Any] = {"environment": env}
        if key == "slow" and name == "timeout":
            settings["timeout_seconds"] = 20
        write_notebook(job / f"{key}.ipynb", SHOW, last, orchestrate=settings)
    if job_yaml:
        (job / "job.yaml").write_text(yaml.safe_dump(job_yaml), encoding="utf-8")
    return job


def assert_useful(home: Path, run: Any, key: str) -> None:
    """The redacted output still says what happened, with *** where the secrets were."""
    attempt = run.task_run(key).attempts[-1]
    text = Path(attempt.notebook_path).read_text(encoding="utf-8")
    assert "token *** dsn *** own ***" in text, text[:3000]
    assert "values published" in text
    assert "kernel process stdout *** ***" in Path(attempt.log_path).read_text(encoding="utf-8")
    assert "kernel process stdout" in text  # ipykernel sends fd output to the notebook too
    assert run.task_run(key).task_values == {"leak": {"token": "***", "dsn": ["***", "***"]}}


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def published(notebook: Path) -> bool:
    """The attempt executed the printing cell and sleeps in its last one: papermill saved the notebook at that
    cell's start, and saves no more while it sleeps (a kill during a save would leave half a file)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError):
        return False
    return (
        "values published" in json.dumps(cells) and cells[-1]["metadata"]["papermill"]["status"] == "running"
    )


def test_redact_handles_escaped_and_nested_values() -> None:
    text = f"a {HARD} b {json.dumps(HARD)} c {HARD!r} d {PLAIN}"
    assert leaks_in_text(redact(text, SECRETS)) == []
    assert redact(text, SECRETS).count("***") == 4
    value = {"k": [HARD, (f"x{PLAIN}y", 3)], PLAIN: None, "n": 1.5}
    assert redact_value(value, SECRETS) == {"k": ["***", ("x***y", 3)], "***": None, "n": 1.5}
    assert value["k"][0] == HARD  # not modified in place


def test_redact_handles_bytes_html_and_url_spellings() -> None:
    import html
    import urllib.parse

    secret = HARD + "<x>&"
    for shown in (
        repr(secret.encode()),
        html.escape(secret),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        f"https://api.example/?token={urllib.parse.quote(secret)}",
    ):
        cleaned = redact(f"before {shown} after", [secret])
        assert secret not in cleaned and "***" in cleaned, (shown, cleaned)
        assert cleaned.startswith("before ") and cleaned.endswith(" after"), cleaned


def test_literal_secret_values_in_job_files_are_not_stored_or_served(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret written literally in metadata (not as ``${NAME}``) is the user's mistake, but it must still not
    reach the database or the job document; references stay as they are (they hold no value)."""
    from jupyter_orchestrate.executors.memory import MemoryExecutor, succeed
    from jupyter_orchestrate.schemas.documents import JobDocument

    literal = "hunter2-literal-value"
    monkeypatch.setenv("SOME_TOKEN", "x")
    write_notebook(
        tmp_path / "lit" / "a.ipynb",
        "pass",
        orchestrate={
            "environment": {"env": {"DB_PASSWORD": literal, "API_TOKEN": "${SOME_TOKEN}", "PLAIN": "visible"}}
        },
    )
    service = OrchestrateService(home)
    job, problems = service.validate(tmp_path / "lit")
    assert job is not None, problems
    doc = json.dumps(JobDocument.build(job, tmp_path / "lit", tmp_path, [], []).json_data())
    assert literal not in doc and "${SOME_TOKEN}" in doc and "visible" in doc
    executor = MemoryExecutor({"a": [succeed()]})
    runner = service.new_run(tmp_path / "lit", executor=executor, clock=executor.clock)
    assert runner.job.task("a").environment.env["DB_PASSWORD"] == literal, "the kernel still gets the value"
    runner.execute()
    assert leaks_in_home(home, (literal,)) == []
    assert literal not in json.dumps(run_document(service.get_run(runner.run_id)))


def test_attempt_log_redacts_a_secret_split_across_writes(tmp_path: Path) -> None:
    log = _RedactingLog(str(tmp_path / "a.log"), SECRETS)
    log.write("start " + PLAIN[:5])
    log.write(PLAIN[5:] + " middle " + HARD[:3])
    log.write(HARD[3:] + "\nline two\n")
    assert (tmp_path / "a.log").read_text(encoding="utf-8") == "start *** middle ***\nline two\n"
    log.write("tail without newline " + OWN[:4])
    log.close()
    assert (tmp_path / "a.log").read_text(encoding="utf-8").endswith("tail without newline " + OWN[:4])


@pytest.mark.kernel
def test_success_failure_and_timeout_leave_no_secret_anywhere(
    tmp_path: Path, home: Path, hooks: Hooks, secret_env: None
) -> None:
    job = secret_job(
        tmp_path,
        "timeout",
        ENDINGS,
        {
            "notifications": {
                "on_failure": [{"webhook": hooks.url("/failed")}],
                "on_start": [{"webhook": hooks.url("/start")}],
            }
        },
    )
    events: list[tuple[str, dict[str, Any]]] = []
    service = OrchestrateService(home)
    notifier = Notifier(service)
    service.listeners.append(notifier)
    runner = service.new_run(
        job, max_parallel=3, on_event=lambda kind, payload: events.append((kind, payload))
    )
    assert runner.execute() == RunStatus.failed
    assert notifier.close(timeout=60)
    run = service.get_run(runner.run_id)

    statuses = {t.task_key: t.status.value for t in run.task_runs}
    assert statuses == {"ok": "succeeded", "bad": "failed", "slow": "timed_out"}, statuses
    bad = run.task_run("bad")
    assert bad.attempts[-1].error.evalue == "failed with token *** and ***"
    assert bad.status_reason == "ValueError: failed with token *** and ***"
    assert any("failed with token ***" in line for line in bad.attempts[-1].error.traceback)
    for key in statuses:
        assert_useful(home, run, key)

    assert leaks_in_home(home) == []
    document = json.dumps(run_document(run), ensure_ascii=False)
    assert leaks_in_text(document) == [] and "failed with token ***" in document
    assert leaks_in_text(json.dumps(events, ensure_ascii=False)) == []
    assert any(p.get("reason") == "ValueError: failed with token *** and ***" for _, p in events), events
    bodies = hooks.bodies("/failed")
    assert len(bodies) == 1 and "failed with token ***" in bodies[0]["text"], hooks.posts
    assert leaks_in_text(json.dumps(hooks.posts, ensure_ascii=False)) == []


@pytest.mark.kernel
def test_cancel_from_another_thread_leaves_no_secret(tmp_path: Path, home: Path, secret_env: None) -> None:
    job = secret_job(tmp_path, "cancel", {"slow": ENDINGS["slow"]})
    service = OrchestrateService(home)
    events: list[tuple[str, dict[str, Any]]] = []
    runner = service.new_run(job, on_event=lambda kind, payload: events.append((kind, payload)))
    thread = threading.Thread(target=runner.execute)
    thread.start()
    notebook = runner.store.attempt_dir(runner.run_id, "slow") / "attempt-1.ipynb"
    try:
        wait_for(lambda: published(notebook), "the task to print its secrets")
        assert service.cancel(runner.run_id)
    finally:
        thread.join(DEADLINE)
    run = service.get_run(runner.run_id)
    assert run.status == RunStatus.canceled and run.task_run("slow").status.value == "canceled"
    assert_useful(home, run, "slow")
    assert leaks_in_home(home) == []
    assert leaks_in_text(json.dumps(run_document(run), ensure_ascii=False)) == []
    assert leaks_in_text(json.dumps(events, ensure_ascii=False)) == []


@pytest.mark.kernel
def test_sigkill_of_the_orchestrator_then_recovery_leaves_no_secret(
    tmp_path: Path, home: Path, secret_env: None
) -> None:
    job = secret_job(tmp_path, "killed", {"slow": ENDINGS["slow"]})
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "run", str(job)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        notebooks = lambda: list(home.glob("runs/**/attempt-1.ipynb"))  # noqa: E731
        wait_for(lambda: any(published(p) for p in notebooks()), "the task to print its secrets")
        process.send_signal(signal.SIGKILL)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(60)
    recovered = subprocess.run(
        [sys.executable, "-m", "jupyter_orchestrate", "--home", str(home), "runs", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert recovered.returncode == 0, recovered.stderr
    wait_for(lambda: not kernels_of(home), "the dead orchestrator's kernel to be gone")
    service = OrchestrateService(home)
    run = service.get_run(service.list_runs()[0].run_id)
    assert run.status == RunStatus.failed, run.status
    assert leaks_in_text(recovered.stdout) == []
    attempt = run.task_run("slow").attempts[-1]
    text = Path(attempt.notebook_path).read_text(encoding="utf-8")
    assert "token *** dsn *** own ***" in text
    assert leaks_in_home(home) == []
    assert leaks_in_text(json.dumps(run_document(run), ensure_ascii=False)) == []
