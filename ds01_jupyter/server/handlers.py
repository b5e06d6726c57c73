"""REST handlers under /ds01: thin wrappers over one backend (backend.py), the same in both modes.

Each verb is authenticated and authorized (resource "ds01"). Input is checked before the
backend is called: project names in the URL (``prepare``), JSON bodies (``body``: bounded size
and depth, an object), and their fields through the core's request types (core/requests.py,
the same checks the CLI, ds01d and the spawner make). Errors become JSON answers in one
place (``write_error``): the core's errors (DS01Error) with their own status, tornado's with
theirs, in the shape the OpenAPI file declares, so a user's mistake is a 4xx that says what
to do, and 5xx is left for our own faults.
"""

from __future__ import annotations

import asyncio
import json
import math
from functools import partial
from http.client import responses
from importlib import resources

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..core import requests as R
from ..core.errors import DS01Error, InvalidRequest, NotFound
from ..core.names import check_project_name
from ..core.notebook_check import check_cells, check_notebook, notebook_in
from .backend import Accepted

NAME = r"(?P<name>[^/]+)"
HEARTBEAT = 15.0
#: The largest JSON body read (a notebook's code cells are the largest body sent).
MAX_BODY_BYTES = 4 * 2**20
#: The deepest nesting of arrays and objects in a body (ours are two levels deep).
MAX_BODY_DEPTH = 32


class RequestTooLarge(InvalidRequest):
    """A request body over MAX_BODY_BYTES."""

    status = 413


# The error names answered for tornado's own HTTP errors (bad encoding, unknown method...).
_HTTP_ERROR_NAMES = {400: "InvalidRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
                     413: "RequestTooLarge"}


def _error_payload(status: int, exc: BaseException | None) -> tuple[int, dict]:
    """The status and JSON body answered for an exception raised while handling a request."""
    if isinstance(exc, DS01Error):
        return exc.status, exc.to_dict()
    if isinstance(exc, web.HTTPError):
        name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
        return exc.status_code, {"error": name, "message": exc.log_message or responses.get(exc.status_code, name)}
    if exc is None:
        return status, {"error": _HTTP_ERROR_NAMES.get(status, "HTTPError"), "message": responses.get(status, "Error")}
    return 500, {"error": "InternalError", "message": "The ds01 server extension failed; its log says why.",
                 "hint": "This is a fault of ds01-jupyter, not of your request: please report it."}


