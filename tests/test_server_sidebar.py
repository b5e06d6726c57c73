"""What the JupyterLab sidebar needs beyond the core API: a shell inside the container, uptime and idle time."""

from __future__ import annotations

import asyncio
import os
import select
import shlex
import subprocess
import time


def _run_in_pty(argv: list[str], typed: bytes, timeout: float = 20.0) -> str:
    """Run an interactive command on a pseudo-terminal, type into it, return what it printed."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    os.write(master, typed)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return out.decode(errors="replace")


async def test_terminal_command_opens_a_shell_in_the_running_container(api, engine, jp_serverapp, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    status, err = await api("GET", "projects", demo, "terminal")
    assert status in (404, 409) and err["message"], "no container yet: a clear error, not a command"

    await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    _, data = await api("GET", "projects", demo, "terminal", expect=200)
    assert shlex.split(data["line"]) == data["command"]
    assert data["command"][1:3] == ["exec", "-i"] or "exec" in data["command"]

    # The overview carries uptime (the engine's list has no start time) and idle time from the reaper's records.
    _, listing = await api("GET", "projects", expect=200)
    container = listing["projects"][0]["container"]
    assert 0 <= container["uptime_seconds"] < 600
    assert container["idle_seconds"] is None, "not observed by the reaper yet"
    settings = jp_serverapp.web_app.settings
    settings["ds01_core"].reaper.mark_active(settings["ds01_user"], container["id"], when=time.time() - 120)
    _, listing = await api("GET", "projects", expect=200)
    assert 115 <= listing["projects"][0]["container"]["idle_seconds"] < 600

    printed = _run_in_pty(data["command"], b"echo in-$(pwd)-as-$(id -u); exit\n")
    assert f"in-/workspace-as-{os.getuid()}" in printed

    await api("POST", "projects", demo, "stop", expect=200)
    status, err = await api("GET", "projects", demo, "terminal")
    assert status == 409 and "Start it" in err.get("hint", "")
    await api("POST", "projects", demo, "retire", body={"mode": "discard"}, expect=200)


async def test_uptime_restarts_when_the_container_is_restarted_outside_ds01(api, engine, jp_serverapp, demo):
    """Start times are remembered between listings; the engine's events make a restart by hand show."""
    await api("POST", "projects", body={"name": demo}, expect=201)
    await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    _, listing = await api("GET", "projects", expect=200)
    first = listing["projects"][0]["container"]
    time.sleep(3)
    _, listing = await api("GET", "projects", expect=200)
    assert listing["projects"][0]["container"]["started_at"] == first["started_at"]
    assert listing["projects"][0]["container"]["uptime_seconds"] >= 3

    # `docker restart` behind ds01's back: same container id, new start time.
    subprocess.run(["docker", "restart", "-t", "1", first["id"]], check=True, capture_output=True)
    deadline = time.monotonic() + 15
    while True:
        _, listing = await api("GET", "projects", expect=200)
        container = listing["projects"][0]["container"]
        if container["started_at"] != first["started_at"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert container["id"] == first["id"]
    assert container["started_at"] != first["started_at"] and container["uptime_seconds"] < 10
    await api("POST", "projects", demo, "retire", body={"mode": "discard"}, expect=200)
