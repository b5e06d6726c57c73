"""What every benchmark shares: timing, results, a scratch DS01 user and a real Jupyter server.

The bench acts as a user *named* ``benchuser`` (with this process's uid and gid and
a temporary home), so its containers never count against the machine user's
limits while tests run beside it. The CLI and the server take their user from
the account database, so they run through ``as_user.py``, which gives them the
same identity.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


from ds01_jupyter.core import DS01, Settings, User  # noqa: E402
from ds01_jupyter.core import labels as L  # noqa: E402

#: What the installed `ds01` script runs, for ``python -c``.
DS01_SCRIPT = "from ds01_jupyter.cli.main import entry; entry()"
BENCH_USER = "benchuser"
BASE_IMAGE = os.environ.get("DS01_BENCH_BASE_IMAGE", "ds01/base:latest")
#: Each bench project's image, under a name of the run's own (its scratch folder, see Scratch): a container is
#: trusted only on an image built for its own project, and two runs at once must not move each other's tags.
#: The builds after the first come from the engine's cache (only the labels differ).
IMAGE_TEMPLATE = "ds01-{user}/bench-{run}-{project}:latest"


# -- a scratch user -----------------------------------------------------------------------
class Scratch:
    """A temporary home for ``benchuser`` with its own limits, GPU list, locks and Jupyter dirs."""

    def __init__(self, tmp: Path, max_containers: int = 100):
        self.tmp = tmp
        me = User.current()
        self.user = User(BENCH_USER, me.uid, me.gid, tmp / "home")
        self.user.home.mkdir(parents=True, exist_ok=True)
        # The folder's random part may hold "_" next to "-", which no image reference may: only letters and digits.
        self.image_template = IMAGE_TEMPLATE.replace("{run}", re.sub(r"[^a-z0-9]", "", tmp.name.lower()))
        (tmp / "gpus.json").write_text("[]")
        (tmp / "limits.yaml").write_text(f"defaults:\n  max_containers_per_user: {max_containers}\n")
        self.settings = Settings(
            lock_dir=str(tmp / "locks"),
            gpu_inventory=str(tmp / "gpus.json"),
            limits_file=str(tmp / "limits.yaml"),
            base_image=BASE_IMAGE,
            image_template=self.image_template,
            interface="bench",
            stop_timeout=1,
        )
        self.core = DS01(self.settings)
        #: Label of the baseline containers made by hand (docker run), so cleanup finds them.
        self.run_label = f"ds01-bench.run={tmp.name}"

    def env(self) -> dict:
        """Environment of a CLI or server process acting as benchuser with these settings."""
        jupyter = self.user.home / ".jupyter-bench"
        return {
            **os.environ,
            "HOME": str(self.user.home),
            "DS01_BENCH_USER": BENCH_USER,
            "DS01_LIMITS_FILE": self.settings.limits_file,
            "DS01_GPU_INVENTORY": self.settings.gpu_inventory,
            "DS01_LOCK_DIR": self.settings.lock_dir,
            "DS01_BASE_IMAGE": BASE_IMAGE,
            "DS01_IMAGE_TEMPLATE": self.image_template,
            "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
            "JUPYTER_DATA_DIR": str(self.user.home / ".local/share/jupyter"),
            "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
            # As installed by pip (which compiles the package): a bytecode cache, here outside the checkout. Some
            # machines set PYTHONDONTWRITEBYTECODE; then every CLI run would compile the package again (~0.1 s).
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str(self.tmp / "pycache"),
        }

    def project(self, name: str | None = None) -> str:
        name = name or "b" + secrets.token_hex(4)
        self.core.projects.create(self.user, name)
        return name

    def ensure_image(self, project: str) -> None:
        """Build the project's bench image (not timed: deploys are measured with the image present)."""
        if self.core.images.current(self.user, project) is None:
            self.core.images.build(self.user, project)

    def cleanup(self) -> None:
        """Remove every container and image of benchuser made from this scratch home."""
        for cid in docker("ps", "-aq", "--filter", f"label={self.run_label}", check=False).split():
            docker("rm", "-f", cid, check=False)
        prefix = str(self.tmp)
        for record in self.core.engine.list_containers(L.managed()):
            if record.labels.get(L.WORKSPACE, "").startswith(prefix):
                self.core.engine.remove_container(record.id, force=True)
        self.core.close()


