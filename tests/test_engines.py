"""The engine is chosen by configuration (the ``engine`` setting or a class), not hard-wired in the core."""

from __future__ import annotations

import pytest

from ds01_jupyter.core import DS01, Settings
from ds01_jupyter.core.docker_engine import DockerEngine
from ds01_jupyter.core.engine import ContainerEngine
from ds01_jupyter.core.engines import ENGINES, engine_for
from ds01_jupyter.core.errors import InvalidRequest


class RecordingEngine(DockerEngine):
    """A DockerEngine that remembers the settings it was built from (no engine call is made)."""

    @classmethod
    def from_settings(cls, settings):
        engine = super().from_settings(settings)
        engine.built_from = settings
        return engine


def test_the_default_engine_is_docker_configured_from_the_settings():
    settings = Settings(docker_url="unix:///nowhere.sock", gpu_request="env")
    engine = DS01(settings).engine
    assert type(engine) is DockerEngine
    assert (engine.base_url, engine.gpu_request) == ("unix:///nowhere.sock", "env")
    assert Settings().engine == "docker" and "docker" in ENGINES


def test_an_engine_class_overrides_the_setting():
    settings = Settings(engine="docker", docker_url="unix:///x.sock")
    engine = engine_for(settings, RecordingEngine)
    assert isinstance(engine, RecordingEngine) and engine.built_from is settings


def test_an_unknown_engine_name_is_refused_with_the_known_ones(monkeypatch):
    monkeypatch.setitem(ENGINES, "recording", f"{__name__}:RecordingEngine")
    assert isinstance(engine_for(Settings(engine="recording")), RecordingEngine)
    with pytest.raises(InvalidRequest) as err:
        DS01(Settings(engine="kubernetes"))
    assert "kubernetes" in err.value.message and "docker" in err.value.hint and "recording" in err.value.hint


def test_the_engine_comes_from_DS01_ENGINE():
    assert Settings.from_env({"DS01_ENGINE": "swarm"}).engine == "swarm"
    assert ContainerEngine.from_settings.__doc__
