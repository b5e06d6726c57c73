"""Crashes, deliberate stops and deleted workspaces, on the real engine.

A container that ends by itself with an error (``docker kill``, the OOM killer) frees its GPU at once; one
stopped through ds01 keeps it for ``gpu_hold_after_stop``; check-limits and deploy count the same GPUs.
``container-run`` starts a stopped container and passes stdin and the exit code through. A project folder
deleted under its container leaves status, audit, rescue and retire working, and a folder made again says
what to do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import fake_gpus, remove_made
from test_cli import BIN

from ds01_jupyter.core import DS01, User
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.allocator import STOP_RECORD
from ds01_jupyter.core.errors import DS01Error, Forbidden, GpuUnavailable, StateConflict
from ds01_jupyter.core.settings import env_may_set_admin_settings

HOLDING = """
defaults:
  max_mig_instances: 8
  max_mig_per_container: 2
  max_containers_per_user: 100
  gpu_hold_after_stop: 1h
"""

ALLOCATE = "print('allocating', flush=True)\nblocks = []\nwhile True:\n    blocks.append(bytearray(8 * 2**20))\n"


def _wait_exited(core: DS01, name: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = core.engine.get_container(name)
        if record is not None and record.state in ("exited", "dead"):
            return record
        time.sleep(0.2)
    raise AssertionError(f"{name} did not exit")


def _kill(core: DS01, user: User, project: str) -> None:
    record = core.containers.record(user, project)
    subprocess.run(["docker", "kill", record.id], check=True, capture_output=True)
    _wait_exited(core, record.id)


@pytest.fixture
def bob(user, engine):
    """A second (made-up) user whose home they may reach: outside pytest's 0700 folders, as on a real host."""
    base = Path(tempfile.mkdtemp(prefix="ds01-bob-"))
    base.chmod(0o755)
    bob = User("bob-t", user.uid + 7, user.gid, base / "bob")
    yield bob
    for record in engine.list_containers(L.managed()):  # the fixtures' cleanup looks under tmp_path only
        if record.labels.get(L.WORKSPACE, "").startswith(str(base) + os.sep):
            remove_made(engine, record)
    projects = {p.name for p in (bob.home / "workspace").glob("*")}
    for image in engine.list_images(L.owned_by(bob)):  # bob's builds too, or every run leaves them behind
        if image.labels.get(L.PROJECT) in projects:
            try:
                engine.remove_image(image.id)
            except DS01Error:
                pass  # still used by a container of a concurrent run
    shutil.rmtree(base, ignore_errors=True)


def test_a_killed_container_frees_its_gpu_at_once_a_stopped_one_keeps_it(make_core, lone_user, bob, project_name):
    user = lone_user  # counted twice below (check-limits and deploy must agree): a user with no containers but these
    gpus = fake_gpus(2)
    core = make_core(limits=HOLDING, gpus=gpus)
    a, b, c = project_name(), project_name(), project_name()
    for name in (a, b):
        core.projects.create(user, name)
    core.projects.create(bob, c)
    core.containers.deploy(user, a, gpus=1)
    core.containers.deploy(user, b, gpus=1)
    mine = {g["uuid"] for g in gpus}  # other runs on this host may hold GPUs as the same Unix user
    assert mine <= set(core.containers.limits_and_use(user)["gpus"])

    core.containers.stop(user, a)  # deliberate: kept
    _kill(core, user, b)  # a crash: freed at once

    # A fresh core (another process, a restarted server) reads the same verdicts from the engine.
    fresh = make_core(limits=HOLDING, gpus=gpus)
    stopped, crashed = fresh.containers.status(user, a), fresh.containers.status(user, b)
    assert (stopped.ending, stopped.summary, stopped.holds_gpu) == ("stopped", "stopped", True)
    assert (crashed.ending, crashed.holds_gpu) == ("crashed", False)
    assert crashed.summary == "crashed (exit 137, SIGKILL)"
    _, slots, held = fresh.containers.gpu_use(user)
    usage = fresh.containers.limits_and_use(user)
    assert usage["gpu_slots"] == slots and mine & set(usage["gpus"]) == mine & set(held) == set(stopped.gpus)

    got = fresh.containers.deploy(bob, c, gpus=1).container  # the crashed one's GPU, not the stopped one's
    assert got.gpus == crashed.gpus
    d = project_name()
    core.projects.create(bob, d)
    with pytest.raises(GpuUnavailable):  # a's is still a's
        fresh.containers.deploy(bob, d, gpus=1)
    with pytest.raises(StateConflict) as info:  # b's went to bob
        fresh.containers.start(user, b)
    assert "released when it crashed (exit 137, SIGKILL)" in info.value.message and "retire" in info.value.hint.lower()


