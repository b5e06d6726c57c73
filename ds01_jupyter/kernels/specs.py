"""One kernel spec per deployed project: "Python 3 (<project> container)".

Specs are ordinary kernel spec folders in the user's Jupyter data dir
(``jupyter --data-dir``/kernels), named ``ds01-<project>``, written when a
project gets a container and removed when it is retired, by the server
extension and by the command line alike (:func:`write_spec`,
:func:`remove_spec`). Being files, they survive a server restart and work from
any Jupyter client: those that know kernel provisioners use ours; those that
run the spec's ``argv`` themselves run our launcher, which starts the kernel in
the container too (never a host kernel under the container's name).

Writes go through folder descriptors opened without following links, and
kernel.json is replaced by a rename: a link planted at ``kernels``,
``ds01-<project>`` or ``kernel.json`` is never written through.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import stat
import sys
import threading
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

from ..core.errors import DS01Error, Forbidden

PREFIX = "ds01-"
PROVISIONER = "ds01-container"
SPEC_FILE = "kernel.json"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def spec_for(project: str) -> dict:
    """The kernel spec of ``project``.

    Its argv is our launcher, so a client that ignores provisioners and runs argv itself still gets
    the kernel in the container (see :mod:`ds01_jupyter.kernels.launch`).
    """
    return {
        "argv": [sys.executable, "-m", "ds01_jupyter.kernels.launch", "--project", project, "-f", "{connection_file}"],
        "display_name": f"Python 3 ({project} container)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {"provisioner_name": PROVISIONER, "config": {"project": project}},
            "ds01": {"project": project},
        },
    }


def kernels_dir() -> Path:
    """The user's kernel spec folder (JUPYTER_DATA_DIR, else the platform's data dir)."""
    return Path(jupyter_data_dir()) / "kernels"


def _refuse(path: Path, err: OSError) -> Forbidden:
    reason = "it is a link or not a folder" if err.errno in (errno.ELOOP, errno.ENOTDIR) else err.strerror
    return Forbidden(
        f"Cannot write the kernel spec at {path}: {reason}.",
        hint="Kernel specs are written only into real folders of your Jupyter data dir; remove the link.",
    )


def _open_kernels(folder: Path, create: bool) -> int | None:
    """An fd of the kernels folder, or None when there is none and ``create`` is false.

    The data dir above it is the user's configuration (JUPYTER_DATA_DIR, XDG_DATA_HOME, HOME) and is
    followed as set; ``kernels`` itself must be a real folder.
    """
    try:
        if create:
            folder.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(folder, 0o755)
            except FileExistsError:
                pass
        parent = os.open(folder.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return os.open(folder.name, _DIR, dir_fd=parent)
        finally:
            os.close(parent)
    except FileNotFoundError:
        if create:
            raise _refuse(folder, FileNotFoundError(errno.ENOENT, "it vanished while being made")) from None
        return None
    except OSError as err:
        raise _refuse(folder, err) from None


def _read_spec(kernels_fd: int, name: str) -> dict | None:
    """The kernel.json of ``name`` under the open kernels folder, without following links; None if unreadable."""
    try:
        folder = os.open(name, _DIR, dir_fd=kernels_fd)
    except OSError:
        return None
    try:
        fd = os.open(SPEC_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        try:
            data = json.loads(handle.read(1 << 20))
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def _project_of(spec: dict | None) -> str | None:
    try:
        return spec["metadata"]["ds01"]["project"] if spec else None
    except (KeyError, TypeError):
        return None


def write_spec(project: str, folder: Path | None = None) -> Path:
    """Write (or bring up to date) the kernel spec of ``project``; return its folder."""
    folder = folder or kernels_dir()
    name = PREFIX + project
    text = json.dumps(spec_for(project), indent=1).encode()
    kfd = _open_kernels(folder, create=True)
    try:
        try:
            os.mkdir(name, 0o755, dir_fd=kfd)
        except FileExistsError:
            pass
        try:
            sfd = os.open(name, _DIR, dir_fd=kfd)
        except OSError as err:
            raise _refuse(folder / name, err) from None
        try:
            tmp = f".{SPEC_FILE}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=sfd)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(text)
                # rename replaces whatever kernel.json is (a link included) instead of writing through it
                os.rename(tmp, SPEC_FILE, src_dir_fd=sfd, dst_dir_fd=sfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=sfd)
                except OSError:
                    pass
                raise
        finally:
            os.close(sfd)
    except OSError as err:
        raise _refuse(folder / name, err) from None
    finally:
        os.close(kfd)
    return folder / name


def remove_spec(project: str, folder: Path | None = None) -> bool:
    """Remove the kernel spec of ``project`` if it is ours; return whether one was removed."""
    folder = folder or kernels_dir()
    name = PREFIX + project
    kfd = _open_kernels(folder, create=False)
    if kfd is None:
        return False
    try:
        if _project_of(_read_spec(kfd, name)) != project:
            return False  # not there, a link, or not one of ours: left alone
        try:
            sfd = os.open(name, _DIR, dir_fd=kfd)
        except FileNotFoundError:
            return False  # removed meanwhile (another process's sync)
        try:
            for entry in os.listdir(sfd):
                try:
                    os.unlink(entry, dir_fd=sfd)
                except IsADirectoryError:
                    pass  # a folder someone added: rmdir below fails and the spec stays visible
                except FileNotFoundError:
                    pass
        finally:
            os.close(sfd)
        try:
            os.rmdir(name, dir_fd=kfd)
        except FileNotFoundError:
            return False  # removed meanwhile
        except OSError as err:
            raise _refuse(folder / name, err) from None
        return True
    finally:
        os.close(kfd)


def present(folder: Path | None = None) -> dict[str, dict]:
    """The ds01 kernel specs there now: project -> spec."""
    folder = folder or kernels_dir()
    kfd = _open_kernels(folder, create=False)
    if kfd is None:
        return {}
    found = {}
    try:
        for name in os.listdir(kfd):
            if name.startswith(PREFIX):
                spec = _read_spec(kfd, name)
                project = _project_of(spec)
                if project and name == PREFIX + project:
                    found[project] = spec
    finally:
        os.close(kfd)
    return found


class KernelSpecs:
    """The server extension's view: specs follow the user's containers."""

    def __init__(self, core, user, log: logging.Logger | None = None, kernels_dir: Path | None = None):
        self.core = core
        self.user = user
        self.log = log or logging.getLogger("ds01_jupyter.kernels")
        self._dir = kernels_dir
        #: One sync at a time: the events thread and a request's handler may both sync after one deploy.
        self._syncing = threading.Lock()

    @property
    def kernels_dir(self) -> Path:
        return self._dir or kernels_dir()

    def present(self) -> set[str]:
        """Projects that have a ds01 kernel spec now."""
        return set(present(self.kernels_dir))

    def sync(self) -> set[str]:
        """Make the specs match the projects that have a container; return those projects."""
        with self._syncing:
            wanted = {c.project for c in self.core.containers.list(self.user)}
            have = present(self.kernels_dir)
            for project in wanted:
                self._write(project, have)
            for project in set(have) - wanted:
                remove_spec(project, self.kernels_dir)
            return wanted

    def deployed(self, project: str) -> None:
        """The spec of ``project``, which a deploy just gave a container, written unless it is there: what a sync
        would do for it, without listing the engine's containers (the deploy's event makes the whole sync)."""
        try:
            with self._syncing:
                self._write(project, present(self.kernels_dir))
        except (DS01Error, OSError) as err:
            self.log.info("ds01: the kernel spec of %s was not written: %s", project, err)

    def _write(self, project: str, have: dict[str, dict]) -> None:
        """Write the spec of ``project`` unless ``have`` (the specs there) holds it as it is now."""
        if have.get(project) != spec_for(project):  # missing, or written by another version or interpreter
            write_spec(project, self.kernels_dir)

    def sync_quietly(self) -> None:
        """Sync, but never fail the caller: with the engine down the specs stay as they were."""
        try:
            self.sync()
        except (DS01Error, OSError) as err:
            self.log.info("ds01: kernel specs not synced: %s", err)

    def on_event(self, event: dict) -> None:
        if event.get("type") == "container" and event.get("action") in ("create", "destroy"):
            self.sync_quietly()
