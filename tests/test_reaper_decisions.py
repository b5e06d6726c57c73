"""The reaper's decision for one running container, from its status, its limits and what it did since the last look.

Pure logic with a stub engine (its cgroup's CPU time): the fast tier. tests/test_reaper.py runs the same rules
against real containers.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from ds01_jupyter.core import Settings
from ds01_jupyter.core.containers import ContainerStatus
from ds01_jupyter.core.limits import Limits
from ds01_jupyter.core.reaper import RUNTIME_WARNING, Reaper
from ds01_jupyter.core.users import User

STARTED = "2027-01-15T08:00:00Z"  # when the container started, as its status says
T0 = datetime.fromisoformat("2027-01-15T08:00:00+00:00").timestamp()
HOUR = 3600.0


class StubEngine:
    def __init__(self):
        self.cpu_ns = 0

    def cpu_usage_ns(self, cid):
        return self.cpu_ns


@pytest.fixture
def reaper(tmp_path):
    engine = StubEngine()
    reaper = Reaper(SimpleNamespace(settings=Settings(idle_cpu_percent=5.0), engine=engine))
    reaper.engine = engine
    reaper.busy = ""  # what a look at the container's processes finds busy ("" for nothing)
    reaper._busy_process = lambda user, status: reaper.busy
    return reaper


def status(tmp_path, **fields):
    values = dict(project="p", name="p._.alice", id="c1", state="running", image="i", started_at=STARTED,
                  workspace=str(tmp_path))
    values.update(fields)
    return ContainerStatus(**values)


LIMITS = Limits(max_runtime=None, idle_timeout=HOUR, idle_timeout_cpu=None)
ALICE = User("alice", 2001, 2001, "/home/alice")


def decide(reaper, st, entry, now, limits=LIMITS, gpu_containers=()):
    return reaper._decide(ALICE, st, entry, limits, set(gpu_containers), now)


def test_first_sight_is_activity_and_idle_time_counts_from_the_last_activity(reaper, tmp_path):
    st, entry = status(tmp_path), {}
    first = decide(reaper, st, entry, T0 + 10)
    assert (first.action, first.reason) == ("keep", "first observation") and entry["last_active"] == T0 + 10
    later = decide(reaper, st, entry, T0 + 10 + HOUR / 2)
    assert later.action == "keep" and later.reason == "idle for 30m"
    over = decide(reaper, st, entry, T0 + 20 + HOUR)
    assert over.action == "stop" and "over idle_timeout 1h" in over.reason


def test_cpu_use_above_the_threshold_is_activity(reaper, tmp_path):
    st, entry = status(tmp_path), {}
    decide(reaper, st, entry, T0)
    reaper.engine.cpu_ns += int(0.5 * 2 * HOUR * 1e9)  # half a core for two hours
    busy = decide(reaper, st, entry, T0 + 2 * HOUR)
    assert busy.action == "keep" and busy.reason == "CPU 50% of a core" and entry["last_active"] == T0 + 2 * HOUR
    reaper.engine.cpu_ns += int(0.01 * 2 * HOUR * 1e9)  # 1 %: idle
    assert decide(reaper, st, entry, T0 + 4 * HOUR).action == "stop"


def test_a_gpu_process_or_a_busy_cell_keeps_an_idle_looking_container(reaper, tmp_path):
    st, entry = status(tmp_path, gpus=["GPU-0"]), {"last_active": T0, "cpu_ns": 0, "sampled": T0}
    kept = decide(reaper, st, entry, T0 + 5 * HOUR, gpu_containers={"c1"})
    assert kept.reason == "a process is using its GPU" and entry["last_active"] == T0 + 5 * HOUR
    reaper.busy = "python train.py: cell running for 3h"
    kept = decide(reaper, st, entry, T0 + 10 * HOUR)
    assert kept.action == "keep" and kept.reason == "a process is busy: python train.py: cell running for 3h"
    reaper.busy = ""
    assert decide(reaper, st, entry, T0 + 12 * HOUR).action == "stop"


def test_containers_without_a_gpu_use_idle_timeout_cpu_where_it_is_set(reaper, tmp_path):
    limits = Limits(max_runtime=None, idle_timeout=10 * HOUR, idle_timeout_cpu=HOUR)
    entry = {"last_active": T0, "cpu_ns": 0, "sampled": T0}
    cpu_only = decide(reaper, status(tmp_path), dict(entry), T0 + 2 * HOUR, limits)
    assert cpu_only.action == "stop" and "idle_timeout 1h" in cpu_only.reason
    assert decide(reaper, status(tmp_path, gpus=["GPU-0"]), dict(entry), T0 + 2 * HOUR, limits).action == "keep"
    never = Limits(max_runtime=None, idle_timeout=None)
    assert decide(reaper, status(tmp_path), dict(entry), T0 + 1000 * HOUR, never).action == "keep"


def test_max_runtime_warns_once_per_run_then_stops(reaper, tmp_path):
    limits = Limits(max_runtime=2 * HOUR, idle_timeout=None)
    st, entry = status(tmp_path), {}
    assert decide(reaper, st, entry, T0 + HOUR, limits).action == "keep"
    warned = decide(reaper, st, entry, T0 + 2 * HOUR - RUNTIME_WARNING + 60, limits)
    assert warned.action == "warn" and warned.at == T0 + 2 * HOUR and "in 29 min" in warned.reason
    assert "SIGTERM" in warned.reason
    assert decide(reaper, st, entry, T0 + 2 * HOUR - 60, limits).action == "keep"  # warned already
    over = decide(reaper, st, entry, T0 + 2 * HOUR + 1, limits)
    assert over.action == "stop" and "over max_runtime 2h" in over.reason
    # A new run of the same container (started again) is warned again.
    restarted = status(tmp_path, started_at="2027-01-15T12:00:00Z")
    assert decide(reaper, restarted, entry, T0 + 6 * HOUR - RUNTIME_WARNING + 60, limits).action == "warn"


def test_protected_and_keep_alive_containers_are_never_stopped(reaper, tmp_path):
    limits = Limits(max_runtime=1.0, idle_timeout=1.0)
    entry = {"last_active": T0, "cpu_ns": 0, "sampled": T0}
    guarded = decide(reaper, status(tmp_path, protected=True), dict(entry), T0 + 100 * HOUR, limits)
    assert (guarded.action, guarded.reason) == ("keep", "protected (ds01.protected=true)")
    (tmp_path / ".keep-alive").touch()
    alive = decide(reaper, status(tmp_path), dict(entry), T0 + 100 * HOUR, limits)
    assert (alive.action, alive.reason) == ("keep", "workspace has a .keep-alive file")
    (tmp_path / ".keep-alive").unlink()
    assert decide(reaper, status(tmp_path), dict(entry), T0 + 100 * HOUR, limits).action == "stop"
