"""The hub admin's tools without a running hub: ds01-hub's commands, the start-up checks, the wheels
folder, the single-user image's rebuild decisions and the spawn page's build progress."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from traitlets.config import Config

from ds01_jupyter.core.engine import ImageRecord
from ds01_jupyter.core.errors import BuildFailed
from ds01_jupyter.core.limits import LimitsSource
from ds01_jupyter.core.settings import Settings
from ds01_jupyter.hub import admin, checks
from ds01_jupyter.hub import image as I
from ds01_jupyter.hub import wheels as W
from ds01_jupyter.hub.progress import BuildFeed, build_quietly

REPO = Path(__file__).resolve().parents[1]
VERSIONS = {"jupyterhub": "6.1.1", "jupyterlab": "4.6.6", "ds01_jupyter": "0.1.0"}


def _image(**labels) -> ImageRecord:
    return ImageRecord("sha256:1", ("t:latest",), 1, None, {I.SINGLEUSER_LABEL: "true", **labels})


def test_init_writes_commented_files_and_keeps_edited_ones(tmp_path, capsys):
    assert admin.main(["init", "--etc", str(tmp_path)]) == 0
    limits = tmp_path / "resource-limits.yaml"
    assert limits.read_text().startswith("# ds01-jupyter resource limits")  # the shipped, commented example
    assert LimitsSource(Settings(limits_file=str(limits))).check() == str(limits)
    assert "refuse_to_start_unless_ready(c)" in (tmp_path / "jupyterhub_config.py").read_text()
    limits.write_text("defaults: {}\n")
    assert admin.main(["init", "--etc", str(tmp_path)]) == 0
    assert limits.read_text() == "defaults: {}\n"
    assert f"kept     {limits}" in capsys.readouterr().out


def test_unit_names_this_installation(tmp_path):
    text = admin.unit_text("/etc/ds01-jupyter/jupyterhub_config.py")
    assert re.search(r"^ExecStart=\S*jupyterhub -f /etc/ds01-jupyter/jupyterhub_config.py$", text, re.M), text
    assert "KillMode=mixed" in text and "WorkingDirectory=/var/lib/ds01-jupyterhub" in text
    assert "@" not in "".join(line for line in text.splitlines() if not line.startswith("#"))


@pytest.mark.docker  # the example asks the engine for its bridge address
def test_the_example_config_allows_a_group_and_serves_tls():
    config = checks.load_config(str(REPO / "examples/jupyterhub_config.py"))
    assert config.JupyterHub.authenticator_class == "pam" and config.PAMAuthenticator.allowed_groups
    assert "allow_all" not in config.Authenticator
    assert config.JupyterHub.bind_url.startswith("https://") and config.JupyterHub.ssl_key
    assert (REPO / "examples/jupyterhub_config.py").resolve() == REPO / "ds01_jupyter/hub/jupyterhub_config.example.py"


def test_checks_name_what_is_missing_with_what_to_do(tmp_path):
    config = Config()
    config.DS01Spawner.limits_file = str(tmp_path / "missing.yaml")
    config.ConfigurableHTTPProxy.command = [str(tmp_path / "no-proxy")]
    config.JupyterHub.ssl_cert = str(tmp_path / "cert.pem")
    config.JupyterHub.authenticator_class = "pam"
    config.Authenticator.allow_all = True
    config.PAMAuthenticator.admin_groups = {"no-such-group-ds01"}
    from ds01_jupyter.hub.spawner import DS01Spawner

    core = DS01Spawner(config=config).core
    report = checks.Report()  # the checks that need no engine, one by one
    checks._check_limits(core, report)
    checks._check_proxy(config, report)
    checks._check_tls(config, report)
    checks._check_login(config, report)
    text = report.text()
    assert "missing.yaml does not exist" in text and "ds01-hub init" in text
    assert "no-proxy is not found" in text and "cert.pem' cannot be read" in text
    assert "allow_all with PAM" in text and "groupadd no-such-group-ds01" in text

    (tmp_path / "missing.yaml").write_text("defaults:\n  memory: lots\n")
    report = checks.Report()
    checks._check_limits(core, report)
    assert "missing.yaml is not valid: Cannot read size 'lots'" in report.text(), report.text()


def test_refusing_to_start_exits_with_the_report(monkeypatch, capsys):
    monkeypatch.setattr(checks, "run_checks", lambda config: checks.Report(errors=[BuildFailed("no", hint="do")]))
    with pytest.raises(SystemExit) as exited:
        checks.refuse_to_start_unless_ready(Config(), argv=["-f", "x.py"])
    said = capsys.readouterr().err
    assert exited.value.code == checks.EX_CONFIG and "does not start" in said and "hint: do" in said
    assert f"RestartPreventExitStatus={checks.EX_CONFIG}" in admin.unit_text("/x.py")
    checks.refuse_to_start_unless_ready(Config(), argv=["upgrade-db"])  # not a start: no checks


def test_wheels_folder_problems(tmp_path):
    for name in ("jupyterhub-6.1.0-py3-none-any.whl", "jupyterlab-4.6.6-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"x")
    found = [e.message for e in W.problems(str(tmp_path), VERSIONS)]
    assert any("jupyterhub 6.1.1 (it has 6.1.0)" in m for m in found), found
    assert any("no wheel of ds01-jupyter 0.1.0" in m for m in found), found
    (tmp_path / "jupyterhub-6.1.1-py3-none-any.whl").write_bytes(b"x")
    (tmp_path / W.OWN).mkdir()
    (tmp_path / W.OWN / "ds01_jupyter-0.1.0-py3-none-any.whl").write_bytes(b"x")
    assert W.problems(str(tmp_path), VERSIONS) == []
    before = W.digest(str(tmp_path))
    (tmp_path / W.OWN / "ds01_jupyter-0.1.0-py3-none-any.whl").write_bytes(b"rebuilt")
    assert W.digest(str(tmp_path)) != before
    assert "does not exist" in W.problems(str(tmp_path / "nope"), VERSIONS)[0].message


def test_pip_targets_the_image_not_the_host():
    args = W.Target("3.11.2", "2.36", "aarch64").pip_args()
    assert args[:3] == ["--only-binary=:all:", "--python-version", "3.11.2"]
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in platforms
    assert "manylinux2014_aarch64" in platforms and not any("x86_64" in p for p in platforms)


def test_the_dockerfile_installs_the_package_dependencies():
    """The image installs ds01-jupyter without resolving its dependencies (a layer of its own): the
    Dockerfile's list must be pyproject's."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps} - {"jupyterlab"}
    text = I.dockerfile()
    installed = re.search(r'"jupyterlab==\$\{JUPYTERLAB_VERSION\}" ([^\\\n]+)', text).group(1).split()
    assert {n.lower() for n in installed} == names
    assert "--network none" in text and "ds01.singleuser.ds01-jupyter=${DS01_JUPYTER_VERSION}" in text


