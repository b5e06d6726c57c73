"""One big tree read by forked helper processes side by side (disk.walk's whole walks): Python takes about twice
`du`'s time per file, so two readers match `du -s` and more beat it.

The folders waiting are cut into shares, numbered in one pipe; each reader (this process and each helper) takes
one share at a time (a big subtree holds no other up) and reads it through the folder descriptors it inherited,
never by a path a link could redirect. A helper writes what it found to a memory file and exits. Helpers run
nothing but the reading: no garbage collection (no finalizer of the parent's objects, whose locks its other
threads may hold), the default action of every signal, and they die with the thread that made them. When one
fails, the whole tree is read again by this process alone.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

#: Processes that read one tree side by side, this one among them, at most: one per CPU this process may use.
WALKERS = 4
_MAX_SHARES = 1024  # each a 4-byte number in one pipe, which may hold a page only
_PR_SET_PDEATHSIG = 1
_CGROUPS, _OWN_CGROUP = "/sys/fs/cgroup", "/proc/self/cgroup"

#: A reader's walk from one folder, opened (or -1: by its path): (rel, FolderSums or None, what was looked at).
Alone = Callable[[str, int], Iterator[tuple]]
#: Adds a folder's sums into a reader's running total (None: a first), where the caller wants the total only.
Merge = Callable[[Any, Any], Any]


def readers() -> int:
    """How many processes may read one tree at once here."""
    if not hasattr(os, "fork") or not hasattr(os, "memfd_create"):
        return 1
    return max(1, min(WALKERS, cpus()))


def cpus() -> int:
    """The CPUs this process may use: its affinity, and its cgroup's quota (a container started with --cpus)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(count, math.ceil(quota))) if quota else count


def _cgroup_quota() -> float:
    """CPUs the process's cgroup (v2) and the ones above it allow, the least of them; 0 for no quota."""
    try:
        with open(_OWN_CGROUP) as own:
            path = next((line[3:].strip() for line in own if line.startswith("0::")), None)
    except OSError:
        return 0.0
    least = 0.0
    while path is not None:
        try:
            with open(f"{_CGROUPS}{path.rstrip('/')}/cpu.max") as limit:
                quota, period = limit.read().split()
            if quota != "max":
                allowed = int(quota) / int(period)
                least = allowed if not least else min(least, allowed)
        except (OSError, ValueError):
            pass
        path = None if path in ("", "/") else path.rsplit("/", 1)[0] or "/"
    return least


def read(stack: list, alone: Alone, merge: Merge | None, looker) -> list | None:
    """[(rel, FolderSums or None, what was looked at)] of every folder on ``stack`` ([(fd or -1, rel)]) and below;
    with ``merge``, each reader's sums come as one. None (nothing done, nothing closed) where no helper can be
    had; otherwise every descriptor on ``stack`` is closed."""
    walkers = readers()
    if walkers < 2:
        return None
    shares = min(len(stack), _MAX_SHARES)
    try:
        queue, feed = os.pipe()
    except OSError:
        return None
    try:
        os.set_blocking(feed, False)  # a pipe may hold a page only: then no helpers rather than a hang
        numbers = b"".join(k.to_bytes(4, "little") for k in range(shares))
        filled = os.write(feed, numbers) == len(numbers)
    except OSError:
        filled = False
    os.close(feed)
    if not filled:
        os.close(queue)
        return None
    # Every share is in the pipe before any reader starts: an empty pipe is the end, even where a helper another
    # thread forked meanwhile holds the pipe's other end.
    os.set_blocking(queue, False)
    prctl, me = _prctl(), os.getpid()
    helpers: list[tuple[int, int]] = []  # (pid, its memory file)
    alive: list[int] = []
    try:
        for _ in range(walkers - 1):
            try:
                out = os.memfd_create("ds01-tree-size", os.MFD_CLOEXEC)
            except OSError:
                break

            def started(pid: int, out: int = out) -> None:
                helpers.append((pid, out))
                alive.append(pid)

            def helper(out: int = out) -> NoReturn:
                _helper(queue, out, stack, shares, alone, merge, prctl, me)

            if not _start(helper, started):
                os.close(out)
                break  # no process left to this user (a pids limit): fewer readers
        found = _take(queue, stack, shares, alone, merge)
        failed = _reap(alive)
        try:
            for _pid, out in helpers if not failed else ():
                found += pickle.loads(_read_all(out))
        except (OSError, pickle.UnpicklingError, EOFError, MemoryError):
            failed = True
    except BaseException:
        _kill(alive)
        raise
    finally:
        os.close(queue)
        for _pid, out in helpers:
            os.close(out)
        for fd, _rel in stack:
            if fd >= 0:
                os.close(fd)
    if not failed:
        return found
    # What was looked at goes back before each folder is looked at again (the same watch, for one); what the
    # helper that failed looked at is not known here.
    if looker is not None:
        for _rel, _sums, seen in found:
            if seen is not None:
                looker.unlook(seen)
        looker.lost()
    again: list = []
    total = None
    for _fd, rel in stack:
        total = _gather(alone(rel, -1), merge, again, total)
    return again if total is None else [*again, ("", total, None)]


