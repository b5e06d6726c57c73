"""The API with limits, a quota and configured GPUs."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import fake_gpus

from ds01_jupyter.core import User


@pytest.fixture
def home(request, tmp_path, monkeypatch):
    """The server acts for a Unix user of the test's own where it may make one (root), as root does for a hub's
    users: on a busy host root's own containers would count against the limit. Elsewhere, this user's home."""
    if os.geteuid() == 0 and shutil.which("useradd"):
        owner = request.getfixturevalue("other_user")
        monkeypatch.setattr(User, "current", classmethod(lambda cls: owner))
        return owner.home
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def ds01_settings(make_core):
    return make_core.settings(
        limits="defaults:\n  max_containers_per_user: 1\n  max_mig_instances: 1\n  storage_workspace: 1g\n",
        gpus=fake_gpus(2),
    )


async def test_limits_gpus_and_usage(api, engine):
    for name in ("one", "two"):
        await api("POST", "projects", body={"name": name}, expect=201)
    _, result = await api("POST", "projects", "one", "deploy", params={"wait": "1"}, expect=200)
    assert len(result["container"]["gpus"]) == 1
    status, err = await api("POST", "projects", "two", "deploy", params={"wait": "1"})
    assert status == 409 and err["limit"] == "max_containers_per_user"
    _, gpus = await api("GET", "gpus", expect=200)
    holders = [g["holder"] for g in gpus["gpus"]]
    assert sum(1 for h in holders if h and h["project"] == "one") == 1
    _, usage = await api("GET", "limits", expect=200)
    assert usage["containers"] == 1 and usage["limits"]["max_containers_per_user"] == 1
    assert usage["disk"]["quota_bytes"] == 2**30
    assert set(usage["disk"]["projects"]) == {"one", "two"} and usage["disk"]["total_bytes"] > 0
