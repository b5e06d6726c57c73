"""The persistence guard against real containers: every way of writing is found, classified and rescued."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from ds01_jupyter.core.errors import DiskFull, QuotaExceeded, UnsavedWork
from ds01_jupyter.core.findings import CACHE, ENVIRONMENT, WORK


@pytest.fixture
def deployed(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    status = core.containers.deploy(user, name).container
    return core, name, status.id


def sh(core, cid, script, user="0:0"):
    code, out = core.engine.exec(cid, ["sh", "-c", script], user=user)
    assert code == 0, out
    return out.decode()


def sha_in_container(core, cid, path):
    code, out = core.engine.exec(cid, ["sh", "-c", 'sha256sum < "$1"', "sh", path], user="0:0", stderr=False)
    assert code == 0, out
    return out.split()[0].decode()


def by_path(audit):
    return {f.path: f for f in audit.findings}


def tiny_wheel(name="ds01probe", version="1.0") -> bytes:
    buffer = io.BytesIO()
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", f"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return buffer.getvalue()


def test_every_way_of_writing_is_found_classified_and_rescued_byte_identical(deployed, user):
    core, name, cid = deployed
    project = core.projects.get(user, name).path
    # Python, native code (libc through ctypes), a shell command, a background process, memory.
    sh(
        core,
        cid,
        "python3 -c \"open('/tmp/from_python.csv','w').write('a,b\\n1,2\\n')\"",
        user=f"{user.uid}:{user.gid}",
    )
    sh(core, cid, "python3 -c \"import ctypes; c=ctypes.CDLL(None); f=c.fopen(b'/opt/native.bin', b'wb'); "
                  "c.fwrite(b'native-bytes', 1, 12, f); c.fclose(f)\"")
    sh(core, cid, "mkdir -p /data/run1 && head -c 300000 /dev/urandom > /data/run1/model.pt")
    sh(core, cid, "(sleep 0.2; echo late > /root/from_background.txt) & wait")
    sh(core, cid, "echo shared > /dev/shm/features.npy")
    sh(core, cid, "mkdir -p /root/.cache/pip/http && head -c 5000 /dev/urandom > /root/.cache/pip/http/blob")
    sh(core, cid, "mkdir -p /tmp/pkg/__pycache__ && echo x > /tmp/pkg/__pycache__/m.cpython-311.pyc")
    core.engine.put_file(cid, "/tmp/ds01probe-1.0-py3-none-any.whl", tiny_wheel(), 0o644)
    sh(
        core,
        cid,
        "pip install --no-index --no-deps /tmp/ds01probe-1.0-py3-none-any.whl >/dev/null 2>&1; "
        "python3 -c 'import ds01probe'",
    )
    (project / "data" / "escape").symlink_to("/tmp")

    audit = core.guard.audit(user, name)
    found = by_path(audit)
    for path in ("/tmp/from_python.csv", "/opt/native.bin", "/data/run1/model.pt", "/root/from_background.txt"):
        assert found[path].kind == WORK and found[path].source == "writable-layer", path
    assert found["/dev/shm/features.npy"].source == "tmpfs" and found["/dev/shm/features.npy"].kind == WORK
    assert found["/data/run1/model.pt"].checkpoint and found["/data/run1/model.pt"].size == 300000
    assert audit.findings[0].path == "/data/run1/model.pt"  # checkpoints first
    assert found["/workspace/data/escape"].source == "workspace-link"
    pip = [f for f in audit.findings if f.kind == ENVIRONMENT and f.detail == "ds01probe==1.0"]
    assert len(pip) == 1 and pip[0].files >= 3
    caches = {f.path: f for f in audit.findings if f.kind == CACHE}
    assert caches["/root/.cache/pip"].size == 5000
    assert any(p.endswith("__pycache__") for p in caches)
    assert not any("ds01-kernel" in f.path or "/.ds01/" in f.path for f in audit.findings)

    assert core.guard.add_requirements(user, name, audit) == ["ds01probe==1.0"]
    assert "ds01probe==1.0" in (project / "requirements.txt").read_text()
    assert core.guard.add_requirements(user, name, audit) == []  # never twice

    expected = {
        p: sha_in_container(core, cid, p)
        for p in (
            "/tmp/from_python.csv",
            "/opt/native.bin",
            "/data/run1/model.pt",
            "/root/from_background.txt",
            "/dev/shm/features.npy",
        )
    }
    with pytest.raises(UnsavedWork) as refused:
        core.guard.retire(user, name)
    assert refused.value.status == 409 and "--rescue" in refused.value.hint
    assert core.engine.get_container(cid) is not None  # refused: nothing happened

    result = core.guard.retire(user, name, mode="rescue")
    folder = project / ".rescued"
    (rescue_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    assert result["rescued"]["folder"] == str(rescue_dir)
    for path, digest in expected.items():
        copy = rescue_dir / path.lstrip("/")
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest, path
        assert copy.stat().st_uid == user.uid
    assert "ds01probe==1.0" in (rescue_dir / "environment-changes.txt").read_text()
    manifest = json.loads((rescue_dir / "MANIFEST.json").read_text())
    assert {m["path"] for m in manifest["files"]} >= set(expected)
    assert core.engine.get_container(cid) is None


def test_a_running_jupyter_kernel_makes_no_warning_of_its_own(deployed, user):
    core, name, cid = deployed
    # A kernel as the provisioner starts one: ipykernel writes its runtime files and history.
    sh(
        core,
        cid,
        "mkdir -p /tmp/.ds01 && (python3 -m ipykernel_launcher -f /tmp/.ds01/kernel-x.json >/dev/null 2>&1 &) ; "
        "sleep 5; python3 -c 'import IPython; IPython.get_ipython'",
        user=f"{user.uid}:{user.gid}",
    )
    audit = core.guard.audit(user, name)
    assert audit.at_risk == [], [f.to_dict() for f in audit.at_risk]
    assert [f.kind for f in audit.findings if f.source == "process"] == ["kernel"]  # idle: listed quietly
    assert core.guard.retire(user, name)["rescued"] is None  # nothing to choose: retired directly


def test_odd_files_are_handled(deployed, user):
    core, name, cid = deployed
    long_dir = "/tmp/" + "/".join(["d" * 60] * 6)
    script = (
        "mkdir -p '/tmp/with space' && echo a > '/tmp/with space/file name.txt'; "
        "printf 'nl' > \"$(printf '/tmp/new\\nline.txt')\"; "
        "echo u > '/tmp/ünïcødé-✓.txt'; "
        f"mkdir -p {long_dir} && echo deep > {long_dir}/deep.txt; "
        "echo hard > /tmp/hard1 && ln /tmp/hard1 /tmp/hard2; "
        "dd if=/dev/zero of=/tmp/sparse.img bs=1 count=0 seek=50M 2>/dev/null; echo end >> /tmp/sparse.img; "
        "mkfifo /tmp/a.fifo; ln -s /etc/passwd /tmp/link-to-passwd; "
        "echo secret > /root/root-owned.txt && chmod 600 /root/root-owned.txt"
    )
    sh(core, cid, script)
    audit = core.guard.audit(user, name)
    found = by_path(audit)
    for path in ("/tmp/with space/file name.txt", "/tmp/new\nline.txt", "/tmp/ünïcødé-✓.txt", f"{long_dir}/deep.txt",
                 "/tmp/hard1", "/tmp/hard2", "/tmp/sparse.img", "/root/root-owned.txt"):
        assert found[path].kind == WORK, path
    assert found["/tmp/a.fifo"].detail.startswith("special")
    digests = {
        p: sha_in_container(core, cid, p)
        for p in ("/tmp/new\nline.txt", "/tmp/hard2", "/tmp/sparse.img", "/root/root-owned.txt")
    }
    rescue = core.guard.rescue(user, name, audit)
    folder = core.projects.get(user, name).path / ".rescued"
    (rescue_dir,) = [p for p in folder.iterdir() if p.is_dir()]
    for path, digest in digests.items():
        assert hashlib.sha256((rescue_dir / path.lstrip("/")).read_bytes()).hexdigest() == digest, path
    assert (rescue_dir / "tmp" / "link-to-passwd").is_symlink()  # kept as a link, never followed
    assert any(s["path"] == "/tmp/a.fifo" for s in rescue.skipped)


def test_stopped_and_dead_containers_can_be_audited_and_rescued(deployed, user, engine):
    core, name, cid = deployed
    sh(core, cid, "mkdir -p /results && head -c 4096 /dev/urandom > /results/metrics.json && echo gone > /dev/shm/x")
    digest = sha_in_container(core, cid, "/results/metrics.json")
    engine.api.kill(cid)  # dies, as after an out-of-memory kill
    audit = core.guard.audit(user, name)
    assert audit.state == "exited"
    assert by_path(audit)["/results/metrics.json"].size == 4096
    assert any("/dev/shm" in note for note in audit.notes)
    result = core.guard.retire(user, name, mode="rescue")
    copy = Path(result["rescued"]["folder"]) / "results" / "metrics.json"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest


def test_rescue_over_quota_says_so_before_copying_anything(make_core, user, project_name):
    core = make_core(limits="defaults:\n  storage_workspace: 1m\n")
    name = project_name()
    core.projects.create(user, name)
    cid = core.containers.deploy(user, name).container.id
    sh(core, cid, "head -c 3000000 /dev/urandom > /tmp/big.bin")
    with pytest.raises(QuotaExceeded) as info:
        core.guard.retire(user, name, mode="rescue")
    assert info.value.details["limit"] == "storage_workspace"
    assert not (core.projects.get(user, name).path / ".rescued").exists()
    assert core.engine.get_container(cid).running  # the container and its files are untouched
    assert core.guard.retire(user, name, mode="discard")["discarded"] >= 1


def test_interrupted_rescue_is_retried_and_never_removes_the_container(deployed, user):
    core, name, cid = deployed
    sh(core, cid, "echo one > /tmp/one.txt && echo two > /tmp/two.txt")
    rescued = core.projects.get(user, name).path / ".rescued"
    stale = rescued / "20200101T000000Z.partial" / "tmp"
    stale.mkdir(parents=True)  # what a rescue killed halfway leaves
    (stale / "one.txt").write_text("one\n")
    result = core.guard.retire(user, name, mode="rescue")
    names = sorted(p.name for p in rescued.iterdir())
    assert len(names) == 1 and not names[0].endswith(".partial")
    assert (rescued / names[0] / "tmp" / "two.txt").read_text() == "two\n"
    assert result["container"]["state"] == "removed"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small filesystem (root only)")
def test_disk_full_is_refused_before_copying(make_core, user, project_name, small_fs):
    core = make_core(workspace_root=str(small_fs))
    name = project_name()
    core.projects.create(user, name)
    cid = core.containers.deploy(user, name).container.id
    sh(core, cid, "echo data > /tmp/keep.txt")
    with pytest.raises(DiskFull) as info:
        core.guard.rescue(user, name)  # a 4 MiB filesystem: less than the copy plus the safety margin
    assert "free" in info.value.message
    assert not (core.projects.get(user, name).path / ".rescued").exists()  # refused before anything was made
    assert core.engine.get_container(cid).running
