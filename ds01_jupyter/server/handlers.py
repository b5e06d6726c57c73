"""REST handlers under /ds01: thin wrappers over the core.

Each verb is authenticated and authorized (resource "ds01"); core errors become
JSON answers with their status in one place (``DS01Handler.call``), so a user's
mistake is a 4xx that says what to do, and 5xx is left for our own faults.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from functools import partial
from importlib import resources
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.errors import DS01Error, Forbidden, InvalidRequest
from ..core.notebook_check import check_cells, check_notebook

NAME = r"(?P<name>[^/]+)"
HEARTBEAT = 15.0


class ApiError(web.HTTPError):
    """A core error on its way to the client as JSON."""

    def __init__(self, err: DS01Error):
        super().__init__(err.status, log_message=err.message)
        self.payload = err.to_dict()


class DS01Handler(APIHandler):
    auth_resource = "ds01"

    @property
    def core(self):
        return self.settings["ds01_core"]

    @property
    def user(self):
        return self.settings["ds01_user"]

    async def call(self, fn, *args, **kwargs):
        """Run a blocking core call off the event loop; its errors become JSON answers."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, partial(fn, *args, **kwargs))
        except DS01Error as err:
            raise ApiError(err) from None

    def body(self) -> dict:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise ApiError(InvalidRequest("The request body is not valid JSON.")) from None
        if not isinstance(data, dict):
            raise ApiError(InvalidRequest("The request body must be a JSON object."))
        return data

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.payload))
            return
        super().write_error(status_code, **kwargs)

    def send(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, default=str))

    def sync_kernels(self) -> None:
        self.settings["ds01_kernel_specs"].sync_quietly()

    async def end_kernels(self, project: str) -> None:
        """Shut down the kernels that ran in a project's container once it is gone, rather than
        leave the restarter to try (and fail) to start them again in a container that no longer exists."""
        manager = self.kernel_manager
        for kernel_id in list(manager.list_kernel_ids()):
            kernel = manager.get_kernel(kernel_id)
            if getattr(kernel.provisioner, "project", None) != project:
                continue
            kernel.stop_restarter()
            try:
                await manager.shutdown_kernel(kernel_id, now=True)
            except Exception as err:  # noqa: BLE001 - one kernel's trouble must not fail the retire
                self.log.warning("ds01: kernel %s of retired %s: %s", kernel_id, project, err)


class VersionHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"version": self.settings["ds01_version"], "api": 1})


class OpenAPIHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.set_header("Content-Type", "application/yaml")
        self.finish(resources.files("ds01_jupyter.server").joinpath("openapi.yaml").read_text())


class ProjectsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send(await self.call(self.core.overview, self.user))

    @web.authenticated
    @authorized
    async def post(self):
        name = self.body().get("name")
        project = await self.call(self.core.projects.create, self.user, name)
        await self.call(self.core.images.dockerfile, self.user, project.name)
        self.send(project.to_dict(), 201)


class ProjectHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        project = await self.call(self.core.projects.get, self.user, name)
        overview = await self.call(self.core.overview, self.user)
        detail = next(p for p in overview["projects"] if p["name"] == project.name)
        detail["engine"] = overview["engine"]
        detail["dockerfile"] = str(await self.call(self.core.images.dockerfile, self.user, name, False))
        self.send(detail)


class LongActionHandler(DS01Handler):
    """POST deploy or build: 202 with an operation to follow, or with ?wait=1 the result."""

    @web.authenticated
    @authorized
    async def post(self, name, action):
        await self.call(self.core.projects.get, self.user, name)  # 400/404 now, not in the operation
        body = self.body()
        user = self.user
        if action == "deploy":
            gpus = body.get("gpus")
            if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
                raise ApiError(InvalidRequest(f"'gpus' must be a whole number of 0 or more, not {gpus!r}."))

            def work(progress):
                result = self.core.containers.deploy(user, name, gpus=gpus, progress=progress, protected=bool(body.get("protected")))
                return result.to_dict()

        else:

            def work(progress):
                image = self.core.images.build(user, name, progress=progress)
                return {"tag": self.core.images.tag(user, name), "id": image.id, "size": image.size}

        op = self.settings["ds01_operations"].start(action, name, work)
        if self.get_argument("wait", "0") not in ("1", "true"):
            self.send({"operation": op.to_dict()}, 202)
            return
        await asyncio.shield(op.future)
        if op.state == "failed":
            self.send({**op.error, "operation": op.id}, _status_of(op.error))
            return
        self.sync_kernels()
        self.send(op.result)


def _status_of(error: dict) -> int:
    from ..core import errors

    cls = getattr(errors, error.get("error", ""), errors.DS01Error)
    return cls.status


class ActionHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def post(self, name, action):
        method = getattr(self.core.containers, action)
        status = await self.call(method, self.user, name)
        self.send(status.to_dict())


class RetireHandler(DS01Handler):
    """Retire through the persistence guard: 409 with the findings unless mode is rescue or discard."""

    @web.authenticated
    @authorized
    async def post(self, name):
        mode = self.body().get("mode")
        result = await self.call(self.core.guard.retire, self.user, name, mode)
        await self.end_kernels(name)
        self.sync_kernels()
        self.send(result)


class AuditHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        audit = await self.call(self.core.guard.audit, self.user, name)
        self.send(audit.to_dict(limit=500))


class RescueHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def post(self, name):
        result = await self.call(self.core.guard.rescue, self.user, name)
        self.send(result.to_dict())


