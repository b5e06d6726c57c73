"""What the spawn page shows of an image build: its steps and last lines, never its whole log.

A build writes a hundred lines or more (pip alone does); on the spawn page they
buried the phases (project, image, GPU, start). The page gets Docker's ``Step
N/M`` lines, a line now and then while a long step runs, and the last lines
when the build fails; the whole log is kept for the user to read on demand.
"""

from __future__ import annotations

import re
import time
from collections import deque

#: Lines that are phases of a build: Docker's steps and the core's own messages around it.
PHASE = re.compile(r"^(Step \d+/\d+ :|Building |Built |Base image )")
#: Lines of a build kept for the full log (a runaway build must not fill the hub's memory).
MAX_LINES = 20000


class BuildFeed:
    """A build's progress callback: phases go to ``say`` at once, other lines at most every ``every`` seconds."""

    def __init__(self, say, title: str, every: float = 10.0, clock=time.monotonic):
        self.say, self.title, self.every, self.clock = say, title, every, clock
        self.lines: deque[str] = deque(maxlen=MAX_LINES)
        self.last = clock()

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        now = self.clock()
        if PHASE.match(line):
            self.say(f"{self.title}: {_short(line)}")
        elif now - self.last >= self.every:
            self.say(f"{self.title} (still running): {_short(line)}")
        else:
            return
        self.last = now

    def tail(self, count: int = 12) -> list[str]:
        return list(self.lines)[-count:]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _short(line: str, width: int = 160) -> str:
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def build_quietly(build, say, title: str, keep_log=None):
    """Run ``build(progress)`` through a BuildFeed; on failure the error carries the build's last lines.

    ``keep_log(text)`` stores the whole log (and returns where, for the message), success or not.
    """
    from ..core.errors import BuildFailed

    feed = BuildFeed(say, title)
    where = None
    try:
        return build(feed)
    except BuildFailed as err:
        where = keep_log(feed.text()) if keep_log else None
        keep_log = None
        hint = f"The whole log: {where}. " if where else ""
        raise BuildFailed(f"{err.message}\nLast lines of the build:\n" + "\n".join(feed.tail()),
                          hint=hint + (err.hint or "")) from None
    finally:
        if keep_log:
            where = keep_log(feed.text())
            if where:
                say(f"{title}: the whole build log is in {where}")
