"""ds01d: serve the core on a unix socket, for whoever the kernel says is calling.

Each connection is one request. The caller's uid comes from ``SO_PEERCRED``
(fixed by the kernel when they connected), their account and home from the
system's database; the request only names an operation of
:data:`.protocol.OPS` and its arguments. Limits (connections, running
operations, per user and in all) and deadlines keep a slow, silent or greedy
caller from holding up the others; an operation whose caller goes away still
runs to its end, so nothing is left half done.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pwd
import signal
import socket
import stat
import struct
import sys
import threading
import time
from pathlib import Path

from .. import __version__
from ..core import DS01, Settings, User
from ..core import errors as E
from ..core.allocator import GpuAllocator
from . import protocol as P
from .auditlog import AuditLog
from .config import ServiceConfig, load

log = logging.getLogger("ds01_jupyter.ds01d")

#: Ancillary room for a few descriptors: any a caller sends are closed and the request refused.
_ANCILLARY = socket.CMSG_SPACE(16 * struct.calcsize("i"))


class SerialAllocator(GpuAllocator):
    """GPU allocation one at a time inside ds01d (a thread lock), then host-wide (the file lock)."""

    _serial = threading.Lock()

    def locked(self, progress=None):
        import contextlib

        @contextlib.contextmanager
        def both():
            if not self._serial.acquire(timeout=self.timeout):
                raise E.StateConflict(f"Gave up after {self.timeout:g} s waiting for another GPU allocation in ds01d.",
                                      hint="Try again in a moment.")
            try:
                with GpuAllocator.locked(self, progress):
                    yield
            finally:
                self._serial.release()

        return both()


def peer(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected, from the kernel."""
    data = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


