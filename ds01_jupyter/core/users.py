"""Who acts: every core call takes the user it acts for."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from .errors import NotFound
from .names import check_user_name


@dataclass(frozen=True)
class User:
    """A Unix account: its name, ids and home, from which its paths derive."""

    name: str
    uid: int
    gid: int
    home: Path

    def __post_init__(self):
        check_user_name(self.name)

    @classmethod
    def current(cls) -> "User":
        """The user running this process (HOME wins, as for any Unix tool)."""
        entry = pwd.getpwuid(os.getuid())
        home = Path(os.environ.get("HOME") or entry.pw_dir)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, home)

    @classmethod
    def from_name(cls, name: str) -> "User":
        """Look a user up in the system's account database."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise NotFound(f"No such user {name!r} on this host.") from None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))

    def groups(self) -> set[str]:
        """Names of the Unix groups the user belongs to (for group limits)."""
        names = {g.gr_name for g in grp.getgrall() if self.name in g.gr_mem}
        try:
            names.add(grp.getgrgid(self.gid).gr_name)
        except KeyError:
            pass
        return names


def give_tree(user: User, root: Path) -> None:
    """Make ``root`` and all below it belong to ``user`` when we run as root for someone else."""
    if os.geteuid() != 0 or user.uid == 0:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, user.uid, user.gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), user.uid, user.gid)
