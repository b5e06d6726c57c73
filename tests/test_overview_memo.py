"""A user's overview is given again while still true, and never outlives a change it shows (real engine).

Two cores stand for two processes (a server showing the overview, a CLI or another server acting): what one
does, the other's kept overview must show at the next look.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime

from conftest import fake_gpus


def _by_name(found: dict) -> dict:
    return {p["name"]: p for p in found["projects"]}


@contextmanager
def _looks(viewer):
    """The viewer's container lists (an overview made anew lists them), counted while inside."""
    listed: list[int] = []
    real = viewer.engine.list_containers
    viewer.engine.list_containers = lambda *a, **kw: listed.append(1) or real(*a, **kw)
    try:
        yield listed
    finally:
        del viewer.engine.list_containers


def _kept(viewer, user) -> dict:
    """The viewer's overview once it is given again without a new look (any image event on the host, e.g. another
    run's clean-up, rightly makes it look again: so a few tries, a moment apart)."""
    with _looks(viewer) as listed:
        for _ in range(10):
            viewer.overview(user)
            before = len(listed)
            found = viewer.overview(user)
            if len(listed) == before:
                return found
            time.sleep(1.2)
    raise AssertionError("an unchanged overview was made again")


def test_a_kept_overview_never_hides_a_change_made_elsewhere(make_core, lone_user, project_name):
    user = lone_user  # any container event of the user makes the overview be made again: only this test's
    viewer, actor = make_core(), make_core()
    name, later = project_name(), project_name()
    actor.projects.create(user, name)
    listed = []
    real = viewer.engine.list_containers
    viewer.engine.list_containers = lambda *a, **kw: listed.append(1) or real(*a, **kw)

    # Nothing changed: the kept overview, without asking the engine. (Any image event on the host, e.g. another
    # run's clean-up, rightly makes it look again: so a few tries, a moment apart.)
    for _ in range(10):
        assert set(_by_name(viewer.overview(user))) == {name}
        before = len(listed)
        again = viewer.overview(user)
        if len(listed) == before:
            break
        time.sleep(1.2)
    assert len(listed) == before, "an unchanged overview was made again"
    again["projects"][0]["name"] = "changed-by-a-caller"  # each caller's own copy
    assert set(_by_name(viewer.overview(user))) == {name}

    actor.projects.create(user, later)  # a new folder in the workspace root
    assert set(_by_name(viewer.overview(user))) == {name, later}

    actor.containers.deploy(user, name)  # the engine's event log
    shown = _by_name(viewer.overview(user))[name]["container"]
    assert shown["running"] and shown["uptime_seconds"] is not None
    assert viewer.overview(user, only=later)["projects"] == [_by_name(viewer.overview(user))[later]]
    time.sleep(1.1)
    assert _by_name(viewer.overview(user))[name]["container"]["uptime_seconds"] >= shown["uptime_seconds"] + 1

    actor.disk.measure(user, later)  # the state folder
    assert _by_name(viewer.overview(user))[later]["size"]["files"] >= 1

    actor.containers.stop(user, name)
    assert not _by_name(viewer.overview(user))[name]["container"]["running"]
    actor.containers.retire(user, name)
    assert _by_name(viewer.overview(user))[name]["container"] is None


def test_a_workspace_root_behind_a_link_shows_a_new_project_at_once(make_core, user, project_name, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (user.home / "workspace").symlink_to(elsewhere)
    viewer, actor = make_core(), make_core()
    name, later = project_name(), project_name()
    actor.projects.create(user, name)
    assert set(_by_name(_kept(viewer, user))) == {name}
    actor.projects.create(user, later)  # in the folder the link points to
    assert set(_by_name(viewer.overview(user))) == {name, later}


HOLD = 6


def test_a_kept_overview_lets_a_stopped_containers_gpus_go_when_its_hold_ends(make_core, lone_user, project_name):
    """A stopped container holds its GPUs for gpu_hold_after_stop (allocator.holds): a change by time alone,
    with no event, that the next look must show."""
    user = lone_user  # any container event of the user makes the overview be made again: only this test's
    settings = {"limits": f"defaults:\n  gpu_hold_after_stop: {HOLD}s\n", "gpus": fake_gpus(1)}
    viewer, actor = make_core(**settings), make_core(**settings)
    name = project_name()
    actor.projects.create(user, name)
    actor.containers.deploy(user, name, gpus=1)
    actor.containers.stop(user, name)
    stopped = time.time()
    shown = _by_name(_kept(viewer, user))[name]["container"]
    if time.time() < stopped + HOLD - 1:  # (a very busy host may take longer to keep it)
        assert shown["holds_gpu"] and not shown["running"]
        ends = datetime.fromisoformat(shown["gpu_hold_ends"].replace("Z", "+00:00")).timestamp()
        assert stopped - 2 <= ends - HOLD <= stopped  # whole seconds below the allocator's moment
    time.sleep(max(0.0, stopped + HOLD + 0.5 - time.time()))
    assert not _by_name(viewer.overview(user))[name]["container"]["holds_gpu"]


def test_a_kept_overview_gives_one_project_alone_and_keeps_them_all(make_core, lone_user, project_name):
    """The sidebar asks for one project at each container event: the kept overview answers with that one only,
    without a new look, and still holds every project for the next whole list."""
    user = lone_user  # any container event of the user makes the overview be made again: only this test's
    viewer = make_core()
    names = [project_name(), project_name()]
    for name in names:
        viewer.projects.create(user, name)
    _kept(viewer, user)
    with _looks(viewer) as listed:
        one = viewer.overview(user, only=names[0])
        whole = viewer.overview(user)
    assert [p["name"] for p in one["projects"]] == [names[0]]
    assert set(names) <= set(_by_name(whole))
    if not listed:  # (another run's image event on a busy host rightly makes it look again)
        one["projects"][0]["warnings"] = -1  # a caller's copy: the kept one is untouched
        assert _by_name(viewer.overview(user))[names[0]]["warnings"] == 0


def test_a_stamp_taken_in_the_same_tick_as_a_change_is_not_trusted():
    """On a coarse filesystem clock a second change within the tick keeps the times: such a look is not kept."""
    from ds01_jupyter.core.overview import RACY_SECONDS, OverviewMemo
    from ds01_jupyter.core.users import User

    me, memo, now = User.current(), OverviewMemo(), time.time()
    found = {"user": me.name, "engine": {"available": True, "reason": ""}, "projects": [], "frameworks": []}
    just_changed = ((1, int(now * 1e9), int(now * 1e9), 4096), None)
    memo.keep(None, me, now, just_changed, found)
    assert memo._kept == {}
    settled = ((1, int((now - 10 * RACY_SECONDS) * 1e9), int((now - 10 * RACY_SECONDS) * 1e9), 4096), None)
    memo.keep(None, me, now, settled, found)
    assert (me.name, me.uid) in memo._kept
