"""Workspace sizes kept current by inotify (core/tree_watch.py): after any change, a repeat measurement says
exactly what a whole walk says, and reads again only the folders that changed (fast tier: no engine)."""

from __future__ import annotations

import os
import random
import shutil

import pytest

from ds01_jupyter.core import disk, tree_watch
from ds01_jupyter.core.disk import tree_size
from ds01_jupyter.core.tree_watch import TreeWatch

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/sys/fs/inotify"), reason="no inotify here")


def _same(watch: TreeWatch, root, largest: int = 5) -> None:
    got, want = watch.size(root, largest), tree_size(root, largest)
    assert (got.bytes, got.apparent_bytes, got.files) == (want.bytes, want.apparent_bytes, want.files)
    assert [size for _p, size in got.largest] == [size for _p, size in want.largest]


def _folders(root) -> list[str]:
    return [d for d, _dirs, _files in os.walk(root)]


def test_any_change_shows_at_the_next_measurement(tmp_path):
    """A seeded random run of what users and trainers do: write, grow in place, truncate, delete, make, move
    and remove folders, hard links, links out of the tree."""
    root, outside = tmp_path / "project", tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"o" * 50_000)
    for i in range(5):
        (root / f"d{i}" / "sub").mkdir(parents=True)
        (root / f"d{i}" / "sub" / "f").write_bytes(b"x" * i * 1000)
    watch = TreeWatch()
    _same(watch, root)
    rng = random.Random(19)
    files = lambda: [os.path.join(d, f) for d, _s, fs in os.walk(root) for f in fs]  # noqa: E731
    for step in range(150):
        op = rng.choice(["write", "grow", "truncate", "delete", "mkdir", "move", "rmtree", "link", "symlink",
                         "swap"])
        folder = rng.choice(_folders(root))
        existing = [f for f in files() if not os.path.islink(f)]
        if op == "write":
            with open(os.path.join(folder, f"w{step}"), "wb") as out:
                out.write(b"w" * rng.randrange(1, 20_000))
        elif op == "grow" and existing:
            with open(rng.choice(existing), "ab") as out:  # in place: no folder's time changes
                out.write(b"g" * rng.randrange(1, 30_000))
        elif op == "truncate" and existing:
            os.truncate(rng.choice(existing), rng.randrange(0, 100))
        elif op == "delete" and existing:
            os.unlink(rng.choice(existing))
        elif op == "mkdir":
            os.makedirs(os.path.join(folder, f"m{step}", "deeper"))
            with open(os.path.join(folder, f"m{step}", "deeper", "n"), "wb") as out:
                out.write(b"n" * 5000)
        elif op == "move" and folder != str(root):
            target = rng.choice([d for d in _folders(root) if not d.startswith(folder)])
            os.rename(folder, os.path.join(target, f"moved{step}"))
        elif op == "rmtree" and folder != str(root):
            shutil.rmtree(folder)
        elif op == "link" and existing:
            os.link(rng.choice(existing), os.path.join(folder, f"l{step}"))
            _same(watch, root)  # (a file changed only through a link made and removed since is seen at a walk)
        elif op == "symlink":
            os.symlink(outside, os.path.join(folder, f"s{step}"))
        elif op == "swap" and folder != str(root):  # a folder swapped for a link out of the tree: never entered
            shutil.rmtree(folder)
            os.symlink(outside, folder)
        if rng.random() < 0.5:  # several changes between two measurements, too
            _same(watch, root)
    _same(watch, root)
    assert not any(path.endswith("big") for path, _size in watch.size(root, 50).largest)


def test_a_repeat_reads_only_the_folders_that_changed(tmp_path, monkeypatch):
    root = tmp_path / "project"
    for i in range(20):
        (root / f"d{i}").mkdir(parents=True)
        for j in range(10):
            (root / f"d{i}" / f"f{j}").write_bytes(b"x" * 100)
    watch = TreeWatch()
    first = watch.size(root)
    read = []
    real = tree_watch.read_folder
    monkeypatch.setattr(tree_watch, "read_folder", lambda fd, rel, *a: read.append(rel) or real(fd, rel, *a))
    assert watch.size(root).files == first.files and read == []  # nothing changed: nothing read
    with open(root / "d7" / "f3", "ab") as out:
        out.write(b"y" * 10_000)
    assert watch.size(root).apparent_bytes == first.apparent_bytes + 10_000
    assert read == ["d7/"]


def test_without_watches_left_every_measurement_walks(tmp_path, monkeypatch):
    root = tmp_path / "project"
    for i in range(10):
        (root / f"d{i}").mkdir(parents=True)
        (root / f"d{i}" / "f").write_bytes(b"x" * 100)
    watch = TreeWatch()
    assert watch._ready()
    monkeypatch.setattr(watch, "budget", 3)  # fewer watches than folders
    assert watch.size(root).files == 10
    with open(root / "d3" / "f", "ab") as out:
        out.write(b"y" * 1000)
    assert watch.size(root).apparent_bytes == 10 * 100 + 1000
    assert watch.held == 0  # none kept for a tree it could not watch whole


def test_the_usage_of_a_project_follows_its_files(tmp_path, monkeypatch):
    """DiskUsage.measure (the sidebar's usage panel, ds01 usage) goes through the watched trees."""
    from ds01_jupyter.core import DS01, Settings
    from ds01_jupyter.core.users import User

    user = User.current()
    core = DS01(Settings(workspace_root=str(tmp_path / "ws"), state_dir=str(tmp_path / "state")))
    project = core.projects.create(user, "watched")
    before = core.disk.measure(user, "watched")
    (project.path / "data" / "grown.bin").write_bytes(b"z" * 123_456)
    after = core.disk.measure(user, "watched")
    assert after.apparent_bytes == before.apparent_bytes + 123_456
    assert after.largest[0] == ["data/grown.bin", 123_456]
    assert disk.tree_size(project.path).apparent_bytes == after.apparent_bytes
