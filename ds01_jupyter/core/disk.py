"""Disk use of workspaces, measured without following links, remembered on disk."""

from __future__ import annotations

import errno
import heapq
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import side_by_side
from .errors import DS01Error
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
#: A tree is read side by side (core/side_by_side.py) once this many entries were read alone (a small tree is done
#: before helpers would have started) and this many folders wait (the shares handed out).
SIDE_BY_SIDE_FROM = 4000
SIDE_BY_SIDE_FOLDERS = 16
_SUB = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Errors that say this process ran out (descriptors, memory), not that a folder is gone or unreadable.
_RAN_OUT = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


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


class Looker(Protocol):
    """What walk's caller does with each folder before it is read (tree_watch adds its inotify watch)."""

    def look(self, fd: int) -> Any:
        """Called with the folder open, in the process that reads it (a forked helper, maybe): what it returns
        comes with the folder's sums, so it must pickle, and record nothing in this process."""

    def unlook(self, seen: Any) -> None:
        """Undo a look whose folder the caller is not given (unreadable, or the caller stopped early)."""

    def lost(self) -> None:
        """A helper failed: what it looked at is not known."""


def walk(base: str, largest: int, over: int | None, start: str = "", looker: Looker | None = None,
         helpers: bool = True, fd: int = -1, merged: bool = False, open_folders: int = 0):
    """(path below ``base``, FolderSums, what ``looker`` saw) of the folder ``start`` and every folder below it,
    none through a link.

    Each folder is opened relative to its parent's descriptor without following links (a link swapped in
    meanwhile is never entered). A big tree's folders are read by helper processes side by side (``helpers``,
    core/side_by_side.py); with ``merged`` (the caller wants the sums only) those come as one FolderSums per
    reader, path "", so that a huge tree is not held folder by folder. ``fd``, when given, is ``start`` open (it is
    closed); at most ``open_folders`` (0: OPEN_FOLDERS) are held open at once. Raises OSError when descriptors run
    out (a size counted without some folders would be wrong, silently).
    """
    limit = open_folders or OPEN_FOLDERS
    # (an open folder, or -1 to open it by path; its path below the root, with a "/" after it)
    stack: list[tuple[int, str]] = [(fd, start)]
    entries = 0
    try:
        while stack:
            if helpers and entries >= SIDE_BY_SIDE_FROM and len(stack) >= SIDE_BY_SIDE_FOLDERS:
                # (asked only of a walk this big: the CPUs allowed are read from the cgroup's files)
                found = None
                if side_by_side.readers() > 1:
                    pending, stack = stack, []  # side_by_side.read closes them (also on an error), unless None
                    found = _side_by_side(base, largest, over, looker, merged, limit, pending)
                    if found is None:
                        stack = pending
                if found is not None:
                    yield from _given(found, looker)
                    return
                helpers = False  # (no helper to be had: not asked again at each folder)
            fd, rel = stack.pop()
            sums, seen = _read(base, fd, rel, largest, over, looker, stack, limit)
            if sums is None:
                if seen is not None and looker is not None:
                    looker.unlook(seen)
                continue
            entries += sums.files + len(sums.folders) + len(sums.linked)
            yield rel, sums, seen
    finally:
        for fd, _rel in stack:  # left open by an error, or by a caller that stopped early
            if fd >= 0:
                os.close(fd)


def _given(found: list, looker: Looker | None):
    """Hand what the readers found to walk's caller; what it does not take (it stopped early) is unlooked."""
    for done, (rel, sums, seen) in enumerate(found):
        if sums is None:
            if seen is not None and looker is not None:
                looker.unlook(seen)
            continue
        try:
            yield rel, sums, seen
        except GeneratorExit:
            for _rel, _sums, left in found[done + 1:]:
                if left is not None and looker is not None:
                    looker.unlook(left)
            raise


