"""Is a checkpoint file whole? Each format's own end marker, read without trusting the file.

A trainer killed mid-write, a full disk or a copy cut short leaves a file with
the right name and the wrong length. Every format has a way to tell: a
safetensors header states the data's length, a zip (``torch.save``, ``.keras``)
ends with a central directory, a pickle with its STOP opcode, and an HDF5
superblock (Keras ``.h5``) records the end-of-file address. Files are opened
without following a final link and without blocking, so a FIFO or a link to
``/dev/zero`` named like a checkpoint cannot hang or flood a listing.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
from pathlib import Path

#: Headers larger than this are not read (a real one is kilobytes; a hostile one could be gigabytes).
MAX_HEADER = 100 * 2**20
_HDF5 = b"\x89HDF\r\n\x1a\n"
#: torch.save's magic number as its legacy (pre-zip) format pickles it first; the tensors' bytes follow the
#: pickles, so such a file has no end marker to check.
_LEGACY_TORCH = b"l\xfc\x9cF\xf9 j\xa8P\x19"


def open_regular(path: Path | str, dir_fd: int | None = None):
    """Open a regular file for reading without blocking or following a final link; OSError otherwise."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(21, "not a regular file")
    return os.fdopen(fd, "rb")


def read_json(path: Path, limit: int = 64 * 2**20):
    """A small JSON file's content; OSError or ValueError (with the reason) otherwise."""
    with open_regular(path) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit // 2**20} MB")
    return json.loads(data)


def _safetensors(fh, size: int) -> str:
    if size < 8:
        return "truncated safetensors header"
    (length,) = struct.unpack("<Q", fh.read(8))
    if 8 + length > size:
        return "truncated safetensors header"
    if length > MAX_HEADER:
        return "safetensors header larger than 100 MB: not read"
    try:
        header = json.loads(fh.read(length))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return "safetensors header does not parse"
    if not isinstance(end, int) or 8 + length + end != size:
        return f"safetensors data is {size - 8 - length} bytes, header says {end}"
    return ""


def _hdf5(fh, size: int) -> str:
    """The superblock's end-of-file address against the file's length (HDF5 file format, section II.A)."""
    head = fh.read(64)
    if head[:8] != _HDF5:
        return "not an HDF5 file (bad signature)"
    version = head[8]
    if version in (0, 1):
        offsets = head[13]
        at = 24 + (4 if version == 1 else 0) + 2 * offsets
    elif version in (2, 3):
        offsets = head[9]
        at = 12 + 2 * offsets
    else:
        return ""
    if offsets not in (2, 4, 8) or len(head) < at + offsets:
        return "truncated HDF5 superblock"
    end = int.from_bytes(head[at:at + offsets], "little")
    if end != 2 ** (8 * offsets) - 1 and end > size:
        return f"truncated HDF5 file ({size} of {end} bytes)"
    return ""


def check_file(path: Path | str, dir_fd: int | None = None) -> str:
    """Why a checkpoint file is incomplete, or "" when it looks whole."""
    try:
        fh = open_regular(path, dir_fd)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return "empty file"
        suffix = os.path.splitext(str(path))[1].lower()
        head = fh.read(8)
        fh.seek(0)
        if suffix == ".safetensors":
            return _safetensors(fh, size)
        if head[:2] == b"PK" or suffix == ".keras":
            # torch.save, .keras and Lightning write zip archives; a half-written one has no central directory.
            return "" if zipfile.is_zipfile(fh) else "truncated archive (no zip central directory)"
        if suffix in (".h5", ".hdf5") or head == _HDF5:
            return _hdf5(fh, size)
        # A pickle of protocol 2 or later (it starts with PROTO) ends with the STOP opcode. Not checked: older
        # protocols, compressed pickles (joblib's compress=, zlib), torch.save's legacy format (storages follow).
        if suffix in (".pkl", ".pt", ".pth", ".ckpt", ".bin") and head[:1] == b"\x80":
            if _LEGACY_TORCH in fh.read(32):
                return ""
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b".":
                return "truncated pickle"
    return ""
