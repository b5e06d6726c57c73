"""Isolation between users on the real engine: capabilities, networks, trust in labels, names, volumes."""

from __future__ import annotations

import io
import logging
import os
import pwd
import secrets
import stat
import subprocess
import tarfile
import time
import urllib.request

import pytest
from conftest import fake_gpus, remove_made

from ds01_jupyter.core import User
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.engine import ContainerRecord, ImageRecord
from ds01_jupyter.core.errors import Forbidden, InvalidRequest
from ds01_jupyter.core.trust import distrust, network_name, own_labels

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="making Unix users and device nodes needs root")


@pytest.fixture
def unix_users(tmp_path, engine):
    """Make Unix accounts (useradd) with homes under tmp_path; remove them, their containers and network."""
    made: list[User] = []

    def make() -> User:
        name = "ds01t" + secrets.token_hex(3)
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        entry = pwd.getpwnam(name)
        user = User(name, entry.pw_uid, entry.pw_gid, tmp_path / f"home-{name}")
        made.append(user)
        return user

    yield make
    for user in made:
        for record in engine.list_containers(L.owned_by(user)):
            if record.labels.get(L.WORKSPACE, "").startswith(str(tmp_path)):
                remove_made(engine, record)
        for net in engine.api.networks(names=[network_name(user)]):
            engine.api.remove_network(net["Id"])
        subprocess.run(["userdel", user.name], check=False)
        subprocess.run(["groupdel", user.name], check=False, stderr=subprocess.DEVNULL)


def as_user(user: User) -> str:
    return f"{user.uid}:{user.gid}"


# -- 1. no capabilities; setuid files and device nodes in the workspace give nothing ------------
def test_setuid_binaries_and_device_nodes_in_the_workspace_give_nothing(make_core, unix_users, project_name, engine):
    core = make_core()
    bob = unix_users()
    name = project_name()
    project = core.projects.create(bob, name)
    record = core.engine.get_container(core.containers.deploy(bob, name).container.id)
    host = engine.api.inspect_container(record.id)["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"] and "no-new-privileges" in host["SecurityOpt"]

    # A setuid-root copy of `id`, placed in the workspace by root on the host.
    with tarfile.open(fileobj=engine.read_archive(record.id, "/usr/bin/id"), mode="r|") as tar:
        member = next(iter(tar))
        binary = tar.extractfile(member).read()
    suid = project.path / "suid-id"
    suid.write_bytes(binary)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    code, out = engine.exec(record.id, ["/workspace/suid-id", "-u"], user=as_user(bob))
    assert code == 0 and out.decode().strip() == str(bob.uid), out

    # A device node (/dev/mem's numbers), made there by root on the host, readable by all.
    node = project.path / "mem"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 1))
    code, out = engine.exec(record.id, ["head", "-c", "1", "/workspace/mem"], user=as_user(bob))
    assert code != 0 and b"not permitted" in out, out
    # Even root inside cannot make one: no capability is left.
    code, out = engine.exec(record.id, ["mknod", "/tmp/mem", "c", "1", "1"], user="0:0")
    assert code != 0, out

    # The workspace stays the user's, writable and visible on the host.
    code, out = engine.exec(record.id, ["sh", "-c", "echo ok > /workspace/written.txt"], user=as_user(bob))
    assert code == 0, out
    assert (project.path / "written.txt").read_text() == "ok\n"
    assert (project.path / "written.txt").stat().st_uid == bob.uid


# -- 2. one network per user ---------------------------------------------------------------
def _serve(engine, record, user: User) -> None:
    engine.exec(record.id, ["python3", "-m", "http.server", "8000", "--directory", "/workspace"], user=as_user(user),
                detach=True)


def _fetch_from_host(ip: str, path: str, deadline: float = 20.0) -> bytes:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://{ip}:8000/{path}", timeout=2) as answer:
                return answer.read()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.3)


def _fetch_inside(engine, record, user: User, ip: str) -> tuple[int, bytes]:
    script = f"import urllib.request; print(urllib.request.urlopen('http://{ip}:8000/secret.txt', timeout=3).read())"
    return engine.exec(record.id, ["python3", "-c", script], user=as_user(user))


