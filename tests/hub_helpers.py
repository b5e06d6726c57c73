"""What the hub's end-to-end tests share: configurable-http-proxy, the wheels folder and single-user image
made the documented way (once per session, reused), a hub process driven through its REST API, and a
kernel driven through the server's websocket.

A test module imports the fixtures it uses: ``from hub_helpers import chp_fixture  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from conftest import BASE_IMAGE, REQUIRE_DOCKER, run_dir

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
#: The example's image name: made once (and rebuilt only when the wheels change), shared by every hub test.
SINGLEUSER_IMAGE = "ds01/singleuser:latest"
_made: dict = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", name="chp")
def chp_fixture():
    path = REPO / ".ci/node/node_modules/.bin/configurable-http-proxy"
    found = str(path) if path.exists() else shutil.which("configurable-http-proxy")
    if not found:
        if REQUIRE_DOCKER:
            pytest.fail("configurable-http-proxy is missing: run .ci/setup-host")
        pytest.skip("configurable-http-proxy is not installed (.ci/setup-host installs it)")
    return found


def ds01_hub(*argv: str, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Run the admin's ``ds01-hub`` command as the README does."""
    exe = VENV_BIN / "ds01-hub"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ds01_jupyter.hub.admin"]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="session", name="singleuser")
def singleuser_fixture(engine, tmp_path_factory):
    """The README's steps for the image: a wheel built from this checkout, the wheels folder filled by
    ``ds01-hub wheels --wheel``, the image built by ``ds01-hub image``. The folder outlives the session
    (pip and Docker reuse what did not change); a lock keeps two sessions from filling it at once, and the
    workers of one run (pytest-xdist) fill it once: a second filling would replace the wheel under the first
    worker's running hub, which then builds its image again mid-test."""
    import jupyterhub

    if _made:  # the fixture is imported by several modules: each copy is its own fixture
        return _made
    run = run_dir(tmp_path_factory)
    shared = run.parent
    wheels = shared / f"ds01-hub-wheels-{jupyterhub.__version__}"
    this_run = f"{run}:{run.stat().st_ino}"
    with open(shared / "ds01-hub-wheels.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = shared / "ds01-hub-wheels.run"
        try:
            made = json.loads(marker.read_text())
        except (OSError, ValueError):
            made = {}
        if made.get("run") != this_run or not Path(made.get("wheel", "")).is_file():
            dist = tmp_path_factory.mktemp("dist")
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
                           check=True, capture_output=True)
            wheel = next(dist.glob("ds01_jupyter-*.whl"))
            config = tmp_path_factory.mktemp("image-config") / "jupyterhub_config.py"
            config.write_text(f'c.DS01Spawner.base_image = "{BASE_IMAGE}"\n'
                              f'c.DS01Spawner.singleuser_image = "{SINGLEUSER_IMAGE}"\n'
                              f'c.DS01Spawner.singleuser_wheels = "{wheels}"\n')
            for argv in (["wheels", "-f", str(config), "--wheel", str(wheel)], ["image", "-f", str(config)]):
                done = ds01_hub(*argv)
                assert done.returncode == 0, f"ds01-hub {argv[0]}:\n{done.stdout}\n{done.stderr[-3000:]}"
            made = {"run": this_run, "wheel": str(wheel)}
            marker.write_text(json.dumps(made))
    _made.update(image=SINGLEUSER_IMAGE, wheels=str(wheels), wheel=made["wheel"])
    return _made


