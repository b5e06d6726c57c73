"""The one seam to the container engine.

Everything above this interface speaks of containers, images and mounts, never
of Docker, so a Kubernetes backend (pods, a volume per workspace,
``nvidia.com/gpu`` resources) can replace it later.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ContainerSpec:
    """All a backend may create: one workspace mount (and read-only ones the core checked), never privileged."""

    name: str
    image: str
    labels: dict[str, str]
    workspace: str  # host folder mounted at work_mount
    work_mount: str = "/workspace"
    user: str | None = None  # "uid:gid"
    command: tuple[str, ...] = ("sleep", "infinity")
    env: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    shm_size: int | None = None
    pids_limit: int | None = None
    gpu_uuids: tuple[str, ...] = ()  # also in env as NVIDIA_VISIBLE_DEVICES ("void" when none)
    # The network the container joins, made on demand with network_labels: one per user, so no
    # user's container can reach another's (the host still reaches all of them).
    network: str | None = None
    network_labels: dict[str, str] = field(default_factory=dict)
    #: (host folder, destination) mounted read-only: only what the core checked (the user's ~/.ssh, mount_ssh).
    read_only_mounts: tuple[tuple[str, str], ...] = ()
    #: The cluster node to make it on (a cluster engine's choice when None; one host ignores it).
    node: str | None = None


@dataclass(frozen=True)
class ContainerRecord:
    """What the engine says about one container."""

    id: str
    name: str
    state: str  # created, running, paused, restarting, removing, exited, dead
    image: str
    image_id: str
    labels: dict[str, str]
    created: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    error: str = ""
    oom_killed: bool = False  # the kernel's OOM killer ended it (known from an inspect, not from a listing)
    pid: int = 0
    ip_address: str = ""  # on the container's own network (HostConfig.NetworkMode)
    # Its real configuration, which no image can set: what ds01 checks before trusting its labels.
    config_user: str = ""  # "uid:gid" as created ("" when the image's default user runs it)
    mounts: tuple[tuple[str, str], ...] = ()  # (destination, host source) of its bind mounts
    # Where its writable layer lives on the engine's machine (from an inspect; "" when unknown): see upperdir.py.
    storage_driver: str = ""
    upper_dir: str = ""
    lower_dirs: tuple[str, ...] = ()
    #: The cluster node it is on ("" on one host).
    node: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ImageRecord:
    id: str
    tags: tuple[str, ...]
    size: int
    created: datetime | None
    labels: dict[str, str]
    env: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()  # paths the image declares with VOLUME
    onbuild: tuple[str, ...] = ()  # its ONBUILD instructions, run by any build FROM it
    layer_dirs: tuple[str, ...] = ()  # its layers' folders on the engine's machine, top first (overlay2 only)


class ContainerEngine(abc.ABC):
    """Operations the core needs from a container engine."""

    @classmethod
    def from_settings(cls, settings) -> ContainerEngine:
        """An engine configured from the core's Settings (how ``engines.engine_for`` builds one)."""
        return cls()

    def close(self) -> None:  # noqa: B027 (optional: an engine without connections has nothing to do)
        """Release connections to the engine."""

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine, so that a host path given to it is ours (a bind mount's)."""
        return False

    def inventory(self):
        """The GPUs this engine places containers on (a cluster's, from its nodes), as a GpuInventory; None: the
        host's, from the gpu_inventory setting."""
        return None

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise EngineUnavailable unless the engine answers."""

    @abc.abstractmethod
    def list_containers(self, labels: dict[str, str], all: bool = True,
                        keep: Callable[[dict[str, str]], bool] | None = None) -> list[ContainerRecord]:
        """Containers carrying all of ``labels`` (value "" means: label present); with ``keep``, only those whose
        labels it accepts, chosen before anything more is asked of the engine about each (a label can be forged:
        ``keep`` only narrows what the caller then vets, see Containers.vet)."""

    @abc.abstractmethod
    def get_container(self, name_or_id: str) -> ContainerRecord | None: ...

    @abc.abstractmethod
    def create_container(self, spec: ContainerSpec) -> ContainerRecord:
        """Create (not start); raise AlreadyExists if the name is taken."""

    @abc.abstractmethod
    def start_container(self, name_or_id: str, offline: bool = False) -> None:
        """Start; ``offline``: with no network (only "none" attached), to be connected by connect_own_network."""

    def connect_own_network(self, name_or_id: str, labels: dict[str, str],  # noqa: B027 (optional)
                            pid: int = 0) -> None:
        """Attach a running container to its own network (HostConfig.NetworkMode) in place of "none"; with ``pid``,
        only the run whose main process that is (one started again since is left offline: StateConflict)."""

    @abc.abstractmethod
    def stop_container(self, name_or_id: str, timeout: int = 10) -> None: ...

    @abc.abstractmethod
    def remove_container(self, name_or_id: str, force: bool = False) -> None: ...

    @abc.abstractmethod
    def logs(self, name_or_id: str, tail: int | None = 200, follow: bool = False) -> Iterator[str]: ...

    @abc.abstractmethod
    def exec(
        self,
        name_or_id: str,
        command: list[str],
        user: str | None = None,
        workdir: str | None = None,
        env: dict | None = None,
        detach: bool = False,
        stderr: bool = True,
    ) -> tuple[int | None, bytes]:
        """Run a command inside; return (exit code, output: stdout, plus stderr unless stderr=False)."""

    @abc.abstractmethod
    def exec_stream(
        self, name_or_id: str, command: list[str], stdin: bytes, user: str, workdir: str = "/", timeout: float = 120.0
    ) -> tuple[IO[bytes], Callable[[], int | None]]:
        """Run a command fed ``stdin``; return (a readable stream of its stdout, a function giving its exit code
        once the stream is read). No read waits longer than ``timeout`` seconds."""

    @abc.abstractmethod
    def exec_attach(
        self, name_or_id: str, command: list[str], user: str, workdir: str, tty: bool, env: dict | None = None
    ) -> tuple[str, socket.socket]:
        """Start ``command`` with stdin and output attached (a terminal with ``tty``); return (its exec id, the
        connection carrying its stream), for a client that cannot reach the engine itself."""

    @abc.abstractmethod
    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        """Resize the terminal of an attached command started with ``tty``."""

    @abc.abstractmethod
    def exec_exit_code(self, exec_id: str, wait: float = 10.0, where: str = "its container") -> int | None:
        """The exit code of a command started by exec_attach; None while it still runs after ``wait`` seconds."""

    @abc.abstractmethod
    def diff(self, name_or_id: str) -> list[tuple[str, str]]:
        """Changes of the writable layer: (path, "A" added | "C" changed | "D" deleted)."""

    @abc.abstractmethod
    def read_archive(self, name_or_id: str, path: str):
        """A file-like tar stream of ``path`` in the container (running or not)."""

    @abc.abstractmethod
    def put_file(self, name_or_id: str, path: str, data: bytes, mode: int = 0o600, uid: int = 0, gid: int = 0) -> None:
        """Write one file inside the container (its folder must exist)."""

    @abc.abstractmethod
    def put_tree(self, name_or_id: str, folder: str, entries: list[tuple[str, bytes | None, int]], uid: int = 0,
                 gid: int = 0) -> None:
        """Write folders (data None) and files, owned by ``uid``:``gid``, under an existing ``folder``, in one call.

        ``entries`` are (path relative to folder, data, mode); parents come before their children.
        """

    @abc.abstractmethod
    def interactive_command(
        self, name_or_id: str, command: list[str], user: str | None, workdir: str | None, tty: bool
    ) -> list[str]:
        """The argv a terminal runs to attach to a command inside the container."""

    @abc.abstractmethod
    def cpu_usage_ns(self, name_or_id: str) -> int | None:
        """Cumulative CPU time of the container's cgroup, or None if not running."""

    @abc.abstractmethod
    def build_image(
        self,
        context: bytes,
        tag: str | None,
        buildargs: dict[str, str],
        labels: dict[str, str],
        progress: Progress,
        dockerfile: str = "Dockerfile",
        network: str | None = None,
    ) -> str:
        """Build from a tar ``context`` (tagged ``tag``, untagged with None); stream lines to ``progress``; return
        the image id."""

    @abc.abstractmethod
    def import_image(self, tarball_path: str, tag: str, changes: list[str]) -> str: ...

    @abc.abstractmethod
    def get_image(self, ref: str) -> ImageRecord | None: ...

    def get_images(self, image_ids: list[str]) -> list[ImageRecord]:
        """The images of these IDs that exist (what containers run: a look at each, which an engine may keep)."""
        found = (self.get_image(image_id) for image_id in image_ids)
        return [image for image in found if image is not None]

    @abc.abstractmethod
    def list_images(self, labels: dict[str, str]) -> list[ImageRecord]: ...

    @abc.abstractmethod
    def remove_image(self, ref: str) -> None: ...

    def image_usage(self) -> dict[str, tuple[int, int]]:
        """Image id -> (size, bytes shared with other images), as ``docker system df -v`` counts them; {} when
        the engine cannot tell (then sizes count shared layers once per image)."""
        return {}

    def quiet_since(self, since: float, labels: dict[str, str]) -> bool:
        """Whether the engine is sure that no image changed and no container with these labels was made, started,
        stopped, renamed or removed since ``since`` (a UNIX time); False whenever it cannot tell."""
        return False

    @abc.abstractmethod
    def events(self, labels: dict[str, str], since: float, until: float) -> Iterator[dict]:
        """Container events between two times (the stream ends at ``until``), as dicts
        with keys action, id, name, labels, exit_code, time."""
