"""Deploy and retire from the CLI through ds01d, as a real user without Docker access, against `docker run -d`.

This is how users deploy on a shared DS01 server: the `ds01` command talks to
ds01d's socket, so it imports neither docker-py nor the engine's modules, and
ds01d (root, already started, its engine connection open) does the work. A
Unix account is made for the run (root only) and removed afterwards with its
containers, images and network; the baselines start the same image with the
same bind mount by hand, on the default network and on one of their own, as a
deploy starts it (users cannot reach each other's containers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml
from harness import BASE_IMAGE, DS01_SCRIPT, ROOT, docker
from timing import not_measured, result

from ds01_jupyter.core import DS01, User
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import DS01Error


def _user_python() -> str | None:
    """A Python of this version that any user may run (this one may live under root's 0700 home)."""
    for candidate in (sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        path = Path(candidate).resolve()
        if path.exists() and all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents]):
            return str(path)
    return None


class _Service:
    """A ds01d of the run's own (socket, log and settings in a folder of its own) and an account that uses it."""

    def __init__(self, base: Path, python: str):
        self.base, self.python = base, python
        self.name = "ds01b" + secrets.token_hex(4)
        self.home = base / self.name
        self.process: subprocess.Popen | None = None
        subprocess.run(["useradd", "-M", "-d", str(self.home), "-s", "/bin/sh", self.name], check=True,
                       capture_output=True)
        try:
            self._start()
        except BaseException:
            self.close()  # the account (and a ds01d that did not answer) go too
            raise

    def _start(self) -> None:
        self.user = User.from_name(self.name)
        (self.home / "workspace").mkdir(parents=True)
        for path in (self.home, self.home / "workspace"):
            os.chown(path, self.user.uid, self.user.gid)
        admin = self.base / "admin"  # root's, 0755: ds01d refuses settings others could change
        admin.mkdir(mode=0o755)
        (admin / "gpus.json").write_text("[]")
        (admin / "limits.yaml").write_text("defaults:\n  max_containers_per_user: 10\n")
        self.socket = str(admin / "ds01.sock")
        config = admin / "ds01d.yaml"
        config.write_text(yaml.safe_dump({
            "socket": self.socket, "log_dir": str(admin / "log"), "lock_dir": str(admin / "locks"),
            "gpu_inventory": str(admin / "gpus.json"), "limits_file": str(admin / "limits.yaml"),
            "base_image": BASE_IMAGE, "stop_timeout": 1,
        }))
        self.log = admin / "ds01d.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "ds01_jupyter.service", "--config", str(config)],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        deadline = time.monotonic() + 30
        while True:
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(self.socket)
                    break
                except OSError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"ds01d did not start: {self.log.read_text()[-500:]}") from None
                    time.sleep(0.05)

    def ds01(self, *argv: str) -> subprocess.CompletedProcess:
        """``ds01 ARGV`` as the account: what the installed `ds01` script runs, with a bytecode cache of its own
        (as pip's install leaves one)."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
               "PYTHONPATH": f"{ROOT}:{sysconfig.get_paths()['purelib']}", "DS01_SOCKET": self.socket,
               "PYTHONPYCACHEPREFIX": str(self.home / ".pycache")}
        return subprocess.run([self.python, "-c", DS01_SCRIPT, *argv],
                              capture_output=True, text=True, env=env, cwd=str(self.home), user=self.user.uid,
                              group=self.user.gid, extra_groups=[], timeout=600, check=False)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
        core = DS01()
        try:
            for record in core.engine.list_containers({L.USER: self.name}):
                core.engine.remove_container(record.id, force=True)
            for image in core.engine.list_images({L.USER: self.name}):
                try:
                    core.engine.remove_image(image.id)
                except DS01Error:
                    pass
            for network in docker("network", "ls", "-q", "--filter", f"label={L.USER}={self.name}",
                                  check=False).split():
                docker("network", "rm", network, check=False)
        finally:
            core.close()
            subprocess.run(["userdel", self.name], check=False, capture_output=True)


def _ok(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"ds01 {what} through ds01d failed: {(done.stderr or done.stdout)[-400:]}")


def _core_parts(service: _Service, project: str, repeat: int) -> dict:
    """Where a deploy for another user goes beyond `docker run`: the core's deploy alone, in this process with
    ds01d's settings, and its two steps a root-made start needs (see containers._settle): the start offline, then
    the network connected once /workspace was checked, with the helpers copied in at the same time where they are
    not mounted (so the two overlap, and do not add up)."""
    from ds01_jupyter.service.config import load

    settings, _ = load(str(service.base / "admin" / "ds01d.yaml"))
    core = DS01(settings)
    spent: dict[str, list[float]] = {"core": [], "connect_own_network": [], "put_tree": []}

    def timed(name: str):
        real = getattr(core.engine, name)

        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - start)

        return call

    for name in ("connect_own_network", "put_tree"):
        setattr(core.engine, name, timed(name))
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            core.containers.deploy(service.user, project, gpus=0)
            spent["core"].append(time.perf_counter() - start)
            core.guard.retire(service.user, project, "rescue")
    finally:
        core.close()
    parts = {"core_s": statistics.median(spent["core"])}
    if spent["connect_own_network"]:
        parts["connect_s"] = statistics.median(spent["connect_own_network"])
    if spent["put_tree"]:  # the helpers copied in, where they cannot be mounted (see core/helpers.py)
        parts["helpers_s"] = statistics.median(spent["put_tree"])
    return parts


def bench_service(repeat: int) -> list[dict]:
    python = _user_python()
    if python is None:
        return [not_measured("deploy, CLI through ds01d", "no Python that another user may run")]
    base = Path(tempfile.mkdtemp(prefix="ds01-bench-svc-"))
    base.chmod(0o755)
    service = None
    try:
        service = _Service(base, python)
        project = "b" + secrets.token_hex(4)
        _ok(service.ds01("project-init", project), "project-init")
        _ok(service.ds01("image-create", project), "image-create")
        workspace = str(service.home / "workspace" / project)
        image = docker("images", "-q", "--filter", f"label={L.USER}={service.name}").split()[0]
        label = f"ds01-bench.run={base.name}"
        network = f"ds01-bench-{base.name.lower()}"
        docker("network", "create", "--label", label, network)
        times: dict[str, list[float]] = {k: [] for k in ("deploy", "retire", "help", "run", "run_net", "rm")}

        def cycle(record: bool) -> None:
            start = time.perf_counter()
            done = service.ds01("deploy", project, "--background", "--gpus", "0")
            deployed = time.perf_counter() - start
            _ok(done, "deploy")
            start = time.perf_counter()
            done = service.ds01("retire", project, "--rescue")
            retired = time.perf_counter() - start
            _ok(done, "retire")
            start = time.perf_counter()
            service.ds01("--help")
            helped = time.perf_counter() - start
            run = ["run", "-d", "--init", "--label", label, "-v", f"{workspace}:/workspace", "-w", "/workspace"]
            start = time.perf_counter()
            cid = docker(*run, image, "sleep", "infinity")
            ran = time.perf_counter() - start
            start = time.perf_counter()
            docker("rm", "-f", cid)
            removed = time.perf_counter() - start
            start = time.perf_counter()
            cid = docker(*run, "--network", network, image, "sleep", "infinity")
            ran_net = time.perf_counter() - start
            docker("rm", "-f", cid)
            if record:
                for key, value in (("deploy", deployed), ("retire", retired), ("help", helped), ("run", ran),
                                   ("run_net", ran_net), ("rm", removed)):
                    times[key].append(value)

        try:
            cycle(record=False)  # warm-up: the account's bytecode cache, ds01d's first engine calls
            for _ in range(repeat):
                cycle(record=True)
            parts = _core_parts(service, project, repeat)
        finally:
            for cid in docker("ps", "-aq", "--filter", f"label={label}", check=False).split():
                docker("rm", "-f", cid, check=False)
            docker("network", "rm", network, check=False)
        base_run = "docker run -d (same image, -v, --init)"
        return [
            result("deploy, CLI through ds01d (until running)", times["deploy"], base_run, times["run"],
                   target="within 1.3x", cli_startup_s=statistics.median(times["help"]),
                   run_network_s=statistics.median(times["run_net"]), **parts),
            result("retire + audit + empty rescue, CLI through ds01d", times["retire"], "docker rm -f", times["rm"]),
        ]
    finally:
        if service is not None:
            service.close()
        shutil.rmtree(base, ignore_errors=True)


def run(repeat: int) -> list[dict]:
    if os.geteuid() != 0 or not shutil.which("useradd"):
        return [not_measured("deploy, CLI through ds01d", "ds01d and a user of its own need root and useradd")]
    try:
        return bench_service(repeat)
    except RuntimeError as err:
        return [not_measured("deploy, CLI through ds01d", str(err))]
