"""A build survives another image's removal deleting the cached layer it stands on (real engine).

On a shared host two users' Dockerfiles often share their first steps, so one user's build takes its first layers
from the cache another user's image left. The engine's ``rmi`` deletes an image's untagged layers with it: when
the other user removes that image between this build's cache hit and its next step, the step fails.
"""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import tarfile

from conftest import BASE_IMAGE

from ds01_jupyter.core.docker_engine import DockerEngine


def _context(dockerfile: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_build_whose_cached_layer_is_deleted_midway_builds_again(engine):
    mark = "t" + secrets.token_hex(5)
    theirs, mine = f"ds01-test-{mark}:theirs", f"ds01-test-{mark}:mine"
    shared_step = f"RUN echo {mark} > /shared\n"
    fresh = DockerEngine()
    try:
        fresh.build_image(_context(f"FROM {BASE_IMAGE}\n{shared_step}", {}), theirs, {}, {}, lambda line: None)
        # The copy of a large file is the window: its layer is made on top of the cached one, which the other
        # image's removal deletes while the copy runs (removing an image takes milliseconds, the copy much longer).
        payload = os.urandom(1 << 20) * 64
        lines: list[str] = []

        def progress(line: str) -> None:
            lines.append(line)
            if "COPY payload" in line and fresh.get_image(theirs) is not None:
                fresh.remove_image(theirs)

        built = fresh.build_image(_context(f"FROM {BASE_IMAGE}\n{shared_step}COPY payload /payload\n",
                                           {"payload": payload}), mine, {}, {}, progress)

        assert fresh.get_image(theirs) is None
        assert any("Using cache" in line for line in lines), "the build did not stand on the other image's layer"
        assert sum("COPY payload" in line for line in lines) == 2, "\n".join(lines)
        assert any("building again" in line for line in lines)
        assert fresh.get_image(mine).id == built
        size = subprocess.run(["docker", "run", "--rm", "--network", "none", built, "stat", "-c", "%s", "/payload"],
                              capture_output=True, text=True, check=True).stdout.strip()
        assert size == str(len(payload))
    finally:
        subprocess.run(["docker", "rmi", "-f", theirs, mine], capture_output=True)
        fresh.close()


def test_a_build_that_fails_for_its_own_reasons_is_not_built_again(engine):
    mark = "t" + secrets.token_hex(5)
    lines: list[str] = []
    fresh = DockerEngine()
    try:
        try:
            fresh.build_image(_context(f"FROM {BASE_IMAGE}\nRUN echo {mark} && exit 3\n", {}),
                              f"ds01-test-{mark}:broken", {}, {}, lines.append)
        except Exception as failed:  # noqa: BLE001 - the class is asserted below
            assert type(failed).__name__ == "BuildFailed" and "returned a non-zero code: 3" in str(failed)
        else:
            raise AssertionError("a failing RUN built")
        assert sum(f"RUN echo {mark}" in line for line in lines) == 1
        assert not any("building again" in line for line in lines)
    finally:
        subprocess.run(["docker", "rmi", "-f", f"ds01-test-{mark}:broken"], capture_output=True)
        fresh.close()
