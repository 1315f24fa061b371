"""``jupyter orchestrate``: the command line (click + rich), a thin layer over :class:`~.service.OrchestrateService`.

Exit codes: 0 the run succeeded (or the command did its job), 1 the run failed or was canceled, or the state
database cannot be used (full disk, damaged, locked: one ``error:`` line naming the file), 2 invalid job,
parameters or usage (validation problems are printed one per line as ``path: field: problem``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jupyter_orchestrate.errors import (
    ConflictError,
    NotFoundError,
    OrchestrateError,
    Problem,
    ValidationError,
)
from jupyter_orchestrate.models import (
    HEARTBEAT_TIMEOUT_SECONDS,
    MAX_ID,
    MAX_PARALLEL_TASKS,
    Run,
    RunStatus,
    TaskRun,
    TaskRunStatus,
    cell_label,
    code_cell_progress,
    iteration_counts,
    split_iteration_key,
)
from jupyter_orchestrate.schemas.documents import AttemptEnvironment, Document, RunDocument, RunListDocument
from jupyter_orchestrate.schemas.events import ProgressEvent, RunStatusEvent, TaskStatusEvent, parse_event
from jupyter_orchestrate.status_colors import look

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
for _console in (out, err):
    if not _console.is_terminal and "COLUMNS" not in os.environ:
        _console.width = 160  # logs and pipes: keep table rows on one line


def _status(text: str) -> Text:
    return Text(text, style=look(text).rich)


def _state_home(ctx: click.Context, start: str | None = None, *, start_name: str = "the job folder") -> Any:
    """The command's :class:`~.workspace.StateHome`; the first call decides (``--home``, else
    ``$JUPYTER_ORCHESTRATE_HOME``, else found walking up from ``start`` or the current directory, else new; see
    :func:`~.workspace.find_state_home`). Nothing is printed or created here: each command names the home in its
    own output (:func:`_home_line`, ``state_home`` in ``--json``) and :func:`_fail` in its error."""
    from jupyter_orchestrate.workspace import find_state_home

    if "state_home" not in ctx.obj:
        ctx.obj["state_home"] = find_state_home(start, explicit=ctx.obj.get("home"), start_name=start_name)
    return ctx.obj["state_home"]


def _home_line(ctx: click.Context) -> str:
    """``state home: <path> (<how it was chosen>)``, markup-escaped."""
    return f"state home: {escape(str(ctx.obj['state_home']))}"


def _service(ctx: click.Context, **options: Any) -> Any:
    """The command's :class:`~.service.OrchestrateService` on its state home (:func:`_state_home`, called
    first); ``options``: its keyword arguments, first call only (``existing=True`` for commands that only read:
    NotFoundError "no runs yet in state home ..." when there is no database, and nothing is created)."""
    from jupyter_orchestrate.service import OrchestrateService

    if "service" not in ctx.obj:
        ctx.obj["service"] = OrchestrateService(_state_home(ctx).path, **options)
    return ctx.obj["service"]


def _notifier(service: Any) -> Any:
    """Send the job's notifications (webhooks, email via JUPYTER_ORCHESTRATE_SMTP_*) for runs of this process."""
    from jupyter_orchestrate.notifications import Notifier, SmtpConfig

    try:
        smtp = SmtpConfig.from_env()
    except ValueError as exc:
        _fail(ValidationError(Problem("environment", "JUPYTER_ORCHESTRATE_SMTP_*", str(exc))))
    notifier = Notifier(service, smtp=smtp)
    service.listeners.append(notifier)
    return notifier


def _fail(exc: OrchestrateError) -> None:
    ctx = click.get_current_context(silent=True)
    chosen = ctx.obj.get("state_home") if ctx is not None and ctx.obj else None
    if isinstance(exc, ValidationError):
        for problem in exc.problems:
            err.print(f"[red]error:[/red] {escape(str(problem))}")
        if chosen is not None:
            err.print(f"state home: {escape(str(chosen))}")
    else:  # one line, naming the state home unless the message does (a store error names its database file)
        where = f" (state home: {chosen})" if chosen is not None and str(chosen.path) not in str(exc) else ""
        err.print(f"[red]error:[/red] {escape(str(exc) + where)}")
    sys.exit(2 if isinstance(exc, (ValidationError, NotFoundError, ConflictError)) else 1)


def _document(ctx: click.Context, doc: Document | dict[str, Any]) -> None:
    """Print a ``--json`` document (one of :mod:`~.schemas.documents`, as the REST API serves it) with the
    ``state_home`` it was read from or recorded in."""
    data = doc.json_data() if isinstance(doc, Document) else doc
    out.print_json(json.dumps({**data, "state_home": str(ctx.obj["state_home"].path)}, default=str))


