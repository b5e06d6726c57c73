"""Hostile input to ds01d's socket: never a crash, never a hang, never a 5xx for the caller's mistake.

Like tests/test_api_input.py for the REST API: garbage, wrong types for every parameter of every operation,
oversized and deeply nested lines, descriptors passed along, silent and half-sent requests, more connections
than allowed. ds01d must answer each within a few seconds with an error of the core's kind, keep serving
others meanwhile, and leak nothing. Plus the wire's own round trip of results and errors, without an engine.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import tempfile
import time
from pathlib import Path

import pytest
from ds01d_helpers import ds01d_factory_fixture, unix_users_fixture  # noqa: F401  (fixtures)

from ds01_jupyter.core import errors as E
from ds01_jupyter.core.allocator import LockTimeout
from ds01_jupyter.core.containers import ContainerStatus, DeployResult
from ds01_jupyter.core.findings import Audit, Finding
from ds01_jupyter.service import protocol as P

#: The slowest answer accepted.
SECONDS = 5.0


def ask(path: str, payload: bytes, fds: list[int] | None = None, timeout: float = SECONDS * 2) -> list[dict]:
    """Send exact bytes (and descriptors) and read every answer line until ds01d hangs up."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    sock.connect(path)
    started = time.monotonic()
    data = b""
    try:
        if fds:
            socket.send_fds(sock, [payload], fds)
        else:
            sock.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # ds01d hung up on an oversized request before reading all of it: its answer is still there
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass  # it closed without reading our unread bytes (a refusal at the door): what it sent came first
    finally:
        sock.close()
    assert time.monotonic() - started < SECONDS, payload[:80]
    return [json.loads(line) for line in data.splitlines()]


def refused(path: str, payload: bytes, kind: str = "InvalidRequest", **kwargs) -> dict:
    answers = ask(path, payload, **kwargs)
    assert answers, payload[:80]
    error = answers[-1].get("error")
    assert isinstance(error, dict) and isinstance(error["message"], str), (payload[:80], answers)
    assert 400 <= error["status"] < 500, (payload[:80], error)
    assert error["type"] == kind, (payload[:80], error)
    return error


def request(op, args=None, **extra) -> bytes:
    return json.dumps({"op": op, "args": args or {}, **extra}).encode() + b"\n"


@pytest.fixture
def daemon(ds01d_factory, make_core):
    """ds01d whose root caller (this test) keeps its projects in a folder of the test, not in /root."""
    root = Path(tempfile.mkdtemp(prefix="ds01d-fuzz-"))
    settings = make_core.settings(workspace_root=str(root / "workspace"), dockerfiles_root=str(root / "dockerfiles"),
                                  state_dir=str(root / "state"))
    yield ds01d_factory(settings, request_timeout=1.0, max_connections_per_user=6)


def test_garbage_and_wrong_types_are_refused_clearly(daemon):
    sock = daemon.socket
    for payload in (b"\x00\xff\xfe garbage\n", b"not json\n", b"[]\n", b'"op"\n', b"{}\n", b'{"op": 5}\n',
                    b'{"op": "nope"}\n', b'{"op": "os.system", "args": {"command": "id"}}\n',
                    b'{"op": "projects.create", "args": []}\n', b'{"op": "projects.create"}\n',
                    b'{"op": "projects.create", "args": {"name": "x", "user": "root"}}\n',
                    b'{"op": "service.hello", "v": 2}\n', b"[" * 100_000 + b"\n",
                    b'{"op": "prune_checkpoints", "args": {"name": "x", "older_than": NaN}}\n',
                    b'{"op": "prune_checkpoints", "args": {"name": "x", "older_than": Infinity}}\n',
                    request("projects.create", {"name": "x" * 5000}), request("projects.create", {"name": "a\x00b"}),
                    request("containers.deploy", {"name": "x", "gpus": True}),
                    request("containers.deploy", {"name": "x", "gpus": 2**40}),
                    request("containers.exec", {"name": "x", "command": ["a"] * 5000}),
                    request("session.attach", {"name": "x", "command": [], "tty": True, "size": [0, 0]}),
                    request("session.attach", {"name": "x", "command": "sh", "tty": False})):
        refused(sock, payload)
    # Valid shapes the core refuses: its own error types, still a 4xx.
    refused(sock, request("projects.create", {"name": "../escape"}), "InvalidName")
    refused(sock, request("images.ensure_base_image", {"rebuild": True}) if os.geteuid() != 0 else
            request("containers.status", {"name": "missing"}), "Forbidden" if os.geteuid() != 0 else "ProjectNotFound")
    # Too long a line: refused without reading the rest.
    refused(sock, b'{"op": "service.hello", "args": {"x": "' + b"y" * (P.MAX_REQUEST + 10) + b'"}}\n')


