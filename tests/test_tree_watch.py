"""Workspace sizes kept current by inotify (core/tree_watch.py): after any change, a repeat measurement says
exactly what a whole walk says, and reads again only the folders that changed (fast tier: no engine)."""

from __future__ import annotations

import os
import random
import shutil

import pytest
from test_disk_size import force_side_by_side

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


@pytest.mark.parametrize("helpers", [False, True])
def test_any_change_shows_at_the_next_measurement(tmp_path, monkeypatch, helpers):
    """A seeded random run of what users and trainers do: write, grow in place, truncate, delete, make, move
    and remove folders, hard links, links out of the tree (with helpers: each whole walk read side by side, the
    watches added by the processes that read each folder)."""
    if helpers:
        force_side_by_side(monkeypatch)
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
    monkeypatch.setattr(tree_watch, "SETTLE_SECONDS", 0)  # (as if the files were written a minute ago)
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


def _watches(watch: TreeWatch) -> int:
    """The watches the kernel holds on the watcher's inotify descriptor."""
    with open(f"/proc/self/fdinfo/{watch.fd}") as info:
        return sum(line.startswith("inotify wd:") for line in info)


def test_watches_added_by_helpers_tell_the_changes(tmp_path, monkeypatch):
    """A tree read side by side: the watches the helpers added are the watcher's, a write in a folder a helper read
    is seen, only its folder is read again, and the kernel holds exactly the watches counted."""
    forked = force_side_by_side(monkeypatch)
    monkeypatch.setattr(tree_watch, "SETTLE_SECONDS", 0)
    root = tmp_path / "project"
    for i in range(12):
        (root / f"d{i}" / "sub").mkdir(parents=True)
        (root / f"d{i}" / "sub" / "f").write_bytes(b"x" * 100)
    watch = TreeWatch()
    first = watch.size(root)
    assert forked and first.files == 12
    assert watch.held == _watches(watch) == 25  # the root, 12 folders and 12 below them
    read = []
    real = tree_watch.read_folder
    monkeypatch.setattr(tree_watch, "read_folder", lambda fd, rel, *a: read.append(rel) or real(fd, rel, *a))
    for i in range(12):
        with open(root / f"d{i}" / "sub" / "f", "ab") as out:
            out.write(b"y" * 1000)
        assert watch.size(root).apparent_bytes == first.apparent_bytes + (i + 1) * 1000
        assert read == [f"d{i}/sub/"]
        read.clear()


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
    assert _watches(watch) == 0


def test_without_watches_left_helpers_keep_none_either(tmp_path, monkeypatch):
    """The watch budget runs out in a tree read side by side: the helpers never hold more than it while they read
    (the user's editors keep theirs), the tree is read once, and none of their watches is left."""
    force_side_by_side(monkeypatch)
    root = tmp_path / "project"
    for i in range(30):
        (root / f"d{i}" / "sub").mkdir(parents=True)
        (root / f"d{i}" / "sub" / "f").write_bytes(b"x" * 100)
    other = tmp_path / "other"
    (other / "a").mkdir(parents=True)
    watch = TreeWatch()
    assert watch._ready()
    watch.size(other)
    monkeypatch.setattr(watch, "budget", watch.held + 10)  # room for a sixth of the folders
    log = tmp_path / "log"  # what every process (helpers too) did, one line each (appends are atomic)
    look, read = watch._look, disk.read_folder

    def looked(fd):
        seen = look(fd)
        with open(log, "a") as out:
            out.write(f"watches {_watches(watch)}\n")
        return seen

    def counted(fd, rel, *rest):
        with open(log, "a") as out:
            out.write(f"read /{rel}\n")
        return read(fd, rel, *rest)

    monkeypatch.setattr(watch, "_look", looked)
    monkeypatch.setattr(disk, "read_folder", counted)
    assert watch.size(root).files == 30
    lines = [line.split() for line in log.read_text().splitlines()]
    assert max(int(n) for what, n in lines if what == "watches") <= watch.budget
    assert sorted(n[1:] for what, n in lines if what == "read") == sorted(_folders_below(root))  # each once
    assert watch.held == _watches(watch) == 2  # only the other tree's


def _folders_below(root) -> list[str]:
    return [os.path.relpath(d, root) + "/" if d != str(root) else "" for d in _folders(root)]


