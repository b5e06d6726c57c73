"""Adversarial input to the REST API under a real Jupyter server: never a 5xx, never a hang.

Each answer must come within a few seconds, be a 4xx in the OpenAPI Error shape when the
input is wrong, and name the core's error type. Special files (FIFOs, sockets, devices,
directories, huge files, links to them) are planted in the server's root folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from urllib.parse import quote

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ds01_jupyter.core.notebook_check import MAX_CODE_CHARS, MAX_NOTEBOOK_BYTES, NotebookTooLarge, check_cells
from ds01_jupyter.server.handlers import MAX_BODY_BYTES, MAX_BODY_DEPTH

#: The slowest answer accepted: a worker thread stuck on a FIFO never answers at all.
SECONDS = 5.0

NOTEBOOK = {"cells": [{"cell_type": "code", "source": "df.to_csv('/tmp/out.csv')"}], "metadata": {},
            "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def raw(jp_fetch, jp_http_port, jp_base_url, jp_auth_header):
    """Send exact bytes to /ds01/<path> (``path`` already URL-encoded); return (status, JSON or text)."""
    client = AsyncHTTPClient()
    listening = []

    async def call(method: str, path: str, body: bytes | str | None = None, headers: dict | None = None):
        if not listening:  # the test server listens once a client fixture asked for it
            listening.append(await jp_fetch("ds01", "version"))
        if method == "POST" and body is None:
            body = b""
        started = time.monotonic()
        try:
            response = await client.fetch(
                f"http://127.0.0.1:{jp_http_port}{jp_base_url}ds01/{path}", method=method, body=body,
                headers={**jp_auth_header, **(headers or {})}, raise_error=False, request_timeout=SECONDS * 2,
                allow_nonstandard_methods=True,
            )
        except HTTPClientError as err:  # a timeout is raised even with raise_error=False
            pytest.fail(f"{method} {path[:80]}: no answer within {SECONDS * 2:.0f} s ({err})")
        seconds = time.monotonic() - started
        text = response.body.decode(errors="replace") if response.body else ""
        assert seconds < SECONDS, f"{method} {path[:80]} took {seconds:.1f} s"
        assert response.code < 500, (method, path[:80], response.code, text[:500])
        data = json.loads(text) if text.strip().startswith(("{", "[")) else text
        if response.code >= 400:
            assert (
                isinstance(data, dict) and isinstance(data.get("error"), str) and isinstance(data.get("message"), str)
            ), (method, path[:80], response.code, text[:300])
        return response.code, data

    return call


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# -- bodies --------------------------------------------------------------------------------
async def test_deeply_nested_bodies_are_a_400_not_a_recursion_error(raw):
    for route in ("projects", "notebook-check", "projects/demo/prune", "projects/demo/retire", "projects/demo/deploy"):
        for body in (nested(100_000), nested_objects(100_000), '{"name": ' + nested(5_000) + "}",
                     '{"cells": ' + nested(MAX_BODY_DEPTH + 5, '"x"') + "}"):
            status, err = await raw("POST", route, body)
            assert status == 400 and err["error"] == "InvalidRequest", (route, status, err)
            assert "nested" in err["message"], err
    # Within the bound, a nested value is simply the wrong type.
    status, err = await raw("POST", "projects", '{"name": ' + nested(10) + "}")
    assert (status, err["error"]) == (400, "InvalidName")


async def test_bodies_of_the_wrong_shape_encoding_or_size(raw, home):
    for body in ("[1, 2]", '"demo"', "1", "null", "true", "{", '{"name": "demo"', "\ufeff{}", "{'name': 'x'}"):
        status, err = await raw("POST", "projects", body)
        assert (status, err["error"]) == (400, "InvalidRequest"), (body, err)
    for body in (b'{"name": "d\xffmo"}', b"\xfe\xff\x00{", b'{"name": "\xc0\xaf"}'):  # not UTF-8
        status, err = await raw("POST", "projects", body)
        assert (status, err["error"]) == (400, "InvalidRequest"), (body, err)
        assert "UTF-8" in err["message"]
    for value in ("NaN", "Infinity", "-Infinity", "1e400"):  # not JSON numbers, or none a float holds
        status, err = await raw("POST", "projects/demo/prune", '{"older_than_days": ' + value + "}")
        assert (status, err["error"]) == (400, "InvalidRequest"), (value, err)
    status, err = await raw("POST", "projects", b'{"name": "' + b"a" * MAX_BODY_BYTES + b'"}')
    assert (status, err["error"]) == (413, "RequestTooLarge")
    status, err = await raw("POST", "projects", "")
    assert (status, err["error"]) == (400, "InvalidName") and "required" in err["message"]
    for name in ("a\x00b", "\u202edemo", "d\u0301emo", "\U0001f600", "\ud800", "x" * 10_000, "..", "Demo"):
        status, err = await raw("POST", "projects", json.dumps({"name": name}))
        assert (status, err["error"]) == (400, "InvalidName"), (name, err)
    assert not (home / "workspace").exists() or not any((home / "workspace").iterdir())


async def test_fields_are_checked_before_the_core_sees_them(raw):
    cases = [
        ("projects/demo/deploy", {"gpus": "1"}, "gpus"),
        ("projects/demo/deploy", {"gpus": -1}, "gpus"),
        ("projects/demo/deploy", {"gpus": 10**30}, "gpus"),
        ("projects/demo/deploy", {"gpus": True}, "gpus"),
        ("projects/demo/deploy", {"protected": "false"}, "protected"),
        ("projects/demo/retire", {"mode": "burn"}, "mode"),
        ("projects/demo/retire", {"mode": ["rescue"]}, "mode"),
        ("projects/demo/prune", {"keep_last": -1}, "keep_last"),
        ("projects/demo/prune", {"keep_best": 1.5}, "keep_best"),
        ("projects/demo/prune", {"older_than_days": 1e300}, "older_than_days"),
        ("projects/demo/prune", {"metric": "m" * 10_000}, "metric"),
        ("projects/demo/prune", {"mode": "avg"}, "mode"),
        ("projects/demo/prune", {"confirm": "yes"}, "confirm"),
    ]
    for route, body, field in cases:
        status, err = await raw("POST", route, json.dumps(body))
        assert (status, err["error"]) == (400, "InvalidRequest"), (route, body, err)
        assert f"'{field}'" in err["message"], (body, err)
    for query in ("tail=-1", "tail=1e3", "tail=" + "9" * 5000, "tail=%EF%BC%95", "tail=100001"):
        status, err = await raw("GET", f"projects/demo/logs?{query}")
        assert (status, err["error"]) == (400, "InvalidRequest"), (query, err)
    for query in ("mode=avg", "metric=" + "m" * 1000):
        status, err = await raw("GET", f"projects/demo/checkpoints?{query}")
        assert (status, err["error"]) == (400, "InvalidRequest"), (query, err)


# -- names in the URL ------------------------------------------------------------------------
NAMED_ROUTES = [("GET", ""), ("POST", "/deploy"), ("POST", "/build"), ("POST", "/start"), ("POST", "/stop"),
                ("POST", "/retire"), ("GET", "/audit"), ("POST", "/rescue"), ("GET", "/terminal"), ("GET", "/logs"),
                ("GET", "/checkpoints"), ("POST", "/prune")]
BAD_NAMES = ["Demo", "a..b", "-x", "x" * 64, quote("../etc", safe=""), "%00", "a%00b", "%E2%80%AEdemo", "%F0%9F%98%80",
             "d%CC%81emo", "%20", "."]


async def test_every_route_with_a_project_checks_its_name(raw):
    for method, tail in NAMED_ROUTES:
        for name in BAD_NAMES:
            status, err = await raw(method, f"projects/{name}{tail}")
            assert (status, err["error"]) == (400, "InvalidName"), (method, name, tail, err)
            assert "lowercase" in err["hint"]


async def test_logs_checks_the_project_name_and_that_it_exists(raw):
    status, err = await raw("GET", "projects/..%2F..%2Fetc/logs")
    assert (status, err["error"]) == (400, "InvalidName")
    status, err = await raw("GET", "projects/NOPE/logs")
    assert (status, err["error"]) == (400, "InvalidName")
    status, err = await raw("GET", "projects/nope/logs")
    assert (status, err["error"]) == (404, "ProjectNotFound")


async def test_non_utf8_in_url_paths_is_a_400(raw):
    for path in ("projects/%FF", "projects/%C0%AF/logs", "projects/%ED%A0%80", "operations/%FF%FE",
                 "projects/demo/checkpoints?metric=%FF"):
        status, err = await raw("GET", path)
        assert status == 400 and err["error"] == "InvalidRequest", (path, err)


async def test_other_errors_have_the_declared_shape(raw, jp_fetch, jp_http_port, jp_base_url):
    status, err = await raw("GET", "operations/op-" + "x" * 5000)
    assert (status, err["error"]) == (404, "NotFound") and len(err["message"]) < 200
    status, err = await raw("PUT", "projects", "{}")
    assert (status, err["error"]) == (405, "MethodNotAllowed")
    # Authentication comes first: a stranger gets 403, not what is wrong with the name.
    response = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{jp_http_port}{jp_base_url}ds01/projects/BAD/logs",
        headers={"Authorization": "token nope"}, raise_error=False)
    assert response.code == 403


# -- notebook-check: paths the server reads on the user's behalf ---------------------------
@pytest.fixture
def planted(jp_root_dir, tmp_path):
    """Special files in the server's root folder, and a way to free a reader stuck on the FIFO."""
    root = jp_root_dir
    (root / "nb").mkdir()
    (root / "nb" / "good.ipynb").write_text(json.dumps(NOTEBOOK))
    os.mkfifo(root / "fifo.ipynb")
    (root / "link-to-fifo.ipynb").symlink_to(root / "fifo.ipynb")
    (root / "zero.ipynb").symlink_to("/dev/zero")
    (root / "link-to-good.ipynb").symlink_to(root / "nb" / "good.ipynb")
    (root / "dir.ipynb").mkdir()
    (root / "loop.ipynb").symlink_to(root / "loop.ipynb")
    (root / "dangling.ipynb").symlink_to(root / "nowhere.ipynb")
    with open(root / "huge.ipynb", "wb") as f:  # sparse: no disk used
        f.truncate(MAX_NOTEBOOK_BYTES + 1)
    (root / "deep.ipynb").write_text(nested_objects(100_000))
    (root / "latin1.ipynb").write_bytes(b'{"cells": [], "x": "\xe9"}')
    (root / "not-a-notebook.ipynb").write_text("[1, 2, 3]")
    (root / "odd \u202e name\U0001f600.ipynb").write_text(json.dumps(NOTEBOOK))
    short = tempfile.mkdtemp(prefix="ds01-")  # AF_UNIX paths are short; pytest's folders live here too
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(short, "s"))
    os.link(os.path.join(short, "s"), root / "sock.ipynb")  # the socket itself, inside the root
    yield root
    sock.close()
    shutil.rmtree(short)
    # A server thread stuck opening the FIFO (the bug) waits for a writer: be one, so it ends.
    try:
        fd = os.open(root / "fifo.ipynb", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass  # no reader: nothing is stuck


async def check(raw, path):
    return await raw("POST", "notebook-check", json.dumps({"path": path}))


async def test_notebook_check_path_with_a_nul_byte_is_a_400(raw, planted):
    for path in ("nb/good.ipynb\x00", "\x00", "nb\x00/../nb/good.ipynb"):
        status, err = await check(raw, path)
        assert (status, err["error"]) == (400, "InvalidRequest"), (path, err)


async def test_notebook_check_never_blocks_on_special_files(raw, planted):
    for path in ("fifo.ipynb", "link-to-fifo.ipynb", "dir.ipynb", "loop.ipynb", "sock.ipynb"):
        status, err = await check(raw, path)
        assert (status, err["error"]) == (400, "InvalidRequest"), (path, err)
    # /dev/zero through a link, or named outright: outside the root, never read.
    for path in ("zero.ipynb", "../../../../../../dev/zero", "/dev/zero", "/proc/self/mem"):
        status, err = await check(raw, path)
        assert (status, err["error"]) == (403, "Forbidden"), (path, err)


async def test_notebook_check_bounds_what_it_reads(raw, planted):
    status, err = await check(raw, "huge.ipynb")
    assert (status, err["error"]) == (413, "NotebookTooLarge")
    for path in ("deep.ipynb", "latin1.ipynb", "not-a-notebook.ipynb"):
        status, err = await check(raw, path)
        assert (status, err["error"]) == (400, "InvalidRequest"), (path, err)
    status, err = await check(raw, "dangling.ipynb")
    assert (status, err["error"]) == (404, "NotFound")


async def test_notebook_check_still_reads_real_notebooks(raw, planted):
    for path in ("nb/good.ipynb", "link-to-good.ipynb", "odd \u202e name\U0001f600.ipynb"):
        status, found = await check(raw, path)
        assert status == 200 and [f["path"] for f in found["findings"]] == ["/tmp/out.csv"], (path, found)


async def test_notebook_check_odd_unicode_and_shapes(raw, planted):
    for path in ("\ud800", "\udcff.ipynb", "\u202e", "\ufffe", "nb/" + "a" * 5000, "", "  ", "nb/" + "x/" * 3000):
        status, err = await check(raw, path)
        assert status in (400, 404), (path, status, err)
    for body in ({"path": 1}, {"path": ["nb/good.ipynb"]}, {"cells": "x"}, {"cells": [1]}, {"cells": None}):
        status, err = await raw("POST", "notebook-check", json.dumps(body))
        assert (status, err["error"]) == (400, "InvalidRequest"), (body, err)
    status, found = await raw(
        "POST", "notebook-check", json.dumps({"cells": ["\x00", "'\ud800'", "(" * 10_000, "%cd /tmp\x00"]})
    )
    assert status == 200 and [f["cell"] for f in found["findings"]] == [3]


async def test_notebook_check_answers_big_cells_in_seconds(raw):
    dense = "'/" * (MAX_CODE_CHARS // 2 - 10)  # a string token every two characters: the tokenizer's worst
    status, found = await raw("POST", "notebook-check", json.dumps({"cells": [dense[: 2**17], dense[2**17:]]}))
    assert status == 200 and found["findings"]
    status, err = await raw("POST", "notebook-check", json.dumps({"cells": ["x = 1\n" * (MAX_CODE_CHARS // 6 + 1)]}))
    assert (status, err["error"]) == (413, "NotebookTooLarge")


def test_check_cells_caps_its_findings_and_its_input():
    many = "\n".join(f"open('/tmp/{i}', 'w')" for i in range(5000))
    assert len(check_cells([many])) == 1000
    with pytest.raises(NotebookTooLarge):
        check_cells(["a" * MAX_CODE_CHARS, "b"])
