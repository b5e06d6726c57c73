"""Persistence audit with 1k, 10k and 100k files in the writable layer, against `docker diff`.

The guard reads the engine's diff too, then sizes and classifies every path;
the question is how much that adds, and that it grows linearly with the files.
Files are added to one running container between the steps.
"""

from __future__ import annotations

import subprocess

from harness import scratch
from timing import result, timed

STEPS = (1_000, 10_000, 100_000)


def _write_files(core, cid: str, start: int, stop: int) -> None:
    script = (
        "import os\n"
        f"for i in range({start}, {stop}):\n"
        "    d = f'/data/bench/{i // 1000}'\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    open(f'{d}/f{i}.csv', 'w').write('x' * 100)\n"
    )
    code, out = core.engine.exec(cid, ["python3", "-c", script])
    if code != 0:
        raise RuntimeError(f"writing files in the container failed: {out[-300:]!r}")


def run(repeat: int) -> list[dict]:
    results = []
    with scratch() as s:
        name = s.project()
        cid = s.core.containers.deploy(s.user, name, gpus=0).container.id
        made = 0
        previous = None
        for count in STEPS:
            _write_files(s.core, cid, made, count)
            ours = timed(lambda: s.core.guard.audit(s.user, name), repeat)
            base = timed(lambda: subprocess.run(["docker", "diff", cid], check=True, capture_output=True), repeat)
            found = sum(f.files for f in s.core.guard.audit(s.user, name).findings if f.kind == "work")
            r = result(f"audit, {count} files", ours, "docker diff (CLI)", base, found=found)
            r["per_file_us"] = r["ours"]["median_s"] / count * 1e6
            if previous is not None:
                # Cost of each file added since the last step: flat when the audit grows linearly.
                added = count - previous[0]
                r["marginal_us_per_file"] = (r["ours"]["median_s"] - previous[1]) / added * 1e6
                r["baseline_marginal_us_per_file"] = (r["baseline"]["median_s"] - previous[2]) / added * 1e6
                r["own_marginal_us_per_file"] = r["marginal_us_per_file"] - r["baseline_marginal_us_per_file"]
            previous = (count, r["ours"]["median_s"], r["baseline"]["median_s"])
            results.append(r)
            made = count
    return results
