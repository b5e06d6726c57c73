"""With the Docker engine down, the API says so plainly and the rest keeps working."""

from __future__ import annotations

import pytest


@pytest.fixture
def ds01_settings(make_core):
    return make_core.settings(docker_url="unix:///nonexistent/docker.sock")


async def test_docker_down_is_503_with_the_reason_and_projects_still_list(api, home, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    _, listing = await api("GET", "projects", expect=200)
    assert listing["engine"]["available"] is False
    assert "Docker" in listing["engine"]["reason"]
    assert [p["name"] for p in listing["projects"]] == [demo]
    status, err = await api("POST", "projects", demo, "deploy", params={"wait": "1"})
    assert status == 503 and "Cannot reach the Docker engine" in err["message"] and "docker info" in err["hint"]
    status, err = await api("GET", "gpus")
    assert status in (200, 503)
    _, limits = await api("GET", "limits", expect=200)  # limits are a file: known; use is not
    assert limits["containers"] is None and limits["engine"]["available"] is False
    assert "max_containers_per_user" in limits["limits"]


async def test_without_docker_the_workspace_features_still_work(api, home, demo):
    """What Binder offers: projects, checkpoints, the notebook check and disk use, with no engine."""
    await api("POST", "projects", body={"name": demo}, expect=201)
    models = home / "workspace" / demo / "models"
    (models / "epoch=1-step=10.ckpt").write_bytes(b"\0" * 2048)
    (models / "epoch=2-step=20.ckpt").write_bytes(b"")  # empty: incomplete, never "latest"

    _, detail = await api("GET", "projects", demo, expect=200)
    assert detail["engine"]["available"] is False and detail["container"] is None
    _, ckpts = await api("GET", "projects", demo, "checkpoints", expect=200)
    assert ckpts["latest"] == "epoch=1-step=10.ckpt" and len(ckpts["checkpoints"]) == 2
    _, check = await api(
        "POST", "notebook-check", body={"path": f"{demo}/notebooks/a.ipynb", "cells": ["df.to_csv('/tmp/out.csv')"]},
        expect=200,
    )
    assert [f["path"] for f in check["findings"]] == ["/tmp/out.csv"]
    _, usage = await api("GET", "usage", expect=200)
    assert usage["projects"][demo]["bytes"] >= 2048 and usage["projects"][demo]["image_bytes"] is None
