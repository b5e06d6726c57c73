"""What the ds01 command imports to start (issue 19: `ds01 --help` under 100 ms, engine verbs as fast as can be).

Times vary with the host; the modules imported do not. Each check runs the command line in a fresh
interpreter and asserts that what a command does not need stays unimported: docker-py and its HTTP stack
until the engine connects, yaml until an admin's file is parsed, the container core until a verb uses it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Never needed to print help or to parse a command line.
HEAVY = ("docker", "requests", "urllib3", "yaml", "ds01_jupyter.core.containers", "ds01_jupyter.service.client")
#: Not needed to print help either (the settings' dataclass alone costs 25 ms of a 100 ms budget).
LISTING_ONLY = ("dataclasses", "pathlib", "ds01_jupyter.core.settings", "ds01_jupyter.core.users")
#: Never needed by a verb until it parses an admin's file or writes a file (or is not needed at all here).
NOT_FOR_LISTING = ("yaml", "platform", "secrets", "ds01_jupyter.service.config", "ds01_jupyter.core.gitstate")

# The modules are listed before json is imported to write them.
RUN = """
import sys
modules_file, argv = sys.argv[1], sys.argv[2:]
code = None
if argv == ["--import-only"]:
    import ds01_jupyter.cli.main
else:
    from ds01_jupyter.cli.main import main
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
modules = sorted(sys.modules)
import json
with open(modules_file, "w") as out:
    json.dump({"code": code, "modules": modules}, out)
"""


def start(tmp_path, argv, **environ):
    """Run ``ds01 ARGV`` (None: only import the CLI) in a fresh interpreter: its exit code, output and modules."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS01_")}
    env.update(HOME=str(tmp_path), **environ)
    modules_file = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", RUN, str(modules_file), *(argv or ["--import-only"])], env=env,
                          cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert modules_file.exists(), proc.stderr
    result = json.loads(modules_file.read_text())
    return result["code"], proc.stdout + proc.stderr, set(result["modules"])


def loaded(modules: set[str], names) -> list[str]:
    return [name for name in names if name in modules]


def test_importing_the_cli_imports_nothing_heavy(tmp_path):
    code, _, modules = start(tmp_path, None)
    assert loaded(modules, HEAVY + ("json", "ds01_jupyter.service.protocol")) == []


@pytest.mark.parametrize("argv, usage", [(["--help"], "usage: ds01 [-h]"),
                                         (["container-deploy", "--help"], "usage: ds01 container-deploy [-h]"),
                                         (["retire", "-h"], "usage: ds01 container-retire [-h]")])
def test_help_imports_nothing_heavy(tmp_path, argv, usage):
    code, output, modules = start(tmp_path, argv)
    assert code == 0, output
    assert output.startswith(usage)
    assert loaded(modules, HEAVY + LISTING_ONLY) == []


def test_the_help_lists_every_verb(capsys):
    """The sub-parsers are made when a verb is used; the listing still names every verb and alias."""
    from ds01_jupyter.cli.main import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit) as exit:
        parser.parse_args(["--help"])
    assert exit.value.code == 0
    listing = capsys.readouterr().out
    for verb in ("project-init", "container-deploy (deploy)", "container-list (list)", "container-retire (retire)",
                 "status", "check-limits", "gpus", "nodes", "reap", "settings"):
        assert verb in listing
    assert "`ds01 settings` lists them" in " ".join(listing.split())  # the epilog: where the variables are listed


def test_every_verb_parses(capsys):
    """Each verb's sub-parser, made only when used, builds: its options, NAME, --json and its function."""
    from ds01_jupyter.cli.main import build_parser

    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices  # argparse lists no verbs publicly
    assert len(verbs) == 36  # 28 verbs and 8 aliases
    for verb in verbs:
        with pytest.raises(SystemExit) as exit:
            build_parser().parse_args([verb, "--help"])
        assert exit.value.code == 0
        assert capsys.readouterr().out.startswith("usage: ds01 ")
    args = build_parser().parse_args(["--json", "deploy", "p", "--gpus", "2", "--background"])
    assert (args.verb, args.name, args.gpus, args.background, args.json) == ("deploy", "p", 2, True, True)
    assert args.func.__name__ == "cmd_deploy"
    args = build_parser().parse_args(["retire", "p", "--rescue", "--json"])
    assert (args.rescue, args.discard, args.json, args.func.__name__) == (True, False, True, "cmd_retire")


def test_a_usage_mistake_is_the_same(tmp_path):
    code, output, modules = start(tmp_path, ["container-retire", "p", "--rescue", "--discard"])
    assert code == 2
    assert "error: argument --discard: not allowed with argument --rescue" in output
    code, output, _ = start(tmp_path, ["bogus"])
    assert code == 2 and "invalid choice: 'bogus' (choose from 'project-init', 'project-list', 'projects'," in output
    assert loaded(modules, HEAVY) == []


