"""Disk use of workspaces, measured without following links, remembered on disk."""

from __future__ import annotations

import heapq
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
            if largest and (len(top) < largest or size >= top[0][0]):
                _keep(top, largest, size, rel + entry.name)
    sums.total, sums.apparent, sums.files, sums.changed = total, apparent, files, changed
    return sums


def _keep(heap: list, most: int, size: int, path: str) -> None:
    """Keep the ``most`` biggest (size, path) in ``heap``."""
    if len(heap) < most:
        heapq.heappush(heap, (size, path))
    elif size >= heap[0][0] and (size, path) > heap[0]:
        heapq.heapreplace(heap, (size, path))


def walk(base: str, largest: int, over: int | None, start: str = "", opened=None):
    """(path below ``base``, FolderSums) of the folder ``start`` and every folder below it, none through a link.

    Each folder is opened relative to its parent's descriptor without following links (a link swapped in
    meanwhile is never entered); ``opened(fd, rel)``, when given, is called with each before it is read.
    """
    # (an open folder, or -1 to open it by path; its path below the root, with a "/" after it)
    stack: list[tuple[int, str]] = [(-1, start)]
    try:
        while stack:
            fd, rel = stack.pop()
            if fd < 0:
                try:
                    fd = open_below(base, rel)
                except OSError:
                    continue  # vanished or unreadable: measured as empty
            try:
                if opened is not None:
                    opened(fd, rel)
                try:
                    sums = read_folder(fd, rel, largest, over)
                except OSError:
                    continue
                for name in sums.folders:
                    if len(stack) < OPEN_FOLDERS:
                        try:
                            stack.append((os.open(name, _SUB, dir_fd=fd), f"{rel}{name}/"))
                        except OSError:
                            continue
                    else:
                        stack.append((-1, f"{rel}{name}/"))
            finally:
                os.close(fd)
            yield rel, sums
    finally:
        for fd, _rel in stack:  # left open by an error, or by a caller that stopped early
            if fd >= 0:
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
    return sum_folders((sums for _rel, sums in walk(os.fspath(root), largest, over)), largest, over)


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
