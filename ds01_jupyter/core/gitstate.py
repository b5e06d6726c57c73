"""Git, run as the project's user: the first commit of a new layout, and whether code is committed and pushed.

The DS01 guide says "use Git for code (push regularly)": a workspace survives a
retire, not a disk failure. So the tools say when a project's code was never
committed, has uncommitted changes, has no remote, or has commits not pushed.

Git reads its configuration from the repository, and a repository's config can
run programs (``core.fsmonitor``, hooks): git is therefore never run as root in
a user's folder, only with the user's own uid (a child process that drops to
it), with optional locks off (a status must not take the index lock from the
user's own git) and a timeout (a huge or hung repository must not block a panel).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from .users import User

#: A git call that takes longer than this is given up (its answer says so).
GIT_TIMEOUT = 5.0
IDENTITY_HINT = ('git has no name for you yet: run `git config --global user.name "Your Name"` and '
                 '`git config --global user.email you@example.com`, then `git add -A && git commit -m "Start"`.')


@dataclass
class GitState:
    """What a project's git says, in the terms the DS01 guide uses."""

    repository: bool = False
    commits: bool = False
    branch: str = ""
    changed: int = 0  # tracked files with changes, staged or not
    untracked: int = 0
    remote: bool = False
    upstream: bool = False
    ahead: int = 0
    behind: int = 0
    problem: str = ""

    @property
    def summary(self) -> str:
        """One line: "not a git repository", "no commit yet", "3 uncommitted changes, not pushed", "clean"."""
        if self.problem:
            return self.problem
        if not self.repository:
            return "not a git repository"
        if not self.commits:
            return "no commit yet"
        parts = []
        if self.changed or self.untracked:
            parts.append(
                f"{self.changed + self.untracked} uncommitted change{'s' if self.changed + self.untracked != 1 else ''}"
            )
        if not self.remote:
            parts.append("no remote")
        elif not self.upstream:
            parts.append("branch not pushed")
        elif self.ahead:
            parts.append(f"{self.ahead} commit{'s' if self.ahead != 1 else ''} not pushed")
        return ", ".join(parts) or "committed and pushed"

    def to_dict(self) -> dict:
        return {**vars(self), "summary": self.summary}  # flat fields: no need for asdict's deep copy


