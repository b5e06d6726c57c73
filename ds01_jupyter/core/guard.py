"""The persistence guard: everything a project's container holds outside /workspace.

It reads the container's writable layer (the engine's diff), the files in its
memory-backed mounts (/dev/shm and any tmpfs), the links of the workspace that
point outside it, and what the kernel hook saw notebooks write. Retiring
through the guard never loses work silently: the caller chooses rescue (copy
into ``.rescued/<UTC time>/`` first) or discard.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import posixpath
import re
import stat
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from . import upperdir
from .containers import Containers
from .disk import DiskUsage
from .engine import ContainerRecord
from .errors import DS01Error, EngineError, InvalidRequest, UnsavedWork
from .findings import (
    CACHE,
    ENVIRONMENT,
    NOISE,
    PROCESS,
    WORK,
    Audit,
    Finding,
    classify,
    layer_findings,
    rank,
    tmpfs_findings,
)
from .identity import acting_as
from .limits import format_size
from .names import check_project_name
from .processes import Processes, only_unlooked, process_findings, refusal, unlooked
from .requests import RetireRequest
from .rescue import COPYABLE, Rescuing, _short, lost_in_copy, skipped_caches
from .rescue_writer import RESCUED
from .statefile import read_json, write_atomic
from .upperdir import LayerChanges
from .users import User

HOOK_LOG = "/tmp/.ds01/writes.jsonl"
#: Paths of the hook log, probe and reader: the interpreter is isolated and runs as the user (see inside.py).
INSIDE = resources.files("ds01_jupyter.core").joinpath("inside.py").read_text()
UNLISTED = "(changes the engine could not list)"
WORKSPACE = "/workspace"
#: Records of retired containers kept per project, and findings per record (for `ds01 where`).
RETIRED_KEPT = 20
RETIRED_FINDINGS = 2000
#: Folder levels of the workspace the audit's look for links goes down (fwalk holds a descriptor per level).
LINK_WALK_DEPTH = 64
#: The most of a container's apt history log an audit reads, and of a project's requirements.txt its update does.
APT_LOG_MAX = 4 * 2**20
REQUIREMENTS_MAX = 1 * 2**20


def _roots(paths: set[str]) -> list[str]:
    """The topmost paths of a set (those whose parent is not in it)."""
    return sorted(p for p in paths if posixpath.dirname(p) not in paths)


#: Where a rescue reads from: the container's writable layer and its memory-backed mounts.
class Guard(Rescuing):
    """Audits a project's container and retires it through a rescue or an explicit discard."""

    def __init__(self, containers: Containers, disk: DiskUsage):
        self.containers = containers
        self.engine = containers.engine
        self.disk = disk
        self.settings = containers.settings
        self.processes = Processes(self.engine, self.settings, containers.inventory)

    # -- audit ---------------------------------------------------------------------------
    def audit(self, user: User, project: str) -> Audit:
        """Everything the container holds that would be lost when it is retired."""
        with _collector_paused():
            return self._audit(user, project)

    def _audit(self, user: User, project: str) -> Audit:
        started = time.monotonic()
        proj = self.containers.projects.locate(user, project)  # its folder may be gone while its container lives
        record = self.containers.record(user, project)
        audit = Audit(project, record.name, record.state)
        unlisted = None
        changes: list[tuple[str, str]] = []
        layer = self._read_upper(record, audit)
        if layer is not None:  # /workspace left out of the walk; its stats are those of the entries not deleted
            paths = set(layer.stats)
            audit.added = {p for p, k in layer.changes if k == "A"}
        else:
            try:
                changes = [(p, k) for p, k in self.engine.diff(record.id)
                           if k != "D" and p != WORKSPACE and not p.startswith(WORKSPACE + "/")]
            except EngineError as err:  # e.g. a path longer than 4 KB: the engine's own walk fails
                unlisted = err
            paths = {p for p, _ in changes}
            audit.added = {p for p, k in changes if k == "A"}
        # The probe stats what the engine listed; with the layer read here it only says what the user cannot reach.
        searchable = sorted({p[:p.rfind("/")] or "/" for p in paths}) if layer is not None else None
        since = record.started_at or record.created
        if unlisted is not None and record.started_at is None:  # a listing's record lacks the start time
            detail = self.engine.get_container(record.id)
            since = (detail.started_at or detail.created) if detail else since
        probe = None
        early = None  # the findings of all the layer's entries read here, made while the probe runs
        if record.running:
            ask = functools.partial(self._probe, user, record, sorted(paths) if layer is None else [],
                                    since.timestamp() if unlisted and since else None, processes=True,
                                    searchable=searchable)
            probe, early = self._while_probing(ask, layer) if layer is not None else (ask(), None)
        stats: dict[str, tuple]  # {path: (size, type)} from the layer, (size, regular, type) from the engine
        if probe is not None:
            if layer is not None:
                blocked = set(probe.get("blocked") or ())
                stats = layer.stats if not blocked else {
                    p: v for p, v in layer.stats.items() if (p[:p.rfind("/")] or "/") not in blocked}
            else:
                stats = {p: (v[0], v[1] == stat.S_IFREG, v[1]) for p, v in probe["stats"].items()}
            if unlisted is not None and probe.get("changed") is not None:
                stats.update({e[0]: (e[1], e[2] == stat.S_IFREG, e[2]) for e in probe["changed"]})
                audit.added |= {e[0] for e in probe["changed"]}
                audit.notes.append(f"The engine could not list the container's changes ({_short(unlisted)}); "
                                   "they were found inside the container by their change time instead.")
                unlisted = None
            audit.notes.extend(probe.get("notes") or [])
            self._unexamined(audit, paths, stats)
        else:
            # Read as root, as the archives would be.
            stats = layer.stats if layer is not None else self._stats_from_archives(record, paths, changes, audit.added)
            self._unexamined(audit, paths, stats)
            if record.running:
                audit.notes.append("The guard could not look inside the running container (no python3 in the image, "
                                   "or it did not answer): files in /dev/shm and other memory-backed folders, and "
                                   "running processes, are not listed.")
                audit.add([unlooked()], 0)
            if record.state in ("exited", "dead", "created"):
                audit.notes.append("The container is stopped: files it had in /dev/shm were lost when it stopped.")
        audit.add(*(early if early is not None and layer is not None and stats is layer.stats
                    else layer_findings(stats)))
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
        self._add_links(audit, user, proj.path)
        audit.findings = rank(audit.findings)
        audit.seconds = time.monotonic() - started
        self._remember(user, audit)
        return audit

    @staticmethod
    def _while_probing(ask: Callable[[], dict | None], layer: LayerChanges):
        """(the probe's answer, the findings of the layer's entries and their noise), the two made at once.

        The probe waits on the container (dockerd and the container's python do its work), so the layer's entries
        are classified meanwhile, here: that is computing only (no engine call, no change of identity), and its
        result serves unless the probe names folders the user cannot search.
        """
        with ThreadPoolExecutor(1, thread_name_prefix="ds01-probe") as pool:
            pending = pool.submit(ask)
            found = layer_findings(layer.stats)
            return pending.result(), found

    @staticmethod
    def _unexamined(audit: Audit, paths: set[str], stats: dict) -> None:
        """Changed paths the probe could not stat (a folder the user cannot read): listed, never dropped."""
        missing = paths - stats.keys()
        if missing:  # the engine names a file that is not UTF-8 with U+FFFD; its stat has the real name
            missing -= {p.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for p in stats}
        for path in sorted(missing):
            if classify(path) == NOISE or any(path.startswith(s + "/") for s in missing if s != path):
                continue  # noise, or its folder is listed already
            audit.findings.append(Finding(path=path, kind=WORK, size=0, source="writable-layer",
                                          detail="could not be examined with your rights"))

    def _read_upper(self, record: ContainerRecord, audit: Audit) -> LayerChanges | None:
        """The container's changes from its overlay upper directory, or None (then the engine's diff is asked)."""
        try:
            upper, lowers = upperdir.locate(self.engine, record)
            layer = upperdir.walk(upper, lowers, leave_out=frozenset({WORKSPACE}))  # the project's own mount
        except upperdir.Unreadable as why:
            audit.changes_from = "engine diff"
            audit.notes.append(
                f"Changes listed by the engine's diff: the container's layer cannot be read here ({why})."
            )
            return None
        audit.changes_from = "upper directory"
        audit.notes.append("Changes read from the container's overlay upper directory.")
        return layer

    def _inside(self, user: User, record: ContainerRecord, request: dict):
        """Run inside.py in the container as the container's user (never root), fed ``request`` on stdin."""
        return self.engine.exec_stream(
            record.id, ["python3", "-I", "-c", INSIDE], json.dumps(request).encode(), user=f"{user.uid}:{user.gid}",
            timeout=self.probe_timeout,
        )

    probe_timeout = 120.0

    def _probe(self, user: User, record: ContainerRecord, paths: list[str], walk_since: float | None,
               processes: bool = False, searchable: list[str] | None = None) -> dict | None:
        request = {"mode": "probe", "paths": paths, "searchable": searchable or [], "workspace": "/workspace",
                   "hook_log": HOOK_LOG,
                   "walk_since": walk_since, "processes": processes, "sample": self.processes.sample_seconds,
                   "busy_percent": self.settings.idle_cpu_percent}
        try:
            stream, exit_code = self._inside(user, record, request)
            out = stream.read(PROBE_MAX + 1)
            # None: the engine has not recorded the exit yet (a busy host); a complete answer still counts.
            if exit_code() not in (0, None) or len(out) > PROBE_MAX:
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
                            kind = stat.S_IFREG if member.isfile() or member.islnk() else (
                                stat.S_IFDIR if member.isdir() else stat.S_IFLNK if member.issym() else stat.S_IFIFO)
                            stats[full] = (member.size, kind == stat.S_IFREG, kind)
            except (DS01Error, tarfile.TarError):
                continue
        return stats

    def _attach_writes(self, audit: Audit, writes: list, project_path: Path) -> None:
        if not writes:
            return
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
                handle = tar.extractfile(member) if member else None  # None also for a folder or device
                # Its first APT_LOG_MAX bytes only: the container's user may make it any size (a sparse file
                # costs her no disk, and the engine sends every byte into this process).
                text = handle.read(APT_LOG_MAX).decode("utf-8", "replace") if handle else ""
                if member is not None and member.size > APT_LOG_MAX:
                    audit.notes.append(f"Read the first {format_size(APT_LOG_MAX)} of {log} only "
                                       f"({format_size(member.size)}).")
        except (DS01Error, tarfile.TarError, AttributeError, OSError):
            return
        for line in text.splitlines():
            if line.startswith("Install:"):
                for name, version in re.findall(r"([\w.+-]+?):?[\w]*\s\(([^),]+)", line[8:]):
                    audit.findings.append(
                        Finding(path=f"apt:{name}", kind=ENVIRONMENT, size=0, source="apt", detail=f"{name}={version}")
                    )

    def _add_links(self, audit: Audit, user: User, project_path: Path, limit: int = 200_000) -> None:
        """Links inside the workspace that lead outside it: writing through them lands outside. Walked as the
        user and by folder descriptors: the container may swap a folder for a link meanwhile, and root walking
        by path would then list (and report the links of) a folder only root may read."""
        seen, top = 0, str(project_path).rstrip("/").count("/")
        # No workspace (deleted), one she cannot read; a tree deeper than Python's recursion goes.
        with acting_as(user), contextlib.suppress(OSError, RecursionError):
            walk = os.fwalk(project_path, follow_symlinks=False, onerror=lambda err: None)
            for dirpath, dirnames, filenames, folder in walk:
                if os.path.basename(dirpath) == RESCUED and os.path.dirname(dirpath) == str(project_path):
                    dirnames[:] = []
                    continue
                for name in dirnames + filenames:
                    seen += 1
                    self._add_link(audit, project_path, dirpath, name, folder)
                if dirpath.count("/") - top >= LINK_WALK_DEPTH and dirnames:
                    dirnames[:] = []  # a descriptor is held open per level: never hundreds at once
                    deep = f"Did not look for links below {LINK_WALK_DEPTH} levels of the workspace."
                    if deep not in audit.notes:
                        audit.notes.append(deep)
                if seen > limit:
                    audit.notes.append(f"Stopped looking for links after {limit} entries of the workspace.")
                    break

    @staticmethod
    def _add_link(audit: Audit, project_path: Path, dirpath: str, name: str, folder: int) -> None:
        try:
            target = os.readlink(name, dir_fd=folder)
        except OSError:
            return  # not a link (EINVAL), or gone meanwhile
        full = os.path.join(dirpath, name)
        inner = "/workspace/" + os.path.relpath(full, project_path)
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(inner), target))
        if resolved == "/workspace" or resolved.startswith("/workspace/"):
            return
        audit.findings.append(
            Finding(path=inner, kind=WORK, size=0, source="workspace-link",
                    detail=f"links to {target}: what is written through it is outside /workspace")
        )

    # -- remembered results (warnings survive a restart) ---------------------------------
    def _cache_file(self, user: User, project: str) -> Path:
        return self.settings.expand(self.settings.state_dir, user) / "audits" / f"{project}.json"

    def _remember(self, user: User, audit: Audit) -> None:
        try:
            write_atomic(self._cache_file(user, audit.project), json.dumps(audit.to_dict(limit=200)), user)
        except OSError:
            pass  # the warning count is only a convenience; the audit itself stands

    def remembered(self, user: User, project: str) -> dict | None:
        """The last audit's findings of a project (what the scan compares a new audit with)."""
        return read_json(self._cache_file(user, check_project_name(project)), user)

    def _retired_dir(self, user: User) -> Path:
        return self.settings.expand(self.settings.state_dir, user) / "audits" / "retired"

    def _remember_retired(self, user: User, audit: Audit, mode: str | None, rescued) -> None:
        """What a retired container held, kept so that `ds01 where` can say what became of a file later."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        record = {**audit.to_dict(limit=RETIRED_FINDINGS), "retired_at": stamp, "mode": mode or "nothing at risk",
                  "rescued_into": rescued.folder if rescued else None}
        try:
            write_atomic(self._retired_dir(user) / f"{audit.project}-{stamp}.json", json.dumps(record), user)
            with acting_as(user):
                kept = sorted(self._retired_dir(user).glob(f"{audit.project}-*.json"))
                for old in kept[:-RETIRED_KEPT]:
                    old.unlink()
        except OSError:
            pass  # a convenience for later questions; the retire itself stands

    def retired_records(self, user: User, project: str) -> list[dict]:
        """The records of the project's retired containers, newest first."""
        with acting_as(user):
            paths = sorted(self._retired_dir(user).glob(f"{project}-*.json"), reverse=True)
        found = [read_json(p, user) for p in paths[:RETIRED_KEPT]]
        return [r for r in found if isinstance(r, dict) and r.get("project") == project]

    def forget(self, user: User, project: str) -> None:
        try:
            with acting_as(user):  # in the user's home: never root's unlink through their links
                self._cache_file(user, project).unlink()
        except OSError:
            pass

    def save_memory(self, user: User, project: str, record: ContainerRecord, findings: list[Finding],
                    progress: Callable[[str], None] = lambda s: None):
        """Copy the files of a container's memory-backed folders (/dev/shm...) into the project's .rescued/ before
        a stop loses them (Containers.stop); a full disk or quota refuses the stop instead."""
        audit = Audit(project=project, container=record.name, state=record.state, findings=list(findings))
        return self.rescue(user, project, audit, progress)

    # -- environment changes into the image ------------------------------------------------------
    def add_requirements(self, user: User, project: str, audit: Audit | None = None) -> list[str]:
        """Append pip packages installed by hand to the project's requirements.txt; return what was added."""
        audit = audit or self.audit(user, project)
        wanted = [f.detail for f in audit.findings if f.kind == ENVIRONMENT and f.source == "pip" and f.detail]
        path = self.containers.projects.get(user, project).path / "requirements.txt"
        # As the user (root for them: ds01d, the hub): a file swapped for a link after the check below can then
        # lead only where the user could write anyway.
        with acting_as(user):
            if path.is_symlink():
                raise InvalidRequest(f"{path} is a link; refusing to write through it.")
            existing = _read_requirements(path)
            have = {re.split(r"[=<>!~\[ ;]", line.strip(), maxsplit=1)[0].lower().replace("-", "_")
                    for line in existing.splitlines() if line.strip() and not line.startswith("#")}
            added = [p for p in wanted if p.split("==")[0].lower().replace("-", "_") not in have]
            if added:
                text = existing + ("" if existing.endswith("\n") or not existing else "\n")
                text += "# Installed by hand in the container (added by ds01 audit)\n" + "\n".join(added) + "\n"
                path.write_text(text)
        return added

    # -- retire --------------------------------------------------------------------------
    def retire(
        self,
        user: User,
        project: str,
        mode: str | None = None,
        progress: Callable[[str], None] = lambda s: None,
        include_caches: bool = False,
        stop_processes: bool = False,
    ) -> dict:
        """Retire through the guard: refuse when work would be lost, unless told rescue or discard.

        Running work (process findings) is never killed silently: refused unless ``stop_processes``; then it is
        stopped first (SIGTERM, the grace, SIGKILL) and the final audit and rescue see what it left at the end.

        Caches never stop a retire, but the answer lists those dropped with it (``dropped_caches``, with sizes);
        ``include_caches`` copies them into ``.rescued/`` first instead.
        """
        RetireRequest(mode, include_caches, stop_processes)  # checked as every front end's request is
        audit = self.audit(user, project)
        running = [f for f in audit.findings if f.kind == PROCESS]
        stopped = None
        self._refuse_files(audit, mode, running)
        if running and not stop_processes:
            raise refusal(audit.container, running, "Retiring")
        if running and not only_unlooked(running):
            stopped = self.processes.stop(user, self.containers.record(user, project), progress=progress)
            audit = self.audit(user, project)  # after they ended: what they wrote up to the end is found
            self._refuse_files(audit, mode, [], after_stop=True)
        at_risk = [f for f in audit.at_risk if f.kind != PROCESS]
        caches = [f for f in audit.findings if f.kind == CACHE and f.source in COPYABLE]
        rescued = None
        if (at_risk and mode == "rescue") or (include_caches and caches):
            rescued = self.rescue(user, project, audit, progress, include_caches=include_caches)
            unknown = [f for f in at_risk if f.source == "engine" or f.detail.startswith("could not")]
            # A file the copy could not read (root's, 0600, made with sudo inside) is as lost as one never examined.
            unknown += lost_in_copy(rescued.skipped, at_risk)
            if unknown and mode == "rescue":
                raise UnsavedWork(
                    f"Rescued {rescued.files} file(s) into {rescued.folder}, but {len(unknown)} change(s) could not be "
                    f"examined or copied ({unknown[0].path}: {unknown[0].detail}); the container was kept.",
                    hint="Copy them into /workspace yourself, or retire with --discard to let them go.",
                    findings=[f.to_dict() for f in unknown[:50]],
                    rescued=rescued.to_dict(),
                )
        status = self.containers.retire(user, project)
        self.forget(user, project)
        self._remember_retired(user, audit, mode, rescued)
        return {
            "container": status.to_dict(),
            "rescued": rescued.to_dict() if rescued else None,
            "discarded": len(at_risk) if mode == "discard" else 0,
            "dropped_caches": skipped_caches(audit, include_caches),
            "processes": stopped,
        }

    @staticmethod
    def _refuse_files(audit: Audit, mode: str | None, running: list[Finding], after_stop: bool = False) -> None:
        """Refuse (before anything is stopped) when files or environment changes would be lost and no mode was
        chosen."""
        files = [f for f in audit.at_risk if f.kind != PROCESS]
        if not files or mode is not None:
            return
        summary = audit.summary()
        also = f", and would kill {len(running)} running process(es)" if running else ""
        raise UnsavedWork(
            (
                "The running processes were stopped; they left "
                if after_stop
                else f"Retiring {audit.container} would lose "
            )
            + f"{summary[WORK]['count']} file(s) ({format_size(summary[WORK]['bytes'])}) and "
            f"{summary[ENVIRONMENT]['items']} environment change(s) outside /workspace{also}.",
            hint="Rescue them into the workspace first (--rescue), or discard them explicitly (--discard)"
            + (", with --stop-processes to stop the running processes." if running else "."),
            findings=[f.to_dict() for f in (files + running)[:50]],
            processes=[f.to_dict() for f in running[:200]],
        )


