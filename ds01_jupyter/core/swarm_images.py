"""How a project's image reaches the node that runs it.

Images are built once, on the home engine (docker_url: where ds01 runs), and keep their ID everywhere: an image's
ID is the digest of its configuration, which both ways below carry unchanged, so the core's checks of a
container's image (trust.py) hold on every node.

- Through a registry (``swarm_registry``, e.g. Debian's docker-registry on the cluster's network): the home engine
  pushes the image under a tag named for its ID, the node pulls it; each moves only the layers the other side
  lacks, so after the base image's first trip a project image costs its own few layers. The way for a cluster.
- Without one, ``docker save`` on the home engine streamed into ``docker load`` on the node: no service to run,
  but the whole image (the base image's hundreds of MB) travels every time.
"""

from __future__ import annotations

import threading

from .errors import EngineError

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock(node: str, image_id: str) -> threading.Lock:
    with _locks_lock:
        return _locks.setdefault((node, image_id), threading.Lock())


def ensure_image(home, target, node_name: str, image_id: str, registry: str = "") -> None:
    """Make ``image_id`` (on the home engine) present on ``target`` (a node's DockerEngine)."""
    if target.get_image(image_id) is not None:
        return
    with _lock(node_name, image_id):  # one transfer per node and image in this process
        if target.get_image(image_id) is not None:
            return
        if registry:
            _through_registry(home, target, image_id, registry)
        else:
            _save_load(home, target, image_id)
        if target.get_image(image_id) is None:
            raise EngineError(f"The image {image_id[:19]} did not arrive on node {node_name}.",
                              hint="Check that the node can pull from the registry (swarm_registry).")


def _through_registry(home, target, image_id: str, registry: str) -> None:
    repository, tag = f"{registry}/ds01-images", image_id.split(":")[-1][:32]
    with home._errors("tag image", image_id):
        home.api.tag(image_id, repository, tag)
    with home._errors("push image", image_id):
        for line in home.api.push(repository, tag=tag, stream=True, decode=True):
            if line.get("error"):
                raise EngineError(f"Pushing {image_id[:19]} to {registry} failed: {line['error']}",
                                  hint="Check that the registry (swarm_registry) runs and the engine may push to it.")
    # The tag is only a handle for the push: dropped again where the image keeps another name (removing an
    # image's last tag would remove the image).
    image = home.get_image(image_id)
    if image is not None and len([t for t in image.tags if not t.startswith(repository)]) >= 1:
        try:
            with home._errors("untag image", image_id):
                home.api.remove_image(f"{repository}:{tag}", noprune=True)
        except EngineError:
            pass
    with target._errors("pull image", image_id):
        for line in target.api.pull(repository, tag=tag, stream=True, decode=True):
            if line.get("error"):
                raise EngineError(f"The node could not pull {image_id[:19]} from {registry}: {line['error']}")


def _save_load(home, target, image_id: str) -> None:
    with home._errors("save image", image_id):
        chunks = home.api.get_image(image_id, chunk_size=1 << 20)
        with target._errors("load image", image_id):
            for line in target.api.load_image(chunks, quiet=True) or ():
                if isinstance(line, dict) and line.get("error"):
                    raise EngineError(f"Loading {image_id[:19]} on the node failed: {line['error']}")
