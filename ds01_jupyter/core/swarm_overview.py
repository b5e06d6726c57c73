"""``ds01 nodes``: the cluster's nodes with their state, GPUs, free GPUs and ds01 containers."""

from __future__ import annotations

from . import labels as L


def nodes(core) -> dict:
    """Every node of the Swarm (asked now), with what ds01 runs there; on one host, says there is no cluster."""
    lister = getattr(core.engine, "nodes", None)
    if lister is None:
        return {"cluster": False, "nodes": [],
                "notice": "This DS01 drives one Docker engine (engine 'docker'); a cluster is engine 'swarm'."}
    found = lister(check=True)
    cleaned = core.engine.clean_claims()  # claims of containers removed behind ds01's back
    everyone = core.containers.vet(core.engine.list_containers(L.managed()))  # labels alone count for nothing
    held = core.allocator.holders(everyone, core.containers.hold_for)
    for node in found:
        node.containers = sum(1 for record in everyone if record.node == node.name)
        node.free_gpus = tuple(uuid for uuid in node.gpus if uuid not in held) if node.usable else ()
    return {"cluster": True, "nodes": [node.to_dict() for node in found], "claims_cleaned": cleaned}
