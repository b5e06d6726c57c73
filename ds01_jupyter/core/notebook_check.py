"""Static check of a notebook's code cells: literal paths outside /workspace, before they run.

Reads only code: ``open('/tmp/x.csv', 'w')``, ``torch.save(m, '/model.pt')``,
``'~/data'``, ``!wget URL -O /tmp/f``, ``%cd /tmp``. System paths that code
reads (``/usr``, ``/etc``, ``/proc``, ``/dev/null``...) are not flagged.
"""

from __future__ import annotations

import ast
import errno
import io
import json
import os
import re
import stat
import tokenize
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import Forbidden, InvalidRequest, NotFound

#: The largest notebook file read (outputs included); a notebook is JSON text, and a bigger file
#: would only cost the server memory and time for the few code cells checked.
MAX_NOTEBOOK_BYTES = 32 * 2**20
#: The most code (characters, all code cells together) checked at once.
MAX_CODE_CHARS = 2 * 2**20
#: Code beyond this many characters is scanned without Python's (slow) tokenizer.
TOKENIZE_CHARS = 128 * 2**10
#: The most findings reported for one notebook.
MAX_FINDINGS = 1000
#: Longest path accepted from a request (Linux's PATH_MAX).
MAX_PATH_CHARS = 4096

# Read-only or virtual places code legitimately names.
_SYSTEM = ("/usr/", "/etc/", "/proc/", "/sys/", "/dev/null", "/dev/std", "/dev/urandom", "/dev/random",
           "/dev/nvidia", "/bin/", "/sbin/", "/lib/", "/lib64/", "/opt/conda/bin")
_STRING = re.compile(r"""(?P<q>['"])(?P<path>(?:/(?!/)|~/|~(?=['"]))[^'"\n]*)(?P=q)""")
_SHELL_PATH = re.compile(
    r"""(?:^|\s)(?:-O|-o|--output(?:-document)?=?|>>?|\bcd|\bmkdir(?:\s+-p)?|\bcp\s+\S+|\bmv\s+\S+)\s*(?P<path>(?:/|~)[^\s;|&'"]*)"""
)
_MAGIC_CD = re.compile(r"^\s*%cd\s+(?P<path>(?:/|~)\S*)")
# A string literal whose text starts with '/', '~' or an escape (which may spell one).
_MAY_BE_PATH = re.compile(r"""[a-zA-Z]*(?:'{3}|"{3}|'|")[/~\\]""")


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
            if not _MAY_BE_PATH.match(token.string):
                continue  # literal_eval costs a compile: only for literals that may hold a path
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


def check_source(source: str, cell: int = 0, parse: bool = True, limit: int = MAX_FINDINGS) -> list[StaticFinding]:
    """Literal paths outside /workspace in one cell (at most ``limit``); ``parse=False`` skips the tokenizer."""
    found: list[StaticFinding] = []
    strings = _python_strings(source) if parse else None
    for number, line in enumerate(source.splitlines(), 1):
        if len(found) >= limit:
            break
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


class NotebookTooLarge(InvalidRequest):
    """A notebook too large to check: its file over MAX_NOTEBOOK_BYTES, or its code over MAX_CODE_CHARS."""

    status = 413


def check_cells(cells: list[str], numbers: list[int] | None = None) -> list[StaticFinding]:
    """Check code cells (``numbers``: their indexes in the notebook, default 0, 1, ...).

    At most MAX_FINDINGS are returned. Python's tokenizer is pure Python (a few seconds per MiB
    of dense code): past TOKENIZE_CHARS, cells are scanned line by line with the regular
    expressions only, so that a request is answered in seconds whatever the code.
    """
    if sum(len(source) for source in cells) > MAX_CODE_CHARS:
        raise NotebookTooLarge(
            f"The notebook holds more than {MAX_CODE_CHARS // 2**20} MiB of code; it is not checked.",
            hint="Check its cells in smaller groups, or move long literals (data) into files.",
        )
    found: list[StaticFinding] = []
    budget = TOKENIZE_CHARS
    for index, source in zip(numbers if numbers is not None else range(len(cells)), cells):
        budget -= len(source)
        found += check_source(source, index, parse=budget >= 0, limit=MAX_FINDINGS - len(found))
        if len(found) >= MAX_FINDINGS:
            break
    return found[:MAX_FINDINGS]


