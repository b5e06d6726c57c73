"""What DS01Spawner does with each option it inherits from DockerSpawner and JupyterHub's Spawner.

DS01Spawner builds containers through the core (the project mount, the user's
network, limits and GPUs, the guard at stop), not through DockerSpawner's
``create_object``, so an inherited option does only what is written here:

* HONOURED: it reaches the container (see ``DS01Spawner.container_request``);
* REFUSED: it would break a DS01 guarantee, or has no meaning here. Set to
  anything but its default, it is named with the reason in the hub's log, by
  the start-up checks (``ds01-hub check``; the hub refuses to start) and by
  every spawn, which is refused with the same words: never silently ignored;
* JUPYTERHUB: JupyterHub itself applies it, as for every spawner.

The README's table of these is generated from this module (config_docs) and a
test sets every option and checks what is written here.
"""

from __future__ import annotations

from ..core.errors import DS01Error

#: Options that reach the container, and how.
HONOURED = {
    "cmd": "The single-user server's command, the container's main process (default `jupyterhub-singleuser`).",
    "args": "Extra arguments of the single-user server.",
    "environment": "Extra environment variables in the container (a callable of the spawner too); DS01's own "
    "(DS01_PROJECT, DS01_USER, NVIDIA_VISIBLE_DEVICES...) win.",
    "env_keep": "Variables of the hub's environment passed on to the container.",
    "notebook_dir": "The single-user server's root folder (JUPYTERHUB_ROOT_DIR); the project is at /workspace.",
    "default_url": "The page the single-user server opens first (JUPYTERHUB_DEFAULT_URL).",
    "disable_user_config": "The single-user server ignores the user's own Jupyter configuration.",
    "debug": "The single-user server logs at debug level.",
    "ip": "The address the single-user server listens on inside the container.",
    "port": "The single-user server's port inside the container; the hub reaches it on the container's address "
    "(nothing is published).",
    "container_port": "DockerSpawner's old name of port.",
    "hub_connect_url": "The hub's address as the container reaches it (JUPYTERHUB_API_URL).",
    "mem_limit": "A ceiling on each server's memory on top of the user's limits: the container gets the lower of "
    "this and the user's `memory` from resource-limits.yaml, which stays the place for per-user limits (a callable "
    "of the spawner may return one per user). The swap the limits allow on top is kept.",
    "cpu_limit": "A ceiling on each server's CPUs on top of the user's `max_cpus` (the lower of the two), as "
    "mem_limit.",
    "post_start_cmd": "Run in the container once it started, as the user (never root), in /workspace; its output "
    "goes to the hub's log, and a failure is logged and shown on the spawn page while the server still starts "
    "(as in DockerSpawner).",
}

_IMAGE = ("The image is the project's own (from ~/dockerfiles/<project>.Dockerfile, FROM singleuser_image), or one "
          "of framework_images that the user picks on the form: set those instead.")
_TLS = ("The Docker client is the core's, shared with the command line and ds01d: set docker_url (or engine, "
        "engine_class), and DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH in the hub's environment for TLS.")
_NAME = ("A server's container is named <project>._.<user>, the name the command line, JupyterLab and the "
         "persistence guard know it by.")
_MOUNTS = ("Only the project folder is mounted, at /workspace (and ~/.ssh read-only with mount_ssh): another mount "
           "would hold work the persistence guard does not see, or reach other users' files.")
_RAW = ("The container's options are built by the core (the user's uid, limits, GPUs and network, no privileges); "
        "raw Docker options could mount paths, add privileges or lift limits.")
_NETWORK = ("Each user's containers are on that user's own network and nothing is published; the hub reaches a "
            "server on its container's address.")
_CERTS = ("internal_ssl is not supported: certificates would go into the container through a Docker volume, and "
          "each user's network already keeps other users' containers away from the server.")
_GUARANTEE = ("Docker has no guarantees: DS01's limits are ceilings, per user in resource-limits.yaml (limits_file), "
              "with mem_limit and cpu_limit as hub-wide ceilings.")

