"""What the REST handlers ask, and the host's answers: one interface, two backends.

The handlers (handlers.py, housekeeping.py) parse a request, call one method of
:class:`Backend` and send what it returns; they never ask which mode the server
runs in. :class:`HostBackend` answers on the host, through the core (the engine
directly, or ds01d); ``container_mode.InsideBackend`` answers inside a hub
server's own container, where there is one project at /workspace and no engine:
there a route that needs the engine answers :class:`NotAvailableHere` (409)
saying where to do it instead.

Every method is a coroutine; blocking core calls run off the event loop.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from functools import partial

from ..core.errors import DS01Error, NotFound
from ..core.requests import CheckpointQuery, DeployRequest, PrunePolicy, RescueRequest, RetireRequest, StopRequest
from ..core.users import User
from .events import EventHub
from .operations import Operations

#: An operation's work: takes a progress callback, returns the result.
Work = Callable[[Callable[[str], None]], dict]


class NotAvailableHere(DS01Error):
    """A route this server cannot answer where it runs (inside a hub server's container, without the engine)."""

    status = 409


class Accepted(dict):
    """An answer sent as 202: the work goes on after it (the hub stopping this very server)."""


class Backend:
    """The interface the handlers call. ``events`` and ``operations`` serve the event stream and long work."""

    mode = "host"
    events: EventHub
    operations: Operations

    def __init__(self, user: User):
        self.user = user

    async def run(self, fn, *args, **kwargs):
        """Run a blocking call off the event loop (its DS01Errors are answered by the handlers' write_error)."""
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))

    def version(self) -> dict:
        """What GET /version adds to the version: the mode, and inside a container its project."""
        return {}

    def check_project(self, name: str) -> None:
        """A project name from a URL this backend serves (NotFound for one it never will); called by prepare."""

    async def sync_kernels(self, project: str | None = None) -> None:
        """Bring the kernel specs up to date after a retire, or (``project``) that project's after its deploy."""

    # -- projects ------------------------------------------------------------------------
    async def overview(self, user: User) -> dict:
        raise NotImplementedError

    async def project(self, user: User, name: str) -> dict:
        """One project of the overview, with ``engine`` and its ``dockerfile``."""
        raise NotImplementedError

    async def create_project(self, user: User, name: str) -> dict:
        raise NotImplementedError

    # -- containers ----------------------------------------------------------------------
    async def deploy(self, user: User, request: DeployRequest) -> Work:
        """Check a deploy now (404, 400) and return the operation's work."""
        raise NotImplementedError

    async def build(self, user: User, name: str) -> Work:
        raise NotImplementedError

    async def start(self, user: User, name: str) -> dict:
        raise NotImplementedError

    async def stop(self, user: User, name: str, request: StopRequest) -> dict:
        raise NotImplementedError

    async def retire(self, user: User, name: str, request: RetireRequest) -> dict:
        raise NotImplementedError

    async def terminal(self, user: User, name: str) -> dict:
        raise NotImplementedError

    async def logs(self, user: User, name: str, tail: int) -> dict:
        raise NotImplementedError

    # -- the persistence guard -------------------------------------------------------------
    async def audit(self, user: User, name: str) -> dict:
        raise NotImplementedError

    async def rescue(self, user: User, name: str, request: RescueRequest) -> dict:
        raise NotImplementedError

    # -- checkpoints, storage, housekeeping --------------------------------------------------
    async def checkpoints(self, user: User, name: str, query: CheckpointQuery) -> dict:
        raise NotImplementedError

    async def prune(self, user: User, name: str, policy: PrunePolicy, confirm: bool) -> dict:
        raise NotImplementedError

    async def storage(self, user: User, larger_than: int | None) -> dict:
        raise NotImplementedError

    async def clean(self, user: User, name: str, policy: PrunePolicy, confirm: bool) -> dict:
        raise NotImplementedError

    async def where(self, user: User, name: str, pattern: str) -> dict:
        raise NotImplementedError

    async def images(self, user: User) -> dict:
        raise NotImplementedError

    async def prune_images(self, user: User, confirm: bool) -> dict:
        raise NotImplementedError

    # -- GPUs and limits -----------------------------------------------------------------------
    async def gpus(self) -> dict:
        raise NotImplementedError

    async def limits(self, user: User) -> dict:
        raise NotImplementedError


