"""Retention never deletes what it cannot prove is an old, whole checkpoint of the sequence it counts.

Checkpoints as trainers really leave them: torch.save's legacy format and compressed pickles (no end marker to
check), Hugging Face's output folder (the final model beside checkpoint-<step>/), run folders named like a
checkpoint, Lightning's -v1 names of a second run into the same folder, and a notebook's ``save(keep_last=...)``
next to another job's runs.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import time
import zlib
from pathlib import Path

from ds01_jupyter import checkpoints as ck
from ds01_jupyter.checkpoints.formats import check_file

HOUR = 3600


def _age(path: Path, seconds_ago: float) -> None:
    """Set the mtime of ``path`` and everything below it (the five-minute guard spares anything newer)."""
    when = time.time() - seconds_ago
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when))


def _legacy_torch(epoch: int) -> bytes:
    """What torch.save(..., _use_new_zipfile_serialization=False) writes: the pickled magic number, protocol and
    system info, the object, the storage keys, then each storage's length and raw bytes (no STOP at the end)."""
    head = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    body = pickle.dumps({"epoch": epoch, "w": "storage 0"}, protocol=2) + pickle.dumps(["0"], protocol=2)
    return head + body + struct.pack("<q", 4) + struct.pack("<4f", 1, 2, 3, 4)


