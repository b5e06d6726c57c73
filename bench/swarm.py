"""A cluster under Docker Swarm (issue 20): a deploy on a worker against one on a single host, and the status of
50 containers over 3 nodes against asking the three engines one after the other.

The cluster is three extra dockerd nodes on this machine (.ci/swarm, with Debian's docker-registry when
installed), or the one a running `.ci/swarm up` describes in DS01_BENCH_SWARM (its state.json). Deploys are timed
with the project's image already built on the home engine; the first deploy on a node also moves the image there
(through the registry: only the layers it lacks), reported on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from harness import BASE_IMAGE, BENCH_USER, DS01, ROOT, not_measured, result, scratch

CONTAINERS = 50
SCRIPT = ROOT / ".ci" / "swarm"


@contextmanager
def cluster():
    reuse = os.environ.get("DS01_BENCH_SWARM")
    if reuse:
        yield json.loads(Path(reuse).read_text())
        return
    done = subprocess.run([sys.executable, str(SCRIPT), "up", "--nodes", "3", "--gpus", "2", "--seed", BASE_IMAGE],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"no test cluster: {done.stderr.strip()[-500:]}")
    state = json.loads(done.stdout)
    try:
        yield state
    finally:
        subprocess.run([sys.executable, str(SCRIPT), "down", state["dir"]], timeout=300)


def _swarm_core(s, state):
    s.settings = s.settings.with_(engine="swarm", swarm_manager=state["manager"],
                                  swarm_registry=state.get("registry") or None)
    s.core.close()
    s.core = DS01(s.settings)
    return s.core


def bench_deploy(state, repeat: int) -> list[dict]:
    def deploys(s, **where):
        samples = []
        for _ in range(repeat):
            project = s.project()
            start = time.perf_counter()
            s.core.containers.deploy(s.user, project, gpus=0, **where)
            samples.append(time.perf_counter() - start)
            s.core.containers.retire(s.user, project)
        return samples

    with scratch() as s:
        s.ensure_image(s.project())
        one_host = deploys(s)
    with scratch() as s:
        s.ensure_image(s.project())
        core = _swarm_core(s, state)
        project = s.project()
        start = time.perf_counter()
        core.containers.deploy(s.user, project, gpus=0, node="n2")
        first = time.perf_counter() - start  # with the image's trip to the node
        core.containers.retire(s.user, project)
        worker = deploys(s, node="n2")
    return [result("cluster: deploy on a worker (engine swarm, --node n2) vs on one host (engine docker)",
                   worker, "deploy on one host", one_host, first_on_node_s=first,
                   registry=bool(state.get("registry")))]


def bench_status(state, repeat: int) -> list[dict]:
    with scratch(max_containers=CONTAINERS + 10) as s:
        s.ensure_image(s.project())
        core = _swarm_core(s, state)
        names = [s.project(f"p{i:03d}") for i in range(CONTAINERS)]
        with ThreadPoolExecutor(4) as pool:
            placed = list(pool.map(lambda n: core.containers.deploy(s.user, n, gpus=0).container.node, names))
        spread = {node: placed.count(node) for node in sorted(set(placed))}
        listed = core.containers.list(s.user)
        if len(listed) != CONTAINERS:
            raise RuntimeError(f"listed {len(listed)} of {CONTAINERS} containers")
        ours = []
        for _ in range(max(repeat, 20)):
            start = time.perf_counter()
            core.containers.list(s.user)
            ours.append(time.perf_counter() - start)
        base = []
        for _ in range(max(repeat, 20)):
            start = time.perf_counter()
            for node in state["nodes"]:
                subprocess.run(["docker", "-H", node["endpoint"], "ps", "-a", "--filter",
                                f"label=ds01.user={BENCH_USER}", "--format", "{{json .}}"], check=True,
                               capture_output=True)
            base.append(time.perf_counter() - start)
    return [result(f"cluster: status of {CONTAINERS} containers over 3 nodes (containers.list)", ours,
                   "docker ps -a --filter on each node in turn", base, spread=spread)]


def run(repeat: int) -> list[dict]:
    try:
        with cluster() as state:
            return bench_deploy(state, repeat) + bench_status(state, repeat)
    except RuntimeError as err:
        return [not_measured("cluster under Docker Swarm", str(err))]