def _take(queue: int, stack: list, shares: int, alone: Alone, merge: Merge | None) -> list:
    """Read shares of ``stack`` until none is left, each folder through a copy of its descriptor."""
    found: list = []
    total = None
    while True:
        try:
            share = os.read(queue, 4)
        except BlockingIOError:
            break
        if len(share) < 4:
            break
        for fd, rel in stack[int.from_bytes(share, "little")::shares]:
            total = _gather(alone(rel, os.dup(fd) if fd >= 0 else -1), merge, found, total)
    return found if total is None else [*found, ("", total, None)]


def _gather(items, merge: Merge | None, found: list, total):
    """Keep what a walk gives (with ``merge``, the sums added up as they come, not kept one by one)."""
    for item in items:
        if merge is not None and item[1] is not None:
            total = merge(total, item[1])
        elif item[1] is not None or item[2] is not None:
            found.append(item)
    return total


def _start(helper: Callable[[], NoReturn], started: Callable[[int], None]) -> bool:
    """Fork a process that runs ``helper``, with no garbage collection or signal handler in between (the helper
    sets its own); ``started`` gets its pid at once (an interrupt later cannot lose it). False when refused."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # (changes nothing: a handler that raises here is harmless)
    collecting = gc.isenabled()
    gc.disable()
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
        except OSError:
            return False
        if pid == 0:
            _begin(mask, helper)
        started(pid)
        return True
    finally:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        finally:
            if collecting:
                gc.enable()


def _begin(mask, helper: Callable[[], NoReturn]) -> NoReturn:
    """The helper's first steps: nothing here may unwind into the code of the process it was forked from."""
    try:
        gc.disable()
        for number in signal.valid_signals():
            try:
                if callable(signal.getsignal(number)):
                    signal.signal(number, signal.SIG_DFL)  # not the parent's handlers (a server's "shut down?")
            except (OSError, ValueError):
                continue
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        helper()
    finally:
        os._exit(1)


def _helper(queue, out, stack, shares, alone, merge, prctl, parent: int) -> NoReturn:
    """A forked helper's life: read shares, write what it found to ``out``, exit (never back to the caller)."""
    code = 1
    try:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # the thread that forked it went (the process was killed)
        if os.getppid() == parent:
            data = memoryview(pickle.dumps(_take(queue, stack, shares, alone, merge), 5))
            while data:
                data = data[os.write(out, data):]
            code = 0
    finally:
        os._exit(code)


def _prctl():
    """libc's prctl, found before forking (a helper must not load anything: another thread may hold the lock)."""
    global _PRCTL
    if _PRCTL is False:
        try:
            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _PRCTL = None
    return _PRCTL


_PRCTL: Any = False


def _reap(alive: list[int]) -> bool:
    """Wait for each helper (each reaped one leaves ``alive``); whether any failed."""
    failed = False
    while alive:
        try:
            _, status = os.waitpid(alive[0], 0)
            failed = failed or os.waitstatus_to_exitcode(status) != 0
        except ChildProcessError:
            failed = True  # reaped by someone else (a handler that waits for every child): what it wrote is unsure
        alive.pop(0)
    return failed


def _kill(alive: list[int]) -> None:
    """End the helpers still running, and reap them."""
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    for pid in alive:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            continue
    alive.clear()


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
