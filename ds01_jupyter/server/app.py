"""The ds01 server extension: configuration (traitlets) and wiring."""

from __future__ import annotations

import asyncio
import time

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Int, Unicode, default

from .. import __version__
from ..core import DS01, DS01Error, Settings, User
from ..kernels import provisioner
from ..kernels.specs import KernelSpecs
from ..service.address import SOCKET_HELP
from ..service.client import RemoteDS01, connect
from ..settings_traits import SettingsOptions
from . import container_mode
from .backend import Backend, HostBackend
from .events import EventHub
from .handlers import handlers
from .operations import Operations


class DS01App(ExtensionApp, SettingsOptions):
    """Projects, GPU containers and their kernels, from JupyterLab; the core's settings are SettingsOptions."""

    name = "ds01_jupyter"
    load_other_extensions = True

    socket = Unicode("", config=True, help=SOCKET_HELP)
    scan_interval = Int(
        60,
        config=True,
        help="Seconds between persistence scans of this user's running containers (new files outside "
        "/workspace become sidebar warnings); 0 turns it off. A scan that took long is spaced out more.",
    )
    reap_interval = Int(
        300,
        config=True,
        help="Seconds between runs of the idle/runtime reaper for this user; 0 turns it off.",
    )

    @default("static_paths")
    def _static(self):
        return []

    def core_settings(self) -> Settings:
        return Settings.from_config(self, interface="jupyter")

    def initialize_settings(self):
        if container_mode.active():  # the one place the mode matters: which backend answers the handlers
            self._serve(container_mode.setup(self))
            return
        settings = self.core_settings()

        def direct() -> DS01:
            return DS01(settings, **self.core_parts(settings))

        self.core = connect(setting=self.socket, direct=direct)
        self.user = User.current()
        provisioner.configure(self.core, self.user)
        self.kernel_specs = KernelSpecs(self.core, self.user, log=self.log)
        self.events = EventHub(self.core, self.user, log=self.log, on_change=self.kernel_specs.on_event)
        self.operations = Operations(self.events.publish)
        self._serve(HostBackend(self.core, self.user, self.events, self.operations, self.kernel_specs))
        self.kernel_specs.sync_quietly()
        self.events.start()
        if self.scan_interval > 0:
            self._scanner = PeriodicCallback(self.scan, self.scan_interval * 1000)
            self._scanner.start()
        if self.reap_interval > 0:
            self._reaper = PeriodicCallback(self._reap, self.reap_interval * 1000)
            self._reaper.start()
        if isinstance(self.core, RemoteDS01):
            self.log.info("ds01: through ds01d at %s (it acts for %s; no Docker access needed)", self.core.path,
                          self.user.name)
        else:
            self.log.info("ds01: projects in %s, Docker directly", self.core.projects.root(self.user))

    def _serve(self, backend: Backend) -> None:
        """Hand the handlers their backend; the timers and the shutdown use its core and events."""
        self.backend, self.core, self.user, self.events = backend, backend.core, backend.user, backend.events
        self.settings.update(ds01_backend=backend, ds01_core=backend.core, ds01_user=backend.user,
                             ds01_version=__version__)

    def initialize_handlers(self):
        self.handlers.extend(handlers())

    async def scan(self):
        """Audit running containers; publish a warning event for each new finding at risk."""
        loop = asyncio.get_running_loop()
        try:
            running = [c for c in await loop.run_in_executor(None, self.core.containers.list, self.user) if c.running]
        except DS01Error:
            return
        for status in running:
            before = self.core.guard.remembered(self.user, status.project) or {}
            if time.time() - before.get("scanned_at", 0) < 10 * before.get("seconds", 0):
                continue  # bounded cost: a slow scan is not repeated at once
            try:
                audit = await loop.run_in_executor(None, self.core.guard.audit, self.user, status.project)
            except DS01Error as err:
                self.log.info("ds01 scan of %s skipped: %s", status.project, err)
                continue
            known = {f["path"] for f in before.get("findings", []) if f["kind"] in ("work", "environment")}
            # Running processes count as at risk, but a notification offering a rescue is for files.
            new = [f.to_dict() for f in audit.at_risk if f.path not in known and f.kind != "process"]
            if new:
                self.events.publish(
                    {"type": "warning", "project": status.project, "at_risk": len(audit.at_risk), "new": new[:50]}
                )
        try:
            for warning in await loop.run_in_executor(None, self.core.checkpoint_warnings, self.user):
                self.events.publish({"type": "warning", "kind": "checkpoint", **warning})
        except DS01Error as err:
            self.log.info("ds01 checkpoint check skipped: %s", err)

    async def _reap(self):
        """Stop this user's idle or overdue containers; say why in the log."""
        loop = asyncio.get_running_loop()
        for kernel_id in list(self.serverapp.kernel_manager.list_kernel_ids()):
            kernel = self.serverapp.kernel_manager.get_kernel(kernel_id)
            container = getattr(kernel.provisioner, "container_id", "")
            if container and getattr(kernel, "execution_state", "") == "busy":
                # A cell waiting on I/O uses no CPU, but it is work, not idleness.
                await loop.run_in_executor(None, self.core.reaper.mark_active, self.user, container)
        try:
            decisions = await loop.run_in_executor(None, self.core.reaper.run, self.user)
        except DS01Error as err:
            self.log.info("ds01 reaper skipped: %s", err)
            return
        for d in decisions:
            if d.action != "keep" or "not retired" in d.reason:
                self.log.warning("ds01 reaper %s %s: %s", d.action, d.container, d.reason)
                self.events.publish({"type": "reaper", **d.to_dict()})
            if d.action == "warn":  # max_runtime is near: a notification, so work can be saved in time
                self.events.publish({"type": "warning", "kind": "max_runtime", "project": d.project,
                                     "container": d.container, "message": d.reason, "stops_at": d.at})

    async def stop_extension(self):
        for timer in (getattr(self, "_reaper", None), getattr(self, "_scanner", None)):
            if timer is not None:
                timer.stop()
        self.events.stop()
        self.core.close()
