"""How the guard classifies what it finds outside /workspace (pure logic: no engine, runs in the fast tier)."""

from __future__ import annotations

import random

import pytest

from ds01_jupyter.core.findings import (
    CACHE,
    ENVIRONMENT,
    KERNEL,
    NOISE,
    PROCESS,
    WORK,
    Audit,
    Finding,
    classify,
    classify_by_rules,
    is_checkpoint,
    layer_findings,
    package_of,
    rank,
    tmpfs_findings,
)

SITE = "/usr/local/lib/python3.11/site-packages"
FILE, FOLDER, LINK, SOCKET, FIFO = 0o100000, 0o040000, 0o120000, 0o140000, 0o010000


@pytest.mark.parametrize("path, kind", [
    # A user's work: anything not known to be something else.
    ("/tmp/result.csv", WORK), ("/root/model.pt", WORK), ("/home/alice/notes.txt", WORK), ("/data/x.bin", WORK),
    ("/dev/shm/features.npy", WORK), ("/tmp/tmpdir/out.json", WORK), ("/opt/myrun/out.log", WORK),
    # Jupyter's and the shell's own runtime files, the engine's files: never shown.
    ("/root/.local/share/jupyter/runtime/kernel-1.json", NOISE), ("/home/u/.ipython/profile_default/db", NOISE),
    ("/home/u/.jupyter/lab/workspaces/x", NOISE), ("/root/.bash_history", NOISE), ("/root/.python_history", NOISE),
    ("/tmp/app.pid", NOISE), ("/tmp/x.sock", NOISE), ("/etc/hostname", NOISE), ("/.dockerenv", NOISE),
    ("/run/.ds01-stop", NOISE), ("/var/log/apt/history.log", NOISE), ("/tmp/tmpk3j2.json", NOISE),
    ("/tmp/.ds01/lib/ds01_jupyter/__init__.py", NOISE), ("/dev/shm/torch_1234_0", NOISE),
    ("/tmp/ds01-requirements.txt", NOISE),
    # Re-creatable.
    ("/root/.cache/huggingface/hub/model.bin", CACHE), ("/app/__pycache__/m.cpython-311.pyc", CACHE),
    ("/var/cache/apt/archives/x.deb", CACHE), ("/var/lib/apt/lists/deb.debian.org_x", CACHE),
    ("/home/u/.npm/_cacache/x", CACHE), ("/root/.triton/cache/k", CACHE),
    # Installed by hand.
    (f"{SITE}/numpy/__init__.py", ENVIRONMENT), ("/usr/bin/htop", ENVIRONMENT), ("/opt/conda/bin/python", ENVIRONMENT),
    ("/home/u/.local/lib/python3.11/site-packages/x.py", ENVIRONMENT), ("/var/lib/dpkg/status", ENVIRONMENT),
    ("/usr/local/bin/tool", ENVIRONMENT), ("/etc/apt/sources.list.d/x.list", ENVIRONMENT),
])
def test_each_path_has_one_kind(path, kind):
    assert classify(path) == kind


def test_noise_wins_over_cache_and_cache_over_environment():
    """A path matching several rules gets the quietest kind that is true of it: a site-packages cache is a cache."""
    assert classify(f"{SITE}/pkg/__pycache__/m.pyc") == CACHE
    assert classify("/root/.cache/pip/x.pid") == NOISE


def test_checkpoints_are_told_by_their_extension_in_any_case():
    assert is_checkpoint("/tmp/Model.PT") and is_checkpoint("/root/w.safetensors") and is_checkpoint("/x/m.ckpt")
    assert not is_checkpoint("/tmp/result.csv") and not is_checkpoint("/tmp/pt")


@pytest.mark.parametrize("path, owner", [
    (f"{SITE}/numpy-1.26.0.dist-info/RECORD", ("pip", "numpy==1.26.0")),
    (f"{SITE}/numpy/core/multiarray.py", ("pip", "numpy")),
    (f"{SITE}/_cffi_backend.cpython-311-x86_64-linux-gnu.so", ("pip", "_cffi_backend")),
    (f"{SITE}/six.py", ("pip", "six")),
    ("/usr/lib/python3/dist-packages/yaml/__init__.py", ("pip", "yaml")),
    ("/usr/bin/htop", None),
    ("/tmp/site-packages", None),
])
def test_a_package_is_named_from_its_site_packages_path(path, owner):
    assert package_of(path) == owner


