"""A real ds01d for tests, and Unix users (not in the docker group) who run the ds01 command through it.

A test module imports the fixtures it uses: ``from ds01d_helpers import ds01d_factory_fixture  # noqa: F401``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import remove_made, remove_networks

import ds01_jupyter
from ds01_jupyter.core import DS01, User
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import DS01Error
from ds01_jupyter.service.auditlog import AuditLog

REPO = str(Path(ds01_jupyter.__file__).resolve().parent.parent)


def user_python() -> str:
    """A Python of this version that any user may run (this one may live under root's 0700 home)."""
    for candidate in (sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        path = Path(candidate).resolve()
        if all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents]):
            return str(path)
    pytest.skip("no Python that other users may run")


class Ds01d:
    """ds01d run as root in a folder of its own, with the test's settings as the admin's file."""

    def __init__(self, folder: Path, settings, **service):
        self.folder = folder
        self.socket = str(folder / "run" / "ds01.sock")
        self.log_dir = folder / "log"
        self.config = folder / "ds01d.yaml"
        values = {k: v for k, v in dataclasses.asdict(settings).items() if v is not None}
        values.update(socket=self.socket, log_dir=str(self.log_dir), **service)
        values.pop("interface", None)
        self.config.write_text(yaml.safe_dump(values))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.folder / "ds01d.log", "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen([sys.executable, "-m", "ds01_jupyter.service", "--config",
                                             str(self.config)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
            assert self.process.poll() is None, (self.folder / "ds01d.log").read_text()
        pytest.fail("ds01d did not start: " + (self.folder / "ds01d.log").read_text())

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=90)

    def audit(self) -> list[dict]:
        return AuditLog(str(self.log_dir)).read()

    def log(self) -> str:
        return (self.folder / "ds01d.log").read_text()


@pytest.fixture(name="ds01d_factory")
def ds01d_factory_fixture(make_core, engine):
    """Start ds01d with given settings (default: the test's) and service options; stopped after the test."""
    made = []

    def start(settings=None, **service) -> Ds01d:
        folder = Path(tempfile.mkdtemp(prefix="ds01d-"))  # outside pytest's 0700 tree: users reach the socket
        folder.chmod(0o755)
        service.setdefault("request_timeout", 2.0)
        daemon = Ds01d(folder, settings or make_core.settings(), **service)
        made.append(daemon)
        daemon.start()
        return daemon

    if os.geteuid() != 0:
        pytest.skip("ds01d acts for other users only as root")
    yield start
    for daemon in made:
        daemon.kill(signal.SIGTERM)
        shutil.rmtree(daemon.folder, ignore_errors=True)


class UnixUser:
    """A real account made for a test (not in the docker group); runs commands as itself."""

    def __init__(self, user: User, python: str):
        self.user, self.python = user, python
        self.name, self.home = user.name, user.home

    def env(self, socket_path: str | None, **extra) -> dict:
        site = sysconfig.get_paths()["purelib"]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
               "PYTHONPATH": f"{REPO}:{site}", "DS01_SOCKET": socket_path or "none"}
        env.update(extra)
        return env

    def popen_args(self, *argv) -> list[str]:
        return [self.python, "-c", "from ds01_jupyter.cli.main import entry; entry()", *argv]

    def ds01(self, socket_path: str | None, *argv, input: bytes | str | None = None, timeout: float = 120, **env):
        """Run ``ds01 ARGV`` as this user; a CompletedProcess with text output."""
        if isinstance(input, str):
            input = input.encode()
        done = subprocess.run(self.popen_args(*argv), input=input if input is not None else b"", capture_output=True,
                              timeout=timeout, env=self.env(socket_path, **env), cwd=str(self.home.parent),
                              user=self.user.uid, group=self.user.gid, extra_groups=[])
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                           done.stderr.decode(errors="replace"))

    def python_as(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, "-c", code], capture_output=True, text=True, timeout=30,
                              user=self.user.uid, group=self.user.gid, extra_groups=[], env=self.env(None))


@pytest.fixture(name="unix_users")
def unix_users_fixture(engine):
    """Make Unix users on demand: ``unix_users()`` -> UnixUser with a home and an empty workspace."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a Unix user needs root and useradd")
    python = user_python()
    made: list[tuple[User, Path]] = []

    def make(with_home: bool = True) -> UnixUser:
        name = "ds01s" + secrets.token_hex(4)
        base = Path(tempfile.mkdtemp(prefix="ds01-svc-user-"))
        base.chmod(0o755)
        home = base / name
        subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
        account = User.from_name(name)
        if with_home:
            (home / "workspace").mkdir(parents=True)
            for path in (home, home / "workspace"):
                os.chown(path, account.uid, account.gid)
        made.append((account, base))
        return UnixUser(account, python)

    yield make
    core = DS01()
    for account, base in made:
        for record in core.engine.list_containers({L.USER: account.name}):
            remove_made(core.engine, record)
        for image in core.engine.list_images({L.USER: account.name}):
            try:
                core.engine.remove_image(image.id)
            except DS01Error:
                pass
        remove_networks(core.engine, account.name)
        subprocess.run(["userdel", account.name], check=False)
        shutil.rmtree(base, ignore_errors=True)
    core.close()
