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


def test_a_change_pushed_out_of_the_engines_event_log_is_never_taken_for_quiet(engine):
    """The engine keeps its last 256 events of every kind together: an image built, then 256 events of other kinds
    (volumes here; networks come and go with each deploy on a busy host) must not leave the list kept without it."""
    mark = "t" + secrets.token_hex(5)
    fresh = DockerEngine()
    wanted, tag, volumes = {"ds01-test.mark": mark}, f"ds01-test-{mark}:one", []
    noise = {"ds01-test.mark": mark + "v"}
    try:
        since = time.time()
        assert fresh.list_images(wanted) == []  # kept
        subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, check=True, capture_output=True,
                       input=f"FROM {BASE_IMAGE}\nLABEL ds01-test.mark={mark}\n")
        for i in range(DockerEngine.EVENTS_KEPT // 2 + 2):
            volumes.append(fresh.api.create_volume(f"ds01-test-{mark}-{i}", labels=noise)["Name"])
            fresh.api.remove_volume(volumes[-1])
        assert not fresh.quiet_since(since, wanted)
        assert [tag] == [t for image in fresh.list_images(wanted) for t in image.tags]
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        for volume in volumes:
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
        fresh.close()


def test_a_tag_taken_by_another_image_leaves_a_kept_list(engine):
    """`docker tag OTHER NAME` takes NAME from the image that had it, and the engine logs only OTHER's event
    (with OTHER's labels): a kept list of the first image's owner must not go on showing NAME."""
    mark = "t" + secrets.token_hex(5)
    fresh = DockerEngine()
    wanted, tag, other = {"ds01-test.mark": mark}, f"ds01-test-{mark}:one", f"ds01-test-{mark}:other"
    first = None
    try:
        subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, check=True, capture_output=True,
                       input=f"FROM {BASE_IMAGE}\nLABEL ds01-test.mark={mark}\n")
        [first] = fresh.list_images(wanted)
        assert tag in first.tags
        subprocess.run(["docker", "build", "-q", "-t", other, "-"], text=True, check=True, capture_output=True,
                       input=f"FROM {BASE_IMAGE}\nLABEL ds01-test.mark={mark}x\n")
        time.sleep(1.2)  # the other image's own events are past: only the tag's remains
        since = time.time()
        subprocess.run(["docker", "tag", other, tag], check=True, capture_output=True)
        assert not fresh.quiet_since(since, wanted)
        assert [i.id for i in fresh.list_images(wanted) if tag in i.tags] == []
    finally:
        subprocess.run(["docker", "rmi", "-f", tag, other], capture_output=True)
        if first is not None:
            subprocess.run(["docker", "rmi", "-f", first.id], capture_output=True)
        fresh.close()
