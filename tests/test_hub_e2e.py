"""End to end: a real JupyterHub with configurable-http-proxy spawns DS01 project containers.

Hub users (alice, bob, carol, each with this run's suffix) are not Unix accounts: the spawner's ``user_mapper``
gives them homes under the test's folder and uids of their own. The hub talks
to each single-user server on the container's bridge address; the server
talks to the hub on the bridge's gateway address.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import tempfile
import time
from pathlib import Path

import pytest
import requests
from conftest import fake_gpus, remove_made
from hub_helpers import Hub, chp_fixture, free_port, singleuser_fixture  # noqa: F401 - fixtures

from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import DS01Error
from ds01_jupyter.core.names import container_name
from ds01_jupyter.hub.spawner import bridge_ip

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

# Hub users of this run's own (a real alice on a shared host keeps her containers and images), with uids no
# account has as root (the workspaces are given to them); a non-root runner can only give its own.
RUN = secrets.token_hex(3)
ALICE, BOB, CAROL = (f"{name}{RUN}" for name in ("alice", "bob", "carol"))


def _free_uids(count: int) -> list[int]:
    start, found = 300000 + secrets.randbelow(600000), []
    while len(found) < count:
        try:
            pwd.getpwuid(start)
        except KeyError:
            found.append(start)
        start += 1
    return found


UIDS = dict(zip((ALICE, BOB, CAROL), _free_uids(3) if os.geteuid() == 0 else [os.getuid()] * 3))
CONFIG = """\
from pathlib import Path
from ds01_jupyter.core import User

c.JupyterHub.spawner_class = "ds01"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.allow_named_servers = True
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "{gateway}"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120  # a busy test host starts JupyterLab slowly
c.Spawner.poll_interval = 2
c.JupyterHub.services = [{{"name": "tester", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
    "services": ["tester"],
}}, {{
    # A server may stop itself (the sidebar's Stop inside the container).
    "name": "server",
    "scopes": ["users:activity!user", "access:servers!server", "servers!server"],
}}]
UIDS = {uids!r}
c.DS01Spawner.user_mapper = lambda name: User(name, UIDS[name], UIDS[name], Path("{tmp}/homes") / name)
c.DS01Spawner.singleuser_image = "{singleuser}"
c.DS01Spawner.singleuser_wheels = "{wheels}"
c.DS01Spawner.limits_file = "{tmp}/limits.yaml"
c.DS01Spawner.gpu_inventory = "{tmp}/gpus.json"
c.DS01Spawner.gpu_request = "env"
c.DS01Spawner.lock_dir = "{tmp}/locks"
"""
LIMITS = """\
defaults:
  max_containers_per_user: 1
  max_mig_instances: 1
  memory: 2g
  memory_swap: 2g
user_overrides:
  {carol}:
    max_runtime: 30s
"""
CULLER = """
import sys
c.JupyterHub.services.append({{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout={timeout}", "--cull-every=1"],
}})
c.JupyterHub.load_roles.append({{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}})
"""


def make_hub(tmp: Path, chp: str, singleuser: dict, extra: str = "") -> Hub:
    """A hub of the test's own config (hub users who are not Unix accounts, fake GPUs, its own limits)."""
    token = secrets.token_hex(16)
    port = free_port()
    (tmp / "limits.yaml").write_text(LIMITS.format(carol=CAROL))
    gpus = fake_gpus(1)
    (tmp / "gpus.json").write_text(json.dumps(gpus))
    config = tmp / "jupyterhub_config.py"
    config.write_text(CONFIG.format(
        port=port, gateway=bridge_ip(), hub_port=free_port(), api_port=free_port(), chp=chp, tmp=tmp,
        token=token, uids=UIDS, singleuser=singleuser["image"], wheels=singleuser["wheels"],
    ) + extra)
    hub = Hub(tmp, config, f"http://127.0.0.1:{port}", token)
    hub.gpus = gpus
    hub.workspace = lambda user, project: tmp / "homes" / user / "workspace" / project
    return hub


@pytest.fixture
def hub_config():
    """Extra lines for the hub's config (override in a test module or with parametrize)."""
    return ""


