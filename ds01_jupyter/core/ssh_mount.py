"""The user's ~/.ssh, read-only in their containers (the ``mount_ssh`` setting), so ``git push`` works inside.

The user controls their home: ~/.ssh may be a link to another user's keys,
or be swapped for one between the check and the engine's mount (the engine
follows links in a mount's source, and resolves it again at every start).
So the folder is mounted only when it is a real folder owned by the user, and
after each start the mount the container really got is compared with that
folder (device and path within its filesystem, from the kernel's mountinfo):
anything else stops the container.
"""

from __future__ import annotations

import os
import stat

from .errors import Forbidden
from .users import User


def destination(user: User) -> str:
    """Where ~/.ssh appears inside: the home the default Dockerfile's account of the user has."""
    return f"/home/{user.name}/.ssh"


def source(user: User) -> tuple[str, os.stat_result] | None:
    """The user's ~/.ssh to mount (its path with no link in it, and its lstat), or None when they have none;
    Forbidden when it is not a real folder of theirs."""
    # The home itself cannot be swapped by its user (its parent is the admin's); its path may hold the admin's links.
    path = os.path.join(os.path.realpath(user.home), ".ssh")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Forbidden(f"Cannot look at {path} ({err.strerror}).") from None
    problem = ""
    if stat.S_ISLNK(st.st_mode):
        problem = "is a link (only a real folder is mounted, so no link can bring in someone else's files)"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a folder"
    elif st.st_uid != user.uid:
        problem = f"belongs to uid {st.st_uid}, not to you (uid {user.uid})"
    if problem:
        raise Forbidden(
            f"Your {path} {problem}; ds01 does not mount it into the container (mount_ssh).",
            hint=f"Make {path} a folder of your own (`mkdir -m 700 ~/.ssh`), or ask the admin to turn mount_ssh off.",
        )
    return path, st


def _unescape(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are octal escapes there."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _mounts(pid: int | str) -> list[tuple[str, str, str]]:
    """(device major:minor, root within its filesystem, mount point) of each mount ``pid`` sees."""
    out = []
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        for line in info:
            fields = line.split(" ")
            if len(fields) > 4:
                out.append((fields[2], _unescape(fields[3]), _unescape(fields[4])))
    return out


def identity(path: str, st: os.stat_result) -> tuple[str, str] | None:
    """(device, path within its filesystem) of the folder at ``path`` (no link in it) whose lstat was ``st``."""
    device = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    best = None
    for dev, root, point in _mounts("self"):
        inside = dev == device and (path == point or path.startswith(point.rstrip("/") + "/"))
        if inside and (best is None or len(point) > len(best[1])):
            best = (root, point)
    if best is None:
        return None
    rest = path[len(best[1].rstrip("/")):]
    return device, os.path.normpath(best[0].rstrip("/") + rest) if rest else best[0]


def verify(pid: int, user: User, expected: tuple[str, str] | None) -> str:
    """Why the container of ``pid`` does not have exactly the checked ~/.ssh at its destination; "" when it does."""
    if expected is None:
        return "the checked ~/.ssh could not be located among this host's mounts"
    try:
        got = [(dev, root) for dev, root, point in _mounts(pid) if point == destination(user)]
    except OSError as err:
        return f"its mounts cannot be read ({err.strerror}): the engine may run on another host"
    if got != [expected]:
        return f"{destination(user)} in it is not the checked ~/.ssh ({got or 'not mounted'} instead of {expected})"
    return ""


def checked(user: User) -> tuple[str, tuple[str, str] | None] | None:
    """(source, its identity) of the user's ~/.ssh to mount, or None when they have none."""
    found = source(user)
    if found is None:
        return None
    return found[0], identity(*found)




def check_started(engine, user: User, container_id: str, remove: bool = False) -> None:
    """After a start: a container given the user's ~/.ssh has exactly the folder checked, not what a link swapped
    in meanwhile (the engine resolves a mount's source at each start); otherwise it is stopped (removed when
    ``remove``) and the start refused."""
    record = engine.get_container(container_id)
    if record is None or destination(user) not in dict(record.mounts):
        return
    try:
        found = checked(user)
        why = verify(record.pid, user, found[1] if found else None)
    except Forbidden as err:
        why = err.message
    if not why:
        return
    if remove:
        engine.remove_container(record.id, force=True)
    else:
        engine.stop_container(record.id, timeout=0)
    raise Forbidden(
        f"{record.name} was {'removed' if remove else 'stopped'}: {why}. Your ~/.ssh is mounted only as the real "
        "folder of yours it was checked to be.",
        hint="Make ~/.ssh a folder of your own (not a link), then deploy or start again.", container=record.name,
    )
