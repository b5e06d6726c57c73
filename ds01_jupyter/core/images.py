"""Project images: built from ``~/dockerfiles/<project>.Dockerfile``, tagged per user."""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import labels as L
from .dockerfile import Unresolved, image_references, remote_sources
from .engine import ContainerEngine, ImageRecord, Progress
from .errors import BuildFailed, DS01Error, Forbidden, ImageNotFound, InvalidRequest, StateConflict
from .identity import acting_as
from .projects import Projects
from .settings import Settings
from .users import User

DEFAULT_DOCKERFILE = """\
# Image of project {project} (written by ds01-jupyter; edit freely).
# Rebuild after editing: `image-create {project}` or the sidebar's Build button.
ARG BASE_IMAGE={base_image}
FROM ${{BASE_IMAGE}}

# Notebook kernels run inside this image: keep ipykernel installed.
RUN python3 -c "import ipykernel" 2>/dev/null || pip install --no-cache-dir ipykernel

# The project's requirements.txt (copied from ~/workspace/{project}).
COPY requirements.txt /tmp/ds01-requirements.txt
RUN if grep -Eqv '^[[:space:]]*(#|$)' /tmp/ds01-requirements.txt; then \\
      pip install --no-cache-dir -r /tmp/ds01-requirements.txt; fi

# Your own account, so that files written to /workspace are yours on the host
# (named NAME-UID when the image already has a NAME with another uid).
ARG DS01_USER=user
ARG DS01_UID=1000
ARG DS01_GID=1000
RUN if [ "$DS01_UID" != 0 ] && command -v useradd >/dev/null; then \\
      name="$DS01_USER"; getent passwd "$name" >/dev/null && name="$DS01_USER-$DS01_UID"; \\
      (getent group "$DS01_GID" >/dev/null || groupadd -g "$DS01_GID" "$name") && \\
      (getent passwd "$DS01_UID" >/dev/null || useradd -m -u "$DS01_UID" -g "$DS01_GID" -s /bin/bash "$name"); \\
    fi
WORKDIR /workspace
"""

#: What an image reference may look like (name[:tag][@digest], or an id or its prefix).
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}")
#: Bytes of a build context (files, headers) held in memory at most: what a project's image needs is small.
MAX_CONTEXT = 512 * 2**20
#: Folders of a project left out of the build context: large, and never needed to build.
CONTEXT_EXCLUDES = {"data", "models", "results", ".rescued", ".git", ".ipynb_checkpoints", "__pycache__", ".venv"}
BASE_PACKAGES = "python3,python3-ipykernel,python3-pip,python3-venv,passwd,procps,ca-certificates"


@dataclass(frozen=True)
class ImageInfo:
    project: str
    tag: str
    id: str
    size: int
    created: str | None

    def to_dict(self) -> dict:
        return self.__dict__.copy()


