"""What trainers write beside the weights: Hugging Face folders, torch.distributed folders, Lightning state.

Each reader returns what a listing needs (completeness, epoch, step, metrics,
the trainer's own idea of its best checkpoint) and turns a file it cannot read
into a problem on that entry, never an exception for the whole listing.

* Hugging Face ``Trainer`` writes ``checkpoint-<step>/`` with the weights
  (``model.safetensors`` or shards named in ``*.index.json``), the optimizer,
  and ``trainer_state.json`` *last*; while it works the folder is called
  ``tmp-checkpoint-<step>``.
* ``torch.distributed.checkpoint`` writes ``*.distcp`` shards and then
  ``.metadata``, which makes the folder loadable.
* Lightning stores its ``ModelCheckpoint`` state (monitor, current and best
  scores, best path) inside every ``.ckpt``. It is read from the pickle without
  torch and without running any of it (:mod:`.torchfile`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .formats import check_file, read_json
from .torchfile import read_lightning_state

WEIGHTS = re.compile(r"\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|keras|distcp)$", re.I)
_INDEX = re.compile(r"\.index\.json$", re.I)
HF_FOLDER = re.compile(r"^(tmp-)?checkpoint-(\d+)$")
#: Log entries that are bookkeeping, not measures of the model.
_NOT_METRICS = re.compile(r"^(epoch|step|total_flos|learning_rate|grad_norm)$|_runtime$|_per_second$|^train_")
#: At most this many files of a folder are checked; more is not a checkpoint.
MAX_FILES = 2000
MAX_HISTORY = 5000


@dataclass
class FolderInfo:
    kind: str
    problem: str = ""
    in_progress: bool = False
    epoch: float | int | None = None
    step: int | None = None
    metrics: dict = field(default_factory=dict)
    #: Name of the checkpoint the trainer itself called best (a sibling folder or file), if it said.
    best_name: str | None = None
    history: list = field(default_factory=list)


def _number(value) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return None
    return value


def _files(path: Path) -> list[os.DirEntry]:
    with os.scandir(path) as entries:
        found = []
        for entry in entries:
            found.append(entry)
            if len(found) > MAX_FILES:
                break
        return found


def _check_weights(path: Path, names: dict[str, os.DirEntry]) -> str:
    """Every weight file whole, and every shard an index names present, inside, and whole."""
    shards: set[str] = set()
    for name in names:
        if not _INDEX.search(name):
            continue
        try:
            index = read_json(path / name)
            shards |= set(index["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return f"{name} does not parse ({err})"
    for shard in sorted(shards):
        if not isinstance(shard, str) or "/" in shard or shard in ("", ".", "..") or "\0" in shard:
            return f"the index names a shard outside the folder: {str(shard)[:80]!r}"
        if shard not in names:
            return f"shard {shard} named in the index is missing"
    weights = [n for n in names if WEIGHTS.search(n) and not _INDEX.search(n)]
    if not weights and not shards:
        return "folder has no weights file"
    for name in sorted(weights):
        entry = names[name]
        if entry.is_symlink():
            return f"{name} is a symbolic link: not followed"
        if not entry.is_file(follow_symlinks=False):
            continue
        problem = check_file(path / name)
        if problem:
            return f"{name}: {problem}"
    return ""


def _trainer_state(path: Path, info: FolderInfo) -> None:
    try:
        state = read_json(path / "trainer_state.json")
        if not isinstance(state, dict):
            raise ValueError("not an object")
    except OSError as err:
        info.problem = f"trainer_state.json unreadable ({err.strerror})"
        return
    except ValueError as err:
        info.problem = f"trainer_state.json does not parse ({str(err)[:80]})"
        return
    step = _number(state.get("global_step"))
    info.step = int(step) if step is not None and 0 <= step <= 10**12 else info.step
    epoch = _number(state.get("epoch"))
    info.epoch = round(epoch, 4) if epoch is not None else None
    history = state.get("log_history")
    for entry in (history if isinstance(history, list) else [])[-MAX_HISTORY:]:
        if not isinstance(entry, dict):
            continue
        metrics = {k: v for k, v in entry.items()
                   if isinstance(k, str) and not _NOT_METRICS.search(k) and _number(v) is not None}
        if not metrics:
            continue
        entry_step = _number(entry.get("step"))
        if info.step is None or entry_step is None or entry_step <= info.step:
            info.metrics.update(metrics)
        info.history.append({"step": entry_step, "epoch": _number(entry.get("epoch")), "metrics": metrics})
    best = state.get("best_model_checkpoint")
    if isinstance(best, str) and best:
        info.best_name = best.rstrip("/").rsplit("/", 1)[-1]


def huggingface(path: Path) -> FolderInfo:
    """A Trainer's ``checkpoint-<step>`` folder (or a ``save_pretrained`` folder)."""
    info = FolderInfo(kind="huggingface")
    match = HF_FOLDER.match(path.name)
    if match:
        info.step = int(match.group(2)) if len(match.group(2)) <= 12 else None
        info.in_progress = bool(match.group(1))
    names = {e.name: e for e in _files(path)}
    info.problem = _check_weights(path, names)
    if "trainer_state.json" in names:
        problem = info.problem
        _trainer_state(path, info)
        info.problem = problem or info.problem
    elif match and not info.problem:
        info.problem = "trainer_state.json missing (the trainer writes it last)"
    if info.in_progress:  # whatever is missing yet: the trainer is still at it
        info.problem = "being written (tmp-checkpoint-: the trainer renames it when done)"
    return info


