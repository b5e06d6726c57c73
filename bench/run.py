"""Benchmarks of what users wait for, each against the baseline they would use instead.

Run from the repository root (Docker must be running):

    .venv/bin/python bench/run.py            # everything measured so far
    .venv/bin/python bench/run.py audit      # one benchmark

Writes bench/results.json and bench/RESULTS.md (machine, versions, medians and spread of
several runs, each result as a ratio to its baseline measured in the same run).
Benchmarks never fail on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ds01_jupyter import __version__  # noqa: E402
from ds01_jupyter.core import DS01, Settings, User  # noqa: E402
from ds01_jupyter.core.disk import tree_size  # noqa: E402

HERE = Path(__file__).resolve().parent


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(samples: list[float]) -> dict:
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "runs": len(samples),
    }


def scratch_core(tmp: Path) -> tuple[DS01, User]:
    me = User.current()
    user = User(me.name, me.uid, me.gid, tmp / "home")
    (tmp / "gpus.json").write_text("[]")
    (tmp / "limits.yaml").write_text("defaults:\n  max_containers_per_user: 100\n")
    settings = Settings(
        lock_dir=str(tmp / "locks"), gpu_inventory=str(tmp / "gpus.json"), limits_file=str(tmp / "limits.yaml"),
        interface="bench", stop_timeout=1,
    )
    return DS01(settings), user


def bench_audit(repeat: int) -> list[dict]:
    """Persistence audit with 1k, 10k, 100k files in the writable layer, against `docker diff`."""
    results = []
    with tempfile.TemporaryDirectory(prefix="ds01-bench-") as tmp:
        core, user = scratch_core(Path(tmp))
        name = f"bench{os.getpid()}"
        core.projects.create(user, name)
        cid = core.containers.deploy(user, name).container.id
        try:
            made = 0
            for count in (1_000, 10_000, 100_000):
                script = (
                    "import os\n"
                    f"for i in range({made}, {count}):\n"
                    "    d = f'/data/bench/{i // 1000}'\n"
                    "    os.makedirs(d, exist_ok=True)\n"
                    "    open(f'{d}/f{i}.csv', 'w').write('x' * 100)\n"
                )
                code, out = core.engine.exec(cid, ["python3", "-c", script])
                assert code == 0, out
                made = count
                ours = timed(lambda: core.guard.audit(user, name), repeat)
                base = timed(lambda: subprocess.run(["docker", "diff", cid], check=True, capture_output=True), repeat)
                audit = core.guard.audit(user, name)
                results.append(
                    {
                        "name": f"audit {count} files",
                        "ours": summary(ours),
                        "baseline": {"what": "docker diff (CLI)", **summary(base)},
                        "ratio": statistics.median(ours) / statistics.median(base),
                        "per_file_us": statistics.median(ours) / count * 1e6,
                        "found": sum(f.files for f in audit.findings if f.kind == "work"),
                    }
                )
        finally:
            core.engine.remove_container(cid, force=True)
            core.close()
    return results


def bench_disk(repeat: int) -> list[dict]:
    """Workspace size with 100k files, first and repeated, against `du -s`."""
    with tempfile.TemporaryDirectory(prefix="ds01-bench-disk-") as tmp:
        root = Path(tmp) / "ws"
        for d in range(100):
            folder = root / f"d{d}"
            folder.mkdir(parents=True)
            for i in range(1000):
                (folder / f"f{i}").write_bytes(b"x" * 10)
        subprocess.run(["sync"], check=False)
        first = timed(lambda: tree_size(root), 1)
        ours = timed(lambda: tree_size(root), repeat)
        base = timed(lambda: subprocess.run(["du", "-s", str(root)], check=True, capture_output=True), repeat)
        size = tree_size(root)
        du = int(subprocess.run(["du", "-s", "-B1", str(root)], capture_output=True, text=True).stdout.split()[0])
    return [
        {
            "name": "workspace size, 100k files",
            "ours": summary(ours),
            "first_s": first[0],
            "baseline": {"what": "du -s", **summary(base)},
            "ratio": statistics.median(ours) / statistics.median(base),
            "bytes": size.bytes,
            "du_bytes": du,
        }
    ]


BENCHMARKS = {"audit": bench_audit, "disk": bench_disk}


def machine() -> dict:
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "docker": docker.stdout.strip() or "unavailable",
        "ds01_jupyter": __version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def write(results: dict) -> None:
    (HERE / "results.json").write_text(json.dumps(results, indent=1))
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']}; Python {m['python']}; Docker {m['docker']}; {m['cpus']} CPUs; {m['platform']}; "
        f"ds01-jupyter {m['ds01_jupyter']}. Medians of {results['repeat']} runs (min-max), "
        "each against its baseline measured in the same run.",
        "",
        "| benchmark | ours (median, min-max) | baseline | baseline (median) | ratio | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for group in results["benchmarks"].values():
        for r in group:
            o, b = r["ours"], r["baseline"]
            notes = []
            if "per_file_us" in r:
                notes.append(f"{r['per_file_us']:.1f} us/file, {r['found']} work files found")
            if "first_s" in r:
                notes.append(f"first run {r['first_s'] * 1000:.0f} ms; {r['bytes']} bytes (du: {r['du_bytes']})")
            lines.append(
                f"| {r['name']} | {o['median_s'] * 1000:.0f} ms ({o['min_s'] * 1000:.0f}-{o['max_s'] * 1000:.0f}) | "
                f"{b['what']} | {b['median_s'] * 1000:.0f} ms | {r['ratio']:.2f}x | {'; '.join(notes)} |"
            )
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    chosen = args.only or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    previous = {}
    if (HERE / "results.json").exists():
        previous = json.loads((HERE / "results.json").read_text()).get("benchmarks", {})
    results = {"machine": machine(), "repeat": args.repeat, "benchmarks": dict(previous)}
    for name in chosen:
        print(f"running {name}...", file=sys.stderr, flush=True)
        results["benchmarks"][name] = BENCHMARKS[name](args.repeat)
    write(results)
    print((HERE / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