class Images:
    def __init__(self, settings: Settings, engine: ContainerEngine, projects: Projects):
        self.settings = settings
        self.engine = engine
        self.projects = projects

    def tag(self, user: User, project: str) -> str:
        return self.settings.image_template.format(user=user.name, project=project)

    def dockerfile(self, user: User, project: str, create: bool = True) -> Path:
        """The project's Dockerfile; a default one is written when there is none."""
        self.projects.get(user, project)
        root = self.settings.expand(self.settings.dockerfiles_root, user)
        path = root / f"{project}.Dockerfile"
        if path.is_symlink() and root.resolve() not in path.resolve().parents:
            raise Forbidden(f"{path} links outside {root}; refusing to read it.")
        if create and not path.exists():
            # In the user's home, as the user: a planted link leads only where they may write, and the
            # folder and file are theirs without a chown (root's chown would follow their links).
            try:
                with acting_as(user):
                    root.mkdir(parents=True, exist_ok=True)
                    template = self.settings.default_dockerfile or DEFAULT_DOCKERFILE
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                    with os.fdopen(fd, "w") as out:
                        out.write(template.format(project=project, base_image=self.settings.base_image))
            except OSError as err:
                raise Forbidden(
                    f"Cannot write the Dockerfile {path} ({err.strerror}).",
                    hint=f"{root} must be a folder of yours (not a link to one of someone else's).",
                ) from None
        return path

    @staticmethod
    def read_dockerfile(user: User, path: Path) -> bytes:
        """The Dockerfile's bytes, read as the user, only from a regular file, without blocking, bounded."""
        with acting_as(user):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError as err:
                raise InvalidRequest(f"Cannot read {path}: {err.strerror}.") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
                raise InvalidRequest(f"{path} is not a regular file of at most 1 MiB.",
                                     hint="Make it a plain text Dockerfile.")
            return fh.read(1 << 20)

    def current(self, user: User, project: str) -> ImageRecord | None:
        image = self.engine.get_image(self.tag(user, project))
        if image is None or not L.is_owned_by(image.labels, user):
            return None
        return image

    def build(self, user: User, project: str, progress: Progress = lambda line: None) -> ImageRecord:
        """Build the project's image, streaming the build log to ``progress``."""
        proj = self.projects.get(user, project)
        dockerfile = self.dockerfile(user, project)
        text = self.read_dockerfile(user, dockerfile)
        lines = volume_lines(text.decode("utf-8", "replace"))
        if lines:
            raise self._volumes_error(project, dockerfile, lines, [])
        buildargs = {"DS01_USER": user.name, "DS01_UID": str(user.uid), "DS01_GID": str(user.gid)}
        self.refuse_others_images(user, dockerfile, text.decode("utf-8", "replace"), buildargs)
        if self.settings.base_image.encode() in text:
            self.ensure_base_image(progress)
        with acting_as(user):  # the context holds only what the user may read themselves
            context = _build_context(proj.path, text)
        tag = self.tag(user, project)
        progress(f"Building {tag} from {dockerfile}")
        self.engine.build_image(
            context,
            tag,
            buildargs=buildargs,
            # Our own labels win over the Dockerfile's; decision labels are neutralised, so that a
            # LABEL ds01.protected=true (say) can never pass to the project's containers.
            labels={**L.owned_by(user), L.PROJECT: project, L.PROTECTED: "false", L.GPU_UUIDS: "", L.GPU_SLOTS: "0",
                    L.FALLBACK: ""},
            progress=progress,
            dockerfile=".ds01.Dockerfile",
            network=self.settings.build_network,
        )
        image = self.current(user, project)
        if image is None:
            raise BuildFailed(f"Building {tag} finished but the image is not there.")
        if image.volumes:  # declared by the image it is built FROM
            try:
                self.engine.remove_image(tag)
            except DS01Error:
                pass  # deploy refuses it all the same
            raise self._volumes_error(project, dockerfile, [], image.volumes)
        progress(f"Built {tag} ({image.id[7:19]})")
        return image

    def refuse_others_images(self, user: User, dockerfile: Path, text: str, buildargs: dict) -> None:
        """Refuse a Dockerfile that builds on or copies from an image of another user (the engine reads any image
        it holds, and ds01d builds for users who may not read each other's): FROM, --from, and the ONBUILD
        instructions of the images it builds on, which run in this build."""
        try:
            named = image_references(text, buildargs)
            remote = remote_sources(text)
            for ref in list(named):
                image = self._checked_ref(ref, dockerfile)
                for trigger in image.onbuild if image else ():
                    named += image_references(trigger, {})
                    remote += remote_sources(trigger)
            if remote:
                # The engine fetches an ADD URL itself, on the host's network, whatever the build's network: through
                # root's engine a user would reach what only the host may (services on localhost, a metadata address).
                raise InvalidRequest(
                    f"{dockerfile} fetches {remote[0][:200]!r} with ADD (or in an ONBUILD of the image it builds on): "
                    "the engine would download it from the host's own network, so ds01 builds no remote ADD sources "
                    "(URLs, git repositories, or a source written through a variable).",
                    hint="Download it in a RUN step (curl, wget, pip), which runs on the build's network, or put the "
                    "file in the project and COPY it.", source=remote[0][:200])
            for ref in named:
                image = self._checked_ref(ref, dockerfile)
                labels = image.labels if image else {}
                if (labels.get(L.USER) or labels.get(L.USER_ID)) and not (
                        labels.get(L.USER) == user.name and labels.get(L.USER_ID) == str(user.uid)):
                    raise Forbidden(f"{dockerfile} uses {ref}, an image of {labels.get(L.USER) or 'another user'}: "
                                    "a build may read only your own images and the host's shared ones.",
                                    hint="Build FROM the base image or a framework image the admin offers.", image=ref)
        except Unresolved as err:
            raise InvalidRequest(f"{dockerfile} names an image through {err}, whose value ds01 cannot know before "
                                 "building, so it cannot tell whose image that is.",
                                 hint="Write the image's name in FROM (or as a global ARG's default) and COPY --from.",
                                 ) from None

    def _checked_ref(self, ref: str, dockerfile: Path) -> ImageRecord | None:
        if ".." in ref or not _REFERENCE.fullmatch(ref):
            raise InvalidRequest(f"{dockerfile} names the image {ref[:200]!r}, which is not an image name.")
        return self.engine.get_image(ref)

    def refuse_volumes(self, user: User, project: str, image: ImageRecord) -> None:
        """Refuse an image that declares volumes, before any container is made of it."""
        if image.volumes:
            dockerfile = self.dockerfile(user, project, create=False)
            try:
                text = self.read_dockerfile(user, dockerfile).decode("utf-8", "replace")
            except InvalidRequest:
                text = ""
            raise self._volumes_error(project, dockerfile, volume_lines(text), image.volumes)

    @staticmethod
    def _volumes_error(project: str, dockerfile: Path, lines: list[tuple[int, str]], paths) -> InvalidRequest:
        # A VOLUME becomes an anonymous volume beside the container: the guard cannot see its files,
        # and retiring deletes it with them.
        where = "; ".join(f"line {n}: {text}" for n, text in lines) or (
            f"{', '.join(paths)}, declared by the image it is built FROM"
        )
        return InvalidRequest(
            f"The image of {project} declares volumes ({where} in {dockerfile}). Files written there are not "
            "audited and are deleted when the container is retired, so ds01 does not run such images.",
            hint=f"Remove the VOLUME lines (or build FROM an image without them) and write to /workspace instead; "
            f"then `image-create {project}` again.",
            volumes=[text for _, text in lines] or list(paths),
        )

    def list(self, user: User, records: list | None = None) -> list[ImageInfo]:
        """The user's project images; ``records``: the engine's list of their images, when the caller has it."""
        out = []
        for image in self.engine.list_images(L.owned_by(user)) if records is None else records:
            if not L.is_owned_by(image.labels, user):
                continue
            project = image.labels.get(L.PROJECT, "")
            tag = self.tag(user, project)
            if tag not in image.tags:
                continue  # an older build, kept only while a container still uses it
            out.append(
                ImageInfo(project, tag, image.id, image.size, image.created.isoformat() if image.created else None)
            )
        return sorted(out, key=lambda i: i.project)

    def remove_superseded(self, user: User, image_id: str) -> bool:
        """Delete an older build of the user's once its last container is gone."""
        image = self.engine.get_image(image_id)
        if image is None or image.tags or not L.is_owned_by(image.labels, user):
            return False
        try:
            self.engine.remove_image(image.id)
        except DS01Error:
            return False  # still used by another container: it goes with that one
        return True

    def remove(self, user: User, project: str, containers_using: int = 0) -> None:
        image = self.current(user, project)
        if image is None:
            raise ImageNotFound(f"Project {project!r} has no image of yours to delete.", project=project)
        if containers_using:
            raise StateConflict(
                f"The image of {project!r} is used by its container.",
                hint=f"Retire the container first: `container-retire {project}`.",
            )
        self.engine.remove_image(image.id)

    # -- the base image ----------------------------------------------------------
    def ensure_base_image(self, progress: Progress = lambda line: None, rebuild: bool = False) -> ImageRecord:
        """Make sure the base image exists, building a local one when none can be had."""
        image = self.engine.get_image(self.settings.base_image)
        if image is not None and not rebuild:
            return image
        progress(f"Base image {self.settings.base_image} is missing; building it locally with mmdebstrap")
        return self.build_base_image(progress)

    def build_base_image(self, progress: Progress) -> ImageRecord:
        """Debian + python3 + ipykernel, made with mmdebstrap and imported: no registry needed."""
        exe = shutil.which("mmdebstrap")
        if exe is None:
            raise BuildFailed(
                f"The base image {self.settings.base_image} is missing and mmdebstrap is not installed to make it.",
                hint="Install it (`sudo apt-get install mmdebstrap`) or set base_image to an image you can pull.",
            )
        suite = _debian_suite()
        with tempfile.TemporaryDirectory(prefix="ds01-base-") as tmp:
            tarball = os.path.join(tmp, "base.tar")
            argv = [exe, "--variant=apt", f"--include={BASE_PACKAGES}", suite, tarball]
            if os.geteuid() != 0:
                argv.insert(1, "--mode=unshare")
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            tail: list[str] = []
            for line in proc.stdout or ():  # a pipe: never None
                tail = (tail + [line.rstrip()])[-20:]
                progress(line.rstrip())
            if proc.wait() != 0:
                raise BuildFailed("mmdebstrap could not make the base image.", log="\n".join(tail))
            progress(f"Importing {self.settings.base_image}")
            self.engine.import_image(
                tarball,
                self.settings.base_image,
                changes=[
                    "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
                    "ENV LANG=C.UTF-8",
                    'CMD ["/bin/bash"]',
                ],
            )
        image = self.engine.get_image(self.settings.base_image)
        if image is None:
            raise BuildFailed(f"Imported {self.settings.base_image} but cannot find it.")
        return image


