"""Checkpoints: save atomically, find the latest and the best, resume, keep the disk in check.

Usable inside a project's container (standard library only; PyTorch when installed)::

    from ds01_jupyter import checkpoints
    checkpoints.save(model.state_dict(), epoch=3, step=1200, metrics={"val_loss": 0.41})
    state = checkpoints.load_latest()
    checkpoints.best("val_loss", mode="min").path

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
import re
import shutil
import stat
import struct
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

MANIFEST = ".ds01-checkpoints.json"
EXTENSIONS = (".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".h5", ".keras", ".onnx", ".joblib", ".pkl")
WEIGHT_FILES = re.compile(r"\.(safetensors|bin|pt|pth|ckpt|h5|msgpack)$|\.index\.json$")
FOLDER = re.compile(r"^(checkpoint|ckpt|epoch|step)[-_=]?\d+|^epoch=\d+", re.I)
_EPOCH = re.compile(r"epoch[=_-]?(\d+)|(?:^|[-_])ep(\d+)", re.I)
_STEP = re.compile(r"step[=_-]?(\d+)|^checkpoint-(\d+)$|(?:^|[-_])it(?:er)?[=_-]?(\d+)", re.I)
_TMP = re.compile(r"^\..*\.tmp-\d+")


class CheckpointError(Exception):
    """A save, load or prune that could not be done; the message says what is intact."""


@dataclass
class Checkpoint:
    path: str
    name: str
    epoch: int | None = None
    step: int | None = None
    metrics: dict = field(default_factory=dict)
    complete: bool = True
    problem: str = ""
    size: int = 0
    mtime: float = 0.0
    folder: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def default_directory() -> Path:
    """``/workspace/models`` inside a project container, else ``./models``."""
    if os.environ.get("DS01_PROJECT") and os.path.isdir("/workspace"):
        return Path("/workspace/models")
    return Path.cwd() / "models"


def _dir(directory) -> Path:
    return Path(directory) if directory is not None else default_directory()


# -- completeness --------------------------------------------------------------------------
def _open_regular(path: Path):
    """Open a regular file for reading without blocking or following a final link (a FIFO or a link to
    /dev/zero in models/ must not hang or flood a listing); OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_NOCTTY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(21, "not a regular file")
    return os.fdopen(fd, "rb")


def check_file(path: Path) -> str:
    """Why a checkpoint file is incomplete, or "" when it looks whole."""
    try:
        fh = _open_regular(path)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return "empty file"
        suffix = path.suffix.lower()
        head = fh.read(8)
        if suffix == ".safetensors":
            if size < 8:
                return "truncated safetensors header"
            (length,) = struct.unpack("<Q", head)
            if 8 + length > size:
                return "truncated safetensors header"
            if length > 100 * 2**20:
                return "safetensors header larger than 100 MB: not read"
            try:
                header = json.loads(fh.read(length))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, IndexError):
                return "safetensors header does not parse"
            if 8 + length + end != size:
                return f"safetensors data is {size - 8 - length} bytes, header says {end}"
            return ""
        if head[:2] == b"PK" or suffix in (".keras",):
            # torch.save and Keras write zip archives; a half-written one has no central directory.
            return "" if zipfile.is_zipfile(fh) else "truncated archive (no zip central directory)"
        if suffix in (".h5",) and head != b"\x89HDF\r\n\x1a\n":
            return "not an HDF5 file (bad signature)"
        if suffix in (".pkl",) or (suffix in (".pt", ".pth", ".ckpt") and head[:1] == b"\x80"):
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b".":  # every pickle ends with the STOP opcode
                return "truncated pickle"
    return ""


def check_folder(path: Path) -> str:
    weights = [p for p in path.rglob("*") if p.is_file() and WEIGHT_FILES.search(p.name)]
    if not weights:
        return "folder has no weights file"
    for weight in weights:
        if weight.name.endswith(".json"):
            continue
        problem = check_file(weight)
        if problem:
            return f"{weight.name}: {problem}"
    return ""


# -- finding ----------------------------------------------------------------------------------
def _numbers(name: str) -> tuple[int | None, int | None]:
    epoch = _EPOCH.search(name)
    step = _STEP.search(name)
    pick = lambda m: int(next(g for g in m.groups() if g is not None)) if m else None  # noqa: E731
    return pick(epoch), pick(step)


def _manifest(directory: Path) -> dict:
    try:
        with _open_regular(directory / MANIFEST) as fh:
            data = json.loads(fh.read(64 * 2**20))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def scan(directory=None, patterns: tuple[str, ...] = EXTENSIONS) -> list[Checkpoint]:
    """Every checkpoint (file or trainer folder) in ``directory``, oldest first."""
    directory = _dir(directory)
    if not directory.is_dir():
        return []
    records = _manifest(directory).get("checkpoints", {})
    found = []
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if name == MANIFEST or _TMP.match(name) or entry.is_symlink():
            continue
        if entry.is_file() and name.lower().endswith(tuple(patterns)):
            problem, folder, size = check_file(entry), False, entry.stat().st_size
        elif entry.is_dir() and (FOLDER.match(name) or name.lower().endswith(tuple(patterns))):
            problem, folder, size = check_folder(entry), True, _tree_size(entry)
        else:
            continue
        epoch, step = _numbers(name)
        meta = records.get(name, {})
        found.append(
            Checkpoint(
                path=str(entry),
                name=name,
                epoch=meta.get("epoch", epoch),
                step=meta.get("step", step),
                metrics=meta.get("metrics") or {},
                complete=not problem,
                problem=problem,
                size=size,
                mtime=entry.stat().st_mtime,
                folder=folder,
            )
        )
    return sorted(found, key=_order)


