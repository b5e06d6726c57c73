"""Settings of the core: where things live and which backends to use.

Front ends fill these in: the CLI from ``DS01_*`` environment variables, the
server extension and the spawner from traitlets. Paths may contain ``{home}``
and ``{user}``, expanded per user, because the spawner acts for many users.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_LIMITS_FILES = (
    "/etc/ds01-jupyter/resource-limits.yaml",
    "/opt/ds01-infra/config/resource-limits.yaml",
)


@dataclass(frozen=True)
class Settings:
    """Where projects, Dockerfiles and state live, and how to reach the engine."""

    workspace_root: str = "{home}/workspace"
    dockerfiles_root: str = "{home}/dockerfiles"
    state_dir: str = "{home}/.local/state/ds01-jupyter"
    #: The admin's limits file; None means the first of DEFAULT_LIMITS_FILES that exists.
    limits_file: str | None = None
    #: Where the user's readable copy of their effective limits is written.
    user_limits_copy: str = "{home}/.ds01-limits"
    base_image: str = "ds01/base:latest"
    image_template: str = "ds01-{user}/{project}:latest"
    #: Template of the Dockerfile written for a project that has none ({project}, {base_image}); None: built-in.
    default_dockerfile: str | None = None
    #: Docker's address; None means DOCKER_HOST or the local socket.
    docker_url: str | None = None
    #: "nvml" for the real GPUs, or the path of a YAML/JSON list of GPUs.
    gpu_inventory: str = "nvml"
    #: How a container gets its GPUs: "device_request" (Docker's --gpus, needs the
    #: NVIDIA Container Toolkit) or "env" (NVIDIA_VISIBLE_DEVICES only, for hosts whose
    #: default runtime is nvidia, and for allocation tests on hosts without GPUs).
    gpu_request: str = "device_request"
    #: Folder of the lock files that make GPU allocation atomic across processes and users.
    lock_dir: str = field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "ds01-jupyter"))
    #: Recorded in the ds01.interface label of containers this front end creates.
    interface: str = "cli"
    #: Network used while building images (pip may need it); "none" isolates builds.
    build_network: str | None = None
    #: CPU use (percent of one core) under which a container counts as idle.
    idle_cpu_percent: float = 5.0
    #: Warn when a container has used its GPU this many minutes without a new checkpoint.
    checkpoint_warning_minutes: float = 30.0
    #: Seconds docker stop waits before killing.
    stop_timeout: int = 10

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Read ``DS01_<FIELD>`` variables (e.g. DS01_WORKSPACE_ROOT)."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f"DS01_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.type in ("float",):
                values[f.name] = float(raw)
            elif f.type in ("int",):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_config(cls, source, **overrides) -> "Settings":
        """The settings a configurable object (the Jupyter app, the hub's spawner) holds under the same
        names; an empty string means "not set" (traitlets' Unicode cannot be None)."""
        values = {f.name: getattr(source, f.name) for f in fields(cls) if hasattr(source, f.name)}
        values = {k: (None if v == "" else v) for k, v in values.items()}
        values.update(overrides)
        return cls(**{k: v for k, v in values.items() if v is not None})

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def expand(self, template: str, user) -> Path:
        """Expand ``{home}``/``{user}``/``~`` in a path template for ``user``."""
        text = template.format(home=str(user.home), user=user.name)
        if text.startswith("~"):
            text = str(user.home) + text[1:]
        return Path(text)

    def limits_path(self) -> Path | None:
        if self.limits_file:
            return Path(self.limits_file)
        for candidate in DEFAULT_LIMITS_FILES:
            if os.path.exists(candidate):
                return Path(candidate)
        return None
