"""Authentication, authorization and path confinement of the REST API. No kernel may start in these tests."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from jupyter_server.auth import Authorizer
from jupyter_server.auth import decorator as auth_decorator
from jupyter_server.auth.decorator import authorized
from traitlets.config import Config

from jupyter_orchestrate.models import RunStatus
from jupyter_orchestrate.server.handlers import API, OrchestrateHandler, handlers
from tests.conftest import write_notebook
from tests.server.conftest import Api

HTTP_METHODS = ("get", "post", "put", "delete", "patch")
PATH_ARGS = {"job": "green_energy", "task_key": "bronze", "run_id": "1", "attempt": "1"}
# jobs/{path}: the method decides how the path splits into a job id and a sub-resource
JOB_PATHS = {"get": "green_energy", "post": "green_energy/runs", "put": "green_energy/tasks/bronze"}


def decorators_of(function: Any) -> list[str]:
    """The decorators wrapping ``function``, outermost first, identified by the code of each wrapper (their
    ``__qualname__`` is copied from the wrapped method by ``functools.wraps``, their code object is not)."""
    found = []
    while hasattr(function, "__wrapped__"):
        code = function.__code__
        if code.co_filename == inspect.getfile(tornado.web) and code.co_qualname.startswith("authenticated."):
            found.append("authenticated")
        elif code.co_filename == inspect.getfile(auth_decorator) and code.co_qualname.startswith(
            "authorized."
        ):
            found.append("authorized")
        else:
            found.append(code.co_qualname)
        function = function.__wrapped__
    return found


def unprotected_methods(handler_class: type) -> list[str]:
    """``Class.method`` for every HTTP method the class implements without ``@authenticated`` then ``@authorized``."""
    problems = []
    for name in HTTP_METHODS:
        method = getattr(handler_class, name)
        if method is getattr(tornado.web.RequestHandler, name):
            continue  # not implemented: tornado answers 405
        if decorators_of(method)[:2] != ["authenticated", "authorized"]:
            problems.append(f"{handler_class.__name__}.{name}: {decorators_of(method)}")
    return problems


class Unprotected(OrchestrateHandler):
    async def get(self) -> None:
        self.finish("{}")


class AuthorizedOnly(OrchestrateHandler):
    @authorized
    async def post(self) -> None:
        self.finish("{}")


class WrongOrder(OrchestrateHandler):
    @authorized
    @tornado.web.authenticated
    async def put(self) -> None:
        self.finish("{}")


class Protected(OrchestrateHandler):
    @tornado.web.authenticated
    @authorized
    async def delete(self) -> None:
        self.finish("{}")


def test_the_route_check_flags_unprotected_handlers() -> None:
    assert unprotected_methods(Unprotected) == ["Unprotected.get: []"]
    assert unprotected_methods(AuthorizedOnly) == ["AuthorizedOnly.post: ['authorized']"]
    assert unprotected_methods(WrongOrder) == ["WrongOrder.put: ['authorized', 'authenticated']"]
    assert unprotected_methods(Protected) == []


def test_every_route_method_is_authenticated_and_authorized() -> None:
    routes = handlers()
    assert len(routes) >= 8
    implemented = 0
    for pattern, handler_class in routes:
        assert pattern.startswith(API + "/"), pattern
        assert issubclass(handler_class, OrchestrateHandler) and handler_class.auth_resource == "orchestrate"
        assert unprotected_methods(handler_class) == [], pattern
        implemented += sum(
            getattr(handler_class, m) is not getattr(tornado.web.RequestHandler, m) for m in HTTP_METHODS
        )
    assert implemented >= len(routes), "every route implements at least one method"


def route_requests() -> list[tuple[str, str]]:
    """``(method, path below /jupyter-orchestrate/api/)`` for every method of every route, with realistic path
    arguments substituted into the route's pattern."""
    requests = []
    for pattern, handler_class in handlers():
        for name in HTTP_METHODS:
            if getattr(handler_class, name) is getattr(tornado.web.RequestHandler, name):
                continue
            args = {**PATH_ARGS, "path": JOB_PATHS.get(name, "green_energy")}
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m, args=args: args[m.group(1)], pattern)
            assert re.fullmatch(pattern, path), (pattern, path)
            requests.append((name.upper(), path.removeprefix(API + "/")))
    return requests


BODIES = {"POST": '{"parameters": {}}', "PUT": '{"timeout_seconds": 5}'}


