"""The framework-free core of ds01-jupyter.

No tornado or Jupyter import lives here: the CLI, the server extension and the
JupyterHub spawner all drive the same :class:`DS01` object, passing the user
they act for.
"""

from __future__ import annotations

import os
import time
from functools import cached_property

# Only what DS01 needs at once is imported here; the rest (docker-py, yaml, the engine's and the allocator's
# modules...) on first use, so `ds01 --help` and a CLI talking to ds01d start fast (issue 19).
from .errors import DS01Error, EngineUnavailable, Forbidden, InvalidRequest
from .identity import acting_as
from .settings import Settings
from .users import User

TYPE_CHECKING = False  # typing itself costs 5 ms at start-up
if TYPE_CHECKING:  # for the annotations only
    from .allocator import GpuAllocator
    from .cleanup import Cleanup
    from .containers import Containers
    from .disk import DiskUsage
    from .engine import ContainerEngine
    from .gpus import GpuInventory
    from .guard import Guard
    from .images import Images
    from .limits import LimitsSource
    from .projects import Projects
    from .reaper import Reaper

# The names this package exported before it imported lazily: module -> names, each imported on first use.
_LAZY = {
    ".allocator": ("GpuAllocator",),
    ".where": ("Finder",),
    ".cleanup": ("Cleanup",),
    ".containers": ("Containers", "ContainerStatus", "DeployResult"),
    ".disk": ("DiskUsage",),
    ".docker_engine": ("DockerEngine",),
    ".engine": ("ContainerEngine",),
    ".guard": ("Guard",),
    ".gpus": ("GpuInventory", "attribute", "inventory_from_setting"),
    ".images": ("Images",),
    ".limits": ("Limits", "LimitsSource"),
    ".projects": ("Project", "Projects"),
    ".reaper": ("Reaper",),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DS01",
    "DS01Error",
    "ContainerStatus",
    "DeployResult",
    "Limits",
    "Project",
    "Settings",
    "User",
]