def volume_lines(dockerfile: str) -> list[tuple[int, str]]:
    """The Dockerfile's VOLUME instructions as (line number, text)."""
    return [
        (n, line.strip())
        for n, line in enumerate(dockerfile.splitlines(), 1)
        if re.match(r"\s*VOLUME(\s|$)", line, re.IGNORECASE)
    ]


def _debian_suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1].strip():
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "bookworm"


def _counted(total: int, size: int, limit: int, project_dir: Path, arcname: str) -> int:
    """``total`` with one more entry of ``size`` bytes (and its header and padding); InvalidRequest beyond ``limit``."""
    total += 1024 + size
    if total > limit:
        raise InvalidRequest(
            f"The build context of {project_dir.name} (its files outside data/, models/ and results/) is over "
            f"{limit // 2**20} MiB, reached at {arcname} ({size} bytes).",
            hint="Keep large files in data/ or models/ (left out of the build), or fetch them in the Dockerfile.")
    return total


def _build_context(project_dir: Path, dockerfile: bytes, limit: int = MAX_CONTEXT) -> bytes:
    """A tar of the project (without data, models, results) plus our Dockerfile.

    Links are stored as links, never followed, so nothing outside the project
    enters the context. It is held in memory (by ds01d, root's, for every user):
    a project whose files come to more than ``limit`` bytes (a sparse file of a
    terabyte, a million small ones) is refused before any is read.
    """
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        has_requirements = False
        for dirpath, dirnames, filenames in os.walk(project_dir, followlinks=False):
            rel_dir = os.path.relpath(dirpath, project_dir)
            dirnames[:] = [
                d
                for d in dirnames
                if not (rel_dir == "." and d in CONTEXT_EXCLUDES) and d not in ("__pycache__", ".git")
            ]
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = os.path.join(dirpath, name)
                arcname = os.path.normpath(os.path.join(rel_dir, name))
                if arcname == "requirements.txt":
                    has_requirements = True
                try:
                    if not stat.S_ISREG(os.lstat(full).st_mode):
                        total = _counted(total, 0, limit, project_dir, arcname)
                        tar.add(full, arcname=arcname, recursive=False)  # a folder, link or special file: no data
                        continue
                    # Sized and read through one descriptor: a file that grows meanwhile adds no more than counted.
                    with os.fdopen(
                        os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC), "rb"
                    ) as fh:
                        info = tar.gettarinfo(arcname=arcname, fileobj=fh)
                        total = _counted(total, info.size if info.isreg() else 0, limit, project_dir, arcname)
                        tar.addfile(info, fh if info.isreg() else None)
                except OSError:
                    continue  # unreadable or vanished: not needed to build
        for name, data in ((".ds01.Dockerfile", dockerfile), ("requirements.txt", b"")):
            if name == "requirements.txt" and has_requirements:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
