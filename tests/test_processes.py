"""Running work is a finding: the guard lists it, and stop and retire never kill it silently.

Real containers on the real engine; every process runs as the container's user.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_environ

from ds01_jupyter.core.errors import UnsavedWork
from ds01_jupyter.core.findings import KERNEL, PROCESS

BIN = Path(sys.executable).parent

TRAINER = r"""
import signal, sys, time
step = 0
def save(*_):
    open('/tmp/ckpt.txt', 'w').write(f'final {step}')
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
while True:
    step += 1
    open('/tmp/ckpt.txt', 'w').write(f'step {step}')
    time.sleep(0.05)
"""


def deployed(make_core, user, project_name, **settings):
    core = make_core(**settings)
    name = project_name()
    core.projects.create(user, name)
    cid = core.containers.deploy(user, name, gpus=0).container.id
    return core, name, cid


def background(core, cid, user, script):
    """Start a job the way users do: a shell that puts it in the background and exits."""
    code, out = core.engine.exec(cid, ["sh", "-c", f"nohup {script} >/dev/null 2>&1 &"], user=f"{user.uid}:{user.gid}")
    assert code == 0, out


def running(audit):
    return [f for f in audit.findings if f.kind == PROCESS]


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_a_fresh_container_runs_nothing_of_the_users(make_core, user, project_name):
    core, name, cid = deployed(make_core, user, project_name)
    # An idle interactive shell (a terminal) is not work; neither are init and `sleep infinity`.
    core.engine.exec(cid, ["bash"], user=f"{user.uid}:{user.gid}", detach=True)
    audit = core.guard.audit(user, name)
    assert running(audit) == [] and audit.at_risk == []
    core.containers.stop(user, name)  # nothing to refuse
    assert core.containers.status(user, name).state == "exited"


def test_background_job_is_at_risk_and_stop_and_retire_refuse_naming_it(make_core, user, project_name):
    core, name, cid = deployed(make_core, user, project_name)
    background(core, cid, user, "python3 -c 'import time; time.sleep(1000)'")
    audit = core.guard.audit(user, name)
    [job] = running(audit)
    data = job.to_dict()
    assert data["kind"] == "process" and "time.sleep(1000)" in data["command"] and data["pid"] > 1
    assert {"pid", "command", "started", "cpu_seconds", "busy"} <= set(data) and data["busy"] is False
    assert abs(data["started"] - time.time()) < 60 and "running for" in data["detail"]
    assert audit.at_risk == [job]
    for attempt in (lambda: core.guard.retire(user, name, mode="discard"), lambda: core.containers.stop(user, name)):
        with pytest.raises(UnsavedWork) as info:
            attempt()
        assert "time.sleep(1000)" in info.value.message and "running for" in info.value.message
        assert "--stop-processes" in info.value.hint
        assert info.value.details["processes"][0]["pid"] == data["pid"]
    assert core.containers.status(user, name).running


def test_stop_processes_with_rescue_keeps_what_the_trainer_saves_on_sigterm(make_core, user, project_name, tmp_path):
    core, name, cid = deployed(make_core, user, project_name, stop_grace_seconds=10)
    (tmp_path / "train.py").write_text(TRAINER)
    (core.projects.get(user, name).path / "train.py").write_text(TRAINER)
    background(core, cid, user, "python3 /workspace/train.py")
    # Its first checkpoint: written once its SIGTERM handler is set (a signal before it would end it unsaved).
    wait_for(lambda: core.engine.exec(cid, ["test", "-f", "/tmp/ckpt.txt"])[0] == 0)
    with pytest.raises(UnsavedWork):  # files and a process: both named, nothing stopped
        core.guard.retire(user, name)
    assert running(core.guard.audit(user, name))
    lines = []
    result = core.guard.retire(user, name, mode="rescue", stop_processes=True, progress=lines.append)
    report = result["processes"]
    assert report["count"] == 1 and report["ended"] == 1 and report["processes"][0]["outcome"] == "ended"
    assert any("SIGTERM" in line for line in lines)
    [copy] = (core.projects.get(user, name).path / ".rescued").glob("*/tmp/ckpt.txt")
    assert copy.read_text().startswith("final ")  # the last state, written on SIGTERM


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_and_reported(make_core, user, project_name):
    core, name, cid = deployed(make_core, user, project_name, stop_grace_seconds=2)
    background(
        core,
        cid,
        user,
        "python3 -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "open(\"/tmp/ignoring\", \"w\"); time.sleep(1000)'",
    )
    background(core, cid, user, "sleep 1000")
    wait_for(lambda: len(running(core.guard.audit(user, name))) == 2)
    wait_for(lambda: core.engine.exec(cid, ["test", "-f", "/tmp/ignoring"])[0] == 0)  # SIGTERM ignored from now
    started = time.monotonic()
    status, report = core.containers.stop_with_report(user, name, stop_processes=True)
    assert time.monotonic() - started >= 2
    assert status.state == "exited"
    outcomes = {r["command"].split()[0]: r["outcome"] for r in report["processes"]}
    assert outcomes == {"python3": "killed", "sleep": "ended"}
    assert report["killed"] == 1 and report["ended"] == 1


def test_a_zombie_is_not_work_and_its_parent_is(make_core, user, project_name):
    core, name, cid = deployed(make_core, user, project_name, stop_grace_seconds=2)
    background(core, cid, user, "sh -c 'sleep 0 & exec sleep 1000'")  # sleep 0 ends; its parent never reaps it
    audit = wait_for(lambda: (a := core.guard.audit(user, name)) and any("zombie" in n for n in a.notes) and a)
    [parent] = running(audit)
    assert parent.extra["command"] == "sleep 1000"
    result = core.guard.retire(user, name, stop_processes=True)
    assert result["processes"]["ended"] == 1 and result["container"]["state"] == "removed"


def test_a_process_that_forks_while_being_stopped_is_stopped_with_all_its_children(make_core, user, project_name):
    core, name, cid = deployed(make_core, user, project_name, stop_grace_seconds=1)
    # It ignores SIGTERM (so do its children: ignored signals are inherited) and forks all the time.
    background(core, cid, user, "sh -c 'trap \"\" TERM; while :; do sleep 1000 & sleep 0.02; done'")
    wait_for(lambda: (f := running(core.guard.audit(user, name))) and f[0].files > 5)
    status, report = core.containers.stop_with_report(user, name, stop_processes=True)
    assert report["left"] == 0 and report["killed"] > 5 and status.state == "exited"
    assert report["count"] == report["killed"] + report["ended"]  # each one it saw, whenever it was born, ended


def test_ten_thousand_sleeping_processes(make_core, user, project_name):
    limits = "defaults:\n  pids_limit: 12000\n  max_containers_per_user: 100\n"
    core, name, cid = deployed(make_core, user, project_name, stop_grace_seconds=10, limits=limits)
    started = time.monotonic()
    # Subshells blocked on a FIFO: forked without an exec, so 10,000 start in seconds and use no CPU.
    background(core, cid, user, "sh -c 'mkfifo /tmp/f; for i in $(seq 10000); do (read x < /tmp/f) & done; wait'")
    record = core.containers.record(user, name)

    def count():
        listing = core.guard.processes.listing(user, record, sample=0)
        return listing and listing["groups"] and listing["groups"][0]["processes"] >= 10001 and listing

    wait_for(count, timeout=60)
    audit = core.guard.audit(user, name)
    [job] = running(audit)  # one finding: the loop and its 10,000 children
    assert job.files == 10001 and "10000 child process(es)" in job.detail
    result = core.guard.retire(user, name, mode="discard", stop_processes=True)
    assert result["processes"]["count"] == 10001 and result["processes"]["left"] == 0
    assert time.monotonic() - started < 75


def test_audit_exits_3_and_the_commands_refuse_and_stop_with_the_flag(make_core, home, user, project_name):
    env = cli_environ(make_core.settings(), home, DS01_STOP_GRACE_SECONDS="3")

    def run(*args):
        return subprocess.run([str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)

    name = project_name()
    assert run("project-init", name).returncode == 0
    assert run("container-deploy", name, "--background").returncode == 0
    assert run("container-run", name, "--", "sh", "-c", "nohup python3 -c 'import time; time.sleep(999)' "
               ">/dev/null 2>&1 &").returncode == 0
    audit = run("ds01", "audit", name, "--json")
    assert audit.returncode == 3, audit.stderr
    [job] = [f for f in json.loads(audit.stdout) if f["kind"] == "process"]
    assert "time.sleep(999)" in job["command"]
    table = run("ds01", "audit", name)
    assert (
        table.returncode == 3
        and "Nothing outside /workspace" not in table.stdout
        and "--stop-processes" in table.stderr
    )
    for verb in ("container-retire", "container-stop"):
        refused = run(verb, name)
        assert refused.returncode == 1 and "time.sleep(999)" in refused.stderr and "running for" in refused.stderr
    stopped = run("container-stop", name, "--stop-processes")
    assert stopped.returncode == 0 and "ended by itself" in stopped.stdout, stopped.stderr
    run("container-start", name)
    assert run("ds01", "audit", name, "--json").returncode == 0
    assert run("container-retire", name, "--stop-processes", "--rescue").returncode == 0


def test_stop_grace_is_a_setting_of_every_front_end():
    from ds01_jupyter.core import Settings
    from ds01_jupyter.server.app import DS01App

    assert Settings().stop_grace_seconds == 30
    assert Settings.from_env({"DS01_STOP_GRACE_SECONDS": "5"}).stop_grace_seconds == 5
    assert Settings.from_config(DS01App(stop_grace_seconds=7.0)).stop_grace_seconds == 7


def test_idle_and_busy_kernels_are_told_apart(tmp_path):
    from ds01_jupyter.core.processes import process_findings

    now = time.time()
    base = {
        "command": "python3 /tmp/.ds01/kernel_launcher.py -f /tmp/.ds01/kernel-1.json",
        "uid": 1000,
        "cpu_seconds": 1.0,
        "cpu_percent": 0.0,
        "busy": False,
        "processes": 1,
        "kernel": True,
        "started": now - 7200,
    }
    idle = dict(base, pid=10, pids=[10], cell={"busy": False, "notebook": "/workspace/notebooks/a.ipynb"})
    busy = dict(base, pid=11, pids=[11], busy=True,
                cell={"busy": True, "cell": 4, "since": now - 3 * 3600, "notebook": "/workspace/notebooks/train.ipynb"})
    found, _ = process_findings({"groups": [idle, busy], "uid": 1000}, Path("/nonexistent"), {11: 2**30}, now=now)
    kinds = {f.extra["pid"]: f for f in found}
    assert kinds[10].kind == KERNEL and "idle kernel of notebooks/a.ipynb" in kinds[10].detail
    assert kinds[11].kind == PROCESS and kinds[11].notebook == "notebooks/train.ipynb" and kinds[11].cell == 4
    assert kinds[11].detail.startswith("cell running for 3 h 0 min in notebooks/train.ipynb")
    assert kinds[11].to_dict()["gpu_memory"] == 2**30


# -- through the Jupyter server: a kernel that executes a cell, the REST answers ---------------------
async def test_a_running_cell_is_a_process_named_by_its_notebook_and_the_api_refuses(api, jp_fetch, jp_serverapp, demo):
    from test_kernels import start_session

    await api("POST", "projects", body={"name": demo}, expect=201)
    await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    kernel_id = await start_session(jp_fetch, f"{demo}/notebooks/train.ipynb", f"ds01-{demo}")
    client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        await client.execute_interactive("x = 1", timeout=30)
        _, audit = await api("GET", "projects", demo, "audit", expect=200)
        [idle] = [f for f in audit["findings"] if f["kind"] == "kernel"]
        assert idle["notebook"] == "notebooks/train.ipynb" and "variables are lost" in idle["detail"]
        assert audit["at_risk"] == 0

        client.execute("import time\ntime.sleep(600)")
        await asyncio.sleep(2)
        _, audit = await api("GET", "projects", demo, "audit", expect=200)
        [cell] = [f for f in audit["findings"] if f["kind"] == "process"]
        assert cell["notebook"] == "notebooks/train.ipynb" and cell["cell"] >= 2 and cell["busy"] is True
        assert cell["detail"].startswith("cell running for") and "notebooks/train.ipynb" in cell["detail"]
        assert audit["at_risk"] == 1

        for verb, body in (("retire", {"mode": "discard"}), ("stop", {})):
            status, refused = await api("POST", "projects", demo, verb, body=body)
            assert status == 409 and refused["error"] == "UnsavedWork", refused
            assert [p["pid"] for p in refused["processes"]] == [cell["pid"]]
        status, _ = await api("POST", "projects", demo, "stop", body={"stop_processes": "yes"})
        assert status == 400
        _, stopped = await api("POST", "projects", demo, "stop", body={"stop_processes": True}, expect=200)
        assert stopped["state"] == "exited" and stopped["processes"]["count"] >= 1
    finally:
        client.stop_channels()
        if kernel_id in jp_serverapp.kernel_manager:  # a stop ends the container's kernels: it may be gone
            await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)


def test_the_reaper_leaves_a_busy_container_alone_and_warns_before_max_runtime(make_core, user, project_name):
    core, name, cid = deployed(make_core, user, project_name, limits=(
        "defaults:\n  idle_timeout: 60s\n  max_runtime: 2h\n  max_containers_per_user: 100\n"))
    t0 = time.time()
    first = [d for d in core.reaper.run(user, now=t0) if d.project == name][0]
    assert first.action == "keep"
    # Busy only now: the cgroup's average over the (pretend) two minutes says idle; the processes say not.
    background(core, cid, user, "sh -c 'while :; do :; done'")
    time.sleep(1)
    kept = [d for d in core.reaper.run(user, now=t0 + 120) if d.project == name][0]
    assert kept.action == "keep" and "busy" in kept.reason, kept
    assert core.containers.status(user, name).running
    warned = [d for d in core.reaper.run(user, now=t0 + 2 * 3600 - 20 * 60) if d.project == name][0]
    assert warned.action == "warn" and "max_runtime" in warned.reason and warned.at is not None
    again = [d for d in core.reaper.run(user, now=t0 + 2 * 3600 - 19 * 60) if d.project == name][0]
    assert again.action != "warn"  # once
    over = [d for d in core.reaper.run(user, now=t0 + 2 * 3600 + 60) if d.project == name][0]
    assert over.action == "stop" and core.containers.status(user, name).state == "exited"


def test_a_process_list_that_cannot_be_read_is_at_risk_not_a_crash():
    """The listing comes from the user's image: a malformed one must not break audits (nor hide work)."""
    from ds01_jupyter.core.findings import PROCESS
    from ds01_jupyter.core.processes import UNREADABLE, process_findings

    for listing in ({"groups": [{"pid": "x"}]}, {"groups": "nope"}, {"groups": [None]}, {"groups": [{"pid": 1}]}):
        findings, _ = process_findings(listing)
        assert [(f.path, f.kind) for f in findings] == [(UNREADABLE, PROCESS)], listing


