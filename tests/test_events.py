"""Live events: a snapshot first, then container changes fed by the engine's event stream."""

from __future__ import annotations

import asyncio
import json

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


async def follow(url, headers, events, stop_after):
    """Read server-sent events into ``events`` until ``stop_after(events)`` or the timeout."""
    buffer = b""

    def on_chunk(chunk):
        nonlocal buffer
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            data = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
            if data:
                events.append(json.loads(b"".join(data)))
        if stop_after(events):
            raise StopIteration  # closes the stream

    request = HTTPRequest(url, headers=headers, streaming_callback=on_chunk, request_timeout=120)
    try:
        await AsyncHTTPClient().fetch(request)
    except (HTTPClientError, StopIteration):
        pass


def has(events, **match):
    return any(all(e.get(k) == v for k, v in match.items()) for e in events)


async def test_snapshot_then_start_and_death_of_a_container(api, jp_base_url, jp_http_port, jp_auth_header, make_core,
                                                            engine, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    url = f"http://localhost:{jp_http_port}{jp_base_url}ds01/events"
    events: list[dict] = []
    done = lambda evs: has(evs, type="container", action="die", project=demo)  # noqa: E731
    reader = asyncio.ensure_future(follow(url, jp_auth_header, events, done))
    for _ in range(100):
        if events:
            break
        await asyncio.sleep(0.05)
    assert events[0]["type"] == "snapshot"
    assert [p["name"] for p in events[0]["projects"]] == [demo]

    _, result = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    # The container dies behind the server's back (as an OOM kill or a crash would).
    engine.api.kill(result["container"]["id"])
    await asyncio.wait_for(reader, 30)
    assert has(events, type="operation", kind="deploy", state="done")
    assert has(events, type="container", action="start", project=demo)
    # Only this project's: the stream carries every container of this Unix user, and another test file
    # running beside this one may stop a container of the same user (exit 143) at the same moment.
    died = next(e for e in events if e.get("action") == "die" and e.get("project") == demo)
    assert died["exit_code"] == 137


async def test_reconnect_gets_current_state_first(api, jp_base_url, jp_http_port, jp_auth_header, engine, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    url = f"http://localhost:{jp_http_port}{jp_base_url}ds01/events"
    events: list[dict] = []
    await asyncio.wait_for(follow(url, jp_auth_header, events, lambda evs: bool(evs)), 30)
    snapshot = events[0]
    assert snapshot["type"] == "snapshot"
    assert snapshot["projects"][0]["container"]["state"] == "running"
