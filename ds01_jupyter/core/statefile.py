"""Small files of state the core keeps on disk (idle records, sizes, audits).

Written by rename, so a reader never sees half a file and two writers never
share a temporary name; read leniently, since a missing or damaged record only
means "not known yet". They live in users' homes, which users control: when
root keeps them for a user (the hub, the reaper), both directions run with that
user's identity (:func:`acting_as`), the temporary file is created exclusively
under a random name without following links, and a read opens only a regular
file, without blocking, and at most ``MAX_BYTES`` of it.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

from .identity import acting_as

MAX_BYTES = 16 * 2**20


def write_atomic(path: Path, text: str, user=None) -> None:
    """Replace ``path`` with ``text`` in one rename; raise OSError (nothing half-written) on failure."""
    with acting_as(user):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise


def remove(path: Path, user=None) -> bool:
    """Remove ``path`` as ``user``; whether it went. Root removing by a path in her home would follow a link she
    made of a folder on it (to /etc/docker, say) and remove a file of the same name there."""
    try:
        with acting_as(user):
            os.unlink(path)
    except OSError:
        return False
    return True


def read_json(path: Path, user=None):
    """The JSON in ``path``, or None when it is missing, unreadable, not a regular file or too big."""
    try:
        with acting_as(user):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
                return None
            return json.loads(fh.read(MAX_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
