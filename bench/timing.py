"""Medians, spread and ratios of timed runs: the standard library only, so that a benchmark that needs neither
Docker nor ds01's dependencies (gpu.py on a GPU machine) can run with a bare Python."""

from __future__ import annotations

import math
import statistics
import time


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(samples: list[float]) -> dict:
    """Median and spread of several runs, in seconds."""
    ordered = sorted(samples)
    return {
        "median_s": statistics.median(ordered),
        "min_s": ordered[0],
        "max_s": ordered[-1],
        "runs": len(ordered),
    }


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (nearest rank): with 100 samples p99 is the second slowest."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def result(name: str, ours: list[float], baseline_what: str, base: list[float], **extra) -> dict:
    """One measured result, with its ratio to the baseline measured in the same run."""
    return {
        "name": name,
        "ours": summary(ours),
        "baseline": {"what": baseline_what, **summary(base)},
        "ratio": statistics.median(ours) / statistics.median(base),
        **extra,
    }


def not_measured(name: str, why: str) -> dict:
    return {"name": name, "not_measured": why}