def _weights(path: Path) -> None:
    """A whole safetensors file (header length, header, data)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)


def test_formats_without_an_end_marker_are_whole_and_a_cut_pickle_is_not(tmp_path):
    (tmp_path / "legacy.pt").write_bytes(_legacy_torch(1))
    (tmp_path / "model.pkl").write_bytes(zlib.compress(pickle.dumps({"coef": list(range(100))})))
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"coef": 1}, protocol=4))
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps({"coef": list(range(100))}, protocol=4)[:-5])
    assert [check_file(tmp_path / n) for n in ("legacy.pt", "model.pkl", "plain.pkl")] == ["", "", ""]
    assert check_file(tmp_path / "cut.pkl") == "truncated pickle"


def test_real_legacy_torch_files_are_kept_and_resumed_from(tmp_path):
    import pytest

    torch = pytest.importorskip("torch")
    for epoch in (1, 2, 3):
        torch.save({"epoch": epoch, "w": torch.zeros(3)}, tmp_path / f"checkpoint-{epoch:03d}.pt",
                   _use_new_zipfile_serialization=False)
    _age(tmp_path, HOUR)
    assert ck.latest(tmp_path).name == "checkpoint-003.pt"
    assert [c.name for c in ck.prune(keep_last=2, directory=tmp_path)] == ["checkpoint-001.pt"]


def test_a_hugging_face_output_folder_is_a_run_and_its_final_model_is_kept(tmp_path):
    run = tmp_path / "bert"
    for step in (500, 1000):
        folder = run / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        _weights(folder / "model.safetensors")
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (run / "config.json").write_text("{}")  # trainer.save_model(): the final model at the folder's top
    _weights(run / "model.safetensors")
    _age(run, HOUR)
    listed = {c.relpath: c for c in ck.scan(tmp_path)}
    assert "bert" not in listed and listed["bert/checkpoint-1000"].is_latest
    delete, keep = ck.prune_plan(keep_last=1, directory=tmp_path)
    assert [c.relpath for c, _ in delete] == ["bert/checkpoint-500"]
    assert "a final model" in dict((c.relpath, why) for c, why in keep)["bert/model.safetensors"]
    ck.prune(keep_last=1, directory=tmp_path, dry_run=False)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-1000", "config.json", "model.safetensors"]


def test_a_run_folder_named_like_a_checkpoint_is_looked_into_not_deleted(tmp_path):
    inner = tmp_path / "ckpt_20240501" / "version_0"
    inner.mkdir(parents=True)
    for epoch in (1, 2):
        (inner / f"epoch={epoch}-step={epoch * 100}.ckpt").write_bytes(pickle.dumps({"epoch": epoch}, protocol=4))
    (tmp_path / "step_7").mkdir()  # named like one, empty: an incomplete checkpoint, as before
    _age(tmp_path, HOUR)
    assert [c.relpath for c in ck.prune(keep_last=5, directory=tmp_path)] == ["step_7"]
    assert ck.latest(tmp_path, run="ckpt_20240501/version_0").name == "epoch=2-step=200.ckpt"


def test_a_second_run_into_the_same_folder_is_resumed_and_its_checkpoints_kept(tmp_path):
    def save(name: str, hours_ago: float) -> None:
        (tmp_path / name).write_bytes(pickle.dumps({"name": name}, protocol=4))
        _age(tmp_path / name, hours_ago * HOUR)

    for epoch in range(5):  # the first run, a day ago
        save(f"epoch={epoch}-step={(epoch + 1) * 100}.ckpt", 24 - epoch)
    for epoch in range(3):  # Lightning's names for the second run's, whose names were taken
        save(f"epoch={epoch}-step={(epoch + 1) * 100}-v1.ckpt", 3 - epoch)
    assert ck.latest(tmp_path).name == "epoch=2-step=300-v1.ckpt"
    kept = {c.name for c, _ in ck.prune_plan(keep_last=2, directory=tmp_path)[1]}
    assert {"epoch=1-step=200-v1.ckpt", "epoch=2-step=300-v1.ckpt"} <= kept


def test_a_checkpoint_written_after_the_resume_point_is_never_deleted_by_a_rule(tmp_path):
    for epoch, hours_ago in ((8, 30), (9, 29), (1, 2), (2, 1)):  # a new run numbered from 1 again
        (tmp_path / f"checkpoint-{epoch:03d}.pt").write_bytes(pickle.dumps(epoch, protocol=4))
        _age(tmp_path / f"checkpoint-{epoch:03d}.pt", hours_ago * HOUR)
    delete, keep = ck.prune_plan(keep_last=1, directory=tmp_path)
    assert [c.name for c, _ in delete] == ["checkpoint-008.pt"]
    assert all("written after" in why for c, why in keep if c.name in ("checkpoint-001.pt", "checkpoint-002.pt"))


def test_a_save_that_prunes_prunes_its_own_folder_only(tmp_path):
    other = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    other.mkdir(parents=True)
    for epoch in range(3):  # another job's run, written a minute ago
        (other / f"epoch={epoch}-step={epoch}.ckpt").write_bytes(pickle.dumps(epoch, protocol=4))
        _age(other / f"epoch={epoch}-step={epoch}.ckpt", 60 - epoch)
    for epoch in (1, 2, 3):
        ck.save({"epoch": epoch}, epoch=epoch, directory=tmp_path, keep_last=1)
    assert [c.epoch for c in ck.scan(tmp_path) if c.run == ""] == [3]
    assert len(list(other.iterdir())) == 3


def test_an_accelerate_folder_cut_short_is_never_the_resume_point(tmp_path):
    """Accelerate's save_state writes the weights first, then the optimizer, the scheduler and the random states:
    a folder killed in between has whole weights and nothing after them."""
    run = tmp_path / "checkpoints"
    for n in range(4):
        folder = run / f"checkpoint_{n}"
        folder.mkdir(parents=True)
        _weights(folder / "model.safetensors")
        if n < 3:
            for part in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
                (folder / part).write_bytes(pickle.dumps(part, protocol=4))
        _age(folder, (10 - n) * HOUR)
    listed = {c.name: c for c in ck.scan(tmp_path)}
    assert "optimizer.bin" in listed["checkpoint_3"].warning and "not resumed from" in listed["checkpoint_3"].warning
    assert ck.latest(tmp_path).name == "checkpoint_2"
    # Nor deleted for it: a final save of the weights alone looks the same.
    assert "checkpoint_3" not in [c.name for c in ck.prune(keep_last=1, directory=tmp_path)]


def test_folders_that_each_lack_something_of_the_others_are_all_resumable(tmp_path):
    for n, missing in enumerate(("optimizer.bin", "scheduler.bin", "random_states_0.pkl")):
        folder = tmp_path / f"checkpoint_{n}"
        folder.mkdir()
        _weights(folder / "model.safetensors")
        for part in {"optimizer.bin", "scheduler.bin", "random_states_0.pkl"} - {missing}:
            (folder / part).write_bytes(pickle.dumps(part, protocol=4))
        _age(folder, (10 - n) * HOUR)
    assert ck.latest(tmp_path).name == "checkpoint_2"
