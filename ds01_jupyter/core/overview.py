"""What the sidebar, ``ds01 status`` and the hub show of a user's world: the projects overview and the GPUs.

Read-only views built from the core's parts (projects on disk, containers and images from the engine,
remembered sizes and findings); they never change anything, and answer with the engine down.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

from . import labels as L
from .errors import DS01Error, EngineUnavailable
from .users import User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import DS01


#: A user's whole overview is given again for up to this long while nothing it is made of is seen to change
#: (the engine's event log: no image event and none of the user's containers made, started, stopped or removed;
#: on disk: the workspace root, and the sizes, audits and activity of the state folder). What is inside a
#: project's folder (git, write access) shows within this time, as git's own answers do.
MEMO_SECONDS = 10.0


#: A stamp whose newest time is this close to the look is not trusted (filesystem times move in clock ticks).
RACY_SECONDS = 0.05


class OverviewMemo:
    """The last overview of each user, with what it was made of: the sidebar asks at every container event and
    panel open, and an overview of 1,000 projects costs thousands of file looks and two engine lists."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, int], tuple[float, float, tuple, dict]] = {}

    @staticmethod
    def stamp(core: DS01, user: User) -> tuple:
        """What on disk the overview depends on, besides the projects' own folders (metadata only, never read):
        through links, as the projects are listed (a workspace root may be a link to the user's folder)."""
        state = core.settings.expand(core.settings.state_dir, user)
        out: list[tuple | None] = []
        for path in (core.projects.root(user), state, state / "audits", state / "sizes.json", state / "activity.json"):
            try:
                st = os.stat(path)
                out.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def get(self, core: DS01, user: User, only: str | None = None) -> dict | None:
        """The kept overview (a copy, its uptimes and idle times moved on; ``only``: of that project alone) while
        still true, else None."""
        kept = self._kept.get((user.name, user.uid))
        if kept is None:
            return None
        asked, until, stamp, found = kept
        now = time.time()
        age = now - asked
        if not asked <= now < until or self.stamp(core, user) != stamp \
                or not core.engine.quiet_since(asked, L.owned_by(user)):
            self._kept.pop((user.name, user.uid), None)
            return None
        return _aged(found, age, only)

    def keep(self, core: DS01, user: User, asked: float, stamp: tuple, found: dict) -> None:
        """Keep ``found`` unless the engine was down (asked again at once) or the stamp is racy: a folder or file
        changed within RACY_SECONDS of the look may change again within the same tick of a coarse filesystem
        clock and keep its times (git's rule for its index)."""
        changed = max((t for part in stamp if part for t in part[1:3]), default=0) / 1e9
        if found["engine"]["available"] and changed < asked - RACY_SECONDS:
            until = min(asked + MEMO_SECONDS, _holds_change(found))
            self._kept[(user.name, user.uid)] = (asked, until, stamp, _aged(found, 0.0))


def _holds_change(found: dict) -> float:
    """When a container of the overview stops holding its GPUs by time alone (no event tells): the soonest
    ``gpu_hold_ends`` (whole seconds, never later than the allocator's moment)."""
    ends = (project["container"].get("gpu_hold_ends") for project in found["projects"] if project["container"])
    return min((datetime.fromisoformat(e.replace("Z", "+00:00")).timestamp() for e in ends if e),
               default=float("inf"))


def _aged(found: dict, age: float, only: str | None = None) -> dict:
    """A copy of an overview (its projects and containers, which callers may add to) ``age`` seconds later;
    ``only``: of that project alone."""
    projects = []
    for project in found["projects"]:
        if only is not None and project["name"] != only:
            continue
        project = dict(project)
        container = project["container"]
        if container is not None:
            container = project["container"] = dict(container)
            for key in ("uptime_seconds", "idle_seconds"):
                if container.get(key) is not None:
                    container[key] += age
        projects.append(project)
    return {**found, "projects": projects}


