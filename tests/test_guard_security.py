"""The guard under attack from inside a container, and at the edges of what files can be.

Each test is a case an adversarial pass broke: code planted for the probe, links
that lead a rescue out of the project, special files that hang or flood a read,
names that are not UTF-8, trees deeper than one system call can name, copies
that allocate more than their bytes, and disks that fill up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ds01_jupyter.core.errors import DiskFull, Forbidden, InvalidRequest, QuotaExceeded, UnsavedWork
from ds01_jupyter.core.findings import WORK
from ds01_jupyter.core.guard import UNLISTED
from ds01_jupyter.core.rescue_writer import RescueWriter


def sh(core, cid, script, user):
    code, out = core.engine.exec(cid, ["sh", "-c", script], user=user)
    assert code == 0, out
    return out


def as_user(u):
    return f"{u.uid}:{u.gid}"


@pytest.fixture
def theirs(make_core, other_user, project_name):
    """A deployed project of a real, unprivileged second user, driven by root (as the hub and reaper are)."""
    core = make_core()
    name = project_name()
    core.projects.create(other_user, name)
    cid = core.containers.deploy(other_user, name, gpus=0).container.id
    return core, other_user, name, cid


def test_nothing_planted_in_the_container_runs_as_root(make_core, other_user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(other_user, name)
    # The user controls the image: every python3 in it runs this first and records who it ran as.
    dockerfile = core.images.dockerfile(other_user, name)
    dockerfile.write_text(
        f"FROM {core.settings.base_image}\n"
        "RUN printf 'import os\\ntry:\\n    open(\"/workspace/ran-as-%%d\" %% os.geteuid(), \"a\").close()\\n"
        "except OSError:\\n    pass\\n' >> \"$(python3 -c 'import sitecustomize; print(sitecustomize.__file__)')\"\n"
    )
    cid = core.containers.deploy(other_user, name, gpus=0).container.id
    project = core.projects.get(other_user, name).path
    # The attack of the report: a json.py beside the probe, and a module search path of the user's choosing.
    sh(
        core,
        cid,
        'mkdir -p /tmp/.ds01 && printf \'import os\\nopen("/workspace/json-ran-as-%%d" %% os.geteuid(), "a")\\n\''
        " > /tmp/.ds01/json.py && echo x > /tmp/work.txt",
        as_user(other_user),
    )
    for name_ in os.listdir(project):
        if name_.startswith("ran-as-"):
            os.unlink(project / name_)
    audit = core.guard.audit(other_user, name)
    assert "/tmp/work.txt" in {f.path for f in audit.findings}
    ran = sorted(p for p in os.listdir(project) if "ran-as-" in p)
    assert ran and all(p == f"ran-as-{other_user.uid}" for p in ran), ran  # as the user: never uid 0
    core.guard.rescue(other_user, name, audit)
    assert not [p for p in os.listdir(project) if "ran-as-0" in p or p.startswith("json-ran")]


def test_rescued_link_to_another_folder_is_refused_and_nothing_is_written_there(theirs, tmp_path):
    core, user, name, cid = theirs
    victim = user.home / "victim"
    victim.mkdir()
    os.chown(victim, user.uid, user.gid)
    sh(core, cid, f"echo work > /tmp/result.csv && ln -s {victim} /workspace/.rescued", as_user(user))
    with pytest.raises(Forbidden) as info:
        core.guard.retire(user, name, mode="rescue")
    assert "link" in info.value.message
    assert list(victim.iterdir()) == []
    assert core.engine.get_container(cid).running  # kept: the work is still only in there


def test_root_rescues_with_the_users_uid(theirs):
    core, user, name, cid = theirs
    sh(core, cid, "mkdir -p /tmp/out && echo a > /tmp/out/a.txt", as_user(user))
    result = core.guard.retire(user, name, mode="rescue")
    folder = Path(result["rescued"]["folder"])
    for path in [folder, folder / "tmp" / "out" / "a.txt", folder / "MANIFEST.json", folder.parent]:
        assert path.lstat().st_uid == user.uid, path
    assert (folder / "tmp" / "out" / "a.txt").read_text() == "a\n"


def test_a_folder_swapped_for_a_link_mid_copy_is_not_followed(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    writer = RescueWriter(project, budget=None)
    writer.add_file("/tmp/a.txt", b"a")
    partial = project / ".rescued" / (writer.final + ".partial")
    os.rename(partial / "tmp", partial / "moved")  # what a container can do to its own workspace meanwhile
    os.symlink(victim, partial / "tmp")
    writer.add_file("/tmp/b.txt", b"b")
    writer.add_file("/zzz/c.txt", b"c")  # another folder: the next /tmp is opened afresh
    with pytest.raises(Forbidden):
        writer.add_file("/tmp/d.txt", b"d")
    assert (partial / "moved" / "b.txt").read_bytes() == b"b"  # written where the folder really went
    writer.abort()
    assert list(victim.iterdir()) == []


def test_special_files_and_links_in_memory_are_listed_never_read(theirs):
    core, user, name, cid = theirs
    sh(core, cid, "mkfifo /dev/shm/pipe && ln -s /dev/zero /dev/shm/zero && ln -s /etc/shadow /dev/shm/shadow "
                  "&& echo real > /dev/shm/real.txt", as_user(user))
    audit = core.guard.audit(user, name)
    found = {f.path: f for f in audit.findings}
    assert found["/dev/shm/pipe"].detail.startswith("special")
    assert "link" in found["/dev/shm/zero"].detail and "link" in found["/dev/shm/shadow"].detail
    started = time.monotonic()
    rescue = core.guard.rescue(user, name, audit)
    assert time.monotonic() - started < 60
    folder = Path(rescue.folder)
    assert (folder / "dev" / "shm" / "real.txt").read_text() == "real\n"
    assert os.readlink(folder / "dev" / "shm" / "zero") == "/dev/zero"  # kept as a link
    assert os.readlink(folder / "dev" / "shm" / "shadow") == "/etc/shadow"
    assert not (folder / "dev" / "shm" / "pipe").exists()
    assert any(s["path"] == "/dev/shm/pipe" for s in rescue.skipped)
    code, out = core.engine.exec(cid, ["sh", "-c", "ps -eo user,args | grep -c '[c]at' || true"], user="0:0")
    assert out.strip() == b"0"  # nothing left reading in the container


def test_a_name_that_is_not_utf8_is_found_and_rescued_byte_for_byte(theirs):
    core, user, name, cid = theirs
    sh(core, cid, "python3 -c \"open(b'/tmp/caf\\xe9-r\\xe9sultat.csv', 'wb').write(b'1,2\\n')\"", as_user(user))
    audit = core.guard.audit(user, name)
    odd = [f for f in audit.at_risk if f.path.startswith("/tmp/caf")]
    assert len(odd) == 1 and odd[0].size == 4
    with pytest.raises(UnsavedWork):
        core.guard.retire(user, name)
    result = core.guard.retire(user, name, mode="rescue")
    folder = os.fsencode(result["rescued"]["folder"])
    with open(os.path.join(folder, b"tmp", b"caf\xe9-r\xe9sultat.csv"), "rb") as fh:
        assert fh.read() == b"1,2\n"


DEEP = "/tmp/deep/" + "/".join(["d" * 100] * 45)  # about 4.6 KB: longer than one system call may name


def test_a_tree_deeper_than_4kb_is_audited_rescued_and_can_be_discarded(theirs):
    core, user, name, cid = theirs
    script = ("import os\nos.makedirs('/tmp/deep')\nos.chdir('/tmp/deep')\n"
              "for _ in range(45):\n    os.mkdir('d' * 100)\n    os.chdir('d' * 100)\n"
              "open('leaf.txt', 'w').write('leaf')\n")
    code, out = core.engine.exec(cid, ["python3", "-c", script], user=as_user(user))
    assert code == 0, out
    audit = core.guard.audit(user, name)
    leaf = [f for f in audit.findings if f.path.endswith("/leaf.txt")]
    assert leaf and leaf[0].path == DEEP + "/leaf.txt" and leaf[0].kind == WORK
    assert any("could not list" in n for n in audit.notes)
    rescue = core.guard.rescue(user, name, audit)
    fd = os.open(rescue.folder, os.O_RDONLY)
    for part in DEEP.strip("/").split("/"):
        fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    assert os.read(os.open("leaf.txt", os.O_RDONLY, dir_fd=fd), 10) == b"leaf"
    # Stopped, nothing can look inside: the guard says so, refuses a plain retire, and discard still works.
    core.containers.stop(user, name)
    audit = core.guard.audit(user, name)
    assert [f.path for f in audit.at_risk] == [UNLISTED]
    assert len(audit.to_dict()["findings"][0]["detail"]) < 600  # not a 4 KB engine message
    with pytest.raises(UnsavedWork):
        core.guard.retire(user, name)
    with pytest.raises(UnsavedWork):
        core.guard.retire(user, name, mode="rescue")  # nothing can be copied: kept
    assert core.guard.retire(user, name, mode="discard")["container"]["state"] == "removed"


def test_many_tiny_files_count_what_they_allocate(make_core, other_user, project_name):
    core = make_core(limits="defaults:\n  storage_workspace: 8m\n")
    name = project_name()
    core.projects.create(other_user, name)
    cid = core.containers.deploy(other_user, name, gpus=0).container.id
    sh(core, cid, "mkdir /tmp/tiny && cd /tmp/tiny && i=0; while [ $i -lt 3000 ]; do echo > f$i; i=$((i+1)); done",
       as_user(other_user))
    audit = core.guard.audit(other_user, name)
    assert sum(f.size for f in audit.at_risk) < 10_000  # 3000 bytes of data ...
    with pytest.raises(QuotaExceeded) as info:
        core.guard.rescue(other_user, name, audit)  # ... but 12 MB of blocks
    assert "allocate" in info.value.message
    assert not (core.projects.get(other_user, name).path / ".rescued").exists()


def test_a_file_that_grows_after_the_check_stops_the_copy_cleanly(make_core, other_user, project_name):
    core = make_core(limits="defaults:\n  storage_workspace: 20m\n")
    name = project_name()
    core.projects.create(other_user, name)
    cid = core.containers.deploy(other_user, name, gpus=0).container.id
    sh(core, cid, "echo small > /tmp/log.txt", as_user(other_user))
    audit = core.guard.audit(other_user, name)
    sh(core, cid, "head -c 40000000 /dev/zero > /tmp/log.txt", as_user(other_user))  # a trainer kept writing
    with pytest.raises(QuotaExceeded):
        core.guard.rescue(other_user, name, audit)
    rescued = core.projects.get(other_user, name).path / ".rescued"
    assert list(rescued.iterdir()) == []  # the incomplete copy is gone, and it was the user's own to remove
    assert core.engine.get_container(cid).running


def test_the_disk_filling_up_mid_copy_is_a_clear_error_and_leaves_nothing(small_fs):
    project = small_fs / "proj"
    project.mkdir()
    writer = RescueWriter(project, budget=None)  # no budget: the filesystem itself says no
    with pytest.raises(DiskFull) as info:
        writer.add_file("/tmp/big.bin", b"x" * (8 * 2**20))
    writer.abort()
    assert "filled up" in info.value.message
    assert os.listdir(project / ".rescued") == []


def test_the_rescue_writer_as_a_user_leaves_nothing_root_owned(other_user, small_fs):
    from ds01_jupyter.core.rescue_writer import writer_for

    project = small_fs / "proj"
    project.mkdir()
    os.chown(project, other_user.uid, other_user.gid)
    writer = writer_for(other_user, project, budget=None)
    writer.add_file("/tmp/a.txt", b"a" * 10)
    with pytest.raises(DiskFull):
        writer.add_file("/tmp/big.bin", b"x" * (8 * 2**20))
        writer.publish("p", "c", [])
    writer.abort()
    out = subprocess.run(["find", str(project), "-uid", "0"], capture_output=True, text=True).stdout.split()
    assert out == [], out


def test_a_stopped_container_still_shows_names_that_are_not_utf8(theirs):
    core, user, name, cid = theirs
    sh(core, cid, "python3 -c \"open(b'/tmp/r\\xe9sultat.csv', 'wb').write(b'1,2\\n')\"", as_user(user))
    core.containers.stop(user, name)
    audit = core.guard.audit(user, name)
    assert [f.size for f in audit.at_risk if f.path.startswith("/tmp/r")] == [4]
    with pytest.raises(UnsavedWork):
        core.guard.retire(user, name)


def test_a_reader_that_stops_halfway_never_passes_for_a_finished_rescue(theirs, monkeypatch):
    """Only the stream of the in-container reader is cut here (as an out-of-memory kill cuts it): the rest is real."""
    import io
    import tarfile

    core, user, name, cid = theirs
    sh(core, cid, "echo a > /tmp/a.txt && echo b > /tmp/b.txt", as_user(user))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("tmp/a.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"a\n"))
    cut = buffer.getvalue()[:1024]  # the first member, then nothing: no report, no second file
    monkeypatch.setattr(core.guard, "_inside", lambda *a, **k: (io.BytesIO(cut), lambda: 137))
    with pytest.raises(Exception) as info:  # the probe is cut too: what runs is unknown, and she said stop it
        core.guard.retire(user, name, mode="rescue", stop_processes=True)
    assert "stopped early" in str(info.value)
    assert core.engine.get_container(cid).running  # kept: /tmp/b.txt is only in there
    rescued = core.projects.get(user, name).path / ".rescued"
    assert not rescued.exists() or list(rescued.iterdir()) == []


def test_roots_state_files_in_a_users_home_never_follow_their_links(theirs, tmp_path):
    core, user, name, cid = theirs
    sh(core, cid, "echo x > /tmp/x.txt", as_user(user))
    victim = Path(tempfile.mkdtemp(prefix="ds01-victim-"))  # root's, 0700
    audits = core.settings.expand(core.settings.state_dir, user) / "audits"
    audits.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(user.home / ".local")], check=True)
    audits.symlink_to(victim)  # the user points root's next write at a folder of root's
    core.guard.audit(user, name)  # root acts for the user (as the hub and the reaper do)
    assert list(victim.iterdir()) == []
    os.unlink(audits)
    audits.mkdir()
    os.chown(audits, user.uid, user.gid)
    os.mkfifo(audits / f"{name}.json")  # a FIFO where root reads the remembered audit
    os.chown(audits / f"{name}.json", user.uid, user.gid)
    started = time.monotonic()
    assert core.guard.remembered(user, name) is None
    assert time.monotonic() - started < 5
    victim.rmdir()


def test_roots_dockerfile_step_never_follows_a_users_link(make_core, other_user, project_name):
    """The spawner deploys as root: ~/dockerfiles made a link to a root folder must not be written or chowned."""
    core = make_core()
    name = project_name()
    core.projects.create(other_user, name)
    victim = Path(tempfile.mkdtemp(prefix="ds01-victim-"))
    (other_user.home / "dockerfiles").symlink_to(victim)
    with pytest.raises(Forbidden):
        core.images.dockerfile(other_user, name)
    assert list(victim.iterdir()) == [] and victim.stat().st_uid == 0
    os.unlink(other_user.home / "dockerfiles")
    path = core.images.dockerfile(other_user, name)  # a real folder: made and owned by the user
    assert path.stat().st_uid == other_user.uid and path.parent.stat().st_uid == other_user.uid
    victim.rmdir()


def test_no_command_ever_runs_as_root_in_a_container():
    """Every exec ds01 makes into a container runs as the user: none names uid 0 (the report's host-root path)."""
    import re

    package = Path(__file__).resolve().parent.parent / "ds01_jupyter"
    offenders = []
    for path in package.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""user\s*=\s*["']0(:0)?["']|user\s*=\s*["']root["']""", line):
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_kernels_folder_replaces_a_planted_link_and_never_follows_it(theirs):
    from ds01_jupyter.kernels import container_kernel

    core, user, name, cid = theirs
    sh(core, cid, "rm -rf /tmp/.ds01", as_user(user))  # as if the image's init had emptied /tmp (the files are hers)
    sh(core, cid, "ln -s /usr/local/sbin /tmp/.ds01", as_user(user))
    # Only the folder step of a kernel's start matters here.
    container_kernel._prepare(core, user, cid, "k1", {"key": "x"}, {})
    code, out = core.engine.exec(cid, ["stat", "-c", "%a %U %F", "/usr/local/sbin", "/tmp/.ds01"], user=as_user(user))
    sbin, folder = out.decode().splitlines()
    # A real folder (hers, as everything ds01 writes into her container) replaced the link; sbin is untouched.
    assert sbin.startswith("755 root") and folder == f"1777 {user.name} directory", out


def test_swapping_the_project_for_a_link_does_not_hide_a_container_from_the_counts(theirs):
    core, user, name, cid = theirs
    project = core.projects.get(user, name).path
    os.rename(project, project.with_name(name + ".real"))  # the running mount follows the moved folder
    os.symlink("/var/tmp", project)
    os.lchown(project, user.uid, user.gid)
    try:
        assert cid in {c.id for c in core.containers.vet(core.engine.list_containers({"ds01.user": user.name}))}
    finally:
        os.unlink(project)
        os.rename(project.with_name(name + ".real"), project)


def test_a_long_answer_from_inside_is_read_whole(theirs):
    """The probe's answer comes in many frames of the engine's stream: all of it must be read, or the audit
    falls back to the archives and loses what only the inside can see (memory-backed files, processes)."""
    core, user, name, cid = theirs
    sh(
        core,
        cid,
        "mkdir /tmp/many && cd /tmp/many && for i in $(seq 3000); do echo > file-with-a-long-name-$i.csv; done"
        " && echo shm > /dev/shm/only-inside.txt",
        as_user(user),
    )
    audit = core.guard.audit(user, name)
    paths = {f.path for f in audit.findings}
    assert "/dev/shm/only-inside.txt" in paths, audit.notes
    assert sum(p.startswith("/tmp/many/") for p in paths) == 3000


def test_what_an_audit_reads_of_the_users_files_is_bounded_and_never_blocks(theirs, monkeypatch):
    """A FIFO or a huge requirements.txt, an apt log made any size inside (a sparse file costs her no disk, and the
    engine sends every byte): root reads a bounded part, or refuses, and never waits on a FIFO."""
    core, user, name, cid = theirs
    project = core.projects.get(user, name).path
    # The apt log, as an image whose Dockerfile made it hers might let her write it: one line, then 64 MiB of holes.
    sh(core, cid, "mkdir -p /var/log/apt && echo 'Install: ds01probe:amd64 (1.0)' > /var/log/apt/history.log "
                  "&& truncate -s 64M /var/log/apt/history.log", "0:0")
    monkeypatch.setattr("ds01_jupyter.core.guard.APT_LOG_MAX", 1 << 20)
    audit = core.guard.audit(user, name)
    assert any(f.path == "apt:ds01probe" for f in audit.findings)
    assert any("Read the first 1.0 MiB of /var/log/apt/history.log only" in note for note in audit.notes), audit.notes

    for make in (lambda p: os.mkfifo(p), lambda p: p.write_bytes(b"numpy\n" * 400_000)):
        path = project / "requirements.txt"
        path.unlink(missing_ok=True)
        make(path)
        os.chown(path, user.uid, user.gid)
        started = time.monotonic()
        with pytest.raises(InvalidRequest):
            core.guard.add_requirements(user, name, audit)
        assert time.monotonic() - started < 5


def test_the_audits_look_for_links_reads_only_what_the_user_may(theirs):
    """The link walk runs as the user: a folder she cannot read (root's, 0700, in her project) is not listed, so no
    link in it is reported (a swap of a folder for a link mid-walk leads root's walk nowhere she could not go)."""
    core, user, name, cid = theirs
    project = core.projects.get(user, name).path
    (project / "mine").mkdir()
    os.chown(project / "mine", user.uid, user.gid)
    (project / "mine" / "out").symlink_to("/etc")
    (project / "roots").mkdir(mode=0o700)
    (project / "roots" / "secret-token").symlink_to("/opt/vault/sk-LIVE")
    try:
        found = {f.path: f for f in core.guard.audit(user, name).findings}
        assert found["/workspace/mine/out"].source == "workspace-link"
        assert not any("secret-token" in path for path in found)
    finally:
        shutil.rmtree(project / "roots")


def test_a_file_the_rescue_cannot_read_keeps_the_container(theirs):
    """A file of root's (0600, made with sudo inside) is audited but cannot be copied as her: the retire is
    refused and the container kept, never retired with the file named only among the skipped."""
    core, user, name, cid = theirs
    sh(core, cid, "echo ok > /tmp/ok.txt", as_user(user))
    sh(core, cid, "head -c 1000 /dev/urandom > /opt/secret.bin && chmod 600 /opt/secret.bin", "0:0")
    with pytest.raises(UnsavedWork) as info:
        core.guard.retire(user, name, mode="rescue")
    assert "/opt/secret.bin" in info.value.message and "could not be read" in info.value.message
    assert core.engine.get_container(cid).running
    folder = Path(info.value.details["rescued"]["folder"])
    assert (folder / "tmp/ok.txt").read_text() == "ok\n"
    assert core.guard.retire(user, name, mode="discard")["container"]["state"] == "removed"
