"""A jupyter_client kernel provisioner that runs the kernel inside a project's container.

The kernel is started as the user, in the notebook's folder mapped into
``/workspace``, by ``core.kernels`` (:class:`~.container_kernel.ContainerKernels`):
on the engine, or through ds01d for a user without Docker access, with the same
result. Its connection file is copied into the container (mode 0600, owned by
the user) rather than passed on a command line that every host user could read
with ``ps``. The kernel listens on the container's bridge address; the server
connects there (a network, not the engine: no Docker access needed). The exec
runs attached and this provisioner holds its connection: the kernel's output
comes through it and its end is the kernel's end, so polling costs nothing.
Signals and shutdown go through the core too, so nothing here needs a host
process.
"""

from __future__ import annotations

import asyncio
import atexit
import random
import signal
import threading
from typing import Any

from jupyter_client.provisioning import KernelProvisionerBase
from tornado.web import HTTPError
from traitlets import Integer, Unicode

from ..core import DS01, Settings, User
from ..core.errors import DS01Error
from ..service.client import connect
from . import container_kernel
from .container_kernel import LAUNCHER, PASSED_ENV, Output, workspace_path  # noqa: F401 - their former home

_context: dict[str, Any] = {}


class KernelStartRefused(HTTPError):
    """Why a kernel cannot start; the Jupyter server shows this message to the user."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(status, message.replace("%", "%%"))
        self.message = message

    def __str__(self) -> str:
        return self.message


def configure(core: DS01, user: User) -> None:
    """Let provisioners use the server extension's core (instead of settings from the environment)."""
    _context.update(core=core, user=user, server=True)


def _core_and_user() -> tuple[DS01, User]:
    if "core" not in _context:  # a client other than the server extension (nbconvert, KernelManager)
        _context.update(core=connect(direct=lambda: DS01(Settings.from_env(interface="jupyter"))), user=User.current())
    return _context["core"], _context["user"]


#: Kernel starts no provisioner took yet (see _Launch), ended when this process exits.
_PENDING: set[_Launch] = set()


class _Launch:
    """One kernel start, which outlives a client that gives up on it: the start runs on in its thread. A kernel
    it starts after ``abandon`` is ended there, one started just before is ended by ``abandon``, and one no
    provisioner took when this process exits (a Ctrl-C escapes a synchronous client's loop: the start is never
    resumed nor cancelled) is ended then: no kernel runs on in the container with nobody to end it."""

    def __init__(self, core, user: User, project: str, kernel_id: str):
        self.core, self.user, self.project, self.kernel_id = core, user, project, kernel_id
        self._lock = threading.Lock()
        self._abandoned = False
        self._started: tuple | None = None

    def attach(self, *args):
        with self._lock:
            _PENDING.add(self)
        try:
            started = self.core.kernels.attach(self.user, self.project, self.kernel_id, *args)
        except BaseException:  # no kernel: nothing to end
            with self._lock:
                _PENDING.discard(self)
            raise
        with self._lock:
            if not self._abandoned:
                self._started = started
                return started
        self._end(*started)
        return started

    def take(self) -> None:
        """The provisioner holds the kernel now: it ends it."""
        with self._lock:
            _PENDING.discard(self)
            self._started = None

    def abandon(self, wait: bool = False) -> None:
        with self._lock:
            _PENDING.discard(self)
            self._abandoned = True
            started, self._started = self._started, None
        if started is None:
            return
        if wait:
            self._end(*started)
        else:  # off the loop, which may be closing; the process waits for the thread at exit
            threading.Thread(target=self._end, args=started, name="ds01-kernel-end").start()

    def _end(self, started: dict, stream) -> None:
        try:
            self.core.kernels.signal(self.user, self.project, started["container"], int(started["pid"]),
                                     int(signal.SIGKILL))
            self.core.kernels.remove_files(self.user, self.project, started["container"], self.kernel_id)
        except DS01Error:
            pass  # the container went away: the kernel with it
        finally:
            stream.close()


@atexit.register
def _end_pending() -> None:
    for launch in list(_PENDING):  # after the executor's threads were joined: each start has ended by now
        launch.abandon(wait=True)


