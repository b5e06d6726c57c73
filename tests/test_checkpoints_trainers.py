"""Checkpoints as trainers really write them: the DS01 guide's names, Hugging Face, Lightning, Keras,
torch.distributed; runs, resume, retention and bad input.

Written by the real libraries where CI has them: ``safetensors`` and ``h5py`` always; Lightning
(``pytorch_lightning``), Keras 3 (torch backend) and ``torch.distributed.checkpoint`` where the CPU build of
torch is installed (``.ci/test`` installs it when its wheel is on the machine). Hugging Face ``Trainer`` is too
big for CI (transformers, accelerate, tokenizers): its ``trainer_state.json`` is written here field for field
as ``TrainerState.save_to_json`` writes it (``json.dumps(asdict(state), indent=2, sort_keys=True)``), with
real safetensors weights from the ``safetensors`` library.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ds01_jupyter import checkpoints as ck
from ds01_jupyter.checkpoints.naming import parse_name

HOUR_AGO = time.time() - 3600


def _age(*paths: Path, when: float = HOUR_AGO) -> None:
    """Make files look written an hour ago (a rule never deletes what changed in the last minutes)."""
    for path in paths:
        for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.utime(p, (when, when), follow_symlinks=False)
        when += 1


def _ds01_guide_loop(models: Path, epochs=(10, 20, 30)) -> None:
    """The DS01 guide's loop: checkpoint-{epoch:03d}.pt every 10 epochs, best-model.pt when it improves."""
    for epoch in epochs:
        ck.save({"epoch": epoch}, directory=models, name=f"checkpoint-{epoch:03d}.pt")
        _age(models / f"checkpoint-{epoch:03d}.pt", when=HOUR_AGO + epoch)
    ck.save({"epoch": 20, "best": True}, directory=models, name="best-model.pt")  # written last: the newest file
    _age(models / "best-model.pt", when=HOUR_AGO + 100)


def test_the_ds01_guide_names_resume_from_the_last_epoch_never_from_best_model(tmp_path):
    models = tmp_path / "models"
    _ds01_guide_loop(models)
    found = {c.name: c for c in ck.scan(models)}
    assert [found[f"checkpoint-{e:03d}.pt"].epoch for e in (10, 20, 30)] == [10, 20, 30]
    assert found["best-model.pt"].role == "best" and not found["best-model.pt"].is_latest
    assert ck.latest(models).name == "checkpoint-030.pt"
    assert ck.load_latest(models) == {"epoch": 30}
    assert ck.best(directory=models).name == "best-model.pt"  # no metric recorded: the file named best

    delete, keep = ck.prune_plan(keep_last=1, directory=models)
    assert sorted(c.name for c, _ in delete) == ["checkpoint-010.pt", "checkpoint-020.pt"]
    reasons = {c.name: why for c, why in keep}
    assert "by name" in reasons["best-model.pt"] and "resume" in reasons["checkpoint-030.pt"]
    assert all("not among the last 1" in why for _, why in delete)
    delete, keep = ck.prune_plan(older_than=30 * 86400, directory=models)
    assert delete == []  # nothing is 30 days old
    delete, _ = ck.prune_plan(older_than=60, directory=models)
    assert "best-model.pt" not in {c.name for c, _ in delete}
    ck.prune(keep_last=1, directory=models, dry_run=False)
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == ["best-model.pt",
                                                                                      "checkpoint-030.pt"]


def test_a_checkpoint_being_written_is_never_offered_for_deletion(tmp_path):
    models = tmp_path / "models"
    _ds01_guide_loop(models, epochs=(10, 20))
    (models / "checkpoint-030.pt").write_bytes(b"PK\x03\x04 half a torch zip")  # the trainer is writing it now
    found = {c.name: c for c in ck.scan(models)}
    assert found["checkpoint-030.pt"].state == "in_progress" and ck.latest(models).name == "checkpoint-020.pt"
    delete, keep = ck.prune_plan(keep_last=1, directory=models)
    assert [c.name for c, _ in delete] == ["checkpoint-010.pt"]
    assert dict((c.name, why) for c, why in keep)["checkpoint-030.pt"] == "being written"
    _age(models / "checkpoint-030.pt", when=HOUR_AGO - 10)  # an hour later nobody finished it: incomplete
    assert {c.name: c for c in ck.scan(models)}["checkpoint-030.pt"].state == "incomplete"
    assert "checkpoint-030.pt" in {c.name for c, _ in ck.prune_plan(keep_last=1, directory=models)[0]}