async def test_requests_without_a_valid_token_are_refused(api: Api, examples: Path) -> None:
    bronze = examples / "green_energy" / "bronze.ipynb"
    before = bronze.read_bytes()
    # The store is empty: run-scoped routes must answer 403, not 404, so anonymous callers learn nothing.
    requests = route_requests()
    assert {m for m, _ in requests} == {"GET", "POST", "PUT", "DELETE", "PATCH"} and len(requests) == 16
    for headers in ({}, {"Authorization": "token not-the-token"}):
        for method, path in requests:
            response = await api.request(method, path, BODIES.get(method), auth=False, headers=headers)
            assert response.code == 403, (method, path, headers, response.code, response.body[:300])
            assert b"green_energy" not in response.body and b"bronze" not in response.body
    assert bronze.read_bytes() == before, "an anonymous PUT changed nothing"
    assert await api.run_count() == 0, "an anonymous POST started nothing"
    assert not (examples / "orchestrate_runs" / "runs").exists()


class DenyOrchestrate(Authorizer):
    """Allows everything except the ``orchestrate`` resource."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "orchestrate"


class TestWithAnAuthorizerThatDeniesOrchestrate:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config.ServerApp.authorizer_class = DenyOrchestrate
        return jp_server_config

    async def test_authorizer_decides_with_the_orchestrate_resource(
        self, api: Api, examples: Path, jp_fetch: Any
    ) -> None:
        bronze = examples / "green_energy" / "bronze.ipynb"
        before = bronze.read_bytes()
        assert (await jp_fetch("api", "contents")).code == 200, "other resources stay allowed"
        for method, path in route_requests():
            response = await api.request(method, path, BODIES.get(method))  # with the token
            assert response.code == 403, (method, path, response.code, response.body[:300])
        assert bronze.read_bytes() == before
        assert not (examples / "orchestrate_runs" / "runs").exists()


@pytest.fixture
def outside_job(tmp_path: Path, jp_root_dir: Path) -> Path:
    """A valid job outside the server root, reachable through a symlink ``linked`` inside it."""
    job = tmp_path / "outside" / "secret_job"
    write_notebook(job / "steal.ipynb", f"open({str(tmp_path / 'pwned')!r}, 'w').write('x')", orchestrate={})
    (jp_root_dir / "linked").symlink_to(job, target_is_directory=True)
    (jp_root_dir / "nested").mkdir()
    (jp_root_dir / "nested" / "up").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert not job.resolve().is_relative_to(jp_root_dir.resolve())
    return job


TRAVERSALS = [
    "jobs/..%2F..%2Fetc",
    "jobs/%2e%2e/%2e%2e/tmp",
    "jobs/%2E%2E%2F%2E%2E%2Ftmp",
    "jobs/../../tmp",
    "jobs/green_energy/../../..",
    "jobs/%2Ftmp",
    "jobs//tmp",
    "jobs/%2F%2Ftmp",
    "jobs/~",
    "jobs/~root",
    "jobs/a%00b",
    "jobs/..",
    "jobs/%2e%2e",
]


async def test_path_traversal_is_refused(api: Api, examples: Path, outside_job: Path) -> None:
    for path in [*TRAVERSALS, "jobs/linked", "jobs/nested/up/secret_job", "jobs/linked/"]:
        response = await api.get(path)
        assert response.code in (400, 403), (path, response.code, response.body[:300])
        assert response.message, path
        assert b"steal" not in response.body and b"secret" not in response.body.replace(b"secret_job", b""), (
            path
        )
    assert (await api.get("jobs/linked")).code == 403
    assert "outside the server root" in (await api.get("jobs/linked")).message
    for query in ("job=..%2F..%2Ftmp", "job=%2Ftmp", "job=linked"):
        assert (await api.get("runs", params=query)).code in (400, 403), query
    listed = [j["job_id"] for j in (await api.ok("GET", "jobs"))["jobs"]]
    assert sorted(listed) == ["green_energy", "repair_demo"], "symlinked folders are not discovered"


async def test_run_and_edit_through_a_symlink_are_refused(
    api: Api, examples: Path, outside_job: Path
) -> None:
    notebook = outside_job / "steal.ipynb"
    before = notebook.read_bytes()
    for path in ("jobs/linked/runs", "jobs/nested/up/secret_job/runs", "jobs/..%2Foutside%2Fsecret_job/runs"):
        response = await api.post(path, {})
        assert response.code in (400, 403), (path, response.code, response.body)
        assert response.message
    response = await api.put("jobs/linked/tasks/steal", {"timeout_seconds": 1})
    assert response.code == 403 and response.message
    assert notebook.read_bytes() == before
    assert await api.run_count() == 0
    assert not (outside_job.parent.parent / "pwned").exists()


# ---------------------------------------------------------------------------------------------------------
# Every read, write and execution stays inside the root: job.yaml entries, symlinked notebooks and job files,
# repairs of runs recorded for jobs outside the root. Each test asserts 403, the outside file untouched and
# nothing executed.
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path, jp_root_dir: Path) -> Path:
    """A folder next to the server root (``<root>/../outside``) holding files no request may touch."""
    folder = tmp_path / "outside"
    folder.mkdir(exist_ok=True)
    assert not folder.resolve().is_relative_to(jp_root_dir.resolve())
    return folder


def pwned_notebook(path: Path, marker: Path) -> Path:
    return write_notebook(path, f"open({str(marker)!r}, 'w').write('x')", orchestrate={})


async def test_put_on_a_job_yaml_task_whose_notebook_is_outside_is_refused(
    api: Api, jp_root_dir: Path, outside: Path
) -> None:
    evil = pwned_notebook(outside / "evil.ipynb", outside / "pwned")
    before = evil.read_bytes()
    job = jp_root_dir / "evil_job"
    job.mkdir()
    (job / "job.yaml").write_text("tasks:\n  x:\n    notebook: ../../outside/evil.ipynb\n", encoding="utf-8")
    response = await api.put("jobs/evil_job/tasks/x", {"timeout_seconds": 5})
    assert response.code == 403, (response.code, response.body)
    assert "'../../outside/evil.ipynb' leads outside the job folder" in response.message
    assert evil.read_bytes() == before, "the outside notebook was not written"
    response = await api.post("jobs/evil_job/runs", {})
    assert response.code == 400 and "leads outside the job folder" in response.message
    doc = await api.ok("GET", "jobs/evil_job")
    assert not doc["valid"] and "tasks.x.notebook" in [p["field"] for p in doc["problems"]]
    assert await api.run_count() == 0
    assert not (outside / "pwned").exists()


async def test_put_on_a_task_whose_notebook_links_outside_is_refused(
    api: Api, jp_root_dir: Path, outside: Path
) -> None:
    target = pwned_notebook(outside / "steal.ipynb", outside / "pwned")
    before = target.read_bytes()
    job = jp_root_dir / "link_job"
    write_notebook(job / "fine.ipynb", "1", orchestrate={})
    (job / "steal.ipynb").symlink_to(target)
    response = await api.put("jobs/link_job/tasks/steal", {"timeout_seconds": 5})
    assert response.code == 403, (response.code, response.body)
    assert "notebook of task 'steal' 'steal.ipynb' leads outside the job folder" in response.message
    assert (job / "steal.ipynb").is_symlink(), "the link was not replaced by a copy of the outside file"
    assert target.read_bytes() == before
    assert (await api.post("jobs/link_job/runs", {})).code == 400, "a job with a link out does not run"
    assert await api.run_count() == 0
    assert not (outside / "pwned").exists()


async def test_put_follows_a_notebook_link_inside_the_job_folder(api: Api, jp_root_dir: Path) -> None:
    job = jp_root_dir / "inner_link"
    real = write_notebook(job / "src" / "real.ipynb", "1", orchestrate={"task_key": "real"})
    (job / "real.ipynb").symlink_to(real)
    doc = await api.ok("PUT", "jobs/inner_link/tasks/real", {"timeout_seconds": 7})
    assert doc["valid"], doc["problems"]
    assert (job / "real.ipynb").is_symlink(), "the link stays a link; its target is what changes"
    assert '"timeout_seconds": 7' in real.read_text(encoding="utf-8")


async def test_a_notebook_linking_inside_the_root_but_outside_the_job_is_refused(
    api: Api, jp_root_dir: Path
) -> None:
    other = write_notebook(jp_root_dir / "other_job" / "shared.ipynb", "1", orchestrate={})
    before = other.read_bytes()
    job = jp_root_dir / "borrowing"
    write_notebook(job / "own.ipynb", "1", orchestrate={})
    (job / "shared.ipynb").symlink_to(other)
    response = await api.put("jobs/borrowing/tasks/shared", {"timeout_seconds": 5})
    assert response.code == 403 and "leads outside the job folder" in response.message
    assert other.read_bytes() == before
    doc = await api.ok("GET", "jobs/borrowing")
    assert [p["text"] for p in doc["problems"]] == [
        "borrowing/shared.ipynb: is a link to a file outside the job folder; copy the notebook instead"
    ]


async def test_a_job_yaml_linking_outside_is_never_read(api: Api, jp_root_dir: Path, outside: Path) -> None:
    secret = outside / "secrets.yaml"
    secret.write_text("description: password hunter2-in-the-clear\n", encoding="utf-8")
    job = jp_root_dir / "yaml_link"
    write_notebook(job / "a.ipynb", "1", orchestrate={})
    (job / "job.yaml").symlink_to(secret)
    response = await api.get("jobs/yaml_link")
    assert response.code == 403, (response.code, response.body)
    assert response.message == "yaml_link/job.yaml: job file 'job.yaml' leads outside the job folder"
    listing = await api.ok("GET", "jobs")
    (listed,) = [j for j in listing["jobs"] if j["job_id"] == "yaml_link"]
    assert not listed["valid"] and "leads outside the job folder" in listed["problems"][0]["message"]
    for each in (
        response,
        await api.post("jobs/yaml_link/runs", {}),
        await api.put("jobs/yaml_link/tasks/a", {"timeout_seconds": 1}),
    ):
        assert each.code == 403, (each.code, each.body)
        assert b"hunter2" not in each.body
    assert b"hunter2" not in (await api.get("jobs")).body
    assert await api.run_count() == 0


async def test_repair_of_a_run_whose_job_is_outside_the_root_is_refused(
    api: Api,
    orchestrate_app: Any,
    outside: Path,
) -> None:
    from jupyter_orchestrate.service import OrchestrateService

    job = outside / "cli_job"
    pwned_notebook(job / "steal.ipynb", outside / "pwned")
    # A run recorded by the CLI on the server's state home, for a job outside the server root, whose CLI died
    # before executing it (marked as recovery marks it: failed, its task canceled, so a repair selects it).
    cli = OrchestrateService(orchestrate_app.home, recover=False)
    run_id = cli.new_run(job).run_id
    cli.store.end_unfinished(run_id, "the CLI died", run_status=RunStatus.failed)
    for body in ({"dry_run": True}, {}):
        response = await api.post(f"runs/{run_id}/repair", body)
        assert response.code == 403, (body, response.code, response.body)
        assert (
            response.message == f"the job folder of run {run_id} {str(job)!r} leads outside the server root"
        )
    run = await api.ok("GET", f"runs/{run_id}")
    assert run["status"] == "failed" and run["repair_count"] == 0
    assert all(t["attempt_count"] == 0 for t in run["task_runs"])
    assert not orchestrate_app.service._active, "no runner was started"
    assert not (outside / "pwned").exists()


async def test_cookie_authenticated_writes_need_the_xsrf_token(
    api: Api, examples: Path, jp_serverapp: Any
) -> None:
    """A browser session (login cookie, no token header) cannot POST or PUT without the ``_xsrf`` cookie and the
    matching ``X-XSRFToken`` header: a page on another site that makes the browser send the cookie is refused."""
    token = jp_serverapp.identity_provider.token
    login = await api.request(
        "GET", f"{api.base_url}api/status", params=f"token={token}", auth=False, raw_path=True
    )
    cookies = login.headers.get_list("Set-Cookie")
    session = next(c.split(";")[0] for c in cookies if c.startswith("username-"))
    bronze = examples / "green_energy" / "bronze.ipynb"
    before = bronze.read_bytes()
    writes = [
        ("POST", "jobs/green_energy/runs", "{}"),
        ("PUT", "jobs/green_energy/tasks/bronze", '{"timeout_seconds": 5}'),
        ("POST", "runs/1/cancel", ""),
    ]
    for method, path, body in writes:
        refused = await api.request(method, path, body, auth=False, headers={"Cookie": session})
        assert refused.code == 403, (method, path, refused.code, refused.body[:300])
        assert "xsrf" in refused.text.lower(), refused.body[:300]
    assert bronze.read_bytes() == before and await api.run_count() == 0

    # With the double-submitted token the same session may write: the refusal above was the XSRF check.
    xsrf = (
        "e2b0c0ffee4711"  # tornado's double-submit check: the cookie and the header must carry the same value
    )
    started = await api.request(
        "POST",
        "jobs/green_energy/runs",
        "{}",
        auth=False,
        headers={"Cookie": f"{session}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert started.code == 201, (started.code, started.body[:300])
    await api.wait_run(started.json()["run_id"])