@pytest.mark.parametrize("ended", [KeyboardInterrupt, BrokenPipeError])
def test_a_deploy_ended_while_it_starts_leaves_no_container_holding_a_gpu(make_core, user, project_name, ended):
    """Ctrl-C in the command line, or a closed pipe for its progress, between the create and the start."""
    core = make_core(gpus=fake_gpus(1))
    name = project_name()
    core.projects.create(user, name)

    def progress(line):
        if line == "Starting container":
            raise ended()

    with pytest.raises(ended):
        core.containers.deploy(user, name, gpus=1, progress=progress)
    assert core.engine.get_container(f"{name}._.{user.name}") is None
    assert core.containers.deploy(user, name, gpus=1).container.gpus  # the GPU is free again


def test_a_stop_record_the_container_could_forge_or_an_old_one_counts_for_nothing(make_core, user, project_name):
    gpus = fake_gpus(1)
    core = make_core(limits=HOLDING, gpus=gpus)
    name = project_name()
    core.projects.create(user, name)
    core.containers.deploy(user, name, gpus=1)
    record = core.containers.record(user, name)
    # A record the container's own user wrote (their uid, not root's) is ignored.
    forged = json.dumps({"container": record.id, "started_at": record.started_at.isoformat(),
                         "requested_at": record.started_at.isoformat()}).encode()
    core.engine.put_file(record.id, STOP_RECORD, forged, mode=0o644, uid=user.uid or 1000, gid=user.gid or 1000)
    _kill(core, user, name)
    assert core.containers.status(user, name).ending == "crashed"
    assert gpus[0]["uuid"] not in core.containers.limits_and_use(user)["gpus"]

    # ds01's own record of an earlier run does not cover a later crash.
    core.containers.start(user, name)
    core.containers.stop(user, name)
    assert make_core(limits=HOLDING, gpus=gpus).containers.status(user, name).ending == "stopped"
    core.containers.start(user, name)
    _kill(core, user, name)
    status = make_core(limits=HOLDING, gpus=gpus).containers.status(user, name)
    assert status.ending == "crashed" and not status.holds_gpu
    # The guard never shows the record as work at risk.
    assert not [f for f in core.guard.audit(user, name).at_risk if ".ds01-stop" in f.path]


