"""The guard's eyes inside a running container (sent as ``python3 -I -c``; stdlib only).

The host runs this with the *user's* uid, never root's, in an isolated
interpreter (-I: no PYTHONPATH, no user site, no script folder on sys.path), so
nothing the user placed in the container can make it act with more rights than
the user has. Its request arrives on stdin (no file is written into the
container); its answer goes to stdout: JSON for ``probe`` and ``processes``,
a tar stream for ``read``, JSON lines for ``stop`` (which signals the user's
running work: the kernel refuses it for any process that is not the user's).
Paths are exchanged as str with surrogate escapes, so names that are
not UTF-8 survive the trip. Every path is reached through directory file
descriptors when it is too long for one system call, and no file is opened
except a regular one, without following links and without blocking.
"""

import glob
import io
import json
import os
import re
import signal
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


def searchable(path):
    """Whether this user may look up names in a folder (a folder gone meanwhile hides nothing)."""
    try:
        if len(_b(path)) < 4000:
            ok = os.access(_b(path), os.X_OK)
        else:  # too long for one system call: ask relative to its parent
            fd, name = _parent_fd(path)
            try:
                ok = os.access(name, os.X_OK, dir_fd=fd)
            finally:
                os.close(fd)
    except OSError:
        ok = False
    if ok:
        return True
    try:
        lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


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


def _memory_files(req, found, notes):
    """Every entry of the memory-backed mounts (/dev/shm, any tmpfs but /dev itself), lost when the container
    stops; (the mounts, the mounts not to walk, the limit) for the probe's other walks."""
    workspace = req.get("workspace", "/workspace")
    mounts = _mounts()
    skip = set(SKIP_MOUNTS) | {workspace} | {m for m, t in mounts if t in ("proc", "sysfs", "cgroup", "cgroup2")}
    limit = int(req.get("limit", 200000))
    for mnt, fstype in mounts:
        if fstype != "tmpfs" or any(mnt == s or mnt.startswith(s + "/") for s in skip if s != "/dev") or mnt == "/dev":
            continue
        if not _walk(mnt, skip, None, found, limit):
            notes.append(f"Stopped listing {mnt} after {limit} entries.")
    return mounts, skip, limit


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
    # Folders whose entries the host read from the container's layer: those this user cannot search are named,
    # so that what is behind them is listed as not examinable with the user's rights, as a stat here would find.
    out["blocked"] = [d for d in req.get("searchable", []) if not searchable(d)]
    mounts, skip, limit = _memory_files(req, out["tmpfs"], out["notes"])
    if req.get("walk_since") is not None:
        # The engine could not list the changes (e.g. a path longer than 4 KB): find them by ctime.
        others = skip | {m for m, t in mounts if m != "/"}
        changed = []
        if not _walk("/", others, float(req["walk_since"]), changed, limit):
            out["notes"].append(f"Stopped looking for changes after {limit} entries.")
        out["changed"] = changed
    out["writes"] = _read_log(req.get("hook_log", "/tmp/.ds01/writes.jsonl"))
    if req.get("processes"):
        out["processes"] = processes(req)
    return out


# -- processes: what runs, and stopping it -------------------------------------------------
SHELLS = {"sh", "bash", "dash", "zsh", "ash", "fish", "ksh", "mksh", "tcsh", "csh"}
#: The Jupyter server of a hub container and its helpers: the machinery, not the user's work.
MACHINERY = {"jupyterhub-singleuser", "jupyter-lab", "jupyter-labhub", "jupyter-server", "jupyter-notebook",
             "jupyter", "configurable-http-proxy"}
MACHINERY_MODULES = {"jupyterhub.singleuser", "jupyter_server", "jupyterlab", "notebook", "jupyterhub"}
#: ds01's own short-lived helpers (the kernel provisioner's pid checks and clean-up).
HELPER = re.compile(r"^(kill -\d+ \d+|cat /tmp/\.ds01/\S+|rm -f( /tmp/\.ds01/\S+)+|sh -c mkdir -p /tmp/\.ds01 .*)$")
KERNEL_STATE = "/tmp/.ds01/kernel-*.state.json"
CMD_LIMIT = 4096


