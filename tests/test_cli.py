"""The commands DS01 users know, run as real processes against the real engine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_environ

from ds01_jupyter.core.limits import Limits, host_resources
from ds01_jupyter.core.settings import env_may_set_admin_settings

BIN = Path(sys.executable).parent


def run(cmd, env, *args, check_code=None):
    proc = subprocess.run(
        [str(BIN / cmd), *args], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    if check_code is not None:
        assert proc.returncode == check_code, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def env(make_core, home):
    return cli_environ(make_core.settings(), home)


def test_the_documented_walkthrough(env, home, project_name):
    name = project_name()
    run("project-init", env, name, check_code=0)
    assert (home / "workspace" / name / "notebooks").is_dir()
    assert (home / "dockerfiles" / f"{name}.Dockerfile").is_file()

    deployed = run("container-deploy", env, name, "--background", "--json", check_code=0)
    data = json.loads(deployed.stdout)
    assert data["created"] and data["container"]["state"] == "running"
    assert "Building" in deployed.stderr  # progress on stderr, JSON clean on stdout

    listed = run("container-run", env, name, "--", "ls", "/workspace", check_code=0)
    assert {"data", "models", "notebooks", "README.md"} <= set(listed.stdout.split())
    failing = run("container-run", env, name, "--", "sh", "-c", "exit 7")
    assert failing.returncode == 7

    table = run("container-list", env, check_code=0).stdout
    assert name in table and "running" in table
    status = json.loads(run("ds01", env, "status", "--json", check_code=0).stdout)
    assert [p["state"] for p in status["projects"] if p["project"] == name] == ["running"]
    limits = run("check-limits", env, check_code=0).stdout
    assert "max_containers_per_user" in limits and re.search(
        r"containers +\d+ of " + ("100" if env_may_set_admin_settings() else r"\d+"), limits
    )
    assert (home / ".ds01-limits").is_file()

    run("container-stop", env, name, check_code=0)
    assert json.loads(run("ds01", env, "--json", "status", name, check_code=0).stdout)["state"] == "exited"
    run("container-start", env, name, check_code=0)
    retired = run("container-retire", env, name, check_code=0)
    assert "stays" in retired.stdout
    assert (home / "workspace" / name / "README.md").is_file()
    assert name not in run("container-list", env, check_code=0).stdout


def test_errors_exit_1_with_a_message_and_usage_errors_exit_2(env, project_name):
    bad = run("project-init", env, "../escape")
    assert bad.returncode == 1 and "Invalid project name" in bad.stderr and "lowercase" in bad.stderr
    missing = run("container-deploy", env, "nope", "--background")
    assert missing.returncode == 1 and "project-init nope" in missing.stderr
    as_json = run("ds01", env, "--json", "container-stop", "nope")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"] == "ProjectNotFound"
    usage = run("container-deploy", env, "x", "--gpus", "-1")
    assert usage.returncode == 2
    assert run("ds01", env).returncode == 2


def test_docker_down_is_one_clear_line(env, project_name):
    env = dict(env, DOCKER_HOST="unix:///nonexistent/docker.sock")
    name = project_name()
    run("project-init", env, name, check_code=0)  # projects work without Docker
    down = run("container-list", env)
    assert down.returncode == 1
    assert "Cannot reach the Docker engine" in down.stderr and "docker info" in down.stderr
    assert "Traceback" not in down.stderr
    limits = run("check-limits", env, check_code=0).stdout  # limits are a file; use needs the engine
    assert "max_containers_per_user" in limits and "Current use: unknown" in limits and "Docker" in limits


def test_audit_exit_codes_and_retire_needs_a_choice(env, home, project_name):
    name = project_name()
    run("project-init", env, name, check_code=0)
    run("container-deploy", env, name, "--background", check_code=0)
    clean = run("ds01", env, "audit", name, "--json", check_code=0)
    assert [f for f in json.loads(clean.stdout) if f["kind"] in ("work", "environment")] == []
    run("container-run", env, name, "--", "sh", "-c", "echo 1,2 > /tmp/result.csv", check_code=0)
    risky = run("ds01", env, "audit", name, "--json")
    assert risky.returncode == 3
    findings = json.loads(risky.stdout)
    assert {"path", "kind", "size", "source"} <= set(findings[0])
    assert findings[0]["path"] == "/tmp/result.csv" and findings[0]["kind"] == "work" and findings[0]["size"] == 4
    refused = run("container-retire", env, name)
    assert refused.returncode == 1 and "--rescue" in refused.stderr and "/tmp/result.csv" in refused.stderr
    assert name in run("container-list", env, check_code=0).stdout
    assert run("container-retire", env, name, "--rescue", "--discard").returncode == 2
    done = run("container-retire", env, name, "--rescue", check_code=0)
    assert "Rescued 1 files" in done.stdout
    assert list((home / "workspace" / name / ".rescued").glob("*/tmp/result.csv"))


def test_check_limits_says_when_defaults_are_capped_at_the_host(env):
    host = host_resources()
    text = run("check-limits", env, check_code=0).stdout
    for key in ("memory", "shm_size", "max_cpus"):
        if getattr(Limits(), key) > host[key]:
            assert f"note: {key}: the default" in text and "capped at what this host has" in text
    data = json.loads(run("check-limits", env, "--json", check_code=0).stdout)["limits"]
    assert data["memory"] <= host["memory"] and data["max_cpus"] <= host["max_cpus"]
    assert data["shm_size"] <= host["memory"] and data["memory_swap"] <= host["memory_swap"]
