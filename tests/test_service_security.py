"""ds01d attacked by a hostile local user: each test is a hole found by trying, kept closed.

Users are real accounts made for the test, not in the docker group; ds01d (or the core acting as root
for them, as ds01d does) runs on the real engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import tar_link
from ds01d_helpers import ds01d_factory_fixture, unix_users_fixture  # noqa: F401  (fixtures)

from ds01_jupyter.core import DS01, helpers, ssh_mount
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.errors import Forbidden, InvalidRequest, StateConflict
from ds01_jupyter.core.names import container_name


def _secret_behind_closed_home(person, project: str) -> Path:
    """A project folder of ``person`` with a world-readable secret, reachable only through their 0700 home."""
    folder = person.home / "workspace" / project
    folder.mkdir()
    (folder / "secret.txt").write_text("only for " + person.name)
    for path in (folder, folder / "secret.txt"):
        os.chown(path, person.user.uid, person.user.gid)
    person.home.chmod(0o700)
    return folder


def _swap_at_start(core: DS01, folder: Path, target: Path, during=None) -> None:
    """Make the engine's next starts find ``folder`` swapped for a link to ``target`` (the user's own link), as a
    user racing a start with rename() would; the folder is put back after each start. ``during(id)`` runs once
    the next start returned and before its checks (what the user does while the container is not yet checked:
    another request of hers, which waits for no lock then)."""
    real_start = core.engine.start_container

    def start(container_id, **options):
        aside = folder.with_name("." + folder.name + ".aside")
        folder.rename(aside)
        folder.symlink_to(target)
        os.lchown(folder, folder.parent.stat().st_uid, folder.parent.stat().st_gid)
        try:
            real_start(container_id, **options)
        finally:
            folder.unlink()
            aside.rename(folder)

    core.engine.start_container = start
    if during is not None:
        real_settle = core.containers._settle

        def settle(user, project, container_id, *args, **kw):
            del core.containers._settle  # once: the request's own checks, and those of `during`'s, are the real ones
            during(container_id)
            return real_settle(user, project, container_id, *args, **kw)

        core.containers._settle = settle


def test_a_link_swapped_in_during_a_start_is_never_what_gets_mounted(unix_users, make_core, project_name):
    """The engine follows links in a mount's source at every start: root gives it a pin of her folder instead
    (workspace_pin), bound from the folder it opened and found hers. A user who swaps her project folder for a link
    to another user's project (behind his closed home) while it starts gets her own folder, never his, not even
    for the moment before a check; a link in its place when root binds it is refused."""
    alice, bob = unix_users(), unix_users()
    name = project_name()
    theirs = _secret_behind_closed_home(bob, name)  # same name: the container's labels look right
    core = make_core()
    core.projects.create(alice.user, name)
    folder = alice.home / "workspace" / name
    mine = f"{alice.user.uid}:{alice.user.gid}"
    first = core.containers.deploy(alice.user, name, gpus=0, framework="base").container
    assert core.engine.get_container(first.id).ip_address  # an honest start gets its network once checked
    core.containers.stop(alice.user, name, force=True)

    _swap_at_start(core, folder, theirs)
    assert core.containers.start(alice.user, name).running
    code, out = core.engine.exec(first.id, ["ls", "/workspace"], user=mine)
    assert code == 0 and b"secret.txt" not in out and b"notebooks" in out

    core.engine.start_container = type(core.engine).start_container.__get__(core.engine)
    core.containers.stop(alice.user, name, force=True)
    aside = folder.with_name("." + folder.name + ".aside")
    folder.rename(aside)
    folder.symlink_to(theirs)
    os.lchown(folder, alice.user.uid, alice.user.gid)
    try:
        with pytest.raises(Forbidden):
            core.containers.start(alice.user, name)
    finally:
        folder.unlink()
        aside.rename(folder)
    assert not core.engine.get_container(first.id).running

    core.guard.retire(alice.user, name, mode="discard")
    _swap_at_start(core, folder, theirs)  # a first deploy the same
    honest = core.containers.deploy(alice.user, name, gpus=0, framework="base").container
    assert honest.running and honest.workspace == str(folder)
    code, out = core.engine.exec(honest.id, ["ls", "/workspace"], user=mine)
    assert code == 0 and b"secret.txt" not in out and b"notebooks" in out
    core.engine.start_container = type(core.engine).start_container.__get__(core.engine)


def test_only_the_run_checked_gets_its_network(unix_users, make_core, project_name):
    """A start made by root is offline until its /workspace was checked; the network then goes to that run only:
    one that ended and was started again meanwhile (by a request of its own, with a link swapped in) stays
    offline until its own check."""
    alice = unix_users()
    name = project_name()
    core = make_core()
    core.projects.create(alice.user, name)
    record = core.engine.get_container(core.containers.deploy(alice.user, name, gpus=0, framework="base").container.id)
    core.containers.stop(alice.user, name, force=True)
    core.engine.start_container(record.id, offline=True)
    started = core.engine.get_container(record.id)
    assert started.running and not started.ip_address
    with pytest.raises(StateConflict, match="started again while it was checked"):
        # the pid of a run before this one
        core.engine.connect_own_network(record.id, L.owned_by(alice.user), pid=started.pid + 1)
    assert not core.engine.get_container(record.id).ip_address
    core.engine.connect_own_network(record.id, L.owned_by(alice.user), pid=started.pid)
    address = core.engine.get_container(record.id).ip_address
    assert address
    # A second request that found it stopped a moment ago starts it no more: going offline would cut its network.
    core.containers._start_stopped(alice.user, record.id)
    assert core.engine.get_container(record.id).ip_address == address


def test_a_start_made_by_root_mounts_a_copy_of_ssh_that_no_swap_can_change(unix_users, make_core, project_name,
                                                                           request):
    """With mount_ssh, the engine (root) follows links in a mount's source at each start, and a container's own
    processes run at once: a user who swaps ~/.ssh for a link to another user's folder as root starts their
    container could copy what they found into /workspace before any check. So root mounts its own copy of ~/.ssh,
    made with the user's rights before each start, in a folder only root may change: no swap reaches the engine."""
    alice, bob = unix_users(), unix_users()
    request.addfinalizer(lambda: shutil.rmtree(ssh_mount.staged_folder(alice.user), ignore_errors=True))
    theirs = bob.home / "workspace" / "open"
    theirs.mkdir(mode=0o755)
    (theirs / "config").write_text("Host only-bobs\n")  # world-readable, behind bob's closed home
    for path in (theirs, theirs / "config"):
        os.chown(path, bob.user.uid, bob.user.gid)
    bob.home.chmod(0o700)
    mine = alice.home / ".ssh"
    mine.mkdir(mode=0o700)
    (mine / "id_test").write_text("ALICE\n")
    (mine / "id_test").chmod(0o600)
    (mine / "shadow").symlink_to("/etc/shadow")  # a link inside is never followed
    (mine / "config").write_text("Host *\n")
    (mine / "config").chmod(0o644)  # hers alone in the copy: its folder's group may be shared
    (mine / "roots").write_text("root's\n")  # a file she may not read is not copied
    (mine / "roots").chmod(0o600)
    os.mkfifo(mine / "fifo")  # special files, folders and what is too big: not copied, and nothing hangs
    (mine / "config.d").mkdir()
    (mine / "big").write_bytes(b"x" * (ssh_mount.STAGE_MAX_BYTES + 1))
    for path in (mine, mine / "id_test", mine / "config", mine / "fifo", mine / "config.d", mine / "big"):
        os.chown(path, alice.user.uid, alice.user.gid)
    os.lchown(mine / "shadow", alice.user.uid, alice.user.gid)
    name = project_name()
    core = make_core(mount_ssh=True)
    core.projects.create(alice.user, name)
    first = core.containers.deploy(alice.user, name, gpus=0, framework="base").container
    dest = ssh_mount.destination(alice.user)
    as_alice = f"{alice.user.uid}:{alice.user.gid}"

    def inside(*command):
        return core.engine.exec(first.id, list(command), user=as_alice)

    assert inside("cat", f"{dest}/id_test") == (0, b"ALICE\n")
    code, out = inside("sh", "-c", f"ls -A {dest}; stat -c '%u %a' {dest}/id_test {dest}/config")
    uid = str(alice.user.uid).encode()
    assert code == 0 and out.split() == [b"config", b"id_test", uid, b"600", uid, b"600"], out
    copy = os.lstat(ssh_mount.staged_folder(alice.user))
    assert (copy.st_uid, copy.st_gid, copy.st_mode & 0o777) == (0, alice.user.gid, 0o750)
    assert inside("python3", "-c", "import ds01_jupyter.checkpoints")[0] == 0  # the helpers, copied meanwhile

    # Swapped while root starts it: the engine mounts root's copy, made from her real folder just before.
    core.containers.stop(alice.user, name, force=True)
    (mine / "id_test").write_text("ALICE 2\n")
    _swap_at_start(core, mine, theirs)
    core.containers.start(alice.user, name)
    assert inside("cat", f"{dest}/id_test") == (0, b"ALICE 2\n")
    assert inside("cat", f"{dest}/config") == (0, b"Host *\n")  # hers: bob's never shows

    # Swapped before: refused, and the copy keeps only what was hers.
    core.engine.start_container = type(core.engine).start_container.__get__(core.engine)
    core.containers.stop(alice.user, name, force=True)
    mine.rename(alice.home / "old-ssh")
    (alice.home / ".ssh").symlink_to(theirs)
    os.lchown(alice.home / ".ssh", alice.user.uid, alice.user.gid)
    with pytest.raises(Forbidden, match="is a link"):
        core.containers.start(alice.user, name)
    assert not core.engine.get_container(first.id).running
    assert sorted(os.listdir(ssh_mount.staged_folder(alice.user))) == ["config", "id_test"]

    # Her keys gone: gone from the copy at the next start too.
    (alice.home / ".ssh").unlink()
    core.containers.start(alice.user, name)
    assert inside("ls", "-A", dest) == (0, b"")