def _proc(pid):
    """Facts of one process from /proc, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read(4096)
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read(CMD_LIMIT)
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    close = raw.rindex(b")")
    comm = raw[raw.index(b"(") + 1:close].decode("utf-8", "replace")
    f = raw[close + 2:].split()
    argv = [os.fsdecode(a) for a in cmd.rstrip(b"\0").split(b"\0")] if cmd.strip(b"\0") else []
    return {"pid": pid, "ppid": int(f[1]), "state": f[0].decode(), "uid": uid, "start": int(f[19]),
            "cpu": int(f[11]) + int(f[12]), "argv": argv or [f"[{comm}]"]}


def _table():
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _proc(int(name))
            if info is not None:
                table[info["pid"]] = info
    return table


def _kernel_states():
    """What the kernel hook says each kernel is doing (pid -> state), from its small state files."""
    states = {}
    for path in glob.glob(KERNEL_STATE)[:1000]:
        try:
            fd = open_regular(path)
            with os.fdopen(fd, "rb") as fh:
                state = json.loads(fh.read(65536))
            states[int(state["pid"])] = state
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return states


def _is_kernel(argv):
    return any("ipykernel" in a or a.endswith("/.ds01/kernel_launcher.py") for a in argv[:4])


def _role(info, main, mine):
    """Why a process is not the user's work ('' when it is)."""
    argv, pid = info["argv"], info["pid"]
    base = os.path.basename(argv[0]).lstrip("-")
    script = os.path.basename(argv[1]) if base.startswith("python") and len(argv) > 1 else ""
    if pid == 1:
        return "init"
    if pid == main:
        return "main"
    if pid == os.getpid() or argv == mine:
        return "ds01"  # this program, or another look of ds01's at the same container
    if info["state"] in ("Z", "X"):
        return "zombie"
    if (
        base in MACHINERY
        or script in MACHINERY
        or any(argv[i] == "-m" and argv[i + 1] in MACHINERY_MODULES for i in range(len(argv) - 1))
    ):
        return "machinery"
    if base in SHELLS and all(a.startswith("-") and a != "-c" for a in argv[1:]):
        return "shell"  # an interactive shell waiting for input (its commands are listed on their own)
    if HELPER.match(" ".join(argv)):
        return "ds01"
    return ""


def _main_pid(table):
    """The container's main process: pid 1, or the first child of docker-init that runs the command it was given;
    else its oldest child (a command that exec'd another program: docker-init runs while its command does, and
    processes left to it later are younger)."""
    init = table.get(1)
    if init is None or "--" not in init["argv"] or "init" not in os.path.basename(init["argv"][0]):
        return 1
    wanted = init["argv"][init["argv"].index("--") + 1:]
    children = [i for i in table.values() if i["ppid"] == 1]
    children = [i for i in children if i["argv"] == wanted] or children
    return min(children, key=lambda i: (i["start"], i["pid"]))["pid"] if children else None


def _at_risk(table):
    """pid -> role of every process that is the user's running work ('process', or 'kernel' for an idle
    kernel), and the pids left out with why."""
    main = _main_pid(table)
    mine = table.get(os.getpid(), {}).get("argv")
    work, other = {}, {}
    for pid, info in table.items():
        role = _role(info, main, mine)
        if role:
            other[pid] = role
        elif _is_kernel(info["argv"]):
            work[pid] = "kernel"
        else:
            work[pid] = "process"
    return work, other


def _boot_time():
    with open("/proc/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime "):
                return int(line.split()[1])
    return 0


def _group(table, work):
    """pid -> the topmost process of the user's work at or above it (so a job and its children are one entry)."""
    memo = {}
    for pid in work:
        chain, cur = [], pid
        while cur in table and cur not in memo and len(chain) < 100000:
            chain.append(cur)
            cur = table[cur]["ppid"]
            if cur in chain:  # a snapshot taken while pids were reused: stop here
                break
        above = memo.get(cur)
        for p in reversed(chain):
            above = above if above is not None else (p if p in work else None)
            memo[p] = above
    return {p: memo[p] for p in work}


def processes(req):
    """The user's running work: one entry per topmost process (with its descendants), idle kernels apart."""
    tick = os.sysconf("SC_CLK_TCK")
    before = _table()
    states = _kernel_states()
    work, other = _at_risk(before)
    sample = float(req.get("sample", 0.5))
    now_table = before
    if work and sample > 0:
        time.sleep(sample)
        now_table = _table()
    threshold = float(req.get("busy_percent", 5.0))
    boot = _boot_time()
    groups = {}
    roots = _group(before, work)
    for pid, root in roots.items():
        info = now_table.get(pid)
        if info is None or info["start"] != before[pid]["start"] or info["state"] in ("Z", "X"):
            continue  # ended during the sample
        percent = (info["cpu"] - before[pid]["cpu"]) / tick / sample * 100 if sample > 0 else 0.0
        group = groups.get(root)
        if group is None:
            head = before[root]
            state = states.get(root) if work.get(root) == "kernel" else None
            if state is not None and state.get("start") not in (None, head["start"]):
                state = None  # a state file of an earlier process that had the same pid
            group = groups[root] = {
                "pid": root, "command": " ".join(head["argv"])[:500], "argv": head["argv"][:20],
                "uid": head["uid"], "state": head["state"], "started": boot + head["start"] / tick,
                "cpu_seconds": 0.0, "cpu_percent": 0.0, "processes": 0, "pids": [],
                "kernel": work.get(root) == "kernel", "cell": state,
            }
        group["cpu_seconds"] += info["cpu"] / tick
        group["cpu_percent"] += percent
        group["processes"] += 1
        if len(group["pids"]) < 1000:
            group["pids"].append(pid)
    for group in groups.values():
        cell_busy = bool(group["cell"] and group["cell"].get("busy"))
        group["busy"] = cell_busy or group["cpu_percent"] >= threshold
        group["cpu_seconds"] = round(group["cpu_seconds"], 2)
        group["cpu_percent"] = round(group["cpu_percent"], 1)
    listed = sorted(groups.values(), key=lambda g: (not g["busy"], g["started"], g["pid"]))
    limit = int(req.get("limit", 500))
    zombies = sum(1 for r in other.values() if r == "zombie")
    answer = {"groups": listed[:limit], "more": max(0, len(listed) - limit), "total": len(roots),
              "zombies": zombies, "uid": os.getuid(), "at": time.time()}
    if req.get("memory"):  # a stop's look: what the stop would lose besides the processes
        answer["tmpfs"], answer["notes"] = [], []
        _memory_files(req, answer["tmpfs"], answer["notes"])
    return answer


