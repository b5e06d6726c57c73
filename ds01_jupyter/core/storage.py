"""Where a user's bytes are: each project's workspace, checkpoints and image, against the quota, and the
disk's free space (``ds01 usage``, GET /ds01/usage, the sidebar's limits panel).
"""

from __future__ import annotations

import os

from .errors import DS01Error, EngineUnavailable
from .identity import acting_as
from .requests import StorageQuery
from .users import User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import DS01


def storage_use(core: DS01, user: User, larger_than: int | None = None) -> dict:
    """Per project: workspace size, largest files, checkpoint bytes, image bytes; against the quota. Images
    count a layer shared by several of them (the base image) once, as ``docker system df`` does; the
    disk's free space is shown; ``larger_than`` lists the files of at least that many bytes."""
    larger_than = StorageQuery(larger_than).larger_than
    quota = core.limits.for_user(user).storage_workspace
    images, image_totals = {}, None
    try:
        mine = core.cleanup.images(user)  # one listing serves the per-project sizes and the totals
        images = {i["project"]: i["size"] for i in mine if i["state"] == "current"}
        image_totals = image_totals_of(core, mine)
    except EngineUnavailable:
        pass
    projects, large = {}, []
    for project in core.projects.list(user):
        size = core.disk.measure(user, project.name, over=larger_than)
        try:
            ckpt = core.checkpoints(user, project.name)["bytes"]
        except DS01Error:
            ckpt = 0
        data = size.to_dict()
        large += [[project.name, path, n] for path, n in data.pop("over") or ()]
        projects[project.name] = {**data, "checkpoint_bytes": ckpt, "image_bytes": images.get(project.name)}
    total = sum(p["bytes"] for p in projects.values())
    result = {
        "projects": projects,
        "total_bytes": total,
        "image_bytes": image_totals["total_bytes"] if image_totals else 0,
        "images": image_totals,
        "quota_bytes": quota,
        "over_quota": quota is not None and total > quota,
        "disk": free_space(core, user),
    }
    if larger_than is not None:
        result["larger_than"] = larger_than
        result["large_files"] = sorted(large, key=lambda f: -f[2])[:200]
    return result


def image_totals_of(core: DS01, mine: list[dict]) -> dict:
    """The user's images (``cleanup.images``): bytes unique to each, bytes shared (counted once), and in all."""
    try:
        usage, exact = core.engine.image_usage(), True
    except DS01Error:  # the engine could not measure now: each image's whole size, said so
        usage, exact = {}, False
    unique = shared = 0
    for image in mine:
        size, common = usage.get(image["id"], (image["size"], 0))
        unique += size - common
        shared = max(shared, common)  # the user's images share one base: its layers count once
    return {"count": len(mine), "unique_bytes": unique, "shared_bytes": shared, "total_bytes": unique + shared,
            "exact": exact}


def free_space(core: DS01, user: User) -> dict | None:
    """The free and total bytes of the disk holding the user's projects, as the user sees it."""
    root = core.projects.root(user)
    try:
        with acting_as(user):
            fs = os.statvfs(root)
    except OSError:
        return None
    return {"path": str(root), "free_bytes": fs.f_bavail * fs.f_frsize, "total_bytes": fs.f_blocks * fs.f_frsize}
