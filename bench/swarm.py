"""A cluster under Docker Swarm (issue 20): a deploy on a worker against one on a single host, and the status of
50 containers over 3 nodes against the same 50 on one host (and, for scale, `docker ps` on each node in turn).

The cluster is three extra dockerd nodes on this machine (.ci/swarm, with Debian's docker-registry when
installed), or the one a running `.ci/swarm up` describes in DS01_BENCH_SWARM (its state.json). Deploys are timed
with the project's image already built on the home engine (each project its own image, as in use); every deploy on
the worker also moves its project's image there (through the registry: only the layers the node lacks); the very
first, which also brings the layers the seed did not, is reported on its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from harness import BASE_IMAGE, BENCH_USER, DS01, ROOT, scratch
from timing import not_measured, result

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


def _own_images(s):
    """Each project its own image, as in use (the harness's one shared bench image is not a project's image)."""
    s.settings = s.settings.with_(image_template="ds01-{user}/{project}:latest")
    s.core.close()
    s.core = DS01(s.settings)


def _swarm_core(s, state):
    s.settings = s.settings.with_(engine="swarm", swarm_manager=state["manager"],
                                  swarm_registry=state.get("registry") or None,
                                  image_template="ds01-{user}/{project}:latest")
    s.core.close()
    s.core = DS01(s.settings)
    return s.core


def _projects(s, count: int, names=None) -> list[str]:
    """Projects with their images built (not timed; two builds at a time)."""
    names = [s.project(n) for n in (names or [None] * count)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda n: s.core.images.build(s.user, n), names))
    return names


def bench_deploy(state, repeat: int) -> list[dict]:
    def deploys(s, **where):
        samples = []
        for project in _projects(s, repeat):
            start = time.perf_counter()
            s.core.containers.deploy(s.user, project, gpus=0, **where)
            samples.append(time.perf_counter() - start)
            s.core.containers.retire(s.user, project)
        return samples

    with scratch() as s:
        _own_images(s)
        one_host = deploys(s)
    with scratch() as s:
        core = _swarm_core(s, state)
        project = _projects(s, 1)[0]
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
        core = _swarm_core(s, state)
        names = _projects(s, CONTAINERS, [f"p{i:03d}" for i in range(CONTAINERS)])
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
        nodes_ps = []
        for _ in range(max(repeat, 20)):
            start = time.perf_counter()
            for node in state["nodes"]:
                subprocess.run(["docker", "-H", node["endpoint"], "ps", "-a", "--filter",
                                f"label=ds01.user={BENCH_USER}", "--format", "{{json .}}"], check=True,
                               capture_output=True)
            nodes_ps.append(time.perf_counter() - start)
        # The same fifty on one host (engine docker), for what the cluster adds to a listing.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: core.containers.retire(s.user, n), names))
        local = DS01(s.settings.with_(engine="docker"))
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda n: local.containers.deploy(s.user, n, gpus=0), names))
            local.containers.list(s.user)
            base = []
            for _ in range(max(repeat, 20)):
                start = time.perf_counter()
                local.containers.list(s.user)
                base.append(time.perf_counter() - start)
        finally:  # the scratch's clean-up sees the cluster only
            for record in local.engine.list_containers({"ds01.user": BENCH_USER}):
                if record.labels.get("ds01.workspace", "").startswith(str(s.tmp)):
                    local.engine.remove_container(record.id, force=True)
            local.close()
    return [result(f"cluster: status of {CONTAINERS} containers over 3 nodes (containers.list)", ours,
                   f"the same {CONTAINERS} on one host (engine docker)", base, spread=spread,
                   docker_ps_on_each_node_s=statistics.median(nodes_ps))]


def run(repeat: int) -> list[dict]:
    try:
        with cluster() as state:
            return bench_deploy(state, repeat) + bench_status(state, repeat)
    except RuntimeError as err:
        return [not_measured("cluster under Docker Swarm", str(err))]
