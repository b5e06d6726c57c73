"""Disk use of workspaces, measured without following links, remembered on disk."""

from __future__ import annotations

import gc
import heapq
import json
import os
import pickle
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

from .projects import Projects
from .settings import Settings
from .statefile import read_json, write_atomic
from .users import User


@dataclass
class TreeSize:
    bytes: int  # allocated bytes (st_blocks), as du counts them
    apparent_bytes: int
    files: int
    measured_at: float
    largest: list = field(default_factory=list)  # [[relative path, bytes], ...], biggest first
    over: list | None = None  # files of at least the asked size, biggest first (at most MAX_OVER)

    def to_dict(self) -> dict:
        return asdict(self)


#: At most this many files over a size are listed (`ds01 usage --larger-than`).
MAX_OVER = 200
_IFMT, _IFDIR = 0o170000, 0o040000  # stat.S_IFMT as a mask, stat.S_IFDIR


#: Folders held open at once while summing (one each waiting on the stack); further ones are opened by path later.
OPEN_FOLDERS = 256
#: Processes that read one big tree's folders side by side, this one among them (at most one per CPU it may use):
#: Python takes about twice du's time per file, so two readers match `du -s` and more beat it.
WALKERS = 4
#: A tree is read side by side once this many entries were read alone (a small tree is done before helpers would
#: have started) and this many folders wait (the shares handed out).
SIDE_BY_SIDE_FROM = 4000
SIDE_BY_SIDE_FOLDERS = 16
_MAX_SHARES = 1024  # each a 4-byte number in one pipe, which may hold a page only
_SUB = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(slots=True)
class FolderSums:
    """What one folder holds directly: its files, and its subfolders' own entries (they are files too, for du)."""

    total: int = 0  # allocated bytes
    apparent: int = 0
    files: int = 0
    top: list = field(default_factory=list)  # a heap of the biggest (size, path below the root)
    over: list = field(default_factory=list)  # (size, path) of the files of at least the asked size
    linked: list = field(default_factory=list)  # (device, inode, allocated, size, path): files with other links
    folders: dict = field(default_factory=dict)  # the subfolders' names -> their own allocated bytes (in total)
    changed: float = 0.0  # the newest change time (st_ctime) of the files it counts


def read_folder(fd: int, rel: str, largest: int, over: int | None) -> FolderSums:
    """Sum one folder listed through its descriptor (a file's stat then looks up one name, as du's does); ``rel``
    is its path below the root with a "/" after it. Files with several links are only noted: they count once per
    tree (see sum_folders). Raises OSError when it cannot be listed."""
    sums = FolderSums()
    total = apparent = files = 0
    changed = 0.0
    top, big, linked, folders = sums.top, sums.over, sums.linked, sums.folders
    with os.scandir(fd) as entries:  # sums in locals: this loop runs once per file of the tree
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_mode & _IFMT == _IFDIR:
                total += st.st_blocks * 512
                folders[entry.name] = st.st_blocks * 512
                continue
            if st.st_nlink > 1:
                linked.append((st.st_dev, st.st_ino, st.st_blocks * 512, st.st_size, rel + entry.name))
                continue
            files += 1
            total += st.st_blocks * 512
            if st.st_ctime > changed:
                changed = st.st_ctime
            size = st.st_size
            apparent += size
            if over is not None and size >= over:
                big.append((size, rel + entry.name))
            if largest and (len(top) < largest or size > top[0][0]
                            or size == top[0][0] and rel + entry.name > top[0][1]):  # (inline: many of one size)
                _keep(top, largest, size, rel + entry.name)
    sums.total, sums.apparent, sums.files, sums.changed = total, apparent, files, changed
    return sums


def _keep(heap: list, most: int, size: int, path: str) -> None:
    """Keep the ``most`` biggest (size, path) in ``heap``."""
    if len(heap) < most:
        heapq.heappush(heap, (size, path))
    elif size >= heap[0][0] and (size, path) > heap[0]:
        heapq.heapreplace(heap, (size, path))


