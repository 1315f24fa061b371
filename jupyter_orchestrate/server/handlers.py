"""REST handlers under ``/jupyter-orchestrate/api/``: parse -> service call -> JSON. No logic lives here: the
service does the work and builds the documents (:mod:`~jupyter_orchestrate.schemas.documents`), always off
the event loop (:meth:`OrchestrateHandler.blocking`), so a slow disk or a busy database cannot stall the server.

Every handler method is ``@tornado.web.authenticated`` and ``@authorized`` (resource ``orchestrate``).
Errors become ``{"message": ...}`` JSON once, in :class:`OrchestrateHandler`: validation 400, a path outside
the root 403, not found 404 (also for unknown routes below the API prefix), conflict 409, a body over 1 MiB
413, anything else 500 (logged). Every path in a request is confined to the server root by
:func:`~jupyter_orchestrate.workspace.confine`: ``..``, absolute paths and symlinks that lead outside it are
refused (403) and never read.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from jupyter_orchestrate.errors import (
    ConflictError,
    NotFoundError,
    OrchestrateError,
    PathOutsideRootError,
    Problem,
    StoreBusyError,
    StoreError,
    ValidationError,
)
from jupyter_orchestrate.models import MAX_ID, MAX_PARALLEL_TASKS, RunStatus, Trigger
from jupyter_orchestrate.schemas.documents import (
    Document,
    ErrorDocument,
    ErrorProblem,
    LiveKernelDocument,
    SchedulesDocument,
)
from jupyter_orchestrate.server.kept_kernels import register_kept_kernel
from jupyter_orchestrate.workspace import confine

if TYPE_CHECKING:
    from jupyter_orchestrate.server.app import OrchestrateApp
    from jupyter_orchestrate.service import OrchestrateService

API = "/jupyter-orchestrate/api"
AUTH_RESOURCE = "orchestrate"
KEEPALIVE_SECONDS = 15.0
MAX_BODY_BYTES = 1024 * 1024
MAX_RUNS_PAGE = 500  # runs per page of GET runs at most
T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")
P = ParamSpec("P")


class StartRunRequest(BaseModel):
    """Body of ``POST jobs/{job}/runs``."""

    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] = Field(default_factory=dict)
    max_parallel: int | None = Field(default=None, ge=1, le=MAX_PARALLEL_TASKS)


class RepairRequest(BaseModel):
    """Body of ``POST runs/{run_id}/repair``."""

    model_config = ConfigDict(extra="forbid")
    task_keys: list[str] | None = None
    rerun_dependents: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    dry_run: bool = False
    resume: bool = Field(
        default=False, description="Resume each failed task from its failed cell in its kept kernel."
    )
    force: bool = Field(
        default=False, description="With resume: resume although cells before the failed one changed."
    )


class TaskSettingsCheckRequest(BaseModel):
    """Body of ``POST jobs/{job}/tasks/{task_key}/validate``: a task settings change to check, not to write.

    ``changes``: setting -> value as ``PUT jobs/{job}/tasks/{task_key}`` takes them (``null`` removes one);
    ``notebook``: the notebook (relative to the job folder) when it is not yet a task; ``metadata``: its
    ``metadata.orchestrate`` as open in the editor (``null``: not yet a task; left out: the file's).
    """

    model_config = ConfigDict(extra="forbid")
    changes: dict[str, Any] = Field(default_factory=dict)
    notebook: str | None = Field(default=None, max_length=4096)
    metadata: dict[str, Any] | None = None


#: The request bodies, exported with the documents (``jupyter_orchestrate.schemas.export``) for the sidebar.
REQUESTS: tuple[type[BaseModel], ...] = (StartRunRequest, RepairRequest, TaskSettingsCheckRequest)

# first match wins: PathOutsideRootError is a ValidationError
# StoreBusyError: the database lock was held past the busy timeout; retrying later can succeed (503). Other
# StoreErrors (damaged database, full disk) are 500 with their one-line message naming the file.
STATUS_OF = (
    (PathOutsideRootError, 403),
    (ValidationError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (StoreBusyError, 503),
    (StoreError, 500),
)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a number")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@web.stream_request_body
class OrchestrateHandler(ExtensionHandlerMixin, APIHandler):
    """Base handler: the service, path confinement, bounded JSON bodies, and the one error mapping.

    Bodies are streamed (``stream_request_body``) so that one over :data:`MAX_BODY_BYTES` is refused (413)
    without being held in memory: by its ``Content-Length`` before it is read, or while it arrives chunked.
    """

    auth_resource = AUTH_RESOURCE
    _body: bytearray
    _body_too_large = False

    async def prepare(self) -> None:  # type: ignore[override]  # as APIHandler.prepare (no arguments)
        await super().prepare()
        self._body = bytearray()
        length = self.request.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise web.HTTPError(413, f"request body of {length} bytes; at most {MAX_BODY_BYTES} are accepted")

    def data_received(self, chunk: bytes) -> None:
        if len(self._body) + len(chunk) > MAX_BODY_BYTES:
            self._body_too_large = True
            self._body.clear()
        elif not self._body_too_large:
            self._body += chunk

    @property
    def app(self) -> OrchestrateApp:
        """The server extension (its traits, search roots and event bus)."""
        return self.extensionapp  # type: ignore[return-value]  # jupyter_server types it as ExtensionApp

    @property
    def service(self) -> OrchestrateService:
        """The extension's service: every handler's work happens there, off the event loop."""
        return self.app.service

    @property
    def root(self) -> Path:
        return self.app.root

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, OrchestrateError):
            status_code = next((code for cls, code in STATUS_OF if isinstance(exc, cls)), 500)
            self.set_status(status_code)
            problems = exc.problems if isinstance(exc, ValidationError) else None
            body = ErrorDocument(
                message=str(exc),
                problems=None if problems is None else [ErrorProblem.build(p) for p in problems],
            )
            self.finish(json.dumps(body.model_dump(mode="json")))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, OrchestrateError) and not isinstance(value, (web.HTTPError,)):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def json_object(self) -> dict[str, Any]:
        """The request body as a JSON object (``{}`` when empty).

        Raises: HTTPError 413 for a body over :data:`MAX_BODY_BYTES`; ValidationError (400) for anything but
        a JSON object, including NaN, Infinity, numbers too large for a float, and nesting too deep to parse.
        """
        if self._body_too_large:
            raise web.HTTPError(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = bytes(self._body) or b"{}"
        try:
            data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(Problem("request body", "", f"not valid JSON: {exc}")) from None
        except RecursionError:
            raise ValidationError(Problem("request body", "", "not valid JSON: nested too deeply")) from None
        if not isinstance(data, dict):
            raise ValidationError(Problem("request body", "", "must be a JSON object"))
        return data

    def json_body(self, model: type[T]) -> T:
        """Parse the request body as ``model``. Raises ValidationError (400) naming the bad field."""
        data = self.json_object()
        try:
            return model.model_validate(data)
        except PydanticValidationError as exc:
            from jupyter_orchestrate.discovery import pydantic_problems

            raise ValidationError(pydantic_problems("request body", exc)) from None

    def resolve_job(self, job_id: str) -> Path:
        """The job folder for ``job_id`` (a path relative to the server root).

        Raises: HTTPError 400 for absolute paths (and ``~``, NUL, drive letters), PathOutsideRootError (403)
        for paths that lead outside the root (by ``..`` or a symlink), NotFoundError when the folder does not
        exist.
        """
        parts = job_id.replace("\\", "/").split("/")
        if job_id.startswith(("/", "~")) or "\x00" in job_id or ":" in parts[0]:
            raise web.HTTPError(
                400, f"invalid job path {job_id!r}: give a folder relative to the server root"
            )
        path = confine(job_id, self.root, what="job path", within="the server root")
        if not path.is_dir():
            raise NotFoundError(f"no job folder {job_id!r} under the server root")
        return path

    async def job_folder(self, job_id: str) -> Path:
        """:meth:`resolve_job` off the event loop (it resolves symlinks and reads the disk)."""
        return await self.blocking(self.resolve_job, job_id)

    async def blocking(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` off the event loop, in the default thread pool: every service call (SQLite,
        notebook discovery and inspection, logs, path resolution), so a slow disk cannot stall JupyterLab.
        Returns what ``fn`` returns and raises what it raises."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    @staticmethod
    def run_id(text: str) -> int:
        """A run id from the URL; anything but digits, or ids beyond SQLite's integers, cannot exist (404)."""
        if not (text.isascii() and text.isdigit()) or int(text) > MAX_ID:
            raise NotFoundError(f"run {text} not found")
        return int(text)

    def send(self, document: Document, status: int = 200) -> None:
        """Answer ``document`` (one of :mod:`~jupyter_orchestrate.schemas.documents`) as JSON."""
        self.set_status(status)
        self.finish(json.dumps(document.model_dump(mode="json")))

    async def send_run(self, run_id: int, status: int = 200) -> None:
        """Answer the run document of ``run_id`` (read off the event loop)."""
        self.send(await self.blocking(self.service.run_document, run_id, self.root), status)


class JobsHandler(OrchestrateHandler):
    """``GET jobs``: every job under the job roots, with its tasks and its last 10 runs' statuses."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        app = self.app
        found = await self.blocking(
            lambda: self.service.jobs_document(
                app.search_roots(), app.root, max_depth=app.job_search_depth, exclude=(app.home,)
            )
        )
        self.send(found)


class JobHandler(OrchestrateHandler):
    """One route for ``jobs/{job}`` (GET), ``jobs/{job}/runs``, ``jobs/{job}/schedules/{name}/pause|resume|trigger``
    and ``jobs/{job}/tasks/{task_key}/validate`` (POST), and ``jobs/{job}/tasks/{task_key}`` (PUT).

    Job ids may contain slashes (and so ``runs`` or ``tasks`` segments), so the method decides how the path
    is split: GET takes all of it as the job id.
    """

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        """``jobs/{job}``: the job (tasks, DAG edges, parameters, environment; validation problems if invalid).
        ``jobs/{job}/trends?limit=N``: its trends over the last N runs (1..500, default 50) -- unless
        ``{job}/trends`` is itself a folder, which is then the job asked for."""
        match = re.fullmatch(r"(?P<job>.+)/trends", path)
        if match is not None and not await self.blocking(self._is_folder, path):
            try:
                limit = int(self.get_argument("limit", "50"))
            except ValueError as exc:
                raise ValidationError(Problem("query", "limit", str(exc))) from None
            job_path = await self.job_folder(match["job"])
            self.send(await self.blocking(self.service.trends_document, job_path, self.root, limit))
            return
        job_path = await self.job_folder(path)
        self.send(await self.blocking(self.service.job_document, job_path, self.root))

    def _is_folder(self, job_id: str) -> bool:
        """``job_id`` names a folder under the root (no error for one that does not, or leads outside)."""
        try:
            return self.resolve_job(job_id).is_dir()
        except (OrchestrateError, web.HTTPError):
            return False

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        """``jobs/{job}/runs``: start a run (201) with parameter overrides; it executes in the background."""
        action = re.fullmatch(r"(?P<job>.+)/schedules/(?P<name>[^/]+)/(?P<action>pause|resume|trigger)", path)
        if action is not None:
            await self._schedule_action(action["job"], action["name"], action["action"])
            return
        check = re.fullmatch(r"(?P<job>.+)/tasks/(?P<task_key>[^/]+)/validate", path)
        if check is not None:
            await self._check_task_settings(check["job"], check["task_key"])
            return
        match = re.fullmatch(r"(?P<job>.+)/runs", path)
        if match is None:
            raise NotFoundError(f"no such route: POST jobs/{path} (start a run with POST jobs/<job>/runs)")
        job_path = await self.job_folder(match["job"])
        body = self.json_body(StartRunRequest)
        runner = await self.blocking(
            self.service.new_run,
            job_path,
            parameters=body.parameters,
            max_parallel=body.max_parallel,  # None: the job's, else the server default (service.effective_parallelism)
        )
        self.service.start(runner)
        await self.send_run(runner.run_id, 201)

    async def _schedule_action(self, job_id: str, name: str, action: str) -> None:
        """``jobs/{job}/schedules/{name}/pause|resume`` (200, the schedules) or ``.../trigger`` (201, the run)."""
        from jupyter_orchestrate.discovery import load_job

        job = await self.blocking(load_job, await self.job_folder(job_id))
        if action == "trigger":
            runner = await self.blocking(self.service.trigger_schedule, job, name)
            self.service.start(runner)
            await self.send_run(runner.run_id, 201)
            return
        await self.blocking(self.service.set_schedule_paused, job, name, action == "pause")
        self.send(SchedulesDocument(schedules=await self.blocking(self.service.schedules, job)))

    async def _check_task_settings(self, job_id: str, task_key: str) -> None:
        """``jobs/{job}/tasks/{task_key}/validate``: the task settings change checked, nothing written (200,
        :class:`~.documents.TaskSettingsDocument`); the change's problems are a 400 naming the fields."""
        from jupyter_orchestrate.discovery import FROM_FILE

        job_path = await self.job_folder(job_id)
        body = self.json_body(TaskSettingsCheckRequest)
        metadata = body.metadata if "metadata" in body.model_fields_set else FROM_FILE
        self.send(
            await self.blocking(
                self.service.task_settings_document,
                job_path,
                self.root,
                task_key,
                body.changes,
                notebook=body.notebook,
                metadata=metadata,
            )
        )

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        """``jobs/{job}/tasks/{task_key}``: change a task's ``metadata.orchestrate`` (validated; no cycles)."""
        from jupyter_orchestrate.discovery import update_task_settings

        match = re.fullmatch(r"(?P<job>.+)/tasks/(?P<task_key>[^/]+)", path)
        if match is None:
            raise NotFoundError(f"no such route: PUT jobs/{path} (use PUT jobs/<job>/tasks/<task_key>)")
        job_path = await self.job_folder(match["job"])
        changes = self.json_object()  # validated field by field by update_task_settings
        found, problems = await self.blocking(update_task_settings, job_path, match["task_key"], changes)
        self.send(await self.blocking(self.service.job_document, job_path, self.root, found, problems))


class RunsHandler(OrchestrateHandler):
    """``GET runs?job=&status=&trigger=&since=&until=&limit=&before=``: a page of runs newest first (see
    :meth:`~.service.OrchestrateService.runs_document`). ``job``: a job folder relative to the root; ``status``
    and ``trigger``: their enum values; ``since``/``until``: ISO-8601 times (with an offset or ``Z``; a time
    without one is UTC) the runs' start is at or after / before; ``limit`` 1..500 (default 20); ``before``: the
    ``next_before`` of the previous page. A bad value is a 400 naming its field."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        job = self.get_argument("job", None)
        run_status = _query_enum("status", self.get_argument("status", None), RunStatus)
        trigger = _query_enum("trigger", self.get_argument("trigger", None), Trigger)
        since = _query_time("since", self.get_argument("since", None))
        until = _query_time("until", self.get_argument("until", None))
        limit = _query_int("limit", self.get_argument("limit", None), 20, MAX_RUNS_PAGE, "") or 20
        before_id = _query_int("before", self.get_argument("before", None), None, MAX_ID, "a run id ")
        if since is not None and until is not None and since >= until:
            raise ValidationError(Problem("query", "until", "must be later than since"))
        job_path = str(await self.job_folder(job)) if job else None
        found = await self.blocking(
            self.service.runs_document,
            job_path=job_path,
            status=run_status,
            trigger=trigger,
            since=since,
            until=until,
            limit=limit,
            before=before_id,
            root=self.root,
        )
        self.send(found)


E = TypeVar("E", bound=Enum)


def _query_enum(name: str, text: str | None, enum: type[E]) -> E | None:
    """The query parameter ``name`` as a member of ``enum`` (None when absent or empty).

    Raises: ValidationError (400) naming ``name`` and the allowed values."""
    if not text:
        return None
    try:
        return enum(text)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ValidationError(Problem("query", name, f"{text[:40]!r} is not one of {allowed}")) from None


def _query_int(name: str, text: str | None, default: int | None, high: int, what: str) -> int | None:
    """The query parameter ``name`` as an integer in ``1..high`` (``default`` when absent); ``what`` names
    what it is in the message (``"a run id "``).

    Raises: ValidationError (400) naming ``name``."""
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= high:
        raise ValidationError(Problem("query", name, f"must be {what}between 1 and {high}"))
    return int(text)


def _query_time(name: str, text: str | None) -> str | None:
    """The query parameter ``name``, an ISO-8601 time, as the store writes times (UTC, ``+00:00``); a time
    without an offset is UTC.

    Raises: ValidationError (400) naming ``name``."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ValidationError(
            Problem("query", name, f"{text[:40]!r} is not an ISO-8601 time (e.g. 2026-12-01T00:00:00Z)")
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


class RunHandler(OrchestrateHandler):
    """``GET runs/{run_id}``: the run with task runs, attempts, errors, task values and repairs."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        await self.send_run(self.run_id(run_id))


class RepairHandler(OrchestrateHandler):
    """``POST runs/{run_id}/repair``: repair (202) or, with ``dry_run``, return the plan (200)."""

    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        body = self.json_body(RepairRequest)
        run, keys, dependents, parameters = (
            self.run_id(run_id),
            body.task_keys,
            body.rerun_dependents,
            body.parameters,
        )
        if body.dry_run:
            plan, _, _ = await self.blocking(
                self.service.plan_repair,
                run,
                task_keys=keys,
                rerun_dependents=dependents,
                parameters=parameters,
                root=self.root,
                resume=body.resume,
                force=body.force,
            )
            self.send(plan)
            return
        runner = await self.blocking(
            self.service.new_repair,
            run,
            task_keys=keys,
            rerun_dependents=dependents,
            parameters=parameters,
            root=self.root,
            resume=body.resume,
            force=body.force,
        )
        self.service.start(runner)
        await self.send_run(self.run_id(run_id), 202)


class LiveKernelHandler(OrchestrateHandler):
    """``POST runs/{run_id}/tasks/{task_key}/kernel``: register the task's kept kernel with this Jupyter server
    (``GET /api/kernels`` lists it; JupyterLab attaches a console to it) and answer its ``kernel_id``; 409 when
    no live kernel is kept for the task. The same kernel gives the same id; the key is never answered."""

    @web.authenticated
    @authorized
    async def post(self, run_id: str, task_key: str) -> None:
        kept = await self.blocking(self.service.kept_kernel, self.run_id(run_id), task_key, self.root)
        kernel_id = await register_kept_kernel(
            self.serverapp.kernel_manager, kept.connection_file, kept.kernel_pid, kept.kernel_create_time, ""
        )
        self.send(LiveKernelDocument(kernel_id=kernel_id))


class CancelHandler(OrchestrateHandler):
    """``POST runs/{run_id}/cancel``: 202 when requested, 409 when the run has already finished."""

    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        if not await self.blocking(self.service.cancel, self.run_id(run_id)):
            raise ConflictError(f"run {run_id} has already finished")
        await self.send_run(self.run_id(run_id), 202)


class LogHandler(OrchestrateHandler):
    """``GET runs/{run_id}/tasks/{task_key}/attempts/{n}/log``: the attempt log as text (not cell output)."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str, task_key: str, attempt: str) -> None:
        text = await self.blocking(self.service.attempt_log, self.run_id(run_id), task_key, attempt)
        self.finish(text, set_content_type="text/plain; charset=utf-8")


class EventsHandler(OrchestrateHandler):
    """``GET events[?run_id=N]``: Server-Sent Events of run status, task run status and cell progress, for
    scripts (the sidebar reads the same messages from jupyter_server's event bus).

    Authenticated by the ``Authorization: token ...`` header only: a ``token`` in the query string (it would
    be written to access logs and proxies' logs) is refused with 400, and so is a request that a cookie alone
    authenticated (403), while the server has authentication enabled.
    """

    def _header_authenticated(self) -> None:
        if "token" in self.request.query_arguments:
            raise ValidationError(
                "the event stream takes the token in the Authorization header (Authorization: token <token>), "
                "never in the URL"
            )
        if self.identity_provider.auth_enabled and not self.token_authenticated:
            raise web.HTTPError(
                403, "the event stream is authenticated by the Authorization header only (token <token>)"
            )

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self._header_authenticated()
        run_filter = self.get_argument("run_id", None)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        queue = self.app.bus.subscribe()
        try:
            self.write(": connected\n\n")
            await self.flush()
            while not self._closed():
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    continue
                if run_filter is not None and str(event.get("run_id")) != run_filter:
                    continue
                self.write(f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n")
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            self.app.bus.unsubscribe(queue)

    def _closed(self) -> bool:
        """True once the client has gone (tornado's HTTP/1 connection closed its stream)."""
        connection = self.request.connection
        return isinstance(connection, HTTP1Connection) and connection.stream.closed()


class NoRouteHandler(OrchestrateHandler):
    """Every other path below the API prefix: a JSON 404 (tornado's own 404 is an HTML page)."""

    def _no_route(self, path: str) -> None:
        raise NotFoundError(f"no such route: {self.request.method} {path} (see docs/api.md)")

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        self._no_route(path)

    @web.authenticated
    @authorized
    async def post(self, path: str) -> None:
        self._no_route(path)

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        self._no_route(path)

    @web.authenticated
    @authorized
    async def delete(self, path: str) -> None:
        self._no_route(path)

    @web.authenticated
    @authorized
    async def patch(self, path: str) -> None:
        self._no_route(path)


def handlers() -> list[tuple[str, type[OrchestrateHandler]]]:
    """The route table (tornado takes the first pattern that matches; the last one catches every other path).

    Run ids and attempt numbers match any segment, so a non-numeric one is the handler's JSON 404.
    """
    return [
        (rf"{API}/jobs", JobsHandler),
        (rf"{API}/jobs/(?P<path>.+)", JobHandler),
        (rf"{API}/runs", RunsHandler),
        (rf"{API}/runs/(?P<run_id>[^/]+)", RunHandler),
        (rf"{API}/runs/(?P<run_id>[^/]+)/repair", RepairHandler),
        (rf"{API}/runs/(?P<run_id>[^/]+)/cancel", CancelHandler),
        (rf"{API}/runs/(?P<run_id>[^/]+)/tasks/(?P<task_key>[^/]+)/kernel", LiveKernelHandler),
        (
            rf"{API}/runs/(?P<run_id>[^/]+)/tasks/(?P<task_key>[^/]+)/attempts/(?P<attempt>[^/]+)/log",
            LogHandler,
        ),
        (rf"{API}/events", EventsHandler),
        (rf"{API}/(?P<path>.*)", NoRouteHandler),
    ]
