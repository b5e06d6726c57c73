"""Workspace size (core/disk.py's tree_size): what du counts, without following links (fast tier: no engine)."""

from __future__ import annotations

import gc
import os
import time

import pytest

from ds01_jupyter.core import disk, side_by_side
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


def force_side_by_side(monkeypatch, walkers: int = 3) -> list[int]:
    """Read every tree with helper processes, however small (and on a machine of any CPUs); the helpers forked."""
    monkeypatch.setattr(disk, "SIDE_BY_SIDE_FROM", 0)
    monkeypatch.setattr(disk, "SIDE_BY_SIDE_FOLDERS", 2)
    monkeypatch.setattr(side_by_side, "WALKERS", walkers)
    monkeypatch.setattr(side_by_side, "cpus", lambda: walkers)
    forked, fork = [], os.fork

    def counted():
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(side_by_side.os, "fork", counted)
    return forked


@pytest.mark.parametrize("open_folders,helpers", [(256, False), (3, False), (256, True), (3, True)])
def test_tree_size_counts_what_du_counts_once_and_never_follows_links(tree, monkeypatch, open_folders, helpers,
                                                                      fds_before):
    monkeypatch.setattr(disk, "OPEN_FOLDERS", open_folders)  # 3: most folders opened by path later
    forked = force_side_by_side(monkeypatch) if helpers else []
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
    assert leaked(fds_before) == []  # every folder closed, in every process's share


@pytest.fixture
def fds_before():
    return sorted(os.listdir("/proc/self/fd"))


def leaked(before: list[str]) -> list[str]:
    """Descriptors open now that were not before. (One open before may close meanwhile: a socket an earlier test
    left to the garbage collector, the test runner's own. That is no leak of the walk's.)"""
    return sorted(set(os.listdir("/proc/self/fd")) - set(before))


def test_a_helper_that_fails_has_its_share_read_again(tree, monkeypatch, fds_before):
    """A helper killed while reading (out of memory, a signal): the tree is read again here, nothing counted twice
    or lost, and what the helpers looked at is given back (a watch on a folder nobody took)."""
    forked = force_side_by_side(monkeypatch)
    parent, died, reading = os.getpid(), tree.parent / "a-helper-died", tree.parent / "the-parent-reads-its-share"

    def wait_for(path):  # an order wanted, not needed: under load the parent may get no second folder at all
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    class Looker:
        looked: list = []
        given_back: list = []
        losses = 0

        def look(self, fd):
            if os.getpid() != parent:
                wait_for(reading)  # a helper dies only once the parent read some of its own share (to give back)
                died.touch()
                os.kill(os.getpid(), 9)
            self.looked.append(fd)
            if len(self.looked) == 2:  # this process's first folder of its share: until a helper died in another
                reading.touch()
                wait_for(died)
            return ("seen", os.fstat(fd).st_ino)

        def unlook(self, seen):
            self.given_back.append(seen)

        def lost(self):
            Looker.losses += 1

    looker = Looker()
    found = list(disk.walk(str(tree), 5, 2500, "", looker))
    assert forked and all(seen[0] == "seen" for _rel, _sums, seen in found)
    size = disk.sum_folders((sums for _rel, sums, _seen in found), 5, 2500)
    want = tree_size(tree, largest=5, over=2500)
    assert (size.bytes, size.apparent_bytes, size.files, size.largest, size.over) == (
        want.bytes, want.apparent_bytes, want.files, want.largest, want.over)
    assert sorted(rel for rel, _s, _seen in found) == sorted(set(rel for rel, _s, _seen in found))  # once each
    # Every look not in the result (the parent's own share, when it read it again after learning of the death:
    # under load it may learn only once its share is done, and keep it) is given back; the helper's loss is said.
    assert len(looker.given_back) == len(looker.looked) - len(found) and Looker.losses == 1
    assert leaked(fds_before) == []


def test_sums_read_side_by_side_come_one_per_reader(tree, monkeypatch):
    """tree_size wants the sums only: a huge tree is not held folder by folder, nor pickled so."""
    force_side_by_side(monkeypatch)
    each = list(disk.walk(str(tree), 5, 2500))
    merged = list(disk.walk(str(tree), 5, 2500, merged=True))
    assert len(merged) < 10 < len(each)
    for got, want in ((disk.sum_folders((s for _r, s, _x in merged), 5, 2500), tree_size(tree, 5, 2500)),):
        assert (got.bytes, got.files, got.largest, got.over) == (want.bytes, want.files, want.largest, want.over)


def test_a_missing_tree_measures_empty(tmp_path):
    size = tree_size(tmp_path / "gone", largest=3)
    assert (size.bytes, size.files, size.largest) == (0, 0, [])


def test_no_process_left_to_fork_reads_the_tree_alone(tree, monkeypatch, fds_before):
    """fork refused (a pids limit in the user's container): the tree is read here alone, all of it."""
    force_side_by_side(monkeypatch)

    def refused():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(side_by_side.os, "fork", refused)
    total, apparent, files, _sizes = _reference(tree)
    size = tree_size(tree, largest=5)
    assert (size.bytes, size.apparent_bytes, size.files) == (total, apparent, files)
    assert leaked(fds_before) == []


