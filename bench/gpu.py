"""GPU inventory: ds01's NVML query (what `ds01 gpus` and GET /ds01/gpus do) against `nvidia-smi --query-gpu`.

Both list every GPU with its UUID, name and memory. Where NVML or nvidia-smi
is missing (development and CI machines have no GPU) the result says so and
nothing is measured.
"""

from __future__ import annotations

import subprocess

from harness import not_measured, result, timed, which

from ds01_jupyter.core.gpus import NvmlInventory

NAME = "GPU inventory (NVML)"
QUERY = ["nvidia-smi", "--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader"]


def run(repeat: int) -> list[dict]:
    inventory = NvmlInventory()
    devices = inventory.devices()
    if not devices:
        return [not_measured(NAME, f"no NVIDIA GPU on this machine ({inventory.notice})")]
    if not which("nvidia-smi"):
        return [not_measured(NAME, "NVML answers but nvidia-smi, the baseline, is not installed")]
    # Ten queries per sample: one NVML listing takes milliseconds.
    ours = [t / 10 for t in timed(lambda: [inventory.devices() for _ in range(10)], max(repeat, 5))]
    base = timed(lambda: subprocess.run(QUERY, check=True, capture_output=True), max(repeat, 5))
    return [result(NAME, ours, "nvidia-smi --query-gpu (CSV)", base, gpus=len(devices))]
