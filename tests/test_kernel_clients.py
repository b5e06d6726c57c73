"""Container kernels from any Jupyter client: nbconvert, KernelManager, a client that runs argv itself, the CLI.

Every client here runs as a separate process with its own HOME and a
JUPYTER_DATA_DIR under the test's tmp_path, so the real user's kernel specs are
never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from conftest import cli_environ
from jupyter_client import KernelManager
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager

from ds01_jupyter.core.errors import Forbidden, StateConflict
from ds01_jupyter.kernels import container_kernel, specs

BIN = Path(sys.executable).parent
PROBE = "import os, socket\nprint(os.getcwd(), os.path.exists('/.dockerenv'), socket.gethostname())"


# -- without an engine ----------------------------------------------------------------------------
def test_a_relative_or_empty_cwd_is_the_clients_own_folder(tmp_path, monkeypatch):
    project = tmp_path / "demo"
    (project / "notebooks" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "notebooks")
    assert container_kernel.workspace_path(None, project) == ("/workspace/notebooks", None)
    assert container_kernel.workspace_path("", project) == ("/workspace/notebooks", None)
    assert container_kernel.workspace_path("deep", project) == ("/workspace/notebooks/deep", None)
    assert container_kernel.workspace_path("..", project) == ("/workspace", None)
    assert (
        container_kernel.workspace_path(str(project / "notebooks" / "deep"), project)[0] == "/workspace/notebooks/deep"
    )
    where, note = container_kernel.workspace_path("../..", project)  # the workspace root: outside the project
    assert where == "/workspace" and "not inside the project folder" in note


def test_the_spec_runs_our_launcher_never_a_host_kernel():
    spec = specs.spec_for("demo")
    assert spec["argv"][:3] == [sys.executable, "-m", "ds01_jupyter.kernels.launch"]
    assert spec["argv"][3:] == ["--project", "demo", "-f", "{connection_file}"]
    assert spec["metadata"]["kernel_provisioner"] == {
        "provisioner_name": "ds01-container",
        "config": {"project": "demo"},
    }


def test_specs_are_written_and_removed_never_through_links(tmp_path):
    kernels = tmp_path / "data" / "kernels"
    folder = specs.write_spec("demo", kernels)
    assert json.loads((folder / "kernel.json").read_text()) == specs.spec_for("demo")
    assert specs.present(kernels) == {"demo": specs.spec_for("demo")}
    assert specs.remove_spec("demo", kernels) and not folder.exists()

    # A link planted at kernel.json is replaced, not written through.
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    folder.mkdir()
    (folder / "kernel.json").symlink_to(outside)
    specs.write_spec("demo", kernels)
    assert outside.read_text() == "precious" and not (folder / "kernel.json").is_symlink()

    # A link at ds01-<project> or at kernels/ is refused.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (kernels / "ds01-other").symlink_to(elsewhere)
    with pytest.raises(Forbidden, match="link"):
        specs.write_spec("other", kernels)
    assert list(elsewhere.iterdir()) == []
    assert not specs.remove_spec("other", kernels) and (kernels / "ds01-other").is_symlink()
    linked = tmp_path / "linked" / "kernels"
    linked.parent.mkdir()
    linked.symlink_to(elsewhere)
    with pytest.raises(Forbidden, match="link"):
        specs.write_spec("demo", linked)
    assert list(elsewhere.iterdir()) == []

    # A spec that is not ours is left alone.
    foreign = kernels / "ds01-foreign"
    foreign.mkdir()
    (foreign / "kernel.json").write_text(json.dumps({"argv": ["python3"], "display_name": "mine"}))
    assert not specs.remove_spec("foreign", kernels) and foreign.is_dir()


def test_the_server_brings_old_specs_up_to_date_through_the_same_writer(tmp_path):
    class Containers:
        def list(self, user):
            return [type("Status", (), {"project": "demo"})()]

    kernels = tmp_path / "kernels"
    old = kernels / "ds01-demo"
    old.mkdir(parents=True)
    (old / "kernel.json").write_text(
        json.dumps(specs.spec_for("demo") | {"argv": ["python3", "-m", "ipykernel_launcher"]})
    )
    specs.write_spec("gone", kernels)
    synced = specs.KernelSpecs(type("Core", (), {"containers": Containers()})(), user=None, kernels_dir=kernels)
    assert synced.sync() == {"demo"}
    assert specs.present(kernels) == {"demo": specs.spec_for("demo")}


# -- on the real engine, through real clients -----------------------------------------------------
@pytest.fixture
def env(make_core, home, tmp_path):
    environ = cli_environ(make_core.settings(), home, JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
                          PYTHONWARNINGS="ignore")
    environ.pop("JUPYTER_PATH", None)
    return environ


def cli(env, cmd, *args, cwd=None, check=True, timeout=300):
    proc = subprocess.run(
        [str(BIN / cmd), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, (cmd, args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def deployed(env, home, tmp_path, project_name, engine):
    """A project deployed from the command line; yields (name, project folder, kernel spec folder)."""
    name = project_name()
    cli(env, "project-init", name)
    cli(env, "container-deploy", name, "--background")
    spec_dir = tmp_path / "jupyter-data" / "kernels" / f"ds01-{name}"
    yield name, home / "workspace" / name, spec_dir
    cli(env, "container-retire", name, "--discard", check=False)


def assert_no_kernel_left(engine, container):
    """No kernel process and no connection or pid file are left in the container."""
    _, processes = engine.exec(container, ["ps", "-eo", "args"])
    _, files = engine.exec(container, ["ls", "/tmp/.ds01"])
    assert b"kernel_launcher.py -f" not in processes, processes
    assert not [f for f in files.split() if f.startswith(b"kernel-")], files


def write_notebook(path: Path, kernel: str, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(code))
    nbformat.write(nb, path)


def test_cli_deploy_writes_the_spec_and_nbconvert_runs_in_the_notebook_folder(deployed, env):
    name, project, spec_dir = deployed
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec == specs.spec_for(name) | {"argv": spec["argv"]}  # argv names the CLI's own interpreter
    listed = json.loads(cli(env, "jupyter-kernelspec", "list", "--json").stdout)["kernelspecs"]
    assert listed[f"ds01-{name}"]["spec"]["display_name"] == f"Python 3 ({name} container)"

    notebooks = project / "notebooks"
    code = "import os\nopen('where.txt', 'w').write(f\"{os.getcwd()} {os.path.exists('/.dockerenv')}\")"
    write_notebook(notebooks / "probe.ipynb", f"ds01-{name}", code)
    # Run in the notebook's folder: nbconvert passes no cwd at all.
    cli(env, "jupyter-nbconvert", "--to", "notebook", "--execute", "probe.ipynb", "--output", "ran", cwd=notebooks)
    assert (notebooks / "where.txt").read_text() == "/workspace/notebooks True"
    assert (notebooks / "where.txt").stat().st_uid == os.getuid()

    # Run from the project: nbconvert passes the relative folder "notebooks".
    (notebooks / "where.txt").unlink()
    cli(
        env,
        "jupyter-nbconvert",
        "--to",
        "notebook",
        "--execute",
        "notebooks/probe.ipynb",
        "--output",
        "ran",
        cwd=project,
    )
    assert (notebooks / "where.txt").read_text() == "/workspace/notebooks True"

    # Retiring from the command line removes the spec.
    cli(env, "container-retire", name, "--discard")
    assert not spec_dir.exists()
    assert f"ds01-{name}" not in json.loads(cli(env, "jupyter-kernelspec", "list", "--json").stdout)["kernelspecs"]


KERNEL_MANAGER = textwrap.dedent(
    """
    import sys
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name=sys.argv[1])
    km.start_kernel(**({"cwd": sys.argv[2]} if len(sys.argv) > 2 else {}))
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        out = []
        reply = kc.execute_interactive(
            sys.stdin.read(), timeout=60,
            output_hook=lambda m: out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None,
        )
        print(type(km.provisioner).__name__, reply["content"]["status"], "".join(out).strip())
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)
    """
)


def test_kernel_manager_directly(deployed, env):
    name, project, _ = deployed
    for cwd, args in ((project / "notebooks", []), (project, ["notebooks"]), (project / "notebooks", [""])):
        proc = subprocess.run(
            [sys.executable, "-c", KERNEL_MANAGER, f"ds01-{name}", *args],
            input=PROBE,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["ContainerProvisioner", "ok", "/workspace/notebooks", "True", name], proc.stderr


def test_a_client_that_ignores_provisioners_still_gets_the_container(deployed, env, engine, tmp_path, user):
    """What a client without provisioner support sees: the spec without its provisioner, argv run as a process."""
    name, project, spec_dir = deployed
    legacy = tmp_path / "legacy-kernels" / f"ds01-{name}"
    legacy.mkdir(parents=True)
    spec = json.loads((spec_dir / "kernel.json").read_text())
    del spec["metadata"]["kernel_provisioner"]
    (legacy / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(
        kernel_name=f"ds01-{name}", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(legacy.parent)])
    )
    km.start_kernel(env=env, cwd=str(project / "notebooks"))
    assert type(km.provisioner).__name__ == "LocalProvisioner"
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        out = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append(msg["content"]["ename"])

        reply = client.execute_interactive(PROBE, output_hook=hook, timeout=60)
        assert reply["content"]["status"] == "ok"
        assert "".join(out).split() == ["/workspace/notebooks", "True", name]

        # An interrupt (SIGINT to the process the client started) reaches the kernel in the container.
        out.clear()
        msg_id = client.execute("import time\ntime.sleep(60)")
        time.sleep(2)
        km.interrupt_kernel()
        deadline = time.time() + 30
        while time.time() < deadline:
            msg = client.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id:
                hook(msg)
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
        assert "KeyboardInterrupt" in out
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=False)
    assert_no_kernel_left(engine, f"{name}._.{user.name}")


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGKILL"])
def test_the_kernel_ends_with_its_launcher(deployed, env, engine, tmp_path, user, ending):
    name, project, spec_dir = deployed
    argv = json.loads((spec_dir / "kernel.json").read_text())["argv"]
    connection_file, _ = write_connection_file(str(tmp_path / "kernel-by-hand.json"), ip="127.0.0.1")
    launcher = subprocess.Popen([connection_file if a == "{connection_file}" else a for a in argv], env=env,
                                cwd=project, stderr=subprocess.PIPE, text=True)
    container = f"{name}._.{user.name}"
    deadline = time.time() + 60
    while b"kernel_launcher.py -f" not in engine.exec(container, ["ps", "-eo", "args"])[1]:
        assert time.time() < deadline and launcher.poll() is None, launcher.stderr.read()
        time.sleep(0.5)
    launcher.send_signal(getattr(signal, ending))
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == (0 if ending == "SIGTERM" else -9), err  # SIGTERM: it ends the kernel itself
    deadline = time.time() + 60  # SIGKILL: the kernel ends as its connection closes
    while b"kernel_launcher.py -f" in engine.exec(container, ["ps", "-eo", "args"])[1] and time.time() < deadline:
        time.sleep(0.5)
    assert_no_kernel_left(engine, container)


ENDED_WHILE_STARTING = """
import os, signal, sys
from ds01_jupyter.kernels import container_kernel, launch