def test_a_verb_through_ds01d_needs_no_engine_nor_config(tmp_path):
    """Through ds01d (here a socket nobody serves) the CLI imports neither docker-py nor the container core."""
    code, output, modules = start(tmp_path, ["container-list"], DS01_SOCKET=str(tmp_path / "ds01.sock"))
    assert code == 1 and "ds01d does not answer at" in output
    assert loaded(modules, HEAVY[:5] + NOT_FOR_LISTING) == []


def test_listing_on_the_engine_imports_only_what_it_needs(tmp_path):
    """Directly on the engine (here one that is not there) container-list imports docker-py, and no more."""
    code, output, modules = start(tmp_path, ["container-list"], DS01_SOCKET="none",
                                  DOCKER_HOST=f"unix://{tmp_path}/docker.sock")
    assert code == 1, output
    assert "ds01_jupyter.core.containers" in modules  # it got as far as the engine
    assert loaded(modules, NOT_FOR_LISTING + ("ds01_jupyter.service.protocol",)) == []


def test_settings_lists_every_variable_with_its_value_here(tmp_path):
    """`ds01 settings` needs no engine nor core: each DS01_ variable, who sets it, and the value it has here."""
    from dataclasses import fields

    from ds01_jupyter.core.settings import ADMIN_SETTINGS, Settings

    code, output, modules = start(tmp_path, ["settings", "--json"], DS01_SOCKET="none", DS01_BASE_IMAGE="mine:1")
    assert code == 0, output
    listed = {s["variable"]: s for s in json.loads(output)["settings"]}
    assert set(listed) == {f"DS01_{f.name.upper()}" for f in fields(Settings) if f.name != "interface"}
    assert listed["DS01_BASE_IMAGE"]["value"] == "mine:1" and not listed["DS01_BASE_IMAGE"]["admin"]
    root = listed["DS01_WORKSPACE_ROOT"]
    assert root["value"] is None and root["default"] == "{home}/workspace"
    assert {v["name"] for v in listed.values() if v["admin"]} == set(ADMIN_SETTINGS)
    assert all(v["help"] for v in listed.values())
    assert loaded(modules, HEAVY[:5]) == []  # no engine, no core: ds01d's socket is only named
    code, output, _ = start(tmp_path, ["settings"], DS01_SOCKET=str(tmp_path / "ds01.sock"))
    assert code == 0 and f"ds01d answers at {tmp_path / 'ds01.sock'}: it reads none of these" in output


def test_an_admin_setting_a_user_sets_is_shown_refused():
    """What `ds01 settings` shows a user (not root, not the owner of the admin's folder) who set an admin variable:
    the value, refused, as every other verb refuses it."""
    from ds01_jupyter.core.settings import ADMIN_DIR, environment_settings

    nobody = 65534 if not os.path.exists(ADMIN_DIR) or os.stat(ADMIN_DIR).st_uid != 65534 else 65533
    listed = {s["name"]: s for s in environment_settings({"DS01_LIMITS_FILE": "/tmp/mine.yaml",
                                                          "DS01_STATE_DIR": "/tmp/state"}, euid=nobody)}
    assert listed["limits_file"]["refused"] and listed["limits_file"]["value"] == "/tmp/mine.yaml"
    assert not listed["state_dir"]["refused"] and listed["state_dir"]["value"] == "/tmp/state"
    assert not listed["lock_dir"]["refused"]  # not set: nothing to refuse
    root = {s["name"]: s for s in environment_settings({"DS01_LIMITS_FILE": "/x"}, euid=0)}
    assert not root["limits_file"]["refused"]


def test_a_reply_through_ds01d_is_decoded_without_the_container_core(tmp_path):
    """A client of ds01d rebuilds a deploy's answer from its own small module: the engine's modules, which cost
    100 ms to import, stay unimported."""
    from ds01_jupyter.core.container_status import ContainerStatus, DeployResult
    from ds01_jupyter.service import protocol

    sent = DeployResult(ContainerStatus("p", "p._.me", "abc", "running", "img", gpus=["GPU-1"]), True, ["note"])
    reply = tmp_path / "reply.json"
    reply.write_text(json.dumps(protocol.encode(sent)))
    code = (
        "import json, sys\n"
        "from ds01_jupyter.service import protocol\n"
        f"got = protocol.decode(json.load(open({str(reply)!r})))\n"
        "print(json.dumps({'got': got.to_dict(), 'type': type(got).__name__, 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["type"] == "DeployResult" and out["got"] == sent.to_dict()
    assert loaded(set(out["modules"]), HEAVY + ("ds01_jupyter.core.findings", "ds01_jupyter.core.images")) == []
    from ds01_jupyter.core.errors import DS01Error

    with pytest.raises(DS01Error, match="unknown type"):
        protocol.decode({"__t": ["ContainerStatus"], "v": {}})
    with pytest.raises(DS01Error, match="unknown type"):
        protocol.decode({"__t": "ContainerStatus", "v": "not a mapping"})
