"""GPU choice, GPU limits and who holds a GPU after a stop or a crash (pure logic: a stub engine, the fast tier)."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from datetime import datetime, timedelta, timezone

import pytest

from ds01_jupyter.core import labels as L
from ds01_jupyter.core.allocator import CREATED_GRACE, STOP_RECORD, Ending, GpuAllocator, _stamp
from ds01_jupyter.core.engine import ContainerRecord
from ds01_jupyter.core.errors import ContainerNotFound, GpuUnavailable, LimitExceeded
from ds01_jupyter.core.gpus import GpuDevice, GpuProcess
from ds01_jupyter.core.limits import Limits
from ds01_jupyter.core.users import User

NOW = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
ALICE = User("alice", 2001, 2001, "/home/alice")


def gpu(uuid, index="0", memory_used=0, processes=0):
    return GpuDevice(uuid, index, "GPU", memory_used=memory_used, processes=[GpuProcess(i) for i in range(processes)])


def mig(uuid, parent, index="0:0"):
    return GpuDevice(uuid, index, "MIG 1g", parent_uuid=parent)


def container(state="running", user=ALICE, uuids=(), slots=0, **fields):
    labels = {**L.owned_by(user), L.WORKSPACE: f"/home/{user.name}/workspace/p", L.CREATED_AT: "2026-01-01T00:00:00Z",
              L.GPU_UUIDS: ",".join(uuids), L.GPU_SLOTS: str(slots)}
    return ContainerRecord(id=fields.pop("id", "c-" + state), name="p._." + user.name, state=state, image="i",
                           image_id="i", labels=labels, **fields)


UNLIMITED = Limits(max_mig_instances=None, max_mig_per_container=None)


# -- choose --------------------------------------------------------------------------------
def test_choose_prefers_mig_slices_then_idle_then_empty_gpus():
    devices = [gpu("GPU-busy", "0", processes=2), gpu("GPU-full", "1", memory_used=10), gpu("GPU-empty", "2"),
               mig("MIG-a", "GPU-parent", "3:0")]
    chosen = GpuAllocator.choose(devices, {}, 3, UNLIMITED, 0)
    assert [d.uuid for d in chosen] == ["MIG-a", "GPU-empty", "GPU-full"]


def test_choose_never_gives_a_held_gpu_nor_a_slice_of_one_nor_the_parent_of_a_held_slice():
    devices = [gpu("GPU-0", "0"), mig("MIG-0a", "GPU-0", "0:0"),  # GPU-0 itself is held
               gpu("GPU-1", "1"), mig("MIG-1a", "GPU-1", "1:0"), mig("MIG-1b", "GPU-1", "1:1"),  # MIG-1a is held
               gpu("GPU-2", "2")]
    held = {"GPU-0": container(uuids=["GPU-0"]), "MIG-1a": container(uuids=["MIG-1a"])}
    chosen = GpuAllocator.choose(devices, held, 2, UNLIMITED, 0)
    assert [d.uuid for d in chosen] == ["MIG-1b", "GPU-2"]
    with pytest.raises(GpuUnavailable) as info:
        GpuAllocator.choose(devices, held, 3, UNLIMITED, 0)
    assert "asked for 3, 2 can be given (6 on this host, 2 held" in info.value.message and "--gpus 0" in info.value.hint


def test_a_user_without_full_gpus_gets_only_mig_slices_and_is_told_so():
    limits = Limits(max_mig_instances=None, max_mig_per_container=None, allow_full_gpu=False)
    devices = [gpu("GPU-0"), mig("MIG-a", "GPU-9")]
    assert [d.uuid for d in GpuAllocator.choose(devices, {}, 1, limits, 0)] == ["MIG-a"]
    with pytest.raises(GpuUnavailable) as info:
        GpuAllocator.choose(devices, {}, 2, limits, 0)
    assert "MIG slices (your limits do not allow full GPUs)" in info.value.message


def test_a_full_gpu_costs_its_slots_so_a_slice_is_taken_where_it_fits():
    limits = Limits(max_mig_instances=3, max_mig_per_container=None, mig_instances_per_gpu=4)
    devices = [gpu("GPU-0", "0"), mig("MIG-a", "GPU-9", "1:0")]
    # The full GPU would cost 4 of 3 slots: skipped, the slice fits.
    assert [d.uuid for d in GpuAllocator.choose(devices, {}, 1, limits, 0)] == ["MIG-a"]
    with pytest.raises(GpuUnavailable):
        GpuAllocator.choose([gpu("GPU-0")], {}, 1, limits, 0)
    with pytest.raises(GpuUnavailable):  # the user already holds all three slots
        GpuAllocator.choose([mig("MIG-a", "GPU-9")], {}, 1, limits, 3)
    assert GpuAllocator.choose(devices, {}, 0, limits, 3) == []


# -- check_limits --------------------------------------------------------------------------
def test_gpu_limits_name_the_limit_that_refused():
    limits = Limits(max_mig_instances=2, max_mig_per_container=1)
    with pytest.raises(LimitExceeded) as info:
        GpuAllocator.check_limits(limits, 2, 0, [gpu("GPU-0")])
    assert info.value.details["limit"] == "max_mig_per_container" and "at most 1" in info.value.hint
    with pytest.raises(LimitExceeded) as info:
        GpuAllocator.check_limits(limits, 1, 2, [gpu("GPU-0")])
    assert info.value.details["limit"] == "max_mig_instances" and info.value.details["current"] == 2
    assert "--gpus 0" in info.value.hint
    GpuAllocator.check_limits(limits, 1, 1, [gpu("GPU-0")])  # the last slot
    GpuAllocator.check_limits(limits, 0, 99, [])  # CPU-only is never refused for GPUs
    GpuAllocator.check_limits(UNLIMITED, 50, 50, [gpu("GPU-0")])


def test_the_slot_check_counts_the_cheapest_device_the_host_has():
    limits = Limits(max_mig_instances=4, max_mig_per_container=None, mig_instances_per_gpu=4)
    GpuAllocator.check_limits(limits, 1, 3, [gpu("GPU-0"), mig("MIG-a", "GPU-9")])  # a slice still fits
    with pytest.raises(LimitExceeded):
        GpuAllocator.check_limits(limits, 1, 3, [gpu("GPU-0")])  # only full GPUs: 3 + 4 > 4


# -- who holds a GPU -----------------------------------------------------------------------
class StubEngine:
    """Answers the allocator's reads of a stopped container: its inspect and its stop record."""

    def __init__(self, record_file: bytes | None = None, uid: int = 0):
        self.record_file, self.uid, self.reads = record_file, uid, 0

    def get_container(self, cid):
        return None

    def read_archive(self, cid, path):
        self.reads += 1
        assert path == STOP_RECORD
        if self.record_file is None:
            raise ContainerNotFound("no such file")
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(".ds01-stop")
            info.size, info.uid = len(self.record_file), self.uid
            tar.addfile(info, io.BytesIO(self.record_file))
        out.seek(0)
        return out


