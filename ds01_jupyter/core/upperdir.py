"""A container's changes read from its overlay upper directory: one walk, no engine call.

``docker diff`` walks the same directory inside dockerd and sends every path as JSON,
and the guard then had to stat each path again inside the container. A process that
may read the upper directory (root: ds01d, the hub, a Jupyter server run by root, on
the engine's own machine) walks it once and gets each entry's type, size and mode
with it. The engine's rules (moby's OverlayChanges, as ``docker diff`` answers on
overlay2) are kept: a character device 0:0 is a whiteout (a deletion); a directory
marked opaque (``trusted.overlay.opaque`` = y) hides what the image had there, each
hidden entry a deletion; an entry is changed (C) rather than added (A) when an image
layer has that path; a folder copied up to hold a change shows as changed.

The directory holds what the user's container wrote. Nothing is read but metadata,
no link is ever followed (in the upper directory or in the image's layers: the
engine's own walk follows links of the layers on the host, so an entry whose layer
path is a link may be C here and A there, which changes no finding), every step is
relative to a directory descriptor, and names are kept whole whatever bytes they
hold (str with surrogate escapes). What the engine cannot walk either (a path longer
than PATH_MAX on the host) or a tree deeper than ``DEPTH`` raises Unreadable: the
caller then asks the engine, as before.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

#: Folders held open at once while walking (one per level); deeper trees go to the engine.
DEPTH = 256
PATH_MAX = 4096
OPAQUE = "trusted.overlay.opaque"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IFMT = 0o170000  # stat.S_IFMT as a mask: no call per entry


class Unreadable(Exception):
    """The upper directory cannot be read here, or not as the engine would read it."""


@dataclass
class LayerChanges:
    """What ``docker diff`` answers, and each listed entry's (size, file type) with it."""

    changes: list[tuple[str, str]] = field(default_factory=list)
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)


def locate(engine, record) -> tuple[str, tuple[str, ...]]:
    """(upper dir, image layer dirs) of a container whose layer this process can read, else Unreadable (why)."""
    if record.storage_driver not in ("overlay2", "overlay") or not record.upper_dir.startswith("/"):
        raise Unreadable(f"the storage driver is {record.storage_driver or 'unknown'}, not overlay2")
    if not getattr(engine, "local", False):
        raise Unreadable("the engine is not on this machine")
    upper = record.upper_dir
    if record.running and record.pid:
        # The engine's paths are in its own mount namespace: the container's root mount must name this upper dir.
        try:
            with open(f"/proc/{record.pid}/mountinfo", "rb") as fh:
                lines = fh.read(1 << 20).decode("utf-8", "surrogateescape").splitlines()
        except OSError as err:
            raise Unreadable(f"its processes cannot be seen from here ({err.strerror})") from None
        root = [line for line in lines if line.split(" ")[4:5] == ["/"] and " - overlay " in line]
        options = root[-1].rsplit(" ", 1)[-1].split(",") if root else []
        named = next((o[9:] for o in options if o.startswith("upperdir=")), None)
        if named is None or not (named == upper or (not named.startswith("/") and upper.endswith("/" + named))):
            raise Unreadable("its root is not the engine's upper directory as seen from here")
    try:
        fd = os.open(upper, _DIR)
    except OSError as err:
        raise Unreadable(f"{upper}: {err.strerror}") from None
    os.close(fd)
    return upper, record.lower_dirs


def layers_hold(layers: tuple[str, ...], path: str) -> bool | None:
    """Whether any of an image's layer folders has ``path`` (relative, e.g. "dev/x"), read without following a
    link; None when that cannot be told here (no layers known, or one that this process cannot read)."""
    if not layers:
        return None
    *folders, name = path.split("/")
    for layer in layers:
        try:
            fds = [os.open(layer, _DIR)]
        except OSError:
            return None
        try:
            for part in folders:
                found = _open_in(fds[-1:], part)
                if not found:
                    break
                fds += found
            else:
                if _lookup(fds[-1:], name) is not None:
                    return True
        except OSError:
            return None
        finally:
            for fd in fds:
                os.close(fd)
    return False


def walk(upper: str, lowers: tuple[str, ...] = (), leave_out: frozenset[str] = frozenset()) -> LayerChanges:
    """The changes of an upper directory against its image layers (see the module's docstring).

    ``leave_out``: paths listed neither themselves nor with what is below them (a mount point such as /workspace).
    """
    out = LayerChanges()
    room = PATH_MAX - len(os.fsencode(upper)) - 1  # the engine's walk names each entry by its host path
    try:
        top = os.open(upper, _DIR)
    except OSError as err:
        raise Unreadable(f"{upper}: {err.strerror}") from None
    layers = []
    try:
        for lower in lowers:
            try:
                layers.append(os.open(lower, _DIR))
            except OSError:
                continue  # a layer removed meanwhile: the engine would fail, the container is going
        _walk(top, layers, room, out, leave_out)
    except OSError as err:
        raise Unreadable(f"walking it failed ({err.strerror or err})") from None
    finally:
        for fd in [top, *layers]:
            os.close(fd)
    return out


def _lookup(layers: list[int], name: str):
    """The lstat of ``name`` in the first layer folder that has it, else None."""
    for fd in layers:
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
    return None


def _walk(top: int, top_layers: list[int], room: int, out: LayerChanges, leave_out: frozenset[str]) -> None:
    """Depth first, each folder's entries listed once; the layers' fds of a folder are closed on the way back.

    Every folder of the upper directory is listed itself (A, or C when an image layer has it), so an addition or
    deletion inside it needs no entry of its own for the folder.
    """
    changes, stats = out.changes, out.stats
    listed = changes.append

    def folder(fd: int, here: str, layers: list[int], depth: int) -> None:
        entries = list(os.scandir(fd))
        if here and layers and _opaque(fd):  # nothing below an opaque folder shows through; each hidden name is gone
            present = {e.name for e in entries}
            for name in sorted({n for f in layers for n in os.listdir(f)} - present):
                listed((f"{here}/{name}", "D"))
            layers = []
        prefix = here + "/"
        for entry in entries:
            name = entry.name
            path = prefix + name
            if leave_out and path in leave_out:
                continue
            if len(path) * 4 >= room and len(os.fsencode(path)) >= room:  # 4 bytes a character at most
                raise Unreadable("a path is longer than the engine can name")
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while walking
            mode = st.st_mode & _IFMT
            if mode == stat.S_IFCHR and st.st_rdev == 0:
                listed((path, "D"))
                continue
            below = _lookup(layers, name) if layers else None
            stats[path] = (st.st_size, mode)
            listed((path, "A" if below is None else "C"))
            if mode != stat.S_IFDIR:
                continue
            if depth >= DEPTH:
                raise Unreadable(f"a tree deeper than {DEPTH} folders")
            try:
                child = os.open(name, _DIR, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # replaced while walking
                raise
            try:
                child_layers = _open_in(layers, name) if below is not None else []
                try:
                    folder(child, path, child_layers, depth + 1)
                finally:
                    for f in child_layers:
                        os.close(f)
            finally:
                os.close(child)

    folder(top, "", top_layers, 1)


def _open_in(layers: list[int], name: str) -> list[int]:
    """The layers' folders of that name (links never followed)."""
    found = []
    for fd in layers:
        try:
            found.append(os.open(name, _DIR, dir_fd=fd))
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                for f in found:
                    os.close(f)
                raise
    return found


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE) == b"y"
    except OSError:
        return False
