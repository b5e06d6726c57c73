"""The single-user image: the base image plus jupyterhub-singleuser and JupyterLab.

Project images for the hub are built FROM it. It is made locally from a folder
of wheels (``pip download jupyterhub jupyterlab -d WHEELS`` on the host), with
the build's network off, because no registry can be assumed.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from ..core.engine import ContainerEngine, ImageRecord, Progress
from ..core.errors import BuildFailed, ConfigError

#: Label carried by the single-user image and, through FROM, by every image built on it.
SINGLEUSER_LABEL = "ds01.singleuser"

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY wheels /tmp/ds01-wheels
# ds01-jupyter itself is optional: with it the sidebar works inside the server too.
RUN pip install --no-cache-dir --no-index --find-links /tmp/ds01-wheels jupyterhub jupyterlab \\
      $(ls /tmp/ds01-wheels/ds01_jupyter-*.whl 2>/dev/null) && rm -rf /tmp/ds01-wheels
ENV DS01_MODE=container
LABEL ds01.singleuser=true
CMD ["jupyterhub-singleuser"]
"""


def has_singleuser(image: ImageRecord | None) -> bool:
    return image is not None and image.labels.get(SINGLEUSER_LABEL) == "true"


def build_singleuser_image(
    engine: ContainerEngine, tag: str, base_image: str, wheels: str, progress: Progress
) -> ImageRecord:
    """Build ``tag`` FROM ``base_image`` with the wheels in ``wheels``, network off."""
    folder = Path(wheels) if wheels else None
    if folder is None or not any(folder.glob("jupyterhub-*.whl")):
        raise ConfigError(
            f"The single-user image {tag} is missing and no wheels are configured to build it.",
            hint="Set c.DS01Spawner.singleuser_wheels to a folder made with "
            "`pip download jupyterhub jupyterlab -d FOLDER`, or build the image yourself "
            f"(FROM {base_image}, with jupyterhub and jupyterlab, LABEL {SINGLEUSER_LABEL}=true).",
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for wheel in sorted(folder.glob("*.whl")):
            tar.add(str(wheel), arcname=f"wheels/{wheel.name}")
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    progress(f"Building the single-user image {tag} from {folder}")
    engine.build_image(
        buffer.getvalue(), tag, buildargs={"BASE_IMAGE": base_image}, labels={}, progress=progress, network="none"
    )
    image = engine.get_image(tag)
    if not has_singleuser(image):
        raise BuildFailed(f"Building {tag} finished but the image is not there.")
    return image