def _parameters(items: tuple[str, ...]) -> dict[str, str]:
    from jupyter_orchestrate.parameters import parse_assignments

    return parse_assignments(items)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}m"


def _set_home(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["home"] = value


RUN_ID = click.IntRange(
    1, MAX_ID
)  # SQLite integers: a larger id cannot exist (a usage error, not an overflow)
MAX_PARALLEL = click.IntRange(1, MAX_PARALLEL_TASKS)

HOME_HELP = (
    "State home: database, executed notebooks, logs (else JUPYTER_ORCHESTRATE_HOME; else the nearest "
    "orchestrate_runs/ or old .orchestrate/ walking up from the job folder or the current directory; else a new "
    "orchestrate_runs/ at the git repository's root, or here)"
)
home_option = click.option(
    "--home",
    type=click.Path(file_okay=False),
    expose_value=False,
    callback=_set_home,
    help=HOME_HELP + "; also before the command",
)


class _Commands(click.Group):
    """The command group: an :class:`OrchestrateError` a command did not handle itself (e.g. a state database
    that is damaged or on a full disk) ends the command with one ``error:`` line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OrchestrateError as exc:
            _fail(exc)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help=HOME_HELP)
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Run folders of tagged notebooks as jobs: parallel papermill DAGs, recorded and repairable."""
    ctx.ensure_object(dict)
    ctx.obj.setdefault("home", home)


keep_failed_kernels_option = click.option(
    "--keep-failed-kernels",
    "keep_failed_kernels",
    type=click.FloatRange(0, 7 * 24 * 3600),
    metavar="SECONDS",
    help="Keep the kernel of a task that fails in a cell alive this long, to debug it "
    "(jupyter console --existing) and resume from the failed cell (repair --resume). Default: the task's "
    "keep_failed_kernels_seconds, else 0 (off); a resume that fails again keeps it as long as before.",
)
"""``--keep-failed-kernels SECONDS`` of ``run`` and ``repair``."""


def executor_options(command: Any) -> Any:
    """``--executor local|dask`` and ``--dask-scheduler ADDRESS`` of ``run`` and ``repair``."""
    command = click.option(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="The Dask scheduler for --executor dask (tcp://host:8786; default: job.yaml's executor.scheduler, "
        "else $JUPYTER_ORCHESTRATE_DASK_SCHEDULER, else a LocalCluster for the run).",
    )(command)
    return click.option(
        "--executor",
        "executor_type",
        type=click.Choice(["local", "dask"]),
        help="Where attempts execute (default: job.yaml's executor.type, else local).",
    )(command)


def _wants_dask(executor_type: str | None, job: Any, scheduler: str | None) -> bool:
    """Whether a run goes to Dask: ``--executor dask``, else job.yaml's executor (``--dask-scheduler`` alone
    implies dask)."""
    if executor_type is not None:
        return executor_type == "dask"
    settings = getattr(job, "executor", None)
    return scheduler is not None or (settings is not None and settings.type.value == "dask")


@main.command()
@home_option
@click.argument("path", type=click.Path())
@click.pass_context
def validate(ctx: click.Context, path: str) -> None:
    """Check the job at PATH (a folder of notebooks) without starting any kernel."""
    from jupyter_orchestrate.discovery import validate_job

    job, problems = validate_job(path)
    errors = [p for p in problems if not p.is_warning]
    for problem in errors:
        err.print(f"[red]error:[/red] {escape(str(problem))}")
    for problem in problems:
        if problem.is_warning:
            err.print(f"[yellow]warning:[/yellow] {escape(str(problem))}")
    if errors:
        broken = [t.task_key for t in job.tasks if t.problem] if job else []
        if job is not None and broken:
            err.print(
                f"a run would fail {', '.join(broken)} at once (and what depends on it by run_if) and run the other tasks"
            )
        sys.exit(2)
    assert job is not None
    _state_home(ctx, path)  # where its runs would be recorded; nothing is created
    out.print(
        f"job [bold]{job.name}[/bold] is valid: {len(job.tasks)} task(s); runs are recorded in the "
        f"{_home_line(ctx)}"
    )
    lines = []
    for task in job.tasks:
        deps = f" <- {', '.join(task.depends_on)}" if task.depends_on else ""
        params = ", ".join(p.name for p in task.notebook_parameters)
        what = task.target if task.notebook is None else f"{task.notebook}, kernel {task.kernel_name}"
        group = f"  group: {task.group}" if task.group else ""
        lines.append(
            f"  {task.task_key} ({what}){deps}{group}" + (f"  parameters: {params}" if params else "")
        )
    if lines:  # one print: rich's cost per call was a fifth of validating a 1,000-task job
        out.print("\n".join(lines))


@dataclass
class _TaskLine:
    """One task's row of the live view: its status, attempts so far, cell i of n, start/end (monotonic s)."""

    status: TaskRunStatus
    attempt: int
    reason: str | None = None
    cell: int | None = None
    total: int | None = None
    started: float | None = None
    ended: float | None = None


class _Progress:
    """Live terminal view of a run: one row per task (status, attempt, cell i of n, duration)."""

    def __init__(self, run: Run, live: bool):
        self.rows: dict[str, _TaskLine] = {
            t.task_key: _TaskLine(
                status=t.status,
                attempt=len(t.attempts),
                reason=t.status_reason if t.status.is_failure else None,
            )
            for t in run.task_runs
        }
        #: for-each task -> the status of each of its iterations (by map_index): shown as counts on its row
        self.iterations: dict[str, dict[int, TaskRunStatus]] = {}
        self.run_id = run.run_id
        self.job_name = run.job_name
        self.run_status = RunStatus.running
        self.live = live
        self.lock = threading.Lock()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        event = parse_event(kind, payload)
        with self.lock:
            if isinstance(event, RunStatusEvent):
                self.run_status = event.status
                if not self.live:
                    err.print(
                        f"run {self.run_id}: {event.status.value}"
                        + (f" ({event.reason})" if event.reason else "")
                    )
                return
            iteration = split_iteration_key(event.task_key)
            if iteration is not None:
                if isinstance(event, TaskStatusEvent):
                    self.iterations.setdefault(iteration[0], {})[iteration[1]] = event.status
                    if not self.live:
                        reason = f": {event.reason}" if event.reason else ""
                        err.print(f"  {event.task_key}: {event.status.value}{reason}")
                return
            row = self.rows[event.task_key]
            if isinstance(event, ProgressEvent):
                row.cell, row.total = event.cell, event.total
                return
            status = event.status
            row.status = status
            row.attempt = event.attempt_number or row.attempt
            if status == TaskRunStatus.running:
                row.started, row.ended, row.cell, row.reason = time.monotonic(), None, None, None
            elif status.is_terminal or status == TaskRunStatus.up_for_retry:
                row.ended = time.monotonic()
                row.reason = event.reason
            if not self.live:
                reason = f": {event.reason}" if event.reason else ""
                err.print(f"  {event.task_key}: {status.value}{reason}")

    def __rich__(self) -> Table:
        with self.lock:
            table = Table(
                title=f"run {self.run_id} of {self.job_name}: {self.run_status.value}", title_justify="left"
            )
            for col in ("task", "status", "attempt", "progress", "duration", "detail"):
                table.add_column(col, overflow="fold" if col == "detail" else "ellipsis")
            now = time.monotonic()
            for key, row in self.rows.items():
                progress = ""
                if row.status == TaskRunStatus.running and row.total:
                    progress = code_cell_progress(row.cell or 0, row.total)
                if key in self.iterations:
                    progress = iteration_counts(list(self.iterations[key].values()))
                duration = ""
                if row.started is not None:
                    duration = _seconds((row.ended or now) - row.started)
                table.add_row(
                    key,
                    _status(row.status.value),
                    str(row.attempt or ""),
                    progress,
                    duration,
                    (row.reason or "")[:120],
                )
            return table


def _execute(ctx: click.Context, runner: Any, service: Any, as_json: bool, notifier: Any) -> None:
    run = service.get_run(runner.run_id)
    interactive = err.is_terminal and not as_json
    progress = _Progress(run, live=interactive)
    runner.listeners.append(progress)

    def on_signal(signum: int, frame: Any) -> None:
        runner.cancel(f"canceled by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    service.start_monitor()  # while this run executes, end other runs of the state home whose owner died
    err.print(
        f"run [bold]{runner.run_id}[/bold] of job [bold]{runner.job.name}[/bold] started "
        f"({len(runner.job.tasks)} tasks, up to {runner.active.max_parallel} in parallel); {_home_line(ctx)}"
    )
    for key, resume in runner.resume.items():
        err.print(
            f"resuming [bold]{escape(key)}[/bold] from {cell_label(resume.from_cell_index)} in the kept kernel "
            f"of attempt {resume.failed_attempt_number} (pid {resume.kernel_pid})"
        )
    for task in runner.job.tasks:
        for warning in task.warnings:
            err.print(f"[yellow]warning:[/yellow] {escape(task.task_key)}: {escape(warning)}")
    try:
        if interactive:
            with Live(progress, console=err, refresh_per_second=4, transient=False):
                status = runner.execute()
        else:
            status = runner.execute()
    finally:
        runner.executor.close()
        notifier.close(timeout=30)  # deliver pending notifications before the process exits
        for s, handler in previous.items():
            signal.signal(s, handler)
    run = service.get_run(runner.run_id)
    if as_json:
        _document(ctx, RunDocument.build(run))
    else:
        _print_run(run, console=err if interactive else out, header=not interactive)
    sys.exit(0 if status == RunStatus.succeeded else 1)


#: a for-each task with more iterations than this lists only its unsuccessful ones in ``show``
SHOWN_ITERATIONS = 20


def _print_run(run: Run, console: Console = out, header: bool = True) -> None:
    if header:
        console.print(
            f"run [bold]{run.run_id}[/bold] of job [bold]{run.job_name}[/bold]: ",
            _status(run.status.value),
            f"  ({_seconds(run.duration_seconds)}, {run.repair_count} repair(s))"
            if run.duration_seconds
            else "",
        )
    table = Table(show_edge=False)
    for col in ("task", "status", "attempts", "duration", "failure", "executed notebook"):
        table.add_column(col, overflow="fold")
    rows: list[tuple[str, TaskRun | None]] = []
    for t in run.task_runs:
        rows.append((t.task_key, t))
        many = len(t.iterations) > SHOWN_ITERATIONS
        for i in t.iterations:
            if not many or i.status != TaskRunStatus.succeeded:
                rows.append((f"  [{i.map_index}] {json.dumps(i.input)[:60]}", i))
        if many:
            ok = sum(i.status == TaskRunStatus.succeeded for i in t.iterations)
            rows.append((f"  ({ok} succeeded iteration(s) not listed)", None))
    for label, row in rows:
        if row is None:
            table.add_row(label, "", "", "", "", "")
            continue
        t = row
        last = t.last_attempt
        failure = ""
        if last and last.error and t.status.is_failure:
            e = last.error
            where = (
                f"{cell_label(e.cell_index)}: "
                if e.cell_index is not None or e.executed_cell_index is not None
                else ""
            )
            failure = f"{where}{e.ename}: {e.evalue}"
        elif t.status_reason and (t.status.is_failure or t.status == TaskRunStatus.skipped):
            failure = t.status_reason  # run_if not met, canceled, or a task that could not start (no attempt)
        table.add_row(
            label,
            _status(t.status.value),
            iteration_counts([i.status for i in t.iterations]) if t.iterations else str(len(t.attempts)),
            _seconds(t.duration_seconds),
            failure,
            os.path.relpath(last.notebook_path) if last and last.notebook_path else "",
        )
    console.print(table)
    if run.parent_run_id is not None:
        console.print(f"started by task {escape(run.parent_task_key or '')} of run {run.parent_run_id}")
    for child in run.child_runs:
        console.print(
            f"{escape(child.task_key)}: run {child.run_id} of job {escape(child.job_name)} ({child.status.value})"
        )
    for t in run.task_runs:  # condition tasks: what they compared and their outcome
        if t.notebook is None and t.status == TaskRunStatus.succeeded and t.status_reason:
            console.print(f"{escape(t.task_key)}: {escape(t.status_reason)}")
    for t in run.task_runs:  # the dask executor: where each task's last attempt ran
        ran = t.last_attempt.environment if t.last_attempt else {}
        if ran.get("dask_worker"):
            console.print(
                f"{escape(t.task_key)} ran on {escape(str(ran.get('host')))} (Dask worker {escape(ran['dask_worker'])})"
            )
    kept = [t.kept_kernel for t in run.task_runs if t.kept_kernel is not None]
    for k in kept:
        console.print(
            f"kept kernel of [bold]{escape(k.task_key)}[/bold] (failed in {cell_label(k.cell_index)}, pid "
            f"{k.kernel_pid}) until {k.expires_time[:19].replace('T', ' ')} UTC; debug it with:"
        )
        console.print(Text(f"  {k.console_command}"), soft_wrap=True)
    if run.status == RunStatus.failed:
        if kept:
            console.print(
                f"resume from the failed cell with: jupyter orchestrate repair {run.run_id} --resume "
                "(after fixing the cell; the kernel keeps the earlier cells' state)"
            )
        console.print(
            f"repair with: jupyter orchestrate repair {run.run_id}"
            + (" (add -p name=value to change parameters)")
        )


@main.command()
@home_option
@click.argument("path", type=click.Path())
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a job or notebook parameter (repeatable); typed like the parameter's default.",
)
@click.option(
    "--max-parallel",
    type=MAX_PARALLEL,
    help="Tasks executing at once (default: job's max_parallel_tasks, else CPU cores).",
)
@keep_failed_kernels_option
@executor_options
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as one JSON document.")
@click.pass_context
def run(
    ctx: click.Context,
    path: str,
    parameters: tuple[str, ...],
    max_parallel: int | None,
    keep_failed_kernels: float | None,
    executor_type: str | None,
    dask_scheduler: str | None,
    as_json: bool,
) -> None:
    """Run the job at PATH (a folder of tagged notebooks) and wait for it to finish."""
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.executors.base import TaskExecutor
    from jupyter_orchestrate.executors.local import LocalExecutor

    executor: TaskExecutor = LocalExecutor()  # its forkserver warms up while the job is validated
    try:
        home = _state_home(ctx, path)
        job = load_job(path)
        if _wants_dask(executor_type, job, dask_scheduler):
            from jupyter_orchestrate.models import ExecutorType

            executor.close()
            executor = _service(ctx).executor_for(job, ExecutorType.dask, dask_scheduler)
        elif not keep_failed_kernels:  # else kernels must outlive this process: the workers launch them
            from jupyter_orchestrate.engine.prelaunch import prelaunch_kernels

            parallel = max_parallel or job.max_parallel_tasks or os.cpu_count() or 1
            prelaunch_kernels(job, executor, parallel, str(Path(home.path) / "runs" / "prelaunched"))
        # the first line comes before the store and the execution machinery are imported (PERFORMANCE.md)
        err.print(f"job [bold]{escape(job.name)}[/bold]: {len(job.tasks)} task(s); starting a run")
        service = _service(ctx)
        notifier = _notifier(service)
        runner = service.new_run(
            path,
            parameters=_parameters(parameters),
            max_parallel=max_parallel,
            executor=executor,
            job=job,
            keep_failed_kernels_seconds=keep_failed_kernels,
        )
    except OrchestrateError as exc:
        executor.close()
        _fail(exc)
    _execute(ctx, runner, service, as_json, notifier)


@main.command()
@home_option
@click.argument("run_id", type=RUN_ID)
@click.option(
    "--task",
    "task_keys",
    multiple=True,
    metavar="TASK_KEY",
    help="Re-execute this task (repeatable); default: every unsuccessful task.",
)
@click.option("--rerun-dependents", is_flag=True, help="Also re-execute downstream tasks that succeeded.")
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a parameter for the repair.",
)
@click.option(
    "--max-parallel",
    type=MAX_PARALLEL,
    help="Tasks executing at once (default: job's max_parallel_tasks, else CPU cores).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Re-execute each failed task from its failed cell in its kept kernel (the notebook as it is now on "
    "disk; the earlier cells' state stays), instead of from the top.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: resume although cells before the failed one changed since the failed attempt.",
)
@keep_failed_kernels_option
@executor_options
@click.option("--dry-run", is_flag=True, help="Print what would re-execute and what is reused, and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the repaired run (or the plan) as JSON.")
@click.pass_context
def repair(
    ctx: click.Context,
    run_id: int,
    task_keys: tuple[str, ...],
    rerun_dependents: bool,
    parameters: tuple[str, ...],
    max_parallel: int | None,
    resume: bool,
    force: bool,
    keep_failed_kernels: float | None,
    executor_type: str | None,
    dask_scheduler: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Re-execute the failed tasks of RUN_ID and what depends on them, reusing what succeeded.

    With --resume, a failed task whose kernel was kept (run --keep-failed-kernels) re-executes from its failed
    cell in that kernel; exit code 2 when a kernel is gone (then repair without --resume).
    """
    executor: Any = None
    if not dry_run and not _wants_dask(executor_type, None, dask_scheduler):
        from jupyter_orchestrate.executors.local import LocalExecutor

        executor = LocalExecutor()  # its forkserver's imports overlap the repair's planning (PERFORMANCE.md)
    try:
        _state_home(ctx)
        service = _service(ctx)
        if not dry_run:
            from jupyter_orchestrate.discovery import load_job

            try:
                job = load_job(service.get_run(run_id).job_path)
            except OrchestrateError:
                job = None  # new_repair says what is wrong
            if _wants_dask(executor_type, job, dask_scheduler):
                from jupyter_orchestrate.models import ExecutorType

                if resume:
                    raise ConflictError(
                        "--resume executes in a kernel kept on this machine, which the dask executor does not "
                        f"keep; repair from the top (jupyter orchestrate repair {run_id}) or use --executor local"
                    )
                if executor is not None:
                    executor.close()
                    executor = None
                executor = service.executor_for(job, ExecutorType.dask, dask_scheduler)
        if dry_run:
            plan, _, _ = service.plan_repair(
                run_id,
                task_keys=list(task_keys) or None,
                rerun_dependents=rerun_dependents,
                parameters=_parameters(parameters),
                resume=resume,
                force=force,
            )
            if as_json:
                _document(ctx, plan)
            else:
                out.print(_home_line(ctx))
                out.print(f"repair of run {run_id} would re-execute: {', '.join(plan.task_keys)}")
                out.print(f"reused: {', '.join(plan.reused_task_keys) or 'nothing'}")
                if plan.parameters:
                    out.print(f"parameters: {json.dumps(plan.parameters)}")
            return
        notifier = _notifier(service)
        runner = service.new_repair(
            run_id,
            task_keys=list(task_keys) or None,
            rerun_dependents=rerun_dependents,
            parameters=_parameters(parameters),
            max_parallel=max_parallel,
            resume=resume,
            force=force,
            keep_failed_kernels_seconds=keep_failed_kernels,
            executor=executor,
        )
    except OrchestrateError as exc:
        if executor is not None:
            executor.close()
        _fail(exc)
    _execute(ctx, runner, service, as_json, notifier)


@main.command()
@home_option
@click.option("--job", "job_name", help="Only runs of this job (its name).")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(1, MAX_ID), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs(ctx: click.Context, job_name: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first (reads only: an empty workspace gets no state home)."""
    chosen = _state_home(ctx)
    try:
        service = _service(ctx, existing=True)
    except NotFoundError:
        found = []
    else:
        found = service.list_runs(
            job_name=job_name, status=RunStatus(status) if status else None, limit=limit
        )
    if as_json:  # the REST API's run listing (job_id null: no server root); no next_before: no paging here
        _document(ctx, RunListDocument.build(found, limit).model_dump(mode="json", exclude={"next_before"}))
        return
    if not found:
        out.print(
            f"no runs yet in {escape(str(chosen))}"
            + ("" if job_name or status else ": start one with  jupyter orchestrate run PATH")
        )
        return
    out.print(_home_line(ctx))
    table = Table(show_edge=False)
    for col in ("run", "job", "status", "started (UTC)", "duration", "repairs", "tasks"):
        table.add_column(col)
    for r in found:
        tasks = Text()
        for t in r.task_runs:
            tasks.append("■", style=look(t.status).rich)
        table.add_row(
            str(r.run_id),
            r.job_name,
            _status(r.status.value),
            r.start_time[:19].replace("T", " "),
            _seconds(r.duration_seconds),
            str(r.repair_count or ""),
            tasks,
        )
    out.print(table)


@main.command()
@home_option
@click.argument("run_id", type=RUN_ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """Show a run: each task's status, attempts, duration and, for failures, the failing cell and error."""
    _state_home(ctx)
    try:
        found = _service(ctx, existing=True).get_run(run_id)
    except NotFoundError as exc:
        _fail(NotFoundError(f"run {run_id} not found: {exc}") if "no runs yet" in str(exc) else exc)
    if as_json:
        _document(ctx, RunDocument.build(found))
        return
    out.print(_home_line(ctx))
    _print_run(found)
    for t in found.task_runs:
        for warning in t.warnings:
            out.print(f"[yellow]warning:[/yellow] {escape(t.task_key)}: {escape(warning)}")
    for t in found.task_runs:
        last = t.last_attempt
        if last and last.environment:
            e = AttemptEnvironment.model_validate(last.environment)
            where = f"python {e.python}" if e.python else f"kernel {e.kernel_name}"
            extra = f", packages {e.package_hash} ({len(e.freeze)} pinned)" if e.package_hash else ""
            names = f", env: {', '.join(e.env_names)}" if e.env_names else ""
            out.print(f"[dim]{t.task_key}: {where}{extra}{names}[/dim]")
    for t in found.task_runs:
        for a in t.attempts:
            if a.resumed_from_cell is not None:
                out.print(
                    f"{escape(t.task_key)}: attempt {a.attempt_number} resumed from {cell_label(a.resumed_from_cell)} "
                    f"in the kept kernel ({a.reused_cells or 0} earlier code cell(s) reused, not re-executed)"
                )
    for t in [x for task_run in found.task_runs for x in (task_run, *task_run.iterations)]:
        last = t.last_attempt
        if t.status.is_failure and last and last.error and last.error.cell_source:
            out.print(
                f"\n[bold]{t.task_key}[/bold] failed in {cell_label(last.error.cell_index)} of {t.notebook}:"
            )
            out.print(Text(last.error.cell_source), style="dim")


@main.group()
def env() -> None:
    """Manage the cached environments built for tasks' requirements."""


@env.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def env_list(ctx: click.Context, as_json: bool) -> None:
    """List the cached environments (hash, requirements, size, last use)."""
    from jupyter_orchestrate.environments import EnvironmentCache

    found = EnvironmentCache(_state_home(ctx).path).list()
    if as_json:
        _document(ctx, {"environments": found})
        return
    out.print(_home_line(ctx))
    if not found:
        out.print("no cached environments (tasks with environment.requirements build them)")
        return
    table = Table(show_edge=False)
    for col in ("hash", "requirements", "size", "last used"):
        table.add_column(col, overflow="fold")
    for e in found:
        table.add_row(
            e["hash"],
            ", ".join(e["requirements"]),
            f"{e['size_bytes'] / 1e6:.1f} MB",
            str(e.get("last_used_time") or ""),
        )
    out.print(table)


@env.command("build")
@home_option
@click.argument("path", type=click.Path())
@click.pass_context
def env_build(ctx: click.Context, path: str) -> None:
    """Build (or reuse) the environments the tasks of the job at PATH need, before any run."""
    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.environments import EnvironmentCache, task_requirements

    try:
        cache = EnvironmentCache(_state_home(ctx, path).path)
        job = load_job(path)
        out.print(_home_line(ctx))
        for task in job.tasks:
            requirements = task_requirements(task.environment, job.path)
            if requirements:
                built = cache.ensure(requirements, log=sys.stderr)
                out.print(
                    f"{task.task_key}: environment {built.hash} {'built' if built.built_now else 'reused'} ({built.python})"
                )
    except OrchestrateError as exc:
        _fail(exc)


@env.command("prune")
@home_option
@click.option(
    "--unused-days", type=float, default=30.0, show_default=True, help="Remove environments unused this long."
)
@click.pass_context
def env_prune(ctx: click.Context, unused_days: float) -> None:
    """Remove cached environments that no run used for --unused-days."""
    from jupyter_orchestrate.environments import EnvironmentCache

    home = _state_home(ctx).path
    removed = EnvironmentCache(home).prune(unused_for_seconds=unused_days * 86400)
    out.print(_home_line(ctx))
    out.print(f"removed {len(removed)} environment(s)" + (f": {', '.join(removed)}" if removed else ""))


@main.command()
@home_option
@click.argument("run_id", type=RUN_ID)
@click.pass_context
def cancel(ctx: click.Context, run_id: int) -> None:
    """Cancel a running run (its orchestrator stops the kernels within about a second)."""
    _state_home(ctx)
    try:
        requested = _service(ctx).cancel(run_id)
    except OrchestrateError as exc:
        _fail(exc)
    out.print(_home_line(ctx))
    out.print(f"cancel of run {run_id} requested" if requested else f"run {run_id} has already finished")


@main.command()
@home_option
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False, exists=True))
@click.option(
    "--lease-seconds",
    type=float,
    default=15.0,
    show_default=True,
    help="Lease time: another scheduler takes over this long after this one dies.",
)
@click.option("--poll-seconds", type=float, default=1.0, show_default=True, help="Time between checks.")
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=1.0),
    default=HEARTBEAT_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds without a heartbeat after which a run's orchestrator is taken for dead (its run fails, "
    "its slot frees).",
)
@click.option(
    "--monitor-seconds",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Time between checks for runs whose orchestrator died.",
)
@click.pass_context
def scheduler(
    ctx: click.Context,
    roots: tuple[str, ...],
    lease_seconds: float,
    poll_seconds: float,
    heartbeat_timeout: float,
    monitor_seconds: float,
) -> None:
    """Run the scheduler headless: fire the schedules of the jobs under ROOTS (default: .) until stopped.

    Several schedulers (or the Jupyter server's) may share a state home: a leader lease makes exactly one fire.
    SIGTERM or SIGINT stops firing, cancels the runs in flight and waits for them to record ``canceled``.
    """
    from jupyter_orchestrate.scheduling.scheduler import Scheduler

    _state_home(ctx, roots[0] if roots else None, start_name="the scheduler's first root")
    service = _service(ctx, heartbeat_timeout_seconds=heartbeat_timeout)
    service.start_monitor(monitor_seconds)
    sched = Scheduler(
        service,
        [Path(r) for r in roots or (".",)],
        lease_seconds=lease_seconds,
        poll_seconds=poll_seconds,
        on_fire=lambda f: err.print(
            f"fire {f.schedule_name} of {f.job_path} at {f.scheduled_time}: {f.status}"
            + (f" run {f.run_id}" if f.run_id else "")
            + (f" ({f.reason})" if f.reason else "")
        ),
    )

    def on_signal(signum: int, frame: Any) -> None:
        sched.stop()

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    notifier = _notifier(service)
    err.print(
        f"scheduler {sched.holder} watching {', '.join(str(r) for r in sched.roots)}; {_home_line(ctx)}"
    )
    sched.run_forever()
    service.shutdown("the scheduler shut down")
    notifier.close(timeout=30)