def read_notebook_bytes(path: str | Path, limit: int = MAX_NOTEBOOK_BYTES, name: str | None = None) -> bytes:
    """The bytes of a regular file, read without blocking on, or following a link into, a special file.

    Links are resolved first (a link to a notebook is fine); a FIFO, socket, device or directory
    they reach is refused before anything is read: opening a FIFO waits for a writer forever and
    /dev/zero never ends, and either would hold a server thread for good. O_NONBLOCK and O_NOFOLLOW
    keep the open itself from waiting, or from following a link swapped in after the check; fstat
    of the open file decides, and the read stops at ``limit`` even if the file grows meanwhile.
    Messages call the file ``name`` (default: the path).
    """
    shown = _shown(name if name is not None else path)
    try:
        real = os.path.realpath(path)  # links to a notebook are fine; only the file they reach is opened
        if not stat.S_ISREG(os.lstat(real).st_mode):
            raise InvalidRequest(f"{shown} is not a regular file.", hint="Give the path of a notebook (.ipynb).")
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"No notebook {shown}.", hint="Give a path relative to the server's root folder.") from None
    except (ValueError, UnicodeError):  # an embedded NUL byte, or a name no file system can hold
        raise InvalidRequest(f"{shown} is not a usable file name.") from None
    except OSError as err:
        if err.errno == errno.ELOOP:  # the final component became a link after the check
            raise InvalidRequest(f"{shown} is a link; give the notebook itself.") from None
        raise InvalidRequest(f"Cannot read notebook {shown}: {err.strerror or err}.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequest(f"{shown} is not a regular file.", hint="Give the path of a notebook (.ipynb).")
        if info.st_size > limit:
            raise _too_large(shown, limit)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise _too_large(shown, limit)
        return b"".join(chunks)
    except OSError as err:
        raise InvalidRequest(f"Cannot read notebook {shown}: {err.strerror or err}.") from None
    finally:
        os.close(fd)


def _too_large(shown: str, limit: int) -> NotebookTooLarge:
    return NotebookTooLarge(
        f"{shown} is larger than {limit // 2**20} MiB; it is not checked.",
        hint="Clear the notebook's outputs (Edit > Clear Outputs of All Cells) and save it, then check again.",
    )


def _shown(path) -> str:
    """A path fit for a message: printable, and short."""
    text = ascii(str(path))[1:-1] if not str(path).isprintable() else str(path)
    return text if len(text) <= 200 else text[:197] + "..."


def parse_notebook(data: bytes | str, shown: str = "The notebook") -> dict:
    """A notebook's JSON; anything else (bad UTF-8, bad JSON, nesting beyond Python's stack) is InvalidRequest."""
    try:
        notebook = json.loads(data)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        reason = "it is nested too deeply" if isinstance(err, RecursionError) else "it is not JSON"
        raise InvalidRequest(f"{shown} is not a notebook: {reason}.") from None
    if not isinstance(notebook, dict):
        raise InvalidRequest(f"{shown} is not a notebook: it has no list of cells.")
    return notebook


def notebook_in(root: str | Path, relative: str) -> Path:
    """The notebook path ``relative`` names under ``root``; Forbidden when it leads outside ``root``.

    The path is resolved (links followed) before the check, so a link inside ``root`` pointing
    elsewhere (``/dev/zero``, ``/etc``) is outside too.
    """
    if not isinstance(relative, str) or not relative:
        raise InvalidRequest("'path' must be a non-empty string: a notebook relative to the server's root folder.")
    shown = _shown(relative)
    if "\x00" in relative or len(relative) > MAX_PATH_CHARS:
        raise InvalidRequest(
            f"{shown} is not a usable file name.", hint=f"At most {MAX_PATH_CHARS} characters, no NUL byte."
        )
    try:
        base = Path(root).expanduser().resolve()
        path = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):  # a link loop (RuntimeError before Python 3.13), a surrogate
        raise InvalidRequest(f"Cannot resolve {shown}: a loop of links, or a name no file system holds.") from None
    if path != base and base not in path.parents:
        raise Forbidden(f"{shown} is outside the server's root folder.")
    return path


def check_notebook(notebook: dict | str | Path, name: str | None = None) -> list[StaticFinding]:
    """Check every code cell of a notebook (its JSON, or a path to a file holding it, called ``name`` in errors)."""
    if isinstance(notebook, (str, Path)):
        shown = _shown(name if name is not None else notebook)
        notebook = parse_notebook(read_notebook_bytes(notebook, name=shown), shown)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise InvalidRequest("Not a notebook: it has no list of cells.")
    numbers, sources = [], []
    for index, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        numbers.append(index)
        sources.append("".join(map(str, source)) if isinstance(source, list) else str(source))
    return check_cells(sources, numbers)
