"""The idle/runtime reaper decides from the container's cgroup and keeps its memory on disk."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from conftest import fake_gpus

from ds01_jupyter.core import DS01, allocator
from ds01_jupyter.core.errors import GpuUnavailable

IDLE = "defaults:\n  idle_timeout: 60s\n  max_runtime: null\n  max_containers_per_user: 100\n"


def deploy(core, user, name, **kwargs):
    core.projects.create(user, name)
    return core.containers.deploy(user, name, **kwargs).container


def decision(decisions, name):
    return next(d for d in decisions if d.project == name)


def test_idle_container_is_stopped_only_after_the_timeout(make_core, user, project_name):
    core = make_core(limits=IDLE)
    name = project_name()
    deploy(core, user, name)
    t0 = time.time()
    first = decision(core.reaper.run(user, now=t0), name)
    assert first.action == "keep" and "first" in first.reason
    # A new core (as after a server restart) reads the activity record from disk.
    again = DS01(core.settings)
    early = decision(again.reaper.run(user, now=t0 + 30), name)
    assert early.action == "keep"
    late = decision(again.reaper.run(user, now=t0 + 120), name)
    assert late.action == "stop" and "idle_timeout" in late.reason
    assert core.containers.status(user, name).state == "exited"


def test_busy_cpu_keeps_a_container_with_the_browser_closed(make_core, user, project_name):
    core = make_core(limits=IDLE)
    name = project_name()
    status = deploy(core, user, name)
    core.engine.exec(status.id, ["sh", "-c", "while :; do :; done"], detach=True)
    t0 = time.time()
    core.reaper.run(user, now=t0)
    time.sleep(1.5)
    busy = decision(core.reaper.run(user, now=t0 + 1.5), name)
    assert busy.action == "keep" and "CPU" in busy.reason
    assert core.containers.status(user, name).running


def test_keep_alive_file_and_protected_label_exempt(make_core, user, project_name):
    core = make_core(limits=IDLE.replace("max_runtime: null", "max_runtime: 1s"))
    kept, guarded = project_name(), project_name()
    deploy(core, user, kept)
    (core.projects.get(user, kept).path / ".keep-alive").touch()
    deploy(core, user, guarded, protected=True)
    time.sleep(1.2)
    decisions = core.reaper.run(user)
    assert decision(decisions, kept).action == "keep" and ".keep-alive" in decision(decisions, kept).reason
    assert decision(decisions, guarded).action == "keep" and "protected" in decision(decisions, guarded).reason


def test_max_runtime_stops_and_says_why(make_core, user, project_name):
    core = make_core(limits=IDLE.replace("max_runtime: null", "max_runtime: 1s"))
    name = project_name()
    deploy(core, user, name)
    time.sleep(1.2)
    dry = decision(core.reaper.run(user, dry_run=True), name)
    assert dry.action == "stop" and "max_runtime" in dry.reason
    assert core.containers.status(user, name).running  # dry run changes nothing
    decision(core.reaper.run(user), name)
    assert core.containers.status(user, name).state == "exited"


def test_stopped_container_is_retired_after_the_hold_with_its_work_rescued(make_core, user, project_name):
    core = make_core(limits="defaults:\n  container_hold_after_stop: 1s\n  max_runtime: null\n")
    name = project_name()
    status = deploy(core, user, name)
    core.engine.exec(status.id, ["sh", "-c", "echo keep-me > /tmp/notes.txt"])
    core.containers.stop(user, name)
    time.sleep(1.5)
    assert decision(core.reaper.run(user, dry_run=True), name).action == "retire"
    done = decision(core.reaper.run(user), name)
    assert done.action == "retire" and "rescued 1 file" in done.reason
    assert core.engine.get_container(status.id) is None
    assert list((core.projects.get(user, name).path / ".rescued").glob("*/tmp/notes.txt"))


def test_reaper_never_loses_work_to_a_full_quota(make_core, user, project_name):
    core = make_core(limits="defaults:\n  container_hold_after_stop: 1s\n  storage_workspace: 1m\n")
    name = project_name()
    status = deploy(core, user, name)
    core.engine.exec(status.id, ["sh", "-c", "head -c 3000000 /dev/urandom > /tmp/big.bin"])
    core.containers.stop(user, name)
    time.sleep(1.5)
    kept = decision(core.reaper.run(user), name)
    assert kept.action == "keep" and "quota" in kept.reason
    assert core.engine.get_container(status.id) is not None


def test_containers_of_another_workspace_root_are_left_alone(make_core, user, project_name, tmp_path):
    core = make_core(limits=IDLE.replace("max_runtime: null", "max_runtime: 1s"))
    name = project_name()
    deploy(core, user, name)
    # The same user's server configured with another workspace root sees the container by its labels
    # but has no such project: it must neither fail nor stop it.
    other_root = tmp_path / "elsewhere"
    other_root.mkdir()
    other = DS01(replace(core.settings, workspace_root=str(other_root)))
    time.sleep(1.2)
    kept = decision(other.reaper.run(user), name)
    assert kept.action == "keep" and "workspace root" in kept.reason
    assert core.containers.status(user, name).running


def test_a_container_that_died_before_starting_frees_its_gpu_and_is_removed(make_core, user, project_name, monkeypatch):
    gpus = fake_gpus(1)
    core = make_core(limits="defaults:\n  max_mig_instances: 4\n  max_containers_per_user: 100\n", gpus=gpus)
    dead, other = project_name(), project_name()
    core.projects.create(user, dead)
    image = core.images.build(user, dead)
    spec = core.containers._spec(user, core.projects.get(user, dead), image, core.limits.for_user(user),
                                 core.inventory.devices(), False)
    created = core.engine.create_container(spec)  # created, then the deploy died before starting it
    assert core.engine.get_container(created.id).state == "created"
    young = decision(core.reaper.run(user), dead)
    assert young.action == "keep" and "deploy" in young.reason  # may be a deploy in progress
    core.projects.create(user, other)
    with pytest.raises(GpuUnavailable):  # within the grace it still holds its GPU
        core.containers.deploy(user, other, gpus=1)
    monkeypatch.setattr(allocator, "CREATED_GRACE", 0.5)
    time.sleep(1)
    assert core.containers.deploy(user, other, gpus=1).container.gpus == [gpus[0]["uuid"]]
    later = time.time() + allocator.CREATED_GRACE + 300
    assert decision(core.reaper.run(user, dry_run=True, now=later), dead).action == "retire"
    gone = decision(core.reaper.run(user, now=later), dead)
    assert gone.action == "retire" and "never started" in gone.reason
    assert core.engine.get_container(created.id) is None
    assert core.containers.status(user, other).running


def test_a_refused_retire_is_not_tried_again_until_the_container_runs(make_core, user, project_name):
    """A change that cannot be examined (a path longer than the engine lists) keeps a stopped container: each pass
    of the reaper would otherwise copy the rest into a new folder again, until the quota is full."""
    core = make_core(limits="defaults:\n  container_hold_after_stop: 1s\n  max_runtime: null\n")
    name = project_name()
    status = deploy(core, user, name)
    script = ("import os\nos.makedirs('/tmp/deep')\nos.chdir('/tmp/deep')\n"
              "for _ in range(45):\n    os.mkdir('d' * 100)\n    os.chdir('d' * 100)\n"
              "open('leaf.txt', 'w').write('leaf')\nopen('/tmp/notes.txt', 'w').write('keep-me')\n")
    code, out = core.engine.exec(status.id, ["python3", "-c", script], user=f"{user.uid}:{user.gid}")
    assert code == 0, out
    core.containers.stop(user, name)
    time.sleep(1.5)
    rescued = core.projects.get(user, name).path / ".rescued"
    first = decision(core.reaper.run(user), name)
    assert first.action == "keep" and "could not be examined" in first.reason
    assert len(list(rescued.iterdir())) == 1
    again = decision(core.reaper.run(user), name)
    assert again.action == "keep" and "not tried again" in again.reason
    assert len(list(rescued.iterdir())) == 1
    assert core.engine.get_container(status.id) is not None
