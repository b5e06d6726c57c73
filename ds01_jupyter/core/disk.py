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


def tree_size(root: str | os.PathLike, largest: int = 0, over: int | None = None) -> TreeSize:
    """Sum a tree with os.scandir (no link is followed, hard links count once);
    ``largest`` > 0 also keeps that many biggest files, ``over`` the files of at least that many bytes."""
    total = apparent = files = 0
    top: list[tuple[int, str]] = []
    big: list[tuple[int, str]] = []
    seen: set[tuple[int, int]] = set()
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError:
            continue  # vanished or unreadable: measured as empty
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    total += st.st_blocks * 512
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                files += 1
                total += st.st_blocks * 512
                apparent += st.st_size
                if over is not None and st.st_size >= over and len(big) < MAX_OVER:
                    big.append((st.st_size, entry.path))
                if largest:
                    item = (st.st_size, entry.path)
                    if len(top) < largest:
                        heapq.heappush(top, item)
                    elif item > top[0]:
                        heapq.heapreplace(top, item)
    base = os.fspath(root)
    biggest = [[os.path.relpath(path, base), size] for size, path in sorted(top, reverse=True)]
    result = TreeSize(total, apparent, files, time.time(), biggest)
    if over is not None:
        result.over = [[os.path.relpath(path, base), size] for size, path in sorted(big, reverse=True)]
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
