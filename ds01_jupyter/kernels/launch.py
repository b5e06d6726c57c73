"""The argv of ds01 kernel specs: a kernel in the project's container for clients that ignore provisioners.

Jupyter clients that know kernel provisioners (jupyter_client 7+: Jupyter
Server, nbconvert, ``KernelManager``) use ``ds01-container`` and never run
this. A client that runs the spec's ``argv`` itself (an old jupyter_client,
an editor's own launcher) runs::

    python -m ds01_jupyter.kernels.launch --project P -f CONNECTION_FILE

which starts the same kernel inside ``P``'s container, in the client's folder
mapped into /workspace, and relays the connection file's five ports from the
host to the kernel on the container's address. This process stands for the
kernel: SIGINT interrupts it, SIGTERM/SIGHUP end it, and it exits when the
kernel does; the kernel ends with it even when it is killed (it holds the
kernel's connection: see hook.py, end_with_client). When the kernel cannot run
in the container (not deployed, stopped), it exits 1 with a message saying what
to do, and no kernel runs on the host under the container's name. It works
through ds01d as directly (the core's kernel calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

from ..core import DS01, Settings, User
from ..core.errors import DS01Error
from ..service.client import connect
from . import container_kernel
from .container_kernel import PORTS, Output

PROG = "python -m ds01_jupyter.kernels.launch"


class Relay:
    """Listen where the client expects the kernel; forward each connection to the kernel in the container."""

    def __init__(self, core: DS01, user: User, project: str, info: dict, extra: list[str], poll_interval: float = 1.0):
        self.core = core
        self.user = user
        self.project = project
        self.info = info
        self.extra = extra
        self.poll_interval = poll_interval
        self.kernel_id = str(uuid.uuid4())
        self.container_id = ""
        self.target = ""
        self.pid = 0
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._ending_signal = 0
        self._output: Output | None = None

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def run(self) -> int:
        # Handlers first: a client may end this process while the kernel is being started, and the kernel
        # must not then run on in the container without anyone to end it.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._forward, signal.SIGINT)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self._end, signum)
        # "Deploy first" before anything listens; the container and its address come with the kernel's start.
        project, _record = await self._blocking(container_kernel.running_container, self.core, self.user,
                                                self.project)
        workdir, note = container_kernel.workspace_path(None, project.path)
        if note:
            print(f"ds01: {note}", file=sys.stderr)
        servers = []
        try:
            for key in PORTS:
                port = int(self.info[key])
                servers.append(
                    await asyncio.start_server(self._forwarder(port), self.info.get("ip") or "127.0.0.1", port)
                )
            if self._stop.is_set():
                return 0  # ended before the kernel was started: nothing to start, nothing left behind
            started, stream = await self._blocking(
                self.core.kernels.attach, self.user, self.project, self.kernel_id, self.info["key"],
                [self.info[k] for k in PORTS], self.extra, workdir,
                container_kernel.client_env(os.environ, tied_to=self.core),
                self.info.get("signature_scheme") or "hmac-sha256",
            )
            self.container_id, self.target, self.pid = started["container"], started["ip"], int(started["pid"])
            self._output = Output(stream)
            self._output.start()
            self._started.set()
            await self._watch()
        finally:
            self._stop.set()
            for server in servers:
                server.close()
            await self._finish()
        return 0

    def _forwarder(self, port: int):
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Hold the client's connection until the kernel listens: what it sent meanwhile (a heartbeat,
            # kernel_info) waits in the socket and is delivered, instead of lost with a closed connection.
            try:
                await self._started.wait()
                for _ in range(600):
                    if self._stop.is_set():
                        break  # the kernel ended: nothing to connect to any more
                    try:
                        k_reader, k_writer = await asyncio.open_connection(self.target, port)
                    except OSError:
                        await asyncio.sleep(0.1)
                        continue
                    await asyncio.gather(_pipe(reader, k_writer), _pipe(k_reader, writer))
                    return
            except asyncio.CancelledError:
                pass  # this process is ending: its connections end with it
            writer.close()

        return accept

    def _forward(self, signum: int) -> None:
        if self.pid:
            asyncio.ensure_future(self._signal(signum))

    def _end(self, signum: int) -> None:
        self._ending_signal = signum
        self._stop.set()

    async def _signal(self, signum: int) -> None:
        try:
            await self._blocking(self.core.kernels.signal, self.user, self.project, self.container_id, self.pid,
                                 signum)
        except DS01Error as err:
            print(f"ds01: could not signal the kernel: {err}", file=sys.stderr)

    async def _alive(self) -> bool:
        try:
            return await self._blocking(self.core.kernels.alive, self.user, self.project, self.container_id,
                                        self.pid)
        except DS01Error:
            return False

    #: Every this many intervals the kernel's process is looked at too: a process the kernel started may hold
    #: its output, and so its connection, open after the kernel itself ended.
    LOOK_EVERY = 10

    async def _watch(self) -> None:
        """Until this process is told to end, or the kernel ended (its connection's end, or its process')."""
        tick = 0
        while not self._stop.is_set() and not self._output.ended.is_set():
            tick += 1
            if tick % self.LOOK_EVERY == 0 and not await self._alive():
                return
            try:
                await asyncio.wait_for(self._stop.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass

    async def _finish(self) -> None:
        """End the kernel if it still runs (TERM, then KILL), and remove its files from the container."""
        if not self.pid:
            return
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not await self._alive():
                break
            await self._signal(signum)
            for _ in range(30):
                await asyncio.sleep(0.1)
                if not await self._alive():
                    break
        try:
            await self._blocking(self.core.kernels.remove_files, self.user, self.project, self.container_id,
                                 self.kernel_id)
        except DS01Error:
            pass  # the container went away: its files with it
        self._output.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # either side went away: the other is closed below
    finally:
        writer.close()


def _fail(message: str) -> int:
    print(f"ds01 kernel: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the kernel of ``--project`` in its container for the connection file ``-f``.

    Returns 1 with a message if it cannot."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="the project whose container runs the kernel")
    parser.add_argument("-f", dest="connection_file", required=True, help="the client's connection file")
    args, extra = parser.parse_known_args(argv)
    try:
        info = json.loads(Path(args.connection_file).read_text())
    except (OSError, ValueError) as err:
        return _fail(f"cannot read the connection file {args.connection_file}: {err}")
    if info.get("transport", "tcp") != "tcp" or any(not isinstance(info.get(key), int) for key in PORTS):
        return _fail("the connection file must use TCP with five ports; a kernel in a container cannot use IPC.")
    try:
        core = connect(direct=lambda: DS01(Settings.from_env(interface="jupyter")))
        try:
            return asyncio.run(Relay(core, User.current(), args.project, info, extra).run())
        finally:
            core.close()
    except DS01Error as err:
        return _fail(f"{err} No kernel was started on this host instead.")
    except OSError as err:  # e.g. a port of the connection file already taken on this host
        return _fail(f"{err}. No kernel was started on this host instead.")


if __name__ == "__main__":
    sys.exit(main())
