"""Workspace size (core/disk.py's tree_size): what du counts, without following links (fast tier: no engine)."""

from __future__ import annotations

import os

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


@pytest.mark.parametrize("open_folders", [256, 3])
def test_tree_size_counts_what_du_counts_once_and_never_follows_links(tree, monkeypatch, open_folders):
    monkeypatch.setattr(disk, "OPEN_FOLDERS", open_folders)  # 3: most folders opened by path later
    total, apparent, files, sizes = _reference(tree)
    size = tree_size(tree, largest=5, over=2500)
    assert (size.bytes, size.apparent_bytes, size.files) == (total, apparent, files)
    # The root's own folder is not counted, as before; every folder below it is.
    expected = sorted(((s, p) for p, s in sizes.items()), reverse=True)
    assert size.largest == [[p, s] for s, p in expected[:5]]
    assert size.largest[0][1] == 50_000 and size.largest[0][0] in ("model.pt", "data/same-model.pt")
    assert size.over == [[p, s] for s, p in expected if s >= 2500]
    assert not any(p.rsplit("/", 1)[-1] == "big" for p, _ in size.over)  # the link's target is outside


def test_a_missing_tree_measures_empty(tmp_path):
    size = tree_size(tmp_path / "gone", largest=3)
    assert (size.bytes, size.files, size.largest) == (0, 0, [])
