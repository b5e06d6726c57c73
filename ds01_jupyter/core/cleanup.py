"""Cleaning up as the DS01 guide does, with a preview: scratch files, caches of Python, old checkpoints, images.

The guide's cleanup is a handful of ``rm -rf`` lines (``~/workspace/*/tmp``,
``*.tmp``, ``__pycache__``, old checkpoints) and ``docker image prune``. Here each
is a plan first (what would go, how much, why), deleted only when confirmed, as
the user (their file identity, directory descriptors, no link followed), and
never inside ``.rescued/`` or ``.git``. Images go only when they are the user's,
no longer the current build of a project or untagged, and no container of
theirs uses them.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
from dataclasses import asdict, dataclass, field

from ..checkpoints.retention import open_parent
from . import labels as L
from .errors import DS01Error
from .identity import acting_as
from .projects import Projects
from .requests import PrunePolicy
from .users import User

#: What a clean removes: (category, test on a relative path and whether it is a folder).
SCRATCH_DIRS = {"__pycache__": "python caches", ".ipynb_checkpoints": "notebook autosaves"}
SCRATCH_FILES = ("*.tmp", "*.pyc")
#: Never entered: rescued copies are what the guard saved, .git is the code's history.
NEVER = {".rescued", ".git"}
#: A plan lists at most this many paths (it still counts and sizes them all).
MAX_LISTED = 200
MAX_ENTRIES = 500_000


@dataclass
class CleanPlan:
    project: str
    items: list = field(default_factory=list)  # [{"path", "kind", "bytes", "folder"}], at most MAX_LISTED
    counts: dict = field(default_factory=dict)  # kind -> [number, bytes]
    bytes: int = 0
    truncated: bool = False
    checkpoints: dict | None = None  # the checkpoint retention plan, when a policy was given
    deleted: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _size(dir_fd: int, name: str) -> int:
    """Bytes below a folder (by descriptor, links not followed)."""
    total = 0
    try:
        for _, _dirs, files, fd in os.fwalk(name, dir_fd=dir_fd, follow_symlinks=False):
            for item in files:
                try:
                    total += os.stat(item, dir_fd=fd, follow_symlinks=False).st_size
                except OSError:
                    pass
    except OSError:
        pass
    return total


def _scan(root: str, plan: CleanPlan) -> list[tuple[str, bool]]:
    """What the guide's cleanup removes under a project: (relative path, is folder)."""
    found: list[tuple[str, bool]] = []
    seen = 0

    def add(rel: str, kind: str, size: int, folder: bool):
        found.append((rel, folder))
        number, total = plan.counts.get(kind, [0, 0])
        plan.counts[kind] = [number + 1, total + size]
        plan.bytes += size
        if len(plan.items) < MAX_LISTED:
            plan.items.append({"path": rel, "kind": kind, "bytes": size, "folder": folder})
        else:
            plan.truncated = True

    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            st = os.stat("tmp", dir_fd=top, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                add("tmp", "the project's tmp/", _size(top, "tmp"), True)
        except FileNotFoundError:
            pass
        for folder, dirs, files, fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            rel = "" if folder == "." else folder[2:]
            seen += len(dirs) + len(files)
            if seen > MAX_ENTRIES:
                plan.truncated = True
                break
            keep = []
            for d in dirs:
                path = f"{rel}/{d}" if rel else d
                if d in NEVER or path == "tmp":
                    continue
                if d in SCRATCH_DIRS:
                    add(path, SCRATCH_DIRS[d], _size(fd, d), True)
                    continue
                keep.append(d)
            dirs[:] = keep
            for f in files:
                if any(fnmatch.fnmatch(f, pattern) for pattern in SCRATCH_FILES):
                    try:
                        st = os.stat(f, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        add(f"{rel}/{f}" if rel else f, "*.tmp and *.pyc files", st.st_size, False)
    finally:
        os.close(top)
    return found


def _remove(root: str, rel: str, folder: bool) -> None:
    """Remove one planned path, opening each parent without following a link."""
    fd = open_parent(root, rel)
    try:
        parts = rel.split("/")
        st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if folder and stat.S_ISDIR(st.st_mode):
            shutil.rmtree(parts[-1], dir_fd=fd)
        elif not folder and not stat.S_ISDIR(st.st_mode):
            os.unlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


class Cleanup:
    """The guide's cleanup for one project, and the image prune, each previewed before it deletes."""

    def __init__(self, projects: Projects, core):
        self.projects = projects
        self.core = core

    def clean(self, user: User, project: str, confirm: bool = False, **checkpoint_policy) -> dict:
        """Plan (default) or do a project's cleanup; a checkpoint policy (keep_last, keep_best, older_than)
        adds the checkpoints it would prune."""
        policy = PrunePolicy.from_dict(checkpoint_policy)  # a mistake refused before anything is deleted
        path = str(self.projects.get(user, project).path)
        plan = CleanPlan(project)
        with acting_as(user):  # the user's own view, and their own rights to delete
            found = _scan(path, plan)
            if confirm:
                for rel, folder in found:
                    try:
                        _remove(path, rel, folder)
                    except OSError:
                        continue  # gone meanwhile, or swapped for something else: left alone
                plan.deleted = True
        if policy.has_rule:
            plan.checkpoints = self.core.prune_checkpoints(user, project, confirm=confirm, **policy.rules())
            plan.bytes += plan.checkpoints["bytes"]
        return plan.to_dict()

    def images(self, user: User) -> list[dict]:
        """Every image of the user's with its state: current (a project's build), superseded (an older build,
        or a build of a project that is gone), dangling (untagged), and the containers that use it."""
        images = [i for i in self.core.engine.list_images(L.owned_by(user)) if L.is_owned_by(i.labels, user)]
        containers = self.core.containers.vet(self.core.engine.list_containers(L.owned_by(user)))
        using: dict[str, list[str]] = {}
        for c in containers:
            using.setdefault(c.image_id, []).append(c.name)
        projects = {p.name for p in self.projects.list(user)}
        out = []
        for image in images:
            project = image.labels.get(L.PROJECT, "")
            current = self.core.images.tag(user, project) in image.tags if project else False
            state = ("current" if project in projects else "superseded") if current else \
                ("superseded" if image.tags else "dangling")
            out.append({"id": image.id, "project": project, "tags": list(image.tags), "size": image.size,
                        "created": image.created.isoformat() if image.created else None, "state": state,
                        "used_by": using.get(image.id, [])})
        return sorted(out, key=lambda i: (i["project"], i["state"] != "current", i["created"] or ""))

    def prune_images(self, user: User, confirm: bool = False) -> dict:
        """Superseded and dangling images of the user's that no container uses: listed, or removed."""
        doomed = [i for i in self.images(user) if i["state"] != "current" and not i["used_by"]]
        removed, failed = [], []
        if confirm:
            for image in doomed:
                try:
                    self.core.engine.remove_image(image["id"])
                    removed.append(image)
                except DS01Error as err:  # a container made meanwhile uses it: it stays
                    failed.append({**image, "problem": err.message})
        return {"would_delete" if not confirm else "deleted": removed if confirm else doomed,
                "failed": failed, "bytes": sum(i["size"] for i in (removed if confirm else doomed))}
