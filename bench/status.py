"""Status at scale: GET /ds01/projects with 200 projects and 50 containers, against `docker ps -a --filter`.

What the sidebar asks when it opens. The containers are deployed by the core
(all from one shared bench image, so one build serves fifty); the list is
asked through a real Jupyter server over a kept-alive connection, as a
browser would.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from harness import BENCH_USER, not_measured, percentile, result, scratch, server

PROJECTS = 200
CONTAINERS = 50
REQUESTS = 100


def bench_status(repeat: int) -> list[dict]:
    with scratch(max_containers=CONTAINERS + 10) as s:
        names = [s.project(f"p{i:03d}") for i in range(PROJECTS)]
        s.ensure_image(names[0])
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda n: s.core.containers.deploy(s.user, n, gpus=0), names[:CONTAINERS]))
        with server(s) as srv:
            first = srv.get("/ds01/projects").json()  # warm-up, and a check of what is listed
            listed = [p for p in first["projects"] if p["container"]]
            if len(first["projects"]) != PROJECTS or len(listed) != CONTAINERS:
                raise RuntimeError(f"listed {len(first['projects'])} projects with {len(listed)} containers")
            ours = []
            for _ in range(REQUESTS):
                start = time.perf_counter()
                r = srv.get("/ds01/projects")
                ours.append(time.perf_counter() - start)
                r.raise_for_status()
        base = []
        command = ["docker", "ps", "-a", "--filter", f"label=ds01.user={BENCH_USER}", "--format", "{{json .}}"]
        for _ in range(REQUESTS):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            base.append(time.perf_counter() - start)
    r = result(
        f"status: {PROJECTS} projects, {CONTAINERS} containers (GET /ds01/projects)",
        ours, "docker ps -a --filter label=...", base,
        target="median under 50 ms",
        p99_s=percentile(ours, 99),
        baseline_p99_s=percentile(base, 99),
        mean_s=statistics.fmean(ours),
        requests=REQUESTS,
    )
    return [r]


def run(repeat: int) -> list[dict]:
    try:
        return bench_status(repeat)
    except RuntimeError as err:
        return [not_measured("status at scale", str(err))]
