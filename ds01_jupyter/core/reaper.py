"""The idle and runtime reaper.

Idle means no GPU process, CPU use under a threshold, and no kernel marked
busy, for longer than the user's ``idle_timeout`` (``idle_timeout_cpu`` for
containers without a GPU): a training loop with the browser closed keeps its
container, and so does a container any of whose processes is busy when the
reaper looks (CPU, or a notebook cell that executes, even one waiting on I/O).
A container past ``max_runtime`` is stopped all the same, but warned about
``RUNTIME_WARNING`` before (action ``warn``), and its processes get SIGTERM and
``stop_grace_seconds`` to save before SIGKILL. CPU figures come from the container's cgroup. The last activity of
each container is kept on disk, so a restarted server or a cron job goes on
where the last run stopped.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from .allocator import CREATED_GRACE
from .containers import Containers
from .errors import DiskFull, DS01Error, Forbidden, ProjectNotFound, QuotaExceeded, UnsavedWork
from .gpus import attribute
from .limits import format_duration
from .statefile import read_json, write_atomic
from .users import User

log = logging.getLogger("ds01_jupyter.reaper")

#: How long before max_runtime stops a container its user is warned.
RUNTIME_WARNING = 30 * 60


@dataclass
class ReapDecision:
    project: str
    container: str
    action: str  # "stop", "retire", "keep", "warn" (max_runtime is near)
    reason: str
    at: float | None = None  # for "warn": when the stop will come

    def to_dict(self) -> dict:
        return asdict(self)


class Reaper:
    def __init__(self, containers: Containers, guard=None):
        self.containers = containers
        self.guard = guard
        self.settings = containers.settings

    def _state_file(self, user: User) -> Path:
        return self.settings.expand(self.settings.state_dir, user) / "activity.json"

    def _load(self, user: User) -> dict:
        return read_json(self._state_file(user), user) or {}

    def _save(self, user: User, state: dict) -> None:
        write_atomic(self._state_file(user), json.dumps(state), user)

    def last_active(self, user: User) -> dict[str, float]:
        """When each container was last seen active (container id -> UNIX time), for idle times shown to users."""
        return {
            cid: entry["last_active"]
            for cid, entry in self._load(user).items()
            if isinstance(entry, dict) and "last_active" in entry
        }

    def mark_active(self, user: User, container_id: str, when: float | None = None) -> None:
        """Record activity the cgroup cannot see (e.g. a kernel busy waiting on I/O)."""
        state = self._load(user)
        entry = state.setdefault(container_id, {})
        entry["last_active"] = when or time.time()
        self._save(user, state)

    def run(self, user: User, dry_run: bool = False, now: float | None = None) -> list[ReapDecision]:
        """Stop the user's containers that are idle or past their runtime; say why."""
        now = now or time.time()
        self.containers.projects.checked_root(user)  # a workspace (and so a state folder) not the user's: stop here
        limits = self.containers.limits.for_user(user)
        state = self._load(user)
        gpu_pids = self._gpu_containers()
        decisions = []
        live = set()
        for listed in self.containers.list(user):
            live.add(listed.id)
            try:
                self.containers.projects.get(user, listed.project)
            except ProjectNotFound:
                # Deployed from another workspace root (or its folder was removed): not ours to judge.
                decisions.append(
                    ReapDecision(
                        listed.project, listed.name, "keep", "its project folder is not under this workspace root"
                    )
                )
                continue
            except Forbidden as err:  # a folder that is not the user's: judge nothing there
                decisions.append(ReapDecision(listed.project, listed.name, "keep", err.message))
                continue
            if not listed.running:
                if listed.state == "created":
                    decision = self._remove_unstarted(user, listed, now, dry_run)
                    if decision is not None:
                        decisions.append(decision)
                        if decision.action == "retire" and not dry_run:
                            live.discard(listed.id)
                    continue
                if listed.state in ("exited", "dead") and self.guard is not None:
                    decision = self._retire_stopped(user, listed, limits, now, dry_run,
                                                    state.setdefault(listed.id, {}))
                    if decision is not None:
                        decisions.append(decision)
                        if decision.action == "retire" and not dry_run:
                            live.discard(listed.id)
                continue
            status = self.containers.status(user, listed.project)  # with its start time
            entry = state.setdefault(status.id, {})
            decision = self._decide(user, status, entry, limits, gpu_pids, now)
            decisions.append(decision)
            if decision.action == "stop" and not dry_run:
                log.warning("Stopping %s: %s", status.name, decision.reason)
                try:
                    # Judged idle (or overdue) just now: processes left get SIGTERM and the grace to save; what it
                    # keeps in memory is copied first, or said lost (a GPU is never held for it).
                    _, report = self.containers.stop_with_report(user, status.project, stop_processes=True,
                                                                 policy=True)
                    from .processes import memory_lines

                    said = memory_lines(report)
                    if said:
                        decision.reason += "; " + " ".join(said)
                except DS01Error as err:
                    decision.reason += f" (stop failed: {err})"
        self._save(user, {cid: e for cid, e in state.items() if cid in live})
        return decisions

    def _retire_stopped(self, user, listed, limits, now, dry_run, entry: dict) -> ReapDecision | None:
        """Retire a container stopped longer than container_hold_after_stop, rescuing its work first. One whose
        retire was refused (work that cannot be copied) is not tried again until it has run since: each try
        would copy what it could once more, into a new folder, until the quota is full."""
        hold = limits.container_hold_after_stop
        if hold is None or listed.protected:
            return None
        status = self.containers.status(user, listed.project)
        if not status.finished_at:
            return None
        stopped_for = now - datetime.fromisoformat(status.finished_at.replace("Z", "+00:00")).timestamp()
        if stopped_for <= hold:
            return None
        why = f"stopped for {format_duration(stopped_for)}, over container_hold_after_stop {format_duration(hold)}"
        if entry.get("refused_after") == status.finished_at:
            return ReapDecision(status.project, status.name, "keep",
                                f"{why}, but not retired: {entry.get('refused')} (not tried again until it runs)")
        if dry_run:
            return ReapDecision(status.project, status.name, "retire", why)
        try:
            result = self.guard.retire(user, status.project, mode="rescue")
        except (QuotaExceeded, DiskFull) as err:
            # Never lose work to make room: leave it stopped and say so.
            return ReapDecision(status.project, status.name, "keep", f"{why}, but not retired: {err.message}")
        except UnsavedWork as err:
            entry.update({"refused_after": status.finished_at, "refused": err.message[:500]})
            return ReapDecision(status.project, status.name, "keep", f"{why}, but not retired: {err.message}")
        except DS01Error as err:
            return ReapDecision(status.project, status.name, "keep", f"{why}, but retiring failed: {err}")
        rescued = result.get("rescued")
        if rescued:
            why += f"; rescued {rescued['files']} file(s) into {rescued['folder']}"
        log.warning("Retired %s: %s", status.name, why)
        return ReapDecision(status.project, status.name, "retire", why)

    def _remove_unstarted(self, user, listed, now, dry_run) -> ReapDecision | None:
        """Remove a container that died between create and start, once past the grace a deploy needs.

        It never ran, so it holds no work (the guard's audit still checks its layer, and a
        rescue keeps anything found) and no GPU (the allocator stopped counting it after the
        same grace). A younger one may be a deploy of another of the user's tools in progress.
        """
        created = listed.created_at
        if not created:
            return None
        age = now - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        if age <= CREATED_GRACE:
            return ReapDecision(listed.project, listed.name, "keep", "created moments ago: a deploy may be starting it")
        why = (f"never started (created {format_duration(age)} ago, "
               f"over the {format_duration(CREATED_GRACE)} a deploy takes)")
        if listed.protected:
            return ReapDecision(listed.project, listed.name, "keep", f"{why}, but protected; it holds no GPU")
        if dry_run:
            return ReapDecision(listed.project, listed.name, "retire", why)
        try:
            if self.guard is not None:
                self.guard.retire(user, listed.project, mode="rescue")
            else:
                self.containers.retire(user, listed.project)
        except DS01Error as err:
            return ReapDecision(listed.project, listed.name, "keep", f"{why}, but removing it failed: {err}")
        log.warning("Removed %s: %s", listed.name, why)
        return ReapDecision(listed.project, listed.name, "retire", why)

    def _busy_process(self, user, status) -> str:
        """A process of the container that is busy right now (CPU, GPU memory, or an executing cell), or ''."""
        from .processes import Processes, process_findings

        processes = Processes(self.containers.engine, self.settings, self.containers.inventory)
        record = self.containers.record(user, status.project)
        listing = processes.listing(user, record)
        found, _ = process_findings(listing, Path(status.workspace) if status.workspace else None,
                                    processes.gpu_memory(record) if listing and listing.get("groups") else None)
        busy = [f for f in found if f.kind == "process" and (f.extra.get("busy") or f.extra.get("gpu_memory"))]
        return f"{busy[0].path}: {busy[0].detail}" if busy else ""

    def _gpu_containers(self) -> set[str]:
        devices = self.containers.inventory.devices()
        if not devices:
            return set()
        attribute(devices, {})
        return {p.container_id for d in devices for p in d.processes if p.container_id}

    def _decide(self, user, status, entry, limits, gpu_containers, now) -> ReapDecision:
        keep = lambda why: ReapDecision(status.project, status.name, "keep", why)  # noqa: E731
        if status.protected:
            return keep("protected (ds01.protected=true)")
        workspace = Path(status.workspace) if status.workspace else None
        if workspace and (workspace / ".keep-alive").exists():
            return keep("workspace has a .keep-alive file")
        started = (
            datetime.fromisoformat(status.started_at.replace("Z", "+00:00")).timestamp() if status.started_at else now
        )
        if limits.max_runtime is not None and now - started > limits.max_runtime:
            return ReapDecision(
                status.project,
                status.name,
                "stop",
                f"ran {format_duration(now - started)}, over max_runtime {format_duration(limits.max_runtime)}",
            )
        warn_at = started + (limits.max_runtime or 0) - RUNTIME_WARNING
        if limits.max_runtime is not None and now >= warn_at and entry.get("warned") != started:
            entry["warned"] = started  # once per run of the container
            left = started + limits.max_runtime - now
            return ReapDecision(
                status.project,
                status.name,
                "warn",
                f"will be stopped in {max(1, round(left / 60))} min "
                f"(max_runtime {format_duration(limits.max_runtime)}): "
                "save your work into /workspace; running processes get SIGTERM first",
                at=started + limits.max_runtime,
            )
        cpu = self.containers.engine.cpu_usage_ns(status.id)
        active_why = None
        if status.id in gpu_containers:
            active_why = "a process is using its GPU"
        elif cpu is not None and "cpu_ns" in entry and now > entry.get("sampled", now):
            percent = (cpu - entry["cpu_ns"]) / 1e9 / (now - entry["sampled"]) * 100
            if percent >= self.settings.idle_cpu_percent:
                active_why = f"CPU {percent:.0f}% of a core"
        entry.update(cpu_ns=cpu, sampled=now)
        if active_why or "last_active" not in entry:
            # First sight counts as activity: never stop what we have seen only once.
            entry["last_active"] = now
            return keep(active_why or "first observation")
        timeout = limits.idle_timeout_cpu if not status.gpus and limits.idle_timeout_cpu else limits.idle_timeout
        idle = now - entry["last_active"]
        if timeout is not None and idle > timeout:
            busy = self._busy_process(user, status)
            if busy:  # the cgroup's average missed it (a job just started, a cell waiting on I/O): not idle
                entry["last_active"] = now
                return keep(f"a process is busy: {busy}")
            return ReapDecision(
                status.project,
                status.name,
                "stop",
                f"idle for {format_duration(idle)}, over idle_timeout {format_duration(timeout)}",
            )
        return keep(f"idle for {format_duration(idle)}")
