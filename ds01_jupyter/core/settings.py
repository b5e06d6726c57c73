"""Settings of the core: where things live and which backends to use.

Front ends fill these in: the CLI from ``DS01_*`` environment variables, the
server extension and the spawner from traitlets. Paths may contain ``{home}``
and ``{user}``, expanded per user, because the spawner acts for many users.

Some settings are the admin's alone (:data:`ADMIN_SETTINGS`): from a user's
environment they would lift that user's limits (``limits_file``,
``gpu_inventory``, ``idle_cpu_percent``), let them dodge the host-wide
allocation lock (``lock_dir``) or name images as another user's
(``image_template``). ``DS01_*`` variables for them are honoured only where
the process may act as the admin anyway: run by root, or by the owner of
:data:`ADMIN_DIR` (a single-user machine whose user is its admin, or a test
host). Anywhere else they are refused with a clear error, not silently
ignored. The other settings only change where this user's own things live or
how their own tools behave; a workspace root must still belong to the user
(see ``Projects``).
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from .errors import Forbidden

#: The admin's configuration folder; its owner (and root) may set admin settings through DS01_* variables.
ADMIN_DIR = "/etc/ds01-jupyter"
#: Settings a plain user may not set through DS01_* variables (see the module's docstring).
ADMIN_SETTINGS = frozenset({"limits_file", "gpu_inventory", "lock_dir", "image_template", "idle_cpu_percent",
                            "swarm_manager", "swarm_gpu_kind", "swarm_registry", "kept_networks"})
#: The host-wide folder of the GPU allocation lock: root's on every Debian host (1777, sticky), so no
#: user can own it, and the same for every user whatever their TMPDIR.
DEFAULT_LOCK_DIR = "/run/lock"

FRAMEWORK_IMAGES_HELP = (
    "Framework images a deploy can run on instead of the project's own image, as name -> image (e.g. "
    "{'pytorch': 'ds01/pytorch:latest'}); `base` is always there and is base_image (built locally when missing; "
    "on the hub singleuser_image). `container-deploy NAME --framework pytorch` (REST: \"framework\"; the hub's form) "
    "uses it when the project's "
    "image is missing, and a deploy whose image fails to build falls back to `base`: either says so, and the "
    "container's status says \"running on the pytorch fallback image\". The admin pulls or builds each image; for "
    "the hub they must hold jupyterhub-singleuser (LABEL ds01.singleuser=true)."
)
MOUNT_SSH_HELP = (
    "Mount the user's ~/.ssh read-only at /home/<user>/.ssh in their containers, so `git push` over SSH works "
    "inside. Off by default: it puts the user's private keys within reach of everything that runs in the "
    "container (packages installed from requirements.txt, notebooks from elsewhere). Only a real folder owned by "
    "the user is used (never a link). A start made by root for a user (ds01d, a hub run as root) mounts a copy of "
    "the files in it the user may read, made again before each start in a folder only root may change "
    "(/run/ds01/ssh/<uid>): changes show at the next start. The mounted folder is checked again after each start. "
    "The image must give the user's uid that home (the default Dockerfile's account does)."
)

def _setting(default, help: str):
    """A setting with the help text the front ends show (see settings_traits)."""
    return field(default=default, metadata={"help": help})


DEFAULT_LIMITS_FILES = (
    "/etc/ds01-jupyter/resource-limits.yaml",
    "/opt/ds01-infra/config/resource-limits.yaml",
)


@dataclass(frozen=True)
class Settings:
    """Where projects, Dockerfiles and state live, and how to reach the engine."""

    # Each setting's help is the one text every front end shows (the traitlets of the server extension and the
    # hub spawner are generated from these fields: ds01_jupyter/settings_traits.py).
    workspace_root: str = _setting(
        "{home}/workspace",
        "Folder holding the user's projects, one folder each; {home} and {user} are expanded. It must belong to the "
        "user. Each project is mounted at /workspace in its container.",
    )
    dockerfiles_root: str = _setting(
        "{home}/dockerfiles",
        "Folder of the project Dockerfiles (<project>.Dockerfile); {home} and {user} are expanded.",
    )
    state_dir: str = _setting(
        "{home}/.local/state/ds01-jupyter",
        "Where ds01 remembers per user what must survive restarts (idle records, audits, rescues, sizes); {home} and "
        "{user} are expanded.",
    )
    limits_file: str | None = _setting(
        None,
        "The admin's resource-limits.yaml in DS01's format (memory, CPUs, GPUs, containers, idle_timeout, "
        "max_runtime per user or group). Empty: /etc/ds01-jupyter/resource-limits.yaml, else "
        "/opt/ds01-infra/config/resource-limits.yaml, else built-in defaults. An admin setting.",
    )
    user_limits_copy: str = _setting(
        "{home}/.ds01-limits", "Where the user's readable copy of their effective limits is written."
    )
    base_image: str = _setting(
        "ds01/base:latest",
        "The DS01 base image: FROM of a project's default Dockerfile, built locally with mmdebstrap when missing. "
        "On the hub, project images start FROM singleuser_image, which is built FROM this one.",
    )
    image_template: str = _setting(
        "ds01-{user}/{project}:latest",
        "Name of a project's image; {user} and {project} are expanded. An admin setting.",
    )
    default_dockerfile: str | None = _setting(
        None,
        "Template of the Dockerfile written for a project that has none ({project}, {base_image}); empty: the "
        "built-in one (ipykernel, requirements.txt, the user's account).",
    )
    docker_url: str | None = _setting(
        None, "Docker engine address (e.g. unix:///var/run/docker.sock). Empty: DOCKER_HOST or the local socket."
    )
    engine: str = _setting(
        "docker",
        "The container engine ds01 drives, by name (core/engines.py lists them): 'docker', the Docker engine at "
        "docker_url; 'swarm', a cluster of Docker hosts under Docker Swarm (swarm_manager; docs/cluster.md). "
        "engine_class, where a front end has it, overrides this with a ContainerEngine subclass.",
    )
    swarm_manager: str | None = _setting(
        None,
        "With engine 'swarm': the Docker endpoint of a Swarm manager (unix:///run/docker.sock, or tcp://host:2376 "
        "with TLS from DOCKER_CERT_PATH). Each node names its own engine's endpoint in its node label ds01.engine "
        "and declares its GPUs as generic resources (docs/cluster.md). Root on every node: only ds01d and the hub "
        "hold it. An admin setting.",
    )
    swarm_gpu_kind: str = _setting(
        "NVIDIA-GPU",
        "With engine 'swarm': the kind of Swarm generic resource whose values are a node's GPU UUIDs "
        "(node-generic-resources in the node's daemon.json). An admin setting.",
    )
    swarm_registry: str | None = _setting(
        None,
        "With engine 'swarm': a registry (host:port) the home engine pushes project images to and the nodes pull "
        "from, so a node fetches only the layers it lacks. Empty: each image goes to a node by docker save/load "
        "(the whole image, base included). An admin setting.",
    )
    gpu_inventory: str = _setting(
        "nvml",
        "'nvml' for the host's GPUs through NVML, or the path of a YAML/JSON GPU list (hosts without NVML, tests). "
        "Ignored where gpu_inventory_class is set. An admin setting.",
    )
    kept_networks: int = _setting(
        8,
        "Each user's containers share a network of their own. After a user's last container is retired its "
        "network is kept, with at most this many unused ds01 networks on the host (those made longest ago go "
        "first), so the next deploy need not make it again (about 0.1 s) nor the retire remove it (about 0.2 s). "
        "Docker's default address pools hold about 30 networks: when none is left for a new one, unused ds01 "
        "networks are removed first. 0: never keep one. An admin setting.",
    )
    gpu_request: str = _setting(
        "device_request",
        "How a container gets its GPUs: 'device_request' (Docker --gpus by UUID; needs the NVIDIA Container Toolkit) "
        "or 'env' (NVIDIA_VISIBLE_DEVICES only, where the default runtime is nvidia).",
    )
    lock_dir: str = _setting(
        DEFAULT_LOCK_DIR,
        "Folder of the host-wide lock file (ds01-jupyter-allocation.lock) that makes GPU allocation atomic across "
        "users' tools; the same for every user and every front end (command line, server extension, hub spawner), "
        "so no two paths hand out the same GPU. Must be owned by root or you, and sticky when others may write it "
        "(/run/lock is). An admin setting: users cannot move it through DS01_LOCK_DIR.",
    )
    lock_timeout: float = _setting(
        60.0, "Seconds a deploy waits for the allocation lock before it gives up with an error naming the holder."
    )
    #: Recorded in the ds01.interface label of containers this front end creates; each front end sets its own.
    interface: str = "cli"
    build_network: str | None = _setting(
        None, "Docker network used while building images (pip may need one); 'none' isolates builds. Empty: Docker's."
    )
    idle_cpu_percent: float = _setting(
        5.0, "CPU use (percent of one core) under which a container counts as idle for the reaper. An admin setting."
    )
    checkpoint_warning_minutes: float = _setting(
        30.0,
        "Warn when a project's container has used its GPU this many minutes without a new checkpoint in models/.",
    )
    stop_timeout: int = _setting(10, "Seconds the engine's stop waits for a container's main process before killing.")
    stop_grace_seconds: float = _setting(
        30.0,
        "Seconds running processes get between SIGTERM and SIGKILL when a stop or retire is told to stop them "
        "(stop_processes; always when a hub server stops), and when the reaper stops a container past max_runtime: "
        "a trainer that checkpoints on SIGTERM saves then. On the hub the rescue runs after they ended, and the user "
        "is told which were stopped.",
    )
    framework_images: tuple[tuple[str, str], ...] = _setting((), FRAMEWORK_IMAGES_HELP)
    mount_ssh: bool = _setting(False, MOUNT_SSH_HELP)
    helpers_dir: str = _setting(
        "",
        "Host folder of the Python helpers (ds01_jupyter.checkpoints) that containers mount read-only at "
        "/dev/.ds01-lib, one sub-folder per version, never changed once made nor removed by ds01. The engine must "
        "see it (a Docker confined to some paths, such as snap's, may not: the helpers are then copied into each "
        "container). Empty: /var/lib/ds01-jupyter when root runs the front end (ds01d, a hub), else "
        "~/.local/state/ds01-jupyter.",
    )

    def __post_init__(self):
        # Front ends hand in a dict (traitlets) or "name=image,..." (DS01_FRAMEWORK_IMAGES); kept as sorted pairs
        # so Settings stays hashable (the spawner keys its cores by Settings).
        object.__setattr__(self, "framework_images", _pairs(self.framework_images))

    def frameworks(self) -> dict[str, str]:
        """Every framework a deploy may fall back to, name -> image: ``base`` is always the base image."""
        return {**dict(self.framework_images), "base": self.base_image}

    @classmethod
    def from_env(cls, environ=None, euid: int | None = None, **overrides) -> Settings:
        """Read ``DS01_<FIELD>`` variables (e.g. DS01_WORKSPACE_ROOT).

        Admin settings (ADMIN_SETTINGS) are taken from the environment only when
        :func:`env_may_set_admin_settings` allows it for ``euid`` (default: this
        process's); otherwise a variable naming one raises Forbidden.
        """
        environ = os.environ if environ is None else environ
        values: dict = {}  # each parsed to its field's type (str, bool, float or int)
        for f in fields(cls):
            variable = f"DS01_{f.name.upper()}"
            raw = environ.get(variable)
            if raw is None or raw == "":
                continue
            if f.name in ADMIN_SETTINGS and not env_may_set_admin_settings(euid):
                raise Forbidden(
                    f"{variable} is an admin setting: a user may not set it through the environment "
                    "(it would lift limits or bypass the GPU allocation lock).",
                    hint=f"Unset {variable}; the admin sets it in the Jupyter/JupyterHub configuration, or "
                    f"through the environment as root or as the owner of {ADMIN_DIR}.",
                    setting=f.name,
                )
            if f.type in ("bool",):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif f.type in ("float",):
                values[f.name] = float(raw)
            elif f.type in ("int",):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_config(cls, source, **overrides) -> Settings:
        """The settings a configurable object (the Jupyter app, the hub's spawner) holds under the same
        names; an empty string means "not set" (traitlets' Unicode cannot be None)."""
        values = {f.name: getattr(source, f.name) for f in fields(cls) if hasattr(source, f.name)}
        values = {k: (None if v == "" else v) for k, v in values.items()}
        values.update(overrides)
        return cls(**{k: v for k, v in values.items() if v is not None})

    def with_(self, **changes) -> Settings:
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


def setting_help(name: str) -> str:
    """The help text declared with a setting."""
    return next(f.metadata["help"] for f in fields(Settings) if f.name == name)


def environment_settings(environ=None, euid: int | None = None) -> list[dict]:
    """Each setting as the command line reads it from ``DS01_<NAME>`` (``ds01 settings``): its variable, whether it
    is the admin's, the value ``environ`` gives it (None: its default), whether that value is refused (an admin
    setting a process of ``euid`` may not set, see :func:`env_may_set_admin_settings`), its default and help."""
    environ = os.environ if environ is None else environ
    may_admin = env_may_set_admin_settings(euid)
    listed = []
    for f in fields(Settings):
        if "help" not in f.metadata:
            continue  # no option: each front end sets it itself (interface)
        variable, admin = f"DS01_{f.name.upper()}", f.name in ADMIN_SETTINGS
        value = environ.get(variable) or None
        default = None if f.default is MISSING else f.default
        listed.append({"name": f.name, "variable": variable, "admin": admin, "value": value,
                       "refused": bool(value is not None and admin and not may_admin),
                       "default": list(default) if isinstance(default, tuple) else default,
                       "help": f.metadata["help"]})
    return listed


def _pairs(value) -> tuple[tuple[str, str], ...]:
    """Sorted (name, image) pairs from a dict, pairs, or "name=image,name=image"."""
    if isinstance(value, str):
        items = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(item) != 2 for item in items):
            raise ValueError(f"framework_images must read name=image,name=image, not {value!r}")
        value = {k.strip(): v.strip() for k, v in items}
    return tuple(sorted(dict(value).items()))


def env_may_set_admin_settings(euid: int | None = None) -> bool:
    """Whether a process of ``euid`` may set admin settings through DS01_* variables.

    Root may (it can edit the admin's files anyway), and so may the owner of
    ADMIN_DIR: creating that folder under /etc takes root, so owning it is the
    admin's consent (a single-user machine, a test host).
    """
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return True
    try:
        return os.stat(ADMIN_DIR).st_uid == euid
    except OSError:
        return False