def walk(base: str, largest: int, over: int | None, start: str = "", look=None, unlook=None, helpers: bool = True,
         fd: int = -1):
    """(path below ``base``, FolderSums, what ``look`` said) of the folder ``start`` and every folder below it, none
    through a link.

    Each folder is opened relative to its parent's descriptor without following links (a link swapped in
    meanwhile is never entered); ``look(fd)``, when given, is called with each before it is read, in the process
    that reads it, and what it returns comes along. A big tree's folders are read by helper processes side by
    side (``helpers``; see _side_by_side); what they looked at but the caller never took (it stopped early) is
    given to ``unlook``. ``fd``, when given, is ``start`` open (it is closed).
    """
    # (an open folder, or -1 to open it by path; its path below the root, with a "/" after it)
    stack: list[tuple[int, str]] = [(fd, start)]
    entries = 0
    try:
        while stack:
            if helpers and entries >= SIDE_BY_SIDE_FROM and len(stack) >= SIDE_BY_SIDE_FOLDERS:
                pending, stack = stack, []
                found = _side_by_side(base, largest, over, pending, look)  # it closes them, unless None
                if found is None:
                    stack = pending
                else:
                    for done, (rel, sums, seen) in enumerate(found):
                        if sums is None:
                            if seen is not None and unlook is not None:
                                unlook(seen)
                            continue
                        try:
                            yield rel, sums, seen
                        except GeneratorExit:
                            for left in found[done + 1:] if unlook is not None else ():
                                if left[2] is not None:
                                    unlook(left[2])
                            raise
                    return
            fd, rel = stack.pop()
            sums, seen = _read(base, fd, rel, largest, over, look, stack)
            if sums is None:
                if seen is not None and unlook is not None:
                    unlook(seen)
                continue
            entries += sums.files + len(sums.folders) + len(sums.linked)
            yield rel, sums, seen
    finally:
        for fd, _rel in stack:  # left open by an error, or by a caller that stopped early
            if fd >= 0:
                os.close(fd)


def _read(base: str, fd: int, rel: str, largest: int, over: int | None, look, stack: list):
    """(FolderSums or None when it cannot be read, what look said) of one folder, its subfolders put on
    ``stack``; ``fd`` (-1: opened here by path) is closed."""
    if fd < 0:
        try:
            fd = open_below(base, rel)
        except OSError:
            return None, None  # vanished or unreadable: measured as empty
    try:
        seen = look(fd) if look is not None else None
        try:
            sums = read_folder(fd, rel, largest, over)
        except OSError:
            return None, seen
        for name in sums.folders:
            if len(stack) < OPEN_FOLDERS:
                try:
                    stack.append((os.open(name, _SUB, dir_fd=fd), f"{rel}{name}/"))
                except OSError:
                    continue
            else:
                stack.append((-1, f"{rel}{name}/"))
        return sums, seen
    finally:
        os.close(fd)


def _side_by_side(base: str, largest: int, over: int | None, stack: list, look) -> list | None:
    """[(rel, FolderSums or None, what look said)] of every folder on ``stack`` and below, read by this process
    and forked helpers at once; None (nothing done, nothing closed) where no helper can be had. Every descriptor
    on ``stack`` is closed otherwise.

    The folders waiting are cut into shares; each reader takes one share at a time from one pipe (a big subtree
    holds no other up) and reads it through the descriptors it inherited, so no path is looked up again. A
    helper writes what it found to a memory file and exits; when one fails, everything is read again here alone.
    """
    walkers = min(WALKERS, _cpus())
    if walkers < 2 or not hasattr(os, "fork") or not hasattr(os, "memfd_create"):
        return None
    shares = min(len(stack), _MAX_SHARES)
    try:
        queue, feed = os.pipe()
    except OSError:
        return None
    try:
        os.set_blocking(feed, False)  # a pipe may hold a page only: then no helpers rather than a hang
        numbers = b"".join(k.to_bytes(4, "little") for k in range(shares))
        filled = os.write(feed, numbers) == len(numbers)
    except OSError:
        filled = False
    os.close(feed)  # (before forking: the last reader then sees the end)
    if not filled:
        os.close(queue)
        return None
    helpers: list[tuple[int, int]] = []  # (pid, its memory file)
    found: list | None = None
    try:
        for _ in range(walkers - 1):
            try:
                out = os.memfd_create("ds01-tree-size", os.MFD_CLOEXEC)
            except OSError:
                break
            try:
                pid = os.fork()
            except OSError:
                os.close(out)
                break  # no process left to this user (a pids limit): fewer readers
            if pid == 0:
                _helper(queue, out, base, largest, over, stack, shares, look)
            helpers.append((pid, out))
        found = _take(queue, base, largest, over, stack, shares, look)
    except BaseException:
        for pid, _out in helpers:
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        failed = _reap(helpers)
        os.close(queue)
        try:
            for _pid, out in helpers if found is not None and not failed else ():
                found += pickle.loads(_read_all(out))
        except (OSError, pickle.UnpicklingError, EOFError, MemoryError):
            failed = True
        finally:
            for _pid, out in helpers:
                os.close(out)
            for fd, _rel in stack:
                if fd >= 0:
                    os.close(fd)
    if failed:  # what was looked at goes back; each folder is read again here, opened by its path
        return [(rel, None, seen) for rel, _sums, seen in found or () if seen is not None] + [
            item for _fd, rel in stack for item in _collect(base, largest, over, rel, -1, look)
        ]
    return found


