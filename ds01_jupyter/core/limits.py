"""Per-user limits in the format DS01 servers already use.

The admin's ``resource-limits.yaml`` is the authority: ``defaults``, then the
user's ``groups`` entry (by member list, Unix group, or ``default_group``),
then ``user_overrides``. ``~/.ds01-limits`` is only a readable copy for the
user; it is written, never read, so editing it raises nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError
from .identity import acting_as
from .settings import Settings
from .users import User

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.I)
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 3600}


def parse_size(value) -> int | None:
    """``"32g"`` -> bytes; None stays None (no limit)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(f"Cannot read size {value!r}; use e.g. 512m, 32g or 1T.")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(value) -> float | None:
    """``"0.5h"`` -> seconds; a bare number means hours, as in DS01's files."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) * 3600
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"Cannot read duration {value!r}; use e.g. 30m, 2h or 7d.")
    return float(match.group(1)) * _TIME_UNITS[match.group(2).lower()]


def format_size(n: float | None) -> str:
    if n is None:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unlimited"
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Limits:
    """Effective limits of one user. None means unlimited."""

    max_mig_instances: int | None = 1
    max_mig_per_container: int | None = 1
    allow_full_gpu: bool = True
    max_cpus: float | None = 8
    memory: int | None = 32 * 2**30
    memory_swap: int | None = 32 * 2**30
    shm_size: int | None = 8 * 2**30
    pids_limit: int | None = 4096
    max_containers_per_user: int | None = 3
    max_runtime: float | None = 24 * 3600
    idle_timeout: float | None = 2 * 3600
    #: Idle timeout for containers without a GPU; None means idle_timeout.
    idle_timeout_cpu: float | None = None
    gpu_hold_after_stop: float | None = 0.25 * 3600
    container_hold_after_stop: float | None = 0.5 * 3600
    storage_workspace: int | None = None
    #: Slots a full GPU counts for against max_mig_instances (gpu_allocation.mig_instances_per_gpu).
    mig_instances_per_gpu: int = 1
    #: Where these limits came from, for messages.
    source: str = "built-in defaults"
    #: What was adjusted to the host or exceeds it (built-in defaults are capped at what the host has).
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    def capped(self, memory: int | None = None, max_cpus: float | None = None) -> Limits:
        """These limits lowered to a front end's own ceilings (the hub's mem_limit, cpu_limit), never raised.

        Lowering memory keeps the swap the admin allowed on top of it (memory_swap counts memory plus swap).
        """
        changes: dict = {}
        if memory is not None and (self.memory is None or memory < self.memory):
            changes["memory"] = memory
            if self.memory_swap is not None:
                changes["memory_swap"] = memory + max(self.memory_swap - (self.memory or self.memory_swap), 0)
        if max_cpus is not None and (self.max_cpus is None or max_cpus < self.max_cpus):
            changes["max_cpus"] = max_cpus
        if not changes:
            return self
        return replace(self, **changes, notes=(*self.notes, "lowered by the front end's ceilings: "
                                               + ", ".join(sorted(k for k in changes if k != "memory_swap"))))

    def describe(self) -> dict[str, str]:
        """Limits as people read them (sizes and durations formatted)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "notes":
                continue
            if f.name in _SIZE_FIELDS:
                out[f.name] = format_size(value)
            elif f.name in _TIME_FIELDS:
                out[f.name] = format_duration(value)
            elif value is None:
                out[f.name] = "unlimited"
            else:
                out[f.name] = str(value)
        return out


_SIZE_FIELDS = {"memory", "memory_swap", "shm_size", "storage_workspace"}
_TIME_FIELDS = {
    "max_runtime",
    "idle_timeout",
    "idle_timeout_cpu",
    "gpu_hold_after_stop",
    "container_hold_after_stop",
}
_INT_FIELDS = {"max_mig_instances", "max_mig_per_container", "pids_limit", "max_containers_per_user"}
#: Older DS01 files call max_mig_per_container max_gpus_per_container.
_ALIASES = {"max_gpus_per_container": "max_mig_per_container"}
_KNOWN = {f.name for f in fields(Limits)} - {"source", "mig_instances_per_gpu", "notes"}
#: Limits that cannot exceed the host: a built-in default above it is capped, an admin's value is noted.
_HOST_BOUND = ("memory", "memory_swap", "shm_size", "max_cpus")


def host_resources() -> dict[str, float]:
    """The host's memory, memory plus swap (bytes) and CPUs, as the caps of the default limits."""
    info = {}
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        info = {}
    out: dict[str, float] = {"max_cpus": float(os.cpu_count() or 1)}
    if "MemTotal" in info:
        out["memory"] = info["MemTotal"]
        out["shm_size"] = info["MemTotal"]
        out["memory_swap"] = info["MemTotal"] + info.get("SwapTotal", 0)
    return out


def fit_to_host(values: dict, host: dict[str, float] | None = None) -> list[str]:
    """Cap the built-in defaults of ``values`` (the keys it lacks) at the host; note an admin's value above it.

    Changes ``values`` in place and returns the notes check-limits shows.
    """
    host = host_resources() if host is None else host
    defaults = Limits()
    notes = []
    for key in _HOST_BOUND:
        have = host.get(key)
        if have is None:
            continue
        show = (lambda v: f"{v:g} CPUs") if key == "max_cpus" else format_size
        if key in values:
            if values[key] is not None and values[key] > have:
                notes.append(f"{key} {show(values[key])} is more than this host has ({show(have)}); "
                             "the host is the real limit.")
            continue
        default = getattr(defaults, key)
        if default is not None and default > have:
            values[key] = float(have) if key == "max_cpus" else int(have)
            notes.append(f"{key}: the default {show(default)} is capped at what this host has ({show(have)}).")
    return notes