def test_rebuild_decisions():
    want = {"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.2.0", I.DIGEST_LABEL: "abc"}
    assert I.outdated(None, want) == "it is missing"
    old = _image(
        **{"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.1.0", I.DIGEST_LABEL: "x"}
    )
    assert I.outdated(old, want) == "ds01-jupyter was upgraded (0.1.0 → 0.2.0)"
    hub_old = _image(**{"ds01.singleuser.jupyterhub": "6.0", "ds01.singleuser.ds01-jupyter": "0.2.0"})
    assert I.outdated(hub_old, want) == "JupyterHub was upgraded (6.0 → 6.1.1)"
    by_hand = _image(**{"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.2.0"})
    assert I.outdated(by_hand, want) == ""  # built with `docker build` without the fingerprint: versions decide
    changed = _image(
        **{"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.2.0", I.DIGEST_LABEL: "y"}
    )
    assert I.outdated(changed, want) == "the wheels it is built from changed"

    current = _image(
        **{"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.2.0", I.DIGEST_LABEL: "abc"}
    )
    assert I.project_outdated(old, current)  # a project image inherits the labels of what it was built FROM
    assert not I.project_outdated(current, current)
    assert not I.project_outdated(_image(), current)  # FROM something else: never rebuilt in a loop


def test_build_feed_shows_steps_and_a_line_now_and_then():
    said, now = [], [0.0]
    feed = BuildFeed(said.append, "Image of demo", every=10, clock=lambda: now[0])
    feed("Step 1/3 : FROM ds01/singleuser:latest")
    for i in range(150):
        now[0] += 0.1
        feed(f"Collecting package{i}")
    feed("Step 2/3 : RUN pip install -r requirements.txt")
    assert said[0] == "Image of demo: Step 1/3 : FROM ds01/singleuser:latest"
    assert said[-1] == "Image of demo: Step 2/3 : RUN pip install -r requirements.txt"
    assert len(said) == 3 and said[1].startswith("Image of demo (still running): Collecting package")
    assert feed.tail(2) == ["Collecting package149", "Step 2/3 : RUN pip install -r requirements.txt"]
    assert feed.text().count("\n") == 152


def test_a_failed_build_shows_its_last_lines_and_where_the_log_is():
    said, kept = [], []

    def build(progress):
        for i in range(40):
            progress(f"line {i}")
        raise BuildFailed("Building t failed: exit 1", hint="Fix the Dockerfile.")

    def keep(text):
        kept.append(text)
        return "demo/results/logs/image-build.log"

    with pytest.raises(BuildFailed) as failed:
        build_quietly(build, said.append, "Image of demo", keep)
    assert "line 39" in failed.value.message and "line 20" not in failed.value.message
    assert failed.value.hint.startswith("The whole log: demo/results/logs/") and kept[0].count("\n") == 40
    assert build_quietly(lambda progress: "ok", said.append, "Image of demo", keep) == "ok"
    assert said[-1].endswith("the whole build log is in demo/results/logs/image-build.log")


def test_an_upgrade_rebuilds_the_singleuser_image_saying_why(monkeypatch, tmp_path):
    """The spawn page says why the image is built again; concurrent spawns build it once."""
    old = _image(**{"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.0.9"})
    new = _image(**{"ds01.singleuser.jupyterhub": "6.1.1", "ds01.singleuser.ds01-jupyter": "0.1.0"})
    images = {"ds01/singleuser:latest": old}
    builds = []

    class Engine:
        def get_image(self, tag):
            return images.get(tag)

    def build(engine, tag, base, wheels, progress, versions=None):
        builds.append(tag)
        progress("Step 1/9 : FROM ds01/base:latest")
        images[tag] = new
        return new

    monkeypatch.setattr(W, "host_versions", lambda: VERSIONS)
    monkeypatch.setattr(I, "build_singleuser_image", build)
    said, logged = [], []

    class Log:
        def info(self, *args):
            logged.append(args)

    result = I.ensure_singleuser(
        Engine(), "ds01/singleuser:latest", "ds01/base:latest", "", lambda m, p: said.append(m), Log()
    )
    assert result is new and builds == ["ds01/singleuser:latest"]
    assert "ds01-jupyter was upgraded (0.0.9 → 0.1.0)" in said[0]
    assert said[1] == "Single-user image: Step 1/9 : FROM ds01/base:latest" and logged
    assert I.ensure_singleuser(Engine(), "ds01/singleuser:latest", "ds01/base:latest", "", said.append, Log()) is new
    assert builds == ["ds01/singleuser:latest"]  # current now: not built again
