"""The framework-free core of ds01-jupyter.

No tornado or Jupyter import lives here: the CLI, the server extension and the
JupyterHub spawner all drive the same :class:`DS01` object, passing the user
they act for.
"""

from __future__ import annotations

from functools import cached_property

# Only what DS01 needs at once is imported here; the rest (docker-py, yaml, the engine's and the allocator's
# modules...) on first use, so `ds01 --help` and a CLI talking to ds01d start fast (issue 19).
from .errors import DS01Error

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
    from .settings import Settings
    from .users import User

# The names this package exported before it imported lazily: module -> names, each imported on first use.
_LAZY = {
    ".allocator": ("GpuAllocator",),
    ".where": ("Finder",),
    ".cleanup": ("Cleanup",),
    ".containers": ("Containers",),
    ".container_status": ("ContainerStatus", "DeployResult"),
    ".disk": ("DiskUsage",),
    ".docker_engine": ("DockerEngine",),
    ".engine": ("ContainerEngine",),
    ".guard": ("Guard",),
    ".gpus": ("GpuInventory", "attribute", "inventory_from_setting"),
    ".images": ("Images",),
    ".limits": ("Limits", "LimitsSource"),
    ".projects": ("Project", "Projects"),
    ".reaper": ("Reaper",),
    # The settings' dataclass and pathlib cost 25 ms: `ds01 --help` imports core.errors, hence this package, and
    # needs neither.
    ".settings": ("Settings",),
    ".users": ("User",),
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
        lasting: bool = True,
    ):
        """``lasting``: whether this core answers more than one request (a server, ds01d, the hub); only such a
        core watches the workspace trees it measures, for its next measurement (see tree_watch.py)."""
        from .engines import engine_for
        from .gpus import inventory_from_setting
        from .settings import Settings

        self.settings = settings or Settings.from_env()
        self.lasting = lasting
        self.engine = engine or engine_for(self.settings)
        if inventory is None:  # a cluster engine knows its nodes' GPUs; one host's come from gpu_inventory
            own = getattr(self.engine, "inventory", None)
            inventory = own() if own else None
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
        from . import helpers
        from .allocator import GpuAllocator

        return GpuAllocator(self.engine, self.settings.lock_dir, timeout=self.settings.lock_timeout,
                            before_archive=lambda r: helpers.ready(self.engine, self.settings.helpers_dir, r.mounts))

    @cached_property
    def containers(self) -> Containers:
        from .containers import Containers

        return Containers(
            self.settings, self.engine, self.projects, self.images, self.limits, self.allocator, self.inventory,
            start_times=self._start_times, save_memory=lambda *args: self.guard.save_memory(*args),
        )

    @cached_property
    def kernels(self):
        """Kernels in the user's containers (the kernel provisioner's engine work; see container_kernel)."""
        from ..kernels.container_kernel import ContainerKernels

        return ContainerKernels(self)

    def follow_events(self, user: User, since: float | None = None, window: float = 2.0):
        """The user's container events as they happen, with a tick after each window (see container_events.py)."""
        from .container_events import follow

        return follow(self, user, since, window)

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

        return DiskUsage(self.settings, self.projects, watch=self.lasting)

    def checkpoints_dir(self, user: User, project: str):
        """The project's models/ folder, refused when it is a link leading elsewhere (see project_checkpoints.py)."""
        from .project_checkpoints import checkpoints_dir

        return checkpoints_dir(self, user, project)

    def git_state(self, user: User, project: str) -> dict:
        """Whether the project's code is committed and pushed (git run as the user; see gitstate)."""
        from . import gitstate

        return gitstate.state(user, str(self.projects.get(user, project).path)).to_dict()

    def checkpoints(self, user: User, project: str, metric: str | None = None, mode: str | None = None) -> dict:
        """A project's checkpoints by run, with each run's resume point and best marked (see project_checkpoints.py)."""
        from .project_checkpoints import listing

        return listing(self, user, project, metric, mode)

    def prune_checkpoints(self, user: User, project: str, confirm: bool = False, **policy) -> dict:
        """Preview (default) or delete what a retention policy (requests.PrunePolicy's fields) drops, each with why."""
        from .project_checkpoints import prune

        return prune(self, user, project, confirm, **policy)

    def checkpoint_warnings(self, user: User, now: float | None = None) -> list[dict]:
        """Running containers busy on their GPU with no new checkpoint for checkpoint_warning_minutes."""
        from .project_checkpoints import warnings

        return warnings(self, user, now)

    def storage_use(self, user: User, larger_than: int | None = None) -> dict:
        """Per project: workspace size, largest files, checkpoint and image bytes, against the quota (storage.py)."""
        from .storage import storage_use

        return storage_use(self, user, larger_than)

    @cached_property
    def cleanup(self) -> Cleanup:
        from .cleanup import Cleanup

        return Cleanup(self.projects, self)

    def where(self, user: User, project: str, pattern: str) -> dict:
        """Where a project's files matching ``pattern`` are: workspace, container, rescues, retired containers."""
        from .requests import WhereQuery
        from .where import Finder

        return Finder(self).find(user, project, WhereQuery(pattern).pattern)

    @cached_property
    def overview_memo(self):
        """Each user's last overview, given again while still true (see overview.py)."""
        from .overview import OverviewMemo

        return OverviewMemo()

    def overview(self, user: User, only: str | None = None) -> dict:
        """Every project (``only``: that one) with its container, image and last measured size (see overview.py)."""
        from .overview import overview

        return overview(self, user, only)

    def nodes(self) -> dict:
        """The cluster's nodes with state, GPUs, free GPUs and containers (engine 'swarm'; see swarm_overview)."""
        from .swarm_overview import nodes

        return nodes(self)

    def gpu_inventory(self) -> dict:
        """Every GPU with its holder and its processes' containers (see overview.py)."""
        from .overview import gpu_inventory

        return gpu_inventory(self)
