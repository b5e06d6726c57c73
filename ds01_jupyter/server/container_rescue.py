"""Rescue from inside a project's container: work files at risk copied into /workspace/.rescued/.

The host's guard reads the container through the engine; in here the files are
simply on the local filesystem, so they are copied with plain reads, opened
without following links (a link made in /tmp cannot pull in a file from
elsewhere). The layout and the answer are the host's (``Guard.rescue``):
``.rescued/<UTC time>/<absolute path>``, a MANIFEST.json, a ``.partial``
folder until the copy is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

from ..core.errors import DiskFull, QuotaExceeded
from ..core.findings import ENVIRONMENT, WORK
from ..core.guard import RESCUED, Audit, Guard, Rescue
from ..core.limits import format_size


def workspace_bytes(root: Path) -> int:
    """Bytes of regular files under ``root`` (links not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def check_room(workspace: Path, needed: int, quota: int | None) -> None:
    """Refuse before copying anything when the known quota or the disk cannot take ``needed`` bytes.

    Only this project is visible in here, so the quota is checked against its size alone.
    """
    if quota is not None:
        used = workspace_bytes(workspace)
        if used + needed > quota:
            raise QuotaExceeded(
                f"Rescuing {format_size(needed)} would exceed your workspace quota: {format_size(used)} of "
                f"{format_size(quota)} (storage_workspace) is used by this project.",
                hint="Free space in /workspace (e.g. old checkpoints: prune them), or let the hub rescue on stop.",
                limit="storage_workspace", value=quota, current=used,
            )
    free = shutil.disk_usage(workspace).free
    if needed + 16 * 2**20 > free:
        raise DiskFull(
            f"Not enough free disk for the rescue: {format_size(needed)} needed, {format_size(free)} free.",
            hint="Free disk space in /workspace, then try again; nothing was copied.",
        )


def _copy_one(path: str, dest: Path, manifest: list) -> str | None:
    """Copy one regular file; return why not, or None when copied."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        if os.path.islink(path):
            return "a link: not followed"
        return "vanished before it could be copied" if not os.path.lexists(path) else f"could not be read ({err.strerror})"
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        Guard.write_file(dest, path, fh, st.st_mode, st.st_mtime, manifest)
    return None


def rescue_inside(audit: Audit, workspace: Path, quota: int | None = None) -> Rescue:
    """Copy the audit's work files into ``<workspace>/.rescued/<UTC time>/<absolute path>``."""
    work = [f for f in audit.findings if f.kind == WORK and f.source in ("writable-layer", "tmpfs")]
    packages = [f.detail for f in audit.findings if f.kind == ENVIRONMENT and f.source in ("pip", "apt", "conda")]
    check_room(workspace, sum(f.size for f in work), quota)
    base = workspace / RESCUED
    base.mkdir(exist_ok=True)
    for stale in base.glob("*.partial"):  # an interrupted rescue: its sources are still here
        shutil.rmtree(stale, ignore_errors=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    final = base / stamp
    n = 1
    while final.exists():
        n += 1
        final = base / f"{stamp}-{n}"
    partial = final.with_name(final.name + ".partial")
    partial.mkdir()
    manifest: list[dict] = []
    skipped: list[dict] = []
    for finding in work:
        why = finding.detail if finding.detail.startswith("special") else _copy_one(finding.path, partial, manifest)
        if why:
            skipped.append({"path": finding.path, "why": why})
    if packages:
        (partial / "environment-changes.txt").write_text(
            "# Packages installed by hand in the container (lost with it).\n"
            "# Add the pip ones to requirements.txt to have them in the image.\n" + "\n".join(packages) + "\n"
        )
    (partial / "MANIFEST.json").write_text(
        json.dumps({"project": audit.project, "container": audit.container, "rescued_at": stamp, "files": manifest,
                    "skipped": skipped, "packages": packages, "from": "inside the container"}, indent=1)
    )
    os.replace(partial, final)  # only a complete rescue carries a final name
    return Rescue(str(final), len(manifest), sum(m["size"] for m in manifest), skipped, packages)


def known_quota(limits: dict | None) -> int | None:
    """storage_workspace from the limits the hub handed in, if any."""
    value = (limits or {}).get("storage_workspace")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

