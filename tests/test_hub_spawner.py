"""Quick tests of the spawner's parts without a hub: the options form, its data, progress, the example config."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from conftest import fake_gpus

from ds01_jupyter.core import User
from ds01_jupyter.core.errors import InvalidName, InvalidRequest
from ds01_jupyter.hub import form
from ds01_jupyter.hub.checks import load_config
from ds01_jupyter.hub.spawner import DS01Spawner, SpawnRefused

REPO = Path(__file__).resolve().parents[1]


def test_form_lists_projects_and_gpus_within_the_limit():
    html = form.render(
        [{"name": "demo", "image": "ds01-alice/demo:latest", "running": True}, {"name": "other", "image": None}],
        selected="demo", max_gpus=2, default_gpus=1, notices=["3 file(s) were rescued <into> .rescued"],
    )
    assert '<option value="demo" selected>demo (ds01-alice/demo:latest, running)</option>' in html
    assert "other (image built on first start)" in html
    assert '<option value="2">2</option>' in html and '<option value="3">' not in html
    assert "&lt;into&gt;" in html  # notices are escaped
    assert "fresh (new project)" in form.render([], "fresh", 0, 0, [])


def test_form_parse():
    assert form.parse({"project": ["demo"], "gpus": ["1"]}) == {"project": "demo", "gpus": 1}
    assert form.parse({"project": [form.NEW], "new_project": ["my-new"], "gpus": ["0"]}) == {
        "project": "my-new", "create": True, "gpus": 0}
    with pytest.raises(InvalidName):
        form.parse({"project": [form.NEW], "new_project": ["../etc"]})
    with pytest.raises(InvalidRequest):
        form.parse({"project": ["demo"], "gpus": ["many"]})


class _HubUser:
    def __init__(self, name):
        self.name = name
        self.url = f"/user/{name}/"


class _OrmSpawner:
    """What a spawner reads of its database row."""

    def __init__(self, name):
        self.name = name
        self.server = None
        self.last_activity = None
        self.user_options = {}
        self.state = {}


def _spawner(tmp_path, make_core, name="", gpus=2, limits=None) -> DS01Spawner:
    settings = make_core.settings(gpus=fake_gpus(gpus), limits=limits)
    home = tmp_path / "homes" / "alice"
    return DS01Spawner(
        user=_HubUser("alice"), orm_spawner=_OrmSpawner(name),
        user_mapper=lambda n: User(n, 2201, 2201, home),
        limits_file=settings.limits_file, gpu_inventory=settings.gpu_inventory, gpu_request="env",
        lock_dir=settings.lock_dir,
    )


def test_options_form_from_the_core(tmp_path, make_core):
    spawner = _spawner(tmp_path, make_core, name="demo", limits="defaults:\n  max_mig_per_container: 1\n")
    spawner.core.projects.create(spawner.ds01_user, "demo")
    html = asyncio.run(spawner._render_form(spawner))
    assert '<option value="demo" selected>demo (image built on first start)</option>' in html
    assert "your limit allows 1" in html  # two GPUs on the host, one per container


def test_named_server_is_its_project(tmp_path, make_core):
    spawner = _spawner(tmp_path, make_core, name="demo")
    assert spawner._project_name() == "demo"
    spawner.user_options = {"project": "other"}
    with pytest.raises(SpawnRefused) as refused:
        spawner._project_name()
    assert "Start a server named 'other'" in refused.value.jupyterhub_message
    default = _spawner(tmp_path, make_core)
    default.user_options = {"project": "other"}
    assert default._project_name() == "other"


def test_progress_streams_messages_until_the_spawn_ends(tmp_path, make_core):
    spawner = _spawner(tmp_path, make_core, name="demo")

    async def follow():
        spawner._starting = True
        spawner._say("Building the image of demo", 30)
        seen = []

        async def finish():
            await asyncio.sleep(0.4)
            spawner._say("Waiting for the server to answer", 80)
            spawner._starting = False

        task = asyncio.ensure_future(finish())
        async for event in spawner.progress():
            seen.append(event["message"])
        await task
        return seen

    assert asyncio.run(follow()) == ["Building the image of demo", "Waiting for the server to answer"]


def test_example_config_loads(engine):
    config = load_config(str(REPO / "examples/jupyterhub_config.py"))  # without the start-up checks
    assert config.JupyterHub.spawner_class == "ds01"
    assert config.JupyterHub.allow_named_servers is True
    assert config.JupyterHub.hub_ip  # the Docker bridge address, where containers reach the hub


def test_entry_point():
    from importlib.metadata import entry_points

    found = {e.name: e for e in entry_points(group="jupyterhub.spawners")}
    assert found["ds01"].load() is DS01Spawner


def test_server_extension_inside_a_container_answers_in_container_mode(monkeypatch, tmp_path):
    """DS01_MODE=container (set by the single-user image) swaps in the backend that needs no Docker: the same
    routes, and those the hub does from outside (deploy, build, terminal...) answer a clear 409."""
    from ds01_jupyter.core import Settings
    from ds01_jupyter.core.errors import NotFound
    from ds01_jupyter.core.requests import DeployRequest
    from ds01_jupyter.server import container_mode
    from ds01_jupyter.server.backend import NotAvailableHere

    monkeypatch.setenv("DS01_MODE", "container")
    monkeypatch.setenv("DS01_PROJECT", "demo")
    assert container_mode.active()
    guard = container_mode.InsideGuard("demo")
    backend = container_mode.InsideBackend(container_mode.ContainerCore(Settings()), User.current(), guard)
    assert backend.version() == {"mode": "container", "project": "demo"}
    with pytest.raises(NotFound):
        backend.check_project("other")
    for refused in (backend.deploy(backend.user, DeployRequest("demo")), backend.build(backend.user, "demo"),
                    backend.terminal(backend.user, "demo"), backend.storage(backend.user, None)):
        with pytest.raises(NotAvailableHere) as err:
            asyncio.run(refused)
        assert err.value.status == 409 and err.value.hint
    overview = asyncio.run(backend.overview(backend.user))
    assert [p["name"] for p in overview["projects"]] == ["demo"] and overview["mode"] == "container"

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "image-file").write_text("from the image")
    before = container_mode.snapshot(str(tmp_path))
    (tmp_path / "new.csv").write_text("1,2")
    after = container_mode.snapshot(str(tmp_path))
    assert set(after) - set(before) == {str(tmp_path / "new.csv")}


def test_rescue_from_inside_copies_regular_files_only(tmp_path):
    """Inside a container: work files into .rescued/<time>/<path>, links never followed, the quota kept."""
    from ds01_jupyter.core.errors import QuotaExceeded
    from ds01_jupyter.core.findings import WORK, Audit, Finding
    from ds01_jupyter.server.container_rescue import rescue_inside

    outside, workspace = tmp_path / "tmp", tmp_path / "workspace"
    outside.mkdir()
    workspace.mkdir()
    (outside / "result.csv").write_text("1,2\n")
    (tmp_path / "secret").write_text("not mine")
    (outside / "link.csv").symlink_to(tmp_path / "secret")
    audit = Audit("demo", "demo._.alice", "running")
    audit.findings = [Finding(path=str(outside / n), kind=WORK, size=4, source="writable-layer")
                      for n in ("result.csv", "link.csv", "gone.csv")]
    with pytest.raises(QuotaExceeded):
        rescue_inside(audit, workspace, quota=10)
    assert not (workspace / ".rescued").exists() or not any((workspace / ".rescued").iterdir())

    result = rescue_inside(audit, workspace, quota=None)
    folder = Path(result.folder)
    assert folder.parent == workspace / ".rescued" and result.files == 2 and result.bytes == 4
    assert (folder / str(outside / "result.csv")[1:]).read_text() == "1,2\n"
    link = folder / str(outside / "link.csv")[1:]
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "secret")  # kept as a link, never followed
    assert {s["path"]: s["why"] for s in result.skipped} == {
        str(outside / "gone.csv"): "vanished before it could be copied"
    }
    assert not list((workspace / ".rescued").glob("*.partial"))


def _roots_spawner(make_core, user) -> DS01Spawner:
    """A spawner of a hub run as root, for a real Unix user."""
    settings = make_core.settings(gpus=fake_gpus(0))
    return DS01Spawner(
        user=_HubUser(user.name), orm_spawner=_OrmSpawner(""), user_mapper=lambda n: user,
        limits_file=settings.limits_file, gpu_inventory=settings.gpu_inventory, gpu_request="env",
        lock_dir=settings.lock_dir,
    )


def test_a_stop_by_a_hub_run_as_root_never_removes_a_file_through_the_users_link(make_core, other_user, project_name):
    """The notice of a stop lies in her home: root removing it by path would follow a link she made of its folder
    (to /etc/docker, say) and remove a file of the same name there (daemon.json for a server named daemon)."""
    import subprocess
    import tempfile

    spawner = _roots_spawner(make_core, other_user)
    name = project_name()
    spawner.core.projects.create(other_user, name)
    spawner.core.containers.deploy(other_user, name, gpus=0)
    victim = Path(tempfile.mkdtemp(prefix="ds01-victim-"))  # root's, 0700
    (victim / f"{name}.json").write_text("{}")
    hub = spawner._notice_file(other_user, name).parent
    hub.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chown", "-R", f"{other_user.uid}:{other_user.gid}", str(other_user.home / ".local")], check=True)
    hub.symlink_to(victim)
    try:
        spawner._retire(other_user, name)  # nothing to say: the notice is removed
        assert not spawner.core.containers.list(other_user)  # retired
        assert (victim / f"{name}.json").exists()
    finally:
        subprocess.run(["rm", "-rf", str(victim)], check=True)


INSIDE_STOP = r"""
import asyncio, os, subprocess, sys
from ds01_jupyter.core import Settings, User
from ds01_jupyter.core.errors import EngineUnavailable, UnsavedWork
from ds01_jupyter.core.requests import StopRequest
from ds01_jupyter.server import container_mode