def test_every_parameter_of_every_operation_checks_its_type(daemon):
    wrong = {"str": [5, True, [], {}, ""], "int": ["1", 1.5, True, [], 2**31], "float": ["1", True, []],
             "bool": [1, "true", None, []], "words": ["sh", [1], {}, [None]],
             "ports": [[1, 2, 3, 4], [0, 1, 2, 3, 4], [1, 2, 3, 4, 65536], [1, 2, 3, 4, True], "1,2,3,4,5"]}
    # A string with a pattern (ids, keys) gets a value of its form, and values of other forms must be refused.
    formed = ("proj", "0123456789abcdef", "hmac-sha256")
    for name, op in P.OPS.items():
        valid = {p.name: {"str": "proj", "int": 1, "float": 1.0, "bool": False, "words": ["true"],
                          "ports": [1, 2, 3, 4, 5]}[p.kind] for p in op.params}
        for p in op.params:
            if p.pattern:
                valid[p.name] = next(v for v in formed if re.fullmatch(p.pattern, v))
        if "size" in valid:
            valid["size"] = [24, 80]
        for p in op.params:
            for value in wrong[p.kind] + (["../x", "a\nb", "x" * 300] if p.pattern else []):
                if value is None and p.optional:
                    continue
                refused(daemon.socket, request(name, {**valid, p.name: value}))


def test_random_bytes_and_mutations_never_break_it(daemon):
    rng = random.Random(16)
    base = [request("service.hello"), request("projects.list"), request("gpu_inventory")]
    for _ in range(150):
        sample = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(sample))
            choice = rng.random()
            if choice < 0.4:
                sample[position] = rng.randrange(256)
            elif choice < 0.7:
                del sample[position]
            else:
                sample.insert(position, rng.choice(b'{}[]",:\\\x00\n'))
        answers = ask(daemon.socket, bytes(sample) + b"\n")
        assert answers and ("result" in answers[-1] or answers[-1]["error"]["status"] < 500), (bytes(sample), answers)
    hello = ask(daemon.socket, request("service.hello"))[-1]["result"]
    assert hello["uid"] == os.geteuid()


def test_passed_descriptors_are_closed_and_refused(daemon):
    pid = daemon.process.pid
    before = len(os.listdir(f"/proc/{pid}/fd"))
    with open(__file__) as handle:
        for _ in range(30):
            error = refused(daemon.socket, request("service.hello"), fds=[handle.fileno(), handle.fileno()])
            assert "file descriptors" in error["message"]
    time.sleep(0.2)
    assert len(os.listdir(f"/proc/{pid}/fd")) <= before + 1


def test_silent_slow_and_greedy_callers_do_not_block_others(daemon, unix_users):
    # Silent and half-sent requests are dropped after request_timeout (1 s here)...
    idle = []
    for payload in (b"", b'{"op": "service.he'):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(daemon.socket)
        conn.sendall(payload)
        idle.append(conn)
    # ...and while they wait, others are answered at once.
    started = time.monotonic()
    assert ask(daemon.socket, request("service.hello"))[-1]["result"]["uid"] == os.geteuid()
    assert time.monotonic() - started < 0.5
    for conn in idle:
        conn.settimeout(SECONDS)
        answer = json.loads(conn.recv(65536).splitlines()[0])
        assert "in time" in answer["error"]["message"]
        conn.close()

    # One uid's connections are capped (6 here): the next is refused at once, another user is still served.
    hogs = []
    for _ in range(6):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(daemon.socket)
        hogs.append(conn)
    time.sleep(0.1)
    error = refused(daemon.socket, request("service.hello"), "LimitExceeded")
    assert "limit per user" in error["message"]
    other = unix_users()
    done = other.ds01(daemon.socket, "project-list")
    assert done.returncode == 0, done.stderr
    for conn in hogs:
        conn.close()
    deadline = time.monotonic() + SECONDS
    while "result" not in ask(daemon.socket, request("service.hello"))[-1]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not [r for r in daemon.audit() if r.get("error") == "DS01Error"]  # none of it was ds01d's own fault


