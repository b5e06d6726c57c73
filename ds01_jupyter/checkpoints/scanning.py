"""Find every checkpoint under models/, group them by run, and say which to resume from and which is best.

A *run* is the folder a trainer writes into: ``models/`` itself, or a folder
below it (``models/bert/``, ``models/lightning_logs/version_0/checkpoints/``),
up to :data:`MAX_DEPTH` levels. A checkpoint is a file with a checkpoint's
extension or a checkpoint folder (Hugging Face, torch.distributed, or a folder
named like one); checkpoint folders are not searched for runs. Links are never
followed: a linked checkpoint is listed with the problem, not read.

Per run, *latest* is the checkpoint a resume should load: complete, never a
file named as the best, ordered by epoch and step (a ``last.ckpt`` first among
equals, and first of all when it says no numbers), time only between equals.
*Best* is the complete one with the best value of the chosen metric, or the
file named best when no metric was recorded.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import trainers
from .formats import check_file, read_json
from .naming import BEST, DEFAULT_TEMPLATES, LATEST, parse_name

MANIFEST = ".ds01-checkpoints.json"
EXTENSIONS = (".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".h5", ".hdf5", ".keras", ".onnx", ".joblib",
              ".pkl", ".msgpack")
#: Folders named like a checkpoint though nothing inside says which trainer wrote them.
FOLDER = re.compile(r"^(checkpoint|ckpt|epoch|step)[-_=]?\d+|^epoch=\d+", re.I)
#: The temporary file of an unfinished :func:`ds01_jupyter.checkpoints.save`.
TMP = re.compile(r"^\.(?P<final>.+)\.tmp-\d+-")
#: Run folders this deep below models/ are searched (Lightning's lightning_logs/version_0/checkpoints is 3).
MAX_DEPTH = 4
#: A listing stops after this many directory entries and says so.
MAX_ENTRIES = 20000
#: A checkpoint changed this recently may be being written: never "incomplete", never pruned.
RECENT_SECONDS = 300
_SKIP = {".git", "__pycache__", ".ipynb_checkpoints", "wandb", "mlruns", ".cache", "node_modules"}
_MAX_MODES = re.compile(r"acc|f1|auc|precision|recall|bleu|rouge|map\b|iou|dice|score|reward", re.I)
_PREFERRED = ("eval_loss", "val_loss", "valid_loss", "loss")


@dataclass
class Checkpoint:
    path: str
    name: str
    epoch: int | float | None = None
    step: int | None = None
    metrics: dict = field(default_factory=dict)
    complete: bool = True
    problem: str = ""
    size: int = 0
    mtime: float = 0.0
    folder: bool = False
    relpath: str = ""
    run: str = ""
    kind: str = "file"
    role: str | None = None
    state: str = "complete"
    #: Something odd about the entry that does not make it incomplete (a number out of range).
    warning: str = ""
    is_latest: bool = False
    is_best: bool = False
    #: The role comes from the name (best-model.pt), not from a trainer's record: never the resume point.
    named_role: bool = field(default=False, repr=False)
    #: Whole, but without a part every other checkpoint of its run has (_missing_parts): never the resume point,
    #: never deleted for it either (a final save of the weights alone is one).
    partial: bool = field(default=False, repr=False)
    #: What its trainer recorded in it (Hugging Face, distributed, Lightning): read by the listing, not shown.
    trainer: trainers.FolderInfo | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        data = asdict(replace(self, trainer=None))  # not its trainer's history, copied for nothing
        data.pop("named_role")
        data.pop("partial")
        data.pop("trainer")
        return data


@dataclass
class Run:
    run: str
    count: int = 0
    bytes: int = 0
    latest: str | None = None
    best: str | None = None
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Listing:
    directory: str
    checkpoints: list
    runs: list
    metric: str | None
    mode: str
    metrics: list
    problems: list = field(default_factory=list)

    def latest(self, run: str | None = None) -> Checkpoint | None:
        """The resume point of ``run``, or of the run written most recently."""
        heads = [c for c in self.checkpoints if c.is_latest and (run is None or c.run == run)]
        return max(heads, key=lambda c: c.mtime) if heads else None

    def best(self, run: str | None = None) -> Checkpoint | None:
        pool = [c for c in self.checkpoints if c.complete and (run is None or c.run == run)]
        metric = self.metric
        if metric:
            scored = [c for c in pool if _value(c, metric) is not None]
            if scored:
                pick = min if self.mode == "min" else max
                return pick(scored, key=lambda c: _value(c, metric))
        named = [c for c in pool if c.role == BEST]
        return max(named, key=lambda c: c.mtime) if named else None


def default_mode(metric: str | None) -> str:
    """``max`` for accuracy-like metrics, else ``min`` (losses)."""
    return "max" if metric and _MAX_MODES.search(metric) else "min"


def _value(c: Checkpoint, metric: str):
    value = c.metrics.get(metric)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def manifest(folder: Path) -> dict:
    try:
        data = read_json(folder / MANIFEST)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _folder_size(path: Path, budget: list) -> tuple[int, float]:
    """Bytes and newest mtime of a folder's regular files, links not followed."""
    size, newest = 0, 0.0
    stack: list[str | Path] = [path]
    while stack and budget[0] > 0:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    budget[0] -= 1
                    st = entry.stat(follow_symlinks=False)
                    newest = max(newest, st.st_mtime)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        size += st.st_size
        except OSError:
            continue
    return size, newest


