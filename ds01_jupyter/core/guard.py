"""The persistence guard: everything a project's container holds outside /workspace.

It reads the container's writable layer (the engine's diff), the files in its
memory-backed mounts (/dev/shm and any tmpfs), the links of the workspace that
point outside it, and what the kernel hook saw notebooks write. Retiring
through the guard never loses work silently: the caller chooses rescue (copy
into ``.rescued/<UTC time>/`` first) or discard.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tarfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .containers import Containers
from .disk import DiskUsage
from .engine import ContainerRecord
from .errors import DiskFull, DS01Error, InvalidRequest, QuotaExceeded, UnsavedWork
from .findings import AT_RISK, CACHE, ENVIRONMENT, NOISE, WORK, Finding, layer_findings, rank, tmpfs_findings
from .limits import format_size
from .statefile import read_json, write_atomic
from .users import User, give_tree

RESCUED = ".rescued"
HOOK_LOG = "/tmp/.ds01/writes.jsonl"

#: Runs inside the container (python3 only, no ds01 there): stats the given paths,
#: lists files of memory-backed mounts and returns what the kernel hook logged.
PROBE = r"""
import json, os, stat, sys
req = json.load(open(sys.argv[1]))
out = {"stats": {}, "tmpfs": [], "writes": []}
for p in req["paths"]:
    try:
        st = os.lstat(p)
    except OSError:
        continue
    out["stats"][p] = [st.st_size, stat.S_IFMT(st.st_mode), st.st_nlink, st.st_ino]
skip = ("/dev", "/proc", "/sys", "/run/secrets", req["workspace"])
for line in open("/proc/mounts"):
    parts = line.split()
    mnt = parts[1].replace("\\040", " ")
    if parts[2] != "tmpfs" or any(mnt == s or mnt.startswith(s + "/") for s in skip if s != "/dev"):
        continue
    if mnt == "/dev":
        continue
    for root, dirs, files in os.walk(mnt):
        for name in files:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out["tmpfs"].append([p, st.st_size, stat.S_IFMT(st.st_mode)])
try:
    with open(req["hook_log"]) as fh:
        out["writes"] = [json.loads(line) for line in fh if line.strip()][-1000:]
except (OSError, ValueError):
    pass
