"""DS01Spawner: a hub user's named server is one of their projects, in its GPU container.

Built on DockerSpawner (its traits, environment, state and options-form
machinery) with every DS01-specific step delegated to the core: the workspace
mount, the per-project image, names and labels, the GPU allocator (the same
lock and labels as the command line and the server extension, so no path can
hand out a GPU twice), the per-user limits, and the persistence guard that
rescues work files before a container is removed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import threading
from datetime import timezone
from functools import partial
from pathlib import Path

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Bool, Callable, Int, Unicode, default

from ..core import DS01, Settings, User
from ..core import labels as L
from ..core.errors import (
    ContainerNotFound,
    DiskFull,
    DS01Error,
    Forbidden,
    InvalidRequest,
    LimitExceeded,
    ProjectNotFound,
    QuotaExceeded,
    StateConflict,
    UnsavedWork,
)
from ..core.frameworks import image_ref
from ..core.limits import format_size
from ..core.names import container_name
from ..core.processes import report_lines
from ..core.requests import ServerOptions
from ..core.statefile import read_json, remove, write_atomic
from ..settings_traits import SettingsOptions
from . import form
from .image import ensure_singleuser, has_singleuser, project_outdated
from .network import bridge_ip  # noqa: F401 - where configs written for earlier versions import it
from .options import OptionsRefused, refusal, refused_settings
from .progress import build_quietly

INTERFACE = "jupyterhub"
#: Where the whole log of a project image's build is kept, in the project.
BUILD_LOG = "results/logs/image-build.log"
_cores: dict[tuple, DS01] = {}
_cores_lock = threading.Lock()
#: Refused options already named in this hub's log (each once, not once per user).
_told: set[str] = set()


class SpawnRefused(web.HTTPError):
    """A core error shown as it is on the hub's spawn page and in REST answers."""

    def __init__(self, err: DS01Error):
        super().__init__(err.status, log_message=str(err).replace("%", "%%"))  # tornado %-formats it
        self.jupyterhub_message = str(err)
        self.error = err


def unix_user(name: str) -> User:
    """The default mapping: the hub user is the Unix account of the same name."""
    return User.from_name(name)


def _check_options(spawner, options: dict) -> None:
    """user_options (from the form or the REST API) are read at start; here only checked, by the core's
    ServerOptions (core/requests.py): the same errors as the CLI, the REST API and ds01d give."""
    try:
        request = ServerOptions.from_dict(options)
        if request.framework is not None:
            image_ref(spawner.core.settings, request.framework)  # a name not configured: refused, listing them
    except DS01Error as err:
        raise SpawnRefused(err) from None


