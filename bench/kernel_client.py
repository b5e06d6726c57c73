"""Start a kernel through a Jupyter server's REST API and run one cell over its websocket.

The same client serves our server and a JupyterHub single-user server, so both
sides of the "ready to code" comparison are asked exactly the same way.
"""

from __future__ import annotations

import json
import time
import uuid

import requests
import websocket


def start_kernel(http: requests.Session, url: str, kernel_name: str | None = None, path: str = "") -> str:
    body = {"name": kernel_name} if kernel_name else {}
    if path:
        body["path"] = path
    r = http.post(f"{url}/api/kernels", data=json.dumps(body), timeout=120)
    if r.status_code not in (200, 201):
        raise RuntimeError(f"kernel start answered {r.status_code}: {r.text[:300]}")
    return r.json()["id"]


def execute(url: str, kernel_id: str, token: str, code: str = "1+1", timeout: float = 60) -> str:
    """Run ``code`` and return its result's text/plain (the kernel answered)."""
    ws_url = url.replace("http://", "ws://", 1) + f"/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id, "username": "bench", "session": uuid.uuid4().hex,
                        "msg_type": "execute_request", "version": "5.3", "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                return msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "error":
                raise RuntimeError(f"the kernel raised {msg['content']['ename']}")
        raise RuntimeError(f"no result from the kernel in {timeout} s")
    finally:
        ws.close()
