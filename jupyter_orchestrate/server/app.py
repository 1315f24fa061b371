"""OrchestrateApp: the Jupyter server extension application (configurable traits, routes, lifecycle).

Enabled automatically on install through ``jupyter-config/server-config/jupyter_orchestrate.json``. Loading
it starts nothing heavy: the service (SQLite store, crash recovery of runs a dead server left ``running``)
opens in milliseconds, and runs execute in background threads so the server stays responsive.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Integer, List, Unicode

from jupyter_orchestrate.server.events import EventBus
from jupyter_orchestrate.server.handlers import handlers


SERVER_HOME = "orchestrate_runs"


class OrchestrateApp(ExtensionApp):
    """Jobs, runs and repairs under ``/jupyter-orchestrate/api/`` (see docs/api.md)."""

    name = "jupyter_orchestrate"

    state_home = Unicode(
        "", config=True,
        help="State home (database, executed notebooks, logs). Default: $JUPYTER_ORCHESTRATE_HOME, else "
        "<root_dir>/orchestrate_runs: inside the root and not hidden, so JupyterLab can open executed notebooks "
        "(the contents API refuses hidden paths such as .orchestrate/ unless ContentsManager.allow_hidden).",
    )
    max_parallel_tasks = Integer(
        0, config=True, help="Tasks executing at once per run when the job does not say (0: CPU cores)."
    )
    job_roots = List(
        Unicode(), default_value=[""], config=True,
        help="Folders, relative to the server root, searched for jobs (default: the whole root).",
    )
    job_search_depth = Integer(4, config=True, help="How many folder levels below each job root are searched.")
    executor = Enum(["local"], default_value="local", config=True, help="What runs attempts: 'local' processes.")
    heartbeat_timeout_seconds = Float(
        30.0, config=True,
        help="A run whose orchestrator (this server, a CLI run, a scheduler) has not heartbeat for this long is "
        "ended as failed, its kernels killed and its max_concurrent_runs slot freed (a dead orchestrator on this "
        "host is noticed at once by its pid).",
    )
    cancel_timeout_seconds = Float(
        30.0, config=True, help="A run still canceling this long after the server saw the cancel is force-ended canceled."
    )
    monitor_seconds = Float(5.0, config=True, help="Time between two checks for runs whose orchestrator died.")
    shutdown_timeout_seconds = Float(
        15.0, config=True, help="On shutdown, how long to wait for the runs of this server to record their cancel."
    )
    scheduler_enabled = Bool(
        True, config=True,
        help="Fire job schedules while the server runs (a leader lease makes one scheduler per state home fire).",
    )

    def initialize_settings(self) -> None:
        from jupyter_orchestrate.service import OrchestrateService

        self.bus = EventBus()
        self.service = OrchestrateService(self.home, heartbeat_timeout_seconds=self.heartbeat_timeout_seconds,
                                          cancel_timeout_seconds=self.cancel_timeout_seconds)
        self.service.listeners.append(self.bus.publish)
        from jupyter_orchestrate.notifications import Notifier, SmtpConfig

        try:
            smtp = SmtpConfig.from_env()
        except ValueError as exc:
            self.log.error("jupyter-orchestrate: email notifications are off: %s", exc)
            smtp = SmtpConfig()
        self.notifier = Notifier(self.service, base_url=self.serverapp.connection_url, smtp=smtp)
        self.service.listeners.append(self.notifier)
        self.scheduler = None
        if self.scheduler_enabled:
            from jupyter_orchestrate.scheduling.scheduler import Scheduler

            self.scheduler = Scheduler(self.service, self.search_roots(), max_depth=self.job_search_depth)
            self.scheduler.start()
        if self.service.recovered:
            self.log.warning("jupyter-orchestrate: ended runs %s: their orchestrator had died", self.service.recovered)
        self.service.start_monitor(self.monitor_seconds)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    @property
    def root(self) -> Path:
        """The server's root directory (resolved)."""
        return Path(self.serverapp.root_dir).expanduser().resolve()

    @property
    def home(self) -> Path:
        chosen = self.state_home or os.environ.get("JUPYTER_ORCHESTRATE_HOME") or str(self.root / SERVER_HOME)
        return Path(chosen).expanduser().resolve()

    def search_roots(self) -> list[Path]:
        """The configured job roots that exist inside the server root (others are logged and skipped)."""
        from jupyter_orchestrate.errors import ValidationError
        from jupyter_orchestrate.workspace import confine

        roots = []
        for relative in self.job_roots:
            try:
                path = confine(relative, self.root, what="job root", within="the server root")
            except ValidationError as exc:
                self.log.warning("jupyter-orchestrate: skipping OrchestrateApp.job_roots entry: %s", exc)
                continue
            if path.is_dir():
                roots.append(path)
        return roots

    async def stop_extension(self) -> None:
        """Stop the scheduler, cancel the runs this server executes and wait (``shutdown_timeout_seconds``) for
        them to record ``canceled`` (SIGTERM and SIGINT of the server come here), then deliver notifications."""
        if self.scheduler is not None:
            self.scheduler.stop()
        await asyncio.to_thread(self.service.shutdown, "the server shut down", self.shutdown_timeout_seconds)
        await asyncio.to_thread(self.notifier.close, timeout=10)

