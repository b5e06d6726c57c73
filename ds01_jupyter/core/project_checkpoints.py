"""A project's checkpoints as the user works with them: listed by run, pruned by a policy, and warnings for
GPU work that has gone long without one.

The files themselves are the checkpoints package's (naming, formats, retention); here they are read and
deleted as the user, in the project's models/ folder and nowhere else.
"""

from __future__ import annotations

import time

from .errors import Forbidden, InvalidRequest
from .identity import acting_as
from .requests import CheckpointQuery, PrunePolicy
from .users import User

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import DS01


def checkpoints_dir(core: DS01, user: User, project: str):
    """The project's models/ folder, refused when it is a link leading elsewhere."""
    proj = core.projects.get(user, project)
    directory = proj.path / "models"
    if directory.is_symlink() and proj.path.resolve() not in directory.resolve().parents:
        raise Forbidden(f"{directory} links outside the project; refusing to look there.")
    return directory


def listing(core: DS01, user: User, project: str, metric: str | None = None, mode: str | None = None) -> dict:
    """A project's checkpoints by run, with each run's resume point and best (by ``metric``) marked."""
    from .. import checkpoints as ck

    query = CheckpointQuery(metric, mode)
    directory = core.checkpoints_dir(user, project)
    with acting_as(user):  # the user's own view of their files; nothing more
        found = ck.listing(directory, query.metric, query.mode)
    latest, best = found.latest(), found.best()
    return {
        "project": project,
        "directory": str(directory),
        "checkpoints": [c.to_dict() for c in found.checkpoints],
        "runs": [r.to_dict() for r in found.runs],
        "latest": latest.relpath if latest else None,
        "best": best.relpath if best else None,
        "metric": found.metric,
        "mode": found.mode,
        "metrics": found.metrics,
        "problems": found.problems,
        "bytes": sum(c.size for c in found.checkpoints),
    }


def prune(core: DS01, user: User, project: str, confirm: bool = False, **policy) -> dict:
    """Preview (default) or delete what a retention policy drops, each with why; and why the rest stay."""
    from .. import checkpoints as ck

    rules = PrunePolicy.from_dict(policy).rules()
    directory = core.checkpoints_dir(user, project)
    try:
        with acting_as(user):
            doomed, kept = ck.prune_plan(directory=directory, **rules)
            gone = {c.path for c in ck.prune(directory=directory, dry_run=False, **rules)} if confirm else set()
    except (ck.CheckpointError, ValueError) as err:
        raise InvalidRequest(str(err)) from None
    if confirm:
        doomed = [(c, reason) for c, reason in doomed if c.path in gone]
    return {
        "project": project,
        "deleted" if confirm else "would_delete": [{**c.to_dict(), "reason": why} for c, why in doomed],
        "kept": [{"relpath": c.relpath, "run": c.run, "reason": why} for c, why in kept],
        "bytes": sum(c.size for c, _ in doomed),
    }


def warnings(core: DS01, user: User, now: float | None = None) -> list[dict]:
    """Running containers busy on their GPU with no new checkpoint for checkpoint_warning_minutes."""
    from datetime import datetime

    from .. import checkpoints as ck
    from . import labels as L
    from .gpus import attribute

    devices = core.inventory.devices()
    if not devices:
        return []
    mine = {c.id: c for c in core.containers.vet(core.engine.list_containers(L.owned_by(user)))
            if L.is_container_of(c.labels, user)}
    attribute(devices, mine)
    using = {p.container_id for d in devices for p in d.processes if p.container_id in mine}
    now = now or time.time()
    limit = core.settings.checkpoint_warning_minutes * 60
    found_warnings = []
    for cid in using:
        project = mine[cid].labels.get(L.PROJECT, "")
        status = core.containers.status(user, project)
        if not status.running or not status.started_at:
            continue
        since = datetime.fromisoformat(status.started_at.replace("Z", "+00:00")).timestamp()
        with acting_as(user):
            found = [c for c in ck.scan(core.checkpoints_dir(user, project)) if c.complete]
        if found:
            since = max(since, max(c.mtime for c in found))
        if now - since > limit:
            minutes = int((now - since) // 60)
            found_warnings.append(
                {
                    "project": project,
                    "minutes_without_checkpoint": minutes,
                    "message": f"{project} has used its GPU for {minutes} minutes without a new checkpoint in "
                    "models/: a crash or a retire would lose that work. Save one "
                    "(`from ds01_jupyter import checkpoints; checkpoints.save(...)`).",
                }
            )
    return found_warnings