def _take(queue: int, base: str, largest: int, over: int | None, stack: list, shares: int, look) -> list:
    """Read shares of ``stack`` until the queue is empty; each folder through a copy of its descriptor."""
    found: list = []
    while len(share := os.read(queue, 4)) == 4:
        for fd, rel in stack[int.from_bytes(share, "little")::shares]:
            found += _collect(base, largest, over, rel, os.dup(fd) if fd >= 0 else -1, look)
    return found


def _collect(base: str, largest: int, over: int | None, rel: str, fd: int, look) -> list:
    """A tree read alone, each folder it could not read as (rel, None, what look said) (to be unlooked)."""
    found: list = []
    unread = lambda seen: found.append((rel, None, seen))  # noqa: E731
    found += walk(base, largest, over, rel, look, unread, helpers=False, fd=fd)
    return found


def _helper(queue, out, base, largest, over, stack, shares, look) -> NoReturn:
    """A forked helper's life: read shares, write what it found to ``out``, exit (never back to the caller)."""
    code = 1
    try:
        gc.disable()  # no finalizer of the parent's objects may run here (their locks may be held by its threads)
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)  # not the parent's handlers (a server's "shut down?")
        data = memoryview(pickle.dumps(_take(queue, base, largest, over, stack, shares, look), 5))
        while data:
            data = data[os.write(out, data):]
        code = 0
    finally:
        os._exit(code)


def _reap(helpers: list) -> bool:
    """Wait for each helper; whether any failed."""
    failed = False
    for pid, _out in helpers:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except ChildProcessError:
                status = 1  # reaped by someone else (a SIGCHLD handler that waits for all): what it wrote is unsure
                break
        failed = failed or os.waitstatus_to_exitcode(status) != 0
    return failed


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def open_below(base: str, rel: str) -> int:
    """Open the folder ``rel`` ("a/b/") below ``base`` one name at a time, never through a link (a user who swaps
    a folder for a link meanwhile must not have another tree measured, and its file names shown)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in rel.split("/")[:-1]:
            below = os.open(name, _SUB, dir_fd=fd)
            os.close(fd)
            fd = below
    except OSError:
        os.close(fd)
        raise
    return fd


def sum_folders(folders, largest: int, over: int | None) -> TreeSize:
    """One tree's size from its folders' sums; a file with several links counts once (at its shallowest path)."""
    total = apparent = files = 0
    top: list[tuple[int, str]] = []
    big: list[tuple[int, str]] = []
    linked: dict[tuple[int, int], tuple[int, int, str]] = {}
    for sums in folders:
        total, apparent, files = total + sums.total, apparent + sums.apparent, files + sums.files
        for size, path in sums.top:
            _keep(top, largest, size, path)
        big += sums.over
        for dev, ino, blocks, size, path in sums.linked:
            kept = linked.get((dev, ino))
            if kept is None or (path.count("/"), path) < (kept[2].count("/"), kept[2]):
                linked[(dev, ino)] = (blocks, size, path)
    for blocks, size, path in linked.values():
        files, total, apparent = files + 1, total + blocks, apparent + size
        if over is not None and size >= over:
            big.append((size, path))
        if largest:
            _keep(top, largest, size, path)
    result = TreeSize(total, apparent, files, time.time(), [[p, s] for s, p in sorted(top, reverse=True)])
    if over is not None:
        result.over = [[p, s] for s, p in heapq.nlargest(MAX_OVER, big)]
    return result


def tree_size(root: str | os.PathLike, largest: int = 0, over: int | None = None) -> TreeSize:
    """Sum a tree with os.scandir (no link is followed, hard links count once);
    ``largest`` > 0 also keeps that many biggest files, ``over`` the (at most MAX_OVER biggest) files of at least
    that many bytes."""
    return sum_folders((sums for _rel, sums, _seen in walk(os.fspath(root), largest, over)), largest, over)


class DiskUsage:
    """Per-project workspace sizes; the last measurement is kept in the state folder."""

    def __init__(self, settings: Settings, projects: Projects, watch: bool = True):
        self.settings = settings
        self.projects = projects
        self.watch = watch  # a one-off command's core measures each tree once: no watch it would never read

    def _file(self, user: User) -> Path:
        return self.settings.expand(self.settings.state_dir, user) / "sizes.json"

    def cached(self, user: User) -> dict[str, dict]:
        return read_json(self._file(user), user) or {}

    def measure(self, user: User, project: str, largest: int = 10, over: int | None = None) -> TreeSize:
        path = self.projects.get(user, project).path
        if over is None and self.watch:  # a repeat reads again only what changed (tree_watch)
            from .tree_watch import watched

            size = watched.size(path, largest)
        else:
            size = tree_size(path, largest, over)
        sizes = self.cached(user)
        sizes[project] = {k: v for k, v in size.to_dict().items() if k != "over"}
        try:
            write_atomic(self._file(user), json.dumps(sizes), user)
        except OSError:
            pass  # a full disk must not break measuring it
        return size
