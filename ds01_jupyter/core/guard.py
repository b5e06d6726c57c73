"""The persistence guard: everything a project's container holds outside /workspace.

It reads the container's writable layer (the engine's diff), the files in its
memory-backed mounts (/dev/shm and any tmpfs), the links of the workspace that
point outside it, and what the kernel hook saw notebooks write. Retiring
through the guard never loses work silently: the caller chooses rescue (copy
into ``.rescued/<UTC time>/`` first) or discard.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tarfile
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from .containers import Containers
from .disk import DiskUsage
from .engine import ContainerRecord
from .errors import DiskFull, DS01Error, EngineError, InvalidRequest, QuotaExceeded, UnsavedWork
from .findings import AT_RISK, CACHE, ENVIRONMENT, KERNEL, NOISE, PROCESS, WORK, Finding, classify, layer_findings, rank, tmpfs_findings
from .limits import format_size
from .processes import Processes, process_findings, refusal
from .statefile import read_json, write_atomic
from .identity import acting_as
from .rescue_writer import BLOCK, RESCUED, allocation, writer_for
from .users import User

HOOK_LOG = "/tmp/.ds01/writes.jsonl"
#: Paths of the hook log, probe and reader: the interpreter is isolated and runs as the user (see inside.py).
INSIDE = resources.files("ds01_jupyter.core").joinpath("inside.py").read_text()
UNLISTED = "(changes the engine could not list)"

@dataclass
class Audit:
    project: str
    container: str
    state: str
    findings: list[Finding] = field(default_factory=list)
    noise: int = 0  # files classified as noise, never shown
    notes: list[str] = field(default_factory=list)
    scanned_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    #: Paths the writable layer added (the rescue archives their topmost folders).
    added: set[str] = field(default_factory=set, repr=False)

    def add(self, findings: list[Finding], noise: int) -> None:
        self.findings.extend(findings)
        self.noise += noise

    @property
    def at_risk(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in AT_RISK]

    def summary(self) -> dict:
        out = {}
        for kind in (WORK, PROCESS, ENVIRONMENT, KERNEL, CACHE):
            items = [f for f in self.findings if f.kind == kind]
            out[kind] = {"count": sum(f.files for f in items), "items": len(items), "bytes": sum(f.size for f in items)}
        out[NOISE] = {"count": self.noise}
        return out

    def to_dict(self, limit: int | None = None) -> dict:
        findings = self.findings if limit is None else self.findings[:limit]
        return {
            "project": self.project,
            "container": self.container,
            "state": self.state,
            "at_risk": len(self.at_risk),
            "summary": self.summary(),
            "findings": [f.to_dict() for f in findings],
            "truncated": limit is not None and len(self.findings) > limit,
            "notes": self.notes,
            "scanned_at": self.scanned_at,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Rescue:
    folder: str
    files: int
    bytes: int
    skipped: list[dict]
    packages: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _roots(paths: set[str]) -> list[str]:
    """The topmost paths of a set (those whose parent is not in it)."""
    return sorted(p for p in paths if posixpath.dirname(p) not in paths)


#: Where a rescue reads from: the container's writable layer and its memory-backed mounts.
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


class Guard:
    def __init__(self, containers: Containers, disk: DiskUsage):
        self.containers = containers
        self.engine = containers.engine
        self.disk = disk
        self.settings = containers.settings
        self.processes = Processes(self.engine, self.settings, containers.inventory)

    # -- audit ---------------------------------------------------------------------------
    def audit(self, user: User, project: str) -> Audit:
        """Everything the container holds that would be lost when it is retired."""
        started = time.monotonic()
        proj = self.containers.projects.locate(user, project)  # its folder may be gone while its container lives
        record = self.containers.record(user, project)
        audit = Audit(project, record.name, record.state)
        unlisted = None
        try:
            changes = [(p, k) for p, k in self.engine.diff(record.id)
                       if k != "D" and p != "/workspace" and not p.startswith("/workspace/")]
        except EngineError as err:  # e.g. a path longer than 4 KB: the engine's own walk fails
            changes, unlisted = [], err
        paths = {p for p, _ in changes}
        audit.added = {p for p, k in changes if k == "A"}
        since = record.started_at or record.created
        if unlisted is not None and record.started_at is None:  # a listing's record lacks the start time
            detail = self.engine.get_container(record.id)
            since = (detail.started_at or detail.created) if detail else since
        probe = None
        if record.running:
            probe = self._probe(user, record, sorted(paths), since.timestamp() if unlisted and since else None,
                                processes=True)
        if probe is not None:
            stats = {p: (v[0], v[1] == 0o100000, v[1]) for p, v in probe["stats"].items()}
            if unlisted is not None and probe.get("changed") is not None:
                stats.update({e[0]: (e[1], e[2] == 0o100000, e[2]) for e in probe["changed"]})
                audit.added |= {e[0] for e in probe["changed"]}
                audit.notes.append(f"The engine could not list the container's changes ({_short(unlisted)}); "
                                   "they were found inside the container by their change time instead.")
                unlisted = None
            audit.notes.extend(probe.get("notes") or [])
            self._unexamined(audit, paths, stats)
        else:
            stats = self._stats_from_archives(record, paths, changes, audit.added)
            self._unexamined(audit, paths, stats)
            if record.state in ("exited", "dead", "created"):
                audit.notes.append("The container is stopped: files it had in /dev/shm were lost when it stopped.")
        audit.add(*layer_findings(stats))
        if probe is not None:
            audit.add(*tmpfs_findings(probe["tmpfs"]))
            running, notes = process_findings(probe.get("processes"), proj.path,
                                              self.processes.gpu_memory(record) if probe.get("processes") else None)
            audit.add(running, 0)
            audit.notes.extend(notes)
            self._attach_writes(audit, probe["writes"], proj.path)
        if unlisted is not None:
            audit.findings.append(Finding(
                path=UNLISTED, kind=WORK, size=0, source="engine",
                detail=f"The engine could not list what this container changed ({_short(unlisted)}). "
                       + ("Start it so the guard can look inside, or discard explicitly." if not record.running else
                          "The guard could not look inside either (no python3 in the image?); discard explicitly "
                          "or copy your files into /workspace first."),
            ))
        self._add_apt(audit, record, paths)
        self._add_links(audit, proj.path)
        audit.findings = rank(audit.findings)
        audit.seconds = time.monotonic() - started
        self._remember(user, audit)
        return audit

    @staticmethod
    def _unexamined(audit: Audit, paths: set[str], stats: dict) -> None:
        """Changed paths the probe could not stat (a folder the user cannot read): listed, never dropped."""
        resolved = {p.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for p in stats}
        missing = paths - set(stats) - resolved
        for path in sorted(missing):
            if classify(path) == NOISE or any(path.startswith(s + "/") for s in missing if s != path):
                continue  # noise, or its folder is listed already
            audit.findings.append(Finding(path=path, kind=WORK, size=0, source="writable-layer",
                                          detail="could not be examined with your rights"))

    def _inside(self, user: User, record: ContainerRecord, request: dict):
        """Run inside.py in the container as the container's user (never root), fed ``request`` on stdin."""
        return self.engine.exec_stream(
            record.id, ["python3", "-I", "-c", INSIDE], json.dumps(request).encode(), user=f"{user.uid}:{user.gid}",
            timeout=self.probe_timeout,
        )

    probe_timeout = 120.0

    def _probe(self, user: User, record: ContainerRecord, paths: list[str], walk_since: float | None,
               processes: bool = False) -> dict | None:
        request = {"mode": "probe", "paths": paths, "workspace": "/workspace", "hook_log": HOOK_LOG,
                   "walk_since": walk_since, "processes": processes, "sample": self.processes.sample_seconds,
                   "busy_percent": self.settings.idle_cpu_percent}
        try:
            stream, exit_code = self._inside(user, record, request)
            out = stream.read(PROBE_MAX + 1)
            if exit_code() != 0 or len(out) > PROBE_MAX:
                return None  # no python3 in this image: fall back to reading archives
            return _valid_probe(json.loads(out))
        except (DS01Error, ValueError, RecursionError):  # the image decides what comes back: trust no shape
            return None

    def _stats_from_archives(self, record, paths: set[str], changes, added: set[str]) -> dict:
        """Sizes from tar headers of the added trees (works on stopped containers)."""
        stats: dict[str, tuple[int, bool, int]] = {}
        for root in _roots(added) + sorted(p for p, k in changes if k == "C" and p not in added):
            try:
                stream = self.engine.read_archive(record.id, root)
                with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
                    for member in tar:
                        full = posixpath.normpath(posixpath.join(posixpath.dirname(root), member.name))
                        # The engine's diff names a non-UTF-8 file with U+FFFD; the archive has its real bytes.
                        if full in paths or full.encode("utf-8", "surrogateescape").decode("utf-8", "replace") in paths:
                            kind = 0o100000 if member.isfile() or member.islnk() else (
                                0o040000 if member.isdir() else 0o120000 if member.issym() else 0o010000)
                            stats[full] = (member.size, kind == 0o100000, kind)
            except (DS01Error, tarfile.TarError):
                continue
        return stats

    def _attach_writes(self, audit: Audit, writes: list, project_path: Path) -> None:
        by_path = {f.path: f for f in audit.findings}
        for write in writes:
            finding = by_path.get(write.get("path"))
            if finding is None:
                continue
            finding.notebook = _relative_notebook(write.get("notebook"), project_path)
            finding.cell = write.get("cell")

    def _add_apt(self, audit: Audit, record, paths: set[str]) -> None:
        log = "/var/log/apt/history.log"
        if log not in paths:
            return
        try:
            with tarfile.open(fileobj=self.engine.read_archive(record.id, log), mode="r|") as tar:
                member = next(iter(tar), None)
                text = tar.extractfile(member).read().decode("utf-8", "replace") if member else ""
        except (DS01Error, tarfile.TarError, AttributeError):
            return
        for line in text.splitlines():
            if line.startswith("Install:"):
                for name, version in re.findall(r"([\w.+-]+?):?[\w]*\s\(([^),]+)", line[8:]):
                    audit.findings.append(
                        Finding(path=f"apt:{name}", kind=ENVIRONMENT, size=0, source="apt", detail=f"{name}={version}")
                    )

    def _add_links(self, audit: Audit, project_path: Path, limit: int = 200_000) -> None:
        """Links inside the workspace that lead outside it: writing through them lands outside."""
        seen = 0
        for dirpath, dirnames, filenames in os.walk(project_path):
            if os.path.basename(dirpath) == RESCUED and os.path.dirname(dirpath) == str(project_path):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                seen += 1
                full = os.path.join(dirpath, name)
                if not os.path.islink(full):
                    continue
                target = os.readlink(full)
                inner = "/workspace/" + os.path.relpath(full, project_path)
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(inner), target))
                if resolved == "/workspace" or resolved.startswith("/workspace/"):
                    continue
                audit.findings.append(
                    Finding(path=inner, kind=WORK, size=0, source="workspace-link",
                            detail=f"links to {target}: what is written through it is outside /workspace")
                )
            if seen > limit:
                audit.notes.append(f"Stopped looking for links after {limit} entries of the workspace.")
                break

    # -- remembered results (warnings survive a restart) ---------------------------------
    def _cache_file(self, user: User, project: str) -> Path:
        return self.settings.expand(self.settings.state_dir, user) / "audits" / f"{project}.json"

    def _remember(self, user: User, audit: Audit) -> None:
        try:
            write_atomic(self._cache_file(user, audit.project), json.dumps(audit.to_dict(limit=200)), user)
        except OSError:
            pass  # the warning count is only a convenience; the audit itself stands

    def remembered(self, user: User, project: str) -> dict | None:
        return read_json(self._cache_file(user, project), user)

    def forget(self, user: User, project: str) -> None:
        try:
            with acting_as(user):  # in the user's home: never root's unlink through their links
                self._cache_file(user, project).unlink()
        except OSError:
            pass

    # -- rescue ----------------------------------------------------------------------------
    def check_room(self, user: User, project: str, work: list[Finding]) -> int:
        """Refuse before copying anything when the quota or the disk cannot take ``work``; return the room."""
        proj = self.containers.projects.get(user, project)
        return ensure_room(
            proj.path, work, self.containers.limits.for_user(user).storage_workspace,
            lambda: sum(self.disk.measure(user, p.name).bytes for p in self.containers.projects.list(user)),
            quota_hint="Free space in ~/workspace (e.g. old checkpoints: `ds01 prune`), or discard explicitly.",
            disk_hint="Free disk space, then try again; nothing was copied and the container is untouched.",
        )

    def rescue(self, user: User, project: str, audit: Audit | None = None, progress: Callable[[str], None] = lambda s: None,
               include_caches: bool = False) -> Rescue:
        """Copy every work file (and every cache with ``include_caches``) into ``.rescued/<UTC time>/<its absolute
        path>``, byte for byte, as the user; caches left behind are listed in ``skipped`` with their sizes."""
        audit = audit or self.audit(user, project)
        record = self.containers.record(user, project)
        proj = self.containers.projects.restore(user, project)  # a deleted project folder is made again for it
        work, packages = rescue_selection(audit, include_caches)
        if include_caches:
            caches = [f for f in work if f.kind == CACHE]
            work = [f for f in work if f.kind != CACHE] + (self._cache_files(user, record, audit, caches) if caches else [])
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
            if mode == 0o040000:
                continue
            special = "" if mode in (0o100000, 0o120000) else "special file (fifo, socket or device): listed, never read"
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
                        report = json.loads(tar.extractfile(member).read(64 * 2**20) or b"{}")
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
        if not reported or exit_code() != 0 or missing:
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

    # -- environment changes into the image ------------------------------------------------------
    def add_requirements(self, user: User, project: str, audit: Audit | None = None) -> list[str]:
        """Append pip packages installed by hand to the project's requirements.txt; return what was added."""
        audit = audit or self.audit(user, project)
        wanted = [f.detail for f in audit.findings if f.kind == ENVIRONMENT and f.source == "pip" and f.detail]
        path = self.containers.projects.get(user, project).path / "requirements.txt"
        if path.is_symlink():
            raise InvalidRequest(f"{path} is a link; refusing to write through it.")
        existing = path.read_text() if path.exists() else ""
        have = {re.split(r"[=<>!~\[ ;]", line.strip(), 1)[0].lower().replace("-", "_")
                for line in existing.splitlines() if line.strip() and not line.startswith("#")}
        added = [p for p in wanted if p.split("==")[0].lower().replace("-", "_") not in have]
        if added:
            text = existing + ("" if existing.endswith("\n") or not existing else "\n")
            text += "# Installed by hand in the container (added by ds01 audit)\n" + "\n".join(added) + "\n"
            path.write_text(text)
        return added

    # -- retire --------------------------------------------------------------------------
    def retire(self, user: User, project: str, mode: str | None = None, progress: Callable[[str], None] = lambda s: None,
               include_caches: bool = False, stop_processes: bool = False) -> dict:
        """Retire through the guard: refuse when work would be lost, unless told rescue or discard.

        Running work (process findings) is never killed silently: refused unless ``stop_processes``; then it is
        stopped first (SIGTERM, the grace, SIGKILL) and the final audit and rescue see what it left at the end.

        Caches never stop a retire, but the answer lists those dropped with it (``dropped_caches``, with sizes);
        ``include_caches`` copies them into ``.rescued/`` first instead.
        """
        if mode not in (None, "rescue", "discard"):
            raise InvalidRequest(f"Retire mode must be 'rescue' or 'discard', not {mode!r}.")
        if include_caches and mode == "discard":
            raise InvalidRequest("include_caches keeps the caches and discard drops everything: choose one.")
        audit = self.audit(user, project)
        running = [f for f in audit.findings if f.kind == PROCESS]
        stopped = None
        self._refuse_files(audit, mode, running)
        if running and not stop_processes:
            raise refusal(audit.container, running, "Retiring")
        if running:
            stopped = self.processes.stop(user, self.containers.record(user, project), progress=progress)
            audit = self.audit(user, project)  # after they ended: what they wrote up to the end is found
            self._refuse_files(audit, mode, [], after_stop=True)
        at_risk = [f for f in audit.at_risk if f.kind != PROCESS]
        caches = [f for f in audit.findings if f.kind == CACHE and f.source in COPYABLE]
        rescued = None
        if (at_risk and mode == "rescue") or (include_caches and caches):
            rescued = self.rescue(user, project, audit, progress, include_caches=include_caches)
            unknown = [f for f in at_risk if f.source == "engine" or f.detail.startswith("could not")]
            if unknown:
                raise UnsavedWork(
                    f"Rescued {rescued.files} file(s) into {rescued.folder}, but {len(unknown)} change(s) could not be "
                    f"examined or copied ({unknown[0].path}: {unknown[0].detail}); the container was kept.",
                    hint="Copy them into /workspace yourself, or retire with --discard to let them go.",
                    findings=[f.to_dict() for f in unknown[:50]],
                )
        status = self.containers.retire(user, project)
        self.forget(user, project)
        return {
            "container": status.to_dict(),
            "rescued": rescued.to_dict() if rescued else None,
            "discarded": len(at_risk) if mode == "discard" else 0,
            "dropped_caches": skipped_caches(audit, include_caches),
            "processes": stopped,
        }

    @staticmethod
    def _refuse_files(audit: Audit, mode: str | None, running: list[Finding], after_stop: bool = False) -> None:
        """Refuse (before anything is stopped) when files or environment changes would be lost and no mode was chosen."""
        files = [f for f in audit.at_risk if f.kind != PROCESS]
        if not files or mode is not None:
            return
        summary = audit.summary()
        also = f", and would kill {len(running)} running process(es)" if running else ""
        raise UnsavedWork(
            ("The running processes were stopped; they left " if after_stop else f"Retiring {audit.container} would lose ")
            + f"{summary[WORK]['count']} file(s) ({format_size(summary[WORK]['bytes'])}) and "
            f"{summary[ENVIRONMENT]['items']} environment change(s) outside /workspace{also}.",
            hint="Rescue them into the workspace first (--rescue), or discard them explicitly (--discard)"
            + (", with --stop-processes to stop the running processes." if running else "."),
            findings=[f.to_dict() for f in (files + running)[:50]],
            processes=[f.to_dict() for f in running[:200]],
        )


