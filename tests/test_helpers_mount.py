"""The helpers in real containers: mounted read-only where the engine can, copied in where it cannot."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
from conftest import tar_link

from ds01_jupyter.core import helpers
from ds01_jupyter.core.errors import StateConflict

IMPORT = ["python3", "-c", "import ds01_jupyter.checkpoints as c, sys; print(c.__file__)"]


def _imported_from(core, user, name) -> str:
    code, out = core.containers.exec(user, name, IMPORT)
    assert code == 0, out
    return out.decode().strip()


@pytest.fixture
def own_base(tmp_path, monkeypatch):
    """A helpers folder of this test's own: removing it touches no other test's containers."""
    monkeypatch.setattr(helpers, "_made", {})
    return tmp_path / "helpers-base"


def test_mounted_read_only_and_made_again_for_a_start_after_it_was_removed(make_core, user, project_name, own_base):
    core = make_core(helpers_dir=str(own_base))
    name = project_name()
    core.projects.create(user, name)
    record = core.containers.deploy(user, name, gpus=0).container
    mounts = dict(core.engine.get_container(record.id).mounts)
    assert mounts[helpers.MOUNT] == str(own_base / "helpers")
    assert _imported_from(core, user, name).startswith(f"{helpers.MOUNT}/ds01_jupyter/checkpoints/")
    assert not any(path.startswith(("/tmp/.ds01", "/dev")) for path, _ in core.engine.diff(record.id))
    core.containers.stop(user, name)
    shutil.rmtree(own_base)  # an admin's clean-up while it was stopped: the engine would find no source
    assert core.containers.start(user, name).running
    assert _imported_from(core, user, name).startswith(helpers.MOUNT)


def test_a_stopped_container_is_rescued_after_its_helpers_folder_was_removed(make_core, user, project_name, own_base):
    """The engine mounts every mount of a stopped container for an archive call, and fails on a missing source."""
    core = make_core(helpers_dir=str(own_base))
    name = project_name()
    project = core.projects.create(user, name)
    core.containers.deploy(user, name, gpus=0)
    code, out = core.containers.exec(user, name, ["sh", "-c", "echo precious > /tmp/result.csv"])
    assert code == 0, out
    core.containers.stop(user, name)
    shutil.rmtree(own_base)
    retired = core.guard.retire(user, name, "rescue")
    assert retired["rescued"]["files"] == 1, retired
    assert [p.read_text() for p in (project.path / ".rescued").rglob("result.csv")] == ["precious\n"]


def test_a_stop_is_recorded_as_deliberate_after_its_helpers_folder_was_removed(make_core, user, project_name,
                                                                               own_base):
    """The engine looks at every mount's source at each archive call, also on a running container: the stop
    record (what tells a stop from a crash, which frees the GPU at once) is one."""
    core = make_core(helpers_dir=str(own_base))
    name = project_name()
    core.projects.create(user, name)
    record = core.containers.deploy(user, name, gpus=0).container
    shutil.rmtree(own_base)
    core.containers.stop(user, name)
    ending = core.containers.allocator.ending(core.engine.get_container(record.id))
    assert ending.how == "stopped", ending


def test_an_engine_that_cannot_see_the_folder_gets_them_copied_at_each_start(make_core, user, project_name,
                                                                           monkeypatch):
    missing = Path(f"/nonexistent-ds01-{secrets.token_hex(4)}")  # as a Docker confined to some paths (snap) sees it
    monkeypatch.setattr(helpers, "host_folder", lambda base: missing)
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    record = core.containers.deploy(user, name, gpus=0).container
    assert helpers.MOUNT not in dict(core.engine.get_container(record.id).mounts)
    assert _imported_from(core, user, name).startswith(f"{helpers.COPY_DIR}/ds01_jupyter/")
    core.containers.stop(user, name)
    assert core.containers.start(user, name).running
    assert _imported_from(core, user, name).startswith(helpers.COPY_DIR)


def test_root_starts_no_users_container_whose_helpers_she_could_change(make_core, other_user, project_name,
                                                                     monkeypatch):
    """One made by her own ds01 (as herself) mounts a link in her cache, which she may point at any host folder
    before root (ds01d, a hub) starts it again: refused, and kept."""
    hers = other_user.home / ".cache" / "ds01-jupyter"
    made = helpers.host_folder(hers)  # as root here; then given to her, as her own ds01 would have made it
    assert made is not None
    for path in [hers.parent, hers, *hers.rglob("*")]:
        shutil.chown(path, other_user.uid, other_user.gid)
    monkeypatch.setattr(helpers, "host_folder", lambda base: made)
    core = make_core()
    name = project_name()
    core.projects.create(other_user, name)
    record = core.containers.deploy(other_user, name, gpus=0).container
    core.containers.stop(other_user, name)
    monkeypatch.undo()
    with pytest.raises(StateConflict) as info:
        core.containers.start(other_user, name)
    assert "a folder its user may change" in info.value.message and "container-retire" in info.value.hint
    assert core.engine.get_container(record.id).state == "exited"  # nothing of hers removed


def test_root_copies_them_for_an_image_that_holds_something_at_their_mount_point(make_core, other_user, project_name):
    """Her image puts a link at /dev/.ds01-lib (an ADD of a tar can): an archive call on her stopped container (a
    rescue) would mount the folder there in the image's own /dev, the engine making the link's target as root in
    her project. Root reads her image's layers first and copies the helpers instead."""
    core = make_core()
    name = project_name()
    project = core.projects.create(other_user, name)
    built = core.images.build(other_user, name)
    api = core.engine.api
    scratch = api.create_container(built.id, ["true"], labels={"ds01-test.scratch": name})["Id"]
    try:
        api.put_archive(scratch, "/dev", tar_link(".ds01-lib", "/workspace/planted"))
        repository, tag = core.images.tag(other_user, name).rsplit(":", 1)
        api.commit(scratch, repository=repository, tag=tag)
    finally:
        api.remove_container(scratch, force=True)
    record = core.containers.deploy(other_user, name, gpus=0).container
    assert helpers.MOUNT not in dict(core.engine.get_container(record.id).mounts)
    assert _imported_from(core, other_user, name).startswith(f"{helpers.COPY_DIR}/ds01_jupyter/")
    core.containers.stop(other_user, name)
    assert core.engine.read_archive(record.id, "/tmp/.ds01/lib").read(1)  # as a rescue reads a stopped one
    assert not (project.path / "planted").exists()


def test_an_image_with_the_whole_package_gets_neither_mount_nor_copy(make_core, user, project_name):
    """ds01's single-user image (DS01_MODE=container) runs the package's own server: helpers first on its
    PYTHONPATH would hide the rest of the package."""
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    dockerfile = core.images.dockerfile(user, name)
    dockerfile.write_text(dockerfile.read_text() + "\nENV DS01_MODE=container\n")
    record = core.containers.deploy(user, name, gpus=0).container
    assert helpers.MOUNT not in dict(core.engine.get_container(record.id).mounts)
    code, out = core.containers.exec(user, name, ["sh", "-c", 'echo "[$PYTHONPATH]"; test -e /tmp/.ds01/lib; echo $?'])
    assert out.decode().split() == ["[]", "1"], out
