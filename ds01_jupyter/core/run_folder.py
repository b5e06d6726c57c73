"""ds01's folders in /run that only root may change, for what root does for users (ds01d, a hub run as root).

``/run/ds01`` is ds01d's run folder (its socket); below it, folders of root's alone: the copies of users' ~/.ssh
(ssh_mount.stage) and one lock per container that root starts for a user (``start_lock``). None of it is a path
a user may swap or hold, and all of it is made again after a reboot.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import time

from .errors import DS01Error, StateConflict

RUN_FOLDER = "/run/ds01"
LOCKS = f"{RUN_FOLDER}/starts"


def root_folder(path: str, mode: int | None, gid: int = 0) -> None:
    """Make ``path`` a folder of root's that no one else may change, or refuse what is there; with ``mode``, one
    of exactly that mode and group ``gid`` (an older one is set so). Without, ds01d's run folder, as it makes it
    (0755: users reach its socket)."""
    try:
        try:
            os.mkdir(path, 0o700)
            if mode is None:
                os.chmod(path, 0o755)  # whatever the umask
        except FileExistsError:
            pass
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise DS01Error(f"{path} is not a folder of root's that only root may change.",
                            hint=f"An admin removes {path}; ds01 makes it again.")
        if mode is not None and (st.st_mode & 0o7777 != mode or st.st_gid != gid):
            os.chown(path, 0, gid, follow_symlinks=False)
            os.chmod(path, mode, follow_symlinks=False)
    except OSError as err:
        raise unusable(path, err) from None


def unusable(path: str, err: OSError) -> DS01Error:
    return DS01Error(f"ds01 cannot keep {path} ({err.strerror or err}).",
                     hint="An admin checks that root may write /run and that it is not full.")


def private_folder(path: str) -> None:
    """``path`` below RUN_FOLDER, made a folder only root may open."""
    if os.geteuid() != 0:
        raise DS01Error(f"Only root keeps {path}.")
    root_folder(RUN_FOLDER, None)
    root_folder(path, 0o700)


@contextlib.contextmanager
def start_lock(container_name: str, timeout: float = 60.0):
    """Held while root starts a user's container offline, and while it checks that run and connects its network:
    another request's start of the same container (one that ended meanwhile) waits, so a run never gets the
    network that was meant for the run before it. Host-wide (ds01d's threads, a hub run as root); not across the
    hosts of a cluster, where the pid each connect is bound to still holds. StateConflict after ``timeout``."""
    private_folder(LOCKS)
    key = hashlib.sha256(container_name.encode()).hexdigest()[:32]  # one per name: bounded by the projects
    path = os.path.join(LOCKS, key)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise unusable(path, err) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StateConflict(f"Another start of {container_name} is under way.",
                                        hint="Wait for it, then look again (`container-list`).") from None
                time.sleep(0.05)
            except OSError as err:
                raise unusable(path, err) from None
        yield
    finally:
        os.close(fd)