def _depth(value) -> int:
    """The nesting depth of parsed JSON (1 for a flat object), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_BODY_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large")
    return value


class DS01Handler(APIHandler):
    auth_resource = "ds01"

    @property
    def backend(self):
        """The one interface every handler calls (backend.py): the host's, or the one inside a hub server."""
        return self.settings["ds01_backend"]

    @property
    def user(self):
        return self.settings["ds01_user"]

    async def prepare(self):
        await super().prepare()  # authentication first: a stranger learns nothing about names
        # Every route with a project in its URL checks the name here, so no handler can forget.
        name = self.path_kwargs.get("name")
        if name is not None and self.current_user is not None:
            check_project_name(name)
            self.backend.check_project(name)

    async def call(self, fn, *args, **kwargs):
        """Run a blocking core call off the event loop (its DS01Errors are answered by write_error)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, partial(fn, *args, **kwargs))

    def body(self) -> dict:
        """The request's JSON object ({} when empty); anything else is a 400, or 413 when too large."""
        raw = self.request.body
        if not raw:
            return {}
        if len(raw) > MAX_BODY_BYTES:
            raise RequestTooLarge(f"The request body is larger than {MAX_BODY_BYTES // 2**20} MiB.")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            raise InvalidRequest(f"The request body is nested more than {MAX_BODY_DEPTH} levels deep.") from None
        except ValueError as err:  # UnicodeDecodeError included; json's own message names the place
            raise InvalidRequest(f"The request body is not valid JSON in UTF-8: {str(err)[:200]}") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        if _depth(data) > MAX_BODY_DEPTH:
            raise InvalidRequest(f"The request body is nested more than {MAX_BODY_DEPTH} levels deep.")
        return data

    def log_exception(self, typ, value, tb):
        if isinstance(value, DS01Error):  # an answer, not a fault: no traceback in the log
            self.log.info("ds01: %s %s: %s %s", self.request.method, self.request.path, value.status, value.message)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code, **kwargs):
        """Answer every error as JSON with error, message and usually hint (the OpenAPI Error)."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        status, payload = _error_payload(status_code, exc)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, default=str))

    def send(self, data, status: int | None = None) -> None:
        """Answer ``data`` as JSON: 202 for an Accepted answer, else 200 unless ``status`` says otherwise."""
        self.set_status(status or (202 if isinstance(data, Accepted) else 200))
        self.finish(json.dumps(data, default=str))

    def project_kernels(self, project: str) -> list:
        """(id, manager) of the kernels this server runs in a project's container."""
        manager = self.kernel_manager
        kernels = ((kernel_id, manager.get_kernel(kernel_id)) for kernel_id in list(manager.list_kernel_ids()))
        return [(kernel_id, k) for kernel_id, k in kernels if getattr(k.provisioner, "project", None) == project]

    async def ending_kernels(self, project: str, action):
        """Run `action` (which removes or stops the project's container), then shut down the kernels that ran in
        it. Their restarters are paused first: a kernel whose container vanished would otherwise be restarted
        into a container that no longer exists, and a restart in flight keeps the kernel listed. Should the
        action fail, the restarters resume and the kernels go on as before."""
        kernels = self.project_kernels(project)
        for _, kernel in kernels:
            kernel.stop_restarter()
        try:
            result = await action()
        except BaseException:
            for _, kernel in kernels:
                kernel.start_restarter()
            raise
        manager = self.kernel_manager
        for kernel_id, _ in kernels:
            try:
                await manager.shutdown_kernel(kernel_id, now=True)
            except Exception as err:  # noqa: BLE001 - one kernel's trouble must not fail the retire
                self.log.warning("ds01: kernel %s of %s: %s", kernel_id, project, err)
            if kernel_id in manager:  # its process went with the container: drop what is left of it
                manager.remove_kernel(kernel_id)
        return result


class VersionHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"version": self.settings["ds01_version"], "api": 1, **self.backend.version()})


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
        self.send(await self.backend.overview(self.user))

    @web.authenticated
    @authorized
    async def post(self):
        name = check_project_name(R.check_fields(self.body(), ("name",)).get("name"))
        self.send(await self.backend.create_project(self.user, name), 201)


class ProjectHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.send(await self.backend.project(self.user, name))


class LongActionHandler(DS01Handler):
    """POST deploy or build: 202 with an operation to follow, or with ?wait=1 the result."""

    @web.authenticated
    @authorized
    async def post(self, name, action):
        if action == "deploy":
            work = await self.backend.deploy(self.user, R.DeployRequest.from_dict(self.body(), project=name))
        else:
            R.check_fields(self.body(), ())
            work = await self.backend.build(self.user, name)
        op = self.backend.operations.start(action, name, work)
        if self.get_argument("wait", "0") not in ("1", "true"):
            self.send({"operation": op.to_dict()}, 202)
            return
        await asyncio.shield(op.future)
        if op.state == "failed":
            self.send({**op.error, "operation": op.id}, _status_of(op.error))
            return
        if action == "deploy":  # its kernel is there for the notebook the client opens next
            await self.backend.sync_kernels(name)
        self.send(op.result)


def _status_of(error: dict) -> int:
    from ..core import errors

    cls = getattr(errors, error.get("error", ""), errors.DS01Error)
    return cls.status


class ActionHandler(DS01Handler):
    """Start, or stop: 409 (UnsavedWork, with the processes) while work runs inside, unless "stop_processes": true.
    Inside a hub server, stop asks the hub to stop this server (202)."""

    @web.authenticated
    @authorized
    async def post(self, name, action):
        if action == "stop":
            request = R.StopRequest.from_dict(self.body())
            self.send(await self.ending_kernels(name, lambda: self.backend.stop(self.user, name, request)))
            return
        R.check_fields(self.body(), ())
        self.send(await self.backend.start(self.user, name))