def _entry(entry: os.DirEntry, rel: str, record: dict, templates, budget: list, now: float) -> Checkpoint | None:
    name, path = entry.name, Path(entry.path)
    st = entry.stat(follow_symlinks=False)
    c = Checkpoint(path=str(path), name=name, relpath=f"{rel}/{name}" if rel else name, run=rel, mtime=st.st_mtime)
    low = name.lower()
    temp = TMP.match(name)
    if entry.is_symlink():
        if not (low.endswith(EXTENSIONS) or FOLDER.match(name)):
            return None
        c.problem = "a symbolic link: not followed"
    elif entry.is_dir(follow_symlinks=False):
        kind = trainers.folder_kind(path)
        if not (kind or FOLDER.match(name) or low.endswith(EXTENSIONS)) or holds_checkpoints(path, kind is None):
            return None  # a plain folder, or a run: the walk looks inside
        c.folder, c.kind = True, kind or "folder"
        c.size, newest = _folder_size(path, budget)
        c.mtime = max(c.mtime, newest)
        read = {"huggingface": trainers.huggingface, "distributed": trainers.distributed}.get(kind or "")
        if read is not None:
            found = read(path)
            c.problem, c.kind = found.problem, found.kind
            c.trainer = found
            if found.in_progress:
                c.state = "in_progress"
        else:
            c.problem = trainers._check_weights(path, {e.name: e for e in trainers._files(path)})
    elif entry.is_file(follow_symlinks=False) and (low.endswith(EXTENSIONS) or temp):
        c.size = st.st_size
        if temp:
            c.problem = "left by a save that did not finish" if now - c.mtime >= RECENT_SECONDS else "being saved"
            c.state = "in_progress" if now - c.mtime < RECENT_SECONDS else "incomplete"
        else:
            c.problem = check_file(path)
            c.kind = "keras" if low.endswith((".h5", ".hdf5", ".keras")) else "file"
            if low.endswith(".ckpt") and not c.problem:
                recorded = trainers.lightning(path)
                if recorded is not None:
                    c.kind, c.trainer = "lightning", recorded
    else:
        return None
    info = parse_name(name, c.folder, templates)
    c.role, c.named_role, c.warning = info.role, info.role is not None, info.problem
    if temp:
        c.role, c.named_role = None, False
    c.epoch, c.step, c.metrics = info.epoch, info.step, dict(info.metrics)
    if c.trainer is not None:
        c.epoch = c.trainer.epoch if c.trainer.epoch is not None else c.epoch
        c.step = c.trainer.step if c.trainer.step is not None else c.step
        c.metrics.update(c.trainer.metrics)
    meta = record.get(name)
    if not isinstance(meta, dict):
        meta = {}
    for key in ("epoch", "step"):
        if isinstance(meta.get(key), (int, float)) and not isinstance(meta.get(key), bool):
            setattr(c, key, meta[key])
    if isinstance(meta.get("metrics"), dict):
        c.metrics.update({k: v for k, v in meta["metrics"].items() if isinstance(v, (int, float, str))})
    c.complete = not c.problem
    if c.problem and c.state == "complete":
        c.state = "in_progress" if now - c.mtime < RECENT_SECONDS and not c.problem.startswith("a symbolic") \
            else "incomplete"
    return c