@pytest.fixture
def hub(tmp_path, chp, singleuser, engine, hub_config):
    # As on a real host, each user can reach their own home: the rescue on stop writes with their uid,
    # and pytest's folders are 0700 (search permission only is added, nothing becomes listable).
    for folder in [tmp_path, *tmp_path.parents]:
        if str(folder) in (tempfile.gettempdir(), "/"):
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    hub = make_hub(tmp_path, chp, singleuser, hub_config)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        prefix = str(tmp_path)
        for record in engine.list_containers(L.managed()):
            if record.labels.get(L.WORKSPACE, "").startswith(prefix):
                remove_made(engine, record)
        for image in engine.list_images(L.managed()):
            if image.labels.get(L.USER) in UIDS and any(
                t.startswith(tuple(f"ds01-{u}/" for u in UIDS)) for t in image.tags
            ):
                try:
                    engine.remove_image(image.id)
                except DS01Error:
                    pass  # still used by a container of a concurrent run


def _ready(events) -> bool:
    return bool(events) and bool(events[-1].get("ready"))


def test_named_server_is_the_project_container(hub, engine):
    events = hub.spawn(ALICE, "demo", {"gpus": 0})
    assert _ready(events), f"last events: {events[-3:]}\nhub log (end):\n{hub.log()[-4000:]}"  # (not cut short)
    messages = " | ".join(e.get("message", "") for e in events)
    assert "Building the image of demo" in messages and "Waiting for the server" in messages, messages

    # The server answers through the proxy, and it runs in the project's container.
    assert hub.user_get(ALICE, "demo", "api/status").status_code == 200
    record = engine.get_container(container_name("demo", ALICE))
    assert record.running and record.labels[L.PROJECT] == "demo" and record.labels[L.INTERFACE] == "jupyterhub"

    # /workspace is the project folder on the host.
    put = hub.session.put(f"{hub.url}/user/{ALICE}/demo/api/contents/hello.txt", timeout=30,
                          json={"type": "file", "format": "text", "content": "hi from the hub"})
    assert put.status_code in (200, 201), put.text
    host_file = hub.workspace(ALICE, "demo") / "hello.txt"
    assert host_file.read_text() == "hi from the hub"
    assert host_file.stat().st_uid == UIDS[ALICE]

    # A second server is over alice's limit of one container: refused with the limit named.
    refused = hub.spawn(ALICE, "second", {"gpus": 0})
    assert refused[-1].get("failed") and "max_containers_per_user" in refused[-1]["message"], refused
    bad = hub.spawn(ALICE, "third", {"gpus": -1})
    assert bad[-1].get("status") == 400 and "'gpus' must be a whole number" in bad[-1]["message"], bad

    # Work written outside /workspace is rescued when the server stops.
    code, out = engine.exec(record.id, ["sh", "-c", "echo 1,2 > /tmp/result.csv"], user=f"{UIDS[ALICE]}:{UIDS[ALICE]}")
    assert code == 0, out
    hub.delete(ALICE, "demo")
    assert engine.get_container(record.id) is None
    rescued = list((hub.workspace(ALICE, "demo") / ".rescued").glob("*/tmp/result.csv"))
    assert len(rescued) == 1 and rescued[0].read_text() == "1,2\n"
    assert "rescued" in (hub.tmp / "hub.log").read_text()


def test_two_users_never_share_a_gpu(hub, engine):
    uuid = hub.gpus[0]["uuid"]
    assert _ready(hub.spawn(ALICE, "demo", {"gpus": 1})), hub.log()
    alice = engine.get_container(container_name("demo", ALICE))
    assert L.gpu_uuids(alice.labels) == [uuid]

    refused = hub.spawn(BOB, "demo", {"gpus": 1})
    assert refused[-1].get("failed") and "Not enough free GPUs" in refused[-1]["message"], refused
    assert engine.get_container(container_name("demo", BOB)) is None

    hub.delete(ALICE, "demo")  # retired: its GPU is free at once
    assert _ready(hub.spawn(BOB, "demo", {"gpus": 1})), hub.log()
    bob = engine.get_container(container_name("demo", BOB))
    assert L.gpu_uuids(bob.labels) == [uuid]
    hub.delete(BOB, "demo")