class RetireHandler(DS01Handler):
    """Retire through the persistence guard: 409 with the findings unless mode is rescue or discard, and with the
    processes while work runs inside unless "stop_processes": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        request = R.RetireRequest.from_dict(self.body())
        result = await self.ending_kernels(name, lambda: self.backend.retire(self.user, name, request))
        await self.backend.sync_kernels()
        self.send(result)


class AuditHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.send(await self.backend.audit(self.user, name))


class RescueHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def post(self, name):
        self.send(await self.backend.rescue(self.user, name, R.RescueRequest.from_dict(self.body())))


class TerminalCommandHandler(DS01Handler):
    """The command a host terminal runs to get a shell inside the project's running container.

    JupyterLab's terminals run on the host; the sidebar opens one and types this line,
    so the shell runs as the user in /workspace of their own container, nothing more.
    """

    @web.authenticated
    @authorized
    async def get(self, name):
        self.send(await self.backend.terminal(self.user, name))


class NotebookCheckHandler(DS01Handler):
    """Static check of a notebook: {"path": relative to the server root} or {"cells": [source, ...]} (cells first)."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        cells, path = body.get("cells"), body.get("path")
        if isinstance(cells, list) and all(isinstance(c, str) for c in cells):
            found = await self.call(check_cells, cells)
        elif isinstance(path, str):
            # The notebook is read on the user's behalf: only a regular file under the server's root,
            # without blocking (notebook_check.read_notebook_bytes says how).
            found = await self.call(lambda: check_notebook(notebook_in(self.contents_manager.root_dir, path), path))
        else:
            raise InvalidRequest("Give 'path' (a notebook) or 'cells' (a list of code strings).")
        self.send({"findings": [f.to_dict() for f in found]})


class LogsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        tail = R.whole_number_text(self.get_argument("tail", "200"), "tail", R.MAX_TAIL)
        self.send(await self.backend.logs(self.user, name, R.LogsQuery(200 if tail is None else tail).tail))


class GpusHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send(await self.backend.gpus())


class LimitsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send(await self.backend.limits(self.user))


class CheckpointsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        query = R.CheckpointQuery.from_dict({"metric": self.get_argument("metric", None),
                                             "mode": self.get_argument("mode", None)})
        self.send(await self.backend.checkpoints(self.user, name, query))


class PruneHandler(DS01Handler):
    """Preview what a retention policy would delete; delete only with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body()
        policy = R.PrunePolicy.from_request(body, also=("confirm",))
        confirm = R.flag(body.get("confirm"), "confirm")
        self.send(await self.backend.prune(self.user, name, policy, confirm))


class UsageHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        larger = R.whole_number_text(self.get_argument("larger_than", None), "larger_than", R.MAX_SIZE)
        self.send(await self.backend.storage(self.user, R.StorageQuery(larger).larger_than))


class OperationsHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, op_id=None):
        ops = self.backend.operations
        if op_id is None:
            self.send({"operations": [o.to_dict(lines=False) for o in ops.list()]})
            return
        op = ops.get(op_id)
        if op is None:
            raise NotFound(f"No operation {op_id[:80]!r} on this server.", hint="GET /ds01/operations lists them.")
        self.send(op.to_dict())


class EventsHandler(DS01Handler):
    """Server-sent events: a snapshot first, then changes as they happen (inside a hub server, only keep-alives)."""

    @web.authenticated
    @authorized
    async def get(self):
        hub = self.backend.events
        queue = hub.subscribe()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            snapshot = await self.backend.overview(self.user)
            operations = [o.to_dict(lines=False) for o in self.backend.operations.list() if o.state == "running"]
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
    """The one route table, whichever backend answers (each route's answer in a mode is in openapi.yaml)."""
    from . import housekeeping  # its handlers build on this module's

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
        *housekeeping.handlers(NAME),
        (r"/ds01/gpus", GpusHandler),
        (r"/ds01/limits", LimitsHandler),
        (r"/ds01/operations", OperationsHandler),
        (r"/ds01/operations/(?P<op_id>[^/]+)", OperationsHandler),
        (r"/ds01/events", EventsHandler),
    ]
