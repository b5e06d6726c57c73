"""A cluster of Docker hosts under Docker Swarm as one engine (``engine = "swarm"``; see docs/cluster.md).

Swarm is used for what it is good at: membership (which nodes there are and whether they are up, each node's
GPUs and the endpoint of its engine, from the manager) and consensus (claims on GPUs and container names as
Swarm configs: swarm_claims.py). The containers stay ordinary containers made on one node's own engine, because
Swarm services have no ``--gpus``, no ``--shm-size`` and no stopped-but-kept state: stop/start, ``docker diff``,
archives, exec and GPUs by UUID work as on one host, through a :class:`DockerEngine` per node.

Container IDs are the node engines' own; this engine remembers which node each one is on (and asks every node
once for one it does not know). Images live on the home engine (docker_url) and reach a node when a container is
made there (swarm_images.py). A node that does not answer is "node unreachable": its containers are shown from
their name claims in that state, never as gone, and their claims stay until they are removed for real.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from . import labels as L
from .docker_engine import DockerEngine
from .engine import ContainerEngine, ContainerRecord, ContainerSpec
from .errors import (
    AlreadyExists,
    ConfigError,
    ContainerNotFound,
    DS01Error,
    EngineUnavailable,
    InvalidRequest,
    StateConflict,
)
from .swarm_claims import GRACE, Claim, Claims, GpuTaken, wait_for
from .swarm_images import ensure_image
from .swarm_nodes import Node, SwarmInventory, nodes_from

#: What status says of a container whose node does not answer (its state; never "removed").
UNREACHABLE = "node unreachable"


class SwarmEngine(ContainerEngine):
    #: Seconds the node list is reused, and a node that did not answer is not asked again.
    NODES_TTL = 2.0
    DOWN_RETRY = 5.0

    def __init__(self, manager_url: str, home_url: str | None = None, gpu_kind: str = "NVIDIA-GPU",
                 registry: str = "", gpu_request: str = "device_request", timeout: int = 120):
        self.manager = DockerEngine(manager_url, timeout=30)
        self.home = DockerEngine(home_url, timeout=timeout, gpu_request=gpu_request)
        self.gpu_kind = gpu_kind
        self.registry = registry
        self.gpu_request = gpu_request
        self.timeout = timeout
        self.claims = Claims(self.manager)
        self._engines: dict[str, DockerEngine] = {}
        self._where: dict[str, str] = {}  # container or exec ID -> node ID
        self._down: dict[str, float] = {}  # node ID -> when it last failed to answer
        self._nodes: tuple[float, list[Node]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> SwarmEngine:
        if not settings.swarm_manager:
            raise ConfigError("engine is 'swarm' but swarm_manager is not set.",
                              hint="Set swarm_manager (DS01_SWARM_MANAGER) to the Docker endpoint of a Swarm manager, "
                              "e.g. unix:///run/docker.sock or tcp://manager:2376.", setting="swarm_manager")
        return cls(settings.swarm_manager, settings.docker_url, settings.swarm_gpu_kind, settings.swarm_registry or "",
                   settings.gpu_request)

    def close(self) -> None:
        for engine in [self.manager, self.home, *self._engines.values()]:
            engine.close()

    def ping(self) -> None:
        self.manager.ping()
        self.home.ping()

    def inventory(self):
        return SwarmInventory(self)

    # -- nodes --------------------------------------------------------------------------------
    def nodes(self, check: bool = False) -> list[Node]:
        """The Swarm's nodes (reused for NODES_TTL seconds); ``check``: ask each node's engine now."""
        cached = self._nodes
        if cached and not check and time.monotonic() - cached[0] < self.NODES_TTL:
            return cached[1]
        with self.manager._errors("list the nodes of the Swarm"):
            rows = self.manager.api.nodes()
        found = nodes_from(rows, self.gpu_kind)
        if check:
            def ping(node):
                try:
                    self._engine(node).ping()
                    self._down.pop(node.id, None)
                except DS01Error:
                    self._down[node.id] = time.monotonic()
            self._each([n for n in found if n.endpoint], ping)
        now = time.monotonic()
        for node in found:
            failed = self._down.get(node.id)
            node.reachable = node.state == "ready" and (failed is None or now - failed > self.DOWN_RETRY)
        self._nodes = (time.monotonic(), found)
        return found

    def node(self, name_or_id: str) -> Node:
        for node in self.nodes():
            if name_or_id in (node.name, node.id):
                return node
        known = ", ".join(n.name for n in self.nodes() if n.endpoint) or "none"
        raise InvalidRequest(f"No node {name_or_id!r} in the cluster (nodes: {known}).", hint="See `ds01 nodes`.")

    def _engine(self, node: Node) -> DockerEngine:
        with self._lock:
            engine = self._engines.get(node.endpoint)
            if engine is None:
                engine = self._engines[node.endpoint] = DockerEngine(node.endpoint, timeout=self.timeout,
                                                                     gpu_request=self.gpu_request)
        return engine

    @staticmethod
    def _each(nodes: list[Node], fn) -> dict[str, object]:
        """fn(node) on every node at once; node ID -> result (or the DS01Error it raised)."""
        def call(node):
            try:
                return fn(node)
            except DS01Error as err:
                return err
        if len(nodes) == 1:
            return {nodes[0].id: call(nodes[0])}
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            return dict(zip((n.id for n in nodes), pool.map(call, nodes)))

    def _unreachable(self, node: Node, err: DS01Error | None = None) -> EngineUnavailable:
        self._down[node.id] = time.monotonic()
        node.reachable = False
        return EngineUnavailable(f"The node {node.name} is unreachable{': ' + err.message if err else ''}.",
                                 hint="Its containers are kept as they are; ask the admin to bring the node back.",
                                 node=node.name)

    # -- where a container is -----------------------------------------------------------------
    def _locate(self, name_or_id: str) -> Node | None:
        """The node holding the container (None: on no reachable node)."""
        known = self._where.get(name_or_id)
        if known:
            for node in self.nodes():
                if node.id == known:
                    return node
        candidates = [n for n in self.nodes() if n.endpoint and n.reachable]
        found = self._each(candidates, lambda n: self._engine(n).get_container(name_or_id))
        for node in candidates:
            record = found.get(node.id)
            if isinstance(record, ContainerRecord):
                self._where[record.id] = self._where[record.name] = node.id
                return node
            if isinstance(record, EngineUnavailable):
                self._unreachable(node)
        return None

    def _on(self, name_or_id: str, what: str, fn):
        """fn(the node's engine) for the container's node; EngineUnavailable when that node does not answer."""
        node = self._locate(name_or_id)
        if node is None:
            claim = self._claim_of(name_or_id)
            if claim is not None and not self._node_by_id(claim.node).reachable:
                raise self._unreachable(self._node_by_id(claim.node))
            raise ContainerNotFound(f"{name_or_id}: not found on any node (to {what}).")
        try:
            return fn(self._engine(node))
        except EngineUnavailable as err:
            raise self._unreachable(node, err) from None

    def _node_by_id(self, node_id: str) -> Node:
        for node in self.nodes():
            if node.id == node_id:
                return node
        return Node(node_id, node_id[:12], "", "", "gone", "drain", reachable=False)

    def _claim_of(self, name_or_id: str) -> Claim | None:
        try:
            return next((c for c in self.claims.list("name") if name_or_id in (c.container, c.container_id)), None)
        except DS01Error:
            return None

    # -- containers ---------------------------------------------------------------------------
    def list_containers(self, labels, all=True, keep=None):
        nodes = [n for n in self.nodes() if n.endpoint]
        asked = [n for n in nodes if n.reachable]
        results = self._each(asked, lambda n: self._engine(n).list_containers(labels, all=all, keep=keep))
        out: list[ContainerRecord] = []
        for node in asked:
            result = results[node.id]
            if isinstance(result, EngineUnavailable):
                self._unreachable(node)
            elif isinstance(result, DS01Error):
                raise result
            else:
                for record in result:
                    self._where[record.id] = self._where[record.name] = node.id
                    out.append(replace(record, node=node.name))
        down = {n.id: n for n in nodes if not n.reachable}
        if down and all:
            out += [r for r in self._unreachable_records(down)
                    if _matches(r.labels, labels) and (keep is None or keep(r.labels))]
        return out

    def _unreachable_records(self, down: dict[str, Node]) -> list[ContainerRecord]:
        """The containers of nodes that do not answer, as their name claims describe them."""
        return [_from_claim(c, down[c.node]) for c in self.claims.list("name") if c.node in down]

    def get_container(self, name_or_id):
        node = self._locate(name_or_id)
        if node is not None:
            try:
                record = self._engine(node).get_container(name_or_id)
            except EngineUnavailable:
                self._unreachable(node)
                record = None
            if record is not None:
                return replace(record, node=node.name)
        claim = self._claim_of(name_or_id)
        if claim is not None:
            owner = self._node_by_id(claim.node)
            if not owner.reachable:
                return _from_claim(claim, owner)
        return None

    def create_container(self, spec: ContainerSpec) -> ContainerRecord:
        node = self._place(spec)
        engine = self._engine(node)
        data = {"labels": spec.labels, "image": spec.image, "user": spec.user or "",
                "mounts": [[spec.work_mount, spec.workspace], *[[d, s] for s, d in spec.read_only_mounts]]}
        taken: list[str] = []
        try:
            name_claim = self._claim("name", spec.name, spec.name, node, data)
            taken.append(name_claim)
            for uuid in spec.gpu_uuids:
                taken.append(self._claim("gpu", uuid, spec.name, node))
            ensure_image(self.home, engine, node.name, spec.image, self.registry)
            record = engine.create_container(spec)
        except BaseException:
            for claim_id in taken:
                with contextlib.suppress(DS01Error):
                    self.claims.drop(claim_id)
            raise
        self._where[record.id] = self._where[record.name] = node.id
        for claim_id in taken:  # a claim naming a container that is gone is stale at once (see _stale)
            with contextlib.suppress(DS01Error):
                self.claims.mark(claim_id, record.id)
        return replace(record, node=node.name)

    def _place(self, spec: ContainerSpec) -> Node:
        """The node for a new container: the pinned one, the one holding its GPUs, else the least loaded."""
        usable = [n for n in self.nodes() if n.usable]
        if spec.node:
            node = self.node(spec.node)
            if not node.usable:
                raise EngineUnavailable(f"The node {node.name} takes no containers now ({node.shown_state}).",
                                        hint="Choose another node (`ds01 nodes`) or leave the choice to ds01.")
            if any(u not in node.gpus for u in spec.gpu_uuids):
                raise InvalidRequest(f"The GPUs chosen are not on node {node.name}.")
            return node
        if spec.gpu_uuids:
            holders = [n for n in usable if set(spec.gpu_uuids) <= set(n.gpus)]
            if not holders:
                raise InvalidRequest(f"No usable node has all of the GPUs {', '.join(spec.gpu_uuids)}.",
                                     hint="A container's GPUs must be on one node.")
            return holders[0]
        if not usable:
            raise EngineUnavailable("No node of the cluster takes containers now.",
                                    hint="See `ds01 nodes`; a node needs the ds01.engine label and must be Ready.")
        counts = self._each(usable, lambda n: len(self._engine(n).list_containers(L.managed())))
        return min(usable, key=lambda n: (counts[n.id] if isinstance(counts[n.id], int) else 1 << 30, n.name))

    def _claim(self, kind: str, key: str, container: str, node: Node, data: dict | None = None) -> str:
        """Take a claim, clearing a stale one in the way; AlreadyExists (a name) or GpuTaken when it is held."""
        for _ in range(5):
            try:
                return self.claims.take(kind, key, container, node.id, data)
            except AlreadyExists:
                existing = self.claims.get(kind, key)
                if existing is None:
                    continue  # released meanwhile
                if (kind == "gpu" and existing.container == container) or self._stale(existing, kind):
                    # Left by an earlier container of this name: this deploy holds the name claim now.
                    self.claims.drop(existing.id)
                    continue
                if kind == "gpu":
                    raise GpuTaken(f"The GPU {key} was just claimed for {existing.container}.", uuid=key) from None
                # The name is another deploy's: once its container exists the caller finds it there.
                wait_for(lambda c=existing: self._exists(c) or self.claims.get(kind, key) is None, GRACE)
                raise AlreadyExists(f"{key} already exists.") from None
        raise StateConflict(f"Could not claim {kind} {key}: it keeps changing hands.")

    def _exists(self, claim: Claim) -> bool:
        node = self._node_by_id(claim.node)
        if not node.reachable or not node.endpoint:
            return True  # cannot tell: it stays
        try:
            return self._engine(node).get_container(claim.container) is not None
        except EngineUnavailable:
            return True

    def _stale(self, claim: Claim, kind: str) -> bool:
        """Whether a claim in the way holds nothing: its container is gone (or, for a GPU, no longer has it)."""
        gone, record = self._holder(claim)
        if gone or record is None or kind != "gpu":
            return gone
        # The core chose this GPU knowing this container: one that ended holds it no more (a crash, or past its
        # gpu_hold_after_stop); one without it in its labels never did.
        return claim.key not in L.gpu_uuids(record.labels) or record.state in ("exited", "dead")

    def sees_pid_of(self, record: ContainerRecord) -> bool:
        """Whether a container's pid is one of this machine's (its node's engine is a local socket), so the core may
        look at its /proc; on another machine the core checks its /workspace through the engine instead."""
        node = next((n for n in self.nodes() if n.name == record.node), None)
        return node is not None and node.endpoint.startswith(("unix://", "/"))

    def clean_claims(self) -> list[str]:
        """Remove the claims whose container is gone (removed behind ds01's back, or a deploy that died before its
        create); those of a node that does not answer stay. The names of the claims removed."""
        removed = []
        for claim in self.claims.list():
            if self._holder(claim)[0] and self.claims.drop(claim.id):
                removed.append(f"{claim.kind} {claim.key}")
        return removed

    def _holder(self, claim: Claim) -> tuple[bool, ContainerRecord | None]:
        """(whether the claim's container is gone for good, the container when it is there)."""
        node = self._node_by_id(claim.node)
        if node.state == "gone":
            return True, None  # its node left the Swarm
        if not node.reachable or not node.endpoint:
            return False, None  # a node that is down keeps its claims
        try:
            record = self._engine(node).get_container(claim.container)
        except EngineUnavailable:
            return False, None
        if record is None:
            # Removed behind ds01's back (its ID was recorded), or a deploy that died before its create.
            return bool(claim.container_id) or claim.age > GRACE, None
        if claim.container_id and record.id != claim.container_id:
            return True, None  # another container of that name since
        return False, record

    def start_container(self, name_or_id, offline=False):
        record = self.get_container(name_or_id)
        if record is None:
            raise ContainerNotFound(f"{name_or_id}: not found on any node.")
        if record.state == UNREACHABLE:
            raise self._unreachable(self.node(record.node))
        node = self._locate(record.id)
        for uuid in L.gpu_uuids(record.labels):  # its GPUs are its own again before it runs
            existing = self.claims.get("gpu", uuid)
            if existing is not None and existing.container == record.name:
                continue
            if existing is not None and not self._stale(existing, "gpu"):
                raise StateConflict(f"The GPU {uuid} of {record.name} is now used by {existing.container}.",
                                    hint="Retire it and deploy again for another GPU.")
            self._claim("gpu", uuid, record.name, node)
        self._on(record.id, "start", lambda e: e.start_container(record.id, offline=offline))

    def connect_own_network(self, name_or_id, labels, pid=0):
        self._on(name_or_id, "connect", lambda e: e.connect_own_network(name_or_id, labels, pid))

    def stop_container(self, name_or_id, timeout=10):
        self._on(name_or_id, "stop", lambda e: e.stop_container(name_or_id, timeout=timeout))

    def remove_container(self, name_or_id, force=False):
        record = self.get_container(name_or_id)
        self._on(name_or_id, "remove", lambda e: e.remove_container(name_or_id, force=force))
        if record is not None:
            self.claims.release(record.name)
            self._where.pop(record.id, None)
            self._where.pop(record.name, None)

    def logs(self, name_or_id, tail=200, follow=False):
        return self._on(name_or_id, "read logs", lambda e: e.logs(name_or_id, tail=tail, follow=follow))

    def exec(self, name_or_id, command, user=None, workdir=None, env=None, detach=False, stderr=True):
        return self._on(name_or_id, "run a command",
                        lambda e: e.exec(name_or_id, command, user, workdir, env, detach, stderr))

    def exec_stream(self, name_or_id, command, stdin, user, workdir="/", timeout=120.0):
        return self._on(name_or_id, "run a command",
                        lambda e: e.exec_stream(name_or_id, command, stdin, user, workdir, timeout))

    def exec_attach(self, name_or_id, command, user, workdir, tty, env=None):
        node = self._locate(name_or_id)
        exec_id, sock = self._on(name_or_id, "run a command",
                                 lambda e: e.exec_attach(name_or_id, command, user, workdir, tty, env))
        if node is not None:
            self._where[exec_id] = node.id
        return exec_id, sock

    def _by_exec(self, exec_id: str) -> DockerEngine:
        node = self._node_by_id(self._where.get(exec_id, ""))
        if not node.endpoint:
            raise ContainerNotFound("That command is not known here.")
        return self._engine(node)

    def exec_resize(self, exec_id, rows, cols):
        self._by_exec(exec_id).exec_resize(exec_id, rows, cols)

    def exec_exit_code(self, exec_id, wait=10.0, where="its container"):
        return self._by_exec(exec_id).exec_exit_code(exec_id, wait, where)

    def diff(self, name_or_id):
        return self._on(name_or_id, "list changes", lambda e: e.diff(name_or_id))

    def read_archive(self, name_or_id, path):
        return self._on(name_or_id, "read files", lambda e: e.read_archive(name_or_id, path))

    def put_file(self, name_or_id, path, data, mode=0o600, uid=0, gid=0):
        self._on(name_or_id, "write a file", lambda e: e.put_file(name_or_id, path, data, mode, uid, gid))

    def put_tree(self, name_or_id, folder, entries, uid=0, gid=0):
        self._on(name_or_id, "write files", lambda e: e.put_tree(name_or_id, folder, entries, uid, gid))

    def interactive_command(self, name_or_id, command, user, workdir, tty):
        return self._on(name_or_id, "attach",
                        lambda e: e.interactive_command(name_or_id, command, user, workdir, tty))

    def cpu_usage_ns(self, name_or_id):
        return self._on(name_or_id, "read statistics", lambda e: e.cpu_usage_ns(name_or_id))

    def events(self, labels, since, until):
        """Every reachable node's events, merged as they come; each names its node."""
        nodes = [n for n in self.nodes() if n.endpoint and n.reachable]
        merged: queue.Queue = queue.Queue()
        done = object()

        def follow(node):
            try:
                for event in self._engine(node).events(labels, since, until):
                    self._where[event.get("id") or ""] = node.id
                    merged.put({**event, "node": node.name})
            except EngineUnavailable:
                self._down[node.id] = time.monotonic()
            except DS01Error as err:
                merged.put(err)
            finally:
                merged.put(done)

        for node in nodes:
            threading.Thread(target=follow, args=(node,), daemon=True, name=f"ds01-events-{node.name}").start()
        left = len(nodes)
        while left:
            item = merged.get()
            if item is done:
                left -= 1
            elif isinstance(item, DS01Error):
                raise item
            else:
                yield item

    # -- images: built and kept on the home engine ----------------------------------------------
    def build_image(self, context, tag, buildargs, labels, progress, dockerfile="Dockerfile", network=None):
        return self.home.build_image(context, tag, buildargs, labels, progress, dockerfile, network)

    def import_image(self, tarball_path, tag, changes):
        return self.home.import_image(tarball_path, tag, changes)

    def get_image(self, ref):
        return self.home.get_image(ref)

    def get_images(self, image_ids):
        return self.home.get_images(image_ids)

    def list_images(self, labels):
        return self.home.list_images(labels)

    def image_usage(self):
        return self.home.image_usage()

    def remove_image(self, ref):
        image = self.home.get_image(ref)
        self.home.remove_image(ref)
        if image is not None:  # its copies on the nodes too, where no container uses them (best effort)
            def drop(node):
                engine = self._engine(node)
                if engine.get_image(image.id) is not None:
                    with engine._errors("remove image", image.id):
                        engine.api.remove_image(image.id, force=False)
            self._each([n for n in self.nodes() if n.usable], drop)


def _matches(labels: dict, wanted: dict) -> bool:
    return all(k in labels and (v == "" or labels[k] == v) for k, v in wanted.items())


def _from_claim(claim: Claim, node: Node) -> ContainerRecord:
    """A container of a node that does not answer, as its name claim describes it."""
    data = claim.data
    return ContainerRecord(
        id=claim.container_id or f"claim-{claim.id}", name=claim.container, state=UNREACHABLE,
        image=str(data.get("image", "")), image_id=str(data.get("image", "")),
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        created=claim.created, config_user=str(data.get("user", "")),
        mounts=tuple((str(d), str(s)) for d, s in data.get("mounts") or ()), node=node.name,
    )
