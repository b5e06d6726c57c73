"""Whether a container on another machine has the user's project folder at /workspace, without its /proc.

After a start made by root for a user, the core compares the container's /workspace with the project folder
(containers.check_mounted_workspace). On this machine it stats ``/proc/<pid>/root/workspace``; a container on
another cluster node has its pid in that node's /proc. There, the proof goes through the node's engine instead: an
unguessable file is written into the project folder (as the user, never through a link; the folder is the same
on every node: shared /home), then read back from the container's /workspace through the engine's archive API
(run by the node's engine, not by anything of the image). Only a container that has this very folder at
/workspace can show it: another folder mounted in its place (a link swapped in while it started) cannot hold a
file whose name and content were drawn a moment ago, unless the user could write there herself, which gives her
nothing she did not have.
"""

from __future__ import annotations

import os
import secrets
import tarfile
from pathlib import Path

from .engine import ContainerEngine, ContainerRecord
from .errors import DS01Error
from .identity import acting_as
from .users import User


def mismatch(engine: ContainerEngine, user: User, record: ContainerRecord, folder: Path) -> str:
    """Why ``record``'s /workspace is not ``folder`` (checked through the engine); "" when it is."""
    token = secrets.token_hex(16).encode()
    name = f".ds01-workspace-proof-{secrets.token_hex(8)}"
    try:
        with acting_as(user):  # her folder as she reaches it
            folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        return f"its project folder {folder} cannot be opened as a real folder ({err.strerror})"
    try:
        try:
            with acting_as(user):  # the user's own file in her own folder, never through a link
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=folder_fd)
        except OSError as err:
            return f"its project folder {folder} cannot take the check's file ({err.strerror})"
        try:
            try:
                os.write(fd, token)
            finally:
                os.close(fd)
            seen = _read(engine, record.id, f"/workspace/{name}")  # with our own rights: the engine's socket
        finally:
            with acting_as(user):
                os.unlink(name, dir_fd=folder_fd)
    finally:
        os.close(folder_fd)
    if seen != token:
        return f"its /workspace is not the project folder {folder} (a link swapped in while it started?)"
    return ""


def _read(engine: ContainerEngine, container: str, path: str) -> bytes | None:
    try:
        stream = engine.read_archive(container, path)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            member = next(iter(tar), None)
            if member is None or not member.isfile() or member.size > 64:
                return None
            data = tar.extractfile(member)
            return data.read(64) if data is not None else None
    except (DS01Error, tarfile.TarError):
        return None
