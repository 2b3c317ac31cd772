"""Content fingerprints of a tree, to find writes that bypassed a transaction (no-mount mode).

Per path: type, permission bits, size, mtime and, for files up to 64 KiB, a content hash.
Directory and symlink mtimes are left out: creating or removing an entry changes the
parent's mtime, and the entry itself already shows up as a difference.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

HASH_LIMIT = 64 * 1024
Entry = tuple[str, int, int, int, str]
Fingerprint = dict[str, Entry]


def _entry(path: Path, st: os.stat_result) -> Entry:
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", mode, 0, 0, "")
    if stat.S_ISLNK(st.st_mode):
        return ("symlink", 0, 0, 0, os.readlink(path))
    if not stat.S_ISREG(st.st_mode):
        return ("special", mode, 0, 0, str(st.st_rdev))
    digest = ""
    if st.st_size <= HASH_LIMIT:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ("file", mode, st.st_size, st.st_mtime_ns, digest)


def fingerprint(root: Path) -> Fingerprint:
    """Every path below `root` (relative, '/'-separated) with its entry; symlinks not followed."""
    result: Fingerprint = {}
    pending = [("", root)]
    while pending:
        rel, path = pending.pop()
        with os.scandir(path) as entries:
            for item in entries:
                child = f"{rel}/{item.name}" if rel else item.name
                st = item.stat(follow_symlinks=False)
                result[child] = _entry(Path(item.path), st)
                if stat.S_ISDIR(st.st_mode):
                    pending.append((child, Path(item.path)))
    return result


def differences(current: Fingerprint, reference: Fingerprint) -> list[str]:
    """Paths added, removed or changed, sorted."""
    paths = current.keys() | reference.keys()
    return sorted(p for p in paths if current.get(p) != reference.get(p))
