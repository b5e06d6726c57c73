"""The README's configuration tables, generated from the traits so the docs cannot drift.

``python -m ds01_jupyter.config_docs`` prints them, ``--write README.md`` puts them in place of the README's
ones; a test checks the README holds them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

#: (class path, what configures it) for every configurable class users set in config files.
CONFIGURABLES = [
    ("ds01_jupyter.server.app:DS01App", "JupyterLab (`jupyter_server_config.py`)"),
    ("ds01_jupyter.hub.spawner:DS01Spawner",
     "JupyterHub (`jupyterhub_config.py`; the options inherited from DockerSpawner and Spawner: the next table)"),
]
INHERITED = "The spawner options DS01Spawner inherits from DockerSpawner and JupyterHub's Spawner"


def load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def ds01_options(cls) -> dict:
    """The config traits that ds01-jupyter's own classes declare (the class and its mixins, e.g. SettingsOptions)."""
    out = {}
    for name, trait in cls.class_traits(config=True).items():
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if owner.__module__.startswith("ds01_jupyter."):
            out[name] = trait
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def traits_table(cls) -> str:
    """One row per option of ds01-jupyter's own: name, default and help text."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for name, trait in sorted(ds01_options(cls).items()):
        default = trait.default()  # default_value is Undefined for containers (Dict) whose default is made per object
        shown = "(none)" if default in (None, "", [], {}) else f"`{default}`"
        rows.append(f"| `c.{cls.__name__}.{name}` | {shown} | {_cell(trait.help)} |")
    return "\n".join(rows)


def inherited_table() -> str:
    """One row per option DS01Spawner inherits: honoured, refused or JupyterHub's, and what it does here."""
    from .hub.options import HONOURED, JUPYTERHUB, REFUSED

    rows = ["| option | in DS01Spawner | what it does there |", "| --- | --- | --- |"]
    for name in sorted({**HONOURED, **REFUSED, **JUPYTERHUB}):
        if name in HONOURED:
            status, text = "honoured", HONOURED[name]
        elif name in REFUSED:
            status, text = "**refused**", REFUSED[name]
        else:
            status, text = "JupyterHub's", JUPYTERHUB[name] or "Applied by JupyterHub, as for every spawner."
        rows.append(f"| `{name}` | {status} | {_cell(text)} |")
    return "\n".join(rows)


def tables() -> str:
    out = [f"{where}:\n\n{traits_table(load(path))}\n" for path, where in CONFIGURABLES]
    out.append(f"{INHERITED}:\n\n{inherited_table()}\n")
    return "\n".join(out)


def write(path: str) -> None:
    """Replace the tables in ``path``: from the first one's title to the end of the last table."""
    text = Path(path).read_text()
    start = text.index(CONFIGURABLES[0][1] + ":")
    end = text.index("\n\n", text.index("| --- |", text.index(INHERITED + ":"))) + 1
    Path(path).write_text(text[:start] + tables() + text[end:])


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write"]:
        write(argv[1])
    else:
        print(tables())


if __name__ == "__main__":
    main()
