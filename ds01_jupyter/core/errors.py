"""Errors of the core.

Every failure a user can cause or meet is one of these, with a message that
says what happened and a hint that says what to do. Front ends map them in one
place: the CLI to exit code 1, the server extension to ``status``.
"""

from __future__ import annotations


class DS01Error(Exception):
    """Base class: a message for people and an HTTP-like status for front ends."""

    status = 500

    def __init__(self, message: str, *, hint: str | None = None, **details):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict:
        """Describe the error as JSON-friendly data."""
        data = {"error": type(self).__name__, "message": self.message}
        if self.hint:
            data["hint"] = self.hint
        data.update({k: v for k, v in self.details.items() if v is not None})
        return data


class InvalidName(DS01Error):
    """A project or user name that is not allowed."""

    status = 400


class InvalidRequest(DS01Error):
    """A request that makes no sense (e.g. a negative GPU count)."""

    status = 400


class Forbidden(DS01Error):
    """An attempt to reach what belongs to another user or lies outside the workspace."""

    status = 403


class WorkspaceNotWritable(Forbidden):
    """The user cannot write their project folder (or its models/, results/): work there would fail later."""


class NotFound(DS01Error):
    status = 404


class ProjectNotFound(NotFound):
    pass


class ContainerNotFound(NotFound):
    pass


class ImageNotFound(NotFound):
    pass


class AlreadyExists(DS01Error):
    status = 409


class StateConflict(DS01Error):
    """The operation does not fit the current state (e.g. start while its GPU is taken)."""

    status = 409


class LimitExceeded(DS01Error):
    """A per-user limit would be exceeded; ``limit`` names it."""

    status = 409


class GpuUnavailable(DS01Error):
    """GPUs were asked for but none can be given."""

    status = 409


class BuildFailed(DS01Error):
    """The project's Dockerfile did not build."""

    status = 422


class ConfigError(DS01Error):
    """The admin's configuration (limits file, GPU list) cannot be read."""

    status = 500


class EngineUnavailable(DS01Error):
    """The container engine cannot be reached."""

    status = 503


class EngineError(DS01Error):
    """The container engine refused an operation for a reason of its own."""

    status = 502


class UnsavedWork(StateConflict):
    """Retiring would lose work or environment changes; the user must choose rescue or discard."""


class QuotaExceeded(LimitExceeded):
    """Copying would exceed the user's workspace quota (storage_workspace)."""


class DiskFull(DS01Error):
    """The disk holding the workspace has not enough free space."""

    status = 507
