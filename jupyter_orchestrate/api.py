"""The Python API for notebooks and scripts: ``from jupyter_orchestrate import Job, Run``.

A thin layer over :class:`~.service.OrchestrateService` (the same service the CLI and the server use)::

    job = Job.load("example_notebooks/green_energy")
    job.validate()                       # [] or the problems
    run = job.run(parameters={"countries": "NL,DE"}, wait=False)   # executes in a background thread
    run.wait()                           # -> "succeeded" | "failed" | "canceled"
    run.repair(parameters={"threshold": 0.5})
    run.to_dataframe()                   # pandas, one row per task run

Runs execute outside the notebook's kernel thread (a background thread of this process, with a kernel of
their own per task), so the notebook stays responsive; displaying a :class:`Run` shows a live ipywidgets
monitor (:mod:`.widgets`).
"""

from __future__ import annotations

import builtins
import html
import os
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_orchestrate.discovery import validate_job
from jupyter_orchestrate.errors import Problem, ValidationError
from jupyter_orchestrate.models import Job as JobModel
from jupyter_orchestrate.models import Run as RunModel
from jupyter_orchestrate.models import RunStatus, TaskRun
from jupyter_orchestrate.service import OrchestrateService
from jupyter_orchestrate.workspace import StateHome, find_state_home

_services: dict[Path, OrchestrateService] = {}
_services_lock = threading.Lock()


def state_home(
    home: str | os.PathLike[str] | None = None, start: str | os.PathLike[str] | None = None
) -> StateHome:
    """The state home the Python API uses: ``home`` if given, else as the CLI finds it
    (:func:`~.workspace.find_state_home`: ``$JUPYTER_ORCHESTRATE_HOME``, which a Jupyter server sets for its
    kernels; else the nearest existing home walking up from ``start``, a job folder, or the current directory;
    else a new ``orchestrate_runs`` at the git repository's root or the current directory)."""
    return find_state_home(start, explicit=home, explicit_name="home=")


def service_for(home: str | os.PathLike[str] | None = None) -> OrchestrateService:
    """The process-wide service of a state home (``home``, else :func:`state_home` from the current directory)."""
    path = state_home(home).path
    with _services_lock:
        if path not in _services:
            _services[path] = OrchestrateService(path)
        return _services[path]


class Job:
    """A job (a folder of tagged notebooks) to validate and run from Python.

    Use :meth:`load`. Attributes: ``name``, ``path``, ``model`` (the validated :class:`~.models.Job`),
    ``home`` (the state home folder its runs are recorded in; :func:`state_home` from the job folder).
    """

    def __init__(self, model: JobModel, home: str | os.PathLike[str] | None = None):
        self.model = model
        self.home = state_home(home, model.path).path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, home: str | os.PathLike[str] | None = None) -> Job:
        """Discover and validate the job at ``path``.

        Raises:
            ValidationError: the job is invalid (every problem, ``path: field: problem``).
        """
        job, problems = validate_job(Path(path))
        if job is None:
            raise ValidationError([p for p in problems if not p.is_warning])
        return cls(job, home)

    @property
    def name(self) -> str:
        """The job's name (``job.yaml`` ``name``, else the folder name)."""
        return self.model.name

    @property
    def path(self) -> str:
        """The job folder's absolute path."""
        return self.model.path

    def validate(self) -> list[Problem]:
        """Validate the job again as it is on disk now. Returns the problems ([] when valid): errors of the
        job, errors of single tasks (the job still runs the others) and warnings (``Problem.severity``)."""
        job, problems = validate_job(self.path)
        if job is not None:
            self.model = job
        return problems

    def run(
        self,
        parameters: dict[str, Any] | None = None,
        *,
        wait: bool = True,
        max_parallel: int | None = None,
        keep_failed_kernels_seconds: float | None = None,
    ) -> Run:
        """Start a run. ``parameters`` override job and notebook parameters (like ``-p``).

        Args:
            wait: block until the run ends (True) or return at once while it executes in the background.
            keep_failed_kernels_seconds: keep the kernel of a task that fails in a cell alive this long (seconds)
                to debug it and :meth:`Run.resume` (like ``run --keep-failed-kernels``; default 0, off).

        Raises:
            ValidationError: the job or the parameters are invalid (nothing is recorded).
        """
        service = service_for(self.home)
        runner = service.new_run(
            self.path,
            parameters=parameters or {},
            max_parallel=max_parallel,
            keep_failed_kernels_seconds=keep_failed_kernels_seconds,
        )
        thread = service.start(runner)
        run = Run(runner.run_id, home=self.home, thread=thread)
        if wait:
            run.wait()
        return run

    def runs(self, limit: int = 20) -> list[Run]:
        """This job's runs, newest first."""
        return [
            Run(r.run_id, home=self.home)
            for r in service_for(self.home).list_runs(job_path=self.path, limit=limit)
        ]

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(t.task_key)}</b></td><td>{html.escape(', '.join(t.depends_on) or '–')}</td>"
            f"<td>{html.escape(t.target)}</td>"
            f"<td>{html.escape(', '.join(f'{p.name}={p.default}' for p in t.notebook_parameters))}</td></tr>"
            for t in self.model.tasks
        )
        params = "".join(
            f"<li><code>{html.escape(k)}</code> = {html.escape(repr(v))}</li>"
            for k, v in self.model.parameters.items()
        )
        return (
            f"<div><b>Job {html.escape(self.name)}</b> <span style='opacity:.7'>{html.escape(self.path)}</span>"
            f"<div>DAG: {html.escape(self.dag_text())}</div>"
            + (f"<div>Job parameters:<ul>{params}</ul></div>" if params else "")
            + f"<table><tr><th>task</th><th>depends on</th><th>notebook</th><th>parameters</th></tr>{rows}</table></div>"
        )

    def dag_text(self) -> str:
        """The DAG as text, one edge per ``->`` (tasks without edges listed alone)."""
        edges = [f"{a} -> {b}" for a, b in self.model.edges]
        lonely = [
            t.task_key
            for t in self.model.tasks
            if not t.depends_on and not any(a == t.task_key for a, _ in self.model.edges)
        ]
        return "; ".join(edges + lonely)

    def __repr__(self) -> str:
        return f"Job({self.name!r}, {len(self.model.tasks)} tasks, {self.path!r})"


