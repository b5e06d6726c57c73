"""The DS01 guide followed step by step: a folder made with mkdir, git, cleaning up, "where are my files?".

Run as a real Unix user made for the test (not root, not in the docker group) where the core acts as root for
them, so ownership and git's identity are the user's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_environ

from ds01_jupyter.core import gitstate

BIN = Path(sys.executable).parent


def _as(user, *args, cwd=None):
    return subprocess.run(list(args), cwd=cwd, user=user.uid, group=user.gid, extra_groups=[], check=True,
                          capture_output=True, text=True, env={"HOME": str(user.home), "PATH": os.environ["PATH"]})


def _owners(root: Path) -> set[int]:
    return {p.lstat().st_uid for p in [root, *root.rglob("*")] if ".git" not in p.parts}


def test_project_init_adopts_a_folder_made_with_mkdir_and_overwrites_nothing(make_core, other_user, project_name):
    core = make_core(workspace_root=str(other_user.home / "workspace"))
    name = project_name()
    folder = other_user.home / "workspace" / name
    _as(other_user, "mkdir", "-p", str(folder / "notebooks"))
    _as(other_user, "sh", "-c", f"echo 'my own notes' > {folder}/README.md && echo '{{}}' > {folder}/notebooks/a.ipynb")

    result = core.projects.init(other_user, name)
    assert not result.created
    assert {"data/README.md", "src/__init__.py", ".gitignore", "requirements.txt", "models/"} <= set(result.added)
    assert "README.md" not in result.added and "notebooks/" not in result.added
    assert (folder / "README.md").read_text() == "my own notes\n"  # never overwritten
    assert _owners(folder) == {other_user.uid}
    assert result.git == gitstate.IDENTITY_HINT  # git knows no name for this user yet
    assert gitstate.state(other_user, str(folder)).summary == "no commit yet"
    again = core.projects.init(other_user, name)
    assert again.added == [] and not again.created

    # With a name for git, a new project's layout is committed at once; nothing is pushed anywhere yet.
    _as(other_user, "git", "config", "--global", "user.name", "Test User")
    _as(other_user, "git", "config", "--global", "user.email", "test@example.com")
    fresh = core.projects.init(other_user, project_name())
    assert fresh.created and "first commit" in fresh.git
    state = gitstate.state(other_user, str(fresh.project.path))
    assert (state.commits, state.changed, state.untracked, state.remote) == (True, 0, 0, False)
    assert state.summary == "no remote"
    tracked = _as(other_user, "git", "ls-files", cwd=fresh.project.path).stdout.split()
    assert "data/README.md" in tracked and "src/__init__.py" in tracked
    (fresh.project.path / "src" / "train.py").write_text("print('hi')\n")
    assert gitstate.state(other_user, str(fresh.project.path)).summary == "1 uncommitted change, no remote"


def test_git_state_says_what_is_not_pushed(make_core, other_user, project_name, tmp_path):
    core = make_core(workspace_root=str(other_user.home / "workspace"))
    _as(other_user, "git", "config", "--global", "user.name", "Test User")
    _as(other_user, "git", "config", "--global", "user.email", "test@example.com")
    project = core.projects.init(other_user, project_name()).project
    remote = other_user.home / "remote.git"
    _as(other_user, "git", "init", "-q", "--bare", str(remote))
    _as(other_user, "git", "remote", "add", "origin", str(remote), cwd=project.path)
    assert core.git_state(other_user, project.name)["summary"] == "branch not pushed"
    _as(other_user, "git", "push", "-q", "-u", "origin", "HEAD", cwd=project.path)
    assert core.git_state(other_user, project.name)["summary"] == "committed and pushed"
    (project.path / "src" / "model.py").write_text("x = 1\n")
    _as(other_user, "git", "add", "-A", cwd=project.path)
    _as(other_user, "git", "commit", "-qm", "model", cwd=project.path)
    assert core.git_state(other_user, project.name)["summary"] == "1 commit not pushed"
    # A repository config that would run a program is the user's own business: git runs with their uid.
    marker = tmp_path / "ran-as"
    tmp_path.chmod(0o777)
    _as(other_user, "git", "config", "core.fsmonitor", f"sh -c 'id -u > {marker}' #", cwd=project.path)
    core.git_state(other_user, project.name)
    assert not marker.exists() or marker.read_text().strip() == str(other_user.uid)
    overview = {p["name"]: p for p in core.overview(other_user)["projects"]}
    assert overview[project.name]["git"]["ahead"] == 1


def test_project_init_from_the_command_line_lists_what_it_added(make_core, home, project_name):
    env = cli_environ(make_core.settings(), home)
    name = project_name()
    (home / "workspace" / name).mkdir(parents=True)
    done = subprocess.run([str(BIN / "ds01"), "project-init", name], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Added the missing parts" in done.stdout and "+ data/README.md" in done.stdout
    again = subprocess.run([str(BIN / "ds01"), "project-init", name, "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert json.loads(again.stdout)["added"] == []
    status = subprocess.run([str(BIN / "ds01"), "status"], env=env, capture_output=True, text=True, timeout=60)
    assert "GIT" in status.stdout and name in status.stdout


@pytest.fixture(autouse=True)
def _no_system_git_identity(monkeypatch):
    """A test host's own git identity must not leak into the user's answers."""
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def test_clean_previews_then_deletes_the_guides_scratch_and_never_rescues(make_core, user, project_name):
    core = make_core()
    name = project_name()
    project = core.projects.create(user, name).path
    (project / "tmp" / "deep").mkdir(parents=True)
    (project / "tmp" / "deep" / "scratch.bin").write_bytes(b"x" * 5000)
    (project / "src" / "__pycache__").mkdir()
    (project / "src" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x" * 100)
    (project / "notebooks" / ".ipynb_checkpoints").mkdir()
    (project / "results" / "run.tmp").write_bytes(b"x" * 10)
    (project / ".rescued" / "20260101T000000Z" / "tmp").mkdir(parents=True)
    (project / ".rescued" / "20260101T000000Z" / "tmp" / "a.tmp").write_text("rescued: never cleaned")
    (project / "src" / "keep.py").write_text("print(1)\n")
    (project / "data" / "link").symlink_to("/etc")  # never followed
    for epoch in (1, 2, 3):
        from ds01_jupyter import checkpoints as ck
        ck.save({"e": epoch}, epoch=epoch, directory=project / "models")
    for p in (project / "models").iterdir():
        os.utime(p, (1e9, 1e9))

    plan = core.cleanup.clean(user, name, keep_last=1)
    paths = {i["path"] for i in plan["items"]}
    assert paths == {"tmp", "src/__pycache__", "notebooks/.ipynb_checkpoints", "results/run.tmp"}
    assert plan["bytes"] >= 5110 and not plan["deleted"]
    assert len(plan["checkpoints"]["would_delete"]) == 2
    assert (project / "tmp").exists()  # a preview deletes nothing
    done = core.cleanup.clean(user, name, confirm=True, keep_last=1)
    assert done["deleted"] and not (project / "tmp").exists() and not (project / "src" / "__pycache__").exists()
    assert (project / "src" / "keep.py").exists() and (
        project / ".rescued" / "20260101T000000Z" / "tmp" / "a.tmp"
    ).exists()
    assert len([p for p in (project / "models").iterdir() if p.suffix in (".pt", ".pkl")]) == 1
    assert os.path.isdir("/etc")


def test_usage_counts_shared_layers_once_and_lists_large_files(make_core, other_user, project_name):
    user = other_user  # a user of the test's own: only their images are counted
    core = make_core(workspace_root=str(user.home / "workspace"))
    names = [project_name(), project_name()]
    for name in names:
        core.projects.create(user, name)
        core.images.build(user, name)
    big = core.projects.get(user, names[0]).path / "data" / "big.bin"
    big.write_bytes(b"\0" * 3_000_000)
    os.chown(big, user.uid, user.gid)
    usage = core.storage_use(user, larger_than=2_000_000)
    images = usage["images"]
    assert images["count"] == 2 and images["shared_bytes"] > 0
    sizes = [usage["projects"][n]["image_bytes"] for n in names]
    assert images["total_bytes"] < sum(sizes)  # the base image's layers once, not twice
    assert images["total_bytes"] == images["unique_bytes"] + images["shared_bytes"]
    assert usage["large_files"] == [[names[0], "data/big.bin", 3_000_000]]
    assert usage["disk"]["free_bytes"] > 0 and usage["disk"]["total_bytes"] >= usage["disk"]["free_bytes"]


def test_image_prune_removes_superseded_builds_no_container_uses(make_core, other_user, project_name, engine):
    user = other_user  # a user of the test's own: only their images are listed
    core = make_core(workspace_root=str(user.home / "workspace"))
    name = project_name()
    core.projects.create(user, name)
    first = core.images.build(user, name)
    core.containers.deploy(user, name)  # the container uses the first build
    dockerfile = core.images.dockerfile(user, name, create=False)
    dockerfile.write_text(dockerfile.read_text() + "\nLABEL rebuilt=1\n")
    second = core.images.build(user, name)
    states = {i["id"]: i for i in core.cleanup.images(user)}
    assert states[second.id]["state"] == "current"
    assert states[first.id]["state"] == "superseded" and states[first.id]["used_by"]
    assert core.cleanup.prune_images(user)["would_delete"] == []  # used by the container: stays
    core.guard.retire(user, name, "discard")
    if engine.get_image(first.id) is not None:  # the retire may already have removed the old build
        plan = core.cleanup.prune_images(user)
        assert [i["id"] for i in plan["would_delete"]] == [first.id]
        core.cleanup.prune_images(user, confirm=True)
        assert engine.get_image(first.id) is None
    assert engine.get_image(second.id) is not None


def test_where_finds_a_file_in_every_place_it_can_be(make_core, user, project_name):
    core = make_core()
    name = project_name()
    project = core.projects.create(user, name).path
    (project / "results" / "scores.csv").write_text("a,b\n")
    core.containers.deploy(user, name)
    code, out = core.containers.exec(user, name, ["sh", "-c", "echo 1 > /tmp/scores.csv; echo 2 > /tmp/other.csv"])
    assert code == 0, out
    found = core.where(user, name, "scores.csv")
    places = {(m["where"], m["path"]) for m in found["matches"]}
    assert places == {("workspace", "/workspace/results/scores.csv"), ("container", "/tmp/scores.csv")}
    assert "ds01 rescue" in next(m["how"] for m in found["matches"] if m["where"] == "container")

    core.guard.retire(user, name, "rescue")
    found = core.where(user, name, "/tmp/*.csv")
    places = {(m["where"], m["path"]) for m in found["matches"]}
    assert ("rescued", "/tmp/scores.csv") in places and ("retired", "/tmp/other.csv") in places
    rescued = next(m for m in found["matches"] if m["where"] == "rescued" and m["path"] == "/tmp/scores.csv")
    assert Path(rescued["host_path"]).read_text() == "1\n"
    assert "was not searched" in found["notes"][0]  # no container now: said, not an error

    for i in range(300):
        (project / "data" / f"f{i}.txt").write_text("x")
    many = core.where(user, name, "*.txt")
    assert len(many["matches"]) == 200 and many["truncated"]
    with pytest.raises(Exception, match="glob"):
        core.where(user, name, "")


def test_the_cleanup_and_where_commands(make_core, home, project_name):
    env = cli_environ(make_core.settings(), home)
    name = project_name()

    def ds01(*args):
        return subprocess.run([str(BIN / "ds01"), *args], env=env, capture_output=True, text=True, timeout=120)

    assert ds01("project-init", name).returncode == 0
    project = home / "workspace" / name
    (project / "tmp").mkdir()
    (project / "tmp" / "x").write_bytes(b"x" * 2048)
    (project / "results" / "table.csv").write_text("a\n")
    preview = ds01("clean", name)
    assert preview.returncode == 0 and "the project's tmp/: 1" in preview.stdout and "--yes" in preview.stdout
    assert (project / "tmp").exists()
    assert ds01("clean", name, "--yes").returncode == 0 and not (project / "tmp").exists()
    found = ds01("where", name, "table.csv")
    assert found.returncode == 0 and "WORKSPACE /workspace/results/table.csv" in found.stdout
    assert ds01("where", name, "nothing-*.bin").returncode == 1
    usage = ds01("usage", "--larger-than", "1k")
    assert usage.returncode == 0 and "Disk:" in usage.stdout and "free of" in usage.stdout
    bad = ds01("usage", "--larger-than", "lots")
    assert bad.returncode == 2 and "not a size" in bad.stderr
    images = ds01("image-prune")
    assert images.returncode == 0 and "Run again with --yes" in images.stdout
