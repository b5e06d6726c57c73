"""JupyterHub for a DS01 server: each user's projects are named servers.

Every named server is one project: its single-user server runs as the main
process of the project's GPU container (`<project>._.<user>`, the project
folder at /workspace), made by the same core as the `ds01` command line, so
the GPU allocator, the limits and the persistence guard are shared. Stopping a
server (the hub's button, the REST API, jupyterhub-idle-culler, or the user's
idle/runtime limits) rescues files written outside /workspace into
`<project>/.rescued/<UTC time>/` before the container is removed.

Installed as /etc/ds01-jupyter/jupyterhub_config.py by `ds01-hub init`; the
README's "JupyterHub" section is the whole installation, step by step. Lines
marked EDIT are the site's choices. The hub runs as root (systemd unit:
`ds01-hub unit`), in /var/lib/ds01-jupyterhub (its database and cookie secret).
"""

import sys

from ds01_jupyter.hub.checks import refuse_to_start_unless_ready
from ds01_jupyter.hub.network import bridge_ip

c = get_config()  # noqa: F821 - provided by JupyterHub

# -- who may log in ---------------------------------------------------------------------------
# Unix accounts and their passwords (PAM); only members of this Unix group (add people with
# `adduser NAME ds01-users`). Never allow_all with PAM: it lets in every account with a password.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {"ds01-users"}  # EDIT, or list names: c.Authenticator.allowed_users = {"alice"}
c.PAMAuthenticator.admin_groups = {"ds01-admins"}  # EDIT: hub admins (they may stop anyone's server)
# PAM-less logins belong in tests and demos only: c.JupyterHub.authenticator_class = "dummy"

# -- TLS --------------------------------------------------------------------------------------
# EDIT. Either the hub's own TLS (the proxy serves it) with your certificate and key:
c.JupyterHub.bind_url = "https://:443"
c.JupyterHub.ssl_cert = "/etc/ds01-jupyter/tls/fullchain.pem"
c.JupyterHub.ssl_key = "/etc/ds01-jupyter/tls/privkey.pem"
# or a reverse proxy (nginx, Caddy, Apache) that terminates TLS and forwards to the hub on loopback,
# with WebSocket upgrades passed on; then instead of the three lines above:
#   c.JupyterHub.bind_url = "http://127.0.0.1:8000"

# -- the hub ----------------------------------------------------------------------------------
c.JupyterHub.spawner_class = "ds01"
c.JupyterHub.allow_named_servers = True  # named server = project
c.JupyterHub.named_server_limit_per_user = 0  # DS01's max_containers_per_user is the limit
# Containers reach the hub on the Docker bridge.
c.JupyterHub.hub_ip = bridge_ip()
c.JupyterHub.cleanup_servers = False  # a restarted hub finds the running servers again

# A server may stop itself: the DS01 sidebar inside it has a Stop button.
c.JupyterHub.load_roles = [
    {"name": "server", "scopes": ["users:activity!user", "access:servers!server", "servers!server"]},
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    },
]
# Idle servers are stopped by the culler; stopping always goes through the guard (work is rescued).
# The hub stops the culler with SIGINT; a hub started from a shell in the background (`&`, nohup) hands
# it SIGINT ignored, and the hub then waits 30 s before SIGTERM: the culler restores SIGINT first.
CULLER = ("import signal, jupyterhub_idle_culler as culler; "
          "signal.signal(signal.SIGINT, signal.default_int_handler); culler.main()")
c.JupyterHub.services = [
    {"name": "idle-culler", "command": [sys.executable, "-c", CULLER, "--timeout=3600"]},
]

# -- the DS01 spawner -------------------------------------------------------------------------
# Same settings as the command line and the JupyterLab extension use on this host.
c.DS01Spawner.workspace_root = "{home}/workspace"
c.DS01Spawner.dockerfiles_root = "{home}/dockerfiles"
c.DS01Spawner.limits_file = "/etc/ds01-jupyter/resource-limits.yaml"  # written by `ds01-hub init`; DS01's format
c.DS01Spawner.gpu_inventory = "nvml"  # or the path of a YAML list of GPUs
c.DS01Spawner.gpu_request = "device_request"  # Docker --gpus by UUID (NVIDIA Container Toolkit)
c.DS01Spawner.base_image = "ds01/base:latest"  # `ds01 base-image` makes it where none can be pulled
c.DS01Spawner.singleuser_image = "ds01/singleuser:latest"  # built from the wheels below, rebuilt after upgrades
c.DS01Spawner.singleuser_wheels = "/srv/ds01/wheels"  # filled by `ds01-hub wheels`
c.DS01Spawner.default_gpus = None  # one GPU where the host has any, else CPU-only
# The user's idle_timeout and max_runtime (from the limits file) are applied at every poll.
c.DS01Spawner.enforce_limits_in_poll = True
c.Spawner.poll_interval = 60
c.Spawner.start_timeout = 600  # the first start of a project builds its image
c.Spawner.http_timeout = 120  # JupyterLab in a container on a busy GPU host may take more than 30 s to answer
# Of DockerSpawner's own options only some apply (the README's table says which): mem_limit and cpu_limit are
# hub-wide ceilings on top of each user's limits, post_start_cmd runs as the user; volumes, mounts, network_name,
# extra_host_config, image, remove... are refused (named in the log, and the hub does not start).
#   c.DS01Spawner.mem_limit = "64G"

# Hub users are Unix accounts by default (uid, gid and home from the system).
# For users who are not, map them to a DS01 user yourself, e.g.:
#
#   from pathlib import Path
#   from ds01_jupyter.core import User
#   UIDS = {"alice": 20001, "bob": 20002}  # fixed: files in the workspaces belong to these uids
#   c.DS01Spawner.user_mapper = lambda name: User(name, UIDS[name], UIDS[name], Path("/srv/ds01/homes") / name)

# -- site settings ----------------------------------------------------------------------------
# EDIT: anything the site changes goes here, below the defaults above.

# Last: refuse to start (saying what to do) when the limits file, the base image, the wheels, the
# proxy or the TLS files are missing; `ds01-hub check` runs the same checks.
refuse_to_start_unless_ready(c)
