"""What the persistence guard found, and how each path is classified.

Kinds, so users read only what matters:
- ``work``: their files (data, results, models; checkpoint-like files first) - a warning;
- ``environment``: packages installed by hand (pip, conda, apt) - a warning;
- ``process``: work that is running (a background job, a cell that executes) - a warning;
- ``kernel``: an idle notebook kernel (its variables are lost) - shown quietly;
- ``cache``: re-creatable (pip/HF/torch caches, __pycache__) - shown quietly with its size;
- ``noise``: Jupyter/IPython runtime files, sockets, pid files, shell history - never shown.
"""

from __future__ import annotations

import functools
import posixpath
import re
import stat
import time
from dataclasses import asdict, dataclass, field
from operator import attrgetter

from ..checkpoints.scanning import EXTENSIONS as CHECKPOINT_EXTENSIONS

WORK, ENVIRONMENT, CACHE, NOISE = "work", "environment", "cache", "noise"
PROCESS, KERNEL = "process", "kernel"
AT_RISK = (WORK, ENVIRONMENT, PROCESS)


_NOISE = re.compile(
    r"""(
        /\.local/share/jupyter/runtime(/|$) | /\.ipython(/|$) | /\.jupyter(/|$) |
        /tmp/\.ds01(/|-kernel-) | /\.ds01-kernel- |
        /\.(bash|python|sh|zsh)_history$ | /\.lesshst$ | /\.viminfo$ | /\.wget-hsts$ |
        \.pid$ | \.sock$ | \.lock$ |
        ^/(usr/)?sbin/docker-init$ | ^/etc/(hostname|hosts|resolv\.conf|mtab)$ | ^/\.dockerenv$ |
        ^/run/ | ^/var/run/ | ^/var/lock/ | ^/tmp/tmp[^/]*\.json$ |
        ^/var/log/ | ^/tmp/ds01-requirements\.txt$ | ^/dev/shm/(torch_|sem\.|mp-|pym-)
    )""",
    re.X,
)
_CACHE = re.compile(
    r"""(
        /\.cache(/|$) | /__pycache__(/|$) | \.pyc$ | ^/var/cache(/|$) | ^/var/lib/apt/lists(/|$) |
        /\.npm(/|$) | /\.conda/pkgs(/|$) | /pkgs/cache(/|$) | /\.triton(/|$) | /\.nv/ComputeCache(/|$)
    )""",
    re.X,
)
_SITE = re.compile(r"^(?P<root>.*/(?:site|dist)-packages)/(?P<rest>.+)$")
_ENVIRONMENT = re.compile(
    r"""(
        ^/usr/(local/)?(bin|sbin|lib|lib64|libexec|share|include)(/|$) | ^/var/lib/dpkg(/|$) |
        ^/opt/conda(/|$) | /conda-meta(/|$) | ^/etc/(apt|alternatives|ld\.so)[^/]*(/|$) |
        /\.local/(bin|lib)(/|$) | ^/(bin|sbin|lib|lib64)(/|$)
    )""",
    re.X,
)


def classify_by_rules(path: str) -> str:
    """The kind of a path found outside /workspace, by the rules above (``classify`` gives the same, faster)."""
    if _NOISE.search(path):
        return NOISE
    if _CACHE.search(path):
        return CACHE
    if _SITE.match(path) or _ENVIRONMENT.search(path):
        return ENVIRONMENT
    return WORK


# What the rules say of a path through its last name alone: their alternatives that can end inside the name (a
# name holds no "/", so only those ending at the end of the path). Whatever else matches the path matches its
# folder with a "/" after it, which _folder_kind asks once per folder. A test compares both on many paths.
_NOISE_NAMES = frozenset({".bash_history", ".python_history", ".sh_history", ".zsh_history", ".lesshst", ".viminfo",
                          ".wget-hsts"})
