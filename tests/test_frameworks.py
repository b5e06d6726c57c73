"""Framework images (issue 17): deploy falls back to one when the project's image is missing or does not build,
says so, and every listing shows it; names not configured are refused with the configured ones."""

from __future__ import annotations

import io
import json
import re
import secrets
import tarfile

import pytest
from conftest import BASE_IMAGE, cli_environ
from test_cli import run

from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import InvalidRequest


@pytest.fixture(scope="module")
def tiny_framework(engine):
    """A second framework image, made here: the base image plus a variable that tells it apart."""
    tag = f"ds01test/fw-{secrets.token_hex(4)}:latest"
    dockerfile = f"FROM {BASE_IMAGE}\nENV DS01_TEST_FRAMEWORK=tiny\nLABEL ds01.fallback=spoofed\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    engine.build_image(buffer.getvalue(), tag, {}, {}, lambda line: None, network="none")
    yield tag
    engine.remove_image(tag)


def test_missing_image_falls_back_to_the_framework_asked_for(make_core, user, project_name, tiny_framework):
    core = make_core(framework_images={"tiny": tiny_framework})
    name = project_name()
    core.projects.create(user, name)
    result = core.containers.deploy(user, name, gpus=0, framework="tiny")
    assert result.container.fallback == "tiny" and result.container.image == tiny_framework
    assert any("running on the tiny fallback image" in n for n in result.notices), result.notices
    assert core.images.current(user, name) is None  # nothing was built for the project itself
    code, out = core.containers.exec(user, name, ["sh", "-c", "echo $DS01_TEST_FRAMEWORK"])
    assert (code, out.strip()) == (0, b"tiny")

    # Trusted like any container ds01 made: listed, with its fallback and an uptime.
    listed = {c.project: c for c in core.containers.list(user)}
    assert listed[name].fallback == "tiny" and listed[name].uptime_seconds is not None
    overview = {p["name"]: p for p in core.overview(user)["projects"]}
    assert overview[name]["container"]["fallback"] == "tiny"
    assert "base" in core.overview(user)["frameworks"]

    thin = core.engine.get_container(result.container.id).image_id
    core.containers.retire(user, name)
    assert core.engine.get_image(thin) is None  # the thin image goes with its container
    assert core.engine.get_image(tiny_framework) is not None  # the framework's own stays


def test_a_failed_build_falls_back_to_base_and_an_image_label_decides_nothing(make_core, user, home, project_name,
                                                                               tiny_framework):
    core = make_core(framework_images={"tiny": tiny_framework})
    broken, spoofed = project_name(), project_name()
    for name in (broken, spoofed):
        core.projects.create(user, name)
    (home / "dockerfiles").mkdir(exist_ok=True)
    (home / "dockerfiles" / f"{broken}.Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN exit 3\n")
    result = core.containers.deploy(user, broken, gpus=0)
    assert result.container.fallback == "base"
    assert any("failed to build" in n and "base fallback image" in n for n in result.notices), result.notices

    # A project image built FROM an image labelled ds01.fallback is no fallback.
    (home / "dockerfiles" / f"{spoofed}.Dockerfile").write_text(f"FROM {tiny_framework}\n")
    mine = core.containers.deploy(user, spoofed, gpus=0)
    assert mine.container.fallback == "" and core.containers.status(user, spoofed).fallback == ""
    record = core.engine.get_container(mine.container.id)
    assert record.labels.get(L.FALLBACK) == ""


def test_a_framework_not_configured_is_refused_with_those_that_are(make_core, user, home, project_name,
                                                                   tiny_framework):
    core = make_core(framework_images={"tiny": tiny_framework})
    name = project_name()
    core.projects.create(user, name)
    with pytest.raises(InvalidRequest) as err:
        core.containers.deploy(user, name, gpus=0, framework="pytorch")
    assert "base, tiny" in str(err.value) and err.value.details["frameworks"] == ["base", "tiny"]
    assert core.engine.get_container(f"{name}._.{user.name}") is None

    env = cli_environ(make_core.settings(), home, DS01_FRAMEWORK_IMAGES=f"tiny={tiny_framework}")
    refused = run("container-deploy", env, name, "--framework", "pytorch", "--background")
    assert refused.returncode == 1 and "configured frameworks are: base, tiny" in refused.stderr
    # The command line: the fallback, then uptime and the fallback in the listings.
    run("container-deploy", env, name, "--framework", "tiny", "--background", check_code=0)
    table = run("container-list", env, check_code=0).stdout
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert "on the tiny fallback image" in row and re.search(r"running +- +\d+s ", row), row  # an uptime, not "-"
    listed = {c["project"]: c for c in json.loads(run("container-list", env, "--json", check_code=0).stdout)}
    assert listed[name]["uptime_seconds"] is not None and listed[name]["uptime_seconds"] >= 0
    status = run("ds01", env, "status", name, check_code=0).stdout
    assert "running on the tiny fallback image" in status


@pytest.fixture
def jp_server_config(jp_server_config, tiny_framework):
    jp_server_config["DS01App"]["framework_images"] = {"tiny": tiny_framework}
    return jp_server_config


async def test_rest_deploy_takes_a_framework_and_refuses_one_not_configured(api, tiny_framework, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    status, err = await api("POST", "projects", demo, "deploy", body={"framework": "pytorch"})
    assert status == 400 and err["frameworks"] == ["base", "tiny"] and "base, tiny" in err["message"]
    status, err = await api("POST", "projects", demo, "deploy", body={"framework": 3})
    assert status == 400 and "framework" in err["message"]
    _, result = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, body={"framework": "tiny"},
                          expect=200)
    assert result["container"]["fallback"] == "tiny" and any("tiny fallback" in n for n in result["notices"])
    _, listing = await api("GET", "projects", expect=200)
    assert listing["frameworks"] == ["base", "tiny"]
    project = next(p for p in listing["projects"] if p["name"] == demo)
    assert project["container"]["fallback"] == "tiny" and project["container"]["uptime_seconds"] is not None
    assert project["unwritable"] == []
    await api("POST", "projects", demo, "retire", expect=200)


def test_the_hub_form_offers_the_frameworks_and_refuses_others():
    from ds01_jupyter.core.errors import DS01Error
    from ds01_jupyter.core.settings import Settings
    from ds01_jupyter.hub import form
    from ds01_jupyter.hub.spawner import SpawnRefused, _check_options

    html = form.render([], "demo", 0, 0, [], frameworks=["base", "tiny"])
    assert 'name="framework"' in html and '<option value="tiny">' in html
    assert form.parse({"project": ["demo"], "framework": ["tiny"]}) == {"project": "demo", "framework": "tiny"}
    spawner = type("S", (), {"core": type("C", (), {"settings": Settings(framework_images={"tiny": "x"})})()})()
    _check_options(spawner, {"framework": "tiny"})
    with pytest.raises(SpawnRefused) as err:
        _check_options(spawner, {"framework": "tf"})
    assert isinstance(err.value.error, DS01Error) and "base, tiny" in str(err.value.error)