class TerminalCommandHandler(DS01Handler):
    """The command a host terminal runs to get a shell inside the project's running container.

    JupyterLab's terminals run on the host; the sidebar opens one and types this line,
    so the shell runs as the user in /workspace of their own container, nothing more.
    """

    @web.authenticated
    @authorized
    async def get(self, name):
        shell = ["/bin/sh", "-c", "command -v bash >/dev/null && exec bash || exec sh"]
        argv = await self.call(self.core.containers.interactive, self.user, name, shell, True)
        self.send({"project": name, "command": argv, "line": shlex.join(argv)})


class NotebookCheckHandler(DS01Handler):
    """Static check of a notebook: {"path": relative to the server root} or {"cells": [source, ...]}."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        if isinstance(body.get("cells"), list) and all(isinstance(c, str) for c in body["cells"]):
            found = check_cells(body["cells"])
        elif isinstance(body.get("path"), str):
            root = Path(self.contents_manager.root_dir).expanduser().resolve()
            path = (root / body["path"]).resolve()
            if root != path and root not in path.parents:
                raise ApiError(Forbidden(f"{body['path']} is outside the server's root folder."))
            found = await self.call(check_notebook, path)
        else:
            raise ApiError(InvalidRequest("Give 'path' (a notebook) or 'cells' (a list of code strings)."))
        self.send({"findings": [f.to_dict() for f in found]})


class LogsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        try:
            tail = int(self.get_argument("tail", "200"))
        except ValueError:
            raise ApiError(InvalidRequest("'tail' must be a whole number.")) from None
        if tail < 0 or tail > 100_000:
            raise ApiError(InvalidRequest("'tail' must be between 0 and 100000."))
        lines = await self.call(lambda: list(self.core.containers.logs(self.user, name, tail=tail)))
        self.send({"project": name, "lines": lines})


class GpusHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send(await self.call(self.core.gpu_inventory))


class LimitsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        usage = await self.call(self.core.containers.usage, self.user)
        usage["disk"] = await self.call(self.core.usage, self.user)
        self.send(usage)


class CheckpointsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        metric = self.get_argument("metric", None)
        mode = self.get_argument("mode", "min")
        if mode not in ("min", "max"):
            raise ApiError(InvalidRequest("'mode' must be 'min' or 'max'."))
        self.send(await self.call(self.core.checkpoints, self.user, name, metric, mode))


class PruneHandler(DS01Handler):
    """Preview what a retention policy would delete; delete only with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body()
        policy = {}
        for key in ("keep_last", "keep_best"):
            value = body.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ApiError(InvalidRequest(f"'{key}' must be a whole number of 0 or more."))
                policy[key] = value
        days = body.get("older_than_days")
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
                raise ApiError(InvalidRequest("'older_than_days' must be a number of 0 or more."))
            policy["older_than"] = days * 86400
        if body.get("metric") is not None:
            if not isinstance(body["metric"], str):
                raise ApiError(InvalidRequest("'metric' must be a string."))
            policy["metric"] = body["metric"]
        if body.get("mode", "min") not in ("min", "max"):
            raise ApiError(InvalidRequest("'mode' must be 'min' or 'max'."))
        policy["mode"] = body.get("mode", "min")
        result = await self.call(self.core.prune_checkpoints, self.user, name, body.get("confirm") is True, **policy)
        self.send(result)


class UsageHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send(await self.call(self.core.usage, self.user))


class OperationsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, op_id=None):
        ops = self.settings["ds01_operations"]
        if op_id is None:
            self.send({"operations": [o.to_dict(lines=False) for o in ops.list()]})
            return
        op = ops.get(op_id)
        if op is None:
            raise web.HTTPError(404, f"No operation {op_id}")
        self.send(op.to_dict())


class EventsHandler(DS01Handler):
    """Server-sent events: a snapshot first, then changes as they happen."""

    @web.authenticated
    @authorized
    async def get(self):
        hub = self.settings["ds01_events"]
        queue = hub.subscribe()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            snapshot = await self.call(self.core.overview, self.user)
            operations = [o.to_dict(lines=False) for o in self.settings["ds01_operations"].list() if o.state == "running"]
            await self._emit({"type": "snapshot", **snapshot, "operations": operations})
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    continue
                await self._emit(event)
        except StreamClosedError:
            pass
        finally:
            hub.unsubscribe(queue)

    async def _emit(self, event: dict) -> None:
        self.write(f"event: {event['type']}\ndata: {json.dumps(event, default=str)}\n\n")
        await self.flush()


def handlers() -> list[tuple]:
    return [
        (r"/ds01/version", VersionHandler),
        (r"/ds01/openapi.yaml", OpenAPIHandler),
        (r"/ds01/projects", ProjectsHandler),
        (rf"/ds01/projects/{NAME}", ProjectHandler),
        (rf"/ds01/projects/{NAME}/(?P<action>deploy|build)", LongActionHandler),
        (rf"/ds01/projects/{NAME}/(?P<action>start|stop)", ActionHandler),
        (rf"/ds01/projects/{NAME}/retire", RetireHandler),
        (rf"/ds01/projects/{NAME}/audit", AuditHandler),
        (rf"/ds01/projects/{NAME}/rescue", RescueHandler),
        (rf"/ds01/projects/{NAME}/terminal", TerminalCommandHandler),
        (r"/ds01/notebook-check", NotebookCheckHandler),
        (rf"/ds01/projects/{NAME}/logs", LogsHandler),
        (rf"/ds01/projects/{NAME}/checkpoints", CheckpointsHandler),
        (rf"/ds01/projects/{NAME}/prune", PruneHandler),
        (r"/ds01/usage", UsageHandler),
        (r"/ds01/gpus", GpusHandler),
        (r"/ds01/limits", LimitsHandler),
        (r"/ds01/operations", OperationsHandler),
        (r"/ds01/operations/(?P<op_id>[^/]+)", OperationsHandler),
        (r"/ds01/events", EventsHandler),
    ]