def test_restarted_hub_finds_running_servers(hub, engine):
    assert _ready(hub.spawn(BOB, "demo", {"gpus": 0})), hub.log()
    before = engine.get_container(container_name("demo", BOB))
    hub.stop()
    assert engine.get_container(before.id).running  # cleanup_servers = False: the server outlives the hub
    hub.start()
    deadline = time.monotonic() + 30
    while not (hub.server(BOB, "demo") or {}).get("ready"):
        assert time.monotonic() < deadline, hub.log()
        time.sleep(0.3)
    assert hub.user_get(BOB, "demo", "api/status").status_code == 200
    assert engine.get_container(container_name("demo", BOB)).id == before.id
    hub.delete(BOB, "demo")
    assert engine.get_container(before.id) is None


def _wait_gone(hub, user, server, seconds=60):
    deadline = time.monotonic() + seconds
    while hub.server(user, server) is not None:
        assert time.monotonic() < deadline, hub.log()
        time.sleep(0.5)


@pytest.mark.parametrize("hub_config", [CULLER.format(timeout=10)])
def test_idle_culler_stops_through_the_guard(hub, engine):
    """jupyterhub-idle-culler deletes the idle server; its work is rescued like on any stop."""
    assert _ready(hub.spawn(BOB, "demo", {"gpus": 0})), hub.log()
    record = engine.get_container(container_name("demo", BOB))
    code, _ = engine.exec(record.id, ["sh", "-c", "echo idle > /tmp/idle.txt"], user=f"{UIDS[BOB]}:{UIDS[BOB]}")
    assert code == 0
    _wait_gone(hub, BOB, "demo", 90)
    assert engine.get_container(record.id) is None
    assert [p.read_text() for p in (hub.workspace(BOB, "demo") / ".rescued").glob("*/tmp/idle.txt")] == ["idle\n"]


def test_runtime_limit_stops_the_server(hub, engine):
    """carol's max_runtime (30 s: the spawn itself may take 20 on a busy host) is applied by the spawner's
    poll, with the same rescue."""
    assert _ready(hub.spawn(CAROL, "demo", {"gpus": 0})), hub.log()
    record = engine.get_container(container_name("demo", CAROL))
    code, _ = engine.exec(record.id, ["sh", "-c", "echo late > /tmp/late.txt"], user=f"{UIDS[CAROL]}:{UIDS[CAROL]}")
    assert code == 0
    _wait_gone(hub, CAROL, "demo", 90)
    assert engine.get_container(record.id) is None
    assert [p.read_text() for p in (hub.workspace(CAROL, "demo") / ".rescued").glob("*/tmp/late.txt")] == ["late\n"]
    assert "max_runtime" in hub.log()


