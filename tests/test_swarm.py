"""A cluster of Docker hosts under Docker Swarm (issue 20), against a real Swarm of three extra dockerd nodes.

One session-wide cluster (tests/swarm_helpers.py, .ci/swarm); each test makes its own projects and removes its
containers, and with them their claims.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BASE_IMAGE, REQUIRE_DOCKER
from hub_helpers import chp_fixture, singleuser_fixture  # noqa: F401 - fixtures
from swarm_helpers import start_swarm

from ds01_jupyter.core import labels as L
from ds01_jupyter.core import workspace_proof
from ds01_jupyter.core.errors import DS01Error, InvalidRequest
from ds01_jupyter.core.swarm_engine import UNREACHABLE

pytestmark = pytest.mark.docker
WORKER = Path(__file__).with_name("swarm_worker.py")


@pytest.fixture(scope="session")
def swarm(engine):
    yield from start_swarm(REQUIRE_DOCKER, BASE_IMAGE)


@pytest.fixture
def cluster(swarm, make_core, tmp_path):
    yield swarm
    swarm.clean(tmp_path)


def new_project(core, user, name):
    core.projects.create(user, name)
    return name


def test_deploy_on_each_node_names_it_and_everything_works_there(cluster, make_core, user, project_name):
    core = cluster.core(make_core)
    nodes = core.engine.nodes(check=True)
    assert [n.name for n in nodes] == ["n1", "n2", "n3"]
    assert all(n.usable and len(n.gpus) == 2 for n in nodes)
    for node in ("n1", "n2", "n3"):
        project = new_project(core, user, project_name())
        result = core.containers.deploy(user, project, gpus=1, node=node)
        status = result.container
        assert status.node == node and status.to_dict()["node"] == node and status.running
        assert status.gpus[0] in cluster.nodes[node]["gpus"]
        # A plain container on that node's own engine, with the same name and labels as on one host.
        assert cluster.docker(node, "inspect", "-f", "{{.State.Status}}", status.name) == "running"
        code, out = core.containers.exec(user, project, ["sh", "-c", "echo hi > /workspace/x; cat /workspace/x"])
        assert (code, out.strip()) == (0, b"hi")
        argv = core.containers.interactive(user, project, ["bash"], tty=True)  # a terminal: that node's engine
        assert argv[argv.index("-H") + 1] == cluster.endpoint(node)
        claim = core.engine.claims.get("gpu", status.gpus[0])
        assert claim is not None and claim.container == status.name
        assert core.containers.stop(user, project, force=True).state == "exited"
        assert core.containers.start(user, project).running
        listed = {s.project: s.node for s in core.containers.list(user)}
        assert listed[project] == node
        core.containers.retire(user, project)
        assert core.engine.claims.get("gpu", status.gpus[0]) is None
        assert core.engine.claims.get("name", status.name) is None


def test_placement_spreads_gpus_and_a_pin_to_an_unknown_node_is_refused(cluster, make_core, user, project_name):
    core = cluster.core(make_core)
    placed = []
    since = time.time()
    for _ in range(3):
        project = new_project(core, user, project_name())
        placed.append(core.containers.deploy(user, project, gpus=1).container.node)
    assert sorted(placed) == ["n1", "n2", "n3"]  # least loaded node first
    nodes = {n["name"]: n for n in core.nodes()["nodes"]}
    assert all(len(n["free_gpus"]) == 1 and n["containers"] >= 1 and n["state"] == "ready" for n in nodes.values())
    # Events: the three nodes' streams merged, each event naming its node.
    started = {}
    for event in core.follow_events(user, since=since, window=1.0):
        if event["action"] == "tick" and len(started) == 3 or event["time"] > since + 120:
            break
        if event["action"] == "start":
            started[event["name"]] = event["node"]
    assert sorted(started.values()) == ["n1", "n2", "n3"]
    for status in core.containers.list(user):
        assert "".join(core.containers.logs(user, status.project, tail=5)) == ""  # sleep infinity says nothing
    project = new_project(core, user, project_name())
    with pytest.raises(InvalidRequest, match="n1, n2, n3"):
        core.containers.deploy(user, project, gpus=1, node="nowhere")
    cpu = core.containers.deploy(user, project, gpus=0).container
    assert cpu.node in ("n1", "n2", "n3") and not cpu.gpus


def test_concurrent_deploys_from_two_processes_never_share_a_gpu_or_a_name(cluster, make_core, user, project_name):
    core = cluster.core(make_core)
    projects = [new_project(core, user, project_name()) for _ in range(10)]
    for project in projects:
        core.images.build(user, project)
    # Two "hosts": each process has its own allocation lock folder, so only the Swarm's claims keep them apart.
    procs = []
    for side in ("a", "b"):
        settings = cluster.settings(make_core, lock_dir=str(make_core.tmp_path / f"locks-{side}"))
        raw = {k: getattr(settings, k) for k in ("lock_dir", "base_image", "gpu_request", "interface", "stop_timeout",
                                                 "limits_file", "gpu_inventory", "engine", "swarm_manager",
                                                 "swarm_registry")}
        who = {"name": user.name, "uid": user.uid, "gid": user.gid, "home": str(user.home)}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(raw), json.dumps(who), *projects],
                                      stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).parent.parent)))
    results = [r for proc in procs for r in json.loads(proc.communicate(timeout=600)[0])]
    assert len(results) == 20
    ok = [r for r in results if r["ok"]]
    errors = {r["error"] for r in results if not r["ok"]}
    assert errors <= {"GpuUnavailable"}, results
    created = [r for r in ok if r["created"]]
    assert len({r["name"] for r in created}) == len(created)  # each name made once
    gpus = [g for r in created for g in r["gpus"]]
    assert len(gpus) == len(set(gpus)) == 6  # all six GPUs given, none twice
    for r in ok:  # the other process's deploy of a name found the one container
        assert r["id"] == next(c["id"] for c in created if c["name"] == r["name"])
    listed = core.containers.list(user)
    held = [g for s in listed for g in s.gpus]
    assert len(held) == len(set(held)) == 6


def test_claims_of_a_container_removed_behind_ds01s_back_are_cleaned(cluster, make_core, user, project_name):
    core = cluster.core(make_core)
    project = new_project(core, user, project_name())
    first = core.containers.deploy(user, project, gpus=1, node="n1").container
    cluster.docker("n1", "rm", "-f", first.name)  # not through ds01: its claims stay behind
    assert core.engine.claims.get("name", first.name) is not None
    assert core.engine.claims.get("gpu", first.gpus[0]) is not None
    again = core.containers.deploy(user, project, gpus=2, node="n1").container  # both of n1's GPUs, same name
    assert again.created_at and again.id != first.id and sorted(again.gpus) == cluster.nodes["n1"]["gpus"]
    assert core.engine.claims.get("gpu", first.gpus[0]).container == again.name
    cluster.docker("n1", "rm", "-f", again.name)
    cleaned = core.nodes()["claims_cleaned"]  # ds01 nodes clears what points at nothing
    assert f"name {again.name}" in cleaned and all(f"gpu {g}" in cleaned for g in again.gpus)
    assert core.engine.claims.get("name", again.name) is None


def test_guard_and_rescue_of_a_container_on_a_worker(cluster, make_core, user, project_name):
    core = cluster.core(make_core)
    project = new_project(core, user, project_name())
    status = core.containers.deploy(user, project, gpus=0, node="n2").container
    assert status.node == "n2"
    code, _ = core.containers.exec(user, project, ["sh", "-c", "mkdir -p /tmp/work && echo result > /tmp/work/a.csv"])
    assert code == 0
    # The /workspace check a root start makes for a container on another machine: through the node's engine.
    record = core.engine.get_container(status.name)
    folder = user.home / "workspace" / project
    assert core.engine.sees_pid_of(record)  # here the nodes share this machine's /proc
    assert workspace_proof.mismatch(core.engine, user, record, folder) == ""
    elsewhere = user.home / "workspace" / new_project(core, user, project_name())
    assert "not the project folder" in workspace_proof.mismatch(core.engine, user, record, elsewhere)
    assert not [p for p in (*folder.iterdir(), *elsewhere.iterdir()) if p.name.startswith(".ds01-workspace-proof")]
    audit = core.guard.audit(user, project)
    assert any(f.path.endswith("/tmp/work/a.csv") for f in audit.findings), audit
    retired = core.guard.retire(user, project, mode="rescue")
    rescued = [p for p in (user.home / "workspace" / project).rglob("a.csv")]
    assert rescued and rescued[0].read_text() == "result\n", retired
    assert cluster.docker("n2", "ps", "-aq", "--filter", f"name={status.name}") == ""


def test_a_root_start_for_a_user_checks_workspace_through_the_engine_where_pids_are_not_ours(
        cluster, make_core, other_user, project_name):
    core = cluster.core(make_core)
    core.engine.sees_pid_of = lambda record: False  # as if the node were another machine (its /proc not ours)
    project = new_project(core, other_user, project_name())
    try:
        status = core.containers.deploy(other_user, project, gpus=0, node="n2").container
        assert status.running and status.node == "n2"  # started offline, proved, then given its network
        assert core.engine.get_container(status.name).ip_address
    finally:
        core.containers.retire(other_user, project)


def test_a_kernel_on_a_worker_is_reached_at_its_address_there(cluster, make_core, user, project_name):
    from jupyter_client import BlockingKernelClient

    core = cluster.core(make_core)
    project = new_project(core, user, project_name())
    status = core.containers.deploy(user, project, gpus=0, node="n3").container
    assert status.node == "n3"
    key = os.urandom(16).hex()
    ports = [40001, 40002, 40003, 40004, 40005]
    info, stream = core.kernels.attach(user, project, "k" + key[:8], key, ports)
    try:
        assert info["ip"].startswith("10.")  # on n3's own address pool
        client = BlockingKernelClient()
        client.load_connection_info({"transport": "tcp", "ip": info["ip"], "key": key.encode(),
                                     "signature_scheme": "hmac-sha256", **dict(zip(
                                         ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port"),
                                         ports))})
        client.start_channels(hb=False)  # a heartbeat missed on a busy 2-CPU host is not what is tested here
        try:
            # wait_for_ready also waits until IOPub delivers (a SUB socket's subscription arrives late under load)
            client.wait_for_ready(timeout=180)
            out = []
            client.execute_interactive("import os; print(os.environ['DS01_PROJECT'])", timeout=120,
                                       output_hook=lambda m: out.append(m["content"].get("text", "")))
            assert "".join(out).strip() == project
        finally:
            client.stop_channels()
    finally:
        core.kernels.signal(user, project, info["container"], info["pid"], 9)
        stream.close()


def test_the_hub_spawns_a_named_server_on_a_worker(cluster, make_core, chp, singleuser, engine, tmp_path):
    from test_hub_e2e import ALICE, UIDS, make_hub

    from ds01_jupyter.core.names import container_name

    for folder in [tmp_path, *tmp_path.parents]:  # each hub user reaches their own home, as on a real host
        if str(folder) in ("/tmp", "/"):
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    extra = (f'c.DS01Spawner.engine = "swarm"\nc.DS01Spawner.swarm_manager = "{cluster.manager}"\n'
             f'c.DS01Spawner.swarm_registry = "{cluster.registry}"\n')
    hub = make_hub(tmp_path, chp, singleuser, extra)
    drained = [cluster.nodes["n1"]["id"], cluster.nodes["n2"]["id"]]  # only n3, a worker, takes containers
    for node in drained:
        cluster.docker("n1", "node", "update", "--availability", "drain", node)
    hub.start()
    try:
        events = hub.spawn(ALICE, "demo", {"gpus": 0})
        assert events and events[-1].get("ready"), (events, hub.log())
        assert hub.user_get(ALICE, "demo", "api/status").status_code == 200  # the hub reaches it on n3
        core = cluster.core(make_core)
        record = core.engine.get_container(container_name("demo", ALICE))
        assert record.node == "n3" and record.running and record.labels[L.INTERFACE] == "jupyterhub"
        code, _ = core.engine.exec(record.id, ["sh", "-c", "echo 1,2 > /tmp/result.csv"],
                                   user=f"{UIDS[ALICE]}:{UIDS[ALICE]}")
        assert code == 0
        hub.delete(ALICE, "demo")  # stop rescues as on one host
        assert core.engine.get_container(record.id) is None
        assert list((hub.workspace(ALICE, "demo") / ".rescued").glob("*/tmp/result.csv"))
    finally:
        hub.stop()
        for node in drained:
            cluster.docker("n1", "node", "update", "--availability", "active", node)
        cluster.clean(tmp_path)
        for image in engine.list_images({L.USER: ALICE}):
            try:
                engine.remove_image(image.id)
            except DS01Error:  # still used by a container of a concurrent run
                pass


# Last: a node's restart leaves it without its own address pool (see .ci/swarm start).
def test_a_killed_node_shows_node_unreachable_keeps_its_claims_and_comes_back(cluster, make_core, user, project_name):
    core = cluster.core(make_core)
    project = new_project(core, user, project_name())
    status = core.containers.deploy(user, project, gpus=2, node="n3").container
    assert status.node == "n3" and len(status.gpus) == 2
    other = new_project(core, user, project_name())
    cluster.kill("n3")
    try:
        down = core.containers.status(user, project)
        assert down.state == UNREACHABLE and down.summary == UNREACHABLE and down.node == "n3"
        assert {s.project: s.state for s in core.containers.list(user)}[project] == UNREACHABLE
        assert core.engine.claims.get("gpu", status.gpus[0]) is not None
        # The reaper keeps it (never retired), and the rest of the cluster works.
        assert all(d.action != "retire" for d in core.reaper.run(user) if d.project == project)
        elsewhere = core.containers.deploy(user, other, gpus=1).container
        assert elsewhere.node != "n3" and elsewhere.running
        nodes = {n["name"]: n for n in (n.to_dict() for n in core.engine.nodes(check=True))}
        assert nodes["n3"]["state"] == UNREACHABLE
    finally:
        cluster.start("n3")
    core.engine.nodes(check=True)
    again = core.containers.status(user, project)  # found again: its engine stopped it when it came back
    assert again.state != UNREACHABLE and again.node == "n3" and again.gpus == status.gpus
    assert core.containers.start(user, project).running  # its GPUs were still claimed for it
