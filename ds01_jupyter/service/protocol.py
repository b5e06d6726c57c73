"""The wire between ds01 clients and ds01d: one JSON object per line, both ways.

A request is ``{"op": NAME, "args": {...}}`` on one connection; ds01d answers
with any number of ``{"progress": LINE}`` and ``{"item": VALUE}`` lines, then
one ``{"result": VALUE}`` or ``{"error": {...}}``. An interactive command
(``session.attach``) instead gets ``{"attached": ...}`` with the Docker
connection's descriptor (SCM_RIGHTS), then takes ``{"resize": [rows, cols]}``
and ``{"wait": true}``, answered with its exit code.

Who asks is never part of a request: ds01d reads it from the kernel. What may
be asked is :data:`OPS`, each parameter typed and bounded; everything else is
refused with InvalidRequest before the core sees it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from datetime import datetime
from pathlib import Path

from ..core import errors as E

#: Bytes one line may have; a request is small (names, flags, one command line).
MAX_REQUEST = 64 * 1024
#: Bytes one answer line may have (a large audit); a client stops reading beyond it.
MAX_ANSWER = 64 * 1024 * 1024
#: Longest string argument, and most words in a command.
MAX_STRING = 4096
MAX_WORDS = 1024
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter: its name, its type ("str", "int", "float", "bool", "words", "ports"), whether None is
    allowed, whether the core takes it positionally after the user (the project name), and for a string the
    pattern it must match whole (ids, keys: no room for anything else)."""

    name: str
    kind: str
    default: object = None
    optional: bool = False
    positional: bool = False
    pattern: str | None = None
    #: Never written to the audit log (a kernel's key: whoever has it can run code in the kernel).
    secret: bool = False


def _name(param: str = "name") -> Param:
    return Param(param, "str", positional=True)


@dataclasses.dataclass(frozen=True)
class Op:
    """An operation a caller may ask for: where it lives on the core and how it is called."""

    params: tuple[Param, ...] = ()
    progress: bool = False  # the core method takes a progress callback: its lines go to the caller
    stream: bool = False  # the core method yields items (followed logs)
    for_user: bool = True  # the core method takes the user it acts for first
    #: Parameters a local caller passes that ds01d ignores (guard.add_requirements's audit: ds01d audits itself,
    #: a caller's audit is never trusted).
    dropped: tuple[str, ...] = ()


