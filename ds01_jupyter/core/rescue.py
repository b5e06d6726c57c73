"""Rescues: what is copied, whether there is room, and the copy itself.

The guard's audit says what a container would lose; a rescue copies the work
(and, when asked, the caches) into ``<project>/.rescued/<UTC time>/`` before a
retire. Files are read inside a running container as its user (inside.py, links
kept as links, special files listed, every read bounded) or through the
engine's archives for a stopped one, and written by :mod:`.rescue_writer`
(directory descriptors, the user's identity). Room is counted in blocks and
inodes before anything is copied, and the writer stops at that room.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .engine import ContainerEngine, ContainerRecord
from .errors import DiskFull, EngineError, QuotaExceeded
from .findings import CACHE, ENVIRONMENT, WORK, Audit, Finding, classify
from .limits import format_size
from .rescue_writer import BLOCK, allocation, writer_for
from .users import User

if TYPE_CHECKING:
    from .containers import Containers
    from .disk import DiskUsage


@dataclass
class Rescue:
    folder: str
    files: int
    bytes: int
    skipped: list[dict]
    packages: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def lost_in_copy(skipped: list[dict], at_risk: list[Finding]) -> list[Finding]:
    """What a rescue could not read of the work at risk: a file, or a folder above some (an archive of a new
    folder that could not be read). A cache it could not read is no reason to keep a container."""
    wanted = set()
    for f in at_risk:
        path = f.path
        while path not in wanted and path not in ("", "/"):
            wanted.add(path)
            path = path.rsplit("/", 1)[0]
    return [Finding(path=str(s.get("path")), kind=WORK, size=0, source="rescue", detail=str(s.get("why")))
            for s in skipped if str(s.get("why", "")).startswith("could not") and s.get("path") in wanted]


COPYABLE = ("writable-layer", "tmpfs")
CACHE_SKIPPED = "a cache (re-creatable): not copied unless caches are included (--include-caches)"


def rescue_selection(audit: Audit, include_caches: bool = False) -> tuple[list[Finding], list[str]]:
    """What a rescue copies (the work files, and the caches with ``include_caches``) and lists (the packages
    installed by hand). A cache of the writable layer is one finding for its folder: Guard.rescue copies its files."""
    kinds = (WORK, CACHE) if include_caches else (WORK,)
    work = [f for f in audit.findings if f.kind in kinds and f.source in COPYABLE]
    packages = [f.detail for f in audit.findings if f.kind == ENVIRONMENT and f.source in ("pip", "apt", "conda")]
    return work, packages


def skipped_caches(audit: Audit, include_caches: bool = False) -> list[dict]:
    """The caches a rescue leaves behind (none with ``include_caches``), with their sizes and why."""
    if include_caches:
        return []
    return [{"path": f.path, "size": f.size, "files": f.files, "kind": CACHE, "why": CACHE_SKIPPED}
            for f in audit.findings if f.kind == CACHE and f.source in COPYABLE]


def rescue_need(work: list[Finding]) -> tuple[int, int]:
    """(bytes, entries) a copy of ``work`` allocates: whole blocks per file (200k tiny files are not 200 KB)
    and one block and inode per folder."""
    folders = {posixpath.dirname(f.path) for f in work}
    every = set()
    for folder in folders:
        while folder not in ("/", "") and folder not in every:
            every.add(folder)
            folder = posixpath.dirname(folder)
    return sum(allocation(f.size) for f in work) + BLOCK * (len(every) + 2), len(work) + len(every) + 2


def ensure_room(folder: Path, work: list[Finding], quota: int | None, used: Callable[[], int], *, used_by: str = "",
                quota_hint: str, disk_hint: str) -> int:
    """Refuse before copying anything when the quota, the disk or its inodes under ``folder`` cannot take a copy
    of ``work``; return the bytes the copy may allocate (the writer stops there)."""
    needed, entries = rescue_need(work)
    room = None
    if quota is not None:
        current = used()
        if current + needed > quota:
            raise QuotaExceeded(
                f"Rescuing {len(work)} file(s) would allocate {format_size(needed)} and exceed your workspace quota: "
                f"{format_size(current)} of {format_size(quota)} (storage_workspace) is used{used_by}.",
                hint=quota_hint, limit="storage_workspace", value=quota, current=current,
            )
        room = quota - current
    fs = os.statvfs(folder)
    free = fs.f_bavail * fs.f_frsize
    if needed + MARGIN > free:
        raise DiskFull(
            f"Not enough free disk for the rescue: {format_size(needed)} needed, {format_size(free)} free.",
            hint=disk_hint,
        )
    if fs.f_files and entries + 1000 > fs.f_favail:
        raise DiskFull(
            f"Not enough free inodes for the rescue: {entries} files and folders, {fs.f_favail} inodes free.",
            hint=disk_hint,
        )
    return min(free - MARGIN, room if room is not None else free)


MARGIN = 16 * 2**20


class Rescuing:
    """The rescue half of the Guard (it brings engine, containers, disk and ``_inside``)."""

    # What the Guard brings, declared for the type checker.
    containers: Containers
    engine: ContainerEngine
    disk: DiskUsage

    if TYPE_CHECKING:

        def audit(self, user: User, project: str) -> Audit: ...

        def _inside(
            self, user: User, record: ContainerRecord, request: dict
        ) -> tuple[IO[bytes], Callable[[], int | None]]: ...

        def _probe(self, user: User, record: ContainerRecord, paths: list[str], walk_since: float | None,
                   processes: bool = False, searchable: list[str] | None = None) -> dict | None: ...

        def _stats_from_archives(self, record, paths: set[str], changes, added: set[str]) -> dict: ...

    def check_room(self, user: User, project: str, work: list[Finding]) -> int:
        """Refuse before copying anything when the quota or the disk cannot take ``work``; return the room."""
        proj = self.containers.projects.get(user, project)
        return ensure_room(
            proj.path, work, self.containers.limits.for_user(user).storage_workspace,
            lambda: sum(self.disk.measure(user, p.name).bytes for p in self.containers.projects.list(user)),
            quota_hint="Free space in ~/workspace (e.g. old checkpoints: `ds01 prune`), or discard explicitly.",
            disk_hint="Free disk space, then try again; nothing was copied and the container is untouched.",
        )

    def rescue(
        self,
        user: User,
        project: str,
        audit: Audit | None = None,
        progress: Callable[[str], None] = lambda s: None,
        include_caches: bool = False,
    ) -> Rescue:
        """Copy every work file (and every cache with ``include_caches``) into ``.rescued/<UTC time>/<its absolute
        path>``, byte for byte, as the user; caches left behind are listed in ``skipped`` with their sizes."""
        audit = audit or self.audit(user, project)
        record = self.containers.record(user, project)
        proj = self.containers.projects.restore(user, project)  # a deleted project folder is made again for it
        work, packages = rescue_selection(audit, include_caches)
        if include_caches:
            caches = [f for f in work if f.kind == CACHE]
            work = [f for f in work if f.kind != CACHE] + (
                self._cache_files(user, record, audit, caches) if caches else []
            )
        copy = [f for f in work if not f.detail.startswith(("special", "could not")) and f.source != "engine"]
        budget = self.check_room(user, project, copy)
        writer = writer_for(user, proj.path, budget)
        try:
            writer.skipped.extend(skipped_caches(audit, include_caches))  # never dropped without a word
            chosen = {id(f) for f in copy}
            for f in work:
                if id(f) not in chosen:
                    writer.skip(f.path, f.detail)
            wanted = {f.path for f in copy}
            done = False
            if record.running and copy:
                progress(f"Copying {len(copy)} file(s) from inside the container")
                done = self._copy_inside(user, record, sorted(wanted), budget, writer)
            if not done and copy:
                self._copy_archives(record, copy, audit.added, writer, progress)
            result = writer.publish(project, record.name, packages)
        except BaseException:
            writer.abort()
            raise
        rescue = Rescue(result["folder"], result["files"], result["bytes"], result["skipped"], result["packages"])
        progress(f"Rescued {rescue.files} files ({format_size(rescue.bytes)}) into {rescue.folder}")
        return rescue

    def _cache_files(self, user: User, record: ContainerRecord, audit: Audit, caches: list[Finding]) -> list[Finding]:
        """The files of ``caches``, one finding each: the audit finds a cache of the writable layer as one folder,
        a copy needs its files (only those classified as cache: the folder of a stray .pyc is not one)."""
        files = [f for f in caches if f.source == "tmpfs"]
        roots = {f.path for f in caches if f.source == "writable-layer"}
        if not roots:
            return files
        try:
            changes = [(p, k) for p, k in self.engine.diff(record.id) if k != "D"]
        except EngineError:
            changes = [(p, "A") for p in audit.added]  # the audit found them inside, by their change time

        def inside(path: str) -> bool:
            return classify(path) == CACHE and any(path == r or path.startswith(r + "/") for r in roots)

        changes = [(p, k) for p, k in changes if inside(p)]
        paths = {p for p, _ in changes}
        probe = self._probe(user, record, sorted(paths), None) if record.running else None
        if probe is not None:
            stats = {p: (v[0], v[1]) for p, v in probe["stats"].items()}
        else:
            added = audit.added | {p for p, k in changes if k == "A"}
            stats = {p: (v[0], v[2]) for p, v in self._stats_from_archives(record, paths, changes, added).items()}
        for path, (size, mode) in sorted(stats.items()):
            if mode == stat.S_IFDIR:
                continue
            special = "special file (fifo, socket or device): listed, never read"
            special = "" if mode in (stat.S_IFREG, stat.S_IFLNK) else special
            files.append(Finding(path=path, kind=CACHE, size=size, source="writable-layer", detail=special))
        return files

    def _copy_inside(self, user: User, record: ContainerRecord, paths: list[str], budget: int, writer) -> bool:
        """Read the files in the container as its user (links kept as links, special files listed, every read
        bounded) and write them; False when the image cannot run the reader (then the archives are read)."""
        wanted = set(paths)
        stream, exit_code = self._inside(user, record, {"mode": "read", "paths": paths, "budget": budget})
        seen, done, reported = 0, set(), False
        try:
            with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
                for member in tar:
                    seen += 1
                    path = "/" + member.name
                    if member.name == ".ds01-report.json" and member.isfile():
                        handle = tar.extractfile(member)  # a regular file: never None
                        report = json.loads((handle.read(64 * 2**20) if handle else b"") or b"{}")
                        reported = True
                        for item in report.get("skipped", [])[:100_000]:
                            done.add(str(item.get("path")))
                            if str(item.get("why", "")).startswith("grew past"):
                                raise QuotaExceeded(
                                    f"{item.get('path')} grew to {format_size(int(item.get('size') or 0))} after the "
                                    f"room for the rescue was checked ({format_size(budget)} left); nothing was kept.",
                                    hint="Free space in ~/workspace (e.g. `ds01 prune`) and rescue again, or discard.",
                                    limit="storage_workspace",
                                )
                            writer.skip(str(item.get("path")), str(item.get("why")))
                    elif path not in wanted:
                        continue  # never write what was not asked for
                    elif member.isfile():
                        writer.add_file(path, tar.extractfile(member), member.mode, member.mtime, size=member.size)
                        done.add(path)
                    elif member.issym():
                        writer.add_link(path, member.linkname)
                        done.add(path)
        except (tarfile.ReadError, ValueError, RecursionError, AttributeError, TypeError):
            if seen == 0 and exit_code() != 0:
                return False
            reported = False
        # A reader that died halfway (out of memory, killed) ends a tar stream like a finished one: only its
        # report, a clean exit and every path accounted for make the copy complete.
        missing = wanted - done
        if not reported or exit_code() not in (0, None) or missing:
            raise EngineError(
                "The files could not all be read from inside the container (the reader stopped early"
                + (f"; {len(missing)} not copied, e.g. {sorted(missing)[0]}" if missing else "") + ").",
                hint="Run the rescue again; nothing was kept and the container is untouched.",
            )
        return True

    def _copy_archives(self, record, work: list[Finding], added: set[str], writer, progress) -> None:
        """Read the files through the engine's archives (stopped containers; images without python3)."""
        layer = {f.path for f in work if f.source == "writable-layer"}
        roots = set()
        for path in layer:
            top = path
            while posixpath.dirname(top) in added:
                top = posixpath.dirname(top)
            roots.add(top)
        copied: set[str] = set()
        for root in sorted(roots):
            progress(f"Copying {root}")
            try:
                stream = self.engine.read_archive(record.id, root)
            except EngineError as err:
                writer.skip(root, f"could not be read: {_short(err)}")
                continue
            with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
                for member in tar:
                    full = posixpath.normpath(posixpath.join(posixpath.dirname(root), member.name))
                    if full not in layer or full in copied:
                        continue
                    copied.add(full)
                    if member.isfile():
                        writer.add_file(full, tar.extractfile(member), member.mode, member.mtime, size=member.size)
                    elif member.islnk():
                        target = "/" + member.linkname.lstrip("/")
                        writer.skip(full, f"a hard link: its content is rescued as {target}")
                    elif member.issym():
                        writer.add_link(full, member.linkname)
        for f in work:
            if f.source == "tmpfs":
                writer.skip(f.path, "in memory of a container that is not running: already lost")


def _short(err: Exception, limit: int = 240) -> str:
    """An engine error cut to a readable length (a 4 KB path makes a 4 KB message)."""
    text = getattr(err, "message", None) or str(err)
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 2:]
