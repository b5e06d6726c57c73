"""Limits in DS01's own YAML format: defaults, groups, user overrides; ~/.ds01-limits is only a copy."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from ds01_jupyter.core import Settings, User
from ds01_jupyter.core.errors import ConfigError
from ds01_jupyter.core.limits import Limits, LimitsSource, fit_to_host, host_resources, parse_duration, parse_size

EXAMPLE = Path(__file__).resolve().parents[1] / "ds01_jupyter" / "resource-limits.example.yaml"

DOC = """
defaults:
  max_mig_instances: 2
  max_gpus_per_container: 1
  allow_full_gpu: false
  max_cpus: 16
  memory: 32g
  memory_swap: 32g
  shm_size: 16g
  pids_limit: 4096
  max_containers_per_user: 3
  max_runtime: 24h
  idle_timeout: 0.5h
  gpu_hold_after_stop: 0.25h
  container_hold_after_stop: null
  io_read_bps: 500M   # DS01 fields we do not enforce are accepted
default_group: student
groups:
  student:
    members: []
  researcher:
    members: [carol]
    allow_full_gpu: true
    max_mig_per_container: 2
    max_mig_instances: 8
    memory: 64g
user_overrides:
  carol:
    max_containers_per_user: 9
gpu_allocation:
  mig_instances_per_gpu: 4
"""


def source(tmp_path, text) -> LimitsSource:
    path = tmp_path / "limits.yaml"
    path.write_text(text)
    return LimitsSource(Settings(limits_file=str(path)))


def person(name, tmp_path, uid=5000):
    return User(name, uid, uid, tmp_path / name)


def test_defaults_group_and_override_resolve_in_order(tmp_path):
    limits = source(tmp_path, DOC)
    bob = limits.for_user(person("bob", tmp_path))
    assert bob.max_mig_instances == 2
    assert bob.max_mig_per_container == 1  # from the older alias max_gpus_per_container
    assert bob.allow_full_gpu is False
    assert bob.memory == 32 * 2**30
    assert bob.idle_timeout == 1800
    assert bob.container_hold_after_stop is None
    assert bob.mig_instances_per_gpu == 4
    assert "group student" in bob.source

    carol = limits.for_user(person("carol", tmp_path))
    assert carol.allow_full_gpu is True
    assert carol.max_mig_instances == 8
    assert carol.max_mig_per_container == 2
    assert carol.memory == 64 * 2**30
    assert carol.max_containers_per_user == 9
    assert carol.max_cpus == 16  # inherited from defaults


@pytest.fixture
def home_of():
    """A person with a home of their own outside pytest's 0700 folders, as real homes are (root writes the copy
    with the user's rights)."""
    base = Path(tempfile.mkdtemp(prefix="ds01-home-"))
    base.chmod(0o755)

    def make(name, uid=5000):
        user = User(name, uid, uid, base / name)
        user.home.mkdir()
        os.chown(user.home, uid, uid)
        return user

    yield make
    shutil.rmtree(base)


def test_user_copy_is_written_and_never_read(tmp_path, home_of):
    limits = source(tmp_path, DOC)
    bob = home_of("bob")
    path = limits.write_user_copy(bob, limits.for_user(bob))
    text = path.read_text()
    assert path == bob.home / ".ds01-limits"
    assert "max_mig_instances: '2'" in text and "memory: 32.0 GiB" in text
    path.write_text("defaults:\n  max_mig_instances: 99\n")  # the user tries to raise their limit
    assert limits.for_user(bob).max_mig_instances == 2


def test_shipped_example_parses():
    limits = LimitsSource(Settings(limits_file=str(EXAMPLE)))
    resolved = limits.for_user(User("someone", 5001, 5001, Path("/nonexistent")))
    assert resolved.max_containers_per_user >= 1
    assert resolved.memory > 0


@pytest.mark.parametrize(
    "text,message",
    [
        ("defaults: [1, 2]\n", "Bad value"),
        ("- a\n- b\n", "mapping"),
        ("defaults: {memory: lots}\n", "Cannot read size"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        source(tmp_path, text).for_user(person("bob", tmp_path))
    assert message in str(info.value) or "Cannot read" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    limits = LimitsSource(Settings(limits_file=str(tmp_path / "nope.yaml")))
    with pytest.raises(ConfigError) as info:
        limits.for_user(person("bob", tmp_path))
    assert "does not exist" in info.value.message


def test_sizes_and_durations():
    assert parse_size("512m") == 512 * 2**20
    assert parse_size("1T") == 2**40
    assert parse_size("16GiB") == 16 * 2**30
    assert parse_duration("30m") == 1800
    assert parse_duration("2h") == 7200
    assert parse_duration(1.5) == 5400
    assert parse_duration(None) is None


def test_defaults_are_capped_at_the_host_and_an_admins_excess_is_noted(tmp_path):
    tiny = {"memory": 2**30, "memory_swap": 2**30, "shm_size": 2**30, "max_cpus": 2.0}
    values = {"pids_limit": 100}
    notes = fit_to_host(values, tiny)
    assert values == {"pids_limit": 100, **tiny} and len(notes) == 4
    assert all("capped at what this host has" in n for n in notes)
    admin = {"memory": 4 * 2**30}
    notes = fit_to_host(admin, tiny)
    assert admin["memory"] == 4 * 2**30 and any("memory 4.0 GiB is more than this host has" in n for n in notes)

    host = host_resources()
    resolved = source(tmp_path, "defaults:\n  pids_limit: 100\n").for_user(person("bob", tmp_path))
    assert resolved.memory <= host["memory"] and resolved.max_cpus <= host["max_cpus"]
    assert resolved.shm_size <= host["shm_size"] and resolved.memory_swap <= host["memory_swap"]
    if Limits().memory > host["memory"]:
        assert any(n.startswith("memory: the default 32.0 GiB is capped") for n in resolved.notes)
    assert "notes" not in resolved.describe()


def test_user_copy_never_follows_a_planted_link(tmp_path, home_of):
    limits = source(tmp_path, DOC)
    bob = home_of("bob")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (bob.home / ".ds01-limits").symlink_to(victim)
    path = limits.write_user_copy(bob, limits.for_user(bob))
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and "max_mig_instances" in path.read_text()
    assert path.stat().st_uid == bob.uid
    # A folder on the way swapped for a link to one she may not write (an admin's deeper copy path): nothing there.
    roots = tmp_path / "roots"
    roots.mkdir(mode=0o755)  # hers to read, not to write
    (bob.home / ".config").symlink_to(roots)
    deeper = LimitsSource(Settings(limits_file=str(tmp_path / "limits.yaml"), user_limits_copy="{home}/.config/x"))
    assert deeper.write_user_copy(bob, deeper.for_user(bob)) is None and list(roots.iterdir()) == []