_BOOL = lambda name: Param(name, "bool", False)  # noqa: E731
_OPT_INT = lambda name, default=None: Param(name, "int", default, optional=True)  # noqa: E731
_OPT_STR = lambda name: Param(name, "str", None, optional=True)  # noqa: E731
#: A container the caller names by id (checked again by the core to be the project's, the caller's own).
_CONTAINER = Param("container", "str", positional=True, pattern=r"[0-9a-f]{12,64}")
#: A kernel's id as Jupyter makes them (a UUID): it names the kernel's files in the container.
_KERNEL_ID = Param("kernel_id", "str", pattern=r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")

OPS: dict[str, Op] = {
    "projects.create": Op((_name(),)),
    "projects.init": Op((_name(), Param("adopt", "bool", True))),
    "projects.list": Op(),
    "images.dockerfile": Op((_name(), Param("create", "bool", True))),
    "images.build": Op((_name(),), progress=True),
    "images.tag": Op((_name(),)),
    "images.list": Op(),
    "images.remove": Op((_name(), Param("containers_using", "int", 0))),
    "images.ensure_base_image": Op((_BOOL("rebuild"),), progress=True, for_user=False),
    "containers.deploy": Op((_name(), _OPT_INT("gpus"), _BOOL("protected"), _OPT_STR("framework"),
                             _OPT_STR("node")), progress=True),
    "containers.start": Op((_name(),)),
    "containers.stop_with_report": Op((_name(), _BOOL("stop_processes")), progress=True),
    "containers.list": Op(),
    "containers.status": Op((_name(),)),
    "containers.ensure_running": Op((_name(),), progress=True),
    "containers.exec": Op((_name(), Param("command", "words", positional=True))),
    "containers.logs": Op((_name(), _OPT_INT("tail", 200), _BOOL("follow")), stream=True),
    "containers.limits_and_use": Op(),
    "guard.audit": Op((_name(),)),
    "guard.add_requirements": Op((_name(),), dropped=("audit",)),
    "guard.rescue": Op((_name(), _BOOL("include_caches")), progress=True),
    "guard.retire": Op((_name(), _OPT_STR("mode"), _BOOL("include_caches"), _BOOL("stop_processes")), progress=True),
    "checkpoints": Op((_name(), _OPT_STR("metric"), _OPT_STR("mode"))),
    "prune_checkpoints": Op((_name(), _BOOL("confirm"), _OPT_INT("keep_last"), _OPT_INT("keep_best"),
                             _OPT_STR("metric"), _OPT_STR("mode"), Param("older_than", "float", None, True))),
    "storage_use": Op((Param("larger_than", "float", None, True),)),
    "cleanup.clean": Op((_name(), _BOOL("confirm"), _OPT_INT("keep_last"), _OPT_INT("keep_best"), _OPT_STR("metric"),
                         Param("older_than", "float", None, True))),
    "cleanup.images": Op(),
    "where": Op((_name(), Param("pattern", "str", positional=True))),
    "cleanup.prune_images": Op((_BOOL("confirm"),)),
    "overview": Op((Param("only", "str", None, optional=True),)),
    "git_state": Op((_name(),)),
    "gpu_inventory": Op(for_user=False),
    "nodes": Op(for_user=False),
    "reaper.run": Op((_BOOL("dry_run"),)),
    # ds01d's own: who it takes the caller for and its settings (what `ds01 status` and `base-image` show).
    "service.hello": Op(for_user=False),
    "service.settings": Op(for_user=False),
    "session.attach": Op((_name(), Param("command", "words"), _BOOL("tty"),
                          Param("size", "words", None, optional=True))),
    # What the Jupyter server extension needs besides (host mode through ds01d).
    "projects.get": Op((_name(),)),
    "containers.record": Op((_name(),)),
    "containers.running": Op((_name(),)),
    "follow_events": Op((Param("since", "float", None, True),), stream=True),
    "guard.remembered": Op((_name(),)),
    "checkpoint_warnings": Op(),
    "reaper.mark_active": Op((Param("container_id", "str", positional=True, pattern=r"[0-9a-f]{12,64}"),)),
    # Kernels in the caller's own running container: started as a session (the attached exec is handed over,
    # its end is the kernel's end), then signalled and cleaned up by pid in the container the start named.
    "kernels.attach": Op((_name(), _KERNEL_ID, Param("key", "str", pattern=r"[0-9A-Za-z._-]{1,256}", secret=True),
                          Param("signature_scheme", "str", "hmac-sha256", pattern=r"hmac-sha(1|224|256|384|512)"),
                          Param("ports", "ports"), Param("extra", "words", ()), Param("workdir", "str", "/workspace"),
                          Param("env", "words", ()))),
    "kernels.alive": Op((_name(), _CONTAINER, Param("pid", "int", positional=True))),
    "kernels.signal": Op((_name(), _CONTAINER, Param("pid", "int", positional=True),
                          Param("signum", "int", positional=True))),
    "kernels.remove_files": Op((_name(), _CONTAINER, Param("kernel_id", "str", positional=True,
                                                            pattern=_KERNEL_ID.pattern))),
}


def audited(op_name: str, args: dict | None) -> dict | None:
    """``args`` as the audit log keeps them: the secret ones replaced by a note."""
    op = OPS.get(op_name) if isinstance(op_name, str) else None
    if op is None or not isinstance(args, dict):
        return args
    hidden = {p.name for p in op.params if p.secret}
    return {k: "(secret, not logged)" if k in hidden else v for k, v in args.items()}


def check_args(op_name: object, args: object) -> tuple[Op, dict]:
    """The operation and its arguments, each of its declared type and within bounds; InvalidRequest otherwise."""
    if not isinstance(op_name, str) or op_name not in OPS:
        raise E.InvalidRequest(
            f"Unknown operation {str(op_name)[:80]!r}.", hint="Use the ds01 command of this version."
        )
    op = OPS[op_name]
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise E.InvalidRequest("The request's args must be an object.")
    known = {p.name: p for p in op.params}
    extra = sorted(set(args) - set(known))
    if extra:
        raise E.InvalidRequest(f"{op_name} takes no {', '.join(str(e)[:40] for e in extra)}.")
    out = {}
    for p in op.params:
        if p.name not in args:
            if p.positional:
                raise E.InvalidRequest(f"{op_name} needs {p.name}.")
            out[p.name] = p.default
            continue
        out[p.name] = _checked(op_name, p, args[p.name])
    return op, out


def _checked(op_name: str, p: Param, value):
    where = f"{op_name}: {p.name}"
    if value is None:
        if p.optional:
            return None
        raise E.InvalidRequest(f"{where} may not be null.")
    if p.kind == "bool":
        if not isinstance(value, bool):
            raise E.InvalidRequest(f"{where} must be true or false.")
    elif p.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
            raise E.InvalidRequest(f"{where} must be a whole number.")
    elif p.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e12:
            raise E.InvalidRequest(f"{where} must be a number.")
        value = float(value)
    elif p.kind == "str":
        _check_string(where, value)
        if p.pattern is not None and not re.fullmatch(p.pattern, value):
            raise E.InvalidRequest(f"{where} is not of the expected form.")
    elif p.kind == "ports":  # a kernel's five TCP ports
        if not isinstance(value, list) or len(value) != 5 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536 for v in value):
            raise E.InvalidRequest(f"{where} must be five TCP ports.")
    elif p.kind == "words":
        if not isinstance(value, list) or len(value) > MAX_WORDS:
            raise E.InvalidRequest(f"{where} must be a list of at most {MAX_WORDS} strings.")
        if p.name == "size":  # a terminal's [rows, cols]
            if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10000
                                          for v in value):
                raise E.InvalidRequest(f"{where} must be [rows, columns].")
            return value
        for word in value:
            _check_string(where, word, empty=True)
    return value