def _order(c: Checkpoint):
    return (c.epoch if c.epoch is not None else -1, c.step if c.step is not None else -1, c.mtime)


def latest(directory=None) -> Checkpoint | None:
    """The newest complete checkpoint (by epoch and step, then time); incomplete ones never."""
    complete = [c for c in scan(directory) if c.complete]
    return complete[-1] if complete else None


def best(metric: str, mode: str = "min", directory=None) -> Checkpoint | None:
    """The complete checkpoint with the lowest (mode="min") or highest ("max") recorded ``metric``."""
    if mode not in ("min", "max"):
        raise ValueError("mode must be 'min' or 'max'")
    scored = [c for c in scan(directory) if c.complete and isinstance(c.metrics.get(metric), (int, float))]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda c: c.metrics[metric])


# -- saving -----------------------------------------------------------------------------------
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


def save(
    obj,
    epoch: int | None = None,
    step: int | None = None,
    metrics: dict | None = None,
    directory=None,
    name: str | None = None,
    keep_last: int | None = None,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str = "min",
) -> Checkpoint:
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
        manifest = _manifest(directory)
        records = manifest.setdefault("checkpoints", {})
        records[name] = {"epoch": epoch, "step": step, "metrics": dict(metrics or {}), "time": time.time()}
        manifest["version"] = 1
        _atomic_write(directory, MANIFEST, lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise CheckpointError(
                f"The disk is full: checkpoint {name} was not saved. The previous checkpoints and the manifest "
                f"in {directory} are intact; free space (e.g. `checkpoints.prune(keep_last=2, dry_run=False)`)."
            ) from err
        raise CheckpointError(f"Could not save checkpoint {name} in {directory}: {err.strerror or err}.") from err
    if keep_last is not None or keep_best is not None:
        prune(keep_last=keep_last, keep_best=keep_best, metric=metric, mode=mode, directory=directory, dry_run=False)
    saved = next((c for c in scan(directory) if c.name == name), None)
    return saved or Checkpoint(path=str(directory / name), name=name, epoch=epoch, step=step, metrics=metrics or {})


def load(checkpoint, map_location=None):
    """Load a checkpoint (a Checkpoint or a path)."""
    path = Path(checkpoint.path if isinstance(checkpoint, Checkpoint) else checkpoint)
    problem = check_folder(path) if path.is_dir() else check_file(path)
    if problem:
        raise CheckpointError(f"{path} is incomplete ({problem}); load an earlier one.")
    torch = _torch()
    if torch is not None and path.suffix in (".pt", ".pth", ".ckpt") and path.is_file():
        return torch.load(path, map_location=map_location, weights_only=False)
    with open(path, "rb") as fh:
        return pickle.load(fh)


def load_latest(directory=None, map_location=None):
    """Load the newest complete checkpoint; CheckpointError when there is none."""
    found = latest(directory)
    if found is None:
        raise CheckpointError(f"No complete checkpoint in {_dir(directory)} to resume from.")
    return load(found, map_location=map_location)


# -- retention ---------------------------------------------------------------------------------
def plan_prune(
    keep_last: int | None = None,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str = "min",
    older_than: float | None = None,
    directory=None,
) -> list[Checkpoint]:
    """What a prune would delete: not among the last ``keep_last``, not among the ``keep_best`` by
    ``metric``, and (if given) older than ``older_than`` seconds. Incomplete ones go first."""
    if keep_best and not metric:
        raise CheckpointError("keep_best needs the metric to rank by.")
    if keep_last is None and keep_best is None and older_than is None:
        raise CheckpointError("Say what to keep: keep_last, keep_best (with metric) or older_than.")
    found = scan(directory)
    complete = [c for c in found if c.complete]
    keep = set()
    if keep_last:
        keep |= {c.path for c in complete[-keep_last:]}
    if keep_best:
        scored = [c for c in complete if isinstance(c.metrics.get(metric), (int, float))]
        scored.sort(key=lambda c: c.metrics[metric], reverse=(mode == "max"))
        keep |= {c.path for c in scored[:keep_best]}
    if keep_last is None and keep_best is None:
        keep = set()
    now = time.time()
    doomed = []
    for c in found:
        if c.path in keep:
            continue
        if older_than is not None and now - c.mtime < older_than:
            continue
        doomed.append(c)
    return doomed


def prune(
    keep_last: int | None = None,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str = "min",
    older_than: float | None = None,
    directory=None,
    dry_run: bool = True,
) -> list[Checkpoint]:
    """Delete what :func:`plan_prune` lists; with ``dry_run`` (the default) only return it."""
    doomed = plan_prune(keep_last, keep_best, metric, mode, older_than, directory)
    if dry_run:
        return doomed
    directory = _dir(directory)
    for c in doomed:
        path = Path(c.path)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    manifest = _manifest(directory)
    if manifest.get("checkpoints"):
        for c in doomed:
            manifest["checkpoints"].pop(c.name, None)
        _atomic_write(directory, MANIFEST, lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))
    return doomed
