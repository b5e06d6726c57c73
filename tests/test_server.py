"""The REST API under a real Jupyter server (non-trivial base URL, authentication required)."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado.httpclient import HTTPClientError

# pytest-jupyter runs coroutine tests on the server's own loop (no pytest-asyncio needed).


async def test_every_route_needs_authentication(jp_fetch, jp_base_url, engine):
    for parts in (("version",), ("projects",), ("gpus",), ("limits",), ("events",)):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("ds01", *parts, headers={"Authorization": "token not-the-token"})
        assert info.value.code in (401, 403), parts
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "ds01", "projects", method="POST", body=json.dumps({"name": "x"}), headers={"Authorization": "token nope"}
        )
    assert info.value.code in (401, 403)


async def test_projects_create_list_detail_and_bad_input(api, home, demo):
    status, data = await api("GET", "version", expect=200)
    assert data["api"] == 1
    await api("POST", "projects", body={"name": demo}, expect=201)
    assert (home / "workspace" / demo / "notebooks").is_dir()
    _, listing = await api("GET", "projects", expect=200)
    assert listing["engine"]["available"] is True
    assert [(p["name"], p["container"]) for p in listing["projects"]] == [(demo, None)]
    _, detail = await api("GET", "projects", demo, expect=200)
    assert detail["dockerfile"].endswith(f"{demo}.Dockerfile")

    status, err = await api("POST", "projects", body={"name": "../etc"})
    assert status == 400 and "lowercase" in err["hint"]
    status, err = await api("POST", "projects", body={"name": demo})
    assert status == 409
    status, err = await api("GET", "projects", "nope")
    assert status == 404 and "'nope'" in err["message"]
    status, err = await api("POST", "projects", body=[1, 2])
    assert status == 400
    status, err = await api("POST", "projects", demo, "deploy", body={"gpus": -2})
    assert status == 400 and "gpus" in err["message"]
    status, err = await api("GET", "projects", demo, "logs", params={"tail": "x"})
    assert status == 400


async def test_deploy_stop_start_retire_and_logs(api, home, engine, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    _, result = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    assert result["created"] and result["container"]["state"] == "running"
    _, listing = await api("GET", "projects", expect=200)
    assert listing["projects"][0]["container"]["state"] == "running"
    assert listing["projects"][0]["image"]["tag"].endswith(f"/{demo}:latest")
    _, stopped = await api("POST", "projects", demo, "stop", expect=200)
    assert stopped["state"] == "exited"
    _, started = await api("POST", "projects", demo, "start", expect=200)
    assert started["running"]
    _, logs = await api("GET", "projects", demo, "logs", expect=200)
    assert isinstance(logs["lines"], list)
    _, retired = await api("POST", "projects", demo, "retire", expect=200)
    assert retired["container"]["state"] == "removed" and retired["rescued"] is None
    status, err = await api("POST", "projects", demo, "stop")
    assert status == 404 and f"container-deploy {demo}" in err["hint"]
    assert (home / "workspace" / demo / "README.md").exists()


async def test_deploy_reports_progress_and_two_clicks_make_one_container(api, engine, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    (s1, first), (s2, second) = await asyncio.gather(
        api("POST", "projects", demo, "deploy"), api("POST", "projects", demo, "deploy")
    )
    assert s1 == s2 == 202
    assert first["operation"]["id"] == second["operation"]["id"]
    op_id = first["operation"]["id"]
    for _ in range(600):
        _, op = await api("GET", "operations", op_id, expect=200)
        if op["state"] != "running":
            break
        await asyncio.sleep(0.1)
    assert op["state"] == "done", op
    assert any("Building" in line or "Creating" in line for line in op["lines"])
    _, again = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    assert again["created"] is False
    status, _ = await api("GET", "operations", "op-unknown")
    assert status == 404
