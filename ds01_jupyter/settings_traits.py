"""The core's Settings as traitlets options, declared once for every Jupyter front end.

The server extension (``DS01App``) and the hub spawner (``DS01Spawner``) both
mix in :class:`SettingsOptions`, whose traits are generated from the fields of
:class:`~ds01_jupyter.core.settings.Settings` with the help text declared there:
one name, one default and one meaning for ``c.DS01App.workspace_root``,
``c.DS01Spawner.workspace_root`` and ``DS01_WORKSPACE_ROOT``. The pluggable
backends (the engine and the GPU inventory) are ``Type`` options here too.
"""

from __future__ import annotations

from dataclasses import fields

from traitlets import Bool, Dict, Float, HasTraits, Int, Type, Unicode

from .core.engine import ContainerEngine
from .core.gpus import GpuInventory
from .core.settings import Settings

#: Settings that are no option: each front end sets them itself (Settings.from_config's overrides).
NOT_OPTIONS = frozenset({"interface"})

ENGINE_CLASS_HELP = (
    "A ContainerEngine subclass (or its import path) that ds01 drives instead of the one the engine option names; "
    "built with its from_settings(settings). None: the engine option decides."
)
GPU_INVENTORY_CLASS_HELP = "A GpuInventory subclass to list GPUs (overrides gpu_inventory)."


def _trait(setting):
    """The traitlets option of one Settings field; None defaults become "" (Settings.from_config maps them back)."""
    kind, default, help_text = setting.type, setting.default, setting.metadata["help"]
    if kind == "bool":
        return Bool(default, config=True, help=help_text)
    if kind == "float":
        return Float(default, config=True, help=help_text)
    if kind == "int":
        return Int(default, config=True, help=help_text)
    if kind in ("str", "str | None"):
        return Unicode(default or "", config=True, help=help_text)
    if setting.name == "framework_images":  # name -> image; Settings keeps them as sorted pairs
        return Dict(value_trait=Unicode(), default_value=dict(default), config=True, help=help_text)
    raise TypeError(f"Settings.{setting.name} ({kind}) has no traitlets type: add one in settings_traits.py")


def settings_traits() -> dict:
    """One option per Settings field (but NOT_OPTIONS), named as the field."""
    return {f.name: _trait(f) for f in fields(Settings) if f.name not in NOT_OPTIONS}


class _Backends(HasTraits):
    engine_class = Type(None, klass=ContainerEngine, allow_none=True, config=True, help=ENGINE_CLASS_HELP)
    gpu_inventory_class = Type(None, klass=GpuInventory, allow_none=True, config=True, help=GPU_INVENTORY_CLASS_HELP)

    def core_parts(self, settings: Settings) -> dict:
        """The engine and inventory the configured classes make (DS01's defaults where none is set)."""
        from .core.engines import engine_for

        parts = {}
        if self.engine_class is not None:
            parts["engine"] = engine_for(settings, self.engine_class)
        if self.gpu_inventory_class is not None:
            parts["inventory"] = self.gpu_inventory_class()
        return parts

    def backends_key(self) -> tuple:
        """What, beside the Settings, decides which core a configuration gets (for caches of cores)."""
        return (self.engine_class, self.gpu_inventory_class)


#: The mixin of every Jupyter front end: the Settings options and the backend classes. A HasTraits mixin (not a
#: Configurable) so that its options are set under the front end's own section (c.DS01App, c.DS01Spawner) only.
SettingsOptions = type(
    "SettingsOptions",
    (_Backends,),
    {"__doc__": "The core's settings as options (see the module), mixed into DS01App and DS01Spawner.",
     "__module__": __name__, **settings_traits()},
)
