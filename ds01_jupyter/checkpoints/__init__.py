"""Checkpoints as trainers really write them: find the latest and the best, resume, save, keep the disk in check.

Usable inside a project's container (standard library only; PyTorch when installed)::

    from ds01_jupyter import checkpoints
    checkpoints.save(model.state_dict(), epoch=3, step=1200, metrics={"val_loss": 0.41})
    state = checkpoints.load_latest()                   # never best-model.pt, never a half-written file
    trainer.train(resume_from_checkpoint=checkpoints.latest(run="bert").path)   # a Hugging Face folder
    checkpoints.best("val_loss", mode="min").path

Understood as written by their trainers: the DS01 guide's ``checkpoint-030.pt``
(epoch 30) and ``best-model.pt``, Hugging Face ``checkpoint-<step>/`` folders
(``trainer_state.json``, sharded weights), Lightning ``.ckpt`` files
(``epoch=3-step=400.ckpt``, ``last.ckpt``, the saved ModelCheckpoint state),
Keras ``model-{epoch:02d}-{val_loss:.2f}.h5`` (see :func:`name_template`) and
``torch.distributed.checkpoint`` folders. Sub-folders of ``models/`` are runs.

Every call takes ``directory=``; the default is ``/workspace/models`` inside a
project container, else ``models/`` under the current folder. A save writes a
temporary file in the same folder, flushes and fsyncs it, then renames it into
place, and records its metrics in ``.ds01-checkpoints.json`` the same way: a
process killed mid-save, or a full disk, leaves the previous checkpoints and
the manifest intact. Nothing is deleted without an explicit request.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import tempfile
import time
from pathlib import Path

from .formats import check_file
from .naming import DEFAULT_TEMPLATES, compile_template
from .retention import CheckpointError, delete, plan
from .scanning import EXTENSIONS, MANIFEST, RECENT_SECONDS, Checkpoint, Listing, listing, manifest
from .trainers import _check_weights, _files

__all__ = ["Checkpoint", "CheckpointError", "Listing", "best", "latest", "listing", "load", "load_latest",
           "name_template", "prune", "prune_plan", "save", "scan", "DEFAULT_TEMPLATES", "EXTENSIONS", "MANIFEST"]


def default_directory() -> Path:
    """``/workspace/models`` inside a project container, else ``./models``."""
    if os.environ.get("DS01_PROJECT") and os.path.isdir("/workspace"):
        return Path("/workspace/models")
    return Path.cwd() / "models"


def _dir(directory) -> Path:
    return Path(directory) if directory is not None else default_directory()


# -- finding --------------------------------------------------------------------------------------
def scan(directory=None, metric: str | None = None, mode: str | None = None) -> list[Checkpoint]:
    """Every checkpoint (file or folder) under ``directory``, by run, oldest first within a run."""
    return listing(_dir(directory), metric, mode).checkpoints


def latest(directory=None, run: str | None = None) -> Checkpoint | None:
    """The checkpoint to resume from: of ``run`` (a folder under models/, "" for models/ itself), or of the
    run written most recently. Never a file named as the best, never an incomplete or unfinished one. For a
    Hugging Face or torch.distributed folder, ``.path`` is the folder."""
    return listing(_dir(directory)).latest(run)


def best(metric: str | None = None, mode: str | None = None, directory=None, run: str | None = None):
    """The complete checkpoint with the lowest (``mode="min"``) or highest (``"max"``) ``metric``; with no
    metric recorded, the file named as the best. ``mode`` defaults to max for accuracy-like names."""
    if mode not in (None, "min", "max"):
        raise ValueError("mode must be 'min' or 'max'")
    found = listing(_dir(directory), metric, mode)
    if metric and metric not in found.metrics:
        return None
    return found.best(run)


# -- saving ---------------------------------------------------------------------------------------
def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(directory: Path, final: str, writer) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{final}.tmp-{os.getpid()}-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / final)
        _fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_manifest(directory: Path, data: dict) -> None:
    data["version"] = 1
    _atomic_write(directory, MANIFEST, lambda fh: fh.write(json.dumps(data, indent=1).encode()))


def _disk_error(err: OSError, what: str, directory: Path) -> CheckpointError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CheckpointError(
            f"The disk is full: {what} was not saved. The previous checkpoints and the manifest "
            f"in {directory} are intact; free space (e.g. `checkpoints.prune(keep_last=2, dry_run=False)`)."
        )
    return CheckpointError(f"Could not save {what} in {directory}: {err.strerror or err}.")


def save(obj, epoch: int | None = None, step: int | None = None, metrics: dict | None = None, directory=None,
         name: str | None = None, keep_last: int | None = None, keep_best: int | None = None,
         metric: str | None = None, mode: str | None = None) -> Checkpoint:
    """Save ``obj`` atomically (PyTorch when installed, else pickle) and record its metrics."""
    directory = _dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch = _torch()
    if name is None:
        parts = ["checkpoint"]
        if epoch is not None:
            parts.append(f"epoch{epoch:04d}")
        if step is not None:
            parts.append(f"step{step}")
        if len(parts) == 1:
            parts.append(time.strftime("%Y%m%dT%H%M%S"))
        name = "-".join(parts) + (".pt" if torch is not None else ".pkl")
    if "/" in name or name.startswith("."):
        raise CheckpointError(f"Checkpoint name {name!r} must be a plain file name.")
    use_torch = torch is not None and not name.endswith(".pkl")

    def write(fh):
        if use_torch:
            torch.save(obj, fh)
        else:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        _atomic_write(directory, name, write)
        data = manifest(directory)
        records = data.setdefault("checkpoints", {})
        records[name] = {"epoch": epoch, "step": step, "metrics": dict(metrics or {}), "time": time.time()}
        _write_manifest(directory, data)
    except OSError as err:
        raise _disk_error(err, f"checkpoint {name}", directory) from err
    if keep_last is not None or keep_best is not None:
        # The caller is the trainer: what it saved before is finished, however recent (recent_seconds=0). Only
        # the folder it saves into: the runs below it (another job's lightning_logs/...) are not its own.
        prune(keep_last=keep_last, keep_best=keep_best, metric=metric, mode=mode, directory=directory,
              dry_run=False, recent_seconds=0, run="")
    saved = next((c for c in scan(directory) if c.path == str(directory / name)), None)
    return saved or Checkpoint(path=str(directory / name), name=name, epoch=epoch, step=step, metrics=metrics or {})


def name_template(template: str, directory=None) -> None:
    """Say how this folder's names are made, e.g. Keras' ``"model-{epoch:02d}-{val_loss:.2f}.h5"``, so that
    ``model-03-0.41.h5`` reads as epoch 3 with val_loss 0.41 everywhere (CLI, sidebar, latest, best)."""
    stem = template.rsplit(".", 1)[0] if template.rsplit(".", 1)[-1].isalnum() and "." in template else template
    if compile_template(stem) is None:
        raise CheckpointError(f"{template!r} names no field: write it as in the trainer, e.g. {{epoch:02d}}.")
    directory = _dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = manifest(directory)
    templates = [t for t in data.get("name_templates") or [] if isinstance(t, str) and t != stem]
    data["name_templates"] = [stem, *templates][:20]
    try:
        _write_manifest(directory, data)
    except OSError as err:
        raise _disk_error(err, "the name template", directory) from err


# -- loading --------------------------------------------------------------------------------------
def load(checkpoint, map_location=None):
    """Load a checkpoint file (a Checkpoint or a path). A folder is returned as its path: hand it to its
    trainer (``Trainer.train(resume_from_checkpoint=...)``, ``torch.distributed.checkpoint.load``)."""
    path = Path(checkpoint.path if isinstance(checkpoint, Checkpoint) else checkpoint)
    if path.is_symlink():
        raise CheckpointError(f"{path} is a symbolic link; load the file it points to by its own name.")
    problem = _check_weights(path, {e.name: e for e in _files(path)}) if path.is_dir() else check_file(path)
    if problem:
        raise CheckpointError(f"{path} is incomplete ({problem}); load an earlier one.")
    if path.is_dir():
        return str(path)
    torch = _torch()
    if torch is not None and path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        return torch.load(path, map_location=map_location, weights_only=False)
    if path.suffix in (".pkl", ".pt", ".pth"):
        with open(path, "rb") as fh:
            return pickle.load(fh)
    return str(path)


def load_latest(directory=None, map_location=None, run: str | None = None):
    """Load the checkpoint to resume from (see :func:`latest`); CheckpointError when there is none."""
    found = latest(directory, run)
    if found is None:
        where = _dir(directory) / run if run else _dir(directory)
        raise CheckpointError(f"No complete checkpoint in {where} to resume from.")
    return load(found, map_location=map_location)


# -- retention ------------------------------------------------------------------------------------
def prune_plan(keep_last=None, keep_best=None, metric=None, mode=None, older_than=None, directory=None,
               recent_seconds: float = RECENT_SECONDS, run: str | None = None):
    """(delete, keep): each checkpoint with the reason a prune would delete or keep it; ``run``: that run's only
    ("" for ``directory`` itself, not the folders below it)."""
    found = listing(_dir(directory), metric, mode)
    if run is not None:
        found.checkpoints = [c for c in found.checkpoints if c.run == run]
    return plan(found, keep_last, keep_best, metric, mode, older_than, recent_seconds=recent_seconds)


def prune(keep_last: int | None = None, keep_best: int | None = None, metric: str | None = None,
          mode: str | None = None, older_than: float | None = None, directory=None,
          dry_run: bool = True, recent_seconds: float = RECENT_SECONDS, run: str | None = None) -> list[Checkpoint]:
    """Delete what :func:`prune_plan` would; with ``dry_run`` (the default) only return it."""
    doomed = [c for c, _ in
              prune_plan(keep_last, keep_best, metric, mode, older_than, directory, recent_seconds, run)[0]]
    if dry_run:
        return doomed
    root = _dir(directory)
    gone = [c for c in doomed if delete(root, c)]
    for folder in {Path(c.path).parent for c in gone}:
        data = manifest(folder)
        records = data.get("checkpoints")
        names = [c.name for c in gone if Path(c.path).parent == folder]
        if isinstance(records, dict) and any(n in records for n in names):
            for n in names:
                records.pop(n, None)
            _write_manifest(folder, data)
    return gone

