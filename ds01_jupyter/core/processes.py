"""Running work in a project's container: list it as findings, and stop it gracefully.

The guard protects files; this protects what is *running*: a training job started
in the background, a notebook cell that executes. Both are read from inside the
container by inside.py, run as the container's user (never root) in an isolated
interpreter: /proc gives each process's command, start time and CPU time, and the
kernel hook's state file says which cell a kernel executes. The container's init,
its main command, idle interactive shells, the Jupyter machinery of a hub server
and ds01's own helpers are not work and are left out; a zombie has already ended.

Stopping sends SIGTERM (as the user) to every process of the user's work, waits
up to ``stop_grace_seconds`` for them to end (a trainer that checkpoints on
SIGTERM saves then), then freezes and SIGKILLs what is left, including what was
born meanwhile. A process of another uid (root's; there should be none) cannot be
signalled by the user: it is reported and ends with the container.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from .engine import ContainerEngine, ContainerRecord
from .errors import DS01Error, EngineError, UnsavedWork
from .findings import KERNEL, PROCESS, Finding
from .users import User

log = logging.getLogger("ds01_jupyter.processes")

#: The program the guard runs inside containers (see inside.py).
INSIDE = resources.files("ds01_jupyter.core").joinpath("inside.py").read_text()


def run_inside(engine: ContainerEngine, record: ContainerRecord, user: User, request: dict, timeout: float = 120.0):
    """Run inside.py in the container as the container's user (never root), fed ``request`` on stdin."""
    return engine.exec_stream(
        record.id, ["python3", "-I", "-c", INSIDE], json.dumps(request).encode(), user=f"{user.uid}:{user.gid}",
        timeout=timeout,
    )


def human_duration(seconds: float) -> str:
    """'2 h 5 min', '3 min', '12 s': how long something has run."""
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _relative(notebook: str | None, project_path: Path | None) -> str | None:
    if not notebook:
        return None
    if project_path is not None:
        try:
            return str(Path(notebook).resolve().relative_to(project_path.resolve()))
        except (ValueError, OSError):
            pass
    prefix = "/workspace/"
    return notebook[len(prefix):] if notebook.startswith(prefix) else notebook


def process_findings(listing: dict | None, project_path: Path | None = None, gpu: dict | None = None,
                     now: float | None = None) -> tuple[list[Finding], list[str]]:
    """Findings of a listing from inside.py: ``process`` for running work, ``kernel`` for an idle kernel
    (shown quietly: its variables are lost). ``gpu`` maps in-container pids to GPU memory in bytes.

    The listing comes from the user's image, which may answer anything: one that cannot be read is
    one ``process`` finding saying so (at risk: what runs is unknown), never a crash of the audit.
    """
    if not listing:
        return [], []
    try:
        return _process_findings(listing, project_path, gpu, now)
    except (KeyError, TypeError, ValueError, AttributeError):
        return [Finding(path=UNREADABLE, kind=PROCESS, size=0, source="process",
                        detail="the container answered with a process list that could not be read; "
                               "what runs in it is unknown")], []


UNREADABLE = "(processes that could not be listed)"
#: The finding of a running container the guard could not look inside: what runs in it is unknown, so a stop or
#: a retire is refused unless told to stop its processes, never taken for "nothing runs".
UNLOOKED = "(processes the guard could not look at)"


def unlooked() -> Finding:
    return Finding(path=UNLOOKED, kind=PROCESS, size=0, source="process",
                   detail="the guard could not look inside the running container (no python3 in the image, a "
                          "container at its process or memory limit, or no answer in time): what runs, and what "
                          "it keeps in memory (/dev/shm), is unknown")


def only_unlooked(running: list[Finding]) -> bool:
    """Whether the only running work known of is that nothing could be looked at: no process to stop by name."""
    return all(f.path == UNLOOKED for f in running)


