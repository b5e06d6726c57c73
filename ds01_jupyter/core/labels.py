"""DS01's container label schema, so DS01's other tools recognise our containers."""

from __future__ import annotations

from datetime import datetime, timezone

MANAGED = "ds01.managed"
USER = "ds01.user"
USER_ID = "ds01.user_id"
GROUP_ID = "ds01.group_id"
PROJECT = "ds01.project"
WORKSPACE = "ds01.workspace"
WORK_MOUNT = "ds01.work_mount"
GPU_UUIDS = "ds01.gpu.uuids"
GPU_SLOTS = "ds01.gpu.slots"
GPU_ALLOCATED = "ds01.gpu.allocated"
CREATED_AT = "ds01.created_at"
IMAGE = "ds01.image"
INTERFACE = "ds01.interface"
PROTECTED = "ds01.protected"  # "true" exempts from idle/runtime enforcement
FALLBACK = "ds01.fallback"  # the framework whose image the container runs instead of its project's ("" for none)


def managed() -> dict[str, str]:
    """Filter for every container any ds01 tool manages."""
    return {MANAGED: "true"}


def owned_by(user) -> dict[str, str]:
    """Filter for one user's containers and images: name and uid must both match."""
    return {MANAGED: "true", USER: user.name, USER_ID: str(user.uid)}


def is_owned_by(labels: dict, user) -> bool:
    return (
        labels.get(MANAGED) == "true"
        and labels.get(USER) == user.name
        and labels.get(USER_ID) == str(user.uid)
    )


def is_container_of(labels: dict, user) -> bool:
    """Ours and made by a ds01 deploy: images carry the ownership labels too, and
    a container made by hand from our image inherits them, but never these."""
    return is_owned_by(labels, user) and bool(labels.get(WORKSPACE)) and bool(labels.get(CREATED_AT))


def gpu_uuids(labels: dict) -> list[str]:
    return [u for u in (labels.get(GPU_UUIDS) or "").split(",") if u]


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
