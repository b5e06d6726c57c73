"""The pure-Python helpers every container gets: ``from ds01_jupyter import checkpoints`` works inside.

An engine on this machine mounts them read-only from a host folder (:func:`host_folder`): nothing is written into
the container, and a start waits for no copy (the engine's archive call, about 35 ms, was a sixth of a deploy).
An engine elsewhere (a cluster node, a remote socket), or a host folder that cannot be made or used, gets them
copied in after each start (:func:`entries` at ``COPY_DIR``), as every container before the mount had them.
An image that holds the whole package (ds01's single-user image, which says so with ``DS01_MODE=container``)
gets neither: the helpers first on its PYTHONPATH would hide the rest of its own package (its server extension).

The host folder is a link, ``helpers``, to ``helpers-<digest of the files>``: a folder never changed once made,
so a running container's mount never sees a half-written file, and a stopped one gets the current helpers at its
next start (the engine follows the link again). Versions are never removed by ds01: a running container keeps
the folder it mounted, whichever version is current. The folder is root's (``/var/lib/ds01-jupyter``) when root
acts (ds01d, a hub): no user may change what is mounted into containers; otherwise the user's own, whose
containers are theirs (the setting ``helpers_dir`` moves it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import threading
import time
from importlib import resources
from pathlib import Path

log = logging.getLogger("ds01_jupyter.helpers")

#: Where a local engine's containers see the helpers (read-only, on PYTHONPATH). In /dev, the engine's fresh tmpfs
#: at every start: no link of the user's image can send the mount point elsewhere then (an archive call's view of
#: a stopped container is the image's own /dev: see Containers._helpers_mount).
MOUNT = "/dev/.ds01-lib"
#: Where they are copied into the others (and were into every container before the mount).
COPY_DIR = "/tmp/.ds01/lib"
#: Both, on every container's PYTHONPATH (unless its image has the package): whichever it has.
PYTHONPATH = (MOUNT, COPY_DIR)
#: Subpackages of this package that code inside containers may import, besides its ``__init__``.
PACKAGES = ("checkpoints",)
#: An image's ENV entry that says it holds the whole package (ds01's single-user image for the hub).
WHOLE_PACKAGE = "DS01_MODE=container"
#: Half-made folders and links (a maker killed mid-way) are removed after this long.
KEEP_UNFINISHED_S = 3600.0
LINK = "helpers"

_made: dict[str, Path] = {}
_lock = threading.Lock()


def wanted(image_env) -> bool:
    """Whether a container of an image with this ENV gets the helpers (not when the image holds the package)."""
    return WHOLE_PACKAGE not in (image_env or ())


def files() -> list[tuple[str, bytes | None, int]]:
    """(path below the helpers' folder, data or None for a folder, mode), parents before their children."""
    root = resources.files("ds01_jupyter")
    out: list[tuple[str, bytes | None, int]] = [
        ("ds01_jupyter", None, 0o755),
        ("ds01_jupyter/__init__.py", root.joinpath("__init__.py").read_bytes(), 0o644),
    ]
    for sub in PACKAGES:
        out.append((f"ds01_jupyter/{sub}", None, 0o755))
        for item in sorted(root.joinpath(sub).iterdir(), key=lambda i: i.name):
            if item.name.endswith(".py"):
                out.append((f"ds01_jupyter/{sub}/{item.name}", item.read_bytes(), 0o644))
    return out


def entries() -> list[tuple[str, bytes | None, int]]:
    """What a copy into a container writes below /tmp (``engine.put_tree``): ``COPY_DIR`` and the helpers."""
    parts = COPY_DIR.removeprefix("/tmp/").split("/")
    folders = [("/".join(parts[: i + 1]), None, 0o1777 if i == 0 else 0o755) for i in range(len(parts))]
    return [*folders, *((f"{'/'.join(parts)}/{path}", data, mode) for path, data, mode in files())]


def base_folder(setting: str = "") -> Path:
    """Where this process keeps the host folder: the setting, else root's for root, else the user's state."""
    if setting:
        return Path(os.path.abspath(os.path.expanduser(setting)))  # the engine resolves no relative path of ours
    if os.geteuid() == 0:
        return Path("/var/lib/ds01-jupyter")
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "ds01-jupyter"


def host_folder(base: Path) -> Path | None:
    """The link a container mounts at ``MOUNT``, made current; None (the helpers are then copied in) when it
    cannot be made: a full disk, a folder that is not this process's alone."""
    with _lock:
        try:
            name = _current_name()
            link = base / LINK
            if _made.get(str(base)) == link and _current(link, name):
                return link  # a readlink and a stat: another version's process may have moved the link since
            _made[str(base)] = _make(base, name)
            return link
        except OSError as err:
            log.warning("ds01: cannot keep the container helpers in %s (%s); they are copied into each container.",
                        base, err.strerror or err)
            return None


def ready(engine, setting: str, mounts) -> None:
    """A container's helpers folder made again if it was removed: the engine follows the link at each start, and
    looks at every mount's source at each archive call (a rescue, a kernel's files, a stop record), failing without
    it. Only this process's own folder is made; another (an older ``helpers_dir``) is left as it is."""
    if getattr(engine, "local", False):
        base = base_folder(setting)
        if dict(mounts).get(MOUNT) == str(base / LINK):
            host_folder(base)  # None (logged) when it cannot be made: the engine then says what is missing


def roots_own(source: str) -> bool:
    """Whether a mount's source is a folder only root may change, every folder above it too (the link ``helpers``
    and the version folder it names included): what root may mount into a user's container at each start."""
    path = Path(source)
    if not path.is_absolute() or ".." in path.parts:
        return False
    try:
        for step in [*reversed(path.parents), path]:
            st = os.lstat(step)
            # A sticky folder others may write (/tmp) is fine above: none of them may move root's entry in it.
            above = step != path and st.st_mode & stat.S_ISVTX
            if st.st_uid != 0 or (st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode) and not above):
                return False
            if stat.S_ISLNK(st.st_mode):
                if step != path or "/" in os.readlink(step):
                    return False  # only the last step may be a link, to a folder beside it
                target = os.lstat(path.parent / os.readlink(step))
                if not stat.S_ISDIR(target.st_mode) or target.st_uid != 0 or target.st_mode & 0o022:
                    return False
            elif not stat.S_ISDIR(st.st_mode):
                return False
    except OSError:
        return False
    return True


