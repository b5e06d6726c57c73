"""Idle network cost of one open DS01 sidebar, against jupyter-resource-usage's polling.

One JupyterLab page in headless Chromium (Playwright), with the DS01 sidebar
open on a user with one running container and jupyter-resource-usage installed
beside it; nothing changes for WINDOW seconds. Requests to the server are
counted by endpoint: /ds01/* (ours: the sidebar and its event stream),
/api/metrics/* (resource-usage's poll), and the rest (JupyterLab's own).
Both extensions are measured on the same page in the same minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import ROOT, scratch, server, which
from timing import not_measured

NAME = "idle network, one open sidebar"
WINDOW_S = float(os.environ.get("DS01_BENCH_IDLE_WINDOW", "60"))
SETTLE_S = 10
RESOURCE_USAGE = Path(os.environ.get("DS01_BENCH_RESOURCE_USAGE", "/tmp/ds01-bench-resource-usage"))
#: jupyter-resource-usage's documented default refreshRate (ms), used when it cannot be installed.
RESOURCE_USAGE_REFRESH_MS = 5000


def _playwright() -> Path | None:
    for candidate in (
        os.environ.get("DS01_BENCH_PLAYWRIGHT", ""),
        ROOT / "labextension/ui-tests/node_modules/playwright-core",
        ROOT / "labextension/node_modules/playwright-core",
    ):
        if candidate and (Path(candidate) / "package.json").exists():
            return Path(candidate)
    return None


def missing() -> str | None:
    if not which("node"):
        return "node is not installed"
    if not which("chromium"):
        return "Debian's chromium is not installed (apt-get install chromium; .ci/ui-test does)"
    if not _playwright():
        return "Playwright is not installed (run .ci/ui-test, or jlpm in labextension/ui-tests)"
    if not (ROOT / "ds01_jupyter/labextension/static").is_dir():
        return "the sidebar is not built (jlpm build in labextension/, or .ci/ui-test)"
    return None


def _install_resource_usage() -> str:
    """Install jupyter-resource-usage beside (not into) the project's environment; say how it went."""
    if (RESOURCE_USAGE / "jupyter_resource_usage").is_dir():
        return ""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(RESOURCE_USAGE),
         "jupyter-resource-usage"],
        capture_output=True, text=True,
    )
    return "" if done.returncode == 0 else done.stderr.strip().splitlines()[-1][:200]


def run(repeat: int) -> list[dict]:
    why = missing()
    if why:
        return [not_measured(NAME, why)]
    failed = _install_resource_usage()
    env = {}
    extra = ""
    if not failed:
        env = {
            "PYTHONPATH": str(RESOURCE_USAGE),
            "JUPYTER_PATH": str(RESOURCE_USAGE / "share/jupyter"),
            "JUPYTER_CONFIG_PATH": str(RESOURCE_USAGE / "etc/jupyter"),
        }
        extra = "c.ServerApp.jpserver_extensions = {'ds01_jupyter': True, 'jupyter_resource_usage': True}\n"
    with scratch() as s:
        name = s.project()
        s.core.containers.deploy(s.user, name, gpus=0)  # a running container: the sidebar's busiest idle state
        with server(s, app="lab", extra_config=extra, env=env) as srv:
            done = subprocess.run(
                ["node", str(Path(__file__).with_name("idle_network.cjs")), str(_playwright()), which("chromium"),
                 srv.url, srv.token, str(SETTLE_S), str(WINDOW_S)],
                capture_output=True, text=True, timeout=WINDOW_S + 180,
            )
        if done.returncode != 0:
            return [not_measured(NAME, f"the browser run failed: {done.stderr.strip()[-400:]}")]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
    per_min = {k: v * 60 / WINDOW_S for k, v in seen["counts"].items()}
    if failed:
        baseline = 60_000 / RESOURCE_USAGE_REFRESH_MS
        how = f"computed from its documented {RESOURCE_USAGE_REFRESH_MS} ms refreshRate (install failed: {failed})"
    else:
        baseline = per_min["resource_usage"]
        how = "measured on the same page"
    return [
        {
            "name": NAME,
            "unit": "requests/min",
            "ours": {"value": per_min["ds01"], "what": "/ds01/* requests per minute, sidebar open"},
            "baseline": {"what": "jupyter-resource-usage (/api/metrics/v1) per minute", "value": baseline, "how": how},
            "ratio": per_min["ds01"] / baseline if baseline else None,
            "jupyterlab_per_min": per_min["jupyterlab"],
            "window_s": WINDOW_S,
            "paths": seen["paths"],
            "ds01_at_load": seen.get("ds01_at_load", {}),
            "resource_usage_visible": seen.get("usage_visible"),
        }
    ]