@contextlib.contextmanager
def _collector_paused():
    """Pause Python's cycle collector while an audit builds its (acyclic) findings, then let it run as before.

    With 100k changed files the audit makes some 500k tuples, strings and findings that all stay alive; each full
    collection on the way walked all of them again, a quarter of the audit's time. Nothing it makes is cyclic, so
    reference counting frees it all the same; another thread only finds the collector paused for the audit's time.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _read_requirements(path: Path) -> str:
    """The project's requirements.txt ("" when there is none): a regular file of at most REQUIREMENTS_MAX, opened
    without blocking (a FIFO of that name would hold the operation for ever) and without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    except OSError as err:
        raise InvalidRequest(f"Cannot read {path} ({err.strerror}).") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidRequest(f"{path} is not a regular file; refusing to add to it.")
        if st.st_size > REQUIREMENTS_MAX:
            raise InvalidRequest(f"{path} is larger than {format_size(REQUIREMENTS_MAX)}; add the packages by hand.")
        return fh.read(REQUIREMENTS_MAX).decode("utf-8", "replace")


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
        blocked = out.get("blocked") or []
        ok = ok and isinstance(blocked, list) and all(isinstance(b, str) for b in blocked)
        writes = out.get("writes") or []
        ok = ok and isinstance(writes, list) and all(isinstance(w, dict) for w in writes)
        ok = ok and isinstance(out.get("notes") or [], list) and all(isinstance(n, str) for n in out.get("notes") or [])
        return out if ok else None
    except (TypeError, AttributeError):
        return None
