"""The guard through the API: findings, refusal to retire silently, rescue, the notebook check."""

from __future__ import annotations

import json


async def test_audit_retire_choice_and_rescue(api, home, engine, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    _, deployed = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    cid = deployed["container"]["id"]
    code, _ = engine.exec(cid, ["sh", "-c", "echo 1,2 > /tmp/result.csv"])
    assert code == 0
    _, audit = await api("GET", "projects", demo, "audit", expect=200)
    assert audit["at_risk"] == 1 and audit["findings"][0]["path"] == "/tmp/result.csv"
    _, listing = await api("GET", "projects", expect=200)
    assert listing["projects"][0]["warnings"] == 1  # remembered on disk for the list

    status, refused = await api("POST", "projects", demo, "retire")
    assert status == 409 and refused["error"] == "UnsavedWork"
    assert refused["findings"][0]["path"] == "/tmp/result.csv"
    status, _ = await api("POST", "projects", demo, "retire", body={"mode": "maybe"})
    assert status == 400

    _, rescued = await api("POST", "projects", demo, "rescue", expect=200)
    assert rescued["files"] == 1
    assert (home / "workspace" / demo / ".rescued").is_dir()
    _, retired = await api("POST", "projects", demo, "retire", body={"mode": "rescue"}, expect=200)
    assert retired["container"]["state"] == "removed" and retired["rescued"]["files"] == 1
    copies = list((home / "workspace" / demo / ".rescued").glob("*/tmp/result.csv"))
    assert len(copies) == 2 and all(c.read_text() == "1,2\n" for c in copies)


async def test_notebook_check(api, home, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    nb = {
        "cells": [{"cell_type": "code", "source": "df.to_csv('/tmp/out.csv')"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (home / "workspace" / demo / "notebooks" / "a.ipynb").write_text(json.dumps(nb))
    _, found = await api("POST", "notebook-check", body={"path": f"{demo}/notebooks/a.ipynb"}, expect=200)
    assert [f["path"] for f in found["findings"]] == ["/tmp/out.csv"]
    _, found = await api("POST", "notebook-check", body={"cells": ["open('ok.txt','w')", "%cd /tmp"]}, expect=200)
    assert [(f["cell"], f["path"]) for f in found["findings"]] == [(1, "/tmp")]
    status, _ = await api("POST", "notebook-check", body={"path": "../../etc/passwd"})
    assert status == 403
    status, _ = await api("POST", "notebook-check", body={"path": f"{demo}/README.md"})
    assert status == 400
    status, _ = await api("POST", "notebook-check", body={})
    assert status == 400
