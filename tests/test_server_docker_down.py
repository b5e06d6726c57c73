"""With the Docker engine down, the API says so plainly and the rest keeps working."""

from __future__ import annotations

import pytest


@pytest.fixture
def ds01_settings(make_core):
    return make_core.settings(docker_url="unix:///nonexistent/docker.sock")


async def test_docker_down_is_503_with_the_reason_and_projects_still_list(api, home):
    await api("POST", "projects", body={"name": "demo"}, expect=201)
    _, listing = await api("GET", "projects", expect=200)
    assert listing["engine"]["available"] is False
    assert "Docker" in listing["engine"]["reason"]
    assert [p["name"] for p in listing["projects"]] == ["demo"]
    status, err = await api("POST", "projects", "demo", "deploy", params={"wait": "1"})
    assert status == 503 and "Cannot reach the Docker engine" in err["message"] and "docker info" in err["hint"]
    status, err = await api("GET", "gpus")
    assert status in (200, 503)
    status, _ = await api("GET", "limits")
    assert status == 503
