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


def tree_size(root: str | os.PathLike, largest: int = 0, over: int | None = None) -> TreeSize:
    """Sum a tree with os.scandir (no link is followed, hard links count once);
    ``largest`` > 0 also keeps that many biggest files, ``over`` the files of at least that many bytes.

    Each folder is listed through its descriptor, opened relative to its parent's: a file's stat then looks up one
    name, not its whole path, as du does; the stat of each entry is the one system call per entry.
    """
    total = apparent = files = 0
    top: list[tuple[int, str]] = []
    big: list[tuple[int, str]] = []
    seen: set[tuple[int, int]] = set()
    base = os.fspath(root)
    # (an open folder, or -1 to open it by path; its path below the root, with a "/" after it)
    stack: list[tuple[int, str]] = [(-1, "")]
    while stack:
        fd, rel = stack.pop()
        if fd < 0:
            try:
                fd = os.open(os.path.join(base, rel), _SUB if rel else os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # vanished or unreadable: measured as empty
        try:
            entries = os.scandir(fd)
        except OSError:
            os.close(fd)
            continue
        try:
            with entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_mode & _IFMT == _IFDIR:
                        total += st.st_blocks * 512
                        name = entry.name
                        if len(stack) < OPEN_FOLDERS:
                            try:
                                stack.append((os.open(name, _SUB, dir_fd=fd), f"{rel}{name}/"))
                            except OSError:
                                continue
                        else:
                            stack.append((-1, f"{rel}{name}/"))
                        continue
                    if st.st_nlink > 1:
                        key = (st.st_dev, st.st_ino)
                        if key in seen:
                            continue
                        seen.add(key)
                    files += 1
                    total += st.st_blocks * 512
                    size = st.st_size
                    apparent += size
                    if over is not None and size >= over and len(big) < MAX_OVER:
                        big.append((size, rel + entry.name))
                    if largest:
                        if len(top) < largest:
                            heapq.heappush(top, (size, rel + entry.name))
                        elif size >= top[0][0] and (size, rel + entry.name) > top[0]:
                            heapq.heapreplace(top, (size, rel + entry.name))
        finally:
            os.close(fd)
    for fd, _rel in stack:  # left open by an error above
        if fd >= 0:
            os.close(fd)
    biggest = [[path, size] for size, path in sorted(top, reverse=True)]
    result = TreeSize(total, apparent, files, time.time(), biggest)
    if over is not None:
        result.over = [[path, size] for size, path in sorted(big, reverse=True)]
    return result


class DiskUsage:
    """Per-project workspace sizes; the last measurement is kept in the state folder."""

    def __init__(self, settings: Settings, projects: Projects):
        self.settings = settings
        self.projects = projects

    def _file(self, user: User) -> Path:
        return self.settings.expand(self.settings.state_dir, user) / "sizes.json"

    def cached(self, user: User) -> dict[str, dict]:
        return read_json(self._file(user), user) or {}

    def measure(self, user: User, project: str, largest: int = 10, over: int | None = None) -> TreeSize:
        size = tree_size(self.projects.get(user, project).path, largest, over)
        sizes = self.cached(user)
        sizes[project] = {k: v for k, v in size.to_dict().items() if k != "over"}
        try:
            write_atomic(self._file(user), json.dumps(sizes), user)
        except OSError:
            pass  # a full disk must not break measuring it
        return size