# -- the wire's round trip, without an engine -----------------------------------------------------------
def test_results_keep_their_types():
    status = ContainerStatus(project="p", name="p._.u", id="abc", state="running", image="i", gpus=["GPU-1"])
    audit = Audit(
        project="p",
        container="c",
        state="running",
        findings=[Finding("/tmp/x", "work", 4, "writable-layer")],
        added={"/tmp/x"},
    )
    value = {"deploy": DeployResult(status, True, ["note"]), "audit": audit, "path": Path("/a"), "raw": b"\x00\xff",
             "pair": (1, None), "__t": "not a tag"}
    back = P.decode(json.loads(json.dumps(P.encode(value))))
    assert back["deploy"] == DeployResult(status, True, ["note"]) and back["deploy"].container.running
    assert back["audit"].at_risk[0].path == "/tmp/x" and back["audit"].added == {"/tmp/x"}
    assert back["path"] == Path("/a") and back["raw"] == b"\x00\xff" and back["pair"] == [1, None]
    assert back["__t"] == "not a tag"
    with pytest.raises(E.DS01Error, match="unknown type"):
        P.decode({"__t": "Popen", "v": {"args": ["id"]}})


def test_errors_keep_their_class_message_hint_and_details():
    for err in (E.UnsavedWork("would lose", hint="--rescue", findings=[{"path": "/tmp/x", "kind": "work", "size": 4}]),
                LockTimeout("held", hint="wait", holders=[{"pid": 1, "user": "root"}]),
                E.InvalidName("bad"), E.EngineUnavailable("down", hint="start it")):
        back = P.error_from(json.loads(json.dumps(P.error_data(err))))
        assert type(back) is type(err) and back.status == err.status
        assert (back.message, back.hint, back.details) == (err.message, err.hint, err.details)
        assert str(back) == str(err) and back.to_dict() == err.to_dict()
    unknown = P.error_from({"type": "Exception", "message": "m", "status": 418})
    assert type(unknown) is E.DS01Error and unknown.status == 418


def test_the_settings_ds01d_answers_come_back_as_settings():
    """RemoteDS01.settings (a REST deploy naming a framework checks the name against them) decodes."""
    from ds01_jupyter.core import Settings

    settings = Settings(framework_images={"pytorch": "ds01/pytorch:2"})
    back = P.decode(P.encode(settings))
    assert back == settings and "pytorch" in back.frameworks()


def test_a_request_pending_when_ds01d_stops_is_waited_for_and_refused(tmp_path, make_core, monkeypatch):
    """A request read but not yet begun when ds01d is told to stop (its caller being looked up): the stop waits
    for it, and it is refused with a clear error instead of begun by a process about to exit."""
    import dataclasses
    import threading

    import yaml

    from ds01_jupyter.service import server as S
    from ds01_jupyter.service.client import RemoteDS01

    values = {k: v for k, v in dataclasses.asdict(make_core.settings()).items() if v is not None}
    values.pop("interface", None)
    config = tmp_path / "ds01d.yaml"
    config.write_text(yaml.safe_dump({**values, "socket": str(tmp_path / "ds01.sock"),
                                      "log_dir": str(tmp_path / "log")}))
    service = S.Service(*S.load(str(config)))
    service.bind()
    threading.Thread(target=service.serve, daemon=True).start()
    looking, release = threading.Event(), threading.Event()
    real_caller = S.caller

    def slow_caller(uid):  # a slow account lookup (NSS over the network)
        looking.set()
        release.wait(30)
        return real_caller(uid)

    monkeypatch.setattr(S, "caller", slow_caller)
    answers: list = []

    def ask():
        try:
            answers.append(RemoteDS01(str(tmp_path / "ds01.sock")).hello())
        except E.DS01Error as err:
            answers.append(err)

    asking = threading.Thread(target=ask)
    asking.start()
    assert looking.wait(10)
    stopping = threading.Thread(target=service.stop, args=(20,))
    stopping.start()
    stopping.join(0.5)
    assert stopping.is_alive()  # waits for the request pending
    release.set()
    asking.join(10)
    stopping.join(10)
    assert not stopping.is_alive()
    [answer] = answers
    assert isinstance(answer, E.EngineUnavailable) and "ds01d is stopping" in answer.message, answer


def test_ds01d_told_to_stop_as_soon_as_it_answers_stops_cleanly(ds01d_factory):
    """SIGTERM the moment the socket answers (systemd's stop right after a start): a clean stop, no socket left."""
    import signal

    daemon = ds01d_factory()
    daemon.kill(signal.SIGTERM)
    assert daemon.process.returncode == 0, daemon.log()
    assert not os.path.exists(daemon.socket)
