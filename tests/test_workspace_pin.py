"""The pin root gives the engine for a user's project folder (workspace_pin): checked and mounted by one descriptor,
visible to the engine also when made from a mount namespace of its own (ds01d under systemd's ProtectSystem)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys

import pytest

from ds01_jupyter.core import workspace_pin
from ds01_jupyter.core.errors import Forbidden

PIN = r"""
import sys
from ds01_jupyter.core import User, workspace_pin
from ds01_jupyter.core.errors import Forbidden
name, uid, gid, home, folder, container, action = sys.argv[1:]
user = User(name, int(uid), int(gid), home)
try:
    print(workspace_pin.pin(user, folder, container) if action == "pin" else workspace_pin.unpin(uid, container))
except Forbidden as refused:
    print("refused:", refused.message)
"""


def _in_own_namespace(user, folder, container, action):
    """As ds01d runs under systemd: a mount namespace of its own, whose mounts the engine (here, us) never sees."""
    done = subprocess.run(["unshare", "--mount", "--propagation", "slave", sys.executable, "-c", PIN, user.name,
                           str(user.uid), str(user.gid), str(user.home), str(folder), container, action],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_pin_made_in_a_namespace_of_its_own_is_the_engines_and_only_of_her_own_folder(other_user):
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.skip("needs unshare and nsenter (util-linux)")
    folder = other_user.home / "workspace" / "pinned"
    folder.mkdir()
    os.chown(folder, other_user.uid, other_user.gid)
    container = f"pinned._.{other_user.name}-{secrets.token_hex(3)}"
    try:
        target = _in_own_namespace(other_user, folder, container, "pin")
        assert target == workspace_pin.path_for(other_user.uid, container)
        assert (os.stat(target).st_dev, os.stat(target).st_ino) == (folder.stat().st_dev, folder.stat().st_ino)
        assert os.stat(os.path.dirname(target)).st_mode & 0o777 == 0o700  # root's alone
        # A folder that is not hers (root's here), or a link in her folder's place: refused, nothing mounted.
        roots = other_user.home / "workspace" / "roots"
        roots.mkdir()
        assert _in_own_namespace(other_user, roots, container + "x", "pin").startswith("refused:")
        link = other_user.home / "workspace" / "link"
        link.symlink_to(folder)
        assert _in_own_namespace(other_user, link, container + "y", "pin").startswith("refused:")
        assert not os.path.ismount(workspace_pin.path_for(other_user.uid, container + "y"))
        _in_own_namespace(other_user, folder, container, "unpin")
        assert not os.path.exists(target)
    finally:
        workspace_pin.unpin(other_user.uid, container)


def test_pinning_in_this_namespace_refuses_what_is_not_hers(other_user, tmp_path):
    with pytest.raises(Forbidden):
        workspace_pin.pin(other_user, tmp_path, "x._." + other_user.name)  # root's


def test_a_container_mounting_the_path_itself_is_not_started_by_root_again(make_core, other_user, project_name,
                                                                             monkeypatch):
    """One made before the pin (an older ds01d), by its path: root does not start it again, which would let the
    engine follow a link there once more; retiring it with its work rescued is the way on."""
    core = make_core()
    name = project_name()
    core.projects.create(other_user, name)
    monkeypatch.setattr(core.containers, "_pins", lambda user: False)  # as an older ds01d made it
    record = core.containers.deploy(other_user, name, gpus=0).container
    core.containers.stop(other_user, name, force=True)
    monkeypatch.undo()
    assert dict(core.engine.get_container(record.id).mounts)["/workspace"] == record.workspace
    with pytest.raises(Forbidden) as refused:
        core.containers.start(other_user, name)
    assert "--rescue" in refused.value.hint
    assert not core.engine.get_container(record.id).running
    core.guard.retire(other_user, name, mode="rescue")
    again = core.containers.deploy(other_user, name, gpus=0).container
    assert dict(core.engine.get_container(again.id).mounts)["/workspace"] == workspace_pin.path_for(
        other_user.uid, again.name)
