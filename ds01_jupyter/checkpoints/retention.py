"""Retention: which checkpoints a policy deletes, why each is kept, and deleting without following links.

Some checkpoints are never deleted by a rule, whatever the policy: one changed
in the last few minutes (a trainer may be writing it), one being written, a
role file (``best-model.pt``, ``last.ckpt``, the trainer's recorded best),
each run's resume point (so a run always keeps a complete checkpoint), one
written after that resume point (a second run into the same folder), and one
without an epoch or step among numbered ones (a final model, an export). Those
go only by name. Rules count per run: ``keep_last=2`` keeps the newest two of
every run.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from .naming import BEST
from .scanning import RECENT_SECONDS, Checkpoint, Listing, _value, order_key


class CheckpointError(Exception):
    """A save, load or prune that could not be done; the message says what is intact."""


def plan(
    found: Listing,
    keep_last: int | None = None,
    keep_best: int | None = None,
    metric: str | None = None,
    mode: str | None = None,
    older_than: float | None = None,
    now: float | None = None,
    recent_seconds: float = RECENT_SECONDS,
) -> tuple[list[tuple[Checkpoint, str]], list[tuple[Checkpoint, str]]]:
    """(to delete, to keep), each checkpoint with the reason."""
    if keep_best and not (metric or found.metric):
        raise CheckpointError("keep_best needs the metric to rank by.")
    if keep_last is None and keep_best is None and older_than is None:
        raise CheckpointError("Say what to keep: keep_last, keep_best (with metric) or older_than.")
    metric = metric or found.metric
    mode = mode or found.mode
    now = time.time() if now is None else now
    kept_by_rule: dict[str, str] = {}
    kept_always: dict[str, str] = {}
    for run in {c.run for c in found.checkpoints}:
        items = [c for c in found.checkpoints if c.run == run]
        pool = [c for c in items if c.complete and not c.role]
        kept_always.update(_outside_rules(items, pool))
        if keep_last:
            for c in sorted(pool, key=order_key(items))[-keep_last:]:
                kept_by_rule[c.path] = f"among the last {keep_last} of its run"
        if keep_best and metric:
            scored = sorted((c for c in pool if _value(c, metric) is not None), key=lambda c: _value(c, metric),
                            reverse=(mode == "max"))
            for c in scored[:keep_best]:
                kept_by_rule.setdefault(c.path, f"among the best {keep_best} by {metric} ({mode}) of its run")
    delete, keep = [], []
    days = f"{older_than / 86400:g} days" if older_than is not None else ""
    for c in found.checkpoints:
        age = now - c.mtime
        run = f"run {c.run}" if c.run else "models/"
        if c.state == "in_progress":
            keep.append((c, "being written"))
        elif age < recent_seconds:
            keep.append((c, f"changed {int(age)} s ago: a trainer may be writing it"))
        elif c.role == BEST:
            keep.append((c, "the best checkpoint" + (" by name" if c.named_role else " the trainer recorded")
                         + ": delete it by name if you mean to"))
        elif c.role:
            keep.append((c, "the trainer's latest checkpoint by name: delete it by name if you mean to"))
        elif c.is_latest:
            keep.append((c, f"the checkpoint a resume of {run} loads"))
        elif c.path in kept_always:
            keep.append((c, kept_always[c.path]))
        elif older_than is not None and age < older_than:
            keep.append((c, f"newer than {days}"))
        elif not c.complete:
            delete.append((c, f"incomplete: {c.problem}"))
        elif c.path in kept_by_rule:
            keep.append((c, kept_by_rule[c.path]))
        elif keep_last is None and keep_best is None:
            delete.append((c, f"older than {days}"))
        else:
            rules = [f"the last {keep_last}" if keep_last else "", f"the best {keep_best}" if keep_best else ""]
            delete.append((c, "not among " + " or ".join(r for r in rules if r)
                           + (f", and older than {days}" if days else "")))
    return delete, keep


def _outside_rules(items: list[Checkpoint], pool: list[Checkpoint]) -> dict[str, str]:
    """Complete checkpoints of a run that no rule deletes, with why: one written after the checkpoint a resume
    loads (a second run into the same folder, numbered from 0 again), and one without a number among numbered
    ones (a final model, an export: not a step of the sequence the rules count)."""
    latest = next((c for c in items if c.is_latest), None)
    numbered = any(c.epoch is not None or c.step is not None for c in pool)
    kept = {}
    for c in pool:
        if latest is not None and c.mtime > latest.mtime + 1:
            kept[c.path] = "written after the checkpoint a resume loads (another run here?): delete it by name"
        elif numbered and c.epoch is None and c.step is None:
            kept[c.path] = ("no epoch or step in its name among numbered checkpoints (a final model, an export?): "
                            "delete it by name if you mean to")
    return kept


def open_parent(root: Path | str, relpath: str) -> int:
    """A descriptor of the folder holding ``relpath`` under ``root`` (the caller's chosen folder, checked by
    the caller), no component below it a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relpath.split("/")[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise
    return fd


def delete(root: Path, c: Checkpoint) -> bool:
    """Delete one planned checkpoint if it is still what was planned (not changed since, not a link now)."""
    try:
        fd = open_parent(root, c.relpath)
    except OSError:
        return False
    try:
        st = os.stat(c.name, dir_fd=fd, follow_symlinks=False)
        if c.folder:
            if not stat.S_ISDIR(st.st_mode):
                return False
            shutil.rmtree(c.name, dir_fd=fd)  # fd-based on Linux: links inside are removed, not followed
        else:
            if st.st_mtime > c.mtime + 1 and not stat.S_ISLNK(st.st_mode):
                return False  # written again since the plan: leave it
            os.unlink(c.name, dir_fd=fd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