def _normalise(section: dict | None, where: str) -> dict:
    if section is not None and not isinstance(section, dict):
        raise ConfigError(f"Bad value for {where}: expected a mapping of limits, got {section!r}.")
    out = {}
    for key, value in (section or {}).items():
        key = _ALIASES.get(key, key)
        if key not in _KNOWN:
            continue  # DS01 files carry more (io, priority, reservations) than we enforce
        try:
            if key in _SIZE_FIELDS:
                value = parse_size(value)
            elif key in _TIME_FIELDS:
                value = parse_duration(value)
            elif key in _INT_FIELDS and value is not None:
                value = int(value)
            elif key == "max_cpus" and value is not None:
                value = float(value)
            elif key == "allow_full_gpu":
                value = bool(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"Bad value for {key} in {where}: {value!r} ({err}).") from None
        out[key] = value
    return out


class LimitsSource:
    """Reads the admin's file (re-read when it changes) and resolves a user's limits."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._cache: tuple[float, dict] | None = None

    def _document(self) -> tuple[dict, str]:
        path = self.settings.limits_path()
        if path is None:
            return {}, "built-in defaults"
        import yaml  # here, not at the top: only reading the file needs it (issue 19: the CLI's start-up)

        try:
            mtime = path.stat().st_mtime
            if self._cache and self._cache[0] == mtime:
                return self._cache[1], str(path)
            doc = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(
                f"Limits file {path} does not exist.",
                hint="Fix DS01_LIMITS_FILE / limits_file, or remove the setting to use defaults.",
            ) from None
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot read limits file {path}: {err}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"Limits file {path} must be a YAML mapping.")
        self._cache = (mtime, doc)
        return doc, str(path)

    def check(self) -> str:
        """Read every section of the file now, so a mistake shows when a front end starts, not at a
        user's first deploy; return where the limits come from."""
        doc, source = self._document()
        _normalise(doc.get("defaults"), f"{source}: defaults")
        for name, group in (doc.get("groups") or {}).items():
            _normalise(group, f"{source}: groups.{name}")
        for name, override in (doc.get("user_overrides") or {}).items():
            _normalise(override, f"{source}: user_overrides.{name}")
        return source

    def for_user(self, user: User) -> Limits:
        doc, source = self._document()
        values = _normalise(doc.get("defaults"), f"{source}: defaults")
        groups = doc.get("groups") or {}
        unix_groups = user.groups()
        chosen = None
        for gname, group in groups.items():
            members = (group or {}).get("members") or []
            if user.name in members or gname in unix_groups:
                chosen = gname
                break
        if chosen is None and doc.get("default_group") in groups:
            chosen = doc["default_group"]
        if chosen is not None:
            values.update(_normalise(groups[chosen], f"{source}: groups.{chosen}"))
            source = f"{source} (group {chosen})"
        override = (doc.get("user_overrides") or {}).get(user.name)
        if override:
            values.update(_normalise(override, f"{source}: user_overrides.{user.name}"))
            source = f"{source} + override for {user.name}"
        per_gpu = (doc.get("gpu_allocation") or {}).get("mig_instances_per_gpu")
        if per_gpu is not None:
            values["mig_instances_per_gpu"] = max(1, int(per_gpu))
        values.pop("members", None)
        notes = fit_to_host(values)
        return Limits(**values, source=source, notes=tuple(notes))

    def write_user_copy(self, user: User, limits: Limits) -> Path | None:
        """Write ``~/.ds01-limits`` for the user to read; best effort."""
        import yaml

        path = self.settings.expand(self.settings.user_limits_copy, user)
        text = (
            "# Your effective DS01 limits (a copy for reading; editing it changes nothing).\n"
            f"# Source: {limits.source}\n"
            + "".join(f"# Note: {note}\n" for note in limits.notes)
            + yaml.safe_dump({k: v for k, v in limits.describe().items() if k != "source"}, sort_keys=False)
        )
        try:
            if not _acting_for_other(user):
                path.parent.mkdir(parents=True, exist_ok=True)
            write_copy(path, text, user)
        except OSError:
            return None
        return path


def _acting_for_other(user: User) -> bool:
    return os.geteuid() == 0 and user.uid != 0


def write_copy(path: Path, text: str, user: User) -> None:
    """Replace ``path`` (in a folder the user controls) with ``text``, as theirs, following no link.

    Root writing into a user's home must not be sent elsewhere by a link the
    user planted: all of it runs with the user's identity (a link to a folder
    she may not write leads nowhere), the old content is read and the new file
    made with O_NOFOLLOW (O_EXCL for the temporary), relative to the folder's
    descriptor, and the rename replaces a link itself.
    """
    import secrets  # here, never as the user: she may not read this Python's own folders (a lazy import fails)

    with acting_as(user):
        _write_copy(path, text, secrets.token_hex(4))


def _write_copy(path: Path, text: str, token: str) -> None:
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            old = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        except OSError:
            old = None
        if old is not None:
            with os.fdopen(old, "rb") as handle:
                same = stat.S_ISREG(os.fstat(handle.fileno()).st_mode) and handle.read(1 << 16) == text.encode()
            if same:
                return
        tmp = f".{path.name}.{os.getpid()}.{token}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise
    finally:
        os.close(folder)
