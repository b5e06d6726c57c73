"""Fixtures: a real Docker engine, a throw-away home per test, real images.

Tests skip without Docker on a developer's machine, but fail in CI
(CI=true or DS01_REQUIRE_DOCKER=1), so a green CI always means the engine ran.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

import pytest

from ds01_jupyter.core import DS01, Settings, User, workspace_pin
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import DS01Error, EngineUnavailable

pytest_plugins = ["pytest_jupyter.jupyter_server"]

BASE_IMAGE = os.environ.get("DS01_TEST_BASE_IMAGE", "ds01/base:latest")
REQUIRE_DOCKER = os.environ.get("CI") == "true" or os.environ.get("DS01_REQUIRE_DOCKER") == "1"
#: The helpers' host folder of this test process (and the CLIs and kernels it starts): never the host's own, whose
#: link a test checkout of another version would move under the containers of a real install.
_OWN_HELPERS_DIR = "DS01_HELPERS_DIR" not in os.environ
HELPERS_DIR = os.environ.setdefault("DS01_HELPERS_DIR", tempfile.mkdtemp(prefix="ds01-test-helpers-"))


def pytest_sessionfinish(session):
    if _OWN_HELPERS_DIR:
        import shutil

        shutil.rmtree(HELPERS_DIR, ignore_errors=True)

#: Fixtures that start something heavy: the Docker engine (every fixture that makes containers, Unix users or
#: cores builds on `engine`) and a Jupyter server (pytest-jupyter's). A test using any of them, directly or through
#: other fixtures, is marked `docker`, so `pytest -m "not docker"` is the fast tier without anyone marking it.
HEAVY_FIXTURES = frozenset({"engine", "jp_serverapp", "jp_fetch", "jp_ws_fetch"})


def pytest_collection_modifyitems(items):
    """Mark the tests that need the engine or a server, and those marked `slow`, as `docker` (the slow tier)."""
    for item in items:
        if HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.docker)


def remove_made(engine, record) -> None:
    """Remove a container a test made, and the pin root gave the engine for its workspace (workspace_pin)."""
    engine.remove_container(record.id, force=True)
    workspace_pin.unpin(record.labels.get(L.USER_ID, ""), record.name)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    core = DS01(Settings(base_image=BASE_IMAGE))
    basetemp = tmp_path_factory.getbasetemp()
    with open(basetemp / ALIVE, "w") as alive:
        fcntl.flock(alive, fcntl.LOCK_EX)  # held while this run lives: other runs leave it alone
        for engine in _ready(core):
            _sweep_interrupted_runs(engine, run_dir(tmp_path_factory))
            yield engine
    core.close()


ALIVE = ".ds01-run-alive"


def run_dir(tmp_path_factory) -> Path:
    """This run's folder in pytest's temporary root (pytest-N): with pytest-xdist each worker's own folder
    (popen-gwX) lies inside it."""
    basetemp = tmp_path_factory.getbasetemp()
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def _sweep_interrupted_runs(engine, this_run: Path) -> None:
    """Remove containers left by an earlier run of these tests that was killed.

    They hold names like `demo._.<user>` and count against the user's limits,
    so a killed run would otherwise fail the next one. Only containers whose
    workspace lies under pytest's own temporary root are considered, never this
    run's (its other workers may not hold their lock yet), and only those of runs
    whose locks are all free (a run still going holds its own, or each worker one).
    """
    root = this_run.parent
    prefix = str(root) + os.sep
    for record in engine.list_containers(L.managed()):
        workspace = record.labels.get(L.WORKSPACE, "")
        if not workspace.startswith(prefix):
            continue
        run = root / workspace[len(prefix):].split(os.sep)[0]
        if run != this_run and not _run_alive(run):
            remove_made(engine, record)


def _run_alive(run: Path) -> bool:
    return any(_locked(lock) for lock in (run / ALIVE, *run.glob(f"popen-gw*/{ALIVE}")))


def _locked(path: Path) -> bool:
    try:
        with open(path) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no lock file: a run from before locks, or its folder was cleaned
    return False


def _ready(core):
    try:
        core.engine.ping()
    except EngineUnavailable as err:
        if REQUIRE_DOCKER:
            pytest.fail(f"Docker is required here: {err}")
        pytest.skip(f"no Docker engine: {err}")
    core.images.ensure_base_image(progress=lambda line: print(line, file=sys.stderr))
    yield core.engine


@pytest.fixture(autouse=True)
def _homes_reachable_by_their_owners(tmp_path):
    """As on a real host, a user can reach their own home: root acts for users with their identity
    (rescues, Dockerfiles, state files), and pytest's own folders are 0700. Search permission only is
    added to the folders above each test's tmp_path; nothing becomes listable or writable."""
    if os.geteuid() == 0:
        for folder in [tmp_path, *tmp_path.parents]:
            if str(folder) in ("/", "/tmp", os.path.realpath(tempfile.gettempdir())):
                break
            folder.chmod(folder.stat().st_mode | 0o011)


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def user(home) -> User:
    me = User.current()
    return User(me.name, me.uid, me.gid, home)


