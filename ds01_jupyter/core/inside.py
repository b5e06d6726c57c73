"""The guard's eyes inside a running container (sent as ``python3 -I -c``; stdlib only).

The host runs this with the *user's* uid, never root's, in an isolated
interpreter (-I: no PYTHONPATH, no user site, no script folder on sys.path), so
nothing the user placed in the container can make it act with more rights than
the user has. Its request arrives on stdin (no file is written into the
container); its answer goes to stdout: JSON for ``probe``, a tar stream for
``read``. Paths are exchanged as str with surrogate escapes, so names that are
not UTF-8 survive the trip. Every path is reached through directory file
descriptors when it is too long for one system call, and no file is opened
except a regular one, without following links and without blocking.
"""

import io
import json
import os
import stat
import sys
import tarfile
import time

CHUNK = 1 << 20
SKIP_MOUNTS = ("/proc", "/sys", "/dev", "/run/secrets")


def _b(path):
    return os.fsencode(path)


def _parent_fd(path):
    """(fd of the parent folder, base name), walking from / without following links."""
    parts = [p for p in _b(path).split(b"/") if p]
    fd = os.open(b"/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise
    return fd, (parts[-1] if parts else b".")


def lstat(path):
    try:
        return os.lstat(_b(path))
    except OSError as err:
        if err.errno != 36:  # ENAMETOOLONG: go folder by folder
            raise
    fd, name = _parent_fd(path)
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


def open_regular(path):
    """An fd of a regular file, opened without following a link and without blocking, or OSError."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(_b(path), flags)
    except OSError as err:
        if err.errno != 36:
            raise
        parent, name = _parent_fd(path)
        try:
            fd = os.open(name, flags, dir_fd=parent)
        finally:
            os.close(parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(21, "not a regular file")
    return fd


def readlink(path):
    try:
        return os.fsdecode(os.readlink(_b(path)))
    except OSError as err:
        if err.errno != 36:
            raise
    fd, name = _parent_fd(path)
    try:
        return os.fsdecode(os.readlink(name, dir_fd=fd))
    finally:
        os.close(fd)


def _resolve_mangled(path):
    """Names that are not UTF-8 reach the host's diff as U+FFFD; find the real ones in the folder."""
    parent, _, base = path.rpartition("/")
    try:
        names = os.listdir(_b(parent or "/"))
    except OSError:
        return []
    return [(parent or "") + "/" + os.fsdecode(n) for n in names if n.decode("utf-8", "replace") == base]


def _mounts():
    found = []
    with open("/proc/self/mounts", "rb") as fh:
        for line in fh.read(4 << 20).splitlines():
            parts = line.split()
            if len(parts) >= 3:
                mnt = parts[1].decode("utf-8", "surrogateescape").replace("\\040", " ")
                found.append((mnt, parts[2].decode()))
    return found


def _walk(top, skip, since, out, limit):
    """Entries under ``top`` changed since ``since`` (ctime), by directory fds: any depth."""
    for dirpath, dirnames, filenames, dirfd in os.fwalk(_b(top)):
        here = os.fsdecode(dirpath)
        dirnames[:] = [d for d in dirnames if os.path.join(here, os.fsdecode(d)) not in skip]
        for name in filenames + dirnames:
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            if since is not None and max(st.st_ctime, st.st_mtime) < since:
                continue
            if since is not None and stat.S_ISDIR(st.st_mode):
                continue
            out.append([os.path.join(here, os.fsdecode(name)), st.st_size, stat.S_IFMT(st.st_mode), st.st_blocks * 512])
            if len(out) >= limit:
                return False
    return True


def _read_log(path, limit=4 << 20):
    try:
        fd = open_regular(path)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - limit))
        lines = fh.read(limit).decode("utf-8", "replace").splitlines()
    out = []
    for line in lines[-1000:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def probe(req):
    out = {"stats": {}, "tmpfs": [], "writes": [], "changed": None, "notes": []}
    for path in req.get("paths", []):
        candidates = _resolve_mangled(path) if "\ufffd" in path else [path]
        for real in candidates:
            try:
                st = lstat(real)
            except OSError:
                continue
            out["stats"][real] = [st.st_size, stat.S_IFMT(st.st_mode), st.st_nlink, st.st_blocks * 512]
    workspace = req.get("workspace", "/workspace")
    mounts = _mounts()
    skip = set(SKIP_MOUNTS) | {workspace} | {m for m, t in mounts if t in ("proc", "sysfs", "cgroup", "cgroup2")}
    limit = int(req.get("limit", 200000))
    for mnt, fstype in mounts:
        if fstype != "tmpfs" or any(mnt == s or mnt.startswith(s + "/") for s in skip if s != "/dev") or mnt == "/dev":
            continue
        if not _walk(mnt, skip, None, out["tmpfs"], limit):
            out["notes"].append(f"Stopped listing {mnt} after {limit} entries.")
    if req.get("walk_since") is not None:
        # The engine could not list the changes (e.g. a path longer than 4 KB): find them by ctime.
        others = skip | {m for m, t in mounts if m != "/"}
        changed = []
        if not _walk("/", others, float(req["walk_since"]), changed, limit):
            out["notes"].append(f"Stopped looking for changes after {limit} entries.")
        out["changed"] = changed
    out["writes"] = _read_log(req.get("hook_log", "/tmp/.ds01/writes.jsonl"))
    return out


class _Exactly:
    """Read exactly ``size`` bytes of a file that may shrink meanwhile (then padded, and said so)."""

    def __init__(self, fh, size):
        self.fh, self.left, self.short = fh, size, False

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.fh.read(n) if n else b""
        if len(data) < n:
            self.short = True
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


def read(req):
    """A tar stream of the requested paths: regular files and links only; the rest is reported."""
    skipped = []
    budget = req.get("budget")
    sent = 0
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        for path in req.get("paths", []):
            try:
                st = lstat(path)
            except OSError:
                skipped.append({"path": path, "why": "vanished before it could be copied"})
                continue
            info = tarfile.TarInfo(path.lstrip("/"))
            info.mode, info.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            if stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, readlink(path)
                tar.addfile(info)
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append({"path": path, "why": "special file (fifo, socket or device): listed, never read"})
                continue
            try:
                fd = open_regular(path)
            except OSError as err:
                skipped.append({"path": path, "why": f"could not be read ({err.strerror})"})
                continue
            with os.fdopen(fd, "rb") as fh:
                info.size = os.fstat(fd).st_size
                if budget is not None and sent + info.size > budget:
                    skipped.append({"path": path, "why": "grew past the room the rescue had checked", "size": info.size})
                    continue
                source = _Exactly(fh, info.size)
                tar.addfile(info, source)
                sent += info.size
                if source.short:
                    skipped.append({"path": path, "why": "shrank while it was copied: the copy is padded"})
        report = json.dumps({"skipped": skipped, "at": time.time()}).encode()
        info = tarfile.TarInfo(".ds01-report.json")
        info.size = len(report)
        tar.addfile(info, io.BytesIO(report))


def main():
    req = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogateescape"))
    if req.get("mode") == "read":
        read(req)
    else:
        sys.stdout.write(json.dumps(probe(req)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
