"""Workspace size with 100k files, the first measurement and a repeat after one file grew, against `du -s`.

Ours is what the sidebar and `ds01 usage` call: the project's tree summed with
scandir (links not followed, hard links once) by this process and helpers side by
side (one per CPU, at most side_by_side.WALKERS; also measured alone), its ten largest
files kept, and the result remembered in the state folder. A repeat reads again only the folders
that inotify said changed (core/tree_watch.py): here one file grown in place.
"""

from __future__ import annotations

import statistics
import subprocess
import time

from harness import scratch
from timing import result, timed

from ds01_jupyter.core import side_by_side, tree_watch

FILES = 100_000


def run(repeat: int) -> list[dict]:
    with scratch() as s:
        name = s.project()
        root = s.core.projects.get(s.user, name).path / "data" / "many"
        for d in range(FILES // 1000):
            folder = root / f"d{d}"
            folder.mkdir(parents=True)
            for i in range(1000):
                (folder / f"f{i}").write_bytes(b"x" * 10)
        path = str(s.core.projects.get(s.user, name).path)
        # A folder with a file changed in the last minute is read again at every measurement (its blocks may still
        # be placed, unannounced): the tree is left to settle, as a workspace between two looks mostly is.
        time.sleep(tree_watch.SETTLE_SECONDS + 1)

        def first():
            tree_watch.watched = tree_watch.TreeWatch()  # nothing known of the tree yet
            s.core.disk.measure(s.user, name)

        def grown():
            with open(root / "d7" / "f3", "ab") as out:
                out.write(b"y" * 100)
            s.core.disk.measure(s.user, name)

        ours = timed(first, repeat)
        walkers = side_by_side.WALKERS
        try:
            side_by_side.WALKERS = 1  # the same walk by this process alone, for comparison
            alone = timed(first, repeat)
        finally:
            side_by_side.WALKERS = walkers
        again = timed(grown, repeat)
        base = timed(lambda: subprocess.run(["du", "-s", path], check=True, capture_output=True), repeat)
        size = s.core.disk.measure(s.user, name)
        du = int(subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True).stdout.split()[0])
    return [
        result(
            f"workspace size, {FILES // 1000}k files (first measurement)", ours, "du -s", base,
            bytes=size.bytes, du_bytes=du, files=size.files, target="at most 1.0x",
            readers=side_by_side.readers(), alone_s=statistics.median(alone),
        ),
        result(f"workspace size, {FILES // 1000}k files (repeat, one file grown)", again, "du -s", base),
    ]
