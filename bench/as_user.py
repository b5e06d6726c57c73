"""Run the ds01 CLI or a Jupyter server as the user named in DS01_BENCH_USER.

The front ends take their user from the account database (User.current); the
bench must not act as the machine's own user, whose containers tests count. So
this launcher keeps the uid, gid and HOME and only changes the name, then runs
exactly what the `ds01`, `jupyter server` or `jupyter lab` scripts run.

    python bench/as_user.py cli deploy demo --background
    python bench/as_user.py server --config=...
    python bench/as_user.py lab --config=...
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rename_current_user(name: str) -> None:
    from ds01_jupyter.core.users import User

    real = User.current.__func__

    def current(cls):
        me = real(cls)
        return cls(name, me.uid, me.gid, me.home)

    User.current = classmethod(current)


def main() -> None:
    app, args = sys.argv[1], sys.argv[2:]
    if os.environ.get("DS01_BENCH_USER"):
        try:
            _rename_current_user(os.environ["DS01_BENCH_USER"])
        except ImportError:
            pass  # an environment without ds01-jupyter (a baseline's venv): nothing to rename
    if app == "cli":
        from ds01_jupyter.cli.main import entry

        sys.argv = ["ds01", *args]
        entry()
    elif app == "server":
        from jupyter_server.serverapp import main as server_main

        sys.argv = ["jupyter-server", *args]
        sys.exit(server_main())
    elif app == "lab":
        from jupyterlab.labapp import main as lab_main

        sys.argv = ["jupyter-lab", *args]
        sys.exit(lab_main())
    else:
        sys.exit(f"unknown app {app!r}: cli, server or lab")


if __name__ == "__main__":
    main()