def _instant(text: str, end: bool) -> Any:
    """A --start/--end value: ISO date (whole day, UTC) or datetime (UTC unless it has an offset)."""
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or datetime (e.g. 2026-01-31 or 2026-01-31T06:00)"
        ) from None
    if len(text) == 10 and end:
        value += dt.timedelta(days=1, microseconds=-1)  # a date as --end includes that whole day
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


@main.command()
@home_option
@click.argument("path", type=click.Path())
@click.option(
    "--start", "start", required=True, help="First logical date or time (ISO; UTC unless an offset is given)."
)
@click.option("--end", "end", required=True, help="Last logical date or time, inclusive.")
@click.option(
    "--schedule", "schedule", help="Which schedule's fire times (default: the job's first schedule)."
)
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a parameter for every run.",
)
@click.option("--dry-run", is_flag=True, help="Print the fire times and stop.")
@click.pass_context
def backfill(
    ctx: click.Context,
    path: str,
    start: str,
    end: str,
    schedule: str | None,
    parameters: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Create one run per fire time of a schedule between --start and --end, oldest first.

    Each run gets its fire time as {{job.trigger.time}} (the logical date); at most max_concurrent_runs of the
    job execute at once. Exit code 0 when every run succeeded, 1 otherwise.
    """
    import time as _time

    from jupyter_orchestrate.discovery import load_job
    from jupyter_orchestrate.models import Trigger
    from jupyter_orchestrate.scheduling.policy import concurrency_block

    try:
        _state_home(ctx, path)
        service = _service(ctx)
        job = load_job(path)
        name, chosen, times = service.backfill(
            job, _instant(start, False), _instant(end, True), schedule=schedule
        )
        overrides = {
            **chosen.parameters,
            **_parameters(parameters),
        }  # like the schedule's own fires, -p on top
    except OrchestrateError as exc:
        _fail(exc)
    if dry_run or not times:
        out.print(f"{len(times)} fire time(s): " + ", ".join(times))
        return
    notifier = _notifier(service)
    service.start_monitor()
    err.print(_home_line(ctx))
    pending = list(times)
    threads: list[tuple[threading.Thread, int]] = []
    statuses: dict[int, RunStatus] = {}

    def on_signal(signum: int, frame: Any) -> None:
        pending.clear()
        service.shutdown(f"backfill stopped by {signal.Signals(signum).name}")

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    try:
        while pending or any(t.is_alive() for t, _ in threads):
            # the scheduler's rule: at most max_concurrent_runs of the job active, in any process
            while pending and concurrency_block(service.store, job.path, job.max_concurrent_runs) is None:
                fire = pending.pop(0)
                runner = service.new_run(
                    job.path,
                    parameters=overrides,
                    trigger=Trigger.schedule,
                    trigger_time=fire,
                    trigger_reason=f"backfill of schedule {name} for {fire}",
                )
                err.print(f"run {runner.run_id} for {fire}")
                thread = service.start(runner)
                threads.append((thread, runner.run_id))
            _time.sleep(0.2)
    except OrchestrateError as exc:
        _fail(exc)
    finally:
        notifier.close(timeout=30)
    for _, run_id in threads:
        statuses[run_id] = service.get_run(run_id).status
    table = Table(show_edge=False)
    for col in ("run", "logical time", "status"):
        table.add_column(col)
    for (_, run_id), fire in zip(threads, times, strict=False):  # fewer threads when canceled
        table.add_row(str(run_id), fire, _status(statuses[run_id].value))
    out.print(table)
    sys.exit(0 if statuses and all(s == RunStatus.succeeded for s in statuses.values()) else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
