"""The wheels folder the single-user image is built from, filled for the base image's Python.

No registry can be assumed on a DS01 host, so the single-user image is built
with the network off from wheels fetched beforehand on the host: JupyterHub
(the hub's own version: the server inside must match it), JupyterLab and
ds01-jupyter (the sidebar inside), each with its dependencies, for the Python,
C library and machine of the base image, which are often not the host's.
``ds01-wheels.json`` in the folder records what it was filled for, so the hub
can tell at start-up whether it still fits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.errors import ConfigError

MANIFEST = "ds01-wheels.json"
#: Sub-folder of the wheels folder holding ds01-jupyter's own wheel.
OWN = "ds01"
#: Wheels of these distributions must be in the folder, at the versions the hub runs (jupyterlab: any).
PINNED = ("jupyterhub", "ds01_jupyter")
PROBE = (
    "import json, platform; print(json.dumps({'python': platform.python_version(), "
    "'glibc': platform.libc_ver()[1], 'machine': platform.machine()}))"
)


@dataclass(frozen=True)
class Target:
    """What a wheel must fit: the base image's Python, C library and machine."""

    python: str
    glibc: str
    machine: str

    def pip_args(self) -> list[str]:
        """pip download's options for this target (manylinux tags up to the image's glibc)."""
        args = ["--only-binary=:all:", "--python-version", self.python]
        minor = int(self.glibc.split(".")[1]) if re.fullmatch(r"2\.\d+", self.glibc) else 17
        tags = [f"manylinux_2_{m}_{self.machine}" for m in range(minor, 16, -1)]
        for tag in [*tags, f"manylinux2014_{self.machine}", "any"]:
            args += ["--platform", tag]
        return args


def host_versions() -> dict[str, str]:
    """The versions the hub runs, which the image must carry."""
    import jupyterhub
    import jupyterlab

    import ds01_jupyter

    return {"jupyterhub": jupyterhub.__version__, "jupyterlab": jupyterlab.__version__,
            "ds01_jupyter": ds01_jupyter.__version__}


def probe(image: str, docker_url: str = "") -> Target:
    """Ask the base image for its Python, glibc and machine (a throw-away container, network off)."""
    import docker

    client = docker.DockerClient(base_url=docker_url) if docker_url else docker.from_env()
    try:
        output = client.containers.run(image, ["python3", "-c", PROBE], remove=True, network_mode="none",
                                       user="65534:65534")
    except docker.errors.ImageNotFound:
        raise ConfigError(f"The base image {image} is missing.",
                          hint="Make it with `ds01 base-image` (or pull yours), then run this again.") from None
    except docker.errors.DockerException as err:
        raise ConfigError(f"Could not ask {image} for its Python: {err}.",
                          hint="The base image needs python3; is the Docker engine running?") from None
    finally:
        client.close()
    return Target(**json.loads(output.decode().strip().splitlines()[-1]))


