"""The GPU checks and the GPU query's timing, in one run on a machine with an NVIDIA GPU (the `device` machine).

It needs Python, the NVIDIA driver and nvidia-ml-py; neither Docker nor ds01's other dependencies. Where pynvml
is missing, ``--wheels`` names a folder of wheels put on the path (carried there: ``pip download --no-deps -d
.device nvidia-ml-py`` here, the folder ignored by git). From the repository root on that machine:

    PYTHONPATH=. python3 bench/device_check.py --out "$OUT/gpu.json" --wheels .device

and back here ``.venv/bin/python bench/run.py --merge gpu.json`` writes its row into RESULTS.md. Each check ends
passed, failed, or not possible there (and why); the exit status is 1 when one failed. Checks:

- inventory: NVML's list is nvidia-smi's (UUIDs, names, memory, index order);
- mig: where MIG is on, every slice under its parent, as ``nvidia-smi -L`` lists them;
- processes: a CUDA process started here is listed on its GPU with its pid, as nvidia-smi lists it;
- attribution: that process, moved into a cgroup named as Docker names a container's, is attributed to it;
- cache: the cached inventory asks NVML once within its second and again after it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

PASSED, FAILED, NOT_POSSIBLE = "passed", "failed", "not possible here"
#: A CUDA process for the process checks: says "ready" once it holds a context, ends when its stdin closes.
CUDA_HOLDERS = (
    ("torch", "import sys, torch; x = torch.zeros(1, device='cuda'); print('ready', flush=True); sys.stdin.read()"),
    ("cupy", "import sys, cupy; x = cupy.zeros(1); print('ready', flush=True); sys.stdin.read()"),
)


def smi(*args: str) -> list[list[str]]:
    """nvidia-smi's CSV answer, one list of fields per line."""
    done = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                          check=True, timeout=60)
    return [[field.strip() for field in line.split(",")] for line in done.stdout.splitlines() if line.strip()]


def compare_inventory(devices, rows: list[list[str]]) -> list[str]:
    """What differs between NVML's whole GPUs and nvidia-smi's rows (index, uuid, name, memory.total in MiB)."""
    whole = [d for d in devices if d.parent_uuid is None]
    problems = []
    if [d.uuid for d in whole] != [row[1] for row in rows]:
        problems.append(f"UUIDs differ: NVML {[d.uuid for d in whole]}, nvidia-smi {[row[1] for row in rows]}")
    for device, row in zip(whole, rows, strict=False):
        if device.index != row[0]:
            problems.append(f"{device.uuid}: index {device.index} against nvidia-smi's {row[0]}")
        if device.name != row[2]:
            problems.append(f"{device.uuid}: name {device.name!r} against nvidia-smi's {row[2]!r}")
        if abs(device.memory_total // 2**20 - int(row[3])) > 1:
            problems.append(f"{device.uuid}: {device.memory_total // 2**20} MiB against nvidia-smi's {row[3]} MiB")
    return problems


def check_inventory(devices, notice: str) -> tuple[str, str]:
    if not devices:
        return NOT_POSSIBLE, f"NVML lists no GPU ({notice})"
    problems = compare_inventory(devices, smi("--query-gpu=index,uuid,name,memory.total"))
    return (FAILED, "; ".join(problems)) if problems else (PASSED, f"{len(devices)} GPUs, as nvidia-smi lists them")


def check_mig(devices) -> tuple[str, str]:
    slices = [d for d in devices if d.parent_uuid is not None]
    modes = smi("--query-gpu=uuid,mig.mode.current")
    if not any(mode == "Enabled" for _, mode in modes):
        return NOT_POSSIBLE, "MIG is off on every GPU (turning it on needs a GPU reset, which is not ours to do)"
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=True).stdout
    parents: dict[str, list[str]] = {}
    current = ""
    for line in listed.splitlines():
        if "(UUID: GPU-" in line:
            current = line.split("(UUID: ")[1].rstrip(")")
        elif "(UUID: MIG-" in line:
            parents.setdefault(current, []).append(line.split("(UUID: ")[1].rstrip(")"))
    ours = {}
    for device in slices:
        ours.setdefault(device.parent_uuid, []).append(device.uuid)
    if {k: sorted(v) for k, v in ours.items()} != {k: sorted(v) for k, v in parents.items()}:
        return FAILED, f"slices differ: NVML {ours}, nvidia-smi -L {parents}"
    return PASSED, f"{len(slices)} MIG slices under {len(ours)} GPUs"


def start_cuda_holder() -> tuple[subprocess.Popen | None, str]:
    for library, code in CUDA_HOLDERS:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if proc.stdout is not None and proc.stdout.readline().strip() == "ready":
            return proc, library
        proc.kill()
        proc.wait()
    return None, "neither torch nor cupy could make a CUDA context"


