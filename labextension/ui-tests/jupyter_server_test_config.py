"""Jupyter server for the browser tests: Galata's settings plus ds01 pointed at a throw-away home.

Never use this configuration in production: Galata opens the server without a
token and exposes JupyterLab's objects to the page.

The home (DS01_UI_HOME, default /tmp/ds01-ui-home) is emptied on every start;
it holds the projects, Dockerfiles, state, a limits file and a GPU list of two
configured GPUs (no NVIDIA GPU on test machines), so GPU cards render.
"""

import json
import os
import secrets
import shutil
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 - `c` is the config object Jupyter passes in

MARKER = ".ds01-ui-home"
home = Path(os.environ.get("DS01_UI_HOME", "/tmp/ds01-ui-home"))
if home.exists():
    if not (home / MARKER).exists():
        raise SystemExit(f"{home} exists and is not a ds01 UI test home; refusing to empty it.")
    shutil.rmtree(home)
(home / "workspace").mkdir(parents=True)
(home / MARKER).write_text("Emptied by labextension/ui-tests/jupyter_server_test_config.py on each start.\n")

tag = secrets.token_hex(3)
gpus = [
    {"uuid": f"GPU-ui-{tag}-{i}", "index": i, "name": "Configured Test GPU", "memory_total": 80 * 2**30}
    for i in range(2)
]
(home / "gpus.json").write_text(json.dumps(gpus))
(home / "limits.yaml").write_text(
    "defaults:\n  max_containers_per_user: 50\n  max_mig_instances: 2\n  memory: 2g\n  memory_swap: 2g\n"
    "  shm_size: 256m\n  max_cpus: 1\n  storage_workspace: 10g\n"
)

c.ServerApp.root_dir = str(home)  # noqa: F821
c.ContentsManager.allow_hidden = True  # noqa: F821 - the test opens .rescued/
c.ServerApp.jpserver_extensions = {"ds01_jupyter": True, "jupyter_server_terminals": True}  # noqa: F821
c.DS01App.workspace_root = str(home / "workspace")  # noqa: F821
c.DS01App.dockerfiles_root = str(home / "dockerfiles")  # noqa: F821
c.DS01App.state_dir = str(home / "state")  # noqa: F821
c.DS01App.lock_dir = str(home / "locks")  # noqa: F821
c.DS01App.limits_file = str(home / "limits.yaml")  # noqa: F821
c.DS01App.gpu_inventory = str(home / "gpus.json")  # noqa: F821
c.DS01App.gpu_request = "env"  # noqa: F821
c.DS01App.base_image = os.environ.get("DS01_BASE_IMAGE", "ds01/base:latest")  # noqa: F821
c.DS01App.scan_interval = 5  # noqa: F821 - findings show up within seconds
c.DS01App.reap_interval = 0  # noqa: F821