def test_a_main_command_that_execs_another_program_is_still_the_main_process(make_core, user, project_name):
    """A front end's command may be a wrapper that execs (a start script): it is the container's main process,
    not work, so stopping the work leaves it (the stop would otherwise end the container under its own helper)."""
    core = make_core(stop_grace_seconds=2)
    name = project_name()
    core.projects.create(user, name)
    cid = core.containers.deploy(user, name, gpus=0, command=("sh", "-c", "exec sleep 100000")).container.id
    background(core, cid, user, "sleep 1000")
    [job] = wait_for(lambda: running(core.guard.audit(user, name)))
    assert job.extra["command"] == "sleep 1000"
    status, report = core.containers.stop_with_report(user, name, stop_processes=True)
    assert report["count"] == 1 and report["ended"] == 1 and status.state == "exited"


def test_a_container_the_guard_cannot_look_inside_is_never_taken_for_one_that_runs_nothing(
        make_core, user, project_name):
    """No python3 the user may run (an image without it; a container at its process limit answers no better):
    what runs is unknown, so stop and retire refuse as for running work, and go ahead only when told to."""
    core, name, cid = deployed(make_core, user, project_name)
    background(core, cid, user, "sleep 1000")
    code, out = core.engine.exec(cid, ["sh", "-c", 'chmod 0 "$(readlink -f "$(command -v python3)")"'], user="0:0")
    assert code == 0, out
    audit = core.guard.audit(user, name)
    [unknown] = running(audit)
    assert "could not look inside" in unknown.detail and unknown in audit.at_risk
    for attempt in (lambda: core.guard.retire(user, name, mode="discard"), lambda: core.containers.stop(user, name)):
        with pytest.raises(UnsavedWork) as info:
            attempt()
        assert "could not look inside" in info.value.message and "--stop-processes" in info.value.hint
    assert core.containers.status(user, name).running
    core.containers.stop(user, name, stop_processes=True)
    assert core.containers.status(user, name).state == "exited"


