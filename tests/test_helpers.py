"""The helpers' host folder that containers mount read-only (core/helpers.py), on a real file system."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

from ds01_jupyter.core import helpers


@pytest.fixture
def base(tmp_path, monkeypatch):
    monkeypatch.setattr(helpers, "_made", {})
    return tmp_path / "ds01-jupyter"


def test_the_folder_holds_the_helpers_readable_by_everyone_behind_a_link(base):
    link = helpers.host_folder(base)
    assert link == base / "helpers" and link.is_symlink() and os.readlink(link).startswith("helpers-")
    for path, data, mode in helpers.files():
        st = os.lstat(link / path)
        assert stat.S_IMODE(st.st_mode) == mode, path
        if data is None:
            assert stat.S_ISDIR(st.st_mode)
        else:
            assert stat.S_ISREG(st.st_mode) and (link / path).read_bytes() == data
    assert (link / "ds01_jupyter" / "checkpoints" / "__init__.py").is_file()
    assert stat.S_IMODE(os.lstat(link.resolve()).st_mode) == 0o755  # not mkdtemp's 0700: any uid reads it
    assert helpers.host_folder(base) == link and sorted(os.listdir(base)) == ["helpers", os.readlink(link)]


def test_new_helpers_get_a_new_folder_and_old_ones_are_kept(base, monkeypatch):
    first = os.readlink(helpers.host_folder(base))
    changed = [*helpers.files(), ("ds01_jupyter/checkpoints/extra.py", b"X = 1\n", 0o644)]
    monkeypatch.setattr(helpers, "files", lambda: changed)
    second = os.readlink(helpers.host_folder(base))
    assert second != first and (base / second / "ds01_jupyter/checkpoints/extra.py").read_bytes() == b"X = 1\n"
    # A running container keeps the folder it mounted, however old: versions are never removed.
    old = time.time() - helpers.KEEP_UNFINISHED_S - 60
    os.utime(base / first, (old, old))
    os.mkdir(base / ".new-crashed")  # a maker killed half-way
    os.utime(base / ".new-crashed", (old, old))
    os.mkdir(base / ".new-running")  # one at work now
    monkeypatch.setattr(helpers, "files", lambda: [*changed, ("ds01_jupyter/checkpoints/more.py", b"", 0o644)])
    third = os.readlink(helpers.host_folder(base))
    assert sorted(os.listdir(base)) == sorted(["helpers", first, second, third, ".new-running"])


def test_the_process_sets_the_link_back_when_another_version_moved_it(base, monkeypatch):
    mine = os.readlink(helpers.host_folder(base))
    (base / "helpers").unlink()
    (base / "helpers").symlink_to("helpers-of-another-install")  # a second install of another version on the host
    assert os.readlink(helpers.host_folder(base)) == mine


def test_a_removed_folder_is_made_again(base):
    link = helpers.host_folder(base)
    target = link.resolve()
    for root, dirs, names in os.walk(target, topdown=False):
        for name in names:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(target)
    link.unlink()
    assert helpers.host_folder(base) == link and (link / "ds01_jupyter" / "__init__.py").is_file()


@pytest.mark.parametrize("how", ["others may write it", "a link", "another owner"])
def test_a_folder_others_could_change_is_never_mounted(base, caplog, how):
    if how == "others may write it":
        base.mkdir()
        os.chmod(base, 0o777)
    elif how == "a link":
        (base.parent / "elsewhere").mkdir()
        base.symlink_to(base.parent / "elsewhere")
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a folder to another owner")
        base.mkdir()
        os.chown(base, 12345, 12345)
    with caplog.at_level(logging.WARNING, "ds01_jupyter.helpers"):
        assert helpers.host_folder(base) is None  # copied into each container instead
    assert "copied into each container" in caplog.text
    assert not (base.parent / "elsewhere" / "helpers").exists()


def test_a_helpers_folder_someone_else_made_is_not_taken(base, monkeypatch):
    link = helpers.host_folder(base)
    name = os.readlink(link)
    link.unlink()
    os.chmod(base / name, 0o777)  # as if another account had made (and could change) it
    monkeypatch.setattr(helpers, "_made", {})
    assert helpers.host_folder(base) is None


def test_copies_into_a_container_make_the_sticky_folder_then_the_helpers():
    made = helpers.entries()
    assert made[0] == (".ds01", None, 0o1777) and made[1] == (".ds01/lib", None, 0o755)
    assert {path.removeprefix(".ds01/lib/") for path, _, _ in made[2:]} == {p for p, _, _ in helpers.files()}
    assert helpers.COPY_DIR == "/tmp/.ds01/lib" and helpers.PYTHONPATH == (helpers.MOUNT, helpers.COPY_DIR)


def test_an_image_with_the_whole_package_gets_no_helpers():
    assert helpers.wanted(("PATH=/usr/bin",)) and helpers.wanted(())
    assert not helpers.wanted(("PATH=/usr/bin", "DS01_MODE=container"))  # ds01's single-user image


def test_the_folder_is_roots_for_root_else_the_users_and_the_setting_moves_it(monkeypatch, tmp_path):
    assert helpers.base_folder(str(tmp_path)) == tmp_path
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert helpers.base_folder() == Path("/var/lib/ds01-jupyter")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert helpers.base_folder() == tmp_path / "state" / "ds01-jupyter"


def test_an_images_layers_are_read_for_the_mount_point_without_following_links(tmp_path):
    from ds01_jupyter.core.upperdir import layers_hold

    top, middle, bottom = (tmp_path / n for n in ("top", "middle", "bottom"))
    for layer in (top, middle, bottom):
        layer.mkdir()
    (bottom / "dev").mkdir()
    (middle / "dev").symlink_to(tmp_path / "elsewhere")  # a layer's link leads nowhere here: never followed
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".ds01-lib").mkdir()
    layers = (str(top), str(middle), str(bottom))
    assert layers_hold(layers, "dev/.ds01-lib") is False
    (bottom / "dev" / ".ds01-lib").symlink_to("/workspace/planted")
    assert layers_hold(layers, "dev/.ds01-lib") is True
    assert layers_hold((), "dev/.ds01-lib") is None  # another storage driver: not known
    assert layers_hold((str(tmp_path / "gone"),), "dev/.ds01-lib") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="folders of root's and of another owner need root")
def test_only_a_folder_root_alone_may_change_counts_as_roots_own(tmp_path):
    top = tmp_path / "roots"
    top.mkdir(mode=0o755)
    link = helpers.host_folder(top)
    assert helpers.roots_own(str(link)) and helpers.roots_own(str(link.resolve()))
    assert not helpers.roots_own("relative/helpers") and not helpers.roots_own(str(top / "missing"))
    version = link.resolve()
    os.chmod(version, 0o775)  # a group may change what is mounted
    assert not helpers.roots_own(str(link))
    os.chmod(version, 0o755)
    os.chown(top, 12345, 12345)  # a user's folder above it: she may swap the link
    assert not helpers.roots_own(str(link))
    os.chown(top, 0, 0)
    (tmp_path / "via").symlink_to(top)  # a link on the way
    assert not helpers.roots_own(str(tmp_path / "via" / "helpers"))
    assert helpers.roots_own(str(link))
