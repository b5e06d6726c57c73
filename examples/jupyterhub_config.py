"""JupyterHub for a DS01 server: each user's projects are named servers.

Every named server is one project: its single-user server runs as the main
process of the project's GPU container (`<project>._.<user>`, the project
folder at /workspace), made by the same core as the `ds01` command line, so
the GPU allocator, the limits and the persistence guard are shared. Stopping a
server (the hub's button, the REST API, jupyterhub-idle-culler, or the user's
idle/runtime limits) rescues files written outside /workspace into
`<project>/.rescued/<UTC time>/` before the container is removed.

Run it as root (or a user allowed to use Docker), with configurable-http-proxy
on the PATH (`npm install -g configurable-http-proxy`):

    pip install "ds01-jupyter[hub]" jupyterhub-idle-culler
    jupyterhub -f jupyterhub_config.py

One-time preparation of the single-user image (no registry is needed):

    # wheels for the Python of the base image (Debian 12: 3.11.2), plus ds01-jupyter for the sidebar inside
    pip download --only-binary=:all: --python-version 3.11.2 --platform manylinux2014_x86_64 \
        --platform manylinux_2_28_x86_64 --platform any -d /srv/ds01/wheels \
        jupyterhub==$(jupyterhub --version) jupyterlab ds01-jupyter
    ds01 base-image          # ds01/base:latest, when your base image is not pulled from a registry

The spawner builds `ds01/singleuser:latest` FROM the base image with those
wheels (network off) on the first spawn. Project Dockerfiles written by the
hub start FROM it; a Dockerfile made earlier by `project-init` starts FROM
ds01/base: change its FROM line to ds01/singleuser:latest (the spawn page says so).
"""

import sys

from ds01_jupyter.hub.spawner import bridge_ip

c = get_config()  # noqa: F821 - provided by JupyterHub

# -- the hub ------------------------------------------------------------------------------
c.JupyterHub.spawner_class = "ds01"
c.JupyterHub.allow_named_servers = True  # named server = project
c.JupyterHub.named_server_limit_per_user = 0  # DS01's max_containers_per_user is the limit
c.JupyterHub.bind_url = "http://:8000"
# Containers reach the hub on the Docker bridge; the proxy reaches it there too.
c.JupyterHub.hub_ip = bridge_ip()
c.JupyterHub.cleanup_servers = False  # a restarted hub finds the running servers again
c.Authenticator.allow_all = True  # choose your authenticator; PAM (the default) maps users to Unix accounts

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
c.JupyterHub.services = [
    {"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600"]},
]

# -- the DS01 spawner -----------------------------------------------------------------------
# Same settings as the command line and the JupyterLab extension use on this host.
c.DS01Spawner.workspace_root = "{home}/workspace"
c.DS01Spawner.dockerfiles_root = "{home}/dockerfiles"
c.DS01Spawner.limits_file = "/etc/ds01-jupyter/resource-limits.yaml"  # DS01's format and field names
c.DS01Spawner.gpu_inventory = "nvml"  # or the path of a YAML list of GPUs
c.DS01Spawner.gpu_request = "device_request"  # Docker --gpus by UUID (NVIDIA Container Toolkit)
c.DS01Spawner.base_image = "ds01/base:latest"
c.DS01Spawner.singleuser_image = "ds01/singleuser:latest"
c.DS01Spawner.singleuser_wheels = "/srv/ds01/wheels"
c.DS01Spawner.default_gpus = None  # one GPU where the host has any, else CPU-only
# The user's idle_timeout and max_runtime (from the limits file) are applied at every poll.
c.DS01Spawner.enforce_limits_in_poll = True
c.Spawner.poll_interval = 60
c.Spawner.start_timeout = 600  # the first start of a project builds its image

# Hub users are Unix accounts by default (uid, gid and home from the system).
# For users who are not, map them to a DS01 user yourself, e.g.:
#
#   from pathlib import Path
#   from ds01_jupyter.core import User
#   UIDS = {"alice": 20001, "bob": 20002}  # fixed: files in the workspaces belong to these uids
#   c.DS01Spawner.user_mapper = lambda name: User(name, UIDS[name], UIDS[name], Path("/srv/ds01/homes") / name)
