"""What a front end may ask of the core, each field checked in one place.

The command line, the REST API (server handlers), ds01d and the hub spawner
read what they were given into one of these small dataclasses, and the core
builds them again from its arguments, so the same mistake gets the same
:class:`~.errors.InvalidRequest` everywhere: a bool where a number belongs
(``True`` is an int to Python), a negative or absurd number, a wrong type, a
field nobody knows. A request is checked when it is made; ``from_dict`` takes
the JSON-like form (a REST body, a spawner's ``user_options``) and refuses
unknown fields.
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar

from .errors import InvalidRequest
from .names import check_project_name

#: More GPUs than any one host has: a larger request is a mistake, not a limit to look up.
MAX_GPUS = 1024
#: Bounds of a retention policy: beyond them a number is a mistake (and 10**400 days is not a date).
MAX_KEEP = 1_000_000
MAX_DAYS = 100_000
#: Most bytes a "larger than" may name (an exabyte: beyond, a mistake).
MAX_SIZE = 2**60
#: Most log lines asked for at once.
MAX_TAIL = 100_000
#: The longest short string field (a metric, a framework's name, a glob).
MAX_FIELD_CHARS = 256
#: The retire modes: rescue the work files at risk first, or discard them knowingly.
RETIRE_MODES = ("rescue", "discard")
#: How a metric ranks checkpoints.
METRIC_MODES = ("min", "max")


# -- one field ------------------------------------------------------------------------------
def whole_number(value, key: str, most: int, least: int = 0) -> int | None:
    """An optional whole number from ``least`` to ``most``; a bool is not one (``True`` is 1 to Python)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise InvalidRequest(f"'{key}' must be a whole number from {least} to {most}, not {_shown(value)}.")
    return value


def whole_number_text(text, key: str, most: int) -> int | None:
    """A whole number written as text (a form field, a query, a command-line word); empty or None: None."""
    if text is None or text == "":
        return None
    stripped = text.strip() if isinstance(text, str) else ""
    digits = stripped.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise InvalidRequest(f"'{key}' must be a whole number from 0 to {most}, not {_shown(text)}.")
    return whole_number(int(stripped), key, most)


