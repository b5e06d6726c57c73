"""Ready to code: from "deploy" until a kernel in the container answers `1+1`.

Ours: POST /ds01/projects/P/deploy?wait=1, then start the project's container
kernel (``ds01-P``) through the server's kernel API and run `1+1` over its
websocket. Baseline: JupyterHub with DockerSpawner spawning the same image
(plus jupyterhub-singleuser, which DockerSpawner needs), then the same kernel
start and `1+1` through the hub's proxy. Both start from a built image.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import requests
from harness import ROOT, docker, free_port, scratch, server, wait_until, which
from kernel_client import execute, start_kernel
from timing import not_measured, result

SINGLEUSER_IMAGE = "ds01-bench/singleuser:latest"
WHEELS = Path(os.environ.get("DS01_BENCH_WHEELS", "/tmp/ds01-bench-wheels"))
HUB_USER = "benchhub"


def _ours(s, srv, name: str) -> tuple[float, float]:
    """One deploy-to-`1+1` through our server; returns (total, deploy part)."""
    start = time.perf_counter()
    r = srv.post(f"/ds01/projects/{name}/deploy?wait=1", {"gpus": 0})
    if r.status_code != 200:
        raise RuntimeError(f"deploy answered {r.status_code}: {r.text[:300]}")
    deployed = time.perf_counter() - start
    kernel = start_kernel(srv.http, srv.url, f"ds01-{name}", path=name)
    answer = execute(srv.url, kernel, srv.token)
    total = time.perf_counter() - start
    if answer != "2":
        raise RuntimeError(f"the container kernel answered {answer!r} to 1+1")
    srv.delete(f"/api/kernels/{kernel}")
    r = srv.post(f"/ds01/projects/{name}/retire", {"mode": "discard"})
    if r.status_code != 200:
        raise RuntimeError(f"retire answered {r.status_code}: {r.text[:300]}")
    return total, deployed


def hub_missing() -> str | None:
    """Why the JupyterHub baseline cannot run here, or None."""
    try:
        import dockerspawner  # noqa: F401
        import jupyterhub  # noqa: F401
    except ImportError as err:
        return f"jupyterhub and dockerspawner are not installed ({err.name}); pip install jupyterhub dockerspawner"
    if not _proxy_command():
        return "configurable-http-proxy not found (.ci/setup-host installs it into .ci/node)"
    return None


def _proxy_command() -> str | None:
    local = ROOT / ".ci/node/node_modules/.bin/configurable-http-proxy"
    return str(local) if local.exists() else which("configurable-http-proxy")


def build_singleuser(base_image: str, tmp: Path) -> None:
    """The project's image plus jupyterhub-singleuser, from wheels downloaded on the host (no registry)."""
    import jupyterhub

    version = docker("run", "--rm", base_image, "python3", "-c", "import platform; print(platform.python_version())")
    wheels = WHEELS / f"py{version}"  # wheels whose Requires-Python the image's interpreter meets
    wheels.mkdir(parents=True, exist_ok=True)
    wanted = [f"jupyterhub=={jupyterhub.__version__}", "jupyter_server"]
    marker = wheels / ".complete"
    if not marker.exists() or marker.read_text() != " ".join(wanted):
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", version,
             "-d", str(wheels), *wanted],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip download failed: {done.stderr[-400:]}")
        marker.write_text(" ".join(wanted))
    context = tmp / "singleuser"
    context.mkdir()
    subprocess.run(["cp", "-r", str(wheels), str(context / "wheels")], check=True)
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\nUSER 0\nCOPY wheels /tmp/wheels\n"
        "RUN pip install --no-cache-dir --no-index --break-system-packages --find-links /tmp/wheels "
        + " ".join(f"'{w}'" for w in wanted)
        + " && rm -rf /tmp/wheels\n"
    )
    done = subprocess.run(
        ["docker", "build", "--force-rm", "--network", "none", "-q", "-t", SINGLEUSER_IMAGE, str(context)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building {SINGLEUSER_IMAGE} failed: {done.stderr[-400:]}")


def _bridge_gateway() -> str:
    """The host's address on Docker's default bridge, where containers reach the hub's API."""
    gateway = docker("network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}")
    if gateway:
        return gateway
    # Docker leaves Gateway out of IPAM when it chose it itself: ask the interface.
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True).stdout.split()
    if "inet" not in shown:
        raise RuntimeError("cannot find the address of docker0, where containers would reach the hub")
    return shown[shown.index("inet") + 1].split("/")[0]


class Hub:
    """JupyterHub with DockerSpawner on loopback, driven through its REST API by a service token."""

    def __init__(self, tmp: Path, workspace: str, run_label: str):
        self.tmp = tmp
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        gateway = _bridge_gateway()
        config = tmp / "jupyterhub_config.py"
        config.write_text(
            f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = {gateway!r}
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{_proxy_command()!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"{HUB_USER}"}}
c.JupyterHub.services = [{{"name": "bench", "api_token": "{self.token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}}]
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = "{SINGLEUSER_IMAGE}"
c.DockerSpawner.name_template = "ds01-bench-hub-{{username}}-{tmp.name[-8:]}"
c.DockerSpawner.remove = {os.environ.get("DS01_BENCH_DEBUG") != "1"}
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.network_name = "bridge"
c.DockerSpawner.notebook_dir = "/workspace"
c.DockerSpawner.volumes = {{"{workspace}": "/workspace"}}
c.DockerSpawner.extra_create_kwargs = {{"labels": {{"{run_label.split('=')[0]}": "{run_label.split('=')[1]}"}}}}
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.default_url = "/lab"
"""
        )
        self.log = open(tmp / "hub.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=tmp, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"
        self._wait(lambda: self.http.get(f"{self.url}/hub/api/", timeout=2).status_code == 200, 60, "the hub")
        self.api(f"/users/{HUB_USER}", "post", expect=(201, 409))

    def api(self, path: str, method: str = "get", expect=(200,), **kw):
        r = getattr(self.http, method)(f"{self.url}/hub/api{path}", timeout=60, **kw)
        if r.status_code not in expect:
            log = self.tail()[-800:] if r.status_code >= 500 else ""
            raise RuntimeError(f"hub {method.upper()} {path} answered {r.status_code}: {r.text[:300]} {log}")
        return r

    def _wait(self, ready, timeout: float, what: str) -> None:
        wait_until(ready, self.proc, self.tail, timeout, what, interval=0.05)

    def tail(self) -> str:
        self.log.flush()
        return (self.tmp / "hub.log").read_text()[-1500:]

    def spawn_and_run(self) -> float:
        """Seconds from the spawn request until `1+1` answered through the proxy."""
        start = time.perf_counter()
        self.api(f"/users/{HUB_USER}/server", "post", expect=(201, 202))
        self._wait(lambda: self.api(f"/users/{HUB_USER}").json()["servers"].get("", {}).get("ready"), 120, "the server")
        user_url = f"{self.url}/user/{HUB_USER}"
        kernel = start_kernel(self.http, user_url)
        answer = execute(user_url, kernel, self.token)
        elapsed = time.perf_counter() - start
        if answer != "2":
            raise RuntimeError(f"the hub kernel answered {answer!r}")
        self.api(f"/users/{HUB_USER}/server", "delete", expect=(202, 204))
        self._wait(lambda: not self.api(f"/users/{HUB_USER}").json()["servers"], 60, "the server's stop")
        return elapsed

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def run(repeat: int) -> list[dict]:
    name_ours = "ready to code (deploy, kernel, 1+1)"
    with scratch() as s:
        name = s.project()
        s.ensure_image(name)
        workspace = str(s.core.projects.get(s.user, name).path.resolve())
        ours, deploys = [], []
        try:
            with server(s) as srv:
                _ours(s, srv, name)  # warm-up: first Docker connection, first kernel spec write
                for _ in range(repeat):
                    total, deployed = _ours(s, srv, name)
                    ours.append(total)
                    deploys.append(deployed)
        except (RuntimeError, OSError) as err:
            return [not_measured(name_ours, f"our side failed: {err}")]
        why = hub_missing()
        if why:
            return [
                not_measured(
                    name_ours, f"baseline not measured: {why}; ours median {sorted(ours)[len(ours) // 2]:.2f} s"
                )
            ]
        base = []
        hub = None
        try:
            build_singleuser(s.core.images.current(s.user, name).id, s.tmp)
            hub = Hub(s.tmp, workspace, s.run_label)
            hub.spawn_and_run()  # warm-up, as for ours
            for _ in range(repeat):
                base.append(hub.spawn_and_run())
        except (RuntimeError, OSError, subprocess.CalledProcessError, json.JSONDecodeError) as err:
            return [not_measured(name_ours, f"JupyterHub baseline failed: {err}")]
        finally:
            if hub is not None:
                hub.close()
            docker("rmi", "-f", SINGLEUSER_IMAGE, check=False)
    return [
        result(
            name_ours, ours, "JupyterHub + DockerSpawner spawn of the same image, kernel, 1+1", base,
            deploy_part=sorted(deploys)[len(deploys) // 2],
        )
    ]


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=1))