@pytest.mark.parametrize("name, epoch, step, metrics, role", [
    ("checkpoint-030.pt", 30, None, {}, None),
    ("epoch=3-step=400.ckpt", 3, 400, {}, None),
    ("epoch=3-step=400-val_loss=0.41.ckpt", 3, 400, {"val_loss": 0.41}, None),
    ("model-03-0.41.h5", 3, None, {"val_loss": 0.41}, None),
    ("weights.07-1.25.hdf5", 7, None, {"val_loss": 1.25}, None),
    ("best-model.pt", None, None, {}, "best"),
    ("model_best.pth.tar", None, None, {}, "best"),
    ("checkpoint_best.pth", None, None, {}, "best"),
    ("last.ckpt", None, None, {}, "latest"),
    ("last-v1.ckpt", None, None, {}, "latest"),
    ("checkpoint-epoch0003-step1200.pt", 3, 1200, {}, None),
    ("model.safetensors", None, None, {}, None),
])
def test_names_say_epoch_step_metrics_and_role(name, epoch, step, metrics, role):
    info = parse_name(name)
    assert (info.epoch, info.step, info.metrics, info.role, info.problem) == (epoch, step, metrics, role, "")


def test_a_huge_or_odd_number_in_a_name_is_a_warning_on_that_entry(tmp_path):
    ck.save({"e": 1}, directory=tmp_path, name=f"checkpoint-{10**12}.pt")
    ck.save({"e": 2}, directory=tmp_path, name=f"epoch={'9' * 200}.pt")
    ck.save({"e": 3}, directory=tmp_path, name="checkpoint-002.pt")
    _age(*tmp_path.iterdir())
    found = {c.name: c for c in ck.scan(tmp_path)}
    huge = found[f"checkpoint-{10**12}.pt"]
    assert huge.epoch is None and "out of range" in huge.warning and huge.complete
    assert ck.latest(tmp_path).name == "checkpoint-002.pt"


def _safetensors(path: Path, tensors: dict) -> None:
    numpy = pytest.importorskip("numpy")
    from safetensors.numpy import save_file

    save_file({k: numpy.full(v, 1.5, dtype="float32") for k, v in tensors.items()}, str(path))


