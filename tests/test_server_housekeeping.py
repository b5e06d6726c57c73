"""The guide's cleanup, images and "where are my files?" through the REST API."""

from __future__ import annotations


async def test_clean_where_and_images_through_the_api(api, home, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    project = home / "workspace" / demo
    (project / "tmp").mkdir()
    (project / "tmp" / "scratch").write_bytes(b"x" * 1000)
    (project / "results" / "table.csv").write_text("a\n")

    _, plan = await api("POST", "projects", demo, "clean", body={}, expect=200)
    assert [i["path"] for i in plan["items"]] == ["tmp"] and not plan["deleted"] and (project / "tmp").exists()
    _, done = await api("POST", "projects", demo, "clean", body={"confirm": True}, expect=200)
    assert done["deleted"] and not (project / "tmp").exists()
    status, err = await api("POST", "projects", demo, "clean", body={"keep_last": -2})
    assert status == 400 and "keep_last" in err["message"]

    _, found = await api("GET", "projects", demo, "where", params={"pattern": "*.csv"}, expect=200)
    assert [(m["where"], m["path"]) for m in found["matches"]] == [("workspace", "/workspace/results/table.csv")]
    status, err = await api("GET", "projects", demo, "where", params={"pattern": ""})
    assert status == 400 and "glob" in err["message"]

    _, usage = await api("GET", "usage", params={"larger_than": "1"}, expect=200)
    assert [demo, "results/table.csv", 2] in usage["large_files"] and usage["disk"]["free_bytes"] > 0
    status, _ = await api("GET", "usage", params={"larger_than": "-5"})
    assert status == 400

    _, images = await api("GET", "images", expect=200)
    assert isinstance(images["images"], list)
    _, plan = await api("POST", "images", "prune", body={}, expect=200)
    assert "would_delete" in plan and "deleted" not in plan  # a preview only: this host's images are not ours
