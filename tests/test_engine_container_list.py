"""The engine's container list in a new process: each container's user (not in the engine's list) is looked up once,
side by side for many, and each record keeps its own (real engine)."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time

from conftest import BASE_IMAGE

from ds01_jupyter.core.docker_engine import DockerEngine

USERS = ("1000:1000", "1001:1002", "", "0:0", "4242", "nobody", "1000:1000", "77:77", "1005:1005", "")


def test_each_container_keeps_its_own_user_and_is_inspected_once(engine):
    mark = "t" + secrets.token_hex(5)
    made: dict[str, str] = {}
    fresh, fresh2 = DockerEngine(), DockerEngine()
    try:
        for i, user in enumerate(USERS):  # more than are inspected at once
            cid = subprocess.run(
                ["docker", "create", "--label", f"ds01-test.mark={mark}", "--name", f"ds01-test-{mark}-{i}",
                 *(["--user", user] if user else []), BASE_IMAGE, "true"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            made[cid] = user
        asked: list[str] = []
        lock = threading.Lock()
        real = fresh.api.inspect_container

        def inspect(cid, *args, **kw):
            with lock:
                asked.append(cid)
            return real(cid, *args, **kw)

        fresh.api.inspect_container = inspect
        listed = fresh.list_containers({"ds01-test.mark": mark})
        assert {r.id: r.config_user for r in listed} == made
        assert sorted(asked) == sorted(made)  # each once
        assert {r.id: r.config_user for r in fresh.list_containers({"ds01-test.mark": mark})} == made
        assert len(asked) == len(made)  # and never again: a container's user never changes

        gone = next(iter(made))  # removed between the list and its look: no user, nothing to trust
        real_list = fresh2.api.containers

        def listed_then_removed(*args, **kw):
            rows = real_list(*args, **kw)
            subprocess.run(["docker", "rm", gone], capture_output=True, check=True)
            return rows

        fresh2.api.containers = listed_then_removed
        left = {r.id: r.config_user for r in fresh2.list_containers({"ds01-test.mark": mark})}
        assert left == {**made, gone: ""}
    finally:
        for cid in made:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        fresh.close()
        fresh2.close()


def test_images_looked_at_before_are_given_again_until_an_image_event(engine):
    """A deploy vets the image of every container it counts: an image looked at before is given again without a
    look while the engine logs no image event, and any image event (a tag, a removal) makes it looked at again."""
    mark = "t" + secrets.token_hex(5)
    ids = []
    for i in range(3):
        subprocess.run(["docker", "build", "-q", "-t", f"ds01-test-{mark}:{i}", "-"], check=True, capture_output=True,
                       input=f"FROM {BASE_IMAGE}\nLABEL ds01-test.mark={mark} ds01-test.i={i}\n".encode())
        ids.append(subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", f"ds01-test-{mark}:{i}"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    fresh = DockerEngine()
    asked: list[str] = []
    real = fresh.api.inspect_image

    def inspect(ref, *args, **kw):
        asked.append(ref)
        return real(ref, *args, **kw)

    fresh.api.inspect_image = inspect
    try:
        first = fresh.get_images([*ids, ids[0], "sha256:" + "0" * 64])
        assert [i.id for i in first] == ids and [i.labels["ds01-test.i"] for i in first] == ["0", "1", "2"]
        assert sorted(asked) == sorted([*ids, "sha256:" + "0" * 64])  # each once, side by side
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # another test's build on this host is an image event too: then all
            time.sleep(0.6)  # are looked at (the window begins a second before the look: past the builds above)
            asked.clear()
            fresh.get_images(ids)  # (again, if something happened)
            asked.clear()
            again = fresh.get_images(ids)
            if not asked:
                break
        assert asked == [] and [i.id for i in again] == ids

        subprocess.run(["docker", "tag", ids[0], f"ds01-test-{mark}:extra"], check=True, capture_output=True)
        tagged = fresh.get_images(ids)
        assert f"ds01-test-{mark}:extra" in tagged[0].tags and sorted(asked) == sorted(ids)

        subprocess.run(["docker", "rmi", f"ds01-test-{mark}:1"], check=True, capture_output=True)
        assert [i.id for i in fresh.get_images(ids)] == [ids[0], ids[2]]
    finally:
        fresh.close()
        for tag in ("0", "1", "2", "extra"):
            subprocess.run(["docker", "rmi", f"ds01-test-{mark}:{tag}"], capture_output=True)