def number(value, key: str, most: float, least: float = 0) -> float | None:
    """An optional finite number (whole or not) from ``least`` to ``most``; not a bool."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not least <= value <= most):
        raise InvalidRequest(f"'{key}' must be a number from {_plain(least)} to {_plain(most)}, not {_shown(value)}.")
    return float(value)


def byte_count(value, key: str, most: int = MAX_SIZE) -> int | None:
    """An optional number of bytes (ds01d's wire carries large ones as floats: a whole float is taken)."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or not 0 <= value <= most):
        raise InvalidRequest(f"'{key}' must be a number of bytes from 0 to {most}, not {_shown(value)}.")
    return int(value)


def flag(value, key: str) -> bool:
    """An optional boolean (absent: false); "false" or 0 would be read as true by bool(), so they are refused."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{key}' must be true or false, not {_shown(value)}.")
    return value


def text(value, key: str, choices: tuple[str, ...] | None = None, most: int = MAX_FIELD_CHARS) -> str | None:
    """An optional short string (no NUL), one of ``choices`` when given."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > most or "\x00" in value:
        raise InvalidRequest(f"'{key}' must be a string of at most {most} characters.")
    if choices is not None and value not in choices:
        raise InvalidRequest(f"'{key}' must be one of {', '.join(choices)}, not {_shown(value)}.")
    return value


def _plain(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _shown(value) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


# -- requests --------------------------------------------------------------------------------
def _checked(check, **more):
    """A dataclass field whose value ``check(value, name)`` checks (and may normalise) when the request is made."""
    return field(metadata={"check": check}, **more)


@dataclass(frozen=True)
class Request:
    """Base of the request dataclasses: fields checked on creation, ``from_dict`` for the JSON-like forms."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # each subclass is a dataclass (what fields() reads)

    def __post_init__(self):
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(getattr(self, f.name), f.name))

    @classmethod
    def known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data, also: tuple[str, ...] = (), **given):
        """The request of a JSON object's fields; null means "not given"; a field neither of the request nor in
        ``also`` (read by the caller) is refused, naming those known. ``given`` are fields from elsewhere (the
        project in a URL)."""
        data = check_fields(data, cls.known() + tuple(also), exclude=tuple(given))
        return cls(**{k: v for k, v in data.items() if v is not None and k not in also}, **given)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_fields(data, known: tuple[str, ...], exclude: tuple[str, ...] = ()) -> dict:
    """``data`` if it is an object whose fields are all ``known`` (and none of ``exclude``); else InvalidRequest."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequest("The request must be a JSON object.")
    allowed = [k for k in known if k not in exclude]
    unknown = sorted(str(k)[:40] for k in data if k not in allowed)
    if unknown:
        listed = ", ".join(allowed) if allowed else "none"
        raise InvalidRequest(f"Unknown field(s): {', '.join(unknown)}; known: {listed}.")
    return data


def _project(value, key):
    return check_project_name(value)


def _gpus(value, key):
    return whole_number(value, key, MAX_GPUS)


def _flag(value, key):
    return flag(value, key)


def _text(value, key):
    return text(value, key)


def _metric_mode(value, key):
    return text(value, key, METRIC_MODES)


def _keep(value, key):
    return whole_number(value, key, MAX_KEEP)


@dataclass(frozen=True)
class DeployRequest(Request):
    """A project's container to deploy: ``gpus`` None means one where the host has any, else CPU-only."""

    project: str = _checked(_project)
    gpus: int | None = _checked(_gpus, default=None)
    protected: bool = _checked(_flag, default=False)
    framework: str | None = _checked(_text, default=None)
    #: In a cluster (engine "swarm"): the node a new container goes to (docs/cluster.md).
    node: str | None = _checked(_text, default=None)

    def check_framework(self, settings) -> None:
        """A framework not configured here: refused now (listing those that are), not halfway through a deploy."""
        if self.framework is not None:
            from .frameworks import image_ref

            image_ref(settings, self.framework)


@dataclass(frozen=True)
class ServerOptions(Request):
    """A hub server's options (the spawner's ``user_options``, from its form or the hub's REST API)."""

    project: str | None = _checked(lambda v, k: None if v is None else check_project_name(v), default=None)
    gpus: int | None = _checked(_gpus, default=None)
    create: bool = _checked(_flag, default=False)
    framework: str | None = _checked(_text, default=None)


@dataclass(frozen=True)
class StopRequest(Request):
    """Stop a container: running processes refuse it unless ``stop_processes``."""

    stop_processes: bool = _checked(_flag, default=False)


@dataclass(frozen=True)
class RetireRequest(Request):
    """Retire a container through the guard: ``mode`` rescue or discard (None: refused while work is at risk)."""

    mode: str | None = _checked(lambda v, k: text(v, k, RETIRE_MODES), default=None)
    include_caches: bool = _checked(_flag, default=False)
    stop_processes: bool = _checked(_flag, default=False)

    def __post_init__(self):
        super().__post_init__()
        if self.include_caches and self.mode == "discard":
            raise InvalidRequest("include_caches keeps the caches and discard drops everything: choose one.")


@dataclass(frozen=True)
class RescueRequest(Request):
    include_caches: bool = _checked(_flag, default=False)


@dataclass(frozen=True)
class Confirm(Request):
    """A preview unless ``confirm`` (image prune)."""

    confirm: bool = _checked(_flag, default=False)


@dataclass(frozen=True)
class CheckpointQuery(Request):
    """Which metric ranks checkpoints, and which way (None: the listing's own defaults)."""

    metric: str | None = _checked(_text, default=None)
    mode: str | None = _checked(_metric_mode, default=None)


@dataclass(frozen=True)
class PrunePolicy(Request):
    """What a checkpoint prune keeps: the newest ``keep_last`` and best ``keep_best`` (by ``metric``, ``mode``) of
    each run, and anything newer than ``older_than`` seconds."""

    keep_last: int | None = _checked(_keep, default=None)
    keep_best: int | None = _checked(_keep, default=None)
    metric: str | None = _checked(_text, default=None)
    mode: str | None = _checked(_metric_mode, default=None)
    older_than: float | None = _checked(lambda v, k: number(v, k, MAX_DAYS * 86400), default=None)

    @classmethod
    def from_request(cls, data, also: tuple[str, ...] = (), modes: bool = True) -> PrunePolicy:
        """The policy as people give it (a REST body, command-line options): the age in ``older_than_days``;
        with ``modes`` False, no ``mode`` field."""
        known = ("keep_last", "keep_best", "metric", *(("mode",) if modes else ()), "older_than_days")
        data = dict(check_fields(data, known + tuple(also)))
        days = number(data.pop("older_than_days", None), "older_than_days", MAX_DAYS)
        for key in also:
            data.pop(key, None)
        return cls(**{k: v for k, v in data.items() if v is not None},
                   older_than=None if days is None else days * 86400)

    @property
    def has_rule(self) -> bool:
        """Whether it says what to keep (without one nothing is pruned)."""
        return self.keep_last is not None or self.keep_best is not None or self.older_than is not None

    def rules(self) -> dict:
        """The fields given, as the checkpoints package's prune takes them."""
        return {k: v for k, v in self.to_dict().items() if v is not None}


@dataclass(frozen=True)
class LogsQuery(Request):
    """How many lines from the end of a container's output (None: all of them, where a front end allows it)."""

    tail: int | None = _checked(lambda v, k: whole_number(v, k, MAX_TAIL), default=200)


@dataclass(frozen=True)
class StorageQuery(Request):
    """The storage report's option: list the files of at least ``larger_than`` bytes."""

    larger_than: int | None = _checked(byte_count, default=None)


@dataclass(frozen=True)
class WhereQuery(Request):
    """A name or glob to look for in a project's places."""

    pattern: str = _checked(lambda v, k: text(v, k) or "", default="")
