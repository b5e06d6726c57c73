"""A user's container events as they happen, from the engine: only the containers ds01 made for them."""

from __future__ import annotations

import time

from . import labels as L
from .names import container_name
from .users import User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import DS01


def follow(core: DS01, user: User, since: float | None = None, window: float = 2.0):
    """The user's container events as they happen (dicts: action, id, name, labels, exit_code, time),
    from ``since`` (at most ten minutes back), read in windows of ``window`` seconds; after each window a
    ``{"action": "tick", "time": T}`` says all events up to T were given, so a follower that stops or
    reconnects misses nothing, and one that went away is noticed. Never ends by itself."""
    now = time.time()
    since = now if since is None else min(max(since, now - 600), now)
    while True:
        until = max(time.time(), since) + window
        for event in core.engine.events(L.owned_by(user), since=since, until=until):
            # Labels alone count for nothing: another user's image (and so the build containers of a Dockerfile
            # saying LABEL ds01.user=...) carries any. Only ds01 names a container <project>._.<user>.
            if event.get("name") != container_name((event.get("labels") or {}).get(L.PROJECT, ""), user.name):
                continue
            if event.get("action") in ("start", "die", "stop", "destroy"):
                core.forget_start(event.get("id"))  # its remembered start time is stale now
            yield event
        since = until
        yield {"action": "tick", "time": until}
