"""Live events for the sidebar, fed by the engine's event stream.

One reader per server follows this user's container events (``core.follow_events``:
on the engine, or through ds01d, which sends only the caller's own) in short
windows (so it stops promptly and never misses an event between two windows),
turns them into small JSON events and fans them out to every connected client.
A client that connects first gets a snapshot of the current
state, so a reconnect never leaves it stale.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from ..core import labels as L
from ..core.errors import DS01Error, EngineUnavailable

WINDOW = 2.0
CONTAINER_ACTIONS = {"create", "start", "die", "stop", "destroy", "oom", "pause", "unpause"}


def translate(event: dict) -> list[dict]:
    """Engine event -> events for clients (a destroyed GPU container also frees its GPUs)."""
    action = event.get("action") or ""
    if action not in CONTAINER_ACTIONS:
        return []
    labels = event.get("labels") or {}
    out = [
        {
            "type": "container",
            "action": action,
            "project": labels.get(L.PROJECT, ""),
            "id": event.get("id"),
            "name": event.get("name"),
            "exit_code": int(event["exit_code"]) if event.get("exit_code") not in (None, "") else None,
            "time": event.get("time"),
        }
    ]
    uuids = L.gpu_uuids(labels)
    if action == "destroy" and uuids:
        out.append({"type": "gpu", "action": "freed", "uuids": uuids, "project": labels.get(L.PROJECT, "")})
    return out


class EventHub:
    def __init__(self, core, user, log: logging.Logger | None = None, on_change: Callable[[dict], None] | None = None):
        self.core = core
        self.user = user
        self.log = log or logging.getLogger("ds01_jupyter.events")
        self.on_change = on_change
        self._queues: set[asyncio.Queue] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.engine_available: bool | None = None

    # -- subscribers (event loop side) --------------------------------------------------
    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)

    def publish(self, event: dict) -> None:
        """Send to every client; call on the event loop (see publish_threadsafe)."""
        for queue in list(self._queues):
            if queue.full():  # a client that stopped reading: drop it, it will reconnect
                self._queues.discard(queue)
                continue
            queue.put_nowait(event)

    def publish_threadsafe(self, event: dict) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, event)

    # -- the reader thread -------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_event_loop()
        self._thread = threading.Thread(target=self._follow, name="ds01-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=WINDOW + 3)

    def _set_available(self, available: bool, reason: str = "") -> None:
        if available != self.engine_available:
            self.engine_available = available
            self.publish_threadsafe({"type": "engine", "available": available, "reason": reason})

    def _follow(self) -> None:
        since = time.time()
        backoff = 1.0
        while not self._stop.is_set():
            # The core's follow (through ds01d, filtered there to this user's containers, or on the engine)
            # ticks after each window: where to go on from after a reconnect, and a moment to stop.
            events = self.core.follow_events(self.user, since)
            try:
                for event in events:
                    if event.get("action") == "tick":
                        since = event["time"]
                        self._set_available(True)
                        backoff = 1.0
                        if self._stop.is_set():
                            break
                        continue
                    for out in translate(event):
                        self.publish_threadsafe(out)
                        if self.on_change is not None:
                            try:
                                self.on_change(out)
                            except Exception:  # a listener's failure must not end the events of every client
                                self.log.exception("ds01 events: a listener failed on %s", out)
            except EngineUnavailable as err:
                self.core.forget_start()  # events may be missed while the engine is away
                self._set_available(False, err.message)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except DS01Error as err:
                self.log.warning("ds01 events: %s", err)
                self._stop.wait(backoff)
            finally:
                events.close()
