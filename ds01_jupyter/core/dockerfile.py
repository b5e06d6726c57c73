"""Which images a Dockerfile reads: FROM, ``COPY``/``ADD --from``, ``RUN --mount=from=`` and ONBUILD's.

The engine builds as root and reads any image it holds: a user's Dockerfile
``FROM ds01-bob/project`` (or ``COPY --from=`` it, by tag, id or prefix) would
hand them another user's image. So before a build the images it names are
found (:func:`image_references`) and each one the engine holds must not be
another user's (``Images.build``). Global ARGs are expanded as the engine
does; a name that still depends on a value ds01 cannot know is refused.
"""

from __future__ import annotations

import re

_VARIABLE = re.compile(r"\$(?:\{(\w+)(?:(:?[-+])([^}]*))?\}|(\w+))")


#: Characters the engine's parser and ours might split differently (odd whitespace, controls): refused outright.
ODD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]")


class Unresolved(ValueError):
    """An image name built from a variable whose value is only known while building, or a Dockerfile ds01
    cannot read as the engine would."""


def _logical_lines(text: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped (the ``# escape=`` directive honoured)."""
    escape = "\\"
    lines = [line.removesuffix("\r") for line in text.split("\n")]  # the engine splits on newlines only
    for line in lines:  # parser directives: only at the very top
        found = re.match(r"\s*#\s*(\w+)\s*=\s*(\S+)\s*$", line)
        if not found:
            break
        if found.group(1).lower() == "escape" and found.group(2) in ("\\", "`"):
            escape = found.group(2)
    # As the engine joins them: the escape (and blanks after it) removed, the next line appended as it is, with
    # no space added ("FROM ds01-bob\\" + "/x" names ds01-bob/x); comments and blank lines inside skipped.
    continued = re.compile(re.escape(escape) + r"[ \t]*$")
    out, current, continuing = [], "", False
    for line in lines:
        if line.lstrip().startswith("#") or (continuing and not line.strip()):
            continue
        found = continued.search(line)
        if found:
            current, continuing = current + line[:found.start()], True
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current, continuing = "", False
    if current.strip():
        out.append(current.strip())
    return out


def expand(value: str, args: dict[str, str]) -> str:
    """``value`` with ``$NAME``/``${NAME}``/``${NAME:-x}``/``${NAME:+x}`` of ``args`` expanded; Unresolved for
    a variable not among them."""

    def one(match):
        name = match.group(1) or match.group(4)
        if name not in args:
            raise Unresolved(name)
        current, op, word = args[name], match.group(2), match.group(3) or ""
        if op in (":-", "-"):
            return current if (current or op == "-") else word
        if op in (":+", "+"):
            return word if (current or op == "+") else ""
        return current

    return _VARIABLE.sub(one, value)


def _flag(words: list[str], name: str) -> list[str]:
    return [w.split("=", 1)[1] for w in words if w.lower().startswith(f"--{name}=")]


#: An ADD source the engine fetches itself (the legacy builder takes http(s) URLs, BuildKit git ones too).
_REMOTE = re.compile(r"[a-z][a-z0-9+.-]*://|git@|github\.com/", re.IGNORECASE)


def remote_sources(text: str) -> list[str]:
    """The ADD sources of ``text`` (its ONBUILD ones too) that the engine would fetch from the network: URLs,
    and sources written through a variable (which may hold one)."""
    import json

    found: list[str] = []

    def instruction(line: str) -> None:
        keyword, _, rest = line.replace("\t", " ").partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ONBUILD":
            instruction(rest)
            return
        if keyword != "ADD":
            return
        words = [w for w in rest.split() if not w.startswith("--")]
        if rest.startswith("["):  # the JSON form: ["src", ..., "dest"]
            try:
                words = [str(w) for w in json.loads(rest)]
            except ValueError:
                pass
        for source in words[:-1]:
            if not source.startswith("<<") and (_REMOTE.match(source.strip("\"'")) or "$" in source):
                found.append(source)

    for line in _logical_lines(text):
        instruction(line)
    return found


def image_references(text: str, build_args: dict[str, str]) -> list[str]:
    """The images ``text`` builds on or copies from, stage names and ``scratch`` left out; Unresolved when one
    depends on a variable that is not a global ARG (or a build argument)."""
    odd = ODD.search(text)
    if odd:
        raise Unresolved(f"character {odd.group()!r}")
    args: dict[str, str] = {}
    stages: set[str] = set()
    found: list[str] = []
    seen_from = keyword_is_from = False
    count = 0

    def add(reference: str, stage_index: bool = False) -> None:
        # FROM lines see the global ARGs; a stage's own ARGs are not followed, so --from takes no variable.
        name = expand(reference, args if keyword_is_from else {}).strip()
        if not name or name.lower() in stages or name.lower() == "scratch":
            return
        if stage_index and name.isdigit() and int(name) < count:  # --from=N: a stage when there is an N-th one
            return
        found.append(name)

    def instruction(line: str) -> None:
        nonlocal seen_from, keyword_is_from, count
        keyword, _, rest = line.replace("\t", " ").partition(" ")
        keyword, words = keyword.upper(), rest.split()
        keyword_is_from = keyword == "FROM"
        if keyword == "ONBUILD":
            instruction(rest.strip())
        elif keyword == "ARG" and not seen_from:
            for word in words:
                key, eq, default = word.partition("=")
                args[key] = build_args.get(key, default.strip("\"'") if eq else "")
        elif keyword == "FROM":
            plain = [w for w in words if not w.startswith("--")]
            if plain:
                add(plain[0])
                seen_from, count = True, count + 1
                if len(plain) >= 3 and plain[1].lower() == "as":
                    stages.add(plain[2].lower())
        elif keyword in ("COPY", "ADD"):
            for reference in _flag(words, "from"):
                add(reference, stage_index=True)
        elif keyword == "RUN":
            for mount in _flag(words, "mount"):
                for part in mount.split(","):
                    key, _, value = part.partition("=")
                    if key.strip().lower() == "from":
                        add(value, stage_index=True)

    for line in _logical_lines(text):
        instruction(line)
    return found
