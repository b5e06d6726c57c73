"""Projects: the persistent folders ``<workspace root>/<project>/``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import AlreadyExists, Forbidden, InvalidName, ProjectNotFound
from .identity import acting_as
from .names import check_project_name
from .settings import Settings
from .users import User, owner_name

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
data/**
!data/README.md
models/
results/
.rescued/
.cache/
mlruns/
wandb/
runs/
lightning_logs/
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
- `.cache/`: caches (Hugging Face, torch, ...), kept across containers (not in git)

The container sets `XDG_CACHE_HOME`, `HF_HOME` and `TORCH_HOME` under
`/workspace/.cache`, `WANDB_DIR`, `MLFLOW_TRACKING_URI` and `TENSORBOARD_LOG_DIR`
under `results/`, and `DATA_DIR`, `MODEL_DIR`, `RESULTS_DIR`; your Dockerfile's
own `ENV` wins.
"""

REQUIREMENTS = "# Python packages for this project's image, one per line.\n"

DATA_README = """\
# Data

- `raw/`: the data as you received it; never edit it in place.
- `processed/`: what your code makes from it (re-creatable).

Data is kept out of git (see `.gitignore`): note here where it comes from and
how to get it again, and commit this file.
"""

#: Files of the layout (relative path, text with {name}); folders come from LAYOUT_DIRS.
LAYOUT_FILES = (
    ("README.md", README),
    ("requirements.txt", REQUIREMENTS),
    (".gitignore", GITIGNORE),
    ("data/README.md", DATA_README),
    ("src/__init__.py", ""),
    ("notebooks/.gitkeep", ""),
    ("tests/.gitkeep", ""),
)


@dataclass(frozen=True)
class Project:
    name: str
    path: Path
    #: The folder is gone (Projects.locate): its container may still mount the deleted one.
    missing: bool = False

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path)}


OWNERSHIP_HINT = (
    "ds01 works only in folders of the user it acts for: use your own workspace (unset DS01_WORKSPACE_ROOT, "
    "and HOME if it is not your home), or ask the admin to change workspace_root."
)