def _relative_notebook(path: str | None, project_path: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(project_path.resolve()))
    except ValueError:
        return path



PROBE_MAX = 64 * 2**20


def _valid_probe(out) -> dict | None:
    """The probe's answer if it has the shape inside.py writes, else None (a user's image may answer anything)."""
    try:
        if not isinstance(out, dict):
            return None
        stats = out.get("stats") or {}
        ok = isinstance(stats, dict) and all(
            isinstance(k, str) and isinstance(v, list) and len(v) >= 2 and all(isinstance(x, int) for x in v[:4])
            for k, v in stats.items())
        for key in ("tmpfs", "changed"):
            rows = out.get(key) or []
            ok = ok and isinstance(rows, list) and all(
                isinstance(r, list) and len(r) >= 3 and isinstance(r[0], str) and isinstance(r[1], int)
                and isinstance(r[2], int) for r in rows)
        writes = out.get("writes") or []
        ok = ok and isinstance(writes, list) and all(isinstance(w, dict) for w in writes)
        ok = ok and isinstance(out.get("notes") or [], list) and all(isinstance(n, str) for n in out.get("notes") or [])
        return out if ok else None
    except (TypeError, AttributeError):
        return None


def _short(err: Exception, limit: int = 240) -> str:
    """An engine error cut to a readable length (a 4 KB path makes a 4 KB message)."""
    text = getattr(err, "message", None) or str(err)
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 2:]
