"""Workspace size (core/disk.py's tree_size): what du counts, without following links (fast tier: no engine)."""

from __future__ import annotations

import os
import time

import pytest

from ds01_jupyter.core import disk
from ds01_jupyter.core.disk import tree_size


def _reference(root) -> tuple[int, int, int, dict[str, int]]:
    """(allocated bytes, apparent bytes, files, {relative path: size}) by os.walk and lstat, hard links once."""
    total = apparent = files = 0
    sizes, seen = {}, set()
    for folder, dirs, names in os.walk(root):  # os.walk does not enter links to folders
        for d in dirs:
            st = os.lstat(os.path.join(folder, d))
            if os.path.islink(os.path.join(folder, d)):
                names.append(d)
                continue
            total += st.st_blocks * 512
        for n in names:
            st = os.lstat(os.path.join(folder, n))
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            files += 1
            total += st.st_blocks * 512
            apparent += st.st_size
            sizes[os.path.relpath(os.path.join(folder, n), root)] = st.st_size
    return total, apparent, files, sizes


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "project"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"o" * 100_000)
    for i in range(30):
        folder = root / "data" / f"d{i}" / "sub"
        folder.mkdir(parents=True)
        for j in range(i):
            (folder / f"f{j}.bin").write_bytes(b"x" * (j * 100 + i))
    deep = root / "deep"
    for i in range(40):
        deep = deep / f"l{i}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"b" * 7)
    (root / "model.pt").write_bytes(b"m" * 50_000)
    os.link(root / "model.pt", root / "data" / "same-model.pt")  # counted once
    (root / "to-outside").symlink_to(outside)  # a link: never entered
    (root / "to-big").symlink_to(outside / "big")
    return root


def side_by_side(monkeypatch, walkers: int = 3) -> list[int]:
    """Read every tree with helper processes, however small (and on a machine of any CPUs); the helpers forked."""
    monkeypatch.setattr(disk, "SIDE_BY_SIDE_FROM", 0)
    monkeypatch.setattr(disk, "SIDE_BY_SIDE_FOLDERS", 2)
    monkeypatch.setattr(disk, "WALKERS", walkers)
    monkeypatch.setattr(disk, "_cpus", lambda: walkers)
    forked, fork = [], os.fork

    def counted():
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(disk.os, "fork", counted)
    return forked


@pytest.mark.parametrize("open_folders,helpers", [(256, False), (3, False), (256, True), (3, True)])
def test_tree_size_counts_what_du_counts_once_and_never_follows_links(tree, monkeypatch, open_folders, helpers,
                                                                      fds_before):
    monkeypatch.setattr(disk, "OPEN_FOLDERS", open_folders)  # 3: most folders opened by path later
    forked = side_by_side(monkeypatch) if helpers else []
    total, apparent, files, sizes = _reference(tree)
    size = tree_size(tree, largest=5, over=2500)
    assert (size.bytes, size.apparent_bytes, size.files) == (total, apparent, files)
    # The root's own folder is not counted, as before; every folder below it is.
    expected = sorted(((s, p) for p, s in sizes.items()), reverse=True)
    assert size.largest == [[p, s] for s, p in expected[:5]]
    assert size.largest[0][1] == 50_000 and size.largest[0][0] in ("model.pt", "data/same-model.pt")
    assert size.over == [[p, s] for s, p in expected if s >= 2500]
    assert not any(p.rsplit("/", 1)[-1] == "big" for p, _ in size.over)  # the link's target is outside
    assert len(forked) == (2 if helpers else 0)  # (a hard link's two names read by two processes count once)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before  # every folder closed, in every process's share


@pytest.fixture
def fds_before():
    return sorted(os.listdir("/proc/self/fd"))


def test_a_helper_that_fails_has_its_share_read_again(tree, monkeypatch, fds_before):
    """A helper killed while reading (out of memory, a signal): the tree is read again here, nothing counted twice
    or lost, and what the helpers looked at is given back (a watch on a folder nobody took)."""
    forked = side_by_side(monkeypatch)
    parent, looked, given_back = os.getpid(), [], []

    def look(fd):
        if os.getpid() != parent:
            os.kill(os.getpid(), 9)
        looked.append(fd)
        if len(looked) <= 3:
            time.sleep(0.2)  # (the helpers take their shares meanwhile)
        return ("seen", os.fstat(fd).st_ino)

    found = list(disk.walk(str(tree), 5, 2500, "", look, given_back.append))
    assert forked and all(seen[0] == "seen" for _rel, _sums, seen in found)
    size = disk.sum_folders((sums for _rel, sums, _seen in found), 5, 2500)
    want = tree_size(tree, largest=5, over=2500)
    assert (size.bytes, size.apparent_bytes, size.files, size.largest, size.over) == (
        want.bytes, want.apparent_bytes, want.files, want.largest, want.over)
    assert sorted(rel for rel, _s, _seen in found) == sorted(set(rel for rel, _s, _seen in found))  # once each
    assert given_back and len(given_back) == len(looked) - len(found)  # the parent's own share, read before
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


def test_a_missing_tree_measures_empty(tmp_path):
    size = tree_size(tmp_path / "gone", largest=3)
    assert (size.bytes, size.files, size.largest) == (0, 0, [])


def test_no_process_left_to_fork_reads_the_tree_alone(tree, monkeypatch, fds_before):
    """fork refused (a pids limit in the user's container): the tree is read here alone, all of it."""
    side_by_side(monkeypatch)

    def refused():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(disk.os, "fork", refused)
    total, apparent, files, _sizes = _reference(tree)
    size = tree_size(tree, largest=5)
    assert (size.bytes, size.apparent_bytes, size.files) == (total, apparent, files)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before
