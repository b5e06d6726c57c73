"""The Jupyter server extension: a REST API and live events over the core."""


def _jupyter_server_extension_points():
    from .app import DS01App

    return [{"module": "ds01_jupyter.server", "app": DS01App}]
