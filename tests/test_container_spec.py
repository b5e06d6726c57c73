"""The container a deploy asks the engine for, built by a pure function (Containers._spec): checked without an
engine, as kubespawner checks make_pod. tests/test_containers.py and tests/test_isolation.py check what the real
engine made of it."""

from __future__ import annotations

import os

import pytest

from ds01_jupyter.core import DS01, Settings
from ds01_jupyter.core import labels as L
from ds01_jupyter.core.containers import WORKSPACE_ENV
from ds01_jupyter.core.engine import ContainerSpec, ImageRecord
from ds01_jupyter.core.gpus import GpuDevice
from ds01_jupyter.core.helpers import COPY_DIR, MOUNT
from ds01_jupyter.core.limits import Limits
from ds01_jupyter.core.projects import Project
from ds01_jupyter.core.users import User

ALICE = User("alice", 2001, 3001, "/home/alice")
LIMITS = Limits(memory=2**30, memory_swap=2 * 2**30, shm_size=2**28, pids_limit=512, max_cpus=1,
                mig_instances_per_gpu=4)


class NoEngine:
    """_spec must not ask the engine anything: every attribute is an error."""

    def __getattr__(self, name):
        raise AssertionError(f"the engine was asked for {name}")


@pytest.fixture
def containers():
    core = DS01(Settings(interface="test", framework_images={"pytorch": "ds01/pytorch:2"}), engine=NoEngine(),
                inventory=object())
    return core.containers


def image(*env):
    return ImageRecord(id="sha256:abc", tags=("ds01-alice/my_proj:latest",), size=1, created=None, labels={}, env=env)


def spec(containers, tmp_path, chosen=(), img=None, **kwargs) -> ContainerSpec:
    folder = tmp_path / "my_proj"
    folder.mkdir(exist_ok=True)
    return containers._spec(ALICE, Project("my_proj", folder), img or image(), LIMITS, list(chosen),
                            kwargs.pop("protected", False), **kwargs)


def test_the_container_is_the_users_own_named_for_project_and_user(containers, tmp_path):
    made = spec(containers, tmp_path)
    assert made.name == "my_proj._.alice" and made.hostname == "my-proj"
    assert made.image == "sha256:abc"  # the image checked, by id: a tag moved meanwhile changes nothing
    assert made.user == "2001:3001" and made.command == ("sleep", "infinity")
    assert made.workspace == str((tmp_path / "my_proj").resolve()) and made.work_mount == "/workspace"
    assert made.network == "ds01-alice-2001" and made.network_labels == L.owned_by(ALICE)
    assert made.read_only_mounts == ()


def test_labels_say_whose_it_is_and_decide_what_an_image_could_claim(containers, tmp_path):
    labels = spec(containers, tmp_path).labels
    assert L.is_container_of(labels, ALICE)
    assert labels[L.GROUP_ID] == "3001" and labels[L.PROJECT] == "my_proj"
    assert labels[L.WORKSPACE] == str((tmp_path / "my_proj").resolve())
    assert labels[L.IMAGE] == "ds01-alice/my_proj:latest" and labels[L.INTERFACE] == "test"
    # Set always, so that a LABEL in the user's Dockerfile can never decide them.
    assert (labels[L.PROTECTED], labels[L.GPU_UUIDS], labels[L.GPU_SLOTS], labels[L.GPU_ALLOCATED]) == (
        "false", "", "0", "false")
    assert labels[L.FALLBACK] == ""
    assert spec(containers, tmp_path, protected=True).labels[L.PROTECTED] == "true"


def test_gpus_are_labelled_with_their_slots_and_are_the_only_ones_visible(containers, tmp_path):
    full = GpuDevice("GPU-full", "0", "H200")
    slice_ = GpuDevice("MIG-a", "1:0", "MIG 1g", parent_uuid="GPU-9")
    made = spec(containers, tmp_path, chosen=[full, slice_])
    assert made.gpu_uuids == ("GPU-full", "MIG-a")
    assert made.labels[L.GPU_UUIDS] == "GPU-full,MIG-a" and made.labels[L.GPU_ALLOCATED] == "true"
    assert made.labels[L.GPU_SLOTS] == "5"  # a full GPU counts mig_instances_per_gpu (4), a slice 1
    assert made.env["NVIDIA_VISIBLE_DEVICES"] == "GPU-full,MIG-a"
    # Without GPUs, none: a CUDA image's default of "all" must not give them all.
    assert spec(containers, tmp_path).env["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_limits_become_the_containers_resources(containers, tmp_path):
    made = spec(containers, tmp_path)
    assert (made.memory, made.memory_swap, made.shm_size, made.pids_limit) == (2**30, 2 * 2**30, 2**28, 512)
    assert made.cpus == 1
    many = containers._spec(ALICE, Project("my_proj", tmp_path), image(), Limits(max_cpus=10_000), [], False)
    assert many.cpus == os.cpu_count()  # a ceiling: the engine refuses more CPUs than the host has
    assert containers._spec(ALICE, Project("my_proj", tmp_path), image(), Limits(max_cpus=None), [], False).cpus is None


def test_environment_ours_over_the_front_ends_and_the_images_own_choices_kept(containers, tmp_path):
    plain = spec(containers, tmp_path).env
    assert {k: plain[k] for k in WORKSPACE_ENV} == WORKSPACE_ENV
    assert (plain["DS01_PROJECT"], plain["DS01_USER"], plain["DS01_CONTAINER"]) == (
        "my_proj",
        "alice",
        "my_proj._.alice",
    )
    assert plain["PYTHONPATH"] == f"{MOUNT}:{COPY_DIR}"  # mounted read-only where it can be, else copied
    env = spec(containers, tmp_path, img=image("HF_HOME=/models/hf", "PIP_CACHE_DIR=/pip", "PYTHONPATH=/opt/lib"),
               extra_env={"JUPYTERHUB_API_TOKEN": "t", "DS01_PROJECT": "forged", "TORCH_HOME": "/x"}).env
    assert "HF_HOME" not in env and "PIP_NO_CACHE_DIR" not in env  # the image set them (or chose pip's cache)
    assert env["PYTHONPATH"] == f"{MOUNT}:{COPY_DIR}:/opt/lib"
    assert env["JUPYTERHUB_API_TOKEN"] == "t" and env["TORCH_HOME"] == "/x"  # a front end's env wins over defaults
    assert env["DS01_PROJECT"] == "my_proj"  # never over ours


def test_a_front_ends_command_and_a_fallback_image(containers, tmp_path):
    made = spec(containers, tmp_path, command=["jupyterhub-singleuser", "--ip=0.0.0.0"], fallback="pytorch")
    assert made.command == ("jupyterhub-singleuser", "--ip=0.0.0.0")
    assert made.labels[L.FALLBACK] == "pytorch" and made.labels[L.IMAGE] == "ds01/pytorch:2"
    ssh = spec(containers, tmp_path, read_only_mounts=(("/home/alice/.ssh", "/home/alice/.ssh"),))
    assert ssh.read_only_mounts == (("/home/alice/.ssh", "/home/alice/.ssh"),)
