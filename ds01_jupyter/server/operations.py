"""Long work (image builds, deploys) run off the event loop, with progress anyone can follow.

An operation is the progress of work running in this server process; what it
produces (images, containers) lives in Docker. A second request for the same
work on the same project while it runs gets the running operation, so two
clicks make one build.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.errors import DS01Error

MAX_LINES = 400


@dataclass
class Operation:
    id: str
    kind: str
    project: str
    state: str = "running"  # running, done, failed
    lines: collections.deque = field(default_factory=lambda: collections.deque(maxlen=MAX_LINES))
    result: dict | None = None
    error: dict | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    future: asyncio.Future | None = None

    def to_dict(self, lines: bool = True) -> dict:
        data = {
            "id": self.id,
            "kind": self.kind,
            "project": self.project,
            "state": self.state,
            "result": self.result,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }
        if lines:
            data["lines"] = list(self.lines)
        return data


class Operations:
    def __init__(self, publish: Callable[[dict], None], keep: int = 50):
        self.publish = publish
        self._ops: dict[str, Operation] = {}
        self._counter = itertools.count(1)
        self._keep = keep

    def get(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id)

    def running(self, project: str, kinds: tuple[str, ...]) -> Operation | None:
        return next(
            (o for o in self._ops.values() if o.project == project and o.kind in kinds and o.state == "running"),
            None,
        )

    def list(self) -> list[Operation]:
        return list(self._ops.values())

    def start(self, kind: str, project: str, work: Callable[[Callable[[str], None]], dict]) -> Operation:
        """Run ``work(progress)`` in a thread; a build or deploy already running for the project is reused."""
        existing = self.running(project, ("build", "deploy"))
        if existing is not None:
            return existing
        loop = asyncio.get_running_loop()
        op = Operation(id=f"op-{int(time.time())}-{next(self._counter)}", kind=kind, project=project)
        self._ops[op.id] = op
        self._forget_old()

        def progress(line: str) -> None:
            op.lines.append(line)
            loop.call_soon_threadsafe(
                self.publish,
                {"type": "operation", "id": op.id, "project": project, "kind": kind, "state": "running", "line": line},
            )

        def run() -> dict:
            return work(progress)

        async def drive():
            try:
                op.result = await loop.run_in_executor(None, run)
                op.state = "done"
            except DS01Error as err:
                op.error = err.to_dict()
                op.state = "failed"
            finally:
                op.finished = time.time()
                self.publish({"type": "operation", **op.to_dict(lines=False)})
            return op

        self.publish({"type": "operation", **op.to_dict(lines=False)})
        op.future = asyncio.ensure_future(drive())
        return op

    def _forget_old(self) -> None:
        done = [o for o in self._ops.values() if o.state != "running"]
        for old in sorted(done, key=lambda o: o.started)[: max(0, len(done) - self._keep)]:
            self._ops.pop(old.id, None)
