"""Which containers are whose: their real configuration, never labels alone.

Anyone who may run ``docker run`` can put ds01's labels on a container, and a
container inherits its image's labels. These pure functions decide from what
the engine really configured (name, /workspace mount, image, uid:gid); the
Containers class applies them in one place (``Containers.vet``) for listing,
deploy, GPU holders, limits, the reaper and the guard.
"""

from __future__ import annotations

import os
from dataclasses import replace

from . import labels as L
from . import workspace_pin
from .engine import ContainerRecord, ImageRecord
from .errors import InvalidName
from .names import check_project_name, container_name
from .users import User


def network_name(user: User) -> str:
    """The user's own bridge network: with the uid, so two accounts of one name never share it."""
    return f"ds01-{user.name}-{user.uid}"


def distrust(record: ContainerRecord, image: ImageRecord | None, image_tag: str, folder_uid: int | None) -> str:
    """Why ``record`` is not a container ds01 made for the user its labels name; "" when it is.

    Labels alone prove nothing: anyone who may run ``docker run`` can set them, and a container
    inherits its image's. So its real configuration must be what a ds01 deploy makes: the name
    ``<project>._.<user>``, that project folder (owned by the user's uid, when we may look) at
    /workspace, the project's image built by ds01 for that user, and the user's uid:gid.
    ``image`` is the image the container runs (None: unknown), ``image_tag`` the project's image
    name, ``folder_uid`` the owner of the mounted folder (None: it could not be looked at).
    """
    labels = record.labels
    user, uid, gid, project = (
        labels.get(L.USER, ""),
        labels.get(L.USER_ID, ""),
        labels.get(L.GROUP_ID, ""),
        labels.get(L.PROJECT, ""),
    )
    try:
        check_project_name(project)
    except InvalidName:
        return f"its project label {project!r} is not a project name"
    if labels.get(L.MANAGED) != "true" or not user or not uid.isdigit():
        return "its ds01 labels do not name a user and uid"
    if record.name != container_name(project, user):
        return f"its name is not {container_name(project, user)}"
    if record.config_user != f"{uid}:{gid}":
        return f"it runs as {record.config_user or 'the image user'!r}, not as uid:gid {uid}:{gid}"
    source = workspace_pin.source_of(record)
    if labels.get(L.WORK_MOUNT, "/workspace") != "/workspace" or not source:
        return "no project folder is mounted at /workspace"
    if source != labels.get(L.WORKSPACE) or os.path.basename(source) != project:
        return f"it mounts {source} at /workspace, not the folder of project {project}"
    if folder_uid is not None and str(folder_uid) != uid:
        return f"its /workspace folder {source} belongs to uid {folder_uid}, not {uid}"
    if image is None:
        return "its image is gone or unknown"
    owner = image.labels
    if owner.get(L.USER) != user or owner.get(L.USER_ID) != uid or owner.get(L.PROJECT) != project:
        return f"its image {record.image} was not built by ds01 for {user} and {project}"
    tags = [t for t in image.tags if t != "<none>:<none>"]
    if tags and image_tag not in tags:  # untagged: an older build of the project, superseded by a rebuild
        return f"its image is {', '.join(tags)}, not {image_tag}"
    return ""


#: Labels holding ds01's decisions about a container. An image may carry them too (a Dockerfile's
#: LABEL), and a container inherits its image's labels: a value equal to the image's never counts.
#: (ds01 always sets them on the containers it makes, and neutralises them on the images it builds.)
DECISIONS = (L.PROTECTED, L.GPU_UUIDS, L.GPU_SLOTS, L.GPU_ALLOCATED, L.INTERFACE, L.FALLBACK)


def own_labels(record: ContainerRecord, image: ImageRecord | None) -> ContainerRecord:
    """The record without decision labels it may have inherited from its image."""
    inherited = {
        k for k in DECISIONS if image is not None and k in image.labels and image.labels[k] == record.labels.get(k)
    }
    if not inherited:
        return record
    return replace(record, labels={k: v for k, v in record.labels.items() if k not in inherited})
