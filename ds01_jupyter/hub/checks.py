"""The hub's configuration checked before it starts, so a first spawn never finds something missing.

``jupyterhub_config.py`` ends with :func:`refuse_to_start_unless_ready`, and
``ds01-hub check`` runs the same checks: the Docker engine, the limits file
(present, valid, and only root may change it), the base image, the wheels
folder and the single-user image (does it fit the versions this hub runs?),
configurable-http-proxy, TLS files, who may log in, and no spawner option
DS01 refuses (hub/options.py). A hub that would fail
its first spawn refuses to start with a message saying what to do instead of
answering users with HTTP 500.
"""

from __future__ import annotations

import grp
import os
import shutil
import sys
from dataclasses import dataclass, field

from ..core.errors import DS01Error

#: jupyterhub's sub-commands and options that load the config without starting a hub.
NOT_STARTING = {"upgrade-db", "token", "--generate-config", "--generate-certs", "--version", "-h", "--help",
                "--help-all"}
#: The exit status of a hub that refuses to start (sysexits' EX_CONFIG): the unit does not restart it in a loop.
EX_CONFIG = 78
#: Set while `ds01-hub` loads a config for its own use (the admin's next step may be what is missing).
loading_quietly = False


@dataclass
class Report:
    errors: list[DS01Error] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"ok: {p}" for p in self.passed] + [f"warning: {w}" for w in self.warnings]
        for err in self.errors:
            lines.append(f"error: {err.message}")
            if err.hint:
                lines.append(f"  hint: {err.hint}")
        return "\n".join(lines)


def run_checks(config) -> Report:
    """Check what the hub configured by ``config`` (a traitlets Config) needs before its first spawn."""
    from . import image as I
    from . import wheels as W
    from .options import OptionsRefused
    from .spawner import DS01Spawner

    report = Report()
    spawner = DS01Spawner(config=config)
    if spawner.refused_options:  # options DS01 cannot honour: named, never silently ignored (hub/options.py)
        report.errors.append(OptionsRefused(spawner.refused_options))
    core = spawner.core
    _check_limits(core, report)
    _check_proxy(config, report)
    _check_tls(config, report)
    _check_login(config, report)
    try:
        core.engine.ping()
    except DS01Error as err:
        report.errors.append(err)
        return report  # the rest asks the engine
    report.passed.append("the Docker engine answers")
    if core.engine.get_image(spawner.base_image) is None:
        report.errors.append(DS01Error(f"The base image {spawner.base_image} is missing.",
                                       hint="Make it with `ds01 base-image` (or pull yours)."))
    else:
        report.passed.append(f"base image {spawner.base_image}")
    versions = W.host_versions()
    folder = spawner.singleuser_wheels
    if folder:
        found = W.problems(folder, versions) + W.owner_check(folder)
        report.errors.extend(found)
        made_for = W.manifest(folder).get("base_image")
        if not found:
            report.passed.append(f"wheels folder {folder}")
            if made_for and made_for != spawner.base_image:
                report.warnings.append(f"{folder} was filled for {made_for}, not {spawner.base_image}: "
                                       f"run `ds01-hub wheels {folder}` again if their Pythons differ.")
    image = core.engine.get_image(spawner.singleuser_image)
    why = I.outdated(image, I.wanted(folder, versions))
    if not why:
        report.passed.append(f"single-user image {spawner.singleuser_image}")
    elif folder:
        report.warnings.append(f"The single-user image {spawner.singleuser_image} is built at the first spawn "
                               f"({why}); `ds01-hub image` builds it now.")
    else:
        report.errors.append(DS01Error(
            f"The single-user image {spawner.singleuser_image} must be built ({why}) and no wheels folder is set.",
            hint="Set c.DS01Spawner.singleuser_wheels and run `ds01-hub wheels FOLDER`."))
    return report


def _check_limits(core, report: Report) -> None:
    path = core.settings.limits_path()
    if path is None:
        report.warnings.append("No limits file: the built-in defaults apply to everyone (`ds01-hub init` writes one).")
        return
    if not path.exists():
        report.errors.append(DS01Error(
            f"The limits file {path} does not exist.",
            hint="Write a commented one from the shipped example with `ds01-hub init`, then edit it."))
        return
    try:
        core.limits.check()
    except DS01Error as err:
        report.errors.append(DS01Error(f"The limits file {path} is not valid: {err.message}",
                                       hint=err.hint or "The shipped example explains each field (`ds01-hub init "
                                       "--etc /tmp/example` writes a copy)."))
        return
    st = path.stat()
    if os.geteuid() == 0 and (st.st_uid != 0 or st.st_mode & 0o022):
        report.errors.append(
            DS01Error(
                f"The limits file {path} may be changed by someone other than root, who could lift their own limits.",
                hint=f"chown root: {path} && chmod 644 {path}",
            )
        )
        return
    report.passed.append(f"limits file {path}")


