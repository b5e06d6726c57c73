"""One kernel spec per deployed project: "Python 3 (<project> container)".

Specs are ordinary kernel spec folders in the user's Jupyter data dir, named
``ds01-<project>``, written when a project has a container and removed when
it is retired. They point at our provisioner, which starts the kernel inside
the container. Being files, they survive a server restart and work from any
Jupyter front end.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from jupyter_core.paths import jupyter_data_dir

from ..core.errors import DS01Error

PREFIX = "ds01-"
PROVISIONER = "ds01-container"


def spec_for(project: str) -> dict:
    return {
        "argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({project} container)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {"provisioner_name": PROVISIONER, "config": {"project": project}},
            "ds01": {"project": project},
        },
    }


class KernelSpecs:
    def __init__(self, core, user, log: logging.Logger | None = None, kernels_dir: Path | None = None):
        self.core = core
        self.user = user
        self.log = log or logging.getLogger("ds01_jupyter.kernels")
        self._dir = kernels_dir

    @property
    def kernels_dir(self) -> Path:
        return self._dir or Path(jupyter_data_dir()) / "kernels"

    def present(self) -> set[str]:
        """Projects that have a ds01 kernel spec now."""
        found = set()
        if not self.kernels_dir.is_dir():
            return found
        for folder in self.kernels_dir.glob(PREFIX + "*"):
            try:
                meta = json.loads((folder / "kernel.json").read_text())["metadata"]["ds01"]
                found.add(meta["project"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not one of ours
        return found

    def sync(self) -> set[str]:
        """Make the specs match the projects that have a container; return those projects."""
        wanted = {c.project for c in self.core.containers.list(self.user)}
        have = self.present()
        for project in wanted - have:
            folder = self.kernels_dir / f"{PREFIX}{project}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "kernel.json").write_text(json.dumps(spec_for(project), indent=1))
        for project in have - wanted:
            shutil.rmtree(self.kernels_dir / f"{PREFIX}{project}", ignore_errors=True)
        return wanted

    def sync_quietly(self) -> None:
        """Sync, but never fail the caller: with the engine down the specs stay as they were."""
        try:
            self.sync()
        except DS01Error as err:
            self.log.info("ds01: kernel specs not synced: %s", err)

    def on_event(self, event: dict) -> None:
        if event.get("type") == "container" and event.get("action") in ("create", "destroy"):
            self.sync_quietly()
