"""'Where are my files?': one answer from every place a project's file can be.

The DS01 guide's troubleshooting has users search the host folder, the
container's ``/tmp`` and home by hand. A file can be in four places: the
workspace (safe), the container's writable layer or memory (at risk until
rescued), a past rescue under ``.rescued/<time>/`` (safe, with its original
path), or gone with a retired container (its record says whether it was
rescued or discarded). Each match says where it is and how to get it.

A pattern is a shell glob: matched against the file's name, or against its
path when it has a ``/`` (``/tmp/*.csv``, ``results/**.png``, ``*/run1/*``). The
answer is bounded (:data:`MAX_MATCHES`) and so is the walk.
"""

from __future__ import annotations

import fnmatch
import os
import stat

from .errors import InvalidRequest
from .identity import acting_as
from .users import User

MAX_MATCHES = 200
MAX_ENTRIES = 500_000
MAX_PATTERN = 512
RESCUED = ".rescued"


def _matcher(pattern: str):
    if not pattern or len(pattern) > MAX_PATTERN or "\0" in pattern:
        raise InvalidRequest(f"A pattern is a glob of 1 to {MAX_PATTERN} characters, e.g. '*.csv' or '/tmp/*'.")
    by_path = "/" in pattern
    pattern = pattern.removeprefix("/workspace/") if pattern.startswith("/workspace/") else pattern

    def match(path: str) -> bool:
        """``path`` is absolute as the container sees it."""
        if not by_path:
            return fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern)
        relative = path.removeprefix("/workspace/")
        return any(fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, "*/" + pattern.lstrip("/"))
                   for candidate in {path, relative})

    return match


class Finder:
    def __init__(self, core):
        self.core = core

    def find(self, user: User, project: str, pattern: str, look_inside: bool = True) -> dict:
        match = _matcher(pattern)
        proj = self.core.projects.get(user, project)
        matches: list[dict] = []
        notes: list[str] = []
        truncated = self._walk(user, str(proj.path), match, matches)
        if look_inside:
            truncated |= self._container(user, project, match, matches, notes)
        truncated |= self._retired(user, project, match, matches)
        return {"project": project, "pattern": pattern, "matches": matches[:MAX_MATCHES],
                "truncated": truncated or len(matches) > MAX_MATCHES, "notes": notes}

    @staticmethod
    def _add(matches: list, item: dict) -> bool:
        """Add a match; True when the answer is full."""
        if len(matches) >= MAX_MATCHES:
            return True
        matches.append(item)
        return False

    def _walk(self, user: User, root: str, match, matches: list) -> bool:
        """The workspace, and the rescued copies under .rescued/<time>/<original path>."""
        seen = 0
        with acting_as(user):
            for folder, dirs, files, fd in os.fwalk(root, follow_symlinks=False):
                rel = os.path.relpath(folder, root)
                rel = "" if rel == "." else rel
                dirs[:] = [d for d in dirs if d != ".git"]
                seen += len(dirs) + len(files)
                if seen > MAX_ENTRIES:
                    return True
                for name in files:
                    path = f"{rel}/{name}" if rel else name
                    parts = path.split("/")
                    if parts[0] == RESCUED and len(parts) > 2:
                        original = "/" + "/".join(parts[2:])
                        if not match(original):
                            continue
                        item: dict[str, str | int | float] = {"where": "rescued", "path": original, "stamp": parts[1],
                                "host_path": os.path.join(root, path),
                                "how": f"a copy rescued at {parts[1]}: /workspace/{path} in the container"}
                    else:
                        if parts[0] == RESCUED or not match("/workspace/" + path):
                            continue
                        item = {"where": "workspace", "path": "/workspace/" + path,
                                "host_path": os.path.join(root, path), "how": "safe in the workspace"}
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    item.update(size=st.st_size, mtime=st.st_mtime)
                    if self._add(matches, item):
                        return True
        return False

    def _container(self, user: User, project: str, match, matches: list, notes: list) -> bool:
        """What the container holds outside /workspace (the guard's own audit)."""
        try:
            audit = self.core.guard.audit(user, project)
        except Exception as err:  # noqa: BLE001 - no container, or the engine is away: say so, keep the rest
            notes.append(f"The container was not searched: {getattr(err, 'message', err)}")
            return False
        for f in audit.findings:
            if f.kind in ("process", "environment", "kernel") or not match(f.path):
                continue
            how = (f"at risk in the container ({f.source}): `ds01 rescue {project}` copies it into "
                   f"~/workspace/{project}/.rescued/, or move it into /workspace yourself")
            if self._add(matches, {"where": "container", "path": f.path, "size": f.size, "kind": f.kind,
                                   "how": how}):
                return True
        return False

    def _retired(self, user: User, project: str, match, matches: list) -> bool:
        """Files that were in a retired container: rescued (and where to) or discarded."""
        for record in self.core.guard.retired_records(user, project):
            for f in record.get("findings") or ():
                if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not match(f["path"]):
                    continue
                if f.get("kind") in ("process", "environment", "kernel", "noise"):
                    continue
                rescued = record.get("rescued_into")
                how = (f"was in the container retired at {record.get('retired_at')}; rescued into {rescued}"
                       if rescued and f.get("kind") == "work" else
                       f"was in the container retired at {record.get('retired_at')} and went with it "
                       f"({record.get('mode')})")
                if self._add(matches, {"where": "retired", "path": f["path"], "size": f.get("size"),
                                       "retired_at": record.get("retired_at"), "how": how}):
                    return True
        return False