print(json.dumps(out))
"""


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
        for kind in (WORK, ENVIRONMENT, CACHE):
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


def rescue_selection(audit: Audit) -> tuple[list[Finding], list[str]]:
    """What a rescue copies (the work files) and lists (the packages installed by hand)."""
    work = [f for f in audit.findings if f.kind == WORK and f.source in ("writable-layer", "tmpfs")]
    packages = [f.detail for f in audit.findings if f.kind == ENVIRONMENT and f.source in ("pip", "apt", "conda")]
    return work, packages


def ensure_room(folder: Path, needed: int, quota: int | None, used: Callable[[], int], *, used_by: str = "",
                quota_hint: str, disk_hint: str) -> None:
    """Refuse before copying anything when the quota or the disk under ``folder`` cannot take ``needed`` bytes."""
    if quota is not None:
        current = used()
        if current + needed > quota:
            raise QuotaExceeded(
                f"Rescuing {format_size(needed)} would exceed your workspace quota: {format_size(current)} of "
                f"{format_size(quota)} (storage_workspace) is used{used_by}.",
                hint=quota_hint, limit="storage_workspace", value=quota, current=current,
            )
    free = shutil.disk_usage(folder).free
    if needed + 16 * 2**20 > free:
        raise DiskFull(
            f"Not enough free disk for the rescue: {format_size(needed)} needed, {format_size(free)} free.",
            hint=disk_hint,
        )


class RescueFolder:
    """``.rescued/<UTC time>/`` being filled: a ``.partial`` folder until published, so only a complete
    rescue ever carries a final name (an interrupted one is removed by the next)."""

    def __init__(self, project_path: Path):
        self.base = project_path / RESCUED
        self.base.mkdir(exist_ok=True)
        for stale in self.base.glob("*.partial"):  # an interrupted rescue: its sources are still there
            shutil.rmtree(stale, ignore_errors=True)
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.final = self.base / self.stamp
        n = 1
        while self.final.exists():
            n += 1
            self.final = self.base / f"{self.stamp}-{n}"
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.partial.mkdir()

    def publish(self, project: str, container: str, manifest: list, skipped: list, packages: list, **extra) -> Rescue:
        """Write the manifest (and the packages installed by hand), then give the folder its final name."""
        if packages:
            (self.partial / "environment-changes.txt").write_text(
                "# Packages installed by hand in the container (lost with it).\n"
                "# Add the pip ones to requirements.txt to have them in the image.\n" + "\n".join(packages) + "\n"
            )
        (self.partial / "MANIFEST.json").write_text(
            json.dumps({"project": project, "container": container, "rescued_at": self.stamp, "files": manifest,
                        "skipped": skipped, "packages": packages, **extra}, indent=1)
        )
        os.replace(self.partial, self.final)
        return Rescue(str(self.final), len(manifest), sum(m["size"] for m in manifest), skipped, packages)


class Guard:
    def __init__(self, containers: Containers, disk: DiskUsage):
        self.containers = containers
        self.engine = containers.engine
        self.disk = disk
        self.settings = containers.settings

    # -- audit ---------------------------------------------------------------------------
    def audit(self, user: User, project: str) -> Audit:
        """Everything the container holds that would be lost when it is retired."""
        started = time.monotonic()
        proj = self.containers.projects.get(user, project)
        record = self.containers.record(user, project)
        audit = Audit(project, record.name, record.state)
        changes = [(p, k) for p, k in self.engine.diff(record.id) if k != "D" and not p.startswith("/workspace/")]
        paths = {p for p, _ in changes}
        audit.added = {p for p, k in changes if k == "A"}
        probe = self._probe(record, sorted(paths)) if record.running else None
        if probe is not None:
            stats = {p: (v[0], v[1] == 0o100000, v[1]) for p, v in probe["stats"].items()}
        else:
            stats = self._stats_from_archives(record, paths, changes, audit.added)
            if record.state in ("exited", "dead", "created"):
                audit.notes.append("The container is stopped: files it had in /dev/shm were lost when it stopped.")
        audit.add(*layer_findings(stats))
        if probe is not None:
            audit.add(*tmpfs_findings(probe["tmpfs"]))
            self._attach_writes(audit, probe["writes"], proj.path)
        self._add_apt(audit, record, paths)
        self._add_links(audit, proj.path)
        audit.findings = rank(audit.findings)
        audit.seconds = time.monotonic() - started
        self._remember(user, audit)
        return audit

    def _probe(self, record: ContainerRecord, paths: list[str]) -> dict | None:
        request = {"paths": paths, "workspace": "/workspace", "hook_log": HOOK_LOG}
        target = f"/tmp/.ds01/probe-{os.getpid()}-{time.monotonic_ns()}"
        try:
            self.engine.exec(record.id, ["mkdir", "-p", "/tmp/.ds01"], user="0:0")
            self.engine.put_file(record.id, target + ".json", json.dumps(request).encode(), 0o644)
            self.engine.put_file(record.id, target + ".py", PROBE.encode(), 0o644)
            code, out = self.engine.exec(record.id, ["python3", target + ".py", target + ".json"], user="0:0", stderr=False)
            self.engine.exec(record.id, ["rm", "-f", target + ".json", target + ".py"], user="0:0")
        except DS01Error:
            return None
        if code != 0:
            return None  # no python3 in this image: fall back to reading archives
        try:
            return json.loads(out)
        except ValueError:
            return None

    def _stats_from_archives(self, record, paths: set[str], changes, added: set[str]) -> dict:
        """Sizes from tar headers of the added trees (works on stopped containers)."""
        stats: dict[str, tuple[int, bool, int]] = {}
        for root in _roots(added) + sorted(p for p, k in changes if k == "C" and p not in added):
            try:
                stream = self.engine.read_archive(record.id, root)
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        full = posixpath.normpath(posixpath.join(posixpath.dirname(root), member.name))
                        if full in paths:
                            kind = 0o100000 if member.isfile() or member.islnk() else (0o040000 if member.isdir() else 0o120000 if member.issym() else 0o010000)
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
            write_atomic(self._cache_file(user, audit.project), json.dumps(audit.to_dict(limit=200)))
        except OSError:
            pass  # the warning count is only a convenience; the audit itself stands

    def remembered(self, user: User, project: str) -> dict | None:
        return read_json(self._cache_file(user, project))

    def forget(self, user: User, project: str) -> None:
        try:
            self._cache_file(user, project).unlink()
        except OSError:
            pass

    # -- rescue ----------------------------------------------------------------------------
    def check_room(self, user: User, project: str, needed: int) -> None:
        """Refuse before copying anything when the quota or the disk cannot take ``needed`` bytes."""
        proj = self.containers.projects.get(user, project)
        ensure_room(
            proj.path, needed, self.containers.limits.for_user(user).storage_workspace,
            lambda: sum(self.disk.measure(user, p.name).bytes for p in self.containers.projects.list(user)),
            quota_hint="Free space in ~/workspace (e.g. old checkpoints: `ds01 prune`), or discard explicitly.",
            disk_hint="Free disk space, then try again; nothing was copied and the container is untouched.",
        )

    def rescue(self, user: User, project: str, audit: Audit | None = None, progress: Callable[[str], None] = lambda s: None) -> Rescue:
        """Copy every work file into ``.rescued/<UTC time>/<its absolute path>``, byte for byte."""
        audit = audit or self.audit(user, project)
        record = self.containers.record(user, project)
        proj = self.containers.projects.get(user, project)
        work, packages = rescue_selection(audit)
        self.check_room(user, project, sum(f.size for f in work))
        folder = RescueFolder(proj.path)
        partial = folder.partial
        manifest: list[dict] = []
        skipped: list[dict] = []
        wanted = {f.path: f for f in work if not f.detail.startswith("special")}
        skipped += [{"path": f.path, "why": f.detail} for f in work if f.detail.startswith("special")]
        layer = {p for p, f in wanted.items() if f.source == "writable-layer"}
        added = audit.added  # the audit's own reading of the layer: no second diff
        roots = set()
        for path in layer:
            top = path
            while posixpath.dirname(top) in added:
                top = posixpath.dirname(top)
            roots.add(top)
        for root in sorted(roots):
            progress(f"Copying {root}")
            self._copy_archive(record, root, layer, partial, manifest)
        for finding in (f for f in wanted.values() if f.source == "tmpfs"):
            progress(f"Copying {finding.path} (memory)")
            code, data = self.engine.exec(record.id, ["cat", "--", finding.path], user="0:0", stderr=False)
            if code == 0:
                self.write_file(partial, finding.path, data, 0o644, time.time(), manifest)
            else:
                skipped.append({"path": finding.path, "why": "could not be read"})
        copied = {m["path"] for m in manifest}
        skipped += [{"path": p, "why": "vanished before it could be copied"} for p in wanted if p not in copied and p not in {s["path"] for s in skipped}]
        rescue = folder.publish(project, record.name, manifest, skipped, packages)
        give_tree(user, folder.base)
        progress(f"Rescued {rescue.files} files ({format_size(rescue.bytes)}) into {rescue.folder}")
        return rescue

    def _copy_archive(self, record, root: str, wanted: set[str], dest: Path, manifest: list) -> None:
        stream = self.engine.read_archive(record.id, root)
        extracted: dict[str, str] = {}
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                full = posixpath.normpath(posixpath.join(posixpath.dirname(root), member.name))
                if full not in wanted:
                    continue
                if member.isfile():
                    data = tar.extractfile(member)
                    self.write_file(dest, full, data, member.mode, member.mtime, manifest)
                    extracted[member.name] = full
                elif member.islnk():  # a hard link: copy the content of the file it shares
                    source = extracted.get(member.linkname)
                    if source is not None:
                        with open(dest / source.lstrip("/"), "rb") as fh:
                            self.write_file(dest, full, fh, member.mode, member.mtime, manifest)
                elif member.issym():
                    target = dest / full.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.linkname, target)  # kept as a link, never followed
                    manifest.append({"path": full, "size": 0, "sha256": None, "link": member.linkname})

    @staticmethod
    def write_file(dest: Path, path: str, data, mode: int, mtime: float, manifest: list) -> None:
        """Write one rescued file at ``dest/<its absolute path>`` (bytes or a file object), recorded in ``manifest``."""
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise InvalidRequest(f"Refusing to write odd path {path!r}.")
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with open(target, "wb") as out:
            if isinstance(data, bytes):
                out.write(data)
                digest.update(data)
                size = len(data)
            else:
                while chunk := data.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(target, (mode & 0o777) | 0o600)
        os.utime(target, (mtime, mtime))
        manifest.append({"path": path, "size": size, "sha256": digest.hexdigest()})

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
    def retire(self, user: User, project: str, mode: str | None = None, progress: Callable[[str], None] = lambda s: None) -> dict:
        """Retire through the guard: refuse when work would be lost, unless told rescue or discard."""
        if mode not in (None, "rescue", "discard"):
            raise InvalidRequest(f"Retire mode must be 'rescue' or 'discard', not {mode!r}.")
        audit = self.audit(user, project)
        at_risk = audit.at_risk
        rescued = None
        if at_risk and mode is None:
            summary = audit.summary()
            raise UnsavedWork(
                f"Retiring {audit.container} would lose {summary[WORK]['count']} file(s) "
                f"({format_size(summary[WORK]['bytes'])}) and {summary[ENVIRONMENT]['items']} environment change(s) "
                "outside /workspace.",
                hint="Rescue them into the workspace first (--rescue), or discard them explicitly (--discard).",
                findings=[f.to_dict() for f in at_risk[:50]],
            )
        if at_risk and mode == "rescue":
            rescued = self.rescue(user, project, audit, progress)
        status = self.containers.retire(user, project)
        self.forget(user, project)
        return {
            "container": status.to_dict(),
            "rescued": rescued.to_dict() if rescued else None,
            "discarded": len(at_risk) if mode == "discard" else 0,
        }


def _relative_notebook(path: str | None, project_path: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve().relative_to(project_path.resolve()))
    except ValueError:
        return path