def _alive(pid, start):
    info = _proc(pid)
    return info is not None and info["start"] == start and info["state"] not in ("Z", "X")


def _emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def stop(req):
    """SIGTERM the user's running work (not idle kernels unless asked), wait up to the grace for it to end,
    then SIGKILL what is left; processes born meanwhile are signalled too. Reports JSON lines."""
    grace = max(0.0, float(req.get("grace", 30)))
    with_kernels = bool(req.get("idle_kernels"))
    me = os.getuid()
    seen = {}  # pid -> {"start", "command", "root", "signal", "outcome"}
    refused = {}

    def targets():
        table = _table()
        work, _ = _at_risk(table)
        if not with_kernels:  # an idle kernel ends with the container (or through its Jupyter server)
            states = _kernel_states()
            work = {p: r for p, r in work.items() if r != "kernel" or p not in states or states[p].get("busy")}
        roots = _group(table, work)
        return {p: (table[p], roots[p]) for p in work}

    def send(pid, info, root, signum):
        entry = seen.get(pid)
        if entry is None:
            entry = seen[pid] = {"pid": pid, "start": info["start"], "command": " ".join(info["argv"])[:500],
                                 "root": root, "uid": info["uid"], "signal": None, "outcome": "running"}
        if info["uid"] != me:
            refused[pid] = entry
            entry["outcome"] = "not yours"
            return
        try:
            os.kill(pid, signum)
            entry["signal"] = signal.Signals(signum).name
        except ProcessLookupError:
            pass
        except PermissionError:
            refused[pid] = entry
            entry["outcome"] = "not permitted"

    first = targets()
    _emit({"event": "term", "count": len(first), "grace": grace})
    started = time.monotonic()
    current = first
    while True:
        for pid, (info, root) in current.items():
            if pid not in seen and pid not in refused:
                send(pid, info, root, signal.SIGTERM)
        for entry in seen.values():
            if entry["outcome"] == "running" and not _alive(entry["pid"], entry["start"]):
                entry["outcome"] = "ended"
        waiting = [e for e in seen.values() if e["outcome"] == "running"]
        if not waiting or time.monotonic() - started >= grace:
            break
        time.sleep(0.25)
        current = targets()
    left = [e for e in seen.values() if e["outcome"] == "running"]
    if left:
        _emit({"event": "kill", "count": len(left)})
    for _ in range(50):
        current = {p: v for p, v in targets().items() if p not in refused}
        if not current:
            break
        frozen = {}
        for _look in range(2):  # freeze first, twice: a process that forks cannot outrun us
            for pid, (info, root) in current.items():
                if pid not in frozen and pid not in refused:
                    send(pid, info, root, signal.SIGSTOP)
                    frozen[pid] = info["start"]
            current = {p: v for p, v in targets().items() if p not in refused}
        for pid, start in frozen.items():
            if (_proc(pid) or {}).get("start") == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                    seen[pid]["signal"] = "SIGKILL"
                except OSError:
                    pass
        time.sleep(0.1)
    for entry in seen.values():
        if entry["outcome"] == "running":
            entry["outcome"] = "killed" if not _alive(entry["pid"], entry["start"]) else "left"
    _emit({"event": "done", "processes": list(seen.values())[:20000], "count": len(seen),
           "seconds": round(time.monotonic() - started, 2)})


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
                    skipped.append(
                        {"path": path, "why": "grew past the room the rescue had checked", "size": info.size}
                    )
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
    elif req.get("mode") == "processes":
        sys.stdout.write(json.dumps(processes(req)))
        sys.stdout.flush()
    elif req.get("mode") == "stop":
        stop(req)
    else:
        sys.stdout.write(json.dumps(probe(req)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
