"""The user's ~/.ssh, read-only in their containers (the ``mount_ssh`` setting), so ``git push`` works inside.

The user controls their home: ~/.ssh may be a link to another user's keys,
or be swapped for one between the check and the engine's mount (the engine
follows links in a mount's source, and resolves it again at every start).
So the folder is used only when it is a real folder owned by the user. A start
root makes for a user (ds01d, a hub run as root) never hands the engine a path
the user may change: it mounts a copy of the folder (``stage``), made again
before each start with the user's own rights, in a folder only root may change;
the container's own processes run at once, before any check could stop them.
After each start the mount the container really got is compared with the
folder meant (device and path within its filesystem, from the kernel's
mountinfo): anything else stops the container.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat

from .errors import Forbidden
from .identity import acting_as
from .run_folder import RUN_FOLDER, private_folder, root_folder, unusable
from .users import User

#: Where root keeps the copies of users' ~/.ssh for the containers it starts for them (one folder per uid).
STAGE_ROOT = f"{RUN_FOLDER}/ssh"
#: What a copy takes of ~/.ssh: its regular files (no link, no folder), each at most this size, at most this many,
#: at most this much in all (it lies in /run, memory); the first names of the folder only (a huge one costs nothing).
STAGE_MAX_BYTES = 256 << 10
STAGE_MAX_FILES = 256
STAGE_MAX_TOTAL = 1 << 20
_MAX_NAME = 200  # longer names are left out (the name written beside must fit too)
_NEW = ".ds01-new"  # a file being written into a copy, renamed over the old one when complete
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def checked(user: User, staged: bool = False) -> tuple[str, tuple[str, str] | None] | None:
    """(folder to mount, its identity) for the user's ~/.ssh, or None when they have none: the folder itself, or
    with ``staged`` (a start root makes for them) its copy, made again now (see stage)."""
    if staged:
        folder = stage(user)
        return (folder, _identity_of(folder)) if folder else None
    found = source(user)
    if found is None:
        return None
    return found[0], identity(*found)


def stage(user: User) -> str | None:
    """Copy what the user may read of their ~/.ssh (its regular files, read with their rights, no link followed)
    into root's folder for them, replacing the last copy in place (their other containers mount the same folder);
    its path, or None when they have no ~/.ssh (the copy is then emptied)."""
    found = source(user)
    files = _read_as(user, found[0]) if found else {}
    with _stage_root() as root:  # one copy at a time on this host (ds01d's threads, a hub run as root)
        folder = staged_folder(user)
        try:
            fcntl.flock(root, fcntl.LOCK_EX)
            root_folder(folder, 0o750, user.gid)  # the user's group lists it in their containers (only there)
            _write_copy(folder, files, user)
        except OSError as err:  # a full /run, no descriptor left
            raise unusable(folder, err) from None
    return folder if found else None


def staged_folder(user: User) -> str:
    return os.path.join(STAGE_ROOT, str(user.uid))


def _identity_of(folder: str) -> tuple[str, str] | None:
    """identity() of root's copy for a user (its path holds no link)."""
    return identity(folder, os.lstat(folder))


def _read_as(user: User, path: str) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, content) of the regular files in ``path``, opened as ``user`` without following links."""
    files: dict[str, tuple[int, bytes]] = {}
    with acting_as(user):
        try:
            folder = os.open(path, _OPEN_DIR)
        except OSError as err:
            raise Forbidden(f"Cannot read {path} ({err.strerror}); ds01 does not mount it (mount_ssh).") from None
        try:
            if os.fstat(folder).st_uid != user.uid:  # swapped since it was looked at
                raise Forbidden(f"{path} changed while it was read; ds01 does not mount it (mount_ssh).")
            total = 0
            with os.scandir(folder) as entries:
                names = sorted(entry.name for entry, _ in zip(entries, range(4 * STAGE_MAX_FILES)))
            for name in names:
                if name.endswith(_NEW) or len(os.fsencode(name)) > _MAX_NAME or len(files) >= STAGE_MAX_FILES:
                    continue
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                                 dir_fd=folder)
                except OSError:
                    continue  # a link, or what the user may not read
                try:
                    st = os.fstat(fd)
                    most = min(STAGE_MAX_BYTES, STAGE_MAX_TOTAL - total)
                    content = _read_all(fd, most) if stat.S_ISREG(st.st_mode) and st.st_size <= most else None
                    if content is not None:
                        files[name] = (st.st_mode & 0o777, content)
                        total += len(content)
                except OSError:
                    continue
                finally:
                    os.close(fd)
        finally:
            os.close(folder)
    return files


def _read_all(fd: int, most: int) -> bytes | None:
    """The file's content, or None when it holds more than ``most`` bytes (grown since it was looked at)."""
    chunks, size = [], 0
    while size <= most:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks) if size <= most else None


@contextlib.contextmanager
def _stage_root():
    """STAGE_ROOT, made when missing, open (its descriptor is the host-wide lock of the copies)."""
    private_folder(STAGE_ROOT)  # no user reaches their copy on the host (they could fill /run through it)
    try:
        fd = os.open(STAGE_ROOT, _OPEN_DIR)
    except OSError as err:
        raise unusable(STAGE_ROOT, err) from None
    try:
        yield fd
    finally:
        os.close(fd)


def _write_copy(folder: str, files: dict[str, tuple[int, bytes]], user: User) -> None:
    """Make ``folder`` (root's) hold exactly ``files``, as the user's: each written beside, then renamed over the
    old one."""
    fd = os.open(folder, _OPEN_DIR)
    try:
        for name in os.listdir(fd):
            if name not in files:
                os.unlink(name, dir_fd=fd)
        for name, (mode, content) in files.items():
            new = name + _NEW
            out = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=fd)
            try:
                os.fchown(out, user.uid, user.gid)
                os.fchmod(out, mode & 0o700)  # theirs alone: the folder's group may be shared (only names show)
                view = memoryview(content)
                while view:
                    view = view[os.write(out, view):]
            finally:
                os.close(out)
            os.replace(new, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)


def check_started(engine, user: User, container_id: str, remove: bool = False, staged: bool = False) -> None:
    """After a start: a container given the user's ~/.ssh has exactly the folder meant (with ``staged``, root's
    copy of it), not what a link swapped in meanwhile (the engine resolves a mount's source at each start);
    otherwise it is stopped (removed when ``remove``) and the start refused."""
    record = engine.get_container(container_id)
    if record is None or destination(user) not in dict(record.mounts):
        return
    try:
        if not getattr(engine, "sees_pid_of", lambda _record: True)(record):
            why = "mount_ssh works only for containers on this machine (a node elsewhere has no copy, nor its /proc)"
        elif staged:
            why = verify(record.pid, user, _identity_of(staged_folder(user)))
        else:
            found = checked(user)
            why = verify(record.pid, user, found[1] if found else None)
    except Forbidden as err:
        why = err.message
    except OSError as err:
        why = f"root's copy of ~/.ssh cannot be looked at ({err.strerror})"
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