def _trainer_state(folder: Path, step: int, epoch: float, history: list, best: str | None, metric=None) -> None:
    """trainer_state.json as transformers' TrainerState.save_to_json writes it (every field, sorted)."""
    state = {
        "best_global_step": int(best.rsplit("-", 1)[1]) if best else None, "best_metric": metric,
        "best_model_checkpoint": best, "epoch": epoch, "eval_steps": 100, "global_step": step,
        "is_hyper_param_search": False, "is_local_process_zero": True, "is_world_process_zero": True,
        "log_history": history, "logging_steps": 100, "max_steps": 300, "num_input_tokens_seen": 0,
        "num_train_epochs": 3, "save_steps": 100,
        "stateful_callbacks": {"TrainerControl": {"args": {"should_epoch_stop": False, "should_evaluate": False,
                                                            "should_log": False, "should_save": True,
                                                            "should_training_stop": False}, "attributes": {}}},
        "total_flos": 1234.0, "train_batch_size": 8, "trial_name": None, "trial_params": None,
    }
    (folder / "trainer_state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def _hf_run(run: Path, losses=(0.9, 0.5, 0.7)) -> list[dict]:
    """Three Trainer saves (steps 100, 200, 300; eval each), the best being step 200."""
    history = []
    for i, loss in enumerate(losses, 1):
        step = 100 * i
        history += [{"epoch": float(i), "grad_norm": 1.5, "learning_rate": 1e-5, "loss": loss + 0.1, "step": step},
                    {"epoch": float(i), "eval_loss": loss, "eval_accuracy": 1 - loss, "eval_runtime": 1.0,
                     "eval_samples_per_second": 10.0, "eval_steps_per_second": 1.0, "step": step}]
        folder = run / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        _safetensors(folder / "model.safetensors", {"w": (4, 4)})
        (folder / "config.json").write_text("{}")
        best = "/workspace/models/" + run.name + "/checkpoint-200" if i >= 2 else f"{run}/checkpoint-100"
        _trainer_state(folder, step, float(i), list(history), best, min(losses[:i]))
        _age(folder, when=HOUR_AGO + i * 10)
    return history


def test_hugging_face_folders_give_step_epoch_metrics_best_and_resume_path(tmp_path):
    models = tmp_path / "models"
    _hf_run(models / "bert")
    listing = ck.listing(models)
    found = {c.relpath: c for c in listing.checkpoints}
    third = found["bert/checkpoint-300"]
    assert (third.kind, third.run, third.step, third.epoch, third.state) == (
        "huggingface",
        "bert",
        300,
        3.0,
        "complete",
    )
    assert (
        third.metrics["eval_loss"] == 0.7
        and "eval_runtime" not in third.metrics
        and "learning_rate" not in third.metrics
    )
    assert found["bert/checkpoint-100"].metrics["eval_loss"] == 0.9  # its own step's evaluation, not a later one
    assert found["bert/checkpoint-200"].role == "best"  # best_model_checkpoint, recorded inside the container
    assert listing.metric == "eval_loss" and found["bert/checkpoint-200"].is_best
    assert ck.latest(models, run="bert").path == str(models / "bert" / "checkpoint-300")
    assert ck.load_latest(models, run="bert") == str(models / "bert" / "checkpoint-300")  # for resume_from_checkpoint
    run = listing.runs[0]
    assert run.run == "bert" and run.latest == "bert/checkpoint-300" and run.best == "bert/checkpoint-200"
    assert [h["step"] for h in run.history if "eval_loss" in h["metrics"]] == [100, 200, 300]
    assert ck.best("eval_accuracy", directory=models).relpath == "bert/checkpoint-200"  # max for accuracy

    delete, keep = ck.prune_plan(keep_last=1, directory=models)
    assert [c.relpath for c, _ in delete] == ["bert/checkpoint-100"]  # 200 is the trainer's best


def test_hugging_face_incomplete_and_in_progress_folders(tmp_path):
    models = tmp_path / "models"
    _hf_run(models / "run")
    (models / "run" / "tmp-checkpoint-400").mkdir()
    _safetensors(models / "run" / "tmp-checkpoint-400" / "model.safetensors", {"w": (4, 4)})
    no_state = models / "run" / "checkpoint-500"
    no_state.mkdir()
    _safetensors(no_state / "model.safetensors", {"w": (4, 4)})
    sharded = models / "run" / "checkpoint-600"
    sharded.mkdir()
    _safetensors(sharded / "model-00001-of-00002.safetensors", {"a": (8,)})
    _safetensors(sharded / "model-00002-of-00002.safetensors", {"b": (8,)})
    index = {"metadata": {"total_size": 64}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                            "b": "model-00002-of-00002.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    _trainer_state(sharded, 600, 6.0, [], None)
    _age(no_state, sharded, when=HOUR_AGO + 100)
    found = {c.name: c for c in ck.scan(models)}
    assert found["tmp-checkpoint-400"].state == "in_progress"
    assert (
        found["checkpoint-500"].state == "incomplete"
        and "trainer_state.json missing" in found["checkpoint-500"].problem
    )
    assert found["checkpoint-600"].complete and ck.latest(models).name == "checkpoint-600"

    shard = sharded / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-4])  # a shard cut short
    _age(sharded, when=HOUR_AGO + 100)
    assert "model-00002-of-00002.safetensors" in {c.name: c for c in ck.scan(models)}["checkpoint-600"].problem
    shard.unlink()
    assert "missing" in {c.name: c for c in ck.scan(models)}["checkpoint-600"].problem
    index["weight_map"]["b"] = "../../../etc/passwd"
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert "outside the folder" in {c.name: c for c in ck.scan(models)}["checkpoint-600"].problem
    assert ck.latest(models).name == "checkpoint-300"

    (models / "run" / "checkpoint-300" / "trainer_state.json").write_text("{not json")
    _age(models / "run" / "checkpoint-300", when=HOUR_AGO + 30)
    broken = {c.name: c for c in ck.scan(models)}["checkpoint-300"]
    assert "trainer_state.json does not parse" in broken.problem and not broken.complete
    assert ck.latest(models).name == "checkpoint-200"
    delete, keep = ck.prune_plan(keep_last=5, directory=models)
    assert "in_progress" not in {c.state for c, _ in delete} and "tmp-checkpoint-400" not in {c.name for c, _ in delete}


