"""Trees compared entry by entry: what `verify --deep` reads of layers, chains and flat trees.

`scan` lists a tree (relative path -> `Node`: kind, permissions, size, time, inode, link
target) without following symlinks; `Contents.same` tells whether two entries hold the same
thing: the same inode (a hard-link clone), or the same kind, permissions and bytes (content
digests, computed once per inode). `landing` is where a layer's entry lands in a tree whose
directories may be symlinks (resolved as the layer engine does, chroot-like).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ducc.layers.paths import ResolveError, Resolver
from ducc.publish.base import CATALOG_MARKER

DIR, FILE, LINK, OTHER = "dir", "file", "link", "other"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Node:
    kind: str
    mode: int  # permission bits (with setuid, setgid, sticky)
    size: int
    mtime: int
    inode: tuple[int, int]  # (st_dev, st_ino)
    link: str = ""  # a symlink's target

    @property
    def directory(self) -> bool:
        return self.kind == DIR


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISREG(mode):
        return FILE
    return LINK if stat.S_ISLNK(mode) else OTHER


def scan(root: Path) -> dict[str, Node]:
    """Every entry below `root` but its own catalog marker, by relative path."""
    nodes: dict[str, Node] = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                info = entry.stat(follow_symlinks=False)
                kind = _kind(info.st_mode)
                link = os.readlink(entry.path) if kind == LINK else ""
                inode = (info.st_dev, info.st_ino)
                mode = stat.S_IMODE(info.st_mode)
                nodes[path] = Node(kind, mode, info.st_size, info.st_mtime_ns, inode, link)
                if kind == DIR:
                    pending.append(path)
    nodes.pop(CATALOG_MARKER, None)
    return nodes


class Contents:
    """Content digests of regular files, each inode read once per check."""

    def __init__(self) -> None:
        self._digests: dict[tuple[int, int, int, int], str] = {}

    def digest(self, path: Path, node: Node) -> str:
        key = (*node.inode, node.size, node.mtime)
        found = self._digests.get(key)
        if found is None:
            hasher = hashlib.sha256()
            with path.open("rb") as data:
                while chunk := data.read(_CHUNK):
                    hasher.update(chunk)
            found = self._digests[key] = hasher.hexdigest()
        return found

    def same(self, first: tuple[Path, Node], second: tuple[Path, Node]) -> bool:
        """Whether two entries (path, node) hold the same thing."""
        (a_path, a), (b_path, b) = first, second
        if a.kind != b.kind:
            return False
        if a.kind == DIR:
            return True
        if a.kind == LINK:
            return a.link == b.link
        if a.inode == b.inode:
            return True
        if (a.mode, a.size) != (b.mode, b.size):
            return False
        return a.kind != FILE or self.digest(a_path, a) == self.digest(b_path, b)


def unchanged(lower: Node, upper: Node) -> bool:
    """Whether a clone kept an entry as it was (the same inode, or nothing told apart)."""
    if lower.inode == upper.inode:
        return True
    return (lower.kind, lower.mode, lower.size, lower.mtime, lower.link) == (
        upper.kind,
        upper.mode,
        upper.size,
        upper.mtime,
        upper.link,
    )


def landing(resolver: Resolver, rel: str) -> str | None:
    """Where the entry `rel` of a layer lands in the resolver's tree, its parent directories
    resolved there (None when a parent is missing there or no directory)."""
    parent, _, base = rel.rpartition("/")
    try:
        real = resolver.directory(parent, create=False)
    except ResolveError:
        return None
    if real is None:
        return None
    return f"{real}/{base}" if real else base


def ancestors(rel: str) -> list[str]:
    """`a/b/c` -> [`a/b/c`, `a/b`, `a`]."""
    parts = rel.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
