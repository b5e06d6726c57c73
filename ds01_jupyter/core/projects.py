"""Projects: the persistent folders ``<workspace root>/<project>/``."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import AlreadyExists, Forbidden, InvalidName, ProjectNotFound
from .names import check_project_name
from .settings import Settings
from .users import User, give_tree

LAYOUT_DIRS = (
    "data/raw",
    "data/processed",
    "notebooks",
    "src",
    "models",
    "results/plots",
    "results/logs",
    "tests",
)

GITIGNORE = """\
# Kept out of git: large, re-creatable or generated (ds01-jupyter layout).
data/
models/
results/
.rescued/
*.pt
*.pth
*.ckpt
*.safetensors
__pycache__/
.ipynb_checkpoints/
.venv/
"""

README = """\
# {name}

A DS01 project. Everything in this folder is mounted at `/workspace` inside the
project's container and survives when the container is retired; everything
else in the container (`/tmp`, `~`, installed packages) does not.

- `data/raw`, `data/processed`: data (not in git)
- `notebooks/`: notebooks
- `src/`: code
- `models/`: checkpoints (not in git)
- `results/plots`, `results/logs`: outputs (not in git)
- `requirements.txt`: packages installed into the project's image
"""

REQUIREMENTS = "# Python packages for this project's image, one per line.\n"


@dataclass(frozen=True)
class Project:
    name: str
    path: Path

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path)}


class Projects:
    """List, create and locate projects, never leaving the workspace root."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def root(self, user: User) -> Path:
        return self.settings.expand(self.settings.workspace_root, user)

    def _checked_path(self, user: User, name: str) -> Path:
        check_project_name(name)
        root = self.root(user)
        path = root / name
        if path.is_symlink():
            raise Forbidden(
                f"Project folder {path} is a symbolic link; projects must be real folders "
                f"inside {root}.",
                hint="Move the folder into the workspace instead of linking it.",
            )
        return path

    def get(self, user: User, name: str) -> Project:
        """Return an existing project, or raise ProjectNotFound."""
        path = self._checked_path(user, name)
        if not path.is_dir():
            raise ProjectNotFound(
                f"Project {name!r} does not exist in {self.root(user)}.",
                hint=f"Create it with `ds01 project-init {name}`.",
                project=name,
            )
        real_root = self.root(user).resolve()
        if real_root not in path.resolve().parents:
            raise Forbidden(f"Project {name!r} resolves outside {real_root}.")
        return Project(name, path)

    def list(self, user: User) -> list[Project]:
        """Projects are the valid-named real folders of the workspace root."""
        root = self.root(user)
        if not root.is_dir():
            return []
        found = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                try:
                    check_project_name(entry.name)
                except InvalidName:  # a folder we could not manage; not a project
                    continue
                found.append(Project(entry.name, Path(entry.path)))
        return found

    def create(self, user: User, name: str) -> Project:
        """Create a project with the recommended layout; never overwrite one."""
        path = self._checked_path(user, name)
        root = self.root(user)
        root.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()  # atomic: of two concurrent creates, one wins
        except FileExistsError:
            raise AlreadyExists(
                f"Project {name!r} already exists at {path}; nothing was changed.",
                project=name,
            ) from None
        for sub in LAYOUT_DIRS:
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "README.md").write_text(README.format(name=name))
        (path / "requirements.txt").write_text(REQUIREMENTS)
        (path / ".gitignore").write_text(GITIGNORE)
        for sub in LAYOUT_DIRS:  # keep empty folders in git
            if not sub.startswith(("data", "models", "results")):
                (path / sub / ".gitkeep").touch()
        if shutil.which("git"):
            subprocess.run(
                ["git", "init", "-q", str(path)],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        give_tree(user, path)
        return Project(name, path)

