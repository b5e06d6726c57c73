"""Routes for keeping a workspace tidy: the guide's cleanup, images, and "where are my files?".

Thin over the core (``core/cleanup.py``, ``core/where.py``): a POST without
``"confirm": true`` is always a preview, as ``ds01 clean`` and ``ds01
image-prune`` are without ``--yes``.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .handlers import DS01Handler, _flag, retention_policy


class CleanHandler(DS01Handler):
    """POST: what the guide's cleanup would delete in a project (tmp/, *.tmp, __pycache__, .ipynb_checkpoints,
    and checkpoints when a retention policy is given), or delete it with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self, name):
        body = self.body()
        policy = retention_policy(self, body)
        policy.pop("mode", None)
        confirm = _flag(body.get("confirm"), "confirm")
        self.send(await self.call(self.core.cleanup.clean, self.user, name, confirm, **policy))


class ImagesHandler(DS01Handler):
    """GET: the user's images with their state (current, superseded, dangling) and the containers using them."""

    @web.authenticated
    @authorized
    async def get(self):
        self.send({"images": await self.call(self.core.cleanup.images, self.user)})


class ImagePruneHandler(DS01Handler):
    """POST: the superseded and dangling images no container uses; deleted with "confirm": true."""

    @web.authenticated
    @authorized
    async def post(self):
        confirm = _flag(self.body().get("confirm"), "confirm")
        self.send(await self.call(self.core.cleanup.prune_images, self.user, confirm))


class WhereHandler(DS01Handler):
    """GET ?pattern=: where a project's files matching a glob are, and how to get each back."""

    @web.authenticated
    @authorized
    async def get(self, name):
        pattern = self.text_field(self.get_argument("pattern", ""), "pattern") or ""
        self.send(await self.call(self.core.where, self.user, name, pattern))


def handlers(name: str) -> list[tuple]:
    return [
        (rf"/ds01/projects/{name}/clean", CleanHandler),
        (rf"/ds01/projects/{name}/where", WhereHandler),
        (r"/ds01/images", ImagesHandler),
        (r"/ds01/images/prune", ImagePruneHandler),
    ]
