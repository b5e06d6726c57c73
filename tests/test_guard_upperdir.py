"""The audit read from the overlay upper directory finds exactly what the engine's diff path finds.

Both paths audit the same container (root reads the upper directory; the other is
the engine's diff with the probe's stats, as where the directory cannot be read):
deletions, a folder made opaque, links, hard links, a file replaced by a folder,
special files, names that are not UTF-8, a folder the user cannot search, and
/dev/shm; running and stopped.
"""

from __future__ import annotations

import os

import pytest

from ds01_jupyter.core import upperdir

SETUP = r"""
import os, socket
os.makedirs('/tmp/results/deep/er', exist_ok=True)
open('/tmp/results/model.pt', 'wb').write(b'w' * 5000)
open('/tmp/results/deep/er/metrics.csv', 'w').write('1,2\n')
os.link('/tmp/results/model.pt', '/tmp/results/same-model.pt')
os.symlink('/etc/passwd', '/tmp/results/to-passwd')
os.symlink('/nowhere/at/all', '/tmp/results/dangling')
os.mkfifo('/tmp/results/queue')
socket.socket(socket.AF_UNIX).bind('/tmp/results/server.sock')
open(b'/tmp/caf\xe9-r\xe9sultat.csv', 'wb').write(b'1,2\n')
os.makedirs(b'/tmp/\xff\xfe-dir', exist_ok=True)
open(b'/tmp/\xff\xfe-dir/x', 'wb').write(b'x')
os.makedirs('/tmp/.cache/pip/http', exist_ok=True)
open('/tmp/.cache/pip/http/blob', 'wb').write(b'c' * 300)
os.makedirs('/tmp/.local/lib/python3.11/site-packages/tool-1.0.dist-info', exist_ok=True)
open('/tmp/.local/lib/python3.11/site-packages/tool-1.0.dist-info/METADATA', 'w').write('Name: tool\n')
open('/tmp/run.pid', 'w').write('1')
os.makedirs('/tmp/locked/inner', exist_ok=True)
open('/tmp/locked/secret.txt', 'w').write('mine')
open('/tmp/locked/inner/more.txt', 'w').write('mine too')
os.chmod('/tmp/locked', 0)
open('/dev/shm/in-memory.bin', 'wb').write(b'm' * 64)
"""
# As root in the container: what only the image's owner could change.
ROOT_SETUP = (
    "rm /etc/issue && rm -rf /etc/apt && mkdir /etc/apt && echo x > /etc/apt/new.conf && "
    "rm /etc/issue.net && mkdir /etc/issue.net && echo dir > /etc/issue.net/now-a-folder && "
    "mkdir -p /opt/data && echo 1 > /opt/data/a.csv && ln /opt/data/a.csv /opt/data/b.csv && "
    "chmod 1777 /opt/data && rm -f /usr/share/doc/*/changelog.Debian.gz"
)


def _comparable(audit, skip=()) -> dict:
    data = audit.to_dict()
    for key in ("notes", "changes_from", "scanned_at", "seconds", "summary"):  # the summary counts the one below
        data.pop(key)
    # One known difference: a folder whose name is not UTF-8 reaches the engine's diff as U+FFFD, which the probe
    # cannot resolve above the last name, so that path lists its files as "could not be examined"; the walk reads
    # them. Ranked by size then path, ties may swap: compared as sets.
    data["findings"] = sorted(str(f) for f in data["findings"] if "-dir/x" not in f["path"] and f["path"] not in skip)
    return data


def _same(read, diffed, skip=(), probed=True) -> None:
    a, b = _comparable(read, skip), _comparable(diffed, skip)
    assert a == b, (sorted(set(a["findings"]) - set(b["findings"])), sorted(set(b["findings"]) - set(a["findings"])))
    odd = [f for f in diffed.findings if "-dir/x" in f.path]
    assert len(odd) == 1 and ("\ufffd" in odd[0].path and "could not be examined" in odd[0].detail) == probed


def _both(core, user, name, monkeypatch):
    """(audit through the upper directory, audit through the engine's diff) of the same container."""
    read = core.guard.audit(user, name)
    assert read.changes_from == "upper directory", read.notes

    def unreadable(engine, record):
        raise upperdir.Unreadable("switched off by the test")

    with monkeypatch.context() as m:
        m.setattr(upperdir, "locate", unreadable)
        diffed = core.guard.audit(user, name)
    assert diffed.changes_from == "engine diff"
    assert any("switched off by the test" in n for n in diffed.notes)
    return read, diffed