class Projects:
    """List, create and locate projects, never leaving the workspace root.

    This is the one place where every front end (CLI, server extension,
    spawner) learns where a user's projects are, so the ownership rule lives
    here: the workspace root and each project folder must belong to the user
    the core acts for. A root pointed elsewhere (DS01_WORKSPACE_ROOT, HOME, an
    admin's pattern gone wrong) is refused with Forbidden before anything
    there is read, mounted or written. A process not run by root may also use
    folders it owns itself: it acts with its own rights anyway (tests and
    benchmarks act for made-up users that way).
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    def root(self, user: User) -> Path:
        """Where the user's projects live (not checked; see checked_root)."""
        return self.settings.expand(self.settings.workspace_root, user)

    def checked_root(self, user: User) -> Path:
        """The workspace root, refused (Forbidden) when it exists and is not the user's."""
        root = self.root(user)
        self._owned(user, root, "The workspace root")
        return root

    @staticmethod
    def _owners(user: User) -> set[int]:
        me = os.geteuid()
        return {user.uid} | ({me} if me != 0 else set())

    def _owned(self, user: User, path: Path, what: str, st: os.stat_result | None = None) -> bool:
        """Whether ``path`` exists; Forbidden when it belongs to someone else or cannot be looked at."""
        if st is None:
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return False
            except OSError as err:
                raise Forbidden(f"Cannot look at {what.lower()} {path}: {err.strerror}.", hint=OWNERSHIP_HINT) from None
        if st.st_uid not in self._owners(user):
            raise Forbidden(
                f"{what} {path} belongs to {owner_name(st.st_uid)}, not to {user.name}; refusing to use it.",
                hint=OWNERSHIP_HINT,
                path=str(path),
            )
        return True

    def _checked_path(self, user: User, name: str) -> Path:
        check_project_name(name)
        root = self.checked_root(user)
        path = root / name
        if path.is_symlink():
            raise Forbidden(
                f"Project folder {path} is a symbolic link; projects must be real folders "
                f"inside {root}.",
                hint="Move the folder into the workspace instead of linking it.",
            )
        return path

    def get(self, user: User, name: str) -> Project:
        """Return an existing project, or raise ProjectNotFound (Forbidden when it is not the user's)."""
        path = self._checked_path(user, name)
        if not path.is_dir():
            raise ProjectNotFound(
                f"Project {name!r} does not exist in {self.root(user)}.",
                hint=f"Create it with `ds01 project-init {name}`.",
                project=name,
            )
        self._owned(user, path, "Project folder")
        real_root = self.root(user).resolve()
        if real_root not in path.resolve().parents:
            raise Forbidden(f"Project {name!r} resolves outside {real_root}.")
        return Project(name, path)

    def locate(self, user: User, name: str) -> Project:
        """The project as ``get`` returns it, or, when its folder is gone, where it was (``missing`` set).

        For a container whose workspace was deleted while it ran: its folder is the user's place for the
        project in their own checked workspace root (never a path read from the container's labels).
        """
        path = self._checked_path(user, name)
        if os.path.lexists(path):
            return self.get(user, name)
        return Project(name, path, missing=True)

    def restore(self, user: User, name: str) -> Project:
        """Make a missing project folder again, empty and the user's (a rescue from a container whose
        workspace was deleted writes into it); an existing one is returned as ``get`` does.

        Made by descriptor in the real workspace root, which must be the user's: ``mkdir`` never follows a
        link in the folder's place, the new folder is opened with O_NOFOLLOW and given to the user with
        fchown, so nothing a user swaps meanwhile sends root's writes or chown elsewhere.
        """
        if not self.locate(user, name).missing:
            return self.get(user, name)
        root = self.checked_root(user)
        self._make_root(user, root)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            root_fd = os.open(os.path.realpath(root), flags)
        except OSError as err:
            raise Forbidden(f"Cannot open the workspace root {root}: {err.strerror}.", hint=OWNERSHIP_HINT) from None
        try:
            self._owned(user, root, "The workspace root", os.fstat(root_fd))
            made = True
            try:
                os.mkdir(name, 0o755, dir_fd=root_fd)
            except FileExistsError:
                made = False  # made meanwhile: get() below says whether it is a usable folder of the user's
            if made and _acting_for_other(user):
                try:
                    fd = os.open(name, flags, dir_fd=root_fd)
                except OSError as err:
                    raise Forbidden(f"The project folder {root / name} changed while it was made ({err.strerror}).",
                                    hint=OWNERSHIP_HINT) from None
                try:
                    os.fchown(fd, user.uid, user.gid)
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
        return self.get(user, name)

    def list(self, user: User) -> list[Project]:
        """Projects are the valid-named real folders of the workspace root that belong to the user."""
        root = self.checked_root(user)
        if not root.is_dir():
            return []
        owners = self._owners(user)
        found = []
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as err:
            raise Forbidden(f"Cannot list the workspace root {root}: {err.strerror}.", hint=OWNERSHIP_HINT) from None
        for entry in entries:
            if _listed(entry, owners):
                found.append(Project(entry.name, Path(entry.path)))
        return found

    def listed(self, user: User, name: str) -> Project | None:
        """The project ``name`` as list() gives it, else None: one entry looked at, not the whole root."""
        root = self.checked_root(user)
        try:  # an entry's name is never empty and holds no "/": only a real entry's name matches
            with os.scandir(root) as entries:
                entry = next((e for e in entries if e.name == name), None)
        except OSError:
            return None
        return Project(entry.name, Path(entry.path)) if entry is not None and _listed(entry, self._owners(user)) \
            else None

    def _make_root(self, user: User, root: Path) -> None:
        """Create the missing folders of the workspace root; acting as root for a user, make them theirs."""
        missing = []
        probe = root
        while not probe.exists():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        home = user.home.resolve() if user.home.exists() else user.home
        for folder in reversed(missing):
            # Below her home, as her: by path through folders she may swap for links, root's mkdir (and the
            # chown after it) would go wherever she pointed. Above it (the admin's folders), as root, then hers.
            inside = home in folder.parents
            try:
                with acting_as(user if inside else None):
                    os.mkdir(folder, 0o755)
            except FileExistsError:
                continue
            except OSError as err:
                raise Forbidden(f"Cannot create the workspace root {root}: {err.strerror} at {folder}.",
                                hint=OWNERSHIP_HINT) from None
            if not inside and folder in (root, home) and os.geteuid() == 0 and user.uid != 0:
                _give(folder, user)

    def create(self, user: User, name: str) -> Project:
        """Create a new project with the recommended layout (AlreadyExists if the folder is there)."""
        return self.init(user, name, adopt=False).project

    def init(self, user: User, name: str, adopt: bool = True) -> InitResult:
        """Give a project the recommended layout: a new folder, or (``adopt``) one the user made with
        ``mkdir ~/workspace/<name>`` as the DS01 guide does. Only what is missing is added, nothing is
        overwritten; the result lists what was added and what git did.

        Everything is made relative to the project folder's descriptor, with the user's own file
        identity, so a folder swapped for a link meanwhile never sends a write elsewhere and what is
        made is theirs. Git runs as the user (see gitstate).
        """
        path = self._checked_path(user, name)
        root = self.root(user)
        self._make_root(user, root)
        created = False
        try:
            with acting_as(user):
                try:
                    path.mkdir()  # atomic: of two concurrent creates, one wins
                    created = True
                except FileExistsError:
                    if not adopt:
                        raise
                    self.get(user, name)  # the user's own real folder inside the workspace, or refused
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileExistsError:
            raise AlreadyExists(
                f"Project {name!r} already exists at {path}; nothing was changed.",
                hint=f"`ds01 project-init {name}` adds the missing parts of the layout to it.",
                project=name,
            ) from None
        except OSError as err:
            raise Forbidden(f"Cannot create project folder {path}: {err.strerror}.", hint=OWNERSHIP_HINT) from None
        added: list[str] = []
        try:
            with acting_as(user):
                for sub in LAYOUT_DIRS:
                    added += _makedirs_at(fd, sub)
                for relative, text in LAYOUT_FILES:
                    if _write_new_at(fd, relative, text.format(name=name)):
                        added.append(relative)
        except OSError as err:
            raise Forbidden(f"Cannot write the layout into {path}: {err.strerror}.",
                            hint=f"Make the folder yours: sudo chown -R $(whoami):$(whoami) {path}") from None
        finally:
            os.close(fd)
        files = [a for a in added if a in dict(LAYOUT_FILES)]
        from . import gitstate  # here: git (and its thread pool) only when a project is made (issue 19)

        git = gitstate.first_commit(user, str(path), files)
        return InitResult(Project(name, path), created, added, git)


