"""The engine's container list in a new process: each container's user (not in the engine's list) is looked up once,
side by side for many, and each record keeps its own (real engine)."""

from __future__ import annotations

import secrets
import subprocess
import threading

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