def test_a_helper_that_fails_leaves_no_watch(tmp_path, monkeypatch):
    """A helper dies after adding watches (one on a folder since moved out of the tree): the tree is read again,
    each folder it holds is watched, and the kernel holds no watch no tree counts."""
    force_side_by_side(monkeypatch)
    root, gone = tmp_path / "project", tmp_path / "moved-out"
    gone.mkdir()
    for i in range(6):
        (root / f"d{i}").mkdir(parents=True)
        (root / f"d{i}" / "f").write_bytes(b"x" * 100)
    watch = TreeWatch()
    assert watch._ready()
    parent, look = os.getpid(), watch._look

    def dying(fd):
        seen = look(fd)
        if os.getpid() != parent:
            out = os.open(gone, os.O_RDONLY | os.O_DIRECTORY)
            look(out)  # as if the folder had moved out before the tree was read again
            os._exit(3)
        return seen

    monkeypatch.setattr(watch, "_look", dying)
    monkeypatch.setattr(watch, "budget", 8)  # the tree fits, once the dead helper's watches are counted back
    size = watch.size(root)
    assert size.files == 6 and size.apparent_bytes == 600
    assert watch.held == _watches(watch) == 7 and not watch.trees[(str(root), 0)].unwatched
    with open(root / "d4" / "f", "ab") as out:
        out.write(b"y" * 50)
    assert watch.size(root).apparent_bytes == 650


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
    assert (str(project.path), 10) in tree_watch.watched.trees


def test_a_one_off_commands_core_sets_up_no_watches(tmp_path):
    """The CLI's own core (lasting=False) measures each tree once and exits: it walks, and watches nothing."""
    from ds01_jupyter.core import DS01, Settings
    from ds01_jupyter.core.users import User

    user = User.current()
    settings = Settings(workspace_root=str(tmp_path / "ws"), state_dir=str(tmp_path / "state"))
    core = DS01(settings, lasting=False)
    project = core.projects.create(user, "once")
    (project.path / "data" / "a.bin").write_bytes(b"a" * 5000)
    held = tree_watch.watched.held
    measured = core.disk.measure(user, "once")
    assert measured.apparent_bytes == disk.tree_size(project.path).apparent_bytes
    assert measured.largest[0] == ["data/a.bin", 5000]
    assert not any(base == str(project.path) for base, _ in tree_watch.watched.trees)
    assert tree_watch.watched.held == held


def test_a_folder_found_where_another_was_is_read_whole(tmp_path):
    """A folder moved or renamed onto a watched path brings subfolders no notice named (theirs stayed silent)."""
    root, away = tmp_path / "project", tmp_path / "away"
    (root / "a" / "sub").mkdir(parents=True)
    (root / "a" / "sub" / "f").write_bytes(b"x" * 100)
    (root / "x" / "sub").mkdir(parents=True)
    (root / "x" / "sub" / "g").write_bytes(b"x" * 300)
    (root / "empty").mkdir()
    watch = TreeWatch()
    _same(watch, root)
    os.rename(root / "a", away)  # moved out, and another "a" with a "sub" made in its place
    (root / "a" / "sub").mkdir(parents=True)
    (root / "a" / "sub" / "new").write_bytes(b"n" * 5000)
    _same(watch, root)
    (root / "a" / "sub" / "later").write_bytes(b"l" * 7000)  # the new one is watched, the old one no more
    (away / "sub" / "gone").write_bytes(b"g" * 9000)
    _same(watch, root)
    os.rename(root / "x", root / "empty")  # a rename replacing an (empty) folder
    _same(watch, root)
    (root / "empty" / "sub" / "h").write_bytes(b"h" * 800)
    _same(watch, root)


def test_a_root_reached_through_a_link_whose_folder_was_replaced(tmp_path):
    (tmp_path / "one" / "a" / "sub").mkdir(parents=True)
    (tmp_path / "one" / "a" / "sub" / "f").write_bytes(b"x" * 100)
    (tmp_path / "link").symlink_to(tmp_path / "one")
    watch = TreeWatch()
    _same(watch, tmp_path / "link")
    os.rename(tmp_path / "one", tmp_path / "old")
    (tmp_path / "one" / "a" / "sub").mkdir(parents=True)
    (tmp_path / "one" / "a" / "sub" / "g").write_bytes(b"g" * 8000)
    _same(watch, tmp_path / "link")


def test_a_root_that_could_not_be_read_is_measured_once_it_can(tmp_path, monkeypatch):
    """No watch (its parent has none) tells when an unreadable root (chmod 000) becomes readable."""
    root = tmp_path / "project"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"x" * 100)
    real, locked = disk.open_below, [True]

    def open_below(base, rel):
        if rel == "" and locked[0]:
            raise PermissionError(13, "Permission denied")
        return real(base, rel)

    monkeypatch.setattr(disk, "open_below", open_below)
    monkeypatch.setattr(tree_watch, "open_below", open_below)
    watch = TreeWatch()
    assert watch.size(root, 5).files == 0  # (as _same measures it)
    locked[0] = False
    _same(watch, root)
    locked[0] = True
    os.chmod(root, 0o700)  # (as chmod 000 would be) its notice: the root is read again, and cannot be
    (root / "a" / "g").write_bytes(b"y" * 10)
    assert watch.size(root, 5).files == 0
    locked[0] = False
    _same(watch, root)


def test_a_root_whose_name_is_not_utf8(tmp_path):
    root = tmp_path / os.fsdecode(b"caf\xe9")
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"x" * 100)
    watch = TreeWatch()
    _same(watch, root)
    (root / "a" / "g").write_bytes(b"y" * 10)
    _same(watch, root)


