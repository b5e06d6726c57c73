"""Static check of a notebook's code cells: literal paths outside /workspace, before they run.

Reads only code: ``open('/tmp/x.csv', 'w')``, ``torch.save(m, '/model.pt')``,
``'~/data'``, ``!wget URL -O /tmp/f``, ``%cd /tmp``. System paths that code
reads (``/usr``, ``/etc``, ``/proc``, ``/dev/null``...) are not flagged.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import InvalidRequest

# Read-only or virtual places code legitimately names.
_SYSTEM = ("/usr/", "/etc/", "/proc/", "/sys/", "/dev/null", "/dev/std", "/dev/urandom", "/dev/random",
           "/dev/nvidia", "/bin/", "/sbin/", "/lib/", "/lib64/", "/opt/conda/bin")
_STRING = re.compile(r"""(?P<q>['"])(?P<path>(?:/(?!/)|~/|~(?=['"]))[^'"\n]*)(?P=q)""")
_SHELL_PATH = re.compile(r"""(?:^|\s)(?:-O|-o|--output(?:-document)?=?|>>?|\bcd|\bmkdir(?:\s+-p)?|\bcp\s+\S+|\bmv\s+\S+)\s*(?P<path>(?:/|~)[^\s;|&'"]*)""")
_MAGIC_CD = re.compile(r"^\s*%cd\s+(?P<path>(?:/|~)\S*)")


@dataclass
class StaticFinding:
    cell: int  # index of the cell in the notebook
    line: int  # 1-based line within the cell
    path: str
    snippet: str
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def _outside(path: str) -> bool:
    if path.startswith("~"):
        return True
    if path == "/workspace" or path.startswith("/workspace/"):
        return False
    if path in ("/", "/dev/shm") or path.startswith("/dev/shm/"):
        return True
    return not path.startswith(_SYSTEM) and path not in ("/dev/null",)


def _python_strings(source: str) -> dict[int, list[str]] | None:
    """String literals per line (comments excluded); None when the cell is not plain Python."""
    lines = [("" if line.lstrip().startswith(("!", "%")) else line) for line in source.splitlines()]
    out: dict[int, list[str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if token.type != tokenize.STRING:
                continue
            try:
                value = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):
                match = _STRING.search(token.string)  # f-strings: the literal part
                value = match.group("path") if match else None
            if isinstance(value, str):
                out.setdefault(token.start[0], []).append(value)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return out


def check_source(source: str, cell: int = 0) -> list[StaticFinding]:
    found = []
    strings = _python_strings(source)
    for number, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        candidates = []
        if stripped.startswith("!") or stripped.startswith("%%bash"):
            candidates += [m.group("path") for m in _SHELL_PATH.finditer(stripped[1:])]
        magic = _MAGIC_CD.match(line)
        if magic:
            candidates.append(magic.group("path"))
        if strings is not None:
            candidates += [v for v in strings.get(number, []) if v.startswith(("/", "~"))]
        elif not stripped.startswith("#"):
            candidates += [m.group("path") for m in _STRING.finditer(line)]
        for path in dict.fromkeys(candidates):
            if _outside(path):
                found.append(
                    StaticFinding(
                        cell=cell,
                        line=number,
                        path=path,
                        snippet=stripped[:160],
                        message=f"{path} is outside /workspace: what is written there is lost when the container is "
                        "retired. Use a path under /workspace (e.g. a relative path).",
                    )
                )
    return found


def check_cells(cells: list[str]) -> list[StaticFinding]:
    found = []
    for index, source in enumerate(cells):
        found += check_source(source, index)
    return found


def check_notebook(notebook: dict | str | Path) -> list[StaticFinding]:
    """Check every code cell of a notebook (its JSON, or a path to it)."""
    if isinstance(notebook, (str, Path)):
        try:
            notebook = json.loads(Path(notebook).read_text())
        except (OSError, ValueError) as err:
            raise InvalidRequest(f"Cannot read notebook {notebook}: {err}") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidRequest("Not a notebook: it has no list of cells.")
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        found += check_source("".join(source) if isinstance(source, list) else str(source), index)
    return found