class DS01:
    """Everything the front ends need, wired from one Settings.

    The engine connects lazily, so project commands work while Docker is down.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        engine: ContainerEngine | None = None,
        inventory: GpuInventory | None = None,
    ):
        from .engines import engine_for
        from .gpus import inventory_from_setting

        self.settings = settings or Settings.from_env()
        self.engine = engine or engine_for(self.settings)
        self.inventory = inventory or inventory_from_setting(self.settings.gpu_inventory)
        # Start times of running containers (id -> datetime): the engine's list lacks them and one
        # inspect per container made a listing of 50 containers 6 times slower. Dropped when a listing
        # sees the container not running, and by forget_start() on the engine's start/stop events.
        self._start_times: dict = {}

    def forget_start(self, container_id: str | None = None) -> None:
        """Drop a remembered start time (all of them without an id), e.g. on a container event."""
        if container_id is None:
            self._start_times.clear()
        else:
            self._start_times.pop(container_id, None)

    def close(self) -> None:
        self.engine.close()

    @property
    def start_times(self) -> dict:
        """The remembered start times of running containers (id -> datetime), shared with the overview."""
        return self._start_times

    @cached_property
    def projects(self) -> Projects:
        from .projects import Projects

        return Projects(self.settings)

    @cached_property
    def limits(self) -> LimitsSource:
        from .limits import LimitsSource

        return LimitsSource(self.settings)

    @cached_property
    def images(self) -> Images:
        from .images import Images

        return Images(self.settings, self.engine, self.projects)

    @cached_property
    def allocator(self) -> GpuAllocator:
        from .allocator import GpuAllocator

        return GpuAllocator(self.engine, self.settings.lock_dir, timeout=self.settings.lock_timeout)

    @cached_property
    def containers(self) -> Containers:
        from .containers import Containers

        return Containers(
            self.settings, self.engine, self.projects, self.images, self.limits, self.allocator, self.inventory,
            start_times=self._start_times,
        )

    @cached_property
    def kernels(self):
        """Kernels in the user's containers (the kernel provisioner's engine work; see container_kernel)."""
        from ..kernels.container_kernel import ContainerKernels

        return ContainerKernels(self)

    def follow_events(self, user: User, since: float | None = None, window: float = 2.0):
        """The user's container events as they happen (dicts: action, id, name, labels, exit_code, time),
        from ``since`` (at most ten minutes back), read in windows of ``window`` seconds; after each window a
        ``{"action": "tick", "time": T}`` says all events up to T were given, so a follower that stops or
        reconnects misses nothing, and one that went away is noticed. Never ends by itself."""
        from . import labels as L
        from .names import container_name

        now = time.time()
        since = now if since is None else min(max(since, now - 600), now)
        while True:
            until = max(time.time(), since) + window
            for event in self.engine.events(L.owned_by(user), since=since, until=until):
                # Labels alone count for nothing: another user's image (and so the build containers of a Dockerfile
                # saying LABEL ds01.user=...) carries any. Only ds01 names a container <project>._.<user>.
                if event.get("name") != container_name((event.get("labels") or {}).get(L.PROJECT, ""), user.name):
                    continue
                if event.get("action") in ("start", "die", "stop", "destroy"):
                    self.forget_start(event.get("id"))  # its remembered start time is stale now
                yield event
            since = until
            yield {"action": "tick", "time": until}

    @cached_property
    def reaper(self) -> Reaper:
        from .reaper import Reaper

        return Reaper(self.containers, self.guard)

    @cached_property
    def guard(self) -> Guard:
        from .guard import Guard

        return Guard(self.containers, self.disk)

    @cached_property
    def disk(self) -> DiskUsage:
        from .disk import DiskUsage

        return DiskUsage(self.settings, self.projects)

    def checkpoints_dir(self, user: User, project: str):
        """The project's models/ folder, refused when it is a link leading elsewhere."""
        proj = self.projects.get(user, project)
        directory = proj.path / "models"
        if directory.is_symlink() and proj.path.resolve() not in directory.resolve().parents:
            raise Forbidden(f"{directory} links outside the project; refusing to look there.")
        return directory

    def git_state(self, user: User, project: str) -> dict:
        """Whether the project's code is committed and pushed (git run as the user; see gitstate)."""
        from . import gitstate

        return gitstate.state(user, str(self.projects.get(user, project).path)).to_dict()

    def checkpoints(self, user: User, project: str, metric: str | None = None, mode: str | None = None) -> dict:
        """A project's checkpoints by run, with each run's resume point and best (by ``metric``) marked."""
        from .. import checkpoints as ck

        directory = self.checkpoints_dir(user, project)
        with acting_as(user):  # the user's own view of their files; nothing more
            found = ck.listing(directory, metric, mode)
        latest, best = found.latest(), found.best()
        return {
            "project": project,
            "directory": str(directory),
            "checkpoints": [c.to_dict() for c in found.checkpoints],
            "runs": [r.to_dict() for r in found.runs],
            "latest": latest.relpath if latest else None,
            "best": best.relpath if best else None,
            "metric": found.metric,
            "mode": found.mode,
            "metrics": found.metrics,
            "problems": found.problems,
            "bytes": sum(c.size for c in found.checkpoints),
        }

    def prune_checkpoints(self, user: User, project: str, confirm: bool = False, **policy) -> dict:
        """Preview (default) or delete what a retention policy drops, each with why; and why the rest stay."""
        from .. import checkpoints as ck

        directory = self.checkpoints_dir(user, project)
        try:
            with acting_as(user):
                doomed, kept = ck.prune_plan(directory=directory, **policy)
                gone = {c.path for c in ck.prune(directory=directory, dry_run=False, **policy)} if confirm else set()
        except (ck.CheckpointError, ValueError) as err:
            raise InvalidRequest(str(err)) from None
        if confirm:
            doomed = [(c, reason) for c, reason in doomed if c.path in gone]
        return {
            "project": project,
            "deleted" if confirm else "would_delete": [{**c.to_dict(), "reason": why} for c, why in doomed],
            "kept": [{"relpath": c.relpath, "run": c.run, "reason": why} for c, why in kept],
            "bytes": sum(c.size for c, _ in doomed),
        }

    def checkpoint_warnings(self, user: User, now: float | None = None) -> list[dict]:
        """Running containers busy on their GPU with no new checkpoint for checkpoint_warning_minutes."""
        from datetime import datetime

        from .. import checkpoints as ck
        from . import labels as L
        from .gpus import attribute

        devices = self.inventory.devices()
        if not devices:
            return []
        mine = {c.id: c for c in self.containers.vet(self.engine.list_containers(L.owned_by(user)))
                if L.is_container_of(c.labels, user)}
        attribute(devices, mine)
        using = {p.container_id for d in devices for p in d.processes if p.container_id in mine}
        now = now or time.time()
        limit = self.settings.checkpoint_warning_minutes * 60
        warnings = []
        for cid in using:
            project = mine[cid].labels.get(L.PROJECT, "")
            status = self.containers.status(user, project)
            if not status.running or not status.started_at:
                continue
            since = datetime.fromisoformat(status.started_at.replace("Z", "+00:00")).timestamp()
            with acting_as(user):
                found = [c for c in ck.scan(self.checkpoints_dir(user, project)) if c.complete]
            if found:
                since = max(since, max(c.mtime for c in found))
            if now - since > limit:
                minutes = int((now - since) // 60)
                warnings.append(
                    {
                        "project": project,
                        "minutes_without_checkpoint": minutes,
                        "message": f"{project} has used its GPU for {minutes} minutes without a new checkpoint in "
                        "models/: a crash or a retire would lose that work. Save one "
                        "(`from ds01_jupyter import checkpoints; checkpoints.save(...)`).",
                    }
                )
        return warnings

    def usage(self, user: User, larger_than: int | None = None) -> dict:
        """Per project: workspace size, largest files, checkpoint bytes, image bytes; against the quota. Images
        count a layer shared by several of them (the base image) once, as ``docker system df`` does; the
        disk's free space is shown; ``larger_than`` lists the files of at least that many bytes."""
        quota = self.limits.for_user(user).storage_workspace
        images, image_totals = {}, None
        try:
            mine = self.cleanup.images(user)  # one listing serves the per-project sizes and the totals
            images = {i["project"]: i["size"] for i in mine if i["state"] == "current"}
            image_totals = self._image_totals(mine)
        except EngineUnavailable:
            pass
        projects, large = {}, []
        for project in self.projects.list(user):
            size = self.disk.measure(user, project.name, over=larger_than)
            try:
                ckpt = self.checkpoints(user, project.name)["bytes"]
            except DS01Error:
                ckpt = 0
            data = size.to_dict()
            large += [[project.name, path, n] for path, n in data.pop("over") or ()]
            projects[project.name] = {**data, "checkpoint_bytes": ckpt, "image_bytes": images.get(project.name)}
        total = sum(p["bytes"] for p in projects.values())
        result = {
            "projects": projects,
            "total_bytes": total,
            "image_bytes": image_totals["total_bytes"] if image_totals else 0,
            "images": image_totals,
            "quota_bytes": quota,
            "over_quota": quota is not None and total > quota,
            "disk": self._free_space(user),
        }
        if larger_than is not None:
            result["larger_than"] = larger_than
            result["large_files"] = sorted(large, key=lambda f: -f[2])[:200]
        return result

    def _image_totals(self, mine: list[dict]) -> dict:
        """The user's images (``cleanup.images``): bytes unique to each, bytes shared (counted once), and in all."""
        try:
            usage, exact = self.engine.image_usage(), True
        except DS01Error:  # the engine could not measure now: each image's whole size, said so
            usage, exact = {}, False
        unique = shared = 0
        for image in mine:
            size, common = usage.get(image["id"], (image["size"], 0))
            unique += size - common
            shared = max(shared, common)  # the user's images share one base: its layers count once
        return {"count": len(mine), "unique_bytes": unique, "shared_bytes": shared, "total_bytes": unique + shared,
                "exact": exact}

    def _free_space(self, user: User) -> dict | None:
        root = self.projects.root(user)
        try:
            with acting_as(user):
                fs = os.statvfs(root)
        except OSError:
            return None
        return {"path": str(root), "free_bytes": fs.f_bavail * fs.f_frsize, "total_bytes": fs.f_blocks * fs.f_frsize}

    @cached_property
    def cleanup(self) -> Cleanup:
        from .cleanup import Cleanup

        return Cleanup(self.projects, self)

    def where(self, user: User, project: str, pattern: str) -> dict:
        """Where a project's files matching ``pattern`` are: workspace, container, rescues, retired containers."""
        from .where import Finder

        return Finder(self).find(user, project, pattern)

    def overview(self, user: User) -> dict:
        """Every project with its container, image and last measured size (see overview.py)."""
        from .overview import overview

        return overview(self, user)

    def gpu_inventory(self) -> dict:
        """Every GPU with its holder and its processes' containers (see overview.py)."""
        from .overview import gpu_inventory

        return gpu_inventory(self)
