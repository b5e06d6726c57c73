"""Deploy time with 1, 10 and 50 of the user's containers already running, against `docker run -d` at the same N.

A busy user runs many containers, and a deploy looks at each of them (the user's limits, and which containers
ds01 made for them: see containers.vet). Timed two ways: through a core that lives on (the server, ds01d) and
from the CLI, a new process each time, which has seen none of them yet. Each deploy is retired again; the
baseline starts the same image with the same mount and removes it.
"""

from __future__ import annotations

import statistics
import sys
import time

from harness import cli, docker, scratch
from timing import result

RUNNING = (1, 10, 50)


def run(repeat: int) -> list[dict]:
    out = []
    with scratch(max_containers=max(RUNNING) + 5) as s:
        name = s.project()
        s.ensure_image(name)
        image = s.core.images.current(s.user, name).id
        workspace = str(s.core.projects.get(s.user, name).path.resolve())
        cli(s, "container-list")  # the CLI's bytecode cache is made, as pip's install makes it
        others: list[str] = []
        for running in RUNNING:
            while len(others) < running:  # the bench user's own containers, as a busy user would have
                extra = s.project()
                s.core.containers.deploy(s.user, extra, gpus=0)
                others.append(extra)
            core, command, base = [], [], []
            for _ in range(repeat):
                start = time.perf_counter()
                s.core.containers.deploy(s.user, name, gpus=0)
                core.append(time.perf_counter() - start)
                s.core.containers.retire(s.user, name)
                start = time.perf_counter()
                done = cli(s, "deploy", name, "--background", "--gpus", "0")
                command.append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError(f"ds01 deploy failed: {done.stderr[-300:]}")
                s.core.containers.retire(s.user, name)
                start = time.perf_counter()
                cid = docker("run", "-d", "--init", "--label", s.run_label, "-v", f"{workspace}:/workspace",
                             "-w", "/workspace", image, "sleep", "infinity")
                base.append(time.perf_counter() - start)
                docker("rm", "-f", cid)
            print(f"  deploy with {running} running: core {statistics.median(core):.2f} s, CLI "
                  f"{statistics.median(command):.2f} s, docker run {statistics.median(base):.2f} s",
                  file=sys.stderr, flush=True)
            baseline = "docker run -d (same image, -v, --init)"
            out.append(result(f"deploy with {running} running (core)", core, baseline, base, running=running))
            out.append(result(f"deploy with {running} running (CLI)", command, baseline, base, running=running))
    return out
