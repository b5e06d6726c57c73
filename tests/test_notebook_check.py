"""The static check finds literal paths outside /workspace in code cells, and nothing else."""

from __future__ import annotations

import json

import pytest

from ds01_jupyter.core.errors import InvalidRequest
from ds01_jupyter.core.notebook_check import check_cells, check_notebook


@pytest.mark.parametrize(
    "source,path",
    [
        ("df.to_csv('/tmp/out.csv')", "/tmp/out.csv"),
        ('torch.save(model.state_dict(), "/model.pt")', "/model.pt"),
        ("open('~/notes.txt', 'w')", "~/notes.txt"),
        ("!wget https://example.org/d.zip -O /tmp/d.zip", "/tmp/d.zip"),
        ("%cd /tmp", "/tmp"),
        ("np.save(f'/root/{name}.npy', x)", "/root/{name}.npy"),
        ("for i in range(2):\n    open('/data/x', 'w')", "/data/x"),
        ("!echo hi > /tmp/hi.txt", "/tmp/hi.txt"),
    ],
)
def test_paths_outside_workspace_are_found(source, path):
    found = check_cells([source])
    assert [f.path for f in found] == [path]
    assert "outside /workspace" in found[0].message


@pytest.mark.parametrize(
    "source",
    [
        "open('results/x.csv', 'w')",
        "open('/workspace/models/m.pt', 'wb')",
        "open('/etc/os-release').read()",
        "x = 1  # '/tmp/only-in-a-comment'",
        "import os\nos.listdir('/proc/self')",
        "print('/dev/null')",
    ],
)
def test_safe_code_is_not_flagged(source):
    assert check_cells([source]) == []


def test_notebook_cells_and_lines_are_reported(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "Save to /tmp/not-code"},
            {"cell_type": "code", "source": ["import pandas as pd\n", "df.to_csv('/tmp/a.csv')\n"]},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    (finding,) = check_notebook(path)
    assert (finding.cell, finding.line, finding.path) == (1, 2, "/tmp/a.csv")
    with pytest.raises(InvalidRequest):
        check_notebook({"not": "a notebook"})