def distributed(path: Path) -> FolderInfo:
    """A ``torch.distributed.checkpoint`` folder: complete only once ``.metadata`` is written."""
    info = FolderInfo(kind="distributed")
    names = {e.name: e for e in _files(path)}
    shards = [n for n in names if n.endswith(".distcp")]
    if ".metadata" not in names:
        info.problem = ".metadata missing (torch.distributed.checkpoint writes it last)"
    elif not names[".metadata"].is_file(follow_symlinks=False) or names[".metadata"].stat().st_size == 0:
        info.problem = ".metadata is empty or not a file"
    elif not shards:
        info.problem = "no .distcp shard"
    elif any(names[n].stat(follow_symlinks=False).st_size == 0 for n in shards):
        info.problem = "an empty .distcp shard"
    return info


def folder_kind(path: Path) -> str | None:
    """The kind of checkpoint folder ``path`` is, or None when it is a plain folder (perhaps a run)."""
    try:
        names = [e.name for e in _files(path)]
    except OSError:
        return None
    if ".metadata" in names or any(n.endswith(".distcp") for n in names):
        return "distributed"
    if HF_FOLDER.match(path.name) or "trainer_state.json" in names or any(_INDEX.search(n) for n in names):
        return "huggingface"
    if "config.json" in names and any(WEIGHTS.search(n) for n in names):
        return "huggingface"  # save_pretrained
    return None


def lightning(path: Path) -> FolderInfo | None:
    """Epoch, step, the monitored score and the best path from a Lightning ``.ckpt``; None if it has none."""
    state = read_lightning_state(path)
    if state is None:
        return None
    info = FolderInfo(kind="lightning")
    epoch, step = _number(state.get("epoch")), _number(state.get("global_step"))
    info.epoch = int(epoch) if isinstance(epoch, int) and 0 <= epoch <= 10**9 else None
    info.step = int(step) if isinstance(step, int) and 0 <= step <= 10**12 else None
    for key, callback in (state.get("callbacks") or {}).items():
        if not (isinstance(key, str) and key.startswith("ModelCheckpoint") and isinstance(callback, dict)):
            continue
        monitor, score = callback.get("monitor"), _number(callback.get("current_score"))
        if isinstance(monitor, str) and score is not None:
            info.metrics[monitor] = score
        best = callback.get("best_model_path")
        if isinstance(best, str) and best:
            info.best_name = best.rsplit("/", 1)[-1]
        scores = callback.get("best_k_models")
        if isinstance(scores, dict) and isinstance(monitor, str):
            for other, value in scores.items():
                if isinstance(other, str) and _number(value) is not None:
                    info.history.append({"name": other.rsplit("/", 1)[-1], "metrics": {monitor: value}})
    return info
