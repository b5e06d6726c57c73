"""Read the bookkeeping of a ``torch.save`` file (a Lightning ``.ckpt``) without torch and without running it.

A ``torch.save`` file is a zip holding ``data.pkl`` (the structure) and one
entry per tensor storage. Unpickling it with :mod:`pickle` would run whatever
the file names (``torch.load(weights_only=False)`` does exactly that), and
``weights_only=True`` refuses Lightning's own hyper-parameter classes. Here every
class the pickle names becomes an inert placeholder (a dict that accepts
anything and does nothing), tensors of one element are read as numbers from
their storage, and larger tensors stay placeholders. Plain values (epoch,
global step, the ModelCheckpoint callback's monitor, scores and paths) come
out as they were saved. Nothing in the file can run code: only this module's
``find_class`` decides what a name means.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

from .formats import open_regular

#: data.pkl holds the structure only (names, shapes, small values); beyond this it is not read.
MAX_PICKLE = 64 * 2**20
_DTYPES = {
    "FloatStorage": ("<f", 4), "DoubleStorage": ("<d", 8), "HalfStorage": ("<e", 2), "LongStorage": ("<q", 8),
    "IntStorage": ("<i", 4), "ShortStorage": ("<h", 2), "BFloat16Storage": ("bf16", 2), "BoolStorage": ("?", 1),
}
_SAFE = {("collections", "OrderedDict"): OrderedDict, ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
         ("builtins", "complex"): complex, ("builtins", "slice"): slice}
_cache: dict = {}


class Placeholder(dict):
    """Whatever the pickle named: takes its arguments and state, keeps nothing, runs nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def __setstate__(self, state):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _Storage:
    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if (module, name) in _SAFE:
            return _SAFE[(module, name)]
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self._tensor
        if module == "torch" and name in _DTYPES:
            return name  # the storage's type, as persistent_load receives it
        return type(name, (Placeholder,), {})

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
            kind = pid[1] if isinstance(pid[1], str) else ""
            return _Storage(kind, str(pid[2]))
        return Placeholder()

    def _tensor(self, storage, offset=0, size=(), *rest):
        """A one-element tensor becomes its number; anything larger a placeholder."""
        if not isinstance(storage, _Storage) or storage.kind not in _DTYPES or not isinstance(offset, int):
            return Placeholder()
        if not isinstance(size, tuple) or any(not isinstance(n, int) or n != 1 for n in size):
            return Placeholder()
        fmt, width = _DTYPES[storage.kind]
        try:
            with self.archive.open(f"{self.prefix}data/{storage.key}") as fh:
                fh.read(offset * width) if offset else None
                raw = fh.read(width)
        except (KeyError, OSError, zipfile.BadZipFile):
            return Placeholder()
        if len(raw) != width:
            return Placeholder()
        if fmt == "bf16":
            return struct.unpack("<f", b"\0\0" + raw)[0]
        value = struct.unpack(fmt, raw)[0]
        return bool(value) if fmt == "?" else value


def read_state(path) -> dict | None:
    """The top-level dict of a ``torch.save`` zip, with placeholders for what it cannot safely be; None if it
    is not one or cannot be read."""
    try:
        fh = open_regular(path)
    except OSError:
        return None
    with fh:
        st = os.fstat(fh.fileno())
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in _cache:
            return _cache[key]
        result = None
        try:
            with zipfile.ZipFile(fh) as archive:
                pickles = [i for i in archive.infolist() if i.filename.endswith("data.pkl")
                           and i.filename.count("/") <= 1 and i.file_size <= MAX_PICKLE]
                if pickles:
                    prefix = pickles[0].filename[: -len("data.pkl")]
                    state = _Unpickler(archive.read(pickles[0]), archive, prefix).load()
                    result = state if isinstance(state, dict) else None
        except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
                AttributeError, IndexError, struct.error, OSError, RecursionError, MemoryError):
            result = None
        if len(_cache) > 512:
            _cache.clear()
        _cache[key] = result
        return result


def read_lightning_state(path) -> dict | None:
    """A Lightning checkpoint's state (epoch, global_step, callbacks); None for any other file."""
    state = read_state(path)
    if state is None or not (
        {"pytorch-lightning_version", "global_step"} & set(k for k in state if isinstance(k, str))
    ):
        return None
    return state
