"""Project names and folders: bad names touch nothing; layouts are complete; nothing is overwritten."""

from __future__ import annotations

import os
import subprocess

import pytest

from ds01_jupyter.core import Settings
from ds01_jupyter.core.errors import AlreadyExists, Forbidden, InvalidName, ProjectNotFound
from ds01_jupyter.core.names import check_project_name, container_name
from ds01_jupyter.core.projects import LAYOUT_DIRS, Projects

BAD_NAMES = [
    "",
    "../x",
    "a/b",
    "..",
    ".hidden",
    "x" * 300,
    "Upper",
    "with space",
    "caf\u00e9",
    "\u0430bc",  # Cyrillic a: looks like "abc"
    "trailing-",
    "a--b",
    "a._.b",
    "nul\x00l",
    None,
    42,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_before_anything_is_touched(name, user, home):
    projects = Projects(Settings())
    with pytest.raises(InvalidName) as info:
        projects.create(user, name)
    assert "lowercase letters" in (info.value.hint or "") or "required" in info.value.message
    assert not (home / "workspace").exists() or list((home / "workspace").iterdir()) == []


@pytest.mark.parametrize("name", ["demo", "my-project", "exp_2", "a", "x" * 63])
def test_good_names(name):
    assert check_project_name(name) == name


def test_container_name_follows_ds01():
    assert container_name("demo", "alice") == "demo._.alice"


def test_create_makes_the_recommended_layout(user, home):
    projects = Projects(Settings())
    project = projects.create(user, "demo")
    assert project.path == home / "workspace" / "demo"
    for sub in LAYOUT_DIRS:
        assert (project.path / sub).is_dir(), sub
    for name in ("README.md", "requirements.txt", ".gitignore", "data/README.md", "src/__init__.py"):
        assert (project.path / name).is_file()
    ignored = (project.path / ".gitignore").read_text().split()
    assert {"data/**", "!data/README.md", "models/", "results/"} <= set(ignored)
    assert (project.path / ".git").is_dir()
    # git really ignores data, models and results
    for rel in ("data/raw/x.csv", "models/m.pt", "results/logs/run.log"):
        (project.path / rel).write_text("x")
        check = subprocess.run(["git", "-C", str(project.path), "check-ignore", "-q", rel])
        assert check.returncode == 0, rel
    kept = subprocess.run(["git", "-C", str(project.path), "check-ignore", "-q", "data/README.md"])
    assert kept.returncode == 1  # the note on where the data comes from is committed
    assert [p.name for p in projects.list(user)] == ["demo"]


def test_create_never_overwrites(user, home):
    projects = Projects(Settings())
    project = projects.create(user, "demo")
    (project.path / "README.md").write_text("my notes")
    with pytest.raises(AlreadyExists):
        projects.create(user, "demo")
    assert (project.path / "README.md").read_text() == "my notes"


def test_symlinked_project_folder_is_refused(user, home, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (home / "workspace").mkdir()
    os.symlink(outside, home / "workspace" / "sneaky")
    projects = Projects(Settings())
    with pytest.raises(Forbidden):
        projects.get(user, "sneaky")
    assert [p.name for p in projects.list(user)] == []


def test_missing_project_says_how_to_create_it(user):
    with pytest.raises(ProjectNotFound) as info:
        Projects(Settings()).get(user, "nope")
    assert "project-init nope" in info.value.hint
    assert info.value.status == 404


def test_list_skips_files_and_odd_folders(user, home):
    projects = Projects(Settings())
    projects.create(user, "b")
    projects.create(user, "a")
    (home / "workspace" / "notes.txt").write_text("x")
    (home / "workspace" / "Bad Name").mkdir()
    (home / "workspace" / ".cache").mkdir()
    assert [p.name for p in projects.list(user)] == ["a", "b"]
    # One project looked up as list() would list it (the sidebar's per-project refresh): the same answer.
    (home / "workspace" / "linked").symlink_to(home / "workspace" / "a")
    (home / "workspace" / "afile").write_text("x")
    for name in ("a", "b", "notes.txt", "Bad Name", ".cache", "linked", "afile", "missing", "a/..", "", "../a"):
        found = projects.listed(user, name)
        assert (found.name if found else None) == (name if name in ("a", "b") else None), name
    assert projects.listed(user, "a").path == projects.list(user)[0].path
