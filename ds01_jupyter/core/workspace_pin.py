"""The project folder root hands the engine for a user's container: a path she cannot swap.

The engine resolves a bind mount's source path again at every start, following links. Root checks the user's
project folder before a start and the folder the container really got after it, but between the two she could
swap ``~/workspace/<project>`` for a link to another user's folder: her container's processes, running as her,
would hold that folder for a moment, and from the host she could open ``/proc/<pid>/root/workspace`` and keep it.

So where root starts containers for users (ds01d, a hub run as root) the engine is given
``/run/ds01/workspaces/<uid>/<container>`` instead, a folder only root may change, on which root bind-mounts the
project folder it opened and found to be hers: what is checked is what is mounted, one descriptor, no path in
between. It is bound again before every start (she may have made her project again meanwhile), and removed with
the container. ds01d runs in a mount namespace of its own (systemd's ProtectSystem), whose mounts the engine does
not see: the bind is then made in the engine's (that of its socket's peer), by ``nsenter``.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from . import labels as L
from .errors import DS01Error, Forbidden
from .run_folder import RUN_FOLDER, root_folder

PIN_ROOT = f"{RUN_FOLDER}/workspaces"
_MS_BIND = 0x1000
_MNT_DETACH = 2


def path_for(uid: int | str, container: str) -> str:
    return f"{PIN_ROOT}/{int(uid)}/{container}"


def pinned(record) -> bool:
    """Whether the engine was given this container's pin for /workspace (a path only root may make, for this very
    container), not a folder's path."""
    source = dict(record.mounts).get("/workspace")
    uid = record.labels.get(L.USER_ID, "")
    return bool(source) and uid.isdigit() and source == path_for(uid, record.name)


def source_of(record) -> str | None:
    """The project folder a container mounts at /workspace: its label's where it is pinned, else the mount's own
    source."""
    source = dict(record.mounts).get("/workspace")
    return (record.labels.get(L.WORKSPACE) or source) if pinned(record) else source


def pin(user, folder: Path | str, container: str, engine_url: str | None = None) -> str:
    """Bind the user's ``folder`` (opened without following a final link, and checked to be hers) onto the
    container's pin, made again; the path to give the engine. Forbidden when it is not her folder."""
    root_folder(RUN_FOLDER, None)
    root_folder(PIN_ROOT, 0o700)
    root_folder(f"{PIN_ROOT}/{int(user.uid)}", 0o700)
    target = path_for(user.uid, container)
    _in_engines_namespace(engine_url, "bind", str(folder), target, str(int(user.uid)))
    return target


def unpin(uid: int | str, container: str, engine_url: str | None = None) -> None:
    """Remove a container's pin (its bind and folder), if it has one; never an error (a leftover is root's)."""
    if not str(uid).isdigit() or not os.path.isdir(f"{PIN_ROOT}/{int(uid)}"):
        return
    try:
        _in_engines_namespace(engine_url, "unbind", path_for(uid, container))
    except Exception:  # noqa: BLE001 - a leftover is root's, made again (or removed) at the next pin of that name
        pass


def _in_engines_namespace(engine_url: str | None, *args: str) -> None:
    namespace = _engines_namespace(engine_url)
    if namespace is None:
        _run(list(args))
        return
    import subprocess

    try:
        done = subprocess.run(["nsenter", f"--mount={namespace}", "--", sys.executable, "-m", __name__, *args],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DS01Error(f"Could not enter the engine's mount namespace to mount the project folder: {err}.",
                        hint="ds01d needs nsenter (util-linux) when it runs in a mount namespace of its own.") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["nsenter failed"])[-1]
        error = Forbidden if said.startswith("Forbidden") else DS01Error
        raise error(said.partition(": ")[2] or said)


def _engines_namespace(engine_url: str | None) -> str | None:
    """The engine's mount namespace (/proc/<its pid>/ns/mnt, its pid from its socket's peer) where it is not
    this process's; None where it is, or where there is no other to be seen. DS01Error where the engine cannot be
    asked while this process is in a namespace of its own: a bind it could not see would be no pin at all."""
    import socket
    import struct

    from .hijack import connect, engine_address

    ours = os.stat("/proc/self/ns/mnt").st_ino
    try:
        with connect(engine_address(engine_url), timeout=30) as sock:
            pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        theirs = f"/proc/{pid}/ns/mnt"
        if pid <= 0:
            raise OSError("the engine's process is not in this process's PID namespace")
        return None if os.stat(theirs).st_ino == ours else theirs
    except (OSError, DS01Error) as err:
        # Fail closed: a bind the engine cannot see would give her container an empty /workspace.
        try:
            elsewhere = os.stat("/proc/1/ns/mnt").st_ino != ours
        except OSError:
            elsewhere = False  # nothing else to be seen: this namespace is the machine's
        if elsewhere:
            raise DS01Error(f"Cannot tell the engine's mount namespace ({err}); the project folder was not mounted.",
                            hint="Check that the Docker engine answers on its socket, then start again.") from None
        return None


def _run(args: list[str]) -> None:
    if args[0] == "bind":
        _bind(args[1], args[2], int(args[3]))
    else:
        _unbind(args[1])
        try:
            os.rmdir(args[1])
        except FileNotFoundError:
            pass


def _libc():
    from .identity import Identity  # the C library ds01 already loads to act as a user

    return Identity.libc()


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def _bind(folder: str, target: str, uid: int) -> None:
    try:
        fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise Forbidden(f"{folder} cannot be mounted ({err.strerror}): not a real folder.") from None
    try:
        held = os.fstat(fd)
        if held.st_uid != uid:
            raise Forbidden(f"{folder} is not the user's folder (its owner is uid {held.st_uid}).")
        _unbind(target)
        try:
            os.mkdir(target, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(target)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
            raise DS01Error(f"{target} is not a folder of root's.")
        libc = _libc()
        if libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, _MS_BIND, None) != 0:
            raise DS01Error(f"Could not mount {folder} at {target}: {os.strerror(_errno())}.")
        got = os.stat(target)
        if (got.st_dev, got.st_ino) != (held.st_dev, held.st_ino):
            _unbind(target)
            raise DS01Error(f"{target} did not get {folder}.")
    finally:
        os.close(fd)


def _mounted(target: str) -> bool:
    """Whether something is mounted at ``target`` (os.path.ismount misses a bind within one filesystem)."""
    with open("/proc/self/mountinfo", "rb") as info:
        return any(line.split(b" ", 5)[4] == target.encode() for line in info)


def _unbind(target: str) -> None:
    for _ in range(100):  # a bind on a bind, from an earlier start cut short
        if not _mounted(target):
            return
        if _libc().umount2(target.encode(), _MNT_DETACH) != 0:
            raise DS01Error(f"Could not unmount {target}: {os.strerror(_errno())}.")


if __name__ == "__main__":  # in the engine's mount namespace (see _in_engines_namespace)
    try:
        _run(sys.argv[1:])
    except DS01Error as failed:
        sys.exit(f"{type(failed).__name__}: {failed.message}")