def _process_findings(listing: dict, project_path: Path | None, gpu: dict | None,
                      now: float | None) -> tuple[list[Finding], list[str]]:
    now = now or time.time()
    gpu = gpu or {}
    findings, notes = [], []
    uid = listing.get("uid")
    for group in listing.get("groups", []):
        pids = group.get("pids") or [group["pid"]]
        memory = sum(gpu.get(p, 0) for p in pids)
        runtime = human_duration(now - group["started"])
        cell = group.get("cell") or {}
        notebook = _relative(cell.get("notebook"), project_path) if cell else None
        extra = {
            "pid": group["pid"], "command": group["command"], "started": group["started"],
            "cpu_seconds": group["cpu_seconds"], "cpu_percent": group["cpu_percent"], "busy": group["busy"],
            "processes": group["processes"], "uid": group["uid"],
        }
        if memory:
            extra["gpu_memory"] = memory
        size = 0
        if group.get("kernel") and cell.get("busy"):
            since = cell.get("since") or group["started"]
            extra["cell_started"] = since
            detail = f"cell running for {human_duration(now - since)} in {notebook or 'a notebook'}"
        elif group.get("kernel") and not group["busy"] and not memory:
            where = f" of {notebook}" if notebook else ""
            findings.append(Finding(path=f"kernel{where} (pid {group['pid']})", kind=KERNEL, size=0, source="process",
                                    detail=f"idle kernel{where}, up {runtime}: its variables are lost",
                                    notebook=notebook, files=group["processes"], extra=extra))
            continue
        elif group.get("kernel"):
            detail = f"kernel{' of ' + notebook if notebook else ''} busy ({group['cpu_percent']:g}% CPU), up {runtime}"
        else:
            state = f"busy ({group['cpu_percent']:g}% CPU)" if group["busy"] else "idle"
            detail = f"running for {runtime}, {state}"
        if group["processes"] > 1:
            detail += f", with {group['processes'] - 1} child process(es)"
        if memory:
            detail += f", {memory / 2**20:.0f} MiB of GPU memory"
        if uid is not None and group["uid"] != uid:
            detail += f"; runs as uid {group['uid']}: ds01 cannot stop it for you, it ends with the container"
        findings.append(Finding(path=f"{_short(group['command'])} (pid {group['pid']})", kind=PROCESS, size=size,
                                source="process", detail=detail, notebook=notebook,
                                cell=cell.get("cell") if cell.get("busy") else None, files=group["processes"],
                                extra=extra))
    if listing.get("more"):
        notes.append(f"{listing['more']} more running process group(s) are not listed; they are stopped all the same.")
    if listing.get("zombies"):
        notes.append(f"{listing['zombies']} zombie process(es) (already ended, nothing to lose) are not listed.")
    return findings, notes


def _short(command: str, limit: int = 80) -> str:
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


def refusal(container: str, processes: list[Finding], verb: str, hint: str = "") -> UnsavedWork:
    """The error that refuses to end running work silently."""
    names = "; ".join(f"{f.path} ({f.detail})" for f in processes[:5])
    more = f" and {len(processes) - 5} more" if len(processes) > 5 else ""
    return UnsavedWork(
        f"{verb} {container} would kill {len(processes)} running process(es): {names}{more}.",
        hint=hint or "Let them finish, or add --stop-processes to stop them first (SIGTERM, then SIGKILL after "
        "the grace period), so what they save on SIGTERM is kept.",
        findings=[f.to_dict() for f in processes[:50]],
        processes=[f.to_dict() for f in processes[:200]],
    )


class Processes:
    """List and stop the user's running work in a container."""

    def __init__(self, engine: ContainerEngine, settings, inventory=None):
        self.engine = engine
        self.settings = settings
        self.inventory = inventory

    sample_seconds = 0.5

    def listing(self, user: User, record: ContainerRecord, sample: float | None = None,
                memory: bool = False) -> dict | None:
        """What runs in a running container (inside.py's ``processes`` answer), or None when it cannot look;
        with ``memory``, also the entries of its memory-backed folders (``tmpfs``), which a stop loses."""
        if not record.running:
            return None
        request = {"mode": "processes", "sample": self.sample_seconds if sample is None else sample,
                   "busy_percent": self.settings.idle_cpu_percent, "memory": memory}
        try:
            stream, exit_code = run_inside(self.engine, record, user, request)
            out = stream.read(64 * 2**20 + 1)
            if exit_code() not in (0, None) or len(out) > 64 * 2**20:
                return None
            return json.loads(out)
        except (DS01Error, ValueError, RecursionError):
            return None

    def findings(self, user: User, record: ContainerRecord, project_path: Path | None = None,
                 listing: dict | None = None) -> tuple[list[Finding], list[str]]:
        listing = listing if listing is not None else self.listing(user, record)
        if listing is None and record.running:
            return [unlooked()], []
        gpu = self.gpu_memory(record) if listing and listing.get("groups") else {}
        return process_findings(listing, project_path, gpu)

    def gpu_memory(self, record: ContainerRecord) -> dict[int, int]:
        """GPU memory per in-container pid, where NVML sees the container's processes."""
        if self.inventory is None:
            return {}
        try:
            devices = self.inventory.devices()
        except DS01Error:
            return {}
        memory: dict[int, int] = {}
        for device in devices:
            for process in device.processes:
                inner = _inner_pid(process.pid, record.id)
                if inner is not None:
                    memory[inner] = memory.get(inner, 0) + int(getattr(process, "used_memory", 0) or 0)
        return memory

    def stop(self, user: User, record: ContainerRecord, grace: float | None = None,
             progress: Callable[[str], None] = lambda s: None) -> dict:
        """SIGTERM the user's running work, wait the grace, SIGKILL the rest; say which ended by themselves."""
        grace = self.settings.stop_grace_seconds if grace is None else grace
        request = {"mode": "stop", "grace": grace}
        stream, exit_code = run_inside(self.engine, record, user, request, timeout=grace + 120)
        done = None
        reader = io.BufferedReader(stream, 1 << 20) if isinstance(stream, io.RawIOBase) else stream
        try:
            for raw in iter(lambda: reader.readline(64 * 2**20), b""):
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if event.get("event") == "term" and event.get("count"):
                    progress(f"Sent SIGTERM to {event['count']} process(es); waiting up to "
                             f"{human_duration(event['grace'])} for them to end")
                elif event.get("event") == "kill":
                    progress(f"{event['count']} process(es) still running after the grace: sending SIGKILL")
                elif event.get("event") == "done":
                    done = event
        except EngineError:
            done = None
        if done is None or exit_code() not in (0, None):
            raise EngineError(f"The running processes of {record.name} could not be stopped from inside.",
                              hint="Nothing was removed; try again, or stop them yourself (container-run).")
        return summarize(done)


