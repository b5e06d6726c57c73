"""Deploy refuses a workspace its user cannot write, with the DS01 guide's fix; status shows it (issue 17)."""

from __future__ import annotations

import os
import subprocess

import pytest

from ds01_jupyter.core.errors import WorkspaceNotWritable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="other owners and read-only mounts need root")


def test_a_folder_the_user_cannot_write_is_refused_with_the_fix(make_core, other_user, project_name):
    core = make_core()
    name = project_name()
    project = core.projects.create(other_user, name)
    folder = project.path
    core.containers.deploy(other_user, name, gpus=0)

    # models/ made by root (a copy, a job run as root): status and the overview say so.
    (folder / "models").mkdir(exist_ok=True)
    os.chown(folder / "models", 0, 0)
    os.chmod(folder / "models", 0o755)
    assert core.containers.status(other_user, name).unwritable == ["models"]
    assert next(p for p in core.overview(other_user)["projects"] if p["name"] == name)["unwritable"] == ["models"]
    core.containers.retire(other_user, name)
    with pytest.raises(WorkspaceNotWritable) as err:
        core.containers.deploy(other_user, name, gpus=0)
    assert f"sudo chown -R $(whoami):$(whoami) ~/workspace/{name}" in err.value.hint
    assert err.value.details["unwritable"] == ["models"] and err.value.status == 403

    # The folder itself, without write permission for its owner.
    os.chown(folder / "models", other_user.uid, other_user.gid)
    os.chmod(folder, 0o555)
    with pytest.raises(WorkspaceNotWritable) as err:
        core.containers.deploy(other_user, name, gpus=0)
    assert err.value.details["unwritable"] == ["."]
    assert core.engine.get_container(f"{name}._.{other_user.name}") is None
    os.chmod(folder, 0o755)
    assert core.containers.deploy(other_user, name, gpus=0).container.unwritable == []


def test_a_workspace_on_a_read_only_mount_is_refused(make_core, user, project_name):
    core = make_core()
    name = project_name()
    folder = str(core.projects.create(user, name).path)
    subprocess.run(["mount", "--bind", folder, folder], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", folder], check=True)
        with pytest.raises(WorkspaceNotWritable) as err:
            core.containers.deploy(user, name, gpus=0)
        assert err.value.details["read_only"] is True and "read-only mount" in err.value.message
        assert core.engine.get_container(f"{name}._.{user.name}") is None
    finally:
        subprocess.run(["umount", folder], check=True)
