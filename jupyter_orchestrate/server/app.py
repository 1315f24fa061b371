"""OrchestrateApp: the Jupyter server extension application (configurable traits, routes, lifecycle).

Enabled automatically on install through ``jupyter-config/server-config/jupyter_orchestrate.json``. Loading
it starts nothing heavy: the service (SQLite store, crash recovery of runs a dead server left ``running``)
opens in milliseconds, and runs execute in background threads so the server stays responsive.

The state home is chosen by :func:`~jupyter_orchestrate.workspace.find_state_home` (the rule of every entry
point) and exported as ``$JUPYTER_ORCHESTRATE_HOME`` to the kernels and terminals the server starts, so the
Python API and the CLI used inside JupyterLab record into the history the sidebar shows. A
:class:`~.events.StoreWatcher` publishes the runs other processes record there. Run events go out on
jupyter_server's event bus (:class:`~.events.EventLoggerSink`), which JupyterLab reads over its own authenticated
websocket, and on ``GET events`` for scripts.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from tornado.platform.asyncio import BaseAsyncIOLoop
from traitlets import Bool, Enum, Float, Integer, List, Unicode

from jupyter_orchestrate.executors.kernel_pool import DEFAULT_IDLE_SECONDS, DEFAULT_MAX_IDLE, KernelPool
from jupyter_orchestrate.models import (
    HEARTBEAT_TIMEOUT_SECONDS,
    SERVER_KEEP_FAILED_KERNELS_SECONDS,
    ExecutorSettings,
    ExecutorType,
)
from jupyter_orchestrate.server.events import EventBus, EventLoggerSink, StoreWatcher
from jupyter_orchestrate.server.handlers import handlers
from jupyter_orchestrate.server.kept_kernels import release_kept_kernels
from jupyter_orchestrate.workspace import HOME_ENV, StateHome, find_state_home


class OrchestrateApp(ExtensionApp):
    """Jobs, runs and repairs under ``/jupyter-orchestrate/api/`` (see docs/api.md)."""

    name = "jupyter_orchestrate"

    state_home = Unicode(
        "",
        config=True,
        help="State home (database, executed notebooks, logs). Default: $JUPYTER_ORCHESTRATE_HOME, else the nearest "
        "existing orchestrate_runs/ (or old .orchestrate/) from the root up to its git repository's root, else a new "
        "<root_dir>/orchestrate_runs: inside the root and not hidden, so JupyterLab can open executed notebooks "
        "(the contents API refuses hidden paths such as .orchestrate/ unless ContentsManager.allow_hidden).",
    )
    max_parallel_tasks = Integer(
        0,
        config=True,
        help="Tasks executing at once per run (manual, scheduled, triggered or repair) when neither the request nor "
        "the job's max_parallel_tasks says (0: CPU cores). A default, never an override of the job.",
    )
    keep_failed_kernels_seconds = Float(
        SERVER_KEEP_FAILED_KERNELS_SECONDS,
        config=True,
        help="Keep the kernel of a task attempt that fails in a cell alive this long (seconds) for 'Debug in live "
        "kernel' and 'Resume from cell' (0: shut it down at once). A task's keep_failed_kernels_seconds overrides it.",
    )
    job_roots = List(
        Unicode(),
        default_value=[""],
        config=True,
        help="Folders, relative to the server root, searched for jobs (default: the whole root).",
    )
    job_search_depth = Integer(
        4, config=True, help="How many folder levels below each job root are searched."
    )
    heartbeat_timeout_seconds = Float(
        HEARTBEAT_TIMEOUT_SECONDS,
        config=True,
        help="A run whose orchestrator (this server, a CLI run, a scheduler) has not heartbeat for this long is "
        "ended as failed, its kernels killed and its max_concurrent_runs slot freed (a dead orchestrator on this "
        "host is noticed at once by its pid).",
    )
    cancel_timeout_seconds = Float(
        30.0,
        config=True,
        help="A run still canceling this long after the server saw the cancel is force-ended canceled.",
    )
    monitor_seconds = Float(
        5.0, config=True, help="Time between two checks for runs whose orchestrator died."
    )
    watch_seconds = Float(
        0.5,
        config=True,
        help="Time between two checks of the state home for runs recorded by other processes (the CLI, a notebook's "
        "Python API, a scheduler), whose status changes are then sent on the event stream.",
    )
    shutdown_timeout_seconds = Float(
        15.0,
        config=True,
        help="On shutdown, how long to wait for the runs of this server to record their cancel.",
    )
    warm_kernels = Integer(
        DEFAULT_MAX_IDLE,
        config=True,
        help="Idle kernels kept ready for the task settings (kernelspec, folder, environment) this server's runs "
        "used, so that the next run does not wait for kernel start-up; each attempt still gets a fresh kernel. "
        "0: no warm kernels.",
    )
    warm_kernel_idle_seconds = Float(
        DEFAULT_IDLE_SECONDS, config=True, help="An idle warm kernel is shut down after this many seconds."
    )
    executor = Enum(
        ["local", "dask"],
        "local",
        config=True,
        help="Where the attempts of runs whose job.yaml names no executor execute: local (a process per attempt "
        "on this machine) or dask (the workers of a Dask cluster, see dask_scheduler).",
    )
    dask_scheduler = Unicode(
        "",
        config=True,
        help="The Dask scheduler (tcp://host:8786) of dask runs whose job.yaml names none; empty: "
        "$JUPYTER_ORCHESTRATE_DASK_SCHEDULER, else a LocalCluster per run.",
    )
    scheduler_enabled = Bool(
        True,
        config=True,
        help="Fire job schedules while the server runs (a leader lease makes one scheduler per state home fire).",
    )

    def initialize_settings(self) -> None:
        from jupyter_orchestrate.service import OrchestrateService

        self.chosen_home: StateHome = find_state_home(
            None,
            explicit=self.state_home or None,
            server_root=self.root,
            explicit_name="OrchestrateApp.state_home",
        )
        self.log.info("jupyter-orchestrate: state home %s", self.chosen_home)
        if not self.home.is_relative_to(self.root) or any(
            p.startswith(".") for p in self.home.relative_to(self.root).parts
        ):
            self.log.warning(
                "jupyter-orchestrate: the state home %s is outside the server root or hidden: the sidebar "
                "cannot open its executed notebooks",
                self.home,
            )
        # kernels and terminals of this server inherit its environment: the Python API and the CLI there find this home
        self._previous_home_env = os.environ.get(HOME_ENV)
        os.environ[HOME_ENV] = str(self.home)
        self.bus = EventBus()
        # the sidebar's channel: jupyter_server's own event bus (authenticated websocket /api/events/subscribe)
        io_loop = self._server.io_loop
        if self._server.event_logger is not None and isinstance(io_loop, BaseAsyncIOLoop):
            self.bus.add_sink(io_loop.asyncio_loop, EventLoggerSink(self._server.event_logger))
        else:  # pragma: no cover - jupyter_server >= 2 always has both
            self.log.error(
                "jupyter-orchestrate: the server has no event bus: the sidebar gets no live events"
            )
        self.service = OrchestrateService(
            self.home,
            heartbeat_timeout_seconds=self.heartbeat_timeout_seconds,
            cancel_timeout_seconds=self.cancel_timeout_seconds,
            default_max_parallel=self.max_parallel_tasks or None,
            keep_failed_kernels_seconds=self.keep_failed_kernels_seconds,
            kernel_pool=KernelPool(max_idle=self.warm_kernels, idle_seconds=self.warm_kernel_idle_seconds)
            if self.warm_kernels > 0
            else None,
            executor=ExecutorSettings(
                type=ExecutorType(self.executor), scheduler=self.dask_scheduler or None
            ),
            root=self._server.root_dir,
        )
        self.service.listeners.append(self.bus.publish)
        self.watcher = StoreWatcher(self.home, self.bus.publish, poll_seconds=self.watch_seconds)
        self.service.listeners.append(self.watcher.seen)
        self.watcher.start()
        from jupyter_orchestrate.notifications import Notifier, SmtpConfig

        try:
            smtp = SmtpConfig.from_env()
        except ValueError as exc:
            self.log.error("jupyter-orchestrate: email notifications are off: %s", exc)
            smtp = SmtpConfig()
        self.notifier = Notifier(self.service, base_url=self._server.connection_url, smtp=smtp)
        self.service.listeners.append(self.notifier)
        self.scheduler = None
        if self.scheduler_enabled:
            from jupyter_orchestrate.scheduling.scheduler import Scheduler

            self.scheduler = Scheduler(self.service, self.search_roots(), max_depth=self.job_search_depth)
            self.scheduler.start()
        if self.service.recovered:
            self.log.warning(
                "jupyter-orchestrate: ended runs %s: their orchestrator had died", self.service.recovered
            )
        self.service.start_monitor(self.monitor_seconds)
        threading.Thread(target=self._warm_jobs, name="orchestrate-warm-jobs", daemon=True).start()

    def _warm_jobs(self) -> None:
        """Validate every job once in the background while JupyterLab's page loads, so that the sidebar's
        first ``GET jobs`` finds the discovery cache filled (a cold validation of 50 jobs took over a second,
        most of the cold page load's wait for the jobs list). Never blocks start-up; a failure is only logged."""
        try:
            self.service.jobs_document(
                self.search_roots(), self.root, max_depth=self.job_search_depth, exclude=(self.home,)
            )
        except Exception:  # the request will report it
            self.log.debug("jupyter-orchestrate: warming the jobs list failed", exc_info=True)

    def initialize_handlers(self) -> None:
        self.handlers.extend(handlers())

    @property
    def _server(self) -> ServerApp:
        """The Jupyter server this extension is loaded in (set before the extension initializes)."""
        if self.serverapp is None:
            raise RuntimeError("the jupyter-orchestrate extension is not loaded in a server")
        return self.serverapp

    @property
    def root(self) -> Path:
        """The server's root directory (resolved)."""
        return Path(self._server.root_dir).expanduser().resolve()

    @property
    def home(self) -> Path:
        """The state home folder (chosen once, when the extension loads)."""
        return self.chosen_home.path

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
        them to record ``canceled`` (SIGTERM and SIGINT of the server come here), then deliver notifications.
        Kept kernels registered for "Debug in live kernel" are taken out of the server's kernel manager, not
        stopped: they belong to the orchestrator's keeper (the server's ``shutdown_all`` runs after this)."""
        released = release_kept_kernels(self._server.kernel_manager)
        if released:
            self.log.info(
                "jupyter-orchestrate: left %d kept kernel(s) running for their keeper", len(released)
            )
        if self.scheduler is not None:
            self.scheduler.stop()
        self.watcher.stop()
        await asyncio.to_thread(self.service.shutdown, "the server shut down", self.shutdown_timeout_seconds)
        await asyncio.to_thread(self.notifier.close, timeout=10)
        if self._previous_home_env is None:
            os.environ.pop(HOME_ENV, None)
        else:
            os.environ[HOME_ENV] = self._previous_home_env
