"""GPU inventory, allocation and attribution.

There is no GPU here, so allocation runs over a configured GPU list (the real
allocator, the real engine, containers labelled with their GPUs); the NVML
path runs for real and must report "no GPU" without failing.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import fake_gpus

from ds01_jupyter.core import User
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import GpuUnavailable, LimitExceeded, StateConflict
from ds01_jupyter.core.gpus import NvmlInventory, container_id_of_pid

WORKER = Path(__file__).with_name("deploy_worker.py")
GENEROUS = """
defaults:
  max_mig_instances: 8
  max_mig_per_container: 2
  max_containers_per_user: 100
  gpu_hold_after_stop: 0.25h
"""


def test_nvml_absent_means_zero_gpus_and_a_notice():
    inventory = NvmlInventory()
    devices = inventory.devices()
    if devices:  # running on a machine with a GPU: the real path worked
        assert all(d.uuid.startswith(("GPU-", "MIG-")) for d in devices)
        return
    assert "NVML" in inventory.notice or "pynvml" in inventory.notice


def test_asking_for_a_gpu_where_there_is_none_is_a_clear_error(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    with pytest.raises(GpuUnavailable) as info:
        core.containers.deploy(user, name, gpus=1)
    assert "--gpus 0" in info.value.hint
    assert [c for c in core.containers.list(user) if c.project == name] == []  # nothing was made


def test_deploy_gets_a_gpu_by_uuid_and_retire_frees_it(make_core, user, project_name):
    gpus = fake_gpus(1)
    core = make_core(limits=GENEROUS, gpus=gpus)
    a, b = project_name(), project_name()
    core.projects.create(user, a)
    core.projects.create(user, b)
    first = core.containers.deploy(user, a)  # default: one GPU where there are any
    assert first.container.gpus == [gpus[0]["uuid"]]
    raw = core.engine.get_container(first.container.id)
    assert raw.labels[L.GPU_ALLOCATED] == "true" and raw.labels[L.GPU_SLOTS] == "1"
    _, env = core.containers.exec(user, a, ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"])
    assert env.decode().strip() == gpus[0]["uuid"]
    with pytest.raises(GpuUnavailable):
        core.containers.deploy(user, b, gpus=1)
    inventory = core.gpu_inventory()
    assert inventory["gpus"][0]["holder"]["project"] == a
    core.containers.retire(user, a)
    assert core.containers.deploy(user, b, gpus=1).container.gpus == [gpus[0]["uuid"]]


def test_gpu_limits_name_the_limit(make_core, lone_user, project_name):
    user = lone_user  # counted: on a DS01 host root's own containers may hold GPUs
    core = make_core(limits="defaults:\n  max_mig_instances: 1\n  max_mig_per_container: 1\n", gpus=fake_gpus(3))
    a, b = project_name(), project_name()
    core.projects.create(user, a)
    core.projects.create(user, b)
    with pytest.raises(LimitExceeded) as info:
        core.containers.deploy(user, a, gpus=2)
    assert info.value.details["limit"] == "max_mig_per_container"
    core.containers.deploy(user, a, gpus=1)
    with pytest.raises(LimitExceeded) as info:
        core.containers.deploy(user, b, gpus=1)
    assert info.value.details["limit"] == "max_mig_instances"
    assert "1" in info.value.message
    assert core.containers.deploy(user, b, gpus=0).container.gpus == []


def test_full_gpu_counts_as_several_slots_and_mig_only_users(make_core, lone_user, project_name):
    user = lone_user  # counted: on a DS01 host root's own containers may hold GPUs
    devices = [
        {"uuid": f"GPU-full-{project_name()}", "index": 0, "name": "Full GPU"},
        {"uuid": f"MIG-a-{project_name()}", "index": "1:0", "name": "MIG 1g", "parent_uuid": "GPU-parent-1"},
    ]
    limits = (
        "defaults:\n  max_mig_instances: 2\n  allow_full_gpu: false\n"
        "gpu_allocation:\n  mig_instances_per_gpu: 4\n"
    )
    core = make_core(limits=limits, gpus=devices)
    a, b = project_name(), project_name()
    core.projects.create(user, a)
    core.projects.create(user, b)
    got = core.containers.deploy(user, a, gpus=1).container
    assert got.gpus == [devices[1]["uuid"]]  # only the MIG slice is allowed
    with pytest.raises(GpuUnavailable) as info:
        core.containers.deploy(user, b, gpus=1)
    assert "MIG" in info.value.message


def test_stopped_container_holds_its_gpu_then_releases_it(make_core, user, tmp_path, project_name):
    gpus = fake_gpus(1)
    core = make_core(limits=GENEROUS, gpus=gpus)
    a, b = project_name(), project_name()
    core.projects.create(user, a)
    core.containers.deploy(user, a, gpus=1)
    core.containers.stop(user, a)
    bob = User("bob-t", user.uid + 7, user.gid, tmp_path / "bob")
    core.projects.create(bob, b)
    with pytest.raises(GpuUnavailable):  # held for gpu_hold_after_stop
        core.containers.deploy(bob, b, gpus=1)
    released = make_core(limits=GENEROUS.replace("0.25h", "0s"), gpus=gpus)
    assert released.containers.deploy(bob, b, gpus=1).container.gpus == [gpus[0]["uuid"]]
    with pytest.raises(StateConflict) as info:
        released.containers.start(user, a)
    assert "retire" in info.value.hint.lower()


def test_no_gpu_is_ever_given_twice_across_processes_and_users(make_core, user, tmp_path, project_name):
    """8 processes, 2 users, 4 projects, 2 GPUs: each GPU goes to at most one container."""
    gpus = fake_gpus(2)
    core = make_core(limits=GENEROUS, gpus=gpus)
    settings = {k: v for k, v in dataclasses.asdict(core.settings).items()}
    users = [user, User("bob-t", user.uid + 7, user.gid, tmp_path / "bob")]
    jobs = []
    for i in range(4):
        owner = users[i % 2]
        name = project_name()
        core.projects.create(owner, name)
        core.images.build(owner, name)
        payload = json.dumps({"name": owner.name, "uid": owner.uid, "gid": owner.gid, "home": str(owner.home)})
        jobs += [(name, payload)] * 2

    def run(job):
        name, payload = job
        proc = subprocess.run(
            [sys.executable, str(WORKER), json.dumps(settings), payload, name, "1"],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return name, json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, jobs))

    held = Counter()
    containers_per_project = Counter()
    for record in core.engine.list_containers(L.managed()):
        if record.labels.get(L.WORKSPACE, "").startswith(str(tmp_path)):
            containers_per_project[record.labels[L.PROJECT]] += 1
            held.update(L.gpu_uuids(record.labels))
    assert set(held) <= {g["uuid"] for g in gpus}
    assert all(count == 1 for count in held.values()), held
    assert len(held) == 2  # both GPUs were handed out
    assert all(count == 1 for count in containers_per_project.values())
    refused = [r for _, r in results if not r["ok"]]
    assert refused and all(r["error"] == "GpuUnavailable" for r in refused)


def test_cgroup_attribution_maps_a_host_pid_to_its_container(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    status = core.containers.deploy(user, name).container
    pid = core.engine.get_container(status.id).pid
    assert pid > 0
    assert container_id_of_pid(pid) == status.id
    assert container_id_of_pid(1) is None or container_id_of_pid(1) != status.id
    # A configured GPU said to run that PID is attributed to this user's project.
    seen = make_core(gpus=[{"uuid": "GPU-attr", "pids": [pid, 1]}]).gpu_inventory()
    processes = seen["gpus"][0]["processes"]
    assert processes[0]["project"] == name and processes[0]["user"] == user.name
    assert processes[1]["project"] is None  # a host process, not ours


def test_gpu_busy_without_a_new_checkpoint_is_warned(make_core, user, project_name):
    import time as clock

    from ds01_jupyter import checkpoints as ck

    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    status = core.containers.deploy(user, name).container
    pid = core.engine.get_container(status.id).pid
    # A GPU whose process (as NVML would report it) is this container's.
    busy = make_core(gpus=[{"uuid": "GPU-busy", "pids": [pid]}], checkpoint_warning_minutes=30)
    now = clock.time()
    assert busy.checkpoint_warnings(user, now=now) == []  # just started
    (warning,) = busy.checkpoint_warnings(user, now=now + 31 * 60)
    assert warning["project"] == name and warning["minutes_without_checkpoint"] >= 30
    ck.save({"w": 1}, epoch=1, directory=core.projects.get(user, name).path / "models")
    assert busy.checkpoint_warnings(user, now=clock.time() + 60) == []  # a fresh checkpoint resets it
