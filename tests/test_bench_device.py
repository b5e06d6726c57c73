"""The device check's comparison of NVML's inventory with nvidia-smi's (bench/device_check.py): run once on a GPU
machine, it must tell a real difference from none."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from device_check import compare_inventory  # noqa: E402

from ds01_jupyter.core.gpus import GpuDevice  # noqa: E402

MIB = 2**20


def _gpus():
    return [
        GpuDevice(uuid="GPU-a", index="0", name="NVIDIA H200", memory_total=143771 * MIB),
        GpuDevice(uuid="GPU-b", index="1", name="NVIDIA H200", memory_total=143771 * MIB),
        GpuDevice(uuid="MIG-c", index="1:0", name="MIG 1g.18gb", memory_total=16 * 1024 * MIB, parent_uuid="GPU-b"),
    ]


ROWS = [["0", "GPU-a", "NVIDIA H200", "143771"], ["1", "GPU-b", "NVIDIA H200", "143771"]]


def test_the_same_inventory_has_no_difference_and_slices_are_left_to_the_mig_check():
    assert compare_inventory(_gpus(), ROWS) == []


def test_each_kind_of_difference_is_named():
    gpus = _gpus()
    gpus[0].memory_total -= 5 * MIB
    gpus[1].name = "NVIDIA H100"
    problems = compare_inventory(gpus, ROWS)
    assert any("GPU-a" in p and "143766 MiB" in p for p in problems)
    assert any("GPU-b" in p and "NVIDIA H100" in p for p in problems)
    assert compare_inventory(_gpus(), ROWS[::-1])[0].startswith("UUIDs differ")
    assert compare_inventory(_gpus(), ROWS[:1])[0].startswith("UUIDs differ")
    assert "index" in compare_inventory(_gpus(), [["1", *ROWS[0][1:]], ["0", *ROWS[1][1:]]])[0]


def test_a_rounding_of_memory_is_no_difference():
    gpus = _gpus()
    gpus[0].memory_total += MIB - 1
    assert compare_inventory(gpus, ROWS) == []
