"""How the audit grows from 1k to 1M files (deploy time with containers already running: crowd.py).

Audit: files are added to one running container step by step (as in audit.py); at each step the
whole audit, ``docker diff`` and, apart, the audit's parts (the upper-directory walk, the
classification into findings) are timed, so the notes say where the time goes. The largest step
is ``DS01_BENCH_GROWTH_MAX`` files (default 300000: on a 2-CPU host 1M files take many minutes to
write and walk; set 1000000 where there is room).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from audit import _write_files
from harness import scratch
from timing import result, timed

from ds01_jupyter.core import upperdir
from ds01_jupyter.core.errors import DS01Error
from ds01_jupyter.core.findings import layer_findings

STEPS = (1_000, 10_000, 100_000, 300_000, 1_000_000)


def _audit_growth(repeat: int) -> list[dict]:
    largest = int(os.environ.get("DS01_BENCH_GROWTH_MAX", "300000"))
    out: list[dict] = []
    try:
        _audit_steps(largest, repeat, out)
    except DS01Error as err:  # removing a container of 300k files may outlast the engine's timeout
        if not out:
            raise
        out[-1]["cleanup"] = f"removing the container afterwards failed: {err}"
    return out


def _audit_steps(largest: int, repeat: int, out: list[dict]) -> None:
    with scratch() as s:
        name = s.project()
        cid = s.core.containers.deploy(s.user, name, gpus=0).container.id
        made = 0
        for count in [c for c in STEPS if c <= largest]:
            _write_files(s.core, cid, made, count)
            made = count
            ours = timed(lambda: s.core.guard.audit(s.user, name), repeat)
            base = timed(lambda: subprocess.run(["docker", "diff", cid], check=True, capture_output=True), repeat)
            record = s.core.containers.record(s.user, name)
            try:
                where = upperdir.locate(s.core.engine, record)
            except upperdir.Unreadable as why:  # not root, or not overlay2: only the whole audit is timed
                walk_s = classify_s = None
                how = f"engine diff ({why})"
            else:
                walks = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    layer = upperdir.walk(*where, leave_out=frozenset({"/workspace"}))
                    walks.append(time.perf_counter() - start)
                walk_s = statistics.median(walks)
                classify_s = statistics.median(timed(lambda stats=layer.stats: layer_findings(stats), repeat))
                how = "upper directory"
            r = result(f"audit growth, {count} files", ours, "docker diff (CLI)", base, changes_from=how)
            r["per_file_us"] = r["ours"]["median_s"] / count * 1e6
            r["found"] = sum(f.files for f in s.core.guard.audit(s.user, name).findings if f.kind == "work")
            if walk_s is not None:
                r["walk_s"], r["classify_s"] = walk_s, classify_s
            out.append(r)
            print(f"  audit growth {count}: ours {r['ours']['median_s']:.2f} s, docker diff "
                  f"{r['baseline']['median_s']:.2f} s, walk {walk_s}, classify {classify_s}",
                  file=sys.stderr, flush=True)


def run(repeat: int) -> list[dict]:
    return _audit_growth(repeat)
