"""The README's configuration tables, generated from the traits so the docs cannot drift.

``python -m ds01_jupyter.config_docs`` prints them; a test checks the README holds them.
"""

from __future__ import annotations

import importlib

#: (class path, what configures it) for every configurable class users set in config files.
CONFIGURABLES = [
    ("ds01_jupyter.server.app:DS01App", "JupyterLab (`jupyter_server_config.py`)"),
    ("ds01_jupyter.hub.spawner:DS01Spawner", "JupyterHub (`jupyterhub_config.py`; also every DockerSpawner option)"),
]


def load(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def traits_table(cls) -> str:
    """One row per option the class itself defines: name, default and help text."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for name, trait in sorted(cls.class_own_traits(config=True).items()):
        default = trait.default()  # default_value is Undefined for containers (Dict) whose default is made per object
        shown = "(none)" if default in (None, "", [], {}) else f"`{default}`"
        help_text = " ".join(trait.help.split()).replace("|", "\\|")
        rows.append(f"| `c.{cls.__name__}.{name}` | {shown} | {help_text} |")
    return "\n".join(rows)


def main() -> None:
    for path, where in CONFIGURABLES:
        print(f"{where}:\n\n{traits_table(load(path))}\n")


if __name__ == "__main__":
    main()
