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

**Crashes and deliberate stops.** A running container holds its GPUs. A stopped
one keeps them for its owner's ``gpu_hold_after_stop`` only when it was stopped
on purpose; a container that ended by itself with a non-zero exit code, or that
the OOM killer ended, releases them at once. Every user's tools must reach the
same verdict after any restart, so it is read from the engine, never kept in
memory (:meth:`GpuAllocator.ending`):

- The engine says how the run ended (``State.ExitCode``, ``State.OOMKilled``,
  ``FinishedAt``). An OOM kill is always a crash. Exit code 0 is a container that
  finished by itself: it holds like a stop.
- A non-zero exit code alone does not tell a crash from a stop: ``docker stop``
  ends ``sleep`` with SIGTERM (143) or SIGKILL (137), as ``docker kill`` does. So
  ds01's own stop (:meth:`GpuAllocator.record_stop`, called by Containers.stop
  just before it asks the engine to stop) leaves a *stop record* in the
  container itself, ``/run/.ds01-stop``: JSON naming the container, the start
  time of the run being stopped and the time of the request, written by the
  engine as root (uid 0, mode 0644). Every user's allocator reads it through the
  engine's archive of the stopped container (no file on the host, nothing in a
  home that other users could not read), and it goes with the container.
- Who may forge it: only ds01's stop of the container's owner writes it, and
  Containers.stop acts only on the caller's own containers (Containers.vet), so
  another user cannot make someone's deliberate stop look like a crash through
  ds01 (nor remove the record: it is inside that user's container). The owner's
  processes inside the container run as the owner's uid without capabilities:
  they cannot write a file owned by uid 0 there, and a record they make
  themselves carries their uid and is ignored. A record counts only for the run
  it names (its start time must equal the engine's ``StartedAt``) and only when
  the run ended within ``STOP_WINDOW`` after the request: an old record, or one
  of a stop that failed, cannot turn a later crash into a stop. ds01 writes no
  record for a container that is not running, so running ``container-stop``
  after a crash keeps nothing. (Whoever may use the Docker socket directly can
  do anything, records included: see the README's security model.)
- A container stopped outside ds01 (``docker stop``) has no record: with a
  non-zero exit code it counts as crashed and its GPU is free. An image without
  ``/run`` cannot take the record: its deliberate stops count like crashes (the
  log says so).

The verdict of one run never changes once it ended, so it is memoised per
(container, ``FinishedAt``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import labels as L
from .engine import ContainerEngine, ContainerRecord
from .errors import ConfigError, DS01Error, GpuUnavailable, LimitExceeded, StateConflict
from .gpus import GpuDevice
from .limits import Limits

log = logging.getLogger("ds01_jupyter.allocator")

#: The lock file's name inside lock_dir (a distinct name: lock_dir may be a shared folder such as /run/lock).
LOCK_NAME = "ds01-jupyter-allocation.lock"
#: A container still "created" (never started) this many seconds after its creation died between create
#: and start: it holds no GPU and the reaper removes it. Longer than any deploy takes from create to start.
CREATED_GRACE = 120.0
#: ds01's record of a deliberate stop, inside the container (see the module docstring). /run is the image's,
#: owned by root; the guard counts everything under it as runtime noise.
STOP_RECORD = "/run/.ds01-stop"
#: A stop record counts for a run that ended at most this many seconds after the stop was asked for.
STOP_WINDOW = 600.0
#: Exit codes above 128 are a signal's number + 128: what a user reads in a crash summary.
SIGNALS = {129: "SIGHUP", 130: "SIGINT", 131: "SIGQUIT", 132: "SIGILL", 134: "SIGABRT", 135: "SIGBUS",
           136: "SIGFPE", 137: "SIGKILL", 139: "SIGSEGV", 141: "SIGPIPE", 143: "SIGTERM"}


@dataclass(frozen=True)
class Ending:
    """How a container's last run ended, as every user's tools read it from the engine.

    ``how``: "" (running, or never started), "stopped" (through ds01), "exited" (by itself, exit code 0)
    or "crashed" (by itself with another code, or by the OOM killer: its GPU is free at once).
    """

    how: str = ""
    exit_code: int | None = None
    oom_killed: bool = False
    finished_at: datetime | None = None

    @property
    def crashed(self) -> bool:
        return self.how == "crashed"

    def describe(self, state: str = "") -> str:
        """What a user reads: "crashed (exit 137, out of memory)", "stopped", "exited (exit 0)"."""
        if not self.how:
            return state
        if self.how == "stopped":
            return "stopped"
        why = "out of memory" if self.oom_killed else SIGNALS.get(self.exit_code or 0, "")
        code = "exit ?" if self.exit_code is None else f"exit {self.exit_code}"
        return f"{self.how} ({code}{', ' + why if why else ''})"

    def to_dict(self) -> dict:
        return {"how": self.how, "exit_code": self.exit_code, "oom_killed": self.oom_killed,
                "finished_at": self.finished_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.finished_at else None}


class LockTimeout(StateConflict):
    """The GPU allocation lock stayed held longer than the configured timeout."""


def _lock_trouble(message: str, path) -> ConfigError:
    return ConfigError(
        message,
        hint=f"Ask the admin to fix {path} (once, as root: `install -m 0644 /dev/null {path}`) or to set "
             "lock_dir to a folder owned by root (e.g. /run/lock).",
    )


def lock_holders(st: os.stat_result) -> list[tuple[int, str]]:
    """(pid, user) of the processes holding a lock on the file of ``st``, from /proc/locks; best effort."""
    found: list[tuple[int, str]] = []
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
            if int(inode) != st.st_ino or (int(major, 16), int(minor, 16)) != (
                os.major(st.st_dev),
                os.minor(st.st_dev),
            ):
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
    def __init__(self, engine: ContainerEngine, lock_dir: str, timeout: float = 60.0,
                 before_archive: Callable[[ContainerRecord], None] | None = None):
        self.engine = engine
        self.lock_dir = Path(lock_dir)
        self.timeout = timeout
        #: Called before reading or writing a container's stop record (the engine needs every mount's source then).
        self.before_archive = before_archive or (lambda record: None)
        self._endings: dict[tuple[str, datetime], Ending] = {}  # a run's verdict never changes once it ended

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
            raise _lock_trouble(
                f"Cannot open the GPU allocation lock folder {folder}: {err.strerror}.", folder
            ) from None
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
                    raise _lock_trouble(
                        f"{self.lock_path} is a symbolic link; ds01 never follows it.", self.lock_path
                    ) from None
                raise _lock_trouble(f"Cannot open the GPU allocation lock {self.lock_path}: {err.strerror}.",
                                    self.lock_path) from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                what = "has other hard links" if stat.S_ISREG(st.st_mode) else "is not a regular file"
                raise _lock_trouble(f"The GPU allocation lock {self.lock_path} {what}; ds01 does not use it.",
                                    self.lock_path)
            if st.st_uid not in (0, os.geteuid()):
                # Its owner may delete it while someone holds it (two holders at once) or swap it: only root's
                # lock file, or one's own on a machine with no other user of ds01, is trusted.
                os.close(fd)
                owner = _name(st.st_uid)
                raise _lock_trouble(
                    f"The GPU allocation lock {self.lock_path} belongs to user {owner}, who could remove it while "
                    "others hold it; ds01 trusts only a lock file of root's on a shared host.", self.lock_path)
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

    # -- crashes and deliberate stops (see the module docstring) ------------------------------
    def record_stop(self, record: ContainerRecord) -> bool:
        """Leave the stop record in a running container, just before ds01 stops it; False when it cannot be written
        (then a non-zero exit of this stop counts as a crash, and the log says why)."""
        if not record.running or record.started_at is None:
            return False
        data = json.dumps({"container": record.id, "started_at": _stamp(record.started_at),
                           "requested_at": _stamp(datetime.now(timezone.utc))}).encode()
        try:
            # Written by the engine as root into the container's own /run (a path inside it, never on the host):
            # root-owned, so no process of the container, which runs as the user without capabilities, can forge it.
            self.before_archive(record)
            self.engine.put_file(record.id, STOP_RECORD, data, mode=0o644, uid=0, gid=0)
        except DS01Error as err:
            log.warning("ds01: could not record the stop of %s (%s): if it exits with an error code it counts as "
                        "crashed and its GPU is released at once.", record.name, err)
            return False
        return True

    def ending(self, record: ContainerRecord) -> Ending:
        """How the container's last run ended (Ending("") while it runs or never ran); one inspect, and one read
        of the stop record for a non-zero exit, per run."""
        if record.state not in ("exited", "dead"):
            return Ending()
        detail = record if record.finished_at is not None else self.engine.get_container(record.id)
        if detail is None or detail.finished_at is None:  # removed meanwhile, or a dead one that never ran
            code = record.exit_code
            return Ending("crashed" if code else "exited", code, record.oom_killed, None)
        key = (detail.id, detail.finished_at)
        known = self._endings.get(key)
        if known is not None:
            return known
        code = detail.exit_code
        if detail.oom_killed:
            how = "crashed"
        elif not code:
            how = "exited"
        else:
            how = "stopped" if self._stopped_on_purpose(detail) else "crashed"
        ending = Ending(how, code, detail.oom_killed, detail.finished_at)
        if len(self._endings) > 4096:
            self._endings.clear()
        self._endings[key] = ending
        return ending

    def _stopped_on_purpose(self, detail: ContainerRecord) -> bool:
        """Whether the container holds a stop record of ds01's for the run that ended (see the module docstring)."""
        try:
            self.before_archive(detail)
            stream = self.engine.read_archive(detail.id, STOP_RECORD)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                member = next(iter(tar), None)
                if member is None or not member.isfile() or member.uid != 0 or member.size > 4096:
                    return False  # not ours: a file the container's user made, or a link
                handle = tar.extractfile(member)  # a regular file (checked above): never None
                data = json.loads(handle.read(4096) if handle else b"")
        except (DS01Error, tarfile.TarError, ValueError, AttributeError):
            return False  # none (a crash), or unreadable
        if not isinstance(data, dict) or data.get("container") != detail.id or detail.started_at is None:
            return False
        if detail.finished_at is None:  # ending() asks only about a run that finished
            return False
        if data.get("started_at") != _stamp(detail.started_at):
            return False  # a record of an earlier run
        try:
            asked = datetime.fromisoformat(str(data.get("requested_at")))
        except ValueError:
            return False
        waited = (detail.finished_at - asked).total_seconds()
        return -60 <= waited <= STOP_WINDOW  # a minute of slack for an engine on another clock

    def holds(self, record: ContainerRecord, hold_after_stop, now: datetime | None = None) -> bool:
        """Whether ``record`` holds its GPUs now: the one rule for deploy, start, check-limits and ``ds01 gpus``.

        Running containers hold them; a crashed one holds nothing; one stopped on purpose (or finished with
        exit code 0) keeps them for the owner's ``gpu_hold_after_stop`` (``hold_after_stop(labels)`` in
        seconds, None meaning for ever); one that never started past CREATED_GRACE holds nothing.
        """
        return held(self.hold_ends(record, hold_after_stop), now)

    def hold_ends(self, record: ContainerRecord, hold_after_stop) -> datetime | None:
        """The moment ``record`` stops holding its GPUs by time alone (see :meth:`holds`), for those who keep an
        answer until then: None while only an event can end the hold (it runs, is kept for ever, or has no time to
        go by); a moment already past when it holds none (a crash)."""
        if record.state == "created":
            created = _created(record)
            return created + timedelta(seconds=CREATED_GRACE) if created is not None else None
        if record.state not in ("exited", "dead"):
            return None
        ending = self.ending(record)
        if ending.crashed:
            return _NEVER
        hold = hold_after_stop(record.labels)
        if hold is None or ending.finished_at is None:
            return None
        try:
            return ending.finished_at + timedelta(seconds=hold)
        except (OverflowError, ValueError):  # past the calendar's ends, or not a number (NaN)
            return _NEVER if hold < 0 else None  # NaN compares false: held, as it always was

    def holders(self, containers: list[ContainerRecord], hold_after_stop) -> dict[str, ContainerRecord]:
        """Map GPU UUID -> container holding it (see :meth:`holds`)."""
        now = datetime.now(timezone.utc)
        held: dict[str, ContainerRecord] = {}
        for record in containers:
            uuids = L.gpu_uuids(record.labels)
            if uuids and self.holds(record, hold_after_stop, now):
                for uuid in uuids:
                    held[uuid] = record
        return held

    @staticmethod
    def share(held: dict[str, ContainerRecord], user) -> tuple[int, list[str]]:
        """(GPU slots, GPU UUIDs) that ``user``'s containers hold in ``held`` (from :meth:`holders`)."""
        mine = {r.id: r for r in held.values() if L.is_container_of(r.labels, user)}
        slots = sum(int(r.labels.get(L.GPU_SLOTS) or 0) for r in mine.values())
        return slots, sorted(u for u, r in held.items() if r.id in mine)

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
        """Pick ``count`` free devices the user may have, least loaded first; in a cluster all on one node, the node
        with the fewest GPUs held first (devices name their node; on one host they all name "")."""
        held_parents = {d.parent_uuid for d in devices if d.uuid in held and d.parent_uuid}
        free = [
            d
            for d in devices
            if d.uuid not in held and d.parent_uuid not in held and d.uuid not in held_parents
        ]
        if not limits.allow_full_gpu:
            free = [d for d in free if d.is_mig]
        load = {d.node: 0 for d in devices}
        for d in devices:
            load[d.node] += d.uuid in held
        free.sort(key=lambda d: (load[d.node], d.node, not d.is_mig, len(d.processes), d.memory_used, d.index))
        chosen: list[GpuDevice] = []
        for node in dict.fromkeys(d.node for d in free):  # one node's devices at a time, least loaded first
            chosen = []
            slots = own_slots
            for device in (d for d in free if d.node == node):
                if len(chosen) == count:
                    break
                cost = device.slots(limits.mig_instances_per_gpu)
                if limits.max_mig_instances is not None and slots + cost > limits.max_mig_instances:
                    continue
                chosen.append(device)
                slots += cost
            if len(chosen) == count:
                break
        if len(chosen) < count:
            kind = "MIG slices (your limits do not allow full GPUs)" if not limits.allow_full_gpu else "GPUs"
            raise GpuUnavailable(
                f"Not enough free {kind}: asked for {count}, {len(chosen)} can be given "
                f"({len(devices)} on this host, {len(held)} held by containers).",
                hint="Wait for a GPU to be freed, ask for fewer, or deploy with --gpus 0 for CPU-only.",
            )
        return chosen


def held(ends: datetime | None, now: datetime | None = None) -> bool:
    """Whether a hold ending at ``ends`` (:meth:`GpuAllocator.hold_ends`) still holds ``now``."""
    return ends is None or (now or datetime.now(timezone.utc)) <= ends


#: A hold that ended before anything: a crashed container holds nothing.
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def _created(record: ContainerRecord) -> datetime | None:
    """When a container was made: the engine's time, else the label a deploy wrote (a cluster task's record)."""
    if record.created is not None:
        return record.created
    try:
        made = datetime.fromisoformat(str(record.labels.get(L.CREATED_AT, "")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return made if made.tzinfo is not None else made.replace(tzinfo=timezone.utc)


def _stamp(moment: datetime) -> str:
    """A time as the stop record keeps it (microseconds, UTC, as the engine's times are parsed)."""
    return moment.astimezone(timezone.utc).isoformat()


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