def test_rank_puts_work_first_checkpoints_first_then_size():
    found = [
        Finding("/root/.cache/x", CACHE, 10**9, "writable-layer"),
        Finding("/tmp/small.csv", WORK, 10, "writable-layer"),
        Finding("pip", ENVIRONMENT, 10**6, "pip"),
        Finding("/tmp/big.csv", WORK, 1000, "writable-layer"),
        Finding("kernel", KERNEL, 0, "kernel"),
        Finding("/tmp/m.pt", WORK, 1, "writable-layer", checkpoint=True),
        Finding("python train.py", PROCESS, 0, "process"),
    ]
    assert [f.path for f in rank(found)] == [
        "/tmp/m.pt", "/tmp/big.csv", "/tmp/small.csv", "python train.py", "pip", "kernel", "/root/.cache/x"]


def test_a_layer_gives_one_finding_per_package_and_cache_folder_and_each_work_file():
    stats = {
        "/tmp": (0, False, FOLDER),
        "/tmp/result.csv": (10, True, FILE),
        "/tmp/model.pt": (500, True, FILE),
        "/tmp/pipe": (0, False, FIFO),
        "/tmp/link": (0, False, LINK),
        "/tmp/x.sock": (0, False, SOCKET),
        "/tmp/runtime-socket": (0, False, SOCKET),
        "/root/.bash_history": (40, True, FILE),
        f"{SITE}/requests/__init__.py": (100, True, FILE),
        f"{SITE}/requests/api.py": (200, True, FILE),
        f"{SITE}/requests-2.31.0.dist-info/METADATA": (50, True, FILE),
        "/root/.cache/huggingface/hub/a": (1000, True, FILE),
        "/root/.cache/huggingface/hub/b": (3000, True, FILE),
        "/root/.cache/torch/k": (7, True, FILE),
        "/usr/bin/htop": (300, True, FILE),
    }
    findings, noise = layer_findings(stats)
    assert noise == 3  # the history and both sockets; the folder is not counted at all
    by_path = {f.path: f for f in findings}
    work = {f.path: f for f in findings if f.kind == WORK}
    assert set(work) == {"/tmp/result.csv", "/tmp/model.pt", "/tmp/pipe", "/tmp/link"}
    assert work["/tmp/model.pt"].checkpoint and not work["/tmp/result.csv"].checkpoint
    assert "never read" in work["/tmp/pipe"].detail and work["/tmp/link"].detail == ""  # a link is kept as a link
    [package] = [f for f in findings if f.kind == ENVIRONMENT and f.source == "pip"]
    assert (package.path, package.detail, package.size, package.files) == (SITE, "requests==2.31.0", 350, 3)
    assert (by_path["/root/.cache/huggingface"].size, by_path["/root/.cache/huggingface"].files) == (4000, 2)
    assert by_path["/root/.cache/torch"].kind == CACHE
    [loose] = [f for f in findings if f.kind == ENVIRONMENT and f.source != "pip"]
    assert loose.detail == "files changed outside packages" and loose.size == 300


def test_memory_backed_files_are_lost_even_on_a_stop_and_links_are_never_followed():
    findings, noise = tmpfs_findings([
        ["/dev/shm/data.npy", 2048, FILE], ["/dev/shm/torch_1_0", 4096, FILE], ["/dev/shm/sub", 0, FOLDER],
        ["/dev/shm/l", 9, LINK], ["/dev/shm/s", 0, SOCKET], ["/dev/shm/.cache/x", 5, FILE],
    ])
    assert noise == 2  # torch's shared memory and the socket
    by_path = {f.path: f for f in findings}
    assert set(by_path) == {"/dev/shm/data.npy", "/dev/shm/l", "/dev/shm/.cache/x"}
    assert (
        by_path["/dev/shm/data.npy"].kind == WORK
        and "lost even when the container stops" in by_path["/dev/shm/data.npy"].detail
    )
    assert by_path["/dev/shm/l"].size == 0 and "never followed" in by_path["/dev/shm/l"].detail
    assert by_path["/dev/shm/.cache/x"].kind == CACHE


