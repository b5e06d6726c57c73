"""A jupyter_client kernel provisioner that runs the kernel inside a project's container.

The kernel is started with ``docker exec`` as the user, in the notebook's folder
mapped into ``/workspace``. Its connection file is copied into the container
(mode 0600, owned by the user) rather than passed on a command line that every
host user could read with ``ps``. The kernel listens on the container's bridge
address; the server connects there. Signals, polling and shutdown go through
the engine too, so nothing here needs a host process.
"""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

from jupyter_client.provisioning import KernelProvisionerBase
from tornado.web import HTTPError
from traitlets import Integer, Unicode

from ..core import DS01, Settings, User
from ..core.errors import DS01Error
from . import container_kernel
from .container_kernel import LAUNCHER, PASSED_ENV, workspace_path  # noqa: F401 - their former home

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
    _context.update(core=core, user=user)


def _core_and_user() -> tuple[DS01, User]:
    if "core" not in _context:
        _context.update(core=DS01(Settings.from_env(interface="jupyter")), user=User.current())
    return _context["core"], _context["user"]


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
        argv = container_kernel.in_container_argv(self.kernel_id or "", kwargs.pop("extra_arguments", []))
        return await super().pre_launch(cmd=argv, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        core, user = _core_and_user()
        self.pid = await self._run(
            container_kernel.start,
            core,
            user,
            self.container_id,
            self.kernel_id or "",
            self.connection_info,
            cmd,
            self.workdir,
            kwargs.get("env"),
        )
        return self.connection_info

    # -- life -----------------------------------------------------------------------
    async def poll(self) -> int | None:
        if not self.container_id or not self.pid:
            return 0
        core, user = _core_and_user()
        try:
            running = await self._run(container_kernel.alive, core, user, self.container_id, self.pid)
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
        try:
            core, user = _core_and_user()
            await self._run(container_kernel.signal, core, user, self.container_id, self.pid, signum)
        except DS01Error:
            pass  # the container went away: nothing left to signal

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        if self.container_id:
            try:
                core, user = _core_and_user()
                await self._run(container_kernel.remove_files, core, user, self.container_id, self.kernel_id or "")
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
