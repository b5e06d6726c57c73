"""Status at scale: GET /ds01/projects with 1,000 projects (every fifth a git repository with a commit) and 200
containers, against `docker ps -a --filter`.

What the sidebar asks when it opens: given again while nothing it shows changed (the overview's memo), and
measured too after a change, when it is made again. The containers are deployed by the core
(each project its own image, the builds after the first from the engine's cache); the list is
asked through a real Jupyter server over a kept-alive connection, as a
browser would.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from harness import BENCH_USER, scratch, server
from timing import not_measured, percentile, result

PROJECTS = 1000
CONTAINERS = 200
GIT_EVERY = 5  # the overview asks git about each git project at every refresh
REQUESTS = 100
CHANGED = 10  # requests each made after a change


def bench_status(repeat: int) -> list[dict]:
    with scratch(max_containers=CONTAINERS + 10) as s:
        names = [s.project(f"p{i:04d}") for i in range(PROJECTS)]
        for name in names[::GIT_EVERY]:
            path = s.core.projects.get(s.user, name).path
            (path / "train.py").write_text("print(1)\n")
            for args in (["init", "-q"], ["add", "train.py"], ["commit", "-q", "-m", "start"]):
                subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
                               cwd=path, check=True, capture_output=True)
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
            # After a change (here a new folder in the workspace root) the kept overview is made again: the whole
            # list, and one project's card (what the sidebar asks at a container event).
            root = s.core.projects.root(s.user)
            cold, card = [], []
            for _ in range(CHANGED):
                for path, samples in (("/ds01/projects", cold), (f"/ds01/projects/{names[1]}", card)):
                    (root / f".changed-{len(samples)}-{path.count('/')}").mkdir()
                    start = time.perf_counter()
                    srv.get(path).raise_for_status()
                    samples.append(time.perf_counter() - start)
        base = []
        command = ["docker", "ps", "-a", "--filter", f"label=ds01.user={BENCH_USER}", "--format", "{{json .}}"]
        for _ in range(REQUESTS):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            base.append(time.perf_counter() - start)
    r = result(
        f"status: {PROJECTS} projects ({PROJECTS // GIT_EVERY} in git), {CONTAINERS} containers (GET /ds01/projects)",
        ours, "docker ps -a --filter label=...", base,
        target="median under 50 ms",
        p99_s=percentile(ours, 99),
        baseline_p99_s=percentile(base, 99),
        mean_s=statistics.fmean(ours),
        after_a_change_s=statistics.median(cold),
        one_card_after_a_change_s=statistics.median(card),
        requests=REQUESTS,
    )
    return [r]


def run(repeat: int) -> list[dict]:
    try:
        return bench_status(repeat)
    except RuntimeError as err:
        return [not_measured("status at scale", str(err))]
