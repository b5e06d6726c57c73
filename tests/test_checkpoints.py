"""Checkpoints: atomic saves that survive kill -9 and a full disk, completeness, latest/best, retention."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile

import pytest

from ds01_jupyter import checkpoints as ck


def test_save_latest_best_and_resume(tmp_path):
    models = tmp_path / "models"
    for epoch, loss in enumerate([0.9, 0.4, 0.6], 1):
        saved = ck.save({"epoch": epoch, "weights": [epoch] * 3}, epoch=epoch, step=epoch * 100,
                        metrics={"val_loss": loss}, directory=models)
        assert saved.complete and saved.epoch == epoch
    manifest = json.loads((models / ck.MANIFEST).read_text())
    assert len(manifest["checkpoints"]) == 3
    last = ck.latest(models)
    assert (last.epoch, last.step, last.metrics) == (3, 300, {"val_loss": 0.6})
    assert {"path", "epoch", "step", "metrics", "complete"} <= set(last.to_dict())
    assert ck.best("val_loss", mode="min", directory=models).epoch == 2
    assert ck.best("val_loss", mode="max", directory=models).epoch == 1
    assert ck.load_latest(models)["epoch"] == 3
    assert ck.best("missing", directory=models) is None


def test_default_directory_follows_the_container(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DS01_PROJECT", raising=False)
    assert ck.default_directory() == tmp_path / "models"
    ck.save([1, 2], epoch=1)
    assert ck.latest().epoch == 1


def test_trainer_layouts_and_names_are_understood(tmp_path):
    hf = tmp_path / "checkpoint-500"
    hf.mkdir()
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (hf / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    (hf / "trainer_state.json").write_text("{}")
    (tmp_path / "epoch=3-step=1000.ckpt").write_bytes(_zip_bytes())
    found = {c.name: c for c in ck.scan(tmp_path)}
    assert found["checkpoint-500"].folder and found["checkpoint-500"].step == 500 and found["checkpoint-500"].complete
    assert (found["epoch=3-step=1000.ckpt"].epoch, found["epoch=3-step=1000.ckpt"].step) == (3, 1000)
    assert ck.latest(tmp_path).name == "epoch=3-step=1000.ckpt"


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 100)
    return buffer.getvalue()


def test_incomplete_checkpoints_are_flagged_and_never_latest(tmp_path):
    ck.save({"good": True}, epoch=1, directory=tmp_path, name="epoch1.pkl")
    (tmp_path / "epoch2.pt").write_bytes(_zip_bytes()[:-30])  # torch zip without its central directory
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "epoch3.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 5)
    (tmp_path / "epoch4.bin").write_bytes(b"")
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "config.json").write_text("{}")
    (tmp_path / "epoch6.pkl").write_bytes(b"\x80\x04\x95")
    found = {c.name: c for c in ck.scan(tmp_path)}
    assert "central directory" in found["epoch2.pt"].problem
    assert "safetensors" in found["epoch3.safetensors"].problem
    assert found["epoch4.bin"].problem == "empty file"
    assert "no weights" in found["checkpoint-5"].problem
    assert found["epoch6.pkl"].problem == "truncated pickle"
    assert [c.name for c in ck.scan(tmp_path) if c.complete] == ["epoch1.pkl"]
    assert ck.latest(tmp_path).name == "epoch1.pkl"
    with pytest.raises(ck.CheckpointError):
        ck.load(found["epoch2.pt"])


SLOW_SAVE = """
import sys, time
sys.path.insert(0, {root!r})
from ds01_jupyter import checkpoints as ck

class Slow:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(60)
        return (dict, ())