def test_a_stop_copies_what_the_container_keeps_in_memory_into_the_project_first(make_core, user, project_name):
    """A stopped container keeps its files but not its /dev/shm: a stop (the user's, the reaper's, the hub's)
    copies those into .rescued/ first, after the processes it stops had their say."""
    core, name, cid = deployed(make_core, user, project_name)
    background(core, cid, user, "sh -c 'trap \"echo final > /dev/shm/at-exit.txt; exit 0\" TERM; "
                                "while true; do sleep 0.1; done'")
    code, out = core.engine.exec(cid, ["sh", "-c", "echo results > /dev/shm/results.txt"],
                                 user=f"{user.uid}:{user.gid}")
    assert code == 0, out
    status, report = core.containers.stop_with_report(user, name, stop_processes=True)
    assert status.state == "exited"
    folder = Path(report["memory_rescued"]["folder"])
    assert (folder / "dev/shm/results.txt").read_text() == "results\n"
    assert (folder / "dev/shm/at-exit.txt").read_text() == "final\n"  # written on SIGTERM, before the stop
    assert report["memory_rescued"]["files"] == 2


def test_a_stop_that_cannot_copy_what_is_in_memory_is_refused_and_keeps_it(make_core, user, project_name):
    from ds01_jupyter.core.containers import Containers

    core, name, cid = deployed(make_core, user, project_name)
    code, out = core.engine.exec(cid, ["sh", "-c", "echo results > /dev/shm/results.txt"],
                                 user=f"{user.uid}:{user.gid}")
    assert code == 0, out
    bare = Containers(core.settings, core.engine, core.projects, core.images, core.limits, core.allocator,
                      core.inventory)  # no rescue at hand
    with pytest.raises(UnsavedWork) as info:
        bare.stop(user, name)
    assert "/dev/shm/results.txt" in info.value.message and "--rescue" in info.value.hint
    assert core.containers.status(user, name).running


