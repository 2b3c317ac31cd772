"""Small file-system steps products are built from: replace atomically, ensure idempotently.

Trees in the repository may share inodes through hard links, so a file is never rewritten in
place: a new inode is written beside it and renamed over the old name. Nothing here follows
a symlink it finds at the name it manages; such an entry is replaced, not written through.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import tempfile
from pathlib import Path

NAME_MAX = 255  # bytes in one file name (Linux)


def sibling_name(name: str, suffix: str) -> str:
    """`.<name><suffix>` for a temporary sibling of `name`, with `name` shortened so that the
    whole fits in NAME_MAX bytes (a valid image name may use nearly all of them)."""
    room = NAME_MAX - 1 - len(suffix.encode())
    short = name.encode()[:room].decode(errors="ignore")
    return f".{short}{suffix}"


def is_real_dir(path: Path) -> bool:
    """A directory itself, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def remove_entry(path: Path) -> None:
    """Remove whatever is at `path` (a directory tree, a file, a link); nothing if absent."""
    if is_real_dir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def replace_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` as a new file at `path`: temp file beside it, then rename over the name."""
    if is_real_dir(path):
        shutil.rmtree(path)
    # mkstemp appends 8 random characters to the prefix
    prefix = sibling_name(path.name, ".XXXXXXXX")[:-8]
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchmod(out.fileno(), mode)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """`replace_file` unless a regular file with exactly these bytes and mode is there."""
    if _same_file(path, data, mode):
        return False
    replace_file(path, data, mode)
    return True


def _same_file(path: Path, data: bytes, mode: int) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != mode:
        return False
    return info.st_size == len(data) and path.read_bytes() == data


def ensure_dir(path: Path, mode: int = 0o755) -> None:
    """`path` is a real directory (parents too); a link or file at that name is replaced."""
    if is_real_dir(path):
        return
    if not is_real_dir(path.parent):
        ensure_dir(path.parent, mode)
    remove_entry(path)
    path.mkdir()
    path.chmod(mode)


def ensure_empty_file(path: Path, mode: int = 0o644) -> bool:
    """Create an empty file unless something (of any kind) is at `path`; True if created."""
    if os.path.lexists(path):
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    os.fchmod(fd, mode)
    os.close(fd)
    return True


def ensure_symlink(path: Path, target: str) -> bool:
    """`path` is a symlink to `target`; anything else there is replaced. True if it changed."""
    if path.is_symlink() and os.readlink(path) == target:
        return False
    if is_real_dir(path):
        shutil.rmtree(path)
    temp = path.with_name(sibling_name(path.name, f".{os.getpid()}.tmp"))
    remove_entry(temp)
    os.symlink(target, temp)
    os.replace(temp, path)
    return True


def tree_size(root: Path) -> int:
    """Sum of the sizes of the regular files under `root` (links are not followed)."""
    total, pending = 0, [os.fspath(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(first: Path, second: Path) -> None:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE): a reader sees one or the other,
    never neither. Raises OSError where the file system cannot do it."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), os.fspath(first), None, os.fspath(second))
