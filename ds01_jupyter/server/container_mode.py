"""The server extension inside a project's container (a JupyterHub single-user server).

There is no Docker access in there and no need for it: the server's own
project is mounted at /workspace, the guard scans the container's filesystem
from inside (a walk compared with the snapshot taken when the server started,
which is the image's files since every server starts in a fresh container),
"rescue" copies the work files found into /workspace/.rescued/ while the
server keeps running (container_rescue.py), and "stop" asks the hub to stop
this server, which retires the container through the persistence guard on
the host.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from dataclasses import fields
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import httpclient, web
from tornado.iostream import StreamClosedError

from ..core import DS01
from ..core.errors import EngineUnavailable, Forbidden, InvalidRequest, NotFound
from ..core.findings import Audit, layer_findings, rank, tmpfs_findings
from ..core.limits import Limits
from ..core.statefile import write_atomic
from .container_rescue import known_quota, rescue_inside
from .handlers import HEARTBEAT, ApiError, CheckpointsHandler, DS01Handler, NotebookCheckHandler, PruneHandler

WORKSPACE = Path("/workspace")
BASELINE = Path("/tmp/.ds01/baseline.json")
#: Never walked: kernel filesystems, the workspace itself, our own state.
SKIP = ("/proc", "/sys", "/dev", "/run", str(WORKSPACE), "/tmp/.ds01")
_background: set = set()  # tasks kept referenced until the process ends


def active() -> bool:
    """True inside a DS01 container made for a hub server (the single-user image sets DS01_MODE)."""
    return os.environ.get("DS01_MODE") == "container" and bool(os.environ.get("DS01_PROJECT"))


def snapshot(root: str = "/") -> dict[str, list]:
    """path -> [size, mtime_ns, S_IFMT] of every entry the server's user can see."""
    out: dict[str, list] = {}
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in SKIP]
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            out[path] = [st.st_size, st.st_mtime_ns, stat.S_IFMT(st.st_mode)]
    return out


class InsideGuard:
    """The persistence guard from inside: new or changed files since the server started."""

    def __init__(self, project: str):
        self.project = project
        self._baseline: dict | None = None
        self._since_ns = 0
        self._ready = threading.Event()

    def start(self) -> None:
        # Before the server listens: a file the user writes once the hub shows the server ready
        # must never slip into the baseline (in a thread, a slow walk reached /tmp after the write).
        self._load_baseline()

    def _load_baseline(self) -> None:
        # Taken before the walk (less a tick of the kernel's coarse clock): a file written while
        # the walk runs may enter the snapshot already changed, and still counts by its mtime.
        since = time.time_ns() - 100_000_000
        try:
            saved = json.loads(BASELINE.read_text())
            self._baseline, self._since_ns = saved["paths"], int(saved["since_ns"])
        except (OSError, ValueError, KeyError, TypeError):
            self._baseline, self._since_ns = snapshot(), since
            try:
                write_atomic(BASELINE, json.dumps({"since_ns": since, "paths": self._baseline}))
            except OSError:
                pass  # kept in memory; a restarted server takes a new one
        self._ready.set()

    def audit(self) -> Audit:
        started = time.monotonic()
        if not self._ready.wait(120):
            raise EngineUnavailable("The first scan of this container is still running; try again in a minute.")
        now = snapshot()
        base = self._baseline or {}
        audit = Audit(self.project, os.environ.get("DS01_CONTAINER", ""), "running")
        changed = {p: v for p, v in now.items()
                   if (base.get(p) != v or v[1] >= self._since_ns) and not p.startswith("/dev/shm/")}
        audit.added = {p for p in changed if p not in base}
        stats = {p: (v[0], v[2] == stat.S_IFREG, v[2]) for p, v in changed.items()}
        # The same classification and grouping as the host's guard.
        audit.add(*layer_findings(stats))
        shm = [[p, v[0], v[2]] for p, v in snapshot("/dev/shm").items() if v[2] == stat.S_IFREG]
        audit.add(*tmpfs_findings(shm))
        audit.findings = rank(audit.findings)
        audit.notes.append("Scanned from inside the container; the hub rescues work files when this server stops.")
        audit.seconds = time.monotonic() - started
        return audit


