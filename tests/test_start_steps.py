"""The engine calls after a start run side by side (containers._at_once): each ran, at the same time, and the
first error is raised only once all have ended; and one start of a container at a time (run_folder.start_lock)."""

from __future__ import annotations

import os
import secrets
import threading

import pytest

from ds01_jupyter.core.containers import _at_once
from ds01_jupyter.core.errors import EngineError


def test_steps_run_at_the_same_time():
    meet = threading.Barrier(2, timeout=10)  # one after the other, the first would wait here in vain
    ran = []
    _at_once([lambda: ran.append(meet.wait() is not None), lambda: ran.append(meet.wait() is not None)])
    assert ran == [True, True]


def test_the_first_error_is_raised_after_every_step_ended():
    ended = threading.Event()

    def slow():
        ended.wait(0.2)
        ended.set()

    def fails():
        raise EngineError("connect failed")

    with pytest.raises(EngineError, match="connect failed"):
        _at_once([fails, slow])
    assert ended.is_set()  # the other step was waited for, not left running
    with pytest.raises(ZeroDivisionError):
        _at_once([lambda: None, lambda: 1 / 0])  # any error, from a thread too


def test_no_step_and_one_step():
    _at_once([])
    ran = []
    _at_once([lambda: ran.append(threading.current_thread())])
    assert ran == [threading.main_thread()]  # one step runs in the caller's thread


@pytest.mark.skipif(os.geteuid() != 0, reason="root's start locks lie in a folder only root may open")
def test_one_start_of_a_container_at_a_time_in_a_folder_only_root_opens():
    from ds01_jupyter.core import run_folder

    name = f"t{secrets.token_hex(4)}._.someone"
    held, waited = threading.Event(), []

    def second():
        with run_folder.start_lock(name):
            waited.append(held.is_set())

    with run_folder.start_lock(name):
        other = threading.Thread(target=second)
        other.start()
        other.join(0.3)
        assert other.is_alive()  # waits for the first
        held.set()
    other.join(10)
    assert waited == [True]
    with run_folder.start_lock(f"t{secrets.token_hex(4)}._.else"):  # another container's: not held by this one
        pass
    st = os.lstat(run_folder.LOCKS)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="root's start locks lie in a folder only root may open")
def test_a_start_lock_held_too_long_and_an_unusable_folder_give_clear_errors(monkeypatch):
    from ds01_jupyter.core import run_folder
    from ds01_jupyter.core.errors import DS01Error, StateConflict

    name = f"t{secrets.token_hex(4)}._.someone"
    busy = pytest.raises(StateConflict, match=f"Another start of {name} is under way")
    with run_folder.start_lock(name), busy, run_folder.start_lock(name, timeout=0.2):
        pass
    monkeypatch.setattr(run_folder, "LOCKS", f"{run_folder.RUN_FOLDER}/{secrets.token_hex(4)}/starts")
    with pytest.raises(DS01Error, match="ds01 cannot keep .*No such file"), run_folder.start_lock(name):
        pass