_ids = itertools.count()


def stopped(
    exit_code, started=NOW - timedelta(hours=1), finished=NOW - timedelta(minutes=1), oom=False, uuids=("GPU-0",)
):
    """A container whose run ended (each its own: verdicts are remembered per container and run)."""
    return container("exited", uuids=uuids, slots=1, started_at=started, finished_at=finished, exit_code=exit_code,
                     oom_killed=oom, id=f"stopped-{next(_ids)}")


def stop_record(record, asked):
    return json.dumps(
        {"container": record.id, "started_at": _stamp(record.started_at), "requested_at": _stamp(asked)}
    ).encode()


def test_a_run_that_ended_by_itself_is_exited_or_crashed_without_reading_a_record():
    engine = StubEngine()
    allocator = GpuAllocator(engine, "/nonexistent")
    assert allocator.ending(container("running")) == Ending()
    assert allocator.ending(stopped(0)).how == "exited"
    assert allocator.ending(stopped(0, oom=True)).how == "crashed"
    assert engine.reads == 0
    crashed = allocator.ending(stopped(1))
    assert crashed.how == "crashed" and crashed.describe() == "crashed (exit 1)" and engine.reads == 1
    assert allocator.ending(stopped(137, oom=True)).describe() == "crashed (exit 137, out of memory)"


def test_only_ds01s_own_record_of_this_run_makes_a_non_zero_exit_a_stop():
    record = stopped(143)
    asked = record.finished_at - timedelta(seconds=5)
    assert GpuAllocator(StubEngine(stop_record(record, asked)), "/x").ending(record).how == "stopped"
    # Written by the container's user, not by the engine as root: a crash.
    assert GpuAllocator(StubEngine(stop_record(record, asked), uid=2001), "/x").ending(record).how == "crashed"
    # A record of an earlier run of the container.
    earlier = stopped(143, started=record.started_at - timedelta(days=1))
    assert GpuAllocator(StubEngine(stop_record(earlier, asked)), "/x").ending(record).how == "crashed"
    # A stop asked for long before the run ended (a stop that failed, then a crash).
    assert (
        GpuAllocator(StubEngine(stop_record(record, asked - timedelta(hours=1))), "/x").ending(record).how == "crashed"
    )
    assert GpuAllocator(StubEngine(b"not json"), "/x").ending(record).how == "crashed"


