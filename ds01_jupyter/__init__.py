"""ds01-jupyter: safe, one-click use of a shared DS01 GPU server from Jupyter."""

__version__ = "0.1.0"
