"""Repository-relative paths: normalising, resolving without following symlinks, leases."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import USAGE, FakeError

RESERVED = frozenset({"lock", "calls.jsonl", "faults.json"})


def clean(path: str) -> str:
    """'/a//b/./c/' -> 'a/b/c', '/' -> ''; a '..' component is refused (exit 2)."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise FakeError(f"path {path!r} leaves the repository", USAGE)
    return "/".join(parts)


def split_repo(argument: str) -> tuple[str, str]:
    """'repo.name/sub/path' -> ('repo.name', 'sub/path')."""
    name, _, path = argument.partition("/")
    check_name(name)
    return name, clean(path)


def check_name(name: str) -> None:
    allowed = all(c.isalnum() or c in "._-" for c in name)
    if not name or not allowed or name.startswith(".") or name in RESERVED:
        raise FakeError(f"invalid repository name {name!r}", USAGE)


def under(path: str, scope: str) -> bool:
    """True when `path` is `scope` or inside it ('' is the whole repository)."""
    return scope in ("", path) or path.startswith(scope + "/")


def overlaps(a: str, b: str) -> bool:
    return under(a, b) or under(b, a)


def parent(path: str) -> str:
    return path.rpartition("/")[0]


def ancestors(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b'] (proper ancestors, top first, without the root)."""
    parts = path.split("/") if path else []
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def join(root: Path, rel: str) -> Path:
    return root / rel if rel else root


def locate(root: Path, rel: str) -> Path | None:
    """`root/rel`, or None when a component above it is not a real directory.

    Never follows a symlink on the way, so no operation reaches outside `root`.
    """
    for above in ancestors(rel):
        try:
            mode = os.lstat(root / above).st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(mode):
            return None
    return join(root, rel)


def lexists(path: Path) -> bool:
    return os.path.lexists(path)


def kind(root: Path, rel: str) -> str:
    """'dir', 'other' or 'missing' for `rel` in the tree at `root` (symlinks not followed)."""
    path = locate(root, rel)
    if path is None or not lexists(path):
        return "missing"
    return "dir" if stat.S_ISDIR(os.lstat(path).st_mode) else "other"
