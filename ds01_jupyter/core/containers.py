"""Per-project containers: deploy, start, stop, retire, status, logs, exec."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import frameworks, helpers, ssh_mount, upperdir, workspace_access, workspace_pin
from . import labels as L
from .allocator import GpuAllocator, held
from .container_status import ContainerStatus, DeployResult
from .engine import ContainerEngine, ContainerRecord, ContainerSpec, ImageRecord, Progress
from .errors import (
    AlreadyExists,
    ContainerNotFound,
    DS01Error,
    EngineError,
    EngineUnavailable,
    Forbidden,
    GpuUnavailable,
    InvalidName,
    InvalidRequest,
    LimitExceeded,
    ProjectNotFound,
    StateConflict,
    UnsavedWork,
)
from .gpus import GpuInventory
from .images import Images
from .limits import Limits, LimitsSource, format_duration
from .names import container_name
from .projects import Projects
from .requests import DeployRequest, LogsQuery
from .settings import Settings
from .trust import distrust, network_name, own_labels
from .users import User

log = logging.getLogger("ds01_jupyter.containers")

#: Where caches, trackers and the project's folders are, set in every container unless its image sets
#: the variable itself (a Dockerfile's ENV wins). Caches under /workspace/.cache survive a retire and
#: are counted in the workspace (the DS01 guide's advice); trackers write under results/. pip keeps no
#: cache: packages belong in the image (requirements.txt), a wheel cache under /workspace would quietly
#: spend the quota on multi-GB wheels, and one in ~/.cache would be lost with the container. An image
#: that sets PIP_CACHE_DIR or PIP_NO_CACHE_DIR decides for itself.
WORKSPACE_ENV = {
    "XDG_CACHE_HOME": "/workspace/.cache",
    "HF_HOME": "/workspace/.cache/huggingface",
    "TORCH_HOME": "/workspace/.cache/torch",
    "WANDB_DIR": "/workspace/results/logs",
    "WANDB_CACHE_DIR": "/workspace/.cache/wandb",
    "MLFLOW_TRACKING_URI": "file:///workspace/results/mlruns",
    "TENSORBOARD_LOG_DIR": "/workspace/results/logs/tensorboard",
    "DATA_DIR": "/workspace/data",
    "MODEL_DIR": "/workspace/models",
    "RESULTS_DIR": "/workspace/results",
    "PIP_NO_CACHE_DIR": "1",
}
#: Variables of the image that make one of ours moot (pip's own cache choice).
_DECIDED_BY = {"PIP_NO_CACHE_DIR": ("PIP_NO_CACHE_DIR", "PIP_CACHE_DIR")}


def workspace_env(image_env: list[str] | tuple[str, ...]) -> dict[str, str]:
    """WORKSPACE_ENV without the variables the image sets (``image_env``: its ``KEY=value`` list)."""
    image_keys = {e.split("=", 1)[0] for e in image_env}
    return {k: v for k, v in WORKSPACE_ENV.items() if not image_keys & set(_DECIDED_BY.get(k, (k,)))}


def _noop(line: str) -> None:
    pass


def _images_of(records: builtins.list[ContainerRecord]) -> dict[str, str]:
    """The filter for the images ``records`` may run: when their labels all name one user, that user's images (a
    container whose image is not among them is distrusted all the same, see trust.py), else every ds01 image."""
    owners = {(r.labels.get(L.USER, ""), r.labels.get(L.USER_ID, "")) for r in records}
    if len(owners) == 1:
        name, uid = owners.pop()
        if name and uid.isdigit():
            return {L.MANAGED: "true", L.USER: name, L.USER_ID: uid}
    return L.managed()


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def workspace_state(record: ContainerRecord) -> str:
    """"" when the container's /workspace is its project folder; "missing" when that folder is gone; "replaced"
    when it was made again while the container runs on with the deleted one mounted (the engine's exec then fails
    with "current working directory is outside of container mount namespace root"; a start mounts the new one)."""
    source = workspace_pin.source_of(record)
    if not source:
        return ""
    try:
        os.stat(source)
        exists = True
    except (FileNotFoundError, NotADirectoryError):
        exists = False
    except OSError:
        return ""  # cannot look (another user's home): nothing to say
    if not exists:
        return "missing"
    return "replaced" if record.running and _mounted_deleted(record.pid) else ""


def _mounted_deleted(pid: int) -> bool:
    """Whether the process ``pid`` (a container's first) has a deleted folder mounted at /workspace (its
    mountinfo, readable for any process, marks the mount's root "//deleted")."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
            for line in info:
                fields = line.split(" ")
                if len(fields) > 4 and fields[4] == "/workspace":
                    return fields[3].endswith("//deleted")
    except OSError:
        pass  # gone meanwhile, or another machine's engine: unknown
    return False


def _mount_mismatch(record: ContainerRecord, folder: Path) -> str:
    """Why the running container ``record`` does not have exactly ``folder`` at /workspace; "" when it does."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(folder, flags)
    except OSError as err:
        return f"its project folder {folder} cannot be opened as a real folder ({err.strerror})"
    try:
        expected = os.fstat(fd)
    finally:
        os.close(fd)
    if not record.running or not record.pid:
        return "it ended before its /workspace could be checked"
    try:
        # lstat: an image whose /workspace is a link moved the mount elsewhere; the link itself is no folder.
        got = os.stat(f"/proc/{record.pid}/root/workspace", follow_symlinks=False)
    except OSError as err:
        return f"its /workspace cannot be looked at ({err.strerror})"
    if (got.st_dev, got.st_ino) != (expected.st_dev, expected.st_ino):
        return f"its /workspace is not the project folder {folder} (a link swapped in while it started?)"
    return ""


def _checks_mounts(user: User) -> bool:
    """Whether starts for ``user`` are made by root for someone else: then the engine, following links in the
    mount's source as root, could mount what the user may not reach, so the start is checked (and offline)."""
    return os.geteuid() == 0 and user.uid != 0


def _pythonpath(image: ImageRecord) -> dict[str, str]:
    """The helpers' folders before the image's own PYTHONPATH; none for an image that has the whole package."""
    own = [e.split("=", 1)[1] for e in image.env if e.startswith("PYTHONPATH=") and e[11:]]
    paths = [*(helpers.PYTHONPATH if helpers.wanted(image.env) else ()), *own]
    return {"PYTHONPATH": ":".join(paths)} if paths else {}


def _alone(user: User, project: str, timeout: float):
    """Where root starts a user's container (offline, checked, then connected): its start lock, held by one start or
    one check-and-connect at a time (run_folder.start_lock); acting with our own rights, none is needed."""
    if not _checks_mounts(user):
        return contextlib.nullcontext()
    from .run_folder import start_lock

    return start_lock(container_name(project, user.name), timeout)


def _at_once(steps: builtins.list[Callable[[], object]]) -> None:
    """Run engine calls side by side (each waits on the engine, not on this process); the first error is raised
    once all have ended."""
    errors: builtins.list[BaseException] = []

    def run(step) -> None:
        try:
            step()
        except BaseException as err:  # raised below, in the caller's thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(step,), name="ds01-start", daemon=True) for step in steps[1:]]
    for thread in threads:
        thread.start()
    if steps:
        run(steps[0])
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


_REPORTED: set[str] = set()  # containers already reported as not ds01's, once per process


class Containers:
    def __init__(
        self,
        settings: Settings,
        engine: ContainerEngine,
        projects: Projects,
        images: Images,
        limits: LimitsSource,
        allocator: GpuAllocator,
        inventory: GpuInventory,
        start_times: dict | None = None,
        save_memory: Callable[..., Any] | None = None,
    ):
        #: (user, project, record, findings, progress) -> a Rescue: copies files kept in memory into the project
        #: before a stop loses them (the guard's rescue); without it, a stop that would lose some is refused.
        self.save_memory = save_memory
        self.settings = settings
        # Start times of running containers (id -> datetime), shared with DS01: the engine's list lacks them.
        self.start_times = {} if start_times is None else start_times
        self.engine = engine
        self.projects = projects
        self.images = images
        self.limits = limits
        self.allocator = allocator
        self.inventory = inventory

    # -- finding containers -------------------------------------------------------
    def vet(self, records: list[ContainerRecord], images: list[ImageRecord] | None = None) -> list[ContainerRecord]:
        """The containers ds01 made for the users their labels name, without labels their images set.

        The one place that decides which containers are whose: listing, deploy, start, the GPU
        allocator's view, limits, the reaper and the guard all see only what passes. The others
        are reported in the log for an admin and otherwise ignored. ``images``: the engine's list of images
        that may hold theirs, when the caller has it (else listed here: one user's when the records name one).
        """
        if not records:
            return []
        if images is None:
            images = self._images_for(records)
        by_id = {i.id: i for i in images}
        trusted = []
        for record in records:
            image = by_id.get(record.image_id)
            why = self._distrust(record, image)
            if why:
                self._report(record, why)
            else:
                trusted.append(own_labels(record, image))
        return trusted

    #: Up to this many distinct images, vet() inspects each (a few ms) instead of listing every ds01 image (the
    #: engine reads all images on the host for a list: about 400 ms with a few hundred).
    INSPECT_IMAGES = 64

    def _images_for(self, records: builtins.list[ContainerRecord]) -> builtins.list[ImageRecord]:
        """The ds01 images ``records`` run, as a list of ds01 images would give them."""
        wanted = {r.image_id for r in records if r.image_id}
        if len(wanted) > self.INSPECT_IMAGES:
            return self.engine.list_images(_images_of(records))
        return [i for i in self.engine.get_images(sorted(wanted)) if i.labels.get(L.MANAGED) == "true"]

    def _distrust(self, record: ContainerRecord, image: ImageRecord | None) -> str:
        labels = record.labels
        tag = self.settings.image_template.format(user=labels.get(L.USER, ""), project=labels.get(L.PROJECT, ""))
        source = workspace_pin.source_of(record)
        try:
            # lstat: a user who swaps their project folder for a link must not make their own container look
            # foreign (it would drop out of their GPU and container counts and the reaper's view).
            folder_uid = os.lstat(source).st_uid if source else None
        except OSError:
            folder_uid = None  # another user's home we may not enter, or a folder removed since
        return distrust(record, image, tag, folder_uid)

    def _report(self, record: ContainerRecord, why: str) -> None:
        if record.id in _REPORTED:
            return
        _REPORTED.add(record.id)
        log.warning(
            "ds01: container %s (%s) carries ds01 labels for user %s but was not made by ds01 for them (%s); "
            "ignored. An admin checks it with `docker inspect %s` and removes it with `docker rm -f %s`.",
            record.name, record.id[:12], record.labels.get(L.USER, "?"), why, record.name, record.name,
        )

    def _owned(self, user: User, project: str) -> ContainerRecord | None:
        name = container_name(project, user.name)
        record = self.engine.get_container(name)
        if record is None:
            return None
        # Where the user's own project folder is (or was: a deleted workspace keeps its container reachable),
        # from their checked workspace root, never from the container's labels.
        expected = str(self.projects.locate(user, project).path.resolve())
        image = self.engine.get_image(record.image_id) if record.image_id else None
        why = self._distrust(record, image)
        if not why and (
            record.labels.get(L.USER_ID) != str(user.uid) or record.labels.get(L.GROUP_ID) != str(user.gid)
        ):
            why = f"it belongs to uid {record.labels.get(L.USER_ID)}, not to you (uid {user.uid})"
        if not why and workspace_pin.source_of(record) != expected:
            why = f"it does not mount your project folder {expected}"
        if why:
            self._report(record, why)
            raise Forbidden(
                f"The name {name} is taken by a container ds01 did not make for you: {why}. It was created "
                f"{_iso(record.created) or 'at an unknown time'} from image {record.image or record.image_id}, "
                f"runs as {record.config_user or 'the image user'}, is {record.state}, and its labels name user "
                f"{record.labels.get(L.USER, '-')} (uid {record.labels.get(L.USER_ID, '-')}). ds01 leaves it alone.",
                hint=f"Ask an admin to check it (`docker inspect {name}`) and clear the name with "
                f"`docker rm -f {name}`; then deploy again.",
                container=name,
            )
        if record.running and not record.ip_address and _checks_mounts(user):
            # Started offline and not yet checked (a start under way in another request, or one cut off): nothing
            # may reach it before its /workspace is known to be the project folder, so check it now.
            self._settle(user, project, record.id, helpers=False)  # the start under way copies them
            record = self.engine.get_container(record.id) or record
        return own_labels(record, image)

    def record(self, user: User, project: str) -> ContainerRecord:
        """The project's container, also when its workspace folder was deleted meanwhile; ContainerNotFound
        saying to deploy first, or ProjectNotFound when there is neither a folder nor a container."""
        record = self._owned(user, project)
        if record is None:
            self.projects.get(user, project)  # no folder either: "does not exist, create it"
            raise ContainerNotFound(
                f"Project {project!r} has no container.",
                hint=f"Deploy it first: `container-deploy {project}`.",
                project=project,
            )
        helpers.ready(self.engine, self.settings.helpers_dir, record.mounts)  # before an archive call or a start
        return record

    def _status(self, user: User, record: ContainerRecord, image_ids: dict | None = None) -> ContainerStatus:
        project = record.labels.get(L.PROJECT, "")
        if image_ids is None:
            current = self.images.current(user, project)
            current_id = current.id if current else None
        else:
            current_id = image_ids.get(project)
        uptime = None
        started = record.started_at or (self.start_times.get(record.id) if record.running else None)
        if record.running and started:
            uptime = (datetime.now(timezone.utc) - started).total_seconds()
        source = workspace_pin.source_of(record)
        unwritable = workspace_access.unwritable(self._owner(record), Path(source)) if source else []
        ending = self.allocator.ending(record)
        gpus = L.gpu_uuids(record.labels)
        hold_ends = self.allocator.hold_ends(record, self.hold_for) if gpus else None
        holds_gpu = bool(gpus) and held(hold_ends)
        return ContainerStatus(
            project=project,
            name=record.name,
            id=record.id,
            state=record.state,
            image=record.labels.get(L.IMAGE, record.image),
            stale_image=bool(current_id and record.image_id and current_id != record.image_id),
            gpus=gpus,
            gpu_slots=int(record.labels.get(L.GPU_SLOTS) or 0),
            workspace=record.labels.get(L.WORKSPACE, ""),
            created_at=record.labels.get(L.CREATED_AT) or _iso(record.created),
            started_at=_iso(started),
            finished_at=_iso(record.finished_at or ending.finished_at),  # the engine's list lacks it
            uptime_seconds=uptime,
            exit_code=record.exit_code,
            error=record.error,
            protected=record.labels.get(L.PROTECTED) == "true",
            interface=record.labels.get(L.INTERFACE, ""),
            ending=ending.how,
            summary=ending.describe(record.state),
            oom_killed=ending.oom_killed,
            holds_gpu=holds_gpu,
            gpu_hold_ends=_iso(hold_ends) if holds_gpu else None,
            workspace_state=workspace_state(record),
            fallback=record.labels.get(L.FALLBACK, ""),
            unwritable=unwritable,
            node=record.node,
        )

    @staticmethod
    def _owner(record: ContainerRecord) -> User:
        """The user a (trusted) container runs as, for checks made with their rights."""
        uid = int(record.labels.get(L.USER_ID) or 0)
        return User(record.labels.get(L.USER, ""), uid, int(record.labels.get(L.GROUP_ID) or uid), Path("/"))

    def _fill_start_times(self, records: list[ContainerRecord]) -> None:
        """Remember when each running container started (one inspect each, once): listings show its uptime."""
        for record in records:
            if not record.running:
                self.start_times.pop(record.id, None)
            elif record.started_at is None and record.id not in self.start_times:
                try:
                    found = self.engine.get_container(record.id)
                except DS01Error:
                    found = None  # gone, or the engine went away since the list: no uptime, not an error
                if found is not None and found.started_at is not None:
                    self.start_times[record.id] = found.started_at

    def list(self, user: User, images: list | None = None, image_records: list | None = None) -> list[ContainerStatus]:
        """The user's containers (ownership from labels and uid), one engine call each for containers and
        images; pass ``images`` (``Images.list``) and the ``image_records`` it was made of when the caller has them."""
        records = [
            r for r in self.vet(self.engine.list_containers(L.owned_by(user)), image_records)
            if L.is_container_of(r.labels, user)
        ]
        if images is None and records:
            images = self.images.list(user)
        image_ids = {i.project: i.id for i in images or []}
        self._fill_start_times(records)
        return sorted((self._status(user, r, image_ids) for r in records), key=lambda s: s.project)

    def status(self, user: User, project: str, log_lines: int = 10) -> ContainerStatus:
        """The project's container; a crashed one with the last ``log_lines`` lines of its output."""
        status = self._status(user, self.record(user, project))
        if status.ending == "crashed" and log_lines:
            try:
                status.log_tail = list(self.engine.logs(status.id, tail=log_lines))[-log_lines:]
            except DS01Error:
                pass  # removed meanwhile: the status stands without them
        return status

    def gpu_use(self, user: User, everyone: builtins.list[ContainerRecord] | None = None):
        """(every holder: GPU UUID -> container, the user's GPU slots, the user's GPU UUIDs): the one answer to
        "what does this user hold" for deploy's limit check and check-limits alike. ``everyone``: trusted
        containers of all users (deploy has them under the lock); by default only the user's are listed."""
        if everyone is None:
            everyone = self.vet(self.engine.list_containers(L.owned_by(user)))
        held = self.allocator.holders(everyone, self.hold_for)
        slots, uuids = self.allocator.share(held, user)
        return held, slots, uuids

    # -- lifecycle ------------------------------------------------------------------
    def hold_for(self, labels: dict) -> float | None:
        try:
            uid = int(labels.get(L.USER_ID, "-1"))
            owner = User(labels.get(L.USER, ""), uid, int(labels.get(L.GROUP_ID) or uid), Path("/"))
        except (InvalidName, ValueError):
            return Limits().gpu_hold_after_stop
        return self.limits.for_user(owner).gpu_hold_after_stop

    def _gpu_count(self, gpus: int | None, devices: builtins.list, notices: builtins.list[str]) -> int:
        """The GPUs to allocate for a request of ``gpus`` (checked by DeployRequest) on a host with ``devices``."""
        if not devices:
            if gpus:
                raise GpuUnavailable(
                    f"You asked for {gpus} GPU(s), but no NVIDIA GPU is available here. "
                    f"{self.inventory.notice}".strip(),
                    hint="Deploy with --gpus 0 for a CPU-only container.",
                )
            if gpus is None:
                notices.append(f"{self.inventory.notice or 'No GPU on this host.'} Deployed CPU-only.")
            return 0
        return 1 if gpus is None else gpus

    def deploy(
        self,
        user: User,
        project: str,
        gpus: int | None = None,
        progress: Progress = _noop,
        protected: bool = False,
        command: tuple[str, ...] | None = None,
        env: dict[str, str] | None = None,
        framework: str | None = None,
        memory_cap: int | None = None,
        cpus_cap: float | None = None,
        node: str | None = None,
    ) -> DeployResult:
        """Create and start the project's container; return the running one if there is one.

        ``gpus=None`` means one GPU where the host has any, else CPU-only with
        a notice; an explicit count that cannot be met is an error. ``command``
        and ``env`` (added to ours, which win) are for front ends that run a
        server as the container's main process, such as the JupyterHub spawner. ``framework`` names the
        framework image to run on when the project's image is missing (see frameworks.py). ``memory_cap`` and
        ``cpus_cap`` lower the user's limits for this container (a front end's own ceilings), never raise them.
        ``node`` pins a new container to that node of a cluster (engine "swarm"); by default it goes to the least
        loaded node with a free GPU.
        """
        # Every front end's request is checked here the same way (a bool, a negative or absurd count, a framework
        # not configured: refused before anything).
        request = DeployRequest(project, gpus=gpus, protected=protected, framework=framework, node=node)
        request.check_framework(self.settings)
        proj = self.projects.locate(user, project)
        notices: list[str] = []
        existing = self._owned(user, project)
        if existing is None and proj.missing:
            self.projects.get(user, project)  # "does not exist, create it"
        if not proj.missing:
            workspace_access.check(user, proj.path, project)
        if existing is not None:
            self.check_workspace(existing, project)
            if existing.running:
                return DeployResult(self._status(user, existing), False, [f"{existing.name} is already running."])
            progress(f"Starting existing container {existing.name}")
            self.start(user, project)
            return DeployResult(self.status(user, project), False, [f"Started the existing container {existing.name}."])

        image, fallback = frameworks.choose_image(self.settings, self.engine, self.images, user, project, framework,
                                                  progress, notices)
        self.images.refuse_volumes(user, project, image)  # before any container exists
        ssh = ssh_mount.checked(user, staged=_checks_mounts(user)) if self.settings.mount_ssh else None
        limits = self.limits.for_user(user)
        self.limits.write_user_copy(user, limits)
        limits = limits.capped(memory_cap, cpus_cap)  # after the copy, which shows the user's own limits
        devices = self.inventory.devices()  # NVML is slow: query before taking the lock
        if node:
            devices = self._on_node(devices, node)
        count = self._gpu_count(gpus, devices, notices)

        mounts = (((ssh[0], ssh_mount.destination(user)),) if ssh else ()) + self._helpers_mount(user, image)
        created = False
        with self.allocator.locked(progress):
            record = self._owned(user, project)  # a concurrent deploy may have won
            if record is None:
                # Only the user's own containers count for their limit, and only GPU holders for the GPUs: the others
                # are not vetted (an inspect each, for a CLI process that keeps nothing: seconds on a busy host).
                everyone = self.vet(self.engine.list_containers(
                    L.managed(), keep=lambda labels: L.is_container_of(labels, user) or bool(
                        count and L.gpu_uuids(labels))))
                mine = [c for c in everyone if L.is_container_of(c.labels, user)]
                if limits.max_containers_per_user is not None and len(mine) >= limits.max_containers_per_user:
                    raise LimitExceeded(
                        f"Container limit reached: you have {len(mine)} containers and your limit "
                        f"max_containers_per_user is {limits.max_containers_per_user}.",
                        hint="Retire one first (`container-list`, then `container-retire NAME`).",
                        limit="max_containers_per_user",
                        value=limits.max_containers_per_user,
                        current=len(mine),
                    )
                held, own_slots, _ = self.gpu_use(user, everyone)
                self.allocator.check_limits(limits, count, own_slots, devices)
                progress(f"Creating container {container_name(project, user.name)}")
                from .swarm_claims import GpuTaken  # a cluster engine's word for "claimed meanwhile elsewhere"

                for _attempt in range(len(devices) + 1):
                    chosen = self.allocator.choose(devices, held, count, limits, own_slots) if count else []
                    try:
                        spec = self._spec(user, proj, image, limits, chosen, protected, command, env, fallback,
                                          mounts, node)
                        if self._pins(user):
                            spec = dataclasses.replace(spec, workspace=workspace_pin.pin(
                                user, spec.workspace, spec.name, self.settings.docker_url))
                        try:
                            record = self._create(spec)
                        except AlreadyExists:
                            raise  # its container, made meanwhile outside our lock, mounts that pin
                        except BaseException:
                            workspace_pin.unpin(user.uid, spec.name, self.settings.docker_url)
                            raise
                        created = True
                    except AlreadyExists:  # made outside our lock, e.g. by an older tool or on another host
                        record = self.record(user, project)
                    except GpuTaken as err:  # a cluster: another host's deploy claimed it a moment ago
                        held = {**held, err.details["uuid"]: None}
                        continue
                    break
                else:  # every choice claimed elsewhere meanwhile (choose refuses first once none is free)
                    raise GpuUnavailable("The GPUs chosen were claimed by other deploys meanwhile.",
                                         hint="Deploy again.")
        if not record.running:
            try:
                progress("Starting container")
                with _alone(user, project, self.settings.lock_timeout):
                    self._start_stopped(user, record.id)
            except BaseException:  # an error, or the caller ended meanwhile (Ctrl-C, a closed pipe for progress)
                if created:  # do not leave a container holding a GPU it cannot use
                    with contextlib.suppress(DS01Error):
                        self.engine.remove_container(record.id, force=True)
                    workspace_pin.unpin(user.uid, record.name, self.settings.docker_url)
                raise
        self._settle(user, project, record.id, remove=created)
        if created and chosen:
            notices.append("GPU: " + ", ".join(f"{d.name} ({d.uuid})" for d in chosen))
        return DeployResult(self.status(user, project), created, notices)

    def _spec(
        self, user: User, proj, image, limits: Limits, chosen: builtins.list, protected: bool, command=None,
        extra_env=None, fallback: str = "", read_only_mounts: tuple = (), node: str | None = None,
    ) -> ContainerSpec:
        tag = self.images.tag(user, proj.name)
        workspace = str(proj.path.resolve())
        slots = sum(d.slots(limits.mig_instances_per_gpu) for d in chosen)
        labels = {
            **L.owned_by(user),
            L.GROUP_ID: str(user.gid),
            L.PROJECT: proj.name,
            L.WORKSPACE: workspace,
            L.WORK_MOUNT: "/workspace",
            L.GPU_UUIDS: ",".join(d.uuid for d in chosen),
            L.GPU_SLOTS: str(slots),
            L.GPU_ALLOCATED: "true" if chosen else "false",
            L.CREATED_AT: L.now_iso(),
            L.IMAGE: self.settings.frameworks()[fallback] if fallback else tag,
            L.INTERFACE: self.settings.interface,
            L.FALLBACK: fallback,
            # Always set, so that a LABEL of the image can never decide it (see DECISIONS).
            L.PROTECTED: "true" if protected else "false",
        }
        return ContainerSpec(
            name=container_name(proj.name, user.name),
            image=image.id,
            labels=labels,
            workspace=workspace,
            user=f"{user.uid}:{user.gid}",
            command=tuple(command) if command else ContainerSpec.command,
            env={
                # Defaults first: the image's own ENV (by leaving them out) and the front end's env override them.
                **workspace_env(image.env),
                **(extra_env or {}),
                "DS01_PROJECT": proj.name,
                "DS01_USER": user.name,
                "DS01_CONTAINER": container_name(proj.name, user.name),
                # Explicit even without GPUs: CUDA images default to "all", which a
                # host whose default runtime is nvidia would honour.
                "NVIDIA_VISIBLE_DEVICES": ",".join(d.uuid for d in chosen) or "void",
                # `from ds01_jupyter import checkpoints` works inside (see helpers.py).
                **_pythonpath(image),
            },
            hostname=proj.name.replace("_", "-"),
            memory=limits.memory,
            memory_swap=limits.memory_swap,
            # max_cpus is a ceiling; Docker refuses more CPUs than the host has.
            cpus=min(limits.max_cpus, os.cpu_count() or 1) if limits.max_cpus else None,
            shm_size=limits.shm_size,
            pids_limit=limits.pids_limit,
            gpu_uuids=tuple(d.uuid for d in chosen),
            network=network_name(user),
            network_labels={**L.owned_by(user)},
            read_only_mounts=read_only_mounts,
            node=node,
        )

    def _helpers_mount(self, user: User, image: ImageRecord) -> tuple[tuple[str, str], ...]:
        """The helpers' host folder, mounted where the engine runs on this machine (else copied in: _settle). Root
        making a user's container reads her image's layers first: an archive call on it (a rescue, a kernel's
        files) mounts the folder again in the image's own /dev, where a link she put at /dev/.ds01-lib would
        lead the engine's mkdir out of the container's root into her project folder."""
        if not (self.engine.local and helpers.wanted(image.env)):
            return ()
        if _checks_mounts(user) and upperdir.layers_hold(image.layer_dirs, helpers.MOUNT.lstrip("/")) is not False:
            return ()
        folder = helpers.host_folder(self._helpers_base())
        return ((str(folder), helpers.MOUNT),) if folder is not None else ()

    def _pins(self, user: User) -> bool:
        """Whether the engine gets the user's project folder through a pin (workspace_pin): where root starts
        her containers on an engine of this machine."""
        return _checks_mounts(user) and self.engine.local

    def _helpers_base(self) -> Path:
        return helpers.base_folder(self.settings.helpers_dir)

    def _create(self, spec: ContainerSpec) -> ContainerRecord:
        """Create it; without the helpers' mount where the engine cannot see their host folder (a Docker confined
        to some paths, such as snap's): they are copied in after the start then, as into a cluster node's."""
        try:
            return self.engine.create_container(spec)
        except EngineError as err:
            source = dict((target, host) for host, target in spec.read_only_mounts).get(helpers.MOUNT)
            if source is None or source not in err.message:
                raise
            log.warning("ds01: the engine cannot mount %s (%s); the helpers are copied into %s instead.", source,
                        err.message, spec.name)
        mounts = tuple(m for m in spec.read_only_mounts if m[1] != helpers.MOUNT)
        return self.engine.create_container(dataclasses.replace(spec, read_only_mounts=mounts))

    def _on_node(self, devices: builtins.list, node: str) -> builtins.list:
        """The devices of one cluster node (a deploy pinned there); refused on one host."""
        nodes = getattr(self.engine, "node", None)
        if nodes is None:
            raise InvalidRequest("A node can be chosen only in a cluster (engine 'swarm'); this host is one engine.",
                                 setting="engine")
        name = nodes(node).name  # InvalidRequest naming the nodes when there is no such one
        return [d for d in devices if d.node == name]

    def start(self, user: User, project: str) -> ContainerStatus:
        """Start a stopped container, if its GPUs were not given to someone else meanwhile."""
        record = self.record(user, project)
        if record.running:
            return self._status(user, record)
        self.check_workspace(record, project)
        self._restage_ssh(user, record)
        self._check_helpers(user, record)
        uuids = L.gpu_uuids(record.labels)
        with self.allocator.locked():
            if uuids:
                gpu_holders = self.engine.list_containers(L.managed(), keep=lambda labels: bool(L.gpu_uuids(labels)))
                others = [c for c in self.vet(gpu_holders) if c.id != record.id]
                held = self.allocator.holders(others, self.hold_for)
                taken = [u for u in uuids if u in held]
                if taken:
                    holder = held[taken[0]]
                    ending = self.allocator.ending(record)
                    when = (f"when it {ending.describe()}" if ending.crashed else "after it stopped "
                            f"(gpu_hold_after_stop: {format_duration(self.hold_for(record.labels))})")
                    raise StateConflict(
                        f"The GPU of {record.name} was released {when} and is now used by "
                        f"{holder.labels.get(L.USER, '?')}.",
                        hint=f"Retire it and deploy again for another GPU: `container-retire {project}`.",
                    )
            with _alone(user, project, self.settings.lock_timeout):
                self._start_stopped(user, record.id)
        self._settle(user, project, record.id)  # the helpers again: the image's own init may have emptied /tmp
        return self.status(user, project)

    def _start_stopped(self, user: User, container_id: str) -> None:
        """Start it; where root starts it offline (the start lock held), not when another request did meanwhile:
        going offline would cut the network of a run that was checked."""
        offline = _checks_mounts(user)
        if offline:
            again = self.engine.get_container(container_id)
            if again is not None and again.running:
                return
            if again is not None and self._pins(user):
                if not workspace_pin.pinned(again):
                    raise Forbidden(
                        f"{again.name} mounts your project folder by its path, which the engine would follow "
                        "again at this start; ds01 no longer starts such a container for you.",
                        hint=f"Retire it with its work rescued (`container-retire {again.labels.get(L.PROJECT)} "
                             "--rescue`) and deploy again.")
                # Bound again: she may have made her project folder again since (a rescue of a deleted one).
                workspace_pin.pin(user, again.labels.get(L.WORKSPACE, ""), again.name, self.settings.docker_url)
        self.engine.start_container(container_id, offline=offline)

    def _settle(self, user: User, project: str, container_id: str, remove: bool = False,
                helpers: bool = True) -> None:
        """What follows every start. One made by root for a user, offline, has its mounts checked first: /workspace
        (removed when wrong) and ~/.ssh with mount_ssh (removed when ``remove``, else stopped). Only then, and at
        once, as each is an engine call of about 0.1 s: its network connected, and the helpers copied in. No
        other start of the container comes between the check and the connect (``_alone``)."""
        with _alone(user, project, self.settings.lock_timeout):
            checked = self.check_mounted_workspace(user, project, container_id)
            try:
                ssh_mount.check_started(self.engine, user, container_id, remove=remove, staged=_checks_mounts(user))
            except Forbidden:
                if remove:
                    workspace_pin.unpin(user.uid, container_name(project, user.name), self.settings.docker_url)
                raise
            steps: builtins.list[Callable[[], object]] = []
            if checked:  # only the run checked gets the network
                steps.append(lambda: self.engine.connect_own_network(container_id, L.owned_by(user), pid=checked))
            if helpers:
                steps.append(lambda: self.install_helpers(container_id, user))
            _at_once(steps)

    def _restage_ssh(self, user: User, record: ContainerRecord) -> None:
        """Before root starts a user's container that mounts ~/.ssh (mount_ssh): root's copy of it made again (what
        changed since shows inside); one that mounts another folder (made by an older ds01) is not started."""
        source = dict(record.mounts).get(ssh_mount.destination(user))
        if source is None or not _checks_mounts(user):
            return
        if source != ssh_mount.staged_folder(user):
            raise StateConflict(
                f"{record.name} mounts ~/.ssh from {source}, which its user may swap for a link before a start; "
                "it is not started.",
                hint=f"Retire it and deploy again (`container-retire {record.labels.get(L.PROJECT, '')}`): the new "
                "one mounts a copy of ~/.ssh made at each start.", container=record.name,
            )
        ssh_mount.stage(user)

    def _check_helpers(self, user: User, record: ContainerRecord) -> None:
        """Before a start of a container that mounts the helpers (made ready by ``record``): root starts a user's
        container only where they are root's own; one made by the user's own ds01 mounts a folder of hers, which
        she may point at any host folder."""
        source = dict(record.mounts).get(helpers.MOUNT)
        if source is None or not self.engine.local:
            return
        ours = source == str(self._helpers_base() / helpers.LINK)
        if _checks_mounts(user) and not ours and not helpers.roots_own(source):
            raise StateConflict(
                f"{record.name} mounts its helpers from {source}, a folder its user may change; it is not started.",
                hint=f"Retire it and deploy again (`container-retire {record.labels.get(L.PROJECT, '')}`): the new "
                "one mounts root's own copy.", container=record.name,
            )

    def check_mounted_workspace(self, user: User, project: str, container_id: str) -> int:
        """After a start made as root for a user: the container's /workspace must be their real project folder.

        The engine resolves a bind mount's source again at every start, following links: a user who swaps
        ~/workspace/<project> for a link between our checks and the start would get any host folder (another
        user's project behind their 0700 home) mounted. So the folder the container really got (its inode, seen
        through the container's own root) is compared with the project folder opened without following links;
        anything else, or a container that cannot be looked at, is removed (what its processes copied into it
        could otherwise be read after a later, honest start).

        Such a start is made offline (``start_container(offline=True)``): the container gets its network only
        once the checks passed (``_settle``: the pid of the run checked here, 0 for none), so what it read then
        cannot leave through the network, and every request that finds it running without its network checks it
        first (``_owned``), so no log, exec, kernel or rescue reaches it before."""
        if not _checks_mounts(user):
            return 0  # acting with our own rights: the engine's user could mount anything anyway
        record = self.engine.get_container(container_id)
        if record is None:  # removed meanwhile (by a request that found it unchecked, and its mount wrong)
            raise ContainerNotFound(f"The container {container_id[:12]} of {project} was removed while it started.",
                                    hint=f"Keep ~/workspace/{project} a real folder while it starts; then deploy "
                                    "again.")
        try:
            folder = self.projects.get(user, project).path
            if getattr(self.engine, "sees_pid_of", lambda _record: True)(record):
                why = _mount_mismatch(record, folder)
            else:  # a cluster node on another machine: its /proc is not ours (see workspace_proof.py)
                from . import workspace_proof

                why = workspace_proof.mismatch(self.engine, user, record, folder)
            again = self.engine.get_container(container_id) if not why else record
            if again is None or again.pid != record.pid:  # the stat above was of this run's process, not a reused pid
                why = "it ended while its /workspace was checked"
        except (Forbidden, ProjectNotFound) as err:
            why = err.message
        if not why:
            return record.pid
        log.warning("ds01: removing %s of %s: %s", record.name, user.name, why)
        try:
            self.engine.remove_container(record.id, force=True)
        except ContainerNotFound:
            pass
        workspace_pin.unpin(user.uid, record.name, self.settings.docker_url)
        raise Forbidden(
            f"{record.name} was removed: {why}. A container gets only your real project folder at /workspace.",
            hint=f"Keep ~/workspace/{project} a real folder (not a link) while it starts; then deploy again.",
            container=record.name,
        )

    def install_helpers(self, container_id: str, user: User) -> bool:
        """Copy the helpers (helpers.py) into a container that does not mount them, on its PYTHONPATH (one engine
        call), as ``user``'s files: the engine writes them as root through any link the user's image put in the path
        (inside the container's root: at worst into their /workspace), so they must be files they could write."""
        try:
            record = self.engine.get_container(container_id)
            if record is not None and helpers.MOUNT in dict(record.mounts):
                return True
            images = self.engine.get_images([record.image_id]) if record is not None and record.image_id else []
            if images and not helpers.wanted(images[0].env):
                return True  # the image has the whole package
            self.engine.put_tree(container_id, "/tmp", helpers.entries(), user.uid, user.gid)
        except DS01Error:
            return False  # the container works without them; only the helpers are missing
        return True

    def stop(self, user: User, project: str, stop_processes: bool = False, progress: Progress = _noop,
             force: bool = False, policy: bool = False) -> ContainerStatus:
        """Stop the container; it can be started again. Refuses (UnsavedWork) while the user's work runs in it,
        unless ``stop_processes``: then SIGTERM, ``stop_grace_seconds``, SIGKILL first (see processes.py).
        What the container keeps in memory is copied into the project first (``_save_memory``).
        ``force`` skips the look for running work (what was already judged, or a container being given up).
        ``policy``: a stop nobody is there to decide (the reaper's, a hub ending a server) goes ahead where the
        memory's copy cannot be made, and says what was lost; a GPU is never held for it."""
        return self.stop_with_report(user, project, stop_processes, progress, force, policy)[0]

    def stop_with_report(self, user: User, project: str, stop_processes: bool = False, progress: Progress = _noop,
                         force: bool = False, policy: bool = False) -> tuple[ContainerStatus, dict | None]:
        """``stop``, and what it did: the processes it stopped, what it copied out of memory (or lost)."""
        from .processes import Processes, only_unlooked, refusal, unlooked

        path = self.projects.get(user, project).path
        record = self.record(user, project)
        report = None
        if record.running and not force:
            processes = Processes(self.engine, self.settings, self.inventory)
            listing = processes.listing(user, record, memory=True)
            running = [unlooked()] if listing is None else [
                f for f in processes.findings(user, record, path, listing)[0] if f.kind == "process"]
            if running and not stop_processes:
                raise refusal(record.name, running, "Stopping")
            if running and not only_unlooked(running):
                report = processes.stop(user, record, progress=progress)
                # What they left in memory; the first look's list if this one fails (they were there).
                listing = processes.listing(user, record, sample=0, memory=True) or listing
            saved: dict | None
            if listing is None:  # nothing could be looked at: what it kept in memory is not known either
                saved = {"memory_lost": ["(what it kept in memory: the guard could not look inside)"],
                         "memory_lost_why": "the guard could not look inside the container"}
            else:
                saved = self._save_memory(user, project, record, listing, progress, policy)
            if saved is not None:
                report = {**(report or {}), **saved}
        if record.state in ("running", "paused", "restarting"):
            self.allocator.record_stop(record)  # a deliberate stop keeps the GPU for gpu_hold_after_stop
            self.engine.stop_container(record.id, timeout=self.settings.stop_timeout)
        return self.status(user, project), report

    def _save_memory(self, user: User, project: str, record: ContainerRecord, listing: dict,
                     progress: Progress, policy: bool) -> dict | None:
        """Copy the files of the container's memory-backed folders into the project before a stop loses them
        (a stopped container keeps its writable layer, not its /dev/shm): {"memory_rescued": the rescue}, or
        with ``policy`` where it cannot be made {"memory_lost": their paths, "memory_lost_why": why}. Else a
        copy that cannot be made refuses the stop, and the container keeps running."""
        from .findings import WORK, tmpfs_findings
        from .rescue import lost_in_copy

        memory = [f for f in tmpfs_findings(listing.get("tmpfs") or [])[0] if f.kind == WORK]
        if not memory:
            return None

        lost: list = []
        try:
            if self.save_memory is None:
                raise UnsavedWork(
                    f"Stopping {record.name} would lose {len(memory)} file(s) kept in memory ({memory[0].path}"
                    + (" and more" if len(memory) > 1 else "") + "): a stopped container keeps its files, not those.",
                    hint="Copy them into /workspace first, or retire with --rescue, which copies them.",
                    findings=[f.to_dict() for f in memory[:50]],
                )
            try:
                rescued = self.save_memory(user, project, record, memory, progress)
            except OSError as err:  # the writer's own (a .rescued/ she made read-only): a refusal, never a crash
                raise UnsavedWork(f"What {record.name} keeps in memory could not be copied into the project "
                                  f"({err.strerror or err}): not stopped.",
                                  hint="Make .rescued/ in the project writable, or copy the files yourself.") from None
            lost = lost_in_copy(rescued.skipped, memory)
            if lost and not policy:
                raise UnsavedWork(
                    f"Copied {rescued.files} file(s) kept in memory into {rescued.folder}, but {len(lost)} could not "
                    f"be read ({lost[0].path}: {lost[0].detail}): not stopped.",
                    hint="Copy them into /workspace yourself, or stop the processes that hold them.",
                    findings=[f.to_dict() for f in lost[:50]], rescued=rescued.to_dict())
        except DS01Error as err:
            if not policy:
                raise
            log.warning("Stopping %s loses %d file(s) kept in memory: %s", record.name, len(memory), err)
            return {"memory_lost": [f.path for f in memory[:200]], "memory_lost_why": err.message}
        done: dict = {"memory_rescued": rescued.to_dict()}
        if lost:
            done.update(memory_lost=[f.path for f in lost[:200]], memory_lost_why=lost[0].detail)
        return done

    def retire(self, user: User, project: str) -> ContainerStatus:
        """Stop and remove the container (its GPU is freed with it); the workspace stays (or stays gone)."""
        record = self.record(user, project)
        status = self._status(user, record)
        self.engine.remove_container(record.id, force=True)
        workspace_pin.unpin(user.uid, record.name, self.settings.docker_url)
        if status.stale_image or status.fallback:  # an older build, or the thin image of a fallback
            self.images.remove_superseded(user, record.image_id)
        status.state = "removed"
        return status

    def logs(self, user: User, project: str, tail: int | None = 200, follow: bool = False) -> Iterator[str]:
        tail = LogsQuery(tail).tail  # a negative or absurd count: the same error from every front end
        record = self.record(user, project)
        return self.engine.logs(record.id, tail=tail, follow=follow)

    def ensure_running(self, user: User, project: str, progress: Progress = _noop) -> tuple[ContainerStatus, bool]:
        """The running container, started first when it is stopped or crashed (through ``start``, with its GPU
        check); (its status, whether it was started). Refused clearly when its workspace is gone or replaced."""
        record = self.record(user, project)
        if record.running:
            self.check_workspace(record, project)
            return self._status(user, record), False
        progress(f"{record.name} is {self.allocator.ending(record).describe(record.state)}; starting it")
        return self.start(user, project), True

    def check_workspace(self, record: ContainerRecord, project: str) -> None:
        """Refuse, with what to do, a container whose /workspace cannot work: its folder deleted while it runs
        (or made again meanwhile: the container keeps the deleted one), or gone when it is to start."""
        state = workspace_state(record)
        source = workspace_pin.source_of(record) or record.labels.get(L.WORKSPACE, "")
        if state == "replaced" and record.running:
            raise StateConflict(
                f"The workspace folder {source} was deleted and made again while {record.name} ran: the container "
                "still has the deleted folder at /workspace, not the new one, so nothing can run there.",
                hint=f"Retire it (`container-retire {project}`, or `container-retire {project} --rescue` to keep "
                f"what it holds outside /workspace), then `container-deploy {project}` mounts the new folder.",
                project=project, workspace=source,
            )
        if state == "missing":
            now = f"was deleted while {record.name} ran: /workspace in it is gone" if record.running else \
                f"is gone: {record.name} cannot start without it"
            raise StateConflict(
                f"The workspace folder {source} of project {project} {now}.",
                hint=f"Keep what the container holds and retire it: `container-retire {project} --rescue` (makes "
                f"{source} again with the files under .rescued/), or `--discard`; then `container-deploy {project}`.",
                project=project, workspace=source,
            )

    def running(self, user: User, project: str) -> ContainerRecord:
        """The user's container of ``project`` when a command may run in it: running, its workspace in place."""
        record = self.record(user, project)
        if not record.running:
            raise StateConflict(f"{record.name} is {record.state}.", hint=f"Start it: `container-start {project}`.")
        self.check_workspace(record, project)
        return record

    def exec(self, user: User, project: str, command: builtins.list[str]) -> tuple[int | None, bytes]:
        """Run one command in the running container as the user, in /workspace."""
        record = self.running(user, project)
        return self.engine.exec(record.id, command, user=f"{user.uid}:{user.gid}", workdir="/workspace")

    def interactive(self, user: User, project: str, command: builtins.list[str], tty: bool) -> builtins.list[str]:
        """The argv of the engine's client attached to ``command`` in the running container (stdin passed
        through; a terminal only with ``tty``), whose exit code is the command's."""
        record = self.running(user, project)
        return self.engine.interactive_command(record.id, command, f"{user.uid}:{user.gid}", "/workspace", tty)

    def attach(self, user: User, project: str, command: builtins.list[str], tty: bool):
        """Start ``command`` as the user in /workspace of their running container and return (exec id, the
        connection carrying its stdin and output): for ds01d, whose callers have no engine access."""
        record = self.running(user, project)
        return self.engine.exec_attach(record.id, command, f"{user.uid}:{user.gid}", "/workspace", tty)

    def limits_and_use(self, user: User) -> dict:
        """Limits and current use, as ``check-limits`` shows them.

        The limits come from a file, so they are answered with the engine down;
        the use is then None and ``engine`` says why.
        """
        limits = self.limits.for_user(user)
        self.limits.write_user_copy(user, limits)
        answer = {"user": user.name, "limits": limits.to_dict(), "limits_readable": limits.describe()}
        try:
            mine = [
                r for r in self.vet(self.engine.list_containers(L.owned_by(user))) if L.is_container_of(r.labels, user)
            ]
            held, slots, uuids = self.gpu_use(user, mine)  # the same count deploy checks the limit against
        except EngineUnavailable as err:
            return {**answer, "containers": None, "running": None, "gpu_slots": None, "gpus": [], "gpu_holders": [],
                    "engine": {"available": False, "reason": str(err)}}
        holders = {r.id: r for r in held.values()}
        return {
            **answer,
            "containers": len(mine),
            "running": sum(1 for c in mine if c.running),
            "gpu_slots": slots,
            "gpus": uuids,
            "gpu_holders": sorted(
                ({"project": r.labels.get(L.PROJECT, ""), "container": r.name, "state": r.state,
                  "gpus": L.gpu_uuids(r.labels), "slots": int(r.labels.get(L.GPU_SLOTS) or 0)}
                 for r in holders.values()), key=lambda h: h["project"]),
            "engine": {"available": True, "reason": ""},
        }
