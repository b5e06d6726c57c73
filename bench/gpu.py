"""GPU inventory: ds01's NVML query (what `ds01 gpus` and GET /ds01/gpus do) against `nvidia-smi --query-gpu`.

Both list every GPU with its UUID, name and memory. Where NVML or nvidia-smi
is missing (development and CI machines have no GPU) the result says so and
nothing is measured.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess

from timing import not_measured, result, timed

from ds01_jupyter.core.gpus import CachedInventory, NvmlInventory

NAME = "GPU inventory (NVML)"
QUERY = ["nvidia-smi", "--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader"]


def run(repeat: int) -> list[dict]:
    inventory = NvmlInventory()
    devices = inventory.devices()
    if not devices:
        return [not_measured(NAME, f"no NVIDIA GPU on this machine ({inventory.notice})")]
    if not shutil.which("nvidia-smi"):
        return [not_measured(NAME, "NVML answers but nvidia-smi, the baseline, is not installed")]
    # Ten queries per sample: one NVML listing takes milliseconds.
    ours = [t / 10 for t in timed(lambda: [inventory.devices() for _ in range(10)], max(repeat, 5))]
    base = timed(lambda: subprocess.run(QUERY, check=True, capture_output=True), max(repeat, 5))
    # What the sidebar, deploys and the reaper get within the second after a query: the kept answer.
    cached = CachedInventory(NvmlInventory(), seconds=3600)
    cached.devices()
    kept = [t / 100 for t in timed(lambda: [cached.devices() for _ in range(100)], max(repeat, 5))]
    return [result(NAME, ours, "nvidia-smi --query-gpu (CSV)", base, gpus=len(devices),
                   cached_s=statistics.median(kept))]
