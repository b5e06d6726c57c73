"""Deploy (API and CLI) against `docker run -d`, and retire with audit and rescue against `docker rm -f`.

The project's image is built first and not timed: both sides start the same
image with the same bind mount and command. Runs alternate between the three
ways, so a slow moment of the machine does not fall on one of them only.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from harness import DS01_SCRIPT, cli, docker, scratch, server
from timing import not_measured, result


def bench_lifecycle(repeat: int) -> list[dict]:
    with scratch() as s:
        name = s.project()
        s.ensure_image(name)
        image = s.core.images.current(s.user, name).id
        workspace = str(s.core.projects.get(s.user, name).path.resolve())
        times: dict[str, list[float]] = {
            k: []
            for k in ("api_deploy", "api_retire", "cli_deploy", "cli_retire", "run", "rm", "core", "help", "diff",
                      "run_net")
        }
        # A deploy starts the container on its user's own network (users cannot reach each other's containers):
        # the same start on a network of its own, by hand, says what that costs the engine.
        network = f"ds01-bench-{s.tmp.name.lower()}"
        docker("network", "create", "--label", s.run_label, network)
        rescued = []
        with server(s) as srv:

            def api_cycle(record: bool):
                start = time.perf_counter()
                r = srv.post(f"/ds01/projects/{name}/deploy?wait=1", {"gpus": 0})
                elapsed = time.perf_counter() - start
                if r.status_code != 200 or not r.json()["container"]["running"]:
                    raise RuntimeError(f"API deploy failed: {r.status_code} {r.text[:300]}")
                start = time.perf_counter()
                r = srv.post(f"/ds01/projects/{name}/retire", {"mode": "rescue"})
                retire = time.perf_counter() - start
                if r.status_code != 200:
                    raise RuntimeError(f"API retire failed: {r.status_code} {r.text[:300]}")
                if record:
                    times["api_deploy"].append(elapsed)
                    times["api_retire"].append(retire)
                    rescued.append((r.json().get("rescued") or {}).get("files", 0))

            def cli_cycle():
                start = time.perf_counter()
                done = cli(s, "deploy", name, "--background", "--gpus", "0")
                times["cli_deploy"].append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError(f"ds01 deploy failed: {done.stderr[-300:]}")
                start = time.perf_counter()
                done = cli(s, "retire", name, "--rescue")
                times["cli_retire"].append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError(f"ds01 retire failed: {done.stderr[-300:]}")

            def docker_cycle():
                start = time.perf_counter()
                cid = docker(
                    "run", "-d", "--init", "--label", s.run_label, "-v", f"{workspace}:/workspace",
                    "-w", "/workspace", image, "sleep", "infinity",
                )
                times["run"].append(time.perf_counter() - start)
                start = time.perf_counter()
                docker("diff", cid)  # what any audit must at least wait for
                times["diff"].append(time.perf_counter() - start)
                start = time.perf_counter()
                docker("rm", "-f", cid)
                times["rm"].append(time.perf_counter() - start)
                start = time.perf_counter()
                cid = docker(
                    "run", "-d", "--init", "--label", s.run_label, "-v", f"{workspace}:/workspace", "--network",
                    network, "-w", "/workspace", image, "sleep", "infinity",
                )
                times["run_net"].append(time.perf_counter() - start)
                docker("rm", "-f", cid)

            def reference_cycle():
                # Not compared, but they say where the time goes: the core alone, and the CLI's start-up.
                start = time.perf_counter()
                s.core.containers.deploy(s.user, name, gpus=0)
                times["core"].append(time.perf_counter() - start)
                s.core.guard.retire(s.user, name, "rescue")
                start = time.perf_counter()  # what the installed `ds01` script runs (--help needs no user)
                subprocess.run([sys.executable, "-c", DS01_SCRIPT, "--help"],
                               env=s.env(), capture_output=True, check=True)
                times["help"].append(time.perf_counter() - start)

            api_cycle(record=False)  # warm-up: the server's first Docker call opens its connection
            cli(s, "container-list")  # and the CLI's bytecode cache is made, as pip's install makes it
            try:
                for _ in range(repeat):
                    api_cycle(record=True)
                    cli_cycle()
                    docker_cycle()
                    reference_cycle()
            finally:
                docker("network", "rm", network, check=False)
    base_run = "docker run -d (same image, -v, --init)"
    return [
        result("deploy, API (until running)", times["api_deploy"], base_run, times["run"], target="within 1.2x",
               core_s=statistics.median(times["core"]), run_network_s=statistics.median(times["run_net"])),
        result("deploy, CLI (until running)", times["cli_deploy"], base_run, times["run"], target="within 1.3x",
               cli_startup_s=statistics.median(times["help"]), run_network_s=statistics.median(times["run_net"])),
        result("retire + audit + empty rescue, API", times["api_retire"], "docker rm -f", times["rm"],
               rescued_files=max(rescued or [0]), diff_s=statistics.median(times["diff"])),
        result("retire + audit + empty rescue, CLI", times["cli_retire"], "docker rm -f", times["rm"],
               diff_s=statistics.median(times["diff"])),
    ]


def run(repeat: int) -> list[dict]:
    try:
        return bench_lifecycle(repeat)
    except RuntimeError as err:
        return [not_measured("deploy and retire", str(err))]
