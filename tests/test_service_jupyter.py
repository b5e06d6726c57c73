"""A Jupyter server in host mode through ds01d, run by a user who may not use Docker.

The server is a real ``jupyter server`` process of a Unix user made for the test (not in the docker
group) with the ds01 extension configured for ds01d's socket; the test drives it as a browser would:
the REST API, a kernel's websocket, a terminal's websocket and the events stream.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from ds01d_helpers import ds01d_factory_fixture, unix_users_fixture  # noqa: F401  (fixtures)
from tornado.websocket import websocket_connect

from ds01_jupyter.core import DS01


class Server:
    """``jupyter server`` run as ``person``, with ds01 through ``sock`` (and DS01_SOCKET=none: the setting wins)."""

    def __init__(self, person, sock: str):
        self.person, self.token = person, uuid.uuid4().hex
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = person.home / "jupyter-config"
        config.mkdir()
        (config / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"ds01_jupyter": True, "jupyter_server_terminals": True},
                          "root_dir": str(person.home / "workspace"), "port": self.port, "ip": "127.0.0.1",
                          "open_browser": False, "allow_unauthenticated_access": False},
            "IdentityProvider": {"token": self.token},
            "DS01App": {"socket": sock, "scan_interval": 2, "reap_interval": 3},
        }))
        env = person.env(None, JUPYTER_CONFIG_DIR=str(config), SHELL="/bin/sh")
        self.log = open(person.home.parent / "jupyter.log", "wb")
        self.process = subprocess.Popen([person.python, "-m", "jupyter_server"], env=env, cwd=str(person.home),
                                        stdout=self.log, stderr=subprocess.STDOUT, user=person.user.uid,
                                        group=person.user.gid, extra_groups=[])
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("GET", "api/status")
                return
            except (OSError, urllib.error.URLError):
                assert self.process.poll() is None and time.monotonic() < deadline, self.output()
                time.sleep(0.2)

    def call(self, method: str, path: str, body=None, expect: int = 200):
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(f"{self.url}/{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=240) as answer:
                status, text = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read()
        assert status == expect, (method, path, status, text[:2000], self.output()[-3000:])
        return json.loads(text) if text else None

    def ws(self, path: str):
        return websocket_connect(f"ws://127.0.0.1:{self.port}/{path}?token={self.token}")

    def output(self) -> str:
        return (self.person.home.parent / "jupyter.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.log.closed:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture
def serve():
    made = []

    def start(person, sock):
        made.append(Server(person, sock))
        return made[-1]

    yield start
    for server in made:
        server.stop()
        print(server.output()[-6000:])  # shown when the test failed


async def _execute(server: Server, kernel_id: str, code: str) -> str:
    """Run ``code`` on the kernel through the server's websocket; its printed output."""
    conn = await server.ws(f"api/kernels/{kernel_id}/channels")
    try:
        msg_id = uuid.uuid4().hex
        await conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "", "session": uuid.uuid4().hex,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out, done = [], False
        while not done:
            message = json.loads(await asyncio.wait_for(conn.read_message(), 90))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            if kind == "stream":
                out.append(message["content"]["text"])
            elif kind == "error":
                out.append("ERROR " + message["content"]["ename"] + ": " + message["content"]["evalue"])
            elif kind == "status" and message["content"]["execution_state"] == "idle":
                done = True
        return "".join(out)
    finally:
        conn.close()


async def _terminal(server: Server, name: str, line: str, prompt: str, typed: str, wait_for: str) -> str:
    """Type the sidebar's ``line`` into terminal ``name``, then (at the container's ``prompt``) ``typed``; what
    it showed until ``wait_for``."""
    conn = await server.ws(f"terminals/websocket/{name}")
    shown = ""

    async def until(text: str, seconds: float = 60) -> None:
        nonlocal shown
        deadline = time.monotonic() + seconds
        while text not in shown:
            left = deadline - time.monotonic()
            assert left > 0, (text, shown)
            try:
                message = await asyncio.wait_for(conn.read_message(), left)
            except asyncio.TimeoutError:
                raise AssertionError((text, shown)) from None
            assert message is not None, shown
            kind, *rest = json.loads(message)
            if kind == "stdout":
                shown += rest[0]

    try:
        await conn.write_message(json.dumps(["stdin", line + "\n"]))
        await until(prompt)  # typed earlier, the host's shell could read it before the command starts
        await conn.write_message(json.dumps(["stdin", "echo IN-$((6*7))-CONTAINER\n"]))
        await until("IN-42-CONTAINER")
        await conn.write_message(json.dumps(["stdin", typed + "\n"]))
        await until(wait_for)
        return shown
    finally:
        conn.close()


def _events(server: Server, want, seconds: float = 40) -> list[dict]:
    """Read the SSE stream until ``want(event)``; every event read."""
    request = urllib.request.Request(f"{server.url}/ds01/events", headers={"Authorization": f"token {server.token}"})
    seen, deadline = [], time.monotonic() + seconds
    with urllib.request.urlopen(request, timeout=seconds) as stream:
        kind = None
        while time.monotonic() < deadline:
            line = stream.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                seen.append({"event": kind, **json.loads(line[6:])})
                if want(seen[-1]):
                    return seen
    raise AssertionError(seen)


