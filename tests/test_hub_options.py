"""Every option DS01Spawner inherits (DockerSpawner's, JupyterHub's Spawner's) does what the README's table says:
each honoured one reaches the container, each refused one is named in the log and refuses the spawn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from pathlib import Path

import pytest
from dockerspawner import DockerSpawner
from hub_helpers import singleuser_fixture  # noqa: F401 - fixture
from jupyterhub.objects import Hub
from jupyterhub.spawner import Spawner
from traitlets.config import Config

from ds01_jupyter.config_docs import inherited_table
from ds01_jupyter.core import User
from ds01_jupyter.hub import options as O
from ds01_jupyter.hub import spawner as spawner_module
from ds01_jupyter.hub.checks import run_checks
from ds01_jupyter.hub.spawner import DS01Spawner, SpawnRefused

README = Path(__file__).resolve().parents[1] / "README.md"
GiB = 2**30


class _HubUser:
    name = escaped_name = "alice"
    url = "/user/alice/"


def _spawner(tmp_path, section="DockerSpawner", **options) -> DS01Spawner:
    """A spawner of a hub whose config sets ``options`` (in ``section``), with the test's own limits and GPUs."""
    limits = tmp_path / "limits.yaml"
    limits.write_text("defaults:\n  memory: 8G\n  memory_swap: 10G\n  max_cpus: 4\n")
    (tmp_path / "gpus.json").write_text("[]")
    config = Config()
    for name, value in options.items():
        config[section][name] = value
    spawner = DS01Spawner(
        config=config, user=_HubUser(), hub=Hub(), user_mapper=lambda n: User(n, 2201, 2201, tmp_path / n),
        limits_file=str(limits), gpu_inventory=str(tmp_path / "gpus.json"), lock_dir=str(tmp_path),
    )
    spawner.api_token = "token"
    return spawner


def _request(spawner) -> dict:
    return spawner.container_request(spawner.ds01_user)


def _limits(request) -> dict:
    return json.loads(request["env"]["DS01_LIMITS"])