_NOISE_ENDS = ("/.local/share/jupyter/runtime", "/.ipython", "/.jupyter", ".pid", ".sock", ".lock")
_NOISE_PATHS = frozenset({"/sbin/docker-init", "/usr/sbin/docker-init", "/.dockerenv", "/tmp/ds01-requirements.txt",
                          "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab"})
_SHM_NOISE = ("torch_", "sem.", "mp-", "pym-")
_CACHE_ENDS = ("/.cache", "/__pycache__", ".pyc", "/.npm", "/.conda/pkgs", "/pkgs/cache", "/.triton",
               "/.nv/ComputeCache")
_CACHE_PATHS = frozenset({"/var/cache", "/var/lib/apt/lists"})
_ENVIRONMENT_ENDS = ("/conda-meta", "/.local/bin", "/.local/lib")
_ENVIRONMENT_PATHS = frozenset(
    [f"/usr/{local}{d}" for local in ("", "local/")
     for d in ("bin", "sbin", "lib", "lib64", "libexec", "share", "include")]
    + ["/var/lib/dpkg", "/opt/conda", "/bin", "/sbin", "/lib", "/lib64"]
)


@functools.lru_cache(maxsize=8192)
def _folder_kind(folder: str) -> str | None:
    """The kind every path in ``folder`` (given with its trailing "/") has whatever its name, or None.

    A rule that matches "folder/" matches "folder/name" at the same place: no rule's match ends with "$" after a "/".
    """
    if _NOISE.search(folder):
        return NOISE
    if _CACHE.search(folder):
        return CACHE
    if _ENVIRONMENT.search(folder) or "/site-packages/" in folder or "/dist-packages/" in folder:
        return ENVIRONMENT  # a site-packages folder: each name in it is a package's (_SITE needs a name after it)
    return None


_NAME_ENDS = _NOISE_ENDS + _CACHE_ENDS + _ENVIRONMENT_ENDS
_NAME_PATHS = _NOISE_PATHS | _CACHE_PATHS | _ENVIRONMENT_PATHS


def classify(path: str) -> str:
    """The kind of a path found outside /workspace: its folder's kind once per folder, then its name's."""
    cut = path.rfind("/") + 1
    folder = _folder_kind(path[:cut])
    if folder == NOISE:
        return NOISE
    # Only these names can change their folder's kind (a rule for names with a dot first, a rule's ending, a rule's
    # path, names in /tmp, /etc and /dev/shm); with an empty name or a newline the rules are asked themselves.
    if (path.endswith(_NAME_ENDS) or path in _NAME_PATHS or path[cut:cut + 1] in (".", "") or cut in (5, 9)
            or "\n" in path):
        return _classify_name(path, cut, folder)
    return folder or WORK


def _classify_name(path: str, cut: int, folder: str | None) -> str:
    name = path[cut:]
    if not name or "\n" in path:  # "$" matches before a last newline too, "." never matches one
        return classify_by_rules(path)
    if name in _NOISE_NAMES or path.endswith(_NOISE_ENDS) or path in _NOISE_PATHS:
        return NOISE
    if name.startswith(".ds01-kernel-") or (cut == 5 and path.startswith("/tmp/") and name.startswith("tmp")
                                            and name.endswith(".json")):
        return NOISE
    if cut == 9 and path.startswith("/dev/shm/") and name.startswith(_SHM_NOISE):
        return NOISE
    if folder == CACHE or path.endswith(_CACHE_ENDS) or path in _CACHE_PATHS:
        return CACHE
    if folder == ENVIRONMENT or path.endswith(_ENVIRONMENT_ENDS) or path in _ENVIRONMENT_PATHS:
        return ENVIRONMENT
    if cut == 5 and path.startswith("/etc/") and name.startswith(("apt", "alternatives", "ld.so")):
        return ENVIRONMENT
    return WORK


def is_checkpoint(path: str) -> bool:
    return path.lower().endswith(CHECKPOINT_EXTENSIONS)


