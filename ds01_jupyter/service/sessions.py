"""Interactive commands through ds01d: the engine's connection handed to the caller.

ds01d starts the command as the caller (their uid:gid, in /workspace of their
own running container: the core's checks), then passes the upgraded Docker
connection to the caller with SCM_RIGHTS and keeps only the control
connection: terminal resizes and, at the end, the exit code. The passed
connection carries nothing but that command's stdin and output, so holding it
gives no other access to the engine, and the bytes never pass through ds01d.
"""

from __future__ import annotations

import socket

from ..core import errors as E
from . import protocol as P
from .server import Reply, read_line

#: Bytes of one control line (a resize, the wait).
MAX_CONTROL = 4096


def attach(service, conn: socket.socket, reply: Reply, user, args: dict, buffer: bytearray) -> dict:
    """Serve one interactive command; what the audit log records of it."""
    core = service.core
    command = args["command"] or ["/bin/bash"]
    tty = args["tty"]
    with service.operation(user):
        exec_id, stream = core.containers.attach(user, args["name"], command, tty)
    try:
        conn.settimeout(service.config.send_timeout)
        socket.send_fds(conn, [P.dump({"attached": {"tty": tty}})], [stream.fileno()])
    except OSError:
        reply.gone = True
        return {"client_gone": True}
    finally:
        stream.close()  # ours only: the command's stream lives on in the caller's copy
    if tty and args.get("size"):
        _resize(core, exec_id, args["size"])
    while True:
        try:
            line = read_line(conn, MAX_CONTROL, None, buffer)
        except (E.DS01Error, OSError):
            line = None
        if line is None:  # the caller left; the command ends as its stdin closes
            return {"exit_code": None, "client_gone": True}
        message = _control(line)
        if "resize" in message and tty:
            _resize(core, exec_id, message["resize"])
        elif message.get("wait"):
            code = core.engine.exec_exit_code(exec_id)
            reply.send({"result": {"exit_code": code}})
            return {"exit_code": code}


def _control(line: bytes) -> dict:
    import json

    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _resize(core, exec_id: str, size) -> None:
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10000 for v in size)):
        return
    try:
        core.engine.exec_resize(exec_id, size[0], size[1])
    except E.DS01Error:
        pass  # the command may have ended already: a resize is a courtesy


def attach_kernel(service, conn: socket.socket, reply: Reply, user, args: dict, buffer: bytearray) -> dict:
    """Start a kernel in the caller's running container (``core.kernels.attach``: as them, our launcher,
    their workspace) and hand its connection over; what the audit log records of it."""
    kernels = service.core.kernels
    with service.operation(user):  # its start works the engine (files, the exec, its pid read off the stream)
        info, stream = kernels.attach(user, args["name"], args["kernel_id"], args["key"], args["ports"],
                                      args["extra"], args["workdir"], args["env"], args["signature_scheme"])
    try:
        conn.settimeout(service.config.send_timeout)
        socket.send_fds(conn, [P.dump({"attached": info})], [stream.fileno()])
    except OSError:  # the caller left before it got the kernel: no one could reach it, so it goes
        reply.gone = True
        kernels.signal(user, args["name"], info["container"], info["pid"], 9)
        kernels.remove_files(user, args["name"], info["container"], args["kernel_id"])
        return {"client_gone": True}
    finally:
        stream.close()  # ours only: the kernel's connection lives on in the caller's copy
    return {"container": info["container"][:12], "pid": info["pid"]}
