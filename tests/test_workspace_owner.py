"""A user's workspace is theirs: no front end lets one user reach another's projects (real Unix users)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import sysconfig

import pytest

from ds01_jupyter.core import DS01, Settings, User
from ds01_jupyter.core.errors import Forbidden

SITE = sysconfig.get_paths()["purelib"]
#: The test's interpreter may live where other users cannot read (/root/.pyenv): run the same code and
#: packages with the system's Python of the same minor version, which every user can run.
SYSTEM_PYTHON = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/bin")
RUN_CLI = "import site, sys; site.addsitedir(sys.argv.pop(1)); from ds01_jupyter.cli.main import entry; entry()"

pytestmark = [
    pytest.mark.slow,  # real Unix users run the command line in processes of their own
    pytest.mark.skipif(os.geteuid() != 0, reason="making Unix users needs root"),
    pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system Python of this version for other users"),
]


@pytest.fixture
def two_users():
    names = [f"dsa{secrets.token_hex(3)}", f"dsb{secrets.token_hex(3)}"]
    for name in names:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    try:
        yield [User.from_name(n) for n in names]
    finally:
        for name in names:
            subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def as_user(user: User, *args, **env):
    # The engine directly, as these users may use it: a ds01d serving this host (.ci/start) would answer instead.
    base = {"PATH": "/usr/bin:/bin", "HOME": str(user.home), "LANG": "C.UTF-8", "DS01_SOCKET": "none"}
    cmd = ["runuser", "-u", user.name, "--", "env", "-i", *[f"{k}={v}" for k, v in {**base, **env}.items()],
           SYSTEM_PYTHON, "-c", RUN_CLI, SITE, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "ModuleNotFoundError" not in proc.stderr, proc.stderr
    return proc


def test_another_users_workspace_is_refused_everywhere_without_a_traceback(two_users):
    alice, bob = two_users
    # status and reap ask the engine first: bob may use Docker, as DS01 users do (removed with the user).
    subprocess.run(["usermod", "-aG", "docker", bob.name], check=True)
    made = as_user(alice, "project-init", "thesis")
    assert made.returncode == 0, made.stderr
    models = alice.home / "workspace" / "thesis" / "models"
    (models / "epoch-1.pt").write_bytes(b"x" * 10)
    os.chown(models / "epoch-1.pt", alice.uid, alice.gid)

    theirs = str(alice.home / "workspace")
    for env in ({"DS01_WORKSPACE_ROOT": theirs}, {"HOME": str(alice.home)}):
        for args in (["rescue", "thesis"], ["checkpoints", "thesis"], ["prune", "thesis", "--keep-last", "0", "--yes"],
                     ["container-deploy", "thesis", "--background"], ["project-list"], ["status"],
                     ["project-init", "mine"], ["reap"]):
            proc = as_user(bob, *args, **env)
            assert proc.returncode == 1, (args, env, proc.stdout, proc.stderr)
            assert "Traceback" not in proc.stderr and "PermissionError" not in proc.stderr, proc.stderr
            assert f"belongs to {alice.name}" in proc.stderr and "hint:" in proc.stderr, (args, proc.stderr)
    assert (models / "epoch-1.pt").exists()
    assert not (alice.home / "workspace" / "mine").exists()

    # The front ends that act as root for a user (server, spawner) get the same answer from the core.
    core = DS01(Settings(workspace_root=theirs))
    with pytest.raises(Forbidden) as info:
        core.projects.get(bob, "thesis")
    assert "belongs to" in info.value.message and info.value.hint
    with pytest.raises(Forbidden):
        core.checkpoints(bob, "thesis")
    assert core.projects.get(alice, "thesis").path == alice.home / "workspace" / "thesis"


def test_own_workspace_works_and_admin_settings_are_refused_from_a_users_environment(two_users, tmp_path):
    _, bob = two_users
    own = as_user(bob, "project-init", "mine")
    assert own.returncode == 0, own.stderr
    assert (bob.home / "workspace" / "mine").stat().st_uid == bob.uid
    listed = as_user(bob, "project-list")
    assert listed.returncode == 0 and "mine" in listed.stdout
    # A folder of someone else's inside their root (root's here) is not offered as a project, nor usable.
    (bob.home / "workspace" / "rootsdir").mkdir()
    assert "rootsdir" not in as_user(bob, "project-list").stdout
    refused = as_user(bob, "checkpoints", "rootsdir")
    assert refused.returncode == 1 and "belongs to root" in refused.stderr

    generous = tmp_path / "generous.yaml"
    generous.write_text("defaults:\n  max_containers_per_user: 99\n")
    for variable, value in (("DS01_LIMITS_FILE", str(generous)), ("DS01_LOCK_DIR", str(tmp_path)),
                            ("DS01_GPU_INVENTORY", str(generous))):
        proc = as_user(bob, "check-limits", **{variable: value})
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert f"{variable} is an admin setting" in proc.stderr, proc.stderr
    help_text = " ".join(as_user(bob, "--help").stdout.split())
    assert "`ds01 settings` lists them" in help_text
    # `ds01 settings` shows the user what they set and that the admin's one is refused, as the verbs refuse it.
    shown = as_user(bob, "settings", DS01_LIMITS_FILE=str(generous), DS01_BASE_IMAGE="mine:1")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines() if line.startswith("DS01_")}
    assert f"{generous} (refused: the admin's)" in rows["DS01_LIMITS_FILE"]
    assert "mine:1" in rows["DS01_BASE_IMAGE"] and "refused" not in rows["DS01_BASE_IMAGE"]
    assert "Refused here: DS01_LIMITS_FILE (the admin's)" in shown.stdout


def test_root_making_a_deep_workspace_root_never_follows_the_users_links(two_users, tmp_path):
    """A workspace root below a folder of her home (the admin's {home}/data/ws) is made as her: a link she put in
    its place leads root's mkdir, and the chown after it, nowhere she could not go herself."""
    alice = two_users[0]
    victim = tmp_path / "roots"
    victim.mkdir(mode=0o755)  # root's, hers to read only
    tmp_path.chmod(0o755)
    subprocess.run(["runuser", "-u", alice.name, "--", "ln", "-s", str(victim), str(alice.home / "data")],
                   check=True)
    core = DS01(Settings(workspace_root="{home}/data/ws"))
    with pytest.raises(Forbidden):
        core.projects.create(alice, "demo")
    assert list(victim.iterdir()) == []
    (alice.home / "data").unlink()
    core.projects.create(alice, "demo")  # a real folder of hers: made as her, hers
    assert (alice.home / "data" / "ws").stat().st_uid == alice.uid
