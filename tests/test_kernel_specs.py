"""Kernel specs under concurrent syncs: what another sync removed meanwhile is not an error (fast tier)."""

from __future__ import annotations

import shutil

from ds01_jupyter.kernels import specs


def test_a_spec_removed_meanwhile_is_not_an_error(tmp_path, monkeypatch):
    folder = tmp_path / "kernels"
    specs.write_spec("demo", folder)
    assert specs.present(folder).keys() == {"demo"}
    real = specs._read_spec

    def read_then_removed_by_another_sync(kfd, name):
        found = real(kfd, name)
        shutil.rmtree(folder / name)  # the events thread's sync, between our look and our removal
        return found

    monkeypatch.setattr(specs, "_read_spec", read_then_removed_by_another_sync)
    assert specs.remove_spec("demo", folder) is False
    monkeypatch.undo()
    assert specs.present(folder) == {}
    assert specs.remove_spec("demo", folder) is False  # and again, when it is simply not there
