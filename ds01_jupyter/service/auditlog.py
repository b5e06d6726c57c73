"""ds01d's audit log: one JSON line per request, who (from the kernel), what, when, with what result.

The file is root's (0640 in a 0750 folder) and opened for each line in append
mode, so logrotate may move it at any time and a line is never split.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("ds01_jupyter.ds01d")

FILE_NAME = "audit.jsonl"


class AuditLog:
    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME
        self._lock = threading.Lock()
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)

    def write(self, who: dict, op: str, args: dict | None, result: str, started: float, **more) -> None:
        """Append one record; a failure to write is logged, never the caller's problem."""
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **who,
            "op": op,
            "args": args or {},
            "result": result,
            "seconds": round(time.monotonic() - started, 3),
            **{k: v for k, v in more.items() if v is not None},
        }
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            except OSError as err:
                log.error("cannot write the audit log %s: %s", self.path, err)

    def read(self) -> list[dict]:
        """Every record (for tests and the admin's scripts)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
