"""A container as users see it, and what a deploy answers: plain data every front end shows.

Apart from the container core (containers.py) so that a client of ds01d decodes a status without importing the
engine's modules (issue 19: the command line's start-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ContainerStatus:
    """A container as users see it."""

    project: str
    name: str
    id: str
    state: str
    image: str
    stale_image: bool = False
    gpus: list[str] = field(default_factory=list)
    gpu_slots: int = 0
    workspace: str = ""
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    uptime_seconds: float | None = None
    exit_code: int | None = None
    error: str = ""
    protected: bool = False
    interface: str = ""
    #: How its last run ended (allocator.Ending): "", "stopped", "exited" or "crashed"; and what a user reads,
    #: e.g. "crashed (exit 137, out of memory)" (the state while it runs).
    ending: str = ""
    summary: str = ""
    oom_killed: bool = False
    #: Whether its GPUs are still its own (running, or stopped within gpu_hold_after_stop; a crash frees them).
    holds_gpu: bool = False
    #: When its GPUs stop being its own by time alone (gpu_hold_after_stop after a stop, or a never-started
    #: container's grace), to the second below; None while it holds none or only an event can end the hold.
    gpu_hold_ends: str | None = None
    #: "" while /workspace is the project folder; "missing" when the folder was deleted; "replaced" when it was
    #: made again while the container runs on with the deleted one mounted.
    workspace_state: str = ""
    #: The last lines of its output, for a crashed container's status.
    log_tail: list[str] = field(default_factory=list)
    #: The framework whose image it runs instead of the project's own ("" when it runs its own; see frameworks.py).
    fallback: str = ""
    #: What in its workspace the user cannot write ("." for the folder, "models", "results"; see workspace_access).
    unwritable: list[str] = field(default_factory=list)
    #: The cluster node it is on ("" on one host; see swarm_engine.py).
    node: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"

    def to_dict(self) -> dict:
        # Flat fields and lists of strings: a copy of each list is enough (asdict's deep copy is ten times slower,
        # and the overview makes one per container).
        data = {k: list(v) if isinstance(v, list) else v for k, v in vars(self).items()}
        data["running"] = self.running
        return data


@dataclass
class DeployResult:
    container: ContainerStatus
    created: bool
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"container": self.container.to_dict(), "created": self.created, "notices": self.notices}
