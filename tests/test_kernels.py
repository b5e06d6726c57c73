"""Notebook kernels inside project containers, started through the real Jupyter server."""

from __future__ import annotations

import asyncio
import json
import os

from tornado.httpclient import HTTPClientError

from ds01_jupyter.kernels.specs import spec_for


async def start_session(jp_fetch, path, kernel):
    body = {"path": path, "type": "notebook", "name": os.path.basename(path), "kernel": {"name": kernel}}
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return json.loads(response.body)["kernel"]["id"]


async def run(client, code, timeout=60):
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(msg["content"]["ename"])

    reply = await client.execute_interactive(code, output_hook=hook, timeout=timeout)
    return reply["content"]["status"], "".join(out)


async def test_kernel_runs_in_the_container_in_the_notebook_folder(
    api, jp_fetch, jp_serverapp, home, user, engine, project_name
):
    demo = project_name()  # unique: parallel runs of the suite share the engine and the container names
    await api("POST", "projects", body={"name": demo}, expect=201)
    _, deployed = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)["kernelspecs"]
    assert specs[f"ds01-{demo}"]["spec"]["display_name"] == f"Python 3 ({demo} container)"

    kernel_id = await start_session(jp_fetch, f"{demo}/notebooks/analysis.ipynb", f"ds01-{demo}")
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        status, out = await run(
            client,
            "import os, socket\n"
            "os.makedirs('results', exist_ok=True)\n"
            "open('results/x.csv', 'w').write('a,b\\n1,2\\n')\n"
            "print(os.getcwd(), socket.gethostname(), os.getuid())",
        )
        assert status == "ok", out
        assert "ds01 warning" not in out, out  # writing inside /workspace is fine
        cwd, hostname, uid = out.split()
        assert cwd == "/workspace/notebooks" and hostname == demo and int(uid) == user.uid
        written = home / "workspace" / demo / "notebooks" / "results" / "x.csv"
        assert written.read_text() == "a,b\n1,2\n"
        assert written.stat().st_uid == user.uid

        # A write outside /workspace is reported at once, with its notebook and cell.
        status, out = await run(client, "open('/tmp/lost.csv', 'w').write('x')")
        assert "ds01 warning: /tmp/lost.csv is outside /workspace" in out
        _, audit = await api("GET", "projects", demo, "audit", expect=200)
        lost = next(f for f in audit["findings"] if f["path"] == "/tmp/lost.csv")
        assert lost["kind"] == "work" and lost["notebook"] == "notebooks/analysis.ipynb" and lost["cell"] >= 1

        # Interrupt a long cell.
        pending = asyncio.ensure_future(run(client, "import time\ntime.sleep(120)"))
        await asyncio.sleep(2)
        await jp_fetch("api", "kernels", kernel_id, "interrupt", method="POST", body="")
        status, out = await asyncio.wait_for(pending, 30)
        assert status == "error" and "KeyboardInterrupt" in out

        # Restart: state is gone, the kernel answers again.
        await run(client, "x = 41")
        await jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body="")
        await client.wait_for_ready(timeout=60)
        status, out = await run(client, "print('x' in globals(), 1 + 1)")
        assert out.split()[:2] == ["False", "2"], out
        assert "ds01 warning" not in out, out  # a fresh kernel writes nothing worth a warning
    finally:
        client.stop_channels()

    # Retiring the container ends its kernel, and the spec goes with it.
    await api("POST", "projects", demo, "retire", body={"mode": "discard"}, expect=200)
    assert kernel_id not in jp_serverapp.kernel_manager.list_kernel_ids(), "ended, not left to the restarter"
    specs = json.loads((await jp_fetch("api", "kernelspecs")).body)["kernelspecs"]
    assert f"ds01-{demo}" not in specs
    assert engine.get_container(deployed["container"]["id"]) is None


async def test_shutdown_removes_the_kernel_process(api, jp_fetch, jp_serverapp, engine, project_name):
    demo = project_name()
    await api("POST", "projects", body={"name": demo}, expect=201)
    _, deployed = await api("POST", "projects", demo, "deploy", params={"wait": "1"}, expect=200)
    kernel_id = await start_session(jp_fetch, f"{demo}/notebooks/a.ipynb", f"ds01-{demo}")
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    client.stop_channels()
    pid = km.provisioner.pid
    assert pid > 0
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    code, _ = engine.exec(deployed["container"]["id"], ["kill", "-0", str(pid)])
    assert code != 0  # the kernel process is gone from the container


async def test_a_project_that_is_not_deployed_says_deploy_first(api, jp_fetch, jp_data_dir, engine):
    await api("POST", "projects", body={"name": "ghost"}, expect=201)
    folder = jp_data_dir / "kernels" / "ds01-ghost"  # e.g. a spec left from an earlier deploy
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec_for("ghost")))
    try:
        await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "ds01-ghost"}))
        raise AssertionError("kernel started without a container")
    except HTTPClientError as err:
        assert err.code == 409
        assert "deploy first" in json.loads(err.response.body)["message"]
