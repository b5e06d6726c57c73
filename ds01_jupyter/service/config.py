"""The admin's configuration of ds01d: one YAML (or JSON) file, nothing from callers.

The file holds the core's settings (any :class:`~ds01_jupyter.core.settings.Settings`
field, e.g. ``limits_file``, ``gpu_inventory``, ``base_image``) and the
service's own (:class:`ServiceConfig`) side by side. A caller's environment
and request never reach it: a user cannot lift their limits by talking to ds01d.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, fields
from pathlib import Path

from ..core.errors import ConfigError
from ..core.settings import ADMIN_DIR, Settings
from .address import DEFAULT_SOCKET

#: The admin's file read by ``ds01d`` with no arguments (absent: every default).
DEFAULT_CONFIG = f"{ADMIN_DIR}/ds01d.yaml"


@dataclass(frozen=True)
class ServiceConfig:
    """How ds01d serves: where, how many at once, how long it waits. Each limit keeps one slow or
    greedy caller from holding up the others."""

    #: The unix socket served to everyone (mode 0666); its folder is made root's, 0755.
    socket: str = DEFAULT_SOCKET
    #: Folder of the audit log (audit.jsonl: who did what, when, with what result), root's, 0750.
    log_dir: str = "/var/log/ds01"
    #: Open connections at once, all callers together; more are refused at once with a clear error.
    max_connections: int = 256
    #: Open connections of one uid at once (requests, followed logs, shells).
    max_connections_per_user: int = 32
    #: Core operations running at once, all callers together; more wait up to queue_timeout.
    max_operations: int = 16
    #: Core operations of one uid running at once; more are refused (the user is already busy).
    max_operations_per_user: int = 4
    #: Seconds a caller has to send its whole request line once connected (a silent client is dropped).
    request_timeout: float = 10.0
    #: Seconds one reply line may take to reach a caller that does not read; then the caller counts as gone
    #: (the operation itself still finishes: nothing is left half done).
    send_timeout: float = 10.0
    #: Seconds an operation waits for a free slot (max_operations) before it is refused as busy.
    queue_timeout: float = 120.0
    #: Seconds a stopping ds01d (SIGTERM) lets running operations finish before it exits.
    shutdown_grace: float = 60.0


def admins_only(path: str, what: str) -> None:
    """Refuse a file of ds01d's settings that anyone but ds01d's user (root) could change, or whose folders they
    could: its writer would lift their limits, or name the engine and the folders root works in for everyone."""
    me = os.geteuid()
    chains = [Path(os.path.abspath(path)), Path(os.path.realpath(path))]  # the folders named, and those reached
    for item in dict.fromkeys(p for target in chains for p in (target, *target.parents)):
        try:
            st = os.stat(item)
        except OSError as err:
            raise ConfigError(
                f"Cannot look at {item}, on the way to the ds01d {what} {path}: {err.strerror}."
            ) from None
        # /tmp: no one replaces our entry
        sticky = item not in chains and st.st_mode & stat.S_ISVTX and st.st_uid in (0, me)
        if st.st_uid not in (0, me) or (st.st_mode & 0o022 and not sticky):
            raise ConfigError(
                f"The ds01d {what} {path} could be changed by someone else than root: {item} belongs to uid "
                f"{st.st_uid} with mode {stat.filemode(st.st_mode)}.",
                hint=f"Make it root's and writable by root alone: `chown root: {item} && chmod go-w {item}`.")


def load(path: str | None = None, **overrides) -> tuple[Settings, ServiceConfig]:
    """The core settings and the service's, from the admin's file (``path``, else DEFAULT_CONFIG when it
    exists). ``overrides`` (the command line's, e.g. ``socket``) win."""
    values: dict = {}
    source = path or (DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None)
    if source:
        import yaml  # only the admin's file needs it, never a client (issue 19: the CLI's start-up)

        admins_only(source, "configuration")
        try:
            values = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot read the ds01d configuration {source}: {err}.") from None
        if not isinstance(values, dict):
            raise ConfigError(f"The ds01d configuration {source} must be a mapping of setting: value.")
    values.update({k: v for k, v in overrides.items() if v is not None})
    core_names = {f.name for f in fields(Settings)}
    service_names = {f.name for f in fields(ServiceConfig)}
    unknown = sorted(set(values) - core_names - service_names)
    if unknown:
        raise ConfigError(f"Unknown ds01d setting(s) {', '.join(unknown)} in {source or 'the command line'}.",
                          hint=f"Known: {', '.join(sorted(core_names | service_names))}.")
    core = {k: v for k, v in values.items() if k in core_names}
    core.setdefault("interface", "ds01d")
    for name in ("limits_file", "gpu_inventory"):  # read again by root at every request
        if isinstance(core.get(name), str) and os.path.isabs(core[name]) and os.path.exists(core[name]):
            admins_only(core[name], name)
    try:
        return Settings(**core), ServiceConfig(**{k: v for k, v in values.items() if k in service_names})
    except TypeError as err:
        raise ConfigError(f"Bad ds01d configuration in {source}: {err}.") from None
