"""ds01-jupyter: safe, one-click use of a shared DS01 GPU server from Jupyter.

Importing this package imports nothing of Jupyter, so its pure-Python parts
(e.g. ``ds01_jupyter.checkpoints``) work inside project containers.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .server.app import DS01App

    return [{"module": "ds01_jupyter.server", "app": DS01App}]


def _jupyter_labextension_paths():
    """Where the prebuilt sidebar lives (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "@ds01/jupyterlab-ds01"}]
