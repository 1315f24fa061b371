"""Hostile and broken requests get a clear JSON 4xx (``{"message": ...}``), never a 500, an HTML page, a hang or
a stored payload: parameter names that are code, oversized and deeply nested bodies, numbers out of range or
not finite, unknown routes and non-numeric ids. Only the parameter-name test starts a kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.server.handlers import MAX_BODY_BYTES
from tests.conftest import write_notebook
from tests.server.conftest import Api

INJECTED = "x = 1\nopen('PWNED','w').write('1')\ny"


async def test_a_parameter_name_that_is_code_is_refused_and_never_runs(api: Api, jp_root_dir: Path) -> None:
    job = jp_root_dir / "plain"
    notebook = write_notebook(job / "task.ipynb", "print('no parameters cell')", orchestrate={})
    before = notebook.read_bytes()
    response = await api.put("jobs/plain/tasks/task", {"parameters": {INJECTED: 1}})
    assert response.code == 400, (response.code, response.body)
    assert (
        response.message
        == f"parameters: {INJECTED!r} is not a valid parameter name: use a Python identifier that is not a keyword"
    )
    assert notebook.read_bytes() == before, "nothing was written"
    for name in ("class", "a b", "1x", ""):
        assert (await api.put("jobs/plain/tasks/task", {"parameters": {name: 1}})).code == 400, name
        response = await api.post("jobs/plain/runs", {"parameters": {name: 1}})
        assert response.code == 400 and "not a valid parameter name" in response.message, name
    run = await api.start_run("plain")
    assert (await api.wait_run(run["run_id"]))["status"] == "succeeded"
    assert not list(jp_root_dir.rglob("PWNED")), "the name was never executed"


@pytest.fixture
def job(jp_root_dir: Path) -> str:
    write_notebook(jp_root_dir / "small" / "a.ipynb", "1", parameters="n = 1", orchestrate={})
    return "small"


async def assert_json_error(response: Any, code: int, text: str) -> None:
    assert response.code == code, (response.code, response.body[:500])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers["Content-Type"]
    assert text in response.message, response.message


async def test_bodies_that_are_not_plain_json_are_400(api: Api, job: str) -> None:
    cases = {
        "[" * 100_000: "nested too deeply",
        '{"parameters": {"n": ' + "[" * 5000 + "]" * 5000 + "}}": "nested too deeply",
        '{"parameters": {"n": NaN}}': "NaN is not a JSON number",
        '{"parameters": {"n": Infinity}}': "Infinity is not a JSON number",
        '{"parameters": {"n": -Infinity}}': "-Infinity is not a JSON number",
        '{"parameters": {"n": 1e400}}': "1e400 is too large for a number",
        '{"max_parallel": 1000000000000000000000000000000}': "max_parallel: Input should be less than or equal to 1024",
        '{"max_parallel": 0}': "max_parallel: Input should be greater than or equal to 1",
        '{"parameters": {"n": '
        + "[" * 150
        + "]" * 150
        + "}}": "parameters.n: nested more than 100 levels deep",
        json.dumps(
            {"parameters": {"n": "x" * 70_000}}
        ): "parameters.n: the value is 70002 bytes as JSON; at most 65536",
    }
    for body, text in cases.items():
        await assert_json_error(await api.post(f"jobs/{job}/runs", body), 400, text)
    await assert_json_error(await api.put(f"jobs/{job}/tasks/a", "[" * 100_000), 400, "nested too deeply")
    await assert_json_error(
        await api.put(f"jobs/{job}/tasks/a", '{"timeout_seconds": Infinity}'), 400, "Infinity"
    )
    assert await api.run_count() == 0


async def test_a_body_over_the_limit_is_413_and_not_stored(api: Api, job: str, jp_root_dir: Path) -> None:
    big = json.dumps({"parameters": {"n": "x" * (2 * MAX_BODY_BYTES)}})
    await assert_json_error(
        await api.post(f"jobs/{job}/runs", big), 413, f"at most {MAX_BODY_BYTES} are accepted"
    )
    await assert_json_error(await api.put(f"jobs/{job}/tasks/a", big), 413, "at most")

    # chunked (no Content-Length): refused as it arrives
    chunk = b"x" * 65536

    async def producer(write: Any) -> None:
        await write(b'{"parameters": {"n": "')
        for _ in range(2 * MAX_BODY_BYTES // len(chunk)):
            await write(chunk)
        await write(b'"}}')

    response = await api.client.fetch(
        api.url(f"jobs/{job}/runs"),
        method="POST",
        body_producer=producer,
        headers=api.auth_header,
        raise_error=False,
        request_timeout=60,
    )
    assert response.code == 413 and b"over" in response.body, (response.code, response.body[:300])
    assert await api.run_count() == 0
    notebook = jp_root_dir / job / "a.ipynb"
    assert notebook.stat().st_size < 10_000


async def test_query_integers_out_of_range_are_400(api: Api) -> None:
    for params, text in (
        (f"before={2**63}", "before: must be a run id between 1 and"),
        ("before=-1", "before: must be a run id"),
        (f"limit={10**30}", "limit: must be between 1 and 500"),
        ("before=abc", "before: must be a run id"),
    ):
        await assert_json_error(await api.get("runs", params=params), 400, text)


async def test_every_error_is_json(api: Api) -> None:
    for path in ("runs/abc", f"runs/{2**63}", "runs/1", "runs/-1", "runs/١٢"):
        await assert_json_error(await api.get(path), 404, "not found")
    for path in ("runs/abc/cancel", "runs/abc/repair"):
        await assert_json_error(await api.post(path, {}), 404, "not found")
    await assert_json_error(await api.get("runs/abc/tasks/a/attempts/x/log"), 404, "not found")
    for method, path in (
        ("GET", "nothing-here"),
        ("GET", "runs/1/nothing"),
        ("DELETE", "runs/1"),
        ("PATCH", "jobs"),
        ("GET", ""),
    ):
        response = await api.request(method, path, "{}" if method == "PATCH" else None)
        assert response.code in (404, 405), (method, path, response.code)
        assert response.headers["Content-Type"].startswith("application/json"), (
            method,
            path,
            response.body[:200],
        )
        assert response.message
    anonymous = await api.get("nothing-here", auth=False)
    assert anonymous.code == 403, "unknown routes are authenticated like the rest"


async def test_a_database_locked_past_the_busy_timeout_is_503_naming_the_file(
    api: Any, orchestrate_app: Any, examples: Any
) -> None:
    """Another process holding the state database's write lock is a temporary condition: 503 with the one-line
    message that names the file, and nothing recorded; once the lock is free the same request succeeds."""
    import sqlite3

    store = orchestrate_app.service.store
    store.busy_timeout_seconds = 0.5
    store.db.execute("PRAGMA busy_timeout=500")
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        busy = await api.post("jobs/green_energy/runs", {})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.code == 503, (busy.code, busy.body[:300])
    assert str(store.path) in busy.message and "locked" in busy.message
    assert await api.run_count() == 0
    started = await api.ok("POST", "jobs/green_energy/runs", {}, code=201)
    await api.wait_run(started["run_id"])
