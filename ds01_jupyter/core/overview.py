"""What the sidebar, ``ds01 status`` and the hub show of a user's world: the projects overview and the GPUs.

Read-only views built from the core's parts (projects on disk, containers and images from the engine,
remembered sizes and findings); they never change anything, and answer with the engine down.
"""

from __future__ import annotations

import time

from .errors import DS01Error, EngineUnavailable
from .users import User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import DS01


def overview(core: DS01, user: User, only: str | None = None) -> dict:
    """Every project with its container, image and last measured size; ``only``: that one project alone (the
    sidebar asks for one at each container event; none when list() would not list it).

    Works while the engine is down: projects are on disk; the answer then
    says the engine is unavailable and why.
    """
    from . import gitstate, workspace_access

    engine = {"available": True, "reason": ""}
    containers, images = {}, {}
    try:
        from . import labels as L

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
    from . import labels as L
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
