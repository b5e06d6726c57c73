"""The GPU inventory's one-second memory (NVML is slow; the sidebar, deploys and the reaper ask often).

No NVIDIA GPU here: the cache is tested over a configured list (fake_gpus), and the NVML path only for its absence.
"""

from __future__ import annotations

import json
import threading
import time

from conftest import fake_gpus

from ds01_jupyter.core.gpus import CachedInventory, ConfiguredInventory, NvmlInventory, inventory_from_setting


class Counting(ConfiguredInventory):
    """A configured list that counts its queries and takes a while, as NVML does."""

    def __init__(self, path, pause=0.0):
        super().__init__(path)
        self.calls, self.pause = 0, pause

    def devices(self):
        self.calls += 1
        time.sleep(self.pause)
        return super().devices()


def test_an_answer_is_kept_for_its_seconds_and_each_caller_gets_its_own_copy(tmp_path):
    listing = tmp_path / "gpus.json"
    first = fake_gpus(2)
    listing.write_text(json.dumps(first))
    inner = Counting(listing)
    cached = CachedInventory(inner, seconds=60)
    got = cached.devices()
    assert [d.uuid for d in got] == [g["uuid"] for g in first] and cached.notice == ""
    got[0].processes.append("changed by one caller")  # attribute() fills in what it is given
    listing.write_text(json.dumps(fake_gpus(3)))
    again = cached.devices()
    assert [d.uuid for d in again] == [g["uuid"] for g in first] and again[0].processes == []
    assert inner.calls == 1
    cached.seconds = 0  # its time is up: asked again
    assert len(cached.devices()) == 3 and inner.calls == 2


def test_callers_at_once_share_one_query(tmp_path):
    listing = tmp_path / "gpus.json"
    listing.write_text(json.dumps(fake_gpus(1)))
    inner = Counting(listing, pause=0.3)
    cached = CachedInventory(inner)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cached.devices())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inner.calls == 1 and len(answers) == 8 and len({a[0].uuid for a in answers}) == 1


def test_nvml_setting_is_cached_and_says_why_no_gpu_is_seen():
    inventory = inventory_from_setting("nvml")
    assert isinstance(inventory, CachedInventory) and isinstance(inventory.inner, NvmlInventory)
    devices = inventory.devices()
    if not devices:  # no NVIDIA GPU on this machine (CI): zero GPUs and a notice, never a crash
        assert "NVML" in inventory.notice or "pynvml" in inventory.notice
    assert isinstance(inventory_from_setting("/some/gpus.yaml"), ConfiguredInventory)