ck.save([b"x" * 5_000_000, Slow()], epoch=2, metrics={{"loss": 0.1}}, directory={directory!r}, name="epoch2.pkl")
"""


@pytest.mark.slow  # a child process killed mid-save
def test_kill_9_in_the_middle_of_a_save_leaves_the_previous_checkpoint_and_manifest(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(ck.__file__)))
    ck.save({"epoch": 1}, epoch=1, metrics={"loss": 0.5}, directory=tmp_path, name="epoch1.pkl")
    manifest_before = (tmp_path / ck.MANIFEST).read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE.format(root=root, directory=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    assert any(p.name.startswith(".epoch2.pkl.tmp-") and p.stat().st_size > 1_000_000 for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert (tmp_path / ck.MANIFEST).read_bytes() == manifest_before
    # The half-written temp file is shown as being saved (a prune can clean it up later), never resumed from.
    found = {c.name: c for c in ck.scan(tmp_path)}
    temp = next(c for n, c in found.items() if n.startswith(".epoch2.pkl.tmp-"))
    assert (temp.state, temp.complete, temp.is_latest) == ("in_progress", False, False)
    assert ck.latest(tmp_path).name == "epoch1.pkl"
    assert ck.load_latest(tmp_path) == {"epoch": 1}


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a small tmpfs in CI: {done.stderr!r}")
        pytest.skip("mounting a small filesystem needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_says_so_and_keeps_what_was_there(small_disk):
    ck.save({"epoch": 1}, epoch=1, directory=small_disk, name="epoch1.pkl")
    manifest_before = (small_disk / ck.MANIFEST).read_bytes()
    with pytest.raises(ck.CheckpointError) as info:
        ck.save(os.urandom(3_000_000), epoch=2, directory=small_disk, name="epoch2.pkl")
    assert "disk is full" in str(info.value) and "intact" in str(info.value)
    assert (small_disk / ck.MANIFEST).read_bytes() == manifest_before
    assert [p.name for p in small_disk.iterdir() if not p.name.startswith(".ds01")] == ["epoch1.pkl"]
    assert ck.load_latest(small_disk) == {"epoch": 1}


def test_retention_shows_first_and_deletes_only_when_asked(tmp_path):
    for epoch, loss in enumerate([0.5, 0.1, 0.4, 0.3, 0.2], 1):
        ck.save(epoch, epoch=epoch, metrics={"loss": loss}, directory=tmp_path)
    assert ck.prune(keep_last=2, directory=tmp_path) == []  # all written this minute: a trainer may be at work
    an_hour_ago = time.time() - 3600
    for p in tmp_path.iterdir():
        os.utime(p, (an_hour_ago, an_hour_ago))
    plan = ck.prune(keep_last=2, keep_best=1, metric="loss", directory=tmp_path)
    assert sorted(c.epoch for c in plan) == [1, 3]
    assert len(ck.scan(tmp_path)) == 5  # a dry run deletes nothing
    ck.prune(keep_last=2, keep_best=1, metric="loss", directory=tmp_path, dry_run=False)
    assert [c.epoch for c in ck.scan(tmp_path)] == [2, 4, 5]
    assert set(json.loads((tmp_path / ck.MANIFEST).read_text())["checkpoints"]) == {c.name for c in ck.scan(tmp_path)}
    ck.save(6, epoch=6, metrics={"loss": 0.9}, directory=tmp_path, keep_last=1)
    assert [c.epoch for c in ck.scan(tmp_path)] == [6]
    with pytest.raises(ck.CheckpointError):
        ck.prune(directory=tmp_path)


def test_real_torch_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(4, 2)
    for epoch, loss in ((1, 0.8), (2, 0.3)):
        saved = ck.save(model.state_dict(), epoch=epoch, metrics={"loss": loss}, directory=tmp_path)
        assert saved.name.endswith(".pt") and saved.complete
    assert zipfile.is_zipfile(ck.latest(tmp_path).path)  # torch's zip format
    restored = ck.load_latest(tmp_path)
    assert torch.equal(restored["weight"], model.state_dict()["weight"])
    # A torch file cut short (a crash while copying it) is flagged and never latest.
    data = (tmp_path / "checkpoint-epoch0002.pt").read_bytes()
    (tmp_path / "checkpoint-epoch0003.pt").write_bytes(data[: len(data) // 2])
    assert ck.latest(tmp_path).name == "checkpoint-epoch0002.pt"
    assert "central directory" in next(c for c in ck.scan(tmp_path) if c.epoch == 3).problem


def test_special_files_in_models_never_hang_a_listing(tmp_path):
    """A FIFO named like a checkpoint or like the manifest, and links to devices, are passed over at once."""
    import os
    import threading

    from ds01_jupyter import checkpoints as ck

    models = tmp_path / "models"
    models.mkdir()
    ck.save({"w": 1}, epoch=1, directory=models)
    os.mkfifo(models / "model.pt")
    os.replace(models / ".ds01-checkpoints.json", models / "manifest-was.json")
    os.mkfifo(models / ".ds01-checkpoints.json")
    (models / "zero.pt").symlink_to("/dev/zero")
    folder = models / "checkpoint-5"
    folder.mkdir()
    os.mkfifo(folder / "model.safetensors")
    result = {}
    worker = threading.Thread(target=lambda: result.update(found=ck.scan(models)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "scan hung on a special file"
    names = {c.name: c for c in result["found"]}
    assert "model.pt" not in names  # a FIFO is no checkpoint
    assert names["zero.pt"].problem == "a symbolic link: not followed" and not names["zero.pt"].complete
    assert names["checkpoint-5"].complete is False
