"""The cluster's pure logic, without a Swarm: node listing, claim names, placement of GPUs on one node, and the
containers of an unreachable node as their claims describe them (tests/test_swarm.py runs the real thing)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ds01_jupyter.core.allocator import GpuAllocator
from ds01_jupyter.core.engine import ContainerRecord
from ds01_jupyter.core.engines import ENGINES, engine_class_for
from ds01_jupyter.core.errors import ConfigError, GpuUnavailable
from ds01_jupyter.core.gpus import GpuDevice
from ds01_jupyter.core.limits import Limits
from ds01_jupyter.core.settings import Settings
from ds01_jupyter.core.swarm_claims import Claim, config_name
from ds01_jupyter.core.swarm_engine import UNREACHABLE, SwarmEngine, _from_claim, _matches
from ds01_jupyter.core.swarm_nodes import Node, nodes_from


def row(node_id, hostname, labels=None, gpus=(), state="ready", kind="NVIDIA-GPU", manager=False):
    return {"ID": node_id, "Spec": {"Labels": labels or {}, "Availability": "active"},
            "Description": {"Hostname": hostname, "Resources": {"GenericResources": [
                {"NamedResourceSpec": {"Kind": kind, "Value": g}} for g in gpus]}},
            "Status": {"State": state}, **({"ManagerStatus": {"Leader": True}} if manager else {})}


def test_nodes_are_named_uniquely_with_their_gpus_of_the_configured_kind():
    rows = [row("aaaaaa111", "gpu", {"ds01.engine": "tcp://a:2376"}, ["GPU-2", "GPU-1"], manager=True),
            row("bbbbbb222", "gpu", {"ds01.engine": "tcp://b:2376"}, ["GPU-3"]),
            row("cccccc333", "x", {"ds01.name": "third", "ds01.engine": "tcp://c:2376"}, ["FPGA-1"], kind="FPGA"),
            row("dddddd444", "y", {}, ["GPU-9"], state="down")]
    nodes = {n.name: n for n in nodes_from(rows, "NVIDIA-GPU")}
    assert set(nodes) == {"gpu-aaaaaa", "gpu-bbbbbb", "third", "y"}
    assert nodes["gpu-aaaaaa"].gpus == ("GPU-1", "GPU-2") and nodes["gpu-aaaaaa"].manager
    assert nodes["third"].gpus == ()  # another kind of generic resource
    assert nodes["gpu-bbbbbb"].usable and not nodes["y"].usable  # no ds01.engine label, and down
    assert nodes["y"].to_dict()["state"] == "not a ds01 node"
    down = Node("e", "e", "e", "tcp://e:2376", "down", "active")
    assert down.to_dict()["state"] == UNREACHABLE


def test_claim_names_fit_swarm():
    assert config_name("gpu", "GPU-fake-ab-n1-0") == "ds01-claim-gpu-GPU-fake-ab-n1-0"
    long = config_name("name", "p" * 60 + "._.alice")
    assert len(long) <= 64 and long != config_name("name", "p" * 60 + "._.bob")
    assert config_name("gpu", "MIG-GPU-x/1/0") != config_name("gpu", "MIG-GPU-x_1_0")


def devices(*nodes_and_counts):
    return [GpuDevice(uuid=f"{node}-{i}", index=str(i), name="GPU", node=node)
            for node, count in nodes_and_counts for i in range(count)]


def holder(uuid):
    return ContainerRecord("c" + uuid, "x", "running", "i", "i", {"ds01.gpu.uuids": uuid})


def test_a_containers_gpus_are_on_one_node_the_least_held_first():
    limits = Limits(max_mig_instances=None, max_mig_per_container=None)
    found = devices(("n1", 2), ("n2", 2))
    chosen = GpuAllocator.choose(found, {"n1-0": holder("n1-0")}, 2, limits, 0)
    assert [d.uuid for d in chosen] == ["n2-0", "n2-1"]  # n1 has one free only
    one = GpuAllocator.choose(found, {"n1-0": holder("n1-0")}, 1, limits, 0)
    assert one[0].node == "n2"  # the node with fewer GPUs held
    with pytest.raises(GpuUnavailable):
        GpuAllocator.choose(devices(("n1", 1), ("n2", 1)), {}, 2, limits, 0)  # two GPUs, but never on one node
    # One host (node ""): the order it always had.
    host = devices(("", 3))
    assert [d.uuid for d in GpuAllocator.choose(host, {"-0": holder("-0")}, 2, limits, 0)] == ["-1", "-2"]


def test_a_container_of_an_unreachable_node_is_shown_from_its_name_claim():
    labels = {"ds01.managed": "true", "ds01.user": "alice", "ds01.project": "demo"}
    claim = Claim("cfg1", "name", "demo._.alice", "demo._.alice", "node3", "abc123",
                  datetime(2026, 1, 1, tzinfo=timezone.utc),
                  {"labels": labels, "image": "sha256:img", "user": "1000:1000",
                   "mounts": [["/workspace", "/home/alice/workspace/demo"]]})
    record = _from_claim(claim, Node("node3", "n3", "h", "tcp://n3", "down", "active", reachable=False))
    assert (record.id, record.state, record.node, record.image_id) == ("abc123", UNREACHABLE, "n3", "sha256:img")
    assert record.mounts == (("/workspace", "/home/alice/workspace/demo"),) and record.config_user == "1000:1000"
    assert not record.running
    assert _matches(record.labels, {"ds01.user": "alice", "ds01.managed": ""})
    assert not _matches(record.labels, {"ds01.user": "bob"})


def test_swarm_is_a_registered_engine_and_needs_its_manager():
    assert engine_class_for("swarm") is SwarmEngine and "docker" in ENGINES
    with pytest.raises(ConfigError, match="swarm_manager"):
        SwarmEngine.from_settings(Settings(engine="swarm"))
    engine = SwarmEngine.from_settings(Settings(engine="swarm", swarm_manager="unix:///nowhere.sock"))
    assert engine.gpu_kind == "NVIDIA-GPU" and engine.registry == ""
