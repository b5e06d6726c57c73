"""The single-user image: the base image plus jupyterhub-singleuser, JupyterLab and ds01-jupyter.

Project images for the hub are built FROM it. It is made locally from the
wheels folder (``ds01-hub wheels``) with the build's network off, because no
registry can be assumed, from the Dockerfile shipped beside this module
(``singleuser.Dockerfile``, usable with ``docker build`` too). Its labels say
which versions are inside; when the hub runs other versions (an upgrade of
ds01-jupyter or JupyterHub), or the wheels changed, it is built again.

Labels decide only whether to rebuild: the single-user image's tag is the
admin's, and a user's project image inherits its labels from it (a user who
forges them in their own Dockerfile only skips a rebuild of their own image).
"""

from __future__ import annotations

import io
import tarfile
import threading
from importlib import resources
from pathlib import Path

from ..core.engine import ContainerEngine, ImageRecord, Progress
from ..core.errors import BuildFailed, ConfigError
from . import wheels as W
from .progress import build_quietly

#: Label carried by the single-user image and, through FROM, by every image built on it.
SINGLEUSER_LABEL = "ds01.singleuser"
#: Labels naming what is inside (set from the versions pip was told to install) and the wheels' fingerprint.
VERSION_LABELS = {"jupyterhub": "ds01.singleuser.jupyterhub", "ds01_jupyter": "ds01.singleuser.ds01-jupyter"}
DIGEST_LABEL = "ds01.singleuser.wheels"
NAMES = {"jupyterhub": "JupyterHub", "ds01_jupyter": "ds01-jupyter"}
#: One build of the single-user image at a time: concurrent first spawns wait for it instead of repeating it.
_building = threading.Lock()


def dockerfile() -> str:
    """The shipped Dockerfile of the single-user image."""
    return resources.files("ds01_jupyter.hub").joinpath("singleuser.Dockerfile").read_text()


def dockerfile_path() -> Path:
    return Path(str(resources.files("ds01_jupyter.hub").joinpath("singleuser.Dockerfile")))


def has_singleuser(image: ImageRecord | None) -> bool:
    return image is not None and image.labels.get(SINGLEUSER_LABEL) == "true"


def wanted(wheels: str, versions: dict[str, str] | None = None) -> dict[str, str]:
    """What the single-user image must carry for this hub: its versions, and the wheels' fingerprint."""
    versions = versions or W.host_versions()
    want = {label: versions[name] for name, label in VERSION_LABELS.items()}
    if wheels and Path(wheels).is_dir():
        want[DIGEST_LABEL] = W.digest(wheels)
    return want


def outdated(image: ImageRecord | None, want: dict[str, str]) -> str:
    """Why ``image`` must be (re)built for ``want``, for the spawn page; '' when it is current.

    An image built by hand without the wheels' fingerprint is judged by its versions alone.
    """
    if not has_singleuser(image):
        return "it is missing"
    labels = image.labels
    for name, label in VERSION_LABELS.items():
        have = labels.get(label, "")
        if have != want[label]:
            return f"{NAMES[name]} was upgraded ({have or 'unknown'} → {want[label]})"
    if labels.get(DIGEST_LABEL) and DIGEST_LABEL in want and labels[DIGEST_LABEL] != want[DIGEST_LABEL]:
        return "the wheels it is built from changed"
    return ""


def built_on(project_image: ImageRecord, singleuser: ImageRecord) -> bool:
    """Whether a project image was built FROM this single-user image (its inherited labels match)."""
    keys = [*VERSION_LABELS.values(), DIGEST_LABEL]
    return all(project_image.labels.get(k, "") == singleuser.labels.get(k, "") for k in keys)


def ensure_singleuser(engine: ContainerEngine, tag: str, base_image: str, wheels: str, say, log) -> ImageRecord:
    """The single-user image, (re)built first when missing or outdated, saying why on the spawn page;
    the whole build log goes to the hub's log (the admin's)."""
    want = wanted(wheels)
    image = engine.get_image(tag)
    if not outdated(image, want):
        return image
    with _building:
        image = engine.get_image(tag)
        why = outdated(image, want)
        if not why:
            return image  # built by a spawn that held the lock before us
        say(f"Building the single-user image {tag} for all users ({why}); this takes a few minutes, once", 10)

        def keep(text):
            log.info("Build of the single-user image %s:\n%s", tag, text)
            return "the hub's log"

        return build_quietly(lambda feed: build_singleuser_image(engine, tag, base_image, wheels, feed),
                             lambda message: say(message, 15), "Single-user image", keep)


def project_outdated(project_image: ImageRecord | None, singleuser: ImageRecord | None) -> bool:
    """Whether a project image was built on an older single-user image (an upgrade since): rebuild it.
    An image that never carried the single-user image's version labels (FROM something else) is left alone."""
    if project_image is None or singleuser is None:
        return False
    if not project_image.labels.get(VERSION_LABELS["jupyterhub"]):
        return False
    return not built_on(project_image, singleuser)


def build_singleuser_image(
    engine: ContainerEngine, tag: str, base_image: str, wheels: str, progress: Progress,
    versions: dict[str, str] | None = None,
) -> ImageRecord:
    """Build ``tag`` FROM ``base_image`` with the wheels in ``wheels``, network off."""
    versions = versions or W.host_versions()
    if not wheels:
        raise ConfigError(
            f"The single-user image {tag} must be built, and no wheels folder is configured to build it.",
            hint="Set c.DS01Spawner.singleuser_wheels to a folder filled by `ds01-hub wheels FOLDER`, or build "
            f"the image yourself (docker build -f {dockerfile_path()} ...).",
        )
    missing = W.problems(wheels, versions)
    if missing:
        raise missing[0]
    folder = Path(wheels)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for wheel in W.all_wheels(folder):
            tar.add(str(wheel), arcname=str(wheel.relative_to(folder)))
        data = dockerfile().encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    args = {"BASE_IMAGE": base_image, "JUPYTERHUB_VERSION": versions["jupyterhub"],
            "JUPYTERLAB_VERSION": _pick(folder, "jupyterlab", versions["jupyterlab"]),
            "DS01_JUPYTER_VERSION": versions["ds01_jupyter"], "WHEELS_DIGEST": W.digest(wheels)}
    progress(f"Building the single-user image {tag} from {folder}")
    engine.build_image(buffer.getvalue(), tag, buildargs=args, labels={}, progress=progress, network="none")
    image = engine.get_image(tag)
    if not has_singleuser(image):
        raise BuildFailed(f"Building {tag} finished but the image is not there.")
    return image


def _pick(folder: Path, dist: str, preferred: str) -> str:
    """The host's version of ``dist`` when the folder has it, else the newest the folder has."""
    have = sorted({W._wheel_version(w.name) for w in folder.glob("*.whl") if W._dist(w.name) == dist})
    return preferred if preferred in have or not have else have[-1]