def test_users_cannot_reach_each_others_containers_but_the_host_reaches_all(
    make_core, unix_users, project_name, engine
):
    core = make_core()
    alice, bob = unix_users(), unix_users()
    first, second, theirs = project_name(), project_name(), project_name()
    for user, name in ((alice, first), (alice, second), (bob, theirs)):
        core.projects.create(user, name)
    (core.projects.get(alice, first).path / "secret.txt").write_text("alice's\n")
    a1 = core.engine.get_container(core.containers.deploy(alice, first).container.id)
    a2 = core.engine.get_container(core.containers.deploy(alice, second).container.id)
    b1 = core.engine.get_container(core.containers.deploy(bob, theirs).container.id)

    # Each user has a bridge of their own, labelled with their name and uid; the IP is from it.
    for user, record in ((alice, a1), (alice, a2), (bob, b1)):
        net = engine.api.inspect_network(network_name(user))
        assert net["Labels"][L.USER] == user.name and net["Labels"][L.USER_ID] == str(user.uid)
        assert record.id in net["Containers"]
        assert net["Containers"][record.id]["IPv4Address"].split("/")[0] == record.ip_address
    assert network_name(alice) != network_name(bob)

    _serve(engine, a1, alice)
    assert _fetch_from_host(a1.ip_address, "secret.txt") == b"alice's\n"  # the host (kernels, hub, proxy)
    code, out = _fetch_inside(engine, b1, bob, a1.ip_address)
    assert code != 0 and b"alice's" not in out, out  # another user: no route through
    # The same user's containers may talk to each other (on purpose: a database beside a notebook).
    code, out = _fetch_inside(engine, a2, alice, a1.ip_address)
    assert code == 0 and b"alice's" in out, out
    # And the host reaches bob's as well.
    (core.projects.get(bob, theirs).path / "secret.txt").write_text("bob's\n")
    _serve(engine, b1, bob)
    assert _fetch_from_host(b1.ip_address, "secret.txt") == b"bob's\n"

    # A user's network lives as long as one of their containers does (Docker's address pools are small), unless
    # ds01's networks are few (kept_networks): then it is kept for their next deploy.
    core.containers.retire(alice, first)
    assert engine.api.networks(names=[network_name(alice)])
    core.engine.kept_networks = 0
    core.containers.retire(alice, second)
    assert not [n for n in engine.api.networks(names=[network_name(alice)]) if n["Name"] == network_name(alice)]


def _networks_of(engine, user):
    return [n["Id"] for n in engine.api.networks(names=[network_name(user)]) if n["Name"] == network_name(user)]


