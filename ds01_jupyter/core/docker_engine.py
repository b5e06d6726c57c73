"""The Docker backend of :mod:`ds01_jupyter.core.engine`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, NoReturn

from .engine import ContainerEngine, ContainerRecord, ContainerSpec, ImageRecord, Progress
from .errors import (
    AlreadyExists,
    BuildFailed,
    ContainerNotFound,
    EngineError,
    EngineUnavailable,
    ImageNotFound,
    StateConflict,
)

# docker-py and its transport, imported on the first connection (see _load_docker).
docker: Any = None
requests: Any = None
urllib3: Any = None


def _load_docker():
    """docker-py (with requests and urllib3, ~150 ms to import), imported when the engine first connects, so a
    CLI that talks to ds01d or only prints its help never loads it; None where it is not installed (it is a
    dependency, but the core must import without it for Binder)."""
    global docker, requests, urllib3
    if docker is None:
        import importlib

        try:
            for name in ("docker", "docker.errors", "docker.types", "requests.exceptions", "urllib3.exceptions"):
                importlib.import_module(name)
        except ImportError:  # pragma: no cover - exercised only where docker-py is absent
            return None
        requests, urllib3 = sys.modules["requests"], sys.modules["urllib3"]
        docker = sys.modules["docker"]  # last: another thread takes docker set for all three there
    return docker

_DOWN_HINT = (
    "Check that the Docker engine is running (`docker info`); start it with "
    "`sudo systemctl start docker` or `sudo dockerd &`, and make sure you may use it "
    "(member of the `docker` group)."
)


def _time(value) -> datetime | None:
    """Parse Docker's timestamps (RFC 3339 with nanoseconds, or unix seconds)."""
    if value in (None, "", 0, "0001-01-01T00:00:00Z"):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    text = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class DockerEngine(ContainerEngine):
    """Talks to dockerd through docker-py's low-level client, connected lazily."""

    def __init__(self, base_url: str | None = None, timeout: int = 120, gpu_request: str = "device_request",
                 kept_networks: int = 8):
        self.base_url = base_url
        self.gpu_request = gpu_request
        self.kept_networks = kept_networks
        self.timeout = timeout
        self._client = None
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}  # container id -> Config.User (immutable after create)
        self._usage_lock = threading.Lock()
        self._usage_cache: tuple[float, dict] | None = None
        #: Image lists by filter, with the time each was asked (see list_images).
        self._images_kept: dict[str, tuple[float, list]] = {}
        #: Images looked at by ID, with the time each was asked (see get_images).
        self._images_seen: dict[str, tuple[float, ImageRecord]] = {}
        self._seen_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> DockerEngine:
        return cls(settings.docker_url, gpu_request=settings.gpu_request, kept_networks=settings.kept_networks)

    # -- connection and errors -------------------------------------------------
    @property
    def api(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self):
        where = self.base_url or "the default socket (DOCKER_HOST or /var/run/docker.sock)"
        if _load_docker() is None:
            raise EngineUnavailable("The docker Python package is not installed.", hint="pip install docker")
        try:
            kwargs = docker.utils.kwargs_from_env()
            if self.base_url:
                kwargs["base_url"] = self.base_url
            # Connections kept per engine: the inspects a list makes at once, besides the events reader, followed
            # logs and the server's other requests (beyond it each further one is opened and then dropped).
            return docker.APIClient(version="auto", timeout=self.timeout, max_pool_size=self.INSPECT_AT_ONCE + 8,
                                    **kwargs)
        except docker.errors.DockerException as err:
            raise EngineUnavailable(
                f"Cannot reach the Docker engine at {where}: {_short(err)}.", hint=_DOWN_HINT
            ) from None

    @contextlib.contextmanager
    def _errors(self, what: str, subject: str = ""):
        if _load_docker() is None:  # nothing of docker-py to translate: self.api says it is missing
            yield
            return
        try:
            yield
        except docker.errors.NotFound as err:
            cls = ImageNotFound if "image" in what else ContainerNotFound
            raise cls(f"{subject or what}: not found ({_explain(err)}).") from None
        except docker.errors.APIError as err:
            code = err.response.status_code if err.response is not None else None
            if code == 409:
                if "already in use" in _explain(err):
                    raise AlreadyExists(f"{subject} already exists.") from None
                raise StateConflict(f"Cannot {what} {subject}: {_explain(err)}.") from None
            raise EngineError(f"Docker could not {what} {subject}: {_explain(err)}.") from None
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            docker.errors.DockerException,
        ) as err:
            self._client = None  # reconnect next time: the engine may come back
            raise EngineUnavailable(
                f"Lost the Docker engine while trying to {what}: {_short(err)}.", hint=_DOWN_HINT
            ) from None

    def close(self) -> None:
        """Close the connections to the engine (a later call reconnects)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine (a unix socket), so the paths it names are ours too."""
        url = self.base_url or os.environ.get("DOCKER_HOST") or "unix://"
        return url.startswith(("unix://", "/"))

    def ping(self) -> None:
        with self._errors("reach the engine"):
            self.api.ping()

    # -- containers -------------------------------------------------------------
    @staticmethod
    def _filters(labels: dict[str, str]) -> dict:
        return {"label": [f"{k}={v}" if v != "" else k for k, v in labels.items()]}

    def list_containers(self, labels, all=True, keep=None):
        with self._errors("list containers"):
            rows = self.api.containers(all=all, filters=self._filters(labels))
        if keep is not None:  # not asked about: each record costs an inspect (its user) in a process that is new
            rows = [row for row in rows if keep(row.get("Labels") or {})]
        self._learn_users([row["Id"] for row in rows])
        out = []
        for row in rows:
            exit_code = None
            match = re.match(r"Exited \((-?\d+)\)", row.get("Status", ""))
            if match:
                exit_code = int(match.group(1))
            out.append(
                ContainerRecord(
                    id=row["Id"],
                    name=(row.get("Names") or ["/"])[0].lstrip("/"),
                    state=row.get("State", ""),
                    image=row.get("Image", ""),
                    image_id=row.get("ImageID", ""),
                    labels=row.get("Labels") or {},
                    created=_time(row.get("Created")),
                    exit_code=exit_code,
                    ip_address=_own_ip(row.get("HostConfig") or {}, row.get("NetworkSettings") or {}),
                    config_user=self._config_user(row["Id"]),
                    mounts=_binds(row.get("Mounts")),
                )
            )
        return out

    #: Containers inspected side by side when a list finds several this process has not seen yet (a new CLI
    #: process, where the user runs many): each inspect waits on the engine, not on this process.
    INSPECT_AT_ONCE = 8

    def _learn_users(self, container_ids: list[str]) -> None:
        self._side_by_side(self._config_user, [i for i in container_ids if i not in self._users])

    def _side_by_side(self, look, items: list) -> list:
        """``look`` at each item, INSPECT_AT_ONCE at a time (each waits on the engine, not on this process); the
        first engine error is raised."""
        if len(items) < 2:
            return [look(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(self.INSPECT_AT_ONCE, len(items)), thread_name_prefix="ds01-inspect") as pool:
            return list(pool.map(look, items))

    def _config_user(self, container_id: str) -> str:
        """The user a container was created with: not in the engine's list, and never changes, so kept."""
        if container_id not in self._users:
            try:
                with self._errors("inspect container", container_id):
                    data = self.api.inspect_container(container_id)
            except ContainerNotFound:
                return ""  # removed since the list: nothing to trust
            self._users[container_id] = (data.get("Config") or {}).get("User") or ""
        return self._users[container_id]

    def get_container(self, name_or_id):
        try:
            with self._errors("inspect container", name_or_id):
                data = self.api.inspect_container(name_or_id)
        except ContainerNotFound:
            return None
        state = data.get("State") or {}
        config = data.get("Config") or {}
        self._users[data["Id"]] = config.get("User") or ""
        return ContainerRecord(
            id=data["Id"],
            name=data.get("Name", "").lstrip("/"),
            state=state.get("Status", ""),
            image=config.get("Image", ""),
            image_id=data.get("Image", ""),
            labels=config.get("Labels") or {},
            created=_time(data.get("Created")),
            started_at=_time(state.get("StartedAt")),
            finished_at=_time(state.get("FinishedAt")),
            exit_code=state.get("ExitCode"),
            error=state.get("Error", "") or ("out of memory" if state.get("OOMKilled") else ""),
            oom_killed=bool(state.get("OOMKilled")),
            pid=state.get("Pid") or 0,
            ip_address=_own_ip(data.get("HostConfig") or {}, data.get("NetworkSettings") or {}),
            config_user=config.get("User") or "",
            mounts=_binds(data.get("Mounts")),
            **_storage(data.get("GraphDriver") or {}),
        )

    def _users_network(self, name_or_id: str) -> str:
        """The ds01 user network a container is on ("" for any other network)."""
        try:
            with self._errors("inspect container", name_or_id):
                mode = (self.api.inspect_container(name_or_id).get("HostConfig") or {}).get("NetworkMode") or ""
        except ContainerNotFound:
            return ""
        return mode if mode.startswith("ds01-") else ""

    def _drop_network_if_unused(self, name: str) -> None:
        """Once no container (in any state) is on a user's network: keep it for their next deploy, with at most
        ``kept_networks`` unused ds01 networks in all (the ones unused longest, by creation, go first; this one is
        kept before any other): Docker's address pools are small (about 30 networks by default)."""
        with contextlib.suppress(EngineError, StateConflict, ContainerNotFound), self._errors("remove network", name):
            ours, unused = self._unused_networks()
            if not any(n.get("Name") == name for n in ours):
                return
            others = sorted((n for n in unused if n.get("Name") != name), key=lambda n: n.get("Created") or "",
                            reverse=True)  # ISO times: the newest first
            for network in ([n for n in unused if n.get("Name") == name] + others)[max(0, self.kept_networks):]:
                with contextlib.suppress(EngineError, StateConflict, ContainerNotFound), self._errors("remove network"):
                    self.api.remove_network(network["Id"])  # refused (and left) if a container joined meanwhile

    def _unused_networks(self) -> tuple[list[dict], list[dict]]:
        """(every ds01 network, those no container is on): one list of networks and one of containers."""
        ours = self.api.networks(filters={"label": ["ds01.managed=true"]})
        used = self._networks_in_use()
        return ours, [n for n in ours if n.get("Name") not in used and n.get("Id") not in used]

    def _networks_in_use(self) -> set[str]:
        """Names and IDs of the networks any container (in any state, ds01's or not) is on or will join."""
        used: set[str] = set()
        for row in self.api.containers(all=True):
            used.add((row.get("HostConfig") or {}).get("NetworkMode") or "")
            for net_name, net in ((row.get("NetworkSettings") or {}).get("Networks") or {}).items():
                used.update((net_name, (net or {}).get("NetworkID") or ""))
        return used

    def _drop_unused_networks(self) -> int:
        """Remove every ds01 network no container is on (Docker has no address range left); how many went."""
        removed = 0
        try:
            with self._errors("list networks"):
                _, unused = self._unused_networks()
        except EngineError:
            return 0
        for network in unused:
            with contextlib.suppress(EngineError, StateConflict, ContainerNotFound), self._errors("remove network"):
                self.api.remove_network(network["Id"])  # refused (and left) if a container joined meanwhile
                removed += 1
        return removed

    def _ensure_network(self, name: str, labels: dict[str, str]) -> None:
        """Make the user's bridge network unless it exists; a concurrent maker may win (then theirs is used)."""
        if self._one_network(name, labels):
            return
        for attempt in (1, 2):
            try:
                with self._errors("create network", name):
                    self.api.create_network(
                        name,
                        driver="bridge",
                        labels=labels,
                        check_duplicate=True,
                        # The user's own containers may talk to each other (a database beside a notebook);
                        # other users' are on other bridges, which Docker isolates from this one.
                        options={"com.docker.network.bridge.enable_icc": "true"},
                    )
                break
            except (AlreadyExists, StateConflict):
                break  # made meanwhile by another deploy of this user
            except EngineError as err:
                # No address range left: the unused networks ds01 kept (kept_networks) give theirs back first.
                if "address pool" not in err.message or attempt == 2 or not self._drop_unused_networks():
                    self._network_error(name, err)
        self._one_network(name, labels)  # Docker's duplicate check is not atomic: two deploys may both make one

    @staticmethod
    def _network_error(name: str, err: EngineError) -> NoReturn:
        if "address pool" in err.message:
            raise EngineError(
                f"Docker has no address range left for the network {name}: {err.message}",
                hint="Each user's containers get their own network. Ask the admin to give Docker more "
                'address pools in /etc/docker/daemon.json, e.g. "default-address-pools": '
                '[{"base": "10.200.0.0/16", "size": 24}] (256 networks), and to restart Docker.',
            ) from None
        raise err

    def _one_network(self, name: str, labels: dict[str, str]) -> bool:
        """Whether the user's network ``name`` exists, left as one: of networks made under the same name at the
        same moment, all but the first made (by creation time, then ID: every deploy picks the same) are
        removed while no container is on them, so the name is never ambiguous to a container that uses it."""
        with self._errors("inspect network", name):
            found = [n for n in self.api.networks(names=[name]) if n.get("Name") == name]
        for network in found:
            theirs = network.get("Labels") or {}
            if any(theirs.get(k) != v for k, v in labels.items()):
                raise EngineError(
                    f"The network {name} exists but was not made by ds01 for this user (labels {theirs}); "
                    "containers are not put on it.",
                    hint=f"An admin removes it (`docker network rm {name}`) once nothing uses it.",
                )
        found.sort(key=lambda n: (n.get("Created") or "", n.get("Id") or ""))
        for extra in found[1:]:
            quietly = contextlib.suppress(EngineError, StateConflict, ContainerNotFound)
            with quietly, self._errors("remove network", name):
                if not self.api.containers(all=True, filters={"network": [extra["Id"]]}):
                    self.api.remove_network(extra["Id"])
        return bool(found)

    def create_container(self, spec: ContainerSpec):
        api = self.api
        device_requests = []
        if spec.gpu_uuids and self.gpu_request == "device_request":
            device_requests.append(
                docker.types.DeviceRequest(driver="nvidia", device_ids=list(spec.gpu_uuids), capabilities=[["gpu"]])
            )
        if spec.network:
            self._ensure_network(spec.network, spec.network_labels)
        host_config = api.create_host_config(
            # The workspace is the only host path a container ever sees. Docker cannot mount it nosuid,nodev
            # (bind flags other than ro are ignored, also through a local volume with o=bind,nosuid,nodev):
            # no-new-privileges makes setuid bits inert, no capability is left to make or use a device
            # node, and the engine's device cgroup refuses to open any device not in its default list.
            # Besides it, only read-only folders the core checked (the user's ~/.ssh with mount_ssh).
            mounts=[docker.types.Mount(spec.work_mount, spec.workspace, type="bind", read_only=False)]
            + [
                docker.types.Mount(target, source, type="bind", read_only=True)
                for source, target in spec.read_only_mounts
            ],
            privileged=False,
            # Everything runs as the user's uid: no process in the container needs a capability.
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,
            mem_limit=spec.memory,
            memswap_limit=spec.memory_swap if spec.memory else None,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            shm_size=spec.shm_size,
            pids_limit=spec.pids_limit,
            device_requests=device_requests or None,
            network_mode=spec.network or None,
        )
        for attempt in (1, 2):
            try:
                with self._errors("create container", spec.name):
                    created = api.create_container(
                        image=spec.image,
                        command=list(spec.command),
                        name=spec.name,
                        hostname=spec.hostname,
                        user=spec.user,
                        working_dir=spec.work_mount,
                        environment=spec.env,
                        labels=spec.labels,
                        host_config=host_config,
                        detach=True,
                    )
                break
            except ContainerNotFound:
                if attempt == 2 or not spec.network:
                    raise
                # The user's last other container was removed just now, and its network with it.
                self._ensure_network(spec.network, spec.network_labels)
            except EngineError as err:
                if attempt == 2 or not spec.network or "ambiguous" not in err.message:
                    raise
                # A concurrent deploy made a second network of the same name just now: leave one, then retry.
                self._ensure_network(spec.network, spec.network_labels)
        return self.get_container(created["Id"])

    def start_container(self, name_or_id, offline=False):
        if offline:
            self._go_offline(name_or_id)
        try:
            with self._errors("start container", name_or_id):
                self.api.start(name_or_id)
        except EngineError as err:
            if "nvidia" in err.message or "device driver" in err.message:
                raise EngineError(
                    f"The container {name_or_id} needs a GPU but Docker cannot hand it over: {err.message}",
                    hint="Install and configure the NVIDIA Container Toolkit, or deploy with --gpus 0.",
                ) from None
            raise

    def _go_offline(self, name_or_id) -> None:
        """Leave only the "none" network attached to a stopped container: its next start has no network."""
        with self._errors("inspect container", name_or_id):
            networks = (self.api.inspect_container(name_or_id).get("NetworkSettings") or {}).get("Networks") or {}
        for name in networks:
            if name != "none":
                with self._errors("disconnect the network of", name_or_id):
                    self.api.disconnect_container_from_network(name_or_id, name)
        if "none" not in networks:
            with self._errors("disconnect the network of", name_or_id):
                self.api.connect_container_to_network(name_or_id, "none")

    def connect_own_network(self, name_or_id, labels, pid=0):
        with self._errors("inspect container", name_or_id):
            data = self.api.inspect_container(name_or_id)
        self._same_run(data, pid)
        own = (data.get("HostConfig") or {}).get("NetworkMode") or ""
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        if not own.startswith("ds01-") or own in networks:
            return
        self._ensure_network(own, labels)  # the user's last other container may have taken it along meanwhile
        try:
            if "none" in networks:
                with self._errors("disconnect the network of", name_or_id):
                    self.api.disconnect_container_from_network(name_or_id, "none")
            with self._errors("connect the network of", name_or_id):
                self.api.connect_container_to_network(name_or_id, own)
        except (AlreadyExists, StateConflict, EngineError):
            again = self.get_container(name_or_id)
            if again is None or not again.ip_address:  # unless a concurrent connect of this container won
                raise
        if pid:  # started again between the look above and the connect: that run was not checked
            with self._errors("inspect container", name_or_id):
                data = self.api.inspect_container(name_or_id)
            try:
                self._same_run(data, pid)
            except StateConflict:
                with self._errors("disconnect the network of", name_or_id):
                    self.api.disconnect_container_from_network(name_or_id, own, force=True)
                raise

    @staticmethod
    def _same_run(data: dict, pid: int) -> None:
        """StateConflict unless the container still runs the main process ``pid`` (0: any run will do)."""
        if not pid:
            return
        running = (data.get("State") or {}).get("Pid") or 0
        if not running:
            raise StateConflict(f"The container {data.get('Name', '').lstrip('/')} ended while it was checked.",
                                hint="Deploy or start it again.")
        if running != pid:
            raise StateConflict(
                f"The container {data.get('Name', '').lstrip('/')} ended and was started again while it was checked; "
                "it stays without a network until that start's own check.", hint="Deploy or start it again.")

    def stop_container(self, name_or_id, timeout=10):
        with self._errors("stop container", name_or_id):
            self.api.stop(name_or_id, timeout=timeout)

    def remove_container(self, name_or_id, force=False):
        network = self._users_network(name_or_id)
        with self._errors("remove container", name_or_id):
            self.api.remove_container(name_or_id, force=force, v=True)
        if network:
            self._drop_network_if_unused(network)

    def logs(self, name_or_id, tail=200, follow=False) -> Iterator[str]:
        with self._errors("read logs of", name_or_id):
            chunks = self.api.logs(
                name_or_id, stream=True, follow=follow, tail="all" if tail is None else tail, timestamps=False
            )
            buffer = b""
            for chunk in chunks:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if buffer:
                yield buffer.decode("utf-8", "replace")

    def exec(self, name_or_id, command, user=None, workdir=None, env=None, detach=False, stderr=True):
        with self._errors("run a command in", name_or_id):
            exec_id = self.api.exec_create(
                name_or_id, command, user=user or "", workdir=workdir, environment=env, stdout=True, stderr=stderr
            )["Id"]
            output = self.api.exec_start(exec_id, detach=detach)
            if detach:
                return None, b""
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        return code, output or b""

    def exec_stream(self, name_or_id, command, stdin, user, workdir="/", timeout=120.0):
        from docker.utils.socket import frames_iter

        with self._errors("run a command in", name_or_id):
            exec_id = self.api.exec_create(
                name_or_id, command, user=user, workdir=workdir, stdin=True, stdout=True, stderr=False, tty=False
            )["Id"]
            sock = self.api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(timeout)  # a process that never reads its input or never answers cannot hang us
        try:
            raw.sendall(stdin)
            raw.shutdown(socket.SHUT_WR)
        except OSError as err:
            sock.close()
            raise EngineError(f"Could not talk to a command in {name_or_id}: {err}.") from None

        def chunks():
            try:
                for _stream, data in frames_iter(sock, False):
                    yield data
            except OSError as err:  # socket.timeout included
                raise EngineError(f"A command in {name_or_id} stopped answering ({err or 'timed out'}).") from None
            finally:
                sock.close()

        def exit_code():
            # The output can end a moment before the engine records the exit: wait for it, briefly.
            return self.exec_exit_code(exec_id, where=name_or_id)

        # Buffered: read(n) then returns n bytes or up to the end, not whatever one frame of the stream held.
        reader = io.BufferedReader(
            _ChunkReader(chunks(), self, f"read the output of a command in {name_or_id}"), 1 << 20
        )
        return reader, exit_code

    def exec_attach(self, name_or_id, command, user, workdir, tty, env=None) -> tuple[str, socket.socket]:
        """Start ``command`` with stdin and output attached (a terminal with ``tty``); (its exec id, the
        connection carrying its stream), for a client that has no access to the engine itself."""
        from .hijack import engine_address, start_attached

        with self._errors("run a command in", name_or_id):
            exec_id = self.api.exec_create(name_or_id, command, user=user, workdir=workdir, stdin=True, stdout=True,
                                           stderr=True, tty=tty, environment=env)["Id"]
            version = self.api.api_version
        return exec_id, start_attached(engine_address(self.base_url), version, exec_id, tty)

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        with self._errors("resize the terminal of", "a command"):
            self.api.exec_resize(exec_id, height=rows, width=cols)

    def exec_exit_code(self, exec_id: str, wait: float = 10.0, where: str = "its container") -> int | None:
        """The exit code of an exec; None while it still runs after ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            with self._errors("inspect a command in", where):
                info = self.api.exec_inspect(exec_id)
            if not info.get("Running"):
                return info.get("ExitCode")
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def diff(self, name_or_id):
        kinds = {0: "C", 1: "A", 2: "D"}
        with self._errors("list changes of", name_or_id):
            rows = self.api.diff(name_or_id) or []
        return [(row["Path"], kinds.get(row.get("Kind"), "C")) for row in rows]

    def read_archive(self, name_or_id, path):
        with self._errors("read files of", name_or_id):
            chunks, _stat = self.api.get_archive(name_or_id, path, chunk_size=1 << 20)
        return io.BufferedReader(_ChunkReader(chunks, self, f"read {path} from"), 1 << 20)

    def put_file(self, name_or_id, path, data, mode=0o600, uid=0, gid=0):
        folder, _, name = path.rpartition("/")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
            tar.addfile(info, io.BytesIO(data))
        with self._errors("write a file into", name_or_id):
            self.api.put_archive(name_or_id, folder or "/", buffer.getvalue())

    def put_tree(self, name_or_id, folder, entries, uid=0, gid=0):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, data, mode in entries:
                info = tarfile.TarInfo(path)
                info.mode, info.uid, info.gid = mode, uid, gid
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        with self._errors("write files into", name_or_id):
            self.api.put_archive(name_or_id, folder, buffer.getvalue())

    def interactive_command(self, name_or_id, command, user, workdir, tty):
        exe = shutil.which("docker")
        if exe is None:
            raise EngineUnavailable(
                "The docker command-line client is needed for an interactive shell.", hint="apt-get install docker.io"
            )
        argv = [exe, "exec", "-i"] + (["-t"] if tty else [])
        if user:
            argv += ["-u", user]
        if workdir:
            argv += ["-w", workdir]
        if self.base_url:
            argv[1:1] = ["-H", self.base_url]
        return argv + [name_or_id] + list(command)

    def cpu_usage_ns(self, name_or_id):
        with self._errors("read statistics of", name_or_id):
            stats = self.api.stats(name_or_id, stream=False, one_shot=True)
        usage = ((stats or {}).get("cpu_stats") or {}).get("cpu_usage") or {}
        return usage.get("total_usage")

    # -- images -----------------------------------------------------------------
    #: Builds of one image at most, where each before it lost a cached layer to another image's removal.
    BUILD_TRIES = 3

    def build_image(self, context, tag, buildargs, labels, progress: Progress, dockerfile="Dockerfile", network=None):
        """Build, and build again when a layer the build took from the cache was deleted under it. The engine's
        ``rmi`` also deletes the untagged layers beneath an image, which are the cache of every build with the
        same first steps: on a shared host another user's ``image-remove`` (or a retire's clean-up) can delete
        one between this build's cache hit and its next step, which then fails ("unknown parent image ID"). The
        next try finds no such layer and makes its own."""
        for attempt in range(1, self.BUILD_TRIES + 1):
            try:
                return self._build_once(context, tag, buildargs, labels, progress, dockerfile, network)
            except BuildFailed as failed:
                if attempt == self.BUILD_TRIES or not _LOST_LAYER.search(failed.message):
                    raise
                progress("A cached layer this build used was deleted meanwhile (another image's removal): "
                         "building again.")
        raise AssertionError("unreachable")

    def _build_once(self, context, tag, buildargs, labels, progress: Progress, dockerfile, network):
        image_id = None
        tail: list[str] = []
        what = tag or "(untagged)"  # a framework fallback image is built without a tag
        with self._errors("build image", what):
            stream = self.api.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                tag=tag,
                buildargs=buildargs,
                labels=labels,
                dockerfile=dockerfile,
                rm=True,
                forcerm=True,
                decode=True,
                network_mode=network,
            )
            for item in stream:
                if "error" in item:
                    detail = item.get("error", "").strip()
                    raise BuildFailed(
                        f"Building {what} failed: {detail}",
                        hint="Fix the Dockerfile and run `ds01 image-create` again.",
                        log="\n".join(tail[-20:]),
                    )
                text = item.get("stream") or item.get("status") or ""
                if "aux" in item and isinstance(item["aux"], dict):
                    image_id = item["aux"].get("ID") or image_id
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        progress(line)
        if image_id is None:
            found = self.get_image(tag) if tag else None
            if found is None:
                raise BuildFailed(f"Building {what} produced no image.", log="\n".join(tail[-20:]))
            image_id = found.id
        return image_id

    def import_image(self, tarball_path, tag, changes):
        repository, _, tagname = tag.rpartition(":")
        with self._errors("import image", tag):
            result = self.api.import_image_from_file(tarball_path, repository=repository, tag=tagname, changes=changes)
        last = result.strip().splitlines()[-1] if isinstance(result, str) and result.strip() else ""
        with contextlib.suppress(ValueError):
            status = json.loads(last).get("status", "")
            if status.startswith("sha256:"):
                return status
        image = self.get_image(tag)
        if image is None:
            raise EngineError(f"Importing {tag} produced no image: {result!r}")
        return image.id

    @staticmethod
    def _image(data) -> ImageRecord:
        return ImageRecord(
            id=data["Id"],
            tags=tuple(data.get("RepoTags") or ()),
            size=int(data.get("Size") or 0),
            created=_time(data.get("Created")),
            labels=(data.get("Config") or {}).get("Labels") or data.get("Labels") or {},
            env=tuple((data.get("Config") or {}).get("Env") or ()),
            volumes=tuple(sorted((data.get("Config") or {}).get("Volumes") or {})),
            onbuild=tuple((data.get("Config") or {}).get("OnBuild") or ()),
            layer_dirs=_layers(data.get("GraphDriver") or {}),
        )

    def get_image(self, ref):
        try:
            with self._errors("inspect image", ref):
                return self._image(self.api.inspect_image(ref))
        except ImageNotFound:
            return None

    #: Images kept by get_images at most (the images of the containers on a host: the oldest are let go).
    IMAGES_SEEN = 1024

    def get_images(self, image_ids):
        """The images of these IDs that exist. An image's content never changes but its tags may, so those looked
        at before are given again while the engine's event log shows no image event at all since (one short
        request instead of a look at each: a deploy vets every container of its user and every GPU holder); the
        others are looked at side by side."""
        wanted = list(dict.fromkeys(image_ids))
        with self._seen_lock:
            known = {i: self._images_seen[i] for i in wanted if i in self._images_seen}
        if len(known) > 1 and self._quiet_since(min(asked for asked, _ in known.values()), {},
                                                images=[image for _, image in known.values()]):
            kept = {i: image for i, (_, image) in known.items()}
        else:
            kept = {}
        new = [i for i in wanted if i not in kept]
        asked = time.time()
        looked = self._side_by_side(self.get_image, new)
        local = self._local()
        with self._seen_lock:
            for image_id, image in zip(new, looked):
                if image is None:
                    self._images_seen.pop(image_id, None)
                    continue
                kept[image_id] = image
                if local and image.id == image_id:
                    self._images_seen[image_id] = (asked, image)
            while len(self._images_seen) > self.IMAGES_SEEN:
                self._images_seen.pop(min(self._images_seen, key=lambda i: self._images_seen[i][0]))
        return [kept[i] for i in wanted if i in kept]

    #: Events the engine keeps for late readers; a window holding this many may have lost some.
    EVENTS_KEPT = 256

    def list_images(self, labels):
        """The images with these labels. The engine's list reads every image on the host (about 400 ms with a few
        hundred), so a list is kept and given again while the engine's own event log shows no image event since it
        was asked (one short request); any doubt (a full log, another machine's clock, an error) asks again."""
        filters = self._filters(labels)
        key = _kept_key(filters)
        kept = self._images_kept.get(key)
        if kept is not None and self._quiet_since(kept[0], labels, images=kept[1]):
            return list(kept[1])
        asked = time.time()
        with self._errors("list images"):
            rows = self.api.images(filters=filters)
        images = [self._image(row) for row in rows]
        if self._local():
            self._images_kept[key] = (asked, images)
        return list(images)

    def _local(self) -> bool:
        """Whether the engine is on this machine's clock (a unix socket), so its event times compare with ours."""
        url = self.base_url or os.environ.get("DOCKER_HOST") or "unix://"
        return url.startswith(("unix:", "/"))

    def quiet_since(self, since, labels):
        return self._local() and self._quiet_since(since, labels, containers=True)

    def _quiet_since(self, since: float, labels: dict[str, str], containers: bool = False,
                     images: list | None = None) -> bool:
        """No event since ``since`` in the engine's log of an image with ``labels`` or without any (a delete's
        event carries none), nor a tag given to another image that takes a name from the images with ``labels``
        last listed (only the other image's event is logged), nor of a build's commit, nor with ``containers`` of
        a container with ``labels`` that changes a list; False on any doubt (a full log, an error). Other users'
        images and containers churn freely on a busy host: their events carry their own labels. ``images``: the
        list with ``labels`` last kept, when the caller has it."""
        if images is None:
            kept = self._images_kept.get(_kept_key(self._filters(labels)))
            images = kept[1] if kept else []
        names = {tag for image in images for tag in image.tags}
        try:
            # The engine reads "seconds.nanoseconds" (nine digits); a float's fraction would be taken as nanoseconds.
            # No filter: the engine keeps its last EVENTS_KEPT events of every kind together, so only a count of
            # them all tells whether the window's events are all still there.
            window = {"since": _engine_time(since - 1), "until": _engine_time(time.time())}
            with contextlib.closing(self.api.events(decode=True, **window)) as stream:
                for seen, event in enumerate(stream, 1):
                    if seen >= self.EVENTS_KEPT - 1:
                        return False
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    mine = all(attrs.get(key) == value for key, value in labels.items())
                    action = (event.get("Action") or "").partition(":")[0]
                    if event.get("Type") == "image":
                        if mine or not attrs.keys() - {"name"} or attrs.get("name") in names:
                            return False
                    elif event.get("Type") == "container" and mine and (
                        action == "commit" or (containers and action in _LISTED_ACTIONS)
                    ):
                        return False
            return True
        except Exception:  # noqa: BLE001 - any doubt: ask the engine for the list
            return False

    def remove_image(self, ref):
        with self._errors("remove image", ref):
            self.api.remove_image(ref)

    #: Seconds a measurement of images is reused: `docker system df` walks every layer, and the engine runs
    #: one at a time for all its clients (a second one fails with "already running").
    IMAGE_USAGE_TTL = 30.0

    def image_usage(self):
        with self._usage_lock:
            cached = self._usage_cache
            if cached and time.monotonic() - cached[0] < self.IMAGE_USAGE_TTL:
                return cached[1]
            for attempt in range(10):
                try:
                    with self._errors("measure images"):
                        data = self.api.df()
                    break
                except EngineError as err:
                    if "already running" not in err.message or attempt == 9:
                        raise
                    time.sleep(0.5)  # another client's measurement: wait for it to end
            usage = self._image_usage(data)
            self._usage_cache = (time.monotonic(), usage)
            return usage

    @staticmethod
    def _image_usage(data) -> dict:
        usage = {}
        for row in data.get("Images") or ():
            size, shared = int(row.get("Size") or 0), int(row.get("SharedSize") or 0)
            usage[row["Id"]] = (size, max(0, shared))
        return usage

    def events(self, labels, since, until):
        filters = self._filters(labels)
        filters["type"] = ["container"]
        with self._errors("follow events"), contextlib.closing(
            self.api.events(decode=True, filters=filters, since=since, until=until)
        ) as stream:
            for event in stream:
                actor = event.get("Actor") or {}
                attrs = actor.get("Attributes") or {}
                yield {
                    "action": event.get("Action") or event.get("status"),
                    "id": actor.get("ID") or event.get("id"),
                    "name": attrs.get("name", ""),
                    "labels": {k: v for k, v in attrs.items() if k.startswith("ds01.")},
                    "exit_code": attrs.get("exitCode"),
                    "time": event.get("timeNano", 0) / 1e9 or event.get("time"),
                }


#: A build's failure when a layer it had from the cache was deleted before its next step: "failed to set parent
#: sha256:…: unknown parent image ID" (a COPY's layer) or "No such image: sha256:…" (a RUN's container).
_LOST_LAYER = re.compile(r"unknown parent image ID|No such image: sha256:[0-9a-f]{12}")

#: Container events that change what a list of containers shows (not exec_*, attach, top, health_status...).
_LISTED_ACTIONS = frozenset(
    {"create", "start", "restart", "stop", "die", "kill", "destroy", "rename", "update", "pause", "unpause", "oom"}
)


def _kept_key(filters: dict) -> str:
    return repr(sorted(filters.items()))


def _engine_time(seconds: float) -> str:
    return f"{int(seconds)}.{int(seconds % 1 * 1e9):09d}"


class _ChunkReader(io.RawIOBase):
    """A readable file over a chunk iterator, so tarfile can stream an archive."""

    def __init__(self, chunks, engine, what):
        self._chunks = iter(chunks)
        self._buffer = b""
        self._engine = engine
        self._what = what

    def readable(self):
        return True

    def readinto(self, target):
        while not self._buffer:
            try:
                with self._engine._errors(self._what):
                    self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _own_ip(host_config: dict, settings: dict) -> str:
    """The container's address on its own network (NetworkMode), else on any network it has."""
    networks = settings.get("Networks") or {}
    own = (networks.get(host_config.get("NetworkMode") or "") or {}).get("IPAddress")
    return own or settings.get("IPAddress") or next(
        (n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), ""
    )


def _layers(driver: dict) -> tuple[str, ...]:
    """An image's layer folders on the engine's machine, top first (overlay2; none for other storage drivers)."""
    if driver.get("Name") != "overlay2":
        return ()
    data = driver.get("Data") or {}
    return tuple(p for p in [data.get("UpperDir") or "", *(data.get("LowerDir") or "").split(":")] if p)


def _storage(driver: dict) -> dict:
    data = driver.get("Data") or {}
    lowers = data.get("LowerDir") or ""
    return {"storage_driver": driver.get("Name") or "", "upper_dir": data.get("UpperDir") or "",
            "lower_dirs": tuple(p for p in lowers.split(":") if p)}


def _binds(mounts) -> tuple[tuple[str, str], ...]:
    return tuple((m.get("Destination", ""), m.get("Source", "")) for m in mounts or () if m.get("Type") == "bind")


def _explain(err) -> str:
    explanation = getattr(err, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return (explanation or str(err)).strip()


def _short(err) -> str:
    text = str(err)
    match = re.search(r"(Connection refused|No such file or directory|Permission denied|timed out)", text)
    return match.group(1) if match else text[:200]
