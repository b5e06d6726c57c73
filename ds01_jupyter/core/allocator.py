"""Atomic GPU allocation, derived from container labels under a file lock.

No allocation table is kept: who holds which GPU is read from the
``ds01.gpu.uuids`` labels of every managed container (any user), so a
restarted server, the CLI and the hub spawner all see the same truth. The lock
makes "read labels, choose, create the container" one step across processes.

The lock is one file at one host-wide path (``lock_dir``/``LOCK_NAME``; by
default in /run/lock, root's sticky folder), the same for every user whatever
their TMPDIR, settable only by the admin (see settings.ADMIN_SETTINGS). It is
opened without following links and without blocking (a FIFO planted there
cannot hang us), must be a regular file with one link, and is never chmod-ed
or chown-ed: ``flock`` needs only a read-only descriptor, so a lock file made
by any user works for all. A deploy that finds it held says who holds it and
gives up after ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import pwd
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

from . import labels as L
from .engine import ContainerEngine, ContainerRecord
from .errors import ConfigError, GpuUnavailable, LimitExceeded, StateConflict
from .gpus import GpuDevice
from .limits import Limits

log = logging.getLogger("ds01_jupyter.allocator")

#: The lock file's name inside lock_dir (a distinct name: lock_dir may be a shared folder such as /run/lock).
LOCK_NAME = "ds01-jupyter-allocation.lock"
#: A container still "created" (never started) this many seconds after its creation died between create
#: and start: it holds no GPU and the reaper removes it. Longer than any deploy takes from create to start.
CREATED_GRACE = 120.0


class LockTimeout(StateConflict):
    """The GPU allocation lock stayed held longer than the configured timeout."""


def _lock_trouble(message: str, path) -> ConfigError:
    return ConfigError(
        message,
        hint=f"Ask the admin to fix {path} or to set lock_dir to a folder owned by root (e.g. /run/lock).",
    )


def lock_holders(st: os.stat_result) -> list[tuple[int, str]]:
    """(pid, user) of the processes holding a lock on the file of ``st``, from /proc/locks; best effort."""
    found = []
    try:
        with open("/proc/locks") as locks:
            lines = locks.readlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 6:
            continue  # a waiter, not a holder
        try:
            pid = int(parts[4])
            major, minor, inode = parts[5].split(":")
            if int(inode) != st.st_ino or (int(major, 16), int(minor, 16)) != (os.major(st.st_dev), os.minor(st.st_dev)):
                continue
        except ValueError:
            continue
        try:
            owner = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
        except (OSError, KeyError):
            owner = "?"
        found.append((pid, owner))
    return found


class GpuAllocator:
    def __init__(self, engine: ContainerEngine, lock_dir: str, timeout: float = 60.0):
        self.engine = engine
        self.lock_dir = Path(lock_dir)
        self.timeout = timeout

    @property
    def lock_path(self) -> Path:
        return self.lock_dir / LOCK_NAME

    def _open_folder(self) -> int:
        """The lock folder, opened without following a link; made only where no other user could have made it."""
        folder = Path(os.path.realpath(self.lock_dir))  # an admin's path may go through links (/var/lock)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(folder, flags)
        except FileNotFoundError:
            self._make_folder(folder)
            fd = os.open(folder, flags)
        except NotADirectoryError:
            raise _lock_trouble(f"The GPU allocation lock folder {folder} is not a folder.", folder) from None
        except OSError as err:
            raise _lock_trouble(f"Cannot open the GPU allocation lock folder {folder}: {err.strerror}.", folder) from None
        st = os.fstat(fd)
        me = os.geteuid()
        if st.st_uid not in (0, me):
            os.close(fd)
            raise _lock_trouble(
                f"The GPU allocation lock folder {folder} belongs to {_name(st.st_uid)}, not to root or you: "
                "its owner could swap the lock file, so ds01 does not use it.",
                folder,
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            os.close(fd)
            raise _lock_trouble(
                f"The GPU allocation lock folder {folder} is writable by others without the sticky bit: "
                "anyone could replace the lock file, so ds01 does not use it.",
                folder,
            )
        return fd

    @staticmethod
    def _make_folder(folder: Path) -> None:
        parent = os.stat(folder.parent) if folder.parent.exists() else None
        if parent is None or parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or parent.st_uid not in (0, os.geteuid()):
            # In a shared folder (/tmp) another user could make it first; the admin makes it.
            raise _lock_trouble(f"The GPU allocation lock folder {folder} does not exist.", folder)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o755)

    def _open_lock(self, folder_fd: int) -> int:
        """The lock file, opened read-only (all flock needs) without following links or blocking."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(5):
            created = False
            try:
                try:
                    fd = os.open(LOCK_NAME, flags, dir_fd=folder_fd)
                except FileNotFoundError:
                    fd = os.open(LOCK_NAME, flags | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=folder_fd)
                    created = True
            except FileExistsError:
                continue  # made by another process just now: open that one
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise _lock_trouble(f"{self.lock_path} is a symbolic link; ds01 never follows it.", self.lock_path) from None
                raise _lock_trouble(f"Cannot open the GPU allocation lock {self.lock_path}: {err.strerror}.",
                                    self.lock_path) from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                what = "has other hard links" if stat.S_ISREG(st.st_mode) else "is not a regular file"
                raise _lock_trouble(f"The GPU allocation lock {self.lock_path} {what}; ds01 does not use it.",
                                    self.lock_path)
            if created and st.st_mode & 0o444 != 0o444:
                # Our own file, made this instant with O_EXCL (no link can be in its place): readable by
                # every user despite a strict umask, so every user's tools can flock it.
                os.fchmod(fd, 0o644)
            return fd
        raise _lock_trouble(f"The GPU allocation lock {self.lock_path} keeps appearing and vanishing.", self.lock_path)

    def _still_there(self, folder_fd: int, fd: int) -> bool:
        """Whether the path still names the file we locked (its owner may have removed it meanwhile)."""
        try:
            now = os.stat(LOCK_NAME, dir_fd=folder_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    @contextlib.contextmanager
    def locked(self, progress=None):
        """Hold the host-wide allocation lock (shared by all users).

        When another process holds it, say so (``progress``, else the log) and
        wait at most ``timeout`` seconds, then raise LockTimeout naming the holder.
        """
        folder_fd = self._open_folder()
        try:
            fd = self._acquire(folder_fd, progress)
        finally:
            os.close(folder_fd)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _acquire(self, folder_fd: int, progress) -> int:
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            fd = self._open_lock(folder_fd)
            delay = 0.02
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                holders = lock_holders(os.fstat(fd))
                who = ", ".join(f"pid {pid} / user {owner}" for pid, owner in holders) or "another process"
                if not told:
                    message = f"Waiting for the GPU allocation lock held by {who} ({self.lock_path})"
                    (progress or log.warning)(message)
                    told = True
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"Gave up after {self.timeout:g} s waiting for the GPU allocation lock {self.lock_path}, "
                        f"held by {who}.",
                        hint="Try again in a moment; if it stays held, ask the admin to look at that process "
                        "(the lock_timeout setting sets how long to wait).",
                        holders=[{"pid": pid, "user": owner} for pid, owner in holders],
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            if self._still_there(folder_fd, fd):
                return fd
            fcntl.flock(fd, fcntl.LOCK_UN)  # removed while we waited: lock the file the path names now
            os.close(fd)

    def holders(self, containers: list[ContainerRecord], hold_after_stop) -> dict[str, ContainerRecord]:
        """Map GPU UUID -> container holding it.

        Running containers hold their GPUs; stopped ones keep them for the
        owner's ``gpu_hold_after_stop`` (``hold_after_stop(labels)`` in
        seconds, None meaning for ever), after which the GPU is free again.
        """
        now = datetime.now(timezone.utc)
        held: dict[str, ContainerRecord] = {}
        for record in containers:
            uuids = L.gpu_uuids(record.labels)
            if not uuids:
                continue
            if record.state == "created" and _created_long_ago(record, now):
                continue  # died between create and start: never ran, holds nothing
            if record.state in ("exited", "dead"):
                hold = hold_after_stop(record.labels)
                if hold is not None:
                    detail = self.engine.get_container(record.id)
                    finished = detail.finished_at if detail else None
                    if finished is not None and (now - finished).total_seconds() > hold:
                        continue
            for uuid in uuids:
                held[uuid] = record
        return held

    @staticmethod
    def check_limits(
        limits: Limits, count: int, own_slots: int, devices: list[GpuDevice]
    ) -> None:
        if count <= 0:
            return
        if limits.max_mig_per_container is not None and count > limits.max_mig_per_container:
            raise LimitExceeded(
                f"You asked for {count} GPUs in one container; your limit max_mig_per_container "
                f"is {limits.max_mig_per_container}.",
                hint=f"Ask for at most {limits.max_mig_per_container}.",
                limit="max_mig_per_container",
                value=limits.max_mig_per_container,
                current=count,
            )
        if limits.max_mig_instances is not None:
            # A full GPU counts as mig_instances_per_gpu slots; MIG slices as one.
            cheapest = min((d.slots(limits.mig_instances_per_gpu) for d in devices), default=1)
            if own_slots + count * cheapest > limits.max_mig_instances:
                raise LimitExceeded(
                    f"GPU limit reached: you hold {own_slots} of your {limits.max_mig_instances} GPU slots "
                    f"(max_mig_instances) and asked for {count} more.",
                    hint="Stop or retire a container that holds a GPU (`container-list`), or deploy with --gpus 0.",
                    limit="max_mig_instances",
                    value=limits.max_mig_instances,
                    current=own_slots,
                )

    @staticmethod
    def choose(
        devices: list[GpuDevice], held: dict[str, ContainerRecord], count: int, limits: Limits, own_slots: int
    ) -> list[GpuDevice]:
        """Pick ``count`` free devices the user may have, least loaded first."""
        held_parents = {d.parent_uuid for d in devices if d.uuid in held and d.parent_uuid}
        free = [
            d
            for d in devices
            if d.uuid not in held and d.parent_uuid not in held and d.uuid not in held_parents
        ]
        if not limits.allow_full_gpu:
            free = [d for d in free if d.is_mig]
        free.sort(key=lambda d: (not d.is_mig, len(d.processes), d.memory_used, d.index))
        chosen: list[GpuDevice] = []
        slots = own_slots
        for device in free:
            if len(chosen) == count:
                break
            cost = device.slots(limits.mig_instances_per_gpu)
            if limits.max_mig_instances is not None and slots + cost > limits.max_mig_instances:
                continue
            chosen.append(device)
            slots += cost
        if len(chosen) < count:
            kind = "MIG slices (your limits do not allow full GPUs)" if not limits.allow_full_gpu else "GPUs"
            raise GpuUnavailable(
                f"Not enough free {kind}: asked for {count}, {len(chosen)} can be given "
                f"({len(devices)} on this host, {len(held)} held by containers).",
                hint="Wait for a GPU to be freed, ask for fewer, or deploy with --gpus 0 for CPU-only.",
            )
        return chosen


def _created_long_ago(record: ContainerRecord, now: datetime) -> bool:
    """Whether a never-started container is past CREATED_GRACE (a deploy between create and start is not)."""
    created = record.created
    if created is None:
        with contextlib.suppress(ValueError, TypeError):
            created = datetime.fromisoformat(record.labels.get(L.CREATED_AT, "").replace("Z", "+00:00"))
    return created is not None and (now - created).total_seconds() > CREATED_GRACE


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
