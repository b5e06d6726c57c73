"""Create the Binder example project: the DS01 layout, a notebook that shows the warnings, two checkpoints.

Usage: python binder/make_example.py HOME. Never overwrites an existing project.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ds01_jupyter import checkpoints
from ds01_jupyter.core import DS01, Settings, User
from ds01_jupyter.core.errors import DS01Error

HERE = Path(__file__).parent
PROJECT = "example"


def main(home: Path) -> Path:
    me = User.current()
    user = User(me.name, me.uid, me.gid, home)
    core = DS01(Settings())
    try:
        project = core.projects.create(user, PROJECT)
    except DS01Error as err:
        print(f"example project not made: {err}", file=sys.stderr)
        return home / "workspace" / PROJECT
    shutil.copy(HERE / "persistence-demo.ipynb", project.path / "notebooks" / "persistence-demo.ipynb")
    models = project.path / "models"
    for epoch, loss in ((1, 0.92), (2, 0.61), (3, 0.48)):
        checkpoints.save({"weights": [epoch] * 8}, epoch=epoch, step=epoch * 100, metrics={"val_loss": loss}, directory=models)
    return project.path


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home()))
