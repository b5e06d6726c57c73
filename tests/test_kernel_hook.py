"""The kernel-side audit hook, run in a fresh interpreter (audit hooks cannot be removed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import ds01_jupyter


def run_hooked(code: str, tmp_path: Path) -> tuple[str, list[dict]]:
    log = tmp_path / "writes.jsonl"
    program = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(ds01_jupyter.__file__).parent.parent)!r})
        from ds01_jupyter.kernels import hook
        hook.LOG = {str(log)!r}
        sys.addaudithook(hook.audit_hook)
        """
    ) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={"JPY_SESSION_NAME": "nb.ipynb"},
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done.stderr, records


def test_a_write_outside_workspace_is_reported_once_with_its_notebook(tmp_path):
    target = tmp_path / "lost.csv"
    err, records = run_hooked(
        f"""
        for _ in range(3):
            open({str(target)!r}, "a").write("x")
        open({str(target)!r}).read()  # reading is not a write
        """,
        tmp_path,
    )
    assert err.count("ds01 warning:") == 1 and f"{target} is outside /workspace" in err
    assert [(r["path"], r["notebook"]) for r in records] == [(str(target), "nb.ipynb")]


def test_tempfile_and_workspace_writes_are_not_warned_about(tmp_path):
    err, records = run_hooked(
        """
        import os, tempfile
        tempfile.tempdir = None
        tempfile.gettempdir()  # probes the folder with a randomly named file
        fd, path = tempfile.mkstemp(); os.close(fd); os.unlink(path)
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"x")
        try:
            open("/workspace/kept.csv", "w")
        except OSError:
            pass  # no /workspace on this host; the hook has decided before the open
        """,
        tmp_path,
    )
    assert "ds01 warning" not in err and records == []