class Hub:
    """A jupyterhub process started from a config file, driven through the REST API as a service."""

    def __init__(self, folder: Path, config: Path, url: str, token: str, verify=True, env=None):
        self.tmp, self.config, self.url, self.token = folder, config, url, token
        self.env = env
        self.proc = None
        self.session = requests.Session()
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE (when set) wins over the hub's own certificate
        self.session.verify = verify
        self.session.headers["Authorization"] = f"token {token}"

    def start(self, timeout: float = 90):
        with open(self.tmp / "hub.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.config)],
                cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if self.session.get(f"{self.url}/hub/api/", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer on a busy host
                pass
            time.sleep(0.3)
        raise AssertionError("the hub did not come up:\n" + self.log())

    def stop(self, group: bool = True) -> float:
        """SIGTERM to the hub (and, with ``group``, to the proxy and services it started); seconds it took."""
        started = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            if group:
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:
                self.proc.send_signal(signal.SIGTERM)  # as systemd's KillMode=mixed does
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self.session.close()  # its pooled (TLS) connections, not left to the collector
        return time.monotonic() - started

    def log(self) -> str:
        return (self.tmp / "hub.log").read_text(errors="replace")[-6000:]

    def api(self, method, path, **kwargs):
        return self.session.request(method, f"{self.url}/hub/api/{path}", timeout=30, **kwargs)

    def spawn(self, user, server, options) -> list[dict]:
        """Start a named server and follow its progress stream to the end; return the events."""
        assert self.api("POST", f"users/{user}").status_code in (201, 409)
        response = self.api("POST", f"users/{user}/servers/{server}", json=options)
        if response.status_code >= 400:
            return [{"failed": True, "message": response.json().get("message", ""), "status": response.status_code}]
        events = []
        with self.session.get(f"{self.url}/hub/api/users/{user}/servers/{server}/progress", stream=True,
                              timeout=300) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        return events

    def server(self, user, server) -> dict | None:
        return self.api("GET", f"users/{user}").json()["servers"].get(server)

    def delete(self, user, server):
        response = self.api("DELETE", f"users/{user}/servers/{server}")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + 90
        while self.server(user, server) is not None:
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.3)

    def user_get(self, user, server, path, **kwargs):
        return self.session.get(f"{self.url}/user/{user}/{server}/{path}", timeout=30, **kwargs)


def run_in_kernel(hub: Hub, user: str, server: str, code: str, timeout: float = 60) -> str:
    """Start a kernel on the server, run ``code`` through the kernel websocket, return its stdout; shut it down."""
    base = f"{hub.url}/user/{user}/{server}/api/kernels"
    started = hub.session.post(base, json={"name": "python3"}, timeout=30)
    assert started.status_code == 201, started.text
    kernel = started.json()["id"]
    try:
        return asyncio.run(_execute(hub, f"{base}/{kernel}/channels".replace("http", "ws", 1), code, timeout))
    finally:
        hub.session.delete(f"{base}/{kernel}", timeout=30)


async def _execute(hub: Hub, url: str, code: str, timeout: float) -> str:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    context = None
    if url.startswith("wss:"):
        context = ssl.create_default_context(cafile=hub.session.verify if isinstance(hub.session.verify, str) else None)
    request = HTTPRequest(url, headers={"Authorization": f"token {hub.token}"}, ssl_options=context)
    conn = await websocket_connect(request)
    try:
        return await _run_code(conn, code, timeout)
    finally:
        # Wait for the server's close, then close the stream ourselves: an event loop that ends first leaves
        # the (TLS) socket to the collector, and pytest fails the run on its ResourceWarning.
        conn.close()
        try:
            while await asyncio.wait_for(conn.read_message(), 5) is not None:
                pass
        except (asyncio.TimeoutError, OSError):
            pass
        if conn.stream is not None:
            conn.stream.close()


async def _run_code(conn, code: str, timeout: float) -> str:
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    output, status = [], None
    deadline = time.monotonic() + timeout
    while status is None or status != "idle":
        raw = await asyncio.wait_for(conn.read_message(), max(0.1, deadline - time.monotonic()))
        assert raw is not None, "the kernel's websocket closed"
        message = json.loads(raw)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["header"]["msg_type"]
        if kind == "stream":
            output.append(message["content"]["text"])
        elif kind == "error":
            raise AssertionError("\n".join(message["content"]["traceback"]))
        elif kind == "status":
            status = message["content"]["execution_state"]
    return "".join(output)