@pytest.fixture
def project_name():
    """Unique project names, so parallel and repeated runs never share containers or images."""
    return lambda: "t" + secrets.token_hex(4)


@pytest.fixture
def demo():
    """One unique project name for a test that reads best with one: on a DS01 host `demo._.root` may well be
    root's own container (CI's .ci/busy-host makes sure of it), so a test never uses the name itself."""
    return "demo-" + secrets.token_hex(4)


def cli_environ(settings: Settings, home: Path, **extra: str) -> dict[str, str]:
    """The environment a test runs the ds01 command line in: this test's home and base image, and the
    test's admin settings (lock, GPU list, limits) where the environment may set them (root, or the owner of
    /etc/ds01-jupyter); elsewhere the host's own serve. ``extra`` variables are added last."""
    from ds01_jupyter.core.settings import env_may_set_admin_settings

    # DS01_SOCKET=none: these tests drive the engine directly even where a ds01d serves the host
    # (tests/test_service.py).
    environ = dict(os.environ, HOME=str(home), DS01_BASE_IMAGE=settings.base_image, DS01_STOP_TIMEOUT="2",
                   DS01_SOCKET="none")
    if env_may_set_admin_settings():
        environ.update(DS01_LOCK_DIR=settings.lock_dir, DS01_GPU_INVENTORY=settings.gpu_inventory,
                       DS01_LIMITS_FILE=settings.limits_file)
    environ.update(extra)
    return environ


class CoreFactory:
    def __init__(self, tmp_path: Path, engine):
        self.tmp_path = tmp_path
        self.engine = engine
        self.cores: list[DS01] = []
        # Images there before the test are never removed by its clean-up: on a busy host another user's (or
        # root's own) image may carry the same project label.
        self.images_before = {image.id for image in engine.list_images(L.managed())}

    def settings(self, limits: str | None = None, gpus: list | None = None, **overrides) -> Settings:
        values = dict(
            lock_dir=str(self.tmp_path / "locks"),
            base_image=BASE_IMAGE,
            gpu_request="env",
            interface="test",
            stop_timeout=2,
            limits_file=str(self.tmp_path / "no-limits.yaml"),
            helpers_dir=HELPERS_DIR,
        )
        # Tests run as one Unix user on a possibly busy host, and two test files at once (pytest-xdist): other
        # runs' and files' containers must not use up a built-in container or GPU limit of this user (tests of a
        # limit set it in their own file, for a user of their own).
        room = {"max_containers_per_user": 100, "max_mig_instances": 100}
        roomy = "defaults:\n" + "".join(f"  {name}: {value}\n" for name, value in room.items())
        if limits is not None:
            if limits.startswith("defaults:\n"):
                unset = "".join(f"  {name}: {value}\n" for name, value in room.items() if name not in limits)
                limits = "defaults:\n" + unset + limits[len("defaults:\n"):]
            path = self.tmp_path / f"limits-{secrets.token_hex(3)}.yaml"
            path.write_text(limits)
            values["limits_file"] = str(path)
        else:
            (self.tmp_path / "no-limits.yaml").write_text(roomy)
        if gpus is not None:
            path = self.tmp_path / f"gpus-{secrets.token_hex(3)}.json"
            path.write_text(json.dumps(gpus))
            values["gpu_inventory"] = str(path)
        else:
            values["gpu_inventory"] = str(self.tmp_path / "no-gpus.json")
            (self.tmp_path / "no-gpus.json").write_text("[]")
        values.update(overrides)
        return Settings(**values)

    def __call__(self, **kwargs) -> DS01:
        core = DS01(self.settings(**kwargs))
        self.cores.append(core)
        return core

    def cleanup(self):
        for made in self.cores:
            made.close()
        prefix = str(self.tmp_path)
        core = DS01(Settings())
        for record in core.engine.list_containers(L.managed()):
            if record.labels.get(L.WORKSPACE, "").startswith(prefix):
                remove_made(core.engine, record)
        projects = {p.name for p in self.tmp_path.glob("*/workspace/*")}
        for image in core.engine.list_images(L.managed()):
            if image.labels.get(L.PROJECT) in projects and image.id not in self.images_before:
                try:
                    core.engine.remove_image(image.id)
                except DS01Error:
                    pass  # still used by a container another test owns
        core.close()


@pytest.fixture
def make_core(tmp_path, engine):
    factory = CoreFactory(tmp_path, engine)
    yield factory
    factory.cleanup()


