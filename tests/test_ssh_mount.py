"""mount_ssh: the user's real ~/.ssh read-only in the container; never what a link leads to (issue 17)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ds01_jupyter.core import ssh_mount
from ds01_jupyter.core.errors import Forbidden


@pytest.fixture
def keys(home):
    folder = home / ".ssh"
    folder.mkdir(mode=0o700)
    (folder / "id_test").write_text("KEY\n")
    return folder


def test_ssh_is_mounted_read_only_only_when_asked(make_core, user, keys, project_name):
    plain = make_core()
    name = project_name()
    plain.projects.create(user, name)
    plain.containers.deploy(user, name, gpus=0)
    code, _ = plain.containers.exec(user, name, ["test", "-e", f"{ssh_mount.destination(user)}/id_test"])
    assert code != 0  # off by default
    plain.containers.retire(user, name)

    core = make_core(mount_ssh=True)
    core.containers.deploy(user, name, gpus=0)
    dest = ssh_mount.destination(user)
    assert core.containers.exec(user, name, ["cat", f"{dest}/id_test"]) == (0, b"KEY\n")
    code, out = core.containers.exec(user, name, ["sh", "-c", f"echo x > {dest}/new"])
    assert code != 0 and b"Read-only" in out
    assert not (keys / "new").exists()


def test_a_link_or_a_folder_of_someone_else_is_never_mounted(make_core, user, home, tmp_path, project_name):
    core = make_core(mount_ssh=True)
    name = project_name()
    core.projects.create(user, name)
    secret = tmp_path / "someone-elses"
    secret.mkdir()
    (secret / "id_rsa").write_text("NOT YOURS\n")
    (home / ".ssh").symlink_to(secret)
    with pytest.raises(Forbidden, match="is a link"):
        core.containers.deploy(user, name, gpus=0)
    (home / ".ssh").unlink()
    (home / ".ssh").mkdir()
    os.chown(home / ".ssh", user.uid + 4242, user.gid)
    with pytest.raises(Forbidden, match="belongs to uid"):
        core.containers.deploy(user, name, gpus=0)
    assert core.engine.get_container(f"{name}._.{user.name}") is None


def test_a_link_swapped_in_before_a_start_stops_the_container(make_core, user, home, keys, tmp_path, project_name):
    core = make_core(mount_ssh=True)
    name = project_name()
    core.projects.create(user, name)
    core.containers.deploy(user, name, gpus=0)
    core.containers.stop(user, name)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("NOT YOURS\n")
    keys.rename(home / "old-ssh")
    (home / ".ssh").symlink_to(secret)  # the engine follows it at the next start
    with pytest.raises(Forbidden, match="was stopped"):
        core.containers.start(user, name)
    assert not core.engine.get_container(f"{name}._.{user.name}").running


def test_mountinfo_paths_are_read_as_the_kernel_writes_them():
    assert ssh_mount._unescape(r"/home/a\040b/.ssh") == "/home/a b/.ssh"
    assert ssh_mount.verify(1, None, None).startswith("the checked ~/.ssh could not be located")


@pytest.mark.skipif(os.geteuid() != 0, reason="root copies ~/.ssh for the users it starts containers for")
def test_copies_made_at_once_for_one_user_end_as_one_whole_copy(tmp_path):
    """Two deploys of one user at once (ds01d's threads) each copy ~/.ssh into the same folder: neither fails,
    and the folder ends holding exactly the user's files, theirs alone."""
    import secrets
    import shutil
    import threading

    from ds01_jupyter.core.users import User

    uid = 200000 + secrets.randbelow(100000)  # a made-up user, for this test alone
    someone = User(f"ds01-stage-{uid}", uid, uid, tmp_path / "home")
    keys = someone.home / ".ssh"
    keys.mkdir(parents=True)
    (keys / "id_test").write_text("KEY\n")
    (keys / "id_test.pub").write_text("PUB\n")
    for path in (someone.home, keys, keys / "id_test", keys / "id_test.pub"):
        os.chown(path, uid, uid)
    errors: list[BaseException] = []

    def copy():
        try:
            for _ in range(10):
                assert ssh_mount.stage(someone) == ssh_mount.staged_folder(someone)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    try:
        threads = [threading.Thread(target=copy) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        folder = ssh_mount.staged_folder(someone)
        assert sorted(os.listdir(folder)) == ["id_test", "id_test.pub"]
        st = os.stat(os.path.join(folder, "id_test.pub"))
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o600)
        assert Path(folder, "id_test").read_text() == "KEY\n"
    finally:
        shutil.rmtree(ssh_mount.staged_folder(someone), ignore_errors=True)
