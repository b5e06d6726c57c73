"""A kernel process inside a project's container: where it starts, how it starts, how it is signalled.

Shared by the provisioner (jupyter_client's way, used by Jupyter Server, nbconvert
and ``KernelManager``) and the launcher in the spec's ``argv`` (for front ends
that run ``argv`` themselves), so both start the very same kernel. Blocking
engine calls only; the provisioner runs them off its event loop.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import struct
import sys
import threading
from importlib import resources
from pathlib import Path

from ..core import DS01, User
from ..core.engine import ContainerRecord
from ..core.errors import ContainerNotFound, InvalidRequest, StateConflict
from ..core.projects import Project

LAUNCHER = "/tmp/.ds01/kernel_launcher.py"

#: Variables passed from the client to a kernel in a container; the rest of the
#: host's environment (PATH, HOME...) means nothing there.
#: Set by a one-shot client: the kernel ends with its connection (hook.py, end_with_client); its value is the
#: seconds between SIGTERM and SIGKILL then.
TIED = "DS01_KERNEL_TIED"
PASSED_ENV = ("JPY_SESSION_NAME", "JPY_PARENT_PID", "PYTHONUNBUFFERED", "LANG", "LC_ALL", "TZ", TIED)


#: A kernel's five ports, in the order ``ContainerKernels.attach`` takes them.
PORTS = ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port")


def client_env(variables, tied_to=None) -> list[str]:
    """The "NAME=value" words of a client's ``variables`` a kernel gets (PASSED_ENV; never the client's own
    TIED); with ``tied_to`` (the client's core), the kernel ends with the client, after the stop grace of running
    work (hook.py, end_with_client)."""
    words = [f"{k}={v}" for k, v in variables.items() if k in PASSED_ENV and k != TIED]
    if tied_to is not None:
        words.append(f"{TIED}={max(1.0, float(tied_to.settings.stop_grace_seconds)):g}")
    return words


def inner_files(kernel_id: str) -> tuple[str, str]:
    """The connection file and pid file of a kernel inside the container."""
    base = f"/tmp/.ds01/kernel-{kernel_id}"
    return f"{base}.json", f"{base}.pid"


def host_cwd(cwd: str | os.PathLike | None) -> str:
    """The client's folder for ``cwd``: relative to the client's own folder, empty meaning that folder.

    This is what a kernel started on the host would get as its working directory
    (``subprocess.Popen(cwd=...)`` resolves a relative path against the caller's
    folder, and no ``cwd`` inherits it): ``nbconvert --execute probe.ipynb`` passes
    no ``cwd`` at all, ``nbconvert notebooks/probe.ipynb`` passes ``notebooks``.
    """
    here = os.getcwd()
    return os.path.normpath(os.path.join(here, os.fspath(cwd))) if cwd else here


def workspace_path(cwd: str | os.PathLike | None, project_path: Path) -> tuple[str, str | None]:
    """Map the client's folder to its path under /workspace, with a note when it lies outside the project."""
    folder = host_cwd(cwd)
    try:
        rel = Path(folder).resolve().relative_to(project_path.resolve())
    except ValueError:
        return (
            "/workspace",
            f"{folder} is not inside the project folder {project_path}; the kernel starts at /workspace",
        )
    return ("/workspace" if str(rel) == "." else f"/workspace/{rel.as_posix()}"), None


def running_container(core: DS01, user: User, project: str) -> tuple[Project, ContainerRecord]:
    """The project and its running container, or a DS01Error that says what to do first."""
    found = core.projects.get(user, project)
    try:
        record = core.containers.record(user, project)
    except ContainerNotFound:
        raise StateConflict(
            f"Project {project!r} is not deployed: deploy first (ds01 sidebar, or "
            f"`container-deploy {project}`), then start this kernel again.",
            project=project,
        ) from None
    if not record.running:
        raise StateConflict(
            f"The container of {project!r} is {record.state}: start it first "
            f"(`container-start {project}`), then start this kernel again.",
            project=project,
        )
    return found, record


def in_container_argv(kernel_id: str, extra_arguments: list[str] | None = None) -> list[str]:
    """The kernel's command inside the container: our hook-installing launcher, on the copied connection file."""
    return ["python3", LAUNCHER, "-f", inner_files(kernel_id)[0], *(extra_arguments or [])]


def _prepare(core: DS01, user: User, container_id: str, kernel_id: str, connection_info: dict,
             env: dict[str, str] | None) -> tuple[list[str], dict[str, str]]:
    """Copy the launcher and the connection file in; the wrapper that records the kernel's pid, and its env."""
    inner_file, pid_file = inner_files(kernel_id)
    # /tmp/.ds01 is shared by the user's kernels and the guard's write log: sticky. It is made through the
    # engine's archive API, never by a command run as root in the container: a root `mkdir`/`chmod` there
    # would follow a link the user planted (e.g. to /usr/local/sbin) and hand them a root-run folder. The
    # archive API follows links too (in the destination's path), though only inside the container's root, where
    # the user's image decides everything but /workspace, her project folder: so what it writes is hers, and
    # a /tmp that her image made a link to /workspace gets her files there, never root's she cannot remove.
    hook = resources.files("ds01_jupyter.kernels").joinpath("hook.py").read_bytes()
    info = dict(connection_info)
    info["ip"] = "0.0.0.0"
    info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
    # One engine call (each is an archive extracted by a process the engine starts, ~35 ms).
    core.engine.put_tree(container_id, "/tmp", [
        (".ds01", None, 0o1777),
        (LAUNCHER.removeprefix("/tmp/"), hook, 0o644),
        (inner_file.removeprefix("/tmp/"), json.dumps(info).encode(), 0o600),
    ], user.uid, user.gid)
    passed = {k: v for k, v in (env or {}).items() if k in PASSED_ENV}
    passed["DS01_KERNEL_ID"] = kernel_id
    # No kernel without its pid file (a full disk): one nobody could signal or end would run on. The pid is said
    # first on stderr too, read off the attached stream (_pid): no engine call (an exec is ~0.1 s) to learn it.
    return ["sh", "-c", f'echo $$ > {pid_file} && echo "{PID_LINE} $$" >&2 && exec "$@"', "sh"], passed


#: The first line of a kernel's stderr, before its own output: its wrapper's pid (``_prepare``).
PID_LINE = "ds01-kernel-pid"
#: Docker's frame head on an attached stream without a terminal: stream (1 stdout, 2 stderr), 3 zero bytes, length.
FRAME_HEAD = struct.Struct(">BxxxL")
#: The most of the wrapper's output read for it: what an image's own sh may say before giving up.
PID_READ_MAX = 4096


def _pid(stream: socket.socket, container_id: str, timeout: float = 60.0) -> int:
    """The kernel's pid, read frame by frame (FRAME_HEAD, then the bytes) off the attached stream
    up to the wrapper's line and no further: what follows is the kernel's own output, for whoever drains it."""
    said = b""
    stream.settimeout(timeout)
    try:
        while _pid_in(said) is None and len(said) < PID_READ_MAX:
            head = _exactly(stream, FRAME_HEAD.size)
            if len(head) < FRAME_HEAD.size:
                break  # the wrapper ended: its pid file could not be written (it said why)
            kind, size = FRAME_HEAD.unpack(head)
            data = _exactly(stream, min(size, PID_READ_MAX))
            if kind == 2:
                said += data
            if len(data) < size:
                break
    except OSError:
        pass  # timed out or cut: said below
    finally:
        stream.settimeout(None)
    pid = _pid_in(said)
    if pid is not None:
        return pid
    line = said.decode("utf-8", "replace").strip().splitlines()[:1]
    raise StateConflict(f"The kernel did not start inside container {container_id[:12]}"
                        + (f": {line[0][:300]}" if line else "."))


def _pid_in(said: bytes) -> int | None:
    """The pid of the wrapper's line among the lines said so far (an image's shell may say others first, e.g.
    through BASH_ENV where its sh is bash)."""
    for line in said.split(b"\n")[:-1]:  # whole lines only
        word, _, pid = line.decode("utf-8", "replace").strip().partition(" ")
        if word == PID_LINE and pid.isdigit():
            return int(pid)
    return None


def _exactly(stream: socket.socket, count: int) -> bytes:
    out = b""
    while len(out) < count:
        chunk = stream.recv(count - len(out))
        if not chunk:
            break
        out += chunk
    return out


def alive(core: DS01, user: User, container_id: str, pid: int) -> bool:
    """Whether the kernel process still runs (False when its container is gone or stopped)."""
    record = core.engine.get_container(container_id)
    if record is None or not record.running:
        return False
    code, _ = core.engine.exec(container_id, ["kill", "-0", str(pid)], user=f"{user.uid}:{user.gid}")
    return code == 0


def signal(core: DS01, user: User, container_id: str, pid: int, signum: int) -> None:
    """Send ``signum`` to the kernel process, as the user."""
    core.engine.exec(container_id, ["kill", f"-{int(signum)}", str(pid)], user=f"{user.uid}:{user.gid}")


def remove_files(core: DS01, user: User, container_id: str, kernel_id: str) -> None:
    """Remove the kernel's connection and pid files from the container."""
    files = [*inner_files(kernel_id), f"/tmp/.ds01/kernel-{kernel_id}.state.json"]  # the hook's busy/idle record
    core.engine.exec(container_id, ["rm", "-f", *files], user=f"{user.uid}:{user.gid}")


def in_workspace(workdir: str) -> str:
    """``workdir`` when it is /workspace or a folder below it, else /workspace."""
    normal = posixpath.normpath(workdir or "/workspace")
    return normal if normal == "/workspace" or normal.startswith("/workspace/") else "/workspace"


class ContainerKernels:
    """Kernels in a user's own running container: the core's part the provisioner uses (``core.kernels``),
    served by ds01d as the ``kernels.*`` operations for callers without engine access.

    A kernel is started attached: the caller holds the exec's connection (ds01d hands it over), whose end
    is the kernel's end, so nothing polls the engine while the kernel runs. Signals and clean-up go to the
    container the start named, and only while it is still the user's container of that project.
    """

    def __init__(self, core: DS01):
        self.core = core

    def attach(self, user: User, project: str, kernel_id: str, key: str, ports: list[int], extra=(),
               workdir: str = "/workspace", env=(), signature_scheme: str = "hmac-sha256"):
        """Start the kernel as the user in ``workdir`` of their running container, on our launcher with
        ``extra`` arguments and ``env`` ("NAME=value" of PASSED_ENV); ({container, ip, pid}, the exec's
        connection carrying its output: drain it, its end is the kernel's). ``ports``: shell, iopub, stdin,
        hb, control."""
        record = self.core.containers.running(user, project)
        info = {"transport": "tcp", "ip": record.ip_address, "key": key, "signature_scheme": signature_scheme,
                **dict(zip(PORTS, ports))}
        variables = dict(v.split("=", 1) for v in env if "=" in v)  # "NAME=value" words; PASSED_ENV only
        wrapper, passed = _prepare(self.core, user, record.id, kernel_id, info, variables)
        argv = [*wrapper, *in_container_argv(kernel_id, list(extra))]
        _exec_id, stream = self.core.engine.exec_attach(record.id, argv, f"{user.uid}:{user.gid}",
                                                       in_workspace(workdir), False, env=passed)
        try:
            pid = _pid(stream, record.id)
        except BaseException:
            stream.close()
            raise
        return {"container": record.id, "ip": record.ip_address, "pid": pid}, stream

    def _same(self, user: User, project: str, container: str) -> ContainerRecord | None:
        """The user's running container of ``project`` if it is still ``container``; None when it went."""
        try:
            record = self.core.containers.record(user, project)
        except ContainerNotFound:
            return None
        return record if record.id == container and record.running else None

    def alive(self, user: User, project: str, container: str, pid: int) -> bool:
        """Whether the kernel process still runs (False when its container is gone, stopped or replaced)."""
        return self._same(user, project, container) is not None and alive(self.core, user, container, _checked(pid))

    def signal(self, user: User, project: str, container: str, pid: int, signum: int) -> None:
        """Send ``signum`` to the kernel as the user; nothing when its container went."""
        if not 0 < signum < 65:
            raise InvalidRequest(f"{signum} is not a signal.")
        if self._same(user, project, container) is not None:
            signal(self.core, user, container, _checked(pid), signum)

    def remove_files(self, user: User, project: str, container: str, kernel_id: str) -> None:
        """Remove the kernel's files from its container, as the user; nothing when the container went."""
        if self._same(user, project, container) is not None:
            remove_files(self.core, user, container, kernel_id)


def _checked(pid: int) -> int:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 2:  # never 0, -1 (every process) or init
        raise InvalidRequest(f"{pid} is not a kernel's process id.")
    return pid


class Output(threading.Thread):
    """Drains the kernel's attached connection to this process's stderr (both of its streams: this process's
    stdout may be a result, e.g. ``nbconvert --stdout``), and notes its end: the kernel's end. A thread, so it
    drains whichever loop runs."""

    def __init__(self, stream: socket.socket):
        super().__init__(name="ds01-kernel-output", daemon=True)
        self.stream = stream
        self.ended = threading.Event()

    def run(self) -> None:
        buffer = b""
        try:
            while data := self.stream.recv(65536):
                buffer += data
                while len(buffer) >= FRAME_HEAD.size:
                    _kind, length = FRAME_HEAD.unpack_from(buffer)
                    if len(buffer) < FRAME_HEAD.size + length:
                        break
                    chunk = buffer[FRAME_HEAD.size:FRAME_HEAD.size + length]
                    buffer = buffer[FRAME_HEAD.size + length:]
                    try:
                        sys.stderr.write(chunk.decode(errors="replace"))
                        sys.stderr.flush()
                    except (OSError, ValueError):
                        pass  # our own output is gone (closed at exit): the kernel's is dropped, not its drain
        except OSError:
            pass  # closed by close(): this process let go of the kernel
        finally:
            self.ended.set()

    def close(self) -> None:
        try:
            self.stream.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.stream.close()
