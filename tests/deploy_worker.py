"""Run one deploy in its own process (for the cross-process allocation test).

Usage: python deploy_worker.py SETTINGS_JSON USER_JSON PROJECT GPUS
Prints one JSON line: {"ok": true, "gpus": [...], "created": bool} or {"ok": false, "error": ...}.
"""

import json
import sys
from pathlib import Path

from ds01_jupyter.core import DS01, DS01Error, Settings, User

settings = Settings(**json.loads(sys.argv[1]))
raw = json.loads(sys.argv[2])
user = User(raw["name"], raw["uid"], raw["gid"], Path(raw["home"]))
try:
    result = DS01(settings).containers.deploy(user, sys.argv[3], gpus=int(sys.argv[4]))
    print(json.dumps({"ok": True, "gpus": result.container.gpus, "created": result.created, "id": result.container.id}))
except DS01Error as err:
    print(json.dumps({"ok": False, "error": type(err).__name__, "message": str(err)}))