def holds_checkpoints(path: Path, named_only: bool) -> bool:
    """Whether a folder that looks like one checkpoint is a run of them: a trainer's output folder (Hugging Face's
    final model beside its checkpoint-<step> folders), or a folder named like a checkpoint (``ckpt_20240501``) with
    nothing of one at its top but folders. Taken for one checkpoint, a prune would delete the whole run with it."""
    folders, weights = 0, False
    try:
        with os.scandir(path) as entries:
            for seen, entry in enumerate(entries):
                if seen >= trainers.MAX_FILES:
                    break
                if entry.is_dir(follow_symlinks=False):
                    if FOLDER.match(entry.name) or trainers.HF_FOLDER.match(entry.name):
                        return True
                    folders += 1
                elif entry.name.lower().endswith(EXTENSIONS) or trainers.WEIGHTS.search(entry.name):
                    weights = True
    except OSError:
        return False
    return named_only and folders > 0 and not weights


#: Lightning's name for a checkpoint whose name was taken (``epoch=3-step=400-v1.ckpt``): a second run into the
#: same folder, or a second save under one name; only time orders those.
VERSIONED = re.compile(r"-v\d+(\.[^.]*)?$")


def order_key(items: list):
    """How a run's checkpoints are ordered, oldest first: by epoch and step (_order), or by time when Lightning
    versioned some of their names (a rerun's epoch=0-...-v1 comes after the first run's epoch=9)."""
    if any(VERSIONED.search(c.name) for c in items):
        return lambda c: (c.mtime, *_order(c))
    return _order