real_find, real_attach = container_kernel.running_container, container_kernel.ContainerKernels.attach

def found(*args, **kwargs):
    record = real_find(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)  # the client gives up once the container is found, before the start
    return record

def attach(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # ... or while the kernel is being started
    return real_attach(*args, **kwargs)

if sys.argv[1] == "running_container":
    container_kernel.running_container = found
else:
    container_kernel.ContainerKernels.attach = attach
sys.exit(launch.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("step", ["running_container", "attach"])
def test_a_launcher_ended_while_it_starts_the_kernel_leaves_none_running(deployed, env, engine, tmp_path, user, step):
    name, project, _ = deployed
    connection_file, _ = write_connection_file(str(tmp_path / "kernel-by-hand.json"), ip="127.0.0.1")
    proc = subprocess.run(
        [sys.executable, "-c", ENDED_WHILE_STARTING, step, "--project", name, "-f", connection_file],
        env=env, cwd=project, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert_no_kernel_left(engine, f"{name}._.{user.name}")


INTERRUPTED_CLIENT = """
import asyncio, os, signal, sys, time
from jupyter_client import AsyncKernelManager, KernelManager
from ds01_jupyter.kernels import container_kernel

when, name = sys.argv[1], sys.argv[2]
real = container_kernel.ContainerKernels.attach

def attach(self, *args, **kwargs):
    if when == "ctrl-c during the start":
        os.kill(os.getpid(), signal.SIGINT)
    if when == "cancelled":
        time.sleep(3)
    started = real(self, *args, **kwargs)
    if when == "ctrl-c as it returns":
        os.kill(os.getpid(), signal.SIGINT)
    return started

container_kernel.ContainerKernels.attach = attach
if when == "cancelled":  # an async client that gives up (a timeout)
    async def start():
        try:
            await asyncio.wait_for(AsyncKernelManager(kernel_name="ds01-" + name).start_kernel(), 1)
        except asyncio.TimeoutError:
            sys.exit(3)
    asyncio.run(start())
KernelManager(kernel_name="ds01-" + name).start_kernel()
"""


@pytest.mark.parametrize("when", ["ctrl-c during the start", "ctrl-c as it returns", "cancelled"])
def test_a_client_that_gives_up_while_its_kernel_starts_leaves_none_running(deployed, env, engine, user, when):
    name, project, _ = deployed
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_CLIENT, when, name], env=env, cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (3, -2, 130, 1), proc.stderr
    assert ("KeyboardInterrupt" in proc.stderr) == when.startswith("ctrl-c"), proc.stderr
    assert_no_kernel_left(engine, f"{name}._.{user.name}")


KILLED_CLIENT = """
import os, signal, sys
from jupyter_client import KernelManager

km = KernelManager(kernel_name="ds01-" + sys.argv[1])
km.start_kernel()
client = km.client()
client.start_channels()
client.wait_for_ready(timeout=60)
client.execute(sys.argv[2] + "\\nimport time\\nwhile True: time.sleep(1)")  # a busy cell
client.get_iopub_msg(timeout=30)  # busy
print("busy", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("cell", ["", "import signal; signal.signal(signal.SIGTERM, lambda *_: print('saved'))"])
def test_the_kernel_of_a_killed_one_shot_client_ends_with_it(deployed, env, engine, user, cell):
    """nbconvert or a script killed (a job's time limit): its kernel, busy, ends too, as a host kernel would; one
    whose code handles SIGTERM and goes on gets SIGKILL after the stop grace."""
    name, project, _ = deployed
    proc = subprocess.run([sys.executable, "-c", KILLED_CLIENT, name, cell], cwd=project, capture_output=True,
                          env={**env, "DS01_STOP_GRACE_SECONDS": "3"}, text=True, timeout=120)
    assert proc.returncode == -9 and "busy" in proc.stdout, proc.stderr
    container = f"{name}._.{user.name}"
    deadline = time.time() + 60
    while b"kernel_launcher.py -f" in engine.exec(container, ["ps", "-eo", "args"])[1] and time.time() < deadline:
        time.sleep(0.5)
    assert_no_kernel_left(engine, container)


def test_no_kernel_starts_without_its_pid_file(deployed, make_core, engine, user):
    """A kernel whose pid cannot be written (a full disk) is not started: nobody could signal or end it."""
    name, project, _ = deployed
    core = make_core()
    container = f"{name}._.{user.name}"
    pid_file = container_kernel.inner_files("nopid")[1]
    engine.exec(container, ["mkdir", "-p", pid_file], user=f"{user.uid}:{user.gid}")  # cannot be written
    with pytest.raises(StateConflict, match="did not start"):
        core.kernels.attach(user, name, "nopid", "k", [20000, 20001, 20002, 20003, 20004])
    _, processes = engine.exec(container, ["ps", "-eo", "args"])
    assert b"kernel_launcher.py -f" not in processes, processes


def test_argv_of_a_project_without_container_is_a_clear_error(env, home, tmp_path, project_name, engine):
    name = project_name()
    cli(env, "project-init", name)
    connection_file, _ = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1")
    argv = specs.spec_for(name)["argv"]
    proc = subprocess.run(
        [connection_file if a == "{connection_file}" else a for a in argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "deploy first" in proc.stderr and "No kernel was started on this host" in proc.stderr