def test_a_stop_nobody_decides_is_never_held_up_by_a_copy_that_cannot_be_made(make_core, user, project_name):
    """Over the quota, what is in memory cannot be copied: the user's own stop is refused (the container keeps
    running, she decides), the reaper's or a hub's stop goes ahead and says what was lost (a GPU is never held)."""
    from ds01_jupyter.core.errors import QuotaExceeded
    from ds01_jupyter.core.processes import report_lines

    core, name, cid = deployed(make_core, user, project_name,
                               limits="defaults:\n  storage_workspace: 1m\n  max_runtime: null\n")
    code, out = core.engine.exec(cid, ["sh", "-c", "head -c 3000000 /dev/urandom > /dev/shm/features.bin"],
                                 user=f"{user.uid}:{user.gid}")
    assert code == 0, out
    with pytest.raises(QuotaExceeded):
        core.containers.stop(user, name)
    assert core.containers.status(user, name).running
    status, report = core.containers.stop_with_report(user, name, stop_processes=True, policy=True)
    assert status.state == "exited" and report["memory_lost"] == ["/dev/shm/features.bin"]
    assert any("Lost 1 file(s) kept in memory (/dev/shm/features.bin)" in line for line in report_lines(report))


def test_a_file_in_memory_the_stop_cannot_read_keeps_the_users_stop_from_losing_it(make_core, other_user,
                                                                                    project_name):
    """A file of root's in /dev/shm (made with sudo inside) cannot be copied as her: her stop is refused, the
    reaper's goes ahead and says it was lost."""
    user = other_user
    core, name, cid = deployed(make_core, user, project_name)
    code, out = core.engine.exec(cid, ["sh", "-c", "echo x > /dev/shm/roots.bin && chmod 600 /dev/shm/roots.bin"],
                                 user="0:0")
    assert code == 0, out
    with pytest.raises(UnsavedWork) as info:
        core.containers.stop(user, name)
    assert "/dev/shm/roots.bin" in info.value.message
    assert core.containers.status(user, name).running
    status, report = core.containers.stop_with_report(user, name, stop_processes=True, policy=True)
    assert status.state == "exited" and report["memory_lost"] == ["/dev/shm/roots.bin"]
