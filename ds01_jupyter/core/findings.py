"""What the persistence guard found, and how each path is classified.

Kinds, so users read only what matters:
- ``work``: their files (data, results, models; checkpoint-like files first) - a warning;
- ``environment``: packages installed by hand (pip, conda, apt) - a warning;
- ``cache``: re-creatable (pip/HF/torch caches, __pycache__) - shown quietly with its size;
- ``noise``: Jupyter/IPython runtime files, sockets, pid files, shell history - never shown.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

WORK, ENVIRONMENT, CACHE, NOISE = "work", "environment", "cache", "noise"
AT_RISK = (WORK, ENVIRONMENT)

CHECKPOINT_EXTENSIONS = (
    ".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".h5", ".keras", ".onnx", ".joblib", ".pkl",
)

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


def classify(path: str) -> str:
    """The kind of a path found outside /workspace."""
    if _NOISE.search(path):
        return NOISE
    if _CACHE.search(path):
        return CACHE
    if _SITE.match(path) or _ENVIRONMENT.search(path):
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


@dataclass
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
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        if not data["extra"]:
            data.pop("extra")
        return data


def rank(findings: list[Finding]) -> list[Finding]:
    """Work first, checkpoints first within it, then by size."""
    order = {WORK: 0, ENVIRONMENT: 1, CACHE: 2, NOISE: 3}
    return sorted(findings, key=lambda f: (order.get(f.kind, 9), not f.checkpoint, -f.size, f.path))
