"""Notifications: which events alert which destinations, what the messages say, and that delivery never blocks.

No kernels: a fake service returns real models, a local HTTP server records webhook POSTs, and a tiny fake SMTP
server (or a recording ``smtplib.SMTP`` stand-in) receives email.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from jupyter_orchestrate import notifications as notifications_module
from jupyter_orchestrate.models import (
    Attempt,
    AttemptError,
    Destination,
    Job,
    Notifications,
    Run,
    RunStatus,
    Task,
    TaskRun,
    TaskRunStatus,
)
from jupyter_orchestrate.notifications import ENV_PREFIX, Notifier, SmtpConfig, build_message

S = TaskRunStatus
BASE_URL = "http://jupyter.example:8888/"
RUN_ID = 7


# -- fakes -----------------------------------------------------------------------------------------------------
class FakeStore:
    def __init__(self, job: Job):
        self.job = job
        self.snapshot_calls = 0

    def snapshot(self, run_id: int) -> Job:
        self.snapshot_calls += 1
        return self.job


class FakeService:
    """What a Notifier needs of OrchestrateService: ``get_run`` and ``store.snapshot``."""

    def __init__(self, job: Job, run: Run):
        self.store = FakeStore(job)
        self.run = run

    def get_run(self, run_id: int) -> Run:
        assert run_id == self.run.run_id
        return self.run.model_copy(deep=True)

    def set_status(self, status: RunStatus, reason: str | None = None) -> None:
        self.run = self.run.model_copy(update={"status": status, "status_reason": reason})


def error(ename: str, evalue: str, cell_index: int | None, source: str = "x = 1") -> AttemptError:
    return AttemptError(
        kind="cell_error", ename=ename, evalue=evalue, cell_index=cell_index, cell_source=source
    )


def task_run(key: str, status: TaskRunStatus, *errors: AttemptError | None) -> TaskRun:
    attempts = [
        Attempt(
            run_id=RUN_ID,
            task_key=key,
            attempt_number=n,
            status=status if n == len(errors) else S.failed,
            error=e,
        )
        for n, e in enumerate(errors, start=1)
    ]
    return TaskRun(
        run_id=RUN_ID,
        task_key=key,
        notebook=f"{key}.ipynb",
        status=status,
        attempts=attempts,
        duration_seconds=1.5,
    )


def make_run(status: RunStatus, *task_runs: TaskRun, reason: str | None = None) -> Run:
    return Run(
        run_id=RUN_ID,
        job_name="etl",
        job_path="/jobs/etl",
        status=status,
        status_reason=reason,
        start_time="2026-01-01T00:00:00+00:00",
        max_parallel_tasks=2,
        task_runs=list(task_runs),
        duration_seconds=12.0 if status.is_terminal else None,
    )


def make_job(notifications: Notifications | None = None, **task_notifications: Notifications) -> Job:
    keys = ["extract", "load", "report"]
    return Job(
        name="etl",
        path="/jobs/etl",
        notifications=notifications,
        tasks=[
            Task(task_key=k, notebook=f"{k}.ipynb", notifications=task_notifications.get(k)) for k in keys
        ],
    )


def failed_run() -> Run:
    """extract succeeded; load failed in its second attempt at cell index 2; report failed later (not first)."""
    return make_run(
        RunStatus.failed,
        task_run("extract", S.succeeded, None),
        task_run(
            "load",
            S.failed,
            error("KeyError", "first attempt", 0),
            error("ValueError", "bad row <42>", 2, "check(rows)"),
        ),
        task_run("report", S.failed, error("RuntimeError", "later failure", 5)),
        reason="leaf task(s) not successful: report",
    )


# -- local webhook endpoint ------------------------------------------------------------------------------------
class Endpoint:
    """A local HTTP server: ``/ok...`` answers 200, ``/fail...`` 500, ``/hang...`` sleeps 5 s then 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.cond:
                    endpoint.posts.append((self.path, body))
                    endpoint.cond.notify_all()
                if self.path.startswith("/hang"):
                    time.sleep(5)
                code = 500 if self.path.startswith("/fail") else 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.cond:
            return [b for p, b in self.posts if path is None or p == path]

    def wait_for(self, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.posts) >= count, timeout)
            return [b for _, b in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def notifiers() -> Iterator[list[Notifier]]:
    """Notifiers made in a test are closed after it."""
    made: list[Notifier] = []
    yield made
    for notifier in made:
        notifier.close(timeout=2)


@pytest.fixture
def make_notifier(notifiers: list[Notifier]):
    def make(service: FakeService, **kwargs: Any) -> Notifier:
        kwargs.setdefault("base_url", BASE_URL)
        kwargs.setdefault("smtp", SmtpConfig())
        kwargs.setdefault("retry_backoff_seconds", 0.01)
        notifier = Notifier(service, **kwargs)
        notifiers.append(notifier)
        return notifier

    return make


def hook(endpoint: Endpoint, path: str, **kwargs: Any) -> list[Destination]:
    return [Destination(webhook=endpoint.url(path), **kwargs)]


# -- run-level events ------------------------------------------------------------------------------------------
def test_failed_run_sends_the_failure_with_task_cell_error_and_url(endpoint, make_notifier):
    job = make_job(
        Notifications(on_failure=hook(endpoint, "/ok-failure"), on_success=hook(endpoint, "/ok-success"))
    )
    notifier = make_notifier(FakeService(job, failed_run()))
    notifier(
        "run_status", {"run_id": RUN_ID, "status": "failed", "reason": "leaf task(s) not successful: report"}
    )
    assert notifier.flush(5)
    assert [p for p, _ in endpoint.posts] == ["/ok-failure"]
    body = endpoint.bodies()[0]
    assert body["event"] == "run_failed"
    assert body["run_id"] == RUN_ID and body["job"] == "etl" and body["status"] == "failed"
    assert body["failure"] == {
        "task_key": "load",
        "cell_index": 2,
        "cell_source": "check(rows)",
        "ename": "ValueError",
        "evalue": "bad row <42>",
    }
    text = body["text"]
    assert "task load failed in cell 3: ValueError: bad row &lt;42&gt;" in text  # Slack-escaped
    assert "report" not in text and "first attempt" not in text
    assert body["url"] == "http://jupyter.example:8888/lab?orchestrate-run=7"
    assert f"<{body['url']}|" in text
    assert "\n" not in text


def test_successful_run_sends_on_success_only(endpoint, make_notifier):
    job = make_job(
        Notifications(
            on_failure=hook(endpoint, "/ok-failure"),
            on_success=hook(endpoint, "/ok-success"),
            on_start=hook(endpoint, "/ok-start"),
        )
    )
    run = make_run(RunStatus.succeeded, task_run("extract", S.succeeded, None))
    notifier = make_notifier(FakeService(job, run))
    notifier("run_status", {"run_id": RUN_ID, "status": "succeeded", "reason": None})
    assert notifier.flush(5)
    assert [p for p, _ in endpoint.posts] == ["/ok-success"]
    body = endpoint.bodies()[0]
    assert body["event"] == "run_succeeded" and body["status"] == "succeeded"
    assert "failure" not in body
    assert body["text"].startswith("Run 7 of job etl succeeded in 12 s.")


def test_running_sends_on_start_and_canceling_nothing(endpoint, make_notifier):
    job = make_job(
        Notifications(on_start=hook(endpoint, "/ok-start"), on_failure=hook(endpoint, "/ok-failure"))
    )
    notifier = make_notifier(FakeService(job, make_run(RunStatus.running)))
    notifier("run_status", {"run_id": RUN_ID, "status": "running", "reason": None})
    notifier("progress", {"run_id": RUN_ID, "task_key": "load", "cell": 1, "total": 3})
    notifier("run_status", {"run_id": RUN_ID, "status": "canceling", "reason": "cancel requested"})
    assert notifier.flush(5)
    assert [p for p, _ in endpoint.posts] == ["/ok-start"]
    assert endpoint.bodies()[0]["event"] == "run_started"
    assert endpoint.bodies()[0]["text"].startswith("Run 7 of job etl started.")


def test_canceled_run_alerts_on_failure(endpoint, make_notifier):
    job = make_job(Notifications(on_failure=hook(endpoint, "/ok-failure")))
    run = make_run(RunStatus.canceled, task_run("extract", S.canceled), reason="cancel requested")
    notifier = make_notifier(FakeService(job, run))
    notifier("run_status", {"run_id": RUN_ID, "status": "canceled", "reason": "cancel requested"})
    assert notifier.flush(5)
    (body,) = endpoint.bodies("/ok-failure")
    assert body["event"] == "run_canceled" and "failure" not in body
    assert "was canceled: cancel requested." in body["text"]


def test_job_without_notifications_sends_nothing_and_ignores_events_after_close(endpoint, make_notifier):
    notifier = make_notifier(FakeService(make_job(None), failed_run()))
    notifier("run_status", {"run_id": RUN_ID, "status": "running"})
    notifier("run_status", {"run_id": RUN_ID, "status": "failed"})
    assert notifier.flush(5)
    assert endpoint.posts == []
    job = make_job(Notifications(on_failure=hook(endpoint, "/ok")))
    closed = make_notifier(FakeService(job, failed_run()))
    assert closed.close(1)
    closed("run_status", {"run_id": RUN_ID, "status": "failed"})
    assert closed.flush(1)
    time.sleep(0.1)
    assert endpoint.posts == []


# -- task-level events -----------------------------------------------------------------------------------------
def test_task_level_on_failure_fires_for_that_task_only(endpoint, make_notifier):
    load = Notifications(on_failure=hook(endpoint, "/ok-load-failure"))
    job = make_job(None, load=load)
    notifier = make_notifier(FakeService(job, failed_run()))
    notifier(
        "task_status",
        {
            "run_id": RUN_ID,
            "task_key": "load",
            "status": "up_for_retry",
            "reason": "retry 1 of 1",
            "attempt_number": 1,
        },
    )
    notifier(
        "task_status",
        {"run_id": RUN_ID, "task_key": "report", "status": "failed", "reason": "x", "attempt_number": 1},
    )
    notifier(
        "task_status",
        {
            "run_id": RUN_ID,
            "task_key": "load",
            "status": "failed",
            "reason": "ValueError: bad row",
            "attempt_number": 2,
        },
    )
    assert notifier.flush(5)
    assert [p for p, _ in endpoint.posts] == ["/ok-load-failure"]
    body = endpoint.bodies()[0]
    assert body["event"] == "task_failed" and body["task_key"] == "load" and body["status"] == "failed"
    assert body["failure"]["ename"] == "ValueError"
    assert "Task load of run 7 of job etl failed in cell 3: ValueError: bad row" in body["text"]
    assert body["url"].endswith("lab?orchestrate-run=7")


def test_task_timed_out_alerts_on_failure(endpoint, make_notifier):
    job = make_job(None, report=Notifications(on_failure=hook(endpoint, "/ok")))
    run = make_run(
        RunStatus.running,
        task_run(
            "report",
            S.timed_out,
            AttemptError(
                kind="timeout", ename="TimeoutError", evalue="the attempt exceeded timeout_seconds=5"
            ),
        ),
    )
    notifier = make_notifier(FakeService(job, run))
    notifier(
        "task_status",
        {"run_id": RUN_ID, "task_key": "report", "status": "timed_out", "reason": "", "attempt_number": 1},
    )
    assert notifier.flush(5)
    (body,) = endpoint.bodies()
    assert body["event"] == "task_failed" and body["status"] == "timed_out"
    assert "timed out: TimeoutError: the attempt exceeded" in body["text"] and "cell" not in body["text"]


def test_task_start_and_success_and_retries_are_not_announced_again(endpoint, make_notifier):
    extract = Notifications(on_start=hook(endpoint, "/ok-start"), on_success=hook(endpoint, "/ok-success"))
    run = make_run(RunStatus.running, task_run("extract", S.succeeded, error("OSError", "flaky", 1), None))
    notifier = make_notifier(FakeService(make_job(None, extract=extract), run))
    for status in ("queued", "running", "up_for_retry", "running", "succeeded"):
        notifier(
            "task_status",
            {"run_id": RUN_ID, "task_key": "extract", "status": status, "reason": None, "attempt_number": 1},
        )
    assert notifier.flush(5)
    assert sorted((p, b["event"]) for p, b in endpoint.posts) == [
        ("/ok-start", "task_started"),
        ("/ok-success", "task_succeeded"),
    ]
    assert endpoint.bodies("/ok-success")[0]["text"].startswith(
        "Task extract of run 7 of job etl succeeded in 1.5 s."
    )


# -- duration warnings -----------------------------------------------------------------------------------------
def test_duration_warning_fires_while_the_run_is_still_running(endpoint, make_notifier):
    job = make_job(
        Notifications(on_duration_warning=hook(endpoint, "/ok-slow"), duration_warning_seconds=0.2)
    )
    notifier = make_notifier(FakeService(job, make_run(RunStatus.running)))
    started = time.monotonic()
    notifier("run_status", {"run_id": RUN_ID, "status": "running"})
    bodies = endpoint.wait_for(1, timeout=3)
    elapsed = time.monotonic() - started
    assert [b["event"] for b in bodies] == ["run_duration_warning"]
    assert 0.2 <= elapsed < 1.5
    assert "is still running after 0.2 s" in bodies[0]["text"]
    time.sleep(0.3)
    assert len(endpoint.posts) == 1  # once per run


def test_duration_warning_does_not_fire_when_the_run_finished_first(endpoint, make_notifier):
    job = make_job(
        Notifications(on_duration_warning=hook(endpoint, "/ok-slow"), duration_warning_seconds=0.2)
    )
    service = FakeService(job, make_run(RunStatus.running))
    notifier = make_notifier(service)
    notifier("run_status", {"run_id": RUN_ID, "status": "running"})
    time.sleep(0.05)
    service.set_status(RunStatus.succeeded)
    notifier("run_status", {"run_id": RUN_ID, "status": "succeeded"})
    time.sleep(0.4)
    assert notifier.flush(5)
    assert endpoint.posts == []


def test_task_duration_warning(endpoint, make_notifier):
    load = Notifications(on_duration_warning=hook(endpoint, "/ok-slow"), duration_warning_seconds=0.2)
    run = make_run(
        RunStatus.running, task_run("load", S.running, None), task_run("report", S.succeeded, None)
    )
    notifier = make_notifier(FakeService(make_job(None, load=load, report=load), run))
    notifier("task_status", {"run_id": RUN_ID, "task_key": "load", "status": "running", "attempt_number": 1})
    notifier(
        "task_status", {"run_id": RUN_ID, "task_key": "report", "status": "running", "attempt_number": 1}
    )
    notifier(
        "task_status", {"run_id": RUN_ID, "task_key": "report", "status": "succeeded", "attempt_number": 1}
    )
    bodies = endpoint.wait_for(1, timeout=3)
    time.sleep(0.3)
    assert [(b["event"], b["task_key"]) for b in endpoint.bodies()] == [("task_duration_warning", "load")]
    assert bodies[0]["text"].startswith("Task load of run 7 of job etl is still running after 0.2 s")


# -- delivery --------------------------------------------------------------------------------------------------
def test_a_hanging_webhook_does_not_delay_the_listener_or_other_destinations(endpoint, make_notifier):
    destinations = [
        Destination(webhook=endpoint.url("/hang"), timeout_seconds=0.3, retries=0),
        *hook(endpoint, "/ok"),
    ]
    job = make_job(Notifications(on_start=destinations))
    notifier = make_notifier(FakeService(job, make_run(RunStatus.running)))
    started = time.monotonic()
    notifier("run_status", {"run_id": RUN_ID, "status": "running"})
    assert time.monotonic() - started < 0.1
    endpoint.wait_for(2, timeout=2)
    assert sorted(p for p, _ in endpoint.posts) == ["/hang", "/ok"]
    assert notifier.close(timeout=3)  # the hanging try gives up after timeout_seconds
    assert len(endpoint.bodies("/hang")) == 1


def test_a_close_that_times_out_drops_queued_deliveries_and_stops_retrying(endpoint, make_notifier, caplog):
    destinations = [
        Destination(webhook=endpoint.url("/hang"), timeout_seconds=0.5, retries=5),
        *hook(endpoint, "/ok"),
    ]
    job = make_job(Notifications(on_start=destinations))
    notifier = make_notifier(FakeService(job, make_run(RunStatus.running)), max_workers=1)
    notifier("run_status", {"run_id": RUN_ID, "status": "running"})
    endpoint.wait_for(1, timeout=2)
    with caplog.at_level(logging.WARNING, logger="jupyter_orchestrate.notifications"):
        assert notifier.close(timeout=0.1) is False  # the only delivery thread hangs on /hang
        time.sleep(1.0)  # the try in flight times out after 0.5 s, and is not retried
    assert [p for p, _ in endpoint.posts] == ["/hang"]  # /ok was queued behind it: dropped
    assert notifier.flush(1)  # nothing is left pending
    assert "failed after 1 tries" in caplog.text


def test_a_failing_webhook_is_retried_then_logged_without_its_secret_path(endpoint, make_notifier, caplog):
    secret = "/fail/T000/B000/s3cr3t-token"
    job = make_job(
        Notifications(on_failure=[Destination(webhook=endpoint.url(secret), retries=2, timeout_seconds=2)])
    )
    notifier = make_notifier(FakeService(job, failed_run()))
    with caplog.at_level(logging.INFO, logger="jupyter_orchestrate.notifications"):
        notifier("run_status", {"run_id": RUN_ID, "status": "failed"})
        assert notifier.flush(5)
    assert len(endpoint.bodies(secret)) == 3  # retries + 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failed after 3 tries: HTTP 500" in warnings[0].getMessage()
    assert "s3cr3t" not in caplog.text


def test_retry_backoff_doubles(monkeypatch, make_notifier):
    sleeps: list[float] = []
    monkeypatch.setattr(notifications_module.time, "sleep", sleeps.append)
    notifier = make_notifier(FakeService(make_job(None), failed_run()), retry_backoff_seconds=0.5)
    calls = []

    def fail(url: str, message: dict[str, Any], timeout: float) -> None:
        calls.append(timeout)
        raise OSError("connection refused")

    monkeypatch.setattr(notifier, "post_webhook", fail)
    notifier.deliver(
        Destination(webhook="http://127.0.0.1:9/x", retries=3, timeout_seconds=4),
        {"run_id": 1, "event": "run_failed", "text": "t"},
    )
    assert calls == [4, 4, 4, 4]
    assert sleeps == [0.5, 1.0, 2.0]


# -- email -----------------------------------------------------------------------------------------------------
class FakeSmtpServer:
    """Just enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to receive messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                envelope: dict[str, Any] = {"rcpt": []}
                self.reply("220 fake ESMTP")
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-fake" if verb == "EHLO" else "250 fake")
                        if verb == "EHLO":
                            self.reply("250 8BITMIME")
                    elif verb == "MAIL":
                        envelope["from"] = command.split(":", 1)[1].strip()
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        envelope["rcpt"].append(command.split(":", 1)[1].strip())
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go ahead")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk.decode())
                        envelope["data"] = "".join(data)
                        server.messages.append(envelope)
                        envelope = {"rcpt": []}
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_email_goes_through_smtp_with_the_failure(make_notifier):
    smtp_server = FakeSmtpServer()
    try:
        job = make_job(Notifications(on_failure=[Destination(email=["ops@example.com", "dev@example.com"])]))
        smtp = SmtpConfig(host="127.0.0.1", port=smtp_server.port, from_addr="orchestrate@example.com")
        notifier = make_notifier(FakeService(job, failed_run()), smtp=smtp)
        notifier("run_status", {"run_id": RUN_ID, "status": "failed"})
        assert notifier.flush(5)
    finally:
        smtp_server.close()
    (mail,) = smtp_server.messages
    assert mail["from"] == "<orchestrate@example.com>"
    assert mail["rcpt"] == ["<ops@example.com>", "<dev@example.com>"]
    data = mail["data"]
    assert "Subject: Run 7 of job etl failed\r\n" in data
    assert "To: ops@example.com, dev@example.com" in data
    assert "task load failed in cell 3: ValueError: bad row <42>." in data  # unescaped in email
    assert "http://jupyter.example:8888/lab?orchestrate-run=7" in data and "|Open" not in data


class RecordingSMTP:
    """Stands in for smtplib.SMTP / SMTP_SSL and records what it was asked to do."""

    instances: ClassVar[list[RecordingSMTP]] = []
    fail_login: ClassVar[bool] = False

    def __init__(self, host: str, port: int, timeout: float = 0, context: Any = None):
        self.host, self.port, self.timeout, self.calls = host, port, timeout, []
        RecordingSMTP.instances.append(self)

    def __enter__(self) -> RecordingSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.calls.append("quit")

    def starttls(self, context: Any = None) -> None:
        self.calls.append("starttls")

    def login(self, user: str, password: str) -> None:
        self.calls.append(("login", user, password))
        if RecordingSMTP.fail_login:
            raise smtplib.SMTPAuthenticationError(535, b"bad credentials")

    def send_message(self, message: Any, from_addr: str, to_addrs: list[str]) -> None:
        self.calls.append(("send", from_addr, to_addrs, message["Subject"]))


@pytest.fixture
def recording_smtp(monkeypatch) -> type[RecordingSMTP]:
    RecordingSMTP.instances = []
    RecordingSMTP.fail_login = False
    monkeypatch.setattr(smtplib, "SMTP", RecordingSMTP)
    monkeypatch.setattr(smtplib, "SMTP_SSL", type("RecordingSMTP_SSL", (RecordingSMTP,), {}))
    return RecordingSMTP


def test_no_email_is_attempted_without_smtp_config(monkeypatch, recording_smtp, make_notifier, caplog):
    for name in ("HOST", "PORT", "USER", "PASSWORD", "FROM", "STARTTLS"):
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)
    job = make_job(Notifications(on_failure=[Destination(email=["ops@example.com"])]))
    notifier = make_notifier(FakeService(job, failed_run()), smtp=None)  # None: read the (empty) environment
    with caplog.at_level(logging.WARNING, logger="jupyter_orchestrate.notifications"):
        notifier("run_status", {"run_id": RUN_ID, "status": "failed"})
        assert notifier.flush(5)
    assert recording_smtp.instances == []
    assert "no SMTP host is configured" in caplog.text and "ops@example.com" in caplog.text


def test_smtp_settings_come_from_the_environment(monkeypatch, recording_smtp, make_notifier, caplog):
    monkeypatch.setenv(ENV_PREFIX + "HOST", "smtp.example.com")
    monkeypatch.setenv(ENV_PREFIX + "PORT", "587")
    monkeypatch.setenv(ENV_PREFIX + "USER", "bot@example.com")
    monkeypatch.setenv(ENV_PREFIX + "PASSWORD", "hunter2-secret")
    monkeypatch.delenv(ENV_PREFIX + "FROM", raising=False)
    monkeypatch.delenv(ENV_PREFIX + "STARTTLS", raising=False)
    config = SmtpConfig.from_env()
    assert (config.host, config.port, config.user, config.starttls, config.sender) == (
        "smtp.example.com",
        587,
        "bot@example.com",
        True,
        "bot@example.com",
    )
    assert "hunter2" not in repr(config)

    job = make_job(
        Notifications(on_start=[Destination(email=["ops@example.com"], retries=1, timeout_seconds=3)])
    )
    notifier = make_notifier(FakeService(job, make_run(RunStatus.running)), smtp=None)
    recording_smtp.fail_login = True
    with caplog.at_level(logging.DEBUG, logger="jupyter_orchestrate.notifications"):
        notifier("run_status", {"run_id": RUN_ID, "status": "running"})
        assert notifier.flush(5)
    assert len(recording_smtp.instances) == 2  # retries + 1
    first = recording_smtp.instances[0]
    assert (first.host, first.port, first.timeout) == ("smtp.example.com", 587, 3)
    assert first.calls == ["starttls", ("login", "bot@example.com", "hunter2-secret"), "quit"]
    assert "failed after 2 tries: SMTP 535" in caplog.text and "hunter2" not in caplog.text


def test_port_465_uses_implicit_tls(recording_smtp, make_notifier):
    smtp = SmtpConfig(host="smtp.example.com", port=465, user="bot", password="pw", starttls=True)
    job = make_job(Notifications(on_success=[Destination(email=["ops@example.com"])]))
    notifier = make_notifier(FakeService(job, make_run(RunStatus.succeeded)), smtp=smtp)
    notifier("run_status", {"run_id": RUN_ID, "status": "succeeded"})
    assert notifier.flush(5)
    (client,) = recording_smtp.instances
    assert type(client).__name__ == "RecordingSMTP_SSL"
    assert client.calls == [
        ("login", "bot", "pw"),
        ("send", "jupyter-orchestrate@localhost", ["ops@example.com"], "Run 7 of job etl succeeded in 12 s"),
        "quit",
    ]


def test_from_env_rejects_bad_values():
    with pytest.raises(ValueError, match="PORT"):
        SmtpConfig.from_env({ENV_PREFIX + "HOST": "h", ENV_PREFIX + "PORT": "smtp"})
    with pytest.raises(ValueError, match="STARTTLS"):
        SmtpConfig.from_env({ENV_PREFIX + "HOST": "h", ENV_PREFIX + "STARTTLS": "maybe"})
    assert not SmtpConfig.from_env({}).enabled
    assert SmtpConfig.from_env({ENV_PREFIX + "HOST": "h", ENV_PREFIX + "STARTTLS": "yes"}).port == 587


# -- messages --------------------------------------------------------------------------------------------------
def test_message_without_a_cell_or_base_url():
    run = make_run(
        RunStatus.failed,
        task_run(
            "load", S.failed, AttemptError(kind="kernel_died", ename="DeadKernelError", evalue="Kernel died")
        ),
    )
    message = build_message("run_failed", run)
    assert "url" not in message and "http" not in message["text"]
    assert message["text"] == "Run 7 of job etl failed: task load failed: DeadKernelError: Kernel died."
    assert (
        build_message("run_started", run, base_url="http://h/base")["url"]
        == "http://h/base/lab?orchestrate-run=7"
    )
    with pytest.raises(ValueError):
        build_message("run_exploded", run)
