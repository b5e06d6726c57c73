"""The GPU allocation lock: one admin-owned path for everyone, opened safely, waited on visibly."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ds01_jupyter.core import DS01, Settings
from ds01_jupyter.core.allocator import LOCK_NAME, GpuAllocator, LockTimeout
from ds01_jupyter.core.errors import ConfigError, Forbidden
from ds01_jupyter.core.settings import DEFAULT_LOCK_DIR, env_may_set_admin_settings

BIN = Path(sys.executable).parent
ADMIN_ENV = pytest.mark.skipif(not env_may_set_admin_settings(), reason="DS01_LOCK_DIR needs root or /etc/ds01-jupyter")


def test_default_lock_is_one_host_wide_path_whatever_tmpdir(monkeypatch, tmp_path):
    first = Settings().lock_dir
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert Settings().lock_dir == first == DEFAULT_LOCK_DIR == "/run/lock"
    assert Settings.from_env({"TMPDIR": str(tmp_path)}, euid=0).lock_dir == DEFAULT_LOCK_DIR


def test_a_plain_user_cannot_move_the_lock_or_lift_limits_through_the_environment():
    for variable in ("DS01_LOCK_DIR", "DS01_LIMITS_FILE", "DS01_GPU_INVENTORY", "DS01_IMAGE_TEMPLATE"):
        with pytest.raises(Forbidden) as info:
            Settings.from_env({variable: "/tmp/mine"}, euid=54321)
        assert variable in info.value.message and "admin" in info.value.message
    # Their own things stay theirs to set.
    own = Settings.from_env({"DS01_DOCKER_URL": "unix:///run/user/1/docker.sock", "DS01_LOCK_TIMEOUT": "5"}, euid=54321)
    assert own.docker_url.endswith("docker.sock") and own.lock_timeout == 5.0
    assert Settings.from_env({"DS01_LOCK_DIR": "/srv/locks"}, euid=0).lock_dir == "/srv/locks"


def _allocator(folder, timeout=60.0):
    return GpuAllocator(None, str(folder), timeout=timeout)


def test_links_fifos_and_foreign_folders_are_refused_and_nothing_is_chmodded(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("secret")
    victim.chmod(0o600)
    (folder / LOCK_NAME).symlink_to(victim)
    with pytest.raises(ConfigError) as info, _allocator(folder).locked():
        pass
    assert "symbolic link" in info.value.message
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600

    (folder / LOCK_NAME).unlink()
    os.link(victim, folder / LOCK_NAME)  # a hard link to someone's file
    with pytest.raises(ConfigError, match="hard links"), _allocator(folder).locked():
        pass
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600

    (folder / LOCK_NAME).unlink()
    os.mkfifo(folder / LOCK_NAME)  # would block a plain open for ever
    with pytest.raises(ConfigError, match="not a regular file"), _allocator(folder).locked():
        pass

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # writable by all, not sticky: anyone could swap the lock
    with pytest.raises(ConfigError, match="sticky"), _allocator(shared).locked():
        pass
    if os.geteuid() == 0:
        os.chown(shared, 4343, 4343)
        shared.chmod(0o755)
        with pytest.raises(ConfigError, match="belongs to"), _allocator(shared).locked():
            pass


def test_a_missing_folder_in_a_shared_place_is_not_made(tmp_path):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    with pytest.raises(ConfigError, match="does not exist"), _allocator(sticky / "ds01").locked():
        pass
    assert not (sticky / "ds01").exists()


def test_lock_file_is_made_readable_once_and_an_existing_one_keeps_its_mode(tmp_path):
    folder = tmp_path / "locks"
    with _allocator(folder).locked():
        pass
    lock = folder / LOCK_NAME
    assert stat.S_ISREG(lock.lstat().st_mode) and stat.S_IMODE(lock.stat().st_mode) == 0o644
    lock.chmod(0o444)  # read-only is enough for flock; ds01 never changes it back
    with _allocator(folder).locked():
        pass
    assert stat.S_IMODE(lock.stat().st_mode) == 0o444


def test_a_held_lock_is_named_and_times_out_clearly(tmp_path):
    folder = tmp_path / "locks"
    with _allocator(folder).locked():
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(folder / LOCK_NAME)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        said = []
        started = time.monotonic()
        with pytest.raises(LockTimeout) as info, _allocator(folder, timeout=1.0).locked(progress=said.append):
            pass
        assert 0.9 < time.monotonic() - started < 10
        assert len(said) == 1 and f"held by pid {holder.pid} / user " in said[0] and "Waiting" in said[0]
        assert str(holder.pid) in info.value.message and "Gave up after 1 s" in info.value.message
        assert info.value.details["holders"][0]["pid"] == holder.pid
        # Released: the next one gets it at once, and the wait ends as soon as the holder lets go.
        waited = []
        threading.Timer(0.5, holder.kill).start()
        with _allocator(folder, timeout=20).locked(progress=waited.append):
            pass
        assert waited and "Waiting" in waited[0]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@ADMIN_ENV
def test_cli_deploy_says_whom_it_waits_for_and_goes_on_when_the_lock_is_free(make_core, home, project_name):
    settings = make_core.settings()
    env = dict(os.environ, HOME=str(home), DS01_LOCK_DIR=settings.lock_dir, DS01_BASE_IMAGE=settings.base_image,
               DS01_GPU_INVENTORY=settings.gpu_inventory, DS01_LIMITS_FILE=settings.limits_file, DS01_STOP_TIMEOUT="2")
    name = project_name()
    subprocess.run([str(BIN / "project-init"), name], env=env, check=True, capture_output=True)
    subprocess.run([str(BIN / "image-create"), name], env=env, check=True, capture_output=True)
    core = DS01(settings)
    held = core.allocator.locked()
    held.__enter__()  # this test process holds it for 3 s
    threading.Timer(3, held.__exit__, (None, None, None)).start()
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "container-deploy"), name, "--background"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert f"Waiting for the GPU allocation lock held by pid {os.getpid()} / user " in proc.stderr
    assert time.monotonic() - started > 2.5


@ADMIN_ENV
def test_a_foreign_lock_folder_is_one_clear_line_not_a_traceback(make_core, home, project_name, tmp_path):
    settings = make_core.settings()
    bad = tmp_path / "open-locks"
    bad.mkdir()
    bad.chmod(0o777)
    env = dict(os.environ, HOME=str(home), DS01_LOCK_DIR=str(bad), DS01_BASE_IMAGE=settings.base_image,
               DS01_GPU_INVENTORY=settings.gpu_inventory, DS01_LIMITS_FILE=settings.limits_file)
    name = project_name()
    subprocess.run([str(BIN / "project-init"), name], env=env, check=True, capture_output=True)
    proc = subprocess.run([str(BIN / "container-deploy"), name, "--background"], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "lock folder" in proc.stderr and "sticky" in proc.stderr and "admin" in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file owned by another uid")
def test_a_lock_file_of_another_user_is_refused(tmp_path):
    """Its owner could delete it while others hold it and so let two deploys in at once."""
    folder = tmp_path / "locks"
    folder.mkdir()
    (folder / LOCK_NAME).write_text("")
    os.chown(folder / LOCK_NAME, 54321, 54321)
    with pytest.raises(ConfigError) as info, _allocator(folder).locked():
        pass
    assert "belongs to user" in info.value.message and "install -m 0644" in info.value.hint
