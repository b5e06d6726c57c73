"""The server extension's backend inside a project's container (a JupyterHub single-user server).

The handlers are the host's (handlers.py); :class:`InsideBackend` answers them here.
There is no Docker access in there and no need for it: the server's own
project is mounted at /workspace, the guard scans the container's filesystem
from inside (a walk compared with the snapshot taken when the server started,
which is the image's files since every server starts in a fresh container),
"rescue" copies the work files found into /workspace/.rescued/ while the
server keeps running (container_rescue.py), and "stop" asks the hub to stop
this server, which retires the container through the persistence guard on
the host. What needs the engine or the user's other projects (deploy, build,
start, terminal, logs, usage, clean, where, images) answers NotAvailableHere
(409), saying where to do it.
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

from tornado import httpclient

from ..core import DS01
from ..core.errors import EngineUnavailable, Forbidden, InvalidRequest, NotFound
from ..core.findings import PROCESS, Audit, layer_findings, rank, tmpfs_findings
from ..core.limits import Limits
from ..core.processes import refusal
from ..core.statefile import write_atomic
from .backend import Accepted, Backend, NotAvailableHere
from .container_rescue import known_quota, rescue_inside
from .events import EventHub
from .operations import Operations

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


def setup(app) -> InsideBackend:
    """The backend inside a container: no engine, the one project at /workspace."""
    from ..core import User

    settings = app.core_settings().with_(interface="jupyterhub")
    guard = InsideGuard(os.environ["DS01_PROJECT"])
    guard.start()
    core = ContainerCore(settings)
    backend = InsideBackend(core, User.current(), guard)
    app.log.info("ds01: inside the container of project %s (no Docker access needed)", guard.project)
    return backend


class ContainerCore(DS01):
    """The core's checkpoint and disk views on the one project mounted at /workspace."""

    def checkpoints_dir(self, user, project):
        return WORKSPACE / "models"


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


