"""Writing a rescue into ``<project>/.rescued/<UTC time>/``, safe against links the container controls.

The project folder is mounted into the container, so everything under it may be
changed by the container while we write: ``.rescued`` may become a link to
another user's home, a folder of the copy may be swapped for a link halfway.
So every write goes through directory file descriptors, each folder is opened
with ``O_NOFOLLOW`` and each file is created with ``O_EXCL | O_NOFOLLOW``: a
path is never resolved twice and no link is ever followed. And it is done with
the user's own uid: when the caller is root (the hub's spawner, the reaper, the
service), the writing thread takes the user's filesystem uid, gid and groups
for every step (:func:`writer_for`), so even a path we got wrong
could only reach what the user may write anyway, and nothing the user cannot
remove is left behind.

The copy is bounded: it stops with a clear error when it would allocate more
than the room the caller checked (the quota and the disk), or when the disk
fills up, and then removes the incomplete ``.partial`` folder.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .errors import DiskFull, Forbidden, InvalidRequest, QuotaExceeded
from .identity import Identity, check_supported
from .limits import format_size

RESCUED = ".rescued"
STALE = timedelta(minutes=30)
BLOCK = 4096
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def allocation(size: int) -> int:
    """What one file allocates on disk (whole blocks, at least one: an empty file costs an inode and a block)."""
    return max(BLOCK, -(-size // BLOCK) * BLOCK)


def _odd(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise InvalidRequest(f"Refusing to write odd path {path!r}.")
    return parts


def _full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


class RescueWriter:
    """One rescue being written: a ``.partial`` folder until :meth:`publish` gives it its final name."""

    def __init__(self, project_path: str | os.PathLike, budget: int | None = None):
        self.project_path = Path(project_path)
        self.budget = budget
        self.allocated = 0
        self.manifest: list[dict] = []
        self.skipped: list[dict] = []
        try:
            self.project_fd = os.open(self.project_path, DIR_FLAGS)
        except OSError as err:
            raise Forbidden(f"Cannot open the project folder {self.project_path} to rescue into it "
                            f"({err.strerror}).", hint="It must be a real folder of yours, not a link.") from None
        self._chain: list[tuple[str, int]] = []
        try:
            self.base_fd = self._subdir(self.project_fd, RESCUED, create=True, what=f"{self.project_path}/{RESCUED}")
            stale = (datetime.now(timezone.utc) - STALE).strftime("%Y%m%dT%H%M%SZ")
            for name in os.listdir(self.base_fd):
                # An interrupted rescue (its sources are still in the container); one younger than STALE may be
                # a rescue of this project running right now, and is left alone.
                if name.endswith(".partial") and name[:16] < stale:
                    shutil.rmtree(name, dir_fd=self.base_fd, ignore_errors=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self.stamp, n = stamp, 1
            while True:
                self.final = stamp if n == 1 else f"{stamp}-{n}"
                n += 1
                if self._exists(self.final):
                    continue
                try:
                    os.mkdir(self.final + ".partial", 0o700, dir_fd=self.base_fd)
                    break
                except FileExistsError:
                    continue
            self.partial_fd = self._subdir(
                self.base_fd, self.final + ".partial", create=False, what="the rescue folder"
            )
        except BaseException:
            self._close_all()
            raise

    def _exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.base_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    @property
    def folder(self) -> str:
        return str(self.project_path / RESCUED / self.final)

    # -- folders by descriptor ----------------------------------------------------------------
    @staticmethod
    def _subdir(parent_fd: int, name: str, create: bool, what: str) -> int:
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass
            except OSError as err:
                if _full(err):
                    raise DiskFull(f"No room left to create {what}.", hint="Free disk space, then try again.") from None
                raise
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Forbidden(
                    f"{what} is a link or not a folder; refusing to write through it.",
                    hint="Rename or remove it (it may have been made inside the container), then rescue again.",
                ) from None
            raise

    def _folder_of(self, parts: list[str]) -> int:
        """The fd of the folder holding ``parts[-1]``, created as needed; the last chain is reused."""
        wanted = parts[:-1]
        keep = 0
        while keep < len(self._chain) and keep < len(wanted) and self._chain[keep][0] == wanted[keep]:
            keep += 1
        for _name, fd in self._chain[keep:]:
            os.close(fd)
        del self._chain[keep:]
        fd = self._chain[-1][1] if self._chain else self.partial_fd
        for name in wanted[keep:]:
            fd = self._subdir(fd, name, create=True, what="a folder of the rescue")
            self._chain.append((name, fd))
            self._charge(BLOCK, name)
        return fd

    def _charge(self, nbytes: int, path: str) -> None:
        self.allocated += nbytes
        if self.budget is not None and self.allocated > self.budget:
            raise QuotaExceeded(
                f"The rescue stopped at {path}: it would allocate more than the {format_size(self.budget)} of room "
                "that was checked before copying (files grew meanwhile, or many small files).",
                hint="Free space in ~/workspace (e.g. `ds01 prune`), or discard explicitly. Nothing was kept.",
                limit="storage_workspace",
            )

    # -- entries ----------------------------------------------------------------------------
    def add_file(
        self, path: str, source, mode: int = 0o644, mtime: float | None = None, size: int | None = None
    ) -> None:
        """Copy ``source`` (bytes or a readable file) to ``<rescue>/<path>``, never through a link."""
        parts = _odd(path)
        folder = self._folder_of(parts)
        try:
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
        except FileExistsError:
            self.skipped.append({"path": path, "why": "listed twice; copied once"})
            return
        digest, written, charged = hashlib.sha256(), 0, allocation(0)
        try:
            self._charge(charged, path)
            stream = io.BytesIO(source) if isinstance(source, bytes) else source
            with os.fdopen(fd, "wb", closefd=False) as out:
                while chunk := stream.read(1 << 20):
                    written += len(chunk)
                    self._charge(allocation(written) - charged, path)  # before the bytes reach the disk
                    charged = allocation(written)
                    out.write(chunk)
                    digest.update(chunk)
                out.flush()
                os.fsync(fd)
            os.fchmod(fd, (mode & 0o777) | 0o600)  # & 0o777: never setuid, setgid or sticky
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
        except OSError as err:
            if _full(err):
                raise DiskFull(f"The disk filled up while rescuing {path}.",
                               hint="Free disk space, then rescue again; nothing was kept and the container "
                                    "is untouched.") from None
            raise
        finally:
            os.close(fd)
        self.manifest.append({"path": path, "size": written, "sha256": digest.hexdigest()})

    def add_link(self, path: str, target: str) -> None:
        """Keep a link as a link (never followed, now or later)."""
        parts = _odd(path)
        folder = self._folder_of(parts)
        try:
            os.symlink(target, parts[-1], dir_fd=folder)
        except FileExistsError:
            return
        self._charge(BLOCK, path)
        self.manifest.append({"path": path, "size": 0, "sha256": None, "link": target})

    def skip(self, path: str, why: str) -> None:
        self.skipped.append({"path": path, "why": why})

    def _write_small(self, name: str, text: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=self.partial_fd)
        with os.fdopen(fd, "w") as out:
            out.write(text)

    def publish(self, project: str, container: str, packages: list[str], **extra) -> dict:
        """Write the manifest (and the packages installed by hand), then give the folder its final name."""
        try:
            if packages:
                self._write_small("environment-changes.txt",
                                  "# Packages installed by hand in the container (lost with it).\n"
                                  "# Add the pip ones to requirements.txt to have them in the image.\n"
                                  + "\n".join(packages) + "\n")
            self._write_small("MANIFEST.json", json.dumps(
                {"project": project, "container": container, "rescued_at": self.stamp, "files": self.manifest,
                 "skipped": self.skipped, "packages": packages, **extra}, indent=1, default=str))
            os.rename(self.final + ".partial", self.final, src_dir_fd=self.base_fd, dst_dir_fd=self.base_fd)
        except OSError as err:  # the caller's abort() removes the .partial folder
            if _full(err):
                raise DiskFull(
                    "The disk filled up while finishing the rescue.", hint="Free disk space, then rescue again."
                ) from None
            raise
        self._close_all()
        return {"folder": self.folder, "files": len(self.manifest), "bytes": sum(m["size"] for m in self.manifest),
                "skipped": self.skipped, "packages": packages}

    def abort(self) -> None:
        """Remove the incomplete copy (it is the user's own, written with their uid)."""
        try:
            if self.base_fd is not None:  # None: already published or aborted
                shutil.rmtree(self.final + ".partial", dir_fd=self.base_fd, ignore_errors=True)
        finally:
            self._close_all()

    def _close_all(self) -> None:
        for _name, chained in self._chain:
            os.close(chained)
        self._chain = []
        for attr in ("partial_fd", "base_fd", "project_fd"):
            fd = getattr(self, attr, None)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)


class _AsUser:
    """A :class:`RescueWriter` whose every step runs with the user's filesystem identity (root callers)."""

    def __init__(self, project_path: Path, budget: int | None, uid: int, gid: int):
        self.identity = Identity(uid, gid)
        with self.identity:
            self.writer = RescueWriter(project_path, budget)

    def __getattr__(self, name):
        attr = getattr(self.writer, name)
        if not callable(attr):
            return attr

        def as_user(*args, **kwargs):
            with self.identity:
                return attr(*args, **kwargs)

        return as_user


def writer_for(user, project_path: Path, budget: int | None):
    """A writer acting with ``user``'s uid: as we are when that is who we are, else with their identity."""
    if os.geteuid() != 0 or user.uid == 0:
        return RescueWriter(project_path, budget)
    check_supported()
    return _AsUser(project_path, budget, user.uid, user.gid)