def run_git(user: User, cwd: str, args: list[str], timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess:
    """``git args`` in ``cwd`` as ``user`` (dropping to their uid when we are root), with a clean environment."""
    drop = os.geteuid() == 0 and user.uid != 0
    env = {"HOME": str(user.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
           "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
                          timeout=timeout, check=False, user=user.uid if drop else None,
                          group=user.gid if drop else None, extra_groups=[] if drop else None)


#: What git's answer depends on besides the working tree: the index, HEAD, the refs (commits, pushes, fetches)
#: and the config (remotes). Their metadata (never followed, never read) keys the overview's remembered answers.
_STAMPED = ("index", "HEAD", "packed-refs", "config", "refs/heads", "refs/remotes", "refs/remotes/origin")
#: The overview reuses a project's git answer this long while those files are unchanged: edits in the working
#: tree change none of them, so they show within this time (a commit, checkout, push or fetch at once).
OVERVIEW_SECONDS = 10.0
#: An unchanged repository's answer older than OVERVIEW_SECONDS but younger than this is shown at once while a
#: fresh one is asked in the background (for the next overview); an older one is asked before answering, so a
#: sidebar opened after a quiet hour never shows an hour-old "committed and pushed".
BACKGROUND_SECONDS = 60.0
#: Git processes at once: for the overview's first look at many repositories, and for background refreshes.
PARALLEL = 8
_remembered: dict[tuple[int, str], tuple[float, tuple, GitState]] = {}
_refreshing: set[tuple[int, str]] = set()
_refresh_lock = threading.Lock()


def _stamp(path: str) -> tuple:
    out: list[tuple[int, int, int] | None] = []
    for name in _STAMPED:
        try:
            st = os.stat(os.path.join(path, ".git", name), follow_symlinks=False)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def state(user: User, path: str, max_age: float = 0.0) -> GitState:
    """The project's git state; never raises (a problem is written into the answer).

    ``max_age`` > 0: an answer of at most that age is reused while the repository's index, HEAD, refs and config
    are unchanged (two git calls saved).
    """
    if not shutil.which("git"):
        return GitState(problem="git is not installed")
    if not os.path.isdir(os.path.join(path, ".git")):
        return GitState()
    if max_age <= 0:
        return _ask(user, path)
    key, stamp = (user.uid, path), _stamp(path)
    kept = _remembered.get(key)
    if kept is not None and kept[1] == stamp and time.monotonic() - kept[0] < max_age:
        return replace(kept[2])
    return _asked(user, path, stamp)


def states(user: User, paths: list[str], max_age: float = OVERVIEW_SECONDS) -> dict[str, GitState]:
    """Many projects' git states at once, as the overview needs them at each refresh (each one a copy).

    Fresh remembered answers (see ``state``) are reused; an unchanged repository's answer of at most
    BACKGROUND_SECONDS is reused too and asked again in the background; the rest are asked now, PARALLEL at a
    time. Two git processes per repository, one after the other, would make the overview of 200 repositories
    take seconds at every refresh.
    """
    if not shutil.which("git"):
        return {path: GitState(problem="git is not installed") for path in paths}
    out: dict[str, GitState] = {}
    now_ask: list[tuple[str, tuple]] = []
    later: list[tuple[str, tuple]] = []
    now = time.monotonic()
    for path in paths:
        if not os.path.isdir(os.path.join(path, ".git")):
            out[path] = GitState()
            continue
        stamp = _stamp(path)
        kept = _remembered.get((user.uid, path))
        if kept is None or kept[1] != stamp or now - kept[0] >= BACKGROUND_SECONDS:
            now_ask.append((path, stamp))
            continue
        out[path] = replace(kept[2])
        if now - kept[0] >= max_age:
            later.append((path, stamp))
    if len(now_ask) == 1:
        out[now_ask[0][0]] = _asked(user, *now_ask[0])
    elif now_ask:
        with ThreadPoolExecutor(min(PARALLEL, len(now_ask)), thread_name_prefix="ds01-git") as pool:
            for (path, _), found in zip(now_ask, pool.map(lambda item: _asked(user, *item), now_ask)):
                out[path] = found
    if later:
        _refresh_in_background(user, later)
    return out


def _asked(user: User, path: str, stamp: tuple) -> GitState:
    """Ask git now and remember the answer under the stamp taken before asking (a change meanwhile shows next)."""
    found = _ask(user, path)
    if len(_remembered) > 10_000:  # a bound: users with ever new projects
        _remembered.clear()
    _remembered[(user.uid, path)] = (time.monotonic(), stamp, replace(found))
    return found


def _refresh_in_background(user: User, items: list[tuple[str, tuple]]) -> None:
    """Ask again for ``items`` in daemon threads (never joined at exit, unlike an executor's), each once."""
    with _refresh_lock:
        todo = [item for item in items if (user.uid, item[0]) not in _refreshing]
        _refreshing.update((user.uid, path) for path, _ in todo)
    if not todo:
        return
    queue = list(todo)

    def work() -> None:
        while True:
            with _refresh_lock:
                if not queue:
                    return
                path, stamp = queue.pop()
            try:
                _asked(user, path, stamp)
            except Exception:  # noqa: BLE001 - a background refresh must never end the thread with a traceback
                _remembered.pop((user.uid, path), None)  # asked again, in the foreground, next time
            finally:
                with _refresh_lock:
                    _refreshing.discard((user.uid, path))

    for _ in range(min(PARALLEL // 2 or 1, len(todo))):
        threading.Thread(target=work, name="ds01-git-refresh", daemon=True).start()


def _ask(user: User, path: str) -> GitState:
    try:
        done = run_git(user, path, ["status", "--porcelain=v2", "--branch", "--untracked-files=normal"])
        remotes = run_git(user, path, ["remote"]) if done.returncode == 0 else None
    except subprocess.TimeoutExpired:
        return GitState(repository=True, problem=f"git took longer than {GIT_TIMEOUT:g} s to answer")
    except OSError as err:
        return GitState(repository=True, problem=f"git could not run: {err.strerror}")
    if done.returncode != 0:
        return GitState(repository=True, problem="git: " + (done.stderr.strip().splitlines() or ["failed"])[-1][:200])
    found = GitState(repository=True, remote=bool(remotes and remotes.stdout.strip()))
    for line in done.stdout.splitlines():
        if line.startswith("# branch.oid "):
            found.commits = line.split()[2] != "(initial)"
        elif line.startswith("# branch.head "):
            found.branch = line.split(" ", 2)[2]
        elif line.startswith("# branch.upstream "):
            found.upstream = True
        elif line.startswith("# branch.ab "):
            ahead, behind = line.split()[2:4]
            found.ahead, found.behind = int(ahead), abs(int(behind))
        elif line.startswith("? "):
            found.untracked += 1
        elif line[:2] in ("1 ", "2 ", "u "):
            found.changed += 1
    return found


def first_commit(user: User, path: str, files: list[str]) -> str:
    """``git init`` where there is no repository, then commit ``files`` (the layout just added) when the
    repository has no commit yet and git knows the user's name. Returns what happened, for the user."""
    if not shutil.which("git"):
        return "git is not installed: the project is not a git repository."
    try:
        if not os.path.isdir(os.path.join(path, ".git")):
            run_git(user, path, ["init", "-q", "."], timeout=30)
        if run_git(user, path, ["rev-parse", "--verify", "-q", "HEAD"]).returncode == 0:
            return "git: the repository already has commits; the files added above are not committed."
        name = run_git(user, path, ["config", "user.name"]).stdout.strip()
        email = run_git(user, path, ["config", "user.email"]).stdout.strip()
        if not (name and email):
            return IDENTITY_HINT
        if files:
            run_git(user, path, ["add", "--", *files], timeout=30)
        done = run_git(user, path, ["commit", "-q", "--no-verify", "-m", "Project layout (ds01 project-init)"],
                       timeout=30)
    except subprocess.TimeoutExpired:
        return "git took too long; commit the layout yourself: `git add -A && git commit -m Start`."
    if done.returncode != 0:
        return "git: the first commit failed: " + (done.stderr.strip().splitlines() or ["no reason given"])[-1][:200]
    return "git: made the first commit of the layout; push it somewhere safe (`git remote add origin URL`)."
