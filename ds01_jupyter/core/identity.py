"""Acting on a user's files with the user's rights while the process is root.

The hub's spawner, the reaper and (later) the service run as root and write into
users' homes: audit records, idle records, rescues. Anything under a user's home
may be a link the user planted, so such writes take the user's filesystem
identity for the calling thread only (Linux ``setfsuid``/``setfsgid`` and the
thread's own group list): a link can then lead only where the user could write
anyway, and what is created is the user's.
"""

from __future__ import annotations

import contextlib
import os

from .errors import DS01Error

#: The setgroups system call's number (glibc's wrapper would change every thread).
SETGROUPS = {"x86_64": 116, "aarch64": 159}


def machine() -> str:
    """``platform.machine()`` without importing platform, which compiles regular expressions (issue 19)."""
    return os.uname().machine


class Identity:
    """This thread's filesystem identity switched to a user's (Linux ``setfsuid``/``setfsgid`` and the
    thread's own group list): files are created, checked and owned as theirs, while the rest of the
    process (other threads, the engine's socket) stays root. Only the calling thread changes."""

    _libc = None

    def __init__(self, uid: int, gid: int):
        self.uid, self.gid = uid, gid

    @classmethod
    def libc(cls):
        if cls._libc is None:
            import ctypes
            import ctypes.util

            cls._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return cls._libc

    def _groups(self, groups: list[int]) -> None:
        import ctypes

        array = (ctypes.c_uint * max(1, len(groups)))(*groups)
        # The raw system call: glibc's setgroups() would change every thread of the process.
        if self.libc().syscall(SETGROUPS[machine()], len(groups), array) != 0:
            raise OSError(ctypes.get_errno(), "setgroups failed")

    def __enter__(self):
        self.saved = os.getgroups()
        self._groups([self.gid])
        self.libc().setfsgid(self.gid)
        self.libc().setfsuid(self.uid)
        if self.libc().setfsuid(-1 & 0xFFFFFFFF) != self.uid:  # setfsuid answers the previous value
            self.__exit__()
            raise DS01Error("Could not take the user's identity to write the rescue.")
        return self

    def __exit__(self, *exc):
        self.libc().setfsuid(0)
        self.libc().setfsgid(0)
        self._groups(self.saved)


def check_supported() -> None:
    if machine() not in SETGROUPS:
        raise DS01Error(f"Acting for another user as root is not supported on {machine()} yet.")


@contextlib.contextmanager
def acting_as(user):
    """Within the block this thread's file access is ``user``'s (a no-op unless we are root acting for another)."""
    if user is None or os.geteuid() != 0 or user.uid == 0:
        yield
        return
    check_supported()
    with Identity(user.uid, user.gid):
        yield
