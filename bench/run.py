"""Benchmarks of what users wait for, each against the baseline they would use instead.

Run from the repository root (Docker must be running); a few minutes in all:

    .venv/bin/python bench/run.py                   # everything
    .venv/bin/python bench/run.py status audit      # some (names below)
    .venv/bin/python bench/run.py --repeat 5

Writes bench/results.json and bench/RESULTS.md: machine, versions, medians and
spread of several runs, each result as a ratio to its baseline measured in the
same run. Benchmarks never fail on a number; one that cannot run here (no GPU,
no browser, no JupyterHub) is recorded as "not measured" with the reason.
Containers are made for a user named ``benchuser`` and removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: name -> (module, what it measures, the issue's item numbers)
BENCHMARKS = {
    "lifecycle": (
        "lifecycle",
        "deploy (API, CLI) vs docker run -d; retire with audit and rescue vs docker rm -f",
        "1, 3",
    ),
    "service": ("service", "deploy and retire from the CLI through ds01d (a user without Docker access) vs "
                "docker run -d", "3"),
    "ready": ("ready", "deploy until a container kernel answers 1+1 vs JupyterHub + DockerSpawner", "2"),
    "status": ("status", "GET /ds01/projects with 1,000 projects (200 in git), 200 containers vs docker ps -a --filter",
               "4"),
    "audit": ("audit", "persistence audit of 1k/10k/100k files vs docker diff", "5"),
    "disk": ("disk", "workspace size of 100k files vs du -s", "6"),
    "idle_network": ("idle_network", "requests per minute of an idle open sidebar vs jupyter-resource-usage", "7"),
    "gpu": ("gpu", "GPU inventory through NVML vs nvidia-smi --query-gpu", "8"),
    "growth": ("growth", "audit time from 1k to 1M files (and its parts)", "issue 19 item 7"),
    "crowd": ("crowd", "deploy (core and CLI) with 1, 10, 50 of the user's containers running vs docker run -d",
              "issue 19 item 7"),
    "swarm": ("swarm", "cluster (engine swarm): deploy on a worker vs one host; status of 50 containers on 3 nodes",
              "issue 20"),
}


def run_one(name: str, repeat: int) -> list[dict]:
    """Run one benchmark; whatever breaks is recorded as not measured, never raised."""
    module = importlib.import_module(BENCHMARKS[name][0])
    try:
        return module.run(repeat)
    except Exception as err:  # a benchmark that breaks must not lose the others' numbers
        traceback.print_exc()
        return [{"name": name, "not_measured": f"failed: {type(err).__name__}: {str(err)[:300]}"}]


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (done.stdout.strip() or done.stderr.strip() or "unknown").splitlines()[0]


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "docker": _version(["docker", "version", "--format", "{{.Server.Version}}"]),
        "ds01_jupyter": _package("ds01-jupyter"),
        "jupyter_server": _package("jupyter_server"),
        "jupyterlab": _package("jupyterlab"),
        "jupyterhub": _package("jupyterhub"),
        "dockerspawner": _package("dockerspawner"),
        "nvidia_ml_py": _package("nvidia-ml-py"),
        "node": _version(["node", "--version"]),
        "chromium": _version(["chromium", "--version"]),
    }


# -- the readable report -----------------------------------------------------------------
def _t(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _row(item: str, r: dict) -> str:
    if "not_measured" in r:
        return f"| {item} | {r['name']} | not measured: {r['not_measured']} | | | | |"
    o, b = r["ours"], r["baseline"]
    if r.get("unit"):
        ours = f"{o['value']:.1f} {r['unit']}"
        base = f"{b['what']}: {b['value']:.1f}"
    else:
        ours = f"{_t(o['median_s'])} ({_t(o['min_s'])} to {_t(o['max_s'])}, {o['runs']} runs)"
        base = f"{b['what']}: {_t(b['median_s'])} ({_t(b['min_s'])} to {_t(b['max_s'])})"
    ratio = "n/a" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
    return f"| {item} | {r['name']} | {ours} | {base} | {ratio} | {r.get('target', '')} | {_notes(r)} |"


def _notes(r: dict) -> str:
    notes = []
    if "p99_s" in r:
        notes.append(f"p99 {_t(r['p99_s'])} (baseline p99 {_t(r['baseline_p99_s'])}) over {r['requests']} requests")
    if "after_a_change_s" in r:
        notes.append(f"made again after a change: {_t(r['after_a_change_s'])} (one project's card: "
                     f"{_t(r['one_card_after_a_change_s'])})")
    if "core_s" in r:
        notes.append(f"the core's deploy alone, in-process: {_t(r['core_s'])}")
    if "run_network_s" in r:
        notes.append(f"docker run -d on a network of its own, as a deploy starts it: {_t(r['run_network_s'])}")
    if "connect_s" in r:
        copied = f"copied in meanwhile: {_t(r['helpers_s'])}" if "helpers_s" in r else "mounted, not copied"
        notes.append(f"of the core's deploy, the network connected after the /workspace check: {_t(r['connect_s'])}"
                     f", the helpers {copied}")
    if "cli_startup_s" in r:
        notes.append(f"the CLI's own start-up (`ds01 --help`): {_t(r['cli_startup_s'])}")
    if "diff_s" in r:
        notes.append(f"`docker diff` of a fresh container alone, the floor of any audit: {_t(r['diff_s'])}")
    if "deploy_part" in r:
        notes.append(f"of which deploy {_t(r['deploy_part'])}")
    if "rescued_files" in r:
        notes.append(f"{r['rescued_files']} files rescued (empty rescue)")
    if "per_file_us" in r:
        notes.append(f"{r['per_file_us']:.1f} us/file; {r['found']} work files found")
    if "marginal_us_per_file" in r:
        notes.append(
            f"each file added since the last step {r['marginal_us_per_file']:.1f} us (docker diff "
            f"{r['baseline_marginal_us_per_file']:.1f} us, ours beyond the diff "
            f"{r['marginal_us_per_file'] - r['baseline_marginal_us_per_file']:.1f} us)"
        )
    if "walk_s" in r:
        notes.append(f"of which the upper-directory walk {_t(r['walk_s'])} and classifying {_t(r['classify_s'])}")
    if "running" in r:
        notes.append(f"{r['running']} of the user's containers running meanwhile")
    if "du_bytes" in r:
        notes.append(f"{r['files']} files, {r['bytes']} bytes (du: {r['du_bytes']})")
    if "readers" in r:
        notes.append(f"read by {r['readers']} processes side by side (one per CPU, at most side_by_side.WALKERS); "
                     f"by one alone: {_t(r['alone_s'])}")
    if "jupyterlab_per_min" in r:
        notes.append(
            f"JupyterLab's own polling {r['jupyterlab_per_min']:.1f}/min; baseline {r['baseline']['how']}; "
            f"{r['window_s']:.0f} s window"
        )
    if "gpus" in r:
        notes.append(f"{r['gpus']} GPUs")
    if "cached_s" in r:
        notes.append(f"the answer kept for a second (the sidebar's, deploys', the reaper's): {_t(r['cached_s'])}")
    if "device" in r:
        notes.append(f"measured on {r['device']}")
    if "checks" in r:
        notes.append("checks there: " + ", ".join(f"{name} {outcome}" for name, outcome in r["checks"].items()))
    return "; ".join(notes)


def write(results: dict) -> None:
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        "`.venv/bin/python bench/run.py` (about five minutes) rewrites this file and `results.json`.",
        "Each result is the median of several runs (min to max in brackets) and its ratio to the",
        "baseline measured in the same run: below 1 is faster than the baseline. Benchmarks never fail CI.",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, {m['memory_gib']} GiB; measured {m['date']}.",
        f"Versions: ds01-jupyter {m['ds01_jupyter']}, Python {m['python']}, Docker {m['docker']}, "
        f"jupyter_server {m['jupyter_server']}, JupyterLab {m['jupyterlab']}, JupyterHub {m['jupyterhub']}, "
        f"DockerSpawner {m['dockerspawner']}, nvidia-ml-py {m['nvidia_ml_py']}, Node {m['node']}, {m['chromium']}.",
        "",
        "| # | benchmark | ours | baseline | ratio | target | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (_, _, item) in BENCHMARKS.items():
        for r in results["benchmarks"].get(name, {}).get("results", []):
            lines.append(_row(item, r))
    lines += ["", "What each measures (see the module of the same name in bench/):", ""]
    for name, (_, what, item) in BENCHMARKS.items():
        group = results["benchmarks"].get(name)
        when = f", measured {group['date']}" if group else ", not run yet"
        lines.append(f"- `{name}` ({item}): {what}{when}.")
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


def merge_device(path: Path) -> None:
    """Put the GPU results measured on another machine (bench/device_check.py) into results.json and RESULTS.md,
    each with that machine and its checks."""
    report = json.loads(path.read_text())
    where = report["machine"]
    device = (f"{', '.join(where['gpus']) or 'no GPU'} (driver {where['driver']}, nvidia-ml-py "
              f"{where['nvidia_ml_py']}, {where['cpus']} CPUs, {where['platform']}, Python {where['python']})")
    checks = {name: check["outcome"] for name, check in report["checks"].items()}
    results = json.loads((HERE / "results.json").read_text())
    group = report["gpu"]
    group["results"] = [{**r, "device": device, "checks": checks} for r in group["results"]]
    results["benchmarks"]["gpu"] = group
    write(results)
    print((HERE / "RESULTS.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--merge", type=Path, metavar="FILE",
                        help="instead of running: take the gpu results device_check.py wrote on a GPU machine")
    args = parser.parse_args()
    if args.merge:
        merge_device(args.merge)
        return
    chosen = args.only or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    previous = {}
    if (HERE / "results.json").exists():
        try:
            previous = json.loads((HERE / "results.json").read_text()).get("benchmarks", {})
        except ValueError:
            previous = {}
    # Results kept from an earlier run of other benchmarks carry their own date.
    kept = {k: v for k, v in previous.items() if k in BENCHMARKS and isinstance(v, dict) and "results" in v}
    results = {"machine": machine(), "repeat": args.repeat, "benchmarks": kept}
    for name in chosen:
        print(f"running {name}...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        found = run_one(name, args.repeat)
        results["benchmarks"][name] = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seconds": round(time.perf_counter() - start, 1),
            "results": found,
        }
        print(f"  {name} took {results['benchmarks'][name]['seconds']} s", file=sys.stderr, flush=True)
        write(results)  # after each, so an interrupted run keeps what it measured
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
