"""Container lifecycle against the real Docker engine."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from ds01_jupyter.core import User
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import ContainerNotFound, Forbidden, LimitExceeded, ProjectNotFound

REQUIRED_LABELS = {
    "ds01.user", "ds01.managed", "ds01.project", "ds01.workspace", "ds01.work_mount", "ds01.gpu.uuids",
    "ds01.gpu.slots", "ds01.gpu.allocated", "ds01.created_at", "ds01.user_id", "ds01.group_id", "ds01.image",
    "ds01.interface",
}


def test_deploy_mounts_the_workspace_and_retire_keeps_it(make_core, user, project_name):
    core = make_core()
    name = project_name()
    project = core.projects.create(user, name)
    result = core.containers.deploy(user, name)
    assert result.created and result.container.running
    assert any("CPU-only" in n for n in result.notices)  # no GPUs configured

    code, out = core.containers.exec(
        user, name, ["sh", "-c", "pwd; ls /workspace; echo hello > /workspace/from-container.txt"]
    )
    assert code == 0
    lines = out.decode().split()
    assert lines[0] == "/workspace" and {"notebooks", "data", "models", "README.md"} <= set(lines)
    written = project.path / "from-container.txt"
    assert written.read_text() == "hello\n"
    assert written.stat().st_uid == user.uid

    record = core.engine.get_container(result.container.id)
    assert set(record.labels) >= REQUIRED_LABELS
    assert record.labels[L.WORKSPACE] == str(project.path.resolve())
    assert record.labels[L.WORK_MOUNT] == "/workspace"
    assert record.labels[L.GPU_ALLOCATED] == "false"
    assert record.name == f"{name}._.{user.name}"

    retired = core.containers.retire(user, name)
    assert retired.state == "removed"
    assert core.engine.get_container(result.container.id) is None
    assert written.exists() and (project.path / "notebooks").is_dir()


def test_container_is_confined(make_core, user, project_name, engine):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    result = core.containers.deploy(user, name)
    raw = engine.api.inspect_container(result.container.id)
    host = raw["HostConfig"]
    assert host["Privileged"] is False
    assert "no-new-privileges" in host["SecurityOpt"]
    # The project folder, and the helpers of ds01's own, read-only.
    assert {(m["Destination"], m["RW"]) for m in raw["Mounts"]} == {("/workspace", True), ("/dev/.ds01-lib", False)}
    assert host["ShmSize"] > 64 * 2**20 and host["Memory"] > 0 and host["PidsLimit"] == 4096
    assert raw["Config"]["WorkingDir"] == "/workspace"
    assert raw["Config"]["User"] == f"{user.uid}:{user.gid}"
    assert "NVIDIA_VISIBLE_DEVICES=void" in raw["Config"]["Env"]


def test_files_belong_to_the_user_not_root(make_core, tmp_path, project_name):
    """Acting (as root) for another user: the project and what the container writes are theirs."""
    if os.geteuid() != 0:
        pytest.skip("acting for another user (chown) needs root")
    core = make_core()
    alice = User("alice-t", 4242, 4242, tmp_path / "alice")
    name = project_name()
    project = core.projects.create(alice, name)
    assert project.path.stat().st_uid == 4242 or alice.uid == User.current().uid
    core.containers.deploy(alice, name)
    code, out = core.containers.exec(alice, name, ["sh", "-c", "id -u; touch /workspace/notebooks/mine.txt"])
    assert code == 0, out
    assert out.decode().split()[0] == "4242"
    assert (project.path / "notebooks" / "mine.txt").stat().st_uid == 4242


def test_deploy_is_idempotent_and_concurrent_deploys_make_one_container(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    core.images.build(user, name)
    results, errors = [], []

    def deploy():
        try:
            results.append(make_core().containers.deploy(user, name))
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.container.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    again = core.containers.deploy(user, name)
    assert not again.created and again.container.id == results[0].container.id
    assert len([c for c in core.containers.list(user) if c.project == name]) == 1


def test_stop_start_and_status(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    core.containers.deploy(user, name)
    stopped = core.containers.stop(user, name)
    assert stopped.state == "exited"
    assert core.containers.deploy(user, name).container.running  # deploy restarts a stopped one
    core.containers.stop(user, name)
    started = core.containers.start(user, name)
    assert started.running and started.uptime_seconds is not None
    logs = list(core.containers.logs(user, name))
    assert isinstance(logs, list)


def test_rebuilt_image_is_reported_and_redeploy_uses_it(make_core, user, project_name):
    core = make_core()
    name = project_name()
    project = core.projects.create(user, name)
    first = core.containers.deploy(user, name).container
    assert not first.stale_image
    dockerfile = core.images.dockerfile(user, name, create=False)
    dockerfile.write_text(dockerfile.read_text() + "RUN echo rebuilt > /etc/ds01-marker\n")
    core.images.build(user, name)
    assert core.containers.status(user, name).stale_image
    assert [c.stale_image for c in core.containers.list(user) if c.project == name] == [True]
    core.containers.retire(user, name)
    core.containers.deploy(user, name)
    assert not core.containers.status(user, name).stale_image
    code, out = core.containers.exec(user, name, ["cat", "/etc/ds01-marker"])
    assert out.decode().strip() == "rebuilt"
    assert project.path.is_dir()


def test_container_limit_names_the_limit(make_core, lone_user, project_name):
    user = lone_user  # counted: a user with no containers but the test's
    core = make_core(limits="defaults:\n  max_containers_per_user: 1\n")
    first, second = project_name(), project_name()
    core.projects.create(user, first)
    core.projects.create(user, second)
    core.containers.deploy(user, first)
    with pytest.raises(LimitExceeded) as info:
        core.containers.deploy(user, second)
    assert info.value.details["limit"] == "max_containers_per_user"
    assert "1" in info.value.message and "retire" in info.value.hint.lower()
    assert core.engine.get_container(f"{second}._.{user.name}") is None


def test_other_users_containers_are_never_listed_or_touched(make_core, user, tmp_path, project_name):
    core = make_core()
    mallory = User(user.name, user.uid + 1000, user.gid, tmp_path / "mallory")  # same name, other uid
    name = project_name()
    core.projects.create(mallory, name)
    theirs = core.containers.deploy(mallory, name).container
    core.projects.create(user, name)
    assert [c for c in core.containers.list(user) if c.project == name] == []
    # Same container name, but not ours: refused, and left running.
    with pytest.raises(Forbidden):
        core.containers.retire(user, name)
    with pytest.raises(Forbidden):
        core.containers.deploy(user, name)
    assert core.engine.get_container(theirs.id).running


def test_foreign_container_with_our_name_is_left_alone(make_core, user, project_name, engine):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    core.images.build(user, name)
    foreign = engine.api.create_container(core.images.tag(user, name), ["true"], name=f"{name}._.{user.name}")
    try:
        with pytest.raises(Forbidden):
            core.containers.deploy(user, name)
        assert core.containers.list(user) == [] or all(c.id != foreign["Id"] for c in core.containers.list(user))
    finally:
        engine.api.remove_container(foreign["Id"], force=True)


def test_missing_project_and_missing_container(make_core, user, project_name):
    core = make_core()
    with pytest.raises(ProjectNotFound):
        core.containers.deploy(user, "does-not-exist")
    name = project_name()
    core.projects.create(user, name)
    with pytest.raises(ContainerNotFound) as info:
        core.containers.stop(user, name)
    assert "container-deploy" in info.value.hint


def test_images_are_listed_with_sizes_and_deleted(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    lines = []
    core.images.build(user, name, progress=lines.append)
    assert any("Step" in line or "Built" in line for line in lines)
    listed = [i for i in core.images.list(user) if i.project == name]
    assert listed and listed[0].size > 1_000_000 and listed[0].tag == core.images.tag(user, name)
    core.images.remove(user, name)
    assert core.images.current(user, name) is None


def test_checkpoint_api_works_inside_the_container(make_core, user, project_name):
    core = make_core()
    name = project_name()
    project = core.projects.create(user, name)
    core.containers.deploy(user, name)
    code, out = core.containers.exec(user, name, ["python3", "-c", (
        "from ds01_jupyter import checkpoints as ck\n"
        "for e, l in [(1, 0.5), (2, 0.2), (3, 0.4)]:\n"
        "    ck.save({'epoch': e}, epoch=e, step=e * 10, metrics={'val_loss': l})\n"
        "ck.save({'epoch': 2}, directory='/workspace/models/run2', name='checkpoint-002.pt')\n"
        "ck.save({'epoch': 2}, name='best-model.pt')\n"  # the newest file, and not where to resume
        "print(ck.latest(run='').path, ck.best('val_loss').epoch, ck.load_latest(run='')['epoch'],"
        " ck.load_latest()['epoch'], ck.latest(run='run2').epoch)"
    )])
    assert code == 0, out
    assert out.decode().split() == ["/workspace/models/checkpoint-epoch0003-step30.pkl", "2", "3", "2", "2"]
    (project.path / "models" / "best-model.pt").unlink()
    shutil.rmtree(project.path / "models" / "run2")
    data = core.checkpoints(user, name)
    assert data["latest"] == "checkpoint-epoch0003-step30.pkl" and data["best"] == "checkpoint-epoch0002-step20.pkl"
    assert data["metric"] == "val_loss" and len(data["checkpoints"]) == 3
    assert (project.path / "models" / "checkpoint-epoch0001-step10.pkl").stat().st_uid == user.uid
    assert core.prune_checkpoints(user, name, keep_last=1)["would_delete"] == []  # a trainer may be writing them
    for p in (project.path / "models").iterdir():
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    plan = core.prune_checkpoints(user, name, keep_last=1)
    assert len(plan["would_delete"]) == 2 and len(core.checkpoints(user, name)["checkpoints"]) == 3
    core.prune_checkpoints(user, name, confirm=True, keep_last=1, keep_best=1, metric="val_loss")
    assert [c["epoch"] for c in core.checkpoints(user, name)["checkpoints"]] == [2, 3]
    usage = core.storage_use(user)
    assert usage["projects"][name]["checkpoint_bytes"] > 0 and usage["projects"][name]["largest"]
    # The helpers in the container are noise to the guard, not work.
    assert core.guard.audit(user, name).at_risk == []
    # Mounted read-only from the host, never copied in: nothing of them in the container's own files.
    code, out = core.containers.exec(user, name, ["sh", "-c", "touch /dev/.ds01-lib/x; stat -c '%a %U' "
                                                  "/dev/.ds01-lib/ds01_jupyter; test -e /tmp/.ds01/lib; echo $?"])
    assert "Read-only file system" in out.decode() and out.decode().split()[-3:] == ["755", "root", "1"], out
