"""Fixtures for the Jupyter server extension tests: a real Jupyter server (pytest-jupyter) with the extension
enabled, its state home inside the server root, and an :class:`Api` client for ``/jupyter-orchestrate/api/``.

The Jupyter fixtures (``jp_serverapp``, ``jp_fetch``...) come from ``pytest_jupyter.jupyter_server``, enabled in
the repository's top-level ``conftest.py``. The server runs on the test's own event loop: test code must only
wait with ``await`` (never ``time.sleep``), or the server stops answering.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from tests.conftest import EXAMPLES

API = "jupyter-orchestrate/api/"
TERMINAL = {"succeeded", "failed", "canceled"}
RUN_TIMEOUT = 120.0


@dataclass
class Response:
    code: int
    body: bytes
    headers: Any

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def message(self) -> str:
        """The ``message`` of a JSON error body (fails the test if the body is not such a document)."""
        doc = self.json()
        assert isinstance(doc, dict) and isinstance(doc.get("message"), str), self.body
        return doc["message"]


class Api:
    """Requests to the extension's REST API. Paths are given raw (not escaped again), relative to
    ``/jupyter-orchestrate/api/``; errors are returned, not raised."""

    def __init__(self, client: Any, base_url: str, auth_header: dict[str, str]):
        self.client = client
        self.base_url = base_url
        self.auth_header = auth_header

    def url(self, path: str) -> str:
        return f"{self.base_url}{API}{path}"

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: str = "",
        auth: bool = True,
        headers: dict[str, str] | None = None,
        raw_path: bool = False,
    ) -> Response:
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = ""
        all_headers = {**(self.auth_header if auth else {}), **(headers or {})}
        url = path if raw_path else self.url(path)
        if params:
            url += "?" + params
        response = await self.client.fetch(
            url,
            method=method,
            body=body,
            headers=all_headers,
            raise_error=False,
            request_timeout=60,
            follow_redirects=False,
        )
        assert response.code != 599, f"{method} {url}: no response ({response.error})"
        return Response(response.code, response.body or b"", response.headers)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return await self.request("POST", path, body, **kwargs)

    async def put(self, path: str, body: Any = None, **kwargs: Any) -> Response:
        return await self.request("PUT", path, body, **kwargs)

    async def ok(self, method: str, path: str, body: Any = None, code: int = 200, **kwargs: Any) -> Any:
        """The JSON body of a request that must answer ``code``."""
        response = await self.request(method, path, body, **kwargs)
        assert response.code == code, f"{method} {path}: {response.code} {response.body[:2000]!r}"
        return response.json()

    async def start_run(self, job: str, body: Any = None) -> dict[str, Any]:
        return await self.ok("POST", f"jobs/{job}/runs", body or {}, code=201)

    async def wait_run(
        self, run_id: int, timeout: float = RUN_TIMEOUT, until: set[str] = TERMINAL
    ) -> dict[str, Any]:
        """Poll ``GET runs/{run_id}`` until its status is in ``until``; returns the run document."""
        deadline = time.monotonic() + timeout
        while True:
            doc = await self.ok("GET", f"runs/{run_id}")
            if doc["status"] in until:
                return doc
            assert time.monotonic() < deadline, f"run {run_id} still {doc['status']} after {timeout} s: {doc}"
            await asyncio.sleep(0.2)

    async def wait_task(
        self, run_id: int, task_key: str, status: str, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll until the task run has ``status``; returns the run document."""
        deadline = time.monotonic() + timeout
        while True:
            doc = await self.ok("GET", f"runs/{run_id}")
            if task_of(doc, task_key)["status"] == status:
                return doc
            assert doc["status"] not in TERMINAL, f"run {run_id} ended before {task_key} was {status}: {doc}"
            assert time.monotonic() < deadline, (
                f"{task_key} of run {run_id} not {status} after {timeout} s: {doc}"
            )
            await asyncio.sleep(0.1)

    async def run_count(self) -> int:
        return len((await self.ok("GET", "runs", params="limit=500"))["runs"])


def task_of(run_doc: dict[str, Any], task_key: str) -> dict[str, Any]:
    return next(t for t in run_doc["task_runs"] if t["task_key"] == task_key)


@pytest.fixture(autouse=True)
def _home_env_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension exports its home as ``$JUPYTER_ORCHESTRATE_HOME`` (for its kernels): undo it after each test,
    and start each without one."""
    monkeypatch.delenv("JUPYTER_ORCHESTRATE_HOME", raising=False)


@pytest.fixture
def state_home(jp_root_dir: Path) -> Path:
    """The extension's state home, where the server puts it by default: inside the root and not hidden, so
    executed notebooks have root-relative paths that the contents API can open."""
    return jp_root_dir / "orchestrate_runs"


@pytest.fixture
def jp_server_config(state_home: Path) -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_orchestrate": True}},
            "OrchestrateApp": {"state_home": str(state_home)},
        }
    )


@pytest.fixture
def api(jp_serverapp: Any, http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]) -> Api:
    return Api(http_server_client, jp_base_url, jp_auth_header)


@pytest.fixture
def orchestrate_app(jp_serverapp: Any) -> Any:
    """The running OrchestrateApp extension instance."""
    apps = jp_serverapp.extension_manager.extension_apps["jupyter_orchestrate"]
    assert len(apps) == 1
    return next(iter(apps))


def copy_example(name: str, root: Path) -> Path:
    return Path(
        shutil.copytree(
            EXAMPLES / name, root / name, ignore=shutil.ignore_patterns("output", ".ipynb_checkpoints")
        )
    )


@pytest.fixture
def examples(jp_root_dir: Path) -> Path:
    """``green_energy`` and ``repair_demo`` copied into the server root."""
    copy_example("green_energy", jp_root_dir)
    copy_example("repair_demo", jp_root_dir)
    return jp_root_dir
