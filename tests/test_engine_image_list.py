"""The engine's image list is kept between calls, and never outlives a change of the images (real engine)."""

from __future__ import annotations

import secrets
import subprocess
import time

from conftest import BASE_IMAGE

from ds01_jupyter.core.docker_engine import DockerEngine


def test_a_kept_image_list_is_asked_again_after_any_image_change(engine):
    mark = "t" + secrets.token_hex(5)
    fresh = DockerEngine()
    asked = []
    real = fresh.api.images
    fresh.api.images = lambda *a, **kw: asked.append(1) or real(*a, **kw)
    wanted = {"ds01-test.mark": mark}
    tag = f"ds01-test-{mark}:one"
    try:
        # Nothing changed: the kept list, no request. (Any image event on the host within a second of the first
        # list, e.g. another test's clean-up, rightly makes it ask again: so a few tries, a moment apart.)
        for _ in range(10):
            time.sleep(1.2)
            before = len(asked)
            assert fresh.list_images(wanted) == []
            assert fresh.list_images(wanted) == []
            if len(asked) == before + 1:
                break
        assert len(asked) == before + 1, "the second list of an unchanged engine was asked again"

        subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, check=True, capture_output=True,
                       input=f"FROM {BASE_IMAGE}\nLABEL ds01-test.mark={mark}\n")
        [built] = fresh.list_images(wanted)
        assert tag in built.tags and built.labels["ds01-test.mark"] == mark

        subprocess.run(["docker", "tag", tag, f"ds01-test-{mark}:two"], check=True)
        assert f"ds01-test-{mark}:two" in fresh.list_images(wanted)[0].tags

        subprocess.run(["docker", "rmi", tag, f"ds01-test-{mark}:two"], check=True, capture_output=True)
        assert fresh.list_images(wanted) == []
    finally:
        subprocess.run(["docker", "rmi", "-f", tag, f"ds01-test-{mark}:two"], capture_output=True)
        fresh.close()


def test_another_owners_images_and_containers_leave_a_kept_answer(engine):
    """On a busy host other users build and deploy all the time: their events (which carry their own labels) must
    not make every user's lists be asked again; the owner's own container events must."""
    mark = "t" + secrets.token_hex(5)
    fresh = DockerEngine()
    mine, theirs = {"ds01-test.mark": mark}, {"ds01-test.mark": mark + "x"}
    tag, container = f"ds01-test-{mark}:theirs", f"ds01-test-{mark}"
    try:
        for _ in range(10):  # an unlabelled event on the host (someone's pull or delete) rightly counts: retry
            time.sleep(1.1)  # the check looks a second before `since`: past the last try's clean-up
            since = time.time()
            subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, check=True, capture_output=True,
                           input=f"FROM {BASE_IMAGE}\nLABEL ds01-test.mark={mark}x\n")
            subprocess.run(["docker", "create", "--name", container, "--label", f"ds01-test.mark={mark}x", tag,
                            "true"], check=True, capture_output=True)
            quiet = fresh.quiet_since(since, mine)
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
            if quiet:
                break
        assert quiet, "another owner's image and container made a kept answer be asked again"
        assert not fresh.quiet_since(since, theirs)

        subprocess.run(["docker", "create", "--name", container, "--label", f"ds01-test.mark={mark}", BASE_IMAGE,
                        "true"], check=True, capture_output=True)
        assert not fresh.quiet_since(since, mine)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        fresh.close()