@contextmanager
def scratch(max_containers: int = 100):
    with tempfile.TemporaryDirectory(prefix="ds01-bench-") as tmp:
        s = Scratch(Path(tmp), max_containers)
        try:
            yield s
        finally:
            s.cleanup()
            remove_bench_image(s)


def remove_bench_image(s: Scratch) -> None:
    prefix = s.image_template.split("{project}")[0].format(user=BENCH_USER)
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).split()
    for tag in [t for t in listed if t.startswith(prefix)]:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def cli(s: Scratch, *args: str) -> subprocess.CompletedProcess:
    """Run the ds01 command line as benchuser (same imports and code path as the `ds01` script)."""
    return subprocess.run(
        [sys.executable, str(HERE / "as_user.py"), "cli", *args], env=s.env(), capture_output=True, text=True
    )


# -- a real Jupyter server --------------------------------------------------------------
def wait_until(ready, proc: subprocess.Popen, tail, timeout: float, what: str, interval: float) -> None:
    """Poll ``ready()`` until true; fail with the log's tail when ``proc`` exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {tail()}")
        try:
            if ready():
                return
        except requests.ConnectionError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{what} was not ready in {timeout} s: {tail()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A Jupyter server (or JupyterLab) with the ds01 extension, as a subprocess on loopback."""

    def __init__(self, s: Scratch, app: str = "server", extra_config: str = "", env: dict | None = None):
        self.scratch = s
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"
        config = s.tmp / f"server-{self.port}.py"
        workspace = s.user.home / "workspace"
        workspace.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"c.ServerApp.ip = '127.0.0.1'\n"
            f"c.ServerApp.port = {self.port}\n"
            f"c.ServerApp.port_retries = 0\n"
            f"c.ServerApp.token = {self.token!r}\n"
            f"c.ServerApp.open_browser = False\n"
            f"c.ServerApp.allow_root = True\n"
            f"c.ServerApp.root_dir = {str(workspace)!r}\n"
            f"c.DS01App.limits_file = {s.settings.limits_file!r}\n"
            f"c.DS01App.gpu_inventory = {s.settings.gpu_inventory!r}\n"
            f"c.DS01App.lock_dir = {s.settings.lock_dir!r}\n"
            f"c.DS01App.base_image = {BASE_IMAGE!r}\n"
            f"c.DS01App.image_template = {s.image_template!r}\n"
            "c.DS01App.scan_interval = 0\n"
            "c.DS01App.reap_interval = 0\n" + extra_config
        )
        self.log = open(s.tmp / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "as_user.py"), app, f"--config={config}"],
            env={**s.env(), **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        wait_until(lambda: self.http.get(self.url + "/api/status", timeout=2).status_code == 200,
                   self.proc, self.tail, timeout, "the Jupyter server", interval=0.2)

    def tail(self) -> str:
        self.log.flush()
        return (self.scratch.tmp / f"server-{self.port}.log").read_text()[-2000:]

    def get(self, path: str, **kw):
        return self.http.get(self.url + path, timeout=120, **kw)

    def post(self, path: str, body: dict | None = None, **kw):
        return self.http.post(self.url + path, data=json.dumps(body or {}), timeout=300, **kw)

    def delete(self, path: str):
        return self.http.delete(self.url + path, timeout=60)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@contextmanager
def server(s: Scratch, **kw):
    srv = Server(s, **kw)
    try:
        yield srv
    finally:
        srv.close()


def which(name: str) -> str | None:
    return shutil.which(name)
