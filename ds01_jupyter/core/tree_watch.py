"""Workspace sizes kept current by the kernel's change notices (inotify): a repeat measurement reads again only
the folders where something changed, not every file of the tree (the sidebar's usage panel asks often).

A size must never miss a file that grew in place (a log, a checkpoint being written), which changes no folder's
time; so every folder of a measured tree is watched for writes, attribute changes, creations, deletions and
moves, and a notice marks its folder to be read again. A folder with a file changed in the last SETTLE_SECONDS is
read again at each measurement too: its filesystem may not have placed the file's blocks yet, and sends no notice
when it does. What the watches cannot see makes the next measurement a whole walk: a tree on a filesystem other
machines may write (NFS, SMB, FUSE: only local types are watched), no watch left (``fs.inotify.max_user_watches``),
a lost notice (the queue overflowed), a tree older than FULL_SECONDS (writes through a memory map send no notice,
and nor does a file's folder when the file is changed through another hard link made since the last
measurement). Linux only; elsewhere every measurement is a walk.
"""

from __future__ import annotations

import ctypes
import errno
import heapq
import os
import select
import struct
import sys
import threading
import time

from .disk import TreeSize, open_below, read_folder, sum_folders, tree_size, walk

#: A watched tree is walked whole again after this long, whatever the notices said (memory-mapped writes).
FULL_SECONDS = 600.0
#: A file changed this recently may still change its allocated size (st_blocks) with no notice: ext4 adds a
#: fragmented file's extent block at writeback (within 30 s), Btrfs's commit and ZFS's sync (compression) settle
#: it; its folder is read again at each measurement until then. (XFS's trimmed preallocation can take until the
#: next whole walk.)
SETTLE_SECONDS = 60.0
#: The share of the user's inotify watches (``fs.inotify.max_user_watches``) this process may hold: the rest is
#: left to the user's other tools (editors, file watchers). Beyond it the least recently measured trees are let
#: go, and a tree bigger than it all is walked each time.
WATCH_SHARE = 4

_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ONLYDIR = 0x4000, 0x8000, 0x01000000
_MASK = (_IN_MODIFY | _IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF
         | _IN_MOVE_SELF | _IN_ONLYDIR)
_EVENT = struct.Struct("iIII")
#: Filesystems only this machine writes (statfs f_type): ext2-4, XFS, Btrfs, tmpfs, ZFS, F2FS.
_LOCAL = frozenset({0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0x2FC12FC1, 0xF2F52010})


class _Tree:
    """One measured tree: each folder's sums (path below the root -> FolderSums), the watch of each, and the
    folders to read again."""

    def __init__(self, base: str, largest: int, identity: tuple):
        self.base, self.largest, self.identity = base, largest, identity
        self.folders: dict = {}
        self.inodes: dict[str, tuple[int, int]] = {}  # each folder's (device, inode) when it was read
        self.watches: dict[str, int] = {}
        self.dirty: set[str] = set()
        self.whole = True  # walk it all at the next measurement
        self.walked = 0.0
        self.used = 0.0
        self.unwatched = False  # too big for the watches left: walked each time, until FULL_SECONDS