class Run:
    """A run of a job: its status, task runs and attempts, read fresh from the state store.

    Use :meth:`get`, :meth:`list` or :meth:`Job.run`.
    """

    def __init__(
        self,
        run_id: int,
        *,
        home: str | os.PathLike[str] | None = None,
        thread: threading.Thread | None = None,
    ):
        self.run_id = run_id
        self.home = home
        self._thread = thread

    @classmethod
    def get(cls, run_id: int, *, home: str | os.PathLike[str] | None = None) -> Run:
        """The run with this id (in ``home``, else :func:`state_home` from the current directory).
        Raises NotFoundError naming the state home."""
        path = state_home(home).path
        service_for(path).get_run(run_id)
        return cls(run_id, home=path)

    @classmethod
    def list(
        cls, job: str | None = None, *, home: str | os.PathLike[str] | None = None, limit: int = 20
    ) -> list[Run]:
        """Runs, newest first; ``job`` is a job name; ``home`` as :meth:`get`."""
        path = state_home(home).path
        return [cls(r.run_id, home=path) for r in service_for(path).list_runs(job_name=job, limit=limit)]

    @property
    def model(self) -> RunModel:
        """The run as stored now (:class:`~.models.Run`)."""
        return service_for(self.home).get_run(self.run_id)

    @property
    def status(self) -> str:
        """The run's status now: queued, running, succeeded, failed, canceling or canceled."""
        return self.model.status.value

    @property
    def task_runs(self) -> builtins.list[TaskRun]:
        """The task runs now, in DAG order, each with its attempts, errors and task values."""
        return self.model.task_runs

    def wait(self, timeout: float | None = None, poll_seconds: float = 0.25) -> str:
        """Block until the run ends. Returns its status.

        Raises:
            TimeoutError: still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = service_for(self.home).store.run_status(self.run_id)
            if status.is_terminal and (self._thread is None or not self._thread.is_alive()):
                return status.value
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.run_id} is still {status.value} after {timeout} s")
            time.sleep(poll_seconds)

    def repair(
        self,
        tasks: builtins.list[str] | None = None,
        parameters: dict[str, Any] | None = None,
        *,
        rerun_dependents: bool = False,
        resume: bool = False,
        force: bool = False,
        wait: bool = False,
    ) -> Run:
        """Repair the run (Databricks "repair run"): re-execute unsuccessful (or the named) tasks and their
        downstream in this run, in the background. With ``resume``, failed tasks whose kernels were kept
        re-execute from their failed cell in those kernels (``force``: although earlier cells changed). Errors
        as :meth:`~.service.OrchestrateService.new_repair` (ConflictError when a kernel is gone)."""
        service = service_for(self.home)
        runner = service.new_repair(
            self.run_id,
            task_keys=tasks,
            rerun_dependents=rerun_dependents,
            parameters=parameters or {},
            resume=resume,
            force=force,
        )
        self._thread = service.start(runner)
        if wait:
            self.wait()
        return self

    def resume(
        self,
        tasks: builtins.list[str] | None = None,
        parameters: dict[str, Any] | None = None,
        *,
        force: bool = False,
        wait: bool = False,
    ) -> Run:
        """Resume the failed tasks (or ``tasks``) from their failed cells in their kept kernels, then the run's
        downstream tasks, in the background like :meth:`repair` (``wait``: block until the run ends; ``force``:
        although cells before a failed one changed). :meth:`repair` with ``resume=True``."""
        return self.repair(tasks, parameters, resume=True, force=force, wait=wait)

    def cancel(self) -> bool:
        """Cancel the run. Returns False if it had already finished."""
        return service_for(self.home).cancel(self.run_id)

    def to_dataframe(self) -> Any:
        """One row per task run: task_key, status, attempts, duration_seconds, ename, evalue, cell_index,
        executed_notebook, task_values. Requires pandas (``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pandas is optional
            raise ImportError("Run.to_dataframe needs pandas: pip install pandas") from exc
        rows = []
        for t in self.task_runs:
            last = t.last_attempt
            error = last.error if last else None
            rows.append(
                {
                    "task_key": t.task_key,
                    "status": t.status.value,
                    "attempts": len(t.attempts),
                    "duration_seconds": t.duration_seconds,
                    "ename": error.ename if error else None,
                    "evalue": error.evalue if error else None,
                    "cell_index": error.cell_index if error else None,
                    "executed_notebook": last.notebook_path if last else None,
                    "task_values": t.task_values,
                }
            )
        return pd.DataFrame(rows)

    def monitor(self) -> Any:
        """A live ipywidgets monitor of this run (see :class:`~.widgets.RunMonitor`)."""
        from jupyter_orchestrate.widgets import RunMonitor

        return RunMonitor(self)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        try:
            display(self.monitor())  # type: ignore[no-untyped-call]
        except ImportError:  # no ipywidgets: a static table
            display(self.to_dataframe() if _has_pandas() else repr(self))  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        model = self.model
        return f"Run({self.run_id}, job={model.job_name!r}, status={model.status.value!r})"


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["Job", "Run", "RunStatus", "service_for", "state_home"]