@dataclass
class InitResult:
    """What ``project-init`` did: made the folder or adopted it, which parts it added, and git's answer."""

    project: Project
    created: bool
    added: list
    git: str

    def to_dict(self) -> dict:
        return {**self.project.to_dict(), "created": self.created, "added": self.added, "git": self.git}


def _acting_for_other(user: User) -> bool:
    return os.geteuid() == 0 and user.uid != 0


def _makedirs_at(dir_fd: int, relative: str) -> list[str]:
    """Make the missing folders of ``relative``; the ones made, as relative paths."""
    made, done = [], []
    fd = os.dup(dir_fd)
    try:
        for part in relative.split("/"):
            done.append(part)
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                made.append("/".join(done) + "/")
            except FileExistsError:
                pass
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    return made


def _write_new_at(dir_fd: int, relative: str, text: str) -> bool:
    """Write a new file; False (and nothing written) when something of that name is already there."""
    folder, _, name = relative.rpartition("/")
    parent = (
        os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        if folder
        else dir_fd
    )
    try:
        try:
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=parent
            )
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return True
    finally:
        if folder:
            os.close(parent)


def _listed(entry: os.DirEntry, owners) -> bool:
    """Whether list() lists this entry of the workspace root: a valid-named real folder of the user's."""
    if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
        return False
    try:
        check_project_name(entry.name)
        return entry.stat(follow_symlinks=False).st_uid in owners  # else someone else's (e.g. root's) folder
    except (InvalidName, OSError):  # a folder we could not manage; not a project
        return False


def _give(folder: Path, user: User) -> None:
    """Give a folder root made this instant to the user: opened without following a link, as a folder, and
    changed only while still root's. By path, the user (owning the parent) could swap in a hard link to a file
    of root's between the mkdir and a chown."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_uid == 0:
            os.fchown(fd, user.uid, user.gid)
    finally:
        os.close(fd)