def test_an_error_while_waiting_for_helpers_ends_them_and_closes_all(tree, monkeypatch, fds_before):
    """Ctrl-C (or any error) while the helpers are waited for: none is left running, no descriptor left open."""
    forked = force_side_by_side(monkeypatch)

    def interrupted(alive):
        raise KeyboardInterrupt

    monkeypatch.setattr(side_by_side, "_reap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tree_size(tree, largest=5)
    assert forked and not any(os.path.exists(f"/proc/{pid}") for pid in forked)  # ended and reaped
    assert leaked(fds_before) == []


def test_helpers_end_with_a_killed_process(tmp_path):
    """A process killed while its helpers read: they end too, and hold none of its sockets (a server's port)."""
    import subprocess
    import sys
    import textwrap

    root = tmp_path / "tree"
    for i in range(8):
        (root / f"d{i}").mkdir(parents=True)
    pids = tmp_path / "helpers"
    script = textwrap.dedent(f"""
        import os, time
        from ds01_jupyter.core import disk, side_by_side
        disk.SIDE_BY_SIDE_FROM, disk.SIDE_BY_SIDE_FOLDERS = 0, 2
        side_by_side.WALKERS, side_by_side.cpus = 3, lambda: 3
        parent = os.getpid()
        class Slow:
            looked = 0
            def look(self, fd):
                if os.getpid() != parent:
                    with open({str(pids)!r}, "a") as out:
                        out.write(f"{{os.getpid()}}\\n")
                    time.sleep(30)
                Slow.looked += 1
                deadline = time.monotonic() + 60
                while Slow.looked == 2 and not os.path.exists({str(pids)!r}) and time.monotonic() < deadline:
                    time.sleep(0.01)  # its first folder of a share: until a helper has taken another
            def unlook(self, seen): pass
            def lost(self): pass
        list(disk.walk({str(root)!r}, 0, None, "", Slow()))
    """)
    def running(pid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not pids.exists():
            time.sleep(0.05)
        time.sleep(0.3)  # (a second helper may find a share too, or none left)
        helpers = [int(p) for p in pids.read_text().split()]
        assert helpers and all(running(pid) for pid in helpers)  # each asleep in its share
    finally:
        proc.kill()
        proc.wait()

    deadline = time.time() + 10
    while time.time() < deadline and any(running(pid) for pid in helpers):
        time.sleep(0.05)
    assert not any(running(pid) for pid in helpers)


def test_a_descriptor_limit_never_makes_a_size_silently_small(tmp_path):
    """Under a low limit of open files the size is right, or the measurement fails: never a tree counted in part."""
    import subprocess
    import sys
    import textwrap

    root = tmp_path / "tree"
    for i in range(40):
        for j in range(10):
            (root / f"d{i}" / f"e{j}").mkdir(parents=True)
            (root / f"d{i}" / f"e{j}" / "f").write_bytes(b"x" * 10)
    for helpers in (False, True):
        script = textwrap.dedent(f"""
            import os, resource
            from ds01_jupyter.core import disk, side_by_side
            if {helpers}:
                disk.SIDE_BY_SIDE_FROM, disk.SIDE_BY_SIDE_FOLDERS = 0, 2
                side_by_side.WALKERS, side_by_side.cpus = 3, lambda: 3
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 25, 1024))
            try:
                print(disk.tree_size({str(root)!r}).files)
            except OSError as err:
                print("failed", err.errno)
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        assert out.split()[0] in ("400", "failed"), out


def test_the_cpus_a_cgroup_allows(tmp_path, monkeypatch):
    """Helpers beyond the CPUs a container may use (docker --cpus) would only take the user's own CPU time."""
    (tmp_path / "proc").write_text("0::/user.slice/box\n")
    (tmp_path / "cg" / "user.slice" / "box").mkdir(parents=True)
    (tmp_path / "cg" / "user.slice" / "cpu.max").write_text("300000 100000\n")
    (tmp_path / "cg" / "user.slice" / "box" / "cpu.max").write_text("max 100000\n")
    monkeypatch.setattr(side_by_side, "_OWN_CGROUP", str(tmp_path / "proc"))
    monkeypatch.setattr(side_by_side, "_CGROUPS", str(tmp_path / "cg"))
    monkeypatch.setattr(side_by_side.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert side_by_side.cpus() == 3  # the slice above it allows three
    (tmp_path / "cg" / "user.slice" / "box" / "cpu.max").write_text("150000 100000\n")
    assert side_by_side.cpus() == 2
    (tmp_path / "cg" / "user.slice" / "cpu.max").unlink()
    (tmp_path / "cg" / "user.slice" / "box" / "cpu.max").write_text("max 100000\n")
    assert side_by_side.cpus() == 16


def test_an_interrupt_as_a_helper_starts_loses_nothing(tree, monkeypatch, fds_before):
    """Ctrl-C arriving while a helper is forked (its handler runs as signals are unblocked): the helper is ended,
    garbage collection is back on, no signal is left blocked, no descriptor open."""
    forked = force_side_by_side(monkeypatch)
    parent, real = os.getpid(), side_by_side.signal.pthread_sigmask

    def interrupted(how, mask):
        before = real(how, mask)
        if how == side_by_side.signal.SIG_SETMASK and os.getpid() == parent:
            raise KeyboardInterrupt
        return before

    monkeypatch.setattr(side_by_side.signal, "pthread_sigmask", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tree_size(tree, largest=5)
    monkeypatch.undo()
    assert forked and not any(os.path.exists(f"/proc/{pid}") for pid in forked)
    assert gc.isenabled() and side_by_side.signal.pthread_sigmask(side_by_side.signal.SIG_BLOCK, []) == set()
    assert leaked(fds_before) == []


@pytest.mark.parametrize("cpus", [1, 3])
def test_no_helper_to_be_had_is_asked_for_once(tree, monkeypatch, cpus):
    """One CPU (or no pipe): the tree is read alone, without asking again at each folder."""
    force_side_by_side(monkeypatch, walkers=cpus)
    asked = []
    monkeypatch.setattr(side_by_side, "read", lambda *args: asked.append(1))
    total, apparent, files, _sizes = _reference(tree)
    size = tree_size(tree)
    assert (size.bytes, size.files) == (total, files) and len(asked) == (0 if cpus == 1 else 1)