def test_a_build_never_reads_another_users_image(ds01d_factory, unix_users, make_core, project_name):
    """The engine builds as root and reads any image: FROM, COPY --from and an ONBUILD of another user's image, by
    any name form (id, prefix, a variable, a continued line), are refused before the build starts."""
    settings = make_core.settings()
    daemon = ds01d_factory(settings)
    alice, bob = unix_users(), unix_users()
    theirs, mine = project_name(), project_name()
    core = make_core()
    core.projects.create(bob.user, theirs)
    image_id = core.engine.get_container(
        core.containers.deploy(bob.user, theirs, gpus=0, framework="base").container.id).image_id
    short = image_id.removeprefix("sha256:")[:12]
    # Alice's own image whose ONBUILD copies from Bob's: it runs in any build FROM it.
    trap = f"ds01-{alice.name}/trap{mine}:latest"
    subprocess.run(["docker", "import", "--change", f"LABEL ds01.managed=true ds01.user={alice.name} "
                    f"ds01.user_id={alice.user.uid}", "--change", f"ONBUILD COPY --from={short} /etc/hostname /x",
                    "-", trap], input=_empty_tar(), check=True, capture_output=True)
    assert alice.ds01(daemon.socket, "project-init", mine).returncode == 0
    tries = [f"FROM {image_id}\n", f"FROM {short}\n", f"ARG B={short}\nFROM ${{B}}\n",
             f"FROM ds01/base:latest\nCOPY --from={short} /etc/hostname /stolen\n",
             f"FROM {short[:6]}\\\n{short[6:]}\n", f"FROM {trap}\n",
             "ARG B\nFROM ds01/base:latest\nCOPY --from=$B /etc/hostname /x\n"]
    answers = _as_user(alice, daemon.socket, """
import json, os, sys
from ds01_jupyter.service.client import RemoteDS01
core, name = RemoteDS01(sys.argv[1]), sys.argv[2]
os.makedirs(os.path.expanduser("~/dockerfiles"), exist_ok=True)
for text in json.loads(sys.argv[3]):
    with open(os.path.expanduser(f"~/dockerfiles/{name}.Dockerfile"), "w") as out:
        out.write(text)
    try:
        core.images.build(None, name)
        print("built")
    except Exception as err:
        print(type(err).__name__, err.message.replace("\\n", " "))
""", mine, json.dumps(tries))
    assert len(answers) == len(tries)
    for text, answer in zip(tries[:-1], answers):
        assert answer.startswith("Forbidden") and f"an image of {bob.name}" in answer, (text, answer)
    assert answers[-1].startswith("InvalidRequest") and "cannot know before building" in answers[-1]
    assert not core.images.list(alice.user)  # nothing was built


