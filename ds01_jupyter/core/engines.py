"""Which container engine the core talks to, chosen by the ``engine`` setting.

The registry names each engine by its import path, so choosing one imports
only that engine's module (docker-py is not loaded for a CLI that never
touches an engine). A deployment may also hand in its own
:class:`~.engine.ContainerEngine` subclass (the front ends' ``engine_class``
option); :func:`engine_for` builds either from the same Settings.
"""

from __future__ import annotations

import importlib

from .errors import InvalidRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .engine import ContainerEngine
    from .settings import Settings

#: Engine name (the ``engine`` setting) -> "module:Class" of its ContainerEngine.
ENGINES: dict[str, str] = {
    "docker": "ds01_jupyter.core.docker_engine:DockerEngine",
    "swarm": "ds01_jupyter.core.swarm_engine:SwarmEngine",
}


def engine_class_for(name: str) -> type[ContainerEngine]:
    """The ContainerEngine class registered as ``name``; InvalidRequest naming the known ones otherwise."""
    path = ENGINES.get(name)
    if path is None:
        raise InvalidRequest(
            f"Unknown container engine {name!r}.",
            hint=f"Set engine (DS01_ENGINE) to one of: {', '.join(sorted(ENGINES))}.",
            setting="engine",
        )
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def engine_for(settings: Settings, engine_class: type[ContainerEngine] | None = None) -> ContainerEngine:
    """A new engine for ``settings``: ``engine_class`` when given, else the one its ``engine`` setting names."""
    cls = engine_class or engine_class_for(settings.engine)
    return cls.from_settings(settings)
