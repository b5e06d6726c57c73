"""The overview's remembered git answers: reused while index, HEAD, refs and config are unchanged (fast tier)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from ds01_jupyter.core import gitstate
from ds01_jupyter.core.users import User

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")


def _git(path, *args):
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args], cwd=path, check=True,
                   capture_output=True)


def test_the_overview_reuses_an_answer_until_git_itself_changes(tmp_path):
    me = User.current()
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "start")
    path = str(repo)
    assert gitstate.state(me, path, max_age=60).summary == "no remote"

    # An edit in the working tree: asked afresh it shows; the overview's answer catches up within its time.
    (repo / "train.py").write_text("print(2)\n")
    assert gitstate.state(me, path).summary == "1 uncommitted change, no remote"
    assert gitstate.state(me, path, max_age=60).summary == "no remote"
    assert gitstate.state(me, path, max_age=1e-9).summary == "1 uncommitted change, no remote"

    # What git records (the index, a commit, a remote) is seen at once.
    (repo / "notes.md").write_text("n\n")
    assert gitstate.state(me, path, max_age=60).summary == "1 uncommitted change, no remote"
    _git(repo, "add", "notes.md")
    assert gitstate.state(me, path, max_age=60).summary == "2 uncommitted changes, no remote"
    _git(repo, "commit", "-q", "-am", "more")
    assert gitstate.state(me, path, max_age=60).summary == "no remote"
    _git(repo, "remote", "add", "origin", str(tmp_path / "nowhere.git"))
    answer = gitstate.state(me, path, max_age=60)
    assert answer.summary == "branch not pushed"
    answer.changed = 99  # each caller's own copy
    assert gitstate.state(me, path, max_age=60).changed == 0


def _repo(folder, name):
    repo = folder / name
    repo.mkdir()
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "start")
    return str(repo)


def test_the_overview_answers_from_memory_and_catches_up_in_the_background(tmp_path, monkeypatch):
    me = User.current()
    plain = tmp_path / "plain"
    plain.mkdir()
    paths = [_repo(tmp_path, f"p{i}") for i in range(12)] + [str(plain)]
    first = gitstate.states(me, paths, max_age=60)  # none remembered: all asked now (in parallel)
    assert [first[p].summary for p in paths] == ["no remote"] * 12 + ["not a git repository"]

    # An edit in the working tree, and the answers older than max_age: the old answer now, a fresh one soon after.
    (tmp_path / "p0" / "train.py").write_text("print(2)\n")
    assert gitstate.states(me, paths, max_age=1e-9)[paths[0]].summary == "no remote"
    deadline = time.monotonic() + 30
    while gitstate.states(me, paths, max_age=60)[paths[0]].summary == "no remote":
        assert time.monotonic() < deadline, "the background refresh never came"
        time.sleep(0.05)
    assert gitstate.states(me, paths, max_age=60)[paths[0]].summary == "1 uncommitted change, no remote"

    # An answer older than BACKGROUND_SECONDS is never shown: it is asked before answering.
    (tmp_path / "p1" / "train.py").write_text("print(3)\n")
    monkeypatch.setattr(gitstate, "BACKGROUND_SECONDS", 0.0)
    assert gitstate.states(me, paths, max_age=60)[paths[1]].summary == "1 uncommitted change, no remote"

    # A commit changes what git records: seen at once, whatever the age.
    monkeypatch.setattr(gitstate, "BACKGROUND_SECONDS", 3600.0)
    _git(tmp_path / "p0", "commit", "-q", "-am", "more")
    assert gitstate.states(me, paths, max_age=60)[paths[0]].summary == "no remote"
