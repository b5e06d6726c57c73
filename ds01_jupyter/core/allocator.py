"""Atomic GPU allocation, derived from container labels under a file lock.

No allocation table is kept: who holds which GPU is read from the
``ds01.gpu.uuids`` labels of every managed container (any user), so a
restarted server, the CLI and the hub spawner all see the same truth. The lock
makes "read labels, choose, create the container" one step across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import datetime, timezone
from pathlib import Path

from . import labels as L
from .engine import ContainerEngine, ContainerRecord
from .errors import GpuUnavailable, LimitExceeded
from .gpus import GpuDevice
from .limits import Limits


class GpuAllocator:
    def __init__(self, engine: ContainerEngine, lock_dir: str):
        self.engine = engine
        self.lock_dir = Path(lock_dir)

    @contextlib.contextmanager
    def locked(self):
        """Hold the host-wide allocation lock (shared by all users)."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(self.lock_dir, 0o1777)  # every user's tools take the same lock
        path = self.lock_dir / "allocation.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def holders(self, containers: list[ContainerRecord], hold_after_stop) -> dict[str, ContainerRecord]:
        """Map GPU UUID -> container holding it.

        Running containers hold their GPUs; stopped ones keep them for the
        owner's ``gpu_hold_after_stop`` (``hold_after_stop(labels)`` in
        seconds, None meaning for ever), after which the GPU is free again.
        """
        now = datetime.now(timezone.utc)
        held: dict[str, ContainerRecord] = {}
        for record in containers:
            uuids = L.gpu_uuids(record.labels)
            if not uuids:
                continue
            if record.state in ("exited", "dead"):
                hold = hold_after_stop(record.labels)
                if hold is not None:
                    detail = self.engine.get_container(record.id)
                    finished = detail.finished_at if detail else None
                    if finished is not None and (now - finished).total_seconds() > hold:
                        continue
            for uuid in uuids:
                held[uuid] = record
        return held

    @staticmethod
    def check_limits(
        limits: Limits, count: int, own_slots: int, devices: list[GpuDevice]
    ) -> None:
        if count <= 0:
            return
        if limits.max_mig_per_container is not None and count > limits.max_mig_per_container:
            raise LimitExceeded(
                f"You asked for {count} GPUs in one container; your limit max_mig_per_container "
                f"is {limits.max_mig_per_container}.",
                hint=f"Ask for at most {limits.max_mig_per_container}.",
                limit="max_mig_per_container",
                value=limits.max_mig_per_container,
                current=count,
            )
        if limits.max_mig_instances is not None:
            # A full GPU counts as mig_instances_per_gpu slots; MIG slices as one.
            cheapest = min((d.slots(limits.mig_instances_per_gpu) for d in devices), default=1)
            if own_slots + count * cheapest > limits.max_mig_instances:
                raise LimitExceeded(
                    f"GPU limit reached: you hold {own_slots} of your {limits.max_mig_instances} GPU slots "
                    f"(max_mig_instances) and asked for {count} more.",
                    hint="Stop or retire a container that holds a GPU (`container-list`), or deploy with --gpus 0.",
                    limit="max_mig_instances",
                    value=limits.max_mig_instances,
                    current=own_slots,
                )

    @staticmethod
    def choose(
        devices: list[GpuDevice], held: dict[str, ContainerRecord], count: int, limits: Limits, own_slots: int
    ) -> list[GpuDevice]:
        """Pick ``count`` free devices the user may have, least loaded first."""
        held_parents = {d.parent_uuid for d in devices if d.uuid in held and d.parent_uuid}
        free = [
            d
            for d in devices
            if d.uuid not in held and d.parent_uuid not in held and d.uuid not in held_parents
        ]
        if not limits.allow_full_gpu:
            free = [d for d in free if d.is_mig]
        free.sort(key=lambda d: (not d.is_mig, len(d.processes), d.memory_used, d.index))
        chosen: list[GpuDevice] = []
        slots = own_slots
        for device in free:
            if len(chosen) == count:
                break
            cost = device.slots(limits.mig_instances_per_gpu)
            if limits.max_mig_instances is not None and slots + cost > limits.max_mig_instances:
                continue
            chosen.append(device)
            slots += cost
        if len(chosen) < count:
            kind = "MIG slices (your limits do not allow full GPUs)" if not limits.allow_full_gpu else "GPUs"
            raise GpuUnavailable(
                f"Not enough free {kind}: asked for {count}, {len(chosen)} can be given "
                f"({len(devices)} on this host, {len(held)} held by containers).",
                hint="Wait for a GPU to be freed, ask for fewer, or deploy with --gpus 0 for CPU-only.",
            )
        return chosen
