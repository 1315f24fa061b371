"""A webhook receiver on 127.0.0.1 for notification tests: records every POST; ``/hang`` answers only after
``HANG_SECONDS`` (or when released), to show that a slow webhook never delays a run. The ``hooks`` fixture is
registered in tests/conftest.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HANG_SECONDS = 20.0


class Hooks:
    """A webhook receiver on 127.0.0.1: records every POST body (JSON) per path.

    Paths starting with ``/hang`` record the request when it arrives, then hold the response for up to
    ``HANG_SECONDS`` (released early at teardown) like an endpoint that never answers.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                with hooks.lock:
                    hooks.posts.append((self.path, body))
                if self.path.startswith("/hang"):
                    hooks.release.wait(HANG_SECONDS)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up on a hanging request
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-server", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.posts if p == path]

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.posts]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()