def package_of(path: str) -> tuple[str, str] | None:
    """(manager, package) for a file of an installed Python package, from its site-packages path."""
    match = _SITE.match(path)
    if not match:
        return None
    top = match.group("rest").split("/", 1)[0]
    info = re.match(r"^(?P<name>[A-Za-z0-9_.]+?)-(?P<version>[^-]+?)\.(dist|egg)-info$", top)
    if info:
        return "pip", f"{info.group('name')}=={info.group('version')}"
    name = re.sub(r"\.(py|so)$", "", top.split(".cpython")[0])
    return "pip", name


SPECIAL = "special file (fifo, socket or device): listed, never read"
_CACHE_ROOT = re.compile(
    r"^(.*?(?:/\.cache/[^/]+|/__pycache__|/var/cache/[^/]+|/var/lib/apt/lists|/\.npm|/\.conda/pkgs))"
)


@dataclass(slots=True)  # no __dict__ each: an audit may hold 100k of them
class Finding:
    """One thing that would be lost: a file (work, cache), a package (environment), a link."""

    path: str
    kind: str
    size: int  # real bytes (allocated blocks where known, else the file size)
    source: str  # writable-layer, tmpfs, workspace-link, pip, conda, apt, kernel
    checkpoint: bool = False
    detail: str = ""
    notebook: str | None = None
    cell: int | None = None
    files: int = 1
    #: Fields of its kind, answered beside the others (a process's pid, command, started, cpu_seconds, busy...).
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **{k: v for k, v in extra.items() if k not in data}}


_ORDER = {WORK: 0, PROCESS: 1, ENVIRONMENT: 2, KERNEL: 3, CACHE: 4, NOISE: 5}


def rank(findings: list[Finding]) -> list[Finding]:
    """Work first, checkpoints first within it, then by size (largest first), then by path.

    Sorted by each key in turn, the last first (a sort keeps the order of equals): a key of one attribute each time
    sorts 100k findings in half the time of one tuple per finding.
    """
    ranked = sorted(findings, key=attrgetter("path"))
    ranked.sort(key=attrgetter("size"), reverse=True)
    ranked.sort(key=attrgetter("checkpoint"), reverse=True)
    ranked.sort(key=lambda f: _ORDER.get(f.kind, 9))
    return ranked


def layer_findings(stats: dict) -> tuple[list[Finding], int]:
    """Findings of a writable layer's files ({path: (size, regular, mode)} or {path: (size, mode)}) and how many
    were noise.

    One finding per installed package and per cache folder; work files one by one (in no order: rank orders them).
    """
    findings: list[Finding] = []
    work = findings.append
    noise = 0
    grouping: list[tuple[str, str, int]] = []
    for path, value in stats.items():
        size, mode = value[0], value[-1]  # "regular" is the type's S_IFREG (or a hard link's, in an archive)
        if mode == stat.S_IFDIR:
            continue  # folders show through their files
        kind = NOISE if mode == stat.S_IFSOCK else classify(path)  # sockets are runtime noise
        if kind == WORK:
            work(Finding(path, WORK, size, "writable-layer", path.lower().endswith(CHECKPOINT_EXTENSIONS),
                         "" if mode == stat.S_IFREG or mode == stat.S_IFLNK else SPECIAL))
        elif kind == NOISE:
            noise += 1
        else:
            grouping.append((path, kind, size))
    packages: dict[tuple[str, str], Finding] = {}
    grouped: dict[tuple[str, str], Finding] = {}
    for path, kind, size in sorted(grouping):  # in path order: which file names a package first is always the same
        if kind == ENVIRONMENT:
            owner = package_of(path)
            key = owner or ("files", "/".join(path.split("/")[:4]))
            finding = packages.get(key)
            if finding is None:
                site = re.match(r"^(.*/(?:site|dist)-packages)/", path)
                where = site.group(1) if site and owner else key[1]
                finding = packages[key] = Finding(
                    path=where, kind=ENVIRONMENT, size=0, source=owner[0] if owner else "writable-layer",
                    detail=owner[1] if owner else "files changed outside packages", files=0,
                )
            finding.size += size
            finding.files += 1
            continue
        root = _CACHE_ROOT.match(path)
        key = (CACHE, root.group(1) if root else posixpath.dirname(path))
        finding = grouped.get(key)
        if finding is None:
            finding = grouped[key] = Finding(path=key[1], kind=CACHE, size=0, source="writable-layer", files=0)
        finding.size += size
        finding.files += 1
    # Keep pip packages apart from the package's own files: one finding per package.
    merged: dict[str, Finding] = {}
    for (manager, name), finding in packages.items():
        base = name.split("==")[0].lower().replace("-", "_")
        if manager == "pip" and base in merged and "==" in name:
            merged[base].detail = name
            merged[base].size += finding.size
            merged[base].files += finding.files
        elif manager == "pip" and base in merged:
            merged[base].size += finding.size
            merged[base].files += finding.files
        else:
            merged[base if manager == "pip" else f"{manager}:{name}"] = finding
    findings.extend(merged.values())
    findings.extend(grouped.values())
    return findings, noise


