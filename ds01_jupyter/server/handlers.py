"""REST handlers under /ds01: thin wrappers over the core.

Each verb is authenticated and authorized (resource "ds01"). Input is checked before the
core is called: project names in the URL (``prepare``), JSON bodies (``body``: bounded size
and depth, an object), and each field a handler reads. Errors become JSON answers in one
place (``write_error``): the core's errors (DS01Error) with their own status, tornado's with
theirs, in the shape the OpenAPI file declares, so a user's mistake is a 4xx that says what
to do, and 5xx is left for our own faults.
"""

from __future__ import annotations

import asyncio
import json
import math
import shlex
from functools import partial
from http.client import responses
from importlib import resources

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.errors import DS01Error, InvalidRequest, NotFound
from ..core.frameworks import image_ref
from ..core.names import check_project_name
from ..core.notebook_check import check_cells, check_notebook, notebook_in

NAME = r"(?P<name>[^/]+)"
HEARTBEAT = 15.0
#: The largest JSON body read (a notebook's code cells are the largest body sent).
MAX_BODY_BYTES = 4 * 2**20
#: The deepest nesting of arrays and objects in a body (ours are two levels deep).
MAX_BODY_DEPTH = 32
#: The longest string taken from a query or a body field other than code.
MAX_FIELD_CHARS = 256


class ApiError(web.HTTPError):
    """A core error on its way to the client as JSON (a core error raised as is does the same)."""

    def __init__(self, err: DS01Error):
        super().__init__(err.status, log_message=err.message)
        self.payload = err.to_dict()


class RequestTooLarge(InvalidRequest):
    """A request body over MAX_BODY_BYTES."""

    status = 413


# The error names answered for tornado's own HTTP errors (bad encoding, unknown method...).
_HTTP_ERROR_NAMES = {400: "InvalidRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
                     413: "RequestTooLarge"}


def _error_payload(status: int, exc: BaseException | None) -> tuple[int, dict]:
    """The status and JSON body answered for an exception raised while handling a request."""
    if isinstance(exc, ApiError):
        return exc.status_code, exc.payload
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
    def core(self):
        return self.settings["ds01_core"]

    @property
    def user(self):
        return self.settings["ds01_user"]

    async def prepare(self):
        await super().prepare()  # authentication first: a stranger learns nothing about names
        # Every route with a project in its URL checks the name here, so no handler can forget.
        name = self.path_kwargs.get("name")
        if name is not None and self.current_user is not None:
            check_project_name(name)

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

    def text_field(self, value, key: str, choices: tuple | None = None) -> str | None:
        """A short optional string from a body or a query (None when absent); else a 400 naming it."""
        if value is None:
            return None
        if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS or "\x00" in value:
            raise InvalidRequest(f"'{key}' must be a string of at most {MAX_FIELD_CHARS} characters.")
        if choices is not None and value not in choices:
            raise InvalidRequest(f"'{key}' must be one of {', '.join(choices)}.")
        return value

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

    def send(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, default=str))

    def sync_kernels(self) -> None:
        self.settings["ds01_kernel_specs"].sync_quietly()

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
        name = check_project_name(self.body().get("name"))
        project = await self.call(self.core.projects.create, self.user, name)
        await self.call(self.core.images.dockerfile, self.user, project.name)
        self.send(project.to_dict(), 201)


class ProjectHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self, name):
        project = await self.call(self.core.projects.get, self.user, name)
        overview = await self.call(self.core.overview, self.user)
        detail = next((p for p in overview["projects"] if p["name"] == project.name), None)
        if detail is None:  # removed between the two looks
            raise NotFound(f"Project {name!r} is gone.", hint="GET /ds01/projects lists them.")
        detail["engine"] = overview["engine"]
        detail["dockerfile"] = str(await self.call(self.core.images.dockerfile, self.user, name, False))
        self.send(detail)


class LongActionHandler(DS01Handler):
    """POST deploy or build: 202 with an operation to follow, or with ?wait=1 the result."""

    @web.authenticated
    @authorized
    async def post(self, name, action):
        body = self.body()
        gpus = _whole_number(body.get("gpus"), "gpus", MAX_GPUS)
        protected = _flag(body.get("protected"), "protected")
        framework = self.text_field(body.get("framework"), "framework")
        if framework is not None:  # a name not configured is a 400 listing those that are, not a failed operation
            image_ref(self.core.settings, framework)
        await self.call(self.core.projects.get, self.user, name)  # 404 now, not in the operation
        user = self.user
        if action == "deploy":

            def work(progress):
                result = self.core.containers.deploy(user, name, gpus=gpus, progress=progress, protected=protected,
                                                     framework=framework)
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


#: More GPUs than any one host has: a larger request is a mistake, not a limit to look up.
MAX_GPUS = 1024


