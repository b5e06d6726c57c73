"""Caches and trackers live in /workspace; caches found outside it are never dropped without a word."""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ds01_jupyter.core.containers import WORKSPACE_ENV, workspace_env
from ds01_jupyter.core.errors import InvalidRequest

cli = importlib.import_module("ds01_jupyter.cli.main")  # the module (the package exports its main())
HF_BYTES = 3 * 2**20
#: What huggingface_hub does to find its cache (constants.py): HF_HOME, else $XDG_CACHE_HOME/huggingface.
HF_DOWNLOAD = (
    "import os; home = os.environ.get('HF_HOME') or os.path.join(os.environ.get('XDG_CACHE_HOME') or "
    "os.path.expanduser('~/.cache'), 'huggingface'); blobs = os.path.join(home, 'hub', 'models--ds01--tiny', 'blobs'); "
    "os.makedirs(blobs, exist_ok=True); open(os.path.join(blobs, 'abc123'), 'wb').write(b'w' * 1000); print(home)"
)


def sh(core, cid, script, user="0:0"):
    code, out = core.engine.exec(cid, ["sh", "-c", script], user=user)
    assert code == 0, out
    return out.decode()


def container_env(core, cid) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sh(core, cid, "env").splitlines() if "=" in line)


@pytest.fixture
def deployed(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    return core, name, core.containers.deploy(user, name).container.id


def test_defaults_leave_out_what_the_image_sets():
    assert workspace_env(()) == WORKSPACE_ENV
    assert WORKSPACE_ENV["MLFLOW_TRACKING_URI"].startswith("file:///workspace/")
    assert all(
        v.startswith(("/workspace", "file:///workspace")) for k, v in WORKSPACE_ENV.items() if k != "PIP_NO_CACHE_DIR"
    )
    mine = workspace_env(("HF_HOME=/opt/hf", "PATH=/usr/bin"))
    assert "HF_HOME" not in mine and mine["XDG_CACHE_HOME"] == "/workspace/.cache"
    assert "PIP_NO_CACHE_DIR" not in workspace_env(("PIP_CACHE_DIR=/workspace/.cache/pip",))  # the image chose


def test_deployed_container_keeps_caches_and_trackers_in_the_workspace(deployed, user):
    core, name, cid = deployed
    env = container_env(core, cid)
    for key, value in WORKSPACE_ENV.items():
        assert env[key] == value, key
    assert env["DATA_DIR"] == "/workspace/data" and env["MODEL_DIR"] == "/workspace/models"
    assert env["RESULTS_DIR"] == "/workspace/results"

    # A Hugging Face download, as the user, lands in the host's workspace and survives a retire.
    assert sh(core, cid, f'python3 -c "{HF_DOWNLOAD}"', user=f"{user.uid}:{user.gid}").strip() == env["HF_HOME"]
    project = core.projects.get(user, name).path
    blob = project / ".cache" / "huggingface" / "hub" / "models--ds01--tiny" / "blobs" / "abc123"
    assert blob.read_bytes() == b"w" * 1000
    audit = core.guard.audit(user, name)
    assert not [f for f in audit.findings if "huggingface" in f.path or f.kind == "cache"], audit.to_dict()
    result = core.guard.retire(user, name)
    assert result["dropped_caches"] == [] and result["rescued"] is None
    assert blob.exists()

    ignored = (project / ".gitignore").read_text().split()
    assert {".cache/", "results/", "data/**", "models/", "mlruns/", "wandb/"} <= set(ignored)
    if shutil.which("git") and (project / ".git").is_dir():
        check = subprocess.run(["git", "check-ignore", "-q", str(blob.relative_to(project))], cwd=project)
        assert check.returncode == 0  # a downloaded model never ends up in git


def test_a_dockerfile_env_wins(make_core, user, project_name):
    core = make_core()
    name = project_name()
    core.projects.create(user, name)
    dockerfile = core.images.dockerfile(user, name)
    dockerfile.write_text(dockerfile.read_text() + "\nENV HF_HOME=/opt/hf PIP_CACHE_DIR=/workspace/.cache/pip\n")
    cid = core.containers.deploy(user, name).container.id
    env = container_env(core, cid)
    assert env["HF_HOME"] == "/opt/hf" and env["PIP_CACHE_DIR"] == "/workspace/.cache/pip"
    assert "PIP_NO_CACHE_DIR" not in env  # pip's cache is the image's choice then
    assert env["XDG_CACHE_HOME"] == "/workspace/.cache" and env["TORCH_HOME"] == "/workspace/.cache/torch"
    assert env["PYTHONPATH"].startswith("/dev/.ds01-lib:/tmp/.ds01/lib")


def plant_cache(core, cid):
    """A 3 MiB Hugging Face download and a pip cache in ~/.cache (outside /workspace), and one work file."""
    sh(core, cid, f"mkdir -p /root/.cache/huggingface/hub/models--x/blobs /root/.cache/pip/http && "
                  f"head -c {HF_BYTES} /dev/urandom > /root/.cache/huggingface/hub/models--x/blobs/b1 && "
                  "head -c 1000 /dev/urandom > /root/.cache/pip/http/p1 && "
                  "ln -s blobs/b1 /root/.cache/huggingface/hub/models--x/latest && echo 1,2 > /tmp/result.csv")


def sha(core, cid, path):
    code, out = core.engine.exec(cid, ["sh", "-c", 'sha256sum < "$1"', "sh", path], user="0:0", stderr=False)
    assert code == 0
    return out.split()[0].decode()


def test_rescue_and_retire_say_what_caches_they_skip_and_copy_them_when_asked(deployed, user, monkeypatch, capsys):
    core, name, cid = deployed
    plant_cache(core, cid)
    project = core.projects.get(user, name).path

    rescue = core.guard.rescue(user, name)
    skipped = {s["path"]: s for s in rescue.skipped if s.get("kind") == "cache"}
    assert skipped["/root/.cache/huggingface"]["size"] == HF_BYTES + len("blobs/b1")  # the link's own size
    assert skipped["/root/.cache/pip"]["size"] == 1000
    assert "include-caches" in skipped["/root/.cache/huggingface"]["why"]
    assert rescue.files == 1 and not (Path(rescue.folder) / "root").exists()
    manifest = json.loads((Path(rescue.folder) / "MANIFEST.json").read_text())
    assert {s["path"] for s in manifest["skipped"]} >= set(skipped)

    # The command line says it in one line, with the size and the way to keep them.
    monkeypatch.setattr(cli, "_core", lambda: core)
    monkeypatch.setenv("HOME", str(user.home))
    assert cli.main(["rescue", name]) == 0
    printed = capsys.readouterr().out
    assert (
        "Skipped 2 caches (3.0 MiB): /root/.cache/huggingface, /root/.cache/pip; use --include-caches to keep them"
        in printed
    )

    digest = sha(core, cid, "/root/.cache/huggingface/hub/models--x/blobs/b1")
    kept = core.guard.rescue(user, name, include_caches=True)
    folder = Path(kept.folder)
    assert not [s for s in kept.skipped if s.get("kind") == "cache"]
    copy = folder / "root/.cache/huggingface/hub/models--x/blobs/b1"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    assert (folder / "root/.cache/huggingface/hub/models--x/latest").is_symlink()  # kept as a link
    assert (folder / "root/.cache/pip/http/p1").stat().st_size == 1000
    assert kept.files == 4 and kept.bytes == HF_BYTES + 1000 + len("1,2\n")

    # Retiring with --rescue (the bug: the download went without a word) says what it dropped.
    assert cli.main(["container-retire", name, "--rescue"]) == 0
    printed = capsys.readouterr().out
    assert "Rescued 1 files" in printed
    assert "Skipped 2 caches (3.0 MiB): /root/.cache/huggingface, /root/.cache/pip" in printed
    assert core.engine.get_container(cid) is None
    assert len([p for p in (project / ".rescued").iterdir() if p.is_dir()]) == 4


def test_retire_with_only_caches_proceeds_and_says_what_it_dropped(deployed, user, monkeypatch, capsys):
    core, name, cid = deployed
    sh(core, cid, f"mkdir -p /root/.cache/huggingface && head -c {HF_BYTES} /dev/urandom > /root/.cache/huggingface/m")
    monkeypatch.setattr(cli, "_core", lambda: core)
    monkeypatch.setenv("HOME", str(user.home))
    assert cli.main(["container-retire", name, "--discard", "--include-caches"]) == 2
    capsys.readouterr()
    with pytest.raises(InvalidRequest):
        core.guard.retire(user, name, mode="discard", include_caches=True)
    assert cli.main(["container-retire", name]) == 0  # caches alone never stop a retire...
    printed = capsys.readouterr().out
    assert "Dropped 1 cache (3.0 MiB): /root/.cache/huggingface; use --include-caches to keep them" in printed
    assert not (core.projects.get(user, name).path / ".rescued").exists()


def test_retire_include_caches_copies_them_even_without_work(deployed, user):
    core, name, cid = deployed
    sh(core, cid, "mkdir -p /root/.cache/torch/hub && echo weights > /root/.cache/torch/hub/w.pth")
    result = core.guard.retire(user, name, include_caches=True)
    assert result["dropped_caches"] == [] and result["rescued"]["files"] == 1
    assert (Path(result["rescued"]["folder"]) / "root/.cache/torch/hub/w.pth").read_text() == "weights\n"


def test_stopped_container_caches_are_copied_from_the_archive(deployed, user, engine):
    core, name, cid = deployed
    plant_cache(core, cid)
    engine.api.kill(cid)
    result = core.guard.retire(user, name, mode="rescue", include_caches=True)
    folder = Path(result["rescued"]["folder"])
    assert (folder / "root/.cache/huggingface/hub/models--x/blobs/b1").stat().st_size == HF_BYTES
    assert (folder / "tmp/result.csv").read_text() == "1,2\n"


async def test_rest_include_caches(api, home, engine, demo):
    await api("POST", "projects", body={"name": demo}, expect=201)
    _, deployed = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    cid = deployed["container"]["id"]
    code, _ = engine.exec(cid, ["sh", "-c", "mkdir -p /root/.cache/huggingface && head -c 5000 /dev/urandom > "
                                "/root/.cache/huggingface/m && echo 1,2 > /tmp/result.csv"], user="0:0")
    assert code == 0
    _, rescued = await api("POST", "projects", demo, "rescue", expect=200)
    (cache,) = [s for s in rescued["skipped"] if s.get("kind") == "cache"]
    assert cache["path"] == "/root/.cache/huggingface" and cache["size"] == 5000
    status, _ = await api("POST", "projects", demo, "rescue", body={"include_caches": "yes"})
    assert status == 400
    _, rescued = await api("POST", "projects", demo, "rescue", body={"include_caches": True}, expect=200)
    assert rescued["files"] == 2 and not [s for s in rescued["skipped"] if s.get("kind") == "cache"]
    status, _ = await api("POST", "projects", demo, "retire", body={"mode": "discard", "include_caches": True})
    assert status == 400
    _, retired = await api("POST", "projects", demo, "retire", body={"mode": "rescue", "include_caches": True},
                           expect=200)
    assert retired["dropped_caches"] == [] and retired["rescued"]["files"] == 2
    copies = list((home / "workspace" / demo / ".rescued").glob("*/root/.cache/huggingface/m"))
    assert len(copies) == 2 and all(c.stat().st_size == 5000 for c in copies)