def test_runs_are_grouped_and_the_only_complete_checkpoint_of_a_run_is_kept(tmp_path):
    models = tmp_path / "models"
    x = ".pt" if ck._torch() is not None else ".pkl"  # what save writes (pickle where torch is not installed)
    for run, epochs in (("a", (1, 2, 3)), ("b/deep/er", (1,)), ("", (5,))):
        for epoch in epochs:
            ck.save({"run": run, "epoch": epoch}, epoch=epoch, metrics={"loss": 1 / epoch},
                    directory=models / run if run else models)
    (models / "b" / "deep" / "er" / f"checkpoint-epoch0002{x}").write_bytes(b"")  # a broken later one
    _age(*[p for p in models.rglob(f"*{x}")])
    listing = ck.listing(models)
    assert [r.run for r in listing.runs] == ["", "a", "b/deep/er"]
    assert {r.run: r.latest for r in listing.runs}["b/deep/er"] == f"b/deep/er/checkpoint-epoch0001{x}"
    assert ck.load_latest(models, run="a") == {"run": "a", "epoch": 3}
    assert ck.load_latest(models, run="b/deep/er") == {"run": "b/deep/er", "epoch": 1}
    delete, keep = ck.prune_plan(keep_last=1, directory=models)
    assert sorted(c.relpath for c, _ in delete) == [f"a/checkpoint-epoch0001{x}", f"a/checkpoint-epoch0002{x}",
                                                     f"b/deep/er/checkpoint-epoch0002{x}"]
    kept = {c.relpath: why for c, why in keep}
    assert "resume" in kept[f"b/deep/er/checkpoint-epoch0001{x}"] and "resume" in kept[f"checkpoint-epoch0005{x}"]
    with pytest.raises(ck.CheckpointError, match="No complete checkpoint"):
        ck.load_latest(models, run="nope")


def test_a_symlinked_checkpoint_is_listed_with_its_problem_and_never_read(tmp_path):
    models = tmp_path / "models"
    ck.save({"e": 1}, epoch=1, directory=models)
    outside = tmp_path / "secret.pt"
    ck.save({"secret": True}, epoch=9, directory=tmp_path, name="secret.pt")
    (models / "checkpoint-epoch0009.pt").symlink_to(outside)
    (models / "checkpoint-900").symlink_to(tmp_path, target_is_directory=True)
    _age(*models.iterdir())
    found = {c.name: c for c in ck.scan(models)}
    assert found["checkpoint-epoch0009.pt"].problem == "a symbolic link: not followed"
    assert found["checkpoint-900"].problem == "a symbolic link: not followed"
    assert ck.load_latest(models) == {"e": 1}
    ck.prune(keep_last=1, directory=models, dry_run=False)
    assert outside.exists() and (tmp_path / "secret.pt").exists()  # the link went, never what it points at
    assert not (models / "checkpoint-epoch0009.pt").is_symlink()


def test_a_run_folder_swapped_for_a_link_between_plan_and_delete_is_left_alone(tmp_path):
    models = tmp_path / "models"
    for epoch in (1, 2):
        ck.save({"e": epoch}, epoch=epoch, directory=models / "run")
    _age(*(models / "run").iterdir())
    delete, _ = ck.prune_plan(keep_last=1, directory=models)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "checkpoint-epoch0001.pt").write_text("precious")
    (models / "run").rename(tmp_path / "moved")
    (models / "run").symlink_to(victim, target_is_directory=True)
    from ds01_jupyter.checkpoints.retention import delete as delete_one
    assert [delete_one(models, c) for c, _ in delete] == [False]
    assert (victim / "checkpoint-epoch0001.pt").read_text() == "precious"


