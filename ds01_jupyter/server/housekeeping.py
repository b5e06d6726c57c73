"""Routes for keeping a workspace tidy: the guide's cleanup, images, and "where are my files?".

Thin over the backend (the host's calls ``core/cleanup.py``, ``core/where.py``): a POST without
``"confirm": true`` is always a preview, as ``ds01 clean`` and ``ds01
image-prune`` are without ``--yes``.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core import requests as R
from .handlers import DS01Handler


class CleanHandler(DS01Handler):
    """POST: what the guide's cleanup would delete in a project (tmp/, *.tmp, __pycache__, .ipynb_checkpoints,
    and checkpoints when a retention policy is given), or delete it with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body()
        # "mode" was always accepted here (and ignored: a cleanup keeps by age and count); it still is.
        policy = R.PrunePolicy.from_request(body, also=("confirm", "mode"), modes=False)
        confirm = R.flag(body.get("confirm"), "confirm")
        self.send(await self.backend.clean(self.user, name, policy, confirm))


class ImagesHandler(DS01Handler):
    """GET: the user's images with their state (current, superseded, dangling) and the containers using them."""

    @web.authenticated
    @authorized
    async def get(self):
        self.send(await self.backend.images(self.user))


class ImagePruneHandler(DS01Handler):
    """POST: the superseded and dangling images no container uses; deleted with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self):
        self.send(await self.backend.prune_images(self.user, R.Confirm.from_dict(self.body()).confirm))


class WhereHandler(DS01Handler):
    """GET ?pattern=: where a project's files matching a glob are, and how to get each back."""

    @web.authenticated
    @authorized
    async def get(self, name):
        query = R.WhereQuery.from_dict({"pattern": self.get_argument("pattern", "")})
        self.send(await self.backend.where(self.user, name, query.pattern))


def handlers(name: str) -> list[tuple]:
    return [
        (rf"/ds01/projects/{name}/clean", CleanHandler),
        (rf"/ds01/projects/{name}/where", WhereHandler),
        (r"/ds01/images", ImagesHandler),
        (r"/ds01/images/prune", ImagePruneHandler),
    ]
