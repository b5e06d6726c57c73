"""Names of projects, containers and images, checked before anything is touched."""

from __future__ import annotations

import re

from .errors import InvalidName

# Lowercase because image repositories must be; no dots, so a name can never be
# "..", hide a file, or collide with the "._." separator of container names.
_PROJECT = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_USER = re.compile(r"[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*")
MAX_PROJECT_LEN = 63
PROJECT_RULE = (
    "Project names may use lowercase letters a-z, digits 0-9, and single '-' or '_' "
    f"between them, at most {MAX_PROJECT_LEN} characters (e.g. 'my-project')."
)
CONTAINER_SEPARATOR = "._."


def check_project_name(name) -> str:
    """Return ``name`` if it is a valid project name, else raise InvalidName."""
    if not isinstance(name, str) or not name:
        raise InvalidName("A project name is required.", hint=PROJECT_RULE)
    if len(name) > MAX_PROJECT_LEN or not _PROJECT.fullmatch(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise InvalidName(f"Invalid project name {shown!r}.", hint=PROJECT_RULE, name=shown)
    return name


def check_user_name(name) -> str:
    """Return ``name`` if it can name a user's containers and images."""
    if not isinstance(name, str) or not name or len(name) > 32 or not _USER.fullmatch(name):
        raise InvalidName(
            f"User name {name!r} cannot be used in container and image names.",
            hint="User names must be lowercase letters, digits, '_', '.' or '-' (at most 32).",
        )
    return name


def container_name(project: str, user: str) -> str:
    """DS01's container name: ``<project>._.<user>``."""
    return f"{project}{CONTAINER_SEPARATOR}{user}"
