"""The core as seen through ds01d: the same calls, results and errors as :class:`~ds01_jupyter.core.DS01`.

:func:`connect` is the one place a front end chooses: ds01d when its socket
is there (or DS01_SOCKET names one), the engine directly otherwise (a
single-user machine, Binder, development). :class:`RemoteDS01` offers the
core's attributes (``projects``, ``containers``, ``guard``...) whose methods
send :data:`.protocol.OPS` requests; the user argument the front end passes is
not sent (ds01d knows who calls), progress lines reach the given callback,
and errors are raised as the core's own DS01Error subclasses.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys

from ..core import DS01, Settings
from ..core import errors as E
from .address import DEFAULT_SOCKET, SOCKET_VARIABLE

#: Values of DS01_SOCKET meaning "talk to the engine directly".
DIRECT = ("none", "off", "docker")


def socket_path(environ=None, setting: str | None = None) -> str | None:
    """The socket to use, or None for the engine directly: ``setting`` (a front end's own option, e.g. the
    server extension's ``socket``) when given, else DS01_SOCKET, else the default socket when it is there."""
    environ = os.environ if environ is None else environ
    choice = (setting or environ.get(SOCKET_VARIABLE) or "").strip()
    if choice.lower() in DIRECT:
        return None
    if choice:
        return choice  # named: used, and a clear error when ds01d does not answer there
    try:
        return DEFAULT_SOCKET if stat.S_ISSOCK(os.stat(DEFAULT_SOCKET).st_mode) else None
    except OSError:
        return None


def connect(environ=None, setting: str | None = None, direct=DS01):
    """The core to use: :class:`RemoteDS01` through ds01d, or ``direct()`` (:class:`DS01` on the engine)."""
    path = socket_path(environ, setting)
    return RemoteDS01(path) if path else direct()


def connection(core) -> dict:
    """Which way ``core`` reaches containers, for ``ds01 status``."""
    if isinstance(core, RemoteDS01):
        return {"via": "ds01d", "socket": core.path}
    from ..core.hijack import engine_address

    return {"via": "docker", "address": engine_address(core.settings.docker_url)}


def connection_line(info: dict) -> str:
    if info["via"] == "ds01d":
        return f"Connected through ds01d ({info['socket']}): it acts for you; you need no Docker access."
    return f"Connected to the Docker engine directly ({info['address']})."


def open_connection(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise E.EngineUnavailable(
            f"ds01d does not answer at {path}: {err.strerror or err}.",
            hint="Ask the admin to start it (systemctl start ds01d); a user who may use Docker can set "
            f"{SOCKET_VARIABLE}=none to use it directly.",
        ) from None
    return sock


class RemoteDS01:
    """A DS01 whose every call is a request to ds01d (see the module's docstring)."""

    def __init__(self, path: str):
        from . import protocol as P  # here: talking to the engine directly needs no wire format (issue 19)

        self.path = path
        self._settings: Settings | None = None
        for name in {op.split(".")[0] for op in P.OPS if "." in op}:  # core.containers, core.guard...
            setattr(self, name, _Part(self, name))

    def __getattr__(self, name: str):
        from . import protocol as P

        if name in P.OPS:
            return _method(self, name)
        raise AttributeError(name)

    @property
    def settings(self) -> Settings:
        """The admin's settings ds01d runs with (what the user's tools show, e.g. the base image)."""
        if self._settings is None:
            self._settings = self.call("service.settings", {})
        return self._settings

    def hello(self) -> dict:
        """Who ds01d takes this caller for (from the kernel), and its version."""
        return self.call("service.hello", {})

    def close(self) -> None:
        pass  # one connection per request: nothing stays open

    def forget_start(self, container_id: str | None = None) -> None:
        """Nothing to forget here: start times are remembered (and forgotten) in ds01d."""

    def call(self, op: str, args: dict, progress=None):
        """Send one request and return its result (``progress`` gets the progress lines)."""
        items = self._exchange(op, args, progress)
        for _ in items:
            pass
        return items.result

    def stream(self, op: str, args: dict):
        """Send one request and yield its items as they come."""
        return iter(self._exchange(op, args, None))

    def _exchange(self, op, args, progress):
        return _Exchange(self.path, op, args, progress)


class _Exchange:
    """One request's answer lines; iterating yields its items, then ``result`` holds the result."""

    def __init__(self, path, op, args, progress):
        self.path, self.op, self.args, self.progress = path, op, args, progress
        self.result = None

    def __iter__(self):
        from . import protocol as P

        sock = open_connection(self.path)
        try:
            sock.sendall(P.dump({"v": P.VERSION, "op": self.op, "args": self.args}))
            reader = sock.makefile("rb")
            while True:
                line = reader.readline(P.MAX_ANSWER)
                if not line:
                    raise E.EngineUnavailable(f"ds01d closed the connection before answering {self.op} (was it "
                                              "restarted?).", hint="Run the command again.")
                message = json.loads(line)
                if "progress" in message:
                    if self.progress:
                        self.progress(message["progress"])
                elif "item" in message:
                    yield P.decode(message["item"])
                elif "error" in message:
                    raise P.error_from(message["error"])
                elif "result" in message:
                    self.result = P.decode(message["result"])
                    return
        finally:
            sock.close()


class _Part:
    """``core.containers`` and the like: their methods become requests."""

    def __init__(self, remote: RemoteDS01, name: str):
        self._remote, self._name = remote, name

    def __getattr__(self, method: str):
        from . import protocol as P

        name = f"{self._name}.{method}"
        if name == "containers.interactive":
            return self._interactive
        if name == "kernels.attach":
            return self._attach_kernel
        if name in P.OPS:
            return _method(self._remote, name)
        if method.startswith("_"):
            raise AttributeError(method)
        return _missing(name)

    def _interactive(self, user, project: str, command: list[str], tty: bool) -> list[str]:
        """The argv of a client attached to ``command`` through ds01d (see :mod:`.attach`); refused as the core
        refuses it while the container is not running, so a front end answers the same error either way."""
        self._remote.call("containers.running", {"name": project})
        # -P: the current folder is not put first on the module path (the user's own files, but tidier).
        safe = ["-P"] if sys.version_info >= (3, 11) else []
        return [sys.executable, *safe, "-m", "ds01_jupyter.service.attach", self._remote.path, project,
                "tty" if tty else "notty", json.dumps(list(command))]


    def _attach_kernel(self, user, project: str, kernel_id: str, key: str, ports: list[int], extra=(),
                       workdir: str = "/workspace", env=(), signature_scheme: str = "hmac-sha256"):
        """What ``core.kernels.attach`` gives, from ds01d: (the kernel's container, ip and pid, its connection)."""
        from .attach import open_session

        args = {"name": project, "kernel_id": kernel_id, "key": key, "ports": list(ports), "extra": list(extra),
                "workdir": workdir, "env": list(env), "signature_scheme": signature_scheme}
        control, info, stream = open_session(self._remote.path, "kernels.attach", args)
        control.sock.close()  # the kernel's end is its connection's end: nothing more to ask ds01d
        return info, stream


def _missing(name: str):
    """A core call the operation table lacks (a verb newer than ds01d's list): a clear error, not a traceback."""

    def call(*args, **kwargs):
        raise E.DS01Error(
            f"This command needs {name}, which ds01d does not offer yet.",
            hint=f"Ask the admin; a user who may use Docker can run it directly with {SOCKET_VARIABLE}=none.",
        )

    return call


def _method(remote: RemoteDS01, name: str):
    from . import protocol as P

    op = P.OPS[name]
    order = [p.name for p in op.params] + list(op.dropped)

    def call(*args, progress=None, **kwargs):
        if op.for_user:
            args = args[1:]  # the user: ds01d takes the caller from the kernel
        if len(args) > len(order):
            raise TypeError(f"{name} takes at most {len(order)} arguments")
        sent = dict(zip(order, args))
        for key, value in kwargs.items():
            if key not in order:
                raise TypeError(f"{name} got an unexpected argument {key!r}")
            sent[key] = value
        sent = {k: v for k, v in sent.items() if k not in op.dropped}
        if op.stream:
            return remote.stream(name, sent)
        return remote.call(name, sent, progress)

    call.__name__ = name
    return call