def handed_limits() -> dict | None:
    """The user's limits if the hub handed them in (DS01_LIMITS, Limits.to_dict() as JSON); else None."""
    try:
        data = json.loads(os.environ.get("DS01_LIMITS") or "null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


#: Where each thing this server cannot do from inside its container is done instead.
ELSEWHERE = {
    "create": "Create projects from the hub's home page (the server's form) or with `ds01 project-init` on the host.",
    "deploy": "This server is the project's container: the hub deployed it. Start another from the hub's home page.",
    "build": "Images are built by the hub when it starts a server, or with `ds01 image-build` on the host.",
    "start": "This server's container is running: it is this server.",
    "terminal": "Open a terminal in JupyterLab: here it already runs inside the project's container.",
    "logs": "This server's output is in the hub's log; a program's own output is in results/logs/.",
    "usage": "Disk use of all your projects is shown on the host (`ds01 usage`); here only /workspace is mounted.",
    "clean": "Clean up from the host (`ds01 clean`), where the project's folder and its retired containers are.",
    "where": "Look for files from the host (`ds01 where`); here only /workspace and this container are seen.",
    "images": "Images are kept by the engine on the host (`ds01 image-list`, `ds01 image-prune`).",
}


def running_work() -> list:
    """The user's running work in this container (its processes, read here: the same look the guard makes from the
    host), the Jupyter server and idle kernels apart."""
    from ..core import inside
    from ..core.processes import process_findings

    found, _ = process_findings(inside.processes({"sample": 0.5}), WORKSPACE)
    return [f for f in found if f.kind == PROCESS]


class InsideBackend(Backend):
    """The handlers' backend inside a hub server's container: its own project only, no engine (module docstring)."""

    mode = "container"

    def __init__(self, core: ContainerCore, user, guard: InsideGuard):
        super().__init__(user)
        self.core, self.guard, self.project_name = core, guard, guard.project
        self.events = EventHub(core, user)  # never started: nothing changes from in here but the snapshot
        self.operations = Operations(self.events.publish)

    def version(self) -> dict:
        return {"mode": "container", "project": self.project_name}

    def check_project(self, name: str) -> None:
        if name != self.project_name:
            raise NotFound(f"This server runs project {self.project_name!r} only, not {name!r}.")

    @staticmethod
    def _elsewhere(what: str):
        raise NotAvailableHere(f"Not available inside a hub server's container ({what}).", hint=ELSEWHERE[what])

    async def overview(self, user):
        return overview(user.name, self.project_name)

    async def project(self, user, name):
        data = overview(user.name, self.project_name)
        return {**data["projects"][0], "engine": data["engine"], "dockerfile": None}

    async def create_project(self, user, name):
        self._elsewhere("create")

    async def deploy(self, user, request):
        self._elsewhere("deploy")

    async def build(self, user, name):
        self._elsewhere("build")

    async def start(self, user, name):
        self._elsewhere("start")

    async def terminal(self, user, name):
        self._elsewhere("terminal")

    async def logs(self, user, name, tail):
        self._elsewhere("logs")

    async def storage(self, user, larger_than):
        self._elsewhere("usage")

    async def clean(self, user, name, policy, confirm):
        self._elsewhere("clean")

    async def where(self, user, name, pattern):
        self._elsewhere("where")

    async def images(self, user):
        self._elsewhere("images")

    async def prune_images(self, user, confirm):
        self._elsewhere("images")

    async def audit(self, user, name):
        return (await self.run(self.guard.audit)).to_dict(limit=500)

    async def rescue(self, user, name, request):
        """Copy the work files at risk into /workspace/.rescued/ now, while the server keeps running."""

        def work():
            return rescue_inside(self.guard.audit(), WORKSPACE, known_quota(handed_limits())).to_dict()

        return await self.run(work)

    async def checkpoints(self, user, name, query):
        return await self.run(self.core.checkpoints, user, name, query.metric, query.mode)

    async def prune(self, user, name, policy, confirm):
        return await self.run(self.core.prune_checkpoints, user, name, confirm, **policy.rules())

    async def gpus(self):
        """This container's GPUs: NVML's details where it works in here, else the uuids it was given.

        Holders come from the engine's labels on the host; in here every GPU seen is this project's own.
        """
        visible = visible_gpus()
        holder = {"user": self.user.name, "project": self.project_name,
                  "container": os.environ.get("DS01_CONTAINER", "")}
        inventory = self.core.inventory
        try:
            devices = await self.run(inventory.devices)
        except Exception:  # noqa: BLE001 - NVML inside a container fails in many ways; the uuids still stand
            devices = []
        gpus = [{**d.to_dict(), "holder": holder} for d in devices if not visible or d.uuid in visible]
        notice = "" if gpus else inventory.notice
        if not gpus and visible:
            gpus = [{"uuid": u, "index": str(i), "name": "GPU", "memory_total": 0, "memory_used": 0,
                     "utilization": None, "holder": holder} for i, u in enumerate(visible)]
            notice = "GPU details need NVML inside the container."
        return {"gpus": gpus, "notice": notice}

    async def limits(self, user):
        """The host's answer with the engine down: limits if the hub handed them in, no use (known on the host)."""
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
        return {"user": user.name, "limits": limits, "limits_readable": readable, "containers": None,
                "running": None, "gpu_slots": None, "gpus": visible_gpus(), "disk": None,
                "engine": {"available": False, "reason": why}}

    async def stop(self, user, name, request):
        """Stop this server through the hub, which rescues work files and removes the container (202). The hub
        stops the processes it finds (SIGTERM, the grace): so running work is looked for here first, and the
        stop refused (409, the same ``processes`` as on the host) unless ``stop_processes`` was asked."""
        if not request.stop_processes:
            running = await asyncio.get_running_loop().run_in_executor(None, running_work)
            if running:
                raise refusal(self.project_name, running, "Stopping",
                              hint="Let them finish, or stop with stop_processes (SIGTERM, then SIGKILL after the "
                                   "grace period), so what they save on SIGTERM is kept.")
        api = os.environ.get("JUPYTERHUB_API_URL")
        token = os.environ.get("JUPYTERHUB_API_TOKEN")
        hub_user = os.environ.get("JUPYTERHUB_USER")
        if not (api and token and hub_user):
            raise InvalidRequest("This server was not started by JupyterHub; stop it where it was started.")
        server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        base = api.rstrip("/")
        url = f"{base}/users/{hub_user}/servers/{server}" if server else f"{base}/users/{hub_user}/server"
        headers = {"Authorization": f"token {token}"}
        client = httpclient.AsyncHTTPClient()
        # Ask first whether this server's token may stop it, so a refusal reaches the user.
        try:
            whoami = await client.fetch(f"{base}/user", headers=headers, raise_error=False)
        except OSError as err:
            raise EngineUnavailable(f"The hub cannot be reached: {err}") from None
        scopes = set(json.loads(whoami.body or b"{}").get("scopes", [])) if whoami.code == 200 else set()
        wanted = {"servers", f"servers!user={hub_user}", f"servers!server={hub_user}/{server}"}
        if not scopes & wanted:
            raise Forbidden(
                "The hub does not let this server stop itself.",
                hint="Stop it from the hub's home page, or give the hub's 'server' role the scope servers!server.",
            )

        async def delete():
            # The hub removes this very container while answering: the answer never
            # comes back here, so the request is sent after ours has been answered.
            try:
                await client.fetch(url, method="DELETE", headers=headers, raise_error=False, request_timeout=300)
            except OSError:
                pass

        asyncio.get_running_loop().call_later(0.2, lambda: _background.add(asyncio.ensure_future(delete())))
        return Accepted({"project": self.project_name, "stopping": True,
                         "message": "The hub is stopping this server; work files outside /workspace are rescued "
                         "into .rescued/ before its container is removed."})

    async def retire(self, user, name, request):
        """Inside, retiring is stopping: the hub retires the container through the guard on the host."""
        return await self.stop(user, name, request)
