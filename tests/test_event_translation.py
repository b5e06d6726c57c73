"""From the engine's event stream to the sidebar's events (pure logic: a stub API, the fast tier).

tests/test_events.py follows the same events from a real engine through a real server.
"""

from __future__ import annotations

from ds01_jupyter.core import labels as L
from ds01_jupyter.core.docker_engine import DockerEngine
from ds01_jupyter.server.events import translate

GPU_LABELS = {L.PROJECT: "demo", L.GPU_UUIDS: "GPU-a,GPU-b"}


def event(action, labels=None, **fields):
    return {"action": action, "id": "c1", "name": "demo._.alice", "labels": labels or {L.PROJECT: "demo"},
            "exit_code": None, "time": 1.5, **fields}


def test_container_actions_become_container_events_with_their_project():
    [out] = translate(event("start"))
    assert out == {"type": "container", "action": "start", "project": "demo", "id": "c1", "name": "demo._.alice",
                   "exit_code": None, "time": 1.5}


def test_an_exit_code_is_a_number_and_an_empty_one_is_none():
    assert translate(event("die", exit_code="137"))[0]["exit_code"] == 137
    assert translate(event("die", exit_code=0))[0]["exit_code"] == 0
    assert translate(event("die", exit_code=""))[0]["exit_code"] is None


def test_other_actions_are_dropped():
    for action in ("exec_create", "exec_start: sh", "attach", "resize", "top", "tick", "", None):
        assert translate(event(action)) == []


def test_destroying_a_gpu_container_also_says_its_gpus_are_free():
    container, freed = translate(event("destroy", GPU_LABELS))
    assert container["action"] == "destroy"
    assert freed == {"type": "gpu", "action": "freed", "uuids": ["GPU-a", "GPU-b"], "project": "demo"}
    assert len(translate(event("stop", GPU_LABELS))) == 1  # a stop holds them (gpu_hold_after_stop)
    assert len(translate(event("destroy"))) == 1  # nothing to free


def test_an_event_without_labels_has_no_project():
    assert translate({"action": "oom", "id": "c2"})[0]["project"] == ""


class StubApi:
    def __init__(self, raw):
        self.raw, self.asked = raw, None
        self.closed = False

    def events(self, **kwargs):
        self.asked = kwargs
        return self

    def __iter__(self):
        return iter(self.raw)

    def close(self):
        self.closed = True


def test_the_engines_events_keep_only_ds01_labels_and_are_asked_for_containers_of_the_filter():
    raw = [
        {"Action": "die", "Actor": {"ID": "c1", "Attributes": {"name": "demo._.alice", "exitCode": "1",
                                                                "ds01.project": "demo", "maintainer": "someone"}},
         "timeNano": 1_700_000_000_500_000_000},
        {"status": "start", "id": "c2", "time": 1_700_000_001},  # an older engine's form
    ]
    engine = DockerEngine()
    engine._client = api = StubApi(raw)
    got = list(engine.events({L.MANAGED: "true", L.USER: "alice"}, since=10, until=12))
    assert api.asked == {"decode": True, "since": 10, "until": 12,
                         "filters": {"label": ["ds01.managed=true", "ds01.user=alice"], "type": ["container"]}}
    assert got[0] == {"action": "die", "id": "c1", "name": "demo._.alice", "labels": {"ds01.project": "demo"},
                      "exit_code": "1", "time": 1_700_000_000.5}
    assert got[1] == {"action": "start", "id": "c2", "name": "", "labels": {}, "exit_code": None, "time": 1_700_000_001}
    assert api.closed  # the stream is closed when the window ends
    assert translate(got[0])[0]["exit_code"] == 1
