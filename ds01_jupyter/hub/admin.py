"""``ds01-hub``: the admin's commands to install and keep DS01's JupyterHub, in the README's order.

    ds01-hub init      the hub's config and a commented limits file in /etc/ds01-jupyter (never overwritten)
    ds01-hub wheels    fill the wheels folder for the base image's Python (after every upgrade too)
    ds01-hub image     build the single-user image now rather than at the first spawn
    ds01-hub check     what the hub checks before it starts
    ds01-hub unit      the systemd unit of this installation's hub
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from ..cli import output as out
from ..core.errors import ConfigError, DS01Error

ETC = "/etc/ds01-jupyter"
CONFIG = f"{ETC}/jupyterhub_config.py"


def shipped(name: str) -> str:
    """A file shipped in the package (the example config, the unit, the limits example)."""
    package = "ds01_jupyter" if name.endswith(".yaml") else "ds01_jupyter.hub"
    return resources.files(package).joinpath(name).read_text()


def _write_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write ``path`` unless it exists (an admin's edited file is never replaced); say which."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        print(f"kept     {path} (exists; not changed)")
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    print(f"wrote    {path}")
    return True


def cmd_init(args) -> int:
    etc = Path(args.etc)
    etc.mkdir(mode=0o755, parents=True, exist_ok=True)
    _write_new(etc / "jupyterhub_config.py", shipped("jupyterhub_config.example.py"))
    _write_new(etc / "resource-limits.yaml", shipped("resource-limits.example.yaml"))
    print(f"Next: edit {etc}/jupyterhub_config.py (who may log in, TLS) and {etc}/resource-limits.yaml, "
          "then `ds01 base-image` and `ds01-hub wheels`.")
    return 0


def _config(args):
    """The hub's config (loaded without its start-up checks) and a spawner configured by it."""
    from traitlets.config import Config

    from .checks import load_config
    from .spawner import DS01Spawner

    path = args.config
    if path and os.path.exists(path):
        config = load_config(path)
    elif path and path != CONFIG:
        raise ConfigError(f"{path} does not exist.", hint="Name the hub's jupyterhub_config.py with -f.")
    else:
        config = Config()
    return config, DS01Spawner(config=config)


def cmd_wheels(args) -> int:
    from . import wheels as W

    _, spawner = _config(args)
    folder = args.folder or spawner.singleuser_wheels
    if not folder:
        raise ConfigError("Which folder? The config sets no c.DS01Spawner.singleuser_wheels.",
                          hint="Name it: `ds01-hub wheels /srv/ds01/wheels` (and set singleuser_wheels to it).")
    manifest = W.fill(Path(folder), args.base_image or spawner.base_image, wheel=args.wheel or "",
                      docker_url=spawner.docker_url)
    print(f"{folder}: JupyterHub {manifest['jupyterhub']}, JupyterLab {manifest['jupyterlab']}, ds01-jupyter "
          f"{manifest['ds01_jupyter']} for Python {manifest['python']} of {manifest['base_image']}")
    return 0


def cmd_image(args) -> int:
    from . import image as I

    _, spawner = _config(args)
    engine = spawner.core.engine
    why = "--rebuild" if args.rebuild else I.outdated(engine.get_image(spawner.singleuser_image),
                                                       I.wanted(spawner.singleuser_wheels))
    if not why:
        print(f"{spawner.singleuser_image} is current.")
        return 0
    print(f"Building {spawner.singleuser_image} ({why})", file=sys.stderr)
    I.build_singleuser_image(engine, spawner.singleuser_image, spawner.base_image, spawner.singleuser_wheels,
                             lambda line: print(line, file=sys.stderr))
    print(f"Built {spawner.singleuser_image}.")
    return 0


def cmd_check(args) -> int:
    from .checks import run_checks

    config, _ = _config(args)
    report = run_checks(config)
    print(report.text())
    print("Ready to start." if not report.errors else "Not ready: the hub refuses to start until these are fixed.")
    return 1 if report.errors else 0


def unit_text(config: str) -> str:
    """The shipped unit, naming this installation's jupyterhub, its PATH (the proxy) and the config."""
    exe = Path(sys.executable).parent / "jupyterhub"
    start = str(exe) if exe.exists() else f"{sys.executable} -m jupyterhub"
    path = os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/sbin", "/usr/local/bin",
                                          "/usr/sbin", "/usr/bin", "/sbin", "/bin"]))
    return (shipped("ds01-jupyterhub.service").replace("@JUPYTERHUB@", start).replace("@CONFIG@", config)
            .replace("@PATH@", path))


def cmd_unit(args) -> int:
    print(unit_text(os.path.abspath(args.config)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ds01-hub", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)

    def verb(name, func, text, config=True):
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        if config:
            p.add_argument("-f", "--config", default=CONFIG, help=f"the hub's jupyterhub_config.py (default {CONFIG})")
        return p

    init = verb("init", cmd_init, "write jupyterhub_config.py and a commented resource-limits.yaml from the shipped "
                "examples (existing files are kept)", config=False)
    init.add_argument("--etc", default=ETC, help=f"folder to write them to (default {ETC})")
    wheels = verb("wheels", cmd_wheels, "fill the wheels folder (JupyterHub, JupyterLab, ds01-jupyter and their "
                  "dependencies) for the base image's Python")
    wheels.add_argument("folder", nargs="?", help="the folder (default: the config's singleuser_wheels)")
    wheels.add_argument("--wheel", help="the ds01-jupyter wheel to use (one you built); default: this version "
                        "from the package index")
    wheels.add_argument("--base-image", help="default: the config's base_image")
    image = verb("image", cmd_image, "build the single-user image now (when missing or outdated)")
    image.add_argument("--rebuild", action="store_true", help="build it even when it is current")
    verb("check", cmd_check, "check what the hub needs before it starts (exit 1 when something is missing)")
    verb("unit", cmd_unit, "print the systemd unit for this installation's hub")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DS01Error as err:
        out.error(err)
        return 1
    except OSError as err:
        out.error(DS01Error(f"{err.strerror or err}" + (f": {err.filename}" if err.filename else ""),
                            hint="ds01-hub's install commands run as root (they write to /etc and build images)."))
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