def caller(uid: int) -> User:
    """The account of ``uid``, with the home the system's database gives it; refused clearly without one."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        raise E.Forbidden(f"uid {uid} has no account on this host: ds01d acts only for users it knows.",
                          hint="Ask the admin to create your account.") from None
    home = Path(entry.pw_dir)
    try:
        st = os.stat(home)
    except OSError:
        raise E.Forbidden(f"Your home {home} does not exist, so you have no workspace here.",
                          hint="Ask the admin to create your home folder.") from None
    if not stat.S_ISDIR(st.st_mode) or (uid != 0 and st.st_uid != uid):
        raise E.Forbidden(f"Your home {home} is not a folder of yours, so ds01d keeps no workspace there.",
                          hint="Ask the admin to fix its owner.")
    return User(entry.pw_name, uid, entry.pw_gid, home)


class Reply:
    """The caller's end: lines sent with a deadline; a caller that does not read or left counts as gone, and
    later lines are dropped (the operation goes on)."""

    def __init__(self, conn: socket.socket, timeout: float):
        self.conn, self.timeout, self.gone = conn, timeout, False

    def send(self, message: dict) -> bool:
        if self.gone:
            return False
        try:
            self.conn.settimeout(self.timeout)
            self.conn.sendall(P.dump(message))
            return True
        except (OSError, ValueError):
            self.gone = True
            return False

    def progress(self, line: str) -> None:
        self.send({"progress": str(line)})


def read_line(conn: socket.socket, limit: int, deadline: float | None, buffer: bytearray) -> bytes | None:
    """One line from the caller (None when they closed first); descriptors passed along are closed and refused."""
    while b"\n" not in buffer:
        if len(buffer) > limit:
            raise E.InvalidRequest(f"A request line may have at most {limit} bytes.")
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise E.InvalidRequest("No complete request arrived in time; ds01d hung up.")
            conn.settimeout(left)
        else:
            conn.settimeout(None)
        try:
            data, ancillary, flags, _ = conn.recvmsg(65536, _ANCILLARY)
        except TimeoutError:
            raise E.InvalidRequest("No complete request arrived in time; ds01d hung up.") from None
        passed = False
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                passed = True
                usable = len(payload) - len(payload) % struct.calcsize("i")
                for fd in struct.unpack(f"{usable // 4}i", payload[:usable]):
                    os.close(fd)
        if passed or flags & socket.MSG_CTRUNC:
            raise E.InvalidRequest("ds01d accepts no file descriptors from callers.")
        if not data:
            return None
        buffer.extend(data)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    if len(line) > limit:
        raise E.InvalidRequest(f"A request line may have at most {limit} bytes.")
    return line


class Service:
    def __init__(self, settings: Settings, config: ServiceConfig, core: DS01 | None = None):
        self.settings, self.config = settings, config
        self.core = core or DS01(settings)
        # Set before the containers are wired: every deploy and start in this process allocates one at a time.
        self.core.allocator = SerialAllocator(self.core.engine, settings.lock_dir, timeout=settings.lock_timeout)
        self.audit = AuditLog(config.log_dir)
        self._lock = threading.Lock()
        self._connections: dict[int, int] = {}  # uid -> open connections
        self._operations: dict[int, int] = {}  # uid -> running operations
        self._slots = threading.BoundedSemaphore(config.max_operations)
        self._stopping = threading.Event()
        #: Requests read and not yet in an operation nor ended (caller looked up, arguments checked): a stop
        #: waits for them as for operations, which they may be about to begin.
        self._pending = 0
        self._local = threading.local()
        self.listener: socket.socket | None = None

    # -- the socket ------------------------------------------------------------------------------
    def bind(self) -> socket.socket:
        """Listen on the configured socket, in a folder only root (ds01d's owner) may change."""
        path = Path(self.config.socket)
        folder = path.parent
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise E.ConfigError(f"The socket's folder {folder} must be a folder of ds01d's user that no one else may "
                                "write to (someone could replace the socket).", hint=f"chmod 755 {folder}")
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # left by an earlier ds01d
            else:
                raise E.ConfigError(f"{path} exists and is not a socket; ds01d does not replace it.")
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        os.chmod(path, 0o666)  # everyone may connect: who they are is the kernel's answer, not the socket's mode
        listener.listen(128)
        listener.settimeout(0.5)
        self.listener = listener
        return listener

    def serve(self) -> None:
        listener = self.listener or self.bind()
        log.info("ds01d %s serving %s", __version__, self.config.socket)
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as err:
                if self._stopping.is_set():
                    break
                log.error("accept failed: %s", err)
                time.sleep(0.1)  # e.g. out of descriptors: let running requests finish
                continue
            self._admit(conn)
        listener.close()

    def stop(self, grace: float | None = None) -> None:
        """Stop taking requests, let running operations finish (up to ``grace``), remove the socket."""
        self._stopping.set()
        deadline = time.monotonic() + (self.config.shutdown_grace if grace is None else grace)
        while time.monotonic() < deadline:
            with self._lock:
                if not any(self._operations.values()) and not self._pending:
                    break
            time.sleep(0.1)
        try:
            if stat.S_ISSOCK(os.lstat(self.config.socket).st_mode):
                os.unlink(self.config.socket)
        except OSError:
            pass

    # -- one connection -----------------------------------------------------------------------------
    def _admit(self, conn: socket.socket) -> None:
        try:
            pid, uid, gid = peer(conn)
        except OSError:
            conn.close()
            return
        with self._lock:
            total = sum(self._connections.values())
            mine = self._connections.get(uid, 0)
            refusal = None
            if total >= self.config.max_connections:
                refusal = E.LimitExceeded("ds01d is at its limit of connections; try again in a moment.")
            elif mine >= self.config.max_connections_per_user:
                refusal = E.LimitExceeded(f"You have {mine} connections to ds01d open, its limit per user.",
                                          hint="Close some (followed logs, shells) and try again.")
            else:
                self._connections[uid] = mine + 1
        if refusal is not None:
            Reply(conn, 0.2).send({"error": P.error_data(refusal)})
            conn.close()
            return
        thread = threading.Thread(target=self._handle, args=(conn, pid, uid, gid), daemon=True,
                                  name=f"ds01d-uid{uid}")
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a process limit): refused, and counted no more
            with self._lock:
                self._connections[uid] -= 1
                if not self._connections[uid]:
                    del self._connections[uid]
            Reply(conn, 0.2).send({"error": P.error_data(E.LimitExceeded("ds01d is at its limit of threads; "
                                                                          "try again in a moment."))})
            conn.close()

    def _handle(self, conn: socket.socket, pid: int, uid: int, gid: int) -> None:
        started = time.monotonic()
        who = {"uid": uid, "pid": pid}
        reply = Reply(conn, self.config.send_timeout)
        op_name, args, outcome, extra = "?", None, "ok", {}
        try:
            buffer = bytearray()
            line = read_line(conn, P.MAX_REQUEST, started + self.config.request_timeout, buffer)
            if line is None:
                return
            with self._lock:  # a request now (a silent connection holds up no stop): it may begin an operation
                self._pending += 1
                self._local.pending = True
            op_name, raw = P.parse_request(line)
            op_name = op_name if isinstance(op_name, str) else repr(op_name)[:80]
            user = caller(uid)
            who["user"] = user.name
            if os.geteuid() != 0 and uid != os.geteuid():
                raise E.Forbidden("This ds01d does not run as root: it acts only for its own user.",
                                  hint="Ask the admin to run ds01d as root (the systemd unit does).")
            op, args = P.check_args(op_name, raw)
            if op_name == "session.attach":
                from .sessions import attach

                extra = attach(self, conn, reply, user, args, buffer)
            elif op_name == "kernels.attach":
                from .sessions import attach_kernel

                extra = attach_kernel(self, conn, reply, user, args, buffer)
            else:
                self._operate(reply, user, op_name, op, args)
        except E.DS01Error as err:
            outcome = "error"
            extra = {"error": type(err).__name__, "message": err.message}
            reply.send({"error": P.error_data(err)})
        finally:
            self._settled()
            with self._lock:
                self._connections[uid] -= 1
                if not self._connections[uid]:
                    del self._connections[uid]
            try:
                conn.close()
            except OSError:
                pass
            if op_name != "?" or outcome != "ok":
                self.audit.write(
                    who, op_name, P.audited(op_name, args), outcome, started, client_gone=reply.gone or None, **extra
                )

    @contextlib.contextmanager
    def operation(self, user: User):
        """One of the caller's running operations (max_operations_per_user) and one of ds01d's slots
        (max_operations, waited for up to queue_timeout): held while the engine works for them. A session's
        start (a kernel's: files copied, its pid awaited) holds one too, its hand-over none."""
        with self._lock:
            if self._stopping.is_set():
                raise E.EngineUnavailable("ds01d is stopping; nothing was done.", hint="Try again in a moment.")
            if self._operations.get(user.uid, 0) >= self.config.max_operations_per_user:
                raise E.LimitExceeded(f"You already have {self.config.max_operations_per_user} ds01 operations "
                                      "running, the limit per user.", hint="Wait for one to finish.")
            self._operations[user.uid] = self._operations.get(user.uid, 0) + 1
        self._settled()  # counted as an operation from here
        try:
            if not self._slots.acquire(timeout=self.config.queue_timeout):
                raise E.LimitExceeded("ds01d is busy with other users' operations.", hint="Try again in a moment.")
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._operations[user.uid] -= 1

    def _settled(self) -> None:
        """This thread's request is no longer pending: in an operation, a stream, or ended."""
        if getattr(self._local, "pending", False):
            self._local.pending = False
            with self._lock:
                self._pending -= 1

    def _operate(self, reply: Reply, user: User, name: str, op: P.Op, args: dict) -> None:
        if op.stream:  # a followed log may last for hours: it holds a connection (capped per user), not a slot
            self._settled()  # nor does a stop wait for it
            self._call(reply, user, name, op, args)
            reply.send({"result": None})
            return
        with self.operation(user):
            result = self._call(reply, user, name, op, args)
        reply.send({"result": P.encode(result)})

    def _call(self, reply: Reply, user: User, name: str, op: P.Op, args: dict):
        if name == "service.hello":
            return {"user": user.name, "uid": user.uid, "gid": user.gid, "home": str(user.home),
                    "version": __version__, "socket": self.config.socket}
        if name == "service.settings":
            return self.settings
        if name == "images.ensure_base_image" and args.get("rebuild") and user.uid != 0:
            raise E.Forbidden("Only the admin may rebuild the host's base image.",
                              hint="`ds01 base-image` without --rebuild makes sure it exists.")
        owner, _, method = name.rpartition(".")
        target = getattr(getattr(self.core, owner) if owner else self.core, method)
        kwargs = dict(args)  # the audit log keeps args as asked
        positional = [kwargs.pop(p.name) for p in op.params if p.positional]
        if op.progress:
            kwargs["progress"] = reply.progress
        if op.for_user:
            positional.insert(0, user)

        def call():
            return target(*positional, **kwargs)

        try:
            if op.stream:
                for item in call():
                    if not reply.send({"item": P.encode(item)}):
                        break
                return None
            return call()
        except E.DS01Error:
            raise
        except OSError as err:  # as the command line words them
            raise (E.Forbidden if isinstance(err, PermissionError) else E.DS01Error)(
                f"{err.strerror or err}" + (f": {err.filename}" if err.filename else ""),
                hint="ds01 works only in your own workspace and files; check the path and its owner.") from None
        except Exception:  # our own fault: the admin's log has the details, the caller a clear message
            log.exception("%s for %s failed", name, user.name)
            raise E.DS01Error(f"ds01d failed while doing {name}.",
                              hint="The admin finds the details in ds01d's log (journalctl -u ds01d).") from None