def test_an_audit_counts_only_work_environment_and_processes_as_at_risk():
    audit = Audit("demo", "demo._.alice", "running")
    audit.add([Finding("/tmp/a", WORK, 1, "writable-layer"), Finding("/root/.cache/x", CACHE, 5, "writable-layer"),
               Finding("k", KERNEL, 0, "kernel"), Finding("p", PROCESS, 0, "process", extra={"pid": 7}),
               Finding(SITE, ENVIRONMENT, 9, "pip", files=4)], noise=3)
    assert [f.kind for f in audit.at_risk] == [WORK, PROCESS, ENVIRONMENT]
    summary = audit.summary()
    assert summary[ENVIRONMENT] == {"count": 4, "items": 1, "bytes": 9} and summary[NOISE] == {"count": 3}
    data = audit.to_dict(limit=2)
    assert data["at_risk"] == 3 and data["truncated"] and len(data["findings"]) == 2
    assert Finding("p", PROCESS, 0, "process", extra={"pid": 7, "path": "ignored"}).to_dict()["path"] == "p"


def test_classify_by_folder_then_name_agrees_with_the_rules_on_every_path():
    """classify asks the rules once per folder and then looks at the name: the same kind as the rules on each path."""
    rng = random.Random(19)
    parts = ["", "usr", "local", "bin", "sbin", "lib", "lib64", "libexec", "share", "include", "var", "cache", "log",
             "lock", "run", "apt", "lists", "dpkg", "opt", "conda", "conda-meta", "etc", "apt.conf.d", "alternatives",
             "ld.so.conf.d", "hostname", "hosts", "resolv.conf", "mtab", "tmp", ".ds01", ".ds01-kernel-1.json",
             "tmpab.json", "tmp.json", "tmpjson", "ds01-requirements.txt", "dev", "shm", "torch_1", "sem.x", "mp-1",
             "pym-2", ".local", "jupyter", "runtime", ".ipython", ".jupyter", ".bash_history", ".zsh_history",
             ".lesshst", ".viminfo", ".wget-hsts", "x.pid", "x.sock", "x.lock", "docker-init", ".dockerenv", ".cache",
             "__pycache__", "m.pyc", ".npm", ".conda", "pkgs", ".triton", ".nv", "ComputeCache", "site-packages",
             "dist-packages", "python3.11", "numpy", "data", "result.csv", "model.pt", "root", "home", "a\nb", ".pyc",
             "bin2", "apt-x", "x.json", "é", "\udcff",
             # the rules' paths of several names, so that they come whole too
             ".local/share/jupyter/runtime", ".local/share/jupyter", ".nv/ComputeCache", ".conda/pkgs", "pkgs/cache",
             "var/lib/apt/lists", "var/lib/apt", "usr/local/bin", "usr/local", "usr/sbin/docker-init", "var/lib/dpkg",
             "opt/conda", "dev/shm", "sbin/docker-init", "var/cache", "var/run", "var/lock", "var/log", "tmp/.ds01",
             ".local/bin", ".local/lib", "usr/share", "usr/lib64"]
    paths = {"/", "/tmp/", "/usr/lib/python3/site-packages/", "/x/site-packages/a/"}
    for _ in range(30_000):
        paths.add("/" + "/".join(rng.choice(parts) or "x" for _ in range(rng.randint(1, 6))))
    for top in ("etc", "tmp", "dev/shm", "usr", "var", "run", "sbin", "usr/sbin", "opt", "bin", "lib", "lib64"):
        for _ in range(1_000):  # rules that hold only at the top: a top folder and one or two names
            paths.add(f"/{top}/" + "/".join(rng.choice(parts) for _ in range(rng.randint(1, 2))))
    for length in range(1, 4):
        for _ in range(5_000):
            paths.add("/" + "/".join(rng.choices(parts, k=length)))  # empty parts make "//" and trailing "/"
    assert {p: classify(p) for p in paths} == {p: classify_by_rules(p) for p in paths}


def test_what_a_rescue_could_not_read_of_the_work_at_risk_is_named_a_cache_is_not():
    """An archive of a new folder that could not be read is skipped under that folder's name, not its files'."""
    from ds01_jupyter.core.findings import CACHE, WORK, Finding
    from ds01_jupyter.core.rescue import lost_in_copy

    at_risk = [Finding(path="/home/u/newdir/a.py", kind=WORK, size=1, source="writable-layer"),
               Finding(path="/tmp/model.pt", kind=WORK, size=1, source="writable-layer")]
    skipped = [{"path": "/home/u/newdir", "why": "could not be read: no such container"},
               {"path": "/tmp/model.pt", "why": "could not be read (Permission denied)"},
               {"path": "/root/.cache/pip", "why": "could not be read (Permission denied)", "kind": CACHE},
               {"path": "/tmp/fifo", "why": "special file (fifo, socket or device): listed, never read"}]
    assert [f.path for f in lost_in_copy(skipped, at_risk)] == ["/home/u/newdir", "/tmp/model.pt"]