def overview(core: DS01, user: User, only: str | None = None) -> dict:
    """Every project with its container, image and last measured size; ``only``: that one project alone (the
    sidebar asks for one at each container event; none when list() would not list it).

    Works while the engine is down: projects are on disk; the answer then says the engine is unavailable and why.
    A user's last overview is given again while it is still true (OverviewMemo).
    """
    kept = core.overview_memo.get(core, user, only)
    if kept is not None:
        return kept
    if only is not None:
        return _overview(core, user, only)
    asked, stamp = time.time(), core.overview_memo.stamp(core, user)  # before looking: a change meanwhile shows next
    found = _overview(core, user)
    core.overview_memo.keep(core, user, asked, stamp, found)
    return found


def _overview(core: DS01, user: User, only: str | None = None) -> dict:
    from . import gitstate, workspace_access

    engine = {"available": True, "reason": ""}
    containers, images = {}, {}
    try:
        records = core.engine.list_images(L.owned_by(user))  # one list for both (a slow call with many images)
        listed_images = core.images.list(user, records)
        images = {i.project: i for i in listed_images}
        containers = {c.project: c for c in core.containers.list(user, listed_images, records)}
    except EngineUnavailable as err:
        engine = {"available": False, "reason": str(err)}
    sizes = core.disk.cached(user)
    activity = core.reaper.last_active(user) if containers else {}
    if only is None:
        listed = core.projects.list(user)
    else:
        one = core.projects.listed(user, only)
        listed = [one] if one is not None else []
    git = gitstate.states(user, [str(p.path) for p in listed], gitstate.OVERVIEW_SECONDS)
    projects = []
    for project in listed:
        container = containers.get(project.name)
        image = images.get(project.name)
        projects.append(
            {
                "name": project.name,
                "path": str(project.path),
                "container": live_container(core, container, activity) if container else None,
                "image": image.to_dict() if image else None,
                "size": sizes.get(project.name),
                "warnings": (core.guard.remembered(user, project.name) or {}).get("at_risk", 0) if container else 0,
                "unwritable": workspace_access.unwritable(user, project.path),
                "git": git[str(project.path)].to_dict(),
            }
        )
    return {
        "user": user.name,
        "engine": engine,
        "projects": projects,
        "frameworks": sorted(core.settings.frameworks()),
    }


def live_container(core: DS01, container, activity: dict) -> dict:
    """A container as the sidebar shows it: with uptime (the engine's list lacks the start time) and idle time."""
    data = container.to_dict()
    if not container.running:
        core.forget_start(container.id)
    elif data.get("uptime_seconds") is None:
        started = core.start_times.get(container.id)
        if started is None:
            try:
                record = core.engine.get_container(container.id)
            except DS01Error:
                record = None  # gone or the engine went away since the list: no uptime, not an error
            started = record.started_at if record is not None else None
            if started is not None:
                core.start_times[container.id] = started
        if started is not None:
            data["started_at"] = started.isoformat()
            data["uptime_seconds"] = time.time() - started.timestamp()
    last = activity.get(container.id)
    data["idle_seconds"] = max(0.0, time.time() - last) if container.running and last else None
    return data


def gpu_inventory(core: DS01) -> dict:
    """Every GPU with its holder (from labels) and its processes' containers (from cgroups)."""
    from .gpus import attribute

    devices = core.inventory.devices()
    holders = {}
    by_id = {}
    if devices:
        everyone = core.containers.vet(core.engine.list_containers(L.managed()))  # labels alone count for nothing
        by_id = {c.id: c for c in everyone}
        holders = core.allocator.holders(everyone, core.containers.hold_for)
    attribute(devices, by_id)
    out = []
    for device in devices:
        data = device.to_dict()
        holder = holders.get(device.uuid)
        data["holder"] = (
            {"user": holder.labels.get(L.USER), "project": holder.labels.get(L.PROJECT), "container": holder.name}
            if holder
            else None
        )
        out.append(data)
    return {"gpus": out, "notice": core.inventory.notice}
