"""The caller's end of an interactive command through ds01d (``container-run``, the deploy's shell).

Run as ``python -m ds01_jupyter.service.attach SOCKET PROJECT TTY COMMAND_JSON``:
the CLI becomes this process, as it becomes ``docker exec`` with direct
access. It receives the command's connection from ds01d, pumps the terminal
or stdin and the output through it, and exits with the command's exit code.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import struct
import sys

from ..cli import output as out
from ..core import errors as E
from . import protocol as P
from .client import open_connection

#: Docker's frame head for output without a terminal: stream (1 stdout, 2 stderr), 3 zero bytes, length.
_HEAD = struct.Struct(">BxxxL")


class Control:
    """The line-oriented control connection, read with room for one passed descriptor."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer, self.fds = sock, b"", []

    def send(self, message: dict) -> None:
        self.sock.sendall(P.dump(message))

    def line(self) -> dict | None:
        while b"\n" not in self.buffer:
            data, fds, _flags, _ = socket.recv_fds(self.sock, 65536, 4, socket.MSG_CMSG_CLOEXEC)
            self.fds.extend(fds)
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def _size() -> list[int] | None:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        size = shutil.get_terminal_size()
    return [size.lines, size.columns] if size.lines and size.columns else None


def pump(stream: socket.socket, tty: bool) -> None:
    """Copy stdin to the command and its output to stdout/stderr until the command's side closes."""
    try:
        os.fstat(0)
        reading_stdin = True
    except OSError:  # no stdin at all: the command reads end of file
        reading_stdin = False
        if not tty:
            stream.shutdown(socket.SHUT_WR)
    buffer = b""
    while True:
        watch = [stream] + ([0] if reading_stdin else [])
        ready, _, _ = select.select(watch, [], [])
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                stream.sendall(data)
            else:  # end of stdin: the command's stdin closes, its output still comes
                reading_stdin = False
                if not tty:
                    stream.shutdown(socket.SHUT_WR)
        if stream in ready:
            data = stream.recv(65536)
            if not data:
                return
            if tty:
                os.write(1, data)
                continue
            buffer += data
            while len(buffer) >= _HEAD.size:
                kind, length = _HEAD.unpack_from(buffer)
                if len(buffer) < _HEAD.size + length:
                    break
                chunk, buffer = buffer[_HEAD.size:_HEAD.size + length], buffer[_HEAD.size + length:]
                _write_all(2 if kind == 2 else 1, chunk)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def open_session(socket_path: str, op: str, args: dict) -> tuple[Control, dict, socket.socket]:
    """Ask ds01d for a session (:data:`.protocol.SESSIONS`); (the control connection, what ds01d said of the
    session, the connection it handed over)."""
    control = Control(open_connection(socket_path))
    try:
        control.send({"v": P.VERSION, "op": op, "args": args})
        first = control.line()
        if first is None:
            raise E.EngineUnavailable("ds01d closed the connection before the command started.")
        if "error" in first:
            raise P.error_from(first["error"])
        if "attached" not in first or len(control.fds) != 1:
            raise E.DS01Error("ds01d answered without the command's connection.")
    except BaseException:
        for fd in control.fds:
            os.close(fd)
        control.sock.close()
        raise
    return control, first["attached"], socket.socket(fileno=control.fds.pop())


def run(socket_path: str, project: str, command: list[str], tty: bool) -> int:
    control, _, stream = open_session(socket_path, "session.attach", {"name": project, "command": command, "tty": tty,
                                                                       "size": _size() if tty else None})
    saved = None
    if tty and os.isatty(0):
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(0)
        ttymod.setraw(0)

        def resized(signum, frame):
            size = _size()
            if size:
                try:
                    control.send({"resize": size})
                except OSError:
                    pass

        signal.signal(signal.SIGWINCH, resized)
    try:
        pump(stream, tty)
    finally:
        stream.close()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    try:
        control.send({"wait": True})
        answer = control.line()
    except OSError:
        answer = None
    if not answer or "result" not in answer:
        if answer and "error" in answer:
            raise P.error_from(answer["error"])
        print("note: ds01d did not say how the command ended (was it restarted?).", file=sys.stderr)
        return 1
    code = answer["result"].get("exit_code")
    return code if isinstance(code, int) else 1


def main(argv: list[str] | None = None) -> int:
    socket_path, project, tty, command = (argv if argv is not None else sys.argv[1:])[:4]
    try:
        return run(socket_path, project, json.loads(command), tty == "tty")
    except E.DS01Error as err:
        out.error(err)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
