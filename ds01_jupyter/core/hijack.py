"""Start an engine exec and keep its connection: the raw stream of the command's stdin and output.

docker-py's ``exec_start(socket=True)`` reads the answer's head through a
buffered reader, which may swallow the command's first bytes; here the head is
read byte by byte, so the connection handed on (to a local pump, or to another
process with SCM_RIGHTS) starts exactly where the command's stream does. After
the upgrade the engine reads nothing but the command's stdin on it: the holder
of this connection can do nothing else with the engine.
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlparse

from .errors import EngineError, EngineUnavailable

#: The longest answer head accepted from the engine.
MAX_HEAD = 16 * 1024


def engine_address(base_url: str | None) -> str:
    """The engine's URL as docker-py resolves it: the setting, DOCKER_HOST, or the local socket."""
    return base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(url: str, timeout: float) -> socket.socket:
    """A connection to the engine at ``url`` (its unix socket, or plain TCP); EngineUnavailable otherwise."""
    parsed = urlparse(url)
    if parsed.scheme in ("unix", "http+unix", ""):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = parsed.path or url
    elif parsed.scheme in ("tcp", "http"):
        sock = socket.create_connection((parsed.hostname, parsed.port or 2375), timeout=timeout)
        return sock
    else:
        raise EngineUnavailable(f"An attached command needs a local or plain-TCP engine, not {url}.")
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as err:
        sock.close()
        raise EngineUnavailable(f"Cannot reach the Docker engine at {url}: {err.strerror or err}.") from None
    return sock


def start_attached(url: str, api_version: str, exec_id: str, tty: bool, timeout: float = 30.0) -> socket.socket:
    """Start exec ``exec_id`` and return its upgraded connection (blocking, no timeout)."""
    sock = connect(url, timeout)
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    head = (
        f"POST /v{api_version}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
        "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        sock.sendall(head + body)
        answer = b""
        while not answer.endswith(b"\r\n\r\n"):
            byte = sock.recv(1)  # one at a time: never read into the command's stream
            if not byte or len(answer) > MAX_HEAD:
                raise EngineError("The Docker engine ended the connection while starting the command.")
            answer += byte
        status = answer.split(b"\r\n", 1)[0].split(b" ")
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        if code not in (101, 200):
            sock.settimeout(2)
            try:
                reason = sock.recv(4096).decode(errors="replace").strip()
            except OSError:
                reason = ""
            raise EngineError(f"Docker could not start the command (HTTP {code}): {reason[:300] or 'no reason given'}.")
    except OSError as err:
        sock.close()
        raise EngineUnavailable(f"Lost the Docker engine while starting the command: {err}.") from None
    except EngineError:
        sock.close()
        raise
    sock.settimeout(None)
    return sock