def tmpfs_findings(files: list) -> tuple[list[Finding], int]:
    """Findings of entries in memory-backed mounts ([path, size, mode, ...]) and how many were noise.

    Links and special files (FIFOs, devices, sockets) are listed for what they are and never read through.
    """
    findings: list[Finding] = []
    noise = 0
    for path, size, mode, *_ in files:
        kind = classify(path)
        if kind == NOISE or mode in (stat.S_IFDIR, stat.S_IFSOCK):
            noise += mode != stat.S_IFDIR
            continue
        detail = "in memory: lost even when the container stops"
        if mode == stat.S_IFLNK:
            detail = "a link in memory: kept as a link, never followed"
        elif mode != stat.S_IFREG:
            detail = "special file (fifo or device) in memory: listed, never read"
        findings.append(
            Finding(path=path, kind=WORK if kind != CACHE else CACHE, size=size if mode == stat.S_IFREG else 0,
                    source="tmpfs", checkpoint=is_checkpoint(path), detail=detail)
        )
    return findings, noise


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
    #: How the writable layer's changes were listed: "upper directory" (read here) or "engine diff".
    changes_from: str = ""
    #: Paths the writable layer added (the rescue archives their topmost folders).
    added: set[str] = field(default_factory=set, repr=False)

    def add(self, findings: list[Finding], noise: int) -> None:
        self.findings.extend(findings)
        self.noise += noise

    @property
    def at_risk(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in AT_RISK]

    def summary(self) -> dict:
        totals: dict[str, list[int]] = {kind: [0, 0, 0] for kind in (WORK, PROCESS, ENVIRONMENT, KERNEL, CACHE)}
        for f in self.findings:  # one pass: an audit may hold 100k work files
            counted = totals.get(f.kind)
            if counted is not None:
                counted[0] += f.files
                counted[1] += 1
                counted[2] += f.size
        out: dict = {kind: {"count": c, "items": i, "bytes": b} for kind, (c, i, b) in totals.items()}
        out[NOISE] = {"count": self.noise}
        return out

    def to_dict(self, limit: int | None = None) -> dict:
        findings = self.findings if limit is None else self.findings[:limit]
        summary = self.summary()
        return {
            "project": self.project,
            "container": self.container,
            "state": self.state,
            "at_risk": sum(summary[kind]["items"] for kind in AT_RISK),
            "summary": summary,
            "findings": [f.to_dict() for f in findings],
            "truncated": limit is not None and len(self.findings) > limit,
            "notes": self.notes,
            "changes_from": self.changes_from,
            "scanned_at": self.scanned_at,
            "seconds": round(self.seconds, 3),
        }
