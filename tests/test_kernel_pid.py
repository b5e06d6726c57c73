"""A kernel's pid read off its attached stream (container_kernel._pid), on real sockets: up to its line and no
further, so whoever drains the stream gets the kernel's own output whole."""

from __future__ import annotations

import socket
import struct

import pytest

from ds01_jupyter.core.errors import StateConflict
from ds01_jupyter.kernels.container_kernel import PID_LINE, _pid


def frame(kind: int, data: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + struct.pack(">I", len(data)) + data


def test_the_pid_line_is_read_and_nothing_after_it():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        # The line may come in pieces; the kernel's first output follows at once.
        theirs.sendall(frame(2, f"{PID_LINE} 4".encode()) + frame(2, b"2\n") + frame(1, b"kernel says hi\n"))
        assert _pid(ours, "c" * 64, timeout=5) == 42
        assert ours.gettimeout() is None  # blocking again, for whoever drains it
        assert ours.recv(1024) == frame(1, b"kernel says hi\n")


def test_a_wrapper_that_ended_says_why():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(frame(2, b"sh: 1: cannot create /tmp/.ds01/kernel-x.pid: Is a directory\n"))
        theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(StateConflict, match="did not start inside container cccccccccccc: sh: 1: cannot create"):
            _pid(ours, "c" * 64, timeout=5)


def test_silence_is_no_pid():
    ours, theirs = socket.socketpair()
    with ours, theirs, pytest.raises(StateConflict, match="did not start"):
        _pid(ours, "c" * 64, timeout=0.2)


def test_a_line_that_is_not_ours_is_no_pid():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(frame(2, f"{PID_LINE} -1\n".encode()))
        theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(StateConflict):
            _pid(ours, "c" * 64, timeout=5)


def test_lines_an_images_shell_says_first_are_passed_over():
    """Where an image's sh is bash, BASH_ENV runs before the wrapper's line and may print."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(frame(2, b"welcome to my image\n") + frame(2, f"{PID_LINE} 7\n".encode()) + frame(1, b"out"))
        assert _pid(ours, "c" * 64, timeout=5) == 7
        assert ours.recv(1024) == frame(1, b"out")
