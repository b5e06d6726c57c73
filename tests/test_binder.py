"""The Binder example: made from binder/, it shows warnings and checkpoints without Docker or a GPU."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ds01_jupyter import checkpoints
from ds01_jupyter.core.notebook_check import check_notebook

BINDER = Path(__file__).parent.parent / "binder"
pytestmark = pytest.mark.slow  # runs the example notebook in a real kernel


def test_example_project_shows_warnings_and_runs_without_docker(home, monkeypatch):
    monkeypatch.setenv("HOME", str(home))
    make = runpy.run_path(str(BINDER / "make_example.py"))["main"]
    project = make(home)
    assert project == home / "workspace" / "example"
    assert {"notebooks", "models", "results", "data"} <= {p.name for p in project.iterdir()}
    assert [c.epoch for c in checkpoints.scan(project / "models")] == [1, 2, 3]
    assert make(home) == project  # a second run leaves the project as it is

    notebook = project / "notebooks" / "persistence-demo.ipynb"
    flagged = {f.path for f in check_notebook(notebook)}
    assert {"/tmp/results.csv", "/tmp/weights.bin"} <= flagged
    assert not any(p.startswith(("../", "results")) for p in flagged)  # paths in the project are fine

    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if "/tmp/" not in c.source]  # do not write to the host's /tmp
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    ).execute()
    assert (project / "results" / "results.csv").read_text().startswith("epoch,val_loss")
    assert checkpoints.latest(project / "models").epoch == 4
    assert checkpoints.best("val_loss", directory=project / "models").epoch == 4
    assert os.access(BINDER / "postBuild", os.X_OK)