def test_the_verdict_of_a_run_is_read_once():
    engine = StubEngine()
    allocator = GpuAllocator(engine, "/x")
    record = stopped(1)
    assert allocator.ending(record) == allocator.ending(record) and engine.reads == 1


def test_holding_after_a_stop_a_crash_or_a_deploy_that_died():
    allocator = GpuAllocator(StubEngine(), "/x")
    hold = lambda labels: 900  # noqa: E731  gpu_hold_after_stop: 15 minutes
    assert allocator.holds(container("running", uuids=["GPU-0"]), hold, NOW)
    assert allocator.holds(stopped(0, finished=NOW - timedelta(minutes=10)), hold, NOW)
    assert not allocator.holds(stopped(0, finished=NOW - timedelta(minutes=20)), hold, NOW)
    assert allocator.holds(stopped(0, finished=NOW - timedelta(days=9)), lambda labels: None, NOW)  # held for ever
    assert not allocator.holds(stopped(1, finished=NOW - timedelta(seconds=1)), hold, NOW)  # a crash frees at once
    young = container("created", created=NOW - timedelta(seconds=CREATED_GRACE / 2))
    old = container("created", created=NOW - timedelta(seconds=CREATED_GRACE * 2))
    assert allocator.holds(young, hold, NOW) and not allocator.holds(old, hold, NOW)


def test_the_moment_a_hold_ends_is_the_one_holds_goes_by():
    """hold_ends (what the overview keeps an answer until) and holds() are one rule: holds() is true exactly up to
    the moment hold_ends gives, and None means only an event ends the hold."""
    allocator = GpuAllocator(StubEngine(), "/x")
    hold = lambda labels: 900  # noqa: E731
    finished = NOW - timedelta(minutes=10)
    record = stopped(0, finished=finished)
    ends = allocator.hold_ends(record, hold)
    assert ends == finished + timedelta(seconds=900)
    assert allocator.holds(record, hold, ends) and not allocator.holds(record, hold, ends + timedelta(seconds=1))
    made = NOW - timedelta(seconds=10)
    young = container("created", created=made)
    assert allocator.hold_ends(young, hold) == made + timedelta(seconds=CREATED_GRACE)
    labelled = container("created")  # a cluster task's record: no engine time, the deploy's label
    labelled.labels[L.CREATED_AT] = made.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert allocator.hold_ends(labelled, hold) == made.replace(microsecond=0) + timedelta(seconds=CREATED_GRACE)
    assert allocator.hold_ends(container("running", uuids=["GPU-0"]), hold) is None
    assert allocator.hold_ends(stopped(0), lambda labels: None) is None  # held for ever
    assert allocator.hold_ends(stopped(0), lambda labels: 1e300) is None  # past the calendar's end: for ever
    # An admin's file read as YAML numbers: -1e300 frees at once, as a negative hold always did; NaN holds.
    assert not allocator.holds(stopped(0), lambda labels: -1e300, NOW)
    assert allocator.holds(stopped(0), lambda labels: float("nan"), NOW)
    crashed = stopped(1)
    assert allocator.hold_ends(crashed, hold) < NOW and not allocator.holds(crashed, hold, NOW)


def test_holders_and_a_users_share_count_only_containers_ds01_made_for_them():
    bob = User("bob", 2002, 2002, "/home/bob")
    mine = container("running", uuids=["GPU-0", "GPU-1"], slots=2, id="a")
    theirs = container("running", user=bob, uuids=["GPU-2"], slots=1, id="b")
    no_gpu = container("running", id="c")
    held = GpuAllocator(StubEngine(), "/x").holders([mine, theirs, no_gpu], lambda labels: 900)
    assert {u: r.id for u, r in held.items()} == {"GPU-0": "a", "GPU-1": "a", "GPU-2": "b"}
    assert GpuAllocator.share(held, ALICE) == (2, ["GPU-0", "GPU-1"])
    assert GpuAllocator.share(held, bob) == (1, ["GPU-2"])
    # Same name, other uid: not hers.
    assert GpuAllocator.share(held, User("alice", 3000, 3000, "/home/alice")) == (0, [])