#: For every honoured option: a value, and what the container request must show for it.
HONOURED = {
    "cmd": (["my-singleuser"], lambda r: r["command"][0] == "my-singleuser"),
    "args": (["--ServerApp.log_level=DEBUG"], lambda r: r["command"][-1] == "--ServerApp.log_level=DEBUG"),
    "environment": ({"SITE_PROXY": "http://proxy:3128"}, lambda r: r["env"]["SITE_PROXY"] == "http://proxy:3128"),
    "env_keep": (["DS01_TEST_KEPT"], lambda r: r["env"]["DS01_TEST_KEPT"] == "kept"),
    "notebook_dir": ("/workspace/notebooks", lambda r: r["env"]["JUPYTERHUB_ROOT_DIR"] == "/workspace/notebooks"),
    "default_url": ("/lab/tree/README.md", lambda r: r["env"]["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/README.md"),
    "disable_user_config": (True, lambda r: r["env"]["JUPYTERHUB_DISABLE_USER_CONFIG"] == "1"),
    "debug": (True, lambda r: r["env"]["JUPYTERHUB_DEBUG"] == "1"),
    "ip": ("127.0.0.1", lambda r: r["env"]["JUPYTERHUB_SERVICE_URL"].startswith("http://127.0.0.1:")),
    "port": (9999, lambda r: ":9999/" in r["env"]["JUPYTERHUB_SERVICE_URL"]),
    "container_port": (9998, lambda r: ":9998/" in r["env"]["JUPYTERHUB_SERVICE_URL"]),
    "hub_connect_url": ("http://10.9.8.7:8081", lambda r: r["env"]["JUPYTERHUB_API_URL"].startswith("http://10.9.8.7")),
    "mem_limit": ("2G", lambda r: r["memory_cap"] == 2 * GiB and _limits(r)["memory"] == 2 * GiB
                  and _limits(r)["memory_swap"] == 4 * GiB),  # the 2G of swap the limits allow stay
    "cpu_limit": (1.5, lambda r: r["cpus_cap"] == 1.5 and _limits(r)["max_cpus"] == 1.5),
    "post_start_cmd": ("sh -c 'id -u > started'", lambda r: r["post_start"] == ["sh", "-c", "id -u > started"]),
}

#: For every refused option: a value an admin might set.
REFUSED = {
    "image": "quay.io/jupyterhub/base-notebook",
    "container_image": "quay.io/jupyterhub/base-notebook",
    "allowed_images": ["quay.io/jupyterhub/base-notebook"],
    "image_whitelist": ["quay.io/jupyterhub/base-notebook"],
    "pull_policy": "always",
    "client_kwargs": {"timeout": 5},
    "tls": True,
    "tls_assert_hostname": "docker.example",
    "tls_ca": "/etc/docker/ca.pem",
    "tls_cert": "/etc/docker/cert.pem",
    "tls_config": {"verify": True},
    "tls_key": "/etc/docker/key.pem",
    "tls_verify": True,
    "use_docker_client_env": False,
    "name_template": "jupyter-{username}",
    "container_name_template": "jupyter-{username}",
    "prefix": "hub",
    "container_prefix": "hub",
    "escape": "legacy",
    "volumes": {"/srv/data": "/data"},
    "read_only_volumes": {"/srv/data": "/data"},
    "mounts": [{"type": "bind", "source": "/srv/data", "target": "/data"}],
    "format_volume_name": lambda template, spawner: template,
    "extra_host_config": {"privileged": True},
    "extra_create_kwargs": {"user": "0"},
    "network_name": "host",
    "links": {"db": "db"},
    "use_internal_ip": False,
    "use_internal_hostname": True,
    "host_ip": "0.0.0.0",
    "container_ip": "10.0.0.5",
    "hub_ip_connect": "10.0.0.1",
    "remove": True,
    "remove_containers": True,
    "certs_volume_name": "hub-certs",
    "move_certs_image": "busybox:latest",
    "ssl_alt_names": ["DNS:hub.example"],
    "ssl_alt_names_include_local": False,
    "mem_guarantee": "1G",
    "cpu_guarantee": 1.0,
}


def test_every_inherited_option_is_documented_once_and_the_readme_says_so():
    inherited = set(DockerSpawner.class_traits(config=True)) | set(Spawner.class_traits(config=True))
    documented = [*O.HONOURED, *O.REFUSED, *O.JUPYTERHUB]
    assert sorted(documented) == sorted(inherited)  # each once: a new DockerSpawner/JupyterHub option fails here
    assert set(HONOURED) == set(O.HONOURED) and set(REFUSED) == set(O.REFUSED)  # and each is tested below
    assert inherited_table() in README.read_text(), "README is stale: python -m ds01_jupyter.config_docs --write"


def test_jupyterhubs_options_are_left_to_jupyterhub():
    """The JUPYTERHUB options work as for every spawner: DS01Spawner replaces none of the methods reading them."""
    for method in O.JUPYTERHUB_METHODS:
        assert getattr(DS01Spawner, method) is getattr(Spawner, method), method


@pytest.mark.parametrize("name", sorted(O.HONOURED))
def test_each_honoured_option_reaches_the_container(name, tmp_path, monkeypatch):
    monkeypatch.setenv("DS01_TEST_KEPT", "kept")
    value, shows = HONOURED[name]
    before = _request(_spawner(tmp_path))
    spawner = _spawner(tmp_path, section="Spawner" if name in Spawner.class_traits() and name not in
                       DockerSpawner.class_own_traits() else "DockerSpawner", **{name: value})
    assert spawner.refused_options == []
    after = _request(spawner)
    assert after != before and shows(after), (name, after)


@pytest.mark.parametrize("name", sorted(O.REFUSED))
def test_each_refused_option_is_named_in_the_log_and_refuses_the_spawn(name, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(spawner_module, "_told", set())
    if name == "use_docker_client_env":
        try:
            _spawner(tmp_path, **{name: REFUSED[name]})
        except TypeError as err:  # DockerSpawner 14's own observer of this deprecated option fails: no hub starts
            assert "_client_env_changed" in str(err)
            return
    with caplog.at_level(logging.ERROR):
        spawner = _spawner(tmp_path, **{name: REFUSED[name]})
        _spawner(tmp_path, **{name: REFUSED[name]})  # a second spawner of the hub: named once
    assert spawner.refused_options == [name]
    assert caplog.text.count(O.refusal(name)) == 1, caplog.text
    with pytest.raises(SpawnRefused) as refused:
        asyncio.run(spawner.start())
    assert f"option {name} is refused" in refused.value.jupyterhub_message
    assert O.REFUSED[name] in refused.value.jupyterhub_message


def test_the_defaults_and_ds01s_own_values_are_not_refused(tmp_path):
    assert _spawner(tmp_path).refused_options == []
    assert _spawner(tmp_path, use_internal_ip=True, remove=False).refused_options == []  # the values DS01 has
    assert _spawner(tmp_path, section="DS01Spawner", volumes={"/srv": "/srv"}).refused_options == ["volumes"]


def test_ceilings_lower_the_limits_and_never_raise_them(tmp_path):
    capped = _request(_spawner(tmp_path, mem_limit="64G", cpu_limit=16.0))  # above the user's limits
    assert _limits(capped)["memory"] == 8 * GiB and _limits(capped)["max_cpus"] == 4


def test_the_start_up_checks_refuse_a_hub_with_a_refused_option(tmp_path, engine):
    config = Config()
    config.DockerSpawner.volumes = {"/srv/data": "/data"}
    config.DS01Spawner.limits_file = str(tmp_path / "none.yaml")
    report = run_checks(config)
    refused = [err for err in report.errors if isinstance(err, O.OptionsRefused)]
    assert refused and refused[0].details["options"] == ["volumes"] and O.REFUSED["volumes"] in refused[0].message


def test_mem_limit_cpu_limit_and_post_start_cmd_in_a_real_container(make_core, other_user, project_name):
    """The ceilings reach Docker's HostConfig, and post_start_cmd runs as the user, in the project."""
    settings = make_core.settings()
    spawner = DS01Spawner(
        config=Config(), user=_HubUser(), hub=Hub(), user_mapper=lambda n: other_user,
        limits_file=settings.limits_file, gpu_inventory=settings.gpu_inventory, lock_dir=settings.lock_dir,
        gpu_request="env", base_image=settings.base_image, mem_limit="1G", cpu_limit=0.5,
        post_start_cmd="sh -c 'id -u > started'",
    )
    spawner.api_token = "token"
    core, name = spawner.core, project_name()
    core.projects.create(other_user, name)
    request = _request(spawner)
    result = core.containers.deploy(other_user, name, gpus=0, command=("sleep", "infinity"), env=request["env"],
                                    memory_cap=request["memory_cap"], cpus_cap=request["cpus_cap"])
    host = core.engine.api.inspect_container(result.container.id)["HostConfig"]
    assert host["Memory"] == GiB and host["NanoCpus"] == 500_000_000, host
    spawner.project = name
    asyncio.run(spawner._post_start(other_user, request["post_start"]))
    started = core.projects.root(other_user) / name / "started"
    assert started.read_text().strip() == str(other_user.uid) and started.stat().st_uid == other_user.uid
    spawner.post_start_cmd = "sh -c 'exit 3'"  # a failure is said on the spawn page; the server still starts
    asyncio.run(spawner._post_start(other_user, _request(spawner)["post_start"]))
    assert any("post_start_cmd failed (exit 3)" in e["message"] for e in spawner._events), spawner._events


@pytest.mark.parametrize("then", ["nothing", "another project's start", "a new start of it"])
def test_a_start_the_hub_gave_up_on_leaves_no_server_running(make_core, other_user, project_name, then, singleuser):
    """The hub cancels a start at start_timeout (a long first build), polls, and stops what poll finds running;
    the deploy, in its thread, carries on after: it retires what it made (no server left holding a GPU)."""
    settings = make_core.settings()
    spawner = DS01Spawner(
        config=Config(), user=_HubUser(), hub=Hub(), user_mapper=lambda n: other_user,
        limits_file=settings.limits_file, gpu_inventory=settings.gpu_inventory, lock_dir=settings.lock_dir,
        gpu_request="env", base_image=settings.base_image, cmd=["python3", "-c", "import time; time.sleep(10**6)"],
        singleuser_image=singleuser["image"], singleuser_wheels=singleuser["wheels"],  # (its start builds it else)
    )
    spawner.api_token = "token"
    core, name = spawner.core, project_name()
    spawner.user_options = {"project": name, "gpus": 0}
    entered, release, made = threading.Event(), threading.Event(), []
    real = core.containers.deploy

    def deploy(*args, **kwargs):
        entered.set()
        release.wait(120)
        result = real(*args, **kwargs)
        made.append(result.container.id)
        return result

    core.containers.deploy = deploy

    async def given_up_then_stopped():
        start = asyncio.ensure_future(spawner.start())
        while not entered.is_set():  # (a start that ends before its deploy says why, not a timeout)
            if start.done():
                start.result()
                raise AssertionError("the start ended before it deployed")
            await asyncio.sleep(0.05)
        start.cancel()  # start_timeout
        with contextlib.suppress(asyncio.CancelledError):
            await start
        if await spawner.poll() is None:  # JupyterHub's order (User.stop): nothing to stop yet
            await spawner.stop()
        if then != "nothing":  # a newer start begun meanwhile (its first steps), of this project or another
            spawner._starting, spawner.project = True, name if then == "a new start of it" else project_name()
        release.set()  # the deploy goes on after the hub is done with the server

    asyncio.run(given_up_then_stopped())  # waits for the deploy's thread
    assert made
    left = core.engine.get_container(made[0])
    if then == "a new start of it":  # its deploy takes the running container
        assert left is not None and left.running
    else:
        assert left is None