def _check_string(where: str, value, empty: bool = False) -> None:
    if not isinstance(value, str) or len(value) > MAX_STRING or (not value and not empty):
        raise E.InvalidRequest(f"{where} must be a string of 1 to {MAX_STRING} characters.")
    if "\x00" in value:
        raise E.InvalidRequest(f"{where} may not contain a NUL character.")


# -- lines -------------------------------------------------------------------------------
def dump(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def parse_request(line: bytes) -> tuple[str, dict]:
    """The op name and raw args of one request line; InvalidRequest when it is not one."""
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise E.InvalidRequest("The request is not one line of JSON.") from None
    if not isinstance(message, dict) or "op" not in message:
        raise E.InvalidRequest('The request must be an object {"op": ..., "args": {...}}.')
    if message.get("v", VERSION) != VERSION:
        raise E.InvalidRequest(f"This ds01d speaks version {VERSION} of the protocol.",
                               hint="Use the ds01 command installed with it.")
    return message["op"], message.get("args")


# -- values: the core's results, typed, and back ----------------------------------------------
#: The core's result types a reply may hold, by name, and their modules: each imported when a reply first holds one
#: (importing them all cost a client of ds01d 100 ms; issue 19). service.settings: a REST deploy naming a framework
#: checks it there.
RESULT_TYPES = {
    "ContainerStatus": "..core.container_status",
    "DeployResult": "..core.container_status",
    "ContainerRecord": "..core.engine",
    "ImageRecord": "..core.engine",
    "Audit": "..core.findings",
    "Finding": "..core.findings",
    "ImageInfo": "..core.images",
    "Project": "..core.projects",
    "InitResult": "..core.projects",
    "ReapDecision": "..core.reaper",
    "Rescue": "..core.rescue",
    "Settings": "..core.settings",
}


def _result_type(name: str) -> type | None:
    module = RESULT_TYPES.get(name)
    if module is None:
        return None
    import importlib

    return getattr(importlib.import_module(module, __package__), name)


def encode(value):
    """JSON-ready data for a core result; dataclasses, paths, times, sets and bytes keep their type."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        data = {str(k): encode(v) for k, v in value.items()}
        return {"__t": "dict", "v": data} if "__t" in data else data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__t": type(value).__name__,
                "v": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, Path):
        return {"__t": "Path", "v": str(value)}
    if isinstance(value, datetime):
        return {"__t": "datetime", "v": value.isoformat()}
    if isinstance(value, (set, frozenset)):
        return {"__t": "set", "v": sorted(encode(v) for v in value)}
    if isinstance(value, bytes):
        return {"__t": "bytes", "v": base64.b64encode(value).decode()}
    return str(value)


def decode(data):
    """The value :func:`encode` made; only the core's own result types (RESULT_TYPES) are rebuilt."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get("__t")
    if tag is None:
        return {k: decode(v) for k, v in data.items()}
    value = data.get("v")
    if tag == "dict":
        return {k: decode(v) for k, v in value.items()}
    if tag == "Path":
        return Path(value)
    if tag == "datetime":
        return datetime.fromisoformat(value)
    if tag == "set":
        return set(decode(value))
    if tag == "bytes":
        return base64.b64decode(value)
    cls = _result_type(tag) if isinstance(tag, str) and isinstance(value, dict) else None
    if cls is None:
        raise E.DS01Error(
            f"ds01d answered a value of unknown type {tag!r}.", hint="Use the ds01 command installed with it."
        )
    return cls(**{k: decode(v) for k, v in value.items()})


# -- errors --------------------------------------------------------------------------------------
def error_data(err: E.DS01Error) -> dict:
    return {"type": type(err).__name__, "status": err.status, "message": err.message, "hint": err.hint,
            "details": encode(err.details)}


def _error_classes() -> dict[str, type]:
    from ..core import allocator  # noqa: F401  (LockTimeout lives there)

    found, todo = {}, [E.DS01Error]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def error_from(data: dict) -> E.DS01Error:
    """The same DS01Error subclass ds01d raised, with its message, hint, status and details."""
    if not isinstance(data, dict):
        return E.DS01Error("ds01d answered an error it did not describe.")
    cls = _error_classes().get(str(data.get("type")), E.DS01Error)
    err = cls.__new__(cls)
    details = decode(data.get("details") or {})
    E.DS01Error.__init__(err, str(data.get("message", "")), hint=data.get("hint"),
                         **(details if isinstance(details, dict) else {}))
    if isinstance(data.get("status"), int) and data["status"] != cls.status:
        err.status = data["status"]
    return err