def test_out_of_memory_is_a_crash_with_the_last_log_lines(make_core, user, home, project_name):
    limits = "defaults:\n  memory: 64m\n  memory_swap: 64m\n  max_containers_per_user: 100\n"
    core = make_core(limits=limits)
    name = project_name()
    core.projects.create(user, name)
    core.containers.deploy(user, name, command=("python3", "-c", ALLOCATE))
    _wait_exited(core, core.containers.record(user, name).id, timeout=60)
    status = core.containers.status(user, name)
    assert status.summary == "crashed (exit 137, out of memory)" and status.oom_killed
    assert "allocating" in status.log_tail

    if env_may_set_admin_settings():  # the command line says the same
        env = _env(core, home)
        shown = subprocess.run([str(BIN / "ds01"), "status", name], env=env, capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
        assert shown.returncode == 0, shown.stderr
        assert "crashed (exit 137, out of memory)" in shown.stdout and "allocating" in shown.stdout


def _env(core: DS01, home: Path) -> dict:
    s = core.settings
    return {**os.environ, "HOME": str(home), "DS01_BASE_IMAGE": s.base_image, "DS01_STOP_TIMEOUT": "2",
            "DS01_GPU_REQUEST": s.gpu_request, "DS01_LOCK_DIR": s.lock_dir, "DS01_GPU_INVENTORY": s.gpu_inventory,
            "DS01_LIMITS_FILE": s.limits_file}


def _cli(env, *args, input: str | None = None) -> subprocess.CompletedProcess:
    cmd, *rest = args
    return subprocess.run([str(BIN / cmd), *rest], env=env, capture_output=True, text=True, timeout=300,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


@pytest.fixture
def cli_env(make_core, home):
    if not env_may_set_admin_settings():
        pytest.skip("the GPU list and limits come from the environment only for root or the admin")
    gpus = fake_gpus(1)
    core = make_core(limits=HOLDING, gpus=gpus)
    return core, _env(core, home), gpus[0]["uuid"]


def test_check_limits_and_deploy_agree_and_a_kill_frees_the_gpu(cli_env, user, project_name):
    core, env, gpu = cli_env
    a, b = project_name(), project_name()
    for name in (a, b):
        assert _cli(env, "project-init", name).returncode == 0
    assert _cli(env, "container-deploy", a, "--gpus", "1", "--background").returncode == 0
    assert _cli(env, "container-stop", a).returncode == 0
    limits = json.loads(_cli(env, "check-limits", "--json").stdout)
    assert gpu in limits["gpus"] and a in [h["project"] for h in limits["gpu_holders"]]
    assert re.search(a + r" +1 slot\(s\) \(exited, kept after its stop", _cli(env, "check-limits").stdout)
    refused = _cli(env, "container-deploy", b, "--gpus", "1", "--background")
    assert refused.returncode == 1 and "Not enough free GPUs" in refused.stderr

    assert _cli(env, "container-start", a).returncode == 0
    _kill(core, user, a)
    limits = json.loads(_cli(env, "check-limits", "--json").stdout)
    assert gpu not in limits["gpus"] and a not in [h["project"] for h in limits["gpu_holders"]]
    assert "crashed (exit 137, SIGKILL)" in _cli(env, "ds01", "status", a).stdout
    assert _cli(env, "container-deploy", b, "--gpus", "1", "--background").returncode == 0
    limits = json.loads(_cli(env, "check-limits", "--json").stdout)
    assert gpu in limits["gpus"] and b in [h["project"] for h in limits["gpu_holders"]]


def test_container_run_passes_stdin_and_exit_codes_and_starts_a_stopped_container(cli_env, user, project_name):
    core, env, _ = cli_env
    name = project_name()
    assert _cli(env, "project-init", name).returncode == 0
    assert _cli(env, "container-deploy", name, "--gpus", "0", "--background").returncode == 0
    piped = _cli(env, "container-run", name, "--", "cat", input="hi\n")
    assert piped.returncode == 0 and piped.stdout == "hi\n", piped.stderr
    heredoc = _cli(env, "container-run", name, "--", "python3", "-", input="import os\nprint(6 * 7, os.getcwd())\n")
    assert heredoc.stdout == "42 /workspace\n", heredoc.stderr
    assert _cli(env, "container-run", name, "--", "sh", "-c", "exit 7").returncode == 7

    assert _cli(env, "container-stop", name).returncode == 0
    started = _cli(env, "container-run", name, "--", "echo", "back")
    assert started.returncode == 0 and started.stdout == "back\n" and "starting it" in started.stderr
    _kill(core, user, name)
    again = _cli(env, "container-run", name, "--", "cat", input="after a crash\n")
    assert again.stdout == "after a crash\n" and "crashed (exit 137" in again.stderr


def test_a_deleted_workspace_keeps_status_audit_rescue_and_retire_working(make_core, user, home, project_name):
    core = make_core()
    name = project_name()
    folder = core.projects.create(user, name).path
    core.containers.deploy(user, name)
    code, _ = core.containers.exec(user, name, ["sh", "-c", "echo keep > /tmp/keep.txt"])
    assert code == 0
    shutil.rmtree(folder)

    status = core.containers.status(user, name)
    assert status.running and status.workspace_state == "missing"
    with pytest.raises(StateConflict) as info:
        core.containers.exec(user, name, ["true"])
    assert "was deleted" in info.value.message and "--rescue" in info.value.hint
    audit = core.guard.audit(user, name)
    assert "/tmp/keep.txt" in [f.path for f in audit.at_risk]

    if env_may_set_admin_settings():
        env = _env(core, home)
        table = _cli(env, "ds01", "status").stdout
        assert name in table and "workspace missing" in table
        run = _cli(env, "container-run", name, "--", "true")
        assert run.returncode == 1 and "was deleted" in run.stderr and "--rescue" in run.stderr
        assert _cli(env, "ds01", "audit", name).returncode == 3

    result = core.guard.retire(user, name, mode="rescue")
    assert result["container"]["state"] == "removed"
    assert folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == user.uid
    rescued = list((folder / ".rescued").glob("*/tmp/keep.txt"))
    assert len(rescued) == 1 and rescued[0].read_text() == "keep\n"
    assert core.containers.deploy(user, name).container.running  # the new folder is mounted


def test_a_workspace_made_again_under_a_running_container_says_what_to_do(make_core, user, project_name):
    core = make_core()
    name = project_name()
    folder = core.projects.create(user, name).path
    core.containers.deploy(user, name)
    shutil.rmtree(folder)
    folder.mkdir()
    assert core.containers.status(user, name).workspace_state == "replaced"
    for attempt in (lambda: core.containers.exec(user, name, ["true"]), lambda: core.containers.deploy(user, name),
                    lambda: core.containers.ensure_running(user, name)):
        with pytest.raises(StateConflict) as info:
            attempt()
        assert "made again" in info.value.message and "container-retire" in info.value.hint
    core.guard.retire(user, name)
    assert core.containers.deploy(user, name).container.running
    assert core.containers.exec(user, name, ["true"])[0] == 0


def test_a_rescue_never_recreates_the_project_through_a_link(make_core, user, tmp_path, project_name):
    core = make_core()
    name = project_name()
    folder = core.projects.create(user, name).path
    core.containers.deploy(user, name)
    core.containers.exec(user, name, ["sh", "-c", "echo keep > /tmp/keep.txt"])
    shutil.rmtree(folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.symlink_to(elsewhere)
    with pytest.raises(Forbidden):
        core.guard.rescue(user, name)
    assert list(elsewhere.iterdir()) == []
    folder.unlink()
    assert core.guard.rescue(user, name).files == 1
