"""Cluster-wide claims on GPUs and container names, kept as Swarm configs in the managers' Raft store.

A config's name is unique in the cluster, and creating one whose name exists fails with AlreadyExists after the
managers agreed: that is the whole of the atomicity, with no lock of ds01's own. A deploy claims the container's
name (``ds01-claim-name-...``) and each of its GPUs (``ds01-claim-gpu-...``) before the container exists, and the
claims go when it is removed. A claim carries, in its data, what ds01 knows of the container before it is made
(labels, image, user, mounts, node), so the containers of a node that cannot be reached are still shown, as
"node unreachable", and keep their GPUs.

A claim left by a deploy that died between claim and create, or by a container removed behind ds01's back, is
stale: whoever finds it in the way removes it by its ID (never by name: a fresh claim by someone else carries
another ID, so two cleaners cannot both win) and claims again.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import AlreadyExists, ContainerNotFound, EngineError, StateConflict

PREFIX = "ds01-claim-"
KIND_LABEL = "ds01.claim.kind"  # "gpu" or "name"
KEY_LABEL = "ds01.claim.key"  # the GPU UUID or the container name, unabridged
CONTAINER_LABEL = "ds01.claim.container"  # the container's name
NODE_LABEL = "ds01.claim.node"  # the ID of the node it is (to be) on
ID_LABEL = "ds01.claim.container-id"  # set once the container exists
#: A claim whose container does not exist this many seconds after the claim was made is stale: a deploy takes
#: far less from its claims to its create.
GRACE = 60.0


class GpuTaken(StateConflict):
    """A GPU the deploy chose was claimed a moment ago by another deploy (another host's): choose again."""


def config_name(kind: str, key: str) -> str:
    """The config's name: Swarm allows [a-zA-Z0-9-_.] and 64 characters; a longer or odd key is hashed."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "_", key)
    name = f"{PREFIX}{kind}-{safe}"
    if len(name) > 64 or safe != key:
        name = f"{PREFIX}{kind}-{safe[:24]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return name


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    key: str
    container: str
    node: str
    container_id: str
    created: datetime | None
    data: dict

    @property
    def age(self) -> float:
        if self.created is None:
            return GRACE + 1
        return (datetime.now(timezone.utc) - self.created).total_seconds()


def _claim(row: dict) -> Claim:
    spec = row.get("Spec") or {}
    labels = spec.get("Labels") or {}
    try:
        import base64

        data = json.loads(base64.b64decode(spec.get("Data") or "") or b"{}")
    except ValueError:
        data = {}
    created = None
    text = re.sub(r"(\.\d{6})\d+", r"\1", row.get("CreatedAt") or "").replace("Z", "+00:00")
    try:
        created = datetime.fromisoformat(text)
    except ValueError:
        pass
    return Claim(row["ID"], labels.get(KIND_LABEL, ""), labels.get(KEY_LABEL, ""), labels.get(CONTAINER_LABEL, ""),
                 labels.get(NODE_LABEL, ""), labels.get(ID_LABEL, ""), created, data if isinstance(data, dict) else {})


class Claims:
    """Claims through the manager's engine (a DockerEngine: its ``api`` and error translation)."""

    def __init__(self, manager):
        self.manager = manager

    def list(self, kind: str | None = None) -> list[Claim]:
        with self.manager._errors("list claims"):
            rows = self.manager.api.configs(filters={"label": [f"{KIND_LABEL}={kind}" if kind else KIND_LABEL]})
        return [_claim(row) for row in rows]

    def get(self, kind: str, key: str) -> Claim | None:
        name = config_name(kind, key)
        with self.manager._errors("read claim", name):
            rows = self.manager.api.configs(filters={"name": [name]})
        rows = [r for r in rows if (r.get("Spec") or {}).get("Name") == name]
        return _claim(rows[0]) if rows else None

    def take(self, kind: str, key: str, container: str, node: str, data: dict | None = None) -> str:
        """Create the claim; its ID. AlreadyExists when it exists (the caller looks whether it is stale)."""
        name = config_name(kind, key)
        labels = {KIND_LABEL: kind, KEY_LABEL: key, CONTAINER_LABEL: container, NODE_LABEL: node}
        payload = json.dumps({"container": container, "node": node, **(data or {})}).encode()
        try:
            with self.manager._errors("claim", name):
                return self.manager.api.create_config(name, payload, labels=labels)["ID"]
        except (StateConflict, EngineError) as err:
            if "already exists" in err.message.lower() or "AlreadyExists" in err.message:
                raise AlreadyExists(f"{name} is claimed.") from None
            raise

    def mark(self, claim_id: str, container_id: str) -> None:
        """Record the container's ID on its name claim, once made (labels are all of a config Swarm lets change)."""
        api = self.manager.api
        with self.manager._errors("mark claim", claim_id):
            current = api.inspect_config(claim_id)
            spec = dict(current["Spec"])
            spec["Labels"] = {**(spec.get("Labels") or {}), ID_LABEL: container_id}
            # docker-py has no update_config; the Engine API has POST /configs/{id}/update (labels only).
            response = api._post_json(api._url("/configs/{0}/update", claim_id), data=spec,
                                      params={"version": current["Version"]["Index"]})
            api._raise_for_status(response)

    def drop(self, claim_id: str) -> bool:
        """Remove a claim by its ID; False when it was gone already."""
        try:
            with self.manager._errors("release claim", claim_id):
                self.manager.api.remove_config(claim_id)
        except ContainerNotFound:
            return False
        return True

    def release(self, container: str) -> None:
        """Remove every claim naming ``container`` (after it was removed)."""
        for claim in self.list():
            if claim.container == container:
                self.drop(claim.id)


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