def check_processes(inventory, holder: subprocess.Popen) -> tuple[str, str]:
    listed = {int(pid): uuid for pid, uuid in smi("--query-compute-apps=pid,gpu_uuid")}
    ours = {p.pid: d.uuid for d in inventory.devices() for p in d.processes}
    if holder.pid not in listed:
        return NOT_POSSIBLE, f"nvidia-smi does not list the CUDA process {holder.pid} either ({listed})"
    if ours.get(holder.pid) != listed[holder.pid]:
        return FAILED, f"pid {holder.pid} on {listed[holder.pid]} by nvidia-smi, {ours.get(holder.pid)} by NVML"
    return PASSED, f"pid {holder.pid} listed on {listed[holder.pid]}"


def check_attribution(inventory, holder: subprocess.Popen) -> tuple[str, str]:
    from ds01_jupyter.core.gpus import attribute

    container_id = secrets.token_hex(32)
    root = Path("/sys/fs/cgroup")
    if not (root / "cgroup.controllers").exists():
        return NOT_POSSIBLE, "no cgroup v2 hierarchy at /sys/fs/cgroup"
    group = root / f"docker-{container_id}.scope"  # as Docker's cgroupfs driver names it, below the root
    try:
        group.mkdir()
        (group / "cgroup.procs").write_text(str(holder.pid))
    except OSError as err:
        _remove_group(group, root)
        return NOT_POSSIBLE, f"cannot make a cgroup named as a container's here ({err})"
    try:
        record = SimpleNamespace(name="demo._.alice", labels={"ds01.user": "alice", "ds01.project": "demo"})
        devices = inventory.devices()
        attribute(devices, {container_id: record})
        found = [p for d in devices for p in d.processes if p.pid == holder.pid]
        if not found or (found[0].container, found[0].user, found[0].project) != ("demo._.alice", "alice", "demo"):
            return FAILED, f"pid {holder.pid} attributed as {found}"
        return PASSED, f"pid {holder.pid} attributed to its container's user and project through its cgroup"
    finally:
        _remove_group(group, root)


def _remove_group(group: Path, root: Path) -> None:
    try:
        for pid in (group / "cgroup.procs").read_text().split():
            (root / "cgroup.procs").write_text(pid)
        group.rmdir()
    except OSError:
        pass


def check_cache() -> tuple[str, str]:
    from ds01_jupyter.core.gpus import CachedInventory, NvmlInventory

    inner = NvmlInventory()
    asked = []
    real = inner.devices
    inner.devices = lambda: asked.append(time.monotonic()) or real()  # type: ignore[method-assign]
    cached = CachedInventory(inner, seconds=1.0)
    first = cached.devices()
    again = cached.devices()
    within = len(asked)
    time.sleep(1.1)
    cached.devices()
    if (within, len(asked)) != (1, 2) or [d.uuid for d in first] != [d.uuid for d in again]:
        return FAILED, f"NVML asked {within} times within the second and {len(asked)} in all (1 and 2 expected)"
    return PASSED, "one NVML query within the second, another after it"


def machine(devices) -> dict:
    def read(*args: str) -> str:
        try:
            return ", ".join(sorted({row[0] for row in smi(*args)}))
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    try:
        from importlib.metadata import version

        nvml = version("nvidia-ml-py")
    except Exception:  # noqa: BLE001 - any reason it cannot be read
        nvml = "unknown"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "gpus": [d.name for d in devices if d.parent_uuid is None],
        "driver": read("--query-gpu=driver_version") if devices else "none",
        "nvidia_ml_py": nvml,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the results (JSON)")
    parser.add_argument("--wheels", type=Path, help="a folder of wheels (nvidia-ml-py) to use when pynvml is missing")
    parser.add_argument("--repeat", type=int, default=10, help="timed samples of each query (default 10)")
    args = parser.parse_args()
    try:
        import pynvml  # noqa: F401
    except ImportError:
        sys.path[:0] = [str(wheel) for wheel in sorted((args.wheels or Path("/nonexistent")).glob("*.whl"))]
    import gpu  # the GPU benchmark of bench/run.py, measured here

    from ds01_jupyter.core.gpus import NvmlInventory

    inventory = NvmlInventory()
    devices = inventory.devices()
    checks: dict[str, tuple[str, str]] = {"inventory": check_inventory(devices, inventory.notice)}
    if devices and shutil.which("nvidia-smi"):
        checks["mig"] = check_mig(devices)
        holder, library = start_cuda_holder()
        if holder is None:
            checks["processes"] = checks["attribution"] = (NOT_POSSIBLE, library)
        else:
            try:
                checks["processes"] = check_processes(inventory, holder)
                checks["attribution"] = check_attribution(inventory, holder)
            finally:
                holder.kill()
                holder.wait()
        checks["cache"] = check_cache()
    started = time.perf_counter()
    measured = gpu.run(args.repeat)
    report = {
        "machine": machine(devices),
        "checks": {name: {"outcome": outcome, "detail": detail} for name, (outcome, detail) in checks.items()},
        "gpu": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "seconds": round(time.perf_counter() - started, 1), "results": measured},
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, (outcome, detail) in checks.items():
        print(f"{name}: {outcome}: {detail}")
    print(json.dumps(measured, indent=1))
    return 1 if any(outcome == FAILED for outcome, _ in checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
