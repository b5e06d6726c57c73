"""Whether a user can write their project folder, checked before a container is made on it.

A workspace made by root, copied with another owner, or on a read-only mount
deploys fine and fails only later, at the first save ("Permission denied").
The check runs with the user's own rights (``acting_as``), so it answers what
the container, which runs as that user, will meet.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import WorkspaceNotWritable
from .identity import acting_as
from .users import User

#: Folders of a project where the DS01 guide's work lands; checked when present.
CHECKED = ("models", "results")


def unwritable(user: User, folder: Path) -> list[str]:
    """The project folder and those of CHECKED under it that ``user`` cannot write ("." for the folder itself)."""
    found = []
    base = str(folder)
    with acting_as(user):
        for name in (".", *CHECKED):
            path = base if name == "." else os.path.join(base, name)  # strings: the overview asks for every project
            if not os.path.isdir(path):
                continue  # absent (or another host's folder): nothing to say
            # effective ids: as root acting for the user, the check uses their filesystem identity, not root's.
            if not os.access(path, os.W_OK | os.X_OK, effective_ids=True):
                found.append(name)
    return found


def shown(user: User, folder: Path) -> str:
    """The folder as the DS01 guide writes it: ~/workspace/<project> when it is under the user's home."""
    try:
        return "~/" + str(folder.relative_to(user.home))
    except ValueError:
        return str(folder)


def fix(user: User, folder: Path) -> str:
    """The DS01 guide's fix for a workspace its user cannot write."""
    return f"sudo chown -R $(whoami):$(whoami) {shown(user, folder)}"


def check(user: User, folder: Path, project: str) -> None:
    """Refuse (WorkspaceNotWritable) a project whose folder, models/ or results/ the user cannot write."""
    bad = unwritable(user, folder)
    if not bad:
        return
    where = ", ".join(shown(user, folder) if b == "." else f"{b}/" for b in bad)
    readonly = _read_only(folder)
    why = "it lies on a read-only mount" if readonly else "they belong to someone else or lack write permission"
    raise WorkspaceNotWritable(
        f"You cannot write to the workspace of {project} ({where}): {why}. A container on it could not save "
        "anything there.",
        hint=("Ask the admin to mount it read-write." if readonly else f"Make it yours: `{fix(user, folder)}`."),
        project=project, unwritable=bad, read_only=readonly,
    )


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