def test_keras_h5_files_by_h5py_are_checked_and_named_by_template(tmp_path):
    h5py = pytest.importorskip("h5py")
    models = tmp_path / "models"
    models.mkdir()
    for epoch, loss in ((1, 0.93), (2, 0.41)):
        with h5py.File(models / f"model-{epoch:02d}-{loss:.2f}.h5", "w") as f:
            f.create_dataset("w", data=list(range(10000)))
    ck.save({"x": 1}, directory=models, name="run-05-acc-0.75.pt")
    ck.name_template("run-{epoch:02d}-acc-{accuracy:.2f}.pt", directory=models)
    data = (models / "model-02-0.41.h5").read_bytes()
    (models / "model-03-0.30.h5").write_bytes(data[: len(data) // 2])
    _age(*models.iterdir())
    found = {c.name: c for c in ck.scan(models)}
    assert (found["model-02-0.41.h5"].epoch, found["model-02-0.41.h5"].metrics) == (2, {"val_loss": 0.41})
    assert found["model-02-0.41.h5"].complete and found["model-02-0.41.h5"].kind == "keras"
    assert "truncated HDF5" in found["model-03-0.30.h5"].problem
    assert (found["run-05-acc-0.75.pt"].epoch, found["run-05-acc-0.75.pt"].metrics) == (5, {"accuracy": 0.75})
    with pytest.raises(ck.CheckpointError, match="names no field"):
        ck.name_template("model.h5", directory=models)


TORCH_TRAINERS = r"""
import os, sys, warnings
warnings.filterwarnings("ignore")
os.environ["KERAS_BACKEND"] = "torch"
import torch
out = sys.argv[1]
which = sys.argv[2]
if which == "lightning":
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"lr": 0.1, "note": "hparams of a class weights_only refuses"})
            self.layer = torch.nn.Linear(2, 1)
        def training_step(self, batch, i):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)
        def validation_step(self, batch, i):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    pairs = torch.utils.data.TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
    data = torch.utils.data.DataLoader(pairs, batch_size=8)
    callback = ModelCheckpoint(dirpath=out, monitor="val_loss", save_top_k=2, save_last=True)
    trainer = pl.Trainer(max_epochs=4, callbacks=[callback], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", default_root_dir=out)
    trainer.fit(Model(), data, data)
    print(os.path.basename(callback.best_model_path))
elif which == "keras":
    import numpy, keras
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = numpy.random.rand(16, 2), numpy.random.rand(16, 1)
    model.fit(x, y, validation_data=(x, y), epochs=3, verbose=0, callbacks=[
        keras.callbacks.ModelCheckpoint(os.path.join(out, "model-{epoch:02d}-{val_loss:.2f}.keras")),
        keras.callbacks.ModelCheckpoint(os.path.join(out, "model-{epoch:02d}-{val_loss:.2f}.weights.h5"),
                                        save_weights_only=True)])
elif which == "dcp":
    import torch.distributed.checkpoint as dcp
    dcp.save({"model": torch.nn.Linear(4, 4).state_dict()}, checkpoint_id=os.path.join(out, "step-100"))
"""


def _train(which: str, out: Path, module: str) -> str:
    pytest.importorskip("torch", reason="the CPU build of torch is not installed here")
    if importlib.util.find_spec(module.split(".")[0]) is None:  # imported in the child (Keras needs its backend)
        pytest.skip(f"{module} is not installed here")
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", TORCH_TRAINERS, str(out), which], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


@pytest.mark.slow  # trains with the real library in a child process
def test_real_lightning_checkpoints_give_epoch_step_score_last_and_best(tmp_path):
    models = tmp_path / "models"
    best_name = _train("lightning", models / "lightning_logs" / "version_0" / "checkpoints", "pytorch_lightning")
    _age(*(models / "lightning_logs" / "version_0" / "checkpoints").iterdir())
    listing = ck.listing(models)
    found = {c.name: c for c in listing.checkpoints}
    run = "lightning_logs/version_0/checkpoints"
    assert set(found) == {best_name, "last.ckpt", *(n for n in found if n.startswith("epoch="))}
    last = found["last.ckpt"]
    assert (last.kind, last.role, last.run, last.is_latest, last.epoch) == ("lightning", "latest", run, True, 3)
    assert isinstance(last.metrics["val_loss"], float) and last.step > 0
    assert found[best_name].role == "best" and found[best_name].is_best and "val_loss" in found[best_name].metrics
    assert ck.latest(models, run=run).name == "last.ckpt"
    torch = pytest.importorskip("torch")
    assert torch.is_tensor(ck.load_latest(models)["state_dict"]["layer.weight"])
    delete, keep = ck.prune_plan(keep_last=1, directory=models)
    assert {c.name for c, _ in keep} >= {"last.ckpt", best_name}


@pytest.mark.slow  # trains with the real library in a child process
def test_real_keras_checkpoints_read_as_epochs_and_val_loss(tmp_path):
    models = tmp_path / "models"
    _train("keras", models, "keras")
    _age(*models.iterdir())
    found = {c.name: c for c in ck.scan(models)}
    assert len(found) == 6 and all(c.complete and c.kind == "keras" for c in found.values())
    assert sorted(c.epoch for c in found.values()) == [1, 1, 2, 2, 3, 3]
    assert all(set(c.metrics) == {"val_loss"} for c in found.values())
    assert ck.latest(models).epoch == 3


@pytest.mark.slow  # trains with the real library in a child process
def test_real_torch_distributed_checkpoint_is_complete_only_with_its_metadata(tmp_path):
    models = tmp_path / "models"
    _train("dcp", models, "torch.distributed.checkpoint")
    _age(models / "step-100")
    found = {c.name: c for c in ck.scan(models)}
    assert (found["step-100"].kind, found["step-100"].step, found["step-100"].complete) == ("distributed", 100, True)
    assert ck.load_latest(models) == str(models / "step-100")
    (models / "step-100" / ".metadata").unlink()
    assert ".metadata missing" in {c.name: c for c in ck.scan(models)}["step-100"].problem
    assert ck.latest(models) is None