def summarize(done: dict) -> dict:
    """The stop report: per topmost process, how it ended (by itself after SIGTERM, killed, or left)."""
    entries = done.get("processes", [])
    roots: dict[int, dict] = {}
    for entry in entries:
        root = roots.setdefault(entry["root"], {"pid": entry["root"], "command": "", "processes": 0, "ended": 0,
                                                "killed": 0, "left": 0})
        if entry["pid"] == entry["root"]:
            root["command"] = entry["command"]
        root["processes"] += 1
        outcome = entry["outcome"]
        root["ended" if outcome == "ended" else "killed" if outcome == "killed" else "left"] += 1
    for root in roots.values():
        root["command"] = root["command"] or next(e["command"] for e in entries if e["root"] == root["pid"])
        root["outcome"] = "left" if root["left"] else "killed" if root["killed"] else "ended"
    return {
        "processes": sorted(roots.values(), key=lambda r: r["pid"])[:500],
        "count": done.get("count", len(entries)),
        "ended": sum(1 for e in entries if e["outcome"] == "ended"),
        "killed": sum(1 for e in entries if e["outcome"] == "killed"),
        "left": sum(1 for e in entries if e["outcome"] not in ("ended", "killed")),
        "seconds": done.get("seconds"),
    }


def report_lines(report: dict | None) -> list[str]:
    """What a stop did, for people: which processes ended by themselves and which had to be killed."""
    if not report:
        return []
    lines = []
    if report.get("count"):
        lines.append(f"Stopped {report['count']} process(es): {report['ended']} ended by themselves after SIGTERM, "
                     f"{report['killed']} killed after the grace period"
                     + (f", {report['left']} left to the engine" if report["left"] else "") + ".")
        for root in report["processes"][:20]:
            how = {"ended": "ended by itself", "killed": "killed (SIGKILL)", "left": "could not be stopped by you"}
            extra = f" ({root['processes']} processes)" if root["processes"] > 1 else ""
            lines.append(f"  {_short(root['command'])} (pid {root['pid']}){extra}: {how[root['outcome']]}")
    lines += memory_lines(report)
    for item in (report.get("memory_rescued") or {}).get("skipped", [])[:20]:
        lines.append(f"  not copied: {item.get('path')}: {item.get('why')}")
    return lines


def memory_lines(report: dict | None) -> list[str]:
    """What a stop copied out of the container's memory-backed folders, and what it lost, for people."""
    lines = []
    saved, lost = (report or {}).get("memory_rescued"), (report or {}).get("memory_lost")
    if saved and saved.get("files"):
        lines.append(f"Copied {saved['files']} file(s) kept in memory (/dev/shm and other memory-backed folders, "
                     f"lost when a container stops) into {saved['folder']}.")
    if lost:
        lines.append(f"Lost {len(lost)} file(s) kept in memory ({', '.join(lost[:3])}"
                     f"{' and more' if len(lost) > 3 else ''}): they could not be copied "
                     f"({(report or {}).get('memory_lost_why')}).")
    return lines


def _inner_pid(host_pid: int, container_id: str, proc: Path = Path("/proc")) -> int | None:
    """The pid a host process has inside its container (the last NSpid), if it runs in ``container_id``."""
    from .gpus import container_id_of_pid

    if container_id_of_pid(host_pid, proc) != container_id:
        return None
    try:
        for line in (proc / str(host_pid) / "status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None
