"""Deploy several projects at once from one process (one core per thread), for the cluster's claim test.

Usage: python swarm_worker.py SETTINGS_JSON USER_JSON PROJECT...
Prints a JSON list: per project {"ok", "name", "id", "gpus", "node", "created"} or {"ok": false, "error", "message"}.
"""

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ds01_jupyter.core import DS01, DS01Error, Settings, User

settings = Settings(**json.loads(sys.argv[1]))
raw = json.loads(sys.argv[2])
user = User(raw["name"], raw["uid"], raw["gid"], Path(raw["home"]))


def deploy(project):
    core = DS01(settings)
    try:
        result = core.containers.deploy(user, project, gpus=1)
        c = result.container
        return {"ok": True, "name": c.name, "id": c.id, "gpus": c.gpus, "node": c.node, "created": result.created}
    except DS01Error as err:
        return {"ok": False, "error": type(err).__name__, "message": str(err)}
    finally:
        core.close()


with ThreadPoolExecutor(max_workers=len(sys.argv) - 3) as pool:
    print(json.dumps(list(pool.map(deploy, sys.argv[3:]))))