def test_jupyter_server_through_ds01d_without_docker_access(ds01d_factory, unix_users, make_core, project_name,
                                                           serve):
    settings = make_core.settings()
    daemon = ds01d_factory(settings)
    alice, bob = unix_users(), unix_users()
    assert "docker" not in alice.user.groups()
    # Bob's container, made directly: alice must not reach it by any route of her server.
    theirs = project_name()
    core = DS01(settings)
    core.projects.create(bob.user, theirs)
    bobs = core.containers.deploy(bob.user, theirs, gpus=0).container

    server = serve(alice, daemon.socket)
    name = project_name()
    server.call("POST", "ds01/projects", {"name": name}, expect=201)
    deployed = server.call("POST", f"ds01/projects/{name}/deploy?wait=1")
    assert deployed["container"]["running"] and deployed["container"]["name"] == f"{name}._.{alice.name}"
    overview = server.call("GET", "ds01/projects")
    assert overview["user"] == alice.name and [p["name"] for p in overview["projects"]] == [name]
    assert f"ds01-{name}" in server.call("GET", "api/kernelspecs")["kernelspecs"]

    # A kernel in her container, as her, in the notebook's folder under /workspace.
    session = server.call("POST", "api/sessions", {"path": f"{name}/notebooks/probe.ipynb", "type": "notebook",
                                                   "name": "probe.ipynb", "kernel": {"name": f"ds01-{name}"}},
                          expect=201)
    kernel_id = session["kernel"]["id"]

    async def kernel_work():
        out = await _execute(server, kernel_id, "import os, socket\nopen('made.txt', 'w').write('k')\nx = 1\n"
                                                "print(os.getuid(), os.getcwd(), socket.gethostname())")
        assert out.split() == [str(alice.user.uid), "/workspace/notebooks", name], out
        # Interrupt and restart work through ds01d too; the restarted kernel answers, its state gone.
        pending = asyncio.ensure_future(_execute(server, kernel_id, "import time\ntime.sleep(60)"))
        await asyncio.sleep(2)
        await asyncio.get_running_loop().run_in_executor(
            None, server.call, "POST", f"api/kernels/{kernel_id}/interrupt", None, 204
        )
        assert "KeyboardInterrupt" in await asyncio.wait_for(pending, 30)
        await asyncio.get_running_loop().run_in_executor(None, server.call, "POST", f"api/kernels/{kernel_id}/restart")
        assert (await _execute(server, kernel_id, "print('again', 'x' in globals())")).split() == ["again", "False"]

    asyncio.run(kernel_work())
    made = alice.home / "workspace" / name / "notebooks" / "made.txt"
    assert made.read_text() == "k" and made.stat().st_uid == alice.user.uid

    # A terminal into her container: the sidebar's command line typed into a Lab terminal.
    line = server.call("GET", f"ds01/projects/{name}/terminal")["line"]
    assert "ds01_jupyter.service.attach" in line and daemon.socket in line
    terminal = server.call("POST", "api/terminals")["name"]
    shown = asyncio.run(
        _terminal(server, terminal, line, f"{name}:/workspace", "echo U=$(id -u) W=$(pwd) H=$(hostname)", f"H={name}")
    )
    assert f"U={alice.user.uid} W=/workspace H={name}" in shown, shown

    # Bob's container stays out of reach: by the REST routes, by a kernel, by ds01d's kernel operations.
    for path in (f"ds01/projects/{theirs}/terminal", f"ds01/projects/{theirs}/audit"):
        server.call("GET", path, expect=404)
    server.call("POST", f"ds01/projects/{theirs}/stop", expect=404)
    probe = alice.python_as(
        f"from ds01_jupyter.service.client import RemoteDS01\nr = RemoteDS01({daemon.socket!r})\n"
        f"r.kernels.signal(None, {name!r}, {bobs.id!r}, 2, 9)\n"  # her project, his container: nothing happens
        f"for call, args in ((r.containers.running, [{theirs!r}]), (r.kernels.signal, [{theirs!r}, {bobs.id!r}, 2, 9]),"
        f" (r.kernels.attach, [{theirs!r}, 'k1', 'key', [1, 2, 3, 4, 5]])):\n"
        "    try:\n        call(None, *args)\n        print('reached', args)\n"
        "    except Exception as err:\n        print(type(err).__name__)\n")
    assert "reached" not in probe.stdout and probe.stdout.split() == ["ProjectNotFound"] * 3, (
        probe.stdout,
        probe.stderr,
    )
    assert core.containers.status(bob.user, theirs).started_at == bobs.started_at

    # The events stream: a snapshot, then her container's stop, followed through ds01d.
    def stopped(event):
        if event["event"] == "snapshot":
            server.call("POST", f"ds01/projects/{name}/stop", {"stop_processes": True})
        return event["event"] == "container" and event["action"] == "die"

    seen = _events(server, stopped)
    assert seen[0]["event"] == "snapshot" and seen[-1]["project"] == name
    assert all(e.get("project") in (name, None, "") for e in seen[1:])  # bob's never show
    assert server.call("GET", "api/kernels") == []  # its kernel ended with it

    # Every request was hers, from the kernel's word, and no part of the server needed the engine itself; the
    # events she followed are logged when her server lets go of them (ds01d notices at its next tick).
    assert "Traceback" not in server.output(), server.output()[-3000:]
    server.stop()
    deadline = time.monotonic() + 15
    while True:
        records = [r for r in daemon.audit() if r.get("uid") == alice.user.uid]
        ops = {r["op"] for r in records}
        if "follow_events" in ops or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {"containers.deploy", "kernels.attach", "session.attach", "follow_events", "kernels.signal"} <= ops, ops
    assert all(r["user"] == alice.name for r in records)
    core.close()
