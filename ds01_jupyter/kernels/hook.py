"""Kernel launcher run inside project containers: warns at once about writes outside /workspace.

Copied into the container and run instead of ``ipykernel_launcher``; it needs
only the standard library and ipykernel. A Python audit hook sees every file
opened for writing by Python code; a write outside /workspace is reported once
per path, in the cell's output and in a log the persistence guard reads (with
the notebook and cell that made it). Writes by native code or shell commands
do not pass through Python's ``open``: the guard's scan of the container finds those.

It also keeps a small state file, ``/tmp/.ds01/kernel-<id>.state.json``: whether
a cell is executing, which one, since when, and in which notebook. The guard's
probe reads it (as the user) to name a running cell in the audit, and the reaper
counts a cell waiting on I/O as work; nothing else is shared with the host.
"""

import json
import os
import re
import signal
import sys
import threading
import time

LOG = "/tmp/.ds01/writes.jsonl"
#: Set for a kernel that ends with its client's connection (see end_with_client): the seconds it has after SIGTERM
#: to save and end before SIGKILL.
TIED = "DS01_KERNEL_TIED"
IGNORED = ("/workspace/", "/dev/", "/proc/", "/sys/", "/tmp/.ds01/")
RUNTIME = ("/.ipython/", "/.local/share/jupyter/", "/.cache/", "/__pycache__/", "/.jupyter/", "/.config/matplotlib/")
# tempfile's own names (mkstemp, NamedTemporaryFile) when opened through the high-level API.
TEMPFILE = re.compile(r"^tmp[a-z0-9_]{6,}(\.[a-z0-9]+)?$")
# tempfile creates its files (and the probe gettempdir() writes to test a folder) with these flags.
TEMPFILE_FLAGS = os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
O_TMPFILE = getattr(os, "O_TMPFILE", 0)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

_seen = set()
_local = threading.local()


def _is_write(mode, flags):
    if isinstance(mode, str) and mode:
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & WRITE_FLAGS)


def _cell():
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell.execution_count if shell is not None else None
    except Exception:  # noqa: BLE001 - never let the hook break user code
        return None


def _report(path):
    record = {"path": path, "notebook": os.environ.get("JPY_SESSION_NAME"), "cell": _cell(), "time": time.time()}
    try:
        with open(LOG, "a") as log:
            log.write(json.dumps(record) + "\n")
    except OSError:
        pass
    sys.stderr.write(
        f"ds01 warning: {path} is outside /workspace and will be lost when this container is retired. "
        "Save it under /workspace (a relative path in your project) to keep it.\n"
    )


def audit_hook(event, args):
    if event != "open" or getattr(_local, "busy", False):
        return
    try:
        path, mode, flags = args
    except (TypeError, ValueError):
        return
    if isinstance(path, int) or not _is_write(mode, flags):
        return
    if mode is None and isinstance(flags, int) and flags & TEMPFILE_FLAGS == TEMPFILE_FLAGS:
        return  # made by tempfile: temporary by intent, and its random name would only be noise
    if isinstance(flags, int) and O_TMPFILE and flags & O_TMPFILE == O_TMPFILE:
        return  # an unnamed file that vanishes when closed
    _local.busy = True  # our own open() below must not re-enter
    try:
        full = os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(path)))
        if (
            full == "/workspace"
            or full.startswith(IGNORED)
            or any(part in full + "/" for part in RUNTIME)
            or TEMPFILE.match(os.path.basename(full))
            or full in _seen
            or os.path.isdir(full)  # tempfile's unnamed files (O_TMPFILE) are opened on their folder
        ):
            return
        _seen.add(full)
        _report(full)
    except Exception:  # noqa: BLE001 - never let the hook break user code
        pass
    finally:
        _local.busy = False


STATE = "/tmp/.ds01/kernel-{id}.state.json"


def _start_ticks():
    """This process's start time in clock ticks (/proc/self/stat), so a reader can tell a reused pid."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            raw = fh.read()
        return int(raw[raw.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def write_state(busy, cell=None, path=None):
    """Record whether a cell runs (atomically: a reader sees the old state or the new one, never half)."""
    path = path or STATE.format(id=os.environ.get("DS01_KERNEL_ID") or os.getpid())
    state = {"pid": os.getpid(), "start": _start_ticks(), "notebook": os.environ.get("JPY_SESSION_NAME"),
             "busy": busy, "cell": cell, "since": time.time()}
    _local.busy = True  # our own writes are not the user's
    try:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            fh.write(json.dumps(state))
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        _local.busy = False


def track_cells(shell, path=None):
    """Keep the state file in step with the shell's cells."""

    def before(info=None):
        write_state(True, (shell.execution_count or 0), path)

    def after(result=None):
        write_state(False, None, path)

    shell.events.register("pre_run_cell", before)
    shell.events.register("post_run_cell", after)
    write_state(False, None, path)


def end_with_client():
    """A kernel started for a one-shot client (nbconvert, a KernelManager script) ends when that client does,
    as a host kernel would: its stdin is the client's connection, closed when the client ends, even when killed.
    It gets SIGTERM then, so a trainer's handler still saves, and SIGKILL after the grace."""
    try:
        grace = min(float(os.environ.get(TIED) or 0), 3600.0)
    except ValueError:
        return
    if not grace > 0:
        return
    connection = os.dup(0)

    def watch():
        try:
            while os.read(connection, 1 << 16):
                pass
        except OSError:
            pass
        kernel = os.environ.get("DS01_KERNEL_ID")
        for suffix in (".json", ".pid", ".state.json") if kernel else ():  # what the client would have removed
            try:
                os.unlink(f"/tmp/.ds01/kernel-{kernel}{suffix}")
            except OSError:
                pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)  # a handler that saves and goes on (a trainer's) must not keep it running alone
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="ds01-client-watch", daemon=True).start()


def main():
    end_with_client()
    sys.addaudithook(audit_hook)
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize()
    try:
        track_cells(app.shell)
    except Exception:  # noqa: BLE001 - the kernel must start even if its state cannot be kept
        pass
    app.start()


if __name__ == "__main__":
    main()