def _whole_number(value, key: str, most: int) -> int | None:
    """An optional whole number from 0 to ``most`` taken from a body; else a 400 naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise InvalidRequest(f"'{key}' must be a whole number from 0 to {most}.")
    return value


def _flag(value, key: str) -> bool:
    """An optional boolean (absent: false); "false" or 0 would be read as true by bool(), so they are refused."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be true or false.")
    return value


def _status_of(error: dict) -> int:
    from ..core import errors

    cls = getattr(errors, error.get("error", ""), errors.DS01Error)
    return cls.status


class ActionHandler(DS01Handler):
    """Start, or stop: 409 (UnsavedWork, with the processes) while work runs inside, unless "stop_processes": true."""

    @web.authenticated
    @authorized
    async def post(self, name, action):
        if action == "stop":
            stop_processes = _flag(self.body().get("stop_processes"), "stop_processes")
            status, report = await self.ending_kernels(
                name, lambda: self.call(self.core.containers.stop_with_report, self.user, name, stop_processes))
            self.send({**status.to_dict(), "processes": report})
            return
        status = await self.call(self.core.containers.start, self.user, name)
        self.send(status.to_dict())


class RetireHandler(DS01Handler):
    """Retire through the persistence guard: 409 with the findings unless mode is rescue or discard, and with the
    processes while work runs inside unless "stop_processes": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body()
        mode = self.text_field(body.get("mode"), "mode", ("rescue", "discard"))
        include_caches = _flag(body.get("include_caches"), "include_caches")
        stop_processes = _flag(body.get("stop_processes"), "stop_processes")
        result = await self.ending_kernels(
            name,
            lambda: self.call(
                self.core.guard.retire,
                self.user,
                name,
                mode,
                include_caches=include_caches,
                stop_processes=stop_processes,
            ),
        )
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
        include_caches = _flag(self.body().get("include_caches"), "include_caches")
        result = await self.call(self.core.guard.rescue, self.user, name, include_caches=include_caches)
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
        await self.call(self.core.projects.get, self.user, name)  # 404 for an unknown project, as everywhere
        argv = await self.call(self.core.containers.interactive, self.user, name, shell, True)
        self.send({"project": name, "command": argv, "line": shlex.join(argv)})


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
        tail = self.get_argument("tail", "200")
        if not (tail.isascii() and tail.isdigit() and len(tail) <= 6 and int(tail) <= 100_000):
            raise InvalidRequest("'tail' must be a whole number from 0 to 100000.")
        await self.call(self.core.projects.get, self.user, name)  # 404 for an unknown project, as everywhere
        lines = await self.call(lambda: list(self.core.containers.logs(self.user, name, tail=int(tail))))
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
        metric = self.text_field(self.get_argument("metric", None), "metric")
        mode = self.text_field(self.get_argument("mode", None), "mode", ("min", "max"))
        self.send(await self.call(self.core.checkpoints, self.user, name, metric, mode))


#: Bounds of a retention policy: beyond them a number is a mistake (and 10**400 days is not a date).
MAX_KEEP = 1_000_000
MAX_DAYS = 100_000


def retention_policy(handler: DS01Handler, body: dict) -> dict:
    """keep_last, keep_best, metric, mode and older_than (from older_than_days) of a body, each checked."""
    policy = {}
    for key in ("keep_last", "keep_best"):
        value = _whole_number(body.get(key), key, MAX_KEEP)
        if value is not None:
            policy[key] = value
    days = body.get("older_than_days")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 <= days <= MAX_DAYS:
            raise InvalidRequest(f"'older_than_days' must be a number from 0 to {MAX_DAYS}.")
        policy["older_than"] = days * 86400
    metric = handler.text_field(body.get("metric"), "metric")
    if metric is not None:
        policy["metric"] = metric
    policy["mode"] = handler.text_field(body.get("mode"), "mode", ("min", "max"))
    return policy


class PruneHandler(DS01Handler):
    """Preview what a retention policy would delete; delete only with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body()
        policy = retention_policy(self, body)
        confirm = _flag(body.get("confirm"), "confirm")
        self.send(await self.call(self.core.prune_checkpoints, self.user, name, confirm, **policy))


#: Most bytes a --larger-than may name (an exabyte: beyond, a mistake).
MAX_SIZE = 2**60


class UsageHandler(DS01Handler):
    @web.authenticated
    @authorized
    async def get(self):
        larger = self.get_argument("larger_than", None)
        if larger is not None:
            if not larger.isdigit() or int(larger[:19]) > MAX_SIZE or len(larger) > 19:
                raise InvalidRequest(f"'larger_than' must be a number of bytes from 0 to {MAX_SIZE}.")
            larger = int(larger)
        self.send(await self.call(self.core.usage, self.user, larger))


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
            raise NotFound(f"No operation {op_id[:80]!r} on this server.", hint="GET /ds01/operations lists them.")
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
            operations = [
                o.to_dict(lines=False) for o in self.settings["ds01_operations"].list() if o.state == "running"
            ]
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