_named: list = [None, ""]  # (the files function named, its folder name): the installed files do not change


def _current_name() -> str:
    """The version folder's name for this process's helpers, computed once (the allocator asks per container)."""
    if _named[0] is not files:
        _named[:] = [files, _name(files())]
    return _named[1]


def _name(found: list[tuple[str, bytes | None, int]]) -> str:
    digest = hashlib.sha256()
    for path, data, mode in found:
        digest.update(f"{path}\0{mode}\0{len(data) if data is not None else -1}\0".encode() + (data or b""))
    return f"helpers-{digest.hexdigest()[:24]}"


def _current(link: Path, name: str) -> bool:
    try:
        return os.readlink(link) == name and os.path.isdir(link / "ds01_jupyter")
    except OSError:
        return False


def _make(base: Path, name: str) -> Path:
    _own_folder(base)
    target = base / name
    if not _mine(target):
        found = files()
        import shutil  # here, not at the top: only a new version's first deploy makes the folder (the CLI's start)
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=base))
        try:
            for path, data, mode in found:
                if data is None:
                    os.mkdir(tmp / path, mode)
                else:
                    fd = os.open(tmp / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
                        out.flush()
                        os.fsync(out.fileno())  # a folder that exists is complete, even after a power cut
                os.chmod(tmp / path, mode)  # whatever the umask: every user of a container reads them
            os.chmod(tmp, 0o755)
            _sync_folders(tmp, [path for path, data, _ in found if data is None])
            try:
                os.rename(tmp, target)
            except OSError:  # made meanwhile by another process (the same files)
                if not _mine(target):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    link = base / LINK
    if not _current(link, name):
        new = base / f".link-{os.urandom(6).hex()}"
        os.symlink(name, new)
        try:
            os.replace(new, link)
        except OSError:
            new.unlink(missing_ok=True)
            raise
        _drop_unfinished(base)
    return link


def _sync_folders(top: Path, folders: list[str]) -> None:
    """fsync the folders too (their entries), so that a folder that exists after a power cut is whole."""
    for folder in [*folders, ""]:
        fd = os.open(top / folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _own_folder(base: Path) -> None:
    """``base`` a folder of this process's user that no one else may change (made when missing)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(base, 0o755)
    except FileExistsError:
        pass
    if not _mine(base):
        raise FileNotFoundError(f"{base} went away as it was made")


def _mine(path: Path) -> bool:
    """Whether ``path`` exists: False when not, True when it is a folder of this process's user that no one else may
    change, PermissionError when it is anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
        return True
    raise PermissionError(f"{path} is not a folder of uid {os.geteuid()} that only it may change")


def _drop_unfinished(base: Path) -> None:
    """Remove what makers killed half-way left (never a version's folder: a container may mount it)."""
    import shutil

    now = time.time()
    for entry in os.scandir(base):
        if not entry.name.startswith((".new-", ".link-")):
            continue
        with contextlib.suppress(OSError):
            if now - entry.stat(follow_symlinks=False).st_mtime < KEEP_UNFINISHED_S:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
