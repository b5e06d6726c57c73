"""How the command line prints: tables and progress for people, JSON for scripts."""

from __future__ import annotations

import sys


def emit_json(data) -> None:
    import json  # here: `ds01 --help` and the tables need none (issue 19)

    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def table(rows: list[dict], columns: list[tuple[str, str]], empty: str = "(none)") -> str:
    """Render ``rows`` as aligned columns; ``columns`` is (key, header) pairs."""
    if not rows:
        return empty
    cells = [[h for _, h in columns]] + [["" if r.get(k) is None else str(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def progress(line: str) -> None:
    """Progress goes to stderr so stdout stays clean for --json."""
    print(f"  {line}", file=sys.stderr, flush=True)


def error(err) -> None:
    print(f"error: {err.message}", file=sys.stderr)
    if getattr(err, "hint", None):
        print(f"hint: {err.hint}", file=sys.stderr)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"