def setup(app) -> None:
    """Settings for the handlers inside a container: no engine, the one project at /workspace."""
    from .. import __version__
    from ..core import User

    settings = app.core_settings().with_(interface="jupyterhub")
    guard = InsideGuard(os.environ["DS01_PROJECT"])
    guard.start()
    app.core = ContainerCore(settings)
    app.settings.update(ds01_core=app.core, ds01_user=User.current(), ds01_inside_guard=guard, ds01_version=__version__)
    app.log.info("ds01: inside the container of project %s (no Docker access needed)", guard.project)


class ContainerCore(DS01):
    """The core's checkpoint and disk views on the one project mounted at /workspace."""

    def checkpoints_dir(self, user, project):
        return WORKSPACE / "models"


# -- handlers --------------------------------------------------------------------------
class InsideHandler(DS01Handler):
    @property
    def project(self) -> str:
        return os.environ["DS01_PROJECT"]

    def check_project(self, name: str) -> None:
        if name != self.project:
            raise ApiError(NotFound(f"This server runs project {self.project!r} only, not {name!r}."))


class VersionHandler(InsideHandler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send({"version": self.settings["ds01_version"], "api": 1, "mode": "container", "project": self.project})


def visible_gpus() -> list[str]:
    """The GPUs this container was given (the same list the spawner allocated)."""
    return [u for u in os.environ.get("NVIDIA_VISIBLE_DEVICES", "").split(",") if u and u != "void"]


def overview(user_name: str, project: str) -> dict:
    """The host's overview, for the one project of this container (the sidebar reads the same shape)."""
    gpus = visible_gpus()
    container = {"name": os.environ.get("DS01_CONTAINER", ""), "state": "running", "running": True,
                 "project": project, "gpus": gpus, "gpu_slots": len(gpus), "interface": "jupyterhub"}
    return {
        "user": user_name, "mode": "container",
        "engine": {"available": False, "reason": "This server runs inside its project's container."},
        "projects": [{"name": project, "path": str(WORKSPACE), "container": container, "image": None,
                      "size": None, "warnings": 0}],
    }


class ProjectsHandler(InsideHandler):
    @web.authenticated
    @authorized
    async def get(self):
        self.send(overview(self.user.name, self.project))


class ProjectHandler(InsideHandler):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.check_project(name)
        data = overview(self.user.name, self.project)
        self.send({**data["projects"][0], "engine": data["engine"], "dockerfile": None})


class EventsHandler(InsideHandler):
    """The sidebar's event stream: the snapshot, then keep-alives (nothing else changes from in here)."""

    @web.authenticated
    @authorized
    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        snapshot = {"type": "snapshot", **overview(self.user.name, self.project), "operations": []}
        try:
            self.write(f"event: snapshot\ndata: {json.dumps(snapshot)}\n\n")
            await self.flush()
            while True:
                await asyncio.sleep(HEARTBEAT)
                self.write(": keep-alive\n\n")
                await self.flush()
        except StreamClosedError:
            pass


class AuditHandler(InsideHandler):
    @web.authenticated
    @authorized
    async def get(self, name):
        self.check_project(name)
        audit = await self.call(self.settings["ds01_inside_guard"].audit)
        self.send(audit.to_dict(limit=500))


def handed_limits() -> dict | None:
    """The user's limits if the hub handed them in (DS01_LIMITS, Limits.to_dict() as JSON); else None."""
    try:
        data = json.loads(os.environ.get("DS01_LIMITS") or "null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class GpusHandler(InsideHandler):
    """This container's GPUs: NVML's details where it works in here, else the uuids it was given.

    Holders come from the engine's labels on the host; in here every GPU seen is this project's own.
    """

    @web.authenticated
    @authorized
    async def get(self):
        visible = visible_gpus()
        holder = {"user": self.user.name, "project": self.project, "container": os.environ.get("DS01_CONTAINER", "")}
        inventory = self.core.inventory
        try:
            devices = await asyncio.get_running_loop().run_in_executor(None, inventory.devices)
        except Exception:  # noqa: BLE001 - NVML inside a container fails in many ways; the uuids still stand
            devices = []
        gpus = [{**d.to_dict(), "holder": holder} for d in devices if not visible or d.uuid in visible]
        notice = "" if gpus else inventory.notice
        if not gpus and visible:
            gpus = [{"uuid": u, "index": str(i), "name": "GPU", "memory_total": 0, "memory_used": 0,
                     "utilization": None, "holder": holder} for i, u in enumerate(visible)]
            notice = "GPU details need NVML inside the container."
        self.send({"gpus": gpus, "notice": notice})


class LimitsHandler(InsideHandler):
    """The host's answer with the engine down: limits if the hub handed them in, no use (it is known on the host)."""

    @web.authenticated
    @authorized
    async def get(self):
        limits = handed_limits()
        readable = None
        if limits is not None:
            known = {f.name for f in fields(Limits)}
            try:
                readable = Limits(**{k: v for k, v in limits.items() if k in known}).describe()
            except TypeError:
                limits = None
        why = "This server runs inside its project's container, where the use of your other containers is not known"
        why += "." if limits is not None else "; your limits are shown on the host (ds01 check-limits)."
        self.send({"user": self.user.name, "limits": limits, "limits_readable": readable, "containers": None,
                   "running": None, "gpu_slots": None, "gpus": visible_gpus(), "disk": None,
                   "engine": {"available": False, "reason": why}})


class RescueHandler(InsideHandler):
    """Copy the work files at risk into /workspace/.rescued/ now, while the server keeps running."""

    @web.authenticated
    @authorized
    async def post(self, name):
        self.check_project(name)
        guard = self.settings["ds01_inside_guard"]

        def work():
            return rescue_inside(guard.audit(), WORKSPACE, known_quota(handed_limits())).to_dict()

        self.send(await self.call(work))


class InsideCheckpointsHandler(CheckpointsHandler, InsideHandler):
    async def get(self, name):
        self.check_project(name)
        await super().get(name)


class InsidePruneHandler(PruneHandler, InsideHandler):
    async def post(self, name):
        self.check_project(name)
        await super().post(name)


class StopHandler(InsideHandler):
    """Stop (or retire) this server through the hub, which rescues work files and removes the container."""

    @web.authenticated
    @authorized
    async def post(self, name, action=None):
        self.check_project(name)
        api = os.environ.get("JUPYTERHUB_API_URL")
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        user = os.environ.get("JUPYTERHUB_USER")
        if not (api and token and user):
            raise ApiError(InvalidRequest("This server was not started by JupyterHub; stop it where it was started."))
        server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        base = api.rstrip("/")
        url = f"{base}/users/{user}/servers/{server}" if server else f"{base}/users/{user}/server"
        headers = {"Authorization": f"token {token}"}
        client = httpclient.AsyncHTTPClient()
        # Ask first whether this server's token may stop it, so a refusal reaches the user.
        try:
            whoami = await client.fetch(f"{base}/user", headers=headers, raise_error=False)
        except OSError as err:
            raise ApiError(EngineUnavailable(f"The hub cannot be reached: {err}")) from None
        scopes = set(json.loads(whoami.body or b"{}").get("scopes", [])) if whoami.code == 200 else set()
        wanted = {"servers", f"servers!user={user}", f"servers!server={user}/{server}"}
        if not scopes & wanted:
            raise ApiError(Forbidden(
                "The hub does not let this server stop itself.",
                hint="Stop it from the hub's home page, or give the hub's 'server' role the scope servers!server.",
            ))

        async def delete():
            # The hub removes this very container while answering: the answer never
            # comes back here, so the request is sent after ours has been answered.
            try:
                await client.fetch(url, method="DELETE", headers=headers, raise_error=False, request_timeout=300)
            except OSError:
                pass

        self.send({"project": self.project, "stopping": True,
                   "message": "The hub is stopping this server; work files outside /workspace are rescued into "
                   ".rescued/ before its container is removed."}, 202)
        asyncio.get_running_loop().call_later(0.2, lambda: _background.add(asyncio.ensure_future(delete())))


def handlers() -> list[tuple]:
    name = r"(?P<name>[^/]+)"
    return [
        (r"/ds01/version", VersionHandler),
        (r"/ds01/projects", ProjectsHandler),
        (rf"/ds01/projects/{name}", ProjectHandler),
        (r"/ds01/events", EventsHandler),
        (rf"/ds01/projects/{name}/audit", AuditHandler),
        (rf"/ds01/projects/{name}/rescue", RescueHandler),
        (rf"/ds01/projects/{name}/(?P<action>stop|retire)", StopHandler),
        (rf"/ds01/projects/{name}/checkpoints", InsideCheckpointsHandler),
        (rf"/ds01/projects/{name}/prune", InsidePruneHandler),
        (r"/ds01/notebook-check", NotebookCheckHandler),  # needs no engine: the same as on the host
        (r"/ds01/gpus", GpusHandler),
        (r"/ds01/limits", LimitsHandler),
    ]