class TreeWatch:
    """The watched trees of this process, and the one inotify descriptor (read by a daemon thread) for all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trees: dict[tuple[str, int], _Tree] = {}
        self.by_watch: dict[int, list[tuple[_Tree, str]]] = {}
        self.fd = -1
        self.failed = sys.platform != "linux"
        self.budget = 0  # watches this process may hold (see WATCH_SHARE)
        self.held = 0

    def size(self, root: str | os.PathLike, largest: int = 0) -> TreeSize:
        """The tree's size (as disk.tree_size), read again only where a notice said something changed."""
        base = os.fspath(root)
        try:
            st = os.stat(base, follow_symlinks=False)
        except OSError:
            return sum_folders((), largest, None)
        identity = (st.st_dev, st.st_ino)
        with self.lock:
            if not self._ready() or not self._drain() or not self._local(base):
                return tree_size(base, largest)
            tree, now = self.trees.get((base, largest)), time.monotonic()
            if tree is None or tree.identity != identity or now - tree.walked > FULL_SECONDS:
                for stale in [t for t in self.trees.values() if t is tree or now - t.used > FULL_SECONDS]:
                    self._drop(stale)  # this one changed, the others not asked for a while (gone projects)
                tree = self.trees[(base, largest)] = _Tree(base, largest, identity)
            tree.used = now
            if tree.unwatched:
                return tree_size(base, largest)
            try:
                if tree.whole or not self._read_again(tree):
                    self._bound(len(tree.folders) - len(tree.watches))
                    if not self._walk_whole(tree):
                        folders, tree.folders = tree.folders, {}
                        return sum_folders(folders.values(), largest, None)
                else:
                    self._look_at_links(tree)
            except BaseException:  # (descriptors ran out, an interrupt): what was read in part is not a size
                self._unwatch(tree)
                tree.folders, tree.inodes, tree.dirty, tree.whole = {}, {}, set(), True
                self._sweep()  # and the watches it added that no tree took
                raise
            if "" not in tree.folders:
                tree.whole = True  # the root could not be read: no watch (its parent has none) says when it can
            settling = time.time() - SETTLE_SECONDS
            tree.dirty.update(rel for rel, sums in tree.folders.items() if sums.changed > settling)
            return sum_folders(tree.folders.values(), largest, None)

    # -- the inotify descriptor ---------------------------------------------------------------
    def _ready(self) -> bool:
        if self.fd >= 0:
            return True
        if self.failed:
            return False
        if not os.path.isdir("/proc/self/fd"):  # folders are watched through their descriptors there
            self.failed = True
            return False
        try:
            self.libc = libc = ctypes.CDLL(None, use_errno=True)
            with open("/proc/sys/fs/inotify/max_user_watches") as limit:
                self.budget = int(limit.read()) // WATCH_SHARE
            self._add = libc.inotify_add_watch
            self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
            self._rm = libc.inotify_rm_watch
            self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
            fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        except (OSError, AttributeError, ValueError):
            fd = -1
        if fd < 0:
            self.failed = True  # no inotify (or no instance left): every measurement walks
            return False
        self.fd = fd
        threading.Thread(target=self._read_notices, name="ds01-tree-watch", daemon=True).start()
        return True

    def _read_notices(self) -> None:
        """Take notices as they come (the kernel's queue is bounded); runs for the process's life."""
        poll = select.poll()
        poll.register(self.fd, select.POLLIN)
        while True:
            try:
                poll.poll()
            except InterruptedError:
                continue
            with self.lock:
                if not self._drain():
                    return

    def _drain(self) -> bool:
        """Mark the folders the pending notices name (every tree after a lost notice); the lock is held. A write
        that has returned has queued its notice: a measurement drains first, so it never misses one."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return True
            except InterruptedError:
                continue
            except OSError:
                return False
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    for tree in self.trees.values():
                        tree.whole = True
                    continue
                for tree, rel in self.by_watch.get(wd, ()):
                    tree.dirty.add(rel)
                    if mask & (_IN_DELETE_SELF | _IN_MOVE_SELF | _IN_IGNORED) and rel:
                        tree.dirty.add(_parent(rel))  # the folder itself went: its parent lists it no more

    def _watch(self, tree: _Tree, fd: int, rel: str) -> tuple[int, int, int]:
        """Watch the folder open at ``fd``; its (device, inode, allocated bytes), taken once watched (a later
        change has its notice). Raises _NoWatch when it cannot be watched (no watch left, no /proc), unless it
        cannot be read at all."""
        return self._adopt(tree, rel, self._look(fd))

    def _look(self, fd: int) -> tuple[int, int, int, int, int]:
        """Add a watch on the folder open at ``fd`` (through /proc/self/fd: exactly that folder, whatever its path
        is now), then stat it: (watch or -1, errno, device, inode, allocated bytes). Safe in a forked helper of
        disk.walk (the watch is the shared inotify descriptor's; see _adopt), so nothing here is recorded."""
        wd = self._add(self.fd, f"/proc/self/fd/{fd}".encode(), _MASK)
        err = ctypes.get_errno() if wd < 0 else 0
        st = os.fstat(fd)
        return wd, err, st.st_dev, st.st_ino, st.st_blocks * 512

    def _adopt(self, tree: _Tree, rel: str, seen: tuple[int, int, int, int, int]) -> tuple[int, int, int]:
        """Record the watch _look added on the folder ``rel`` (in this process or a helper), as _watch says."""
        wd, err, dev, ino, blocks = seen
        tree.inodes[rel] = (dev, ino)
        if wd < 0:
            if err == errno.EACCES:
                return dev, ino, blocks  # not readable (then not measured either): its parent's notice says when
            raise _NoWatch()  # no watch left, or no /proc: this tree is walked whole each time
        if self.held >= self.budget and rel not in tree.watches:
            self._unlook(seen)
            raise _NoWatch()
        old = tree.watches.get(rel)
        if old is not None and old != wd:
            self._unlist(tree, rel, old)
        tree.watches[rel] = wd
        holders = self.by_watch.setdefault(wd, [])
        if (tree, rel) not in holders:
            if not holders:
                self.held += 1
            holders.append((tree, rel))
        return dev, ino, blocks

    def _unlook(self, seen: tuple[int, int, int, int, int]) -> None:
        """Remove a watch _look added that no tree took (another tree's folder may hold the same one)."""
        if seen[0] >= 0 and not self.by_watch.get(seen[0]):
            self._rm(self.fd, seen[0])

    def _unlist(self, tree: _Tree, rel: str, wd: int) -> None:
        holders = self.by_watch.get(wd, [])
        if (tree, rel) in holders:
            holders.remove((tree, rel))
        if not holders and self.by_watch.pop(wd, None) is not None:
            self.held -= 1
            self._rm(self.fd, wd)  # another path (a folder moved within the tree) may hold it: only when none

    # -- walking --------------------------------------------------------------------------------
    def _walk_whole(self, tree: _Tree) -> bool:
        """Walk the tree, watching each folder; False (the tree let go, its folders' sums kept for this
        measurement only) when the watches ran out."""
        self._unwatch(tree)
        tree.folders, tree.inodes, tree.dirty = {}, {}, set()
        tree.whole, tree.walked = False, time.monotonic()
        try:
            self._walk_into(tree, "")
            return True
        except _NoWatch:
            self._unwatch(tree)
            tree.inodes, tree.whole, tree.unwatched = {}, True, True
            return False

    def _walk_into(self, tree: _Tree, start: str) -> bool:
        """Read ``start`` and every folder below it, watching each before reading it (a change meanwhile is seen);
        whether any file there has other links. Raises _NoWatch, once all is read (``tree.folders`` holds it),
        when a folder could not be watched."""
        linked = unwatched = False
        watching = _Watching(self, self.budget - self.held)
        folders = walk(tree.base, tree.largest, None, start, watching, helpers=watching.counted())
        try:
            for rel, sums, seen in folders:
                if unwatched:
                    self._unlook(seen)
                else:
                    try:
                        self._adopt(tree, rel, seen)
                    except _NoWatch:
                        unwatched = watching.stopped = True  # read on (no second walk), watching no more
                tree.folders[rel] = sums
                tree.dirty.discard(rel)
                linked = linked or bool(sums.linked)
        finally:
            folders.close()
            watching.close()
        if unwatched:
            raise _NoWatch()
        return linked

    def _sweep(self) -> None:
        """Remove the watches no tree holds (a helper that failed added them): the kernel lists each in fdinfo."""
        try:
            with open(f"/proc/self/fdinfo/{self.fd}") as info:
                held = [int(line.split()[1][3:], 16) for line in info if line.startswith("inotify wd:")]
        except (OSError, ValueError, IndexError):
            return
        for wd in held:
            if not self.by_watch.get(wd):
                self._rm(self.fd, wd)

    def _read_again(self, tree: _Tree) -> bool:
        """Read the marked folders again (a subfolder new since, or unreadable before, is walked whole, and so is
        another folder found at a path: one moved or renamed there keeps its subfolders, which had no notice; a
        gone one is forgotten); False when the watches ran out (then the tree is walked whole)."""
        queue = [(rel.count("/"), rel) for rel in tree.dirty]  # parents first: they tell what is gone
        heapq.heapify(queue)
        try:
            while queue:
                rel = heapq.heappop(queue)[1]
                if rel not in tree.dirty:
                    continue  # walked meanwhile
                tree.dirty.discard(rel)
                old = tree.folders.get(rel)
                if old is None:
                    continue  # forgotten with its parent, or unreadable when last read
                try:
                    fd = open_below(tree.base, rel)
                except OSError:
                    self._forget(tree, rel)
                    if rel:
                        tree.dirty.add(_parent(rel))
                        heapq.heappush(queue, (rel.count("/") - 1, _parent(rel)))
                    continue
                try:
                    sums, known = None, tree.inodes.get(rel)
                    dev, ino, own = self._watch(tree, fd, rel)  # watched before it is read; which folder it is
                    if (dev, ino) == known:
                        sums = read_folder(fd, rel, tree.largest, None)
                except OSError:
                    self._forget(tree, rel)
                    continue
                finally:
                    os.close(fd)
                if sums is None:  # another folder now: all of it is new
                    self._forget(tree, rel)
                    if self._walk_into(tree, rel):
                        return False
                    continue
                if {link[:2] for link in sums.linked} - {link[:2] for link in old.linked}:
                    return False  # a new hard link: the file's other names' folders had no notice of it
                tree.folders[rel] = sums
                parent, name = tree.folders.get(_parent(rel)), rel[:-1].rpartition("/")[2]
                if rel and parent is not None and parent.folders.get(name, own) != own:
                    parent.total += own - parent.folders[name]  # it grew (entries added): no notice to its parent
                    parent.folders[name] = own
                for name in set(old.folders) - set(sums.folders):
                    self._forget(tree, f"{rel}{name}/")
                for name in sums.folders:
                    if f"{rel}{name}/" not in tree.folders and self._walk_into(tree, f"{rel}{name}/"):
                        return False  # the same, for a folder copied in with links (cp -al)
            return True
        except _NoWatch:
            return False

    @staticmethod
    def _look_at_links(tree: _Tree) -> None:
        """Look again at each file with several links: a write through one of its names notifies that name's
        folder only, and the file counts once, by whichever name."""
        for rel, sums in tree.folders.items():
            if not sums.linked:
                continue
            try:
                fd = open_below(tree.base, rel)
            except OSError:
                tree.dirty.add(rel)
                continue
            try:
                now = []
                for dev, ino, blocks, size, path in sums.linked:
                    try:
                        st = os.stat(path.rpartition("/")[2], dir_fd=fd, follow_symlinks=False)
                        dev, ino, blocks, size = st.st_dev, st.st_ino, st.st_blocks * 512, st.st_size
                    except OSError:
                        tree.dirty.add(rel)  # gone meanwhile: its folder's notice is on its way
                    now.append((dev, ino, blocks, size, path))
                sums.linked = now
            finally:
                os.close(fd)

    def _forget(self, tree: _Tree, rel: str) -> None:
        """Drop a folder and everything below it (each folder's sums name its subfolders) from the tree."""
        stack = [rel]
        while stack:
            path = stack.pop()
            sums = tree.folders.pop(path, None)
            tree.inodes.pop(path, None)
            wd = tree.watches.pop(path, None)
            if wd is not None:
                self._unlist(tree, path, wd)
            if sums is not None:
                stack += [f"{path}{name}/" for name in sums.folders]

    def _unwatch(self, tree: _Tree) -> None:
        for rel, wd in list(tree.watches.items()):
            self._unlist(tree, rel, wd)
        tree.watches = {}

    def _drop(self, tree: _Tree) -> None:
        self._unwatch(tree)
        if self.trees.get((tree.base, tree.largest)) is tree:
            del self.trees[(tree.base, tree.largest)]

    def _bound(self, needed: int) -> None:
        """Let go of the least recently measured trees until ``needed`` more watches fit in the budget."""
        while self.held + needed > self.budget:
            watching = [t for t in self.trees.values() if t.watches]
            if not watching:
                return
            oldest = min(watching, key=lambda t: t.used)
            self._unwatch(oldest)
            oldest.whole = True

    def _local(self, base: str) -> bool:
        """Whether the tree lies on a filesystem only this machine writes (its notices then tell everything)."""
        buf = ctypes.create_string_buffer(512)  # a struct statfs, f_type first
        if self.libc.statfs(os.fsencode(base), buf) != 0:
            return False
        return struct.unpack_from("l", buf, 0)[0] & 0xFFFFFFFF in _LOCAL


class _Watching:
    """The looker of one walk (disk.walk): a watch added on each folder by whichever process reads it, while the
    watches this process may still hold last. They are counted down in an eventfd, which the walk's helpers
    share: the budget holds while they read (the user's editors keep their watches), not only once they are done."""

    def __init__(self, watch: TreeWatch, room: int):
        self.watch = watch
        self.stopped = False  # the walk's caller watches no more (this process's looks only)
        self.room = -1
        if hasattr(os, "eventfd"):
            self.room = self._count(room)

    @staticmethod
    def _count(room: int) -> int:
        """An eventfd that ``room`` reads take one from, then refuses (helpers share it through fork)."""
        return os.eventfd(max(0, room), os.EFD_SEMAPHORE | os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def counted(self) -> bool:
        """Whether helpers may read the tree too (without an eventfd, their watches could not be counted)."""
        return self.room >= 0

    def look(self, fd: int) -> tuple[int, int, int, int, int]:
        if self.stopped or self.room >= 0 and not self._take_one():
            st = os.fstat(fd)
            return -1, errno.ENOSPC, st.st_dev, st.st_ino, st.st_blocks * 512
        return self.watch._look(fd)

    def _take_one(self) -> bool:
        try:
            os.eventfd_read(self.room)
            return True
        except BlockingIOError:
            return False

    def unlook(self, seen: tuple[int, int, int, int, int]) -> None:
        self.watch._unlook(seen)

    def lost(self) -> None:
        """A helper failed (all are ended): its watches go, and the room is counted again for the walk alone."""
        self.watch._sweep()
        if self.room >= 0:
            os.close(self.room)
            self.room = -1
            self.room = self._count(self.watch.budget - self.watch.held)

    def close(self) -> None:
        if self.room >= 0:
            os.close(self.room)
            self.room = -1


class _NoWatch(Exception):
    """The watches (this process's share of them) are used up."""


def _parent(rel: str) -> str:
    """"a/b/" -> "a/"; "a/" -> ""."""
    return rel[:-1].rpartition("/")[0] + "/" if "/" in rel[:-1] else ""


#: The process's watched trees (a cache: a restarted process walks each tree once again).
watched = TreeWatch()
