"""The README's JupyterHub installation followed as written, as an admin would on a DS01 host.

The wheel is built from this checkout and the wheels folder is filled by ``ds01-hub wheels`` (the
``singleuser`` fixture, shared with the other hub tests); ``ds01-hub init`` writes the config and the
limits file; the site's edits are only the lines the example marks EDIT (plus the ports and the test's
API token); the hub runs from that config with a real configurable-http-proxy serving TLS, and users
log in with PAM, allowed by their Unix group. A user spawns two named servers, writes through the
contents API and a kernel, the servers stop with their work rescued, and the same user then works
with ``ds01`` on the host (through ds01d) without a single permission problem.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import BASE_IMAGE, remove_made
from ds01d_helpers import ds01d_factory_fixture, unix_users_fixture  # noqa: F401 - fixtures
from hub_helpers import Hub, chp_fixture, ds01_hub, free_port, run_in_kernel, singleuser_fixture  # noqa: F401

from ds01_jupyter.core import Settings
from ds01_jupyter.core.names import container_name

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

MARKER = "# EDIT: anything the site changes goes here, below the defaults above.\n"
SITE = """\
c.PAMAuthenticator.allowed_groups = {{"{group}"}}
c.PAMAuthenticator.admin_groups = {{"{admins}"}}
c.JupyterHub.bind_url = "https://127.0.0.1:{port}"
c.JupyterHub.ssl_cert = "{etc}/tls/fullchain.pem"
c.JupyterHub.ssl_key = "{etc}/tls/privkey.pem"
c.DS01Spawner.limits_file = "{etc}/resource-limits.yaml"
c.DS01Spawner.base_image = "{base}"
c.DS01Spawner.singleuser_wheels = "{wheels}"
# The test's own: free ports, and an API token to drive the hub. The spawn request answers at once, so its
# progress stream shows every message (one done within the default 10 s would show only "ready").
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.JupyterHub.services.append({{"name": "tester", "api_token": "{token}"}})
c.JupyterHub.load_roles.append({{"name": "tester", "services": ["tester"],
                                "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}})
"""


def _sh(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture
def unix_groups():
    """The site's two Unix groups (the example's ds01-users and ds01-admins), under names of the test's own."""
    names = ["ds01g" + secrets.token_hex(4), "ds01a" + secrets.token_hex(4)]
    for name in names:
        _sh("groupadd", name)
    yield names
    for name in names:
        subprocess.run(["groupdel", name], check=False)


def _member(unix_users, group: str | None):
    """A Unix account with a password and a home (no workspace yet), in ``group`` when given."""
    account = unix_users(with_home=False)
    account.home.mkdir()
    os.chown(account.home, account.user.uid, account.user.gid)
    if group:
        _sh("usermod", "-aG", group, account.name)
    account.password = secrets.token_urlsafe(12)
    _sh("chpasswd", input=f"{account.name}:{account.password}\n")
    return account


def _login(hub: Hub, name: str, password: str) -> requests.Response:
    with requests.Session() as browser:  # closed: a TLS socket left to the collector fails a later test
        browser.trust_env, browser.verify = False, hub.session.verify
        browser.get(f"{hub.url}/hub/login", timeout=30)
        xsrf = browser.cookies.get("_xsrf", path="/hub/")
        return browser.post(f"{hub.url}/hub/login", data={"username": name, "password": password, "_xsrf": xsrf},
                            timeout=60, allow_redirects=False)


def _foreign(home: Path, uid: int) -> list[str]:
    """Paths under ``home`` (links not followed) that do not belong to ``uid``."""
    out = []
    for folder, dirs, files in os.walk(home):
        out += [os.path.join(folder, n) for n in dirs + files if os.lstat(os.path.join(folder, n)).st_uid != uid]
    return out + ([str(home)] if home.stat().st_uid != uid else [])


def test_admin_install_as_documented(tmp_path, chp, singleuser, unix_users, unix_groups, ds01d_factory, engine):
    tmp_path.chmod(0o755)  # the hub's state folder; users' homes are elsewhere
    etc = tmp_path / "etc"
    # Configuration files from the shipped examples.
    done = ds01_hub("init", "--etc", str(etc))
    assert done.returncode == 0 and "resource-limits.yaml" in done.stdout, done.stderr
    # Who may log in: members of the site's Unix group, with their own password.
    unix_group, admins = unix_groups
    alice = _member(unix_users, unix_group)
    outsider = _member(unix_users, None)
    # TLS: the site's certificate (here a self-signed one for 127.0.0.1).
    (etc / "tls").mkdir()
    _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(etc / "tls/privkey.pem"), "-out", str(etc / "tls/fullchain.pem"))
    # The EDIT lines.
    port, token = free_port(), secrets.token_hex(16)
    config = etc / "jupyterhub_config.py"
    text = config.read_text()
    assert MARKER in text
    config.write_text(
        text.replace(
            MARKER,
            MARKER
            + SITE.format(
                group=unix_group,
                admins=admins,
                port=port,
                etc=etc,
                base=BASE_IMAGE,
                wheels=singleuser["wheels"],
                hub_port=free_port(),
                api_port=free_port(),
                token=token,
            ),
        )
    )
    # The unit's environment: its PATH, where configurable-http-proxy was installed (npm install -g).
    unit = ds01_hub("unit", "-f", str(config)).stdout
    path = re.search(r"^Environment=PATH=(.*)$", unit, re.M).group(1)
    assert re.search(rf"^ExecStart=\S+ -f {re.escape(str(config))}$", unit, re.M), unit
    env = {**os.environ, "PATH": f"{Path(chp).parent}{os.pathsep}{path}"}

    # A missing limits file: the hub refuses to start, saying what to do.
    broken = etc / "broken_config.py"
    broken.write_text(config.read_text().replace(f'"{etc}/resource-limits.yaml"', f'"{etc}/missing.yaml"'))
    refused = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", str(broken)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 78 and "missing.yaml does not exist" in refused.stderr, refused.stderr[-2000:]
    assert "ds01-hub init" in refused.stderr and "Traceback" not in refused.stderr
    # The README's check before the first start.
    checked = ds01_hub("check", "-f", str(config), env=env)
    assert checked.returncode == 0 and "Ready to start." in checked.stdout, checked.stdout + checked.stderr

    hub = Hub(tmp_path, config, f"https://127.0.0.1:{port}", token, verify=str(etc / "tls/fullchain.pem"), env=env)
    try:
        hub.start()
        _use_the_hub(hub, alice, outsider, engine)
        took = hub.stop(group=False)  # SIGTERM to the hub alone, as systemd's KillMode=mixed
        assert took < 15, f"the hub took {took:.0f} s to stop:\n{hub.log()}"
    finally:
        hub.stop()
        for project in ("p1", "p2"):
            record = engine.get_container(container_name(project, alice.name))
            if record is not None:
                remove_made(engine, record)

    # Everything the hub made in the user's home is the user's.
    assert _foreign(alice.home, alice.user.uid) == []
    # The user's own ds01 on the host, through ds01d (users have no Docker access), works without an error.
    daemon = ds01d_factory(Settings(limits_file=str(etc / "resource-limits.yaml"), base_image=BASE_IMAGE))
    made = alice.ds01(daemon.socket, "project-init", "notes")
    assert made.returncode == 0 and "Traceback" not in made.stderr, made.stdout + made.stderr
    status = alice.ds01(daemon.socket, "status")
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stdout + status.stderr
    assert all(name in status.stdout for name in ("p1", "p2", "notes")), status.stdout
    assert _foreign(alice.home, alice.user.uid) == []


def _use_the_hub(hub: Hub, alice, outsider, engine) -> None:
    # Logins: a member of the group gets in; an account outside it does not, password or not.
    assert _login(hub, outsider.name, outsider.password).status_code == 403
    assert _login(hub, alice.name, alice.password).status_code == 302

    events = hub.spawn(alice.name, "p1", {})
    assert events and events[-1].get("ready"), (events, hub.log())
    messages = [e.get("message", "") for e in events]
    assert "Building the image of p1" in messages and any(m.startswith("Image of p1: Step 1/") for m in messages)
    assert len(messages) < 40 and not any(m.startswith(" ---> ") for m in messages), messages  # no raw build log
    assert "Image of p1: the whole build log is in p1/results/logs/image-build.log" in messages, messages
    assert "Successfully built" in (alice.home / "workspace/p1/results/logs/image-build.log").read_text()
    assert hub.spawn(alice.name, "p2", {})[-1].get("ready"), hub.log()

    # The contents API and a kernel write into the project, as the user.
    put = hub.session.put(f"{hub.url}/user/{alice.name}/p1/api/contents/notebooks/hello.txt", timeout=30,
                          json={"type": "file", "format": "text", "content": "hello from the hub"})
    assert put.status_code in (200, 201), put.text
    out = run_in_kernel(hub, alice.name, "p1", "import os\n"
                        "open('/workspace/from-kernel.txt', 'w').write('kernel')\n"
                        "os.makedirs('/tmp/out', exist_ok=True)\n"
                        "open('/tmp/out/result.csv', 'w').write('1,2\\n')\n"
                        "print(os.getuid())")
    assert out.strip() == str(alice.user.uid)
    p1 = alice.home / "workspace/p1"
    assert (p1 / "notebooks/hello.txt").read_text() == "hello from the hub"
    assert (p1 / "from-kernel.txt").stat().st_uid == alice.user.uid

    # Stopping rescues what was written outside /workspace.
    hub.delete(alice.name, "p1")
    hub.delete(alice.name, "p2")
    assert [p.read_text() for p in (p1 / ".rescued").glob("*/tmp/out/result.csv")] == ["1,2\n"]
    assert engine.get_container(container_name("p1", alice.name)) is None


def test_a_home_left_with_root_owned_folders_gets_errors_with_hints_not_tracebacks(unix_users):
    """The state an older hub left (issue 21): ~/workspace and ~/.local/state/ds01-jupyter made by root.
    The user's commands say what is wrong and what to do, with exit code 1, never a traceback."""
    account = unix_users(with_home=False)
    state = account.home / ".local/state/ds01-jupyter"
    state.mkdir(parents=True)
    (account.home / "workspace").mkdir()
    os.chown(account.home, account.user.uid, account.user.gid)
    for verb in (["project-init", "demo"], ["project-list"], ["usage"]):
        done = account.ds01(None, *verb)
        assert done.returncode == 1, (verb, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "error:" in done.stderr and "hint:" in done.stderr, done.stderr
        assert "workspace" in done.stderr, done.stderr