def _as_user(person, sock: str, code: str, *argv: str) -> list[str]:
    """Run Python ``code`` as ``person`` (ds01d at ``sock``); its output lines."""
    done = subprocess.run([person.python, "-c", code, sock, *argv], capture_output=True, text=True, timeout=120,
                          user=person.user.uid, group=person.user.gid, extra_groups=[], env=person.env(sock),
                          cwd=str(person.home))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _empty_tar() -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    return buffer.getvalue()


def test_a_huge_build_context_is_refused_before_it_is_read(ds01d_factory, unix_users, project_name):
    """ds01d holds a build's context in memory: a sparse terabyte in the project must not reach it."""
    daemon = ds01d_factory()
    alice = unix_users()
    mine = project_name()
    started = time.monotonic()
    answers = _as_user(alice, daemon.socket, """
import os, sys
from ds01_jupyter.service.client import RemoteDS01
core, name = RemoteDS01(sys.argv[1]), sys.argv[2]
core.projects.init(None, name)
with open(os.path.expanduser(f"~/workspace/{name}/src/huge.bin"), "wb") as out:
    out.truncate(2**40)
try:
    core.images.build(None, name)
    print("built")
except Exception as err:
    print(type(err).__name__, err.message)
""", mine)
    assert answers[-1].startswith("InvalidRequest") and "is over 512 MiB" in answers[-1], answers
    assert time.monotonic() - started < 30
    assert "Traceback" not in daemon.log()


