"""EventBus: fans run events out from runner threads to the server's event-stream clients (Server-Sent Events).

Runners execute in background threads; each client of ``GET /jupyter-orchestrate/api/events`` owns an
asyncio queue on the server's event loop. :meth:`EventBus.publish` is thread-safe: it hands each event to the
loops with ``call_soon_threadsafe``. Events carry a sequence number (the SSE ``id``) so a client can tell
their order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)
QUEUE_SIZE = 10_000


class EventBus:
    """Publish ``(kind, payload)`` events to every subscribed queue, in publication order."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A new queue on the running loop that receives every later event. Call from the loop."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop delivering events to ``queue`` (its client went away)."""
        with self._lock:
            self._subscribers = [(loop, q) for loop, q in self._subscribers if q is not queue]

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Deliver an event to every subscriber (from any thread). A full queue drops the event for that client."""
        with self._lock:
            event = {"id": next(self._sequence), "type": kind, **payload}
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(self._put, queue, event)
            except RuntimeError:  # the loop is closed: the client is gone
                self.unsubscribe(queue)

    @staticmethod
    def _put(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event stream client is %d events behind; dropping event %s", QUEUE_SIZE, event["id"])
