"""A real Docker Swarm for the cluster tests: extra dockerd nodes on this machine, made by .ci/swarm.

One cluster serves the whole session (`swarm` fixture): three nodes with two fake GPUs each (Swarm generic
resources), a registry where Debian's docker-registry is installed, the base image on every node. It is removed
at the end, also when tests fail. DS01_TEST_SWARM=<state.json of a running `.ci/swarm up`> reuses one (it is
then left running). Without root or dockerd the tests skip, and fail where Docker is required (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ds01_jupyter.core import DS01
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import DS01Error

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "swarm"
#: Limits of the cluster tests: several GPUs per user and per container.
LIMITS = "defaults:\n  max_mig_instances: 100\n  max_mig_per_container: 2\n  max_containers_per_user: 100\n"


class Swarm:
    def __init__(self, state: dict):
        self.state = state
        self.dir = state["dir"]
        self.manager = state["manager"]
        self.registry = state.get("registry", "")
        self.nodes = {n["name"]: n for n in state["nodes"]}

    def endpoint(self, node: str) -> str:
        return self.nodes[node]["endpoint"]

    def docker(self, node: str, *args: str) -> str:
        return subprocess.run(["docker", "-H", self.endpoint(node), *args], capture_output=True, text=True,
                              check=True, timeout=120).stdout.strip()

    def kill(self, node: str) -> None:
        subprocess.run([sys.executable, str(SCRIPT), "kill", self.dir, node], check=True, timeout=60)

    def start(self, node: str) -> None:
        subprocess.run([sys.executable, str(SCRIPT), "start", self.dir, node], check=True, timeout=120)

    def settings(self, make_core, **overrides):
        """Settings of a core driving this cluster (the make_core factory's, engine 'swarm')."""
        overrides.setdefault("limits", LIMITS)
        return make_core.settings(engine="swarm", swarm_manager=self.manager, swarm_registry=self.registry or None,
                                  **overrides)

    def core(self, make_core, **overrides) -> DS01:
        core = DS01(self.settings(make_core, **overrides))
        make_core.cores.append(core)
        return core

    def clean(self, tmp_path: Path) -> None:
        """Remove the containers (and so their claims) a test made under ``tmp_path``, on every node."""
        from ds01_jupyter.core import Settings

        core = DS01(Settings(engine="swarm", swarm_manager=self.manager))
        try:
            for record in core.engine.list_containers(L.managed()):
                if record.labels.get(L.WORKSPACE, "").startswith(str(tmp_path)):
                    try:
                        core.engine.remove_container(record.id, force=True)
                    except DS01Error:
                        pass
        finally:
            core.close()


def start_swarm(require: bool, base_image: str):
    reuse = os.environ.get("DS01_TEST_SWARM")
    if reuse:
        yield Swarm(json.loads(Path(reuse).read_text()))
        return
    why = ""
    if os.geteuid() != 0:
        why = "a test cluster needs root (extra dockerd processes and bridges)"
    elif not shutil.which("dockerd") or not shutil.which("ip"):
        why = "a test cluster needs dockerd and ip"
    if why:
        if require:
            pytest.fail(f"Docker is required here: {why}")
        pytest.skip(why)
    done = subprocess.run([sys.executable, str(SCRIPT), "up", "--nodes", "3", "--gpus", "2", "--seed", base_image],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        message = f"the test cluster did not start: {done.stderr.strip()[-2000:]}"
        if require:
            pytest.fail(message)
        pytest.skip(message)
    state = json.loads(done.stdout)
    try:
        yield Swarm(state)
    finally:
        subprocess.run([sys.executable, str(SCRIPT), "down", state["dir"]], timeout=300)