def test_the_audit_log_cannot_be_flooded_or_forged(ds01d_factory, unix_users):
    """Refused requests cost a caller nothing: without bounds, 64 KiB names sent in a loop fill /var/log. A newline
    in what a caller sends never starts a record of its own."""
    daemon = ds01d_factory()
    alice = unix_users()
    forged = 'x"}\n{"uid": 0, "user": "root", "op": "containers.deploy", "result": "ok"}\n'
    _as_user(alice, daemon.socket, """
import json, socket, sys, time
def ask(message):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(sys.argv[1])
        conn.sendall(json.dumps(message).encode() + b"\\n")
        conn.recv(65536)
ask({"op": sys.argv[2]})
for n in range(700):
    ask({"op": "x" * 60000})
time.sleep(0.3)
ask({"op": "projects.list"})
""", forged)
    text = (daemon.log_dir / "audit.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert all(r["uid"] == alice.user.uid for r in records)  # every line a record of hers: nothing forged
    assert records[0]["op"].startswith('x"}\n{"uid": 0')
    assert len(text) < 400_000 and max(len(line) for line in text.splitlines()) < 2_000
    assert records[-1]["op"] == "projects.list" and len(records) < 500  # the first 300 at once, then 20 a second
    assert len(records) + sum(r.get("suppressed", 0) for r in records) == 702  # and what was left out is counted


def test_ds01d_refuses_settings_a_user_could_change(unix_users, tmp_path):
    """Root's ds01d takes the engine, the folders it works in and the limits from its file: one in a user's
    folder (or writable by them) would make that user root, so ds01d does not start with it."""
    import sys

    from ds01d_helpers import REPO

    alice = unix_users()
    theirs = alice.home / "ds01d.yaml"
    theirs.write_text(f"socket: {tmp_path}/s.sock\nlog_dir: {tmp_path}/log\n")
    os.chown(theirs, alice.user.uid, alice.user.gid)
    limits = tmp_path / "limits.yaml"
    limits.write_text("defaults: {}\n")
    limits.chmod(0o666)
    ours = tmp_path / "ds01d.yaml"
    ours.write_text(f"socket: {tmp_path}/s.sock\nlog_dir: {tmp_path}/log\nlimits_file: {limits}\n")
    for config, culprit in ((theirs, theirs), (ours, limits)):
        done = subprocess.run([sys.executable, "-m", "ds01_jupyter.service", "--config", str(config)], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and f"could be changed by someone else than root: {culprit}" in done.stderr, \
            done.stderr
    assert not (tmp_path / "s.sock").exists()


def test_no_root_in_a_users_container_and_the_passed_connection_reaches_only_the_command(
        ds01d_factory, unix_users, project_name):
    """An image built as root may say USER root and hold a setuid-root binary: its container still runs as the
    user, and setuid is inert. The connection ds01d passes to the caller (SCM_RIGHTS) is the command's stream: an
    HTTP request written on it reaches the command's stdin, not the engine."""
    daemon = ds01d_factory()
    alice = unix_users()
    mine = project_name()
    answers = _as_user(alice, daemon.socket, """
import json, os, socket, sys
from ds01_jupyter.service.client import RemoteDS01
core, name = RemoteDS01(sys.argv[1]), sys.argv[2]
core.projects.init(None, name)
os.makedirs(os.path.expanduser("~/dockerfiles"), exist_ok=True)
with open(os.path.expanduser(f"~/dockerfiles/{name}.Dockerfile"), "w") as out:
    out.write("FROM ds01/base:latest\\nUSER root\\n"
              "RUN cp /usr/bin/python3 /usr/local/bin/rootpy && chmod 4755 /usr/local/bin/rootpy\\n")
core.images.build(None, name)
core.containers.deploy(None, name, gpus=0)
code, out = core.containers.exec(None, name, ["/usr/local/bin/rootpy", "-c", "import os; print(os.getresuid())"])
print("ids", code, out.decode().strip())
control = socket.socket(socket.AF_UNIX)
control.connect(sys.argv[1])
control.sendall(json.dumps({"op": "session.attach", "args": {"name": name, "command": ["cat"], "tty": False}}).encode()
                + b"\\n")
line, fds, _, _ = socket.recv_fds(control, 65536, 4)
stream = socket.socket(fileno=fds[0])
stream.sendall(b"GET /containers/json HTTP/1.1\\r\\nHost: docker\\r\\n\\r\\n")
stream.shutdown(socket.SHUT_WR)
got = b""
while True:
    data = stream.recv(65536)
    if not data:
        break
    got += data
print("stream", json.dumps(got[8:].decode(errors="replace")), json.dumps(got[:4].hex()))
""", mine)
    ids = next(a for a in answers if a.startswith("ids"))
    uid = alice.user.uid
    assert ids == f"ids 0 ({uid}, {uid}, {uid})", answers
    stream = next(a for a in answers if a.startswith("stream"))
    # cat echoed the request in the engine's stdout frame (stream 1): the engine never read it as a request.
    assert stream == 'stream "GET /containers/json HTTP/1.1\\r\\nHost: docker\\r\\n\\r\\n" "01000000"', stream


def test_a_build_never_fetches_a_url_on_the_hosts_network(unix_users, make_core, project_name):
    """The engine fetches an ADD URL itself, on the host's network even when the build's is none: a user's build
    would reach services only the host may reach (here one on localhost). Refused before the build, also through a
    variable, the JSON form or an ONBUILD of her own image."""
    import http.server
    import threading

    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host only")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/secret"
    alice = unix_users()
    name = project_name()
    core = make_core()
    core.projects.create(alice.user, name)
    trap = f"ds01-{alice.name}/trap{name}:latest"
    subprocess.run(["docker", "import", "--change", f"LABEL ds01.managed=true ds01.user={alice.name} "
                    f"ds01.user_id={alice.user.uid}", "--change", f"ONBUILD ADD {url} /x", "-", trap],
                   input=_empty_tar(), check=True, capture_output=True)
    dockerfile = core.images.dockerfile(alice.user, name)
    try:
        for text in (f"FROM ds01/base:latest\nADD {url} /x\n", f'FROM ds01/base:latest\nADD ["{url}", "/x"]\n',
                     f"FROM ds01/base:latest\nadd --chown=1:1 \\\n  {url.upper()} /x\n",
                     f"FROM ds01/base:latest\nARG U={url}\nADD $U /x\n", f"FROM {trap}\n"):
            dockerfile.write_text(text)
            with pytest.raises(InvalidRequest, match="with ADD.*remote ADD sources") as refused:
                core.images.build(alice.user, name)
            assert "RUN step" in refused.value.hint
    finally:
        server.shutdown()
        subprocess.run(["docker", "rmi", trap], capture_output=True)
    assert asked == [] and not core.images.list(alice.user)


def test_kernel_starts_leave_nothing_of_roots_and_nothing_to_others(ds01d_factory, unix_users, make_core,
                                                                     project_name):
    """A kernel started through ds01d: the files the engine writes as root follow a link the user's image made
    (/tmp -> /workspace) into her project, so they are hers (root's she could not remove); its key never reaches
    the audit log (with it, anyone on the host reaches the kernel's ports); a start takes one of her operations
    (files copied, the exec started, its pid read off its stream); another user's LABEL ds01.user=... never puts
    his build's containers in her events."""
    settings = make_core.settings()
    daemon = ds01d_factory(settings, max_operations_per_user=1)
    alice, bob = unix_users(), unix_users()
    name, his = project_name(), project_name()
    core = make_core()
    since = time.time()
    core.projects.create(bob.user, his)
    bob_file = core.images.dockerfile(bob.user, his)
    bob_file.write_text(f"FROM ds01/base:latest\nLABEL ds01.managed=true ds01.user={alice.name} "
                        f"ds01.user_id={alice.user.uid} ds01.project={name}\nRUN true\n")
    core.images.build(bob.user, his)
    core.projects.create(alice.user, name)
    record = core.containers.deploy(alice.user, name, gpus=0, framework="base").container
    # What her image could say (RUN rm -rf /tmp && ln -s /workspace /tmp), without a build.
    core.engine.api.put_archive(record.id, "/", tar_link("tmp", "/workspace"))
    # The helpers as a start copies them where the engine cannot mount them (a cluster node): as hers too.
    core.engine.put_tree(record.id, "/tmp", helpers.entries(), alice.user.uid, alice.user.gid)
    answers = _as_user(alice, daemon.socket, """
import json, os, socket, subprocess, sys, time
args = {"name": sys.argv[2], "kernel_id": "k1", "key": "very-secret-key", "ports": [40001, 40002, 40003, 40004, 40005]}
def attach():
    control = socket.socket(socket.AF_UNIX)
    control.connect(sys.argv[1])
    control.sendall(json.dumps({"op": "kernels.attach", "args": args}).encode() + b"\\n")
    line, fds, _, _ = socket.recv_fds(control, 65536, 4)
    for fd in fds:
        os.close(fd)
    return json.loads(line)
print("first", sorted(attach()))
busy = subprocess.Popen([sys.executable, "-c", "import sys; from ds01_jupyter.service.client import RemoteDS01; "
                         "RemoteDS01(sys.argv[1]).containers.exec(None, sys.argv[2], ['sleep', '4'])", *sys.argv[1:3]])
time.sleep(2)
print("second", json.dumps(attach()))
busy.wait()
""", name)
    assert answers[0] == "first ['attached']", answers
    assert "You already have 1 ds01 operations running" in answers[1], answers
    folder = alice.home / "workspace" / name / ".ds01"
    written = [folder, *folder.rglob("*")]
    assert {folder / "kernel_launcher.py", folder / "kernel-k1.json", folder / "lib"} <= set(written), written
    assert {p.lstat().st_uid for p in written} == {alice.user.uid}, [(p, p.lstat().st_uid) for p in written]
    assert alice.python_as(f"import shutil; shutil.rmtree({str(folder)!r})").returncode == 0
    audit = (daemon.log_dir / "audit.jsonl").read_text()
    assert '"kernels.attach"' in audit and "very-secret-key" not in audit

    events = core.follow_events(alice.user, since)
    seen = []
    for event in events:
        if event["action"] == "tick":
            break
        seen.append(event)
    events.close()
    assert seen and {e["name"] for e in seen} == {container_name(name, alice.name)}, seen