def test_a_kept_network_serves_the_next_deploy_and_gives_way_when_docker_has_no_range_left(
        make_core, unix_users, project_name, engine):
    core = make_core(kept_networks=100_000)
    alice, bob = unix_users(), unix_users()
    name = project_name()
    core.projects.create(alice, name)
    core.containers.deploy(alice, name)
    [kept] = _networks_of(engine, alice)
    core.containers.retire(alice, name)
    assert _networks_of(engine, alice) == [kept]  # kept after the last container went
    again = core.containers.deploy(alice, name).container
    assert _networks_of(engine, alice) == [kept]
    assert set(engine.api.inspect_network(kept)["Containers"]) == {again.id}  # the next deploy used it
    core.containers.retire(alice, name)

    # No address range left: the networks ds01 keeps unused give theirs back, and the deploy goes on.
    real = core.engine.api.create_network
    refused = []

    def create_network(*args, **kwargs):
        if not refused:
            refused.append(args[0])
            from docker.errors import APIError

            raise APIError("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                           "assign to the network")
        return real(*args, **kwargs)

    core.engine.api.create_network = create_network
    theirs = project_name()
    core.projects.create(bob, theirs)
    try:
        assert core.containers.deploy(bob, theirs).container.running
    finally:
        core.engine.api.create_network = real
    assert refused == [network_name(bob)]
    assert _networks_of(engine, alice) == []  # alice's unused network was given back
    assert len(_networks_of(engine, bob)) == 1


def test_two_networks_of_one_name_made_at_once_leave_one_and_deploys_work(make_core, unix_users, project_name, engine):
    """Docker's duplicate-name check is not atomic: two deploys at the same moment can each make the user's
    network. The next deploy leaves one (the first made) and is never refused with "network is ambiguous"."""
    core = make_core()
    alice = unix_users()
    first, second = project_name(), project_name()
    for name in (first, second):
        core.projects.create(alice, name)
    made = [engine.api.create_network(network_name(alice), driver="bridge", labels=L.owned_by(alice))["Id"]
            for _ in range(2)]  # what two racing deploys leave behind
    assert len([n for n in engine.api.networks(names=[network_name(alice)]) if n["Name"] == network_name(alice)]) == 2
    records = [core.engine.get_container(core.containers.deploy(alice, name).container.id) for name in (first, second)]
    left = [n for n in engine.api.networks(names=[network_name(alice)]) if n["Name"] == network_name(alice)]
    assert [n["Id"] for n in left] == [made[0]]  # the first made is kept, the empty second removed
    net = engine.api.inspect_network(made[0])
    assert {r.id for r in records} <= set(net["Containers"])


# -- 3. labels prove nothing by themselves -------------------------------------------------------
def _record(**overrides) -> ContainerRecord:
    labels = {L.MANAGED: "true", L.USER: "alice", L.USER_ID: "1001", L.GROUP_ID: "1001", L.PROJECT: "demo",
              L.WORKSPACE: "/home/alice/workspace/demo", L.WORK_MOUNT: "/workspace", L.PROTECTED: "true"}
    values = dict(id="c1", name="demo._.alice", state="running", image="sha256:i", image_id="sha256:i", labels=labels,
                  config_user="1001:1001", mounts=(("/workspace", "/home/alice/workspace/demo"),))
    values.update(overrides)
    return ContainerRecord(**values)


IMAGE = ImageRecord("sha256:i", ("ds01-alice/demo:latest",), 1, None,
                    {L.MANAGED: "true", L.USER: "alice", L.USER_ID: "1001", L.PROJECT: "demo"})


def test_distrust_checks_the_real_configuration_not_the_labels():
    tag = "ds01-alice/demo:latest"
    assert distrust(_record(), IMAGE, tag, 1001) == ""
    assert distrust(_record(), IMAGE, tag, None) == ""  # a folder we may not look into
    assert "name" in distrust(_record(name="demo._.alice2"), IMAGE, tag, 1001)
    assert "runs as" in distrust(_record(config_user=""), IMAGE, tag, 1001)
    assert "runs as" in distrust(_record(config_user="0:0"), IMAGE, tag, 1001)
    assert "mounts" in distrust(_record(mounts=(("/workspace", "/home/bob/workspace/demo"),)), IMAGE, tag, 1001)
    assert "belongs to uid 1002" in distrust(_record(), IMAGE, tag, 1002)
    assert "image" in distrust(_record(), None, tag, 1001)
    other = ImageRecord("sha256:i", ("ds01/base:latest",), 1, None, {})
    assert "not built by ds01" in distrust(_record(), other, tag, 1001)
    renamed = ImageRecord("sha256:i", ("someone/else:latest",), 1, None, IMAGE.labels)
    assert "not ds01-alice/demo" in distrust(_record(), renamed, tag, 1001)
    untagged = ImageRecord("sha256:i", ("<none>:<none>",), 1, None, IMAGE.labels)
    assert distrust(_record(), untagged, tag, 1001) == ""  # an older build of the project


def test_decision_labels_inherited_from_the_image_never_count():
    inherited = ImageRecord("sha256:i", (), 1, None, {**IMAGE.labels, L.PROTECTED: "true", L.GPU_UUIDS: "GPU-x"})
    record = _record(labels={**_record().labels, L.GPU_UUIDS: "GPU-x"})
    cleaned = own_labels(record, inherited)
    assert L.PROTECTED not in cleaned.labels and L.GPU_UUIDS not in cleaned.labels
    assert own_labels(record, IMAGE).labels[L.PROTECTED] == "true"  # set on the container, not by the image


def test_a_dockerfile_label_does_not_protect_from_the_reaper(make_core, user, project_name):
    core = make_core(limits="defaults:\n  max_runtime: 1s\n  idle_timeout: null\n  max_containers_per_user: 100\n")
    name = project_name()
    core.projects.create(user, name)
    dockerfile = core.images.dockerfile(user, name)
    dockerfile.write_text(dockerfile.read_text() + "LABEL ds01.protected=true ds01.gpu.uuids=GPU-forged\n")
    status = core.containers.deploy(user, name).container
    assert not status.protected and status.gpus == []
    time.sleep(1.2)
    decision = next(d for d in core.reaper.run(user) if d.project == name)
    assert decision.action == "stop" and "max_runtime" in decision.reason
    # Asked for explicitly, protection still works.
    other = project_name()
    core.projects.create(user, other)
    dockerfile = core.images.dockerfile(user, other)
    dockerfile.write_text(dockerfile.read_text() + "LABEL ds01.protected=true\n")
    assert core.containers.deploy(user, other, protected=True).container.protected


def test_hand_made_containers_with_our_labels_are_nobodys(make_core, unix_users, project_name, engine, caplog):
    gpus = fake_gpus(1)
    core = make_core(gpus=gpus, limits="defaults:\n  max_containers_per_user: 1\n")
    alice = unix_users()
    squatted, forged, real = project_name(), project_name(), project_name()
    for name in (squatted, forged, real):
        core.projects.create(alice, name)
    core.images.build(alice, squatted)
    made = []

    def by_hand(name: str, image: str, user: str | None, workspace, labels_extra=None) -> str:
        labels = {**L.owned_by(alice), L.GROUP_ID: str(alice.gid), L.PROJECT: name, L.WORKSPACE: str(workspace),
                  L.WORK_MOUNT: "/workspace", L.CREATED_AT: L.now_iso(), L.GPU_UUIDS: gpus[0]["uuid"],
                  L.GPU_SLOTS: "1", L.PROTECTED: "true", **(labels_extra or {})}
        host = engine.api.create_host_config(binds={str(workspace): {"bind": "/workspace", "mode": "rw"}})
        cid = engine.api.create_container(image, ["sleep", "infinity"], name=f"{name}._.{alice.name}", user=user,
                                          labels=labels, host_config=host)["Id"]
        made.append(cid)
        engine.api.start(cid)
        return cid

    try:
        # Right name, labels and image, but running as root: squats alice's project name.
        by_hand(squatted, core.images.tag(alice, squatted), "0:0", core.projects.get(alice, squatted).path)
        # Everything claimed in labels, from the base image, mounting some other folder.
        elsewhere = core.projects.get(alice, real).path.parent.parent / "elsewhere" / forged
        elsewhere.mkdir(parents=True)
        by_hand(forged, "ds01/base:latest", as_user(alice), elsewhere)
        with caplog.at_level(logging.WARNING, logger="ds01_jupyter.containers"):
            assert core.containers.list(alice) == []  # not shown as hers
        assert "docker rm -f" in caplog.text and f"{squatted}._.{alice.name}" in caplog.text
        assert core.containers.limits_and_use(alice)["containers"] == 0
        assert [d for d in core.reaper.run(alice)] == []  # nothing judged (nor protected) there
        # Deploying the squatted project says who holds the name and how an admin clears it.
        with pytest.raises(Forbidden) as info:
            core.containers.deploy(alice, squatted)
        message = str(info.value)
        assert "runs as 0:0" in message and core.images.tag(alice, squatted) in message
        assert f"docker rm -f {squatted}._.{alice.name}" in message
        with pytest.raises(Forbidden):
            core.guard.audit(alice, squatted)
        # Neither the forged GPU nor the container limit blocks her real deploy.
        result = core.containers.deploy(alice, real, gpus=1)
        assert result.container.gpus == [gpus[0]["uuid"]]
        assert [c.project for c in core.containers.list(alice)] == [real]
        assert all(engine.get_container(cid).running for cid in made)  # left alone
    finally:
        for cid in made:
            engine.remove_container(cid, force=True)


# -- 5. images with volumes ------------------------------------------------------------------------
def test_images_declaring_volumes_are_refused_before_any_container(make_core, user, project_name, engine):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    dockerfile = core.images.dockerfile(user, name)
    dockerfile.write_text(dockerfile.read_text() + "VOLUME /scratch\n")
    for attempt in (lambda: core.images.build(user, name), lambda: core.containers.deploy(user, name)):
        with pytest.raises(InvalidRequest) as info:
            attempt()
        assert "VOLUME /scratch" in info.value.message and "/workspace" in info.value.hint
    assert core.engine.get_container(f"{name}._.{user.name}") is None

    # A volume declared by the image built FROM: refused after the build, and that image is not kept.
    parent = f"ds01-test/volume-parent-{secrets.token_hex(3)}:latest"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = f"FROM {core.settings.base_image}\nVOLUME /data-cache\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    engine.build_image(context.getvalue(), parent, {}, {}, lambda line: None)
    try:
        dockerfile.write_text(f"FROM {parent}\n")
        with pytest.raises(InvalidRequest) as info:
            core.containers.deploy(user, name)
        assert "/data-cache" in info.value.message and "FROM" in info.value.message
        assert core.images.current(user, name) is None
        assert core.engine.get_container(f"{name}._.{user.name}") is None
    finally:
        engine.remove_image(parent)
