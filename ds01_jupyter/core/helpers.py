"""The pure-Python helpers every container gets: ``from ds01_jupyter import checkpoints`` works inside.

An engine on this machine mounts them read-only from a host folder (:func:`host_folder`): nothing is written into
the container, and a start waits for no copy (the engine's archive call, about 35 ms, was a sixth of a deploy).
An engine elsewhere (a cluster node, a remote socket), or a host folder that cannot be made, gets them copied in
after each start (:func:`entries` at ``COPY_DIR``), as every container before this change had them.

The host folder is a link, ``helpers``, to ``helpers-<digest of the files>``: a folder never changed once made,
so a running container's mount never sees a half-written file, and a stopped one gets the current helpers at its
next start (the engine follows the link again). It is root's (``/var/lib/ds01-jupyter``) when root acts (ds01d,
a hub): no user may change what is mounted into containers; otherwise the user's own cache, whose containers are
theirs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

log = logging.getLogger("ds01_jupyter.helpers")

#: Where a local engine's containers see the helpers (read-only, on PYTHONPATH). In /dev, the engine's fresh
#: tmpfs: no link of the user's image can send the mount point elsewhere (a /tmp made a link to /workspace would
#: get root's folder made in their project), and nothing of it is in the container's files that an audit reads.
MOUNT = "/dev/.ds01-lib"
#: Where they are copied into the others (and were into every container before the mount).
COPY_DIR = "/tmp/.ds01/lib"
#: Both, on every container's PYTHONPATH: whichever it has.
PYTHONPATH = (MOUNT, COPY_DIR)
#: Subpackages of this package that code inside containers may import, besides its ``__init__``.
PACKAGES = ("checkpoints",)
#: Helper folders of older versions are removed once not current for this long (a start that followed the link
#: to one just before it changed has long mounted it by then; a running container keeps what it mounted, and a
#: stopped one follows the link again at its next start).
KEEP_OLD_S = 3600.0

_made: dict[str, Path] = {}
_lock = threading.Lock()


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


def base_folder() -> Path:
    """Where this process keeps the host folder: root's for root, else the user's cache."""
    if os.geteuid() == 0:
        return Path("/var/lib/ds01-jupyter")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "ds01-jupyter"


def host_folder(base: Path | None = None) -> Path | None:
    """The link a container mounts at ``MOUNT``, made current; None (the helpers are then copied in) when it
    cannot be made: a full disk, a folder that is not this process's alone."""
    base = base or base_folder()
    with _lock:
        known = _made.get(str(base))
        try:
            if known is not None and os.path.isdir(known / "ds01_jupyter"):
                return known
            made = _make(base, files())
        except OSError as err:
            log.warning("ds01: cannot keep the container helpers in %s (%s); they are copied into each container.",
                        base, err.strerror or err)
            return None
        _made[str(base)] = made
        return made


def _make(base: Path, found: list[tuple[str, bytes | None, int]]) -> Path:
    digest = hashlib.sha256()
    for path, data, mode in found:
        digest.update(f"{path}\0{mode}\0{len(data) if data is not None else -1}\0".encode() + (data or b""))
    name = f"helpers-{digest.hexdigest()[:24]}"
    _own_folder(base)
    target = base / name
    if not _mine(target):
        tmp = Path(tempfile.mkdtemp(prefix=".new-", dir=base))
        try:
            for path, data, mode in found:
                if data is None:
                    os.mkdir(tmp / path, mode)
                else:
                    fd = os.open(tmp / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
                os.chmod(tmp / path, mode)  # whatever the umask: every user of a container reads them
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, target)
            except OSError:  # made meanwhile by another process (the same files)
                if not _mine(target):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    link = base / "helpers"
    try:
        current = os.readlink(link)
    except OSError:
        current = None
    if current != name:
        new = base / f".link-{os.urandom(6).hex()}"
        os.symlink(name, new)
        try:
            os.replace(new, link)
        except OSError:
            new.unlink(missing_ok=True)
            raise
        if current and "/" not in current:
            with contextlib.suppress(OSError):
                os.utime(base / current, follow_symlinks=False)  # when it stopped being current
        _drop_old(base, name)
    return link


def _own_folder(base: Path) -> None:
    """``base`` a folder of this process's user that no one else may change (made when missing)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(base, 0o755)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise PermissionError(f"{base} is not a folder of uid {os.geteuid()} that only it may change")


def _mine(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
        return True
    raise PermissionError(f"{path} is not a folder of uid {os.geteuid()} that only it may change")


def _drop_old(base: Path, current: str) -> None:
    """Remove helper folders no link names any more (older versions), and half-made ones, after KEEP_OLD_S."""
    now = time.time()
    for entry in os.scandir(base):
        if entry.name == current or not entry.name.startswith(("helpers-", ".new-", ".link-")):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < KEEP_OLD_S:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
