"""The nodes of a Docker Swarm as ds01 sees them, and the GPUs they declare.

Swarm is asked only for membership: which nodes there are, whether the manager sees them Ready, the endpoint of
each node's own engine (its ``ds01.engine`` node label) and its GPUs (the node's generic resources of the kind
``swarm_gpu_kind``, whose values are GPU UUIDs, from ``node-generic-resources`` in its daemon.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .gpus import GpuDevice, GpuInventory

#: The node label naming the Docker endpoint of a node's own engine (root on that node: only ds01d and the hub
#: may hold it).
ENGINE_LABEL = "ds01.engine"
#: An optional node label naming the node for users (default: its hostname, made unique with its ID).
NAME_LABEL = "ds01.name"


@dataclass
class Node:
    id: str
    name: str
    hostname: str
    endpoint: str  # "" when the node has no ds01.engine label: ds01 places nothing there
    state: str  # Swarm's view: ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    manager: bool = False
    gpus: tuple[str, ...] = ()
    #: Whether ds01 reached the node's engine on its last try (False: "node unreachable").
    reachable: bool = True
    containers: int = 0
    free_gpus: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> bool:
        """Whether new containers may go there."""
        return bool(self.endpoint) and self.reachable and self.state == "ready" and self.availability == "active"

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "hostname": self.hostname, "state": self.shown_state,
                "swarm_state": self.state, "availability": self.availability, "manager": self.manager,
                "gpus": list(self.gpus), "free_gpus": list(self.free_gpus), "containers": self.containers,
                "reachable": self.reachable}

    @property
    def shown_state(self) -> str:
        if not self.endpoint:
            return "not a ds01 node"
        if not self.reachable or self.state != "ready":
            return "node unreachable"
        return "ready" if self.availability == "active" else self.availability


def nodes_from(rows: list[dict], gpu_kind: str) -> list[Node]:
    """Nodes from the manager's ``GET /nodes``, named uniquely, sorted by name."""
    found = []
    for row in rows:
        spec, description = row.get("Spec") or {}, row.get("Description") or {}
        labels = spec.get("Labels") or {}
        resources = (description.get("Resources") or {}).get("GenericResources") or []
        gpus = tuple(sorted(
            (r.get("NamedResourceSpec") or {}).get("Value", "") for r in resources
            if (r.get("NamedResourceSpec") or {}).get("Kind") == gpu_kind
        ))
        hostname = description.get("Hostname", "")
        found.append(Node(
            id=row["ID"], name=labels.get(NAME_LABEL) or hostname, hostname=hostname,
            endpoint=labels.get(ENGINE_LABEL, ""), state=(row.get("Status") or {}).get("State", "unknown"),
            availability=spec.get("Availability", "active"), manager=bool(row.get("ManagerStatus")), gpus=gpus,
        ))
    counts: dict[str, int] = {}
    for node in found:
        counts[node.name] = counts.get(node.name, 0) + 1
    for node in found:
        if counts[node.name] > 1:  # several hosts with one hostname (or label): the ID tells them apart
            node.name = f"{node.name}-{node.id[:6]}"
    return sorted(found, key=lambda n: n.name)


class SwarmInventory(GpuInventory):
    """The cluster's GPUs: each usable node's declared GPU UUIDs, as devices that name their node.

    NVML's live figures (memory, processes) are the node's own and not read from here: least loaded means the
    node whose GPUs are least held, then the device's position on it.
    """

    def __init__(self, engine):
        self.engine = engine

    def devices(self) -> list[GpuDevice]:
        nodes = self.engine.nodes()
        found = [
            GpuDevice(uuid=uuid, index=str(i), name=f"GPU on {node.name}", node=node.name)
            for node in nodes if node.usable for i, uuid in enumerate(node.gpus)
        ]
        self.notice = "" if found else "No node of the cluster declares a GPU (node-generic-resources)."
        return found