class HostBackend(Backend):
    """On the host: the core (DS01 on the engine, or RemoteDS01 through ds01d) does the work."""

    def __init__(self, core, user: User, events: EventHub, operations: Operations, kernel_specs=None):
        super().__init__(user)
        self.core, self.events, self.operations, self.kernel_specs = core, events, operations, kernel_specs

    async def sync_kernels(self, project=None):
        # Off the event loop: a sync lists the engine's containers, and may wait for the events thread's own sync.
        if self.kernel_specs is None:
            return
        if project is None:
            await self.run(self.kernel_specs.sync_quietly)
        else:
            await self.run(self.kernel_specs.deployed, project)

    async def overview(self, user):
        return await self.run(self.core.overview, user)

    async def project(self, user, name):
        project = await self.run(self.core.projects.get, user, name)
        overview = await self.run(self.core.overview, user, project.name)
        detail = next((p for p in overview["projects"] if p["name"] == project.name), None)
        if detail is None:  # removed between the two looks
            raise NotFound(f"Project {name!r} is gone.", hint="GET /ds01/projects lists them.")
        detail["engine"] = overview["engine"]
        detail["dockerfile"] = str(await self.run(self.core.images.dockerfile, user, name, False))
        return detail

    async def create_project(self, user, name):
        project = await self.run(self.core.projects.create, user, name)
        await self.run(self.core.images.dockerfile, user, project.name)
        return project.to_dict()

    async def deploy(self, user, request):
        if request.framework is not None:  # a name not configured is a 400, not a failed operation
            request.check_framework(self.core.settings)  # (through ds01d, settings cost a request: only then)
        await self.run(self.core.projects.get, user, request.project)  # 404 now, not in the operation
        core = self.core

        def work(progress):
            return core.containers.deploy(user, request.project, gpus=request.gpus, progress=progress,
                                          protected=request.protected, framework=request.framework,
                                          node=request.node).to_dict()

        return work

    async def build(self, user, name):
        await self.run(self.core.projects.get, user, name)
        core = self.core

        def work(progress):
            image = core.images.build(user, name, progress=progress)
            return {"tag": core.images.tag(user, name), "id": image.id, "size": image.size}

        return work

    async def start(self, user, name):
        return (await self.run(self.core.containers.start, user, name)).to_dict()

    async def stop(self, user, name, request):
        status, report = await self.run(self.core.containers.stop_with_report, user, name, request.stop_processes)
        return {**status.to_dict(), "processes": report}

    async def retire(self, user, name, request):
        return await self.run(self.core.guard.retire, user, name, request.mode, include_caches=request.include_caches,
                              stop_processes=request.stop_processes)

    async def terminal(self, user, name):
        shell = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
        await self.run(self.core.projects.get, user, name)  # 404 for an unknown project, as everywhere
        argv = await self.run(self.core.containers.interactive, user, name, shell, True)
        return {"project": name, "command": argv, "line": shlex.join(argv)}

    async def logs(self, user, name, tail):
        await self.run(self.core.projects.get, user, name)  # 404 for an unknown project, as everywhere
        lines = await self.run(lambda: list(self.core.containers.logs(user, name, tail=tail)))
        return {"project": name, "lines": lines}

    async def audit(self, user, name):
        return (await self.run(self.core.guard.audit, user, name)).to_dict(limit=500)

    async def rescue(self, user, name, request):
        return (await self.run(self.core.guard.rescue, user, name, include_caches=request.include_caches)).to_dict()

    async def checkpoints(self, user, name, query):
        return await self.run(self.core.checkpoints, user, name, query.metric, query.mode)

    async def prune(self, user, name, policy, confirm):
        return await self.run(self.core.prune_checkpoints, user, name, confirm, **policy.rules())

    async def storage(self, user, larger_than):
        return await self.run(self.core.storage_use, user, larger_than)

    async def clean(self, user, name, policy, confirm):
        return await self.run(self.core.cleanup.clean, user, name, confirm, **policy.rules())

    async def where(self, user, name, pattern):
        return await self.run(self.core.where, user, name, pattern)

    async def images(self, user):
        return {"images": await self.run(self.core.cleanup.images, user)}

    async def prune_images(self, user, confirm):
        return await self.run(self.core.cleanup.prune_images, user, confirm)

    async def gpus(self):
        return await self.run(self.core.gpu_inventory)

    async def limits(self, user):
        answer = await self.run(self.core.containers.limits_and_use, user)
        answer["disk"] = await self.run(self.core.storage_use, user)
        return answer
