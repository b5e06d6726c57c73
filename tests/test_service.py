"""ds01d on the real engine: users outside the docker group work through it with the ds01 command.

Each user is a real account made for the test; ds01d runs as root with the test's settings as the
admin's file (a configured GPU list, the test's lock and limits); the command line runs as the user.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import threading
import time

from conftest import fake_gpus
from ds01d_helpers import ds01d_factory_fixture, unix_users_fixture  # noqa: F401  (fixtures)

from ds01_jupyter.core import DS01

DOCKER_SOCKET = "/var/run/docker.sock"


def _ok(done, *expect):
    assert done.returncode == 0, (done.args[3:], done.stdout, done.stderr)
    for text in expect:
        assert text in done.stdout + done.stderr, (text, done.stdout, done.stderr)
    return done


def _tty_run(person, sock: str, argv: list[str], typed: bytes, rows=33, cols=101, seconds=20) -> tuple[int, str]:
    """Run the command as ``person`` on a terminal of rows x cols; type ``typed``; (exit code, what it showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the user, then the ds01 command
        try:
            os.setgroups([])
            os.setgid(person.user.gid)
            os.setuid(person.user.uid)
            os.chdir(str(person.home))
            os.execve(person.python, person.popen_args(*argv), person.env(sock, TERM="xterm"))
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    shown, sent, deadline = b"", False, time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        if not sent and b"$" in shown:  # the shell's prompt
            os.write(fd, typed)
            sent = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_journey_through_ds01d_without_docker_access(ds01d_factory, unix_users, make_core, project_name):
    gpus = fake_gpus(2)
    daemon = ds01d_factory(make_core.settings(gpus=gpus))
    alice = unix_users()
    sock = daemon.socket
    name = project_name()

    # She is not in the docker group and cannot reach the engine herself.
    assert "docker" not in alice.user.groups()
    denied = alice.python_as(f"import socket; socket.socket(socket.AF_UNIX).connect({DOCKER_SOCKET!r})")
    assert denied.returncode != 0 and "PermissionError" in denied.stderr

    _ok(alice.ds01(sock, "status"), "Connected through ds01d")
    assert json.loads(_ok(alice.ds01(sock, "status", "--json")).stdout)["connection"]["via"] == "ds01d"
    _ok(alice.ds01(sock, "project-init", name), f"Created project {name}")
    assert (alice.home / "workspace" / name).stat().st_uid == alice.user.uid
    _ok(alice.ds01(sock, "image-create", name), f"ds01-{alice.name}/{name}")
    deployed = _ok(alice.ds01(sock, "container-deploy", name, "--background", "--gpus", "1"), f"{name}._.{alice.name}")
    assert any(g["uuid"] in deployed.stdout for g in gpus)

    # stdin passes through, output keeps stdout and stderr apart, the exit code is the command's, run as her.
    ran = alice.ds01(sock, "container-run", name, "--", "sh", "-c", "cat; id -u; pwd; echo oops >&2; exit 7",
                     input="piped line\n")
    assert ran.returncode == 7, (ran.stdout, ran.stderr)
    assert ran.stdout.splitlines() == ["piped line", str(alice.user.uid), "/workspace"]
    assert "oops" in ran.stderr and "oops" not in ran.stdout

    # A terminal: a shell on a TTY of the caller's size, as her, and its exit code.
    code, shown = _tty_run(alice, sock, ["container-run", name], b"tty; stty size; id -un 2>/dev/null; id -u; exit 5\n")
    assert code == 5, shown
    assert "/dev/pts/" in shown and "33 101" in shown and str(alice.user.uid) in shown

    # The guard: audit, a refused retire, then retire with rescue into her workspace (hers, not root's).
    _ok(alice.ds01(sock, "container-run", name, "--", "sh", "-c", "echo 1,2 > /tmp/result.csv"))
    audit = alice.ds01(sock, "audit", name)
    assert audit.returncode == 3 and "/tmp/result.csv" in audit.stdout, (audit.stdout, audit.stderr)
    # Root never writes through her links: a requirements.txt swapped for a link to a file of root's is refused.
    requirements = alice.home / "workspace" / name / "requirements.txt"
    victim = daemon.folder / "victim"
    victim.write_text("root's\n")
    requirements.unlink()
    requirements.symlink_to(victim)
    linked = alice.ds01(sock, "audit", name, "--add-requirements")
    assert linked.returncode == 1 and "is a link" in linked.stderr and victim.read_text() == "root's\n"
    refused = alice.ds01(sock, "container-retire", name)
    assert refused.returncode == 1 and "--rescue" in refused.stderr
    retired = _ok(alice.ds01(sock, "container-retire", name, "--rescue"), "Rescued 1 files")
    rescued = list((alice.home / "workspace" / name / ".rescued").glob("*/tmp/result.csv"))
    assert len(rescued) == 1 and rescued[0].read_text() == "1,2\n" and rescued[0].stat().st_uid == alice.user.uid
    assert "Retired" in retired.stdout
    _ok(alice.ds01(sock, "checkpoints", name))
    _ok(alice.ds01(sock, "check-limits"), "Limits of")

    # Errors are the same through ds01d as without it (message, hint, exit code), for a verb needing no engine.
    for argv in (["project-init", "Bad/Name"], ["project-list", "--json"], ["project-init", name]):
        through, direct = alice.ds01(sock, *argv), alice.ds01(None, *argv)
        assert (through.returncode, through.stdout, through.stderr) == (direct.returncode, direct.stdout, direct.stderr)

    # The audit log: who (from the kernel), what, the result.
    records = [r for r in daemon.audit() if r.get("uid") == alice.user.uid]
    ops = {(r["op"], r["result"]) for r in records}
    assert {("projects.init", "ok"), ("containers.deploy", "ok"), ("guard.retire", "error"),
            ("guard.retire", "ok"), ("session.attach", "ok")} <= ops
    attach = [r for r in records if r["op"] == "session.attach"]
    assert {r.get("exit_code") for r in attach} >= {7, 5} and all(r["user"] == alice.name for r in records)


def test_no_name_reaches_another_users_container(ds01d_factory, unix_users, make_core, project_name):
    settings = make_core.settings()
    daemon = ds01d_factory(settings)
    alice, bob = unix_users(), unix_users()
    theirs = project_name()
    core = DS01(settings)
    core.projects.create(bob.user, theirs)
    record = core.containers.deploy(bob.user, theirs, gpus=0).container
    names = [theirs, f"{theirs}._.{bob.name}", record.id, record.id[:12], f"../../{bob.name}/workspace/{theirs}",
             f"{bob.home}/workspace/{theirs}", f"{theirs}/../{theirs}"]
    tries = [["container-run", name, "--", "touch", "/tmp/alice-was-here"] for name in names]
    tries += [[verb, name, *more] for name in names[:2] for verb, *more in (
        ["container-stop"], ["container-retire", "--discard"], ["audit"], ["container-logs"], ["rescue"], ["status"])]
    for argv in tries:
        done = alice.ds01(daemon.socket, *argv)
        assert done.returncode != 0 and "error:" in done.stderr, (argv, done.stdout, done.stderr)
    after = core.containers.status(bob.user, theirs)
    assert after.running and after.started_at == record.started_at
    assert not any("alice-was-here" in path for path, _ in core.engine.diff(record.id))
    core.close()


def test_uids_without_account_or_home_are_refused(ds01d_factory, unix_users):
    daemon = ds01d_factory()
    homeless = unix_users(with_home=False)
    done = homeless.ds01(daemon.socket, "project-list")
    assert done.returncode == 1 and "does not exist" in done.stderr and "hint:" in done.stderr
    # A uid with no account: the command line says so itself, and so does ds01d to a client that asks anyway.
    ghost = dict(capture_output=True, text=True, user=54321 + os.getpid() % 1000, group=54321, extra_groups=[],
                 env=homeless.env(daemon.socket), cwd="/", timeout=60)
    cli = subprocess.run(homeless.popen_args("project-list"), **ghost)
    assert cli.returncode == 1 and "has no account" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
    asked = subprocess.run([homeless.python, "-c", "from ds01_jupyter.service.client import RemoteDS01; import sys; "
                            "RemoteDS01(sys.argv[1]).projects.list(None)", daemon.socket], **ghost)
    assert "Forbidden: uid" in asked.stderr and "has no account" in asked.stderr, asked.stderr


def test_two_users_deploy_at_once_and_ds01d_restarts_mid_deploy(ds01d_factory, unix_users, make_core, project_name):
    gpus = fake_gpus(2)
    daemon = ds01d_factory(make_core.settings(gpus=gpus))
    alice, bob = unix_users(), unix_users()
    names = {alice: project_name(), bob: project_name()}
    for person, name in names.items():
        _ok(person.ds01(daemon.socket, "project-init", name))
    results = {}

    def deploy(person):
        results[person] = person.ds01(daemon.socket, "container-deploy", names[person], "--background", "--gpus", "1")

    threads = [threading.Thread(target=deploy, args=(p,)) for p in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    held = []
    for done in results.values():
        _ok(done, "Deployed")
        held += [g["uuid"] for g in gpus if g["uuid"] in done.stdout]
    assert sorted(held) == sorted(g["uuid"] for g in gpus)  # one each, never the same

    # ds01d killed while it builds an image for a deploy: the client says so, a new ds01d finishes the job.
    slow = project_name()
    _ok(alice.ds01(daemon.socket, "project-init", slow))
    dockerfile = alice.home / "dockerfiles" / f"{slow}.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN sleep 4\n")
    client = subprocess.Popen(alice.popen_args("container-deploy", slow, "--background", "--gpus", "0"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=alice.env(daemon.socket),
                              cwd=str(alice.home.parent), user=alice.user.uid, group=alice.user.gid, extra_groups=[])
    seen = b""
    while b"sleep 4" not in seen:
        line = client.stderr.readline()
        assert line, seen
        seen += line
    daemon.kill(signal.SIGKILL)
    out, err = client.communicate(timeout=60)
    assert client.returncode == 1 and b"ds01d closed the connection" in err, (out, err)
    daemon.start()
    again = _ok(
        alice.ds01(daemon.socket, "container-deploy", slow, "--background", "--gpus", "0"), f"{slow}._.{alice.name}"
    )
    assert "running" in again.stdout
    listed = json.loads(_ok(alice.ds01(daemon.socket, "container-list", "--json")).stdout)
    assert sorted(c["project"] for c in listed) == sorted([names[alice], slow])
    assert all(c["state"] == "running" for c in listed)

    # A client killed mid-deploy leaves no half-done deploy: ds01d finishes it.
    orphan = project_name()
    _ok(bob.ds01(daemon.socket, "project-init", orphan))
    dockerfile = bob.home / "dockerfiles" / f"{orphan}.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN sleep 2\n")
    client = subprocess.Popen(bob.popen_args("container-deploy", orphan, "--background", "--gpus", "0"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=bob.env(daemon.socket),
                              cwd=str(bob.home.parent), user=bob.user.uid, group=bob.user.gid, extra_groups=[])
    while b"sleep 2" not in client.stderr.readline():
        assert client.poll() is None
    client.kill()
    client.communicate()
    deadline = time.monotonic() + 60
    while True:  # running shows as soon as it started; the deploy's record once all of it is done
        listed = json.loads(_ok(bob.ds01(daemon.socket, "container-list", "--json")).stdout)
        finished = any(r["op"] == "containers.deploy" and r["args"]["name"] == orphan and r["result"] == "ok"
                       and r.get("client_gone") for r in daemon.audit())
        if finished and any(c["project"] == orphan and c["state"] == "running" for c in listed):
            break
        assert time.monotonic() < deadline, (listed, daemon.audit()[-3:])
        time.sleep(0.5)


def test_a_client_that_runs_the_kernel_argv_gets_its_kernel_through_ds01d(ds01d_factory, unix_users, engine,
                                                                           project_name):
    """The spec's argv launcher (for clients without provisioners) works for a user without Docker access: the
    kernel starts in her container, answers through the relay, and ends with the launcher."""
    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import write_connection_file

    daemon = ds01d_factory()
    alice = unix_users()
    name = project_name()
    _ok(alice.ds01(daemon.socket, "project-init", name))
    _ok(alice.ds01(daemon.socket, "container-deploy", name, "--background", "--gpus", "0"))
    connection_file, _ = write_connection_file(str(alice.home / "kernel.json"), ip="127.0.0.1",
                                               key=os.urandom(16).hex().encode())
    os.chown(connection_file, alice.user.uid, alice.user.gid)
    launcher = subprocess.Popen(
        [alice.python, "-m", "ds01_jupyter.kernels.launch", "--project", name, "-f", connection_file],
        env=alice.env(daemon.socket), cwd=str(alice.home / "workspace" / name), stderr=subprocess.PIPE, text=True,
        user=alice.user.uid, group=alice.user.gid, extra_groups=[],
    )
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels(hb=False)  # (a heartbeat missed while the kernel starts would be taken for its death)
    out: list[str] = []
    try:
        client.wait_for_ready(timeout=90)
        reply = client.execute_interactive(
            "import os; print(os.getuid(), os.getcwd())", timeout=60,
            output_hook=lambda msg: out.append(msg["content"].get("text", "")) if msg["msg_type"] == "stream" else 0)
        assert reply["content"]["status"] == "ok"
    except BaseException:
        launcher.kill()
        raise AssertionError(launcher.communicate()[1]) from None
    finally:
        client.stop_channels()
    assert "".join(out).split() == [str(alice.user.uid), "/workspace"]
    launcher.terminate()
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    _, processes = engine.exec(f"{name}._.{alice.name}", ["ps", "-eo", "args"])
    assert b"kernel_launcher.py -f" not in processes, processes
    assert "kernels.attach" in {r["op"] for r in daemon.audit() if r.get("uid") == alice.user.uid}