class ContainerProvisioner(KernelProvisionerBase):
    """Starts, signals and stops a kernel inside ``<project>._.<user>``."""

    project = Unicode("", config=True, help="The project whose container runs the kernel.")
    container_id = Unicode("")
    pid = Integer(0)
    workdir = Unicode("/workspace")

    @property
    def has_process(self) -> bool:
        return bool(self.container_id)

    async def _run(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    # -- launch ---------------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        core, user = _core_and_user()
        try:
            project, record = await self._run(container_kernel.running_container, core, user, self.project)
        except DS01Error as err:
            raise KernelStartRefused(err.message, err.status) from None
        km = self.parent
        kwargs.pop("transport_encryption", None)
        km.transport = "tcp"
        ports = (km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port)
        if km.ip != record.ip_address or not all(ports):
            # The kernel binds in the container's own network namespace, so any ports are
            # free there; a restart keeps them, so connected clients reconnect as usual.
            km.ip = record.ip_address
            ports = random.sample(range(20000, 60000), 5)
            km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port = ports
        km.write_connection_file()
        self.connection_info = km.get_connection_info()
        self.container_id = record.id
        # A relative or empty cwd (nbconvert, KernelManager) means the client's folder, as for a host kernel.
        self.workdir, note = workspace_path(kwargs.get("cwd"), project.path)
        if note:
            self.log.warning("ds01: %s", note)
        # The spec's argv is the host-side launcher for front ends without provisioners; inside the
        # container the kernel is always our own launcher with the write hook.
        self._extra = list(kwargs.pop("extra_arguments", []) or [])
        argv = container_kernel.in_container_argv(self.kernel_id or "", self._extra)
        return await super().pre_launch(cmd=argv, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        core, user = _core_and_user()
        info = self.connection_info
        key = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        ports = [info[k] for k in container_kernel.PORTS]
        # A one-shot client's kernel (nbconvert) ends with it, even killed; the server's does not.
        env = container_kernel.client_env(kwargs.get("env") or {}, tied_to=None if _context.get("server") else core)
        launch = _Launch(core, user, self.project, self.kernel_id or "")
        try:
            started, stream = await self._run(
                launch.attach, key, ports, self._extra, self.workdir, env,
                info.get("signature_scheme") or "hmac-sha256")
        except DS01Error as err:  # e.g. stopped since pre_launch: said as a refused start, not a traceback
            raise KernelStartRefused(err.message, err.status) from None
        except BaseException:  # cancelled, or the client interrupted (Ctrl-C) while the kernel started
            launch.abandon()
            raise
        launch.take()
        self.container_id, self.pid = started["container"], int(started["pid"])
        self._output = Output(stream)
        self._output.start()
        return self.connection_info

    # -- life -----------------------------------------------------------------------
    async def poll(self) -> int | None:
        if not self.container_id or not self.pid:
            return 0
        output = getattr(self, "_output", None)
        if output is not None:  # the kernel's connection: open while it runs
            return 1 if output.ended.is_set() else None
        core, user = _core_and_user()  # a kernel found again after a restart of this server: ask
        try:
            running = await self._run(core.kernels.alive, user, self.project, self.container_id, self.pid)
        except DS01Error:
            return 1
        return None if running else 1

    async def wait(self) -> int | None:
        while True:
            status = await self.poll()
            if status is not None:
                return status
            await asyncio.sleep(0.2)

    async def send_signal(self, signum: int) -> None:
        if not self.pid:
            return
        if await self.poll() is not None:
            return  # ended: its pid may be another process's by now
        try:
            core, user = _core_and_user()
            await self._run(core.kernels.signal, user, self.project, self.container_id, self.pid, int(signum))
        except DS01Error:
            pass  # the container went away: nothing left to signal

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        output = getattr(self, "_output", None)
        if output is not None:
            output.close()
            self._output = None
        if self.container_id:
            try:
                core, user = _core_and_user()
                await self._run(core.kernels.remove_files, user, self.project, self.container_id,
                                self.kernel_id or "")
            except DS01Error:
                pass
        self.pid = 0
        if not restart:
            self.container_id = ""

    # -- restart of the server: reconnect to a running kernel ----------------------------
    async def get_provisioner_info(self) -> dict:
        info = await super().get_provisioner_info()
        info.update(project=self.project, container_id=self.container_id, pid=self.pid, workdir=self.workdir)
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.project = provisioner_info.get("project", self.project)
        self.container_id = provisioner_info.get("container_id", "")
        self.pid = int(provisioner_info.get("pid") or 0)
        self.workdir = provisioner_info.get("workdir", "/workspace")

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 5.0)
