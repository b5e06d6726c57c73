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
import json
import random
from importlib import resources
import signal
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import KernelProvisionerBase
from tornado.web import HTTPError
from traitlets import Integer, Unicode

from ..core import DS01, Settings, User
from ..core.errors import ContainerNotFound, DS01Error

_context: dict[str, Any] = {}
LAUNCHER = "/tmp/.ds01/kernel_launcher.py"

#: Variables passed from the server to a kernel in a container; the rest of the
#: host's environment (PATH, HOME...) means nothing there.
PASSED_ENV = ("JPY_SESSION_NAME", "JPY_PARENT_PID", "PYTHONUNBUFFERED", "LANG", "LC_ALL", "TZ")


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


def workspace_path(host_cwd: str | None, project_path: Path) -> str:
    """Map a host folder inside the project to its path under /workspace."""
    if not host_cwd:
        return "/workspace"
    try:
        rel = Path(host_cwd).resolve().relative_to(project_path.resolve())
    except ValueError:
        return "/workspace"  # a notebook outside the project runs at the project's root
    return "/workspace" if str(rel) == "." else f"/workspace/{rel.as_posix()}"


class ContainerProvisioner(KernelProvisionerBase):
    """Starts, signals and stops a kernel inside ``<project>._.<user>``."""

    project = Unicode("", config=True, help="The project whose container runs the kernel.")
    container_id = Unicode("")
    pid = Integer(0)
    workdir = Unicode("/workspace")

    @property
    def has_process(self) -> bool:
        return bool(self.container_id)

    @property
    def _files(self) -> tuple[str, str]:
        base = f"/tmp/.ds01/kernel-{self.kernel_id}"
        return f"{base}.json", f"{base}.pid"

    async def _run(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    async def _exec(self, command: list[str]) -> tuple[int | None, bytes]:
        core, user = _core_and_user()
        return await self._run(core.engine.exec, self.container_id, command, user=f"{user.uid}:{user.gid}")

    # -- launch ---------------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        core, user = _core_and_user()
        try:
            project = await self._run(core.projects.get, user, self.project)
            record = await self._run(core.containers.record, user, self.project)
        except ContainerNotFound:
            raise KernelStartRefused(
                f"Project {self.project!r} is not deployed: deploy first (ds01 sidebar, or "
                f"`container-deploy {self.project}`), then start this kernel again."
            ) from None
        except DS01Error as err:
            raise KernelStartRefused(str(err), err.status) from None
        if not record.running:
            raise KernelStartRefused(
                f"The container of {self.project!r} is {record.state}: start it first "
                f"(`container-start {self.project}`), then start this kernel again."
            )
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
        self.workdir = workspace_path(kwargs.get("cwd"), project.path)
        inner_file, _ = self._files
        argv = [inner_file if a == "{connection_file}" else a for a in self.kernel_spec.argv]
        if argv[1:3] == ["-m", "ipykernel_launcher"]:  # our launcher adds the write warnings
            argv[1:3] = [LAUNCHER]
        argv += kwargs.pop("extra_arguments", [])
        return await super().pre_launch(cmd=argv, **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        core, user = _core_and_user()
        inner_file, pid_file = self._files
        await self._run(core.engine.exec, self.container_id, ["sh", "-c", "mkdir -p /tmp/.ds01 && chmod 1777 /tmp/.ds01"], user="0:0")
        hook = resources.files("ds01_jupyter.kernels").joinpath("hook.py").read_bytes()
        await self._run(core.engine.put_file, self.container_id, LAUNCHER, hook, 0o644)
        info = dict(self.connection_info)
        info["ip"] = "0.0.0.0"
        info["key"] = info["key"].decode() if isinstance(info["key"], bytes) else info["key"]
        await self._run(
            core.engine.put_file, self.container_id, inner_file, json.dumps(info).encode(), 0o600, user.uid, user.gid
        )
        env = {k: v for k, v in (kwargs.get("env") or {}).items() if k in PASSED_ENV}
        env["DS01_KERNEL_ID"] = self.kernel_id or ""
        script = f'echo $$ > {pid_file}; exec "$@"'
        await self._run(
            core.engine.exec,
            self.container_id,
            ["sh", "-c", script, "sh", *cmd],
            user=f"{user.uid}:{user.gid}",
            workdir=self.workdir,
            env=env,
            detach=True,
        )
        for _ in range(100):
            code, out = await self._exec(["cat", pid_file])
            if code == 0 and out.strip().isdigit():
                self.pid = int(out.strip())
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"The kernel did not start inside the container of {self.project!r}.")
        return self.connection_info

    # -- life -----------------------------------------------------------------------
    async def poll(self) -> int | None:
        if not self.container_id or not self.pid:
            return 0
        core, _ = _core_and_user()
        try:
            record = await self._run(core.engine.get_container, self.container_id)
            if record is None or not record.running:
                self.log.warning("ds01: the container of %s is gone; its kernel ended with it", self.project)
                return 1
            code, _ = await self._exec(["kill", "-0", str(self.pid)])
        except DS01Error:
            return 1
        return None if code == 0 else 1

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
            await self._exec(["kill", f"-{int(signum)}", str(self.pid)])
        except DS01Error:
            pass  # the container went away: nothing left to signal

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        if self.container_id:
            try:
                await self._exec(["rm", "-f", *self._files])
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
