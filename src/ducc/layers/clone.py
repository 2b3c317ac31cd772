"""Hard-link clones of trees: chain n starts as a clone of chain n-1, the flat tree as a clone
of the top chain. Directories and symlinks are recreated, everything else is hard-linked, so
a clone costs one link(2) per file and no data. The layer engine never modifies a shared
inode in place (see apply.py), which is what makes this safe.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ducc.errors import LayerError
from ducc.interrupts import INTERRUPTS
from ducc.layers.metadata import xattr_allowed


@dataclass(frozen=True, slots=True)
class CloneStats:
    directories: int
    links: int
    symlinks: int


def clone_tree(src: Path, dst: Path) -> CloneStats:
    """Recreate the tree `src` at `dst` (missing or an empty directory) with hard links.

    Directories keep their mode, owner, times and allowed xattrs (applied after their
    contents, so nothing bumps them); symlinks keep target, owner and times. Both trees must
    be on one file system.
    """
    source, target = os.fspath(src), os.fspath(dst)
    top = os.lstat(source)
    if not stat.S_ISDIR(top.st_mode):
        raise LayerError(f"cannot clone {source}: not a directory")
    _prepare(target)
    privileged = os.geteuid() == 0
    directories: list[tuple[str, str, os.stat_result]] = [(source, target, top)]
    links = symlinks = 0
    pending = [(source, target)]
    while pending:
        INTERRUPTS.check()  # a signal stops a large clone between directories
        from_dir, to_dir = pending.pop()
        with os.scandir(from_dir) as entries:
            for entry in entries:
                to = f"{to_dir}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    os.mkdir(to, 0o700)
                    pending.append((entry.path, to))
                    directories.append((entry.path, to, entry.stat(follow_symlinks=False)))
                elif entry.is_symlink():
                    _copy_symlink(entry.path, to, entry.stat(follow_symlinks=False), privileged)
                    symlinks += 1
                else:
                    _link(entry.path, to)
                    links += 1
    for from_dir, to_dir, info in reversed(directories):  # children before their parents
        _copy_directory_metadata(from_dir, to_dir, info, privileged)
    return CloneStats(len(directories), links, symlinks)


def _prepare(target: str) -> None:
    try:
        os.mkdir(target, 0o700)
    except FileExistsError:
        if not os.path.isdir(target) or os.path.islink(target) or os.listdir(target):
            raise LayerError(f"cannot clone into {target}: not an empty directory") from None


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        raise LayerError(
            f"cannot hard-link {source} to {target}: {exc.strerror}",
            hint="chains and flat trees must live on one file system",
        ) from exc


def _copy_symlink(source: str, target: str, info: os.stat_result, privileged: bool) -> None:
    os.symlink(os.readlink(source), target)
    if privileged:
        os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    _copy_xattrs(source, target)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_directory_metadata(
    source: str, target: str, info: os.stat_result, privileged: bool
) -> None:
    if privileged:
        os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    _copy_xattrs(source, target)  # before the mode, which may forbid writing them
    os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_xattrs(source: str, target: str) -> None:
    try:
        names = os.listxattr(source, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        if xattr_allowed(name):
            value = os.getxattr(source, name, follow_symlinks=False)
            os.setxattr(target, name, value, follow_symlinks=False)