def test_sidebar_inside_the_server(hub, engine):
    """The server extension inside the container: its own project, findings from a filesystem walk, stop via the hub."""
    assert _ready(hub.spawn(ALICE, "demo", {"gpus": 0})), hub.log()
    version = hub.user_get(ALICE, "demo", "ds01/version")
    assert version.status_code == 200, version.text
    assert version.json()["mode"] == "container" and version.json()["project"] == "demo"
    projects = hub.user_get(ALICE, "demo", "ds01/projects").json()
    assert [p["name"] for p in projects["projects"]] == ["demo"] and projects["engine"]["available"] is False
    with hub.session.get(f"{hub.url}/user/{ALICE}/demo/ds01/events", stream=True, timeout=30) as events:
        lines = events.iter_lines(decode_unicode=True)
        assert next(lines) == "event: snapshot"
        snapshot = json.loads(next(lines)[len("data: "):])
    assert snapshot["projects"][0]["name"] == "demo" and snapshot["projects"][0]["container"]["running"]

    record = engine.get_container(container_name("demo", ALICE))
    code, _ = engine.exec(record.id, ["sh", "-c", "echo 3,4 > /tmp/inside.csv"], user=f"{UIDS[ALICE]}:{UIDS[ALICE]}")
    assert code == 0
    audit = hub.user_get(ALICE, "demo", "ds01/projects/demo/audit")
    assert audit.status_code == 200, audit.text
    work = [f["path"] for f in audit.json()["findings"] if f["kind"] == "work"]
    assert work == ["/tmp/inside.csv"], audit.json()
    assert hub.user_get(ALICE, "demo", "ds01/projects/demo/checkpoints").status_code == 200
    assert hub.user_get(ALICE, "demo", "ds01/projects/other/audit").status_code == 404
    checked = hub.session.post(f"{hub.url}/user/{ALICE}/demo/ds01/notebook-check",
                               json={"cells": ["df.to_csv('/tmp/out.csv')", "print(1)"]}, timeout=30)
    assert checked.status_code == 200, checked.text
    assert [f["path"] for f in checked.json()["findings"]] == ["/tmp/out.csv"]
    pruned = hub.session.post(
        f"{hub.url}/user/{ALICE}/demo/ds01/projects/demo/prune", json={"keep_last": 1}, timeout=30
    )
    assert pruned.status_code == 200 and pruned.json()["would_delete"] == [], pruned.text
    # Limits: the ones the spawner handed in (the admin's file is not readable in here); use is known on the host only.
    limits = hub.user_get(ALICE, "demo", "ds01/limits")
    assert limits.status_code == 200, limits.text
    assert limits.json()["limits"]["max_containers_per_user"] == 1 and limits.json()["containers"] is None
    assert "inside its project's container" in limits.json()["engine"]["reason"]

    # Rescue now, from inside: the work file lands in the workspace on the host; a link is never followed.
    code, _ = engine.exec(
        record.id, ["ln", "-s", "/etc/hostname", "/tmp/link.csv"], user=f"{UIDS[ALICE]}:{UIDS[ALICE]}"
    )
    assert code == 0
    rescue = hub.session.post(f"{hub.url}/user/{ALICE}/demo/ds01/projects/demo/rescue", timeout=60)
    assert rescue.status_code == 200, rescue.text
    result = rescue.json()
    assert result["files"] == 2 and result["bytes"] == 4 and result["folder"].startswith("/workspace/.rescued/"), result
    assert result["skipped"] == [], result
    folder = hub.workspace(ALICE, "demo") / result["folder"][len("/workspace/"):]
    assert os.readlink(folder / "tmp/link.csv") == "/etc/hostname"  # kept as a link, never followed
    assert (folder / "tmp/inside.csv").read_text() == "3,4\n"
    assert (folder / "tmp/link.csv").is_symlink()  # the link itself, not a copy of what it names
    assert {m["path"] for m in json.loads((folder / "MANIFEST.json").read_text())["files"]} == {
        "/tmp/inside.csv",
        "/tmp/link.csv",
    }
    assert engine.get_container(record.id).running
    assert hub.user_get(ALICE, "demo", "api/status").status_code == 200
    assert hub.session.post(f"{hub.url}/user/{ALICE}/demo/ds01/projects/other/rescue", timeout=30).status_code == 404

    stop = hub.session.post(f"{hub.url}/user/{ALICE}/demo/ds01/projects/demo/stop", timeout=30)
    assert stop.status_code == 202, stop.text
    _wait_gone(hub, ALICE, "demo", 60)
    assert engine.get_container(record.id) is None
    # Rescued twice: now (above) and by the hub when the server stopped.
    rescued = (hub.workspace(ALICE, "demo") / ".rescued").glob("*/tmp/inside.csv")
    assert [p.read_text() for p in rescued] == ["3,4\n", "3,4\n"]


def test_spawn_page_form_creates_a_project(hub, engine):
    """A user in the browser: the spawn page shows our form; posting it creates the project and starts it."""
    browser = requests.Session()
    browser.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = browser.cookies.get("_xsrf", path="/hub/")
    login = browser.post(f"{hub.url}/hub/login", data={"username": BOB, "password": "any", "_xsrf": xsrf}, timeout=30)
    assert login.status_code == 200, login.text[-500:]
    xsrf = browser.cookies.get("_xsrf", path="/hub/") or xsrf
    page = browser.get(f"{hub.url}/hub/spawn/{BOB}/fresh", timeout=30)
    assert page.status_code == 200
    assert 'name="project"' in page.text and "fresh (new project)" in page.text
    assert "your limit allows 1" in page.text  # one configured GPU, max_mig_per_container 1

    posted = browser.post(f"{hub.url}/hub/spawn/{BOB}/fresh", data={"project": "fresh", "gpus": "0", "_xsrf": xsrf},
                          timeout=60)
    assert posted.status_code == 200, posted.text[-500:]
    deadline = time.monotonic() + 90
    while not (hub.server(BOB, "fresh") or {}).get("ready"):
        assert time.monotonic() < deadline, hub.log()
        time.sleep(0.5)
    assert (hub.workspace(BOB, "fresh") / "README.md").exists()
    assert engine.get_container(container_name("fresh", BOB)).running
    hub.delete(BOB, "fresh")