@pytest.mark.skipif(os.geteuid() != 0, reason="reading a container's upper directory needs root")
def test_upper_directory_and_engine_diff_find_the_same(make_core, other_user, project_name, monkeypatch):
    core = make_core()
    name = project_name()
    core.projects.create(other_user, name)
    record = core.containers.deploy(other_user, name, gpus=0).container
    if core.engine.get_container(record.id).storage_driver != "overlay2":
        pytest.skip("the engine does not use overlay2")
    code, out = core.engine.exec(record.id, ["sh", "-c", ROOT_SETUP], user="0:0")
    assert code == 0, out
    code, out = core.engine.exec(record.id, ["python3", "-c", SETUP], user=f"{other_user.uid}:{other_user.gid}")
    assert code == 0, out

    # The walk itself gives the engine's own answer (links of the image's layers aside: see upperdir.py).
    full = core.engine.get_container(record.id)
    walked = upperdir.walk(*upperdir.locate(core.engine, full))
    # (The engine sends names that are not UTF-8 with U+FFFD; the walk keeps their bytes.)
    mangled = {(p.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), k) for p, k in walked.changes}
    assert mangled == set(core.engine.diff(record.id)), (
        sorted(mangled - set(core.engine.diff(record.id))), sorted(set(core.engine.diff(record.id)) - mangled))

    read, diffed = _both(core, other_user, name, monkeypatch)
    _same(read, diffed)
    found = {f.path: f for f in read.findings}
    assert found["/tmp/results/model.pt"].size == found["/tmp/results/same-model.pt"].size == 5000
    assert found["/etc/issue.net/now-a-folder"].kind == "work"
    assert "/tmp/caf\udce9-r\udce9sultat.csv" in found and found["/tmp/\udcff\udcfe-dir/x"].size == 1
    assert "could not be examined" in found["/tmp/locked/secret.txt"].detail
    assert "/tmp/locked/inner/more.txt" not in found and "/tmp/locked/inner" in found  # its folder says it
    assert "/dev/shm/in-memory.bin" in found
    assert "/etc/issue" not in found and "/etc/apt/sources.list" not in found  # deletions are no findings

    # Stopped: no probe; the layer is read as root, as the engine's archives are.
    sizes = {f.path: f.size for f in read.findings}
    core.containers.stop(other_user, name, force=True)
    # The engine's archives give links no size (a symlink's header has none; a hard link's points at its first
    # name): the walk gives each its size, as the stat of the running container did.
    read, diffed = _both(core, other_user, name, monkeypatch)
    links = ("/opt/data/b.csv", "/tmp/results/same-model.pt", "/tmp/results/to-passwd", "/tmp/results/dangling")
    _same(read, diffed, skip=links, probed=False)  # the engine's archives have the folder's real name
    assert {f.path: f.size for f in read.findings if f.path in links} == {p: sizes[p] for p in links}
    assert "could not be examined" not in {f.path: f for f in read.findings}["/tmp/locked/secret.txt"].detail


def test_a_walk_never_follows_links_and_gives_up_where_the_engine_would(tmp_path):
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "kept").write_text("image")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "kept").write_text("changed")
    (upper / "etc" / "new").write_text("added")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-secret").write_text("never listed")
    (upper / "link").symlink_to(outside)  # a link to a folder on the host: listed as a link, never entered
    found = upperdir.walk(str(upper), (str(lower),))
    assert dict(found.changes) == {"/etc": "C", "/etc/kept": "C", "/etc/new": "A", "/link": "A"}
    assert found.stats["/link"][1] == 0o120000 and not any("host-secret" in p for p in found.stats)
    # A path the engine could not name on the host either: the caller falls back to the engine.
    fd = os.open(upper, os.O_RDONLY)
    for _ in range(20):  # 5 KB, made folder by folder
        os.mkdir("d" * 250, dir_fd=fd)
        fd, old = os.open("d" * 250, os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(fd)
    with pytest.raises(upperdir.Unreadable):
        upperdir.walk(str(upper), (str(lower),))
