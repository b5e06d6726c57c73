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
    def current(cls) -> User:
        """The user running this process (HOME wins, as for any Unix tool)."""
        try:
            entry = pwd.getpwuid(os.getuid())
        except KeyError:
            raise NotFound(
                f"uid {os.getuid()} has no account on this host.", hint="Ask the admin to create your account."
            ) from None
        home = Path(os.environ.get("HOME") or entry.pw_dir)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, home)

    @classmethod
    def from_name(cls, name: str) -> User:
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


def owner_name(uid: int) -> str:
    """The account name of ``uid`` for messages (``uid N`` when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def give_tree(user: User, root: Path | int) -> None:
    """Make ``root`` (a path or an open folder) and all below it belong to ``user`` when we run as root for
    someone else.

    Walks by descriptors (os.fwalk) and never follows a link, so a folder
    swapped for a link halfway cannot send a chown outside the tree.
    """
    if os.geteuid() != 0 or user.uid == 0:
        return
    if isinstance(root, int):
        top, dir_fd = ".", root
    else:
        top, dir_fd = str(root), None
    os.chown(top, user.uid, user.gid, dir_fd=dir_fd, follow_symlinks=False)
    for _, dirnames, filenames, fd in os.fwalk(top, dir_fd=dir_fd, follow_symlinks=False):
        for name in dirnames + filenames:
            os.chown(name, user.uid, user.gid, dir_fd=fd, follow_symlinks=False)
