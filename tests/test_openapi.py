"""The shipped OpenAPI description matches the handlers, and fuzzing it finds no 5xx."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from importlib import resources
from pathlib import Path

import pytest
import yaml

from ds01_jupyter.server.handlers import handlers

SPEC = yaml.safe_load(resources.files("ds01_jupyter.server").joinpath("openapi.yaml").read_text())
ST = Path(sys.executable).with_name("st")


def routes_from_handlers() -> set[tuple[str, str]]:
    found = set()
    for pattern, cls in handlers():
        path = pattern.removeprefix("/ds01")
        alternatives = [path]
        match = re.search(r"\(\?P<(\w+)>([a-z|]+)\)", path)
        if match and "|" in match.group(2):  # an enumerated action: one path each
            alternatives = [path.replace(match.group(0), word) for word in match.group(2).split("|")]
        for alt in alternatives:
            alt = re.sub(r"\(\?P<(\w+)>[^)]+\)", r"{\1}", alt)
            for method in ("get", "post", "put", "patch", "delete"):
                if method in cls.__dict__:
                    found.add((alt, method))
    return found


def test_spec_and_handlers_describe_the_same_routes():
    in_spec = {(path, method) for path, ops in SPEC["paths"].items() for method in ops if method != "parameters"}
    assert in_spec == routes_from_handlers()


def json_nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: Paths the fuzzer is told to try in /notebook-check, beside what it generates: special files
#: planted in the server's root, links to them, NULs, odd unicode, traversal.
ADVERSARIAL_PATHS = ["fifo.ipynb", "link-to-fifo.ipynb", "zero.ipynb", "dir.ipynb", "sock.ipynb", "huge.ipynb",
                     "deep.ipynb", "loop.ipynb", "nb/good.ipynb\x00", "\x00", "\u202e\U0001f600.ipynb", "\udcff",
                     "../../../../dev/zero", "/dev/stdin", "/proc/self/fd/0", "a" * 5000, "nb/" + "x/" * 2500]
#: Bodies beyond what the schema allows, at the extremes of depth and size.
ADVERSARIAL_BODIES = [{"name": json_nested(40)}, {"cells": json_nested(60)}, {"name": "x" * 100_000},
                      {"cells": ["'/" * 300_000]}, {"path": "x", "deep": json_nested(200)}]


@pytest.fixture
def special_files(jp_root_dir):
    """A FIFO, a socket, a device link, a directory, a huge file and a deep notebook in the server's root."""
    root = jp_root_dir
    (root / "nb").mkdir()
    (root / "nb" / "good.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "open(\'/tmp/x\', \'w\')"}]}')
    os.mkfifo(root / "fifo.ipynb")
    (root / "link-to-fifo.ipynb").symlink_to(root / "fifo.ipynb")
    (root / "zero.ipynb").symlink_to("/dev/zero")
    (root / "dir.ipynb").mkdir()
    (root / "loop.ipynb").symlink_to(root / "loop.ipynb")
    with open(root / "huge.ipynb", "wb") as f:
        f.truncate(64 * 2**20)  # sparse
    (root / "deep.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    short = tempfile.mkdtemp(prefix="ds01-")  # AF_UNIX paths are short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(short, "s"))
    os.link(os.path.join(short, "s"), root / "sock.ipynb")
    yield root
    sock.close()
    shutil.rmtree(short)
    try:  # free a server thread stuck opening the FIFO, if any (the bug this guards against)
        os.close(os.open(root / "fifo.ipynb", os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def adversarial(spec: dict) -> dict:
    """The served description plus explicit examples the fuzzer sends first, and no ?wait.

    `wait` is dropped so that a generated project name that happens to exist never makes the
    fuzzer wait for a whole image build: every answer must then come within seconds.
    """
    for path, ops in spec["paths"].items():
        for op in ops.values():
            if isinstance(op, dict):
                op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "wait"]
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                if body is not None:
                    examples = [{"path": p} for p in ADVERSARIAL_PATHS] if path == "/notebook-check" else []
                    examples += ADVERSARIAL_BODIES
                    body["examples"] = {f"adversarial{i}": {"value": v} for i, v in enumerate(examples)}
    return spec


@pytest.mark.skipif(not ST.exists(), reason="schemathesis is not installed")
# jupyter_server's SessionManager.__del__ may close its sqlite cursor from the garbage collector's
# thread during this long test ("SQLite objects created in a thread..."): not ours, and harmless.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_fuzzing_the_api_finds_no_server_error(
    jp_fetch, jp_http_port, jp_base_url, jp_auth_header, engine, tmp_path, special_files, monkeypatch
):
    # POST /images/prune with {"confirm": true} would delete every unused image of this Unix user, and the
    # server's user is the one running the tests: other test files' builds (one about to be deployed, too) and
    # other runs' on this host. The fuzzer gets the preview; tests/test_guide.py deletes, for a user of its own.
    from ds01_jupyter.core.cleanup import Cleanup

    preview = Cleanup.prune_images
    monkeypatch.setattr(Cleanup, "prune_images", lambda self, user, confirm=False: preview(self, user, False))
    await jp_fetch("ds01", "version")  # the test server listens once a client fixture asked for it
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}ds01"
    served = yaml.safe_load((await jp_fetch("ds01", "openapi.yaml")).body)  # the document the server serves
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(adversarial(served)))
    proc = await asyncio.create_subprocess_exec(
        str(ST), "run", str(spec), "--url", base,
        "-H", f"Authorization: {jp_auth_header['Authorization']}",
        # A hang shows as a timeout; 30 s leaves room for a real audit of a container just deployed
        # under the fuzzer's load (several seconds). tests/test_api_input.py holds input checks to 5 s.
        "--checks", "not_a_server_error", "--max-response-time", "30",
        "--generation-allow-x00", "true",
        "--exclude-path", "/events",
        "--max-examples", "10", "--max-time", "60", "--request-timeout", "20",
        "--report-dir", str(tmp_path), "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    # Deploys the fuzzer started run on in the background: let them end, so the test's clean-up finds
    # their containers (one made after it would stay and count against this Unix user's limits).
    for _ in range(360):
        listed = json.loads((await jp_fetch("ds01", "operations")).body)["operations"]
        if not any(o["state"] == "running" for o in listed):
            break
        await asyncio.sleep(0.5)
    assert proc.returncode == 0, text[-4000:]
    print(text[-3000:])
    assert re.search(r"\d+ passed", text) or "passed" in text.lower(), text[-2000:]
    assert "Examples" in text, text[-2000:]  # the adversarial examples were sent


def test_readme_configuration_tables_are_generated_from_the_traits():
    from ds01_jupyter.config_docs import CONFIGURABLES, load, traits_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for path, _ in CONFIGURABLES:
        table = traits_table(load(path))
        assert table.count("\n") > 2, path  # the class has options of its own
        assert table in readme, f"README's table of {path} is stale: python -m ds01_jupyter.config_docs"


def test_routes_a_hub_server_cannot_answer_are_marked_and_answer_409():
    """One route table serves both modes; in a hub server's container the host-only ones answer 409 (documented)."""
    host_only = {(path, method) for path, ops in SPEC["paths"].items() for method, op in ops.items()
                 if isinstance(op, dict) and op.get("x-ds01-host-only")}
    assert ("/projects/{name}/deploy", "post") in host_only and ("/usage", "get") in host_only
    assert not {("/projects/{name}/audit", "get"), ("/projects/{name}/stop", "post"), ("/limits", "get")} & host_only
    for path, method in host_only:
        responses = SPEC["paths"][path][method]["responses"]
        assert "409" in responses or "default" in responses, (path, method)