def walk(directory: Path, templates: tuple[str, ...] = DEFAULT_TEMPLATES) -> tuple[list, list]:
    """Every checkpoint below ``directory`` (links not followed) and the problems of the walk itself."""
    found: list[Checkpoint] = []
    problems: list[str] = []
    budget, now = [MAX_ENTRIES], time.time()
    stack = [(directory, "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        data = manifest(folder)
        record = data.get("checkpoints")
        if not isinstance(record, dict):
            record = {}
        extra = tuple(t for t in data.get("name_templates") or () if isinstance(t, str))[:20]
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            problems.append(f"{rel or '.'}: {err.strerror}")
            continue
        for entry in entries:
            budget[0] -= 1
            if budget[0] <= 0:
                problems.append(f"stopped after {MAX_ENTRIES} entries: models/ holds more than a listing reads")
                return found, problems
            if entry.name == MANIFEST:
                continue
            try:
                c = _entry(entry, rel, record, extra + tuple(templates), budget, now)
            except OSError as err:  # vanished or unreadable while listing: say so on that entry
                c = Checkpoint(path=entry.path, name=entry.name, relpath=f"{rel}/{entry.name}" if rel else entry.name,
                               run=rel, complete=False, state="incomplete", problem=f"unreadable ({err.strerror})")
            if c is not None:
                found.append(c)
            elif entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH and entry.name not in _SKIP:
                stack.append((Path(entry.path), f"{rel}/{entry.name}" if rel else entry.name, depth + 1))
    return found, problems


def _order(c: Checkpoint):
    if c.role == LATEST and c.epoch is None and c.step is None:
        return (float("inf"), float("inf"), 1, c.mtime)
    return (c.epoch if c.epoch is not None else -1, c.step if c.step is not None else -1,
            1 if c.role == LATEST else 0, c.mtime)


def listing(directory, metric: str | None = None, mode: str | None = None,
            templates: tuple[str, ...] = DEFAULT_TEMPLATES) -> Listing:
    """Checkpoints under ``directory`` by run, each run's latest and best marked."""
    directory = Path(directory)
    found, problems = walk(directory, templates) if directory.is_dir() else ([], [])
    by_run: dict[str, list] = {}
    for c in found:
        by_run.setdefault(c.run, []).append(c)
    names = sorted({m for c in found for m, v in c.metrics.items() if _value(c, m) is not None})
    metric = metric or next((m for m in _PREFERRED if m in names), names[0] if names else None)
    result = Listing(str(directory), [], [], metric, mode or default_mode(metric), names, problems)
    for run in sorted(by_run):
        items = sorted(by_run[run], key=order_key(by_run[run]))
        _missing_parts(items)
        _trainer_roles(items)
        heads = [c for c in items if c.complete and not c.partial and not (c.named_role and c.role == BEST)]
        if heads:
            heads[-1].is_latest = True
        result.checkpoints.extend(items)
        best = result.best(run)
        if best is not None:
            best.is_best = True
        latest = heads[-1] if heads else None
        history = latest.trainer if latest else None
        result.runs.append(Run(run=run, count=len(items), bytes=sum(c.size for c in items),
                               latest=latest.relpath if latest else None, best=best.relpath if best else None,
                               history=[h for h in history.history if "step" in h] if history else []))
    return result


def _missing_parts(items: list) -> None:
    """A checkpoint folder that says nothing of its trainer (Accelerate's ``checkpoint_<n>``) is whole when its
    weights are, but a save cut short leaves out what comes after them (the optimizer, the scheduler, the random
    states): one that lacks a file every other whole folder of its run has (two at least) is not resumed from.
    It is not deleted for it either: a final save of the weights alone looks the same."""
    folders = [c for c in items if c.folder and c.kind == "folder" and c.complete]
    if len(folders) < 3:
        return
    names: dict[str, set[str]] = {}
    for c in folders:
        try:
            with os.scandir(c.path) as entries:
                names[c.path] = {e.name for _, e in zip(range(trainers.MAX_FILES), entries)
                                 if e.is_file(follow_symlinks=False)}
        except OSError:
            continue
    short: dict[str, list[str]] = {}
    for c in folders:
        others = [names[o.path] for o in folders if o is not c and o.path in names]
        if c.path in names and len(others) >= 2:
            missing = sorted(set.intersection(*others) - names[c.path])
            if missing:
                short[c.path] = missing
    if len(short) == len(folders):
        return  # each lacks something of the others': no layout to hold them to
    for c in folders:
        gaps = short.get(c.path)
        if gaps:
            c.partial = True
            c.warning = (f"no {', '.join(gaps[:3])}{' and more' if len(gaps) > 3 else ''}, which the run's "
                         "other checkpoints have (a save cut short, or the weights alone): not resumed from")


def _trainer_roles(items: list) -> None:
    """Mark what the trainer itself called best (Hugging Face's best_model_checkpoint, Lightning's best path),
    as recorded by its newest complete checkpoint, and spread Lightning's recorded scores to their files."""
    by_name = {c.name: c for c in items}
    for c in reversed(items):
        found = c.trainer
        if found is None or not c.complete:
            continue
        for entry in found.history:
            other = by_name.get(entry.get("name", ""))
            if other is not None:
                for key, value in entry["metrics"].items():
                    other.metrics.setdefault(key, value)
        best = by_name.get(found.best_name or "")
        if best is not None and best.role is None:
            best.role = BEST
        break
