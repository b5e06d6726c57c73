"""Rescue from inside a project's container: work files at risk copied into /workspace/.rescued/.

The host's guard reads the container through the engine; in here the files are
simply on the local filesystem, so they are copied with plain reads, opened
without following links (a link made in /tmp cannot pull in a file from
elsewhere). The layout and the answer are the host's (``Guard.rescue``):
``.rescued/<UTC time>/<absolute path>``, a MANIFEST.json, a ``.partial``
folder until the copy is complete.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..core.disk import tree_size
from ..core.findings import Audit
from ..core.rescue import Rescue, ensure_room, rescue_selection
from ..core.rescue_writer import RescueWriter


def _copy_one(path: str, writer: RescueWriter) -> str | None:
    """Copy one regular file (a link is kept as a link); return why not, or None when copied."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        if os.path.islink(path):
            writer.add_link(path, os.readlink(path))
            return None
        return (
            "vanished before it could be copied" if not os.path.lexists(path) else f"could not be read ({err.strerror})"
        )
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        writer.add_file(path, fh, st.st_mode, st.st_mtime)
    return None


def rescue_inside(audit: Audit, workspace: Path, quota: int | None = None) -> Rescue:
    """Copy the audit's work files into ``<workspace>/.rescued/<UTC time>/<absolute path>``."""
    work, packages = rescue_selection(audit)
    copy = [f for f in work if not f.detail.startswith(("special", "could not"))]
    # Only this project is visible in here, so the quota is checked against its size alone.
    budget = ensure_room(
        workspace, copy, quota, lambda: tree_size(workspace).bytes, used_by=" by this project",
        quota_hint="Free space in /workspace (e.g. old checkpoints: prune them), or let the hub rescue on stop.",
        disk_hint="Free disk space in /workspace, then try again; nothing was copied.",
    )
    writer = RescueWriter(workspace, budget)
    try:
        chosen = {id(f) for f in copy}
        for finding in work:
            why = finding.detail if id(finding) not in chosen else _copy_one(finding.path, writer)
            if why:
                writer.skip(finding.path, why)
        result = writer.publish(audit.project, audit.container, packages, **{"from": "inside the container"})
    except BaseException:
        writer.abort()
        raise
    return Rescue(result["folder"], result["files"], result["bytes"], result["skipped"], result["packages"])


def known_quota(limits: dict | None) -> int | None:
    """storage_workspace from the limits the hub handed in, if any."""
    value = (limits or {}).get("storage_workspace")
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