#: Options that are refused, with the reason and what to do instead.
REFUSED = {
    "image": _IMAGE,
    "container_image": _IMAGE,
    "allowed_images": _IMAGE,
    "image_whitelist": _IMAGE,
    "pull_policy": "Project images are built on the host and never pulled; the admin pulls framework_images, and "
    "`ds01-hub image` builds singleuser_image.",
    "client_kwargs": _TLS,
    "tls": _TLS,
    "tls_assert_hostname": _TLS,
    "tls_ca": _TLS,
    "tls_cert": _TLS,
    "tls_config": _TLS,
    "tls_key": _TLS,
    "tls_verify": _TLS,
    "use_docker_client_env": "Deprecated and ignored by DockerSpawner (version 14 fails when it is set). " + _TLS,
    "name_template": _NAME,
    "container_name_template": _NAME,
    "prefix": _NAME,
    "container_prefix": _NAME,
    "escape": _NAME,
    "volumes": _MOUNTS,
    "read_only_volumes": _MOUNTS,
    "mounts": _MOUNTS,
    "format_volume_name": _MOUNTS,
    "extra_host_config": _RAW,
    "extra_create_kwargs": _RAW,
    "network_name": _NETWORK,
    "links": _NETWORK,
    "use_internal_ip": "Always True here (setting it True is fine). " + _NETWORK,
    "use_internal_hostname": _NETWORK,
    "host_ip": _NETWORK,
    "container_ip": _NETWORK,
    "hub_ip_connect": "Deprecated since JupyterHub 0.8, and ignored by DockerSpawner too: set "
    "c.JupyterHub.hub_connect_ip.",
    "remove": "Stopping a server always retires its container through the persistence guard: work files are "
    "rescued into the project, then the container is removed; when the rescue cannot fit, it is kept, stopped, and "
    "the user is told. A container with unsaved work is never removed silently, nor kept forever.",
    "remove_containers": "DockerSpawner's old name of remove, refused as remove is.",
    "certs_volume_name": _CERTS,
    "move_certs_image": _CERTS,
    "ssl_alt_names": _CERTS,
    "ssl_alt_names_include_local": _CERTS,
    "mem_guarantee": _GUARANTEE,
    "cpu_guarantee": _GUARANTEE,
}

#: Options JupyterHub applies itself, whatever the spawner: DS01Spawner overrides none of the methods that read them.
JUPYTERHUB = {
    "apply_user_options": "DS01's default checks the options (project, gpus, create, framework).",
    "options_form": "DS01's default lists the user's projects, a new one, GPUs within their limits and frameworks.",
    "options_from_form": "DS01's default reads its own form.",
    "auth_state_hook": "",
    "consecutive_failure_limit": "",
    "group_overrides": "Only for honoured options: a refused one set by a group is not checked again.",
    "http_timeout": "",
    "oauth_client_allowed_scopes": "",
    "oauth_roles": "",
    "poll_interval": "Each poll also applies the user's idle_timeout and max_runtime (enforce_limits_in_poll).",
    "poll_jitter": "",
    "post_stop_hook": "",
    "pre_spawn_hook": "",
    "progress_ready_hook": "",
    "server_token_scopes": "",
    "start_timeout": "A start it gives up on (a long first build) leaves no server running unseen: what its "
                     "deploy, still under way, makes is retired.",
}
#: The Spawner methods through which JupyterHub applies the JUPYTERHUB options (a test checks none is overridden).
JUPYTERHUB_METHODS = ("run_pre_spawn_hook", "run_post_stop_hook", "run_auth_state_hook", "start_polling",
                      "apply_group_overrides", "_apply_overrides")

#: What an option set where it is refused says (the test looks for it in the log).
REFUSAL = "ds01: the spawner option {name} is refused (c.DockerSpawner.{name} or c.DS01Spawner.{name}): {why}"


def refusal(name: str) -> str:
    return REFUSAL.format(name=name, why=REFUSED[name])


def refused_settings(spawner) -> list[str]:
    """The refused options the configuration sets (c.DS01Spawner, c.DockerSpawner, c.Spawner...) to anything but
    their default on DS01Spawner (so `use_internal_ip = True` passes, `False` is refused)."""
    configured = set()
    for section in type(spawner).section_names():
        if section in spawner.config:
            configured.update(spawner.config[section])
    return [name for name in REFUSED if name in configured and _differs(spawner, name)]


def _differs(spawner, name: str) -> bool:
    try:
        return getattr(spawner, name) != spawner.trait_defaults(name)
    except AttributeError:  # a default that needs the hub's user (ssl_alt_names): set at all, it is refused
        return True


class OptionsRefused(DS01Error):
    """The hub's configuration sets options DS01Spawner refuses (the admin's to fix, so a 500)."""

    def __init__(self, names: list[str]):
        super().__init__(" ".join(refusal(name).removeprefix("ds01: ") for name in names),
                         hint="Remove them from jupyterhub_config.py; the README's table of the inherited spawner "
                         "options says which apply.", options=names)