def fake_gpus(n: int, tag: str | None = None) -> list[dict]:
    """A configured GPU list with UUIDs unique to one test."""
    tag = tag or secrets.token_hex(3)
    return [
        {"uuid": f"GPU-test-{tag}-{i}", "index": i, "name": "Configured Test GPU", "memory_total": 80 * 2**30}
        for i in range(n)
    ]


# -- a real Jupyter server with the extension --------------------------------------------
@pytest.fixture
def ds01_settings(make_core):
    """Core settings for the server under test (override to add limits or GPUs)."""
    return make_core.settings()


@pytest.fixture
def jp_root_dir(home):
    root = home / "workspace"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def jp_server_config(ds01_settings, home):
    s = ds01_settings
    return {
        "ServerApp": {
            "jpserver_extensions": {"ds01_jupyter": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "DS01App": {
            "workspace_root": str(home / "workspace"),
            "dockerfiles_root": str(home / "dockerfiles"),
            "state_dir": str(home / "state"),
            "limits_file": s.limits_file or "",
            "base_image": s.base_image,
            "gpu_inventory": s.gpu_inventory,
            "gpu_request": s.gpu_request,
            "lock_dir": s.lock_dir,
            "docker_url": s.docker_url or "",
            "reap_interval": 0,
            "scan_interval": 0,
            # The engine directly, even where a ds01d serves the host (tests/test_service_jupyter.py uses it).
            "socket": "none",
        },
    }


@pytest.fixture
def api(jp_fetch):
    """Call /ds01/... and decode JSON; errors come back as (status, body) instead of raising."""
    from tornado.httpclient import HTTPClientError

    async def call(method, *parts, body=None, params=None, expect=None):
        kwargs = {"method": method, "params": params or {}}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method == "POST":
            kwargs["body"] = ""
        try:
            response = await jp_fetch("ds01", *parts, **kwargs)
            status, text = response.code, response.body.decode()
        except HTTPClientError as err:
            status, text = err.code, err.response.body.decode() if err.response is not None else ""
        data = json.loads(text) if text.strip().startswith(("{", "[")) else text
        if expect is not None:
            assert status == expect, (status, data)
        return status, data

    return call


# -- a second Unix user and small filesystems (root only) ---------------------------------
@pytest.fixture
def small_fs(engine):
    """A 4 MiB filesystem of its own (tmpfs), for running out of room for real."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="ds01-small-"))  # outside pytest's 0700 tree: other users reach it
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=2000,mode=755", "tmpfs", str(path)], check=True)
    yield path
    for record in engine.list_containers(L.managed()):  # deployed from projects on it
        if record.labels.get(L.WORKSPACE, "").startswith(str(path) + os.sep):
            remove_made(engine, record)
    projects = set(os.listdir(path))  # their images too: make_core's clean-up finds projects below tmp_path only
    for image in engine.list_images(L.managed()):
        if image.labels.get(L.PROJECT) in projects:
            try:
                engine.remove_image(image.id)
            except DS01Error:
                pass
    subprocess.run(["umount", "-l", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lone_user(request):
    """A user whose containers a test may count: a Unix account of the test's own where it may make one (root:
    on a busy host root has containers of its own), else the user running the tests."""
    import shutil

    if os.geteuid() == 0 and shutil.which("useradd"):
        return request.getfixturevalue("other_user")
    return request.getfixturevalue("user")


@pytest.fixture
def other_user(engine):
    """A real Unix account made for this test (not root, not in the docker group), home outside pytest's 0700 tree."""
    import shutil
    import subprocess
    import tempfile

    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a Unix user needs root and useradd")
    name = "ds01t" + secrets.token_hex(4)
    base = Path(tempfile.mkdtemp(prefix="ds01-user-"))
    base.chmod(0o755)
    home = base / name
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    made = User.from_name(name)
    home.mkdir()
    (home / "workspace").mkdir()
    for path in (home, home / "workspace"):
        os.chown(path, made.uid, made.gid)
    yield made
    for record in engine.list_containers({L.USER: name}):
        remove_made(engine, record)
    for image in engine.list_images({L.USER: name}):
        try:
            engine.remove_image(image.id)
        except DS01Error:
            pass
    remove_networks(engine, name)
    subprocess.run(["userdel", name], check=False)
    shutil.rmtree(base, ignore_errors=True)


def remove_networks(engine, user_name: str) -> None:
    """The networks ds01 made for a test's own user (kept after its last container: kept_networks)."""
    for net in engine.api.networks(filters={"label": [f"{L.USER}={user_name}"]}):
        try:
            engine.api.remove_network(net["Id"])
        except Exception:  # noqa: BLE001 - still in use by a container being removed: the engine keeps it
            pass


def tar_link(name: str, target: str) -> bytes:
    """A tar of one symbolic link, for the engine's archive calls (what a user's image could hold)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)
    return buffer.getvalue()
