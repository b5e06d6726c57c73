"""The shipped OpenAPI description matches the handlers, and fuzzing it finds no 5xx."""

from __future__ import annotations

import asyncio
import os
import re
import sys
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


@pytest.mark.skipif(not ST.exists(), reason="schemathesis is not installed")
# jupyter_server's SessionManager.__del__ may close its sqlite cursor from the garbage collector's
# thread during this long test ("SQLite objects created in a thread..."): not ours, and harmless.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_fuzzing_the_api_finds_no_server_error(jp_fetch, jp_http_port, jp_base_url, jp_auth_header, engine, tmp_path):
    await jp_fetch("ds01", "version")  # the test server listens once a client fixture asked for it
    base = f"http://127.0.0.1:{jp_http_port}{jp_base_url}ds01"
    spec = tmp_path / "openapi.yaml"
    spec.write_bytes((await jp_fetch("ds01", "openapi.yaml")).body)  # the document the server serves
    proc = await asyncio.create_subprocess_exec(
        str(ST), "run", str(spec), "--url", base,
        "-H", f"Authorization: {jp_auth_header['Authorization']}",
        "--checks", "not_a_server_error",
        "--exclude-path", "/events",
        "--max-examples", "10", "--max-time", "60", "--request-timeout", "120",
        "--report-dir", str(tmp_path), "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    assert proc.returncode == 0, text[-4000:]
    print(text[-3000:])
    assert re.search(r"\d+ passed", text) or "passed" in text.lower(), text[-2000:]


def test_readme_configuration_tables_are_generated_from_the_traits():
    from ds01_jupyter.config_docs import CONFIGURABLES, load, traits_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for path, _ in CONFIGURABLES:
        table = traits_table(load(path))
        assert table.count("\n") > 2, path  # the class has options of its own
        assert table in readme, f"README's table of {path} is stale: python -m ds01_jupyter.config_docs"