class DS01Spawner(DockerSpawner, SettingsOptions):
    """Named server = project; its container is the project's GPU container with /workspace mounted.

    The core's settings are SettingsOptions (declared once, with the server extension); what the options
    inherited from DockerSpawner and Spawner do here is in hub/options.py.
    """

    singleuser_image = Unicode("ds01/singleuser:latest", config=True,
                               help="Image with jupyterhub-singleuser, JupyterLab and ds01-jupyter that project images "
                               "for the hub are built FROM (their default Dockerfile says so). Built from "
                               "singleuser_wheels with the shipped singleuser.Dockerfile when missing, and again (with "
                               "a notice on the spawn page) when the hub's JupyterHub or ds01-jupyter is another "
                               "version than the one inside; project images built on an older one are rebuilt too.")
    singleuser_wheels = Unicode("", config=True,
                                help="Folder of wheels filled by `ds01-hub wheels` (JupyterHub, JupyterLab and "
                                "ds01-jupyter with their dependencies, for the base image's Python) to build "
                                "singleuser_image without a registry; checked when the hub starts.")
    user_mapper = Callable(
        None,
        allow_none=True,
        config=True,
        help="Function of the hub user name returning the ds01 User (name, uid, gid, home) that owns "
        "the projects. None: the Unix account of the same name. For hubs whose users are not Unix "
        "accounts, a function giving each a fixed uid and a home (examples/jupyterhub_config.py shows one).",
    )
    default_project = Unicode("default", config=True,
                              help="Project of the default (unnamed) server when the options form names none.")
    create_projects = Bool(
        True,
        config=True,
        help="Create the project when a named server of a new name is started (named server = project).",
    )
    default_gpus = Int(None, allow_none=True, config=True,
                       help="GPUs when the form asks for none: None means one where the host has any, else CPU-only.")
    enforce_limits_in_poll = Bool(True, config=True,
                                  help="Apply the user's idle_timeout and max_runtime (the same reaper as the command "
                                  "line) on each poll; the hub's activity counts as activity. An overdue server is "
                                  "stopped through the guard, its work rescued.")

    @default("cmd")
    def _default_cmd(self):
        return ["jupyterhub-singleuser"]

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        return True  # the hub reaches the container on its bridge address; nothing is published

    @default("options_form")
    def _default_options_form(self):
        return self._render_form

    @default("options_from_form")
    def _default_options_from_form(self):
        return form.parse

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return _check_options

    project = Unicode("", help="The project this server runs (set at start, kept in the state).")

    @default("object_name")
    def _object_name_default(self):
        # DockerSpawner re-renders the name whenever the image changes: keep DS01's name.
        if self.project:
            return container_name(self.project, self.ds01_user.name)
        return super()._object_name_default()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._events: list[dict] = []
        self._starting = False
        # One retire at a time: a start given up on (_deploy) and the hub's stop may both retire the container.
        self._retire_lock = threading.Lock()
        # Checked here, before start() sets the image: a refused option is named in the log when the hub makes its
        # spawners at start-up, and refuses every spawn (see hub/options.py).
        self.refused_options = refused_settings(self)
        for name in self.refused_options:
            if name not in _told:
                _told.add(name)
                self.log.error(refusal(name))

    # -- the core and the DS01 user --------------------------------------------------
    def core_settings(self) -> Settings:
        # Project Dockerfiles written for the hub start FROM the single-user image.
        return Settings.from_config(self, base_image=self.singleuser_image, interface=INTERFACE)

    @property
    def core(self) -> DS01:
        """One core per configuration, shared by all spawners of the hub."""
        settings = self.core_settings()
        key = (settings, *self.backends_key())
        with _cores_lock:
            if key not in _cores:
                _cores[key] = DS01(settings, **self.core_parts(settings))
            return _cores[key]

    @property
    def ds01_user(self) -> User:
        mapper = self.user_mapper or unix_user
        try:
            return mapper(self.user.name)
        except DS01Error as err:
            raise SpawnRefused(err) from None

    def _project_name(self) -> str:
        """Named server = project; the default server runs the project chosen on the form."""
        chosen = self.user_options.get("project")
        if self.name and chosen and chosen != self.name:
            raise SpawnRefused(InvalidRequest(
                f"This server is named {self.name!r}, so it runs project {self.name!r}, not {chosen!r}.",
                hint=f"Start a server named {chosen!r} for that project.",
            ))
        return self.name or chosen or self.default_project

    async def _call(self, fn, *args, **kwargs):
        """Run a blocking core call off the event loop; its errors become messages for the user."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, partial(fn, *args, **kwargs))
        except DS01Error as err:
            raise SpawnRefused(err) from None
        except PermissionError as err:  # a file in the user's home that is not theirs: said plainly, not a 500
            raise SpawnRefused(Forbidden(
                f"Permission denied: {err.filename or err}.",
                hint="Files and folders in your home must be yours; ask the admin to give this one back "
                f"(chown -R {self.user.name}: PATH)."
            )) from None

    # -- state ------------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        if self.project:
            state["project"] = self.project
        return state

    def load_state(self, state):
        super().load_state(state)
        self.project = state.get("project", "") or self.project

    def clear_state(self):
        super().clear_state()
        self.object_id = ""

    # -- progress ---------------------------------------------------------------------
    def _say(self, message: str, progress: int) -> None:
        """Record a spawn-page message (called from worker threads too)."""
        self._events.append({"progress": progress, "message": message})

    async def progress(self):
        """The spawn page's messages as they happen: image build, GPU allocation, start, waiting."""
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if not self._starting and self.pending != "spawn":
                break
            await asyncio.sleep(0.3)

    # -- the options form ---------------------------------------------------------------
    async def _render_form(self, spawner):
        user = self.ds01_user
        data = await self._call(self._form_data, user)
        return form.render(**data)

    def _form_data(self, user: User) -> dict:
        core = self.core
        images = {i.project: i.tag for i in core.images.list(user)}
        running = {c.project for c in core.containers.list(user) if c.running}
        projects = [
            {"name": p.name, "image": images.get(p.name), "running": p.name in running}
            for p in core.projects.list(user)
        ]
        limits = core.limits.for_user(user)
        on_host = len(core.inventory.devices())
        max_gpus = min(x for x in (on_host, limits.max_mig_per_container, limits.max_mig_instances) if x is not None)
        default_gpus = self.default_gpus if self.default_gpus is not None else min(1, max_gpus)
        notices = [f"{p['name']}: {n['message']}" for p in projects if (n := self._last_stop(user, p["name"]))]
        return {"projects": projects, "selected": self.name or self.default_project, "max_gpus": max_gpus,
                "default_gpus": min(default_gpus, max_gpus), "notices": notices,
                "frameworks": sorted(core.settings.frameworks())}

    # -- what happened at the last stop, told at the next start and on the form ------------
    def _notice_file(self, user: User, project: str) -> Path:
        return self.core.settings.expand(self.core.settings.state_dir, user) / "hub" / f"{project}.json"

    def _last_stop(self, user: User, project: str) -> dict | None:
        return read_json(self._notice_file(user, project), user)

    def _tell(self, user: User, project: str, message: str) -> None:
        self.log.warning("ds01 %s/%s: %s", user.name, project, message)
        try:
            write_atomic(self._notice_file(user, project), json.dumps({"message": message}), user)
        except OSError:
            pass  # the log has it; the notice is a convenience

    def _keep_log(self, user: User, project: str, text: str) -> str | None:
        """Keep a build's whole log in the project's results/logs (readable in JupyterLab, out of git and of
        the build context), written as the user; where it is, for the message."""
        path = self.core.projects.root(user) / project / BUILD_LOG
        try:
            write_atomic(path, text, user)
        except OSError:
            return None
        return f"{project}/{BUILD_LOG}"

    # -- start ------------------------------------------------------------------------------
    async def start(self):
        """Create the project if needed, build its image, allocate GPUs and start the container
        with jupyterhub-singleuser as its main process; return the bridge address."""
        self._events = []
        self._starting = True
        given_up = threading.Event()  # this start's own: a newer start never clears it
        try:
            if self.refused_options:
                raise SpawnRefused(OptionsRefused(self.refused_options))
            user = self.ds01_user
            self.project = self._project_name()
            self.object_name = container_name(self.project, user.name)
            _check_options(self, self.user_options)  # hubs before apply_user_options do not check them
            gpus = self.user_options.get("gpus", self.default_gpus)
            self.image = await self._call(self._prepare, user, self.project)
            self.object_name = container_name(self.project, user.name)  # setting image re-renders it
            request = await self._call(self.container_request, user)
            self._say("Allocating the GPU and creating the container", 60)
            result = await self._call(
                self._deploy, given_up, user, self.project, gpus=gpus,
                progress=lambda line: self._say(line, 70), command=request["command"], env=request["env"],
                framework=self.user_options.get("framework"), memory_cap=request["memory_cap"],
                cpus_cap=request["cpus_cap"],
            )
            for notice in result.notices:
                self._say(notice, 75)
            self.object_id = result.container.id
            if request["post_start"]:
                await self._post_start(user, request["post_start"])
            self._say("Waiting for the server to answer", 80)
            return await self.get_ip_and_port()
        except asyncio.CancelledError:  # start_timeout, a shutdown: the hub polls, then stops what poll finds
            given_up.set()
            raise
        finally:
            self._starting = False

    def _deploy(self, given_up: threading.Event, user: User, project: str, **kwargs):
        """The deploy of a start, in its thread, which outlives a start the hub gave up on meanwhile: what it
        made then is retired here (the hub's poll found nothing yet, so it never calls stop): no server is left
        running unseen, holding a GPU. Unless a newer start of the same project is under way: its deploy takes
        the running container."""
        result = self.core.containers.deploy(user, project, **kwargs)
        if not given_up.is_set() or (self._starting and self.project == project):
            return result
        self._retire(user, project, "the hub gave up on this start (start_timeout)")
        raise SpawnRefused(StateConflict(f"The start of {project} was given up; its container was retired."))

    def container_request(self, user: User) -> dict:
        """What the honoured options (hub/options.py HONOURED) make of this server's container: its command and
        environment, the ceilings on the user's limits, and the command to run once it started."""
        env = self.get_env()
        limits = self.core.limits.for_user(user).capped(self.mem_limit, self.cpu_limit)
        # The sidebar inside cannot read the admin's limits file: hand in the container's effective limits.
        env["DS01_LIMITS"] = json.dumps(limits.to_dict())
        command = list(self.cmd) + self.get_args()
        if user.uid == 0:
            command.append("--allow-root")
        return {"command": command, "env": env, "memory_cap": self.mem_limit, "cpus_cap": self.cpu_limit,
                "post_start": shlex.split(self.post_start_cmd) if self.post_start_cmd else None}

    async def _post_start(self, user: User, command: list[str]) -> None:
        """post_start_cmd, run as the user (containers.exec never runs as anyone else); a failure is said, the
        server still starts, as in DockerSpawner."""
        try:
            code, output = await self._call(self.core.containers.exec, user, self.project, command)
            text = output.decode("utf-8", "replace").strip()
        except SpawnRefused as err:
            code, text = None, err.jupyterhub_message
        if code == 0:
            if text:
                self.log.info("ds01 post_start_cmd in %s: %s", self.object_name, text)
            return
        self.log.warning("ds01 post_start_cmd in %s failed (exit %s): %s", self.object_name, code, text)
        self._say(f"post_start_cmd failed (exit {code}): {text[-300:]}", 78)

    def _prepare(self, user: User, project: str) -> str:
        """Project, image and limits before any container: fail early with the limit named."""
        core = self.core
        try:
            core.projects.get(user, project)
        except ProjectNotFound:
            if not (self.create_projects or self.user_options.get("create")):
                raise
            core.projects.create(user, project)
            self._say(f"Created project {project} in {core.projects.root(user)}", 5)
        notice = self._last_stop(user, project)
        if notice:
            self._say(f"When {project} last stopped: {notice['message']}", 5)
            remove(self._notice_file(user, project), user)
        self._replace_stale_container(user, project)
        usage = core.containers.limits_and_use(user)
        limit = core.limits.for_user(user).max_containers_per_user
        if limit is not None and usage["containers"] is not None and usage["containers"] >= limit:
            raise LimitExceeded(
                f"Container limit reached: you have {usage['containers']} containers and your limit "
                f"max_containers_per_user is {limit}.",
                hint="Stop one of your servers (or `container-retire NAME`) first.",
                limit="max_containers_per_user", value=limit, current=usage["containers"],
            )
        singleuser = ensure_singleuser(core.engine, self.singleuser_image, self.base_image, self.singleuser_wheels,
                                       self._say, self.log)
        image = core.images.current(user, project)
        if image is None and self.user_options.get("framework"):
            self._say(
                f"{project} has no image: the deploy runs on the {self.user_options['framework']} framework image", 30
            )
            return core.images.tag(user, project)
        stale = project_outdated(image, singleuser)
        if not has_singleuser(image) or stale:
            self._say(f"Building the image of {project}" + (" again: the single-user image it is built on was "
                                                            "rebuilt" if stale else ""), 30)
            dockerfile = core.images.dockerfile(user, project)
            image = build_quietly(partial(core.images.build, user, project), lambda m: self._say(m, 40),
                                  f"Image of {project}", partial(self._keep_log, user, project))
            if not has_singleuser(image):
                raise InvalidRequest(
                    f"The image of {project} has no jupyterhub-singleuser: {dockerfile} is not built FROM "
                    f"{self.singleuser_image}.",
                    hint=f"Change its FROM line to {self.singleuser_image} (or install jupyterhub and jupyterlab in "
                    "it and add LABEL ds01.singleuser=true), then start the server again.",
                )
        return core.images.tag(user, project)

    def _replace_stale_container(self, user: User, project: str) -> None:
        """A container of the project left by an earlier hub run is retired (work rescued);
        one made by the command line or JupyterLab is the user's, and is not touched."""
        try:
            status = self.core.containers.status(user, project)
        except ContainerNotFound:
            return
        if status.interface != INTERFACE:
            raise StateConflict(
                f"Project {project} already has a container ({status.name}, {status.state}) made from "
                f"{status.interface or 'another tool'}; the hub will not replace it.",
                hint=f"Retire it first (`container-retire {project} --rescue`), then start the server again.",
            )
        self._say(f"Retiring the earlier container {status.name} (its work is rescued first)", 8)
        self._retire(user, project)

    # -- poll, address --------------------------------------------------------------------
    async def poll(self):
        try:
            return await self._poll()
        except Exception:
            self.log.exception("ds01 poll of %s failed", self.object_name)
            raise

    async def _poll(self):
        """None while the server runs. A container that stopped, or that is past the user's
        idle or runtime limit, is retired here through the guard: the hub calls stop()
        only for servers that poll says are running."""
        name = self.object_id or self.object_name
        if not name or not self.project:
            return 0
        user = self.ds01_user
        record = await self._call(self.core.engine.get_container, name)
        if record is None:
            return 0
        if not record.running:
            await self._call(self._retire, user, self.project, f"the server exited ({record.exit_code})")
            return record.exit_code or 1
        self.object_id = record.id
        if self.enforce_limits_in_poll and record.labels.get(L.PROTECTED) != "true":
            reason = await self._call(self._overdue, user, record.id)
            if reason:
                await self._call(self._retire, user, self.project, f"the server was stopped: {reason}")
                return 1
        return None

    def _overdue(self, user: User, container_id: str) -> str:
        """The reaper's reason to stop this container now, or ''. The hub's activity counts as activity."""
        reaper = self.core.reaper
        last = getattr(self.orm_spawner, "last_activity", None) if self.orm_spawner is not None else None
        if last is not None:
            when = (last if last.tzinfo else last.replace(tzinfo=timezone.utc)).timestamp()  # the hub stores naive UTC
            if when > reaper.last_active(user).get(container_id, 0):  # never move activity back in time
                reaper.mark_active(user, container_id, when)
        for decision in reaper.run(user, dry_run=True):
            if decision.container == self.object_name:
                self.log.debug("ds01 reaper on %s: %s (%s)", decision.container, decision.action, decision.reason)
                if decision.action == "stop":
                    return decision.reason
        return ""

    async def get_ip_and_port(self):
        record = await self._call(self.core.engine.get_container, self.object_id)
        if record is None or not record.ip_address:
            raise SpawnRefused(StateConflict(f"The container {self.object_name} has no network address; it stopped."))
        return record.ip_address, self.port

    # -- stop: retire through the persistence guard ---------------------------------------
    async def stop(self, now=False):
        if self.project:
            user = self.ds01_user
            await self._call(self._retire, user, self.project)
        self.clear_state()

    def _retire(self, user: User, project: str, reason: str = "") -> None:
        """Rescue work files into the workspace (within the quota), then remove the container.

        Without room for the rescue the container is only stopped, so nothing is lost,
        and the user is told why; the next start tries again.

        The hub cannot ask the user, and its stop must end the server: processes still running
        (a cell, a background job) get SIGTERM and stop_grace_seconds to save before SIGKILL,
        the rescue runs after they ended, and the user is told which were stopped (the log, and
        the notice shown at the next start and on the form): never silently.
        """
        said = [reason[0].upper() + reason[1:] + "."] if reason else []
        try:
            with self._retire_lock:
                result = self.core.guard.retire(user, project, mode="rescue", stop_processes=True)
        except ContainerNotFound:
            return
        except (QuotaExceeded, DiskFull, UnsavedWork) as err:
            # The server must end: the container is kept, stopped. After a refused rescue (UnsavedWork) its
            # processes were stopped and its memory copied already; after no room, the stop copies what fits.
            kept, lines = "kept (stopped)", []
            try:
                with self._retire_lock:
                    _, report = self.core.containers.stop_with_report(
                        user, project, stop_processes=True, policy=True, force=isinstance(err, UnsavedWork))
                lines = report_lines(report)[:6]
            except DS01Error as stop_err:
                kept = f"kept, and could not be stopped ({stop_err})"
            self._tell(user, project, " ".join(
                said + lines + [f"The container was {kept}: its work could not all be rescued: {err}"]))
            return
        stopped = result.get("processes")
        if stopped and stopped.get("count"):
            said.extend(report_lines(stopped)[:6])
        rescued = result.get("rescued")
        if rescued and rescued["files"]:
            folder = os.path.relpath(rescued["folder"], self.core.projects.root(user))
            said.append(f"{rescued['files']} file(s) ({format_size(rescued['bytes'])}) written outside /workspace "
                        f"were rescued into {folder}.")
        if said:
            self._tell(user, project, " ".join(said))
        else:
            remove(self._notice_file(user, project), user)