def _side_by_side(base: str, largest: int, over: int | None, looker: Looker | None, merged: bool, limit: int,
                  stack: list) -> list | None:
    """What side_by_side.read finds below the folders on ``stack``: half the open folders stay with the stack
    (the rest are opened by path), half go to each reader's own walk, so none holds more than walk alone would."""
    keep = max(1, limit // 2)
    held = [i for i, (fd, _rel) in enumerate(stack) if fd >= 0]
    waiting = list(stack)
    for i in held[keep:]:
        os.close(waiting[i][0])
        waiting[i] = (-1, waiting[i][1])
    stack[:] = waiting

    def alone(rel: str, fd: int):
        unread: list = []
        seen_by = None if looker is None else _Collect(looker, unread)
        yield from walk(base, largest, over, rel, seen_by, False, fd, open_folders=max(1, limit - keep))
        for seen in unread:
            yield rel, None, seen

    merge = (lambda total, sums: merged_sums(total, sums, largest, over)) if merged else None
    return side_by_side.read(stack, alone, merge, looker)


class _Collect:
    """A reader's looker: looks as the caller's does; what it would unlook is kept to go back with the sums."""

    def __init__(self, looker: Looker, unread: list):
        self.look, self.unread = looker.look, unread

    def unlook(self, seen: Any) -> None:
        self.unread.append(seen)

    def lost(self) -> None:  # (readers do not fork)
        pass


def merged_sums(total: FolderSums | None, sums: FolderSums, largest: int, over: int | None) -> FolderSums:
    """``sums`` added into ``total`` (a new one for None): what sum_folders needs of them, not their folders."""
    if total is None:
        total = FolderSums()
    total.total, total.apparent, total.files = total.total + sums.total, total.apparent + sums.apparent, \
        total.files + sums.files
    total.changed = max(total.changed, sums.changed)
    for size, path in sums.top:
        _keep(total.top, largest, size, path)
    if over is not None and sums.over:
        total.over += sums.over
        if len(total.over) > 2 * MAX_OVER:
            total.over = heapq.nlargest(MAX_OVER, total.over)
    total.linked += sums.linked  # all of them: a file with several links counts once in the whole tree
    return total


def _read(base: str, fd: int, rel: str, largest: int, over: int | None, looker: Looker | None, stack: list,
          limit: int):
    """(FolderSums or None when it cannot be read, what looker saw) of one folder, its subfolders put on
    ``stack``; ``fd`` (-1: opened here by path) is closed."""
    if fd < 0:
        try:
            fd = open_below(base, rel)
        except OSError as err:
            if err.errno in _RAN_OUT:
                raise
            return None, None  # vanished or unreadable: measured as empty
    try:
        seen = looker.look(fd) if looker is not None else None
        try:
            sums = read_folder(fd, rel, largest, over)
        except OSError as err:
            if err.errno in _RAN_OUT:
                raise
            return None, seen
        for name in sums.folders:
            below = -1
            if len(stack) < limit:
                try:
                    below = os.open(name, _SUB, dir_fd=fd)
                except OSError as err:
                    if err.errno not in _RAN_OUT:
                        continue  # gone, or a link now: not entered
            stack.append((below, f"{rel}{name}/"))  # (-1: opened by path when its turn comes)
        return sums, seen
    finally:
        os.close(fd)


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
    whole = FolderSums()
    for sums in folders:
        merged_sums(whole, sums, largest, over)
    total, apparent, files, top, big = whole.total, whole.apparent, whole.files, whole.top, whole.over
    linked: dict[tuple[int, int], tuple[int, int, str]] = {}
    for dev, ino, blocks, size, path in whole.linked:
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
    folders = walk(os.fspath(root), largest, over, merged=True)
    return sum_folders((sums for _rel, sums, _seen in folders), largest, over)


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
        try:
            if over is None and self.watch:  # a repeat reads again only what changed (tree_watch)
                from .tree_watch import watched

                size = watched.size(path, largest)
            else:
                size = tree_size(path, largest, over)
        except OSError as err:  # (descriptors or memory ran out: a size without part of the tree would mislead)
            raise DS01Error(
                f"The workspace of {project} could not be measured: {err.strerror or err}.",
                hint="Too many files are open in this process, or memory is short: close some (or raise `ulimit -n`) "
                "and try again. Nothing was changed.",
            ) from None
        sizes = self.cached(user)
        sizes[project] = {k: v for k, v in size.to_dict().items() if k != "over"}
        try:
            write_atomic(self._file(user), json.dumps(sizes), user)
        except OSError:
            pass  # a full disk must not break measuring it
        return size
