"""Framework images: what a project runs on when its own image is missing or does not build.

The DS01 guide's answer to a deleted image is ``container-deploy NAME
--framework pytorch``. The admin configures the frameworks (``framework_images``;
``base`` is always the base image). A container never runs a framework image
as is: a thin image ``FROM`` it is built, untagged, with ds01's labels for the
user and project, so it passes the same trust checks as the project's own
builds (core/trust.py) and every tool of every user sees the container alike.
Which framework it runs is the container's ``ds01.fallback`` label, set by the
core and trusted only on containers ds01 made (a DECISION label).
"""

from __future__ import annotations

import io
import tarfile

from . import labels as L
from .engine import ContainerEngine, ImageRecord, Progress
from .errors import BuildFailed, DS01Error, ImageNotFound, InvalidRequest
from .settings import Settings
from .users import User

#: Label on a thin fallback image naming its framework (for listings; trust never reads it).
FRAMEWORK = "ds01.framework"


def image_ref(settings: Settings, name: str) -> str:
    """The image of framework ``name``; InvalidRequest listing the configured ones for any other name."""
    known = settings.frameworks()
    if not isinstance(name, str) or name not in known:
        names = ", ".join(sorted(known))
        raise InvalidRequest(
            f"Framework {str(name)[:64]!r} is not configured here; the configured frameworks are: {names}.",
            hint=f"Use one of them (`--framework {sorted(known)[0]}`), or ask the admin to add it to framework_images.",
            framework=str(name)[:64], frameworks=sorted(known),
        )
    return known[name]


def fallback_image(settings: Settings, engine: ContainerEngine, images, user: User, project: str, name: str,
                   progress: Progress) -> ImageRecord:
    """The thin image of framework ``name`` for the user's project (built now; the build cache makes it quick)."""
    ref = image_ref(settings, name)
    if name == "base":
        base = images.ensure_base_image(progress)
    else:
        base = engine.get_image(ref)
        if base is None:
            raise ImageNotFound(
                f"The {name} framework image {ref} is not on this host.",
                hint="Ask the admin to pull or build it, or use `--framework base`.", framework=name,
            )
    if base.volumes:
        raise InvalidRequest(f"The {name} framework image {ref} declares volumes ({', '.join(base.volumes)}); "
                             "files there would not be audited, so ds01 does not run it.",
                             hint="Ask the admin for an image without VOLUME.")
    progress(f"Preparing the {name} fallback image ({ref}) for {project}")
    image_id = engine.build_image(
        _context(base.id),
        None,
        buildargs={},
        # As for project builds: ownership labels, decision labels neutralised (see trust.DECISIONS).
        labels={**L.owned_by(user), L.PROJECT: project, L.PROTECTED: "false", L.GPU_UUIDS: "", L.GPU_SLOTS: "0",
                L.FALLBACK: "", FRAMEWORK: name},
        progress=lambda line: None,
        network="none",
    )
    image = engine.get_image(image_id)
    if image is None:
        raise BuildFailed(f"The {name} fallback image for {project} was built but is not there.")
    return image


def _context(base_id: str) -> bytes:
    """A build context of one Dockerfile: FROM the framework image, by id (what was checked is what runs)."""
    data = f"FROM {base_id}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def describe(name: str) -> str:
    return f"running on the {name} fallback image"





def choose_image(settings: Settings, engine: ContainerEngine, images, user: User, project: str,
                 framework: str | None, progress: Progress, notices: list[str]) -> tuple[ImageRecord, str]:
    """(the image to deploy, the framework it falls back to or ""): the project's own image, built when missing;
    a framework's when it is missing and ``framework`` was asked for, or ``base`` when it fails to build."""
    image = images.current(user, project)
    if image is not None:
        if framework:
            notices.append(f"The image of {project} exists, so it is used; --framework {framework} is only for "
                           "when it is missing.")
        return image, ""
    failure = None
    if framework is None:
        progress(f"The image of {project} is not built yet; building it")
        try:
            return images.build(user, project, progress), ""
        except BuildFailed as err:
            failure, framework = err, "base"
            progress(f"The image of {project} failed to build; falling back to the base image")
    try:
        image = fallback_image(settings, engine, images, user, project, framework, progress)
    except DS01Error:
        if failure is not None:
            raise failure from None  # the build's own error is the one to fix
        raise
    why = f"failed to build ({failure.message})" if failure else "is missing (never built, or deleted)"
    notices.append(f"The image of {project} {why}: {describe(framework)} ({settings.frameworks()[framework]}), "
                   f"without the project's own packages. Fix or build it (`image-create {project}`), then retire "
                   "and deploy again to use it.")
    return image, framework
