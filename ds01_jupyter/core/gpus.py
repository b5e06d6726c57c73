"""GPU inventory (NVML or a configured list) and attribution of GPU processes to containers."""

from __future__ import annotations

import abc
import copy
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ConfigError


@dataclass
class GpuProcess:
    pid: int  # host PID, as NVML reports it
    used_memory: int | None = None
    container_id: str | None = None
    container: str | None = None
    user: str | None = None
    project: str | None = None


@dataclass
class GpuDevice:
    """One allocatable unit: a whole GPU, or a MIG slice of a partitioned one."""

    uuid: str
    index: str  # "0", or "1:2" for MIG slice 2 of GPU 1
    name: str
    memory_total: int = 0
    memory_used: int = 0
    utilization: int | None = None  # percent, None where NVML cannot say
    parent_uuid: str | None = None  # set for MIG slices
    processes: list[GpuProcess] = field(default_factory=list)
    node: str = ""  # the cluster node it is on ("" on one host)

    @property
    def is_mig(self) -> bool:
        return self.parent_uuid is not None

    def slots(self, mig_instances_per_gpu: int) -> int:
        """What holding this device counts against max_mig_instances."""
        return 1 if self.is_mig else mig_instances_per_gpu

    def to_dict(self) -> dict:
        data = asdict(self)
        data["is_mig"] = self.is_mig
        return data


class GpuInventory(abc.ABC):
    """Lists the host's allocatable GPUs; ``notice`` says why there are none."""

    notice: str = ""

    @abc.abstractmethod
    def devices(self) -> list[GpuDevice]: ...


class NvmlInventory(GpuInventory):
    """The real GPUs, through NVML (pynvml). Absent NVML means zero GPUs, with a notice."""

    def devices(self) -> list[GpuDevice]:
        try:
            import pynvml
        except ImportError:
            self.notice = "pynvml is not installed, so no GPUs are visible (pip install nvidia-ml-py)."
            return []
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as err:
            self.notice = f"No NVIDIA GPU visible: NVML is unavailable ({err}). Containers run CPU-only."
            return []
        try:
            found = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                gpu = _nvml_device(pynvml, handle, str(i), None)
                mig_handles = _mig_handles(pynvml, handle)
                if not mig_handles:
                    found.append(gpu)
                for j, mig in mig_handles:
                    found.append(_nvml_device(pynvml, mig, f"{i}:{j}", gpu.uuid, parent=handle))
            self.notice = "" if found else "NVML found no NVIDIA GPU on this host."
            return found
        except pynvml.NVMLError as err:
            self.notice = f"NVML failed while listing GPUs ({err})."
            return []
        finally:
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mig_handles(pynvml, handle) -> list:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:
        return []  # not MIG-capable
    if current != pynvml.NVML_DEVICE_MIG_ENABLE:
        return []
    out = []
    for j in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            out.append((j, pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)))
        except pynvml.NVMLError:
            continue  # an empty slot
    return out


def _nvml_device(pynvml, handle, index, parent_uuid, parent=None) -> GpuDevice:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        # MIG slices report no utilisation of their own; their parent does.
        utilization = pynvml.nvmlDeviceGetUtilizationRates(parent or handle).gpu
    except pynvml.NVMLError:
        utilization = None
    processes = []
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            for proc in getattr(pynvml, getter)(handle):
                used = getattr(proc, "usedGpuMemory", None)
                processes.append(GpuProcess(pid=int(proc.pid), used_memory=used))
        except pynvml.NVMLError:
            continue
    return GpuDevice(
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        memory_total=int(memory.total),
        memory_used=int(memory.used),
        utilization=utilization,
        parent_uuid=parent_uuid,
        processes=processes,
    )


class ConfiguredInventory(GpuInventory):
    """GPUs from a YAML/JSON list, for hosts without NVML and for tests of allocation.

    Each entry: ``uuid`` (required), ``index``, ``name``, ``memory_total``,
    ``parent_uuid`` (for a MIG slice), ``pids`` (host PIDs said to use it).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def devices(self) -> list[GpuDevice]:
        import yaml  # only an admin's GPU list needs it (issue 19: the CLI's start-up)

        try:
            entries = yaml.safe_load(self.path.read_text()) or []
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot read the GPU list {self.path}: {err}") from None
        if isinstance(entries, dict):
            entries = entries.get("gpus") or []
        out = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("uuid"):
                raise ConfigError(f"GPU entry {i} of {self.path} needs a 'uuid'.")
            out.append(
                GpuDevice(
                    uuid=str(entry["uuid"]),
                    index=str(entry.get("index", i)),
                    name=str(entry.get("name", "configured GPU")),
                    memory_total=int(entry.get("memory_total", 0)),
                    memory_used=int(entry.get("memory_used", 0)),
                    utilization=entry.get("utilization"),
                    parent_uuid=entry.get("parent_uuid"),
                    processes=[GpuProcess(pid=int(p)) for p in entry.get("pids", [])],
                )
            )
        self.notice = "" if out else f"The GPU list {self.path} is empty."
        return out


class CachedInventory(GpuInventory):
    """Another inventory's answer, kept for ``seconds``: NVML takes tens of milliseconds per GPU, and the sidebar,
    deploys and the reaper may all ask within the same second.

    One query at a time: callers that arrive while it runs wait for its answer instead of asking again. Each
    caller gets its own copy (attribute() fills in processes' containers on what it is given).
    """

    def __init__(self, inner: GpuInventory, seconds: float = 1.0):
        self.inner = inner
        self.seconds = seconds
        self._lock = threading.Lock()
        self._answer: tuple[float, list[GpuDevice], str] | None = None

    def devices(self) -> list[GpuDevice]:
        with self._lock:
            if self._answer is None or time.monotonic() - self._answer[0] >= self.seconds:
                found = self.inner.devices()
                self._answer = (time.monotonic(), found, self.inner.notice)
            _at, found, self.notice = self._answer
            return copy.deepcopy(found)


def inventory_from_setting(value: str) -> GpuInventory:
    """``"nvml"`` -> NvmlInventory (its answer kept for a second); a file path -> ConfiguredInventory."""
    if value in ("", "nvml", None):
        return CachedInventory(NvmlInventory())
    return ConfiguredInventory(value)


# -- attribution -------------------------------------------------------------
_CONTAINER_ID = re.compile(r"(?:docker[-/]|/docker/|cri-containerd-|containerd[-/])([0-9a-f]{64})")


def container_id_of_pid(pid: int, proc: Path = Path("/proc")) -> str | None:
    """Which container a host PID runs in, read from its cgroup (v1 or v2)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    match = _CONTAINER_ID.search(text)
    return match.group(1) if match else None


def attribute(devices: list[GpuDevice], containers_by_id: dict, proc: Path = Path("/proc")) -> None:
    """Fill in, for each GPU process, the container and user it belongs to.

    NVML reports host PIDs; the cgroup of each PID names its container, which
    our labels map to a user and project. Processes outside any of our
    containers keep ``container_id`` (foreign container) or nothing (host).
    """
    for device in devices:
        for process in device.processes:
            cid = container_id_of_pid(process.pid, proc)
            process.container_id = cid
            record = containers_by_id.get(cid) if cid else None
            if record is not None:
                process.container = record.name
                process.user = record.labels.get("ds01.user")
                process.project = record.labels.get("ds01.project")

