"""Checkpoints, pruning and disk usage through the API."""

from __future__ import annotations

import os
import time

from ds01_jupyter import checkpoints as ck


async def test_checkpoints_prune_preview_then_delete_and_usage(api, home, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    models = home / "workspace" / demo / "models"
    names = [ck.save({"e": epoch}, epoch=epoch, metrics={"acc": acc}, directory=models).name
             for epoch, acc in enumerate([0.7, 0.9, 0.8], 1)]
    (models / "broken.pt").write_bytes(b"")
    for p in models.iterdir():  # written an hour ago: a rule never deletes what changed in the last minutes
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    _, data = await api("GET", "projects", demo, "checkpoints", params={"mode": "max"}, expect=200)
    assert data["best"] == names[1] and data["latest"] == names[2]
    broken = next(c for c in data["checkpoints"] if c["name"] == "broken.pt")
    assert broken["complete"] is False and broken["problem"] == "empty file"

    _, plan = await api("POST", "projects", demo, "prune", body={"keep_last": 1}, expect=200)
    assert sorted(c["name"] for c in plan["would_delete"]) == sorted(["broken.pt", names[0], names[1]])
    assert {c["name"]: c["reason"] for c in plan["would_delete"]}["broken.pt"] == "incomplete: empty file"
    assert [k["relpath"] for k in plan["kept"]] == [names[2]] and "resume" in plan["kept"][0]["reason"]
    assert all((models / n).exists() for n in names)  # a preview deletes nothing
    _, done = await api(
        "POST",
        "projects",
        demo,
        "prune",
        body={"keep_last": 1, "keep_best": 1, "metric": "acc", "mode": "max", "confirm": True},
        expect=200,
    )
    assert sorted(c["name"] for c in done["deleted"]) == sorted(["broken.pt", names[0]])
    assert [(models / n).exists() for n in names] == [False, True, True]

    status, err = await api("POST", "projects", demo, "prune", body={})
    assert status == 400 and "keep" in err["message"]
    status, _ = await api("POST", "projects", demo, "prune", body={"keep_last": -1})
    assert status == 400
    status, _ = await api("GET", "projects", "nope", "checkpoints")
    assert status == 404

    _, usage = await api("GET", "usage", expect=200)
    assert usage["projects"][demo]["checkpoint_bytes"] > 0
    largest = usage["projects"][demo]["largest"]
    assert largest and [size for _, size in largest] == sorted((size for _, size in largest), reverse=True)
    assert usage["total_bytes"] >= usage["projects"][demo]["bytes"] > 0