def test_many_folders_gone_at_once(tmp_path):
    """Siblings removed one by one and a whole subtree removed: each gone folder is forgotten with what is below
    it (through the sums, not a scan of every folder per gone one), its watch given back."""
    root = tmp_path / "project"
    for i in range(300):
        (root / "many" / f"d{i}" / "s").mkdir(parents=True)
    (root / "keep" / "f").parent.mkdir(parents=True)
    (root / "keep" / "f").write_bytes(b"k" * 10)
    watch = TreeWatch()
    _same(watch, root)
    held = watch.held
    for i in range(0, 300, 2):
        shutil.rmtree(root / "many" / f"d{i}")
    _same(watch, root)
    assert watch.held == held - 300
    shutil.rmtree(root / "many")
    _same(watch, root)
    assert watch.held == 2 and set(watch.trees[(str(root), 5)].folders) == {"", "keep/"}


def test_blocks_a_filesystem_places_after_the_write(tmp_path, monkeypatch):
    """ext4 adds a fragmented file's extent block at writeback, with no notice: a folder with a file changed in the
    last SETTLE_SECONDS is read again at each measurement (elsewhere, as on tmpfs, the sizes simply agree)."""
    root = tmp_path / "project"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "b" / "old").write_bytes(b"o" * 10)
    watch = TreeWatch()
    _same(watch, root)
    with open(root / "a" / "fragmented", "wb") as out:
        for i in range(200):
            out.seek(i * 200_000)
            out.write(b"x" * 4096)
        out.flush()
        _same(watch, root)
        os.fsync(out.fileno())
    _same(watch, root)
    read = []
    real = tree_watch.read_folder
    monkeypatch.setattr(tree_watch, "read_folder", lambda fd, rel, *a: read.append(rel) or real(fd, rel, *a))
    monkeypatch.setattr(tree_watch, "SETTLE_SECONDS", 0)  # a minute later: settled, read no more
    _same(watch, root)
    _same(watch, root)
    assert read == ["a/", "b/"]  # (once: marked at the measurement before)


def test_a_folder_that_grew_with_its_entries(tmp_path):
    """A folder's own blocks count in its parent's sums, and its parent has no notice when they grow (files made
    in it): reading it again brings them to its parent's sums."""
    root = tmp_path / "project"
    (root / "a" / "b").mkdir(parents=True)
    watch = TreeWatch()
    _same(watch, root)
    for i in range(400):  # ext4: the folder grows from 4 KiB to about 70 KiB
        (root / "a" / "b" / (f"{i}-" + "n" * 100)).touch()
    _same(watch, root)
    for i in range(0, 400, 2):
        (root / "a" / "b" / (f"{i}-" + "n" * 100)).unlink()
    _same(watch, root)


@pytest.mark.parametrize("helpers", [False, True])
def test_a_walk_that_fails_leaves_no_part_of_the_tree(tmp_path, monkeypatch, helpers):
    """Descriptors run out (or an interrupt) in the middle of a walk: the measurement fails, and the next one is
    whole and right, with no watch left over from the one that failed."""
    if helpers:
        force_side_by_side(monkeypatch)
    root = tmp_path / "project"
    for i in range(12):
        (root / f"d{i}" / "sub").mkdir(parents=True)
        (root / f"d{i}" / "sub" / "f").write_bytes(b"x" * 100)
    watch = TreeWatch()
    read = disk.read_folder

    def exhausted(fd, rel, *rest):
        if rel == "d5/sub/":  # (a helper that fails so has the tree read again here, where it fails too)
            raise OSError(24, "Too many open files")
        return read(fd, rel, *rest)

    monkeypatch.setattr(disk, "read_folder", exhausted)
    with pytest.raises(OSError):
        watch.size(root)
    monkeypatch.setattr(disk, "read_folder", read)
    _same(watch, root, largest=0)  # (the same tree: the one that failed)
    assert watch.held == _watches(watch) == 25


@pytest.mark.parametrize("watched", [True, False])
def test_a_project_that_cannot_be_measured_says_so(tmp_path, monkeypatch, watched):
    """Descriptors run out while a project is measured (the sidebar, ds01 usage, a rescue's quota check): a clear
    error, not a size missing part of the tree."""
    from ds01_jupyter.core import DS01, Settings
    from ds01_jupyter.core.errors import DS01Error
    from ds01_jupyter.core.users import User

    user = User.current()
    core = DS01(Settings(workspace_root=str(tmp_path / "ws"), state_dir=str(tmp_path / "state")), lasting=watched)
    project = core.projects.create(user, "crowded")
    (project.path / "data" / "deep").mkdir(parents=True)
    read = disk.read_folder

    def exhausted(fd, rel, *rest):
        if rel == "data/deep/":
            raise OSError(24, "Too many open files")
        return read(fd, rel, *rest)

    monkeypatch.setattr(disk, "read_folder", exhausted)
    with pytest.raises(DS01Error, match="could not be measured: Too many open files") as err:
        core.disk.measure(user, "crowded")
    assert "Nothing was changed" in err.value.hint
