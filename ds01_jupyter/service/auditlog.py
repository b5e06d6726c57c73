"""ds01d's audit log: one JSON line per request, who (from the kernel), what, when, with what result.

The file is root's (0640 in a 0750 folder) and opened for each line in append
mode, so logrotate may move it at any time and a line is never split.

Callers choose what is written (an operation's name, its arguments), and
cheap requests (a refused one) come as fast as a caller sends them: each
string and list of a record is bounded (:data:`MAX_TEXT`, :data:`MAX_ITEMS`),
and each uid may write :data:`BURST` records at once and :data:`RATE` a second
after that; the records left out are counted in the uid's next one
(``"suppressed"``), so a user cannot fill /var/log through it.
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
#: Characters kept of one string of a record, and items of one list or mapping.
MAX_TEXT = 300
MAX_ITEMS = 40
#: Records one uid may write at once, and per second after that.
BURST = 300
RATE = 20.0


def bounded(value, depth: int = 0):
    """``value`` with long strings, lists and mappings cut, saying how much was left out."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"...(+{len(value) - MAX_TEXT} characters)"
    if depth > 4:
        return "..."
    if isinstance(value, (list, tuple)):
        kept = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        return kept + ([f"...(+{len(value) - MAX_ITEMS} items)"] if len(value) > MAX_ITEMS else [])
    if isinstance(value, dict):
        items = list(value.items())
        kept = {bounded(str(k), depth + 1): bounded(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            kept["..."] = f"+{len(items) - MAX_ITEMS} items"
        return kept
    return value


class AuditLog:
    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME
        self._lock = threading.Lock()
        self._budget: dict[object, tuple[float, float, int]] = {}  # uid -> (tokens, when, records left out)
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)

    def _admit(self, uid) -> int | None:
        """None when ``uid`` is over its budget (the record is counted, not written); else how many were left out."""
        now = time.monotonic()
        tokens, then, dropped = self._budget.get(uid, (float(BURST), now, 0))
        tokens = min(float(BURST), tokens + (now - then) * RATE)
        if tokens < 1:
            self._budget[uid] = (tokens, now, dropped + 1)
            return None
        self._budget[uid] = (tokens - 1, now, 0)
        return dropped

    def write(self, who: dict, op: str, args: dict | None, result: str, started: float, **more) -> None:
        """Append one record (bounded, within the caller's budget); a failure to write is logged, never the
        caller's problem."""
        with self._lock:
            dropped = self._admit(who.get("uid"))
        if dropped is None:
            return
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **who,
            "op": bounded(op),
            "args": bounded(args or {}),
            "result": result,
            "seconds": round(time.monotonic() - started, 3),
            **{k: bounded(v) for k, v in more.items() if v is not None},
            **({"suppressed": dropped} if dropped else {}),
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
