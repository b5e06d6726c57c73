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
