"""Command line of ds01-jupyter."""

from .main import main

__all__ = ["main"]