def fill(folder: Path, base_image: str, wheel: str = "", docker_url: str = "", progress=print) -> dict:
    """Download JupyterHub, JupyterLab and ds01-jupyter (``wheel``, or this version from the index) with
    their dependencies into ``folder`` for the base image's Python; return the manifest written."""
    versions = host_versions()
    if wheel:
        found = _wheel_version(Path(wheel).name)
        if found != versions["ds01_jupyter"]:
            raise ConfigError(
                f"{wheel} is ds01-jupyter {found}, but this hub runs {versions['ds01_jupyter']}.",
                hint="Install that wheel on the host first (pip install WHEEL[hub]), or pass the one installed.")
        if not Path(wheel).is_file():
            raise ConfigError(f"{wheel} is not a file.")
    target = probe(base_image, docker_url)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWN).mkdir(exist_ok=True)
    for old in [*folder.glob("*.whl"), *(folder / OWN).glob("*.whl")]:
        name = _dist(old.name)
        if name in versions and _wheel_version(old.name) != versions[name] or name == "ds01_jupyter":
            old.unlink()  # another version (or a rebuilt wheel of this one): pip would keep the old file
    own = str(Path(wheel).resolve()) if wheel else f"ds01-jupyter=={versions['ds01_jupyter']}"
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", str(folder),
            *target.pip_args(), f"jupyterhub=={versions['jupyterhub']}", f"jupyterlab=={versions['jupyterlab']}", own]
    progress(f"Downloading wheels for Python {target.python} ({target.machine}, glibc {target.glibc}) into {folder}")
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("WARNING: Location"))[-2000:]
        hint = ("Pass the ds01-jupyter wheel you installed with --wheel PATH (pip finds only released versions), "
                "or check the package index.") if not wheel and "ds01-jupyter" in tail else "Check the package index."
        raise ConfigError(f"pip could not download the wheels:\n{tail}", hint=hint)
    # ds01-jupyter apart (the image installs it in a layer of its own, so a new build of it reuses the rest).
    for own_wheel in folder.glob("ds01_jupyter-*.whl"):
        own_wheel.replace(folder / OWN / own_wheel.name)
    if wheel:  # pip keeps a file of the same name that is already there; this one is wanted
        (folder / OWN / Path(wheel).name).write_bytes(Path(wheel).read_bytes())
    manifest = {**versions, **asdict(target), "base_image": base_image}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def problems(folder: str, versions: dict[str, str] | None = None) -> list[ConfigError]:
    """What is wrong with the wheels folder for building the image of this hub's versions (empty: nothing)."""
    versions = versions or host_versions()
    hint = f"Run `ds01-hub wheels {folder}` (after every upgrade of JupyterHub or ds01-jupyter)."
    path = Path(folder)
    if not path.is_dir():
        return [ConfigError(f"The wheels folder {folder} does not exist.", hint=hint)]
    found = {}
    for wheel in all_wheels(path):
        found.setdefault(_dist(wheel.name), set()).add(_wheel_version(wheel.name))
    out = []
    for name in (*PINNED, "jupyterlab"):
        want = versions[name] if name in PINNED else None
        have = found.get(name, set())
        if not have or (want and want not in have):
            what = f"{name.replace('_', '-')} {want}" if want else name
            out.append(ConfigError(f"The wheels folder {folder} has no wheel of {what}"
                                   + (f" (it has {', '.join(sorted(have))})." if have else "."), hint=hint))
    return out


def manifest(folder: str) -> dict:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


_digests: dict[tuple, str] = {}


def digest(folder: str) -> str:
    """A short fingerprint of the folder's wheels (names and contents), to tell when the image is older."""
    entries = []
    for wheel in all_wheels(Path(folder)):
        st = wheel.stat()
        key = (str(wheel), st.st_size, st.st_mtime_ns)
        if key not in _digests:
            sha = hashlib.sha256()
            with open(wheel, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    sha.update(block)
            _digests[key] = sha.hexdigest()
        entries.append(f"{wheel.name}={_digests[key]}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


def all_wheels(folder: Path) -> list[Path]:
    """The folder's wheels: the dependencies, then ds01-jupyter's in OWN."""
    return sorted(folder.glob("*.whl")) + sorted((folder / OWN).glob("*.whl"))


def _dist(filename: str) -> str:
    """The normalised distribution name of a wheel file (``jupyter_server-2.1-py3-none-any.whl``)."""
    return re.sub(r"[-_.]+", "_", filename.split("-", 1)[0]).lower()


def _wheel_version(filename: str) -> str:
    parts = filename.split("-")
    return parts[1] if len(parts) > 1 else ""


def owner_check(folder: str) -> list[ConfigError]:
    """Root builds from this folder: it must not be writable by anyone else (they would choose what runs)."""
    if os.geteuid() != 0:
        return []
    out = []
    for path in [Path(folder), Path(folder) / OWN, *all_wheels(Path(folder))]:
        try:
            st = path.lstat()
        except OSError:
            continue
        if st.st_uid != 0 or st.st_mode & 0o022:
            out.append(ConfigError(f"{path} may be changed by someone other than root; the hub will not build from it.",
                                   hint=f"chown -R root: {folder} && chmod -R go-w {folder}"))
            break
    return out