def unit_text() -> str:
    """The shipped systemd unit, its ExecStart naming this installation's ds01d."""
    from importlib import resources

    exe = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "ds01d" else None
    start = str(exe) if exe else f"{sys.executable} -m ds01_jupyter.service"
    return resources.files("ds01_jupyter.service").joinpath("ds01d.service").read_text().replace("@DS01D@", start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ds01d", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="the admin's settings file (default: /etc/ds01-jupyter/ds01d.yaml if present)")
    parser.add_argument("--socket", help="the socket to serve (default: /run/ds01/ds01.sock)")
    parser.add_argument("--log-dir", help="folder of the audit log (default: /var/log/ds01)")
    parser.add_argument("--unit", action="store_true", help="print the systemd unit for this ds01d and exit")
    args = parser.parse_args(argv)
    if args.unit:
        print(unit_text(), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="ds01d: %(levelname)s %(message)s", stream=sys.stderr)
    service: Service | None = None

    def stop(signum, frame):
        if service is None:  # told to stop while starting: nothing served yet, nothing to wait for
            raise SystemExit(0)
        threading.Thread(target=service.stop, daemon=True).start()

    # Before the socket exists: a stop as soon as it answers (systemd, a test) is a stop, not the default death.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        settings, config = load(args.config, socket=args.socket, log_dir=args.log_dir)
        service = Service(settings, config)
        service.bind()
    except (E.DS01Error, OSError) as err:
        print(f"ds01d: {err}", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        log.warning("not running as root: ds01d acts only for its own user")
    service.serve()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