job = subprocess.Popen(["sleep", "1000"])
backend = container_mode.InsideBackend(container_mode.ContainerCore(Settings()), User.current(),
                                       container_mode.InsideGuard("demo"))
try:
    asyncio.run(backend.stop(backend.user, "demo", StopRequest.from_dict({})))
except UnsavedWork as err:
    print("refused:", err.message)
try:  # asked to stop them: on to the hub (none listens here)
    asyncio.run(backend.stop(backend.user, "demo", StopRequest.from_dict({"stop_processes": True})))
except EngineUnavailable as err:
    print("to the hub:", err.message)
job.kill()
"""


def test_the_stop_button_inside_a_hub_server_refuses_while_work_runs(tmp_path):
    """Inside, a stop is the hub's, which stops every process it finds: the server looks first, as the host does.
    Run in a PID namespace of its own, where only this server and its job run, as in a container."""
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a PID namespace needs root and unshare")
    env = {**os.environ, "DS01_MODE": "container", "DS01_PROJECT": "demo", "JUPYTERHUB_USER": "alice",
           "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_API_TOKEN": "t"}
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", INSIDE_STOP],
                          capture_output=True, text=True, timeout=60, env=env)
    said = done.stdout + done.stderr
    assert "refused: Stopping demo would kill 1 running process(es): sleep 1000" in done.stdout, said
    assert "to the hub: The hub cannot be reached" in done.stdout, said


def test_a_hub_stop_that_cannot_rescue_everything_still_ends_the_server_and_says_so(make_core, other_user,
                                                                                    project_name):
    """A file of root's inside (0600) cannot be copied as her: the container is kept, stopped, never running on
    behind a hub that believes it stopped, and the notice says why."""
    spawner = _roots_spawner(make_core, other_user)
    name = project_name()
    spawner.core.projects.create(other_user, name)
    cid = spawner.core.containers.deploy(other_user, name, gpus=0).container.id
    code, out = spawner.core.engine.exec(cid, ["sh", "-c", "echo x > /opt/secret.bin && chmod 600 /opt/secret.bin"],
                                         user="0:0")
    assert code == 0, out
    spawner._retire(other_user, name)
    record = spawner.core.engine.get_container(cid)
    assert record is not None and not record.running
    notice = spawner._last_stop(other_user, name)["message"]
    assert "kept (stopped)" in notice and "/opt/secret.bin" in notice