def _get(config, section: str, name: str, default=None):
    value = config[section].get(name, default) if section in config else default
    return default if value is None else value


def _check_proxy(config, report: Report) -> None:
    proxy = str(_get(config, "JupyterHub", "proxy_class", "configurable-http-proxy"))
    if "configurable" not in proxy.lower() and proxy != "default":
        return  # another proxy: its own checks
    if _get(config, "ConfigurableHTTPProxy", "should_start", True) is False:
        return
    command = list(_get(config, "ConfigurableHTTPProxy", "command", ["configurable-http-proxy"]))
    found = shutil.which(command[0]) if command else None
    if found is None:
        report.errors.append(DS01Error(
            f"The proxy command {command[0] if command else '(empty)'} is not found (nor on PATH).",
            hint="Install it (`npm install -g configurable-http-proxy`) or set c.ConfigurableHTTPProxy.command."))
    else:
        report.passed.append(f"proxy {found}")


def _check_tls(config, report: Report) -> None:
    for name in ("ssl_cert", "ssl_key"):
        path = _get(config, "JupyterHub", name, "")
        if path and not os.access(path, os.R_OK):
            report.errors.append(DS01Error(f"c.JupyterHub.{name} = {path!r} cannot be read.",
                                           hint="Put the certificate and key there, or serve TLS from a reverse proxy "
                                           "and remove ssl_cert and ssl_key."))
    url = str(_get(config, "JupyterHub", "bind_url", ""))
    if url.startswith("http://") and not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        report.warnings.append(f"The hub listens on {url} without TLS: passwords cross the network in clear text "
                               "(set ssl_cert/ssl_key, or bind to 127.0.0.1 behind a TLS reverse proxy).")


def _check_login(config, report: Report) -> None:
    auth = str(_get(config, "JupyterHub", "authenticator_class", "pam")).lower()
    if "pam" not in auth and "local" not in auth:
        return
    allowed = any(_get(config, section, "allowed_users") or _get(config, section, "allowed_groups")
                  for section in ("Authenticator", "LocalAuthenticator", "PAMAuthenticator"))
    for section in ("LocalAuthenticator", "PAMAuthenticator"):
        for setting in ("allowed_groups", "admin_groups"):
            for group in sorted(_get(config, section, setting) or ()):
                try:
                    grp.getgrnam(group)
                except KeyError:  # PAM's admin check then fails every login with HTTP 500
                    report.errors.append(DS01Error(f"c.{section}.{setting} names the Unix group {group!r}, which "
                                                   "does not exist.", hint=f"Create it (`groupadd {group}`) or "
                                                   "change the setting."))
    if any(_get(config, s, "allow_all") for s in ("Authenticator", "LocalAuthenticator", "PAMAuthenticator")):
        report.warnings.append("allow_all with PAM lets in every account of this host that has a password; "
                               "list allowed_users or allowed_groups instead.")
    elif not allowed:
        report.warnings.append("No allowed_users or allowed_groups: nobody but the admins can log in.")


def load_config(path: str):
    """The Config of a jupyterhub_config.py, loaded without its start-up checks (for ds01-hub and tests)."""
    from traitlets.config import PyFileConfigLoader

    global loading_quietly
    loading_quietly = True
    try:
        return PyFileConfigLoader(os.path.basename(path), os.path.dirname(os.path.abspath(path))).load_config()
    finally:
        loading_quietly = False


def refuse_to_start_unless_ready(config, argv: list[str] | None = None) -> None:
    """Run the checks when ``jupyterhub`` is starting a hub; exit with what to do when one fails."""
    argv = sys.argv[1:] if argv is None else argv
    if loading_quietly or NOT_STARTING & set(argv):
        return
    report = run_checks(config)
    for warning in report.warnings if not report.errors else ():
        print(f"[ds01] warning: {warning}", file=sys.stderr)
    if report.errors:
        print("[ds01] The hub does not start: its configuration is not ready.\n" + report.text()
              + "\n(`ds01-hub check -f CONFIG` runs these checks again.)", file=sys.stderr)
        raise SystemExit(EX_CONFIG)
